//! `spawn`: one `clone3` into all new namespaces, setup in that child, `execve`. The parent waits only
//! for the error pipe to close (success) or to deliver the child's failure record.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Spec;
use rustix::fs::OFlags;
use rustix::mount::OpenTreeFlags;
use rustix::pipe::PipeFlags;

use crate::cgjoin::Join;
use crate::cgroups::Cgroup;
use crate::child::{self, ChildStdio, InitArgs, READY};
use crate::error::Error;
use crate::handle::{Child, read_report, record_error};
use crate::plan::{IdMaps, OverlayRoot, Plan};
use crate::seccomp::Program;
use crate::sys::{self, Forked};

/// Where the container's stdin/stdout/stderr come from.
#[derive(Debug)]
pub enum Stdio {
    /// The caller's own 0, 1 and 2.
    Inherit,
    /// Three descriptors (pipes, files, sockets).
    Fds {
        /// Becomes fd 0.
        stdin: OwnedFd,
        /// Becomes fd 1.
        stdout: OwnedFd,
        /// Becomes fd 2.
        stderr: OwnedFd,
    },
    /// A pty slave: fds 0–2 and the controlling terminal (and `/dev/console`).
    Pty(OwnedFd),
}

impl Stdio {
    pub(crate) fn for_child(&self) -> ChildStdio<'_> {
        match self {
            Stdio::Inherit => ChildStdio::Inherit,
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => ChildStdio::Fds([stdin.as_fd(), stdout.as_fd(), stderr.as_fd()]),
            Stdio::Pty(s) => ChildStdio::Pty(s.as_fd()),
        }
    }
}

/// What `spawn` needs.
pub struct LaunchConfig<'a> {
    /// Container id (names the default cgroup `/berth/<id>`).
    pub id: &'a str,
    /// The OCI runtime spec; `root.path` is an absolute directory.
    pub spec: &'a Spec,
    /// If set, mounted at `root.path` in the child's mount namespace only.
    pub overlay: Option<OverlayRoot>,
    /// The container's stdio.
    pub stdio: Stdio,
    /// A precompiled seccomp filter; if `None` and the spec has a profile, it is compiled here.
    pub seccomp: Option<&'a Program>,
    /// `PR_SET_PDEATHSIG(SIGKILL)` in the child.
    pub die_with_parent: bool,
    /// The process starts with every signal blocked: for an init that takes its signals with
    /// `sigwait`. A signal sent before it is ready then waits for it instead of being dropped, as
    /// the kernel drops a signal to a namespace's pid 1 that has no handler for it.
    pub signals_blocked: bool,
}

/// The cgroup path a container uses: `linux.cgroupsPath`, or `/berth/<id>`.
pub fn cgroups_path(spec: &Spec, id: &str) -> String {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("/berth/{id}"))
}

/// Starts the container's first process; returns once it has exec'd (or failed to).
pub fn spawn(cfg: LaunchConfig<'_>) -> Result<Child, Error> {
    launch(cfg, None, None, None)
}

/// What [`spawn_attached`] calls between the clone and the `execve`: given the new process's pid
/// (its namespaces exist; `/proc/PID/ns/net` is the network namespace to configure).
pub type AttachHook<'h> =
    dyn FnMut(i32) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + 'h;

/// Like [`spawn`], and calls `attach` with the new process's pid once it is cloned, while the process
/// sets itself up; the process `execve`s only after `attach` returns. An error from `attach` kills
/// the process and is returned as [`Error::Attach`]. This is where a caller plugs a network in: the
/// container's namespace exists, nothing of the user's program has run yet.
pub fn spawn_attached(cfg: LaunchConfig<'_>, attach: &mut AttachHook<'_>) -> Result<Child, Error> {
    launch(cfg, None, None, Some(attach))
}

/// Like [`spawn`], into a cgroup the caller created (its path and resources are the caller's; the
/// spec's are ignored). On failure the cgroup is destroyed, as `spawn` does with its own.
pub fn spawn_in(cfg: LaunchConfig<'_>, cgroup: Cgroup) -> Result<Child, Error> {
    launch(cfg, None, Some(cgroup), None)
}

