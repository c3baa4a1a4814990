//! Child side of the user's process, shared by `spawn` and `exec`: cwd, rlimits, umask, groups and
//! ids, capabilities, no_new_privs, seccomp (last), then `execve` along the planned `$PATH` candidates.

use super::{Fail, Stage, at, at_raw};
use crate::plan::ProcessPlan;
use crate::sys;

/// Becomes the user's process. Returns only the failure (success is `execve`).
pub(crate) fn finish(p: &ProcessPlan<'_>, in_userns: bool) -> Fail {
    match prepare(p, in_userns) {
        Ok(()) => exec(p),
        Err(f) => f,
    }
}

fn prepare(p: &ProcessPlan<'_>, in_userns: bool) -> Result<(), Fail> {
    rustix::process::chdir(p.cwd.as_c_str()).map_err(at(Stage::Chdir, 0))?;
    for r in &p.rlimits {
        sys::setrlimit(r.resource, r.soft, r.hard).map_err(at_raw(Stage::Rlimit, r.index))?;
    }
    sys::umask(p.umask.unwrap_or(0o022));
    // Any fd the caller leaked without O_CLOEXEC must not reach the container.
    sys::cloexec_from(3).map_err(at_raw(Stage::Stdio, 0))?;

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

/// Tries each candidate like `execvp`: ENOENT/ENOTDIR move on, EACCES is remembered, anything else
/// stops. The record's errno is EACCES if any candidate was refused, else the last error.
fn exec(p: &ProcessPlan<'_>) -> Fail {
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
