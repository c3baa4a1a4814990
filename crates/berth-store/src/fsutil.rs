//! Small filesystem helpers: atomic replacement of a file, directory fsync, early writeback and
//! tree sizes.

use crate::error::{Error, Result};
use std::fs;
use std::path::Path;

/// A random 16-hex-digit name for temporary files, so concurrent writers never collide.
pub(crate) fn random_name(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

/// fsyncs a directory so a rename or unlink inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    Ok(berth_fs::sync_dir(dir)?)
}

/// Replaces `path` with `bytes` atomically and durably (berth-fs's one way of doing it).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(berth_fs::write_atomic(
        path,
        bytes,
        berth_fs::Durability::Durable,
    )?)
}

/// Creates a directory and its parents.
pub(crate) fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::io("create directory", path, e))
}

/// Removes a file; a missing file is not an error.
pub(crate) fn remove_file_if_exists(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Removes a directory tree; a missing one is not an error.
pub(crate) fn remove_tree_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove directory", path, e)),
    }
}

/// Bytes written to a file between two [`start_writeback`] calls.
pub(crate) const WRITEBACK_EVERY: u64 = 8 << 20;

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to disk now, without
/// waiting: big downloads and unpacks then overlap their writeback with the transfer instead of
/// leaving it all to the fsync/syncfs before publishing. Best effort: errors are ignored (the
/// later fsync reports real ones).
pub(crate) fn start_writeback(file: &impl std::os::fd::AsRawFd, offset: u64, len: u64) {
    // SAFETY: sync_file_range only reads its integer arguments; an invalid fd or range makes it
    // fail with an errno, which is ignored here.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Bytes in regular files under a directory (not following symlinks).
pub(crate) fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
