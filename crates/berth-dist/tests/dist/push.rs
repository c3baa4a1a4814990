//! `push` against the real berth registry in this process: every byte arrives, re-pushes send
//! nothing, mounts between repositories (and uploads when the registry refuses mounts), a second
//! registry, chunked uploads counted on the server, and the errors (no such image, a blob missing
//! locally, a registry that refuses or is gone).

use crate::common::{Compression, Registry, TestLayer, digest, layer, random_bytes};
use berth_dist::auth::Credential;
use berth_dist::client::{Body, Scope};
use berth_dist::events::{Event, LayerStatus};
use berth_dist::{Client, Config, Error, PushOptions, Pushed, push};
use berth_oci::Reference;
use berth_registry::config::{AccessRule, Config as RegistryConfig, CrossMount};
use berth_store::{Image, Store};
use http::{HeaderMap, Method};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// An OCI image-layout tar holding one image of `layers`, named `name`.
fn oci_tar(layers: &[TestLayer], name: &str) -> Vec<u8> {
    oci_tar_as(layers, name, OCI)
}

/// Media types of an OCI image (manifest, config), and of a Docker schema 2 one.
const OCI: (&str, &str) = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.config.v1+json",
);
const DOCKER: (&str, &str) = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.container.image.v1+json",
);

/// [`oci_tar`] with the manifest and config media types given.
fn oci_tar_as(layers: &[TestLayer], name: &str, types: (&str, &str)) -> Vec<u8> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let descs: Vec<_> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": l.media_type, "digest": digest(&l.blob), "size": l.blob.len()}))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": types.0,
        "config": {"mediaType": types.1, "digest": digest(&config), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": types.0,
            "digest": digest(&manifest), "size": manifest.len(),
            "annotations": {"io.containerd.image.name": name},
        }],
    }))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for blob in [&config, &manifest]
        .into_iter()
        .chain(layers.iter().map(|l| &l.blob))
    {
        let d = digest(blob);
        add(&format!("blobs/sha256/{}", &d[7..]), blob);
    }
    b.into_inner().unwrap()
}

/// Loads an image of `layers` named `name` into `store`.
fn load(store: &Store, layers: &[TestLayer], name: &str) -> Image {
    let mut images = store.load(&oci_tar(layers, name)[..]).unwrap();
    assert_eq!(images.len(), 1);
    images.remove(0)
}

/// A two-layer image (gzip and zstd).
fn two_layers() -> Vec<TestLayer> {
    vec![
        layer(
            &[
                ("etc/hello", b"hello\n"),
                ("bin/data", &random_bytes(40_000)),
            ],
            Compression::Gzip,
        ),
        layer(&[("usr/share/x", &random_bytes(20_000))], Compression::Zstd),
    ]
}

/// Events recorded by a push.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    fn opts(&self) -> PushOptions {
        let log = self.0.clone();
        PushOptions {
            events: Arc::new(move |e| log.lock().unwrap().push(e)),
        }
    }

    fn statuses(&self) -> Vec<LayerStatus> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Layer { status, .. } => Some(status.clone()),
                _ => None,
            })
            .collect()
    }

    fn done(&self) -> Vec<Event> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Done { .. }))
            .cloned()
            .collect()
    }
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// The blobs an image's manifest names (config first), with the manifest bytes.
fn blobs_of(store: &Store, image: &Image) -> (Vec<u8>, Vec<String>) {
    let manifest = store.blobs().read(&image.manifest_digest).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let mut out = vec![v["config"]["digest"].as_str().unwrap().to_owned()];
    for l in v["layers"].as_array().unwrap() {
        out.push(l["digest"].as_str().unwrap().to_owned());
    }
    (manifest, out)
}

