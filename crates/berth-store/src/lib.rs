//! berth-store: the content store (blobs by digest, verified atomic ingest), images and tags, layer
//! unpacking into snapshots keyed by chain ID, container overlay layouts, locking and garbage
//! collection. It knows nothing about processes.
//!
//! Three parts, as in containerd: [`content`] only knows blobs by digest, [`snapshot`] only knows
//! unpacked layer trees by chain ID, and [`meta`] (one redb file) knows which images and tags
//! refer to them. `Store` ties them together. Writes go blobs → snapshots → metadata, deletes
//! metadata → snapshots → blobs, so a process killed at any point leaves unreferenced leftovers
//! (which `prune` collects) but never a reference to something missing.
#![deny(missing_docs)]

pub mod archive;
pub mod content;
pub mod download;
mod error;
mod fsutil;
pub mod gc;
mod image;
pub mod import;
pub mod layout;
mod lock;
pub mod meta;
pub mod snapshot;

pub use download::{LayerDownload, LayerFetch, LayerStats, NewImage};
pub use error::{Error, Result};
pub use gc::{DiskUsage, PruneReport};
pub use image::{Image, Layer, Rootfs};
pub use import::ImportOptions;
pub use lock::StoreLock;

use berth_oci::{Digest, Reference};
use content::Blobs;
use meta::{Meta, MetaState};
use snapshot::Snapshots;
use std::path::{Path, PathBuf};

/// An image store rooted at a directory. Cheap to open; holds no database handle between calls,
/// because many berth processes share one root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    blobs: Blobs,
    meta: Meta,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        let blob_dir = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for d in [&blob_dir, &ingest, &root.join("snapshots")] {
            if !d.is_dir() {
                fsutil::create_dir(d)?;
            }
        }
        layout::ensure_oci_layout(root)?;
        Ok(Store {
            root: root.to_path_buf(),
            blobs: Blobs::new(blob_dir, ingest),
            meta: Meta::new(root),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The content store.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The snapshots (`ROOT/snapshots`).
    pub fn snapshots(&self) -> Snapshots {
        Snapshots::new(self.root.join("snapshots"))
    }

    /// Takes `ROOT/store.lock` shared: held while resolving an image and recording what uses it,
    /// and by writers (import, load) so garbage collection never deletes what they are adding.
    /// Locks are per open file: do not ask for the exclusive lock while holding this one.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        StoreLock::acquire(&self.root.join("store.lock"), false)
    }

    /// Takes `ROOT/store.lock` exclusive (garbage collection, image removal).
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        StoreLock::acquire(&self.root.join("store.lock"), true)
    }

    /// All images, newest first.
    pub fn images(&self) -> Result<Vec<Image>> {
        let state = self.meta.read()?;
        let mut out = Vec::with_capacity(state.images.len());
        for id in state.images.keys() {
            out.push(self.build_image(&state, id)?);
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// One image, by reference (`busybox`, `busybox:1`), full id, or unique id prefix.
    pub fn image(&self, name_or_id: &str) -> Result<Image> {
        let state = self.meta.read()?;
        let id = resolve(&state, name_or_id)?;
        self.build_image(&state, &id)
    }

    /// Points `target` at the image `source` names.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        let target = target.clone();
        let root = self.root.clone();
        self.meta.update(
            |s| {
                let id = resolve(s, source)?;
                s.tags.insert(target, id);
                Ok(())
            },
            |s| layout::write_index(&root, s),
        )
    }

    /// Records that the registry repository `source` (`host/repo`) holds image `id`'s blobs.
    pub fn add_source(&self, id: &Digest, source: &str) -> Result<()> {
        self.meta().update(
            |s| {
                let rec = s
                    .images
                    .get_mut(id)
                    .ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
                if !rec.sources.iter().any(|x| x == source) {
                    rec.sources.push(source.to_owned());
                }
                Ok(())
            },
            |_| Ok(()),
        )
    }

    /// The snapshot directories of an image, topmost first, unpacking any that are missing (for
    /// example after a `prune` raced a previous unpack, or for images stored by an older berth).
    pub fn rootfs(&self, image: &Image) -> Result<Rootfs> {
        let snaps = self.snapshots();
        for layer in &image.layers {
            if !snaps.exists(&layer.chain_id) {
                self.unpack_layer(&snaps, layer)?;
            }
        }
        let lowers = image
            .layers
            .iter()
            .rev()
            .map(|l| snaps.fs_path(&l.chain_id))
            .collect();
        Ok(Rootfs { lowers })
    }

    /// The snapshot `fs` directories of an image, topmost first, without unpacking anything.
    pub fn rootfs_paths(&self, image: &Image) -> Vec<PathBuf> {
        let snaps = self.snapshots();
        image
            .layers
            .iter()
            .rev()
            .map(|l| snaps.fs_path(&l.chain_id))
            .collect()
    }

    /// Unpacks a stored layer blob into its snapshot.
    pub(crate) fn unpack_layer(&self, snaps: &Snapshots, layer: &Layer) -> Result<()> {
        let blob = self.blobs.open(&layer.digest)?;
        let reader = std::io::BufReader::with_capacity(256 * 1024, blob);
        let tar = snapshot::decompress(reader)
            .map_err(|e| Error::NotATar(format!("layer {}: {e}", layer.digest)))?;
        snaps
            .unpack(&layer.chain_id, &layer.diff_id, tar)
            .map(|_| ())
            .map_err(|source| Error::Unpack {
                layer: layer.digest.clone(),
                source,
            })
    }

    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    pub(crate) fn build_image(&self, state: &MetaState, id: &Digest) -> Result<Image> {
        let rec = state
            .images
            .get(id)
            .ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
        let config_bytes = self.blobs.read(id)?;
        let config = layout::parse(&config_bytes, format!("image config {id}"))?;
        Ok(Image::from_record(
            id.clone(),
            rec,
            state.refs_of(id),
            config,
        ))
    }

    /// Records a new image (its blobs and snapshots already in place) and points `refs` at it;
    /// rewrites `index.json`.
    pub(crate) fn commit_image(
        &self,
        id: &Digest,
        rec: meta::ImageRecord,
        refs: &[Reference],
    ) -> Result<()> {
        let root = self.root.clone();
        self.meta.update(
            |s| {
                s.images.entry(id.clone()).or_insert(rec);
                for r in refs {
                    s.tags.insert(r.clone(), id.clone());
                }
                Ok(())
            },
            |s| layout::write_index(&root, s),
        )
    }
}

