//! The web pages: what `/`, a repository page and a manifest page show for pushed images, that
//! hostile labels and annotations come out escaped, that unknown things are 404 pages saying
//! what was not found, that `/` does not swallow the API, and — in Debian's headless Chromium —
//! that the rendered DOM shows the pushed repository, tag, size and layers.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Client, Server, digest};
use berth_registry::config::{Config, SearchConfig};
use berth_registry::storage::StorageSpec;
use serde_json::{Value, json};

async fn server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let c = Config {
        storage: Some(StorageSpec::new(dir.path().to_str().unwrap())),
        search: SearchConfig { poll_ms: 50 },
        ..Config::default()
    };
    (Server::with_config(c).await, dir)
}

/// Pushes an image whose config carries `labels` and whose manifest carries `annotations`.
async fn push_labelled(
    c: &Client,
    repo: &str,
    tag: &str,
    labels: Value,
    annotations: Value,
    layers: &[&[u8]],
) -> String {
    let config = json!({
        "architecture": "amd64", "os": "linux", "created": "2026-05-06T07:08:09Z",
        "config": {"Labels": labels, "Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": []}
    })
    .to_string();
    let cd = c.push_blob(repo, config.as_bytes()).await;
    let mut descs = Vec::new();
    for l in layers {
        let d = c.push_blob(repo, l).await;
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": l.len()}));
    }
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
        "annotations": annotations,
    });
    let body = serde_json::to_vec(&m).unwrap();
    let r = c
        .http
        .put(format!("{}/v2/{repo}/manifests/{tag}", c.base))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    digest(&body)
}

