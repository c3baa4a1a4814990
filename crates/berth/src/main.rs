//! The `berth` command: parses arguments and calls the libraries. Logic lives in the crates.

mod cmd;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// berth: build, ship and run containers.
#[derive(Parser, Debug)]
#[command(name = "berth", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// State root (images, containers).
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    pub root: PathBuf,
    /// Runtime state root (pids, sockets).
    #[arg(
        long = "run-root",
        global = true,
        env = "BERTH_RUN_ROOT",
        default_value = "/run/berth"
    )]
    pub run_root: PathBuf,
    /// Registry client settings (TOML; default /etc/berth/registries.toml).
    #[arg(long = "registries-conf", global = true, env = "BERTH_REGISTRIES_CONF")]
    pub registries_conf: Option<PathBuf>,
    #[command(subcommand)]
    pub command: cmd::Command,
}

/// Global options every command receives.
#[derive(Debug, Clone)]
pub struct Globals {
    /// State root.
    pub root: PathBuf,
    /// Runtime state root.
    pub run_root: PathBuf,
    /// Registry client settings file, if named.
    pub registries_conf: Option<PathBuf>,
}

/// Docker's exit code for the engine's own failures.
pub const EXIT_BERTH_ERROR: u8 = 125;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_BERTH_ERROR } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let globals = Globals {
        root: cli.root,
        run_root: cli.run_root,
        registries_conf: cli.registries_conf,
    };
    match cmd::dispatch(&globals, cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("berth: {}", describe(&e));
            ExitCode::from(cmd::exit_code_for(&e))
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the message already holds
/// (library errors often include their source in their own text).
fn describe(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}
