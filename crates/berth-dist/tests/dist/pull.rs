//! Pull against a real in-process berth registry: tags and digests, compressions, indexes and
//! platforms, shared layers, corrupt blobs and lying configs, resume after a cut connection,
//! concurrent pulls, and the errors for missing tags and unreachable registries.

use crate::common::{Compression, Registry, TestLayer, client, layer, random_bytes, store};
use berth_dist::{Error, Event, LayerStatus, PullOptions, pull};
use berth_oci::{Digest, Reference};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Events = Arc<Mutex<Vec<Event>>>;

fn opts(platform: Option<&str>) -> (PullOptions, Events) {
    let events: Events = Arc::default();
    let sink = events.clone();
    (
        PullOptions {
            platform: platform.map(str::to_owned),
            events: Arc::new(move |e| sink.lock().unwrap().push(e)),
        },
        events,
    )
}

/// Pulls `host/path` into `store` through `client`, no one watching the events.
async fn pull_quiet(
    client: &berth_dist::Client,
    store: &berth_store::Store,
    host: &str,
    path: &str,
) -> Result<berth_dist::Pulled, Error> {
    pull(
        client,
        store,
        &reference(&format!("{host}/{path}")),
        &opts(None).0,
    )
    .await
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

/// The content of `path` in the first of an image's layers (topmost first) that has it.
fn file_in(store: &berth_store::Store, image: &berth_store::Image, path: &str) -> Option<Vec<u8>> {
    let rootfs = store.rootfs(image).unwrap();
    rootfs
        .lowers
        .iter()
        .find_map(|dir| std::fs::read(dir.join(path)).ok())
}

fn statuses(events: &Events, layer: &str) -> Vec<LayerStatus> {
    let d = digest(layer);
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Layer { digest, status, .. } if *digest == d => Some(status.clone()),
            _ => None,
        })
        .collect()
}

