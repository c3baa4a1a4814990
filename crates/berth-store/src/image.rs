//! Images as callers see them: config, layers with their chain IDs, references; built from the
//! metadata's record and the config blob.

use crate::content::Blobs;
use crate::error::{Error, Result};
use crate::layout;
use crate::meta::{ImageRecord, MetaState};
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
    /// Digests of the indexes it was pulled through (what a registry calls it by tag).
    pub index_digests: Vec<Digest>,
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
    /// Docker's `RepoDigests`: `repository@digest` for every repository it was pulled from or
    /// pushed to (by the index digest when it came through one, else the manifest digest), and
    /// every digest reference it has, deduplicated and sorted.
    pub fn repo_digests(&self) -> Vec<String> {
        let digest = self.index_digests.first().unwrap_or(&self.manifest_digest);
        let mut out: Vec<String> = self
            .sources
            .iter()
            .filter_map(|s| Reference::parse(s).ok())
            .map(|r| r.without_digest().familiar_name() + "@" + &digest.to_string())
            .chain(
                self.references
                    .iter()
                    .filter_map(|r| r.digest().map(|d| format!("{}@{d}", r.familiar_name()))),
            )
            .collect();
        out.sort();
        out.dedup();
        out
    }

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
            index_digests: rec.index_digests.clone(),
        }
    }
}

/// The image `id` of a metadata state, with its config read from the blobs.
pub(crate) fn build(blobs: &Blobs, state: &MetaState, id: &Digest) -> Result<Image> {
    let rec = state
        .images
        .get(id)
        .ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
    let config_bytes = blobs.read(id)?;
    let config = layout::parse(&config_bytes, format!("image config {id}"))?;
    Ok(Image::from_record(
        id.clone(),
        rec,
        state.refs_of(id),
        config,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(sources: &[&str], index: Option<Digest>, refs: &[&str]) -> Image {
        Image {
            id: Digest::of(b"config"),
            manifest_digest: Digest::of(b"manifest"),
            references: refs.iter().map(|r| Reference::parse(r).unwrap()).collect(),
            config: serde_json::from_str(
                r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
            )
            .unwrap(),
            layers: Vec::new(),
            size: 0,
            created: None,
            added: String::new(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            index_digests: index.into_iter().collect(),
        }
    }

    #[test]
    fn repo_digests_name_each_source_by_the_digest_a_registry_knows() {
        let m = Digest::of(b"manifest");
        let i = Digest::of(b"index");
        let img = image(
            &["docker.io/library/busybox", "127.0.0.1:5000/team/app"],
            None,
            &["busybox:latest"],
        );
        assert_eq!(
            img.repo_digests(),
            vec![
                format!("127.0.0.1:5000/team/app@{m}"),
                format!("busybox@{m}")
            ]
        );
        // Pulled through an index: the index digest is what the registry serves the tag as.
        let by_index = image(&["127.0.0.1:5000/team/app"], Some(i.clone()), &[]);
        assert_eq!(
            by_index.repo_digests(),
            vec![format!("127.0.0.1:5000/team/app@{i}")]
        );
        // A digest reference counts once, whether or not it is also a source.
        let r = format!("127.0.0.1:5000/team/app@{m}");
        let by_digest = image(&["127.0.0.1:5000/team/app"], None, &[&r]);
        assert_eq!(by_digest.repo_digests(), vec![r]);
    }
}
