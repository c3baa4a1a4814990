//! Hostile input against `berth registry serve`: every request gets the spec's error and changes
//! nothing in the storage (a snapshot of every object, content included, is taken before and
//! after; only `events/` — and `uploads/` where the request legitimately opens a session — are
//! left out). Requests whose paths `reqwest` would normalise go over a raw socket.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use crate::registry_util::{
    Api, Image, OCI_INDEX, OCI_MANIFEST, Registry, S3, Store, chunked, digest, image_json,
    random_bytes, raw, raw_truncated, snapshot_diff, with_query,
};

const REPO: &str = "e2e/good";
/// The manifest size limit set through `--config`.
const MAX_MANIFEST: usize = 1024;

/// A registry over a fresh store with a small manifest limit, holding one good image.
struct Fixture {
    reg: Registry,
    store: Store,
    api: Api,
    img: Image,
    /// Blob bytes a refused request left under `blobs/` (invisible, but a change all the same),
    /// reported when the fixture is dropped so the checks after them still run.
    orphans: RefCell<Vec<String>>,
    _config: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let orphans = self.orphans.borrow();
        if !std::thread::panicking() && !orphans.is_empty() {
            panic!(
                "refused requests left blob bytes in the storage:\n{}",
                orphans.join("\n")
            );
        }
    }
}

impl Fixture {
    /// On a fresh directory.
    fn new() -> Fixture {
        Fixture::on(Store::local(), "")
    }

    /// On a prefix of a fresh moto bucket.
    fn s3() -> Fixture {
        Fixture::on(Store::s3(&Arc::new(S3::start()), "hostile"), "")
    }

    /// On a store, with `[limits]` lines added to the manifest limit.
    fn on(store: Store, limits: &str) -> Fixture {
        let config = tempfile::tempdir().expect("temp dir");
        let file = config.path().join("registry.toml");
        let mut f = std::fs::File::create(&file).expect("create config");
        writeln!(f, "[limits]\nmax_manifest_bytes = {MAX_MANIFEST}\n{limits}")
            .expect("write config");
        drop(f);
        let reg = Registry::start(&store, &["--config", file.to_str().unwrap()]);
        let api = Api::new();
        let img = api
            .push_image(
                &reg.base,
                REPO,
                "v1",
                &[random_bytes(1500), random_bytes(700)],
            )
            .expect("push the good image");
        Fixture {
            reg,
            store,
            api,
            img,
            orphans: RefCell::new(Vec::new()),
            _config: config,
        }
    }

    fn snapshot(&self, with_uploads: bool) -> BTreeMap<String, (usize, String)> {
        self.store.snapshot(with_uploads)
    }

    /// Asserts that nothing changed since `before` (and that the good image still pulls).
    fn unchanged(
        &self,
        before: &BTreeMap<String, (usize, String)>,
        with_uploads: bool,
        what: &str,
    ) {
        let after = self.snapshot(with_uploads);
        let diff = snapshot_diff(before, &after);
        let (blobs, rest): (Vec<&str>, Vec<&str>) = diff
            .lines()
            .partition(|l| l.trim_start().starts_with("added   blobs/sha256/"));
        assert!(
            rest.is_empty(),
            "{what} changed the storage:\n{}",
            diff.trim_end()
        );
        self.orphans
            .borrow_mut()
            .extend(blobs.iter().map(|l| format!("{what}:{l}")));
        self.api
            .pull_and_verify(&self.reg.base, &self.img)
            .unwrap_or_else(|e| panic!("after {what}, the good image no longer pulls: {e:#}"));
    }

    /// An upload session on this registry, with `data` PATCHed into it (if not empty).
    fn session(&self, data: &[u8]) -> String {
        let path = self
            .api
            .start_upload(&self.reg.base, REPO)
            .expect("POST upload");
        if data.is_empty() {
            path
        } else {
            self.api
                .patch(&self.reg.base, &path, 0, data)
                .expect("PATCH")
        }
    }

