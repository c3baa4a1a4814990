//! Authentication and authorisation (owned by the auth helper; being written).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::AuthConfig;
use crate::error::ApiError;
use crate::server::AppState;

/// Why auth could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Placeholder.
    #[error("auth: {0}")]
    Setup(String),
}

/// Who may do what.
pub struct Auth;

impl Auth {
    /// Sets auth up from its configuration.
    pub fn new(_config: &AuthConfig) -> Result<Auth, AuthError> {
        Ok(Auth)
    }
}

/// The middleware in front of every request.
pub async fn guard(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    next.run(req).await
}

/// The token endpoint.
pub async fn token(State(_state): State<AppState>, _req: Request) -> Response {
    ApiError::unsupported("tokens are not configured").into_response()
}
