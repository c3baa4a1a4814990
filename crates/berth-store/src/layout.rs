//! The OCI image-layout documents (`oci-layout`, `index.json`, manifests, descriptors) as berth
//! reads and writes them. Parsing is lenient about fields berth does not use, strict about the
//! ones it does (digests are parsed and verified).

use crate::error::{Error, Result};
use crate::fsutil;
use crate::meta::MetaState;
use berth_oci::media_type;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Annotation carrying the tag (or reference) of a manifest in an index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and Docker's) annotation carrying the fully qualified image name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The content of `oci-layout`.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

pub use berth_oci::{Descriptor, Platform};

/// An image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
}

/// An image index (also the shape of `index.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Entries.
    pub manifests: Vec<Descriptor>,
}

/// Parses JSON, naming the document in the error.
pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: impl Into<String>) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: what.into(),
        source,
    })
}

/// The index entries for a store state: one per tag (annotated with the full name and the tag, as
/// containerd and Docker write them), and one unannotated entry per untagged image.
pub fn index_for(state: &MetaState) -> Index {
    let mut manifests = Vec::new();
    for (id, rec) in &state.images {
        let refs = state.refs_of(id);
        let desc = Descriptor::new(
            rec.manifest_media_type.clone(),
            rec.manifest_digest.clone(),
            rec.manifest_size,
        );
        manifests.extend(named_entries(&desc, &refs));
    }
    Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.to_owned()),
        manifests,
    }
}

/// The index entries of one manifest: one per name (annotated with the full name and the tag, as
/// containerd and Docker write them), or one unannotated entry when it has no name.
pub fn named_entries(desc: &Descriptor, refs: &[berth_oci::Reference]) -> Vec<Descriptor> {
    if refs.is_empty() {
        return vec![desc.clone()];
    }
    refs.iter()
        .map(|r| {
            let mut a = BTreeMap::new();
            a.insert(ANNOTATION_IMAGE_NAME.to_owned(), r.to_string());
            if let Some(tag) = r.tag() {
                a.insert(ANNOTATION_REF_NAME.to_owned(), tag.to_owned());
            }
            Descriptor {
                annotations: Some(a),
                ..desc.clone()
            }
        })
        .collect()
}

/// Rewrites `ROOT/index.json` (atomically) for a state. Called under the metadata's exclusive lock,
/// so any `.index.json.tmp-*` already there is what a killed writer left: it is removed first.
pub fn write_index(root: &Path, state: &MetaState) -> Result<()> {
    berth_fs::remove_stale_temps(&root.join("index.json"))?;
    // `oci-layout` has no lock of its own: only a dead opener's temporaries go.
    berth_fs::remove_orphaned_temps(&root.join("oci-layout"))?;
    let json = serde_json::to_vec_pretty(&index_for(state)).expect("index serialises");
    fsutil::write_atomic(&root.join("index.json"), &json)
}

/// Writes `ROOT/oci-layout` if it is missing, first removing what a killed first open left (the
/// temporaries of writers that are gone; no lock guards this file, so a live opener's stays).
pub fn ensure_oci_layout(root: &Path) -> Result<()> {
    let p = root.join("oci-layout");
    if p.exists() {
        Ok(())
    } else {
        berth_fs::remove_orphaned_temps(&p)?;
        fsutil::write_atomic(&p, OCI_LAYOUT.as_bytes())
    }
}

/// The platform berth runs on, in OCI terms (GOOS/GOARCH).
pub fn host_platform() -> Platform {
    Platform::host()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_the_index_removes_what_a_killed_writer_left() {
        let t = tempfile::tempdir().unwrap();
        let stale = t.path().join(".index.json.tmp-0123abcd");
        std::fs::write(&stale, b"half an index").unwrap();
        let other = t.path().join(".other.tmp-0123abcd");
        std::fs::write(&other, b"not ours").unwrap();
        write_index(t.path(), &MetaState::default()).unwrap();
        assert!(!stale.exists(), "the stale temp index is still there");
        assert!(
            other.exists(),
            "a file that is not the index's temp was removed"
        );
        let idx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(t.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(idx["schemaVersion"], 2);
    }
}
