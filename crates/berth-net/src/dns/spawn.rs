//! Starting the server on demand, detached from the command that needs it.

use super::records::{self, NetworkFile};
use super::server::{LOCK_FILE, PID_FILE, State};
use super::{DnsError, io};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before it is an error.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// A spawned server needs a moment to take the lock; spawning again before that only makes a
/// second process that exits at once.
const RESPAWN_AFTER: Duration = Duration::from_millis(500);

/// Starts the server if none runs (`RUN/net/dns/server.lock` free), as `exe args…` in a new session
/// with stdio on /dev/null, not left as a child of the caller; returns once a server holds the lock
/// and has tried every listen address of the current network files.
pub fn ensure_server(run_root: &Path, exe: &Path, args: &[&str]) -> Result<(), DnsError> {
    let dir = records::dir(run_root);
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let start = Instant::now();
    let mut spawned: Option<Instant> = None;
    loop {
        if lock_free(&dir)? {
            if spawned.is_none_or(|t| t.elapsed() > RESPAWN_AFTER) {
                spawn(exe, args)?;
                spawned = Some(Instant::now());
            }
        } else if ready(&dir) {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(DnsError::Server(format!(
                "{} did not become ready within {} s (no complete {})",
                exe.display(),
                READY_TIMEOUT.as_secs(),
                dir.join(PID_FILE).display()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn lock_free(dir: &Path) -> Result<bool, DnsError> {
    let path = dir.join(LOCK_FILE);
    let file = berth_fs::open_lock_file(&path).map_err(|e| io(e.op, &path)(e.source))?;
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(io("locking", &path)(e)),
    }
}

/// The running server has published a state that covers every listen address on file.
fn ready(dir: &Path) -> bool {
    let Ok(bytes) = std::fs::read(dir.join(PID_FILE)) else {
        return false;
    };
    let Ok(state) = serde_json::from_slice::<State>(&bytes) else {
        return false;
    };
    if !Path::new(&format!("/proc/{}", state.pid)).exists() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries
        .flatten()
        .filter(|e| records::is_network_file(&e.file_name().to_string_lossy()))
        .filter_map(|e| records::read(&e.path()).ok().flatten())
        .flat_map(|f: NetworkFile| f.listen)
        .all(|a| state.listening.contains(&a) || state.failed.contains(&a))
}

fn spawn(exe: &Path, args: &[&str]) -> Result<(), DnsError> {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: runs in the forked child before exec; fork, _exit, setsid and close_range are async-signal-safe
    // and touch no memory of the parent. The intermediate exits at once (reaped below), so the
    // server is reparented to init (or the caller's subreaper) and is never the caller's zombie.
    unsafe {
        cmd.pre_exec(|| {
            match libc::fork() {
                -1 => return Err(std::io::Error::last_os_error()),
                0 => {}
                _ => libc::_exit(0),
            }
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // Nothing the caller holds may reach the daemon: a monitor's report pipe, say,
            // whose reader waits for its end. Close-on-exec rather than closed, so std's own
            // exec-error pipe still works.
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
            if libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            ) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| DnsError::Server(format!("starting {}: {e}", exe.display())))?;
    child
        .wait()
        .map_err(|e| DnsError::Server(format!("waiting for {}: {e}", exe.display())))?;
    Ok(())
}
