//! The distribution API under `/v2/` (OCI distribution-spec v1.1): one file per resource.
//!
//! Every handler keeps its state in the storage only, so any instance can continue what another
//! one started. Bodies stream through a SHA-256 hasher into the storage as they arrive; nothing
//! larger than a manifest is ever held whole in memory.

mod blobs;
mod manifests;
mod referrers;
mod tags;
mod uploads;

use axum::body::{Body, BodyDataStream};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::route::Route;
use crate::storage::{StorageError, Writer};

/// The header every answer carries, as distribution's clients expect.
const API_VERSION: &str = "docker-distribution-api-version";

/// Serves one `/v2/` request.
pub async fn dispatch(state: AppState, req: Request) -> Response {
    let mut resp = match route(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    resp
}

async fn route(state: AppState, req: Request) -> Result<Response, ApiError> {
    let route = match Route::parse(req.uri().path()) {
        Some(r) => r?,
        None => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no such endpoint: {}", req.uri().path()),
            ));
        }
    };
    let method = req.method().clone();
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(json_response(StatusCode::OK, "{}")),
        (Route::Catalog, Method::GET) => {
            let who = req.extensions().get::<crate::auth::Principal>();
            tags::catalog(&state, &query_params(&req), who).await
        }
        (Route::Search, Method::GET) => Ok(super::search::handle(
            &state,
            req.uri().query(),
            req.extensions().get::<crate::auth::Principal>(),
        )
        .await),
        (Route::Tags { name }, Method::GET) => tags::list(&state, &name, &query_params(&req)).await,
        (Route::Manifest { name, reference }, m) => match m {
            Method::GET => manifests::get(&state, &name, &reference, false).await,
            Method::HEAD => manifests::get(&state, &name, &reference, true).await,
            Method::PUT => manifests::put(&state, &name, &reference, req).await,
            Method::DELETE => manifests::delete(&state, &name, &reference).await,
            m => Err(not_allowed(&m)),
        },
        (Route::Blob { name, digest }, m) => match m {
            Method::GET => blobs::get(&state, &name, &digest, req.headers(), false).await,
            Method::HEAD => blobs::get(&state, &name, &digest, req.headers(), true).await,
            Method::DELETE => blobs::delete(&state, &name, &digest).await,
            m => Err(not_allowed(&m)),
        },
        (Route::UploadStart { name }, Method::POST) => uploads::start(&state, &name, req).await,
        (Route::Upload { name, id }, m) => match m {
            Method::GET => uploads::status(&state, &name, &id).await,
            Method::PATCH => uploads::patch(&state, &name, &id, req).await,
            Method::PUT => uploads::finish(&state, &name, &id, req).await,
            Method::DELETE => uploads::cancel(&state, &name, &id).await,
            m => Err(not_allowed(&m)),
        },
        (Route::Referrers { name, digest }, Method::GET) => {
            referrers::get(&state, &name, &digest, &query_params(&req)).await
        }
        (_, m) => Err(not_allowed(&m)),
    }
}

fn not_allowed(m: &Method) -> ApiError {
    ApiError::unsupported(format!("method {m} is not supported here"))
}

/// A small JSON answer.
fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// An answer with no body but the given headers; `Content-Length: 0` unless one is given.
fn empty_response(status: StatusCode, headers: &[(&str, String)]) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    set_headers(r.headers_mut(), headers);
    if !r.headers().contains_key(header::CONTENT_LENGTH) {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    r
}

fn set_headers(map: &mut HeaderMap, headers: &[(&str, String)]) {
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.insert(k, v);
        }
    }
}

/// The decoded query parameters of a request, in order.
fn query_params(req: &Request) -> Vec<(String, String)> {
    parse_query(req.uri().query().unwrap_or(""))
}

