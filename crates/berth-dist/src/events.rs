//! Progress events of a pull or push, for progress bars (`berth`), `--quiet`, and the JSON stream.

use berth_oci::Digest;
use serde::Serialize;
use std::sync::Arc;

/// Where events go. Called from several tasks at once; keep it quick.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// One thing that happened during a pull or push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The reference resolved to a manifest (for a pull: the platform's image manifest; `index`
    /// is the index it was picked from).
    Resolved {
        /// The fully qualified reference.
        reference: String,
        /// The image manifest's digest.
        digest: Digest,
        /// The index's digest, when the reference named one.
        #[serde(skip_serializing_if = "Option::is_none")]
        index: Option<Digest>,
    },
    /// A layer (or, for push, any blob) changed state.
    Layer {
        /// The blob's digest.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// What happened.
        #[serde(flatten)]
        status: LayerStatus,
    },
    /// The manifest was stored (pull) or uploaded (push): the operation succeeded.
    Done {
        /// The fully qualified reference.
        reference: String,
        /// The manifest digest (for a pull by index: the index digest, as Docker prints it).
        digest: Digest,
    },
}

/// The state of one blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LayerStatus {
    /// Queued, waiting for a transfer slot.
    Waiting,
    /// Pull: the store already has it; push: the registry already has it.
    Exists,
    /// Push: mounted from another repository of the same registry.
    Mounted {
        /// The repository it was mounted from.
        from: String,
    },
    /// A transfer resumed after `offset` bytes kept from an earlier attempt.
    Resumed {
        /// Bytes not sent again.
        offset: u64,
    },
    /// Bytes moved so far (including any resumed offset).
    Progress {
        /// Bytes done.
        done: u64,
    },
    /// Pull: all bytes arrived and were verified; unpacking finishes.
    Extracting,
    /// Finished: stored and verified (pull) or accepted by the registry (push).
    Complete,
}
