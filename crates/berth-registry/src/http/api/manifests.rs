//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`, by tag or digest.
//!
//! A PUT follows the contract's protocol 2 step by step, so a garbage collector running at the
//! same time either sees the new manifest link or has finished sweeping before the references
//! are checked.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::manifest::{self, Descriptor, Manifest};
use crate::names;
use crate::paths::{self, Event, ManifestLink, TagLink};
use crate::storage::Storage;
use crate::{events, gc};

use super::{content_type, empty_response, read_limited, set_headers};

/// The media types a manifest may be pushed as.
const ACCEPTED: [&str; 4] = [
    manifest::OCI_MANIFEST,
    manifest::OCI_INDEX,
    manifest::DOCKER_MANIFEST,
    manifest::DOCKER_LIST,
];

/// Serves a manifest by tag or digest (or, with `head_only`, only its headers).
pub(super) async fn get(
    state: &AppState,
    name: &str,
    reference: &str,
    head_only: bool,
) -> Result<Response, ApiError> {
    let storage = &state.storage;
    let hex = resolve(storage, name, reference).await?;
    let Some(raw) = storage.get(&paths::manifest_link(name, &hex)).await? else {
        return Err(ApiError::manifest_unknown(reference));
    };
    let link: ManifestLink = serde_json::from_slice(&raw).map_err(|e| {
        ApiError::internal(format!("manifest link {name}@sha256:{hex} is corrupt: {e}"))
    })?;
    let digest = format!("sha256:{hex}");
    let headers = [
        ("content-type", link.media_type.clone()),
        ("docker-content-digest", digest.clone()),
        ("etag", format!("\"{digest}\"")),
        ("content-length", link.size.to_string()),
    ];
    if head_only {
        return Ok(empty_response(StatusCode::OK, &headers));
    }
    let Some(body) = storage.get(&paths::blob(&hex)).await? else {
        return Err(ApiError::manifest_unknown(reference));
    };
    let len = body.len();
    let mut resp = Response::new(body.into());
    set_headers(resp.headers_mut(), &headers);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(resp)
}

/// The manifest hex a reference names in a repository. A reference that is not a valid tag is
/// simply unknown (404), as the conformance suite expects; a malformed digest is a 400.
async fn resolve(storage: &Storage, name: &str, reference: &str) -> Result<String, ApiError> {
    if names::is_digest_reference(reference) {
        return Ok(names::parse_digest(reference)?.hex().to_string());
    }
    if names::check_tag(reference).is_err() {
        return Err(ApiError::manifest_unknown(reference));
    }
    let Some(raw) = storage.get(&paths::tag(name, reference)).await? else {
        return Err(ApiError::manifest_unknown(reference));
    };
    let tag: TagLink = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::internal(format!("tag {name}:{reference} is corrupt: {e}")))?;
    Ok(names::parse_digest(&tag.digest)
        .map_err(|_| ApiError::internal(format!("tag {name}:{reference} holds a bad digest")))?
        .hex()
        .to_string())
}