    /// Whether `tag` is listed for `repo` (a missing repository lists nothing).
    fn tag_listed(&self, repo: &str, tag: &str) -> bool {
        let r = self
            .api
            .send(
                self.api
                    .req("GET", &self.reg.base, &format!("/v2/{repo}/tags/list")),
            )
            .expect("tags list");
        if r.status == 404 {
            return false;
        }
        assert_eq!(r.status, 200, "tags list of {repo}: {}", r.show());
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("tags JSON");
        v["tags"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t.as_str() == Some(tag)))
    }
}

fn assert_error(
    status: u16,
    codes: &[String],
    body: &str,
    want_status: u16,
    want_code: &str,
    what: &str,
) {
    assert_eq!(status, want_status, "{what}: {body}");
    assert!(
        codes.iter().any(|c| c == want_code),
        "{what}: expected error code {want_code}, got {codes:?} in {body}"
    );
}

#[test]
fn digest_mismatch_is_digest_invalid_and_changes_nothing_on_disk() {
    digest_mismatch(Fixture::new());
}

#[test]
#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
fn digest_mismatch_is_digest_invalid_and_changes_nothing_on_s3() {
    digest_mismatch(Fixture::s3());
}

fn digest_mismatch(fx: Fixture) {
    let data = random_bytes(4096);
    let wrong = digest(b"something else");
    let api = &fx.api;
    let base = &fx.reg.base;

    // Monolithic: POST, PUT ?digest=<wrong> with the body.
    let path = fx.session(&[]);
    let before = fx.snapshot(false);
    let r = api
        .send(
            api.req("PUT", base, &with_query(&path, &format!("digest={wrong}")))
                .header("content-type", "application/octet-stream")
                .body(data.clone()),
        )
        .unwrap();
    assert_error(
        r.status,
        &r.codes(),
        &r.show(),
        400,
        "DIGEST_INVALID",
        "monolithic PUT with a wrong digest",
    );
    fx.unchanged(&before, false, "monolithic PUT with a wrong digest");

    // Chunked: PATCH the data, then PUT ?digest=<wrong> with no body.
    let path = fx.session(&data);
    let before = fx.snapshot(false);
    let r = api
        .send(api.req("PUT", base, &with_query(&path, &format!("digest={wrong}"))))
        .unwrap();
    assert_error(
        r.status,
        &r.codes(),
        &r.show(),
        400,
        "DIGEST_INVALID",
        "chunked PUT with a wrong digest",
    );
    fx.unchanged(&before, false, "chunked PUT with a wrong digest");

    for d in [digest(&data), wrong] {
        assert!(
            !api.blob_exists(base, REPO, &d).unwrap(),
            "{d} is served after a digest mismatch"
        );
    }
}

#[test]
fn manifest_naming_missing_blobs_is_manifest_blob_unknown_and_changes_nothing_on_disk() {
    missing_blobs(Fixture::new());
}

#[test]
#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
fn manifest_naming_missing_blobs_is_manifest_blob_unknown_and_changes_nothing_on_s3() {
    missing_blobs(Fixture::s3());
}

