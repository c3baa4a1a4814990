//! The parent's handle on a started process: wait (reaps, EINTR-safe), signal through a pidfd,
//! and the error-pipe reader that turns the child's failure record into an [`Error`].

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::cgroups::Cgroup;
use crate::child::{RECORD_LEN, Record};
use crate::error::Error;
use crate::stage::Stage;
use crate::sys;

/// How a container process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit(code)`.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

impl ExitStatus {
    /// Docker's exit code: the code, or 128 + signal.
    pub fn docker_code(&self) -> i32 {
        match *self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }

    pub(crate) fn from_raw(status: i32) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        }
    }
}

/// A running container process (the first process of `spawn`, or one started by `exec`).
pub struct Child {
    pid: i32,
    pidfd: OwnedFd,
    cgroup: Cgroup,
    status: Option<ExitStatus>,
    /// Holds the container's mount namespace: when the process exits, the kernel does not unmount
    /// its tree on that exit path (which the parent would wait for) but when this is closed.
    mnt_ns: Option<OwnedFd>,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Child {
    pub(crate) fn new(pid: i32, pidfd: OwnedFd, cgroup: Cgroup, mnt_ns: Option<OwnedFd>) -> Child {
        Child {
            pid,
            pidfd,
            cgroup,
            status: None,
            mnt_ns,
        }
    }

    /// Takes the descriptor that keeps the container's mount namespace alive after its process
    /// exits. Closing it unmounts the container's tree (the namespace has no process left), so a
    /// caller can close it where that cost is not waited for; if never taken, it closes with the
    /// handle.
    pub fn take_mount_namespace(&mut self) -> Option<OwnedFd> {
        self.mnt_ns.take()
    }

    /// The process id in the caller's pid namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A pidfd for the process (pollable: readable once it exits).
    pub fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Waits for the process to exit and reaps it; later calls return the same status.
    pub fn wait(&mut self) -> Result<ExitStatus, Error> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let raw = sys::waitpid(self.pid).map_err(|e| Error::Wait {
            pid: self.pid,
            source: io::Error::from_raw_os_error(e),
        })?;
        let s = ExitStatus::from_raw(raw);
        self.status = Some(s);
        Ok(s)
    }

    /// Sends `sig` to the process (through its pidfd, so a recycled pid is never hit).
    pub fn signal(&self, sig: i32) -> Result<(), Error> {
        sys::pidfd_send_signal(self.pidfd.as_fd(), sig).map_err(|e| Error::Signal {
            pid: self.pid,
            signal: sig,
            source: io::Error::from_raw_os_error(e),
        })
    }

    /// The container's cgroup.
    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// Gives up the handle, returning the cgroup (the process is neither killed nor reaped).
    pub fn into_cgroup(self) -> Cgroup {
        self.cgroup
    }
}

/// Reads the child's report: `Ok(None)` on EOF (it exec'd), `Ok(Some(record))` on failure.
pub(crate) fn read_report(fd: &OwnedFd) -> Result<Option<Record>, Error> {
    let mut buf = [0u8; RECORD_LEN];
    let mut got = 0;
    while got < RECORD_LEN {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(Error::sys(
                    "reading the container's setup report",
                    e.raw_os_error(),
                ));
            }
        }
    }
    match got {
        0 => Ok(None),
        RECORD_LEN => Ok(Some(Record::from_bytes(&buf))),
        _ => Err(Error::sys(
            "reading the container's setup report (truncated)",
            libc::EIO,
        )),
    }
}

/// Turns a failure record into an error; `describe` names the object of a stage/index.
pub(crate) fn record_error(
    rec: &Record,
    command: &str,
    describe: impl Fn(Stage, usize) -> String,
) -> Error {
    let source = io::Error::from_raw_os_error(rec.errno);
    let Some(stage) = rec.stage() else {
        return Error::Setup {
            action: format!("unknown stage {}", rec.stage),
            source,
            detail: rec.message(),
        };
    };
    if stage == Stage::Exec {
        let command = command.to_owned();
        return match rec.errno {
            libc::ENOENT | libc::ENOTDIR => Error::ExecNotFound { command },
            libc::EACCES => Error::ExecPermission { command },
            _ => Error::Exec { command, source },
        };
    }
    let object = describe(stage, rec.index as usize);
    let action = if object.is_empty() {
        stage.describe().to_owned()
    } else {
        format!("{} {object}", stage.describe())
    };
    Error::Setup {
        action,
        source,
        detail: rec.message(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::Fail;

    fn roundtrip(f: Fail) -> Record {
        Record::from_bytes(&f.0.to_bytes())
    }

    #[test]
    fn exec_errnos_map_to_docker_codes() {
        let err = |errno| {
            record_error(
                &roundtrip(Fail::new(Stage::Exec, 0, errno)),
                "foo",
                |_, _| String::new(),
            )
        };
        assert!(matches!(err(libc::ENOENT), Error::ExecNotFound { command } if command == "foo"));
        assert_eq!(err(libc::ENOTDIR).exit_code(), 127);
        assert_eq!(err(libc::EACCES).exit_code(), 126);
        let e = err(libc::ENOEXEC);
        assert!(matches!(e, Error::Exec { .. }));
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn setup_errors_name_stage_object_and_kernel_message() {
        let f = Fail::new(Stage::MountConfig, 3, libc::EINVAL)
            .with_msg(b"e tmpfs: Bad value for 'size'");
        let rec = roundtrip(f);
        assert_eq!(rec.index, 3);
        let e = record_error(&rec, "sh", |s, i| {
            assert_eq!((s, i), (Stage::MountConfig, 3));
            "tmpfs on /data".into()
        });
        assert_eq!(
            e.to_string(),
            "container setup failed: configuring the filesystem for tmpfs on /data: Invalid argument (os error 22) \
             (e tmpfs: Bad value for 'size')"
        );
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn every_stage_survives_the_pipe() {
        for s in [
            Stage::UsernsSync,
            Stage::MountAttach,
            Stage::PivotRoot,
            Stage::Seccomp,
            Stage::Exec,
            Stage::Gate,
        ] {
            assert_eq!(roundtrip(Fail::new(s, 7, libc::EPERM)).stage(), Some(s));
        }
        let mut junk = Fail::new(Stage::Exec, 0, 1);
        junk.0.stage = 999;
        let e = record_error(&roundtrip(junk), "x", |_, _| String::new());
        assert!(e.to_string().contains("unknown stage 999"), "{e}");
    }

    #[test]
    fn exit_status_from_raw_wait_status() {
        assert_eq!(ExitStatus::from_raw(3 << 8), ExitStatus::Exited(3));
        assert_eq!(ExitStatus::from_raw(libc::SIGKILL), ExitStatus::Signaled(9));
        assert_eq!(ExitStatus::Signaled(15).docker_code(), 143);
    }
}
