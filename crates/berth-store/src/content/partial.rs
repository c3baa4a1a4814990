//! Partial blobs: a layer download's bytes kept at `ROOT/ingest/pull-<hex>` under an exclusive
//! `flock`, so a killed download resumes from what is on disk and two processes pulling the same
//! blob take turns. The bytes are appended as they arrive (no per-chunk fsync) and hashed with
//! the kept ones in one pass; the blob is fsynced and renamed into `blobs/sha256/` only after its
//! size and digest were checked ([`Partial::check`], [`Partial::commit`]).

use super::Blobs;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::hashing::HashingReader;
use berth_oci::Digest;
use rustix::fs::{FlockOperation, flock};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Prefix of partial blobs in `ROOT/ingest`.
const PARTIAL_PREFIX: &str = "pull-";

/// A partial blob, locked until dropped.
#[derive(Debug)]
pub(crate) struct Partial {
    file: File,
    path: PathBuf,
    offset: u64,
    digest: Digest,
    size: u64,
}

impl Blobs {
    /// Opens (creating) and locks the partial blob of `digest` (`size` bytes announced). Blocks
    /// while another process holds it. Kept bytes beyond `size` cannot be a prefix of the blob:
    /// they are dropped.
    pub(crate) fn partial(&self, digest: &Digest, size: u64) -> Result<Partial> {
        let path = self
            .ingest
            .join(format!("{PARTIAL_PREFIX}{}", digest.hex()));
        let file = lock_partial(&path)?;
        let mut offset = file
            .metadata()
            .map_err(|e| Error::io("stat partial blob", &path, e))?
            .len();
        if offset > size {
            file.set_len(0)
                .map_err(|e| Error::io("truncate partial blob", &path, e))?;
            offset = 0;
        }
        Ok(Partial {
            file,
            path,
            offset,
            digest: digest.clone(),
            size,
        })
    }
}

/// Whether an ingest entry is a partial blob locked by a live download (which `clean_ingest`
/// must leave alone).
pub(super) fn partial_in_use(name: &str, path: &Path) -> bool {
    if !name.starts_with(PARTIAL_PREFIX) {
        return false;
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    flock(&file, FlockOperation::NonBlockingLockExclusive).is_err()
}

/// Opens and locks `path`, making sure the locked file is still the one the path names (a
/// previous holder may have renamed or deleted it while we waited).
fn lock_partial(path: &Path) -> Result<File> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io("open partial blob", path, e))?;
        loop {
            match flock(&file, FlockOperation::LockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("lock partial blob", path, e.into())),
            }
        }
        let ours = file
            .metadata()
            .map_err(|e| Error::io("stat partial blob", path, e))?;
        match fs::metadata(path) {
            Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => return Ok(file),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat partial blob", path, e)),
        }
    }
}

impl Partial {
    /// The blob's digest.
    pub(crate) fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Bytes kept from an earlier, interrupted attempt.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Forgets the kept bytes (the server sent the whole blob again).
    pub(crate) fn restart(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .map_err(|e| Error::io("truncate partial blob", &self.path, e))?;
        self.offset = 0;
        Ok(())
    }

    /// Deletes the partial blob (it is corrupt, or someone else stored the blob meanwhile).
    pub(crate) fn discard(&self) {
        let _ = fs::remove_file(&self.path);
    }

