//! berth-registry: an OCI distribution-spec v1.1 registry server.
//!
//! Storage is local disk or an S3-compatible bucket behind one abstraction ([`storage`]); every
//! piece of state — upload sessions included — lives in that storage, so any number of instances
//! can serve one bucket with no coordination service. Beyond the spec: a search index of what
//! was pushed with a web page, online garbage collection, htpasswd and bearer-token auth, TLS,
//! structured access logs and Prometheus metrics.
//!
//! Two layers, one way: the domain — [`storage`] (one [`storage::Backend`] per backend), [`auth`]
//! rules, the [`search`] index, [`gc`], the [`metrics`] registry, [`manifest`], [`names`],
//! [`paths`] — knows nothing of HTTP, so a daemon or a CLI can use it without axum; [`http`] (the
//! state, router, handlers, auth guard, TLS serving) sits above it. `tests/layering.rs` checks.
//!
//! Not for: pulling or pushing as a client (that is `berth-dist`), or the local image store
//! (`berth-store`).
#![deny(missing_docs)]

pub mod auth;
pub mod config;
pub mod events;
pub mod gc;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod paths;
pub mod search;
pub mod storage;

/// The server's entry points at the path they had before the HTTP layer moved to [`http`].
pub mod server {
    pub use crate::http::{AppState, ServeError, router, serve};
}

pub use config::Config;
pub use http::{AppState, ServeError, serve};
pub use storage::{Storage, StorageSpec};
