//! `berth-runtime`: the berth-runtime library behind runc's command line, so podman, containerd
//! and conformance suites can drive it. State lives under `--root` (one directory per container
//! with `state.json` and, between create and start, `exec.fifo`).

use std::io::{IoSlice, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use berth_runtime::{Child, LaunchConfig, Stdio};
use clap::{Parser, Subcommand};
use oci_spec::runtime::{Process, Spec};
use serde::{Deserialize, Serialize};

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

/// What `create` records about a container.
#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    pid: i32,
    /// Field 22 of /proc/<pid>/stat, so a recycled pid is never mistaken for the container.
    start_time: u64,
    bundle: PathBuf,
    cgroups_path: String,
    created: String,
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = (&cli.log, &cli.log_format, cli.systemd_cgroup);
    match run(cli) {
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
                .unwrap_or(1);
            ExitCode::from(code as u8)
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    let root = cli.root;
    match cli.cmd {
        Cmd::Create(a) => {
            let (child, _) = create(&root, &a, true)?;
            drop(child);
            Ok(0)
        }
        Cmd::Start { id } => {
            let rec = load(&root, &id)?;
            match status(&root, &rec) {
                "created" => {}
                s => bail!("container {id} is {s}, not created"),
            }
            berth_runtime::start(&root.join(&id).join("exec.fifo"))?;
            Ok(0)
        }
        Cmd::State { id } => {
            let rec = load(&root, &id)?;
            let st = status(&root, &rec);
            let state = serde_json::json!({
                "ociVersion": "1.2.0",
                "id": rec.id,
                "status": st,
                "pid": if st == "stopped" { 0 } else { rec.pid },
                "bundle": rec.bundle,
                "rootfs": rec.bundle.join("rootfs"),
                "created": rec.created,
                "annotations": rec.annotations,
            });
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(0)
        }
        Cmd::Kill { all, id, signal } => {
            let rec = load(&root, &id)?;
            let sig = parse_signal(&signal)?;
            if all {
                berth_runtime::cgroups::Cgroup::open(&rec.cgroups_path)?.kill_all(sig)?;
            } else {
                if status(&root, &rec) == "stopped" {
                    bail!("container {id} is not running");
                }
                rustix::process::kill_process(
                    rustix::process::Pid::from_raw(rec.pid).ok_or_else(|| anyhow!("bad pid"))?,
                    rustix::process::Signal::from_named_raw(sig)
                        .ok_or_else(|| anyhow!("bad signal {sig}"))?,
                )
                .with_context(|| format!("signalling pid {}", rec.pid))?;
            }
            Ok(0)
        }
        Cmd::Delete { force, id } => {
            let rec = match load(&root, &id) {
                Ok(r) => r,
                Err(_) if force => {
                    // A create killed before state.json was written: drop what it left
                    // (its cgroup too, if it used the default path).
                    let _ = berth_runtime::destroy(&id, "");
                    let dir = root.join(&id);
                    if dir.is_dir() && !id.is_empty() && !id.contains('/') {
                        std::fs::remove_dir_all(&dir)
                            .with_context(|| format!("removing {}", dir.display()))?;
                    }
                    return Ok(0);
                }
                Err(e) => return Err(e),
            };
            let st = status(&root, &rec);
            if st == "running" && !force {
                bail!("container {id} is running: stop it first or use --force");
            }
            delete(&root, &rec)?;
            Ok(0)
        }
        Cmd::Run { create: a, detach } => {
            if detach {
                create(&root, &a, false)?;
                berth_runtime::start(&root.join(&a.id).join("exec.fifo"))?;
                return Ok(0);
            }
            // Foreground: no start gate, so exec failures come back as errors (exit 126/127).
            let (child, rec) = launch(&root, &a, false)?;
            let mut child = child.ok_or_else(|| anyhow!("no child handle"))?;
            let status = child.wait();
            delete(&root, &rec)?;
            Ok(status?.docker_code())
        }
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
        } => {
            // What enters the container is a fork of this process: a fork of a sealed copy.
            berth_runtime::exe::run_from_sealed_copy()?;
            let rec = load(&root, &id)?;
            if status(&root, &rec) != "running" {
                bail!("container {id} is not running");
            }
            let spec = Spec::load(rec.bundle.join("config.json")).context("loading config.json")?;
            let mut p: Process = match process {
                Some(path) => serde_json::from_slice(
                    &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
                )
                .with_context(|| format!("parsing {}", path.display()))?,
                None => {
                    if command.is_empty() {
                        bail!("exec needs a command or --process");
                    }
                    let mut p = spec.process().clone().unwrap_or_default();
                    p.set_args(Some(command));
                    p.set_terminal(Some(tty));
                    p
                }
            };
            if let Some(c) = cwd {
                p.set_cwd(c);
            }
            if !env.is_empty() {
                let mut e = p.env().clone().unwrap_or_default();
                e.extend(env);
                p.set_env(Some(e));
            }
            if let Some(u) = user {
                let (uid, gid) = u.split_once(':').unwrap_or((&u, "0"));
                let mut usr = p.user().clone();
                usr.set_uid(uid.parse().context("--user uid")?);
                usr.set_gid(gid.parse().context("--user gid")?);
                p.set_user(usr);
            }
            let stdio = stdio_for(p.terminal().unwrap_or(false), console_socket.as_deref())?;
            let seccomp = spec
                .linux()
                .as_ref()
                .and_then(|l| l.seccomp().as_ref())
                .map(berth_runtime::seccomp::Program::compile)
                .transpose()?;
            let cg = berth_runtime::cgroups::Cgroup::open(&rec.cgroups_path)?;
            let mut child = berth_runtime::exec(rec.pid, &p, Some(&cg), seccomp.as_ref(), stdio)?;
            if let Some(f) = pid_file {
                write_atomic(&f, child.pid().to_string().as_bytes())?;
            }
            if detach {
                return Ok(0);
            }
            Ok(child.wait()?.docker_code())
        }
        Cmd::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists", path.display());
            }
            write_atomic(
                &path,
                serde_json::to_string_pretty(&default_spec())?.as_bytes(),
            )?;
            Ok(0)
        }
        Cmd::List => {
            println!("{:<24} {:<8} {:<10} BUNDLE", "ID", "PID", "STATUS");
            if let Ok(rd) = std::fs::read_dir(&root) {
                for e in rd.flatten() {
                    if let Some(id) = e.file_name().to_str()
                        && let Ok(rec) = load(&root, id)
                    {
                        println!(
                            "{:<24} {:<8} {:<10} {}",
                            rec.id,
                            rec.pid,
                            status(&root, &rec),
                            rec.bundle.display()
                        );
                    }
                }
            }
            Ok(0)
        }
    }
}