fn missing_blobs(fx: Fixture) {
    let api = &fx.api;
    let base = &fx.reg.base;
    // The good image's manifest with one more layer that was never pushed.
    let mut v: serde_json::Value = serde_json::from_slice(&fx.img.manifest).unwrap();
    let missing = random_bytes(512);
    v["layers"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": digest(&missing),
        "size": missing.len(),
    }));
    let with_missing_layer = serde_json::to_vec(&v).unwrap();
    // Every blob named exists in the storage, but only linked into the good repository.
    let foreign_blobs = fx.img.manifest.clone();
    let cases = [
        (REPO, "broken", &with_missing_layer, "a missing layer"),
        (
            "e2e/new",
            "v1",
            &with_missing_layer,
            "a missing layer, in a new repository",
        ),
        (
            "e2e/new",
            "v2",
            &foreign_blobs,
            "blobs of another repository only",
        ),
    ];
    for (repo, tag, manifest, what) in cases {
        let what = format!("manifest {repo}:{tag} naming {what}");
        let before = fx.snapshot(true);
        let r = api
            .put_manifest(base, repo, tag, OCI_MANIFEST, manifest)
            .unwrap();
        assert_error(
            r.status,
            &r.codes(),
            &r.show(),
            400,
            "MANIFEST_BLOB_UNKNOWN",
            &what,
        );
        fx.unchanged(&before, true, &what);
        assert!(
            !fx.tag_listed(repo, tag),
            "{repo}:{tag} is tagged after a refused manifest"
        );
        let r = api
            .send(
                api.req("GET", base, &format!("/v2/{repo}/manifests/{tag}"))
                    .header("accept", OCI_MANIFEST),
            )
            .unwrap();
        assert_eq!(
            r.status,
            404,
            "GET refused manifest {repo}:{tag}: {}",
            r.show()
        );
        if repo != REPO {
            let r = api
                .send(
                    api.req(
                        "GET",
                        base,
                        &format!("/v2/{repo}/manifests/{}", digest(manifest)),
                    )
                    .header("accept", OCI_MANIFEST),
                )
                .unwrap();
            assert_eq!(
                r.status,
                404,
                "GET refused manifest {repo}@digest: {}",
                r.show()
            );
        }
    }
    let catalog = api.list_all(base, "/v2/_catalog", "repositories").unwrap();
    assert!(
        !catalog.iter().any(|r| r == "e2e/new"),
        "refused repository in catalog: {catalog:?}"
    );

    // An index naming a manifest that does not exist.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": fx.img.digest, "size": fx.img.manifest.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": digest(b"no such manifest"), "size": 16,
             "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    }))
    .unwrap();
    let before = fx.snapshot(true);
    let r = api
        .put_manifest(base, REPO, "idx", OCI_INDEX, &index)
        .unwrap();
    assert_error(
        r.status,
        &r.codes(),
        &r.show(),
        400,
        "MANIFEST_BLOB_UNKNOWN",
        "index naming a missing manifest",
    );
    fx.unchanged(&before, true, "index naming a missing manifest");
    assert!(!fx.tag_listed(REPO, "idx"), "refused index is tagged");
}

/// A request sent raw: method, path, extra headers, body.
type RawCase = (&'static str, String, Vec<(&'static str, String)>, Vec<u8>);

/// Names that climb out of the repository tree or break the grammar: 400 NAME_INVALID or 404,
/// whatever the method.
#[test]
fn traversal_and_uppercase_names_are_refused_and_change_nothing() {
    let fx = Fixture::new();
    let addr = &fx.reg.addr;
    let (_, manifest) = image_json(
        REPO,
        "v1",
        &[fx.img.blobs[0].1.clone(), fx.img.blobs[1].1.clone()],
    );
    // The good image's own manifest: valid and complete, so only the name can refuse it.
    assert_eq!(manifest, fx.img.manifest);
    let names = [
        "../e2e/good",
        "e2e/../good",
        "e2e/good/..",
        "..",
        "%2e%2e/e2e/good",
        "e2e/%2e%2e/good",
        "e2e/%2E%2E/%2e%2e/x",
        "e2e%2f..%2fgood",
        "./e2e/good",
        "E2E/Good",
        "e2e/Good",
        "e2e//good",
        "e2e/good/",
        "-e2e/good",
        "e2e/_blobs",
    ];
    let before = fx.snapshot(true);
    let d = &fx.img.blobs[0].0;
    for name in names {
        let requests: Vec<RawCase> = vec![
            (
                "GET",
                format!("/v2/{name}/manifests/v1"),
                vec![("Accept", OCI_MANIFEST.into())],
                vec![],
            ),
            ("GET", format!("/v2/{name}/blobs/{d}"), vec![], vec![]),
            ("GET", format!("/v2/{name}/tags/list"), vec![], vec![]),
            (
                "POST",
                format!("/v2/{name}/blobs/uploads/"),
                vec![("Content-Length", "0".into())],
                vec![],
            ),
            (
                "POST",
                format!("/v2/{name}/blobs/uploads/?digest={}", digest(b"x")),
                vec![
                    ("Content-Length", "1".into()),
                    ("Content-Type", "application/octet-stream".into()),
                ],
                b"x".to_vec(),
            ),
            (
                "PUT",
                format!("/v2/{name}/manifests/evil"),
                vec![
                    ("Content-Type", OCI_MANIFEST.into()),
                    ("Content-Length", manifest.len().to_string()),
                ],
                manifest.clone(),
            ),
            (
                "DELETE",
                format!("/v2/{name}/manifests/{}", fx.img.digest),
                vec![],
                vec![],
            ),
        ];
        for (method, path, headers, body) in requests {
            let r = raw(addr, method, &path, &headers, &body).unwrap();
            let ok = (r.status == 400 && r.codes().iter().any(|c| c == "NAME_INVALID"))
                || r.status == 404;
            // "e2e/good/" and similar may route to another endpoint; what matters is refusal.
            assert!(
                ok,
                "{method} {path}: expected 400 NAME_INVALID or 404, got {}",
                r.show()
            );
        }
    }
    fx.unchanged(&before, true, "requests with hostile names");
}

