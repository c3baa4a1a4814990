//! berth-fs: the one way berth replaces a file — a temporary name beside it, write, fsync,
//! rename, fsync of the directory (or, for state that need not survive a power cut, write and an
//! exchange of names) — so a reader sees the old content or the new, never a torn file, and a
//! crash leaves at most a temporary that [`remove_stale_temps`] recognises.
//!
//! The lowest crate of the workspace with I/O (berth-oci is pure data); the store, the engine and
//! the runtime's command line use it.
#![deny(missing_docs)]

pub mod process;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A filesystem operation that failed, naming what it was doing and where.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct FsError {
    /// What was being done ("create", "write", "rename into place", …).
    pub op: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl FsError {
    fn new(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FsError + use<> {
        let path = path.to_owned();
        move |source| FsError { op, path, source }
    }
}

/// Whether an update must survive a power cut (fsync of file and directory) or only a crash of
/// the writer (state that dies with the machine anyway, like a container's runtime state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after it.
    Durable,
    /// Rename only: atomic for readers, not durable across a power cut.
    Volatile,
}

/// The prefix of the temporaries [`write_atomic`] uses for `path`: `.NAME.tmp-`.
pub fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp-")
}

/// A name no other writer (in this process or another) is using at the same moment.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:x}-{n:x}-{t:08x}", std::process::id())
}

/// Replaces `path` with `bytes` atomically (see the crate docs), through a temporary `.NAME.tmp-PID-…`
/// beside it (the writer's pid in hex, so [`remove_orphaned_temps`] can tell a dead writer's). On failure the temporary is
/// removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), FsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = temp_prefix(path);
    let (tmp, mut f) = loop {
        let tmp = dir.join(format!("{prefix}{}", unique_suffix()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FsError::new("create", &tmp)(e)),
        }
    };
    let result = (|| {
        f.write_all(bytes).map_err(FsError::new("write", &tmp))?;
        if durability == Durability::Durable {
            f.sync_all().map_err(FsError::new("fsync", &tmp))?;
        }
        drop(f);
        if durability == Durability::Durable {
            fs::rename(&tmp, path).map_err(FsError::new("rename into place", path))?;
            return sync_dir(dir);
        }
        replace_volatile(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Puts `tmp` in place of `path` without the writeback a plain rename starts. ext4 (with its
/// default `auto_da_alloc`) flushes a file renamed over an existing one, so that an unsynced
/// replace does not come back empty after a crash: ~75 µs per write that Volatile does not want.
/// Exchanging the two names (atomic as well: readers see the old content or the new one) and then
/// unlinking the old one skips it. A kill between the two leaves the old content under the
/// temporary's name, which [`remove_orphaned_temps`] takes away. Where there is no file to
/// exchange with (nothing, or a directory, which a rename refuses), or the filesystem cannot
/// exchange, a plain rename.
fn replace_volatile(tmp: &Path, path: &Path) -> Result<(), FsError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return fs::rename(tmp, path).map_err(FsError::new("rename into place", path));
    }
    match renameat_with(CWD, tmp, CWD, path, RenameFlags::EXCHANGE) {
        Ok(()) => {
            // In place already; a temporary left here (unlink refused) is swept like a killed one's.
            let _ = fs::remove_file(tmp);
            Ok(())
        }
        Err(_) => fs::rename(tmp, path).map_err(FsError::new("rename into place", path)),
    }
}

/// fsyncs a directory so a rename or unlink inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FsError::new("fsync directory", dir))
}

/// Removes the temporaries a killed [`write_atomic`] of `path` left beside it. Only for a caller
/// that holds the lock guarding `path` (no live writer can own one then). Returns how many.
pub fn remove_stale_temps(path: &Path) -> Result<usize, FsError> {
    remove_temps_where(path, |_| true)
}

/// Removes the temporaries of `path` whose writer is gone, for a `path` no lock guards: a temporary's
/// name carries its writer's pid (see [`write_atomic`]), and one whose process no longer exists can
/// only be a killed writer's. A live writer's, or one whose name does not parse, is kept (a reused pid
/// only delays the sweep). Returns how many.
pub fn remove_orphaned_temps(path: &Path) -> Result<usize, FsError> {
    remove_temps_where(path, |suffix| {
        suffix
            .split('-')
            .next()
            .and_then(|pid| u32::from_str_radix(pid, 16).ok())
            .is_some_and(|pid| pid != 0 && !Path::new("/proc").join(pid.to_string()).exists())
    })
}

/// Removes each temporary of `path` whose suffix (the part after [`temp_prefix`]) `doomed` accepts.
fn remove_temps_where(path: &Path, doomed: impl Fn(&str) -> bool) -> Result<usize, FsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = temp_prefix(path);
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(FsError::new("read directory", dir)(e)),
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(suffix) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if !doomed(suffix) {
            continue;
        }
        match fs::remove_file(e.path()) {
            Ok(()) => removed += 1,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(FsError::new("remove", &e.path())(err)),
        }
    }
    Ok(removed)
}

