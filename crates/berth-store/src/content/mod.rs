//! The content store: blobs by digest at `ROOT/blobs/sha256/<hex>`, exactly as in an OCI image
//! layout. A blob is written under `ROOT/ingest/`, hashed while written, fsynced, verified against
//! the expected digest and size, and only then renamed into place: no partial blob is ever visible.
//! A download's partial blob (`partial`) is kept across attempts so a killed pull resumes.

mod partial;

pub(crate) use partial::Partial;

use crate::error::{Error, Result};
use crate::fsutil;
use berth_oci::{Digest, Digester};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The blob directory of a store and its ingest area.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
    ingest: PathBuf,
}

impl Blobs {
    /// Blobs under `dir` (`ROOT/blobs/sha256`), staged in `ingest` (`ROOT/ingest`); same filesystem.
    pub fn new(dir: PathBuf, ingest: PathBuf) -> Blobs {
        Blobs { dir, ingest }
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The blob's size in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        match fs::metadata(self.path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobMissing(digest.clone()))
            }
            Err(e) => Err(Error::io("stat blob", self.path(digest), e)),
        }
    }

    /// Opens a blob for reading.
    pub fn open(&self, digest: &Digest) -> Result<File> {
        match File::open(self.path(digest)) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobMissing(digest.clone()))
            }
            Err(e) => Err(Error::io("open blob", self.path(digest), e)),
        }
    }

    /// Reads a whole (small) blob: manifests, configs, indexes.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open(digest)?
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("read blob", self.path(digest), e))?;
        Ok(buf)
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn write(&self, bytes: &[u8]) -> Result<Digest> {
        let mut w = self.ingest()?;
        w.write_all(bytes)
            .map_err(|e| Error::io("write blob", w.path.clone(), e))?;
        Ok(w.commit(None, None)?.0)
    }

    /// Starts writing a blob whose digest is computed on the way.
    pub fn ingest(&self) -> Result<Ingest> {
        let path = self.ingest.join(fsutil::random_name("blob-"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create ingest file", &path, e))?;
        Ok(Ingest {
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
            digester: Digester::new(),
            path,
            blobs: self.clone(),
        })
    }

    /// Moves an already verified file (on the same filesystem, fsynced) into place as `digest`.
    pub(crate) fn adopt(&self, file: &Path, digest: &Digest) -> Result<()> {
        let dst = self.path(digest);
        if dst.is_file() {
            fsutil::remove_file_if_exists(file)?;
            return Ok(());
        }
        fs::rename(file, &dst).map_err(|e| Error::io("publish blob", &dst, e))
    }

    /// fsyncs the blob directory (after one or more [`Blobs::adopt`]).
    pub(crate) fn sync(&self) -> Result<()> {
        fsutil::sync_dir(&self.dir)
    }

    /// Every blob present.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let rd = fs::read_dir(&self.dir).map_err(|e| Error::io("list blobs", &self.dir, e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("list blobs", &self.dir, e))?;
            if let Ok(d) = Digest::from_hex(&entry.file_name().to_string_lossy()) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Deletes a blob; returns the bytes freed (0 if it was not there).
    pub fn remove(&self, digest: &Digest) -> Result<u64> {
        let size = self.size(digest).unwrap_or(0);
        Ok(if fsutil::remove_file_if_exists(&self.path(digest))? {
            size
        } else {
            0
        })
    }

    /// Removes everything in the ingest area (leftovers of killed writers). Callers hold the
    /// store's exclusive lock, so no live writer is using it.
    pub(crate) fn clean_ingest(&self) -> Result<u64> {
        let rd =
            fs::read_dir(&self.ingest).map_err(|e| Error::io("list ingest", &self.ingest, e))?;
        let mut n = 0;
        for entry in rd.flatten() {
            let p = entry.path();
            if partial::partial_in_use(&entry.file_name().to_string_lossy(), &p) {
                // A download in another process (one not holding the store lock) owns it.
                continue;
            }
            if p.is_dir() {
                fsutil::remove_tree_if_exists(&p)?;
            } else {
                fsutil::remove_file_if_exists(&p)?;
            }
            n += 1;
        }
        Ok(n)
    }

    /// The ingest directory (staging area on the blobs' filesystem).
    pub(crate) fn ingest_dir(&self) -> &Path {
        &self.ingest
    }
}

/// A blob being written. Dropped without [`Ingest::commit`], it leaves nothing behind.
pub struct Ingest {
    file: Option<BufWriter<File>>,
    digester: Digester,
    path: PathBuf,
    blobs: Blobs,
}

impl Ingest {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.digester.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.digester.is_empty()
    }

    /// Flushes and fsyncs, verifies the expected digest and size if given, and publishes the blob.
    pub fn commit(mut self, expected: Option<&Digest>, size: Option<u64>) -> Result<(Digest, u64)> {
        let writer = self.file.take().expect("ingest file present until commit");
        let file = writer
            .into_inner()
            .map_err(|e| Error::io("write blob", self.path.clone(), e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io("sync blob", &self.path, e))?;
        drop(file);
        let len = self.digester.len();
        let digest = std::mem::take(&mut self.digester).finish();
        if let Some(exp) = expected
            && exp != &digest
        {
            return Err(Error::DigestMismatch {
                expected: exp.clone(),
                actual: digest,
                context: "written to the store",
            });
        }
        if let (Some(want), Some(exp)) = (size, expected)
            && want != len
        {
            return Err(Error::SizeMismatch {
                digest: exp.clone(),
                expected: want,
                actual: len,
            });
        }
        self.blobs.adopt(&self.path, &digest)?;
        self.blobs.sync()?;
        Ok((digest, len))
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("ingest already committed"))?;
        let n = f.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // Removes the temp file unless commit renamed it; harmless after a rename.
        self.file.take();
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> (tempfile::TempDir, Blobs) {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("blobs/sha256")).unwrap();
        fs::create_dir_all(t.path().join("ingest")).unwrap();
        let b = Blobs::new(t.path().join("blobs/sha256"), t.path().join("ingest"));
        (t, b)
    }

    #[test]
    fn write_then_read_by_digest() {
        let (_t, b) = blobs();
        let d = b.write(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(b.read(&d).unwrap(), b"hello");
        assert_eq!(b.list().unwrap(), vec![d.clone()]);
        assert_eq!(b.remove(&d).unwrap(), 5);
        assert!(!b.exists(&d));
    }

    #[test]
    fn commit_with_wrong_digest_publishes_nothing() {
        let (t, b) = blobs();
        let mut w = b.ingest().unwrap();
        w.write_all(b"abc").unwrap();
        let wrong = Digest::of(b"abd");
        let err = w.commit(Some(&wrong), Some(3)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(b.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn commit_with_wrong_size_is_refused() {
        let (_t, b) = blobs();
        let mut w = b.ingest().unwrap();
        w.write_all(b"abc").unwrap();
        let err = w.commit(Some(&Digest::of(b"abc")), Some(4)).unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    }

    #[test]
    fn dropped_ingest_leaves_nothing() {
        let (t, b) = blobs();
        let mut w = b.ingest().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
        assert!(b.list().unwrap().is_empty());
    }
}