fn ingest_entries(store: &berth_store::Store) -> Vec<PathBuf> {
    std::fs::read_dir(store.root().join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn assert_store_empty(store: &berth_store::Store, blob: &str) {
    assert!(store.images().unwrap().is_empty(), "no image recorded");
    assert!(!store.blobs().exists(&digest(blob)), "no layer blob");
    assert!(store.snapshots().list().unwrap().is_empty(), "no snapshot");
    let tmp: Vec<_> = std::fs::read_dir(store.snapshots().dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(tmp.is_empty(), "no temp snapshot dirs: {tmp:?}");
    assert!(ingest_entries(store).is_empty(), "no partial blob");
}

fn other_arch() -> (&'static str, String) {
    let host = berth_store::layout::host_platform().architecture;
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    (other, host)
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn pulls_by_tag_and_by_digest_with_gzip_zstd_and_plain_layers() {
    let reg = Registry::start().await;
    let layers = [
        layer(&[("etc/gz", b"gzip layer")], Compression::Gzip),
        layer(&[("etc/zst", b"zstd layer")], Compression::Zstd),
        layer(
            &[("etc/plain", b"plain layer"), ("etc/gz", b"overridden")],
            Compression::None,
        ),
    ];
    let (_, md) = reg
        .put_image("team/app", "v1", &layers, ("linux", "amd64"))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());

    let (_t, st) = store();
    let (o, events) = opts(None);
    let r = reference(&format!("{}/team/app:v1", reg.host));
    let pulled = pull(&client, &st, &r, &o).await.unwrap();
    assert_eq!(pulled.digest, digest(&md));
    assert_eq!(pulled.layers_downloaded, 3);
    assert!(pulled.bytes_downloaded > 0);
    assert_eq!(
        file_in(&st, &pulled.image, "etc/zst").unwrap(),
        b"zstd layer"
    );
    assert_eq!(
        file_in(&st, &pulled.image, "etc/plain").unwrap(),
        b"plain layer"
    );
    assert_eq!(
        file_in(&st, &pulled.image, "etc/gz").unwrap(),
        b"overridden"
    );
    let img = st.image(&format!("{}/team/app:v1", reg.host)).unwrap();
    assert_eq!(img.id, pulled.image.id);
    assert_eq!(img.sources, vec![format!("{}/team/app", reg.host)]);
    assert!(img.layers.iter().all(|l| l.unpacked_size > 0));
    let evs = events.lock().unwrap().clone();
    assert!(
        matches!(evs.first(), Some(Event::Resolved { index: None, .. })),
        "{evs:?}"
    );
    assert!(matches!(evs.last(), Some(Event::Done { .. })), "{evs:?}");
    assert!(ingest_entries(&st).is_empty());

    // Again: everything exists, nothing downloaded.
    let (o, events) = opts(None);
    let again = pull(&client, &st, &r, &o).await.unwrap();
    assert_eq!(again.layers_downloaded, 0);
    assert_eq!(again.image.id, pulled.image.id);
    let layer_events: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Layer { status, .. } => Some(status.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(layer_events, vec![LayerStatus::Exists; 3]);

    // By digest into a fresh store: name@digest finds it.
    let (_t2, st2) = store();
    let by_digest = reference(&format!("{}/team/app@{md}", reg.host));
    let (o, _) = opts(None);
    let p2 = pull(&client, &st2, &by_digest, &o).await.unwrap();
    assert_eq!(p2.image.id, pulled.image.id);
    assert_eq!(st2.image(&by_digest.to_string()).unwrap().id, p2.image.id);
    assert_eq!(file_in(&st2, &p2.image, "etc/zst").unwrap(), b"zstd layer");
}

/// Uploads an image for `arch` with one file `arch` holding the arch name; returns (manifest
/// digest, manifest size).
async fn put_arch_image(reg: &Registry, repo: &str, arch: &str) -> (String, usize) {
    let l = layer(&[("arch", arch.as_bytes())], Compression::Gzip);
    let (m, d) = reg
        .put_image(repo, &format!("only-{arch}"), &[l], ("linux", arch))
        .await;
    (d, m.len())
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn index_picks_the_host_platform_or_the_asked_one() {
    let reg = Registry::start().await;
    let (other, host) = other_arch();
    let (hd, hs) = put_arch_image(&reg, "multi", &host).await;
    let (od, os) = put_arch_image(&reg, "multi", other).await;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": od, "size": os,
             "platform": {"os": "linux", "architecture": other}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": hd, "size": hs,
             "platform": {"os": "linux", "architecture": host}},
        ]
    }))
    .unwrap();
    let id = reg
        .put_manifest(
            "multi",
            "latest",
            "application/vnd.oci.image.index.v1+json",
            &index,
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let r = reference(&format!("{}/multi", reg.host));

    let (_t, st) = store();
    let (o, events) = opts(None);
    let p = pull(&client, &st, &r, &o).await.unwrap();
    assert_eq!(p.digest, digest(&id), "Docker prints the index digest");
    assert_eq!(file_in(&st, &p.image, "arch").unwrap(), host.as_bytes());
    assert!(events.lock().unwrap().iter().any(|e| matches!(e,
        Event::Resolved { digest: d, index: Some(i), .. } if *d == digest(&hd) && *i == digest(&id))));
    // Both the index digest and the manifest digest find the image.
    let by_index = format!("{}/multi@{id}", reg.host);
    assert_eq!(st.image(&by_index).unwrap().id, p.image.id);
    assert_eq!(
        st.image(&format!("{}/multi@{hd}", reg.host)).unwrap().id,
        p.image.id
    );

    let (_t2, st2) = store();
    let (o, _) = opts(Some(&format!("linux/{other}")));
    let p2 = pull(&client, &st2, &r, &o).await.unwrap();
    assert_eq!(file_in(&st2, &p2.image, "arch").unwrap(), other.as_bytes());

    let (o, _) = opts(Some("linux/s390x"));
    let err = pull(&client, &st2, &r, &o).await.unwrap_err();
    match &err {
        Error::NoPlatform {
            platform, offered, ..
        } => {
            assert_eq!(platform, "linux/s390x");
            assert!(offered.contains(&format!("linux/{host}")), "{offered}");
            assert!(offered.contains(&format!("linux/{other}")), "{offered}");
        }
        e => panic!("expected NoPlatform, got {e}"),
    }
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn layers_shared_between_images_download_once() {
    let reg = Registry::start().await;
    let base = layer(&[("base", &random_bytes(200_000)[..])], Compression::Gzip);
    let a = layer(&[("a", b"A")], Compression::Gzip);
    let b = layer(&[("b", b"B")], Compression::Zstd);
    reg.put_image("one", "1", &[base.clone(), a], ("linux", "amd64"))
        .await;
    reg.put_image("two", "2", &[base.clone(), b], ("linux", "amd64"))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let (_t, st) = store();
    let (o, _) = opts(None);
    let p1 = pull(&client, &st, &reference(&format!("{}/one:1", reg.host)), &o)
        .await
        .unwrap();
    assert_eq!(p1.layers_downloaded, 2);
    let (o, events) = opts(None);
    let p2 = pull(&client, &st, &reference(&format!("{}/two:2", reg.host)), &o)
        .await
        .unwrap();
    assert_eq!(p2.layers_downloaded, 1);
    let base_digest = crate::common::digest(&base.blob);
    assert_eq!(statuses(&events, &base_digest), vec![LayerStatus::Exists]);
    assert!(p2.bytes_downloaded < 100_000, "{}", p2.bytes_downloaded);
    assert_eq!(file_in(&st, &p2.image, "b").unwrap(), b"B");
    assert_eq!(file_in(&st, &p2.image, "base").unwrap().len(), 200_000);
}

async fn corrupt_case(compression: Compression) {
    let reg = Registry::start().await;
    let l = layer(&[("data", &random_bytes(100_000)[..])], compression);
    reg.put_image("bad", "v", std::slice::from_ref(&l), ("linux", "amd64"))
        .await;
    let ld = crate::common::digest(&l.blob);
    let path = reg.blob_path(&ld);
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[50_000..50_100] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let (_t, st) = store();
    let (o, _) = opts(None);
    let err = pull(&client, &st, &reference(&format!("{}/bad:v", reg.host)), &o)
        .await
        .unwrap_err();
    match &err {
        Error::DigestMismatch { what, expected, .. } => {
            assert_eq!(*expected, digest(&ld));
            assert!(what.contains(&ld), "{what}");
        }
        e => panic!("expected DigestMismatch, got {e}"),
    }
    assert_store_empty(&st, &ld);
}

#[tokio::test]
async fn corrupt_layer_is_rejected_leaving_nothing() {
    corrupt_case(Compression::None).await;
    corrupt_case(Compression::Gzip).await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn config_lying_about_diff_ids_publishes_nothing() {
    let reg = Registry::start().await;
    let real = layer(&[("x", b"real")], Compression::Gzip);
    let other = layer(&[("x", b"other")], Compression::Gzip);
    let lying = TestLayer {
        diff_id: other.diff_id.clone(),
        ..real.clone()
    };
    reg.put_image("liar", "v", &[lying], ("linux", "amd64"))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let (_t, st) = store();
    let err = pull_quiet(&client, &st, &reg.host, "liar:v")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Store(berth_store::Error::DiffIdMismatch { .. })
        ),
        "{err}"
    );
    assert_store_empty(&st, &crate::common::digest(&real.blob));
}

/// A TCP proxy to `upstream` that, while `limit` is non-zero, closes each connection after
/// sending `limit` bytes of the registry's responses.
async fn cutting_proxy(upstream: SocketAddr, limit: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let limit = limit.clone();
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut sent = 0u64;
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let lim = limit.load(Ordering::SeqCst);
                    if lim > 0 && sent + n as u64 > lim {
                        let keep = (lim - sent) as usize;
                        let _ = cw.write_all(&buf[..keep]).await;
                        break;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    sent += n as u64;
                }
                up.abort();
            });
        }
    });
    addr.to_string()
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn interrupted_download_resumes_with_a_range_request() {
    let reg = Registry::start().await;
    let content = random_bytes(2_000_000);
    let l = layer(&[("big", &content[..])], Compression::Gzip);
    reg.put_image("resume", "v", std::slice::from_ref(&l), ("linux", "amd64"))
        .await;
    let ld = crate::common::digest(&l.blob);
    let limit = Arc::new(AtomicU64::new(700_000));
    let host = cutting_proxy(reg.addr, limit.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let (_t, st) = store();
    let r = reference(&format!("{host}/resume:v"));

    let (o, _) = opts(None);
    let err = pull(&client, &st, &r, &o).await.unwrap_err();
    assert!(matches!(err, Error::Transfer { .. }), "{err}");
    assert!(st.images().unwrap().is_empty());
    assert!(!st.blobs().exists(&digest(&ld)));
    let partial = st.root().join("ingest").join(format!("pull-{}", &ld[7..]));
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 100_000 && kept < l.blob.len() as u64, "{kept}");
    assert_eq!(
        std::fs::read(&partial).unwrap()[..],
        l.blob[..kept as usize]
    );

    limit.store(0, Ordering::SeqCst);
    let client = crate::common::client(dir.path());
    let (o, events) = opts(None);
    let p = pull(&client, &st, &r, &o).await.unwrap();
    assert_eq!(
        statuses(&events, &ld)
            .into_iter()
            .find(|s| matches!(s, LayerStatus::Resumed { .. })),
        Some(LayerStatus::Resumed { offset: kept })
    );
    assert!(
        p.bytes_downloaded < l.blob.len() as u64,
        "only the rest was sent"
    );
    assert_eq!(file_in(&st, &p.image, "big").unwrap(), content);
    assert!(!partial.exists());
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn resume_with_a_bogus_partial_is_refused_and_the_next_pull_works() {
    let reg = Registry::start().await;
    let l = layer(&[("f", &random_bytes(300_000)[..])], Compression::Zstd);
    reg.put_image("bogus", "v", std::slice::from_ref(&l), ("linux", "amd64"))
        .await;
    let ld = crate::common::digest(&l.blob);
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let (_t, st) = store();
    // A partial whose bytes are not the blob's prefix: the digest check catches it.
    let partial = st.root().join("ingest").join(format!("pull-{}", &ld[7..]));
    std::fs::write(&partial, vec![0u8; 1000]).unwrap();
    let r = reference(&format!("{}/bogus:v", reg.host));
    let (o, _) = opts(None);
    let err = pull(&client, &st, &r, &o).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_store_empty(&st, &ld);
    let (o, _) = opts(None);
    let p = pull(&client, &st, &r, &o).await.unwrap();
    assert_eq!(p.layers_downloaded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn concurrent_pulls_sharing_layers_all_succeed() {
    let reg = Registry::start().await;
    let base = layer(&[("base", &random_bytes(500_000)[..])], Compression::Gzip);
    let mid = layer(&[("mid", &random_bytes(300_000)[..])], Compression::Zstd);
    let a = layer(&[("top", b"a")], Compression::None);
    let b = layer(&[("top", b"b")], Compression::Gzip);
    reg.put_image(
        "c",
        "a",
        &[base.clone(), mid.clone(), a],
        ("linux", "amd64"),
    )
    .await;
    reg.put_image(
        "c",
        "b",
        &[base.clone(), mid.clone(), b],
        ("linux", "amd64"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_t, st) = store();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let st = st.clone();
        let client = client(&dir.path().join(format!("c{i}")));
        let r = reference(&format!(
            "{}/c:{}",
            reg.host,
            if i % 2 == 0 { "a" } else { "b" }
        ));
        tasks.push(tokio::spawn(async move {
            let (o, _) = opts(None);
            pull(&client, &st, &r, &o).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for (tag, top) in [("a", b"a"), ("b", b"b")] {
        let img = st.image(&format!("{}/c:{tag}", reg.host)).unwrap();
        assert_eq!(file_in(&st, &img, "top").unwrap(), top);
        assert_eq!(file_in(&st, &img, "base").unwrap().len(), 500_000);
        assert_eq!(file_in(&st, &img, "mid").unwrap().len(), 300_000);
    }
    assert_eq!(st.snapshots().list().unwrap().len(), 4);
    assert!(ingest_entries(&st).is_empty());
}

#[tokio::test]
async fn missing_tag_is_not_found_and_closed_port_is_unreachable() {
    let reg = Registry::start().await;
    let l = layer(&[("f", b"x")], Compression::Gzip);
    reg.put_image("here", "v", &[l], ("linux", "amd64")).await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let (_t, st) = store();
    let (o, _) = opts(None);
    let err = pull(
        &client,
        &st,
        &reference(&format!("{}/here:nope", reg.host)),
        &o,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = pull(
        &client,
        &st,
        &reference(&format!("{}/absent:v", reg.host)),
        &o,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = pull(&client, &st, &reference(&format!("{closed}/x:v")), &o)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(st.images().unwrap().is_empty());
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn the_same_blob_twice_in_one_image_gets_both_snapshots() {
    let reg = Registry::start().await;
    let l = layer(&[("same", b"twice")], Compression::Gzip);
    let top = layer(&[("top", b"t")], Compression::Gzip);
    reg.put_image("dup", "v", &[l.clone(), top, l.clone()], ("linux", "amd64"))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let (_t, st) = store();
    let p = pull_quiet(&client, &st, &reg.host, "dup:v").await.unwrap();
    assert_eq!(p.image.layers.len(), 3);
    assert_eq!(st.snapshots().list().unwrap().len(), 3);
    assert_eq!(file_in(&st, &p.image, "same").unwrap(), b"twice");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "e2e tier: needs root (unpacking sets owners)"
)]
async fn docker_manifest_list_and_schema2_media_types() {
    let reg = Registry::start().await;
    let (_, host) = other_arch();
    let l = layer(&[("hello", b"docker")], Compression::Gzip);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": host, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id]},
    }))
    .unwrap();
    let cd = reg.put_blob("dock", &config).await;
    let ld = reg.put_blob("dock", &l.blob).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": ld, "size": l.blob.len()}],
    }))
    .unwrap();
    let md = reg
        .put_manifest(
            "dock",
            &crate::common::digest(&manifest),
            "application/vnd.docker.distribution.manifest.v2+json",
            &manifest,
        )
        .await;
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "digest": md, "size": manifest.len(),
                       "platform": {"os": "linux", "architecture": host}}],
    }))
    .unwrap();
    let listd = reg
        .put_manifest(
            "dock",
            "latest",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            &list,
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path());
    let (_t, st) = store();
    let p = pull_quiet(&client, &st, &reg.host, "dock").await.unwrap();
    assert_eq!(p.digest, digest(&listd));
    assert_eq!(p.image.manifest_digest, digest(&md));
    assert_eq!(file_in(&st, &p.image, "hello").unwrap(), b"docker");
    assert_eq!(
        p.image.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
}
