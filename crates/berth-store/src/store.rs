//! The `Store` façade: one root's content, snapshots and metadata behind the calls the engine,
//! dist and the CLI make. It holds no logic of its own beyond choosing which part answers: the
//! operations live in the modules below it (see the crate docs for their order).

use crate::archive;
use crate::content::Blobs;
use crate::download::{self, LayerFetch, NewImage};
use crate::error::{Error, Result};
use crate::gc::{self, DiskUsage, PruneReport};
use crate::image::{Image, Layer, Rootfs};
use crate::import::{self, ImportOptions};
use crate::layout;
use crate::lock::StoreLock;
use crate::meta::resolve;
use crate::parts::Parts;
use crate::snapshot::{self, Snapshots, UnpackStats};
use berth_oci::{Digest, Reference};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// An image store rooted at a directory. Cheap to open; holds no database handle between calls,
/// because many berth processes share one root.
#[derive(Debug, Clone)]
pub struct Store {
    parts: Parts,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        Ok(Store {
            parts: Parts::open(root)?,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        self.parts.root()
    }

    /// The content store.
    pub fn blobs(&self) -> &Blobs {
        self.parts.blobs()
    }

    /// The snapshots (`ROOT/snapshots`).
    pub fn snapshots(&self) -> Snapshots {
        self.parts.snapshots()
    }

    /// Takes `ROOT/store.lock` shared: held while resolving an image and recording what uses it,
    /// and by writers (import, load) so garbage collection never deletes what they are adding.
    /// Locks are per open file: do not ask for the exclusive lock while holding this one.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        self.parts.lock(false)
    }

    /// Takes `ROOT/store.lock` exclusive (garbage collection, image removal).
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        self.parts.lock(true)
    }

    /// All images, newest first.
    pub fn images(&self) -> Result<Vec<Image>> {
        let state = self.parts.meta().read()?;
        let mut out = Vec::with_capacity(state.images.len());
        for id in state.images.keys() {
            out.push(self.parts.image(&state, id)?);
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// One image, by reference (`busybox`, `busybox:1`), full id, or unique id prefix.
    pub fn image(&self, name_or_id: &str) -> Result<Image> {
        let state = self.parts.meta().read()?;
        let id = resolve(&state, name_or_id)?;
        self.parts.image(&state, &id)
    }

    /// Points `target` at the image `source` names.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        let target = target.clone();
        let root = self.root().to_path_buf();
        self.parts.meta().update(
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
        self.parts.meta().update(
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
        Ok(Rootfs {
            lowers: self.rootfs_paths(image),
        })
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
    fn unpack_layer(&self, snaps: &Snapshots, layer: &Layer) -> Result<()> {
        let blob = self.blobs().open(&layer.digest)?;
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

    /// Prepares to download layer blob `digest` (`size` bytes, uncompressed digest `diff_id`,
    /// snapshot `chain_id`). With `unpack`, the snapshot is also wanted. Blocks while another
    /// process downloads the same layer, then looks again. Hold [`Store::lock_shared`] around
    /// the whole download.
    pub fn layer_download(
        &self,
        digest: &Digest,
        size: u64,
        diff_id: &Digest,
        chain_id: &Digest,
        unpack: bool,
    ) -> Result<LayerFetch> {
        download::layer_download(&self.parts, digest, size, diff_id, chain_id, unpack)
    }

    /// Unpacks the stored blob `digest` into snapshot `chain_id`, checking its diff ID.
    pub fn unpack_blob(
        &self,
        digest: &Digest,
        diff_id: &Digest,
        chain_id: &Digest,
    ) -> Result<UnpackStats> {
        download::unpack_blob(&self.parts, digest, diff_id, chain_id)
    }

    /// Records a downloaded image: stores manifest and config blobs, checks that every layer
    /// blob and snapshot is present, adds (or merges into) the image record, and points the
    /// reference at it. Hold [`Store::lock_shared`] from the first download until this returns.
    pub fn add_image(&self, new: NewImage) -> Result<Image> {
        download::add_image(&self.parts, new)
    }

    /// Imports a rootfs tarball as a one-layer image, tags it with `reference` if given, and
    /// unpacks its snapshot so the first run is fast.
    pub fn import(
        &self,
        src: impl Read,
        reference: Option<&Reference>,
        opts: &ImportOptions,
    ) -> Result<Image> {
        import::import(&self.parts, src, reference, opts)
    }

    /// Loads every image of an archive (plain, or gzip/zstd-compressed as `docker load` also
    /// accepts); returns them with the names they got.
    pub fn load(&self, src: impl Read) -> Result<Vec<Image>> {
        archive::load(&self.parts, src)
    }

    /// Writes the named images (references or ids) as one archive.
    pub fn save(&self, images: &[&str], dst: impl Write) -> Result<()> {
        archive::save(&self.parts, images, dst)
    }

    /// Removes an image or one of its tags, Docker's way: a tag of an image with several tags is
    /// only untagged; the last tag, or an id, deletes the image unless a container uses it
    /// (`in_use`). With `force`, an id with several tags loses them all, and an image in use loses
    /// its tags but stays (its container still needs the layers). Returns "Untagged: …" /
    /// "Deleted: …" lines.
    pub fn remove_image(
        &self,
        name_or_id: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<Vec<String>> {
        gc::remove_image(&self.parts, name_or_id, force, in_use)
    }

    /// Deletes dangling images (untagged), or with `all` every image no container uses, then
    /// every blob and snapshot no image needs and the leftovers of killed writers. Takes the
    /// exclusive lock, then asks `in_use` which image ids containers reference.
    pub fn prune(&self, all: bool, in_use: &dyn Fn() -> HashSet<Digest>) -> Result<PruneReport> {
        gc::prune(&self.parts, all, in_use)
    }

    /// Image disk usage, given the ids containers use.
    pub fn disk_usage(&self, in_use: &HashSet<Digest>) -> Result<DiskUsage> {
        gc::disk_usage(&self.parts, in_use)
    }
}
