//! Change events: every push and delete writes one small object under `events/`, which the search
//! index of every instance tails. The storage is the only channel between instances.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::paths::{self, Event};
use crate::storage::{Storage, StorageError};

/// Records an event. A failure is logged, not returned: the change itself has been committed,
/// and indexes also rebuild from the storage itself when they start.
pub async fn publish(storage: &Storage, event: Event) {
    if let Err(e) = try_publish(storage, &event).await {
        tracing::warn!(error = %e, ?event, "could not record change event");
    }
}

/// Records an event, returning failures.
pub async fn try_publish(storage: &Storage, event: &Event) -> Result<(), StorageError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let body = serde_json::to_vec(event).expect("events serialise");
    storage.put(&paths::event(now), Bytes::from(body)).await
}
