//! `push`: upload an image from the store, blobs first (only those the registry lacks; mounted
//! from another repository of the same registry when one is known to have them; chunked when
//! large), the manifest last.

use crate::client::Client;
use crate::error::Result;
use crate::events::EventSink;
use berth_oci::{Digest, Reference};
use berth_store::Store;

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    /// Where progress goes.
    pub events: EventSink,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Where the image went, fully qualified.
    pub reference: Reference,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Blobs the registry already had.
    pub blobs_existing: usize,
    /// Bytes of blob data sent.
    pub bytes_uploaded: u64,
}

/// Pushes the local image `local` (a name or id) to `target`.
pub async fn push(
    client: &Client,
    store: &Store,
    local: &str,
    target: &Reference,
    opts: &PushOptions,
) -> Result<Pushed> {
    let _ = (client, store, local, target, opts);
    Err(crate::Error::Invalid("push is being written".into()))
}
