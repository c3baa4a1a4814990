//! The code that runs in the cloned child: it walks a [`Plan`](crate::plan::Plan) issuing syscalls,
//! and on the first failure writes a fixed-size [`Record`] (stage, errno, object index, kernel message)
//! to the close-on-exec error pipe and exits. A successful `execve` closes the pipe: the parent reads EOF.

pub(crate) mod process;
pub(crate) mod rootfs;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use crate::cgjoin::Join;
use crate::plan::Plan;
use crate::stage::Stage;
use crate::sys::{self, Errno};

pub(crate) const MSG_LEN: usize = 116;

/// The child's failure report: fixed size, written with one `write` (≤ PIPE_BUF, so atomic).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Record {
    pub stage: u32,
    pub errno: i32,
    pub index: u32,
    pub msg: [u8; MSG_LEN],
}

/// Size of a [`Record`] on the pipe.
pub(crate) const RECORD_LEN: usize = size_of::<Record>();

impl Record {
    pub(crate) fn to_bytes(self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[0..4].copy_from_slice(&self.stage.to_ne_bytes());
        out[4..8].copy_from_slice(&self.errno.to_ne_bytes());
        out[8..12].copy_from_slice(&self.index.to_ne_bytes());
        out[12..].copy_from_slice(&self.msg);
        out
    }

    pub(crate) fn from_bytes(b: &[u8; RECORD_LEN]) -> Record {
        let u = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        let mut msg = [0u8; MSG_LEN];
        msg.copy_from_slice(&b[12..]);
        Record {
            stage: u32::from_ne_bytes(u(0)),
            errno: i32::from_ne_bytes(u(4)),
            index: u32::from_ne_bytes(u(8)),
            msg,
        }
    }

    pub(crate) fn stage(&self) -> Option<Stage> {
        Stage::from_u32(self.stage)
    }

    /// The kernel's fs_context message, if one was captured.
    pub(crate) fn message(&self) -> Option<String> {
        let end = self.msg.iter().position(|b| *b == 0).unwrap_or(MSG_LEN);
        (end > 0).then(|| String::from_utf8_lossy(&self.msg[..end]).into_owned())
    }
}

/// A failure inside the child.
#[derive(Clone, Copy)]
pub(crate) struct Fail(pub Record);

impl Fail {
    pub(crate) fn new(stage: Stage, index: usize, errno: Errno) -> Fail {
        Fail(Record {
            stage: stage as u32,
            errno,
            index: index as u32,
            msg: [0; MSG_LEN],
        })
    }

    pub(crate) fn with_msg(mut self, msg: &[u8]) -> Fail {
        let n = msg.len().min(MSG_LEN - 1);
        self.0.msg[..n].copy_from_slice(&msg[..n]);
        self
    }
}

/// Maps a rustix error into a [`Fail`] at `stage`/`index`.
pub(crate) fn at(stage: Stage, index: usize) -> impl Fn(rustix::io::Errno) -> Fail {
    move |e| Fail::new(stage, index, e.raw_os_error())
}

/// Maps a raw errno into a [`Fail`] at `stage`/`index`.
pub(crate) fn at_raw(stage: Stage, index: usize) -> impl Fn(Errno) -> Fail {
    move |e| Fail::new(stage, index, e)
}

/// Writes the failure to the error pipe and exits. Never returns.
pub(crate) fn die(errfd: RawFd, f: Fail) -> ! {
    let _ = sys::write_all(errfd, &f.0.to_bytes());
    sys::exit(125)
}