#[test]
fn oversized_manifest_is_413_and_changes_nothing_on_disk() {
    oversized_manifest(Fixture::new());
}

#[test]
#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
fn oversized_manifest_is_413_and_changes_nothing_on_s3() {
    oversized_manifest(Fixture::s3());
}

fn oversized_manifest(fx: Fixture) {
    let api = &fx.api;
    let base = &fx.reg.base;
    // A valid manifest of existing blobs, padded past the limit with an annotation.
    let mut v: serde_json::Value = serde_json::from_slice(&fx.img.manifest).unwrap();
    v["annotations"] = serde_json::json!({"pad": "x".repeat(MAX_MANIFEST)});
    let big = serde_json::to_vec(&v).unwrap();
    assert!(big.len() > MAX_MANIFEST);
    let before = fx.snapshot(true);
    let r = api
        .put_manifest(base, REPO, "big", OCI_MANIFEST, &big)
        .unwrap();
    assert_eq!(
        r.status,
        413,
        "manifest of {} bytes over a {MAX_MANIFEST} limit: {}",
        big.len(),
        r.show()
    );
    // 3 MiB, declared up front.
    let huge = random_bytes(3 << 20);
    let r = raw(
        &fx.reg.addr,
        "PUT",
        &format!("/v2/{REPO}/manifests/huge"),
        &[
            ("Content-Type", OCI_MANIFEST.into()),
            ("Content-Length", huge.len().to_string()),
        ],
        &huge,
    )
    .unwrap();
    assert_eq!(r.status, 413, "3 MiB manifest: {}", r.show());
    // 3 MiB, chunked (no Content-Length to refuse on).
    let r = raw(
        &fx.reg.addr,
        "PUT",
        &format!("/v2/{REPO}/manifests/huge2"),
        &[
            ("Content-Type", OCI_MANIFEST.into()),
            ("Transfer-Encoding", "chunked".into()),
        ],
        &chunked(&huge),
    )
    .unwrap();
    assert_eq!(r.status, 413, "3 MiB manifest sent chunked: {}", r.show());
    fx.unchanged(&before, true, "oversized manifests");
    for t in ["big", "huge", "huge2"] {
        assert!(!fx.tag_listed(REPO, t), "oversized manifest tagged {t}");
    }
}

