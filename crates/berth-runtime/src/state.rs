//! The state directory of runc's command line: under a root, one directory per container holding
//! `state.json` (a [`Record`]) and, between create and start, `exec.fifo`. The `berth-runtime`
//! binary keeps its containers here; the engine has its own state and does not use this.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use berth_fs::{Durability, FsError};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::sys;

/// Errors of the state directory and of acting on a recorded container.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The id is empty, holds a `/` or starts with a `.` (it names a directory under the root).
    #[error("invalid container id {0:?}")]
    InvalidId(String),
    /// A container with this id is already recorded.
    #[error("container {0} already exists")]
    Exists(String),
    /// No container with this id is recorded.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// The container's process is gone (or never ran).
    #[error("container {0} is not running")]
    NotRunning(String),
    /// Creating the root or a container's directory failed.
    #[error("creating {}: {source}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Reading a state file or the root failed.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A state file is not a [`Record`].
    #[error("parsing {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// A record cannot be written as JSON (its bundle path is not UTF-8).
    #[error("encoding the state of {id}: {source}")]
    Encode {
        /// The container.
        id: String,
        /// The error.
        source: serde_json::Error,
    },
    /// Writing a state file failed.
    #[error("writing the state of {id}: {source}")]
    Write {
        /// The container.
        id: String,
        /// The error.
        source: FsError,
    },
    /// Removing a container's directory failed.
    #[error("removing the state of {id}: {source}")]
    Remove {
        /// The container.
        id: String,
        /// The error.
        source: io::Error,
    },
    /// Signalling the container's process failed.
    #[error("signalling pid {pid}: {source}")]
    Signal {
        /// The container's pid.
        pid: i32,
        /// The error.
        source: io::Error,
    },
    /// Removing the container's cgroup failed (and the cgroup is still there).
    #[error("{0}")]
    Destroy(#[source] Box<Error>),
}

impl StateError {
    /// The exit code for the command line: the runtime's own for a failed cgroup removal, else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            StateError::Destroy(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// What `create` records about a container (`state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Container id.
    pub id: String,
    /// The container's first process, as seen from the host.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`, so a recycled pid is never mistaken for the container
    /// (0: unknown, the pid alone decides).
    pub start_time: u64,
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    /// The container's cgroup path.
    pub cgroups_path: String,
    /// When it was created, RFC 3339.
    pub created: String,
    /// The spec's annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

/// A recorded container's status, as OCI's `state` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Set up; its process waits on `exec.fifo` for `start`.
    Created,
    /// Its process runs (it has passed the start gate).
    Running,
    /// Its process is gone or a zombie.
    Stopped,
}

impl Status {
    /// `"created"`, `"running"` or `"stopped"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // pad, not write_str: tables align it with `{:<10}`.
        f.pad(self.as_str())
    }
}

/// Refuses ids that would not name exactly one directory under the root.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(StateError::InvalidId(id.to_owned()));
    }
    Ok(())
}

/// The start time (field 22 of `/proc/<pid>/stat`) of a live process, `None` if there is none.
pub fn start_time(pid: i32) -> Option<u64> {
    berth_fs::process::start_time(pid)
}

