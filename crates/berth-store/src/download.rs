//! Layer downloads into the store: one pass over the bytes stores the blob, verifies its digest,
//! size and diff ID, and unpacks it into its snapshot; a killed download resumes from the bytes
//! already on disk. Then [`Store::add_image`](crate::Store::add_image) records the pulled image.
//!
//! The blob side is content's (`content::partial`: the locked partial blob at
//! `ROOT/ingest/pull-<hex>`, appended to as bytes arrive, checked before it is renamed into
//! `blobs/sha256/`); the tree side is the snapshots' ([`Snapshots::extract`] into a locked temp
//! directory, published after the blob). This module only drives both over one stream.

use crate::content::Partial;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::hashing::HashingReader;
use crate::image::Image;
use crate::layout;
use crate::meta::{ImageRecord, LayerRecord};
use crate::parts::Parts;
use crate::record::{Recorded, record_images};
use crate::snapshot::{self, PendingSnapshot, Snapshots, UnpackStats};
use berth_oci::time;
use berth_oci::{Digest, Reference};
use std::io::{self, Read};

const READ_BUF: usize = 1 << 20;

/// What [`Store::layer_download`](crate::Store::layer_download) found.
#[derive(Debug)]
pub enum LayerFetch {
    /// The blob (and, if asked, the snapshot) is already in the store.
    Present,
    /// The blob was in the store but its snapshot was not: it was unpacked from the local blob.
    UnpackedLocally(UnpackStats),
    /// The layer must be downloaded: feed the bytes after [`LayerDownload::offset`] to
    /// [`LayerDownload::finish`].
    Download(Box<LayerDownload>),
}

/// What a finished layer download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStats {
    /// Bytes read from `rest` (the network), not counting the resumed offset.
    pub received: u64,
    /// Bytes kept from an earlier attempt.
    pub resumed: u64,
    /// Length of the uncompressed stream.
    pub unpacked_size: u64,
    /// The snapshot unpack's statistics (`None` when only the blob was wanted).
    pub unpack: Option<UnpackStats>,
}

/// A layer download in progress: holds the partial blob locked until finished or dropped.
#[derive(Debug)]
pub struct LayerDownload {
    partial: Partial,
    diff_id: Digest,
    chain_id: Digest,
    unpack: bool,
    parts: Parts,
}

/// See [`Store::layer_download`](crate::Store::layer_download).
pub(crate) fn layer_download(
    parts: &Parts,
    digest: &Digest,
    size: u64,
    diff_id: &Digest,
    chain_id: &Digest,
    unpack: bool,
) -> Result<LayerFetch> {
    let snaps = parts.snapshots();
    let wanted = || parts.blobs().exists(digest) && (!unpack || snaps.exists(chain_id));
    if wanted() {
        return Ok(LayerFetch::Present);
    }
    let partial = parts.blobs().partial(digest, size)?;
    if wanted() {
        // Someone finished it while we waited; the file we locked is a fresh empty one.
        partial.discard();
        return Ok(LayerFetch::Present);
    }
    if parts.blobs().exists(digest) {
        partial.discard();
        let stats = unpack_blob(parts, digest, diff_id, chain_id)?;
        return Ok(LayerFetch::UnpackedLocally(stats));
    }
    Ok(LayerFetch::Download(Box::new(LayerDownload {
        partial,
        diff_id: diff_id.clone(),
        chain_id: chain_id.clone(),
        unpack,
        parts: parts.clone(),
    })))
}

/// See [`Store::unpack_blob`](crate::Store::unpack_blob).
pub(crate) fn unpack_blob(
    parts: &Parts,
    digest: &Digest,
    diff_id: &Digest,
    chain_id: &Digest,
) -> Result<UnpackStats> {
    let blob = parts.blobs().open(digest)?;
    let reader = io::BufReader::with_capacity(READ_BUF, blob);
    let tar =
        snapshot::decompress(reader).map_err(|e| Error::NotATar(format!("layer {digest}: {e}")))?;
    parts
        .snapshots()
        .unpack(chain_id, diff_id, tar)
        .map_err(|source| match source {
            snapshot::SnapshotError::DiffIdMismatch { expected, actual } => Error::DiffIdMismatch {
                layer: digest.clone(),
                expected,
                actual,
            },
            source => Error::Unpack {
                layer: digest.clone(),
                source,
            },
        })
}