#[test]
fn oversized_blob_is_413_and_changes_nothing() {
    const LIMIT: usize = 64 << 10;
    let fx = Fixture::on(Store::local(), &format!("max_blob_bytes = {LIMIT}"));
    let api = &fx.api;
    let base = &fx.reg.base;
    let big = random_bytes(LIMIT + 1);
    let d = digest(&big);
    let octet = ("Content-Type", "application/octet-stream".to_string());
    let before = fx.snapshot(false);

    // Monolithic, declared.
    let path = fx.session(&[]);
    let r = api
        .send(
            api.req("PUT", base, &with_query(&path, &format!("digest={d}")))
                .header("content-type", "application/octet-stream")
                .body(big.clone()),
        )
        .unwrap();
    assert_eq!(
        r.status,
        413,
        "monolithic PUT of limit+1 bytes: {}",
        r.show()
    );
    // Monolithic, chunked transfer coding (nothing declared up front).
    let path = fx.session(&[]);
    let r = raw(
        &fx.reg.addr,
        "PUT",
        &with_query(&path, &format!("digest={d}")),
        &[octet.clone(), ("Transfer-Encoding", "chunked".into())],
        &chunked(&big),
    )
    .unwrap();
    assert_eq!(
        r.status,
        413,
        "chunked-coded PUT of limit+1 bytes: {}",
        r.show()
    );
    // One PATCH over the limit.
    let path = fx.session(&[]);
    let r = api
        .send(
            api.req("PATCH", base, &path)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("0-{}", big.len() - 1))
                .body(big.clone()),
        )
        .unwrap();
    assert_eq!(r.status, 413, "PATCH of limit+1 bytes: {}", r.show());
    // Two PATCHes, each under the limit, together over it.
    let half = LIMIT / 2 + 1;
    let path = fx.session(&big[..half]);
    let r = api
        .send(
            api.req("PATCH", base, &path)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{half}-{}", big.len() - 1))
                .body(big[half..].to_vec()),
        )
        .unwrap();
    assert_eq!(
        r.status,
        413,
        "second PATCH taking the session past the limit: {}",
        r.show()
    );
    fx.unchanged(&before, false, "blobs over max_blob_bytes");
    assert!(
        !api.blob_exists(base, REPO, &d).unwrap(),
        "an oversized blob is served"
    );

    // At the limit, all is well.
    let fits = random_bytes(LIMIT);
    api.push_blob(base, REPO, &fits)
        .expect("a blob of exactly the limit");
}

#[test]
fn unsatisfiable_range_on_blob_get_is_416() {
    let fx = Fixture::new();
    let api = &fx.api;
    let base = &fx.reg.base;
    let (d, data) = &fx.img.blobs[0];
    let path = format!("/v2/{REPO}/blobs/{d}");
    let before = fx.snapshot(true);
    // A satisfiable range first, so a 416 below cannot come from ranges being unsupported.
    let r = api
        .send(api.req("GET", base, &path).header("range", "bytes=10-19"))
        .unwrap();
    assert_eq!(r.status, 206, "GET bytes=10-19: {}", r.show());
    assert_eq!(r.body, data[10..20], "GET bytes=10-19: wrong bytes");
    let n = data.len();
    for range in [
        format!("bytes={n}-"),
        format!("bytes={}-{}", n + 10, n + 20),
        format!("bytes={}-", n * 4),
    ] {
        let r = api
            .send(api.req("GET", base, &path).header("range", &range))
            .unwrap();
        assert_eq!(
            r.status,
            416,
            "GET blob with Range {range} ({n} bytes): {}",
            r.show()
        );
    }
    // Syntactically broken ranges: either refused with 416 or ignored (RFC 9110) with the whole blob.
    for range in ["bytes=20-10", "bytes=abc", "pages=0-1", "bytes=--5"] {
        let r = api
            .send(api.req("GET", base, &path).header("range", range))
            .unwrap();
        let ok = r.status == 416 || (r.status == 200 && r.body == *data);
        assert!(ok, "GET blob with Range {range}: {}", r.show());
    }
    fx.unchanged(&before, true, "range requests");
}

