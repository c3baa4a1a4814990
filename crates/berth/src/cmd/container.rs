//! Container commands: run, create, start, ps, logs, exec, stop, kill, wait, rm, inspect.

use crate::Globals;

/// Container subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ContainerCommand {
    /// List containers.
    Ps,
}

/// Runs a container command.
pub fn run(_g: &Globals, c: ContainerCommand) -> anyhow::Result<u8> {
    match c {
        ContainerCommand::Ps => Ok(0),
    }
}

/// A container-specific exit code carried by an error (126, 127), if any.
pub fn exit_code_of(_e: &(dyn std::error::Error + 'static)) -> Option<u8> {
    None
}
