//! Image and tag metadata in one redb database, `ROOT/meta.redb`.
//!
//! redb locks its file per process, and many berth processes share a root, so the database is
//! opened for one transaction at a time, under a `flock` on `ROOT/meta.lock` (shared to read,
//! exclusive to write), and closed again. Reads open it read-only; a file left needing repair by
//! a killed writer is repaired by the next opener under the exclusive lock.

mod resolve;

pub(crate) use resolve::resolve;

use crate::error::{Error, Result};
use crate::lock::StoreLock;
use berth_oci::{Digest, Reference};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// image id hex → JSON [`ImageRecord`].
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
/// fully qualified reference → image id hex.
const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");

/// What the database keeps about one image (the config and manifest themselves are blobs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The manifest blob.
    pub manifest_digest: Digest,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// The manifest's size.
    pub manifest_size: u64,
    /// The config blob's size.
    pub config_size: u64,
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// `created` from the config, if any.
    pub created: Option<String>,
    /// When the image entered this store (RFC 3339).
    pub added: String,
    /// Registry repositories known to hold this image's blobs (`host/repo`): where it was pulled
    /// from or pushed to. A push to another repository of the same registry mounts from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Digests of indexes (manifest lists) this image was pulled through, so `name@<index
    /// digest>` finds it as Docker's repo digests do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index_digests: Vec<Digest>,
}

/// What the database keeps about one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The (possibly compressed) blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Chain ID, the key of its snapshot.
    pub chain_id: Digest,
    /// Blob size.
    pub size: u64,
    /// Uncompressed size.
    pub unpacked_size: u64,
    /// Bytes of file content, as Docker counts image size.
    #[serde(default)]
    pub content_size: u64,
    /// Blob media type.
    pub media_type: String,
}

/// The whole metadata state: small enough to read at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaState {
    /// Images by id (config digest).
    pub images: BTreeMap<Digest, ImageRecord>,
    /// Tags (fully qualified references) → image id.
    pub tags: BTreeMap<Reference, Digest>,
}

