//! Online garbage collection (owned by the gc helper; being written).

use crate::config::GcConfig;
use crate::storage::{Storage, StorageError};

/// Starts periodic collections when configured.
pub fn spawn_periodic(_storage: Storage, _config: GcConfig) {}

/// Waits until no garbage collector is sweeping.
pub async fn await_sweeps(_storage: &Storage) -> Result<(), StorageError> {
    Ok(())
}

/// Why a collection failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a collection did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs_deleted: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Upload sessions removed.
    pub uploads_removed: u64,
}

/// Runs one collection (with `dry_run`, only reports).
pub async fn collect(
    _storage: &Storage,
    _config: &GcConfig,
    _dry_run: bool,
) -> Result<GcReport, GcError> {
    Ok(GcReport::default())
}
