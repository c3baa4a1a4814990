//! Images as callers see them: config, layers with their chain IDs, references.

use crate::meta::ImageRecord;
use berth_oci::{Digest, Reference};
use oci_spec::image::ImageConfiguration;
use std::path::PathBuf;

/// An image in the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// Config digest: Docker's image ID.
    pub id: Digest,
    /// The manifest this store keeps for it.
    pub manifest_digest: Digest,
    /// Tags pointing at it, sorted.
    pub references: Vec<Reference>,
    /// The parsed config.
    pub config: ImageConfiguration,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// Bytes of file content in all layers, as `docker images` shows it.
    pub size: u64,
    /// `created` from the config (RFC 3339).
    pub created: Option<String>,
    /// When the image entered this store (RFC 3339).
    pub added: String,
    /// Registry repositories known to hold its blobs (`host/repo`).
    pub sources: Vec<String>,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer blob (possibly compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// OCI chain ID: the key of the layer's snapshot.
    pub chain_id: Digest,
    /// Blob size.
    pub size: u64,
    /// Uncompressed size (length of the tar stream).
    pub unpacked_size: u64,
    /// Bytes of file content, as Docker counts image size.
    pub content_size: u64,
    /// Blob media type.
    pub media_type: String,
}

/// The lower directories of an overlay for an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// Snapshot `fs` directories, TOPMOST FIRST (overlay lowerdir order), absolute.
    pub lowers: Vec<PathBuf>,
}

impl Image {
    pub(crate) fn from_record(
        id: Digest,
        rec: &ImageRecord,
        references: Vec<Reference>,
        config: ImageConfiguration,
    ) -> Image {
        let layers: Vec<Layer> = rec
            .layers
            .iter()
            .map(|l| Layer {
                digest: l.digest.clone(),
                diff_id: l.diff_id.clone(),
                chain_id: l.chain_id.clone(),
                size: l.size,
                unpacked_size: l.unpacked_size,
                content_size: l.content_size,
                media_type: l.media_type.clone(),
            })
            .collect();
        Image {
            id,
            manifest_digest: rec.manifest_digest.clone(),
            references,
            config,
            size: layers.iter().map(|l| l.content_size).sum(),
            layers,
            created: rec.created.clone(),
            added: rec.added.clone(),
            sources: rec.sources.clone(),
        }
    }
}