/// The child's view of its stdio.
pub(crate) enum ChildStdio<'a> {
    Inherit,
    Fds([BorrowedFd<'a>; 3]),
    Pty(BorrowedFd<'a>),
}

impl ChildStdio<'_> {
    /// The descriptors that become 0–2 (kept open until they are installed).
    pub(crate) fn raw_fds(&self) -> Vec<RawFd> {
        match self {
            ChildStdio::Inherit => Vec::new(),
            ChildStdio::Fds(fds) => fds.iter().map(|f| f.as_raw_fd()).collect(),
            ChildStdio::Pty(s) => vec![s.as_raw_fd()],
        }
    }
}

/// Everything `init` needs besides the plan.
pub(crate) struct InitArgs<'a> {
    pub errfd: BorrowedFd<'a>,
    pub sync: Option<BorrowedFd<'a>>,
    pub cgroup: Option<&'a Join>,
    pub stdio: ChildStdio<'a>,
    /// The start FIFO (held read-write) for `create`: block on it before `execve`.
    pub gate: Option<BorrowedFd<'a>>,
    /// For `spawn_attached`: block on this pipe before `execve` until the parent has attached the
    /// network (one byte), so the parent's netlink work overlaps with this setup.
    pub network: Option<BorrowedFd<'a>>,
    /// Detached mount of the pty slave for `/dev/console`.
    pub console: Option<BorrowedFd<'a>>,
    /// Every descriptor above, sorted: the child closes all others at birth.
    pub keep: &'a [RawFd],
}

/// The container's first process: set everything up and `execve`. Never returns.
pub(crate) fn init(plan: &Plan<'_>, args: &InitArgs<'_>) -> ! {
    let errfd = args.errfd.as_raw_fd();
    let f = match birth(args.keep)
        .and_then(|()| setup(plan, args))
        .and_then(|()| wait_network(args.network))
        .and_then(|()| wait_gate(errfd, args.gate))
    {
        Ok(()) => {
            if plan.signals_blocked {
                sys::block_signals();
            }
            process::finish(&plan.process, plan.userns.is_some(), errfd, true)
        }
        Err(f) => f,
    };
    die(errfd, f)
}

/// The first thing every process berth starts for a container does: become non-dumpable (no
/// `/proc/<pid>/exe`, `fd/` or ptrace for the container until `execve` of the user's program resets
/// it), and close every descriptor it inherited but does not need (a host directory fd is a way out
/// of the root for anything resolved before `execve`; close-on-exec is too late).
pub(crate) fn birth(keep: &[RawFd]) -> Result<(), Fail> {
    sys::set_dumpable(false).map_err(at_raw(Stage::Dumpable, 0))?;
    sys::close_fds_except(keep).map_err(at_raw(Stage::CloseFds, 0))
}

/// For `create`: report "ready" (a record with stage 0), then block until `start` writes a byte
/// into the start FIFO (we hold it open read-write, so the read waits for data, not for a writer).
fn wait_gate(errfd: RawFd, gate: Option<BorrowedFd<'_>>) -> Result<(), Fail> {
    let Some(gate) = gate else { return Ok(()) };
    let ready = Record {
        stage: READY,
        errno: 0,
        index: 0,
        msg: [0; MSG_LEN],
    };
    sys::write_all(errfd, &ready.to_bytes()).map_err(at_raw(Stage::Gate, 0))?;
    wait_byte(gate, Stage::Gate)
}

/// Waits for the parent's byte that says the network is attached (EOF: it failed, and kills us).
fn wait_network(pipe: Option<BorrowedFd<'_>>) -> Result<(), Fail> {
    match pipe {
        Some(p) => wait_byte(p, Stage::Network),
        None => Ok(()),
    }
}

/// Blocks until one byte arrives on `fd`; EOF or an error fails `stage`.
fn wait_byte(fd: BorrowedFd<'_>, stage: Stage) -> Result<(), Fail> {
    let mut b = [0u8; 1];
    loop {
        match rustix::io::read(fd, &mut b) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(Fail::new(stage, 0, libc::EPIPE)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Fail::new(stage, 0, e.raw_os_error())),
        }
    }
}

/// The stage value of the "setup done, waiting for start" record.
pub(crate) const READY: u32 = 0;

/// The stage value of `exec`'s "forked the process into the pid namespace" record; its index is
/// that process's pid.
pub(crate) const FORKED: u32 = 0x8000_0001;

