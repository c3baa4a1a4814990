//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic or cross-repository
//! mount) and `GET`/`PATCH`/`PUT`/`DELETE /v2/<name>/blobs/uploads/<id>`.
//!
//! A session lives entirely in the storage (`uploads/<id>/…`): its info, one object per chunk
//! keyed by the chunk's offset, and per chunk a sidecar with the chunk's own digest. The current
//! size is found by listing, so any instance can continue a session any other one started. When
//! the digest is known before the data, the body streams straight into the blob's final key and
//! becomes visible only if it matches; a single-chunk session whose chunk matches is published by
//! a rename, without reading it again.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::BodyDataStream;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::CrossMount;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::names;
use crate::paths::{self, UploadInfo};
use crate::storage::{ObjectInfo, Writer};

use super::{content_length, digest_of, empty_response, param, pump_stream, query_params};

/// What a chunk's sidecar records.
#[derive(Debug, Serialize, Deserialize)]
struct ChunkSum {
    /// Lowercase hex SHA-256 of the chunk alone.
    sha256: String,
    /// The chunk's size.
    size: u64,
}

/// `POST /v2/<name>/blobs/uploads/`: a cross-repository mount, a monolithic upload
/// (`?digest=` with the body), or a new session.
pub(super) async fn start(
    state: &AppState,
    name: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let params = query_params(&req);
    if let Some(mount) = param(&params, "mount") {
        let d = names::parse_digest(mount)?;
        let from = param(&params, "from").filter(|f| names::check_name(f).is_ok());
        // A mount that cannot or may not be done starts a plain session instead (the spec
        // allows both answers): with mounts off, or, without `from`, unless automatic mounts are
        // on — only then has the client not shown a repository it may read.
        let mounted = match (state.config.api.cross_mount, from) {
            (CrossMount::Off, _) => false,
            (_, Some(from)) => mount_from(state, name, from, d.hex()).await?,
            (CrossMount::Auto, None) if state.auth.anonymous_pull() => {
                match holder(state, d.hex()).await? {
                    Some(from) => mount_from(state, name, &from, d.hex()).await?,
                    None => false,
                }
            }
            (_, None) => false,
        };
        if mounted {
            return Ok(blob_created(name, &d.to_string()));
        }
        return new_session(state, name).await;
    }
    if let Some(digest) = param(&params, "digest") {
        let d = names::parse_digest(digest)?;
        check_declared_size(state, req.headers())?;
        let mut stream = req.into_body().into_data_stream();
        publish(state, &d.to_string(), d.hex(), &[], None, &mut stream).await?;
        link_blob(state, name, d.hex()).await?;
        return Ok(blob_created(name, &d.to_string()));
    }
    new_session(state, name).await
}

/// A repository that holds blob `hex` (the target itself included), for a mount without `from`. The
/// catalog lists every repository a manifest was pushed to; one link lookup each.
async fn holder(state: &AppState, hex: &str) -> Result<Option<String>, ApiError> {
    let storage = &state.storage;
    for entry in storage.list(paths::CATALOG).await? {
        let Some(repo) = paths::catalog_name(&entry.key) else {
            continue;
        };
        if storage.head(&paths::blob_link(repo, hex)).await?.is_some() {
            return Ok(Some(repo.to_string()));
        }
    }
    Ok(None)
}

/// Links `hex` into `name` when `from` has it; returns whether it did.
async fn mount_from(state: &AppState, name: &str, from: &str, hex: &str) -> Result<bool, ApiError> {
    let storage = &state.storage;
    let Some(link) = storage.head(&paths::blob_link(from, hex)).await? else {
        return Ok(false);
    };
    if storage.head(&paths::blob(hex)).await?.is_none() {
        return Ok(false);
    }
    if let Err(e) = crate::gc::refresh_link(storage, &link, state.config.gc.grace_secs).await {
        tracing::warn!(error = %e, key = %link.key, "could not refresh blob link");
    }
    link_blob(state, name, hex).await?;
    Ok(true)
}

