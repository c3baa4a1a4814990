//! `berth-runtime`: the berth-runtime library behind runc's command line, so podman, containerd
//! and conformance suites can drive it. State lives under `--root` (one directory per container
//! with `state.json` and, between create and start, `exec.fifo`: `berth_runtime::state`).
//!
//! This file holds the command line and the dispatch; each command is a file under `cmd/`.

mod cmd;
mod shared;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::state::{StateDir, StateError};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-runtime",
    version,
    about = "OCI runtime (runc command line)"
)]
struct Cli {
    /// Directory for container state.
    #[arg(long, default_value = "/run/berth-runtime", env = "BERTH_RUNTIME_ROOT")]
    root: PathBuf,
    /// Accepted for runc compatibility; errors go to stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Accepted for runc compatibility.
    #[arg(long = "log-format", global = true)]
    log_format: Option<String>,
    /// Accepted for runc compatibility (cgroupfs is always used).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct CreateArgs {
    /// Bundle directory (config.json and the rootfs).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the container's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Container id.
    id: String,
}

impl CreateArgs {
    fn options(&self) -> cmd::create::Options<'_> {
        let _ = (self.no_pivot, self.no_new_keyring);
        cmd::create::Options {
            id: &self.id,
            bundle: &self.bundle,
            console_socket: self.console_socket.as_deref(),
            pid_file: self.pid_file.as_deref(),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Set a container up; its process waits for `start` before exec.
    Create(CreateArgs),
    /// Let a created container's process exec.
    Start {
        /// Container id.
        id: String,
    },
    /// Print the container's OCI state as JSON.
    State {
        /// Container id.
        id: String,
    },
    /// Send a signal to the container's process (or all its processes).
    Kill {
        /// Signal every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
        /// Container id.
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove a stopped container (or any, with --force).
    Delete {
        /// Kill the container first if it is still running.
        #[arg(short, long)]
        force: bool,
        /// Container id.
        id: String,
    },
    /// Create and start a container, then wait for it (unless --detach).
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once started.
        #[arg(short, long)]
        detach: bool,
    },
    /// Run a new process inside a running container.
    Exec {
        /// process.json to run (instead of a command line).
        #[arg(short, long)]
        process: Option<PathBuf>,
        /// Allocate a pty.
        #[arg(short, long)]
        tty: bool,
        /// Unix socket that receives the pty master.
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        /// File to write the new process's pid to.
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// Return once started.
        #[arg(short, long)]
        detach: bool,
        /// Working directory.
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Extra environment (KEY=VALUE).
        #[arg(short, long)]
        env: Vec<String>,
        /// uid[:gid].
        #[arg(short, long)]
        user: Option<String>,
        /// Container id.
        id: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// Write a default config.json into the bundle.
    Spec {
        /// Bundle directory.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// List containers.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = (&cli.log, &cli.log_format, cli.systemd_cgroup);
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            // Library errors already print their cause; show each cause only once.
            let mut msg = String::new();
            for cause in e.chain() {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&c);
                }
            }
            eprintln!("berth-runtime: {msg}");
            let code = e
                .downcast_ref::<berth_runtime::Error>()
                .map(|e| e.exit_code())
                .or_else(|| e.downcast_ref::<StateError>().map(|e| e.exit_code()))
                .unwrap_or(1);
            ExitCode::from(code as u8)
        }
    }
}

/// Runs the command; the result is the exit code.
fn dispatch(cli: Cli) -> Result<i32> {
    let state = StateDir::new(cli.root);
    match cli.cmd {
        Cmd::Create(a) => cmd::create::create(&state, &a.options()),
        Cmd::Start { id } => cmd::start::start(&state, &id),
        Cmd::State { id } => cmd::state::state(&state, &id),
        Cmd::Kill { all, id, signal } => cmd::kill::kill(&state, &id, &signal, all),
        Cmd::Delete { force, id } => cmd::delete::delete(&state, &id, force),
        Cmd::Run { create, detach } => cmd::run::run(&state, &create.options(), detach),
        Cmd::Exec {
            process,
            tty,
            console_socket,
            pid_file,
            detach,
            cwd,
            env,
            user,
            id,
            command,
        } => cmd::exec::exec(
            &state,
            cmd::exec::Options {
                id: &id,
                process: process.as_deref(),
                command,
                tty,
                console_socket: console_socket.as_deref(),
                pid_file: pid_file.as_deref(),
                detach,
                cwd,
                env,
                user: user.as_deref(),
            },
        ),
        Cmd::Spec { bundle } => cmd::spec::spec(&bundle),
        Cmd::List => cmd::list::list(&state),
    }
}
