//! Snapshots: each layer unpacked once into `ROOT/snapshots/<chain-id hex>/fs`, an overlay lower
//! directory. This module only knows trees keyed by chain ID; which images use them is `meta`'s.
//!
//! An unpack writes into a fresh `.tmp-<random>` directory (locked with `flock` while in use),
//! hashes the uncompressed stream as it is read, and publishes with one `renameat2(NOREPLACE)`
//! only if the stream's digest is the expected diff ID. A process killed at any point leaves at
//! most a `.tmp-*` or `.del-*` directory, which [`Snapshots::clean_incomplete`] removes; a
//! `<hex>` directory is always complete. Layer entries are confined to the tree (see `unpack`).

mod decompress;
mod path;
mod unpack;

pub use crate::error::SnapshotError;
pub use crate::hashing::chain_id;
pub use decompress::decompress;

use crate::hashing::HashingReader;
use berth_oci::Digest;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self as rfs, CWD, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

const TMP_PREFIX: &str = ".tmp-";
const DEL_PREFIX: &str = ".del-";
const READ_BUF: usize = 1 << 20;

/// What an unpack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries applied (0 if `reused` before reading).
    pub entries: u64,
    /// Bytes of the uncompressed stream read (its diff size).
    pub bytes: u64,
    /// Bytes of file content (regular files, symlink targets; hard links not again), which is
    /// how Docker counts an image's size.
    pub content_size: u64,
    /// Another unpack published the same snapshot first; ours was discarded.
    pub reused: bool,
}

impl UnpackStats {
    /// The stats of an unpack that found the snapshot already there and read nothing.
    fn reused() -> UnpackStats {
        UnpackStats {
            entries: 0,
            bytes: 0,
            content_size: 0,
            reused: true,
        }
    }
}

/// A tree extracted into a locked temp directory, not yet published: [`Snapshots::extract`]
/// makes one, [`Snapshots::publish`] makes it visible, dropping it removes it.
pub struct PendingSnapshot {
    tmp: Temp,
    diff_id: Digest,
    stats: UnpackStats,
}

impl PendingSnapshot {
    /// The digest of the whole uncompressed stream that was extracted.
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    /// What the extraction did.
    pub fn stats(&self) -> &UnpackStats {
        &self.stats
    }
}

