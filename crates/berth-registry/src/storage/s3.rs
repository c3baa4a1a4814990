//! The S3 backend: a bucket (and optional prefix) of any S3-compatible server, through
//! `object_store`. A write becomes visible only when its PUT or multipart upload completes, so an
//! interrupted writer leaves nothing behind that a reader could see.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::prefix::PrefixStore;
use object_store::{
    GetOptions, GetRange, ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart,
};

use super::{
    Backend, BackendFuture, ObjectInfo, ObjectStream, ObjectWriter, Result, StorageError,
    StorageSpec, backend_error, object_info,
};

/// S3 multipart part size: S3 needs at least 5 MiB for every part but the last.
const PART_SIZE: usize = 8 << 20;

/// A bucket, or a prefix in one.
pub struct S3Backend {
    store: Arc<dyn ObjectStore>,
    describe: String,
}

impl S3Backend {
    /// Opens `BUCKET[/PREFIX]` (the part of an `s3://` location after the scheme) with the spec's
    /// endpoint, region and keys, or the environment's where the spec leaves them out.
    pub fn open(spec: &StorageSpec, rest: &str) -> Result<S3Backend> {
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, p.trim_matches('/')),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return Err(StorageError::Config {
                spec: spec.location.clone(),
                reason: "no bucket name (expected s3://BUCKET[/PREFIX])".into(),
            });
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(spec.s3_virtual_hosted)
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
        let region = spec
            .s3_region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        b = b.with_region(region);
        if let Some(e) = spec.s3_endpoint.clone().or_else(|| env("AWS_ENDPOINT_URL")) {
            b = b.with_allow_http(e.starts_with("http://")).with_endpoint(e);
        }
        if let Some(k) = &spec.s3_access_key {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &spec.s3_secret_key {
            b = b.with_secret_access_key(k);
        }
        let s3 = b.build().map_err(|e| StorageError::Config {
            spec: spec.location.clone(),
            reason: e.to_string(),
        })?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(S3Backend {
            store,
            describe: format!("s3://{bucket}/{prefix}"),
        })
    }
}

impl Backend for S3Backend {
    fn describe(&self) -> &str {
        &self.describe
    }

    fn coarse_times(&self) -> bool {
        true
    }

    fn head<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Option<ObjectInfo>> {
        Box::pin(async move {
            match self.store.head(&ObjPath::from(key)).await {
                Ok(m) => Ok(Some(object_info(key.to_string(), &m))),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(source) => Err(backend_error("head", key, source)),
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            match self.store.get(&ObjPath::from(key)).await {
                Ok(r) => r
                    .bytes()
                    .await
                    .map(Some)
                    .map_err(|e| backend_error("read", key, e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(source) => Err(backend_error("get", key, source)),
            }
        })
    }

    fn get_stream<'a>(
        &'a self,
        key: &'a str,
        range: Option<Range<u64>>,
    ) -> BackendFuture<'a, Option<ObjectStream>> {
        Box::pin(async move {
            let opts = GetOptions {
                range: range.map(GetRange::Bounded),
                ..Default::default()
            };
            match self.store.get_opts(&ObjPath::from(key), opts).await {
                Ok(r) => {
                    let info = object_info(key.to_string(), &r.meta);
                    let k = key.to_string();
                    let stream = r
                        .into_stream()
                        .map(move |c| c.map_err(|e| backend_error("read", &k, e)))
                        .boxed();
                    Ok(Some(ObjectStream { info, stream }))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(source) => Err(backend_error("get", key, source)),
            }
        })
    }

    fn put<'a>(&'a self, key: &'a str, data: Bytes) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            self.store
                .put(&ObjPath::from(key), PutPayload::from(data))
                .await
                .map(|_| ())
                .map_err(|e| backend_error("put", key, e))
        })
    }

    fn create<'a>(&'a self, key: &'a str, data: Bytes) -> BackendFuture<'a, bool> {
        Box::pin(async move {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self
                .store
                .put_opts(&ObjPath::from(key), PutPayload::from(data), opts)
                .await
            {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => Ok(false),
                Err(source) => Err(backend_error("create", key, source)),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            match self.store.delete(&ObjPath::from(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(source) => Err(backend_error("delete", key, source)),
            }
        })
    }

    fn list_after<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
    ) -> BackendFuture<'a, Vec<ObjectInfo>> {
        Box::pin(super::list_object_store(&*self.store, prefix, after))
    }

    fn list_dirs<'a>(&'a self, prefix: &'a str) -> BackendFuture<'a, Vec<String>> {
        Box::pin(async move {
            let r = self
                .store
                .list_with_delimiter(Some(&ObjPath::from(prefix)))
                .await
                .map_err(|e| backend_error("list", prefix, e))?;
            let mut out: Vec<String> = r
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect();
            out.sort();
            Ok(out)
        })
    }

    fn writer<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Box<dyn ObjectWriter>> {
        Box::pin(async move {
            let up = self
                .store
                .put_multipart(&ObjPath::from(key))
                .await
                .map_err(|e| backend_error("start upload", key, e))?;
            let w: Box<dyn ObjectWriter> = Box::new(S3Writer {
                key: key.to_string(),
                upload: WriteMultipart::new_with_chunk_size(up, PART_SIZE),
            });
            Ok(w)
        })
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            self.store
                .rename(&ObjPath::from(from), &ObjPath::from(to))
                .await
                .map_err(|e| backend_error("rename", from, e))
        })
    }
}

/// A multipart upload; S3 shows nothing under the key until it completes.
struct S3Writer {
    key: String,
    upload: WriteMultipart,
}

impl ObjectWriter for S3Writer {
    fn write(&mut self, data: Bytes) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            self.upload
                .wait_for_capacity(2)
                .await
                .map_err(|e| backend_error("upload part", &self.key, e))?;
            self.upload.put(data);
            Ok(())
        })
    }

    fn finish(self: Box<Self>) -> BackendFuture<'static, ()> {
        Box::pin(async move {
            let S3Writer { key, upload } = *self;
            upload
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| backend_error("complete upload", &key, e))
        })
    }

    fn abort(self: Box<Self>) -> BackendFuture<'static, ()> {
        Box::pin(async move {
            let S3Writer { key, upload } = *self;
            upload
                .abort()
                .await
                .map_err(|e| backend_error("abort upload", &key, e))
        })
    }
}