/// Resolves a name to an image id the way Docker does: `sha256:`-prefixed ids first, then a
/// reference, then a unique id prefix.
pub(crate) fn resolve(state: &MetaState, name: &str) -> Result<Digest> {
    if let Some(hex) = name.strip_prefix("sha256:") {
        return resolve_prefix(state, name, hex);
    }
    if let Ok(r) = Reference::parse(name) {
        let found = match r.digest() {
            Some(d) => state
                .images
                .iter()
                .find(|(id, rec)| {
                    *id == d || &rec.manifest_digest == d || rec.index_digests.contains(d)
                })
                .map(|(id, _)| id.clone()),
            None => state.tags.get(&r).cloned(),
        };
        if let Some(id) = found {
            return Ok(id);
        }
    }
    if berth_oci::looks_like_id(name) {
        return resolve_prefix(state, name, name);
    }
    Err(Error::ImageNotFound(name.to_owned()))
}

fn resolve_prefix(state: &MetaState, name: &str, hex: &str) -> Result<Digest> {
    if hex.is_empty() || !berth_oci::looks_like_id(hex) {
        return Err(Error::ImageNotFound(name.to_owned()));
    }
    let mut hits = state.images.keys().filter(|id| id.hex().starts_with(hex));
    match (hits.next(), hits.next()) {
        (Some(id), None) => Ok(id.clone()),
        (Some(_), Some(_)) => Err(Error::AmbiguousId(name.to_owned())),
        _ => Err(Error::ImageNotFound(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meta::{ImageRecord, MetaState};

    fn state_with(ids: &[&str]) -> MetaState {
        let mut s = MetaState::default();
        for hex in ids {
            let id = Digest::from_hex(&hex.repeat(64 / hex.len())).unwrap();
            let rec = ImageRecord {
                manifest_digest: Digest::of(hex.as_bytes()),
                manifest_media_type: String::new(),
                manifest_size: 0,
                config_size: 0,
                layers: Vec::new(),
                created: None,
                added: String::new(),
                sources: Vec::new(),
                index_digests: Vec::new(),
            };
            s.images.insert(id, rec);
        }
        s
    }

    #[test]
    fn resolve_follows_dockers_order() {
        let mut s = state_with(&["ab", "ac", "ff"]);
        let ab = Digest::from_hex(&"ab".repeat(32)).unwrap();
        let ff = Digest::from_hex(&"f".repeat(64)).unwrap();
        // A tag named like a hex prefix wins over the prefix.
        s.tags.insert(Reference::parse("ff").unwrap(), ab.clone());
        assert_eq!(resolve(&s, "ff").unwrap(), ab);
        assert_eq!(resolve(&s, "sha256:ff").unwrap(), ff);
        assert_eq!(resolve(&s, "fff").unwrap(), ff);
        assert!(matches!(resolve(&s, "a"), Err(Error::AmbiguousId(_))));
        assert_eq!(resolve(&s, "aba").unwrap(), ab);
        assert!(matches!(
            resolve(&s, "sha256:"),
            Err(Error::ImageNotFound(_))
        ));
        assert!(matches!(
            resolve(&s, "nothing"),
            Err(Error::ImageNotFound(_))
        ));
        // name@digest: by manifest digest.
        let by_manifest = format!("busybox@{}", Digest::of(b"ac"));
        let ac = Digest::from_hex(&"ac".repeat(32)).unwrap();
        assert_eq!(resolve(&s, &by_manifest).unwrap(), ac);
    }
}
