//! The distribution API under `/v2/` (owned by the api helper; being written).

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::server::AppState;

/// Serves one `/v2/` request.
pub async fn dispatch(_state: AppState, _req: Request) -> Response {
    ApiError::unsupported("not yet served").into_response()
}