impl MetaState {
    /// The references pointing at an image, sorted.
    pub fn refs_of(&self, id: &Digest) -> Vec<Reference> {
        self.tags
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The metadata database of one root.
#[derive(Debug, Clone)]
pub struct Meta {
    db: PathBuf,
    lock: PathBuf,
}

impl Meta {
    /// The database `ROOT/meta.redb` with its lock `ROOT/meta.lock`.
    pub fn new(root: &Path) -> Meta {
        Meta {
            db: root.join("meta.redb"),
            lock: root.join("meta.lock"),
        }
    }

    fn err(&self, what: &'static str, e: impl std::fmt::Display) -> Error {
        Error::Meta {
            path: self.db.clone(),
            what,
            message: e.to_string(),
        }
    }

    /// Reads the whole state.
    pub fn read(&self) -> Result<MetaState> {
        {
            let _l = StoreLock::acquire(&self.lock, false)?;
            if !self.db.exists() {
                return Ok(MetaState::default());
            }
            if let Ok(db) = redb::ReadOnlyDatabase::open(&self.db) {
                let state = self.read_from(&db);
                let _ = db.close();
                return state;
            }
        }
        // The read-only open refuses a file that needs repair (a writer was killed): repair it
        // by opening it for writing, under the exclusive lock.
        let _l = StoreLock::acquire(&self.lock, true)?;
        let db = redb::Database::create(&self.db).map_err(|e| self.err("open", e))?;
        let state = self.read_from(&db);
        db.close().map_err(|e| self.err("close", e))?;
        state
    }

    fn read_from(&self, db: &impl ReadableDatabase) -> Result<MetaState> {
        let tx = db.begin_read().map_err(|e| self.err("begin read", e))?;
        let mut state = MetaState::default();
        match tx.open_table(IMAGES) {
            Ok(t) => {
                for row in t.iter().map_err(|e| self.err("read images", e))? {
                    let (k, v) = row.map_err(|e| self.err("read images", e))?;
                    let (id, rec) = decode_image(k.value(), v.value())?;
                    state.images.insert(id, rec);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(self.err("open images table", e)),
        }
        match tx.open_table(TAGS) {
            Ok(t) => {
                for row in t.iter().map_err(|e| self.err("read tags", e))? {
                    let (k, v) = row.map_err(|e| self.err("read tags", e))?;
                    let (r, id) = decode_tag(k.value(), v.value())?;
                    state.tags.insert(r, id);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(self.err("open tags table", e)),
        }
        Ok(state)
    }

    /// Reads the state, lets `f` change it, and commits the difference in one durable
    /// transaction; then calls `after` with the new state while still holding the lock (used to
    /// rewrite `index.json` in commit order). Nothing is written if `f` fails.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut MetaState) -> Result<T>,
        after: impl FnOnce(&MetaState) -> Result<()>,
    ) -> Result<T> {
        let _l = StoreLock::acquire(&self.lock, true)?;
        let db = redb::Database::create(&self.db).map_err(|e| self.err("open", e))?;
        let before = self.read_from(&db)?;
        let mut state = before.clone();
        let out = f(&mut state)?;
        if state != before {
            let tx = db.begin_write().map_err(|e| self.err("begin write", e))?;
            {
                let mut images = tx
                    .open_table(IMAGES)
                    .map_err(|e| self.err("open images table", e))?;
                for id in before
                    .images
                    .keys()
                    .filter(|k| !state.images.contains_key(*k))
                {
                    images
                        .remove(id.hex())
                        .map_err(|e| self.err("delete image", e))?;
                }
                for (id, rec) in &state.images {
                    if before.images.get(id) != Some(rec) {
                        let json = serde_json::to_vec(rec).expect("image record serialises");
                        images
                            .insert(id.hex(), json.as_slice())
                            .map_err(|e| self.err("write image", e))?;
                    }
                }
                let mut tags = tx
                    .open_table(TAGS)
                    .map_err(|e| self.err("open tags table", e))?;
                for r in before.tags.keys().filter(|k| !state.tags.contains_key(*k)) {
                    tags.remove(r.to_string().as_str())
                        .map_err(|e| self.err("delete tag", e))?;
                }
                for (r, id) in &state.tags {
                    if before.tags.get(r) != Some(id) {
                        tags.insert(r.to_string().as_str(), id.hex())
                            .map_err(|e| self.err("write tag", e))?;
                    }
                }
            }
            tx.commit().map_err(|e| self.err("commit", e))?;
        }
        db.close().map_err(|e| self.err("close", e))?;
        after(&state)?;
        Ok(out)
    }
}

fn decode_image(key: &str, value: &[u8]) -> Result<(Digest, ImageRecord)> {
    let bad = |m: String| Error::BadRecord {
        key: format!("image {key}"),
        message: m,
    };
    let id = Digest::from_hex(key).map_err(|e| bad(e.to_string()))?;
    let rec = serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?;
    Ok((id, rec))
}

fn decode_tag(key: &str, value: &str) -> Result<(Reference, Digest)> {
    let bad = |m: String| Error::BadRecord {
        key: format!("tag {key}"),
        message: m,
    };
    let r = Reference::parse(key).map_err(|e| bad(e.to_string()))?;
    let id = Digest::from_hex(value).map_err(|e| bad(e.to_string()))?;
    Ok((r, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> ImageRecord {
        let d = Digest::of(&[n]);
        ImageRecord {
            manifest_digest: d.clone(),
            manifest_media_type: "m".into(),
            manifest_size: 1,
            config_size: 2,
            layers: vec![LayerRecord {
                digest: d.clone(),
                diff_id: d.clone(),
                chain_id: d,
                size: 3,
                unpacked_size: 4,
                content_size: 1,
                media_type: "l".into(),
            }],
            created: None,
            added: "2026-01-01T00:00:00Z".into(),
            sources: Vec::new(),
            index_digests: Vec::new(),
        }
    }

    #[test]
    fn update_then_read_round_trips_and_deletes() {
        let t = tempfile::tempdir().unwrap();
        let m = Meta::new(t.path());
        assert_eq!(m.read().unwrap(), MetaState::default());
        let id = Digest::of(b"cfg");
        let r = Reference::parse("busybox").unwrap();
        m.update(
            |s| {
                s.images.insert(id.clone(), record(1));
                s.tags.insert(r.clone(), id.clone());
                Ok(())
            },
            |_| Ok(()),
        )
        .unwrap();
        let s = m.read().unwrap();
        assert_eq!(s.images[&id], record(1));
        assert_eq!(s.refs_of(&id), vec![r.clone()]);
        m.update(
            |s| {
                s.tags.clear();
                s.images.clear();
                Ok(())
            },
            |_| Ok(()),
        )
        .unwrap();
        assert_eq!(m.read().unwrap(), MetaState::default());
    }

    #[test]
    fn failed_update_writes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let m = Meta::new(t.path());
        let res: Result<()> = m.update(
            |s| {
                s.images.insert(Digest::of(b"x"), record(2));
                Err(Error::ImageNotFound("x".into()))
            },
            |_| Ok(()),
        );
        assert!(res.is_err());
        assert!(m.read().unwrap().images.is_empty());
    }
}