impl std::fmt::Debug for PendingSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSnapshot")
            .field("path", &self.tmp.path)
            .field("diff_id", &self.diff_id)
            .finish()
    }
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
        if self.exists(chain_id) {
            return Ok(UnpackStats::reused());
        }
        let done = self.extract_to_temp(tar)?;
        if done.diff_id != *expected_diff_id {
            return Err(SnapshotError::DiffIdMismatch {
                expected: expected_diff_id.clone(),
                actual: done.diff_id,
            });
        }
        self.publish(done, chain_id)
    }

    /// Unpacks the UNCOMPRESSED tar `tar` of a base layer (one without a parent) whose diff ID is
    /// not known in advance: the stream is hashed while it is unpacked into a temp directory,
    /// which is then published under the computed digest (for a base layer the chain ID is the
    /// diff ID). Returns that digest. An empty stream is refused: a tar has end-of-archive blocks.
    /// If the snapshot already exists, or a concurrent unpack publishes it first, ours is
    /// discarded and this succeeds.
    pub fn unpack_base(&self, tar: impl Read) -> Result<(Digest, UnpackStats), SnapshotError> {
        let done = self.extract_to_temp(tar)?;
        if done.stats.bytes == 0 {
            return Err(SnapshotError::Read {
                after: None,
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "the layer stream is empty"),
            });
        }
        let diff_id = done.diff_id.clone();
        let stats = self.publish(done, &chain_id(None, &diff_id))?;
        Ok((diff_id, stats))
    }

    /// Extracts the UNCOMPRESSED tar `tar` into a fresh locked temp directory, hashing the whole
    /// stream (read to EOF), without publishing it: the caller checks [`PendingSnapshot::diff_id`]
    /// (and anything else it must verify first) and then calls [`Snapshots::publish`].
    pub fn extract(&self, tar: impl Read) -> Result<PendingSnapshot, SnapshotError> {
        self.extract_to_temp(tar)
    }

    /// Extracts `tar` into a fresh locked temp directory, hashing the whole stream (to EOF).
    fn extract_to_temp(&self, tar: impl Read) -> Result<PendingSnapshot, SnapshotError> {
        let tmp = self.make_temp(TMP_PREFIX)?;
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

        let mut hashing = HashingReader::new(tar);
        let mut reader = BufReader::with_capacity(READ_BUF, &mut hashing);
        let counts = unpack::extract(root, trash, &mut reader)?;
        // The digest covers the end-of-archive blocks and any padding after them.
        io::copy(&mut reader, &mut io::sink()).map_err(|source| SnapshotError::Read {
            after: None,
            source,
        })?;
        drop(reader);
        let (bytes, diff_id) = hashing.finish();
        std::fs::remove_dir_all(&trash_dir)
            .map_err(|e| SnapshotError::io("removing", &trash_dir, e))?;
        Ok(PendingSnapshot {
            tmp,
            diff_id,
            stats: UnpackStats {
                entries: counts.entries,
                bytes,
                content_size: counts.content_size,
                reused: false,
            },
        })
    }

    /// Makes an extracted tree visible as snapshot `chain_id` (synced first unless disabled). If
    /// the snapshot already exists (a concurrent unpack won), ours is discarded and `reused` set.
    pub fn publish(
        &self,
        done: PendingSnapshot,
        chain_id: &Digest,
    ) -> Result<UnpackStats, SnapshotError> {
        let PendingSnapshot {
            mut tmp, mut stats, ..
        } = done;
        let target = self.dir.join(chain_id.hex());
        if self.exists(chain_id) {
            // Already published (a repeated import): no need to sync what is discarded.
            stats.reused = true;
            return Ok(stats);
        }
        if self.sync {
            rfs::syncfs(&tmp.fd).map_err(|e| SnapshotError::io("syncing", &tmp.path, e))?;
        }
        match rfs::renameat_with(CWD, &tmp.path, CWD, &target, RenameFlags::NOREPLACE) {
            Ok(()) => tmp.keep = true,
            Err(Errno::EXIST | Errno::NOTEMPTY) => {
                stats.reused = true;
                return Ok(stats);
            }
            Err(e) => return Err(SnapshotError::io("publishing", &target, e)),
        }
        if self.sync {
            self.sync_dir()?;
        }
        Ok(stats)
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

    fn layer(entries: &[(&str, &[u8])], symlink: Option<(&str, &str)>) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            // Written raw: the builder refuses `..`, which is what a hostile layer has.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Owned by whoever runs the test: unpacking sets owners, and only root may give files away.
            h.set_uid(rustix::process::geteuid().as_raw().into());
            h.set_gid(rustix::process::getegid().as_raw().into());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        if let Some((name, target)) = symlink {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            // Owned by whoever runs the test: unpacking sets owners, and only root may give files away.
            h.set_uid(rustix::process::geteuid().as_raw().into());
            h.set_gid(rustix::process::getegid().as_raw().into());
            b.append_link(&mut h, name, target).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn sandbox() -> (tempfile::TempDir, Snapshots) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("snapshots");
        std::fs::create_dir(&dir).unwrap();
        (t, Snapshots::new(dir).without_sync())
    }

    fn names(s: &Snapshots) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(s.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn unpack_base_publishes_under_the_digest_of_the_stream() {
        let (_t, snaps) = sandbox();
        let tar = layer(&[("etc/hello", b"hi there")], Some(("link", "etc/hello")));
        let (diff_id, stats) = snaps.unpack_base(&tar[..]).unwrap();
        assert_eq!(diff_id, Digest::of(&tar));
        assert_eq!(
            stats,
            UnpackStats {
                entries: 2,
                bytes: tar.len() as u64,
                content_size: 8 + "etc/hello".len() as u64,
                reused: false,
            }
        );
        assert_eq!(snaps.list().unwrap(), vec![chain_id(None, &diff_id)]);
        let fs = snaps.fs_path(&diff_id);
        assert_eq!(std::fs::read(fs.join("etc/hello")).unwrap(), b"hi there");
        // The same stream again finds the published snapshot and leaves no temp directory.
        let (again, stats) = snaps.unpack_base(&tar[..]).unwrap();
        assert_eq!(again, diff_id);
        assert!(stats.reused);
        assert_eq!(names(&snaps), vec![diff_id.hex().to_owned()]);
        // `unpack` with the computed diff ID agrees.
        assert!(snaps.unpack(&diff_id, &diff_id, &tar[..]).unwrap().reused);
    }

    #[test]
    fn unpack_base_refuses_empty_and_hostile_streams_leaving_nothing() {
        let (_t, snaps) = sandbox();
        let err = snaps.unpack_base(&b""[..]).unwrap_err();
        assert!(
            err.to_string().contains("the layer stream is empty"),
            "{err}"
        );
        let tar = layer(&[("ok", b"fine"), ("../../escape", b"x")], None);
        let err = snaps.unpack_base(&tar[..]).unwrap_err().to_string();
        assert!(err.contains("\"../../escape\" escapes the rootfs"), "{err}");
        let mut cut = layer(&[("big", &[7u8; 10_000])], None);
        cut.truncate(3000);
        assert!(matches!(
            snaps.unpack_base(&cut[..]),
            Err(SnapshotError::Read { .. })
        ));
        assert_eq!(names(&snaps), Vec::<String>::new());
    }
}