/// An image whose blobs and snapshots are in the store, to be recorded by
/// [`Store::add_image`](crate::Store::add_image).
#[derive(Debug, Clone)]
pub struct NewImage {
    /// The image manifest as the registry served it (digest already verified by the caller).
    pub manifest: Vec<u8>,
    /// Its media type.
    pub manifest_media_type: String,
    /// The config blob (its digest is the image id).
    pub config: Vec<u8>,
    /// Layers, bottom first; an `unpacked_size`/`content_size` of 0 is filled in from another
    /// image sharing the snapshot, or from the snapshot itself.
    pub layers: Vec<LayerRecord>,
    /// What to point at the image: a tag, or `name@digest` for a pull by digest.
    pub reference: Option<Reference>,
    /// Registry repository (`host/repo`) known to hold its blobs.
    pub source: Option<String>,
    /// The index it was picked from, so `name@<index digest>` finds it.
    pub index_digest: Option<Digest>,
}

/// See [`Store::add_image`](crate::Store::add_image).
pub(crate) fn add_image(parts: &Parts, new: NewImage) -> Result<Image> {
    let manifest: layout::Manifest = layout::parse(&new.manifest, "pulled image manifest")?;
    let id = Digest::of(&new.config);
    if manifest.config.digest != id {
        return Err(Error::DigestMismatch {
            expected: manifest.config.digest,
            actual: id,
            context: "given as the config of the manifest",
        });
    }
    let listed: Vec<&Digest> = manifest.layers.iter().map(|l| &l.digest).collect();
    let given: Vec<&Digest> = new.layers.iter().map(|l| &l.digest).collect();
    if listed != given {
        return Err(Error::BadImage(format!(
            "the layers given for image {id} are not the ones its manifest lists"
        )));
    }
    parts.blobs().write(&new.config)?;
    let manifest_digest = parts.blobs().write(&new.manifest)?;
    let config: serde_json::Value = layout::parse(&new.config, format!("image config {id}"))?;
    let created = config
        .get("created")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let snaps = parts.snapshots();
    let state = parts.meta().read()?;
    let mut layers = new.layers;
    for l in &mut layers {
        if !parts.blobs().exists(&l.digest) {
            return Err(Error::BlobMissing(l.digest.clone()));
        }
        if !snaps.exists(&l.chain_id) {
            return Err(Error::SnapshotMissing {
                layer: l.digest.clone(),
                chain_id: l.chain_id.clone(),
            });
        }
        if l.unpacked_size == 0 && l.content_size == 0 {
            fill_sizes(&state, &snaps, l);
        }
    }
    let record = ImageRecord {
        manifest_digest,
        manifest_media_type: new.manifest_media_type,
        manifest_size: new.manifest.len() as u64,
        config_size: new.config.len() as u64,
        layers,
        created,
        added: time::now_rfc3339(),
        sources: new.source.iter().cloned().collect(),
        index_digests: new.index_digest.iter().cloned().collect(),
    };
    let recorded = Recorded {
        id: id.clone(),
        record,
        refs: new.reference.into_iter().collect(),
    };
    let state = record_images(parts, &[recorded])?;
    parts.image(&state, &id)
}

/// A layer's sizes, when the caller did not know them: from another image sharing the snapshot,
/// else measured on the snapshot.
fn fill_sizes(state: &crate::meta::MetaState, snaps: &Snapshots, l: &mut LayerRecord) {
    let known = state
        .images
        .values()
        .flat_map(|r| r.layers.iter())
        .find(|x| x.chain_id == l.chain_id && x.content_size > 0);
    match known {
        Some(x) => {
            l.unpacked_size = x.unpacked_size;
            l.content_size = x.content_size;
        }
        None => {
            l.content_size = fsutil::tree_size(&snaps.fs_path(&l.chain_id));
            l.unpacked_size = l.content_size;
        }
    }
}

impl LayerDownload {
    /// Bytes of the blob already on disk from an earlier, interrupted attempt: ask the registry
    /// for the bytes from here on (`Range: bytes=<offset>-`).
    pub fn offset(&self) -> u64 {
        self.partial.offset()
    }

    /// The server ignored the range (sent the whole blob): forget the bytes kept so far.
    pub fn restart(&mut self) -> Result<()> {
        self.partial.restart()
    }

