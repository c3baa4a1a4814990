//! The registry's storage: one [`Backend`] trait with object-store semantics, one backend per file
//! ([`disk`], [`s3`]), and [`Storage`], the façade every other module uses.
//!
//! Everything the registry keeps — blobs, links, tags, upload sessions, search events, GC leases —
//! lives here, so any number of registry instances can share one storage with no other coordination.
//! Keys are `/`-separated strings laid out by [`crate::paths`]. What differs between backends (files
//! and directories, temporary files, mtimes) stays inside the backend's file; callers see objects
//! and prefixes only. `tests/storage_contract.rs` holds the one test suite every backend passes.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub mod disk;
pub mod s3;

pub use disk::DiskBackend;
pub use s3::S3Backend;

/// A storage failure, naming the key and what was being done to it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A storage backend call failed.
    #[error("storage: {op} {key}: {source}")]
    Backend {
        /// What was being done.
        op: &'static str,
        /// The key it was done to.
        key: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
    /// A local file operation failed.
    #[error("storage: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The storage location could not be parsed or opened.
    #[error("storage {spec}: {reason}")]
    Config {
        /// The storage location as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A background task panicked or was cancelled.
    #[error("storage: background task for {key} failed: {reason}")]
    Task {
        /// The key being written or read.
        key: String,
        /// Why the task ended.
        reason: String,
    },
}

/// Result type of this module.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Where a registry keeps its data, as given on the command line or in the config file.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StorageSpec {
    /// A directory, or `s3://BUCKET[/PREFIX]`.
    pub location: String,
    /// S3 endpoint URL (for non-AWS servers), e.g. `http://127.0.0.1:9000`.
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// S3 region; `AWS_REGION`/`AWS_DEFAULT_REGION` or `us-east-1` when absent.
    #[serde(default)]
    pub s3_region: Option<String>,
    /// Use virtual-hosted-style requests instead of path-style (path-style is the default, as most
    /// S3-compatible servers need it).
    #[serde(default)]
    pub s3_virtual_hosted: bool,
    /// Access key; `AWS_ACCESS_KEY_ID` when absent.
    #[serde(default)]
    pub s3_access_key: Option<String>,
    /// Secret key; `AWS_SECRET_ACCESS_KEY` when absent.
    #[serde(default)]
    pub s3_secret_key: Option<String>,
}

impl StorageSpec {
    /// A spec for a location with every S3 option left to the environment.
    pub fn new(location: impl Into<String>) -> Self {
        StorageSpec {
            location: location.into(),
            s3_endpoint: None,
            s3_region: None,
            s3_virtual_hosted: false,
            s3_access_key: None,
            s3_secret_key: None,
        }
    }
}

/// Facts about one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key, relative to the storage root.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// An object's bytes as a stream, with its facts.
pub struct ObjectStream {
    /// The whole object's facts (`size` is the full size, not the range's).
    pub info: ObjectInfo,
    /// The bytes of the requested range.
    pub stream: BoxStream<'static, Result<Bytes>>,
}

/// A backend call's future.
pub type BackendFuture<'a, T> = BoxFuture<'a, Result<T>>;

