//! Online garbage collection: what goes, what stays, and — the point of it — that collecting in a
//! loop while two instances take pushes on one storage (local disk and S3) never loses a blob of
//! a manifest that was answered 201.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::common::{S3, Server, digest};
use berth_registry::config::{Config, GcConfig};
use berth_registry::gc::{self, GcReport};
use berth_registry::paths::{self, Event, ManifestLink, TagLink, UploadInfo};
use berth_registry::storage::{Storage, StorageSpec};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

// ---------------------------------------------------------------------------------------------
// Fixtures written straight into the storage, through the layout.

fn hex_of(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn gc_config(grace_secs: u64) -> GcConfig {
    GcConfig {
        interval_secs: 0,
        grace_secs,
        upload_ttl_secs: 3600,
        delete_untagged: false,
    }
}

async fn blob(s: &Storage, data: &[u8]) -> String {
    let h = hex_of(data);
    s.put(&paths::blob(&h), Bytes::copy_from_slice(data))
        .await
        .unwrap();
    h
}

async fn link(s: &Storage, repo: &str, hex: &str) {
    s.put(&paths::blob_link(repo, hex), Bytes::new())
        .await
        .unwrap();
}

/// An OCI manifest (config + layers, optional subject) stored and linked in `repo`, tagged when
/// asked. Returns its hex.
async fn manifest(s: &Storage, repo: &str, tag: Option<&str>, body: serde_json::Value) -> String {
    let bytes = serde_json::to_vec(&body).unwrap();
    let h = blob(s, &bytes).await;
    let ml = ManifestLink {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: bytes.len() as u64,
    };
    s.put(
        &paths::manifest_link(repo, &h),
        Bytes::from(serde_json::to_vec(&ml).unwrap()),
    )
    .await
    .unwrap();
    if let Some(t) = tag {
        let tl = TagLink {
            digest: format!("sha256:{h}"),
        };
        s.put(
            &paths::tag(repo, t),
            Bytes::from(serde_json::to_vec(&tl).unwrap()),
        )
        .await
        .unwrap();
    }
    h
}

fn image(config: &str, layers: &[&str], subject: Option<&str>) -> serde_json::Value {
    let d = |h: &str| serde_json::json!({"mediaType": "application/octet-stream", "digest": format!("sha256:{h}"), "size": 1});
    let mut v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": d(config),
        "layers": layers.iter().map(|l| d(l)).collect::<Vec<_>>(),
    });
    if let Some(s) = subject {
        v["subject"] = d(s);
    }
    v
}

fn index(children: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children.iter().map(|c| serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{c}"), "size": 1})).collect::<Vec<_>>(),
    })
}