    /// Reads the kept bytes and then `rest` (the blob from [`LayerDownload::offset`] on),
    /// appending `rest` to the partial blob, hashing and unpacking everything in one pass. Then
    /// checks size, digest and diff ID, publishes the blob and after it the snapshot. If `rest`
    /// fails the partial blob is kept for the next attempt; any other failure deletes it.
    pub fn finish(self, rest: impl Read) -> Result<LayerStats> {
        match self.run(rest) {
            Ok(stats) => Ok(stats),
            Err((e, keep)) => {
                if !keep {
                    self.partial.discard();
                }
                Err(e)
            }
        }
    }

    /// Extracts the uncompressed stream into a pending snapshot, or (blob only) hashes it for
    /// the diff ID; returns the pending snapshot, if any, and the uncompressed length.
    fn consume(&self, tar: impl Read) -> Result<(Option<PendingSnapshot>, u64)> {
        let digest = self.partial_digest();
        if self.unpack {
            let pending = self
                .parts
                .snapshots()
                .extract(tar)
                .map_err(|source| Error::Unpack {
                    layer: digest.clone(),
                    source,
                })?;
            let n = pending.stats().bytes;
            return Ok((Some(pending), n));
        }
        let mut counting = HashingReader::new(tar);
        io::copy(&mut counting, &mut io::sink()).map_err(|source| Error::Read {
            what: format!("layer {digest}"),
            source,
        })?;
        let (n, actual) = counting.finish();
        if actual != self.diff_id {
            return Err(Error::DiffIdMismatch {
                layer: digest.clone(),
                expected: self.diff_id.clone(),
                actual,
            });
        }
        Ok((None, n))
    }

    fn partial_digest(&self) -> &Digest {
        self.partial.digest()
    }

    fn run(&self, rest: impl Read) -> std::result::Result<LayerStats, (Error, bool)> {
        let digest = self.partial_digest();
        let mut stream = self.partial.stream(rest).map_err(|e| (e, false))?;
        // One pass: the decompressor (and the extractor) pull bytes through the hasher.
        let outcome: Result<(Option<PendingSnapshot>, u64)> = (|| {
            let what = format!("layer {digest}");
            let mut buffered = io::BufReader::with_capacity(READ_BUF, &mut stream);
            let tar = snapshot::decompress(&mut buffered).map_err(|source| Error::Read {
                what: what.clone(),
                source,
            })?;
            let result = self.consume(tar)?;
            // Whatever follows the compressed stream is part of the blob too.
            io::copy(&mut buffered, &mut io::sink())
                .map_err(|source| Error::Read { what, source })?;
            Ok(result)
        })();
        if outcome.is_err() && !stream.rest_failed() {
            // The stream did not unpack: if the blob is corrupt, say so rather than how the
            // decompressor or tar reader tripped over it. Read the rest to judge.
            let _ = io::copy(&mut stream, &mut io::sink());
        }
        let end = stream.finish();
        // Too long, too short or not the announced digest (a stream that overran is refused
        // whatever else happened).
        let verdict = self.partial.check(&end);
        let (pending, unpacked_size) = match outcome {
            Ok(x) => x,
            Err(e) => {
                if (end.overran.is_some() || !end.rest_failed)
                    && let Err(corrupt) = verdict
                {
                    return Err((corrupt, false));
                }
                return Err((e, end.rest_failed));
            }
        };
        verdict.map_err(|e| (e, false))?;
        if let Some(p) = &pending
            && p.diff_id() != &self.diff_id
        {
            return Err((
                Error::DiffIdMismatch {
                    layer: digest.clone(),
                    expected: self.diff_id.clone(),
                    actual: p.diff_id().clone(),
                },
                false,
            ));
        }
        self.partial
            .commit(self.parts.blobs())
            .map_err(|e| (e, false))?;
        let unpack = match pending {
            Some(p) => Some(self.parts.snapshots().publish(p, &self.chain_id).map_err(
                |source| {
                    (
                        Error::Unpack {
                            layer: digest.clone(),
                            source,
                        },
                        false,
                    )
                },
            )?),
            None => None,
        };
        Ok(LayerStats {
            received: end.received,
            resumed: self.partial.offset(),
            unpacked_size,
            unpack,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use std::fs;
    use std::io::{Cursor, Write};

    struct Layer {
        blob: Vec<u8>,
        digest: Digest,
        diff_id: Digest,
    }

    fn layer(content: &[u8]) -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        // Owned by whoever runs the test: unpacking sets owners, and only root may give files away.
        h.set_uid(rustix::process::geteuid().as_raw().into());
        h.set_gid(rustix::process::getegid().as_raw().into());
        b.append_data(&mut h, "file", content).unwrap();
        let tar = b.into_inner().unwrap();
        let diff_id = Digest::of(&tar);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        let blob = e.finish().unwrap();
        Layer {
            digest: Digest::of(&blob),
            blob,
            diff_id,
        }
    }

    fn start(s: &Store, l: &Layer, unpack: bool) -> LayerFetch {
        s.layer_download(
            &l.digest,
            l.blob.len() as u64,
            &l.diff_id,
            &l.diff_id,
            unpack,
        )
        .unwrap()
    }

    fn download(f: LayerFetch) -> Box<LayerDownload> {
        match f {
            LayerFetch::Download(d) => d,
            other => panic!("expected a download, got {other:?}"),
        }
    }

    /// Yields `n` bytes of `data`, then fails like a dropped connection.
    struct Broken<'a>(&'a [u8]);
    impl Read for Broken<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
            }
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn random(n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        rand::fill(&mut v[..]);
        v
    }