/// One place objects are kept. Object-store semantics: keys are `/`-separated, an object becomes
/// visible whole or not at all, a prefix exists while an object under it does.
///
/// Callers go through [`Storage`]; a backend is used directly only to build one
/// ([`Storage::from_backend`]).
pub trait Backend: Send + Sync + 'static {
    /// A short description for logs: the directory or `s3://bucket/prefix`.
    fn describe(&self) -> &str;

    /// Whether modification times are whole seconds (time comparisons then need a second of slack).
    fn coarse_times(&self) -> bool;

    /// The facts of one object, or `None` when it does not exist.
    fn head<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Option<ObjectInfo>>;

    /// A whole (small) object, or `None` when it does not exist.
    fn get<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Option<Bytes>>;

    /// An object, or a byte range within it, as a stream; `None` when it does not exist.
    fn get_stream<'a>(
        &'a self,
        key: &'a str,
        range: Option<Range<u64>>,
    ) -> BackendFuture<'a, Option<ObjectStream>>;

    /// Writes a whole object, replacing any old one atomically.
    fn put<'a>(&'a self, key: &'a str, data: Bytes) -> BackendFuture<'a, ()>;

    /// Writes a whole object only if none exists under the key; returns whether it was written.
    fn create<'a>(&'a self, key: &'a str, data: Bytes) -> BackendFuture<'a, bool>;

    /// Deletes an object; deleting a missing object is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BackendFuture<'a, ()>;

    /// Every object under `prefix/` (recursively) whose key sorts after `after`, sorted by key.
    fn list_after<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
    ) -> BackendFuture<'a, Vec<ObjectInfo>>;

    /// The names of the immediate "subdirectories" of `prefix/` (common prefixes), sorted.
    fn list_dirs<'a>(&'a self, prefix: &'a str) -> BackendFuture<'a, Vec<String>>;

    /// Starts a streamed write of a (possibly huge) object; nothing is visible until it finishes.
    fn writer<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Box<dyn ObjectWriter>>;

    /// Moves an object to a new key, replacing what is there.
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BackendFuture<'a, ()>;

    /// Sets an object's modification time to now without rewriting it; `false` when the backend
    /// cannot (callers then rewrite the object).
    fn touch<'a>(&'a self, key: &'a str) -> BackendFuture<'a, bool> {
        let _ = key;
        Box::pin(async { Ok(false) })
    }

    /// Drops what the backend keeps for a prefix with no objects left (directories on disk), if it
    /// has not changed since `unchanged_since`. Best effort; nothing to do on an object store.
    fn prune<'a>(
        &'a self,
        prefix: &'a str,
        unchanged_since: Option<SystemTime>,
    ) -> BackendFuture<'a, ()> {
        let _ = (prefix, unchanged_since);
        Box::pin(async { Ok(()) })
    }

    /// Removes what writers killed mid-write left behind, untouched since `before`; returns how
    /// many (with `dry_run`, how many it would remove). Nothing on a store where an unfinished
    /// write is invisible.
    fn sweep_unfinished(&self, before: SystemTime, dry_run: bool) -> BackendFuture<'_, u64> {
        let _ = (before, dry_run);
        Box::pin(async { Ok(0) })
    }

    /// The directory the objects live in, for a backend that is one.
    fn root_dir(&self) -> Option<&FsPath> {
        None
    }
}

/// A streamed write in progress, as a backend does it.
pub trait ObjectWriter: Send {
    /// Appends bytes.
    fn write(&mut self, data: Bytes) -> BackendFuture<'_, ()>;
    /// Makes the object visible under its key.
    fn finish(self: Box<Self>) -> BackendFuture<'static, ()>;
    /// Throws the partial object away.
    fn abort(self: Box<Self>) -> BackendFuture<'static, ()>;
}

/// The registry's storage: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Storage {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.backend.describe())
    }
}

impl Storage {
    /// Opens the storage a spec names: `s3://…` is a bucket, anything else a directory (created if
    /// missing).
    pub fn open(spec: &StorageSpec) -> Result<Storage> {
        match spec.location.strip_prefix("s3://") {
            Some(rest) => Ok(Storage::from_backend(S3Backend::open(spec, rest)?)),
            None => Storage::local(FsPath::new(&spec.location)),
        }
    }

    /// A directory on local disk.
    pub fn local(dir: &FsPath) -> Result<Storage> {
        Ok(Storage::from_backend(DiskBackend::open(dir)?))
    }

    /// A storage over any backend.
    pub fn from_backend(backend: impl Backend) -> Storage {
        Storage {
            backend: Arc::new(backend),
        }
    }

    /// The backend behind this storage.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The directory the objects live in, when the storage is a local directory (for tools and
    /// tests that look at the files; the registry itself never does).
    pub fn root_dir(&self) -> Option<&FsPath> {
        self.backend.root_dir()
    }

    /// Whether modification times are whole seconds (S3), so comparisons need a second of slack.
    pub fn coarse_times(&self) -> bool {
        self.backend.coarse_times()
    }

    /// A short description for logs: the directory or `s3://bucket/prefix`.
    pub fn describe(&self) -> &str {
        self.backend.describe()
    }

