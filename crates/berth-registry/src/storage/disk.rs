//! The disk backend: objects are files under a directory, keys their relative paths.
//!
//! Writes bypass `object_store` (which does not fsync): every write goes to a temporary file under
//! `.tmp/`, is fsynced, then renamed (or, for a create, hard-linked) into place, so a crash never
//! leaves a partial object visible; [`DiskBackend::sweep_unfinished`] removes what killed writers
//! left in `.tmp/`. Reads stream from the file with positioned reads on the blocking pool.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::local::LocalFileSystem;

use super::{
    Backend, BackendFuture, ObjectInfo, ObjectStream, ObjectWriter, Result, StorageError,
    backend_error,
};

/// Size of the buffer a writer fills before one `write(2)`.
const WRITE_BUFFER: usize = 1 << 20;
/// Read size when streaming a file out.
const READ_SIZE: usize = 256 << 10;
/// Where writes in progress live, relative to the root; never listed as objects.
const TEMP_DIR: &str = ".tmp";

/// A directory on local disk.
pub struct DiskBackend {
    root: Arc<PathBuf>,
    /// Lists recursively (it skips nothing of ours but `.tmp/`, filtered out here).
    fs: LocalFileSystem,
    describe: String,
}

impl DiskBackend {
    /// Opens a directory, creating it if missing.
    pub fn open(dir: &Path) -> Result<DiskBackend> {
        std::fs::create_dir_all(dir.join(TEMP_DIR)).map_err(|source| StorageError::Io {
            op: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        let dir = dir.canonicalize().map_err(|source| StorageError::Io {
            op: "resolve",
            path: dir.to_path_buf(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|source| backend_error("open", &dir.display().to_string(), source))?;
        Ok(DiskBackend {
            describe: dir.display().to_string(),
            root: Arc::new(dir),
            fs,
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

impl Backend for DiskBackend {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn coarse_times(&self) -> bool {
        false
    }

    fn root_dir(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn head<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Option<ObjectInfo>> {
        let path = self.path(key);
        Box::pin(async move {
            match tokio::fs::metadata(&path).await {
                Ok(m) if m.is_file() => Ok(Some(ObjectInfo {
                    key: key.to_string(),
                    size: m.len(),
                    modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })),
                Ok(_) => Ok(None),
                Err(e) if is_missing(&e) => Ok(None),
                Err(source) => Err(StorageError::Io {
                    op: "stat",
                    path,
                    source,
                }),
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Option<Bytes>> {
        let path = self.path(key);
        Box::pin(async move {
            match tokio::fs::read(&path).await {
                Ok(v) => Ok(Some(Bytes::from(v))),
                Err(e) if is_missing(&e) || e.raw_os_error() == Some(libc::EISDIR) => Ok(None),
                Err(source) => Err(StorageError::Io {
                    op: "read",
                    path,
                    source,
                }),
            }
        })
    }

    fn get_stream<'a>(
        &'a self,
        key: &'a str,
        range: Option<Range<u64>>,
    ) -> BackendFuture<'a, Option<ObjectStream>> {
        Box::pin(local_stream(key, self.path(key), range))
    }

    fn put<'a>(&'a self, key: &'a str, data: Bytes) -> BackendFuture<'a, ()> {
        let root = self.root.clone();
        let k = key.to_string();
        Box::pin(blocking(key, move || {
            local_put(&root, &k, &data, false).map(|_| ())
        }))
    }

    fn create<'a>(&'a self, key: &'a str, data: Bytes) -> BackendFuture<'a, bool> {
        let root = self.root.clone();
        let k = key.to_string();
        Box::pin(blocking(key, move || local_put(&root, &k, &data, true)))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BackendFuture<'a, ()> {
        let path = self.path(key);
        Box::pin(async move {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if is_missing(&e) => Ok(()),
                Err(source) => Err(StorageError::Io {
                    op: "remove",
                    path,
                    source,
                }),
            }
        })
    }

    fn list_after<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
    ) -> BackendFuture<'a, Vec<ObjectInfo>> {
        Box::pin(async move {
            let mut out = super::list_object_store(&self.fs, prefix, after).await?;
            out.retain(|o| !o.key.starts_with(".tmp/"));
            Ok(out)
        })
    }

    fn list_dirs<'a>(&'a self, prefix: &'a str) -> BackendFuture<'a, Vec<String>> {
        let path = self.path(prefix);
        Box::pin(async move {
            let mut out = Vec::new();
            let mut rd = match tokio::fs::read_dir(&path).await {
                Ok(rd) => rd,
                Err(e) if is_missing(&e) => return Ok(out),
                Err(source) => {
                    return Err(StorageError::Io {
                        op: "list",
                        path,
                        source,
                    });
                }
            };
            while let Some(e) = rd.next_entry().await.map_err(|source| StorageError::Io {
                op: "list",
                path: path.clone(),
                source,
            })? {
                if e.file_type().await.map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
            if prefix.is_empty() {
                out.retain(|d| d != TEMP_DIR);
            }
            out.sort();
            Ok(out)
        })
    }

    fn writer<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Box<dyn ObjectWriter>> {
        let root = self.root.clone();
        let k = key.to_string();
        Box::pin(async move {
            let r2 = root.clone();
            let k2 = k.clone();
            let file = blocking(&k, move || local_temp(&r2, &k2)).await?;
            let w: Box<dyn ObjectWriter> = Box::new(DiskWriter {
                key: k,
                root,
                file: Some(file),
                buf: BytesMut::with_capacity(WRITE_BUFFER),
            });
            Ok(w)
        })
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BackendFuture<'a, ()> {
        let (a, b) = (self.path(from), self.path(to));
        Box::pin(blocking(to, move || {
            if let Some(parent) = b.parent() {
                std::fs::create_dir_all(parent).map_err(|source| StorageError::Io {
                    op: "create",
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            std::fs::rename(&a, &b).map_err(|source| StorageError::Io {
                op: "rename",
                path: a.clone(),
                source,
            })
        }))
    }

    fn touch<'a>(&'a self, key: &'a str) -> BackendFuture<'a, bool> {
        let path = self.path(key);
        Box::pin(blocking(key, move || {
            let f = std::fs::File::options()
                .write(true)
                .open(&path)
                .map_err(|source| StorageError::Io {
                    op: "open",
                    path: path.clone(),
                    source,
                })?;
            f.set_modified(SystemTime::now())
                .map_err(|source| StorageError::Io {
                    op: "touch",
                    path: path.clone(),
                    source,
                })?;
            Ok(true)
        }))
    }

    fn prune<'a>(
        &'a self,
        prefix: &'a str,
        unchanged_since: Option<SystemTime>,
    ) -> BackendFuture<'a, ()> {
        let dir = self.path(prefix);
        Box::pin(async move {
            // Best effort: a directory that gains a file meanwhile simply stays.
            let _ = tokio::task::spawn_blocking(move || prune_empty(&dir, unchanged_since)).await;
            Ok(())
        })
    }

    fn sweep_unfinished(&self, before: SystemTime, dry_run: bool) -> BackendFuture<'_, u64> {
        let dir = self.path(TEMP_DIR);
        Box::pin(async move {
            let mut rd = match tokio::fs::read_dir(&dir).await {
                Ok(rd) => rd,
                Err(_) => return Ok(0),
            };
            let mut n = 0;
            while let Ok(Some(e)) = rd.next_entry().await {
                let Ok(meta) = e.metadata().await else {
                    continue;
                };
                if !meta.is_file() || meta.modified().map(|m| m > before).unwrap_or(true) {
                    continue;
                }
                if !dry_run {
                    match tokio::fs::remove_file(e.path()).await {
                        Ok(()) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(source) => {
                            return Err(StorageError::Io {
                                op: "remove a stale temporary file",
                                path: e.path(),
                                source,
                            });
                        }
                    }
                }
                n += 1;
            }
            Ok(n)
        })
    }
}

/// Removes `dir` and its subdirectories bottom-up if they hold no files (and, with a cutoff, have
/// not changed since it); returns whether `dir` is gone.
fn prune_empty(dir: &Path, cutoff: Option<SystemTime>) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return false;
    };
    if !meta.is_dir() {
        return false;
    }
    if let (Some(c), Ok(m)) = (cutoff, meta.modified())
        && m > c
    {
        return false;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for e in rd.flatten() {
        if !prune_empty(&e.path(), cutoff) {
            empty = false;
        }
    }
    empty && std::fs::remove_dir(dir).is_ok()
}

/// A streamed write into a temporary file, buffered to few large `write(2)`s.
struct DiskWriter {
    key: String,
    root: Arc<PathBuf>,
    file: Option<TempFile>,
    buf: BytesMut,
}

impl ObjectWriter for DiskWriter {
    fn write(&mut self, data: Bytes) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            if self.buf.is_empty() && data.len() >= WRITE_BUFFER {
                return flush_local(&self.key, &mut self.file, data).await;
            }
            self.buf.extend_from_slice(&data);
            if self.buf.len() >= WRITE_BUFFER {
                let chunk = self.buf.split().freeze();
                self.buf = BytesMut::with_capacity(WRITE_BUFFER);
                flush_local(&self.key, &mut self.file, chunk).await?;
            }
            Ok(())
        })
    }

    fn finish(self: Box<Self>) -> BackendFuture<'static, ()> {
        Box::pin(async move {
            let DiskWriter {
                key,
                root,
                mut file,
                buf,
            } = *self;
            if !buf.is_empty() {
                flush_local(&key, &mut file, buf.freeze()).await?;
            }
            let t = file.take().expect("writer file");
            let k = key.clone();
            blocking(&key, move || t.commit(&root, &k, false).map(|_| ())).await
        })
    }

    fn abort(self: Box<Self>) -> BackendFuture<'static, ()> {
        Box::pin(async move {
            // Dropping the temporary file removes it.
            drop(self.file);
            Ok(())
        })
    }
}

async fn flush_local(key: &str, file: &mut Option<TempFile>, data: Bytes) -> Result<()> {
    let mut t = file.take().expect("writer file");
    let (t, r) = tokio::task::spawn_blocking(move || {
        let r = t.file.write_all(&data).map_err(|source| StorageError::Io {
            op: "write",
            path: t.path.clone(),
            source,
        });
        t.written += data.len() as u64;
        if r.is_ok() && t.written - t.started_writeback >= WRITEBACK_STEP {
            // Start writeback of what is written so far without waiting for it, so the
            // fsync at commit finds little left to do (4 parallel 64 MiB pushes: the fsync
            // tail drops from ~120 ms to ~15 ms here). Advisory: an error is ignored, the
            // fsync at commit is what guarantees durability.
            use std::os::fd::AsRawFd;
            // SAFETY: the fd is open for the lifetime of `t.file`; sync_file_range only
            // reads the arguments and touches no memory of ours.
            unsafe {
                libc::sync_file_range(
                    t.file.as_raw_fd(),
                    t.started_writeback as libc::off64_t,
                    (t.written - t.started_writeback) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            t.started_writeback = t.written;
        }
        (t, r)
    })
    .await
    .map_err(|e| StorageError::Task {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    *file = Some(t);
    r
}

/// A temporary file under `ROOT/.tmp/`, renamed or linked into place on commit.
struct TempFile {
    path: PathBuf,
    file: std::fs::File,
    /// Bytes written so far.
    written: u64,
    /// Up to where writeback has been started.
    started_writeback: u64,
}

/// Start writeback every this many bytes of a streamed local write.
const WRITEBACK_STEP: u64 = 8 << 20;

impl Drop for TempFile {
    fn drop(&mut self) {
        // After a successful commit the name is gone already; otherwise this throws the partial
        // object away.
        let _ = std::fs::remove_file(&self.path);
    }
}

impl TempFile {
    /// fsyncs and publishes the file under `key`; with `exclusive`, only if nothing is there yet.
    fn commit(self, root: &Path, key: &str, exclusive: bool) -> Result<bool> {
        self.file.sync_all().map_err(|source| StorageError::Io {
            op: "fsync",
            path: self.path.clone(),
            source,
        })?;
        let dest = root.join(key);
        let parent = dest.parent().expect("key has a parent");
        std::fs::create_dir_all(parent).map_err(|source| StorageError::Io {
            op: "create",
            path: parent.to_path_buf(),
            source,
        })?;
        if exclusive {
            match std::fs::hard_link(&self.path, &dest) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(source) => Err(StorageError::Io {
                    op: "link",
                    path: dest,
                    source,
                }),
            }
        } else {
            std::fs::rename(&self.path, &dest).map_err(|source| StorageError::Io {
                op: "rename",
                path: dest,
                source,
            })?;
            Ok(true)
        }
    }
}

fn local_temp(root: &Path, key: &str) -> Result<TempFile> {
    let name = format!(
        "{}-{}",
        key.rsplit('/').next().unwrap_or("obj"),
        hex::encode(rand::random::<[u8; 8]>())
    );
    let path = root.join(".tmp").join(name);
    let file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|source| StorageError::Io {
            op: "create",
            path: path.clone(),
            source,
        })?;
    Ok(TempFile {
        path,
        file,
        written: 0,
        started_writeback: 0,
    })
}

fn local_put(root: &Path, key: &str, data: &[u8], exclusive: bool) -> Result<bool> {
    let mut t = local_temp(root, key)?;
    t.file.write_all(data).map_err(|source| StorageError::Io {
        op: "write",
        path: t.path.clone(),
        source,
    })?;
    t.commit(root, key, exclusive)
}

async fn local_stream(
    key: &str,
    path: PathBuf,
    range: Option<Range<u64>>,
) -> Result<Option<ObjectStream>> {
    let k = key.to_string();
    let opened = blocking(key, move || {
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(source) => {
                return Err(StorageError::Io {
                    op: "open",
                    path,
                    source,
                });
            }
        };
        let m = f.metadata().map_err(|source| StorageError::Io {
            op: "stat",
            path: path.clone(),
            source,
        })?;
        if !m.is_file() {
            return Ok(None);
        }
        let (start, end) = match &range {
            Some(r) => (r.start, r.end.min(m.len())),
            None => (0, m.len()),
        };
        Ok(Some((f, m, start, end, path)))
    })
    .await?;
    let Some((f, m, start, end, path)) = opened else {
        return Ok(None);
    };
    let info = ObjectInfo {
        key: k,
        size: m.len(),
        modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    };
    // Each chunk is one positioned read on the blocking pool, issued only when the response wants
    // more: no thread is held by a slow client, and at most one chunk per response is in memory
    // here, however large the blob and however many clients read it.
    let file = Arc::new(f);
    let stream = futures::stream::unfold(
        (file, start, end, path, false),
        |(file, pos, end, path, failed)| async move {
            if pos >= end || failed {
                return None;
            }
            let want = (READ_SIZE as u64).min(end - pos) as usize;
            let f2 = file.clone();
            let p2 = path.clone();
            let r = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = BytesMut::zeroed(want);
                let mut got = 0;
                while got < want {
                    match f2.read_at(&mut buf[got..], pos + got as u64) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(source) => {
                            return Err(StorageError::Io {
                                op: "read",
                                path: p2,
                                source,
                            });
                        }
                    }
                }
                if got == 0 {
                    return Err(StorageError::Io {
                        op: "read",
                        path: p2,
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "file shorter than its size",
                        ),
                    });
                }
                buf.truncate(got);
                Ok(buf.freeze())
            })
            .await
            .unwrap_or_else(|e| {
                Err(StorageError::Task {
                    key: path.display().to_string(),
                    reason: e.to_string(),
                })
            });
            match r {
                Ok(b) => {
                    let next = pos + b.len() as u64;
                    Some((Ok(b), (file, next, end, path, false)))
                }
                Err(e) => Some((Err(e), (file, pos, end, path, true))),
            }
        },
    )
    .boxed();
    Ok(Some(ObjectStream { info, stream }))
}

async fn blocking<T: Send + 'static>(
    key: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Task {
            key: key.to_string(),
            reason: e.to_string(),
        })?
}

fn is_missing(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}