/// runc's `create`: sets the container up completely, but its process waits before `execve` until
/// [`start`] writes to `start_fifo` (a FIFO created here; it must not exist). Returns once setup is done.
pub fn create(cfg: LaunchConfig<'_>, start_fifo: &Path) -> Result<Child, Error> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        start_fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .map_err(|e| {
        Error::sys(
            format!("creating the start fifo {}", start_fifo.display()),
            e.raw_os_error(),
        )
    })?;
    let gate = rustix::fs::open(
        start_fifo,
        OFlags::RDWR | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| {
        Error::sys(
            format!("opening the start fifo {}", start_fifo.display()),
            e.raw_os_error(),
        )
    });
    let r = gate.and_then(|g| launch(cfg, Some(g.as_fd()), None, None));
    if r.is_err() {
        let _ = std::fs::remove_file(start_fifo);
    }
    r
}

/// runc's `start`: lets a created container's process `execve`, and removes the FIFO.
pub fn start(start_fifo: &Path) -> Result<(), Error> {
    let fd = rustix::fs::open(
        start_fifo,
        OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| match e {
        // No reader: the created process is gone.
        rustix::io::Errno::NXIO => Error::sys(
            "starting the container: its process has exited",
            e.raw_os_error(),
        ),
        _ => Error::sys(
            format!("opening the start fifo {}", start_fifo.display()),
            e.raw_os_error(),
        ),
    })?;
    rustix::io::write(&fd, b"1")
        .map_err(|e| Error::sys("writing the start fifo", e.raw_os_error()))?;
    std::fs::remove_file(start_fifo).map_err(|source| Error::Sys {
        action: format!("removing {}", start_fifo.display()),
        source,
    })
}

fn launch(
    cfg: LaunchConfig<'_>,
    gate: Option<BorrowedFd<'_>>,
    cgroup: Option<Cgroup>,
    attach: Option<&mut AttachHook<'_>>,
) -> Result<Child, Error> {
    let compiled;
    let seccomp = match (
        cfg.seccomp,
        cfg.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()),
    ) {
        (Some(p), _) => Some(p),
        (None, Some(profile)) => {
            compiled = Program::compile(profile).map_err(Error::Seccomp)?;
            Some(&compiled)
        }
        (None, None) => None,
    };
    let terminal = matches!(cfg.stdio, Stdio::Pty(_));
    if let (Stdio::Pty(slave), Some(size)) = (
        &cfg.stdio,
        cfg.spec.process().as_ref().and_then(|p| p.console_size()),
    ) {
        let (rows, cols) = (
            size.height().min(u16::MAX as u64) as u16,
            size.width().min(u16::MAX as u64) as u16,
        );
        crate::pty::set_size(slave.as_fd(), rows, cols)?;
    }
    let mut plan = Plan::build(
        cfg.spec,
        cfg.overlay.as_ref(),
        cfg.die_with_parent,
        terminal,
        seccomp,
    )?;
    plan.signals_blocked = cfg.signals_blocked;

    let cgroup = match cgroup {
        Some(cg) => cg,
        None => {
            let path = cgroups_path(cfg.spec, cfg.id);
            let resources = cfg
                .spec
                .linux()
                .as_ref()
                .and_then(|l| l.resources().as_ref());
            Cgroup::create(&path, resources).map_err(|source| Error::Cgroup {
                action: "creating",
                path: path.clone(),
                source,
            })?
        }
    };
    let path = cgroup.path().to_owned();
    match start_child(&plan, &cgroup, &path, &cfg.stdio, gate, attach) {
        Ok((pid, pidfd, mnt_ns)) => Ok(Child::new(pid, pidfd, cgroup, mnt_ns)),
        Err(e) => {
            let _ = cgroup.destroy();
            Err(e)
        }
    }
}

