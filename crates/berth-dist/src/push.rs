//! `push`: upload an image from the store, blobs first (only those the registry lacks; mounted
//! from another repository of the same registry when one is known to have them; chunked when
//! large), the manifest last.
//!
//! The manifest is sent exactly as the store keeps it, so its digest on the registry is the
//! image's manifest digest here. Every blob it names is checked to be in the store (with the
//! size the manifest gives) before any request is made.

use crate::client::{Body, Client, Scope, SentBytes};
use crate::error::{Error, Result};
use crate::events::{Event, EventSink, LayerStatus};
use berth_oci::{Descriptor, Digest, Reference, media_type};
use berth_store::Store;
use futures::{StreamExt, TryStreamExt};
use http::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use reqwest::Url;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    /// Where progress goes.
    pub events: EventSink,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Where the image went, fully qualified.
    pub reference: Reference,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Blobs the registry already had.
    pub blobs_existing: usize,
    /// Bytes of blob data the registry accepted (a chunk cut off and sent again counts once).
    pub bytes_uploaded: u64,
}

/// How often (in bytes) a chunked upload reports progress at most: once per chunk, and chunks
/// are at least this far apart in the events.
const PROGRESS_STEP: u64 = 512 * 1024;

/// Sources tried for a cross-repository mount of one blob, at most (as Docker).
const MAX_MOUNT_SOURCES: usize = 3;

/// The parts of an image manifest a push needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// One blob to send: where it is in the store.
#[derive(Debug, Clone)]
struct BlobJob {
    digest: Digest,
    size: u64,
    path: PathBuf,
}

/// What happened to one blob.
enum Outcome {
    Existed,
    Mounted,
    Uploaded,
}

/// Shared state of one push's blob transfers.
struct Ctx<'a> {
    client: &'a Client,
    registry: &'a str,
    repo: &'a str,
    /// Other repositories of the same registry known to hold the image's blobs.
    mount_sources: Vec<String>,
    events: &'a EventSink,
    bytes: AtomicU64,
}

