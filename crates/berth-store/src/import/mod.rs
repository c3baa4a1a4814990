//! `import`: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer image.
//!
//! The layer blob is stored exactly as given (no recompression), and the input is read exactly
//! once: every byte is copied into the ingest file (which hashes it for the blob digest) on its
//! way into the decompressor, whose output the snapshotter unpacks while hashing it for the diff
//! ID ([`crate::snapshot::Snapshots::unpack_base`] publishes under the computed digest, which for a
//! base layer is the chain ID). The blob becomes visible only after the unpack succeeded, so a
//! refused or malformed tarball leaves nothing in the store.

pub mod changes;
pub mod scan;

use crate::error::{Error, Result};
use crate::image::{Image, Layer};
use crate::layout::{self, Descriptor, Manifest};
use crate::meta::{ImageRecord, LayerRecord};
use crate::parts::Parts;
use crate::record::{Recorded, record_images};
use crate::snapshot::{self, SnapshotError};
use berth_oci::media_type::LayerCompression;
use berth_oci::time;
use berth_oci::{Digest, Reference, media_type};
use scan::{Tee, layer_media_type, sniff};
use serde_json::{Map, Value, json};
use std::io::{self, BufRead, BufReader, Read};

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

/// See [`Store::import`](crate::Store::import).
pub(crate) fn import(
    parts: &Parts,
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
    let _lease = parts.lock(false)?;

    let mut ingest = parts.blobs().ingest()?;
    let mut tee = Tee::new(src, &mut ingest);
    let unpacked = unpack_input(&parts.snapshots(), &mut tee);
    // A full disk while storing the blob is not the input's fault.
    if let Some(source) = tee.take_sink_error() {
        return Err(Error::Write {
            what: "layer blob into the store".into(),
            source,
        });
    }
    let (compression, diff_id, stats) = unpacked?;
    let (digest, size) = ingest.commit(None, None)?;
    let layer = Layer {
        chain_id: snapshot::chain_id(None, &diff_id),
        digest,
        diff_id: diff_id.clone(),
        size,
        unpacked_size: stats.bytes,
        content_size: stats.content_size,
        media_type: layer_media_type(compression).to_owned(),
    };
    // The snapshot stays until the image is recorded: removals and GC take the exclusive
    // lock, and `_lease` holds it shared.

    let created = time::now_rfc3339();
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
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    let config_bytes = serde_json::to_vec(&config).expect("config serialises");
    let config_digest = parts.blobs().write(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_owned()),
        config: Descriptor::new(
            media_type::OCI_CONFIG.to_owned(),
            config_digest.clone(),
            config_bytes.len() as u64,
        ),
        layers: vec![Descriptor::new(
            layer.media_type.clone(),
            layer.digest.clone(),
            layer.size,
        )],
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
    let manifest_digest = parts.blobs().write(&manifest_bytes)?;
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
        added: time::now_rfc3339(),
        sources: Vec::new(),
        index_digests: Vec::new(),
    };
    let recorded = Recorded {
        id: config_digest.clone(),
        record: rec,
        refs: reference.into_iter().cloned().collect(),
    };
    let state = record_images(parts, &[recorded])?;
    parts.image(&state, &config_digest)
}

/// Reads the whole input once: sniffs its compression, decompresses it into the snapshotter, and
/// drains what follows the compressed stream (it still belongs to the blob). Errors in reading or
/// parsing the stream are the input's fault ([`Error::NotATar`]); refused entries are
/// [`Error::ImportUnpack`].
fn unpack_input(
    snaps: &snapshot::Snapshots,
    input: impl Read,
) -> Result<(LayerCompression, Digest, snapshot::UnpackStats)> {
    let not_tar = |e: io::Error| Error::NotATar(e.to_string());
    let mut buf = BufReader::with_capacity(256 * 1024, input);
    let head = buf.fill_buf().map_err(not_tar)?;
    if head.is_empty() {
        return Err(Error::NotATar("the input is empty".into()));
    }
    let compression = sniff(head);
    let (diff_id, stats) = {
        let decoder = snapshot::decompress(&mut buf).map_err(not_tar)?;
        snaps.unpack_base(decoder).map_err(|e| match e {
            SnapshotError::Read {
                after: None,
                source,
            } => not_tar(source),
            SnapshotError::Read {
                after: Some(entry),
                source,
            } => Error::NotATar(format!("after entry {entry:?}: {source}")),
            source => Error::ImportUnpack { source },
        })?
    };
    io::copy(&mut buf, &mut io::sink()).map_err(|source| Error::Read {
        what: "layer".into(),
        source,
    })?;
    Ok((compression, diff_id, stats))
}