#[test]
fn out_of_order_content_range_on_patch_is_416_and_keeps_the_session() {
    let fx = Fixture::new();
    let api = &fx.api;
    let base = &fx.reg.base;
    let data = random_bytes(4096);
    let path = fx.session(&data[..1024]);
    let before = fx.snapshot(true);
    let cases: [(String, &[u8]); 4] = [
        ("2048-3071".into(), &data[2048..3072]), // a gap
        ("0-1023".into(), &data[..1024]),        // a repeat
        ("512-1535".into(), &data[512..1536]),   // an overlap
        ("1023-2046".into(), &data[1023..2047]), // off by one
    ];
    for (range, body) in cases {
        let r = api
            .send(
                api.req("PATCH", base, &path)
                    .header("content-type", "application/octet-stream")
                    .header("content-range", &range)
                    .body(body.to_vec()),
            )
            .unwrap();
        assert_eq!(
            r.status,
            416,
            "PATCH Content-Range {range} after 1024 bytes: {}",
            r.show()
        );
    }
    for range in ["garbage", "1024", "bytes 1024-", "-5"] {
        let r = api
            .send(
                api.req("PATCH", base, &path)
                    .header("content-type", "application/octet-stream")
                    .header("content-range", range)
                    .body(data[1024..2048].to_vec()),
            )
            .unwrap();
        assert!(
            r.status == 416 || r.status == 400,
            "PATCH with malformed Content-Range {range:?}: {}",
            r.show()
        );
    }
    fx.unchanged(&before, true, "out-of-order PATCHes");
    assert_eq!(
        api.upload_offset(base, &path).unwrap(),
        1024,
        "session offset moved"
    );
    // The session is still good: finish it in order.
    let path = api.patch(base, &path, 1024, &data[1024..]).unwrap();
    api.finish(base, &path, &digest(&data), &[]).unwrap();
    assert!(api.blob_exists(base, REPO, &digest(&data)).unwrap());
}

#[test]
fn invalid_digest_strings_are_400() {
    let fx = Fixture::new();
    let api = &fx.api;
    let base = &fx.reg.base;
    let data = b"some bytes".to_vec();
    let hex = hex::encode(sha2::Digest::finalize(
        <sha2::Sha256 as sha2::Digest>::new_with_prefix(&data),
    ));
    let bad = [
        "sha256:xyz".to_string(),
        format!("sha256:{}", &hex[..63]),
        format!("sha256:{hex}0"),
        format!("sha256:{}", hex.to_uppercase()),
        format!("md5:{}", &hex[..32]),
        hex.clone(),
        "sha256:".into(),
        format!("sha256:{}", "../".repeat(21) + "x"),
    ];
    let before = fx.snapshot(false);
    for d in &bad {
        // A fresh session each time: a server may end a session on a refused PUT.
        let path = fx.session(&[]);
        let q = format!("digest={}", urlencode(d));
        let r = api
            .send(
                api.req("PUT", base, &with_query(&path, &q))
                    .header("content-type", "application/octet-stream")
                    .body(data.clone()),
            )
            .unwrap();
        assert_error(
            r.status,
            &r.codes(),
            &r.show(),
            400,
            "DIGEST_INVALID",
            &format!("PUT ?digest={d}"),
        );
        let r = raw(
            &fx.reg.addr,
            "GET",
            &format!("/v2/{REPO}/blobs/{}", urlencode(d)),
            &[],
            &[],
        )
        .unwrap();
        assert!(
            r.status == 400 || r.status == 404,
            "GET blob {d}: expected 400 DIGEST_INVALID (or 404), got {}",
            r.show()
        );
        if r.status == 400 {
            assert!(
                r.codes().iter().any(|c| c == "DIGEST_INVALID"),
                "GET blob {d}: {}",
                r.show()
            );
        }
    }
    fx.unchanged(&before, false, "PUTs with invalid digests");
}

