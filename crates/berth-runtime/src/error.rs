//! The crate's error type: each variant says what was being done to what.

use std::io;

use crate::cgroups::CgroupError;
use crate::plan::PlanError;
use crate::seccomp::SeccompError;

/// Errors of `spawn`, `exec`, `destroy`, waiting and signalling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `args[0]` was not found (exit code 127).
    #[error("exec: \"{command}\": executable file not found in $PATH")]
    ExecNotFound {
        /// The command as given.
        command: String,
    },
    /// `args[0]` exists but cannot be executed: a directory, no x bit, noexec (exit code 126).
    #[error("exec: \"{command}\": permission denied")]
    ExecPermission {
        /// The command as given.
        command: String,
    },
    /// `execve` failed for another reason (ENOEXEC, E2BIG, ...).
    #[error("exec: \"{command}\": {source}")]
    Exec {
        /// The command as given.
        command: String,
        /// The errno.
        source: io::Error,
    },
    /// The spec cannot be run as given.
    #[error("invalid container spec: {0}")]
    Plan(#[from] PlanError),
    /// A setup step inside the container failed ("mounting proc on /proc: EPERM").
    #[error("container setup failed: {action}: {source}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Setup {
        /// What the child was doing, to what.
        action: String,
        /// The errno.
        source: io::Error,
        /// The kernel's own message for filesystem configuration errors, if any.
        detail: Option<String>,
    },
    /// A cgroup operation failed.
    #[error("{action} cgroup {path}: {source}")]
    Cgroup {
        /// "creating", "joining", "destroying", ...
        action: &'static str,
        /// The cgroup path.
        path: String,
        /// The error.
        source: CgroupError,
    },
    /// Compiling the spec's seccomp profile failed.
    #[error("compiling the seccomp profile: {0}")]
    Seccomp(#[source] SeccompError),
    /// The caller's [`crate::spawn_attached`] hook failed (the process was killed before `execve`).
    #[error("{0}")]
    Attach(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A host-side system call around the start failed.
    #[error("{action}: {source}")]
    Sys {
        /// What was being done ("cloning the container process", "creating the error pipe").
        action: String,
        /// The errno.
        source: io::Error,
    },
    /// Waiting for a process failed.
    #[error("waiting for pid {pid}: {source}")]
    Wait {
        /// The pid.
        pid: i32,
        /// The errno.
        source: io::Error,
    },
    /// Signalling a process failed.
    #[error("sending signal {signal} to pid {pid}: {source}")]
    Signal {
        /// The pid.
        pid: i32,
        /// The signal number.
        signal: i32,
        /// The errno.
        source: io::Error,
    },
    /// A pty operation failed.
    #[error("{action}: {source}")]
    Pty {
        /// What was being done to the pty.
        action: &'static str,
        /// The errno.
        source: io::Error,
    },
}

impl Error {
    /// Docker's exit code for a failed start: 127 not found, 126 not executable, 125 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::ExecNotFound { .. } => 127,
            Error::ExecPermission { .. } => 126,
            _ => 125,
        }
    }

    pub(crate) fn sys(action: impl Into<String>, errno: impl Into<i32>) -> Error {
        Error::Sys {
            action: action.into(),
            source: io::Error::from_raw_os_error(errno.into()),
        }
    }
}