/// How a new child enters `cgroup`: on v2 it is born there (`CLONE_INTO_CGROUP` with the returned
/// directory fd), nothing to write; on v1 it writes its own `tasks` files through the returned [`Join`].
pub(crate) fn cgroup_placement(
    cgroup: &Cgroup,
    path: &str,
) -> Result<(Option<Join>, Option<OwnedFd>), Error> {
    match cgroup {
        Cgroup::V2(_) => {
            let dir = cgroup
                .dirs()
                .first()
                .map(|d| d.to_path_buf())
                .unwrap_or_default();
            let fd = rustix::fs::open(
                &dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| {
                Error::sys(
                    format!("opening cgroup {}", dir.display()),
                    e.raw_os_error(),
                )
            })?;
            Ok((None, Some(fd)))
        }
        _ => Ok((Some(Join::open(cgroup, path)?), None)),
    }
}

fn start_child(
    plan: &Plan<'_>,
    cgroup: &Cgroup,
    path: &str,
    stdio: &Stdio,
    gate: Option<BorrowedFd<'_>>,
    attach: Option<&mut AttachHook<'_>>,
) -> Result<(i32, OwnedFd, Option<OwnedFd>), Error> {
    let (join, into) = cgroup_placement(cgroup, path)?;
    let (err_r, err_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("creating the error pipe", e.raw_os_error()))?;
    let sync = match plan.userns {
        Some(_) => Some(
            rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
                .map_err(|e| Error::sys("creating the sync pipe", e.raw_os_error()))?,
        ),
        None => None,
    };
    let network = match attach {
        Some(_) => Some(
            rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
                .map_err(|e| Error::sys("creating the network pipe", e.raw_os_error()))?,
        ),
        None => None,
    };
    if let (Some(maps), Stdio::Pty(slave)) = (&plan.userns, stdio) {
        crate::plan::idmap::hand_over_pty(slave.as_fd(), maps, plan.process.uid)
            .map_err(crate::plan::PlanError::from)?;
    }
    // A detached bind of the pty slave, made here: the child's mount namespace cannot clone a mount
    // that belongs to ours.
    let console = match (plan.console, stdio) {
        (true, Stdio::Pty(slave)) => Some(
            rustix::mount::open_tree(
                slave,
                c"",
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_EMPTY_PATH,
            )
            .map_err(|e| Error::sys("cloning the pty slave for /dev/console", e.raw_os_error()))?,
        ),
        _ => None,
    };
    let child_stdio = stdio.for_child();
    let mut keep = vec![err_w.as_raw_fd()];
    keep.extend(sync.as_ref().map(|(r, _)| r.as_raw_fd()));
    keep.extend(network.as_ref().map(|(r, _)| r.as_raw_fd()));
    keep.extend(join.iter().flat_map(|j| j.raw_fds()));
    keep.extend(child_stdio.raw_fds());
    keep.extend(console.as_ref().map(|c| c.as_raw_fd()));
    keep.extend(gate.map(|g| g.as_raw_fd()));
    plan.held_fds(&mut keep);
    keep.sort_unstable();
    let args = InitArgs {
        errfd: err_w.as_fd(),
        sync: sync.as_ref().map(|(r, _)| r.as_fd()),
        cgroup: join.as_ref(),
        stdio: child_stdio,
        console: console.as_ref().map(|c| c.as_fd()),
        gate,
        network: network.as_ref().map(|(r, _)| r.as_fd()),
        keep: &keep,
    };
    let (pid, pidfd) = match sys::clone3(plan.clone_flags, into.as_ref().map(|f| f.as_fd())) {
        Ok(Forked::Child) => child::init(plan, &args),
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
        Err(e) => return Err(Error::sys("cloning the container process", e)),
    };
    // Taken now, while the process surely exists: a short-lived one may be gone by the time its
    // exec is reported.
    let mnt_ns = if plan.clone_flags & libc::CLONE_NEWNS as u64 != 0 {
        hold_mount_namespace(pid)
    } else {
        None
    };
    drop(err_w);
    let fail = |e: Error| {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = sys::waitpid(pid);
        e
    };
    if let (Some(maps), Some((sync_r, sync_w))) = (&plan.userns, sync) {
        drop(sync_r);
        write_id_maps(pid, maps).map_err(fail)?;
        rustix::io::write(&sync_w, &[1]).map_err(|e| {
            fail(Error::sys(
                "releasing the container process",
                e.raw_os_error(),
            ))
        })?;
    }
    if let (Some(attach), Some((net_r, net_w))) = (attach, network) {
        drop(net_r);
        // The child sets itself up meanwhile; it waits for our byte only before `execve`.
        if let Err(e) = attach(pid) {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = sys::waitpid(pid);
            // A child that failed its own setup meanwhile took its namespace with it: its report is
            // the cause, not our failure to configure a namespace that was gone.
            if let Ok(Some(rec)) = read_report(&err_r)
                && rec.stage != READY
            {
                return Err(record_error(&rec, &plan.process.command, |s, i| {
                    plan.describe(s, i)
                }));
            }
            return Err(Error::Attach(e));
        }
        rustix::io::write(&net_w, &[1]).map_err(|e| {
            fail(Error::sys(
                "releasing the container process after attaching its network",
                e.raw_os_error(),
            ))
        })?;
    }
    match read_report(&err_r) {
        // EOF: the process exec'd — or, when it should have reported ready first, it died.
        Ok(None) if gate.is_some() => {
            let code = sys::waitpid(pid)
                .map(|raw| crate::handle::ExitStatus::from_raw(raw).docker_code())
                .unwrap_or(-1);
            Err(Error::sys(
                format!("container process died during setup (exit code {code})"),
                libc::ECHILD,
            ))
        }
        Ok(None) => Ok((pid, pidfd, mnt_ns)),
        Ok(Some(rec)) if rec.stage == READY && gate.is_some() => Ok((pid, pidfd, mnt_ns)),
        Ok(Some(rec)) => {
            let _ = sys::waitpid(pid);
            Err(record_error(&rec, &plan.process.command, |s, i| {
                plan.describe(s, i)
            }))
        }
        Err(e) => Err(fail(e)),
    }
}