/// Pushes the local image `local` (a name or id) to `target`: checks every blob is in the store,
/// skips everything when the registry already serves this manifest under the name, else makes
/// sure each blob is there (exists, mounted, or uploaded; `max_concurrent_uploads` at once),
/// puts the manifest bytes as stored, and records the target as a source of the image.
pub async fn push(
    client: &Client,
    store: &Store,
    local: &str,
    target: &Reference,
    opts: &PushOptions,
) -> Result<Pushed> {
    // A lease against garbage collection while the image's blobs are read.
    let _lease = store.lock_shared()?;
    let image = store.image(local)?;
    let registry = target.registry();
    let repo = target.repository();
    let what = format!("manifest {} of {local}", image.manifest_digest);

    let manifest = store.blobs().read(&image.manifest_digest)?;
    let actual = Digest::of(&manifest);
    if actual != image.manifest_digest {
        return Err(Error::DigestMismatch {
            what: format!("{what} in the store"),
            expected: image.manifest_digest.clone(),
            actual,
        });
    }
    let doc: ManifestDoc = serde_json::from_slice(&manifest).map_err(|e| Error::BadManifest {
        what: what.clone(),
        message: e.to_string(),
    })?;
    if doc.manifests.is_some() {
        return Err(Error::BadManifest {
            what,
            message: "it is an index; berth pushes one image manifest".into(),
        });
    }
    let (Some(config), Some(layers)) = (doc.config, doc.layers) else {
        return Err(Error::BadManifest {
            what,
            message: "no config or layers in it".into(),
        });
    };
    let manifest_type = doc
        .media_type
        .unwrap_or_else(|| media_type::OCI_MANIFEST.to_owned());
    let tag_or_digest = match (target.tag(), target.digest()) {
        (_, Some(d)) if *d != image.manifest_digest => {
            return Err(Error::Invalid(format!(
                "cannot push {local} as {target}: its manifest digest is {}",
                image.manifest_digest
            )));
        }
        (Some(t), _) => t.to_owned(),
        (None, _) => image.manifest_digest.to_string(),
    };

    // Every blob must be here, whole, before anything is sent.
    let mut jobs: Vec<BlobJob> = Vec::with_capacity(layers.len() + 1);
    for d in layers.iter().chain(std::iter::once(&config)) {
        if jobs.iter().any(|j| j.digest == d.digest) {
            continue;
        }
        let have = store.blobs().size(&d.digest).map_err(|e| match e {
            berth_store::Error::BlobMissing(_) => Error::Invalid(format!(
                "cannot push {local}: blob {} is not in the local store (the image was stored \
                 without it); pull or load the image again",
                d.digest
            )),
            e => Error::Store(e),
        })?;
        if have != d.size {
            return Err(Error::Invalid(format!(
                "cannot push {local}: blob {} in the local store has {have} bytes, the manifest \
                 says {}",
                d.digest, d.size
            )));
        }
        jobs.push(BlobJob {
            digest: d.digest.clone(),
            size: d.size,
            path: store.blobs().path(&d.digest),
        });
    }

    let mount_sources: Vec<String> = image
        .sources
        .iter()
        .filter_map(|s| {
            let (host, r) = s.split_once('/')?;
            (host == registry && r != repo).then(|| r.to_owned())
        })
        .collect();
    let ctx = Ctx {
        client,
        registry,
        repo,
        mount_sources,
        events: &opts.events,
        bytes: AtomicU64::new(0),
    };
    for j in &jobs {
        (opts.events)(Event::Layer {
            digest: j.digest.clone(),
            size: j.size,
            status: LayerStatus::Waiting,
        });
    }
    // A registry that serves this very manifest under this name holds all its blobs (it
    // checked them when the manifest was put): nothing to send, not even the manifest.
    let unchanged = manifest_present(
        client,
        registry,
        repo,
        &tag_or_digest,
        &manifest_type,
        &image.manifest_digest,
    )
    .await?;
    let outcomes: Vec<Outcome> = if unchanged {
        for j in &jobs {
            ctx.event(j, LayerStatus::Exists);
        }
        jobs.iter().map(|_| Outcome::Existed).collect()
    } else {
        let parallel = client.config().max_concurrent_uploads.max(1);
        let outcomes = futures::stream::iter(jobs.iter().map(|j| ctx.blob(j)))
            .buffer_unordered(parallel)
            .try_collect()
            .await?;
        put_manifest(
            client,
            registry,
            repo,
            &tag_or_digest,
            &manifest_type,
            &manifest,
            &image.manifest_digest,
        )
        .await?;
        outcomes
    };
    store.add_source(&image.id, &format!("{registry}/{repo}"))?;
    let reference = match target.tag() {
        Some(_) => target.without_digest(),
        None => target.with_digest(&image.manifest_digest),
    };
    (opts.events)(Event::Done {
        reference: reference.to_string(),
        digest: image.manifest_digest.clone(),
    });
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    Ok(Pushed {
        reference,
        digest: image.manifest_digest.clone(),
        size: manifest.len() as u64,
        blobs_uploaded: count(|o| matches!(o, Outcome::Uploaded)),
        blobs_mounted: count(|o| matches!(o, Outcome::Mounted)),
        blobs_existing: count(|o| matches!(o, Outcome::Existed)),
        bytes_uploaded: ctx.bytes.load(Ordering::Relaxed),
    })
}

/// Whether `HEAD /v2/<repo>/manifests/<reference>` answers with `digest` (asking for the
/// manifest's own media type, so no registry converts it).
async fn manifest_present(
    client: &Client,
    registry: &str,
    repo: &str,
    reference: &str,
    media: &str,
    digest: &Digest,
) -> Result<bool> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(media) {
        headers.insert(ACCEPT, v);
    }
    let resp = client
        .send(
            registry,
            &[Scope::push(repo)],
            Method::HEAD,
            &path,
            headers,
            Body::Empty,
        )
        .await?;
    if resp.status() != StatusCode::OK {
        return Ok(false);
    }
    Ok(resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok())
        .is_some_and(|d| d == *digest))
}

/// `PUT /v2/<repo>/manifests/<tag|digest>` with the stored bytes; checks the digest the registry
/// computed.
async fn put_manifest(
    client: &Client,
    registry: &str,
    repo: &str,
    reference: &str,
    media: &str,
    bytes: &[u8],
    digest: &Digest,
) -> Result<()> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(media).map_err(|_| Error::BadManifest {
            what: format!("manifest {digest}"),
            message: format!("media type {media:?} is not a valid header value"),
        })?,
    );
    let resp = client
        .send(
            registry,
            &[Scope::push(repo)],
            Method::PUT,
            &path,
            headers,
            Body::Bytes(bytes::Bytes::copy_from_slice(bytes)),
        )
        .await?;
    if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
        return Err(Client::error_for(registry, &format!("PUT {path}"), resp).await);
    }
    if let Some(got) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        let got: Digest = got.parse().map_err(|_| Error::BadManifest {
            what: format!("PUT {path}"),
            message: format!("the registry answered Docker-Content-Digest {got:?}"),
        })?;
        if got != *digest {
            return Err(Error::DigestMismatch {
                what: format!("manifest pushed to {registry}/{repo}:{reference}"),
                expected: digest.clone(),
                actual: got,
            });
        }
    }
    Ok(())
}