/// Stores a manifest under its digest and, when the reference is a tag, tags it.
pub(super) async fn put(
    state: &AppState,
    name: &str,
    reference: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let storage = &state.storage;
    let (tag, want) = if names::is_digest_reference(reference) {
        (None, Some(names::parse_digest(reference)?.to_string()))
    } else {
        names::check_tag(reference)?;
        (Some(reference.to_string()), None)
    };
    let limit = state.config.limits.max_manifest_bytes;
    if let Some(len) = super::content_length(req.headers())
        && limit > 0
        && len > limit
    {
        return Err(ApiError::too_large("manifest", limit));
    }
    let ct = content_type(req.headers());
    let body = read_limited(req.into_body(), limit, "manifest").await?;
    let hex = hex::encode(Sha256::digest(&body));
    let digest = format!("sha256:{hex}");
    if let Some(w) = &want
        && *w != digest
    {
        return Err(ApiError::digest_invalid(w));
    }
    let m = Manifest::parse(&body).map_err(|e| ApiError::manifest_invalid(e.to_string()))?;
    let media_type = m.effective_media_type(ct.as_deref());
    if !ACCEPTED.contains(&media_type.as_str()) {
        return Err(ApiError::manifest_invalid(format!(
            "manifest media type {media_type} is not supported"
        )));
    }
    if let (Some(body_type), Some(header_type)) = (&m.media_type, &ct)
        && ACCEPTED.contains(&header_type.as_str())
        && body_type != header_type
    {
        return Err(ApiError::manifest_invalid(format!(
            "manifest mediaType {body_type} does not match Content-Type {header_type}"
        )));
    }
    let index = matches!(
        media_type.as_str(),
        manifest::OCI_INDEX | manifest::DOCKER_LIST
    );
    if !index && m.config.is_none() {
        return Err(ApiError::manifest_invalid(
            "an image manifest needs a config",
        ));
    }
    if index && (m.config.is_some() || !m.layers.is_empty()) {
        return Err(ApiError::manifest_invalid(
            "an index holds manifests, not a config or layers",
        ));
    }

    // A manifest naming what the repository lacks is refused before anything is written, so
    // hostile or broken pushes leave no bytes behind. The check is repeated below, after the
    // link is visible to collectors, which is the one that counts.
    if let Some(missing) = first_missing(storage, name, &m).await? {
        return Err(ApiError::manifest_blob_unknown(&missing));
    }
    // Protocol 2: bytes, then the link, then wait out sweeps, then check what it references.
    let blob_key = paths::blob(&hex);
    storage.create(&blob_key, body.clone()).await?;
    let link_key = paths::manifest_link(name, &hex);
    let existed = storage.head(&link_key).await?.is_some();
    let link = ManifestLink {
        media_type: media_type.clone(),
        size: body.len() as u64,
    };
    storage
        .put(
            &link_key,
            Bytes::from(serde_json::to_vec(&link).expect("link serialises")),
        )
        .await?;
    gc::await_sweeps(storage).await?;
    if let Some(missing) = first_missing(storage, name, &m).await? {
        if !existed {
            storage.delete(&link_key).await?;
        }
        return Err(ApiError::manifest_blob_unknown(&missing));
    }
    // A sweep that finished before our link was seen may have taken the bytes of an old,
    // unreferenced copy of this very manifest: put them back.
    if storage.head(&blob_key).await?.is_none() {
        storage.put(&blob_key, body.clone()).await?;
    }
    if let Some(t) = &tag {
        let tl = TagLink {
            digest: digest.clone(),
        };
        storage
            .put(
                &paths::tag(name, t),
                Bytes::from(serde_json::to_vec(&tl).expect("tag serialises")),
            )
            .await?;
    }
    let subject = match &m.subject {
        Some(s) => {
            let sd = &s.digest;
            let own = berth_oci::Digest::from_hex(&hex)
                .map_err(|e| ApiError::internal(format!("the manifest's own digest: {e}")))?;
            let entry = referrer_descriptor(&m, &media_type, own, body.len());
            storage
                .put(
                    &paths::referrer(name, sd.hex(), &hex),
                    Bytes::from(serde_json::to_vec(&entry).expect("descriptor serialises")),
                )
                .await?;
            Some(sd.to_string())
        }
        None => None,
    };
    storage
        .create(&paths::catalog_entry(name), Bytes::new())
        .await?;
    events::publish(
        storage,
        Event::ManifestPut {
            repo: name.to_string(),
            digest: digest.clone(),
            tag,
        },
    )
    .await;
    index_now(state, name).await;
    let mut headers = vec![
        ("location", format!("/v2/{name}/manifests/{digest}")),
        ("docker-content-digest", digest),
    ];
    if let Some(s) = subject {
        headers.push(("oci-subject", s));
    }
    Ok(empty_response(StatusCode::CREATED, &headers))
}

/// The descriptor the referrers API lists for a manifest with a subject.
fn referrer_descriptor(
    m: &Manifest,
    media_type: &str,
    digest: berth_oci::Digest,
    size: usize,
) -> Descriptor {
    let artifact_type = m
        .artifact_type
        .clone()
        .filter(|a| !a.is_empty())
        .or_else(|| m.config.as_ref().map(|c| c.media_type.clone()))
        .filter(|a| !a.is_empty());
    Descriptor {
        media_type: media_type.to_string(),
        digest,
        size: size as u64,
        artifact_type,
        annotations: m.annotations.clone().filter(|a| !a.is_empty()),
        platform: None,
    }
}