/// Opens the lock file `path`, creating it (empty) if missing; the caller locks it (`File::lock`,
/// `File::try_lock`), and the lock is held as long as the file stays open.
pub fn open_lock_file(path: &Path) -> Result<File, FsError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(FsError::new("open", path))
}

/// [`open_lock_file`] with an exclusive lock taken, waiting for its holder.
pub fn lock_exclusive(path: &Path) -> Result<File, FsError> {
    let f = open_lock_file(path)?;
    f.lock().map_err(FsError::new("lock", path))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_and_leaves_no_temporary() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("state.json");
        write_atomic(&p, b"one", Durability::Durable).unwrap();
        write_atomic(&p, b"two", Durability::Volatile).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(names(t.path()), ["state.json"]);
        // Over a symlink, the link itself is replaced, as a rename does.
        let q = t.path().join("link");
        std::os::unix::fs::symlink("state.json", &q).unwrap();
        write_atomic(&q, b"three", Durability::Volatile).unwrap();
        assert!(fs::symlink_metadata(&q).unwrap().is_file());
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read(&q).unwrap(), b"three");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("d");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("keep"), b"x").unwrap();
        // A directory that is not empty cannot be replaced by a rename.
        for durability in [Durability::Durable, Durability::Volatile] {
            let e = write_atomic(&p, b"file", durability).unwrap_err();
            assert_eq!(e.op, "rename into place");
            assert!(e.to_string().contains(&p.display().to_string()), "{e}");
            assert_eq!(names(t.path()), ["d"]);
            assert!(p.join("keep").exists());
        }
        let missing = t.path().join("no/such/dir/f");
        let e = write_atomic(&missing, b"x", Durability::Durable).unwrap_err();
        assert_eq!(e.op, "create");
    }

    #[test]
    fn stale_temporaries_of_one_file_only_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("index.json");
        fs::write(t.path().join(".index.json.tmp-dead"), b"half").unwrap();
        fs::write(t.path().join(".index.json.tmp-dead2"), b"half").unwrap();
        fs::write(t.path().join(".other.json.tmp-dead"), b"not ours").unwrap();
        assert_eq!(remove_stale_temps(&p).unwrap(), 2);
        assert_eq!(names(t.path()), [".other.json.tmp-dead"]);
        assert_eq!(remove_stale_temps(&t.path().join("gone/x")).unwrap(), 0);
    }

    #[test]
    fn concurrent_writers_never_tear_the_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(p, &[i; 4096], Durability::Volatile).unwrap();
                    }
                });
            }
        });
        let got = fs::read(&p).unwrap();
        assert_eq!(got.len(), 4096);
        assert!(got.iter().all(|&b| b == got[0]));
        assert_eq!(names(t.path()), ["f"]);
    }

    #[test]
    fn orphaned_temps_of_dead_writers_go_and_live_ones_stay() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("oci-layout");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dead_tmp = t
            .path()
            .join(format!(".oci-layout.tmp-{dead:x}-0-00000000"));
        let live_tmp = t.path().join(format!(
            ".oci-layout.tmp-{:x}-0-00000000",
            std::process::id()
        ));
        let odd_tmp = t.path().join(".oci-layout.tmp-notapid");
        for p in [&dead_tmp, &live_tmp, &odd_tmp] {
            fs::write(p, b"half").unwrap();
        }
        assert_eq!(remove_orphaned_temps(&target).unwrap(), 1);
        assert!(!dead_tmp.exists() && live_tmp.exists() && odd_tmp.exists());
    }
}