/// The root directory of recorded containers.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory at `root` (created on the first [`StateDir::create`]).
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of container `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The start gate of container `id`: present between create and start.
    pub fn fifo(&self, id: &str) -> PathBuf {
        self.dir(id).join("exec.fifo")
    }

    /// Makes the directory of a new container `id` (and the root if needed); refuses an id in use.
    pub fn create(&self, id: &str) -> Result<PathBuf, StateError> {
        validate_id(id)?;
        std::fs::create_dir_all(&self.root).map_err(|source| StateError::Create {
            path: self.root.clone(),
            source,
        })?;
        let dir = self.dir(id);
        std::fs::create_dir(&dir).map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => StateError::Exists(id.to_owned()),
            _ => StateError::Create {
                path: dir.clone(),
                source,
            },
        })?;
        Ok(dir)
    }

    /// Writes `rec` as its container's `state.json`, atomically.
    pub fn save(&self, rec: &Record) -> Result<(), StateError> {
        validate_id(&rec.id)?;
        // Fails only for a path that is not UTF-8 (JSON strings are).
        let data = serde_json::to_vec_pretty(rec).map_err(|source| StateError::Encode {
            id: rec.id.clone(),
            source,
        })?;
        berth_fs::write_atomic(
            &self.dir(&rec.id).join("state.json"),
            &data,
            Durability::Durable,
        )
        .map_err(|source| StateError::Write {
            id: rec.id.clone(),
            source,
        })
    }

    /// Reads the record of container `id`.
    pub fn load(&self, id: &str) -> Result<Record, StateError> {
        validate_id(id).map_err(|_| StateError::NotFound(id.to_owned()))?;
        let path = self.dir(id).join("state.json");
        let data = std::fs::read(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => StateError::NotFound(id.to_owned()),
            _ => StateError::Read {
                path: path.clone(),
                source,
            },
        })?;
        serde_json::from_slice(&data).map_err(|source| StateError::Parse { path, source })
    }

    /// Every container whose record can be read, in directory order; a missing root is empty.
    pub fn list(&self) -> Result<Vec<Record>, StateError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.root.clone(),
                    source,
                });
            }
        };
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|id| self.load(id).ok()))
            .collect())
    }

    /// Whether `rec`'s process still runs, and whether it has passed the start gate.
    pub fn status(&self, rec: &Record) -> Status {
        let alive = match berth_fs::process::stat(rec.pid) {
            Some((state, t)) => state != 'Z' && (rec.start_time == 0 || t == rec.start_time),
            None => false,
        };
        match (alive, self.fifo(&rec.id).exists()) {
            (false, _) => Status::Stopped,
            (true, true) => Status::Created,
            (true, false) => Status::Running,
        }
    }

    /// Sends `sig` to `rec`'s process, through a pidfd opened while the process is known to be
    /// the container's (so a recycled pid is never signalled).
    pub fn signal(&self, rec: &Record, sig: i32) -> Result<(), StateError> {
        let not_running = || StateError::NotRunning(rec.id.clone());
        let pid = rustix::process::Pid::from_raw(rec.pid).ok_or_else(not_running)?;
        let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::SRCH) => return Err(not_running()),
            Err(e) => {
                return Err(StateError::Signal {
                    pid: rec.pid,
                    source: e.into(),
                });
            }
        };
        // Checked after the pidfd exists: the pid cannot be reused while the fd refers to it.
        if self.status(rec) == Status::Stopped {
            return Err(not_running());
        }
        sys::pidfd_send_signal(pidfd.as_fd(), sig).map_err(|e| StateError::Signal {
            pid: rec.pid,
            source: io::Error::from_raw_os_error(e),
        })
    }

    /// Kills `rec`'s process if it still runs, removes its cgroup and its state directory.
    pub fn delete(&self, rec: &Record) -> Result<(), StateError> {
        // Best effort: whatever survives is killed with the cgroup below.
        let _ = self.signal(rec, libc::SIGKILL);
        if let Err(e) = crate::destroy(&rec.id, &rec.cgroups_path) {
            // A cgroup already gone is fine; anything else is reported.
            let left = crate::cgroups::Cgroup::open(&rec.cgroups_path)
                .is_ok_and(|c| c.dirs().iter().any(|d| d.exists()));
            if left {
                return Err(StateError::Destroy(Box::new(e)));
            }
        }
        self.remove(&rec.id)
    }

    /// What a create killed before it wrote `state.json` leaves: its cgroup, if it used the
    /// default path, and its directory. Nothing there is fine.
    pub fn remove_leftovers(&self, id: &str) -> Result<(), StateError> {
        validate_id(id)?;
        let _ = crate::destroy(id, "");
        if self.dir(id).is_dir() {
            self.remove(id)?;
        }
        Ok(())
    }

    /// Removes the directory of container `id`.
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        validate_id(id)?;
        std::fs::remove_dir_all(self.dir(id)).map_err(|source| StateError::Remove {
            id: id.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn record(id: &str, pid: i32) -> Record {
        Record {
            id: id.into(),
            pid,
            start_time: start_time(pid).unwrap_or(0),
            bundle: "/b".into(),
            cgroups_path: format!("/berth/{id}"),
            created: "2026-12-03T08:00:00Z".into(),
            annotations: HashMap::from([("k".into(), "v".into())]),
        }
    }

    #[test]
    fn ids_that_leave_the_root_are_refused() {
        for bad in ["", ".", "..", ".hidden", "a/b", "/abs"] {
            assert!(
                matches!(validate_id(bad), Err(StateError::InvalidId(_))),
                "{bad:?}"
            );
        }
        validate_id("abc-1_2.x").unwrap();
    }

    #[test]
    fn records_round_trip_and_list() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("state"));
        assert!(
            dir.list().unwrap().is_empty(),
            "a missing root lists nothing"
        );
        assert!(matches!(dir.load("c1"), Err(StateError::NotFound(_))));

        dir.create("c1").unwrap();
        assert!(matches!(dir.create("c1"), Err(StateError::Exists(_))));
        let rec = record("c1", std::process::id() as i32);
        dir.save(&rec).unwrap();
        assert_eq!(dir.load("c1").unwrap(), rec);
        // A directory without a record (a create in progress) is not listed.
        dir.create("c2").unwrap();
        assert_eq!(dir.list().unwrap(), vec![rec.clone()]);

        let odd = Record {
            id: "c2".into(),
            bundle: std::ffi::OsStr::from_bytes(b"/b\xff").into(),
            ..rec.clone()
        };
        assert!(matches!(dir.save(&odd), Err(StateError::Encode { .. })));
        std::fs::write(dir.dir("c2").join("state.json"), b"{").unwrap();
        assert!(matches!(dir.load("c2"), Err(StateError::Parse { .. })));
        dir.remove("c2").unwrap();
        assert!(!dir.dir("c2").exists());
        assert!(matches!(dir.load(".."), Err(StateError::NotFound(_))));
    }

    #[test]
    fn status_follows_the_process_and_the_gate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path());
        dir.create("me").unwrap();
        let me = record("me", std::process::id() as i32);
        assert_ne!(me.start_time, 0);
        assert_eq!(dir.status(&me), Status::Running);
        std::fs::write(dir.fifo("me"), b"").unwrap();
        assert_eq!(dir.status(&me), Status::Created);
        // Same pid, another start time: a recycled pid, not the container.
        let recycled = Record {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert_eq!(dir.status(&recycled), Status::Stopped);
        assert!(matches!(
            dir.signal(&recycled, 0),
            Err(StateError::NotRunning(_))
        ));
        dir.signal(&me, 0).unwrap();
    }

    #[test]
    fn an_exited_process_is_stopped_and_not_signalled() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let rec = record("gone", child.id() as i32);
        // Before the reap it is a zombie: stopped too.
        while berth_fs::process::stat(rec.pid).is_some_and(|(s, _)| s != 'Z') {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(dir.status(&rec), Status::Stopped);
        child.wait().unwrap();
        assert_eq!(dir.status(&rec), Status::Stopped);
        assert!(matches!(
            dir.signal(&rec, libc::SIGTERM),
            Err(StateError::NotRunning(_))
        ));
    }

    #[test]
    fn leftovers_of_an_invalid_id_are_never_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path().join("state"));
        std::fs::create_dir_all(dir.root()).unwrap();
        for bad in [".", ".."] {
            assert!(matches!(
                dir.remove_leftovers(bad),
                Err(StateError::InvalidId(_))
            ));
        }
        assert!(dir.root().is_dir() && tmp.path().is_dir());
    }
}
