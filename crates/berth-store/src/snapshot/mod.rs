//! Snapshots: each layer unpacked once into `ROOT/snapshots/<chain-id hex>/fs`, an overlay lower
//! directory. This module only knows trees keyed by chain ID; which images use them is `meta`'s.
//!
//! An unpack writes into a fresh `.tmp-<random>` directory (locked with `flock` while in use),
//! hashes the uncompressed stream as it is read, and publishes with one `renameat2(NOREPLACE)`
//! only if the stream's digest is the expected diff ID. A process killed at any point leaves at
//! most a `.tmp-*` or `.del-*` directory, which [`Snapshots::clean_incomplete`] removes; a
//! `<hex>` directory is always complete. Layer entries are confined to the tree (see `unpack`).

mod decompress;
mod error;
mod path;
mod unpack;

pub use decompress::decompress;
pub use error::SnapshotError;

use berth_oci::{Digest, Digester};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self as rfs, CWD, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

const TMP_PREFIX: &str = ".tmp-";
const DEL_PREFIX: &str = ".del-";
const READ_BUF: usize = 1 << 20;

/// The OCI image-spec chain ID of a layer: its diff ID for the bottom layer, otherwise
/// `sha256(parent_chain_id + " " + diff_id)` over the `sha256:<hex>` strings.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
    }
}

/// What an unpack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries applied (0 if `reused`).
    pub entries: u64,
    /// Bytes of the uncompressed stream read (its diff size).
    pub bytes: u64,
    /// Another unpack published the same snapshot first; ours was discarded.
    pub reused: bool,
}

/// The snapshot directory, `ROOT/snapshots`.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
    sync: bool,
}

/// A temp directory removed on drop unless published; its `flock` tells `clean_incomplete`
/// that it is still in use.
struct Temp {
    path: PathBuf,
    fd: OwnedFd,
    keep: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Reads through, hashing every byte: the diff ID is the digest of the uncompressed stream.
struct Hashing<R> {
    inner: R,
    digester: Digester,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

fn open_dir(path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        CWD,
        path,
        flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

impl Snapshots {
    /// Snapshots kept in `dir` (created by `Store::open`).
    pub fn new(dir: PathBuf) -> Snapshots {
        Snapshots { dir, sync: true }
    }

    /// Skips the `syncfs` before publishing (tests and throwaway roots): faster, but a power
    /// loss could leave a published snapshot with missing data. A kill -9 is safe either way.
    pub fn without_sync(mut self) -> Snapshots {
        self.sync = false;
        self
    }

    /// The directory holding all snapshots.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The unpacked tree of a snapshot, `ROOT/snapshots/<hex>/fs` (an overlay lower directory).
    pub fn fs_path(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex()).join("fs")
    }

    /// Whether the snapshot is present (published snapshots are always complete).
    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.fs_path(chain_id).is_dir()
    }

    /// Unpacks the UNCOMPRESSED layer tar `tar` as snapshot `chain_id`, publishing it only if the
    /// whole stream (read to EOF) has digest `expected_diff_id`. If the snapshot already exists,
    /// or a concurrent unpack publishes it first, ours is discarded and this succeeds.
    pub fn unpack(
        &self,
        chain_id: &Digest,
        expected_diff_id: &Digest,
        tar: impl Read,
    ) -> Result<UnpackStats, SnapshotError> {
        let target = self.dir.join(chain_id.hex());
        if self.exists(chain_id) {
            return Ok(UnpackStats {
                entries: 0,
                bytes: 0,
                reused: true,
            });
        }
        let mut tmp = self.make_temp(TMP_PREFIX)?;
        let fs_dir = tmp.path.join("fs");
        let trash_dir = tmp.path.join(".trash");
        for (d, mode) in [(&fs_dir, 0o755), (&trash_dir, 0o700)] {
            rfs::mkdirat(
                &tmp.fd,
                d.file_name().unwrap_or_default(),
                Mode::from_raw_mode(mode),
            )
            .map_err(|e| SnapshotError::io("creating", d.as_path(), e))?;
        }
        let root = open_dir(&fs_dir, OFlags::RDONLY)
            .map_err(|e| SnapshotError::io("opening", &fs_dir, e))?;
        rfs::fchmod(&root, Mode::from_raw_mode(0o755))
            .map_err(|e| SnapshotError::io("setting the mode of", &fs_dir, e))?;
        let trash = open_dir(&trash_dir, OFlags::PATH)
            .map_err(|e| SnapshotError::io("opening", &trash_dir, e))?;

        let mut hashing = Hashing {
            inner: tar,
            digester: Digester::new(),
        };
        let mut reader = BufReader::with_capacity(READ_BUF, &mut hashing);
        let entries = unpack::extract(root, trash, &mut reader)?;
        // The digest covers the end-of-archive blocks and any padding after them.
        io::copy(&mut reader, &mut io::sink()).map_err(|source| SnapshotError::Read {
            after: None,
            source,
        })?;
        drop(reader);
        let bytes = hashing.digester.len();
        let actual = hashing.digester.finish();
        if actual != *expected_diff_id {
            return Err(SnapshotError::DiffIdMismatch {
                expected: expected_diff_id.clone(),
                actual,
            });
        }

        std::fs::remove_dir_all(&trash_dir)
            .map_err(|e| SnapshotError::io("removing", &trash_dir, e))?;
        if self.sync {
            rfs::syncfs(&tmp.fd).map_err(|e| SnapshotError::io("syncing", &tmp.path, e))?;
        }
        match rfs::renameat_with(CWD, &tmp.path, CWD, &target, RenameFlags::NOREPLACE) {
            Ok(()) => tmp.keep = true,
            Err(Errno::EXIST | Errno::NOTEMPTY) => {
                return Ok(UnpackStats {
                    entries,
                    bytes,
                    reused: true,
                });
            }
            Err(e) => return Err(SnapshotError::io("publishing", &target, e)),
        }
        if self.sync {
            self.sync_dir()?;
        }
        Ok(UnpackStats {
            entries,
            bytes,
            reused: false,
        })
    }