/// Fetches the manifest and every blob from `reg` with plain HTTP and compares them with the
/// store's.
async fn assert_registry_has(reg: &Registry, repo: &str, tag: &str, store: &Store, image: &Image) {
    let http = reqwest::Client::new();
    let (manifest, blobs) = blobs_of(store, image);
    let media = serde_json::from_slice::<serde_json::Value>(&manifest).unwrap()["mediaType"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http
        .get(format!("{}/v2/{repo}/manifests/{tag}", reg.url()))
        .header("accept", &media)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "manifest {repo}:{tag}");
    assert_eq!(
        r.headers()["docker-content-digest"].to_str().unwrap(),
        image.manifest_digest.to_string()
    );
    assert_eq!(r.headers()["content-type"].to_str().unwrap(), media);
    assert_eq!(r.bytes().await.unwrap(), manifest, "manifest bytes");
    for d in blobs {
        let r = http
            .get(format!("{}/v2/{repo}/blobs/{d}", reg.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "blob {d} in {repo}");
        let body = r.bytes().await.unwrap();
        assert_eq!(digest(&body), d);
        let local = store.blobs().read(&d.parse().unwrap()).unwrap();
        assert_eq!(body, local, "blob {d}");
    }
}

/// The registry's request counters for a route and method (all statuses), from `/metrics`.
async fn requests(reg: &Registry, route: &str, method: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", reg.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("berth_registry_requests_total{{route=\"{route}\",method=\"{method}\",");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Requests that touched any repository (blobs, uploads, manifests).
async fn repository_requests(reg: &Registry) -> u64 {
    let mut n = 0;
    for route in ["blob", "upload", "manifest"] {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
            n += requests(reg, route, method).await;
        }
    }
    n
}

fn total_size(store: &Store, image: &Image) -> u64 {
    let (_, blobs) = blobs_of(store, image);
    blobs
        .iter()
        .map(|d| store.blobs().size(&d.parse().unwrap()).unwrap())
        .sum()
}

async fn push_to(
    client: &Client,
    store: &Store,
    local: &str,
    target: &str,
    events: &Events,
) -> Result<Pushed, Error> {
    push(client, store, local, &reference(target), &events.opts()).await
}

/// Pushes `local` to `host/path` (`REPO:TAG`), no one watching the events.
async fn push_quiet(
    client: &Client,
    store: &Store,
    local: &str,
    host: &str,
    path: &str,
) -> Result<Pushed, Error> {
    push_to(
        client,
        store,
        local,
        &format!("{host}/{path}"),
        &Events::default(),
    )
    .await
}

/// What most push tests start with: a registry, an empty store, and a client with credential files
/// of its own.
struct Fixture {
    reg: Registry,
    store: Store,
    client: Client,
    _store_dir: tempfile::TempDir,
    _client_dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        let reg = Registry::start().await;
        let (_store_dir, store) = crate::common::store();
        let _client_dir = tempfile::tempdir().unwrap();
        let client = crate::common::client(_client_dir.path());
        Fixture {
            reg,
            store,
            client,
            _store_dir,
            _client_dir,
        }
    }

    /// Pushes the local image `local` to `path` (`REPO:TAG`) on this fixture's registry.
    async fn push(&self, local: &str, path: &str, events: &Events) -> Result<Pushed, Error> {
        let target = format!("{}/{path}", self.reg.host);
        push_to(&self.client, &self.store, local, &target, events).await
    }
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn push_sends_every_blob_and_the_manifest_byte_for_byte() {
    let fx = Fixture::new().await;
    let (reg, store, client) = (&fx.reg, &fx.store, &fx.client);
    let image = load(store, &two_layers(), "localhost/app:1");
    let events = Events::default();
    let target = format!("{}/team/app:v1", reg.host);

    let pushed = push_to(client, store, "localhost/app:1", &target, &events)
        .await
        .unwrap();

    assert_eq!(pushed.reference.to_string(), target);
    assert_eq!(pushed.digest, image.manifest_digest);
    assert_eq!(
        (
            pushed.blobs_uploaded,
            pushed.blobs_mounted,
            pushed.blobs_existing
        ),
        (3, 0, 0)
    );
    assert_eq!(pushed.bytes_uploaded, total_size(store, &image));
    let (manifest, _) = blobs_of(store, &image);
    assert_eq!(pushed.size, manifest.len() as u64);
    assert_registry_has(reg, "team/app", "v1", store, &image).await;

    let statuses = events.statuses();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == LayerStatus::Waiting)
            .count(),
        3
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == LayerStatus::Complete)
            .count(),
        3
    );
    assert_eq!(
        events.done(),
        vec![Event::Done {
            reference: target.clone(),
            digest: image.manifest_digest.clone()
        }]
    );
    let after = store.image(&image.id.to_string()).unwrap();
    assert_eq!(after.sources, vec![format!("{}/team/app", reg.host)]);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn repush_of_an_unchanged_image_sends_no_blob_data() {
    let reg = Registry::start().await;
    let (_t, store) = crate::common::store();
    load(&store, &two_layers(), "localhost/app:1");
    let dir = tempfile::tempdir().unwrap();
    let client = crate::common::client(dir.path());
    let target = format!("{}/team/app:v1", reg.host);
    push_to(
        &client,
        &store,
        "localhost/app:1",
        &target,
        &Events::default(),
    )
    .await
    .unwrap();
    let uploads_before =
        requests(&reg, "upload", "PUT").await + requests(&reg, "upload", "POST").await;
    let blob_heads_before = requests(&reg, "blob", "HEAD").await;
    let manifest_puts_before = requests(&reg, "manifest", "PUT").await;

    // A new client, as a new `berth push` would have.
    let client = crate::common::client(dir.path());
    let events = Events::default();
    let start = Instant::now();
    let pushed = push_to(&client, &store, "localhost/app:1", &target, &events)
        .await
        .unwrap();
    let took = start.elapsed();
    eprintln!("re-push of an unchanged image: {took:?}");

    assert_eq!(pushed.bytes_uploaded, 0);
    assert_eq!(
        (
            pushed.blobs_uploaded,
            pushed.blobs_mounted,
            pushed.blobs_existing
        ),
        (0, 0, 3)
    );
    let statuses = events.statuses();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == LayerStatus::Exists)
            .count(),
        3
    );
    assert!(
        !statuses
            .iter()
            .any(|s| matches!(s, LayerStatus::Progress { .. }))
    );
    let uploads_after =
        requests(&reg, "upload", "PUT").await + requests(&reg, "upload", "POST").await;
    assert_eq!(
        uploads_after, uploads_before,
        "no upload request on a re-push"
    );
    // The registry serves this manifest under the tag: not even the blobs are asked about.
    assert_eq!(requests(&reg, "blob", "HEAD").await, blob_heads_before);
    assert_eq!(
        requests(&reg, "manifest", "PUT").await,
        manifest_puts_before
    );
    assert!(took.as_secs() < 5, "re-push took {took:?}");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn push_to_another_repository_mounts_the_blobs() {
    let fx = Fixture::new().await;
    let (reg, store) = (&fx.reg, &fx.store);
    let image = load(store, &two_layers(), "localhost/app:1");
    let events = Events::default();
    fx.push("localhost/app:1", "team/app:v1", &events)
        .await
        .unwrap();

    let events = Events::default();
    let pushed = fx
        .push("localhost/app:1", "other/copy:v2", &events)
        .await
        .unwrap();

    assert_eq!(
        (
            pushed.blobs_uploaded,
            pushed.blobs_mounted,
            pushed.blobs_existing
        ),
        (0, 3, 0)
    );
    assert_eq!(pushed.bytes_uploaded, 0);
    let mounted = events
        .statuses()
        .into_iter()
        .filter(|s| {
            *s == LayerStatus::Mounted {
                from: "team/app".into(),
            }
        })
        .count();
    assert_eq!(mounted, 3);
    assert_registry_has(reg, "other/copy", "v2", store, &image).await;
    let after = store.image(&image.id.to_string()).unwrap();
    assert_eq!(after.sources.len(), 2);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn with_mounts_off_the_blobs_are_uploaded_instead() {
    let reg = Registry::start_with(|c| c.api.cross_mount = CrossMount::Off).await;
    let (_t, store) = crate::common::store();
    let image = load(&store, &two_layers(), "localhost/app:1");
    let dir = tempfile::tempdir().unwrap();
    let client = crate::common::client(dir.path());
    push_quiet(&client, &store, "localhost/app:1", &reg.host, "team/app:v1")
        .await
        .unwrap();
    let posts_before = requests(&reg, "upload", "POST").await;

    let pushed = push_quiet(
        &client,
        &store,
        "localhost/app:1",
        &reg.host,
        "other/copy:v2",
    )
    .await
    .unwrap();

    assert_eq!(
        (
            pushed.blobs_uploaded,
            pushed.blobs_mounted,
            pushed.blobs_existing
        ),
        (3, 0, 0)
    );
    assert_eq!(pushed.bytes_uploaded, total_size(&store, &image));
    // One POST per blob: the mount attempt's session is used for the upload, none opened twice.
    assert_eq!(requests(&reg, "upload", "POST").await - posts_before, 3);
    assert_registry_has(&reg, "other/copy", "v2", &store, &image).await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn tag_then_push_to_a_second_registry() {
    let one = Registry::start().await;
    let two = Registry::start().await;
    let (_t, store) = crate::common::store();
    let image = load(&store, &two_layers(), "localhost/app:1");
    let dir = tempfile::tempdir().unwrap();
    let client = crate::common::client(dir.path());
    push_quiet(&client, &store, "localhost/app:1", &one.host, "team/app:v1")
        .await
        .unwrap();
    let second = reference(&format!("{}/mirror/app:v1", two.host));
    store.tag("localhost/app:1", &second).unwrap();

    let pushed = push(
        &client,
        &store,
        &second.to_string(),
        &second,
        &Events::default().opts(),
    )
    .await
    .unwrap();

    assert_eq!(
        (
            pushed.blobs_uploaded,
            pushed.blobs_mounted,
            pushed.blobs_existing
        ),
        (3, 0, 0)
    );
    assert_registry_has(&two, "mirror/app", "v1", &store, &image).await;
    assert_eq!(
        requests(&two, "upload", "PATCH").await,
        0,
        "small blobs go in one PUT"
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn large_blobs_go_in_chunks() {
    let reg = Registry::start().await;
    let (_t, store) = crate::common::store();
    let big = layer(&[("big", &random_bytes(1 << 20))], Compression::None);
    let image = load(&store, std::slice::from_ref(&big), "localhost/big:1");
    let dir = tempfile::tempdir().unwrap();
    let chunk = 64 * 1024;
    let client = Client::new(Config {
        chunk_size: chunk,
        ..crate::common::client(dir.path()).config().clone()
    })
    .unwrap();
    let events = Events::default();

    let pushed = push_to(
        &client,
        &store,
        "localhost/big:1",
        &format!("{}/team/big:v1", reg.host),
        &events,
    )
    .await
    .unwrap();

    let size = big.blob.len() as u64;
    assert!(size > 1 << 20);
    assert_eq!(pushed.bytes_uploaded, total_size(&store, &image));
    assert_registry_has(&reg, "team/big", "v1", &store, &image).await;
    assert_eq!(
        requests(&reg, "upload", "PATCH").await,
        size.div_ceil(chunk)
    );
    // Progress at least every 512 KiB, ending at the full size.
    let progress: Vec<u64> = events
        .statuses()
        .into_iter()
        .filter_map(|s| match s {
            LayerStatus::Progress { done } => Some(done),
            _ => None,
        })
        .collect();
    assert!(progress.contains(&size), "{progress:?}");
    assert!(progress.len() >= 3, "{progress:?}");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn a_single_put_upload_reports_progress_as_it_goes() {
    let reg = Registry::start().await;
    let (_t, store) = crate::common::store();
    let big = layer(&[("big", &random_bytes(3 << 20))], Compression::None);
    load(&store, std::slice::from_ref(&big), "localhost/big:1");
    let dir = tempfile::tempdir().unwrap();
    let events = Events::default();
    push_to(
        &crate::common::client(dir.path()),
        &store,
        "localhost/big:1",
        &format!("{}/team/big:v1", reg.host),
        &events,
    )
    .await
    .unwrap();
    assert_eq!(requests(&reg, "upload", "PATCH").await, 0);
    let size = big.blob.len() as u64;
    let progress: Vec<u64> = events
        .statuses()
        .into_iter()
        .filter_map(|s| match s {
            LayerStatus::Progress { done } if done > 1024 * 1024 => Some(done),
            _ => None,
        })
        .collect();
    // Reported while the body streams (every 512 KiB), not only once at the end.
    assert!(progress.len() >= 4, "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert_eq!(progress.last(), Some(&size));
}

#[tokio::test]
async fn no_such_local_image_is_an_error_and_nothing_is_sent() {
    let fx = Fixture::new().await;
    let reg = &fx.reg;
    let err = fx
        .push("nothing:here", "team/app:v1", &Events::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Store(berth_store::Error::ImageNotFound(_))),
        "{err}"
    );
    assert_eq!(repository_requests(reg).await, 0);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn a_blob_missing_locally_is_an_error_before_anything_is_sent() {
    let reg = Registry::start().await;
    let (_t, store) = crate::common::store();
    let image = load(&store, &two_layers(), "localhost/app:1");
    let gone = &image.layers[1].digest;
    std::fs::remove_file(store.blobs().path(gone)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = crate::common::client(dir.path());

    let err = push_quiet(&client, &store, "localhost/app:1", &reg.host, "team/app:v1")
        .await
        .unwrap_err();

    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains(&gone.to_string()), "{err}");
    assert_eq!(repository_requests(&reg).await, 0);
}

fn rule(user: &str, repos: &[&str], actions: &[&str]) -> AccessRule {
    AccessRule {
        user: user.into(),
        repositories: repos.iter().map(|s| s.to_string()).collect(),
        actions: actions.iter().map(|s| s.to_string()).collect(),
    }
}

/// Bearer-token auth: `writer` pushes `team/*`, `reader` only pulls.
fn token_auth(dir: &Path) -> impl FnOnce(&mut RegistryConfig) {
    let htpasswd = dir.join("htpasswd");
    let lines = format!(
        "writer:{}\nreader:{}\n",
        bcrypt::hash("writer-pw", 4).unwrap(),
        bcrypt::hash("reader-pw", 4).unwrap()
    );
    std::fs::write(&htpasswd, lines).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, hex::encode(rand::random::<[u8; 32]>())).unwrap();
    move |c: &mut RegistryConfig| {
        c.auth.htpasswd = Some(htpasswd);
        c.auth.token_secret_file = Some(secret);
        c.auth.access = vec![
            rule("writer", &["team/*"], &["pull", "push"]),
            rule("reader", &["*"], &["pull"]),
        ];
    }
}

fn client_as(dir: &Path, host: &str, user: &str) -> Client {
    let c = crate::common::client(dir);
    c.auth()
        .store(
            host,
            &Credential {
                username: user.into(),
                secret: format!("{user}-pw"),
            },
        )
        .unwrap();
    c
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn push_with_tokens_mounts_and_a_reader_is_refused() {
    let auth_dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_with(token_auth(auth_dir.path())).await;
    let (_t, store) = crate::common::store();
    let image = load(&store, &two_layers(), "localhost/app:1");

    let dir = tempfile::tempdir().unwrap();
    let writer = client_as(dir.path(), &reg.host, "writer");
    push_quiet(&writer, &store, "localhost/app:1", &reg.host, "team/app:v1")
        .await
        .unwrap();
    // The mount asks a token for pull on team/app and push on team/copy.
    let pushed = push_quiet(
        &writer,
        &store,
        "localhost/app:1",
        &reg.host,
        "team/copy:v1",
    )
    .await
    .unwrap();
    assert_eq!(pushed.blobs_mounted, 3);
    let tokens = writer.cached_tokens(&reg.host).await;
    assert!(
        tokens.iter().any(|(scopes, _)| scopes
            == &vec![
                "repository:team/app:pull".to_owned(),
                "repository:team/copy:pull,push".to_owned()
            ]),
        "{tokens:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let reader = client_as(dir.path(), &reg.host, "reader");
    let err = push_quiet(
        &reader,
        &store,
        "localhost/app:1",
        &reg.host,
        "team/other:v1",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Denied { .. } | Error::Unauthorized { .. }),
        "{err:?}"
    );
    let r = reqwest::get(format!("{}/v2/team/other/manifests/v1", reg.url()))
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
    // What the mounts linked into team/copy is readable there (through the writer's tokens).
    let (_, blobs) = blobs_of(&store, &image);
    for d in blobs {
        let r = writer
            .send(
                &reg.host,
                &[Scope::pull("team/copy")],
                Method::GET,
                &format!("/v2/team/copy/blobs/{d}"),
                HeaderMap::new(),
                Body::Empty,
            )
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(digest(&r.bytes().await.unwrap()), d);
    }
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn a_registry_that_is_gone_is_an_error() {
    let reg = Registry::start().await;
    let host = reg.host.clone();
    drop(reg);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (_t, store) = crate::common::store();
    load(&store, &two_layers(), "localhost/app:1");
    let dir = tempfile::tempdir().unwrap();
    let client = crate::common::client(dir.path());

    let err = push_to(
        &client,
        &store,
        "localhost/app:1",
        &format!("{host}/team/app:v1"),
        &Events::default(),
    )
    .await
    .unwrap_err();

    assert!(
        matches!(err, Error::Unreachable { .. } | Error::Transfer { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&host), "{err}");
    let image = store.image("localhost/app:1").unwrap();
    assert!(
        image.sources.is_empty(),
        "no source recorded after a failed push"
    );
}

/// A TCP proxy to `upstream` that cuts its connection once, when more than `cut_after` bytes
/// have gone from clients to the server in all; returns its `host:port`.
async fn flaky_proxy(upstream: std::net::SocketAddr, cut_after: u64) -> String {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let (sent, cut) = (sent.clone(), cut.clone());
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.into_split();
                let (mut ro, mut wo) = outbound.into_split();
                let up = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match ri.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                        if total > cut_after && !cut.swap(true, Ordering::SeqCst) {
                            return;
                        }
                        if wo.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = tokio::io::copy(&mut ro, &mut wi);
                // Whichever side ends first, both connections close.
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });
    host
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn a_chunked_upload_cut_off_midway_resumes_from_what_the_registry_holds() {
    let reg = Registry::start().await;
    let proxy = flaky_proxy(reg.addr, 300 * 1024).await;
    let (_t, store) = crate::common::store();
    let big = layer(&[("big", &random_bytes(1 << 20))], Compression::None);
    let image = load(&store, std::slice::from_ref(&big), "localhost/big:1");
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(Config {
        chunk_size: 64 * 1024,
        ..crate::common::client(dir.path()).config().clone()
    })
    .unwrap();
    let events = Events::default();

    let pushed = push_to(
        &client,
        &store,
        "localhost/big:1",
        &format!("{proxy}/team/big:v1"),
        &events,
    )
    .await
    .unwrap();

    let resumed: Vec<u64> = events
        .statuses()
        .into_iter()
        .filter_map(|s| match s {
            LayerStatus::Resumed { offset } => Some(offset),
            _ => None,
        })
        .collect();
    assert_eq!(resumed.len(), 1, "{:?}", events.statuses());
    assert!(
        resumed[0] > 0 && resumed[0].is_multiple_of(64 * 1024),
        "{resumed:?}"
    );
    // Only what the registry accepted counts.
    assert_eq!(pushed.bytes_uploaded, total_size(&store, &image));
    assert_registry_has(&reg, "team/big", "v1", &store, &image).await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn pushing_another_image_to_a_taken_tag_moves_the_tag() {
    let fx = Fixture::new().await;
    let (reg, store, client) = (&fx.reg, &fx.store, &fx.client);
    load(store, &two_layers(), "localhost/app:1");
    let second = load(store, &two_layers(), "localhost/app:2");
    let target = format!("{}/team/app:latest", reg.host);
    push_to(
        client,
        store,
        "localhost/app:1",
        &target,
        &Events::default(),
    )
    .await
    .unwrap();

    let pushed = push_to(
        client,
        store,
        "localhost/app:2",
        &target,
        &Events::default(),
    )
    .await
    .unwrap();

    assert_eq!(pushed.blobs_uploaded, 3);
    assert_registry_has(reg, "team/app", "latest", store, &second).await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn a_docker_schema2_manifest_goes_with_its_own_media_type() {
    let reg = Registry::start().await;
    let (_t, store) = crate::common::store();
    let mut layers = two_layers();
    layers.truncate(1);
    layers[0].media_type = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    let image = store
        .load(&oci_tar_as(&layers, "localhost/docker:1", DOCKER)[..])
        .unwrap()
        .remove(0);
    let dir = tempfile::tempdir().unwrap();
    let client = crate::common::client(dir.path());

    let pushed = push_quiet(
        &client,
        &store,
        "localhost/docker:1",
        &reg.host,
        "team/docker:v1",
    )
    .await
    .unwrap();

    assert_eq!(pushed.digest, image.manifest_digest);
    // assert_registry_has checks the Content-Type is the manifest's own mediaType.
    assert_registry_has(&reg, "team/docker", "v1", &store, &image).await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn an_imported_image_pushes() {
    let reg = Registry::start().await;
    let (_t, store) = crate::common::store();
    let rootfs = layer(&[("etc/os-release", b"ID=test\n")], Compression::Gzip);
    let name = reference("localhost/imported:1");
    let image = store
        .import(&rootfs.blob[..], Some(&name), &Default::default())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = crate::common::client(dir.path());

    let pushed = push_quiet(
        &client,
        &store,
        "localhost/imported:1",
        &reg.host,
        "team/imported:v1",
    )
    .await
    .unwrap();

    assert_eq!(
        (pushed.blobs_uploaded, pushed.bytes_uploaded),
        (2, total_size(&store, &image))
    );
    assert_registry_has(&reg, "team/imported", "v1", &store, &image).await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn push_by_digest_and_a_digest_that_is_not_the_image() {
    let fx = Fixture::new().await;
    let (reg, store, client) = (&fx.reg, &fx.store, &fx.client);
    let image = load(store, &two_layers(), "localhost/app:1");

    let wrong = format!("{}/team/app@{}", reg.host, crate::common::digest(b"other"));
    let err = push_to(client, store, "localhost/app:1", &wrong, &Events::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert_eq!(repository_requests(reg).await, 0);

    let target = format!("{}/team/app@{}", reg.host, image.manifest_digest);
    let pushed = push_to(
        client,
        store,
        "localhost/app:1",
        &target,
        &Events::default(),
    )
    .await
    .unwrap();
    assert_eq!(pushed.reference.to_string(), target);
    assert_registry_has(
        reg,
        "team/app",
        &image.manifest_digest.to_string(),
        store,
        &image,
    )
    .await;
}