/// Creates the container (stopped before exec until `start`).
fn create(root: &Path, a: &CreateArgs, keep: bool) -> Result<(Option<Child>, Record)> {
    launch(root, a, true).map(|(c, r)| (c.filter(|_| keep), r))
}

/// Sets the container up and records its state; `gated` stops it before exec until `start`.
fn launch(root: &Path, a: &CreateArgs, gated: bool) -> Result<(Option<Child>, Record)> {
    if a.id.is_empty() || a.id.contains('/') || a.id.starts_with('.') {
        bail!("invalid container id {:?}", a.id);
    }
    let bundle = std::fs::canonicalize(&a.bundle)
        .with_context(|| format!("bundle {}", a.bundle.display()))?;
    let mut spec = Spec::load(bundle.join("config.json")).context("loading config.json")?;
    let mut r = spec
        .root()
        .clone()
        .ok_or_else(|| anyhow!("config.json has no root"))?;
    if r.path().is_relative() {
        r.set_path(bundle.join(r.path()));
    }
    spec.set_root(Some(r));
    let dir = root.join(&a.id);
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow!("container {} already exists", a.id),
        _ => anyhow!("creating {}: {e}", dir.display()),
    })?;
    let result = (|| -> Result<(Option<Child>, Record)> {
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let stdio = stdio_for(terminal, a.console_socket.as_deref())?;
        let cfg = LaunchConfig {
            id: &a.id,
            spec: &spec,
            overlay: None,
            stdio,
            seccomp: None,
            die_with_parent: false,
        };
        let child = if gated {
            berth_runtime::create(cfg, &dir.join("exec.fifo"))?
        } else {
            berth_runtime::spawn(cfg)?
        };
        let rec = Record {
            id: a.id.clone(),
            pid: child.pid(),
            start_time: start_time(child.pid()).unwrap_or(0),
            bundle: bundle.clone(),
            cgroups_path: berth_runtime::cgroups_path(&spec, &a.id),
            created: now_rfc3339(),
            annotations: spec.annotations().clone().unwrap_or_default(),
        };
        write_atomic(&dir.join("state.json"), &serde_json::to_vec_pretty(&rec)?)?;
        if let Some(f) = &a.pid_file {
            write_atomic(f, rec.pid.to_string().as_bytes())?;
        }
        Ok((Some(child), rec))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn delete(root: &Path, rec: &Record) -> Result<()> {
    if status(root, rec) != "stopped" {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(rec.pid).ok_or_else(|| anyhow!("bad pid"))?,
            rustix::process::Signal::KILL,
        );
    }
    if let Err(e) = berth_runtime::destroy(&rec.id, &rec.cgroups_path) {
        // A cgroup already gone is fine; anything else is reported.
        let left = berth_runtime::cgroups::Cgroup::open(&rec.cgroups_path)
            .is_ok_and(|c| c.dirs().iter().any(|d| d.exists()));
        if left {
            return Err(e.into());
        }
    }
    std::fs::remove_dir_all(root.join(&rec.id))
        .with_context(|| format!("removing the state of {}", rec.id))
}

fn stdio_for(terminal: bool, console_socket: Option<&Path>) -> Result<Stdio> {
    if !terminal {
        return Ok(Stdio::Inherit);
    }
    let sock = console_socket.ok_or_else(|| anyhow!("process.terminal needs --console-socket"))?;
    let (master, slave) = berth_runtime::pty::open()?;
    send_fd(sock, &master)?;
    Ok(Stdio::Pty(slave))
}

/// Sends the pty master over the console socket (SCM_RIGHTS), as runc does.
fn send_fd(sock: &Path, fd: &OwnedFd) -> Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let stream = std::os::unix::net::UnixStream::connect(sock)
        .with_context(|| format!("connecting to {}", sock.display()))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut buf = SendAncillaryBuffer::new(&mut space);
    let fds = [fd.as_fd()];
    buf.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        &stream,
        &[IoSlice::new(b"/dev/ptmx")],
        &mut buf,
        SendFlags::empty(),
    )
    .context("sending the pty master")?;
    Ok(())
}

