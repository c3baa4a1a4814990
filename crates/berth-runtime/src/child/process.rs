//! Child side of the user's process, shared by `spawn` and `exec`: every inherited descriptor but the
//! error pipe closed, cwd resolved inside the root, rlimits, umask, groups and ids, capabilities,
//! no_new_privs, seccomp (last), then `execve` along the planned `$PATH` candidates.

use std::ffi::CStr;
use std::os::fd::{AsFd, RawFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::{Fail, at, at_raw};
use crate::plan::ProcessPlan;
use crate::stage::Stage;
use crate::sys;

/// Becomes the user's process. Returns only the failure (success is `execve`).
/// `create_cwd`: a missing working directory is created (inside the root), as Docker does for a
/// container's first process; `exec` refuses a missing one instead.
pub(crate) fn finish(p: &ProcessPlan<'_>, in_userns: bool, errfd: RawFd, create_cwd: bool) -> Fail {
    match prepare(p, in_userns, errfd, create_cwd) {
        Ok(()) => exec(p),
        Err(f) => f,
    }
}

/// Everything but `execve`: afterwards the process holds only fds 0–2 and `errfd`, sits in its
/// working directory, and has its final ids, capabilities, no_new_privs and seccomp filter.
pub(crate) fn prepare(
    p: &ProcessPlan<'_>,
    in_userns: bool,
    errfd: RawFd,
    create_cwd: bool,
) -> Result<(), Fail> {
    // Nothing the container could reach a host object through survives past this point: not a lock
    // of berth's, a cgroup directory, nor a descriptor our own caller leaked to us.
    sys::close_fds_except(&[errfd]).map_err(at_raw(Stage::CloseFds, 0))?;
    enter_cwd(p.cwd.as_c_str(), create_cwd)?;
    for r in &p.rlimits {
        sys::setrlimit(r.resource, r.soft, r.hard).map_err(at_raw(Stage::Rlimit, r.index))?;
    }
    sys::umask(p.umask.unwrap_or(0o022));

    // Bounding set first: dropping needs CAP_SETPCAP, which setuid may take away.
    for cap in 0..=p.caps.last_cap.min(63) {
        if p.caps.bounding & (1 << cap) == 0 {
            sys::capbset_drop(cap).map_err(at_raw(Stage::CapBounding, cap as usize))?;
        }
    }
    // The kernel accepts a filter only under no_new_privs or with CAP_SYS_ADMIN: without
    // no_new_privs, install it now, while the process still holds every capability (as runc does).
    // The calls left before execve (setgroups, setuid, capset, prctl) are allowed by any sane profile.
    if !p.no_new_privs
        && let Some(prog) = p.seccomp
    {
        prog.install().map_err(at(Stage::Seccomp, 0))?;
    }
    sys::set_keepcaps(true).map_err(at_raw(Stage::Caps, 0))?;
    // In a user namespace with setgroups denied, setgroups would fail: skip it when there is
    // nothing to set.
    let groups = if in_userns && p.groups.is_empty() {
        None
    } else {
        Some(&p.groups[..])
    };
    sys::set_ids(groups, p.uid, p.gid).map_err(|(which, e)| {
        let stage = match which {
            0 => Stage::Groups,
            1 => Stage::Gid,
            _ => Stage::Uid,
        };
        Fail::new(stage, 0, e)
    })?;
    sys::capset(p.caps.effective, p.caps.permitted, p.caps.inheritable)
        .map_err(at_raw(Stage::Caps, 0))?;
    sys::set_ambient(p.caps.ambient, p.caps.last_cap).map_err(at_raw(Stage::Ambient, 0))?;
    sys::set_keepcaps(false).map_err(at_raw(Stage::Caps, 0))?;
    if p.no_new_privs {
        rustix::thread::set_no_new_privs(true).map_err(at(Stage::NoNewPrivs, 0))?;
        if let Some(prog) = p.seccomp {
            prog.install().map_err(at(Stage::Seccomp, 0))?;
        }
    }
    Ok(())
}

/// Changes into `cwd` resolved inside the current root: `..`, absolute symlinks and the image's
/// own symlinks stay within it, and magic links (`/proc/self/fd/N`, `/proc/<pid>/cwd`) are refused,
/// so neither `-w`, an image's `WORKDIR` nor `exec -w` can name a directory outside the container.
/// Checked again afterwards through the kernel's own view of the cwd.
fn enter_cwd(cwd: &CStr, create: bool) -> Result<(), Fail> {
    let root = rustix::fs::open(
        c"/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(at(Stage::Chdir, 0))?;
    let dir = match rustix::fs::openat2(
        &root,
        cwd,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Err(rustix::io::Errno::NOENT) if create => {
            let with_nul = cwd.to_bytes_with_nul();
            let skip = with_nul.iter().take_while(|b| **b == b'/').count();
            let rel = CStr::from_bytes_with_nul(&with_nul[skip..])
                .map_err(|_| Fail::new(Stage::Chdir, 0, libc::EINVAL))?;
            super::rootfs::ensure_in_root(root.as_fd(), rel, false)
                .map_err(|(_, e)| Fail::new(Stage::Chdir, 0, e.raw_os_error()))?
        }
        r => r.map_err(at(Stage::Chdir, 0))?,
    };
    rustix::process::fchdir(&dir).map_err(at(Stage::Chdir, 0))?;
    match sys::cwd_inside_root() {
        Ok(true) => Ok(()),
        Ok(false) => Err(Fail::new(Stage::Chdir, 0, libc::EXDEV)),
        Err(e) => Err(Fail::new(Stage::Chdir, 0, e)),
    }
}

/// Tries each candidate like `execvp`: ENOENT/ENOTDIR move on, EACCES is remembered, anything else
/// stops. The record's errno is EACCES if any candidate was refused, else the last error.
pub(crate) fn exec(p: &ProcessPlan<'_>) -> Fail {
    let mut saw_eacces = false;
    let mut last = libc::ENOENT;
    for (i, c) in p.candidates.iter().enumerate() {
        let e = sys::execve(c, &p.argv, &p.envp);
        match e {
            libc::ENOENT | libc::ENOTDIR => last = e,
            libc::EACCES => saw_eacces = true,
            _ => return Fail::new(Stage::Exec, i, e),
        }
    }
    Fail::new(Stage::Exec, 0, if saw_eacces { libc::EACCES } else { last })
}
