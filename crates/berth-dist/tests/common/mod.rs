//! Test harness for berth-dist: a real berth registry serving in this process on 127.0.0.1 over a
//! temporary directory, a fresh store, and helpers that make layer tars and upload images with
//! plain HTTP (so pull tests do not depend on `push`).
#![allow(dead_code)]

use berth_registry::config::Config as RegistryConfig;
use berth_registry::server::{AppState, router};
use berth_registry::storage::StorageSpec;
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

/// `sha256:<hex>` of some bytes.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A berth registry serving a temporary directory in this process; stops when dropped.
pub struct Registry {
    /// `127.0.0.1:PORT`, as a reference names it.
    pub host: String,
    /// Its address.
    pub addr: SocketAddr,
    /// The directory holding its data.
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Registry {
    /// Serves a fresh directory with the default configuration.
    pub async fn start() -> Registry {
        Registry::start_with(|_| {}).await
    }

    /// Serves a fresh directory with a configuration adjusted by `tweak` (auth, cross_mount…).
    pub async fn start_with(tweak: impl FnOnce(&mut RegistryConfig)) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut config = RegistryConfig {
            storage: Some(StorageSpec::new(dir.path().to_str().unwrap())),
            ..RegistryConfig::default()
        };
        tweak(&mut config);
        let state = AppState::new(config).expect("valid registry config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Registry {
            host: addr.to_string(),
            addr,
            dir,
            stop: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Uploads a blob to `repo` in one POST + PUT; returns its digest.
    pub async fn put_blob(&self, repo: &str, data: &[u8]) -> String {
        let http = reqwest::Client::new();
        let d = digest(data);
        let r = http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "start upload");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        let loc = if loc.starts_with('/') {
            format!("{}{loc}", self.url())
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = http
            .put(format!("{loc}{sep}digest={d}"))
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "finish upload");
        d
    }

    /// Uploads a manifest (or index) under `reference` (tag or digest); returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media: &str,
        body: &[u8],
    ) -> String {
        let r = reqwest::Client::new()
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.url()))
            .header("content-type", media)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "put manifest: {}", r.text().await.unwrap());
        digest(body)
    }

    /// Uploads an image whose layers are the given blobs (already compressed or not) with the
    /// given diff IDs, for `os/arch`; returns (manifest bytes, manifest digest).
    pub async fn put_image(
        &self,
        repo: &str,
        tag: &str,
        layers: &[TestLayer],
        platform: (&str, &str),
    ) -> (Vec<u8>, String) {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": platform.1, "os": platform.0,
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let cd = self.put_blob(repo, &config).await;
        let mut descs = Vec::new();
        for l in layers {
            let d = self.put_blob(repo, &l.blob).await;
            descs.push(
                serde_json::json!({"mediaType": l.media_type, "digest": d, "size": l.blob.len()}),
            );
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": descs,
        }))
        .unwrap();
        let d = self
            .put_manifest(
                repo,
                tag,
                "application/vnd.oci.image.manifest.v1+json",
                &manifest,
            )
            .await;
        (manifest, d)
    }

    /// Where the registry keeps a blob's bytes on disk (to corrupt it in tests).
    pub fn blob_path(&self, digest: &str) -> std::path::PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let p = self.dir.path().join(format!("blobs/sha256/{hex}"));
        assert!(p.is_file(), "registry blob at {}", p.display());
        p
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A layer as uploaded: blob bytes, its media type, and the digest of its uncompressed tar.
#[derive(Debug, Clone)]
pub struct TestLayer {
    /// The blob (compressed as `media_type` says).
    pub blob: Vec<u8>,
    /// Its media type.
    pub media_type: &'static str,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
}

/// Compression of a [`TestLayer`].
#[derive(Debug, Clone, Copy)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// A layer holding `files` (path, content), compressed as asked.
pub fn layer(files: &[(&str, &[u8])], compression: Compression) -> TestLayer {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let diff_id = digest(&tar);
    let (blob, media_type) = match compression {
        Compression::None => (tar, "application/vnd.oci.image.layer.v1.tar"),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            (
                e.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Compression::Zstd => (
            zstd::encode_all(&tar[..], 3).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    };
    TestLayer {
        blob,
        media_type,
        diff_id,
    }
}

/// Random bytes (incompressible content for big layers).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::fill(&mut v[..]);
    v
}

/// A fresh store in a temporary directory.
pub fn store() -> (tempfile::TempDir, berth_store::Store) {
    let t = tempfile::tempdir().unwrap();
    let s = berth_store::Store::open(&t.path().join("root")).unwrap();
    (t, s)
}

/// A client whose credential files live in `dir` (never the user's own).
pub fn client(dir: &Path) -> berth_dist::Client {
    let config = berth_dist::Config {
        auth_file: dir.join("auth.json"),
        docker_config_dir: Some(dir.join("docker")),
        certs_dir: dir.join("certs.d"),
        ..berth_dist::Config::default()
    };
    berth_dist::Client::new(config).unwrap()
}
