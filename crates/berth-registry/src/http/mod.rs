//! The HTTP layer: the shared state of a serving instance, the router, the accept loop (plain TCP
//! or TLS, HTTP/1.1), and every handler and middleware — the distribution API ([`api`]), the web
//! pages ([`web`]), the auth guard and token endpoint ([`auth`]), the search and metrics endpoints.
//!
//! Everything here is a thin translation between HTTP and the domain modules (storage, auth rules,
//! search index, GC, metrics registry), which know nothing of HTTP: a daemon or a CLI can use them
//! without axum. Nothing outside this module imports it (`tests/layering.rs` checks).

pub mod api;
pub mod auth;
pub mod error;
pub mod metrics;
pub mod route;
pub mod search;
pub mod tls;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware;
use axum::response::Response;
use axum::routing::get;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::config::Config;
use crate::gc;
use crate::storage::Storage;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The storage could not be opened.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// Auth could not be set up.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Everything a request handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The storage, the only state shared between instances.
    pub storage: Storage,
    /// The configuration.
    pub config: Arc<Config>,
    /// This instance's search index (rebuilt from the storage, tailing its events).
    pub search: Arc<crate::search::Index>,
    /// Authentication and authorisation.
    pub auth: Arc<crate::auth::Auth>,
    /// Request metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// Builds the state from a validated configuration.
    pub fn new(config: Config) -> Result<AppState, ServeError> {
        config.validate()?;
        let storage = Storage::open(config.storage.as_ref().expect("validated"))?;
        let auth = crate::auth::Auth::new(&config.auth)?;
        Ok(AppState {
            storage,
            auth: Arc::new(auth),
            config: Arc::new(config),
            search: Arc::new(crate::search::Index::new()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        })
    }
}

/// The full router: the `/v2/` API, the token endpoint, metrics and the web pages, behind the
/// auth guard and the metrics/access-log layer.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(self::metrics::handler))
        .route("/token", get(self::auth::token))
        .merge(web::router())
        .fallback(dispatch)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            self::auth::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            self::metrics::track,
        ))
        .with_state(state)
}

async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    api::dispatch(state, req).await
}

/// Serves until SIGINT or SIGTERM: binds, starts the search index and periodic GC, accepts
/// connections. Prints `listening on ADDR` to stderr once ready.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let state = AppState::new(config)?;
    let tls = match &state.config.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(t)?)),
        None => None,
    };
    let addr = state.config.addr.clone();
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local: SocketAddr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: addr.clone(),
        source,
    })?;
    crate::search::spawn(
        state.search.clone(),
        state.storage.clone(),
        Duration::from_millis(state.config.search.poll_ms),
    );
    gc::spawn_periodic(state.storage.clone(), state.config.gc.clone());
    tracing::info!(addr = %local, storage = state.storage.describe(), tls = tls.is_some(), "registry serving");
    eprintln!("listening on {local}");
    let app = router(state);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = sock.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |r: hyper::Request<hyper::body::Incoming>| {
                    let mut r = r.map(axum::body::Body::new);
                    r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    app.clone().oneshot(r)
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.max_buf_size(1 << 20);
            let res = match tls {
                Some(acc) => match acc.accept(sock).await {
                    Ok(s) => builder.serve_connection(TokioIo::new(s), svc).await,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(sock), svc).await,
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("registry stopping");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