    /// Creates and locks `<dir>/<prefix><random>`.
    fn make_temp(&self, prefix: &str) -> Result<Temp, SnapshotError> {
        loop {
            let path = self
                .dir
                .join(format!("{prefix}{:016x}", rand::random::<u64>()));
            match rfs::mkdirat(CWD, &path, Mode::from_raw_mode(0o700)) {
                Ok(()) => {}
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(SnapshotError::io("creating", &path, e)),
            }
            let fd = match open_dir(&path, OFlags::RDONLY) {
                Ok(fd) => fd,
                Err(e) => {
                    let _ = std::fs::remove_dir(&path);
                    return Err(SnapshotError::io("opening", &path, e));
                }
            };
            let tmp = Temp {
                path,
                fd,
                keep: false,
            };
            // Nobody else can know this fresh name yet, so the lock cannot be contended.
            unpack::try_lock(tmp.fd.as_fd())
                .map_err(|e| SnapshotError::io("locking", &tmp.path, e))?;
            return Ok(tmp);
        }
    }

    fn sync_dir(&self) -> Result<(), SnapshotError> {
        let fd = open_dir(&self.dir, OFlags::RDONLY)
            .map_err(|e| SnapshotError::io("opening", &self.dir, e))?;
        rfs::fsync(&fd).map_err(|e| SnapshotError::io("syncing", &self.dir, e))
    }

    /// Removes a snapshot (absent is fine). It is first renamed aside, so a crash mid-delete
    /// never leaves a partial tree under its published name.
    pub fn remove(&self, chain_id: &Digest) -> Result<(), SnapshotError> {
        let path = self.dir.join(chain_id.hex());
        let doomed = self
            .dir
            .join(format!("{DEL_PREFIX}{:016x}", rand::random::<u64>()));
        match std::fs::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SnapshotError::io("renaming for removal", &path, e)),
        }
        // Locked like a temp dir, so a concurrent `clean_incomplete` leaves it to us.
        let fd = open_dir(&doomed, OFlags::RDONLY)
            .map_err(|e| SnapshotError::io("opening", &doomed, e))?;
        unpack::try_lock(fd.as_fd()).map_err(|e| SnapshotError::io("locking", &doomed, e))?;
        std::fs::remove_dir_all(&doomed).map_err(|e| SnapshotError::io("removing", &doomed, e))
    }

    /// The chain IDs of all published snapshots.
    pub fn list(&self) -> Result<Vec<Digest>, SnapshotError> {
        let mut out = Vec::new();
        for entry in
            std::fs::read_dir(&self.dir).map_err(|e| SnapshotError::io("listing", &self.dir, e))?
        {
            let entry = entry.map_err(|e| SnapshotError::io("listing", &self.dir, e))?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes what killed unpacks and removals left behind (`.tmp-*`, `.del-*`), skipping
    /// temp directories whose unpack is still running (their lock is held).
    pub fn clean_incomplete(&self) -> Result<(), SnapshotError> {
        let listing = match std::fs::read_dir(&self.dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SnapshotError::io("listing", &self.dir, e)),
        };
        for entry in listing {
            let entry = entry.map_err(|e| SnapshotError::io("listing", &self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(TMP_PREFIX) && !name.starts_with(DEL_PREFIX) {
                continue;
            }
            let path = entry.path();
            let fd = match open_dir(&path, OFlags::RDONLY) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(SnapshotError::io("opening", &path, e)),
            };
            if !unpack::try_lock(fd.as_fd()).map_err(|e| SnapshotError::io("locking", &path, e))? {
                continue;
            }
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(SnapshotError::io("removing", &path, e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_follows_the_image_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(chain_id(None, &a), a);
        let expected = Digest::of(format!("sha256:{} sha256:{}", a.hex(), b.hex()).as_bytes());
        assert_eq!(chain_id(Some(&a), &b), expected);
    }
}