impl Ctx<'_> {
    /// Progress events for a body starting at `base` bytes of the blob, at most one per
    /// [`PROGRESS_STEP`] (the final count is reported by the caller once the registry accepts it).
    fn progress_from(&self, job: &BlobJob, base: u64) -> SentBytes {
        let events = self.events.clone();
        let digest = job.digest.clone();
        let size = job.size;
        let last = AtomicU64::new(0);
        SentBytes(Arc::new(move |sent| {
            if sent - last.load(Ordering::Relaxed) >= PROGRESS_STEP && base + sent < size {
                last.store(sent, Ordering::Relaxed);
                events(Event::Layer {
                    digest: digest.clone(),
                    size,
                    status: LayerStatus::Progress { done: base + sent },
                });
            }
        }))
    }

    fn event(&self, job: &BlobJob, status: LayerStatus) {
        (self.events)(Event::Layer {
            digest: job.digest.clone(),
            size: job.size,
            status,
        });
    }

    async fn send(
        &self,
        scopes: &[Scope],
        method: Method,
        target: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<reqwest::Response> {
        self.client
            .send(self.registry, scopes, method, target, headers, body)
            .await
    }

    /// Makes sure the registry has one blob: it exists, is mounted, or is uploaded.
    async fn blob(&self, job: &BlobJob) -> Result<Outcome> {
        let own = [Scope::push(self.repo)];
        let path = format!("/v2/{}/blobs/{}", self.repo, job.digest);
        let resp = self
            .send(&own, Method::HEAD, &path, HeaderMap::new(), Body::Empty)
            .await?;
        match resp.status() {
            StatusCode::OK => {
                self.event(job, LayerStatus::Exists);
                return Ok(Outcome::Existed);
            }
            StatusCode::NOT_FOUND => {}
            _ => return Err(Client::error_for(self.registry, &format!("HEAD {path}"), resp).await),
        }

        let mut location = None;
        for from in self.mount_sources.iter().take(MAX_MOUNT_SOURCES) {
            let target = format!(
                "/v2/{}/blobs/uploads/?mount={}&from={from}",
                self.repo, job.digest
            );
            let scopes = [Scope::push(self.repo), Scope::pull(from)];
            let resp = match self
                .send(
                    &scopes,
                    Method::POST,
                    &target,
                    HeaderMap::new(),
                    Body::Empty,
                )
                .await
            {
                Ok(r) => r,
                // Not allowed to read the source: upload instead.
                Err(Error::Unauthorized { .. } | Error::Denied { .. }) => continue,
                Err(e) => return Err(e),
            };
            match resp.status() {
                StatusCode::CREATED => {
                    self.event(job, LayerStatus::Mounted { from: from.clone() });
                    return Ok(Outcome::Mounted);
                }
                StatusCode::ACCEPTED => {
                    location = Some(self.location(&target, &resp)?);
                    break;
                }
                _ => {
                    return Err(Client::error_for(
                        self.registry,
                        &format!("POST {}", crate::client::path_of(&target)),
                        resp,
                    )
                    .await);
                }
            }
        }
        let location = match location {
            Some(l) => l,
            None => self.open_upload().await?,
        };
        self.upload(job, location).await?;
        self.event(job, LayerStatus::Complete);
        Ok(Outcome::Uploaded)
    }

    /// `POST /v2/<repo>/blobs/uploads/`: a new session's URL.
    async fn open_upload(&self) -> Result<Url> {
        let target = format!("/v2/{}/blobs/uploads/", self.repo);
        let resp = self
            .send(
                &[Scope::push(self.repo)],
                Method::POST,
                &target,
                HeaderMap::new(),
                Body::Empty,
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(Client::error_for(self.registry, &format!("POST {target}"), resp).await);
        }
        self.location(&target, &resp)
    }

    /// The upload URL a response names, resolved against the request's (`target`: a path or an
    /// absolute URL).
    fn location(&self, target: &str, resp: &reqwest::Response) -> Result<Url> {
        let bad = |message: String| Error::Status {
            registry: self.registry.to_owned(),
            what: format!("{} {}", "upload", crate::client::path_of(target)),
            status: resp.status().as_u16(),
            detail: format!(": {message}"),
        };
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bad("no Location header in the answer".into()))?;
        resp.url()
            .join(loc)
            .map_err(|e| bad(format!("bad Location {loc:?}: {e}")))
    }

    /// Sends a blob's bytes to an open session and finishes it.
    async fn upload(&self, job: &BlobJob, mut location: Url) -> Result<()> {
        let chunk = self.client.config().chunk_size.max(1);
        let scopes = [Scope::push(self.repo)];
        let mut offset = 0u64;
        let mut retried = false;
        let mut last_report = 0u64;

        if job.size <= chunk {
            let url = with_digest(&location, &job.digest);
            let result = self
                .send(
                    &scopes,
                    Method::PUT,
                    url.as_str(),
                    octet_stream(),
                    Body::File {
                        path: job.path.clone(),
                        offset: 0,
                        len: job.size,
                        progress: Some(self.progress_from(job, 0)),
                    },
                )
                .await;
            match result {
                Ok(resp) if resp.status() == StatusCode::CREATED => {
                    self.finished(job, &resp, url.as_str())?;
                    self.bytes.fetch_add(job.size, Ordering::Relaxed);
                    self.event(job, LayerStatus::Progress { done: job.size });
                    return Ok(());
                }
                Ok(resp) if !retryable(resp.status()) => {
                    return Err(Client::error_for(
                        self.registry,
                        &format!("PUT blob {} to {}", job.digest, self.repo),
                        resp,
                    )
                    .await);
                }
                Ok(_) | Err(Error::Transfer { .. }) => {
                    retried = true;
                    offset = self.resume(job, &mut location).await?;
                }
                Err(e) => return Err(e),
            }
        }

        while offset < job.size {
            let len = chunk.min(job.size - offset);
            let mut headers = octet_stream();
            headers.insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("{offset}-{}", offset + len - 1))
                    .expect("numbers are a valid header value"),
            );
            let result = self
                .send(
                    &scopes,
                    Method::PATCH,
                    location.as_str(),
                    headers,
                    Body::File {
                        path: job.path.clone(),
                        offset,
                        len,
                        progress: Some(self.progress_from(job, offset)),
                    },
                )
                .await;
            match result {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    location = self.location(location.as_str(), &resp)?;
                    // After a non-empty chunk the session is not empty: `0-0` is one byte.
                    let end = range_last(resp.headers()).map_or(offset + len, |l| l + 1);
                    if end != offset + len {
                        // The registry holds a different amount than sent: continue from its count.
                        if retried {
                            return Err(self.range_error(job, offset + len, end));
                        }
                        retried = true;
                    }
                    self.bytes.fetch_add(len, Ordering::Relaxed);
                    offset = end;
                    if offset - last_report >= PROGRESS_STEP || offset == job.size {
                        last_report = offset;
                        self.event(job, LayerStatus::Progress { done: offset });
                    }
                }
                Ok(resp) if !retried && retryable(resp.status()) => {
                    retried = true;
                    if let Ok(l) = self.location(location.as_str(), &resp) {
                        location = l;
                    }
                    offset = self.resume(job, &mut location).await?;
                }
                Err(Error::Transfer { .. }) if !retried => {
                    retried = true;
                    offset = self.resume(job, &mut location).await?;
                }
                Ok(resp) => {
                    return Err(Client::error_for(
                        self.registry,
                        &format!("PATCH blob {} to {} at {offset}", job.digest, self.repo),
                        resp,
                    )
                    .await);
                }
                Err(e) => return Err(e),
            }
        }

        let url = with_digest(&location, &job.digest);
        let resp = self
            .send(
                &scopes,
                Method::PUT,
                url.as_str(),
                octet_stream(),
                Body::Empty,
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(Client::error_for(
                self.registry,
                &format!("PUT (finish) blob {} to {}", job.digest, self.repo),
                resp,
            )
            .await);
        }
        self.finished(job, &resp, url.as_str())
    }

    /// After a failed request: asks the session how much it holds (`GET` its URL, `Range`).
    async fn resume(&self, job: &BlobJob, location: &mut Url) -> Result<u64> {
        let resp = self
            .send(
                &[Scope::push(self.repo)],
                Method::GET,
                location.as_str(),
                HeaderMap::new(),
                Body::Empty,
            )
            .await?;
        if resp.status() != StatusCode::NO_CONTENT && !resp.status().is_success() {
            return Err(Client::error_for(
                self.registry,
                &format!("GET upload status of blob {} in {}", job.digest, self.repo),
                resp,
            )
            .await);
        }
        if let Ok(l) = self.location(location.as_str(), &resp) {
            *location = l;
        }
        // `0-0` may mean empty: resend from the start then (a 416 would end it).
        let offset = range_last(resp.headers()).map_or(0, |l| if l == 0 { 0 } else { l + 1 });
        if offset > job.size {
            return Err(self.range_error(job, job.size, offset));
        }
        if offset > 0 {
            self.event(job, LayerStatus::Resumed { offset });
        }
        Ok(offset)
    }

    fn range_error(&self, job: &BlobJob, expected: u64, got: u64) -> Error {
        Error::Transfer {
            registry: self.registry.to_owned(),
            what: format!("upload of blob {} to {}", job.digest, self.repo),
            message: format!("the registry holds {got} bytes of it, {expected} were sent"),
        }
    }

    /// Checks the `Docker-Content-Digest` of a finished upload.
    fn finished(&self, job: &BlobJob, resp: &reqwest::Response, url: &str) -> Result<()> {
        let Some(got) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(());
        };
        match got.parse::<Digest>() {
            Ok(d) if d == job.digest => Ok(()),
            Ok(d) => Err(Error::DigestMismatch {
                what: format!("blob uploaded to {}", crate::client::path_of(url)),
                expected: job.digest.clone(),
                actual: d,
            }),
            Err(_) => Err(Error::Status {
                registry: self.registry.to_owned(),
                what: format!("PUT {}", crate::client::path_of(url)),
                status: resp.status().as_u16(),
                detail: format!(": bad Docker-Content-Digest {got:?}"),
            }),
        }
    }
}

