//! Prometheus metrics and access logs (owned by the auth helper; being written).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::server::AppState;

/// Request counters.
#[derive(Default)]
pub struct Metrics;

impl Metrics {
    /// Empty counters.
    pub fn new() -> Metrics {
        Metrics
    }
}

/// Records each request and writes its access-log line.
pub async fn track(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    next.run(req).await
}

/// `GET /metrics`.
pub async fn handler(State(_state): State<AppState>) -> Response {
    String::new().into_response()
}
