//! The search index and `GET /v2/_berth/search`, against real servers: pushes through the API,
//! an index built from an existing storage, two instances on one storage directory, the query
//! language, pagination and deletion.

use std::time::{Duration, Instant};

use crate::common::{Client, Server, digest};
use berth_registry::config::{Config, SearchConfig};
use berth_registry::search::Index;
use berth_registry::storage::{Storage, StorageSpec};
use serde_json::{Value, json};

/// A server on `dir` whose index polls events every `poll_ms`.
async fn server_on(dir: &std::path::Path, poll_ms: u64) -> Server {
    Server::with_config(Config {
        storage: Some(StorageSpec::new(dir.to_str().unwrap())),
        search: SearchConfig { poll_ms },
        ..Config::default()
    })
    .await
}

/// Pushes an image with a given config (JSON text), layers and manifest annotations.
async fn push_custom(
    c: &Client,
    repo: &str,
    tag: &str,
    config: &str,
    layers: &[&[u8]],
    annotations: Value,
) -> String {
    let cd = c.push_blob(repo, config.as_bytes()).await;
    let mut descs = Vec::new();
    for l in layers {
        let d = c.push_blob(repo, l).await;
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": l.len()}));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
        "annotations": annotations,
    });
    put_manifest(
        c,
        repo,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await
}

/// PUTs a manifest under a reference; returns its digest.
async fn put_manifest(
    c: &Client,
    repo: &str,
    reference: &str,
    media_type: &str,
    m: &Value,
) -> String {
    let body = serde_json::to_vec(m).unwrap();
    let r = c
        .http
        .put(format!("{}/v2/{repo}/manifests/{reference}", c.base))
        .header("content-type", media_type)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "put manifest: {}", r.text().await.unwrap());
    digest(&body)
}

/// An image config for a platform with labels.
fn config(os_arch: &str, created: &str, labels: Value) -> String {
    let (os, arch) = os_arch.split_once('/').unwrap();
    json!({
        "architecture": arch, "os": os, "created": created,
        "config": {"Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": []}
    })
    .to_string()
}

