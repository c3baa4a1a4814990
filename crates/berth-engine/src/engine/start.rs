//! Starting containers. Foreground (`run`, `start -a`): this process is the container's parent,
//! copies its output (and the JSON log unless `--rm`), forwards stdin and signals, and records the
//! exit. The container never gets the caller's terminal: a pty of its own with `-t`, else pipes
//! relayed by the pump for whichever of our fds 0–2 are terminals (see [`plain_stdio`]).
//! Detached (`run -d`, `start`): a monitor — this binary (or [`Engine::with_monitor`]'s program)
//! re-executed as `__monitor ID` in its own session — does the same without a terminal and reports
//! the start's outcome through a pipe.

use super::{Engine, Prepared, mark_exited};
use crate::error::{Error, Result, io_err};
use crate::logs::LogWriter;
use crate::pump::{self, Pump};
use crate::record::Status;
use berth_runtime::{Child, LaunchConfig, OverlayRoot, Stdio};
use rustix::fs::{Mode, OFlags};
use rustix::pipe::PipeFlags;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

/// The fd number on which a monitor reports the start's outcome.
pub const REPORT_FD: i32 = 3;

pub(crate) fn dev_null() -> Result<OwnedFd> {
    rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io_err("open", "/dev/null")(e.into()))
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| io_err("create", "pipe")(e.into()))
}

pub(crate) fn dup(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(|e| io_err("duplicate", "stdio fd")(e.into()))
}

/// The container's stdio when it has no pty of its own, and the ends this process relays.
pub(crate) struct Plain {
    /// What the container gets as fds 0, 1 and 2.
    pub(crate) stdio: Stdio,
    /// Read end of the container's stdout (and of its stderr when both go to one terminal).
    pub(crate) out: Option<OwnedFd>,
    /// Read end of the container's stderr.
    pub(crate) err: Option<OwnedFd>,
    /// Write end of the container's stdin, fed from ours.
    pub(crate) input: Option<OwnedFd>,
}

/// The container's fds 0–2 without `-t`. The caller's terminal is never handed over: a process
/// holding it could read what the user types, change its modes, or push input into the user's
/// shell (TIOCSTI). Each of our fds 0–2 that is a terminal becomes a pipe that the pump relays, as
/// with Docker and Podman; anything else (a pipe, a file, a socket) is passed as it is, so bulk
/// output stays zero-copy. Stdin is forwarded only if `interactive` (else /dev/null). `capture`
/// pipes stdout and stderr whatever they are (for the JSON log).
pub(crate) fn plain_stdio(interactive: bool, capture: bool) -> Result<Plain> {
    use rustix::termios::isatty;
    let (stdin, stdout, stderr) = (
        rustix::stdio::stdin(),
        rustix::stdio::stdout(),
        rustix::stdio::stderr(),
    );
    let (c_in, input) = if !interactive {
        (dev_null()?, None)
    } else if isatty(stdin) {
        let (r, w) = pipe()?;
        // The pump must never block on a container that does not read: it would stop copying
        // the container's output, which the container may be blocked on in turn.
        rustix::fs::fcntl_setfl(&w, OFlags::NONBLOCK)
            .map_err(|e| io_err("set O_NONBLOCK on", "stdin pipe")(e.into()))?;
        (r, Some(w))
    } else {
        (dup(stdin)?, None)
    };
    let relay_out = capture || isatty(stdout);
    let relay_err = capture || isatty(stderr);
    if !capture && relay_out && relay_err && same_file(stdout, stderr) {
        // One pipe for both keeps the order in which the container interleaves them.
        let (r, w) = pipe()?;
        return Ok(Plain {
            stdio: Stdio::Fds {
                stdin: c_in,
                stdout: dup(w.as_fd())?,
                stderr: w,
            },
            out: Some(r),
            err: None,
            input,
        });
    }
    let relay = |fd, yes: bool| -> Result<(OwnedFd, Option<OwnedFd>)> {
        if yes {
            let (r, w) = pipe()?;
            Ok((w, Some(r)))
        } else {
            Ok((dup(fd)?, None))
        }
    };
    let (c_out, out) = relay(stdout, relay_out)?;
    let (c_err, err) = relay(stderr, relay_err)?;
    Ok(Plain {
        stdio: Stdio::Fds {
            stdin: c_in,
            stdout: c_out,
            stderr: c_err,
        },
        out,
        err,
        input,
    })
}

fn same_file(a: std::os::fd::BorrowedFd<'_>, b: std::os::fd::BorrowedFd<'_>) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(x), Ok(y)) => (x.st_dev, x.st_ino, x.st_rdev) == (y.st_dev, y.st_ino, y.st_rdev),
        _ => false,
    }
}