/// Parses `os/arch[/variant]`.
pub(crate) fn parse_platform(s: &str) -> Result<layout::Platform> {
    Ok(s.parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use std::io::Write;

    /// Counts the bytes read through it.
    struct Counted<'a> {
        data: &'a [u8],
        read: &'a std::cell::Cell<u64>,
    }

    impl Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Owned by whoever runs the test: unpacking sets owners, and only root may give files away.
            h.set_uid(rustix::process::geteuid().as_raw().into());
            h.set_gid(rustix::process::getegid().as_raw().into());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn import_reads_the_input_once_and_stores_it_as_given() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let tar = tar_of(&[("bin/tool", &[5u8; 300_000]), ("etc/motd", b"hello\n")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let read = std::cell::Cell::new(0);
        let img = store
            .import(
                Counted {
                    data: &gz,
                    read: &read,
                },
                None,
                &ImportOptions::default(),
            )
            .unwrap();
        assert_eq!(read.get(), gz.len() as u64);
        let layer = &img.layers[0];
        assert_eq!(layer.digest, Digest::of(&gz));
        assert_eq!(layer.diff_id, Digest::of(&tar));
        assert_eq!(layer.chain_id, layer.diff_id);
        assert_eq!(layer.size, gz.len() as u64);
        assert_eq!(layer.unpacked_size, tar.len() as u64);
        assert_eq!(layer.content_size, 300_006);
        assert_eq!(layer.media_type, media_type::OCI_LAYER_GZIP);
        assert_eq!(store.blobs().read(&layer.digest).unwrap(), gz);
        let fs = store.snapshots().fs_path(&layer.chain_id);
        assert_eq!(std::fs::read(fs.join("etc/motd")).unwrap(), b"hello\n");

        // A plain tar with padding after its end blocks: all of it is the blob and the diff ID.
        let mut padded = tar_of(&[("etc/motd", b"padded\n")]);
        padded.extend_from_slice(&[0u8; 4096]);
        let read = std::cell::Cell::new(0);
        let img = store
            .import(
                Counted {
                    data: &padded,
                    read: &read,
                },
                None,
                &ImportOptions::default(),
            )
            .unwrap();
        assert_eq!(read.get(), padded.len() as u64);
        let layer = &img.layers[0];
        assert_eq!(layer.digest, Digest::of(&padded));
        assert_eq!(layer.diff_id, layer.digest);
        assert_eq!(layer.media_type, media_type::OCI_LAYER_TAR);
    }

    #[test]
    fn a_refused_or_malformed_tarball_stores_nothing() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let opts = ImportOptions::default();
        let hostile = tar_of(&[("ok", b"x"), ("../../etc/passwd", b"pwned")]);
        let err = store.import(&hostile[..], None, &opts).unwrap_err();
        assert!(matches!(err, Error::ImportUnpack { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("\"../../etc/passwd\" escapes the rootfs"),
            "{err}"
        );
        for bad in [&b""[..], &b"not a tar, only words"[..], &hostile[..700]] {
            let err = store.import(bad, None, &opts).unwrap_err();
            assert!(matches!(err, Error::NotATar(_)), "{err:?}");
        }
        assert_eq!(store.blobs().list().unwrap(), Vec::<Digest>::new());
        assert_eq!(store.snapshots().list().unwrap(), Vec::<Digest>::new());
        assert_eq!(
            std::fs::read_dir(store.snapshots().dir()).unwrap().count(),
            0
        );
    }
}