/// The first reference of a manifest the repository does not hold: config and layers must be
/// linked blobs whose bytes exist, index entries linked manifests. Checked concurrently.
async fn first_missing(
    storage: &Storage,
    name: &str,
    m: &Manifest,
) -> Result<Option<String>, ApiError> {
    let mut checks = Vec::new();
    for d in m.config.iter().chain(m.layers.iter()) {
        if is_foreign(d) {
            continue;
        }
        let hex = d.digest.hex();
        checks.push((d.digest.to_string(), paths::blob_link(name, hex)));
        checks.push((d.digest.to_string(), paths::blob(hex)));
    }
    for d in &m.manifests {
        checks.push((
            d.digest.to_string(),
            paths::manifest_link(name, d.digest.hex()),
        ));
    }
    checks.sort();
    checks.dedup();
    let found = futures::future::join_all(checks.iter().map(|(_, key)| storage.head(key))).await;
    for ((digest, _), f) in checks.iter().zip(found) {
        if f?.is_none() {
            return Ok(Some(digest.clone()));
        }
    }
    Ok(None)
}

/// Layers that live outside registries (Windows base layers) are not required to be present.
fn is_foreign(d: &Descriptor) -> bool {
    d.media_type.contains("foreign") || d.media_type.contains("nondistributable")
}

/// Deletes a manifest (by digest: the manifest, its tags and its referrer entry) or a tag.
pub(super) async fn delete(
    state: &AppState,
    name: &str,
    reference: &str,
) -> Result<Response, ApiError> {
    let storage = &state.storage;
    if !names::is_digest_reference(reference) {
        if names::check_tag(reference).is_err() {
            return Err(ApiError::manifest_unknown(reference));
        }
        let key = paths::tag(name, reference);
        if storage.head(&key).await?.is_none() {
            return Err(ApiError::manifest_unknown(reference));
        }
        storage.delete(&key).await?;
        events::publish(
            storage,
            Event::TagDeleted {
                repo: name.to_string(),
                tag: reference.to_string(),
            },
        )
        .await;
        index_now(state, name).await;
        return Ok(empty_response(StatusCode::ACCEPTED, &[]));
    }
    let d = names::parse_digest(reference)?;
    let hex = d.hex();
    let digest = d.to_string();
    let link_key = paths::manifest_link(name, hex);
    if storage.head(&link_key).await?.is_none() {
        return Err(ApiError::manifest_unknown(reference));
    }
    // The referrer entry goes first: it is found through the manifest's own bytes.
    if let Some(body) = storage.get(&paths::blob(hex)).await?
        && let Ok(m) = Manifest::parse(&body)
        && let Some(s) = m.subject.as_ref()
    {
        let sd = &s.digest;
        storage
            .delete(&paths::referrer(name, sd.hex(), hex))
            .await?;
    }
    for t in storage.list(&paths::tags(name)).await? {
        let Some(raw) = storage.get(&t.key).await? else {
            continue;
        };
        if serde_json::from_slice::<TagLink>(&raw).is_ok_and(|tl| tl.digest == digest) {
            storage.delete(&t.key).await?;
        }
    }
    storage.delete(&link_key).await?;
    events::publish(
        storage,
        Event::ManifestDeleted {
            repo: name.to_string(),
            digest,
        },
    )
    .await;
    index_now(state, name).await;
    Ok(empty_response(StatusCode::ACCEPTED, &[]))
}

/// Updates this instance's search index for `name` before the change is acknowledged, so a client
/// that pushed through this instance finds it at once; other instances follow the event.
async fn index_now(state: &AppState, name: &str) {
    if let Err(e) = state.search.rescan_repository(&state.storage, name).await {
        tracing::warn!(repo = name, error = %e, "search: indexing the change failed; the event poll retries");
    }
}
