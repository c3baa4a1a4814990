//! `pull`: resolve a reference to an image manifest (picking the platform from an index), fetch
//! the config, and download the missing layers in parallel, each streamed through digest
//! verification and decompression straight into its snapshot; then record the image.

use crate::client::{Body, Client, Scope};
use crate::error::{Error, Result};
use crate::events::{Event, EventSink, LayerStatus};
use crate::manifest::{self, Document};
use berth_oci::{Digest, Reference};
use berth_store::layout::{Descriptor, Manifest};
use berth_store::meta::LayerRecord;
use berth_store::snapshot::chain_id;
use berth_store::{Image, LayerFetch, NewImage, Store};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, RANGE};
use http::{Method, StatusCode};
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};

/// Body chunks in flight between the network and the unpacker, per layer.
const CHANNEL_CHUNKS: usize = 256;
/// Progress events at most every this many bytes or this long.
const PROGRESS_BYTES: u64 = 512 * 1024;
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// How to pull.
#[derive(Clone)]
pub struct PullOptions {
    /// `os/arch[/variant]`; `None`: the host's.
    pub platform: Option<String>,
    /// Where progress goes.
    pub events: EventSink,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference pulled, fully qualified.
    pub reference: Reference,
    /// The image now in the store.
    pub image: Image,
    /// The digest Docker prints: the index's when the reference named one, else the manifest's.
    pub digest: Digest,
    /// Layers downloaded (not already present).
    pub layers_downloaded: usize,
    /// Bytes received over the network (layers, config, manifests).
    pub bytes_downloaded: u64,
}

/// The repository being pulled from.
#[derive(Clone)]
struct Repo {
    client: Client,
    registry: String,
    repo: String,
}

impl Repo {
    fn scopes(&self) -> [Scope; 1] {
        [Scope::pull(&self.repo)]
    }

    async fn get(&self, target: &str, headers: HeaderMap) -> Result<reqwest::Response> {
        self.client
            .send(
                &self.registry,
                &self.scopes(),
                Method::GET,
                target,
                headers,
                Body::Empty,
            )
            .await
    }

    fn transfer(&self, what: &str, e: reqwest::Error) -> Error {
        Error::Transfer {
            registry: self.registry.clone(),
            what: what.to_owned(),
            message: crate::client::chain(&e),
        }
    }

    /// Reads a whole small body, refusing more than `max` bytes.
    async fn small_body(
        &self,
        what: &str,
        mut resp: reqwest::Response,
        max: u64,
    ) -> Result<Vec<u8>> {
        let too_big = || Error::BadManifest {
            what: what.to_owned(),
            message: format!("larger than the {max} bytes accepted"),
        };
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(too_big());
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transfer(what, e))? {
            if (out.len() + chunk.len()) as u64 > max {
                return Err(too_big());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Fetches a manifest or index by tag or digest and verifies its digest.
    async fn manifest(
        &self,
        target: &str,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Vec<u8>, Option<String>, Digest)> {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(manifest::ACCEPT));
        let path = format!("/v2/{}/manifests/{target}", self.repo);
        let resp = self.get(&path, h).await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::NotFound {
                    reference: what.to_owned(),
                    detail: crate::client::detail(resp).await,
                });
            }
            _ => return Err(Client::error_for(&self.registry, &format!("GET {path}"), resp).await),
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned());
        let announced = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let body = self
            .small_body(what, resp, manifest::MAX_MANIFEST as u64)
            .await?;
        let actual = Digest::of(&body);
        for exp in expected.into_iter().chain(announced.as_ref()) {
            if exp != &actual {
                return Err(Error::DigestMismatch {
                    what: what.to_owned(),
                    expected: exp.clone(),
                    actual,
                });
            }
        }
        Ok((body, content_type, actual))
    }

    /// Fetches a small blob (the config), verifying size and digest.
    async fn small_blob(&self, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
        let path = format!("/v2/{}/blobs/{}", self.repo, desc.digest);
        let resp = self.get(&path, HeaderMap::new()).await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::NotFound {
                    reference: what.to_owned(),
                    detail: crate::client::detail(resp).await,
                });
            }
            _ => return Err(Client::error_for(&self.registry, &format!("GET {path}"), resp).await),
        }
        let body = self.small_body(what, resp, manifest::MAX_CONFIG).await?;
        let actual = Digest::of(&body);
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                what: what.to_owned(),
                expected: desc.digest.clone(),
                actual,
            });
        }
        if body.len() as u64 != desc.size {
            return Err(Error::BadManifest {
                what: what.to_owned(),
                message: format!("{} bytes, but the manifest says {}", body.len(), desc.size),
            });
        }
        Ok(body)
    }
}

