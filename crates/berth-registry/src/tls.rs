//! TLS server configuration (owned by the auth helper; being written).

use std::sync::Arc;

use tokio_rustls::rustls::ServerConfig;

use crate::config::TlsConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Placeholder.
    #[error("tls: {0}")]
    Setup(String),
}

/// Loads the certificate and key.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    Err(TlsError::Setup(format!(
        "not yet supported ({})",
        config.cert.display()
    )))
}
