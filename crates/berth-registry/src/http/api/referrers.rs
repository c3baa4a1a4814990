//! `GET /v2/<name>/referrers/<digest>[?artifactType=]`: the manifests whose `subject` is the
//! digest, as an OCI image index. Entries are written at manifest PUT time, whether or not the
//! subject exists, so an unknown subject simply has none.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::manifest::{Descriptor, OCI_INDEX};
use crate::names;
use crate::paths;

use super::{param, set_headers};

/// Serves the referrers index of a subject.
pub(super) async fn get(
    state: &AppState,
    name: &str,
    digest: &str,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let d = names::parse_digest(digest)?;
    let filter = param(params, "artifactType")
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let storage = &state.storage;
    let entries = storage.list(&paths::referrers(name, d.hex())).await?;
    let found = futures::future::join_all(entries.iter().map(|o| storage.get(&o.key))).await;
    let mut manifests = Vec::new();
    for (o, raw) in entries.iter().zip(found) {
        let Some(raw) = raw? else {
            continue;
        };
        let desc: Descriptor = match serde_json::from_slice(&raw) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, key = %o.key, "skipping a corrupt referrer entry");
                continue;
            }
        };
        if let Some(f) = &filter
            && desc.artifact_type.as_deref() != Some(f.as_str())
        {
            continue;
        }
        manifests.push(desc);
    }
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    })
    .to_string();
    let mut resp = Response::new(body.into());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    if filter.is_some() {
        set_headers(
            resp.headers_mut(),
            &[("oci-filters-applied", "artifactType".to_string())],
        );
    }
    Ok(resp)
}