/// Whether a failed upload request is worth asking the session's state and continuing.
fn retryable(s: StatusCode) -> bool {
    s == StatusCode::RANGE_NOT_SATISFIABLE || s.is_server_error()
}

fn octet_stream() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h
}

/// `url` with `digest=<d>` added to its query.
fn with_digest(url: &Url, digest: &Digest) -> Url {
    let mut u = url.clone();
    u.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    u
}

/// The last byte index a `Range: 0-<last>` header says the session holds. Registries answer
/// `0-0` for an empty session as for a one-byte one.
fn range_last(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(RANGE)?.to_str().ok()?;
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (start, last) = v.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    last.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> Option<u64> {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_str(v).unwrap());
        range_last(&h)
    }

    #[test]
    fn range_headers_as_registries_send_them() {
        assert_eq!(range("0-65535"), Some(65535));
        assert_eq!(range("bytes=0-9"), Some(9));
        assert_eq!(range("0-0"), Some(0));
        assert_eq!(range("5-9"), None);
        assert_eq!(range("junk"), None);
        assert_eq!(range_last(&HeaderMap::new()), None);
    }

    #[test]
    fn digest_joins_an_existing_query_and_locations_resolve() {
        let d = Digest::of(b"x");
        let base = Url::parse("http://r:5000/v2/a/blobs/uploads/").unwrap();
        let abs = base
            .join("https://other/v2/a/blobs/uploads/u1?_state=abc%3D")
            .unwrap();
        assert_eq!(
            with_digest(&abs, &d).as_str(),
            format!(
                "https://other/v2/a/blobs/uploads/u1?_state=abc%3D&digest=sha256%3A{}",
                d.hex()
            )
        );
        let rooted = base.join("/v2/a/blobs/uploads/u2").unwrap();
        assert_eq!(
            with_digest(&rooted, &d).as_str(),
            format!(
                "http://r:5000/v2/a/blobs/uploads/u2?digest=sha256%3A{}",
                d.hex()
            )
        );
        let relative = base.join("u3?x=1").unwrap();
        assert_eq!(relative.as_str(), "http://r:5000/v2/a/blobs/uploads/u3?x=1");
    }
}