/// GETs a search and returns the JSON body (asserting 200 and the content type).
async fn search(c: &Client, query: &str) -> Value {
    let r = c.get(&format!("/v2/_berth/search?{query}")).await;
    assert_eq!(r.status(), 200, "search {query}");
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

/// `(repository, tag)` pairs of a search answer, in order.
fn pairs(v: &Value) -> Vec<(String, Option<String>)> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["repository"].as_str().unwrap().to_string(),
                h["tag"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Polls a search until `ok` holds, for at most `limit`; returns the last answer.
async fn wait_search(
    c: &Client,
    query: &str,
    limit: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let v = search(c, query).await;
        if ok(&v) {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "search {query:?} did not reach the expected state within {limit:?}; last answer: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn total(v: &Value) -> u64 {
    v["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_pushed_image_is_found_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_on(dir.path(), 50).await;
    let c = Client::new(&s.url);
    let cfg = config(
        "linux/arm64",
        "2026-03-04T05:06:07Z",
        json!({"org.opencontainers.image.vendor": "Acme", "maintainer": "ops@acme.test"}),
    );
    let (l1, l2) = (vec![1u8; 1000], vec![2u8; 3000]);
    let d = push_custom(
        &c,
        "acme/web",
        "1.0",
        &cfg,
        &[&l1, &l2],
        json!({"org.opencontainers.image.source": "https://git.acme.test/web"}),
    )
    .await;
    let v = wait_search(&c, "q=acme", Duration::from_secs(5), |v| total(v) == 1).await;
    assert_eq!(v["query"], "acme");
    assert_eq!(
        v["results"][0],
        json!({
            "repository": "acme/web",
            "tag": "1.0",
            "digest": d,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": cfg.len() + 4000,
            "platforms": ["linux/arm64"],
            "created": "2026-03-04T05:06:07Z",
            "labels": {"org.opencontainers.image.vendor": "Acme", "maintainer": "ops@acme.test"},
            "annotations": {"org.opencontainers.image.source": "https://git.acme.test/web"},
            "layers": 2
        })
    );
}

#[tokio::test]
async fn an_index_is_built_from_what_the_storage_already_holds() {
    let dir = tempfile::tempdir().unwrap();
    {
        let a = server_on(dir.path(), 50).await;
        let c = Client::new(&a.url);
        c.push_image("old/one", "v1", b"layer one").await;
        c.push_image("old/two", "v2", b"layer two").await;
    }
    // A fresh instance whose event polling is far too slow to matter: only its start-up scan
    // can find these.
    let b = server_on(dir.path(), 3_600_000).await;
    let c = Client::new(&b.url);
    let v = wait_search(&c, "", Duration::from_secs(5), |v| total(v) == 2).await;
    assert_eq!(
        pairs(&v),
        vec![
            ("old/one".to_string(), Some("v1".to_string())),
            ("old/two".to_string(), Some("v2".to_string()))
        ]
    );

    // The library API says the same about the storage.
    let storage = Storage::local(dir.path()).unwrap();
    let ix = Index::new();
    assert!(!ix.is_ready());
    ix.start(&storage).await.unwrap();
    assert!(ix.is_ready());
    let names: Vec<String> = ix
        .repositories(&|_| true)
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["old/one", "old/two"]);
    let repo = ix.repository("old/one").unwrap();
    assert_eq!(repo.tags.len(), 1);
    let m = &repo.manifests[&repo.tags["v1"]];
    assert_eq!(m.layers, 1);
    assert_eq!(m.platforms, ["linux/amd64"]);
    assert_eq!(m.labels["org.test.repo"], "old/one");
}

#[tokio::test]
async fn a_push_is_searchable_at_once_through_the_instance_that_took_it() {
    let dir = tempfile::tempdir().unwrap();
    // An hour between event polls: only the instance's own update can make the push visible.
    let a = server_on(dir.path(), 3_600_000).await;
    let c = Client::new(&a.url);
    let t0 = Instant::now();
    while !a.state.search.is_ready() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "index never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = c.push_image("now/app", "v1", b"a layer").await;
    let v = search(&c, "q=now/app").await;
    assert_eq!(total(&v), 1, "{v}");
    assert_eq!(v["results"][0]["digest"], d);
    // A deleted tag is gone at once too.
    let r = c
        .http
        .delete(format!("{}/v2/now/app/manifests/v1", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v = search(&c, "q=now/app").await;
    assert!(
        pairs(&v).iter().all(|(_, t)| t.as_deref() != Some("v1")),
        "{v}"
    );
}

#[tokio::test]
async fn a_push_through_one_instance_is_searchable_through_another() {
    let dir = tempfile::tempdir().unwrap();
    let a = server_on(dir.path(), 100).await;
    let b = server_on(dir.path(), 100).await;
    let (ca, cb) = (Client::new(&a.url), Client::new(&b.url));
    // Both have finished their start-up scan of the empty storage, so only events can tell
    // them about what follows.
    let t0 = Instant::now();
    while !(a.state.search.is_ready() && b.state.search.is_ready()) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "indexes never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let start = Instant::now();
    let d = ca.push_image("shared/app", "latest", b"shared layer").await;
    let v = wait_search(&cb, "q=shared/app", Duration::from_secs(5), |v| {
        total(v) == 1
    })
    .await;
    assert_eq!(v["results"][0]["digest"], d);
    eprintln!(
        "visible through the other instance after {:?}",
        start.elapsed()
    );

    // A second tag on the same manifest, then deleting that tag, then the manifest.
    let m = ca
        .http
        .get(format!("{}/v2/shared/app/manifests/latest", ca.base))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let r = ca
        .http
        .put(format!("{}/v2/shared/app/manifests/stable", ca.base))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    wait_search(&cb, "q=repo:shared/app", Duration::from_secs(5), |v| {
        total(v) == 2
    })
    .await;

    let r = ca
        .http
        .delete(format!("{}/v2/shared/app/manifests/stable", ca.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "delete tag: {}", r.text().await.unwrap());
    let v = wait_search(&cb, "q=repo:shared/app", Duration::from_secs(5), |v| {
        total(v) == 1
    })
    .await;
    assert_eq!(
        pairs(&v),
        [("shared/app".to_string(), Some("latest".to_string()))]
    );

    let r = ca
        .http
        .delete(format!("{}/v2/shared/app/manifests/{d}", ca.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        202,
        "delete manifest: {}",
        r.text().await.unwrap()
    );
    wait_search(&cb, "q=shared", Duration::from_secs(5), |v| total(v) == 0).await;
    wait_search(&ca, "q=shared", Duration::from_secs(5), |v| total(v) == 0).await;
    assert!(b.state.search.repository("shared/app").is_none());
}

#[tokio::test]
async fn the_query_language_narrows_results() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_on(dir.path(), 50).await;
    let c = Client::new(&s.url);
    let amd = config(
        "linux/amd64",
        "2026-01-01T00:00:00Z",
        json!({"team": "Payments"}),
    );
    let arm = config(
        "linux/arm64",
        "2026-02-01T00:00:00Z",
        json!({"team": "search", "tier": "gold"}),
    );
    let d_amd = push_custom(
        &c,
        "lib/alpine",
        "3.19",
        &amd,
        &[b"alpine amd64"],
        json!({}),
    )
    .await;
    let d_arm = push_custom(
        &c,
        "lib/alpine",
        "3.20-arm",
        &arm,
        &[b"alpine arm64"],
        json!({"note": "Edge build"}),
    )
    .await;
    // A multi-platform index over both, tagged; the children themselves stay untagged.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d_amd, "size": 1,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d_arm, "size": 1,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
        ],
        "annotations": {"org.opencontainers.image.ref.name": "multi"}
    });
    let d_index = put_manifest(
        &c,
        "lib/alpine",
        "multi",
        "application/vnd.oci.image.index.v1+json",
        &index,
    )
    .await;
    c.push_image("tools/busybox", "1.36", b"busybox").await;
    let untagged = push_custom(&c, "tools/busybox", "tmp", &amd, &[b"dangling"], json!({})).await;
    let r = c
        .http
        .delete(format!("{}/v2/tools/busybox/manifests/tmp", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_search(&c, "", Duration::from_secs(5), |v| total(v) == 5).await;

    let t = |s: &str| Some(s.to_string());
    let all = search(&c, "").await;
    assert_eq!(
        pairs(&all),
        vec![
            ("lib/alpine".into(), t("3.19")),
            ("lib/alpine".into(), t("3.20-arm")),
            ("lib/alpine".into(), t("multi")),
            ("tools/busybox".into(), t("1.36")),
            ("tools/busybox".into(), None),
        ]
    );
    assert_eq!(all["results"][4]["digest"], untagged);
    let multi = &all["results"][2];
    assert_eq!(multi["digest"], d_index);
    assert_eq!(
        multi["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(multi["platforms"], json!(["linux/amd64", "linux/arm64/v8"]));
    let child_sizes =
        all["results"][0]["size"].as_u64().unwrap() + all["results"][1]["size"].as_u64().unwrap();
    assert_eq!(multi["size"].as_u64().unwrap(), child_sizes);
    assert_eq!(multi["layers"], 2);
    assert_eq!(multi["created"], "2026-02-01T00:00:00Z");

    let q = |query: &'static str| {
        let c = c.clone();
        async move { pairs(&search(&c, &format!("q={query}")).await) }
    };
    // Plain terms: substrings of any field, case-insensitive, all must match.
    assert_eq!(
        q("ALPINE+arm").await,
        [
            ("lib/alpine".into(), t("3.20-arm")),
            ("lib/alpine".into(), t("multi"))
        ]
    );
    // The amd64 label: both images built from that config, and the index that merges it.
    assert_eq!(q("payments").await.len(), 3);
    assert_eq!(q("edge").await, [("lib/alpine".into(), t("3.20-arm"))]);
    assert_eq!(q("busybox+alpine").await, []);
    let part = &untagged[7..20];
    let by_part = pairs(&search(&c, &format!("q={part}")).await);
    assert_eq!(by_part, [("tools/busybox".into(), None)]);
    // Qualifiers.
    assert_eq!(q("repo:tools/*").await.len(), 2);
    assert_eq!(q("repo:tools").await, []);
    assert_eq!(q("tag:3.*").await.len(), 2);
    assert_eq!(q("tag:3.19").await, [("lib/alpine".into(), t("3.19"))]);
    assert_eq!(q("label:tier=GOLD").await.len(), 2);
    assert_eq!(q("label:tier").await.len(), 2);
    assert_eq!(q("label:tier=silver").await, []);
    assert_eq!(
        q("annotation:org.opencontainers.image.ref.name=multi").await,
        [("lib/alpine".into(), t("multi"))]
    );
    assert_eq!(q("platform:linux/arm64+repo:lib/alpine").await.len(), 2);
    assert_eq!(q("platform:arm64").await.len(), 2);
    assert_eq!(
        q("platform:linux/arm64/v8").await,
        [("lib/alpine".into(), t("multi"))]
    );
    let by_digest = pairs(&search(&c, &format!("q=digest:{}", &d_index[7..19])).await);
    assert_eq!(by_digest, [("lib/alpine".into(), t("multi"))]);
    let by_digest = pairs(&search(&c, &format!("q=digest:{}", &d_index[..19])).await);
    assert_eq!(by_digest, [("lib/alpine".into(), t("multi"))]);

    // Bad queries are refused with the spec's error body.
    for bad in [
        "q=repo:",
        "q=platform:a/b/c/d",
        "n=x",
        "n=-2",
        "last=%21%21",
        "q=%ff",
    ] {
        let r = c.get(&format!("/v2/_berth/search?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body["errors"][0]["code"].is_string(), "{bad}: {body}");
        assert!(body["errors"][0]["message"].is_string(), "{bad}: {body}");
    }
}

#[tokio::test]
async fn results_are_paginated_with_link_headers() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_on(dir.path(), 50).await;
    let c = Client::new(&s.url);
    let mut want = Vec::new();
    for repo in ["page/b", "page/a"] {
        for i in 0..4 {
            c.push_image(
                repo,
                &format!("t{i}"),
                format!("{repo} layer {i}").as_bytes(),
            )
            .await;
        }
    }
    for repo in ["page/a", "page/b"] {
        for i in 0..4 {
            want.push((repo.to_string(), Some(format!("t{i}"))));
        }
    }
    wait_search(&c, "q=page", Duration::from_secs(5), |v| total(v) == 8).await;

    let mut got = Vec::new();
    let mut url = "/v2/_berth/search?q=repo:page/*&n=3".to_string();
    let mut pages = 0;
    loop {
        let r = c.get(&url).await;
        assert_eq!(r.status(), 200);
        let link = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string());
        let v: Value = r.json().await.unwrap();
        assert_eq!(total(&v), 8);
        pages += 1;
        got.extend(pairs(&v));
        match link {
            Some(l) => {
                assert!(l.ends_with(">; rel=\"next\""), "{l}");
                url = l[1..l.find('>').unwrap()].to_string();
                assert!(
                    url.starts_with("/v2/_berth/search?q=repo%3Apage%2F%2A&n=3&last="),
                    "{url}"
                );
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(got, want);

    // n larger than the results: one page, no Link.
    let r = c.get("/v2/_berth/search?n=1000").await;
    assert!(r.headers().get("link").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(pairs(&v), want);
}

#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
#[tokio::test]
async fn two_instances_on_one_bucket_see_each_others_pushes() {
    let s3 = crate::common::S3::start();
    let spec = crate::common::s3_spec(&s3, "search");
    let config = || Config {
        storage: Some(spec.clone()),
        search: SearchConfig { poll_ms: 100 },
        ..Config::default()
    };
    let a = Server::with_config(config()).await;
    let b = Server::with_config(config()).await;
    let (ca, cb) = (Client::new(&a.url), Client::new(&b.url));
    let t0 = Instant::now();
    while !(a.state.search.is_ready() && b.state.search.is_ready()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "indexes never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let da = ca.push_image("bucket/one", "a", b"pushed through a").await;
    let db = cb.push_image("bucket/two", "b", b"pushed through b").await;
    let v = wait_search(&cb, "q=bucket/one", Duration::from_secs(5), |v| {
        total(v) == 1
    })
    .await;
    assert_eq!(v["results"][0]["digest"], da);
    let v = wait_search(&ca, "q=bucket/two", Duration::from_secs(5), |v| {
        total(v) == 1
    })
    .await;
    assert_eq!(v["results"][0]["digest"], db);
    // The tag moves to another manifest at once (same-size tag link, same second on S3).
    let da2 = ca
        .push_image("bucket/one", "a", b"pushed through a, again")
        .await;
    assert_ne!(da, da2);
    wait_search(
        &cb,
        "q=repo:bucket/one+tag:a",
        Duration::from_secs(5),
        |v| v["results"][0]["digest"] == da2.as_str(),
    )
    .await;
    let r = ca
        .http
        .delete(format!("{}/v2/bucket/two/manifests/{db}", ca.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_search(&cb, "q=bucket/two", Duration::from_secs(5), |v| {
        total(v) == 0
    })
    .await;
}

#[tokio::test]
async fn a_rebuild_heals_changes_whose_events_were_lost() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_on(dir.path(), 50).await;
    let c = Client::new(&s.url);
    c.push_image("heal/app", "keep", b"keep").await;
    c.push_image("heal/app", "lost", b"lost").await;
    wait_search(&c, "q=heal", Duration::from_secs(5), |v| total(v) == 2).await;

    // A tag disappears behind the registry's back: no event tells anyone.
    let storage = Storage::local(dir.path()).unwrap();
    storage
        .delete(&berth_registry::paths::tag("heal/app", "lost"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(total(&search(&c, "q=heal").await), 2, "no event, no change");
    s.state.search.rebuild(&storage).await.unwrap();
    let v = search(&c, "q=heal").await;
    assert_eq!(
        pairs(&v)[0],
        ("heal/app".to_string(), Some("keep".to_string()))
    );
    // The manifest is still there, now untagged.
    assert_eq!(v["results"][1]["tag"], Value::Null);
}
