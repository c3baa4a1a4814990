//! Test harness shared by the registry's integration tests: a real server on 127.0.0.1 (in this
//! process, on a port of its own) over a temporary directory or a bucket of a real S3-protocol
//! server (moto, started by `scripts/s3.sh`), and a small push/pull client.
#![allow(dead_code)]

use std::net::SocketAddr;

use berth_registry::config::Config;
use berth_registry::server::{AppState, router};
use berth_registry::storage::StorageSpec;

pub use berth_testkit::digest;

/// A bucket of its own on the test binary's moto server (berth-testkit's: one server per binary).
pub use berth_testkit::s3::S3;

/// A storage spec for `prefix` of a test's bucket, with moto's credentials.
pub fn s3_spec(s3: &S3, prefix: &str) -> StorageSpec {
    let mut s = StorageSpec::new(format!("s3://{}/{prefix}", s3.bucket));
    s.s3_endpoint = Some(s3.endpoint());
    s.s3_region = Some("us-east-1".into());
    s.s3_access_key = Some("testing".into());
    s.s3_secret_key = Some("testing".into());
    s
}

#[allow(unused_imports)]
pub use berth_testkit::free_port;

/// A registry serving in this process; stops when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Its state (storage, config, index).
    pub state: AppState,
    /// The temporary directory holding its data (local storage), if any.
    pub dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    /// Serves a fresh temporary directory with the default configuration.
    pub async fn local() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let c = Config {
            storage: Some(StorageSpec::new(dir.path().to_str().unwrap())),
            ..Config::default()
        };
        let mut s = Server::with_config(c).await;
        s.dir = Some(dir);
        s
    }

    /// Serves a fresh temporary directory with a configuration adjusted by `tweak`.
    pub async fn local_with(tweak: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config {
            storage: Some(StorageSpec::new(dir.path().to_str().unwrap())),
            ..Config::default()
        };
        tweak(&mut c);
        let mut s = Server::with_config(c).await;
        s.dir = Some(dir);
        s
    }

    /// Serves a given storage (shared with other servers, say) with the default configuration.
    pub async fn on(spec: StorageSpec) -> Server {
        Server::with_config(Config {
            storage: Some(spec),
            ..Config::default()
        })
        .await
    }

    /// The storage spec of a local server's directory.
    pub fn local_spec(&self) -> StorageSpec {
        StorageSpec::new(
            self.dir
                .as_ref()
                .expect("local server")
                .path()
                .to_str()
                .unwrap(),
        )
    }

    /// Sends raw bytes as one HTTP/1.1 request (for paths an URL library would normalise) and
    /// returns the status code and the whole answer.
    pub async fn raw(&self, method: &str, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            self.addr
        );
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        sock.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }

    /// Serves with a given configuration (its storage must be set). Starts the search index the
    /// way `serve` does, but no periodic GC.
    pub async fn with_config(config: Config) -> Server {
        let poll = std::time::Duration::from_millis(config.search.poll_ms);
        let state = AppState::new(config).expect("valid config");
        berth_registry::search::spawn(state.search.clone(), state.storage.clone(), poll);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Server {
            url: format!("http://{addr}"),
            addr,
            state,
            dir: None,
            stop: Some(tx),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A minimal distribution-API client for tests.
#[derive(Clone)]
pub struct Client {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The HTTP client.
    pub http: reqwest::Client,
}

impl Client {
    /// A client for a server URL.
    pub fn new(base: &str) -> Client {
        Client {
            base: base.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Pushes a blob monolithically (POST then PUT with the body); returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = digest(data);
        let loc = self.start_upload(repo).await;
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self
            .http
            .put(format!("{loc}{sep}digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "finish upload: {}",
            r.text().await.unwrap()
        );
        d
    }

    /// Pushes a one-layer image (config + layer + manifest) under a tag; returns the manifest digest.
    pub async fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> String {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z","config":{{"Labels":{{"org.test.repo":"{repo}"}}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            digest(layer)
        );
        let cd = self.push_blob(repo, config.as_bytes()).await;
        let ld = self.push_blob(repo, layer).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
            "annotations": {"org.opencontainers.image.title": format!("{repo}:{tag}")}
        });
        let body = serde_json::to_vec(&manifest).unwrap();
        let r = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "put manifest: {}", r.text().await.unwrap());
        digest(&body)
    }

    /// Closes an upload session with a PUT naming `digest`, with the last piece as its body
    /// if any (no body at all otherwise, as a client that sent every byte in PATCHes does).
    pub async fn finish_upload(
        &self,
        loc: &str,
        digest: &str,
        body: Option<Vec<u8>>,
    ) -> reqwest::Response {
        let mut req = self.http.put(format!("{loc}?digest={digest}"));
        if let Some(b) = body {
            req = req.body(b);
        }
        req.send().await.unwrap()
    }

    /// Starts an upload session; returns its absolute URL.
    pub async fn start_upload(&self, repo: &str) -> String {
        let r = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "start upload: {}", r.text().await.unwrap());
        self.absolute(r.headers()["location"].to_str().unwrap())
    }

    /// PUTs a manifest body with a content type under a reference.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        content_type: &str,
        body: &[u8],
    ) -> reqwest::Response {
        self.http
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Sends a request with a method to a path under the base URL (or an absolute URL).
    pub async fn send(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.http.request(method, url).send().await.unwrap()
    }

    /// GETs a path under the base URL.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// Makes a Location header absolute.
    pub fn absolute(&self, loc: &str) -> String {
        if loc.starts_with('/') {
            format!("{}{loc}", self.base)
        } else {
            loc.to_string()
        }
    }
}

/// The spec error code of an error answer (consumes it).
pub async fn error_code(r: reqwest::Response) -> String {
    let text = r.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text:?}"));
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {text}"))
        .to_string()
}

/// A header's value as a string ("" when absent).
pub fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}
