//! The snapshot module's error type. It lives here, below every module, so that the crate's
//! [`Error`](super::Error) can wrap it without `error` importing `snapshot`.

use berth_oci::Digest;
use std::io;
use std::path::PathBuf;

/// What went wrong while unpacking, listing or removing snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A layer entry was refused because it would write outside the snapshot or is malformed.
    #[error("layer entry {entry:?} {reason}")]
    Rejected {
        /// The entry's path as written in the tar stream.
        entry: String,
        /// Why it was refused, as a predicate ("escapes the rootfs").
        reason: String,
    },
    /// A filesystem operation on a layer entry failed.
    #[error("{action} layer entry {entry:?}: {source}")]
    Entry {
        /// What was being done ("creating", "setting the owner of", …).
        action: &'static str,
        /// The entry's path as written in the tar stream.
        entry: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The tar stream itself could not be read or parsed.
    #[error("reading the layer tar stream{}: {source}", after.as_ref().map(|a| format!(" after entry {a:?}")).unwrap_or_default())]
    Read {
        /// The last entry read successfully, if any.
        after: Option<String>,
        /// The underlying error.
        source: io::Error,
    },
    /// The uncompressed stream's digest differs from the diff ID it was expected to have.
    #[error("layer content does not match its diff ID: expected {expected}, got {actual}")]
    DiffIdMismatch {
        /// The diff ID the image configuration promised.
        expected: Digest,
        /// The digest of what was actually read.
        actual: Digest,
    },
    /// A filesystem operation on the snapshot directory failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("creating", "renaming", …).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl SnapshotError {
    /// Builds an [`SnapshotError::Io`] from a rustix or std error.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Self {
        SnapshotError::Io {
            action,
            path: path.into(),
            source: source.into(),
        }
    }
}
