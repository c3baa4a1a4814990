//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, both paginated with `n` and `last` and a
//! `Link` header to the next page.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::paths;

use super::{json_response, paginate, pagination, set_headers};

/// Lists a repository's tags; 404 NAME_UNKNOWN when the repository does not exist.
pub(super) async fn list(
    state: &AppState,
    name: &str,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let storage = &state.storage;
    let (n, last) = pagination(params);
    let prefix = format!("{}/", paths::tags(name));
    let all: Vec<String> = storage
        .list(&paths::tags(name))
        .await?
        .into_iter()
        .filter_map(|o| o.key.strip_prefix(&prefix).map(str::to_string))
        .collect();
    if all.is_empty() && !repository_exists(state, name).await? {
        return Err(ApiError::name_unknown(name));
    }
    let (page, link) = paginate(all, n, last.as_deref(), &format!("/v2/{name}/tags/list"));
    let body = json!({ "name": name, "tags": page }).to_string();
    let mut resp = json_response(StatusCode::OK, body);
    if let Some(l) = link {
        set_headers(resp.headers_mut(), &[("link", l)]);
    }
    Ok(resp)
}

/// A repository exists once a manifest was pushed to it (its catalog marker), or while it holds
/// a manifest link.
async fn repository_exists(state: &AppState, name: &str) -> Result<bool, ApiError> {
    let storage = &state.storage;
    if storage.head(&paths::catalog_entry(name)).await?.is_some() {
        return Ok(true);
    }
    Ok(!storage.list(&paths::manifest_links(name)).await?.is_empty())
}

/// Lists repositories.
pub(super) async fn catalog(
    state: &AppState,
    params: &[(String, String)],
    who: Option<&crate::auth::Principal>,
) -> Result<Response, ApiError> {
    let (n, last) = pagination(params);
    let all: Vec<String> = state
        .storage
        .list(paths::CATALOG)
        .await?
        .iter()
        .filter_map(|o| paths::catalog_name(&o.key).map(str::to_string))
        .filter(|name| state.auth.may_pull(who, name))
        .collect();
    let (page, link) = paginate(all, n, last.as_deref(), "/v2/_catalog");
    let body = json!({ "repositories": page }).to_string();
    let mut resp = json_response(StatusCode::OK, body);
    if let Some(l) = link {
        set_headers(resp.headers_mut(), &[("link", l)]);
    }
    Ok(resp)
}