/// Pulls `reference` into `store`.
pub async fn pull(
    client: &Client,
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<Pulled> {
    let repo = Repo {
        client: client.clone(),
        registry: reference.registry().to_owned(),
        repo: reference.repository().to_owned(),
    };
    let shown = reference.to_string();
    let target = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    let wanted = match &opts.platform {
        Some(p) => manifest::parse_platform(p)?,
        None => berth_store::layout::host_platform(),
    };
    let what = format!("manifest of {shown}");
    let (body, ctype, digest) = repo.manifest(&target, reference.digest(), &what).await?;
    let mut downloaded = body.len() as u64;
    let (manifest_bytes, manifest, media_type, manifest_digest, index_digest) =
        match manifest::parse(&body, ctype.as_deref(), &what)? {
            Document::Manifest(m, t) => (body, *m, t, digest, None),
            Document::Index(index) => {
                let desc = manifest::choose(&index, &wanted, &shown)?.clone();
                let what = format!("manifest {} of {shown}", desc.digest);
                let (body, ctype, d) = repo
                    .manifest(&desc.digest.to_string(), Some(&desc.digest), &what)
                    .await?;
                downloaded += body.len() as u64;
                match manifest::parse(&body, ctype.as_deref(), &what)? {
                    Document::Manifest(m, t) => (body, *m, t, d, Some(digest)),
                    Document::Index(_) => {
                        return Err(Error::BadManifest {
                            what,
                            message: "an index entry names another index".into(),
                        });
                    }
                }
            }
        };
    (opts.events)(Event::Resolved {
        reference: shown.clone(),
        digest: manifest_digest.clone(),
        index: index_digest.clone(),
    });

    // The lease against garbage collection, from the first layer to the image record.
    let lease = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.lock_shared())
            .await
            .map_err(|e| Error::Invalid(format!("store lock task failed: {e}")))??
    };

    let config_what = format!("config {} of {shown}", manifest.config.digest);
    let config = match store.blobs().read(&manifest.config.digest) {
        Ok(c) if Digest::of(&c) == manifest.config.digest => c,
        _ => {
            let c = repo.small_blob(&manifest.config, &config_what).await?;
            downloaded += c.len() as u64;
            c
        }
    };
    let diff_ids = manifest::diff_ids(&config, &config_what)?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::BadManifest {
            what: format!("image {shown}"),
            message: format!(
                "the manifest lists {} layers but the config {} diff IDs",
                manifest.layers.len(),
                diff_ids.len()
            ),
        });
    }
    let mut layers = plan(&manifest, &diff_ids);
    let (count, bytes) = download_layers(&repo, store, &mut layers, &opts.events).await?;
    downloaded += bytes;

    let new = NewImage {
        manifest: manifest_bytes,
        manifest_media_type: media_type,
        config,
        layers,
        reference: Some(reference.clone()),
        source: Some(format!("{}/{}", repo.registry, repo.repo)),
        index_digest: index_digest.clone(),
    };
    let image = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.add_image(new))
            .await
            .map_err(|e| Error::Invalid(format!("store task failed: {e}")))??
    };
    drop(lease);
    let digest = index_digest.unwrap_or(manifest_digest);
    (opts.events)(Event::Done {
        reference: shown,
        digest: digest.clone(),
    });
    Ok(Pulled {
        reference: reference.clone(),
        image,
        digest,
        layers_downloaded: count,
        bytes_downloaded: downloaded,
    })
}

/// The layer records of an image (sizes of the unpacked trees filled in as layers arrive).
fn plan(manifest: &Manifest, diff_ids: &[Digest]) -> Vec<LayerRecord> {
    let mut parent: Option<Digest> = None;
    manifest
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(d, diff)| {
            let chain = chain_id(parent.as_ref(), diff);
            parent = Some(chain.clone());
            LayerRecord {
                digest: d.digest.clone(),
                diff_id: diff.clone(),
                chain_id: chain,
                size: d.size,
                unpacked_size: 0,
                content_size: 0,
                media_type: d.media_type.clone(),
            }
        })
        .collect()
}