    #[test]
    fn network_failure_keeps_the_partial_and_the_next_attempt_resumes() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let content = random(300_000);
        let l = layer(&content);
        let d = download(start(&s, &l, true));
        assert_eq!(d.offset(), 0);
        let err = d.finish(Broken(&l.blob[..100_000])).unwrap_err();
        assert!(err.to_string().contains("reset"), "{err}");
        assert!(!s.blobs().exists(&l.digest));
        assert!(s.snapshots().list().unwrap().is_empty());

        let d = download(start(&s, &l, true));
        assert_eq!(d.offset(), 100_000);
        let stats = d.finish(Cursor::new(&l.blob[100_000..])).unwrap();
        assert_eq!(stats.resumed, 100_000);
        assert_eq!(stats.received, l.blob.len() as u64 - 100_000);
        assert_eq!(s.blobs().read(&l.digest).unwrap(), l.blob);
        let file = s.snapshots().fs_path(&l.diff_id).join("file");
        assert_eq!(std::fs::read(file).unwrap(), content);
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
        assert!(matches!(start(&s, &l, true), LayerFetch::Present));
    }

    #[test]
    fn restart_discards_kept_bytes_and_corruption_deletes_the_partial() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let l = layer(b"hello");
        let d = download(start(&s, &l, true));
        let _ = d.finish(Broken(&l.blob[..10])).unwrap_err();
        let mut d = download(start(&s, &l, true));
        assert_eq!(d.offset(), 10);
        d.restart().unwrap();
        assert_eq!(d.offset(), 0);
        let mut bad = l.blob.clone();
        let n = bad.len();
        bad[n - 5] ^= 1; // the gzip trailer: decompression may fail, the digest surely does
        let err = d.finish(Cursor::new(bad)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
        assert!(!s.blobs().exists(&l.digest));
        assert!(s.snapshots().list().unwrap().is_empty());
    }

    #[test]
    fn a_longer_or_shorter_stream_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let l = layer(b"exact");
        let mut long = l.blob.clone();
        long.extend_from_slice(&[0u8; 100]);
        let err = download(start(&s, &l, true)).finish(&long[..]).unwrap_err();
        assert!(
            matches!(err, Error::SizeMismatch { actual, .. } if actual > l.blob.len() as u64),
            "{err}"
        );
        let short = &l.blob[..l.blob.len() - 3];
        let err = download(start(&s, &l, true)).finish(short).unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
        assert!(s.snapshots().list().unwrap().is_empty());
        assert!(!s.blobs().exists(&l.digest));
    }

    #[test]
    fn blob_only_and_snapshot_only_cases() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let l = layer(b"content");
        // The snapshot is there but the blob is not: download without unpacking, diff ID checked.
        s.snapshots()
            .unpack(
                &l.diff_id,
                &l.diff_id,
                snapshot::decompress(&l.blob[..]).unwrap(),
            )
            .unwrap();
        let d = download(start(&s, &l, false));
        let stats = d.finish(&l.blob[..]).unwrap();
        assert!(stats.unpack.is_none());
        assert!(stats.unpacked_size > 0);
        assert!(s.blobs().exists(&l.digest));
        // The blob is there but the snapshot is not: unpacked from the local blob.
        s.snapshots().remove(&l.diff_id).unwrap();
        assert!(matches!(
            start(&s, &l, true),
            LayerFetch::UnpackedLocally(_)
        ));
        assert!(s.snapshots().exists(&l.diff_id));
    }

    #[test]
    fn a_second_downloader_waits_then_finds_the_layer() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let l = layer(&random(50_000));
        let d = download(start(&s, &l, true));
        let (s2, digest, size, diff) = (
            s.clone(),
            l.digest.clone(),
            l.blob.len() as u64,
            l.diff_id.clone(),
        );
        let waiter = std::thread::spawn(move || {
            matches!(
                s2.layer_download(&digest, size, &diff, &diff, true)
                    .unwrap(),
                LayerFetch::Present
            )
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!waiter.is_finished(), "blocked on the partial's lock");
        d.finish(&l.blob[..]).unwrap();
        assert!(waiter.join().unwrap());
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn collection_skips_a_locked_partial_and_removes_a_stale_one() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let live = layer(b"live");
        let stale = layer(b"stale");
        let d = download(start(&s, &live, true));
        let _ = download(start(&s, &stale, true)).finish(Broken(&stale.blob[..5]));
        s.blobs().clean_ingest().unwrap();
        let left: Vec<_> = fs::read_dir(t.path().join("ingest"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec![format!("pull-{}", live.digest.hex())]);
        d.finish(&live.blob[..]).unwrap();
        // prune (exclusive store lock) cannot start while a pull holds the shared lease.
        let lease = s.lock_shared().unwrap();
        let s2 = s.clone();
        let gc = std::thread::spawn(move || s2.prune(false, &|| Default::default()).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!gc.is_finished());
        drop(lease);
        gc.join().unwrap();
    }

    fn new_image(l: &Layer, reference: &str) -> NewImage {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": [l.diff_id.to_string()]}}))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": berth_oci::media_type::OCI_MANIFEST,
            "config": {"mediaType": berth_oci::media_type::OCI_CONFIG,
                       "digest": Digest::of(&config).to_string(), "size": config.len()},
            "layers": [{"mediaType": berth_oci::media_type::OCI_LAYER_GZIP,
                        "digest": l.digest.to_string(), "size": l.blob.len()}]}))
        .unwrap();
        NewImage {
            manifest,
            manifest_media_type: berth_oci::media_type::OCI_MANIFEST.into(),
            config,
            layers: vec![LayerRecord {
                digest: l.digest.clone(),
                diff_id: l.diff_id.clone(),
                chain_id: l.diff_id.clone(),
                size: l.blob.len() as u64,
                unpacked_size: 0,
                content_size: 0,
                media_type: berth_oci::media_type::OCI_LAYER_GZIP.into(),
            }],
            reference: Some(Reference::parse(reference).unwrap()),
            source: Some("127.0.0.1:5000/team/app".into()),
            index_digest: Some(Digest::of(b"an index")),
        }
    }

    #[test]
    fn add_image_checks_and_records() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let l = layer(b"image content");
        let err = s
            .add_image(new_image(&l, "127.0.0.1:5000/team/app:v1"))
            .unwrap_err();
        assert!(matches!(err, Error::BlobMissing(_)), "{err}");
        download(start(&s, &l, true)).finish(&l.blob[..]).unwrap();
        let mut lying = new_image(&l, "127.0.0.1:5000/team/app:v1");
        lying.config.push(b' ');
        assert!(matches!(
            s.add_image(lying).unwrap_err(),
            Error::DigestMismatch { .. }
        ));
        assert!(s.images().unwrap().is_empty());

        let by_digest = format!("127.0.0.1:5000/team/app@{}", Digest::of(b"whatever"));
        let img = s.add_image(new_image(&l, &by_digest)).unwrap();
        assert_eq!(img.sources, vec!["127.0.0.1:5000/team/app".to_owned()]);
        assert!(img.layers[0].content_size >= 13);
        let index_ref = format!("127.0.0.1:5000/team/app@{}", Digest::of(b"an index"));
        assert_eq!(s.image(&index_ref).unwrap().id, img.id);
        let manifest_ref = format!("127.0.0.1:5000/team/app@{}", img.manifest_digest);
        assert_eq!(s.image(&manifest_ref).unwrap().id, img.id);
        // A digest reference is not dangling: prune keeps the image and its layer.
        s.prune(false, &Default::default).unwrap();
        assert_eq!(s.images().unwrap().len(), 1);
        assert!(s.blobs().exists(&l.digest));
        assert!(s.snapshots().exists(&l.diff_id));
    }
}