#[test]
fn unknown_upload_id_is_404_blob_upload_unknown() {
    let fx = Fixture::new();
    let api = &fx.api;
    let base = &fx.reg.base;
    let before = fx.snapshot(true);
    let id = "0123456789abcdef0123456789abcdef";
    let path = format!("/v2/{REPO}/blobs/uploads/{id}");
    for (method, p) in [
        ("GET", path.clone()),
        ("PATCH", path.clone()),
        ("PUT", format!("{path}?digest={}", digest(b"abc"))),
        ("DELETE", path.clone()),
    ] {
        let mut req = api.req(method, base, &p);
        if method != "GET" && method != "DELETE" {
            req = req
                .header("content-type", "application/octet-stream")
                .body(b"abc".to_vec());
        }
        let r = api.send(req).unwrap();
        assert_error(
            r.status,
            &r.codes(),
            &r.show(),
            404,
            "BLOB_UPLOAD_UNKNOWN",
            &format!("{method} {p}"),
        );
    }
    fx.unchanged(&before, true, "requests on an unknown upload id");
    // A real session used under another repository's name is unknown there.
    let real = fx.session(b"abc");
    let other = real.replacen(REPO, "e2e/other", 1);
    assert_ne!(real, other);
    let before2 = fx.snapshot(true);
    let r = api.send(api.req("GET", base, &other)).unwrap();
    assert_error(
        r.status,
        &r.codes(),
        &r.show(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "GET a session under another repository",
    );
    let r = api
        .send(api.req(
            "PUT",
            base,
            &with_query(&other, &format!("digest={}", digest(b"abc"))),
        ))
        .unwrap();
    assert_error(
        r.status,
        &r.codes(),
        &r.show(),
        404,
        "BLOB_UPLOAD_UNKNOWN",
        "PUT a session under another repository",
    );
    fx.unchanged(
        &before2,
        true,
        "requests on a session under another repository",
    );
    // Ids that try to leave the uploads tree.
    for id in ["..", "..%2f..%2fblobs", "%2e%2e", "x%2f..%2f..%2finfo"] {
        let r = raw(
            &fx.reg.addr,
            "GET",
            &format!("/v2/{REPO}/blobs/uploads/{id}"),
            &[],
            &[],
        )
        .unwrap();
        assert!(
            r.status == 404 || r.status == 400,
            "GET upload {id}: expected 404 BLOB_UPLOAD_UNKNOWN (or 400), got {}",
            r.show()
        );
    }
}

#[test]
fn garbage_manifest_is_manifest_invalid_and_changes_nothing() {
    let fx = Fixture::new();
    let api = &fx.api;
    let base = &fx.reg.base;
    let config = &fx.img.blobs.last().unwrap();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"this is not json".to_vec()),
        ("truncated JSON", fx.img.manifest[..fx.img.manifest.len() / 2].to_vec()),
        ("empty object", b"{}".to_vec()),
        ("array", b"[1,2,3]".to_vec()),
        ("no config", br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#.to_vec()),
        (
            "layers not a list",
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1.len()},
                "layers": "nope"})).unwrap(),
        ),
        (
            "bad config digest",
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:nothex", "size": 3},
                "layers": []})).unwrap(),
        ),
        (
            "schemaVersion 1",
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 1, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1.len()},
                "layers": []})).unwrap(),
        ),
        ("empty body", Vec::new()),
        ("binary", random_bytes(300)),
    ];
    let before = fx.snapshot(true);
    for (what, body) in bodies {
        let r = api
            .put_manifest(base, REPO, "junk", OCI_MANIFEST, &body)
            .unwrap();
        assert_error(
            r.status,
            &r.codes(),
            &r.show(),
            400,
            "MANIFEST_INVALID",
            &format!("manifest: {what}"),
        );
    }
    fx.unchanged(&before, true, "garbage manifests");
    assert!(
        !fx.tag_listed(REPO, "junk"),
        "a garbage manifest was tagged"
    );
}

/// A 3 MiB chunk whose Content-Length disagrees with its body or its Content-Range.
#[test]
fn patch_with_wrong_content_length_changes_nothing_on_disk() {
    wrong_content_length(Fixture::new());
}

#[test]
#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
fn patch_with_wrong_content_length_changes_nothing_on_s3() {
    wrong_content_length(Fixture::s3());
}