/// Makes an object of a local storage look `secs` old.
fn age(s: &Storage, key: &str, secs: u64) {
    let p = s.root_dir().unwrap().join(key);
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

/// Ages every object under a prefix of a local storage.
async fn age_all(s: &Storage, prefix: &str, secs: u64) {
    for o in s.list(prefix).await.unwrap() {
        age(s, &o.key, secs);
    }
}

/// Every key in the storage, sorted.
async fn all_keys(s: &Storage) -> Vec<String> {
    s.list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

async fn exists(s: &Storage, key: &str) -> bool {
    s.head(key).await.unwrap().is_some()
}

fn local() -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::local(dir.path()).unwrap();
    (dir, s)
}

// ---------------------------------------------------------------------------------------------
// What goes and what stays.

/// One repository with a referenced image and three unreferenced blobs: old with an old link,
/// young, and old with a young link; plus an old link to a blob that does not exist.
struct Scene {
    config: String,
    layer: String,
    manifest: String,
    old: String,
    young: String,
    young_link: String,
}

async fn scene(s: &Storage) -> Scene {
    let config = blob(s, b"{\"config\":1}").await;
    let layer = blob(s, b"layer bytes").await;
    link(s, "app/web", &config).await;
    link(s, "app/web", &layer).await;
    let manifest = manifest(s, "app/web", Some("v1"), image(&config, &[&layer], None)).await;
    let old = blob(s, b"pushed, never referenced").await;
    link(s, "app/web", &old).await;
    link(s, "other", &old).await;
    // A repository that pushed a layer another one references, and never used it itself.
    link(s, "other", &layer).await;
    let young_link = blob(s, b"old bytes, linked again just now").await;
    link(s, "other", &young_link).await;
    // Everything is an hour old ...
    age_all(s, "blobs", 3600).await;
    age_all(s, "repositories", 3600).await;
    // ... but these.
    let young = blob(s, b"pushed a moment ago").await;
    link(s, "app/web", &young).await;
    link(s, "app/web", &young_link).await;
    link(s, "app/web", &"d".repeat(64)).await;
    age(s, &paths::blob_link("app/web", &"d".repeat(64)), 3600);
    Scene {
        config,
        layer,
        manifest,
        old,
        young,
        young_link,
    }
}

#[tokio::test]
async fn unreferenced_old_blobs_go_and_referenced_or_young_ones_stay() {
    let (_d, s) = local();
    let sc = scene(&s).await;
    let r = gc::collect(&s, &gc_config(60), false).await.unwrap();

    assert!(!exists(&s, &paths::blob(&sc.old)).await);
    assert!(!exists(&s, &paths::blob_link("app/web", &sc.old)).await);
    assert!(!exists(&s, &paths::blob_link("other", &sc.old)).await);
    assert!(!exists(&s, &paths::blob_link("app/web", &"d".repeat(64))).await);
    for h in [
        &sc.config,
        &sc.layer,
        &sc.manifest,
        &sc.young,
        &sc.young_link,
    ] {
        assert!(exists(&s, &paths::blob(h)).await, "{h} must stay");
    }
    assert!(exists(&s, &paths::blob_link("app/web", &sc.layer)).await);
    assert!(
        !exists(&s, &paths::blob_link("other", &sc.layer)).await,
        "a link its repository does not reference goes after grace"
    );
    // The young link keeps its blob; the old one beside it, in a repository that does not
    // reference the blob, goes.
    assert!(exists(&s, &paths::blob_link("app/web", &sc.young_link)).await);
    assert!(!exists(&s, &paths::blob_link("other", &sc.young_link)).await);
    assert_eq!(r.blobs_deleted, 1, "{r:?}");
    assert_eq!(r.bytes_freed, b"pushed, never referenced".len() as u64);
    assert_eq!(r.links_removed, 5, "{r:?}");
    assert_eq!(r.blobs_referenced, 3, "{r:?}");
    assert!(!r.incomplete);
    assert!(
        s.list(paths::GC_SWEEPING).await.unwrap().is_empty(),
        "the lease is released"
    );

    // A second run finds nothing more; with grace 0, the young ones go too.
    let r = gc::collect(&s, &gc_config(60), false).await.unwrap();
    assert_eq!((r.blobs_deleted, r.links_removed), (0, 0), "{r:?}");
    let r = gc::collect(&s, &gc_config(0), false).await.unwrap();
    assert_eq!(r.blobs_deleted, 2, "{r:?}");
    assert!(exists(&s, &paths::blob(&sc.layer)).await);
}

#[tokio::test]
async fn dry_run_deletes_nothing_but_reports_what_it_would() {
    let (_d, s) = local();
    let sc = scene(&s).await;
    let uid = "0123abcd";
    s.put(&paths::upload_info(uid), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    age_all(&s, "uploads", 7200).await;
    let before = all_keys(&s).await;
    let r = gc::collect(&s, &gc_config(60), true).await.unwrap();
    let after = all_keys(&s).await;
    assert_eq!(before, after);
    assert!(r.dry_run);
    assert_eq!(r.blobs_deleted, 1, "{r:?}");
    assert_eq!(r.uploads_removed, 1, "{r:?}");
    assert!(exists(&s, &paths::blob(&sc.old)).await);
}

#[tokio::test]
async fn a_manifest_link_keeps_its_blobs_before_its_repository_is_in_the_catalog() {
    // A first push in flight has its manifest link but no catalog marker yet.
    let (_d, s) = local();
    let c = blob(&s, b"cfg").await;
    let l = blob(&s, b"lyr").await;
    let m = manifest(&s, "new/repo", None, image(&c, &[&l], None)).await;
    age_all(&s, "", 3600).await;
    assert!(s.list(paths::CATALOG).await.unwrap().is_empty());
    let r = gc::collect(&s, &gc_config(0), false).await.unwrap();
    assert_eq!(r.blobs_deleted, 0, "{r:?}");
    for h in [&c, &l, &m] {
        assert!(exists(&s, &paths::blob(h)).await);
    }
}

#[tokio::test]
async fn index_children_and_unparseable_manifests_keep_what_they_name() {
    let (_d, s) = local();
    let c = blob(&s, b"child cfg").await;
    let l = blob(&s, b"child layer").await;
    let child = manifest(&s, "r", None, image(&c, &[&l], None)).await;
    manifest(&s, "r", Some("multi"), index(&[&child])).await;
    // A schema-1-like body the parser refuses still keeps the digests it mentions.
    let odd_layer = blob(&s, b"odd layer").await;
    manifest(
        &s,
        "r",
        None,
        serde_json::json!({"schemaVersion": 1, "fsLayers": [{"blobSum": format!("sha256:{odd_layer}")}]}),
    )
    .await;
    age_all(&s, "", 3600).await;
    let r = gc::collect(&s, &gc_config(0), false).await.unwrap();
    assert_eq!(r.blobs_deleted, 0, "{r:?}");
    assert!(exists(&s, &paths::blob(&odd_layer)).await);
    assert!(exists(&s, &paths::blob(&l)).await);
}

#[tokio::test]
async fn untagged_manifests_go_only_with_delete_untagged() {
    let (_d, s) = local();
    let cfg = blob(&s, b"c").await;
    let lay = blob(&s, b"l").await;
    let lone = blob(&s, b"only the untagged one uses this").await;
    let tagged = manifest(&s, "r", Some("v1"), image(&cfg, &[&lay], None)).await;
    let child = manifest(&s, "r", None, image(&cfg, &[&lay, &"1".repeat(64)], None)).await;
    let idx = manifest(&s, "r", Some("multi"), index(&[&child])).await;
    let untagged = manifest(&s, "r", None, image(&cfg, &[&lone], None)).await;
    let signature = manifest(&s, "r", None, image(&cfg, &[], Some(&tagged))).await;
    let orphan_sig = manifest(
        &s,
        "r",
        None,
        image(&cfg, &[&"2".repeat(64)], Some(&untagged)),
    )
    .await;
    for (sig, subject) in [(&signature, &tagged), (&orphan_sig, &untagged)] {
        s.put(
            &paths::referrer("r", subject, sig),
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    }
    age_all(&s, "", 3600).await;
    let fresh = manifest(&s, "r", None, image(&cfg, &[&"3".repeat(64)], None)).await;

    let mut c = gc_config(0);
    let r = gc::collect(&s, &c, false).await.unwrap();
    assert_eq!(r.manifests_removed, 0, "off by default: {r:?}");
    assert_eq!(r.blobs_deleted, 0, "{r:?}");

    c.delete_untagged = true;
    let r = gc::collect(&s, &c, false).await.unwrap();
    assert_eq!(r.manifests_removed, 2, "{r:?}");
    assert!(!exists(&s, &paths::manifest_link("r", &untagged)).await);
    assert!(!exists(&s, &paths::manifest_link("r", &orphan_sig)).await);
    assert!(!exists(&s, &paths::referrer("r", &untagged, &orphan_sig)).await);
    for m in [&tagged, &child, &idx, &signature, &fresh] {
        assert!(exists(&s, &paths::manifest_link("r", m)).await, "{m} stays");
    }
    assert!(exists(&s, &paths::referrer("r", &tagged, &signature)).await);
    // This run's mark still counted the deleted manifests' blobs ...
    assert!(exists(&s, &paths::blob(&lone)).await);
    let deleted: HashSet<String> = events(&s)
        .await
        .into_iter()
        .filter_map(|e| match e {
            Event::ManifestDeleted { repo, digest } if repo == "r" => Some(digest),
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        HashSet::from([format!("sha256:{untagged}"), format!("sha256:{orphan_sig}")])
    );
    // ... the next one collects them (and the manifests' own bytes).
    let r = gc::collect(&s, &c, false).await.unwrap();
    assert_eq!(r.blobs_deleted, 3, "{r:?}");
    assert!(!exists(&s, &paths::blob(&lone)).await);
    assert!(!exists(&s, &paths::blob(&untagged)).await);
    assert!(exists(&s, &paths::blob(&cfg)).await);
}

async fn events(s: &Storage) -> Vec<Event> {
    let mut out = Vec::new();
    for o in s.list(paths::EVENTS).await.unwrap() {
        let b = s.get(&o.key).await.unwrap().unwrap();
        out.push(serde_json::from_slice(&b).unwrap());
    }
    out
}

#[tokio::test]
async fn abandoned_uploads_go_and_live_ones_stay() {
    let (dir, s) = local();
    let info = |repo: &str| {
        Bytes::from(
            serde_json::to_vec(&UploadInfo {
                repo: repo.into(),
                started: 0,
            })
            .unwrap(),
        )
    };
    for id in ["abandoned", "live", "touched"] {
        s.put(&paths::upload_info(id), info("r")).await.unwrap();
        s.put(&paths::upload_chunk(id, 0), Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    age_all(&s, &paths::upload("abandoned"), 7200).await;
    age_all(&s, &paths::upload("touched"), 7200).await;
    // A chunk written just now keeps its whole session.
    s.put(&paths::upload_chunk("touched", 1), Bytes::from_static(b"y"))
        .await
        .unwrap();
    let r = gc::collect(&s, &gc_config(60), false).await.unwrap();
    assert_eq!(r.uploads_removed, 1, "{r:?}");
    assert!(
        s.list(&paths::upload("abandoned"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !dir.path().join(paths::upload("abandoned")).exists(),
        "its directories go too"
    );
    assert!(exists(&s, &paths::upload_info("live")).await);
    assert!(exists(&s, &paths::upload_chunk("touched", 0)).await);
}

#[tokio::test]
async fn stale_temporary_files_of_killed_writers_go() {
    let (dir, s) = local();
    let tmp = dir.path().join(".tmp");
    std::fs::write(tmp.join("killed-writer"), b"partial").unwrap();
    std::fs::write(tmp.join("live-writer"), b"partial").unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(tmp.join("killed-writer"))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let r = gc::collect(&s, &gc_config(60), false).await.unwrap();
    assert_eq!(r.temp_files_removed, 1, "{r:?}");
    assert!(!tmp.join("killed-writer").exists());
    assert!(tmp.join("live-writer").exists());
}

#[tokio::test]
async fn old_events_go_but_the_newest_thousand_stay() {
    let (_d, s) = local();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let hour = 3600 * 1_000_000_000u128;
    let body = Bytes::from_static(br#"{"kind":"tag_deleted","repo":"r","tag":"t"}"#);
    // 1010 two-hour-old events and 5 recent ones: the 5 recent and the newest 995 old ones stay.
    for i in 0..1010u128 {
        s.put(&paths::event(now - 2 * hour + i), body.clone())
            .await
            .unwrap();
    }
    for i in 0..5u128 {
        s.put(&paths::event(now - i), body.clone()).await.unwrap();
    }
    let r = gc::collect(&s, &gc_config(60), false).await.unwrap();
    assert_eq!(r.events_removed, 15, "{r:?}");
    let left = s.list(paths::EVENTS).await.unwrap();
    assert_eq!(left.len(), 1000);
    let oldest = paths::event_time(&left[0].key).unwrap();
    assert_eq!(oldest, now - 2 * hour + 15);
}

#[tokio::test]
async fn periodic_collection_runs_on_its_interval_and_not_at_zero() {
    let (_d, s) = local();
    let old = blob(&s, b"collected by the periodic task").await;
    age(&s, &paths::blob(&old), 3600);
    let mut c = gc_config(60);
    gc::spawn_periodic(s.clone(), c.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(exists(&s, &paths::blob(&old)).await, "interval 0: no task");
    c.interval_secs = 1;
    gc::spawn_periodic(s.clone(), c);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while exists(&s, &paths::blob(&old)).await {
        assert!(
            std::time::Instant::now() < deadline,
            "not collected in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Leases.

#[tokio::test]
async fn await_sweeps_waits_for_a_live_lease_but_not_a_stale_one() {
    let (_d, s) = local();
    let dead = paths::gc_sweeping("dead");
    s.put(&dead, Bytes::from_static(b"{}")).await.unwrap();
    age(&s, &dead, 2 * gc::LEASE_STALE.as_secs());
    tokio::time::timeout(Duration::from_millis(500), gc::await_sweeps(&s))
        .await
        .expect("a stale lease blocks nobody")
        .unwrap();

    let live = paths::gc_sweeping("live");
    s.put(&live, Bytes::from_static(b"{}")).await.unwrap();
    let s2 = s.clone();
    let live2 = live.clone();
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        s2.delete(&live2).await.unwrap();
    });
    let t = std::time::Instant::now();
    gc::await_sweeps(&s).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t.elapsed()
    );
    releaser.await.unwrap();

    // The next collection removes the dead collector's lease.
    let r = gc::collect(&s, &gc_config(60), false).await.unwrap();
    assert_eq!(r.stale_leases_removed, 1, "{r:?}");
    assert!(s.list(paths::GC_SWEEPING).await.unwrap().is_empty());
}

#[tokio::test]
async fn await_sweeps_waits_only_for_the_sweeps_it_saw() {
    let (_d, s) = local();
    let first = paths::gc_sweeping("first");
    s.put(&first, Bytes::from_static(b"{}")).await.unwrap();
    let s2 = s.clone();
    let helper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        // A sweep that starts now sees the caller's link: no need to wait for it.
        s2.put(&paths::gc_sweeping("second"), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        s2.delete(&paths::gc_sweeping("first")).await.unwrap();
    });
    tokio::time::timeout(Duration::from_secs(5), gc::await_sweeps(&s))
        .await
        .expect("returns once the first sweep is done")
        .unwrap();
    helper.await.unwrap();
    assert!(exists(&s, &paths::gc_sweeping("second")).await);
}

#[tokio::test]
async fn refresh_link_rewrites_only_old_links_and_never_resurrects_one() {
    let (_d, s) = local();
    let key = paths::blob_link("r", &"a".repeat(64));
    s.put(&key, Bytes::new()).await.unwrap();
    let young = s.head(&key).await.unwrap().unwrap();
    gc::refresh_link(&s, &young, 60).await.unwrap();
    assert_eq!(
        s.head(&key).await.unwrap().unwrap().modified,
        young.modified
    );

    age(&s, &key, 40);
    let old = s.head(&key).await.unwrap().unwrap();
    gc::refresh_link(&s, &old, 60).await.unwrap();
    let now = s.head(&key).await.unwrap().unwrap();
    assert!(now.modified > old.modified + Duration::from_secs(30));

    s.delete(&key).await.unwrap();
    gc::refresh_link(&s, &old, 60).await.unwrap();
    assert!(!exists(&s, &key).await, "a deleted link stays deleted");
}

// ---------------------------------------------------------------------------------------------
// The concurrency test: two instances take pushes while collectors run in a loop.

/// A pushing client that reports failures instead of panicking, and (like real clients) HEADs
/// each blob and skips uploading what the repository already has.
#[derive(Clone)]
struct Pusher {
    http: reqwest::Client,
    bases: Vec<String>,
}

impl Pusher {
    fn base(&self) -> &str {
        &self.bases[rand::random::<u32>() as usize % self.bases.len()]
    }

    async fn blob(&self, repo: &str, data: &[u8]) -> Result<String, String> {
        let d = digest(data);
        let base = self.base().to_string();
        let r = self
            .http
            .head(format!("{base}/v2/{repo}/blobs/{d}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() == 200 {
            return Ok(d);
        }
        let r = self
            .http
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 202 {
            return Err(format!("start upload: {}", r.status()));
        }
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let loc = if loc.starts_with('/') {
            format!("{}{loc}", self.base())
        } else {
            loc
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self
            .http
            .put(format!("{loc}{sep}digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 201 {
            return Err(format!("finish upload: {}", r.status()));
        }
        Ok(d)
    }

    /// Pushes config + layers + manifest; the manifest digest on 201.
    async fn image(&self, repo: &str, tag: &str, layers: &[Vec<u8>]) -> Result<String, String> {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":"{}"}}"#,
            hex::encode(rand::random::<[u8; 8]>())
        );
        let cd = self.blob(repo, config.as_bytes()).await?;
        let mut descs = Vec::new();
        for l in layers {
            let d = self.blob(repo, l).await?;
            descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": l.len()}));
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": descs,
        }))
        .unwrap();
        let r = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base()))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(body.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match r.status().as_u16() {
            201 => Ok(digest(&body)),
            s => Err(format!(
                "put manifest: {s} {}",
                r.text().await.unwrap_or_default()
            )),
        }
    }

    async fn delete_manifest(&self, repo: &str, d: &str) {
        let r = self
            .http
            .delete(format!("{}/v2/{repo}/manifests/{d}", self.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "delete {repo}@{d}");
    }

    /// GETs a manifest and every blob it names from one base, checking every digest.
    async fn verify(&self, base: &str, repo: &str, d: &str) -> Result<(), String> {
        let get = |path: String| async move {
            let r = self
                .http
                .get(format!("{base}{path}"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let b = r.bytes().await.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("GET {path}: {status}"));
            }
            Ok::<Bytes, String>(b)
        };
        let body = get(format!("/v2/{repo}/manifests/{d}")).await?;
        if digest(&body) != d {
            return Err(format!("manifest {repo}@{d} has the wrong digest"));
        }
        let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
        for l in m["layers"].as_array().unwrap() {
            blobs.push(l["digest"].as_str().unwrap().to_string());
        }
        for b in blobs {
            let data = get(format!("/v2/{repo}/blobs/{b}")).await?;
            if digest(&data) != b {
                return Err(format!("blob {b} of {repo}@{d} has the wrong digest"));
            }
        }
        Ok(())
    }
}

/// Verifies every image from every base, a few at a time.
async fn verify_all(pusher: &Pusher, bases: &[&str], live: &[(String, String)]) {
    use futures::StreamExt;
    let checks = live
        .iter()
        .flat_map(|(repo, d)| bases.iter().map(move |base| (*base, repo, d)));
    let mut runs = futures::stream::iter(checks)
        .map(|(base, repo, d)| async move { pusher.verify(base, repo, d).await })
        .buffer_unordered(8);
    while let Some(r) = runs.next().await {
        r.unwrap();
    }
}

/// A blob pushed and left unreferenced: its digest and bytes.
type Junk = (String, Vec<u8>);

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

/// Runs the scene on a storage spec: returns when everything has been verified.
async fn gc_during_concurrent_pushes(
    spec: StorageSpec,
    pushers: usize,
    push_for: Duration,
    settle: Duration,
) {
    // No link refreshes on HEAD (grace 0): a blob that a client HEADs and then references is
    // protected by the lease protocol alone, which is what this test is about.
    let config = Config {
        storage: Some(spec.clone()),
        gc: gc_config(0),
        ..Config::default()
    };
    let a = Server::with_config(config.clone()).await;
    let b = Server::with_config(config).await;
    let pusher = Pusher {
        http: reqwest::Client::new(),
        bases: vec![a.url.clone(), b.url.clone()],
    };
    let storage = Storage::open(&spec).unwrap();

    // Shared layers: pushed as loose blobs first, so that they start out unreferenced, then used
    // (HEAD-then-skip) by every pusher; images that use them are deleted now and then, so they
    // keep falling back to unreferenced while others are about to reference them again.
    let shared: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("shared layer {i}").into_bytes())
        .collect();
    for repo in ["team/a", "team/b"] {
        for l in &shared {
            pusher.blob(repo, l).await.unwrap();
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    // (repository, manifest digest) of every image answered 201 and not deleted since.
    let live: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    // (digest, bytes) of blobs pushed on purpose and never referenced (unless reused).
    let garbage: Arc<Mutex<Vec<Junk>>> = Arc::default();
    let failures = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..pushers {
        let (pusher, stop, live, garbage, failures, shared) = (
            pusher.clone(),
            stop.clone(),
            live.clone(),
            garbage.clone(),
            failures.clone(),
            shared.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let repo = if t % 2 == 0 { "team/a" } else { "team/b" };
            let mut n = 0;
            let mut mine: Vec<String> = Vec::new();
            let mut last_junk: Option<Vec<u8>> = None;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let mut layers = vec![random_bytes(1024 + rand::random::<u32>() as usize % 8192)];
                layers.push(shared[n % shared.len()].clone());
                // The sharpest race: every other image reuses the blob this task pushed (and left
                // unreferenced) one iteration ago — old enough to collect by now, so a collector
                // may be deleting it while the HEAD says it exists and the manifest goes in.
                if n % 2 == 0
                    && let Some(j) = &last_junk
                {
                    layers.push(j.clone());
                }
                match pusher.image(repo, &format!("t{t}-{n}"), &layers).await {
                    Ok(d) => {
                        mine.push(d.clone());
                        live.lock().await.push((repo.to_string(), d));
                    }
                    // A 400 MANIFEST_BLOB_UNKNOWN is the collector winning a race against a blob
                    // that was not referenced yet: allowed, the client pushes again.
                    Err(e) => {
                        assert!(e.contains("MANIFEST_BLOB_UNKNOWN"), "{e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Garbage on purpose: a blob nobody will ever reference.
                let junk = random_bytes(512);
                let g = pusher.blob(repo, &junk).await.unwrap();
                garbage.lock().await.push((g, junk.clone()));
                last_junk = Some(junk);
                // Now and then, drop an older image of this task (its blobs become garbage
                // unless someone else uses them).
                if mine.len() > 2 && rand::random::<u8>().is_multiple_of(3) {
                    let d = mine.remove(0);
                    live.lock().await.retain(|(_, x)| x != &d);
                    pusher.delete_manifest(repo, &d).await;
                }
            }
        }));
    }

    // Collectors in a loop with grace 0 or 1 s (two at once, now and then).
    let collector = {
        let (storage, stop) = (storage.clone(), stop.clone());
        tokio::spawn(async move {
            let mut total = GcReport::default();
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let c = gc_config(rand::random::<u64>() % 2);
                let (r1, r2) = if runs % 3 == 0 {
                    let (x, y) = tokio::join!(
                        gc::collect(&storage, &c, false),
                        gc::collect(&storage, &c, false)
                    );
                    (x.unwrap(), Some(y.unwrap()))
                } else {
                    (gc::collect(&storage, &c, false).await.unwrap(), None)
                };
                for r in std::iter::once(r1).chain(r2) {
                    total.blobs_deleted += r.blobs_deleted;
                    total.links_removed += r.links_removed;
                    total.lease_ms = total.lease_ms.max(r.lease_ms);
                }
                runs += 1;
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 100)).await;
            }
            (runs, total)
        })
    };

    let t0 = std::time::Instant::now();
    tokio::time::sleep(push_for).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (runs, total) = collector.await.unwrap();
    eprintln!("pushers and collectors stopped after {:?}", t0.elapsed());
    let live = live.lock().await.clone();
    let failures = failures.load(Ordering::Relaxed);
    eprintln!(
        "{} images live, {failures} pushes refused, {runs} collections deleted {} blobs and {} links (longest lease {} ms)",
        live.len(),
        total.blobs_deleted,
        total.links_removed,
        total.lease_ms
    );
    assert!(
        live.len() >= 8,
        "too few pushes got through: {}",
        live.len()
    );
    assert!(runs >= 3, "the collector must have run during the pushes");
    assert!(
        total.blobs_deleted > 0,
        "collections during the pushes deleted nothing"
    );

    // Every manifest that got 201 (and was not deleted on purpose) is whole, from both instances.
    verify_all(&pusher, &[&a.url, &b.url], &live).await;

    eprintln!("verified after {:?}", t0.elapsed());
    // The garbage goes once it is older than grace; what is live stays.
    tokio::time::sleep(settle).await;
    let r = gc::collect(&storage, &gc_config(1), false).await.unwrap();
    eprintln!("final collection: {r:?}");
    let referenced: HashSet<String> = {
        let mut set = HashSet::new();
        for (repo, d) in &live {
            let body = storage
                .get(&paths::blob(d.strip_prefix("sha256:").unwrap()))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{repo}@{d} lost its bytes"));
            let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
            set.insert(m["config"]["digest"].as_str().unwrap().to_string());
            for l in m["layers"].as_array().unwrap() {
                set.insert(l["digest"].as_str().unwrap().to_string());
            }
        }
        set
    };
    let garbage = garbage.lock().await.clone();
    assert!(!garbage.is_empty());
    for (g, _) in &garbage {
        if referenced.contains(g) {
            continue;
        }
        assert!(
            !exists(&storage, &paths::blob(g.strip_prefix("sha256:").unwrap())).await,
            "garbage blob {g} survived"
        );
    }
    verify_all(&pusher, &[&a.url], &live).await;
    assert!(storage.list(paths::GC_SWEEPING).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_during_concurrent_pushes_on_local_disk_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = StorageSpec::new(dir.path().to_str().unwrap());
    gc_during_concurrent_pushes(spec, 4, Duration::from_secs(8), Duration::from_millis(1200)).await;
    assert!(Path::new(dir.path()).exists());
}

#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_during_concurrent_pushes_on_s3_loses_nothing() {
    let s3 = S3::start();
    gc_during_concurrent_pushes(
        crate::common::s3_spec(&s3, "gc"),
        8,
        Duration::from_secs(15),
        Duration::from_millis(2500),
    )
    .await;
}
