//! berth-registry: an OCI distribution-spec v1.1 registry server.
//!
//! Storage is local disk or an S3-compatible bucket behind one abstraction ([`storage`]); every
//! piece of state — upload sessions included — lives in that storage, so any number of instances
//! can serve one bucket with no coordination service. Beyond the spec: a search index of what
//! was pushed with a web page, online garbage collection, htpasswd and bearer-token auth, TLS,
//! structured access logs and Prometheus metrics.
//!
//! Not for: pulling or pushing as a client (that is `berth-dist`), or the local image store
//! (`berth-store`).
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod gc;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod paths;
pub mod route;
pub mod search;
pub mod server;
pub mod storage;
pub mod tls;
pub mod web;

pub use config::Config;
pub use server::{AppState, ServeError, serve};
pub use storage::{Storage, StorageSpec};
