//! The thin syscall layer for what `rustix` does not wrap: `clone3`, `mount_setattr`, capability
//! prctls, signal dispositions, `execve`, and the `lo` ioctl. Every function here is async-signal-safe
//! and allocation-free, so the child of `clone` may call it. Errors are raw errno values.

use std::ffi::{CStr, c_char};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A raw errno value.
pub(crate) type Errno = i32;

fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(rc: libc::c_long) -> Result<libc::c_long, Errno> {
    if rc < 0 { Err(errno()) } else { Ok(rc) }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// What `clone3` returned on this side of the fork.
pub(crate) enum Forked {
    /// We are the child.
    Child,
    /// We are the parent: the child's pid and a pidfd for it.
    Parent { pid: i32, pidfd: OwnedFd },
}

/// `CLONE_INTO_CGROUP` (linux/sched.h; not in every libc).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3(flags | CLONE_PIDFD, exit_signal = SIGCHLD)` with fork semantics (no new stack); with
/// `cgroup` (a cgroup v2 directory fd) the child is born in that cgroup (`CLONE_INTO_CGROUP`).
///
/// The caller must be single-threaded, and the child must restrict itself to async-signal-safe work
/// and leave with `_exit`/`execve`.
pub(crate) fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<Forked, Errno> {
    let mut pidfd: RawFd = -1;
    let into = cgroup
        .map(|fd| (CLONE_INTO_CGROUP, fd.as_raw_fd() as u64))
        .unwrap_or((0, 0));
    let args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64 | into.0,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: into.1,
        ..Default::default()
    };
    // SAFETY: clone3 with no stack behaves like fork: the child continues on a copy of this stack.
    // `args` and `pidfd` outlive the call; the struct has the kernel's CLONE_ARGS_SIZE_VER2 layout.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            size_of::<CloneArgs>(),
        )
    };
    match check(rc)? {
        0 => Ok(Forked::Child),
        pid => {
            // SAFETY: the kernel stored a fresh pidfd we now own (CLONE_PIDFD succeeded with the clone).
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Forked::Parent {
                pid: pid as i32,
                pidfd,
            })
        }
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(dirfd, path, flags, {set, clr, propagation})`.
pub(crate) fn mount_setattr(
    dirfd: RawFd,
    path: &CStr,
    flags: u32,
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation,
        userns_fd: 0,
    };
    // SAFETY: path is NUL-terminated, attr is a valid mount_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    };
    check(rc).map(drop)
}

/// `MOUNT_ATTR_IDMAP` (linux/mount.h; not exported by every libc).
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {MOUNT_ATTR_IDMAP, userns_fd})`: gives the detached mount
/// `fd` (and with `recursive` every mount below it) the id mapping of the user namespace `userns`.
pub(crate) fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: the empty path is NUL-terminated, attr is a valid mount_attr of the size passed, and
    // both fds are borrowed for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as u32
                | if recursive {
                    libc::AT_RECURSIVE as u32
                } else {
                    0
                },
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    };
    check(rc).map(drop)
}

/// `setns(fd, nstype)`.
pub(crate) fn setns(fd: BorrowedFd<'_>, nstype: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall on a valid fd.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype) } as libc::c_long).map(drop)
}

/// Drops capability `cap` from the bounding set (EINVAL for caps the kernel lacks is ignored).
pub(crate) fn capbset_drop(cap: u32) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    match check(
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) }
            as libc::c_long,
    ) {
        Err(libc::EINVAL) => Ok(()),
        r => r.map(drop),
    }
}

/// Clears the ambient set, then raises each capability in `mask`.
pub(crate) fn set_ambient(mask: u64, last_cap: u32) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    } as libc::c_long)?;
    for cap in 0..=last_cap.min(63) {
        if mask & (1 << cap) != 0 {
            // SAFETY: prctl with integer arguments only.
            check(unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            } as libc::c_long)?;
        }
    }
    Ok(())
}

/// `PR_SET_KEEPCAPS`.
pub(crate) fn set_keepcaps(on: bool) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    check(
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) } as libc::c_long,
    )
    .map(drop)
}

/// `capset` on the calling thread (version 3, 64-bit masks).
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and the two data words have the layout _LINUX_CAPABILITY_VERSION_3 expects.
    check(unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) })
        .map(drop)
}

/// `setgroups`, `setresgid`, `setresuid` as raw syscalls (this thread only; the child has one).
pub(crate) fn set_ids(groups: Option<&[u32]>, uid: u32, gid: u32) -> Result<(), (u8, Errno)> {
    if let Some(groups) = groups {
        // SAFETY: pointer and length describe a live slice of gid_t.
        check(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })
            .map_err(|e| (0, e))?;
    }
    // SAFETY: integer arguments only.
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map_err(|e| (1, e))?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map_err(|e| (2, e))?;
    Ok(())
}

/// `setrlimit(resource, {soft, hard})`.
pub(crate) fn setrlimit(resource: i32, soft: u64, hard: u64) -> Result<(), Errno> {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: r is a valid rlimit.
    check(unsafe { libc::setrlimit(resource as _, &r) } as libc::c_long).map(drop)
}

/// Restores default dispositions for every catchable signal and unblocks all of them, so the user's
/// process does not inherit the caller's ignored SIGPIPE or blocked signals.
pub(crate) fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL with a zeroed sigaction is always valid; errors for reserved
        // signals are ignored.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    // SAFETY: an empty set built in place, then applied to this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Blocks every signal on this thread (SIGKILL and SIGSTOP cannot be); the mask survives `execve`.
