//! The web pages (owned by the search helper; being written).

use axum::Router;

use crate::server::AppState;

/// The pages' routes.
pub fn router() -> Router<AppState> {
    Router::new()
}