fn wrong_content_length(fx: Fixture) {
    let api = &fx.api;
    let data = random_bytes(3 << 20);
    let n = data.len();
    let path = fx.session(&[]);
    // First a few bytes, so the session has an unambiguous offset.
    let head = 100;
    let path = api.patch(&fx.reg.base, &path, 0, &data[..head]).unwrap();
    let rest = &data[head..];
    let before = fx.snapshot(true);
    let octet = ("Content-Type", "application/octet-stream".to_string());
    let range = ("Content-Range", format!("{head}-{}", n - 1));

    // The body ends early: Content-Length says 3 MiB, 1 MiB arrives, then EOF.
    let r = raw_truncated(
        &fx.reg.addr,
        "PATCH",
        &path,
        &[
            octet.clone(),
            range.clone(),
            ("Content-Length", rest.len().to_string()),
        ],
        &rest[..1 << 20],
    )
    .unwrap();
    assert!(
        !(200..300).contains(&r.status),
        "truncated PATCH body accepted: {}",
        r.show()
    );
    fx.unchanged(
        &before,
        true,
        "a PATCH whose body ends before its Content-Length",
    );

    // Content-Length (and body) shorter than the Content-Range.
    let r = raw(
        &fx.reg.addr,
        "PATCH",
        &path,
        &[
            octet.clone(),
            range.clone(),
            ("Content-Length", (1 << 20).to_string()),
        ],
        &rest[..1 << 20],
    )
    .unwrap();
    assert!(
        r.status == 416 || r.status == 400,
        "PATCH with Content-Length 1 MiB for Content-Range of 3 MiB: {}",
        r.show()
    );
    fx.unchanged(
        &before,
        true,
        "a PATCH whose Content-Length is shorter than its Content-Range",
    );

    // Content-Range shorter than the Content-Length (and body).
    let r = raw(
        &fx.reg.addr,
        "PATCH",
        &path,
        &[
            octet.clone(),
            ("Content-Range", format!("{head}-{}", head + 1023)),
            ("Content-Length", rest.len().to_string()),
        ],
        rest,
    )
    .unwrap();
    assert!(
        r.status == 416 || r.status == 400,
        "PATCH with Content-Range of 1 KiB for a 3 MiB body: {}",
        r.show()
    );
    fx.unchanged(
        &before,
        true,
        "a PATCH whose Content-Range is shorter than its body",
    );

    // Monolithic PUT whose body ends before its Content-Length: not stored, not served.
    let d = digest(&data);
    let fresh = fx.session(&[]);
    let before_put = fx.snapshot(false);
    let r = raw_truncated(
        &fx.reg.addr,
        "PUT",
        &with_query(&fresh, &format!("digest={d}")),
        &[octet.clone(), ("Content-Length", n.to_string())],
        &data[..2 << 20],
    )
    .unwrap();
    assert!(
        !(200..300).contains(&r.status),
        "truncated PUT body accepted: {}",
        r.show()
    );
    fx.unchanged(
        &before_put,
        false,
        "a PUT whose body ends before its Content-Length",
    );
    assert!(
        !api.blob_exists(&fx.reg.base, REPO, &d).unwrap(),
        "truncated PUT is served"
    );

    // The session is unharmed: the right PATCH and PUT succeed.
    assert_eq!(api.upload_offset(&fx.reg.base, &path).unwrap(), head as u64);
    let path = api.patch(&fx.reg.base, &path, head as u64, rest).unwrap();
    api.finish(&fx.reg.base, &path, &d, &[]).unwrap();
    let r = api
        .send(api.req("GET", &fx.reg.base, &format!("/v2/{REPO}/blobs/{d}")))
        .unwrap();
    assert!(
        r.status == 200 && digest(&r.body) == d,
        "GET the 3 MiB blob: {} ({} bytes)",
        r.status,
        r.body.len()
    );
    fx.store.check_blobs().unwrap();
}

/// Percent-encodes what a query or path segment cannot hold as is.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
