//! A berth registry serving a temporary directory inside the test process, on 127.0.0.1, with plain-HTTP
//! helpers that upload blobs, manifests and whole images (so a pull test does not depend on push).

use crate::digest;
use crate::image::{Layer, OCI_MANIFEST, config_json, manifest_json};
use berth_registry::config::Config;
use berth_registry::server::{AppState, router};
use berth_registry::storage::StorageSpec;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A registry serving in this process; it stops when dropped. Needs a tokio runtime.
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

    /// Serves a fresh directory with the configuration `tweak` adjusts (auth, cross mounts, …).
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir for a registry");
        let mut config = Config {
            storage: Some(StorageSpec::new(
                dir.path().to_str().expect("UTF-8 temp path"),
            )),
            ..Config::default()
        };
        tweak(&mut config);
        let state = AppState::new(config).expect("valid registry config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("the test registry serves");
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

    /// Uploads a blob to `repo` in one POST and one PUT; returns its digest.
    pub async fn put_blob(&self, repo: &str, data: &[u8]) -> String {
        let http = reqwest::Client::new();
        let d = digest(data);
        let r = http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.url()))
            .send()
            .await
            .expect("POST upload");
        assert_eq!(r.status(), 202, "start an upload");
        let loc = r.headers()["location"]
            .to_str()
            .expect("ASCII location")
            .to_owned();
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
            .expect("PUT upload");
        assert_eq!(r.status(), 201, "finish an upload");
        d
    }

    /// Uploads a manifest or index under `reference` (a tag or a digest); returns its digest.
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
            .expect("PUT manifest");
        let status = r.status();
        assert_eq!(
            status,
            201,
            "put manifest: {}",
            r.text().await.unwrap_or_default()
        );
        digest(body)
    }

    /// Uploads an image of `layers` for `(os, arch)` whose command is `/bin/sh`, tagged `tag`; returns
    /// the manifest's bytes and digest.
    pub async fn put_image(
        &self,
        repo: &str,
        tag: &str,
        layers: &[Layer],
        platform: (&str, &str),
    ) -> (Vec<u8>, String) {
        let config = config_json(layers, platform, &["/bin/sh"]);
        self.put_blob(repo, &config).await;
        for l in layers {
            self.put_blob(repo, &l.blob).await;
        }
        let manifest = manifest_json(&config, layers);
        let d = self.put_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        (manifest, d)
    }

    /// Where the registry keeps a blob's bytes on disk (to corrupt it in a test).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
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

/// The users of a test registry and their passwords: alice, bob and admin.
pub const USERS: [(&str, &str); 3] = [
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("admin", "admin-pw"),
];

/// Writes an htpasswd file of `users` at `path` (bcrypt at cost 4, so debug builds stay quick; `$2y$`
/// as Apache's htpasswd writes it when `apache_prefix`).
pub fn write_htpasswd(path: &std::path::Path, users: &[(&str, &str)], apache_prefix: bool) {
    let lines: Vec<String> = users
        .iter()
        .map(|(u, p)| {
            let h = bcrypt::hash(p, 4).expect("bcrypt");
            let h = if apache_prefix {
                h.replacen("$2b$", "$2y$", 1)
            } else {
                h
            };
            format!("{u}:{h}")
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("write htpasswd");
}

/// An access rule: `user` may do `actions` on the repositories matching `repos`.
pub fn rule(user: &str, repos: &[&str], actions: &[&str]) -> berth_registry::config::AccessRule {
    berth_registry::config::AccessRule {
        user: user.into(),
        repositories: repos.iter().map(|s| s.to_string()).collect(),
        actions: actions.iter().map(|s| s.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Compression, layer};

    #[tokio::test]
    async fn an_uploaded_image_can_be_fetched_back() {
        let r = Registry::start().await;
        let l = layer(&[("f", b"data")], Compression::Gzip);
        let (manifest, d) = r
            .put_image("t/app", "1", std::slice::from_ref(&l), ("linux", "amd64"))
            .await;
        let got = reqwest::Client::new()
            .get(format!("{}/v2/t/app/manifests/1", r.url()))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().as_ref(), &manifest[..]);
        assert_eq!(d, digest(&manifest));
        assert_eq!(std::fs::read(r.blob_path(&l.digest())).unwrap(), l.blob);
    }
}