async fn new_session(state: &AppState, name: &str) -> Result<Response, ApiError> {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let info = UploadInfo {
        repo: name.to_string(),
        started: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let body = serde_json::to_vec(&info).expect("upload info serialises");
    state
        .storage
        .put(&paths::upload_info(&id), Bytes::from(body))
        .await?;
    Ok(session_response(StatusCode::ACCEPTED, name, &id, 0))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: how much the session holds.
pub(super) async fn status(state: &AppState, name: &str, id: &str) -> Result<Response, ApiError> {
    check_session(state, name, id).await?;
    let size = chunks(state, id).await?.size;
    Ok(session_response(StatusCode::NO_CONTENT, name, id, size))
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: appends one chunk, which must start where the session
/// ends.
pub(super) async fn patch(
    state: &AppState,
    name: &str,
    id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    check_session(state, name, id).await?;
    let offset = chunks(state, id).await?.size;
    let declared = match req.headers().get(header::CONTENT_RANGE) {
        None => None,
        Some(v) => {
            let (start, end) = v
                .to_str()
                .ok()
                .and_then(parse_content_range)
                .ok_or_else(|| out_of_order(name, id, offset, "malformed Content-Range"))?;
            if start != offset {
                return Err(out_of_order(
                    name,
                    id,
                    offset,
                    &format!("chunk starts at {start}, but the upload holds {offset} bytes"),
                ));
            }
            Some(end + 1 - start)
        }
    };
    let limit = state.config.limits.max_blob_bytes;
    if let Some(len) = content_length(req.headers())
        && limit > 0
        && offset + len > limit
    {
        return Err(ApiError::too_large("blob", limit));
    }
    // Each request writes its own chunk object and sidecar (a random writer id in both keys):
    // a sidecar is written only by the request that wrote the chunk beside it, after it, so it
    // always describes exactly those bytes, however requests race.
    let writer = hex::encode(rand::random::<[u8; 8]>());
    let stream = req.into_body().into_data_stream();
    let Some(sum) = write_chunk(state, name, id, offset, &writer, declared, stream).await? else {
        return Ok(session_response(StatusCode::ACCEPTED, name, id, offset));
    };
    state
        .storage
        .put(
            &paths::upload_sum_by(id, offset, &writer),
            Bytes::from(serde_json::to_vec(&sum).expect("chunk sum serialises")),
        )
        .await?;
    Ok(session_response(
        StatusCode::ACCEPTED,
        name,
        id,
        offset + sum.size,
    ))
}

/// Streams one chunk into its object; `None` when the body was empty (nothing written).
async fn write_chunk(
    state: &AppState,
    name: &str,
    id: &str,
    offset: u64,
    writer_id: &str,
    declared: Option<u64>,
    mut stream: BodyDataStream,
) -> Result<Option<ChunkSum>, ApiError> {
    let limit = state.config.limits.max_blob_bytes;
    let mut writer = state
        .storage
        .writer(&paths::upload_chunk_by(id, offset, writer_id))
        .await?;
    let mut hasher = Sha256::new();
    let n = match pump_stream(&mut stream, &mut hasher, &mut writer, offset, limit).await {
        Ok(n) => n,
        Err(e) => {
            abort(writer).await;
            return Err(e.into());
        }
    };
    if let Some(want) = declared
        && want != n
    {
        abort(writer).await;
        return Err(out_of_order(
            name,
            id,
            offset,
            &format!("Content-Range says {want} bytes, the body has {n}"),
        ));
    }
    if n == 0 {
        abort(writer).await;
        return Ok(None);
    }
    writer.finish().await?;
    Ok(Some(ChunkSum {
        sha256: hex::encode(hasher.finalize()),
        size: n,
    }))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: appends an optional last body, verifies the
/// whole upload against the digest, publishes the blob and links it into the repository.
pub(super) async fn finish(
    state: &AppState,
    name: &str,
    id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    check_session(state, name, id).await?;
    let params = query_params(&req);
    let Some(digest) = param(&params, "digest") else {
        return Err(ApiError::digest_invalid("").with_detail(serde_json::json!({
            "reason": "the digest query parameter is required to finish an upload"
        })));
    };
    let d = names::parse_digest(digest)?;
    let digest = d.to_string();
    let hex = d.hex();
    let found = chunks(state, id).await?;
    let limit = state.config.limits.max_blob_bytes;
    if let Some(len) = content_length(req.headers())
        && limit > 0
        && found.size + len > limit
    {
        return Err(ApiError::too_large("blob", limit));
    }
    let mut stream = req.into_body().into_data_stream();
    let result = if found.chain.is_empty() {
        publish(state, &digest, hex, &[], None, &mut stream).await
    } else {
        let first = next_data(&mut stream).await?;
        let renamed = if first.is_none() && found.chain.len() == 1 {
            publish_by_rename(state, id, &found, hex).await?
        } else {
            Renamed::No
        };
        match renamed {
            Renamed::Yes => Ok(()),
            Renamed::Mismatch => Err(ApiError::digest_invalid(&digest)),
            Renamed::No => publish(state, &digest, hex, &found.chain, first, &mut stream).await,
        }
    };
    if let Err(e) = result {
        // A failed verification ends the session, as distribution does: the client starts over.
        if e.code == "DIGEST_INVALID" {
            delete_session(state, id).await;
        }
        return Err(e);
    }
    link_blob(state, name, hex).await?;
    delete_session(state, id).await;
    Ok(blob_created(name, &digest))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: abandons the session.
pub(super) async fn cancel(state: &AppState, name: &str, id: &str) -> Result<Response, ApiError> {
    check_session(state, name, id).await?;
    delete_session(state, id).await;
    Ok(empty_response(StatusCode::NO_CONTENT, &[]))
}

/// The outcome of trying to publish a single-chunk upload by renaming its chunk.
enum Renamed {
    /// Published.
    Yes,
    /// The chunk's recorded digest is not the one asked for.
    Mismatch,
    /// No usable record: read the chunk again.
    No,
}

/// Publishes a one-chunk upload by renaming the chunk, when its sidecar shows it matches. Any
/// object at offset 0 will do (racing requests may have left several): each sidecar describes
/// only the object its own request wrote.
async fn publish_by_rename(
    state: &AppState,
    id: &str,
    found: &Chunks,
    hex: &str,
) -> Result<Renamed, ApiError> {
    let storage = &state.storage;
    let mut outcome = Renamed::No;
    for c in &found.at_zero {
        let Some(raw) = storage
            .get(&paths::upload_sum_by(id, c.offset, &c.writer))
            .await?
        else {
            continue;
        };
        let Ok(sum) = serde_json::from_slice::<ChunkSum>(&raw) else {
            continue;
        };
        if sum.size != c.info.size {
            continue;
        }
        if sum.sha256 != hex {
            if c.info.key == found.chain[0].info.key {
                outcome = Renamed::Mismatch;
            }
            continue;
        }
        storage.rename(&c.info.key, &paths::blob(hex)).await?;
        return Ok(Renamed::Yes);
    }
    Ok(outcome)
}

/// Reads every chunk again, in order, then the rest of the body, through the hasher into the
/// blob's key; with no chunks, the body goes straight there. It becomes visible only if it
/// matches `digest`.
async fn publish(
    state: &AppState,
    digest: &str,
    hex: &str,
    list: &[Chunk],
    first: Option<Bytes>,
    stream: &mut BodyDataStream,
) -> Result<(), ApiError> {
    let storage = &state.storage;
    let limit = state.config.limits.max_blob_bytes;
    let mut writer = storage.writer(&paths::blob(hex)).await?;
    let mut hasher = Sha256::new();
    let mut n = 0u64;
    for chunk in list.iter().map(|c| &c.info) {
        let Some(mut obj) = storage.get_stream(&chunk.key, None).await? else {
            abort(writer).await;
            return Err(ApiError::upload_invalid(format!(
                "chunk {} vanished while finishing the upload",
                chunk.key
            )));
        };
        while let Some(part) = obj.stream.next().await {
            let part = match part {
                Ok(p) => p,
                Err(e) => {
                    abort(writer).await;
                    return Err(e.into());
                }
            };
            n += part.len() as u64;
            hasher.update(&part);
            if let Err(e) = writer.write(part).await {
                abort(writer).await;
                return Err(e.into());
            }
        }
    }
    if let Some(b) = first {
        n += b.len() as u64;
        if limit > 0 && n > limit {
            abort(writer).await;
            return Err(ApiError::too_large("blob", limit));
        }
        hasher.update(&b);
        if let Err(e) = writer.write(b).await {
            abort(writer).await;
            return Err(e.into());
        }
    }
    if let Err(e) = pump_stream(stream, &mut hasher, &mut writer, n, limit).await {
        abort(writer).await;
        return Err(e.into());
    }
    commit_if_matches(writer, hasher, digest).await
}

async fn commit_if_matches(writer: Writer, hasher: Sha256, digest: &str) -> Result<(), ApiError> {
    if digest_of(hasher) != digest {
        abort(writer).await;
        return Err(ApiError::digest_invalid(digest));
    }
    writer.finish().await?;
    Ok(())
}

/// Records that `name` holds blob `hex` (a fresh link, so GC's grace period starts now).
async fn link_blob(state: &AppState, name: &str, hex: &str) -> Result<(), ApiError> {
    state
        .storage
        .put(&paths::blob_link(name, hex), Bytes::new())
        .await?;
    Ok(())
}

/// The next non-empty piece of a body, if any.
async fn next_data(stream: &mut BodyDataStream) -> Result<Option<Bytes>, ApiError> {
    while let Some(b) = stream.next().await {
        let b = b.map_err(|e| ApiError::upload_invalid(format!("reading the body: {e}")))?;
        if !b.is_empty() {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

async fn abort(writer: Writer) {
    let key = writer.key().to_string();
    if let Err(e) = writer.abort().await {
        tracing::warn!(error = %e, %key, "could not discard a partial object");
    }
}

/// Refuses a body whose declared length is over the blob limit before reading it.
fn check_declared_size(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let limit = state.config.limits.max_blob_bytes;
    match content_length(headers) {
        Some(len) if limit > 0 && len > limit => Err(ApiError::too_large("blob", limit)),
        _ => Ok(()),
    }
}

/// Checks that `id` names a session of repository `name`.
async fn check_session(state: &AppState, name: &str, id: &str) -> Result<(), ApiError> {
    if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ApiError::upload_unknown(id));
    }
    let Some(raw) = state.storage.get(&paths::upload_info(id)).await? else {
        return Err(ApiError::upload_unknown(id));
    };
    match serde_json::from_slice::<UploadInfo>(&raw) {
        Ok(info) if info.repo == name => Ok(()),
        _ => Err(ApiError::upload_unknown(id)),
    }
}

/// One chunk object of a session.
#[derive(Debug, Clone)]
struct Chunk {
    /// Where it starts in the upload.
    offset: u64,
    /// The request that wrote it.
    writer: String,
    /// The object.
    info: ObjectInfo,
}

/// A session's data as found in the storage.
struct Chunks {
    /// The chunks that make up the upload, in order, each starting where the last one ends.
    chain: Vec<Chunk>,
    /// Every chunk object starting at 0 (several only when requests raced for the start).
    at_zero: Vec<Chunk>,
    /// The upload's size: where the chain ends.
    size: u64,
}

/// Lists a session's chunks and links them into one chain from offset 0. Requests racing for
/// one offset leave several objects there: the chain takes one that a later chunk continues,
/// else the first; objects the chain does not reach are ignored (the digest check at the end
/// covers whatever is read).
async fn chunks(state: &AppState, id: &str) -> Result<Chunks, ApiError> {
    let mut by_offset: std::collections::BTreeMap<u64, Vec<Chunk>> = Default::default();
    for info in state.storage.list(&paths::upload_chunks(id)).await? {
        if let Some((offset, writer)) = paths::chunk_part(&info.key) {
            let writer = writer.to_string();
            by_offset.entry(offset).or_default().push(Chunk {
                offset,
                writer,
                info,
            });
        }
    }
    let at_zero = by_offset.get(&0).cloned().unwrap_or_default();
    let mut chain = Vec::new();
    let mut size = 0u64;
    while let Some(candidates) = by_offset.get(&size) {
        let next = candidates
            .iter()
            .find(|c| c.info.size > 0 && by_offset.contains_key(&(size + c.info.size)))
            .or_else(|| candidates.iter().find(|c| c.info.size > 0));
        let Some(c) = next else {
            break;
        };
        size += c.info.size;
        chain.push(c.clone());
    }
    Ok(Chunks {
        chain,
        at_zero,
        size,
    })
}

/// Removes every object of a session; failures are left for GC to finish.
async fn delete_session(state: &AppState, id: &str) {
    let storage = &state.storage;
    let keys = match storage.list(&paths::upload(id)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, %id, "could not list an upload session to remove it");
            return;
        }
    };
    let info = paths::upload_info(id);
    for o in keys.iter().filter(|o| o.key != info) {
        if let Err(e) = storage.delete(&o.key).await {
            tracing::warn!(error = %e, key = %o.key, "could not remove upload data");
        }
    }
    // The info goes last: while it exists, GC still sees the session's age.
    if let Err(e) = storage.delete(&info).await {
        tracing::warn!(error = %e, key = %info, "could not remove upload info");
    }
    // On disk the session's directories would stay behind, empty, one per upload forever.
    if let Err(e) = storage.prune(&paths::upload(id), None).await {
        tracing::warn!(error = %e, %id, "could not prune an upload session");
    }
}

/// Parses `a-b`, `bytes a-b`, `bytes=a-b` or any of them with `/total`.
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v
        .strip_prefix("bytes")
        .map(|r| r.trim_start_matches([' ', '=']))
        .unwrap_or(v);
    let v = v.split('/').next()?.trim();
    let (a, b) = v.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (b >= a).then_some((a, b))
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// `Range: 0-<last byte>` as distribution writes it (`0-0` for an empty session).
fn range_value(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn session_response(status: StatusCode, name: &str, id: &str, size: u64) -> Response {
    empty_response(
        status,
        &[
            ("location", upload_location(name, id)),
            ("range", range_value(size)),
            ("docker-upload-uuid", id.to_string()),
        ],
    )
}

fn out_of_order(name: &str, id: &str, size: u64, why: &str) -> ApiError {
    ApiError::range_invalid(why)
        .with_header(header::LOCATION, &upload_location(name, id))
        .with_header(header::RANGE, &range_value(size))
        .with_header(header::HeaderName::from_static("docker-upload-uuid"), id)
}

fn blob_created(name: &str, digest: &str) -> Response {
    empty_response(
        StatusCode::CREATED,
        &[
            ("location", format!("/v2/{name}/blobs/{digest}")),
            ("docker-content-digest", digest.to_string()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_in_every_form() {
        assert_eq!(parse_content_range("0-21"), Some((0, 21)));
        assert_eq!(parse_content_range("bytes 22-41/42"), Some((22, 41)));
        assert_eq!(parse_content_range("bytes=5-9"), Some((5, 9)));
        assert_eq!(parse_content_range("9-5"), None);
        assert_eq!(parse_content_range("x-5"), None);
        assert_eq!(parse_content_range(""), None);
        assert_eq!(range_value(0), "0-0");
        assert_eq!(range_value(22), "0-21");
    }
}