    /// The whole blob as one stream: the kept bytes, then `rest`, which is appended to the
    /// partial blob as it is read. Everything read is hashed.
    pub(crate) fn stream<R: Read>(&self, rest: R) -> Result<PartialStream<'_, R>> {
        let io_err = |action, e| Error::io(action, &self.path, e);
        let mut reader = File::open(&self.path).map_err(|e| io_err("open partial blob", e))?;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| io_err("seek partial blob", e))?;
        let mut appender = &self.file;
        appender
            .seek(SeekFrom::Start(self.offset))
            .map_err(|e| io_err("seek partial blob", e))?;
        let appending = Appending {
            rest,
            file: &self.file,
            rest_failed: false,
            received: 0,
            pos: self.offset,
            kicked: self.offset,
            limit: self.size,
            overran: None,
        };
        Ok(PartialStream {
            inner: HashingReader::new(reader.take(self.offset).chain(appending)),
        })
    }

    /// Checks what a [`PartialStream`] read against the announced size and digest.
    pub(crate) fn check(&self, end: &StreamEnd) -> Result<()> {
        if let Some(seen) = end.overran {
            return Err(Error::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: seen,
            });
        }
        if end.len != self.size {
            return Err(Error::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: end.len,
            });
        }
        if end.digest != self.digest {
            return Err(Error::DigestMismatch {
                expected: self.digest.clone(),
                actual: end.digest.clone(),
                context: "downloaded from the registry",
            });
        }
        Ok(())
    }

    /// Publishes the checked blob: fsyncs it, renames it into `blobs/sha256/` and fsyncs that.
    pub(crate) fn commit(&self, blobs: &Blobs) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Error::io("sync partial blob", &self.path, e))?;
        blobs.adopt(&self.path, &self.digest)?;
        blobs.sync()
    }
}

/// Reads `rest`, appending every byte to the partial blob and remembering whether `rest` itself
/// failed (a network error keeps the partial for the next attempt).
struct Appending<'a, R> {
    rest: R,
    file: &'a File,
    rest_failed: bool,
    received: u64,
    /// File offset where the next write lands, and where writeback was last started.
    pos: u64,
    kicked: u64,
    /// The blob's announced size: a longer stream is refused as soon as it is.
    limit: u64,
    /// The length seen when the stream overran `limit`.
    overran: Option<u64>,
}

impl<R: Read> Read for Appending<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.rest.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.rest_failed = true;
                return Err(e);
            }
        };
        if self.pos + n as u64 > self.limit {
            self.overran = Some(self.pos + n as u64);
            return Err(io::Error::other(format!(
                "the blob is longer than the {} bytes announced",
                self.limit
            )));
        }
        if let Err(e) = self.file.write_all(&buf[..n]) {
            return Err(io::Error::other(format!("writing the partial blob: {e}")));
        }
        self.received += n as u64;
        self.pos += n as u64;
        if self.pos - self.kicked >= fsutil::WRITEBACK_EVERY {
            fsutil::start_writeback(self.file, self.kicked, self.pos - self.kicked);
            self.kicked = self.pos;
        }
        Ok(n)
    }
}

/// The whole blob of a [`Partial`] as one hashed stream.
pub(crate) struct PartialStream<'a, R> {
    inner: HashingReader<io::Chain<io::Take<File>, Appending<'a, R>>>,
}

/// What a [`PartialStream`] read.
#[derive(Debug)]
pub(crate) struct StreamEnd {
    /// Bytes of the blob read (kept and received).
    pub len: u64,
    /// Their digest.
    pub digest: Digest,
    /// `rest` itself failed (not the partial file, not the consumer).
    pub rest_failed: bool,
    /// Bytes read from `rest`.
    pub received: u64,
    /// The length seen when `rest` ran past the announced size.
    pub overran: Option<u64>,
}

impl<R> PartialStream<'_, R> {
    /// Whether reading `rest` failed so far.
    pub(crate) fn rest_failed(&self) -> bool {
        self.inner.get_ref().get_ref().1.rest_failed
    }

    /// Ends the stream, reporting what was read.
    pub(crate) fn finish(self) -> StreamEnd {
        let (_, appending) = self.inner.get_ref().get_ref();
        let (rest_failed, received, overran) =
            (appending.rest_failed, appending.received, appending.overran);
        let (len, digest) = self.inner.finish();
        StreamEnd {
            len,
            digest,
            rest_failed,
            received,
            overran,
        }
    }
}

impl<R: Read> Read for PartialStream<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}
