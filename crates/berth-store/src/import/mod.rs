//! `import`: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer image.
//!
//! The layer blob is stored exactly as given (no recompression): the input is read once, copied
//! into the ingest file while it is decompressed, checked to be a tar stream and hashed for the
//! diff ID. The snapshot is then unpacked from the stored blob, because the snapshotter needs the
//! diff ID (and so the whole stream) before it may publish.

pub mod changes;
pub mod scan;

use crate::error::{Error, Result};
use crate::layout::{self, Descriptor, Manifest};
use crate::meta::{ImageRecord, LayerRecord};
use crate::{Image, Layer, Store, snapshot, time};
use berth_oci::{Reference, media_type};
use scan::{Tee, layer_media_type, scan_layer};
use serde_json::{Map, Value, json};
use std::io::Read;

/// Options of `import`, as `docker import` has them.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile instructions applied to the config (`--change 'CMD ["sh"]'`).
    pub changes: Vec<String>,
    /// The history comment (`--message`); Docker's default is "Imported from <source>".
    pub message: Option<String>,
    /// `os/arch[/variant]` (`--platform`); default: the host's.
    pub platform: Option<String>,
}

impl Store {
    /// Imports a rootfs tarball as a one-layer image, tags it with `reference` if given, and
    /// unpacks its snapshot so the first run is fast.
    pub fn import(
        &self,
        src: impl Read,
        reference: Option<&Reference>,
        opts: &ImportOptions,
    ) -> Result<Image> {
        // Check everything the user typed before reading a possibly large input.
        let mut container_config = Map::new();
        changes::apply(&opts.changes, &mut container_config)?;
        let platform = match &opts.platform {
            Some(p) => parse_platform(p)?,
            None => layout::host_platform(),
        };
        // A lease against garbage collection until the image is recorded.
        let _lease = self.lock_shared()?;

        let mut ingest = self.blobs().ingest()?;
        let mut tee = Tee::new(src, &mut ingest);
        let scan = scan_layer(&mut tee).map_err(|e| match tee.take_sink_error() {
            // A full disk is not the input's fault.
            Some(source) => Error::Write {
                what: "layer blob into the store".into(),
                source,
            },
            None => e,
        })?;
        let (digest, size) = ingest.commit(None, None)?;
        let layer = Layer {
            chain_id: snapshot::chain_id(None, &scan.diff_id),
            digest,
            diff_id: scan.diff_id.clone(),
            size,
            unpacked_size: scan.unpacked_size,
            content_size: scan.content_size,
            media_type: layer_media_type(scan.compression).to_owned(),
        };
        let snaps = self.snapshots();
        if !snaps.exists(&layer.chain_id) {
            self.unpack_layer(&snaps, &layer)?;
        }

        let created = time::now();
        let comment = opts
            .message
            .clone()
            .unwrap_or_else(|| "Imported from -".to_owned());
        let mut config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": Value::Object(container_config),
            "created": created,
            "history": [{"created": created, "comment": comment}],
            "rootfs": {"type": "layers", "diff_ids": [scan.diff_id.to_string()]},
        });
        if let Some(v) = &platform.variant {
            config["variant"] = json!(v);
        }
        let config_bytes = serde_json::to_vec(&config).expect("config serialises");
        let config_digest = self.blobs().write(&config_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_owned()),
            config: Descriptor {
                media_type: media_type::OCI_CONFIG.to_owned(),
                digest: config_digest.clone(),
                size: config_bytes.len() as u64,
                annotations: None,
                platform: None,
            },
            layers: vec![Descriptor {
                media_type: layer.media_type.clone(),
                digest: layer.digest.clone(),
                size: layer.size,
                annotations: None,
                platform: None,
            }],
        };
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
        let manifest_digest = self.blobs().write(&manifest_bytes)?;
        let rec = ImageRecord {
            manifest_digest,
            manifest_media_type: media_type::OCI_MANIFEST.to_owned(),
            manifest_size: manifest_bytes.len() as u64,
            config_size: config_bytes.len() as u64,
            layers: vec![LayerRecord {
                digest: layer.digest,
                diff_id: layer.diff_id,
                chain_id: layer.chain_id,
                size: layer.size,
                unpacked_size: layer.unpacked_size,
                content_size: layer.content_size,
                media_type: layer.media_type,
            }],
            created: Some(created),
            added: time::now(),
        };
        let refs: Vec<Reference> = reference.into_iter().cloned().collect();
        self.commit_image(&config_digest, rec, &refs)?;
        let state = self.meta().read()?;
        self.build_image(&state, &config_digest)
    }
}

/// Parses `os/arch[/variant]`.
pub(crate) fn parse_platform(s: &str) -> Result<layout::Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match parts.as_slice() {
        [os, arch] if ok(os) && ok(arch) => Ok(layout::Platform {
            os: (*os).into(),
            architecture: (*arch).into(),
            variant: None,
        }),
        [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(layout::Platform {
            os: (*os).into(),
            architecture: (*arch).into(),
            variant: Some((*v).into()),
        }),
        _ => Err(Error::BadPlatform(s.to_owned())),
    }
}