pub(crate) fn block_signals() {
    // SAFETY: a full set built in place, then applied to this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Closes every descriptor from 3 up except those in `keep` (sorted ascending, all ≥ 3). Closed, not
/// marked close-on-exec: a descriptor that is merely close-on-exec is still usable until `execve`, and
/// `/proc/self/fd/N` of a host directory would let the container's working directory (or any path
/// resolved before `execve`) leave the root.
pub(crate) fn close_fds_except(keep: &[RawFd]) -> Result<(), Errno> {
    let close = |first: u32, last: u32| -> Result<(), Errno> {
        if first > last {
            return Ok(());
        }
        // SAFETY: close_range only closes descriptors of this process; the caller keeps no borrowed
        // handle on any of them past this point except those in `keep`.
        check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) }).map(drop)
    };
    let mut next = 3u32;
    for &fd in keep {
        let fd = fd as u32;
        if fd < next {
            continue;
        }
        close(next, fd - 1)?;
        next = fd + 1;
    }
    close(next, u32::MAX)
}

/// `prctl(PR_SET_DUMPABLE, on)`. A non-dumpable process's `/proc/<pid>` entries (exe, fd, mem, …)
/// belong to root of the user namespace it was born in, and only a tracer with `CAP_SYS_PTRACE`
/// there may attach: container root cannot inspect or ptrace berth's own processes.
pub(crate) fn set_dumpable(on: bool) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    check(
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) } as libc::c_long,
    )
    .map(drop)
}

/// Whether the current working directory is reachable from the current root: the kernel's
/// `getcwd` prefixes a directory outside the root with "(unreachable)".
pub(crate) fn cwd_inside_root() -> Result<bool, Errno> {
    let mut buf = [0u8; 4096];
    // SAFETY: the buffer and its length describe stack memory we own.
    match check(unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) }) {
        Ok(_) => Ok(buf[0] == b'/'),
        // A path longer than a page: not ours to judge, so refuse it.
        Err(libc::ENAMETOOLONG) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `clone(CLONE_PARENT | SIGCHLD)`: a fork whose parent is our parent, so the process that started
/// us waits for it. Plain `clone`, not `clone3`: this runs under the container's seccomp filter, and
/// container profiles answer `clone3` with ENOSYS. Returns 0 in the child, the child's pid (in our
/// pid namespace) in the parent.
///
/// The caller must be single-threaded; the child must leave with `_exit`/`execve`.
pub(crate) fn fork_sibling() -> Result<i32, Errno> {
    // SAFETY: clone with no new stack behaves like fork; no pointer arguments are passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    })
    .map(|pid| pid as i32)
}

/// `execve(path, argv, envp)`; returns only on failure.
pub(crate) fn execve(path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into C strings that live as long
    // as the plan (they are built that way in `ProcessPlan::build`).
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

/// Sets `IFF_UP` on `lo` in the current network namespace.
pub(crate) fn loopback_up() -> Result<(), Errno> {
    // SAFETY: socket() with constant arguments.
    let fd = check(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }
            as libc::c_long,
    )?;
    // SAFETY: fd was just returned by socket and is owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into req, which is a valid ifreq naming "lo".
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } as libc::c_long)?;
    // SAFETY: the flags member of the union was just filled by the kernel.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads req, a valid ifreq.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } as libc::c_long)
        .map(drop)
}

/// `write(2)` of the whole buffer (pipes of ≤ PIPE_BUF bytes write atomically).
pub(crate) fn write_all(fd: RawFd, buf: &[u8]) -> Result<(), Errno> {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: the pointer and length describe the live remainder of buf.
        match check(
            unsafe { libc::write(fd, buf[off..].as_ptr().cast(), buf.len() - off) } as libc::c_long,
        ) {
            Ok(n) => off += n as usize,
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Leaves the child immediately, without running destructors or atexit handlers.
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// `umask(mask)`.
pub(crate) fn umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// `dup3`-free stdio setup: moves `fds` onto 0, 1, 2 without clobbering each other, clearing
/// close-on-exec on the results.
pub(crate) fn install_stdio(fds: [RawFd; 3]) -> Result<(), Errno> {
    let mut high = [-1; 3];
    for (h, fd) in high.iter_mut().zip(fds) {
        // SAFETY: F_DUPFD_CLOEXEC on an fd the caller keeps open.
        *h = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) } as libc::c_long)? as RawFd;
    }
    for (target, h) in high.into_iter().enumerate() {
        // SAFETY: dup2 onto 0..2; the source is a valid fd from above.
        check(unsafe { libc::dup2(h, target as RawFd) } as libc::c_long)?;
        // SAFETY: closing our own temporary duplicate.
        unsafe { libc::close(h) };
    }
    Ok(())
}

/// `kill(pid, sig)` through a pidfd, so a recycled pid is never signalled.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> Result<(), Errno> {
    // SAFETY: integer and fd arguments; a NULL siginfo is allowed.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// Blocks until `pid` exits and returns its raw wait status (EINTR retried).
pub(crate) fn waitpid(pid: i32) -> Result<i32, Errno> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-pointer.
        match check(unsafe { libc::waitpid(pid, &mut status, 0) } as libc::c_long) {
            Ok(_) => return Ok(status),
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `unshare(CLONE_NEWCGROUP)`: a cgroup namespace rooted at the cgroup we were just moved into.
pub(crate) fn unshare_cgroup_ns() -> Result<(), Errno> {
    // SAFETY: only the cgroup namespace changes; no memory or fd table is unshared.
    check(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } as libc::c_long).map(drop)
}

/// The calling process's hard limit for `resource` (unlimited if it cannot be read).
pub(crate) fn hard_limit(resource: i32) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; an invalid resource only returns EINVAL.
    let rc = unsafe { libc::getrlimit(resource as _, &mut r) };
    if rc == 0 { r.rlim_max } else { u64::MAX }
}