/// GETs a page: status, content type, body.
async fn page(c: &Client, path: &str) -> (u16, String, String) {
    let r = c.get(path).await;
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

/// Waits until the index of `s` lists `repo`.
async fn wait_indexed(s: &Server, repo: &str, tags: usize) {
    let start = Instant::now();
    while s.state.search.repository(repo).map(|r| r.tags.len()) != Some(tags) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{repo} never reached {tags} tags in the index"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pages_show_repositories_tags_and_a_manifest() {
    let (s, _dir) = server().await;
    let c = Client::new(&s.url);
    let (l1, l2) = (vec![7u8; 2048], vec![9u8; 3 << 20]);
    let d = push_labelled(
        &c,
        "team/api",
        "2.1",
        json!({"org.opencontainers.image.vendor": "Team"}),
        json!({"org.opencontainers.image.source": "https://example.test/api"}),
        &[&l1, &l2],
    )
    .await;
    c.push_image("team/worker", "edge", b"worker layer").await;
    wait_indexed(&s, "team/api", 1).await;
    wait_indexed(&s, "team/worker", 1).await;

    let (st, ct, home) = page(&c, "/").await;
    assert_eq!(st, 200);
    assert_eq!(ct, "text/html; charset=utf-8");
    assert!(home.contains("<form method=\"get\" action=\"/\""), "{home}");
    assert!(
        home.contains("<a href=\"/ui/r/team/api\">team/api</a>"),
        "{home}"
    );
    assert!(home.contains("<a href=\"/ui/r/team/worker\">team/worker</a>"));
    assert!(home.contains("3.0 MiB"), "repository size: {home}");

    let (st, _, results) = page(
        &c,
        "/?q=team+label%3Aorg.opencontainers.image.vendor%3DTeam",
    )
    .await;
    assert_eq!(st, 200);
    assert!(results.contains("1 result<"), "{results}");
    assert!(results.contains(">2.1<"), "{results}");
    assert!(results.contains(&format!("/ui/r/team/api/m/{d}")));
    assert!(!results.contains("team/worker"));
    assert!(results.contains("value=\"team label:org.opencontainers.image.vendor=Team\""));

    let (st, _, repo) = page(&c, "/ui/r/team/api").await;
    assert_eq!(st, 200);
    assert!(repo.contains("<h1>team/api</h1>"), "{repo}");
    assert!(repo.contains("<td>2.1</td>"), "{repo}");
    assert!(repo.contains(&d[..19]), "short digest: {repo}");
    assert!(repo.contains("linux/amd64"));
    assert!(repo.contains("2026-05-06T07:08:09Z"));

    let (st, _, m) = page(&c, &format!("/ui/r/team/api/m/{d}")).await;
    assert_eq!(st, 200);
    assert!(m.contains("application/vnd.oci.image.manifest.v1+json"));
    assert!(m.contains("<h2>Layers (2)</h2>"), "{m}");
    assert!(m.contains(&digest(&l1)) && m.contains(&digest(&l2)));
    assert!(m.contains("application/vnd.oci.image.layer.v1.tar+gzip"));
    assert!(m.contains("2.0 KiB") && m.contains("3.0 MiB"));
    assert!(m.contains("https://example.test/api"), "annotation: {m}");
    assert!(m.contains("org.opencontainers.image.vendor"), "label: {m}");
    // The config, pretty-printed (one key per line, indented).
    assert!(
        m.contains("<pre id=\"config\">{\n  &quot;architecture&quot;: &quot;amd64&quot;"),
        "{m}"
    );
    assert!(m.contains("<a href=\"/ui/r/team/api\">team/api</a>"));
}

#[tokio::test]
async fn hostile_labels_and_annotations_are_escaped() {
    let (s, _dir) = server().await;
    let c = Client::new(&s.url);
    let evil = "<script>alert('x')</script>";
    let d = push_labelled(
        &c,
        "evil/app",
        "latest",
        json!({ "x\"><img src=x onerror=alert(1)>": evil }),
        json!({ "note": format!("{evil}&amp;") }),
        &[b"evil layer"],
    )
    .await;
    wait_indexed(&s, "evil/app", 1).await;
    let paths = [
        format!("/ui/r/evil/app/m/{d}"),
        "/?q=script".to_string(),
        "/?q=%3Cscript%3E".to_string(),
        "/ui/r/%3Cscript%3E".to_string(),
        "/?q=repo%3A".to_string(),
    ];
    for p in &paths {
        let (_, _, body) = page(&c, p).await;
        assert!(
            !body.contains("<script"),
            "{p} has a raw script tag: {body}"
        );
        assert!(!body.contains("<img"), "{p} has a raw img tag: {body}");
    }
    let (_, _, m) = page(&c, &paths[0]).await;
    assert!(
        m.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
        "{m}"
    );
    assert!(m.contains("&lt;/script&gt;&amp;amp;"), "{m}");
    assert!(
        m.contains("x&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{m}"
    );
    let (_, _, r) = page(&c, &paths[1]).await;
    assert!(r.contains("1 result<"), "{r}");
    let (_, _, r) = page(&c, &paths[2]).await;
    assert!(r.contains("Search: &lt;script&gt;"), "{r}");
    assert!(r.contains("value=\"&lt;script&gt;\""), "{r}");
}

#[tokio::test]
async fn unknown_things_are_404_pages_that_say_what() {
    let (s, _dir) = server().await;
    let c = Client::new(&s.url);
    let d = c.push_image("here/app", "v1", b"here").await;
    wait_indexed(&s, "here/app", 1).await;

    let (st, ct, b) = page(&c, "/ui/r/missing/repo").await;
    assert_eq!((st, ct.as_str()), (404, "text/html; charset=utf-8"));
    assert!(b.contains("Repository missing/repo was not found."), "{b}");

    let other = format!("sha256:{}", "0".repeat(64));
    let (st, _, b) = page(&c, &format!("/ui/r/here/app/m/{other}")).await;
    assert_eq!(st, 404);
    assert!(
        b.contains(&format!(
            "Manifest {other} was not found in repository here/app."
        )),
        "{b}"
    );
    // A manifest of one repository is not found through another.
    let (st, _, _) = page(&c, &format!("/ui/r/missing/m/{d}")).await;
    assert_eq!(st, 404);
    let (st, _, b) = page(&c, "/ui/r/here/app/m/sha256:nothex").await;
    assert_eq!(st, 404);
    assert!(b.contains("not a valid digest"), "{b}");
    let (st, _, b) = page(&c, "/ui/nowhere").await;
    assert_eq!(st, 404);
    assert!(b.contains("There is no page /ui/nowhere."), "{b}");
    let (st, _, _) = page(&c, "/?n=abc").await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn the_pages_do_not_swallow_the_api_metrics_or_token() {
    let (s, _dir) = server().await;
    let c = Client::new(&s.url);
    let r = c.get("/v2/").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("docker-distribution-api-version").is_some());
    let r = c.get("/v2/_catalog").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = c.get("/v2/_berth/search").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    for p in ["/metrics", "/token"] {
        let (_, ct, _) = page(&c, p).await;
        assert!(!ct.starts_with("text/html"), "{p} was served as a page");
    }
}

/// Debian's chromium, which `scripts/registry-deps.sh` installs.
fn chromium() -> PathBuf {
    let p = PathBuf::from("/usr/bin/chromium");
    assert!(
        p.exists(),
        "/usr/bin/chromium is missing: run scripts/registry-deps.sh (it installs Debian's chromium)"
    );
    p
}

/// The DOM of a page after Chromium rendered it.
fn dump_dom(browser: &PathBuf, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("90")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium --dump-dom {url} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs chromium")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_pages() {
    let browser = chromium();
    let (s, _dir) = server().await;
    let c = Client::new(&s.url);
    let layer = vec![5u8; 5 << 20];
    let d = push_labelled(
        &c,
        "browser/site",
        "1.2.3",
        json!({"org.opencontainers.image.title": "Site"}),
        json!({}),
        &[&layer, b"second layer"],
    )
    .await;
    wait_indexed(&s, "browser/site", 1).await;

    let url = s.url.clone();
    let md = d.clone();
    let doms = tokio::task::spawn_blocking(move || {
        [
            dump_dom(&browser, &format!("{url}/")),
            dump_dom(&browser, &format!("{url}/?q=site+tag%3A1.2.3")),
            dump_dom(&browser, &format!("{url}/ui/r/browser/site")),
            dump_dom(&browser, &format!("{url}/ui/r/browser/site/m/{md}")),
        ]
    })
    .await
    .unwrap();
    let [home, results, repo, manifest] = &doms;

    assert!(
        home.contains("<title>Repositories · berth registry</title>"),
        "{home}"
    );
    assert!(home.contains(">browser/site</a>"), "{home}");
    assert!(home.contains("5.0 MiB"), "{home}");
    assert!(results.contains("1 result"), "{results}");
    assert!(results.contains(">1.2.3</td>"), "{results}");
    assert!(results.contains("5.0 MiB"), "{results}");
    assert!(repo.contains("<h1>browser/site</h1>"), "{repo}");
    assert!(repo.contains("<td>1.2.3</td>"), "{repo}");
    assert!(repo.contains(&d[..19]), "{repo}");
    assert!(manifest.contains("Layers (2)"), "{manifest}");
    assert!(manifest.contains(&digest(&layer)), "{manifest}");
    assert!(manifest.contains("5.0 MiB"), "{manifest}");
    assert!(
        manifest.contains("org.opencontainers.image.title"),
        "{manifest}"
    );
}