/// Downloads every missing layer, at most `max_concurrent_downloads` at once; the first failure
/// cancels the others (their partial blobs stay for the next attempt). Fills in the unpacked
/// sizes. Returns (layers downloaded, bytes received).
async fn download_layers(
    repo: &Repo,
    store: &Store,
    layers: &mut [LayerRecord],
    events: &EventSink,
) -> Result<(usize, u64)> {
    let permits = Arc::new(Semaphore::new(
        repo.client.config().max_concurrent_downloads.max(1),
    ));
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let mut set = tokio::task::JoinSet::new();
    for (i, l) in layers.iter().enumerate() {
        // The same blob twice in one image has two chain IDs: the second waits on the first's
        // partial-blob lock, then unpacks from the stored blob.
        let snaps = store.snapshots();
        if store.blobs().exists(&l.digest) && snaps.exists(&l.chain_id) {
            events(layer_event(l, LayerStatus::Exists));
            continue;
        }
        events(layer_event(l, LayerStatus::Waiting));
        let (repo, store, l, events, permits, cancel) = (
            repo.clone(),
            store.clone(),
            l.clone(),
            events.clone(),
            permits.clone(),
            cancel_rx.clone(),
        );
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let r = if *cancel.borrow() {
                Err(cancelled(&repo, &l))
            } else {
                fetch_layer(&repo, &store, &l, &events, cancel).await
            };
            (i, r)
        });
    }
    let mut first_err = None;
    let mut count = 0;
    let mut bytes = 0;
    let mut sizes = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, Ok(done))) => {
                if done.downloaded {
                    count += 1;
                }
                bytes += done.received;
                sizes.push((i, done.unpacked_size, done.content_size));
            }
            Ok((_, Err(e))) => {
                if first_err.is_none() {
                    let _ = cancel_tx.send(true);
                    first_err = Some(e);
                }
            }
            Err(e) => {
                if first_err.is_none() {
                    let _ = cancel_tx.send(true);
                    first_err = Some(Error::Invalid(format!("layer download task failed: {e}")));
                }
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    for (i, unpacked, content) in sizes {
        if unpacked > 0 || content > 0 {
            layers[i].unpacked_size = unpacked;
            layers[i].content_size = content;
        }
    }
    Ok((count, bytes))
}

/// The first byte of a 206 response, from `Content-Range: bytes START-END/TOTAL`.
fn range_start(resp: &reqwest::Response) -> Option<u64> {
    let v = resp
        .headers()
        .get(http::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    rest.split('-').next()?.trim().parse().ok()
}

fn layer_event(l: &LayerRecord, status: LayerStatus) -> Event {
    Event::Layer {
        digest: l.digest.clone(),
        size: l.size,
        status,
    }
}

fn cancelled(repo: &Repo, l: &LayerRecord) -> Error {
    Error::Transfer {
        registry: repo.registry.clone(),
        what: format!("layer {}", l.digest),
        message: "cancelled because another layer failed".into(),
    }
}

struct LayerDone {
    downloaded: bool,
    received: u64,
    unpacked_size: u64,
    content_size: u64,
}

/// What flows from the network task to the unpacker.
enum Chunk {
    Data(Bytes),
    End,
    Failed(io::Error),
}

/// The body as a blocking `Read`: a closed channel without `End` is an error (cancelled), so the
/// partial blob is kept rather than judged complete.
struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    cur: Bytes,
    ended: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(b)) => self.cur = b,
                Some(Chunk::End) => self.ended = true,
                Some(Chunk::Failed(e)) => return Err(e),
                None => return Err(io::Error::other("the download was cancelled")),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