/// Parses `a=b&c=d`, percent-decoding both sides. `+` is kept as is: media types contain it and
/// clients encode a space as `%20`.
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The first value of a query parameter.
fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `n` and `last` of a paginated list; `n` absent means everything. An `n` that is not a
/// number is ignored like an absent one: the spec has no error code for it, and the whole list
/// is a correct answer.
fn pagination(params: &[(String, String)]) -> (Option<usize>, Option<String>) {
    let n = param(params, "n").and_then(|v| v.trim().parse::<usize>().ok());
    let last = param(params, "last")
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    (n, last)
}

/// One page of a sorted list: the entries after `last`, at most `n`, and the `Link` header value
/// for the next page when there is more.
fn paginate(
    mut all: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
    path: &str,
) -> (Vec<String>, Option<String>) {
    all.sort();
    all.dedup();
    if let Some(l) = last {
        all.retain(|x| x.as_str() > l);
    }
    match n {
        Some(n) if all.len() > n => {
            all.truncate(n);
            let link = all.last().map(|l| {
                format!(
                    "<{path}?n={n}&last={}>; rel=\"next\"",
                    percent_encode_component(l)
                )
            });
            (all, link)
        }
        _ => (all, None),
    }
}

fn percent_encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request's `Content-Type` without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Why streaming a request body into the storage stopped.
#[derive(Debug, thiserror::Error)]
enum PumpError {
    /// The client's body could not be read (it went away, or sent garbage).
    #[error("reading the request body: {0}")]
    Body(String),
    /// The body is larger than allowed.
    #[error("body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<PumpError> for ApiError {
    fn from(e: PumpError) -> Self {
        match e {
            PumpError::Body(why) => ApiError::upload_invalid(format!("reading the body: {why}")),
            PumpError::TooLarge(limit) => ApiError::too_large("blob", limit),
            PumpError::Storage(e) => e.into(),
        }
    }
}

/// Streams a request body through `hasher` into `writer`; `limit` is the most bytes the writer
/// may hold in total (0 = unlimited), counting what it held before. Returns the bytes added.
async fn pump_stream(
    stream: &mut BodyDataStream,
    hasher: &mut Sha256,
    writer: &mut Writer,
    already: u64,
    limit: u64,
) -> Result<u64, PumpError> {
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| PumpError::Body(e.to_string()))?;
        if chunk.is_empty() {
            continue;
        }
        n += chunk.len() as u64;
        if limit > 0 && already + n > limit {
            return Err(PumpError::TooLarge(limit));
        }
        hasher.update(&chunk);
        writer.write(chunk).await?;
    }
    Ok(n)
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
async fn read_limited(body: Body, limit: u64, what: &str) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_INVALID",
                format!("reading the {what}: {e}"),
            )
        })?;
        if limit > 0 && (buf.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::too_large(what, limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The declared `Content-Length`, if any.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// `sha256:<hex>` of a finished hasher.
fn digest_of(hasher: Sha256) -> String {
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_percent_and_keeps_plus() {
        let q = parse_query("digest=sha256%3Aab&artifactType=a%2Fb+json&x&n=");
        assert_eq!(param(&q, "digest"), Some("sha256:ab"));
        assert_eq!(param(&q, "artifactType"), Some("a/b+json"));
        assert_eq!(param(&q, "x"), Some(""));
        assert_eq!(param(&q, "n"), Some(""));
        assert_eq!(param(&q, "y"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn pages_follow_last_and_link_the_next() {
        let all: Vec<String> = ["c", "a", "b", "d"].iter().map(|s| s.to_string()).collect();
        let (p, link) = paginate(all.clone(), Some(2), None, "/v2/x/tags/list");
        assert_eq!(p, ["a", "b"]);
        assert_eq!(
            link.as_deref(),
            Some("</v2/x/tags/list?n=2&last=b>; rel=\"next\"")
        );
        let (p, link) = paginate(all.clone(), Some(2), Some("b"), "/p");
        assert_eq!(p, ["c", "d"]);
        assert_eq!(link, None);
        let (p, _) = paginate(all.clone(), None, Some("a"), "/p");
        assert_eq!(p, ["b", "c", "d"]);
        let (p, link) = paginate(all, Some(0), None, "/p");
        assert!(p.is_empty());
        assert_eq!(link, None);
    }
}