    /// The facts of one object, or `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.backend.head(key).await
    }

    /// A whole (small) object, or `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.backend.get(key).await
    }

    /// An object, or a byte range of it, as a stream; `None` when it does not exist. The range must
    /// lie within the object (callers check it against [`Storage::head`] first).
    pub async fn get_stream(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<ObjectStream>> {
        self.backend.get_stream(key, range).await
    }

    /// Writes a whole object, replacing any old one atomically.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.backend.put(key, data).await
    }

    /// Writes a whole object only if none exists under the key; returns whether it was written.
    pub async fn create(&self, key: &str, data: Bytes) -> Result<bool> {
        self.backend.create(key, data).await
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.backend.delete(key).await
    }

    /// Every object whose key starts with `prefix/` (recursively), sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.backend.list_after(prefix, None).await
    }

    /// Like [`Storage::list`], but only keys sorting strictly after `after` (a full key).
    pub async fn list_after(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectInfo>> {
        self.backend.list_after(prefix, after).await
    }

    /// The names of the immediate "subdirectories" of `prefix/` (common prefixes), sorted.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        self.backend.list_dirs(prefix).await
    }

    /// Starts a streamed write of a (possibly huge) object; nothing is visible until
    /// [`Writer::finish`].
    pub async fn writer(&self, key: &str) -> Result<Writer> {
        let inner = self.backend.writer(key).await?;
        Ok(Writer {
            key: key.to_string(),
            inner,
            written: 0,
        })
    }

    /// Moves an object to a new key (replacing what is there). On local disk this is a rename; on
    /// S3 a server-side copy then a delete, so callers avoid it for large objects where they can.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.backend.rename(from, to).await
    }

    /// Sets an object's modification time to now, without changing its bytes; returns false where
    /// the backend cannot (S3), and callers rewrite a small marker instead.
    pub async fn touch(&self, key: &str) -> Result<bool> {
        self.backend.touch(key).await
    }

    /// Drops what is left of a prefix whose objects are all deleted (see [`Backend::prune`]).
    pub async fn prune(&self, prefix: &str, unchanged_since: Option<SystemTime>) -> Result<()> {
        self.backend.prune(prefix, unchanged_since).await
    }

    /// Removes the leftovers of writers killed mid-write (see [`Backend::sweep_unfinished`]).
    pub async fn sweep_unfinished(&self, before: SystemTime, dry_run: bool) -> Result<u64> {
        self.backend.sweep_unfinished(before, dry_run).await
    }
}

/// A streamed write of one object.
pub struct Writer {
    key: String,
    inner: Box<dyn ObjectWriter>,
    written: u64,
}

impl Writer {
    /// The key the object will have.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends bytes.
    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        self.written += data.len() as u64;
        self.inner.write(data).await
    }

    /// Makes the object visible under its key (durably, on local disk); returns its size.
    pub async fn finish(self) -> Result<u64> {
        self.inner.finish().await?;
        Ok(self.written)
    }

    /// Throws the partial object away.
    pub async fn abort(self) -> Result<()> {
        self.inner.abort().await
    }
}

pub(crate) fn backend_error(
    op: &'static str,
    key: &str,
    source: object_store::Error,
) -> StorageError {
    StorageError::Backend {
        op,
        key: key.to_string(),
        source,
    }
}

pub(crate) fn object_info(key: String, m: &object_store::ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        key,
        size: m.size,
        modified: SystemTime::from(m.last_modified),
    }
}

/// Lists through `object_store` (which pages through S3's 1000-key answers), sorted by key;
/// shared by the backends that list with it.
pub(crate) async fn list_object_store(
    store: &dyn object_store::ObjectStore,
    prefix: &str,
    after: Option<&str>,
) -> Result<Vec<ObjectInfo>> {
    let p = object_store::path::Path::from(prefix);
    let mut s = match after {
        Some(a) => store.list_with_offset(Some(&p), &object_store::path::Path::from(a)),
        None => store.list(Some(&p)),
    };
    let mut out = Vec::new();
    while let Some(m) = s.next().await {
        match m {
            Ok(m) => out.push(object_info(m.location.to_string(), &m)),
            Err(object_store::Error::NotFound { .. }) => break,
            Err(source) => return Err(backend_error("list", prefix, source)),
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
