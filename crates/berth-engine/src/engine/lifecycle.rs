//! stop, kill, wait and rm.

use super::{Engine, cgroups_path};
use crate::error::{Error, Result};
use crate::record::Status;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

impl Engine {
    /// Sends `sig` to a running container's init (checking it is still the same process).
    fn signal_init(&self, id: &str, sig: i32) -> Result<bool> {
        let st = self.state(id)?;
        if st.status != Status::Running || !crate::procs::alive(st.pid, st.pid_start) {
            return Ok(false);
        }
        let fd = match rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(st.pid)
                .ok_or_else(|| Error::NotRunning(id.to_owned()))?,
            rustix::process::PidfdFlags::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::SRCH) => return Ok(false),
            Err(e) => {
                return Err(crate::error::io_err(
                    "open a pidfd for",
                    format!("pid {}", st.pid),
                )(e.into()));
            }
        };
        // The pidfd pins the process: re-check its identity, then signal through the pidfd.
        if !crate::procs::alive(st.pid, st.pid_start) {
            return Ok(false);
        }
        // SAFETY: pidfd_send_signal with a valid pidfd, a signal number and no siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(false);
            }
            return Err(crate::error::io_err(
                "send a signal to",
                format!("pid {}", st.pid),
            )(e));
        }
        Ok(true)
    }

    /// Waits until the container no longer runs (true) or `timeout` passes (false).
    fn wait_stopped(&self, id: &str, timeout: Option<Duration>) -> Result<bool> {
        let start = Instant::now();
        loop {
            match self.state(id) {
                Ok(st) if st.status != Status::Running => return Ok(true),
                Ok(_) => {}
                Err(Error::Store(crate::store::StoreError::NotFound(_))) => return Ok(true),
                Err(e) => return Err(e),
            }
            if timeout.is_some_and(|t| start.elapsed() >= t) {
                return Ok(false);
            }
            std::thread::sleep(POLL);
        }
    }

    /// `berth stop`: the stop signal (image's StopSignal or SIGTERM), then SIGKILL after `timeout`.
    pub fn stop(&self, what: &str, timeout: Duration) -> Result<()> {
        let id = self.resolve(what)?;
        let rec = self.containers.read_config(&id)?;
        let sig = rec
            .config
            .stop_signal
            .as_deref()
            .and_then(crate::options::parse_signal)
            .unwrap_or(libc::SIGTERM);
        if !self.signal_init(&id, sig)? {
            return Ok(());
        }
        if self.wait_stopped(&id, Some(timeout))? {
            return Ok(());
        }
        self.signal_init(&id, libc::SIGKILL)?;
        if self.wait_stopped(&id, Some(Duration::from_secs(30)))? {
            Ok(())
        } else {
            Err(Error::StopTimeout(id))
        }
    }

    /// `berth kill -s SIG`.
    pub fn kill(&self, what: &str, signal: &str) -> Result<()> {
        let sig = crate::options::parse_signal(signal)
            .ok_or_else(|| Error::BadSignal(signal.to_owned()))?;
        let id = self.resolve(what)?;
        if !self.signal_init(&id, sig)? {
            return Err(Error::NotRunning(what.to_owned()));
        }
        Ok(())
    }

    /// `berth wait`: blocks until the container is not running; returns its exit code.
    pub fn wait(&self, what: &str) -> Result<i32> {
        let id = self.resolve(what)?;
        let mut last = 0;
        loop {
            match self.state(&id) {
                Ok(st) if st.status != Status::Running => return Ok(st.exit_code),
                Ok(st) => last = st.exit_code,
                Err(Error::Store(crate::store::StoreError::NotFound(_))) => return Ok(last),
                Err(e) => return Err(e),
            }
            std::thread::sleep(POLL);
        }
    }

    /// `berth rm [-f]`.
    pub fn remove(&self, what: &str, force: bool) -> Result<()> {
        let id = self.resolve(what)?;
        let st = self.state(&id)?;
        if st.status == Status::Running {
            if !force {
                return Err(Error::RemoveRunning(what.to_owned()));
            }
            self.signal_init(&id, libc::SIGKILL)?;
            if !self.wait_stopped(&id, Some(Duration::from_secs(30)))? {
                return Err(Error::StopTimeout(id));
            }
        }
        // Let the monitor finish recording (and, with --rm, removing) before we remove.
        let monitor = self
            .containers
            .read_state(&id)
            .map(|s| (s.monitor_pid, s.monitor_start))
            .unwrap_or((0, 0));
        let deadline = Instant::now() + Duration::from_secs(10);
        while monitor.0 > 0
            && monitor.0 != std::process::id() as i32
            && crate::procs::alive(monitor.0, monitor.1)
            && Instant::now() < deadline
        {
            std::thread::sleep(POLL);
        }
        let rec = match self.containers.read_config(&id) {
            Ok(r) => r,
            Err(crate::store::StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let lock = match self.containers.lock(&id) {
            Ok(l) => l,
            Err(crate::store::StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match self.containers.read_state(&id) {
            Ok(st)
                if st.status == Status::Running
                    && crate::procs::alive(st.monitor_pid, st.monitor_start) =>
            {
                return Err(Error::RemoveRunning(what.to_owned()));
            }
            Ok(_) => {}
            Err(crate::store::StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if crate::procs::alive(st.pid, st.pid_start) || cgroup_exists(&id) {
            let _ = berth_runtime::destroy(&id, &cgroups_path(&id));
        }
        // Removed under the lock, so a concurrent sweep never walks the same tree.
        let r = self.remove_now(&rec);
        drop(lock);
        r
    }
}

/// Whether any hierarchy still has the container's cgroup.
fn cgroup_exists(id: &str) -> bool {
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return false;
    };
    rd.filter_map(|e| e.ok())
        .any(|h| h.path().join("berth").join(id).exists())
        || std::path::Path::new("/sys/fs/cgroup/berth")
            .join(id)
            .exists()
}
