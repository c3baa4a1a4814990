//! Manifests and indexes as the registry needs them: what they reference (for validation,
//! garbage collection and search), their subject (for the referrers API) and their annotations.
//! OCI image manifests and indexes and Docker schema 2 manifests and lists share one JSON shape
//! for the parts read here.

use std::collections::BTreeMap;

use serde::Deserialize;

pub use berth_oci::media_type::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST as DOCKER_LIST, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};

pub use berth_oci::{Descriptor, Platform};

/// A manifest or index, reduced to what the registry reads.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// `schemaVersion` (2 for everything accepted).
    #[serde(default)]
    pub schema_version: Option<i64>,
    /// The `mediaType` field, if present.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The artifact type (OCI 1.1).
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Image config (manifests only).
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// Layers (manifests only).
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Child manifests (indexes only).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1).
    #[serde(default)]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Wrong schema version.
    #[error("manifest schemaVersion must be 2, found {0:?}")]
    SchemaVersion(Option<i64>),
    /// The body's mediaType contradicts the Content-Type it was sent with.
    #[error("manifest mediaType {body} does not match Content-Type {header}")]
    MediaTypeMismatch {
        /// The body's mediaType.
        body: String,
        /// The request's Content-Type.
        header: String,
    },
}

impl Manifest {
    /// Parses and checks a manifest body.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes)?;
        if m.schema_version != Some(2) {
            return Err(ManifestError::SchemaVersion(m.schema_version));
        }
        Ok(m)
    }

    /// Whether this is an index (or Docker manifest list).
    pub fn is_index(&self) -> bool {
        matches!(
            self.media_type.as_deref(),
            Some(OCI_INDEX) | Some(DOCKER_LIST)
        ) || (self.media_type.is_none() && !self.manifests.is_empty())
    }

    /// Everything this manifest needs present in the registry: config and layers, or child
    /// manifests. (The subject is not required to exist.)
    pub fn references(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter())
            .chain(self.manifests.iter())
    }

    /// The media type to serve it with: the body's `mediaType`, else the one it was pushed with.
    pub fn effective_media_type(&self, content_type: Option<&str>) -> String {
        match (&self.media_type, content_type) {
            (Some(m), _) => m.clone(),
            (None, Some(c)) if !c.is_empty() => c.to_string(),
            (None, _) if !self.manifests.is_empty() => OCI_INDEX.to_string(),
            (None, _) => OCI_MANIFEST.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn manifest(layer: &str) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{D}","size":0}},"layers":[{layer}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn descriptors_are_berth_oci_ones_checked_while_parsing() {
        let m = Manifest::parse(&manifest(&format!(r#"{{"digest":"{D}","size":3}}"#))).unwrap();
        assert_eq!(m.layers[0].size, 3);
        assert_eq!(m.layers[0].digest.to_string(), D);
        for bad in [
            r#"{"digest":"sha256:nothex","size":3}"#.to_string(),
            format!(r#"{{"digest":"{D}"}}"#),
            format!(r#"{{"digest":"{D}","size":-1}}"#),
        ] {
            assert!(
                Manifest::parse(&manifest(&bad)).is_err(),
                "{bad} was accepted"
            );
        }
    }
}