impl Engine {
    /// Spawns the container's process under its lock and records it as running. On failure, records
    /// the error (and removes an `--rm` container).
    fn launch(&self, p: &Prepared, stdio: Stdio, durable: bool) -> Result<Child> {
        let id = &p.record.id;
        let lock = self.containers.lock(id)?;
        let mut st = self.containers.read_state(id)?;
        if st.status == Status::Running && crate::procs::alive(st.monitor_pid, st.monitor_start) {
            return Err(Error::AlreadyRunning(id.clone()));
        }
        let seccomp = self.seccomp(&p.security, &crate::spec::capabilities_of(&p.spec))?;
        let dir = self.containers.dir(id);
        let overlay = OverlayRoot {
            lowers: p.lowers.clone(),
            upper: dir.join("upper"),
            work: dir.join("work"),
        };
        self.timing.mark("seccomp");
        let joined = match self.join_networks(p) {
            Ok(j) => j,
            Err(e) => return Err(self.start_failed(p, &mut st, e, lock, durable)),
        };
        // `--link` variables join the process's environment for this start.
        let linked;
        let spec = match &joined {
            Some(j) if !j.env.is_empty() => {
                let mut s = p.spec.clone();
                if let Some(proc_) = s.process_mut() {
                    let mut env = proc_.env().clone().unwrap_or_default();
                    env.extend(j.env.iter().cloned());
                    proc_.set_env(Some(env));
                }
                linked = s;
                &linked
            }
            _ => &p.spec,
        };
        let cfg = LaunchConfig {
            id,
            spec,
            overlay: Some(overlay),
            stdio,
            seccomp: seccomp.as_ref(),
            die_with_parent: true,
            // berth-init takes its signals with sigwait: a `stop` right after the start must
            // not be dropped while it loads.
            signals_blocked: p.record.host_config.init,
        };
        let r = match &joined {
            Some(j) => {
                let mut hook = |pid: i32| -> std::result::Result<
                    (),
                    Box<dyn std::error::Error + Send + Sync>,
                > {
                    self.attach_networks(pid, j).map_err(|e| e.into())
                };
                berth_runtime::spawn_attached(cfg, &mut hook)
            }
            None => berth_runtime::spawn(cfg),
        };
        self.timing.mark("spawn");
        match r {
            Ok(child) => {
                let me = std::process::id() as i32;
                st.status = Status::Running;
                st.running = true;
                st.pid = child.pid();
                st.pid_start = crate::procs::start_time(child.pid()).unwrap_or(0);
                st.monitor_pid = me;
                st.monitor_start = crate::procs::start_time(me).unwrap_or(0);
                st.exit_code = 0;
                st.oom_killed = false;
                st.error.clear();
                st.started_at = crate::time::now_rfc3339();
                st.finished_at = crate::time::ZERO_TIME.to_owned();
                st.network_settings = Default::default();
                if let Some(j) = &joined
                    && let Err(e) = self.networks_started(&p.record, j, &mut st)
                {
                    let mut child = child;
                    let _ = child.signal(libc::SIGKILL);
                    let _ = child.wait();
                    let _ = child.cgroup().destroy();
                    return Err(self.start_failed(p, &mut st, e, lock, durable));
                }
                self.containers.write_state(id, &st, durable)?;
                self.timing.mark("record");
                Ok(child)
            }
            Err(source) => {
                let e = match source {
                    berth_runtime::Error::Attach(cause) => Error::NetworkConfig(cause.to_string()),
                    other => Error::Runtime(Box::new(other)),
                };
                Err(self.start_failed(p, &mut st, e, lock, durable))
            }
        }
    }

    /// Records a failed start (or removes an `--rm` container) and gives back its networks.
    fn start_failed(
        &self,
        p: &Prepared,
        st: &mut crate::record::State,
        e: Error,
        lock: crate::store::ContainerLock,
        durable: bool,
    ) -> Error {
        self.leave_networks(&p.record.id);
        st.error = e.to_string();
        st.exit_code = e.exit_code();
        st.network_settings = Default::default();
        if p.record.host_config.auto_remove {
            let _ = self.remove_now(&p.record);
            drop(lock);
        } else if let Err(w) = self.containers.write_state(&p.record.id, st, durable) {
            return w.into();
        }
        e
    }

