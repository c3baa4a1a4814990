//! The `berth registry` command line: unusable settings end with a message naming the problem and
//! exit code 125 (never a server that half starts), `serve` logs JSON lines, and `berth registry gc`
//! removes what nothing references while a server keeps serving the rest.

use std::time::{Duration, Instant};

use crate::registry_util::{Api, Registry, Store, berth, digest, random_bytes, run_limited};

/// Runs `berth ARGS` (it must end within 20 s) and checks exit code 125 and that stderr holds
/// every one of `needles` (case-insensitive).
fn fails_with(args: &[&str], needles: &[&str]) {
    let mut cmd = berth();
    cmd.args(args);
    let out = run_limited(cmd, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("berth {}: {e:#}", args.join(" ")));
    assert_eq!(
        out.code,
        Some(125),
        "berth {}: exit {:?}, stderr:\n{}",
        args.join(" "),
        out.code,
        out.stderr
    );
    let err = out.stderr.to_lowercase();
    for n in needles {
        assert!(
            err.contains(&n.to_lowercase()),
            "berth {}: stderr does not mention {n:?}:\n{}",
            args.join(" "),
            out.stderr
        );
    }
    assert!(
        !out.stderr.lines().any(|l| l.starts_with("listening on ")),
        "berth {}: started serving before failing:\n{}",
        args.join(" "),
        out.stderr
    );
}

#[test]
fn serve_with_s3_storage_lacking_a_bucket_exits_125() {
    for loc in ["s3://", "s3:///prefix"] {
        fails_with(
            &[
                "registry",
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--storage",
                loc,
            ],
            &[loc, "bucket"],
        );
    }
}

#[test]
fn serve_without_storage_exits_125() {
    fails_with(
        &["registry", "serve", "--addr", "127.0.0.1:0"],
        &["storage"],
    );
    fails_with(&["registry", "gc"], &["storage"]);
}

#[test]
fn serve_on_unusable_directory_exits_125() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let storage = file.join("data");
    let storage = storage.to_str().unwrap();
    fails_with(
        &[
            "registry",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--storage",
            storage,
        ],
        &[file.to_str().unwrap()],
    );
}

#[test]
fn serve_with_bad_config_file_exits_125() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let missing = dir.path().join("missing.toml");
    fails_with(
        &[
            "registry",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--storage",
            data,
            "--config",
            missing.to_str().unwrap(),
        ],
        &[missing.to_str().unwrap()],
    );
    let cases = [
        ("syntax.toml", "[limits\nmax_manifest_bytes = 1", vec![]),
        (
            "type.toml",
            "[limits]\nmax_manifest_bytes = \"lots\"\n",
            vec!["max_manifest_bytes"],
        ),
        (
            "unknown.toml",
            "[limits]\nmax_manifest_bites = 5\n",
            vec!["max_manifest_bites"],
        ),
        ("format.toml", "log_format = \"xml\"\n", vec!["log_format"]),
    ];
    for (name, text, words) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        let mut needles = words;
        if name != "format.toml" {
            needles.push(p);
        }
        fails_with(
            &[
                "registry",
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--storage",
                data,
                "--config",
                p,
            ],
            &needles,
        );
    }
}

#[test]
fn serve_on_address_in_use_exits_125() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        &[
            "registry",
            "serve",
            "--addr",
            &addr,
            "--storage",
            dir.path().to_str().unwrap(),
        ],
        &[&addr, "in use"],
    );
}

#[test]
fn serve_logs_json_lines() {
    let store = Store::local();
    let reg = Registry::start(&store, &[]);
    let api = Api::new();
    let r = api.send(api.req("GET", &reg.base, "/v2/")).unwrap();
    assert_eq!(r.status, 200, "GET /v2/: {}", r.show());
    let r = api
        .send(api.req("GET", &reg.base, "/v2/e2e/nothing/manifests/latest"))
        .unwrap();
    assert_eq!(r.status, 404, "GET a missing manifest: {}", r.show());
    let start = Instant::now();
    while !reg.log().contains("/v2/e2e/nothing/manifests/latest") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no access log line for the request; stderr:\n{}",
            reg.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = reg.log();
    for line in log.lines().filter(|l| !l.starts_with("listening on ")) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(v.is_object(), "log line is not a JSON object: {line}");
    }
}

#[test]
fn gc_removes_unreferenced_blob_and_keeps_referenced_ones() {
    let store = Store::local();
    let dir = store.dir().unwrap().to_str().unwrap().to_string();
    let reg = Registry::start(&store, &[]);
    let api = Api::new();
    let img = api
        .push_image(
            &reg.base,
            "e2e/gc",
            "v1",
            &[random_bytes(2000), random_bytes(3000)],
        )
        .unwrap();
    let orphan = random_bytes(5000);
    let od = api.push_blob(&reg.base, "e2e/gc", &orphan).unwrap();
    let orphan_file = store
        .dir()
        .unwrap()
        .join("blobs/sha256")
        .join(od.strip_prefix("sha256:").unwrap());
    assert!(
        orphan_file.exists(),
        "the orphan blob is not at {}",
        orphan_file.display()
    );
    // mtimes have one-second granularity on some filesystems: let "older than 0 s" be true.
    std::thread::sleep(Duration::from_millis(1100));

    let gc = |extra: &[&str]| {
        let mut cmd = berth();
        cmd.args(["registry", "gc", "--storage", &dir]).args(extra);
        let out = run_limited(cmd, Duration::from_secs(60)).expect("berth registry gc");
        assert_eq!(
            out.code,
            Some(0),
            "berth registry gc {extra:?}: exit {:?}\n{}",
            out.code,
            out.stderr
        );
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("gc report is not JSON ({e}):\n{}", out.stdout))
    };

    // The default grace period (an hour) keeps a blob pushed a second ago.
    let report = gc(&[]);
    assert_eq!(
        report["blobs_deleted"], 0,
        "gc within the grace period: {report}"
    );
    assert!(
        orphan_file.exists(),
        "gc within the grace period deleted the orphan"
    );
    let before = store.snapshot(true);
    // A dry run deletes nothing but says what it would.
    let report = gc(&["--grace", "0", "--dry-run"]);
    assert_eq!(report["blobs_deleted"], 1, "dry run: {report}");
    let diff = crate::registry_util::snapshot_diff(&before, &store.snapshot(true));
    assert!(diff.is_empty(), "gc --dry-run changed the storage:\n{diff}");

    let report = gc(&["--grace", "0"]);
    assert_eq!(report["blobs_deleted"], 1, "gc --grace 0: {report}");
    assert!(!orphan_file.exists(), "gc --grace 0 kept the orphan blob");
    assert!(
        !api.blob_exists(&reg.base, "e2e/gc", &od).unwrap(),
        "the collected blob is still served"
    );
    api.pull_and_verify(&reg.base, &img)
        .unwrap_or_else(|e| panic!("after gc the image does not pull: {e:#}"));
    let hex = img.digest.strip_prefix("sha256:").unwrap();
    assert!(
        store.dir().unwrap().join("blobs/sha256").join(hex).exists(),
        "gc deleted the manifest's bytes"
    );
    assert_eq!(
        store.check_blobs().unwrap(),
        4,
        "config, 2 layers and the manifest remain"
    );
    // Collected storage is a normal one: the orphan can be pushed again.
    assert_eq!(
        api.push_blob(&reg.base, "e2e/gc", &orphan).unwrap(),
        digest(&orphan)
    );
    assert!(api.blob_exists(&reg.base, "e2e/gc", &od).unwrap());
}
