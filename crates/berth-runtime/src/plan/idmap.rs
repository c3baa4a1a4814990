//! The root overlay of a container in a user namespace, built by the parent before `clone`.
//!
//! Image layers are owned by host ids (root = 0); seen from a user namespace mapping container 0 to
//! host 100000 they would belong to nobody, and copy-up would fail. So each lower directory is
//! cloned as a detached mount and given the container's id mapping (`MOUNT_ATTR_IDMAP`, with a
//! short-lived helper user namespace carrying the same maps), the overlay is assembled from those
//! detached trees by fd (`lowerdir+`), and the container's upper directory is handed to its mapped
//! root. The result is a detached mount the child attaches at `root.path`: it never appears in the
//! host's mount table.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{CWD, OFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, OpenTreeFlags};
use rustix::pipe::PipeFlags;

use super::{IdMaps, OverlayRoot};
use crate::sys::{self, Forked};

/// Why the id-mapped root overlay could not be built.
#[derive(Debug, thiserror::Error)]
pub enum IdmapError {
    /// A step of creating the helper user namespace failed.
    #[error("creating a helper user namespace for the id-mapped rootfs: {action}: {source}")]
    Helper {
        /// What was being done.
        action: String,
        /// The error.
        source: std::io::Error,
    },
    /// A lower layer could not be cloned or id-mapped.
    #[error("id-mapping layer {path:?}: {action}: {source}")]
    Layer {
        /// The layer directory.
        path: std::path::PathBuf,
        /// "cloning", "setting the id map".
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A bind source could not be cloned, or its attributes set.
    #[error("cloning bind source {path:?}: {action}: {source}")]
    Bind {
        /// The source on the host.
        path: std::path::PathBuf,
        /// "cloning", "setting attributes".
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The upper directory could not be handed to the container's root.
    #[error("changing the owner of {path:?} to {uid}:{gid}: {source}")]
    Chown {
        /// The directory.
        path: std::path::PathBuf,
        /// Host uid of the container's root.
        uid: u32,
        /// Host gid of the container's root.
        gid: u32,
        /// The error.
        source: std::io::Error,
    },
    /// The pty slave could not be given to the container's user.
    #[error("changing the owner of the container's pty to {uid:?}:{gid:?}: {source}")]
    Pty {
        /// Host uid of the container's user, if mapped.
        uid: Option<u32>,
        /// Host gid of the container's tty group, if mapped.
        gid: Option<u32>,
        /// The error.
        source: std::io::Error,
    },
    /// Configuring or creating the overlay failed.
    #[error("mounting the id-mapped overlay: {action}: {source}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Overlay {
        /// The step.
        action: &'static str,
        /// The error.
        source: std::io::Error,
        /// The kernel's fs_context message, if any.
        detail: Option<String>,
    },
}

fn os(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// The host id that container id `id` maps to in a `/proc/<pid>/uid_map`-style text.
pub(crate) fn host_id(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let mut f = l.split_whitespace().map(|x| x.parse::<u64>().ok());
        let (c, h, n) = (f.next()??, f.next()??, f.next()??);
        let id = u64::from(id);
        (id >= c && id < c + n)
            .then(|| u32::try_from(h + (id - c)).ok())
            .flatten()
    })
}

/// A user namespace with `maps`, held by an fd: a child is cloned into a new user namespace, its
/// maps written, its namespace opened, then it is released (it exits when the pipe closes, also
/// if we die first).
pub(crate) fn helper_userns(maps: &IdMaps) -> Result<OwnedFd, IdmapError> {
    let helper = |action: &str| {
        let action = action.to_owned();
        move |source: std::io::Error| IdmapError::Helper { action, source }
    };
    let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
        .map_err(|e| helper("creating a pipe")(os(e)))?;
    let (pid, pidfd) = match sys::clone3(libc::CLONE_NEWUSER as u64, None) {
        Ok(Forked::Child) => {
            // Only async-signal-safe work here: close our copy of the write end, wait for EOF.
            drop(w);
            let mut b = [0u8; 1];
            loop {
                match rustix::io::read(&r, &mut b) {
                    Err(rustix::io::Errno::INTR) => continue,
                    _ => sys::exit(0),
                }
            }
        }
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
        Err(e) => {
            return Err(helper("cloning")(std::io::Error::from_raw_os_error(e)));
        }
    };
    drop(r);
    let result = (|| {
        for (name, data) in [
            ("setgroups", "deny"),
            ("uid_map", maps.uid_map.as_str()),
            ("gid_map", maps.gid_map.as_str()),
        ] {
            let path = format!("/proc/{pid}/{name}");
            std::fs::write(&path, data).map_err(helper(&format!("writing {path}")))?;
        }
        let path = format!("/proc/{pid}/ns/user");
        rustix::fs::open(
            path.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| helper(&format!("opening {path}"))(os(e)))
    })();
    drop(w);
    if result.is_err() {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    }
    let _ = sys::waitpid(pid);
    result
}

/// Clones `path` as a detached mount carrying the id mapping of `userns`.
fn idmapped_tree(path: &Path, userns: BorrowedFd<'_>) -> Result<OwnedFd, IdmapError> {
    let layer = |action: &'static str| {
        move |source: std::io::Error| IdmapError::Layer {
            path: path.to_owned(),
            action,
            source,
        }
    };
    let t = rustix::mount::open_tree(
        CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| layer("cloning")(os(e)))?;
    sys::mount_setattr_idmap(t.as_fd(), userns, false)
        .map_err(|e| layer("setting the id map")(std::io::Error::from_raw_os_error(e)))?;
    Ok(t)
}

