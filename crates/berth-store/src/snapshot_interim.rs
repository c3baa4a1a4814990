//! Interim layer unpacker with the snapshot module's contract, used only until `snapshot/`
//! lands (see build.rs). It unpacks with the `tar` crate, which refuses paths escaping the
//! target; it does not convert OCI whiteouts.

use berth_oci::{Digest, Digester};
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;

/// OCI chain ID: the diff ID for a base layer, else sha256 of "parent diff_id".
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
    }
}

/// A snapshot operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct SnapshotError {
    action: &'static str,
    path: PathBuf,
    source: io::Error,
}

fn err(action: &'static str, path: &std::path::Path) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError {
        action,
        path,
        source,
    }
}

/// What an unpack did.
#[derive(Debug, Clone, Copy)]
pub struct UnpackStats {
    /// Uncompressed bytes read.
    pub bytes: u64,
}

/// The snapshot directory `ROOT/snapshots`.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

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

impl Snapshots {
    /// Snapshots under `dir`.
    pub fn new(dir: PathBuf) -> Snapshots {
        Snapshots { dir }
    }

    /// `dir/<hex>/fs`.
    pub fn fs_path(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex()).join("fs")
    }

    /// Whether the snapshot was published.
    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.fs_path(chain_id).is_dir()
    }

    /// Unpacks an uncompressed tar into a temp dir and publishes it if its digest matches.
    pub fn unpack(
        &self,
        chain_id: &Digest,
        expected: &Digest,
        tar: impl Read,
    ) -> Result<UnpackStats, SnapshotError> {
        let tmp = self.dir.join(format!(
            "tmp-{}-{:08x}",
            chain_id.hex(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(tmp.join("fs")).map_err(err("create", &tmp))?;
        let result = (|| {
            let mut h = Hashing {
                inner: tar,
                digester: Digester::new(),
            };
            {
                let mut ar = tar::Archive::new(&mut h);
                ar.set_preserve_permissions(true);
                ar.set_preserve_ownerships(true);
                ar.unpack(tmp.join("fs"))
                    .map_err(err("unpack into", &tmp))?;
            }
            io::copy(&mut h, &mut io::sink()).map_err(err("read layer for", &tmp))?;
            let bytes = h.digester.len();
            let got = h.digester.finish();
            if &got != expected {
                return Err(SnapshotError {
                    action: "verify diff id of",
                    path: tmp.clone(),
                    source: io::Error::other(format!("content is {got}, expected {expected}")),
                });
            }
            let dst = self.dir.join(chain_id.hex());
            std::fs::rename(&tmp, &dst).map_err(err("publish", &dst))?;
            Ok(UnpackStats { bytes })
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Removes a snapshot.
    pub fn remove(&self, chain_id: &Digest) -> Result<(), SnapshotError> {
        let p = self.dir.join(chain_id.hex());
        match std::fs::remove_dir_all(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err("remove", &p)(e)),
            _ => Ok(()),
        }
    }

    /// Published snapshots.
    pub fn list(&self) -> Result<Vec<Digest>, SnapshotError> {
        let rd = std::fs::read_dir(&self.dir).map_err(err("list", &self.dir))?;
        Ok(rd
            .flatten()
            .filter_map(|e| Digest::from_hex(&e.file_name().to_string_lossy()).ok())
            .collect())
    }

    /// Removes leftovers of killed unpacks.
    pub fn clean_incomplete(&self) -> Result<(), SnapshotError> {
        let rd = std::fs::read_dir(&self.dir).map_err(err("list", &self.dir))?;
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("tmp-") {
                std::fs::remove_dir_all(e.path()).map_err(err("remove", &e.path()))?;
            }
        }
        Ok(())
    }
}

/// Wraps a reader in a gzip or zstd decoder according to its magic bytes.
pub fn decompress<'a>(r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::new(r);
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Ok(Box::new(r))
    }
}
