//! Errors as the distribution spec defines them: an HTTP status and a JSON body
//! `{"errors":[{"code","message","detail"}]}`.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::storage::StorageError;

/// One error response of the registry API.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The spec's error code, e.g. `BLOB_UNKNOWN`.
    pub code: &'static str,
    /// A message for people.
    pub message: String,
    /// Machine-readable detail, if any.
    pub detail: Option<Box<Value>>,
    /// Extra response headers (e.g. `WWW-Authenticate`, `Range`).
    pub headers: Option<Box<HeaderMap>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl From<crate::names::NameError> for ApiError {
    fn from(e: crate::names::NameError) -> Self {
        use crate::names::NameError;
        match e {
            NameError::Name(n) => ApiError::name_invalid(&n),
            NameError::Tag(t) => ApiError::tag_invalid(&t),
            NameError::Digest(d) => ApiError::digest_invalid(&d),
        }
    }
}

impl ApiError {
    /// An error with a code, status and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
            headers: None,
        }
    }

    /// Adds machine-readable detail.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers
                .get_or_insert_with(|| Box::new(HeaderMap::new()))
                .insert(name, v);
        }
        self
    }

    /// 404 BLOB_UNKNOWN.
    pub fn blob_unknown(digest: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        )
        .with_detail(json!({ "digest": digest }))
    }

    /// 404 BLOB_UPLOAD_UNKNOWN.
    pub fn upload_unknown(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown to registry",
        )
        .with_detail(json!({ "uuid": id }))
    }

    /// 400 BLOB_UPLOAD_INVALID.
    pub fn upload_invalid(why: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", why)
    }

    /// 400 DIGEST_INVALID: a digest that does not parse, or content that does not match it.
    pub fn digest_invalid(digest: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
        )
        .with_detail(json!({ "digest": digest }))
    }

    /// 400 SIZE_INVALID.
    pub fn size_invalid(why: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SIZE_INVALID", why)
    }

    /// 400 NAME_INVALID.
    pub fn name_invalid(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            "invalid repository name",
        )
        .with_detail(json!({ "name": name }))
    }

    /// 400 TAG_INVALID (distribution's code for a bad tag).
    pub fn tag_invalid(tag: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            "manifest tag did not match URI",
        )
        .with_detail(json!({ "tag": tag }))
    }

    /// 404 NAME_UNKNOWN.
    pub fn name_unknown(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        )
        .with_detail(json!({ "name": name }))
    }

    /// 404 MANIFEST_UNKNOWN.
    pub fn manifest_unknown(reference: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        )
        .with_detail(json!({ "reference": reference }))
    }

    /// 400 MANIFEST_INVALID.
    pub fn manifest_invalid(why: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", why)
    }

    /// 400 MANIFEST_BLOB_UNKNOWN.
    pub fn manifest_blob_unknown(digest: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            "manifest references a blob unknown to the registry",
        )
        .with_detail(json!({ "digest": digest }))
    }

    /// 401 UNAUTHORIZED.
    pub fn unauthorized(why: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", why)
    }

    /// 403 DENIED.
    pub fn denied(why: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "DENIED", why)
    }

    /// 405 UNSUPPORTED.
    pub fn unsupported(why: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", why)
    }

    /// 413 SIZE_INVALID for a body over the configured limit.
    pub fn too_large(what: &str, limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("{what} is larger than the limit of {limit} bytes"),
        )
    }

    /// 416 for a chunk that does not start where the upload ends, or a bad blob range.
    pub fn range_invalid(why: impl Into<String>) -> Self {
        Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            why,
        )
    }

    /// 500 UNKNOWN for failures of the registry itself.
    pub fn internal(why: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", why)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        tracing::error!(error = %e, "storage failure");
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({ "code": self.code, "message": self.message });
        if let Some(d) = self.detail {
            err["detail"] = *d;
        }
        let body = json!({ "errors": [err] }).to_string();
        let mut resp = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(h) = self.headers {
            resp.headers_mut().extend(*h);
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // Refused before its body was read: the rest of the body is still on the connection, so
            // it cannot carry another request. Saying so keeps a client from reusing it and seeing it
            // closed under its next request.
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_413_closes_the_connection_other_errors_keep_it() {
        let r = ApiError::too_large("blob", 10).into_response();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.headers()["connection"], "close");
        let r = ApiError::internal("x").into_response();
        assert!(r.headers().get("connection").is_none());
    }
}
