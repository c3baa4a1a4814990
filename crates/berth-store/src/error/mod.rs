//! The crate's error type: every variant says what was being done to what.

mod snapshot;

use berth_oci::Digest;
pub use snapshot::SnapshotError;
use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No image matches the name or id.
    #[error("No such image: {0}")]
    ImageNotFound(String),
    /// An id prefix matches more than one image.
    #[error("image id prefix {0:?} is ambiguous: it matches more than one image")]
    AmbiguousId(String),
    /// A reference string could not be parsed.
    #[error("invalid reference {input:?}: {source}")]
    BadReference {
        /// The text given.
        input: String,
        /// Why it is not a reference.
        source: berth_oci::ReferenceError,
    },
    /// A filesystem operation on a store path failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create directory", "write blob", ...).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading an input stream (tarball, archive) failed.
    #[error("read {what}: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing an output stream failed.
    #[error("write {what}: {source}")]
    Write {
        /// What was being written.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A blob's content does not hash to the digest it is stored or announced under.
    #[error("blob {expected} {context} does not match its digest (content hashes to {actual})")]
    DigestMismatch {
        /// The digest it claims.
        expected: Digest,
        /// The digest of the bytes.
        actual: Digest,
        /// Where the blob came from ("in archive", "in store").
        context: &'static str,
    },
    /// A blob's length differs from its descriptor.
    #[error("blob {digest} has {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Size from the descriptor.
        expected: u64,
        /// Size of the content.
        actual: u64,
    },
    /// A blob the image needs is not in the store.
    #[error("blob {0} is missing from the content store")]
    BlobMissing(Digest),
    /// A layer's snapshot is not in the store when an image using it is recorded.
    #[error("layer {layer}: snapshot {chain_id} is missing from the store")]
    SnapshotMissing {
        /// The layer blob.
        layer: Digest,
        /// Its chain ID.
        chain_id: Digest,
    },
    /// The tarball given to import is not a (compressed) tar stream.
    #[error("tarball layer is not a tar stream: {0}")]
    NotATar(String),
    /// A layer's uncompressed content does not match the diff ID in the image config.
    #[error("layer {layer} uncompresses to {actual}, but the image config says diff ID {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        layer: Digest,
        /// The config's diff ID.
        expected: Digest,
        /// The digest of the uncompressed stream.
        actual: Digest,
    },
    /// An image handed to `add_image` does not hang together (manifest, config and layers).
    #[error("invalid image: {0}")]
    BadImage(String),
    /// An archive given to `load` is malformed.
    #[error("invalid image archive: {0}")]
    BadArchive(String),
    /// A JSON document (manifest, config, index) could not be parsed.
    #[error("parse {what}: {source}")]
    Json {
        /// The document.
        what: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A `--change` instruction is not one import understands.
    #[error("invalid --change {0:?}: {1}")]
    BadChange(String, String),
    /// A `--platform` value is not os/arch[/variant].
    #[error("invalid --platform {0:?}: expected os/arch[/variant]")]
    BadPlatform(String),
    /// The image cannot be removed without force.
    #[error("conflict: unable to {action} (must be forced) - {reason}")]
    Conflict {
        /// What was refused ("delete 1a2b3c", "remove repository reference \"x\"").
        action: String,
        /// Why.
        reason: String,
    },
    /// The image is used by a container and cannot be deleted.
    #[error("conflict: unable to delete {0} - image is being used by a container")]
    InUse(String),
    /// The metadata database failed.
    #[error("metadata database {}: {what}: {message}", path.display())]
    Meta {
        /// The database file.
        path: PathBuf,
        /// The operation.
        what: &'static str,
        /// redb's message.
        message: String,
    },
    /// A metadata record in the database is not readable.
    #[error("metadata record for {key}: {message}")]
    BadRecord {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Unpacking a layer into a snapshot failed.
    #[error("unpack layer {layer}: {source}")]
    Unpack {
        /// The layer blob.
        layer: Digest,
        /// The snapshotter's error.
        source: SnapshotError,
    },
    /// Unpacking an imported tarball failed (a refused entry, or the snapshot directory).
    #[error("unpack the imported tarball: {source}")]
    ImportUnpack {
        /// The snapshotter's error.
        source: SnapshotError,
    },
    /// A snapshot operation other than unpacking failed.
    #[error("{action} snapshot: {source}")]
    Snapshot {
        /// What was being done.
        action: &'static str,
        /// The snapshotter's error.
        source: SnapshotError,
    },
}

impl Error {
    /// Builds an [`Error::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<berth_fs::FsError> for Error {
    fn from(e: berth_fs::FsError) -> Error {
        Error::Io {
            action: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

impl From<berth_oci::PlatformError> for Error {
    fn from(e: berth_oci::PlatformError) -> Error {
        Error::BadPlatform(e.0)
    }
}
