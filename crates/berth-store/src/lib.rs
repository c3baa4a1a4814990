//! berth-store: the content store (blobs by digest, verified atomic ingest), images and tags, layer
//! unpacking into snapshots keyed by chain ID, container overlay layouts, locking and garbage
//! collection. It knows nothing about processes.
#![deny(missing_docs)]