async fn fetch_layer(
    repo: &Repo,
    store: &Store,
    l: &LayerRecord,
    events: &EventSink,
    mut cancel: watch::Receiver<bool>,
) -> Result<LayerDone> {
    let fetch = {
        let (s, l) = (store.clone(), l.clone());
        tokio::task::spawn_blocking(move || {
            s.layer_download(&l.digest, l.size, &l.diff_id, &l.chain_id, true)
        })
        .await
        .map_err(|e| Error::Invalid(format!("layer task failed: {e}")))??
    };
    let mut dl = match fetch {
        LayerFetch::Present => {
            events(layer_event(l, LayerStatus::Exists));
            return Ok(LayerDone {
                downloaded: false,
                received: 0,
                unpacked_size: 0,
                content_size: 0,
            });
        }
        LayerFetch::UnpackedLocally(stats) => {
            events(layer_event(l, LayerStatus::Complete));
            return Ok(LayerDone {
                downloaded: false,
                received: 0,
                unpacked_size: stats.bytes,
                content_size: stats.content_size,
            });
        }
        LayerFetch::Download(dl) => dl,
    };
    let what = format!("layer {} from {}/{}", l.digest, repo.registry, repo.repo);
    let path = format!("/v2/{}/blobs/{}", repo.repo, l.digest);
    let mut offset = dl.offset();
    let mut resp = loop {
        let mut h = HeaderMap::new();
        if offset > 0 {
            h.insert(
                RANGE,
                HeaderValue::from_str(&format!("bytes={offset}-")).expect("ascii"),
            );
        }
        let resp = repo.get(&path, h).await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT if offset > 0 && range_start(&resp) == Some(offset) => {
                events(layer_event(l, LayerStatus::Resumed { offset }));
                break resp;
            }
            StatusCode::PARTIAL_CONTENT => {
                // Not the range asked for: start over without one.
                drop(resp);
                dl.restart()?;
                offset = 0;
            }
            StatusCode::OK => {
                if offset > 0 {
                    dl.restart()?;
                    offset = 0;
                }
                break resp;
            }
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
                dl.restart()?;
                offset = 0;
            }
            StatusCode::NOT_FOUND => {
                return Err(Error::NotFound {
                    reference: what,
                    detail: crate::client::detail(resp).await,
                });
            }
            _ => return Err(Client::error_for(&repo.registry, &format!("GET {path}"), resp).await),
        }
    };
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let unpacker = tokio::task::spawn_blocking(move || {
        dl.finish(ChannelReader {
            rx,
            cur: Bytes::new(),
            ended: false,
        })
    });
    let mut done = offset;
    let mut received = 0u64;
    let mut last = (offset, Instant::now());
    let mut net_err: Option<Error> = None;
    loop {
        let next = tokio::select! {
            c = resp.chunk() => c,
            _ = cancel.changed() => {
                net_err = Some(cancelled(repo, l));
                let _ = tx.send(Chunk::Failed(io::Error::other("cancelled"))).await;
                break;
            }
        };
        match next {
            Ok(Some(chunk)) => {
                let n = chunk.len() as u64;
                if tx.send(Chunk::Data(chunk)).await.is_err() {
                    break; // the unpacker stopped: its error says why
                }
                done += n;
                received += n;
                if done - last.0 >= PROGRESS_BYTES || last.1.elapsed() >= PROGRESS_EVERY {
                    last = (done, Instant::now());
                    events(layer_event(l, LayerStatus::Progress { done }));
                }
            }
            Ok(None) => {
                events(layer_event(l, LayerStatus::Progress { done }));
                events(layer_event(l, LayerStatus::Extracting));
                let _ = tx.send(Chunk::End).await;
                break;
            }
            Err(e) => {
                let err = repo.transfer(&what, e);
                let _ = tx
                    .send(Chunk::Failed(io::Error::other(err.to_string())))
                    .await;
                net_err = Some(err);
                break;
            }
        }
    }
    drop(tx);
    let result = unpacker
        .await
        .map_err(|e| Error::Invalid(format!("layer task failed: {e}")))?;
    let stats = match result {
        Ok(s) => s,
        Err(e) => {
            if let Some(n) = net_err {
                return Err(n);
            }
            return Err(match e {
                berth_store::Error::DigestMismatch {
                    expected, actual, ..
                } => Error::DigestMismatch {
                    what,
                    expected,
                    actual,
                },
                e => Error::Store(e),
            });
        }
    };
    events(layer_event(l, LayerStatus::Complete));
    Ok(LayerDone {
        downloaded: true,
        received,
        unpacked_size: stats.unpacked_size,
        content_size: stats.unpack.map_or(0, |u| u.content_size),
    })
}