fn setup(plan: &Plan<'_>, args: &InitArgs<'_>) -> Result<(), Fail> {
    // First, while our ids are still the host's: a non-dumpable process's /proc/self files belong
    // to host root, which a user namespace's root cannot write.
    if let Some(v) = &plan.process.oom_score_adj {
        write_file(c"/proc/self/oom_score_adj", v.to_bytes())
            .map_err(at_raw(Stage::OomScore, 0))?;
    }
    let root_dir = rootfs::open_root(plan)?;
    if let Some(sync) = args.sync {
        // The parent writes our uid/gid maps, then one byte (or closes the pipe on failure).
        wait_byte(sync, Stage::UsernsSync)?;
        // Become the namespace's root (a mapped uid): files created in filesystems owned by the
        // new user namespace need a mapped fsuid, and our host uid 0 is not mapped.
        sys::set_ids(None, 0, 0).map_err(|(_, e)| Fail::new(Stage::UsernsSync, 0, e))?;
    }
    for (i, j) in plan.join.iter().enumerate() {
        sys::setns(j.fd.as_fd(), j.nstype).map_err(at_raw(Stage::Join, i))?;
    }
    if let Some(cg) = args.cgroup {
        cg.join_self().map_err(at(Stage::CgroupJoin, 0))?;
    }
    if plan.unshare_cgroup {
        sys::unshare_cgroup_ns().map_err(at_raw(Stage::UnshareCgroup, 0))?;
    }
    sys::umask(0);
    sys::reset_signals();
    if plan.die_with_parent {
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
            .map_err(at(Stage::DeathSignal, 0))?;
    }
    setup_stdio(&args.stdio)?;
    rootfs::setup(plan, args.console, root_dir.as_ref().map(|d| d.as_fd()))?;
    if let Some(h) = &plan.hostname {
        rustix::system::sethostname(h.to_bytes()).map_err(at(Stage::Hostname, 0))?;
    }
    if let Some(d) = &plan.domainname {
        rustix::system::setdomainname(d.to_bytes()).map_err(at(Stage::Domainname, 0))?;
    }
    for (i, (path, value)) in plan.sysctls.iter().enumerate() {
        write_file(path, value.to_bytes()).map_err(at_raw(Stage::Sysctl, i))?;
    }
    rootfs::protect(plan)?;
    if plan.loopback {
        sys::loopback_up().map_err(at_raw(Stage::Loopback, 0))?;
    }
    Ok(())
}

/// Opens `path` for writing and writes `data` (sysctls, /proc/self files).
pub(crate) fn write_file(path: &std::ffi::CStr, data: &[u8]) -> Result<(), Errno> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| e.raw_os_error())?;
    sys::write_all(fd.as_raw_fd(), data)
}

/// Stdio onto 0/1/2, without a new session (`exec` installs it before forking the process that
/// starts the session: see [`session`]).
pub(crate) fn install_stdio(stdio: &ChildStdio<'_>) -> Result<(), Fail> {
    let fds = match stdio {
        ChildStdio::Inherit => return Ok(()),
        ChildStdio::Fds(fds) => [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()],
        ChildStdio::Pty(s) => [s.as_raw_fd(); 3],
    };
    sys::install_stdio(fds).map_err(at_raw(Stage::Stdio, 0))
}

/// A new session, and for a pty (already installed on 0–2) the controlling terminal.
pub(crate) fn session(stdio: &ChildStdio<'_>) -> Result<(), Fail> {
    rustix::process::setsid().map_err(at(Stage::Setsid, 0))?;
    if let ChildStdio::Pty(_) = stdio {
        rustix::process::ioctl_tiocsctty(rustix::stdio::stdin()).map_err(at(Stage::Ctty, 0))?;
    }
    Ok(())
}

/// New session; stdio onto 0/1/2; for a pty also the controlling terminal.
pub(crate) fn setup_stdio(stdio: &ChildStdio<'_>) -> Result<(), Fail> {
    match stdio {
        ChildStdio::Inherit => {
            rustix::process::setsid().map_err(at(Stage::Setsid, 0))?;
        }
        ChildStdio::Fds(fds) => {
            rustix::process::setsid().map_err(at(Stage::Setsid, 0))?;
            sys::install_stdio([fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()])
                .map_err(at_raw(Stage::Stdio, 0))?;
        }
        ChildStdio::Pty(slave) => {
            rustix::process::setsid().map_err(at(Stage::Setsid, 0))?;
            rustix::process::ioctl_tiocsctty(slave).map_err(at(Stage::Ctty, 0))?;
            let s = slave.as_raw_fd();
            sys::install_stdio([s, s, s]).map_err(at_raw(Stage::Stdio, 0))?;
        }
    }
    Ok(())
}
