//! The search index (owned by the search helper; being written).

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};

use crate::server::AppState;
use crate::storage::Storage;

/// One instance's in-memory index.
#[derive(Default)]
pub struct Index;

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index
    }
}

/// Builds the index from the storage, then follows its change events.
pub fn spawn(_index: Arc<Index>, _storage: Storage, _poll: Duration) {}

/// `GET /v2/_berth/search?q=…`.
pub async fn handle(_state: &AppState, _query: Option<&str>) -> Response {
    "[]".into_response()
}
