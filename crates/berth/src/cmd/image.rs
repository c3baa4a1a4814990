//! Image commands: import, load, save, images, tag, rmi, image inspect, system prune, system df.

use crate::Globals;

/// Image subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ImageCommand {
    /// List images.
    Images,
}

/// Runs an image command.
pub fn run(_g: &Globals, c: ImageCommand) -> anyhow::Result<u8> {
    match c {
        ImageCommand::Images => Ok(0),
    }
}
