//! The parts of one store root, opened together: the content store, the snapshots and the
//! metadata, with the root's lock. The operations above (record, download, import, archive, gc)
//! work on these; the [`Store`](crate::Store) façade hands them over.

use crate::content::Blobs;
use crate::error::Result;
use crate::fsutil;
use crate::image::{self, Image};
use crate::layout;
use crate::lock::StoreLock;
use crate::meta::{Meta, MetaState};
use crate::snapshot::Snapshots;
use berth_oci::Digest;
use std::path::{Path, PathBuf};

/// A store root's parts. Cheap to clone; holds no database handle.
#[derive(Debug, Clone)]
pub(crate) struct Parts {
    root: PathBuf,
    blobs: Blobs,
    meta: Meta,
}

impl Parts {
    /// Opens (creating if needed) the parts at `root`.
    pub(crate) fn open(root: &Path) -> Result<Parts> {
        let blob_dir = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for d in [&blob_dir, &ingest, &root.join("snapshots")] {
            if !d.is_dir() {
                fsutil::create_dir(d)?;
            }
        }
        layout::ensure_oci_layout(root)?;
        Ok(Parts {
            root: root.to_path_buf(),
            blobs: Blobs::new(blob_dir, ingest),
            meta: Meta::new(root),
        })
    }

    /// The root directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The content store.
    pub(crate) fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The metadata database.
    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The snapshots (`ROOT/snapshots`).
    pub(crate) fn snapshots(&self) -> Snapshots {
        Snapshots::new(self.root.join("snapshots"))
    }

    /// `ROOT/store.lock`, shared (readers and writers) or exclusive (removals, GC).
    pub(crate) fn lock(&self, exclusive: bool) -> Result<StoreLock> {
        StoreLock::acquire(&self.root.join("store.lock"), exclusive)
    }

    /// The image `id` of `state`.
    pub(crate) fn image(&self, state: &MetaState, id: &Digest) -> Result<Image> {
        image::build(&self.blobs, state, id)
    }
}