fn load(root: &Path, id: &str) -> Result<Record> {
    let p = root.join(id).join("state.json");
    let data = std::fs::read(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!("container {id} does not exist"),
        _ => anyhow!("reading {}: {e}", p.display()),
    })?;
    serde_json::from_slice(&data).with_context(|| format!("parsing {}", p.display()))
}

/// "created" (waiting on the fifo), "running", or "stopped".
fn status(root: &Path, rec: &Record) -> &'static str {
    let alive = start_time(rec.pid).is_some_and(|t| rec.start_time == 0 || t == rec.start_time)
        && !std::fs::read_to_string(format!("/proc/{}/stat", rec.pid))
            .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
            .unwrap_or(true);
    match (alive, root.join(&rec.id).join("exec.fifo").exists()) {
        (false, _) => "stopped",
        (true, true) => "created",
        (true, false) => "running",
    }
}

fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(") ")?;
    // rest starts at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    let n = match name.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        "ALRM" => libc::SIGALRM,
        "PIPE" => libc::SIGPIPE,
        _ => bail!("unknown signal {s:?}"),
    };
    Ok(n)
}

/// Temp name, fsync, rename: readers see the old file or the new one, never a torn one.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        std::process::id()
    ));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// runc's `spec` default, with Docker's mounts, capabilities and masked paths.
fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("berth".into()));
    spec.set_mounts(Some(berth_runtime::defaults::mounts()));
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
        let caps: oci_spec::runtime::Capabilities = berth_runtime::defaults::docker_capabilities()
            .into_iter()
            .collect();
        let mut c = oci_spec::runtime::LinuxCapabilities::default();
        c.set_bounding(Some(caps.clone()));
        c.set_effective(Some(caps.clone()));
        c.set_permitted(Some(caps));
        c.set_inheritable(None);
        c.set_ambient(None);
        p.set_capabilities(Some(c));
    }
    if let Some(l) = spec.linux_mut() {
        l.set_masked_paths(Some(berth_runtime::defaults::masked_paths()));
        l.set_readonly_paths(Some(berth_runtime::defaults::readonly_paths()));
        if let Some(r) = l.resources_mut() {
            r.set_devices(Some(berth_runtime::defaults::device_rules()));
        }
    }
    spec
}