/// A descriptor of `pid`'s mount namespace (None if it cannot be opened: then the namespace simply
/// goes away with the process, as without the hold). `pid` is our unreaped child, so the number
/// cannot name another process.
fn hold_mount_namespace(pid: i32) -> Option<OwnedFd> {
    rustix::fs::open(
        format!("/proc/{pid}/ns/mnt"),
        OFlags::RDONLY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

/// Writes `uid_map` and `gid_map` for a child in a new user namespace. Only an unprivileged writer
/// denies `setgroups` first (the kernel requires it to map gids); root keeps it allowed, as runc
/// does, so a non-root container user can still get its supplementary groups.
fn write_id_maps(pid: i32, maps: &IdMaps) -> Result<(), Error> {
    let write = |name: &str, data: &str| -> Result<(), Error> {
        let path = format!("/proc/{pid}/{name}");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(data.as_bytes()))
            .map_err(|source| Error::Sys {
                action: format!("writing {path}"),
                source,
            })
    };
    if !rustix::process::geteuid().is_root() {
        write("setgroups", "deny")?;
    }
    write("uid_map", &maps.uid_map)?;
    write("gid_map", &maps.gid_map)
}

/// Kills whatever is left in a container's cgroup and removes the cgroup. `cgroups_path` empty means
/// the default `/berth/<id>`.
pub fn destroy(id: &str, cgroups_path: &str) -> Result<(), Error> {
    let path = if cgroups_path.is_empty() {
        format!("/berth/{id}")
    } else {
        cgroups_path.to_owned()
    };
    let cg = Cgroup::open(&path).map_err(|source| Error::Cgroup {
        action: "opening",
        path: path.clone(),
        source,
    })?;
    cg.kill_all(libc::SIGKILL).map_err(|source| Error::Cgroup {
        action: "killing the processes of",
        path: path.clone(),
        source,
    })?;
    cg.destroy().map_err(|source| Error::Cgroup {
        action: "removing",
        path,
        source,
    })
}

/// Builds (and discards) the plan for `spec`: validates it without starting anything, and lets
/// benchmarks time planning alone.
pub fn plan_only(spec: &Spec) -> Result<(), Error> {
    Plan::build(spec, None, false, false, None)?;
    Ok(())
}
