//! How a child moves itself into its cgroup.
//!
//! On cgroup v1 the child writes "0" to each hierarchy's `tasks` file rather than `cgroup.procs`:
//! moving only the calling thread (the child is single-threaded there) lets the kernel skip the
//! global `cgroup_threadgroup_rwsem` write lock, whose RCU grace period costs 7–20 ms per start on
//! this machine (measured: ~0.16 ms for the `tasks` writes against ~7.5 ms median for `cgroup.procs`
//! with a cold RCU-sync state, as in a fresh `berth run`). On v2 the contract's [`JoinHandle`] is used.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::cgroups::{Cgroup, JoinHandle};
use crate::error::Error;

/// Pre-opened files the child writes "0" into; allocation-free to use.
pub(crate) enum Join {
    /// v1: one `tasks` file per hierarchy.
    Tasks(Vec<OwnedFd>),
    /// v2 (or anything else): the cgroups module's handle.
    Handle(JoinHandle),
}

impl Join {
    /// Opens what the child needs to join `cg` (`path` names it in errors).
    pub(crate) fn open(cg: &Cgroup, path: &str) -> Result<Join, Error> {
        match cg {
            Cgroup::V1(_) => {
                let mut fds = Vec::new();
                for d in cg.dirs() {
                    let file = d.join("tasks");
                    let fd = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&file)
                        .map_err(|source| Error::Sys {
                            action: format!("opening {}", file.display()),
                            source,
                        })?;
                    fds.push(OwnedFd::from(fd));
                }
                Ok(Join::Tasks(fds))
            }
            _ => cg
                .join_handle()
                .map(Join::Handle)
                .map_err(|source| Error::Cgroup {
                    action: "opening",
                    path: path.to_owned(),
                    source,
                }),
        }
    }

    /// Moves the calling (single-threaded) process into the cgroup. Async-signal-safe.
    pub(crate) fn join_self(&self) -> Result<(), rustix::io::Errno> {
        match self {
            Join::Tasks(fds) => {
                for fd in fds {
                    rustix::io::write(fd, b"0")?;
                }
                Ok(())
            }
            Join::Handle(h) => h.join_self(),
        }
    }

    /// The descriptors the child needs to join (kept when it closes everything else).
    pub(crate) fn raw_fds(&self) -> Vec<RawFd> {
        match self {
            Join::Tasks(fds) => fds.iter().map(|f| f.as_raw_fd()).collect(),
            Join::Handle(h) => h.raw_fds().collect(),
        }
    }
}