/// Clones the host tree at `path` as a detached mount with the attributes of a bind mount: made by
/// the parent, since the child in its user namespace may be refused the walk to `path`.
pub(crate) fn clone_bind(
    path: &Path,
    recursive: bool,
    attr_set: u64,
    attr_clr: u64,
    idmap: Option<BorrowedFd<'_>>,
) -> Result<OwnedFd, IdmapError> {
    let err = |action: &'static str| {
        move |source: std::io::Error| IdmapError::Bind {
            path: path.to_owned(),
            action,
            source,
        }
    };
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let t = rustix::mount::open_tree(CWD, path, flags).map_err(|e| err("cloning")(os(e)))?;
    if attr_set | attr_clr != 0 {
        let fl = libc::AT_EMPTY_PATH as u32
            | if recursive {
                libc::AT_RECURSIVE as u32
            } else {
                0
            };
        sys::mount_setattr(t.as_raw_fd(), c"", fl, attr_set, attr_clr, 0)
            .map_err(|e| err("setting attributes")(std::io::Error::from_raw_os_error(e)))?;
    }
    if let Some(ns) = idmap {
        sys::mount_setattr_idmap(t.as_fd(), ns, recursive)
            .map_err(|e| err("setting the id map")(std::io::Error::from_raw_os_error(e)))?;
    }
    Ok(t)
}

/// Gives a directory still owned by host root to the container's root (`uid`:`gid` on the host),
/// so the container's root owns its writes. A directory already handed over is left alone.
fn hand_over(path: &Path, uid: u32, gid: u32) -> Result<(), IdmapError> {
    let err = |source| IdmapError::Chown {
        path: path.to_owned(),
        uid,
        gid,
        source,
    };
    let md = std::fs::symlink_metadata(path).map_err(err)?;
    if md.uid() == 0 && md.gid() == 0 && (uid, gid) != (0, 0) {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(err)?;
    }
    Ok(())
}

/// Gives the pty slave of a user-namespaced container to its process (`uid` in the container) and
/// to the container's `tty` group (gid 5), as a console created inside the container would be;
/// ids the maps do not cover are left alone.
pub(crate) fn hand_over_pty(
    slave: BorrowedFd<'_>,
    maps: &IdMaps,
    uid: u32,
) -> Result<(), IdmapError> {
    let hu = host_id(&maps.uid_map, uid).map(rustix::fs::Uid::from_raw);
    let hg = host_id(&maps.gid_map, 5).map(rustix::fs::Gid::from_raw);
    rustix::fs::fchown(slave, hu, hg).map_err(|e| IdmapError::Pty {
        uid: hu.map(|u| u.as_raw()),
        gid: hg.map(|g| g.as_raw()),
        source: os(e),
    })
}

/// Builds the detached root overlay of `o` with its lowers id-mapped by `userns` (which carries
/// `maps`).
pub(crate) fn overlay(
    o: &OverlayRoot,
    maps: &IdMaps,
    userns: BorrowedFd<'_>,
) -> Result<OwnedFd, IdmapError> {
    let lowers = o
        .lowers
        .iter()
        .map(|l| idmapped_tree(l, userns))
        .collect::<Result<Vec<_>, _>>()?;
    let uid = host_id(&maps.uid_map, 0).unwrap_or(0);
    let gid = host_id(&maps.gid_map, 0).unwrap_or(0);
    hand_over(&o.upper, uid, gid)?;

    let fs = rustix::mount::fsopen(c"overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| {
        IdmapError::Overlay {
            action: "opening an overlay context",
            source: os(e),
            detail: None,
        }
    })?;
    let fail = |action: &'static str| {
        let fs = fs.as_fd();
        move |e: rustix::io::Errno| {
            let mut buf = [0u8; 256];
            let detail = match rustix::io::read(fs, &mut buf[..]) {
                Ok(n) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).trim().to_owned()),
                _ => None,
            };
            IdmapError::Overlay {
                action,
                source: os(e),
                detail,
            }
        }
    };
    rustix::mount::fsconfig_set_string(&fs, c"source", c"overlay")
        .map_err(fail("setting the source"))?;
    for l in &lowers {
        rustix::mount::fsconfig_set_fd(&fs, c"lowerdir+", l)
            .map_err(fail("adding a lower layer"))?;
    }
    rustix::mount::fsconfig_set_string(&fs, c"upperdir", o.upper.as_path())
        .map_err(fail("setting the upper directory"))?;
    rustix::mount::fsconfig_set_string(&fs, c"workdir", o.work.as_path())
        .map_err(fail("setting the work directory"))?;
    rustix::mount::fsconfig_create(&fs).map_err(fail("creating the overlay"))?;
    rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(fail("creating the mount"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_id_follows_the_map() {
        let m = "0 100000 65536\n65536 5 1\n";
        assert_eq!(host_id(m, 0), Some(100_000));
        assert_eq!(host_id(m, 65_535), Some(165_535));
        assert_eq!(host_id(m, 65_536), Some(5));
        assert_eq!(host_id(m, 65_537), None);
        assert_eq!(host_id("", 0), None);
        assert_eq!(host_id("garbage", 0), None);
    }
}
