//! An archive unpacked into a private directory under `ROOT/ingest`, every file hashed on the way.
//! Nothing here is visible to the store until `load` moves verified blobs into place; the
//! directory is removed on drop (and by `prune` after a kill).

use crate::error::{Error, Result};
use crate::fsutil;
use crate::hashing::HashingWriter;
use berth_oci::Digest;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// JSON documents in an archive larger than this are refused.
const MAX_DOCUMENT: u64 = 64 << 20;

/// One file extracted from the archive.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    /// Where it is on disk.
    pub path: PathBuf,
    /// Digest of its content.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// The extracted archive.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: PathBuf,
    files: HashMap<String, Staged>,
    links: HashMap<String, String>,
}

/// Normalises an archive path: no leading `/` or `./`, `..` resolved lexically within the archive.
fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

impl Staging {
    /// Extracts `src` (an uncompressed tar) into a new directory in `ingest`. Blobs stored under
    /// `blobs/sha256/<hex>` are checked against their names.
    pub(crate) fn extract(ingest: &Path, src: impl Read) -> Result<Staging> {
        let dir = ingest.join(fsutil::random_name("load-"));
        fsutil::create_dir(&dir)?;
        let mut staging = Staging {
            dir,
            files: HashMap::new(),
            links: HashMap::new(),
        };
        let bad = |e: io::Error| Error::BadArchive(format!("reading the tar stream: {e}"));
        let mut archive = tar::Archive::new(src);
        for (n, entry) in archive.entries().map_err(bad)?.enumerate() {
            let mut entry = entry.map_err(bad)?;
            let raw = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let name = normalize(&raw);
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(bad)?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let resolved = if kind.is_hard_link() || target.starts_with('/') {
                    normalize(&target)
                } else {
                    let parent = name.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                    normalize(&format!("{parent}/{target}"))
                };
                staging.links.insert(name, resolved);
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let path = staging.dir.join(format!("f{n}"));
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| Error::io("create staging file", &path, e))?;
            let mut w = HashingWriter::new(&mut file);
            io::copy(&mut entry, &mut w).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => bad(e),
                _ => Error::BadArchive(format!("extracting {raw}: {e}")),
            })?;
            let (size, digest) = w.finish();
            file.sync_all()
                .map_err(|e| Error::io("sync staging file", &path, e))?;
            if let Some(hex) = name.strip_prefix("blobs/sha256/")
                && let Ok(expected) = Digest::from_hex(hex)
                && expected != digest
            {
                return Err(Error::DigestMismatch {
                    expected,
                    actual: digest,
                    context: "in archive",
                });
            }
            staging.files.insert(name, Staged { path, digest, size });
        }
        Ok(staging)
    }

    /// A file by its archive path, following links.
    pub(crate) fn get(&self, name: &str) -> Option<&Staged> {
        let mut name = normalize(name);
        for _ in 0..16 {
            if let Some(f) = self.files.get(&name) {
                return Some(f);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    /// Whether the archive has this path.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A blob under `blobs/sha256/`.
    pub(crate) fn blob(&self, digest: &Digest) -> Option<&Staged> {
        self.get(&format!("blobs/sha256/{}", digest.hex()))
    }

    /// Reads a (JSON) document from the archive.
    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>> {
        let f = self
            .get(name)
            .ok_or_else(|| Error::BadArchive(format!("{name} is missing")))?;
        read_small(f, name)
    }
}

/// Reads a staged document, refusing huge ones.
pub(crate) fn read_small(f: &Staged, name: &str) -> Result<Vec<u8>> {
    if f.size > MAX_DOCUMENT {
        return Err(Error::BadArchive(format!(
            "{name} is {} bytes, too large for a JSON document",
            f.size
        )));
    }
    std::fs::read(&f.path).map_err(|e| Error::io("read staging file", &f.path, e))
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn normalized_paths_never_climb_or_start_at_root(p in "[a-z./]{0,40}") {
            let n = normalize(&p);
            prop_assert!(!n.starts_with('/'));
            prop_assert!(n.split('/').all(|c| c != ".." && c != "."));
        }
    }

    #[test]
    fn links_are_followed_relative_to_their_directory() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "a/layer.tar", &b"abc"[..]).unwrap();
        let mut l = tar::Header::new_ustar();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, "b/layer.tar", "../a/layer.tar")
            .unwrap();
        let bytes = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = Staging::extract(dir.path(), &bytes[..]).unwrap();
        assert_eq!(s.get("./b/layer.tar").unwrap().digest, Digest::of(b"abc"));
        assert!(s.get("c").is_none());
        drop(s);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