    /// Records the exit, removes the cgroup, and removes an `--rm` container.
    fn finish(&self, p: &Prepared, child: &mut Child, durable: bool) -> Result<i32> {
        let id = &p.record.id;
        let status = child
            .wait()
            .map_err(|source| Error::Runtime(Box::new(source)))?;
        self.timing.mark("wait");
        // The process is gone but its mount namespace is held (see `take_mount_namespace`): its
        // unmounting happens wherever the last copy of this descriptor closes.
        let mnt_ns = child.take_mount_namespace();
        let oom = child.cgroup().oom_killed().unwrap_or(false);
        let code = status.docker_code();
        let destroyed = child.cgroup().destroy();
        self.timing.mark("cgroup");
        self.leave_networks(id);
        let _lock = self.containers.lock(id)?;
        if p.record.host_config.auto_remove {
            self.discard(&p.record, mnt_ns)?;
        } else {
            let mut st = self.containers.read_state(id)?;
            mark_exited(&mut st, code, oom);
            self.containers.write_state(id, &st, durable)?;
            crate::trash::release(None, mnt_ns);
        }
        self.timing.mark("remove");
        if let Err(e) = destroyed {
            // The exit is recorded; a leftover cgroup is worth a warning, not a failed command.
            eprintln!("berth: warning: removing the cgroup of container {id}: {e}");
        }
        Ok(code)
    }

    /// Runs a prepared container in the foreground; returns its Docker exit code.
    pub fn run_foreground(&self, p: Prepared) -> Result<i32> {
        let auto_remove = p.record.host_config.auto_remove;
        let durable = !auto_remove;
        let tty = p.record.config.tty;
        let interactive = p.record.config.open_stdin;
        let id = p.record.id.clone();
        let stdin = rustix::stdio::stdin();
        let stdout = rustix::stdio::stdout();
        let log_path = self.containers.dir(&id).join(format!("{id}-json.log"));
        let mut log = if auto_remove {
            None
        } else {
            Some(LogWriter::open(&log_path)?)
        };

        if tty {
            let pty = pump::open_pty().map_err(|source| Error::Pump {
                id: id.clone(),
                cause: source,
            })?;
            let size_from = if rustix::termios::isatty(stdin) {
                stdin
            } else {
                stdout
            };
            pump::copy_winsize(size_from, pty.master.as_fd());
            let mut child = self.launch(&p, Stdio::Pty(pty.slave), durable)?;
            let _raw = if interactive {
                pump::RawMode::enter(stdin)
            } else {
                None
            };
            let sigs = pump::signal_fd(&pump::FORWARDED, true).map_err(|source| Error::Pump {
                id: id.clone(),
                cause: source,
            })?;
            let out = dup(pty.master.as_fd())?;
            let input = if interactive {
                Some((stdin, dup(pty.master.as_fd())?))
            } else {
                None
            };
            let mut pm = Pump {
                out: Some(out),
                err: None,
                input,
                echo: true,
                log: log.as_mut(),
                signals: Some(&sigs),
                resize: Some((size_from, pty.master.as_fd())),
                trim_when_idle: false,
            };
            let r = pm.run(child.pidfd(), &mut |s| {
                let _ = child.signal(s);
            });
            drop(pm);
            drop(_raw);
            r.map_err(|source| Error::Pump {
                id: id.clone(),
                cause: source,
            })?;
            return self.finish(&p, &mut child, durable);
        }

        let plain = plain_stdio(interactive, !auto_remove)?;
        let mut child = self.launch(&p, plain.stdio, durable)?;
        let sigs = pump::signal_fd(&pump::FORWARDED, false).map_err(|source| Error::Pump {
            id: id.clone(),
            cause: source,
        })?;
        let mut pm = Pump {
            out: plain.out,
            err: plain.err,
            input: plain.input.map(|w| (stdin, w)),
            echo: true,
            log: log.as_mut(),
            signals: Some(&sigs),
            resize: None,
            trim_when_idle: false,
        };
        let r = pm.run(child.pidfd(), &mut |s| {
            let _ = child.signal(s);
        });
        drop(pm);
        r.map_err(|source| Error::Pump {
            id: id.clone(),
            cause: source,
        })?;
        let code = self.finish(&p, &mut child, durable);
        self.timing.report();
        code
    }

    /// Starts a created or stopped container in the foreground (`berth start -a`).
    /// `stdin` also attaches this process's stdin (`start -a -i`) even if it was created without `-i`.
    pub fn start_attached(&self, id: &str, stdin: bool) -> Result<i32> {
        let mut p = self.load_prepared(id)?;
        if stdin {
            p.record.config.open_stdin = true;
        }
        self.run_foreground(p)
    }

