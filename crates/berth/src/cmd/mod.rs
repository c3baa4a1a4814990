//! Subcommands. `image.rs` holds the image commands, `container.rs` the container commands.

pub mod container;
pub mod dist;
pub mod format;
pub mod image;
pub mod network;
pub mod registry;

use crate::{EXIT_BERTH_ERROR, Globals};

/// Every `berth` subcommand.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Image commands.
    #[command(flatten)]
    Image(image::ImageCommand),
    /// Container commands.
    #[command(flatten)]
    Container(container::ContainerCommand),
    /// Registry client commands: pull, push, login, logout.
    #[command(flatten)]
    Dist(dist::DistCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// The DNS server of berth's networks (internal).
    #[command(name = "__dns", hide = true)]
    Dns,
    /// Run an OCI distribution registry.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
}

/// Runs a command; returns the process exit code on success.
pub fn dispatch(g: &Globals, c: Command) -> anyhow::Result<u8> {
    match c {
        Command::Image(c) => image::run(g, c),
        Command::Container(c) => container::run(g, c),
        Command::Dist(c) => dist::run(g, c),
        Command::Registry(c) => registry::run(c),
        Command::Network(c) => network::run(g, c),
        Command::Dns => network::serve_dns(g),
    }
}

/// The exit code for an error: 125 (berth's own failure) unless the error chain carries a
/// container-specific code (126 not executable, 127 not found).
pub fn exit_code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(code) = container::exit_code_of(cause) {
            return code;
        }
    }
    EXIT_BERTH_ERROR
}
