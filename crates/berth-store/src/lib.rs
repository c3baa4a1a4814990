//! berth-store: the content store (blobs by digest, verified atomic ingest), images and tags, layer
//! unpacking into snapshots keyed by chain ID, container overlay layouts, locking and garbage
//! collection. It knows nothing about processes.
//!
//! Three parts, as in containerd: [`content`] only knows blobs by digest, [`snapshot`] only knows
//! unpacked layer trees by chain ID, and [`meta`] (one redb file) knows which images and tags
//! refer to them. Writes go blobs → snapshots → metadata, deletes metadata → snapshots → blobs,
//! so a process killed at any point leaves unreferenced leftovers (which `prune` collects) but
//! never a reference to something missing.
//!
//! Modules import only modules below them, in this order (lowest first; `module_order` checks
//! it): `error`, `lock`, `fsutil`, `hashing` → [`content`] → [`snapshot`] → [`meta`] →
//! [`layout`] → `image` → `parts` → `record` → [`download`], [`import`], [`gc`] → [`archive`]
//! → the [`Store`] façade. This file only declares the modules and re-exports.
#![deny(missing_docs)]

pub mod archive;
pub mod content;
pub mod download;
mod error;
mod fsutil;
pub mod gc;
mod hashing;
mod image;
pub mod import;
pub mod layout;
mod lock;
pub mod meta;
#[cfg(test)]
mod module_order;
mod parts;
mod record;
pub mod snapshot;
mod store;

pub use download::{LayerDownload, LayerFetch, LayerStats, NewImage};
pub use error::{Error, Result};
pub use gc::{DiskUsage, PruneReport};
pub use image::{Image, Layer, Rootfs};
pub use import::ImportOptions;
pub use lock::StoreLock;
pub use store::Store;