    /// Starts a container under a monitor and returns once it runs (`berth start`, `run -d`).
    pub fn start_detached(&self, id: &str) -> Result<()> {
        let st = self.state(id)?;
        if st.status == Status::Running {
            return Ok(());
        }
        let (r, w) = pipe()?;
        let wfd = w.as_raw_fd();
        let mut cmd = std::process::Command::new(&self.monitor);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--run-root")
            .arg(&self.run_root)
            .arg("__monitor")
            .arg(id)
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions
        // (dup2, fcntl, setsid) on fds that are open in the child.
        unsafe {
            cmd.pre_exec(move || {
                if wfd == REPORT_FD {
                    let flags = libc::fcntl(wfd, libc::F_GETFD);
                    libc::fcntl(wfd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                } else if libc::dup2(wfd, REPORT_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::setsid();
                Ok(())
            });
        }
        let _monitor = cmd.spawn().map_err(|e| Error::Monitor {
            id: id.to_owned(),
            why: format!("starting it: {e}"),
        })?;
        drop(w);
        let mut msg = String::new();
        std::fs::File::from(r)
            .read_to_string(&mut msg)
            .map_err(|e| Error::Monitor {
                id: id.to_owned(),
                why: format!("reading its report: {e}"),
            })?;
        parse_report(id, &msg)
    }

    /// The body of `berth __monitor ID`: starts the container, reports on fd 3, then copies its
    /// output into the JSON log until it exits and records the exit.
    pub fn monitor(&self, id: &str) -> Result<i32> {
        // SAFETY: fd 3 was set up by `start_detached` for us; nothing else in this process owns it.
        let report: OwnedFd =
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(REPORT_FD) };
        let fail = |report: OwnedFd, e: Error| -> Error {
            let msg = format!("err {}\n{}", e.exit_code(), e);
            let _ = rustix::io::write(&report, msg.as_bytes());
            e
        };
        let p = match self.load_prepared(id) {
            Ok(p) => p,
            Err(e) => return Err(fail(report, e)),
        };
        let mut log = match LogWriter::open(&self.containers.dir(id).join(format!("{id}-json.log")))
        {
            Ok(l) => l,
            Err(e) => return Err(fail(report, e.into())),
        };
        let null = match dev_null() {
            Ok(n) => n,
            Err(e) => return Err(fail(report, e)),
        };
        let (stdio, out, err, _master) = if p.record.config.tty {
            let pty = match pump::open_pty() {
                Ok(p) => p,
                Err(source) => {
                    return Err(fail(
                        report,
                        Error::Pump {
                            id: id.to_owned(),
                            cause: source,
                        },
                    ));
                }
            };
            let out = match dup(pty.master.as_fd()) {
                Ok(o) => o,
                Err(e) => return Err(fail(report, e)),
            };
            (Stdio::Pty(pty.slave), Some(out), None, Some(pty.master))
        } else {
            let pipes = pipe().and_then(|o| pipe().map(|e| (o, e)));
            let ((or, ow), (er, ew)) = match pipes {
                Ok(x) => x,
                Err(e) => return Err(fail(report, e)),
            };
            (
                Stdio::Fds {
                    stdin: null,
                    stdout: ow,
                    stderr: ew,
                },
                Some(or),
                Some(er),
                None,
            )
        };
        let mut child = match self.launch(&p, stdio, true) {
            Ok(c) => c,
            Err(Error::AlreadyRunning(_)) => {
                // Another `start` won the race: starting a running container is a no-op.
                let _ = rustix::io::write(&report, b"ok\n");
                return Ok(0);
            }
            Err(e) => return Err(fail(report, e)),
        };
        let _ = rustix::io::write(&report, b"ok\n");
        drop(report);
        // From here on the monitor only copies output: shed what the start needed.
        crate::trim::drop_clean_pages();
        let mut pm = Pump {
            out,
            err,
            input: None,
            echo: false,
            log: Some(&mut log),
            signals: None,
            resize: None,
            trim_when_idle: true,
        };
        let r = pm.run(child.pidfd(), &mut |_| {});
        drop(pm);
        r.map_err(|source| Error::Pump {
            id: id.to_owned(),
            cause: source,
        })?;
        self.finish(&p, &mut child, true)
    }
}

fn parse_report(id: &str, msg: &str) -> Result<()> {
    if msg.starts_with("ok") {
        return Ok(());
    }
    if let Some(rest) = msg.strip_prefix("err ") {
        let (code, message) = rest.split_once('\n').unwrap_or((rest, ""));
        return Err(Error::StartFailed {
            id: id.to_owned(),
            code: code.trim().parse().unwrap_or(125),
            message: message.to_owned(),
        });
    }
    Err(Error::Monitor {
        id: id.to_owned(),
        why: "it exited before reporting whether the container started".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_reports_parse() {
        assert!(parse_report("x", "ok\n").is_ok());
        match parse_report(
            "x",
            "err 127\nexec: \"nope\": executable file not found in $PATH",
        ) {
            Err(Error::StartFailed { code, message, .. }) => {
                assert_eq!(code, 127);
                assert!(message.contains("nope"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_report("x", ""), Err(Error::Monitor { .. })));
    }
}
