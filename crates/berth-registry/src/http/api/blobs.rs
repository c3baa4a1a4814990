//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`: blobs are served only through the
//! repository's link, streamed from the storage, with single byte ranges.

use std::ops::Range;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::names;
use crate::paths;

use super::{empty_response, set_headers};

/// Serves a blob (or, with `head_only`, only its headers).
pub(super) async fn get(
    state: &AppState,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    head_only: bool,
) -> Result<Response, ApiError> {
    let d = names::parse_digest(digest)?;
    let hex = d.hex();
    let storage = &state.storage;
    let Some(link) = storage.head(&paths::blob_link(name, hex)).await? else {
        return Err(ApiError::blob_unknown(digest));
    };
    let Some(blob) = storage.head(&paths::blob(hex)).await? else {
        return Err(ApiError::blob_unknown(digest));
    };
    if let Err(e) = crate::gc::refresh_link(storage, &link, state.config.gc.grace_secs).await {
        tracing::warn!(error = %e, key = %link.key, "could not refresh blob link");
    }
    let size = blob.size;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(r) => match parse_range(r, size) {
            RangeAnswer::Whole => None,
            RangeAnswer::Part(r) => Some(r),
            RangeAnswer::Unsatisfiable => {
                return Err(ApiError::range_invalid(format!(
                    "range {r:?} cannot be satisfied by a blob of {size} bytes"
                ))
                .with_header(header::CONTENT_RANGE, &format!("bytes */{size}")));
            }
        },
    };
    let digest = d.to_string();
    let mut common = vec![
        ("content-type", "application/octet-stream".to_string()),
        ("docker-content-digest", digest.clone()),
        ("accept-ranges", "bytes".to_string()),
        ("etag", format!("\"{digest}\"")),
    ];
    let status = match &range {
        Some(r) => {
            common.push((
                "content-range",
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
            ));
            common.push(("content-length", (r.end - r.start).to_string()));
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            common.push(("content-length", size.to_string()));
            StatusCode::OK
        }
    };
    if head_only {
        return Ok(empty_response(status, &common));
    }
    let Some(obj) = storage.get_stream(&paths::blob(hex), range.clone()).await? else {
        return Err(ApiError::blob_unknown(&digest));
    };
    let mut resp = Response::new(Body::from_stream(obj.stream));
    *resp.status_mut() = status;
    set_headers(resp.headers_mut(), &common);
    // The object may have been replaced between head and open (same digest, same size); the
    // length we promised must be the one we send.
    if obj.info.size != size {
        resp.headers_mut().insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(range.map(|r| r.end - r.start).unwrap_or(obj.info.size)),
        );
    }
    Ok(resp)
}

/// Removes the repository's link to a blob; the bytes stay until garbage collection.
pub(super) async fn delete(
    state: &AppState,
    name: &str,
    digest: &str,
) -> Result<Response, ApiError> {
    let d = names::parse_digest(digest)?;
    let link = paths::blob_link(name, d.hex());
    if state.storage.head(&link).await?.is_none() {
        return Err(ApiError::blob_unknown(digest));
    }
    state.storage.delete(&link).await?;
    Ok(empty_response(StatusCode::ACCEPTED, &[]))
}

/// What a `Range` header asks of an object of a known size.
#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// Serve the whole object (the header asks for several ranges, or not in bytes).
    Whole,
    /// Serve this part.
    Part(Range<u64>),
    /// Answer 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` against an object of `size` bytes. Malformed
/// byte ranges are refused (416) rather than silently ignored, so a client never mistakes the
/// whole blob for the part it asked for.
fn parse_range(header: &str, size: u64) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    let range = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeAnswer::Unsatisfiable,
        (true, false) => {
            let Some(n) = num(b) else {
                return RangeAnswer::Unsatisfiable;
            };
            if n == 0 || size == 0 {
                return RangeAnswer::Unsatisfiable;
            }
            size.saturating_sub(n)..size
        }
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeAnswer::Unsatisfiable;
            };
            let end = if b.is_empty() {
                size
            } else {
                match num(b) {
                    Some(e) if e >= start => e.saturating_add(1).min(size),
                    _ => return RangeAnswer::Unsatisfiable,
                }
            };
            if start >= size {
                return RangeAnswer::Unsatisfiable;
            }
            start..end
        }
    };
    RangeAnswer::Part(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_against_the_size() {
        use RangeAnswer::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0..100));
        assert_eq!(parse_range("bytes=50-1000", 100), Part(50..100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=9-5", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=x-1", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
    }
}
