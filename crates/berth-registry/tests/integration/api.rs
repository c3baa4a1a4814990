//! The distribution API end to end over HTTP: every endpoint's happy path and its errors, on local
//! disk, and the main flows again on a real S3-protocol server (moto).

use crate::common::{Client, S3, Server, digest, error_code, header};
use berth_registry::config::{AccessRule, Config, CrossMount};
use berth_registry::paths;
use berth_registry::storage::Storage;
use reqwest::Method;
use serde_json::{Value, json};

use berth_oci::media_type::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

fn hex_of(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap()
}

/// Pushes a config and a layer and returns an OCI manifest body referencing them.
async fn image_manifest(c: &Client, repo: &str, layer: &[u8], extra: Value) -> Vec<u8> {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cd = c.push_blob(repo, config).await;
    let ld = c.push_blob(repo, layer).await;
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    });
    if let (Value::Object(m), Value::Object(e)) = (&mut m, extra) {
        m.extend(e);
    }
    serde_json::to_vec_pretty(&m).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Flows shared by the local-disk and S3 tests.

/// Monolithic and chunked pushes, ranges, a mismatch that publishes nothing.
async fn flow_blobs(c: &Client, storage: &Storage) {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let d = c.push_blob("flow/blobs", &data).await;
    let r = c
        .send(Method::HEAD, &format!("/v2/flow/blobs/blobs/{d}"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), data.len().to_string());
    assert_eq!(header(&r, "docker-content-digest"), d);
    let r = c
        .http
        .get(format!("{}/v2/flow/blobs/blobs/{d}", c.base))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes 100-199/{}", data.len())
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[100..200]);

    // Chunked, in order, finished with an empty PUT.
    let loc = c.start_upload("flow/blobs").await;
    let (a, b) = data.split_at(123_456);
    let r = patch(c, &loc, Some((0, a.len())), a).await;
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), format!("0-{}", a.len() - 1));
    let loc2 = c.absolute(&header(&r, "location"));
    let r = patch(c, &loc2, Some((a.len(), b.len())), b).await;
    assert_eq!(r.status(), 202);
    let r = c
        .http
        .put(format!("{loc2}?digest={d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/flow/blobs/blobs/{d}"));

    // A wrong digest publishes nothing and ends the session.
    let bogus = b"not what the digest says";
    let other = digest(b"something else entirely");
    let loc = c.start_upload("flow/blobs").await;
    let r = c.finish_upload(&loc, &other, Some(bogus.to_vec())).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    assert!(
        storage
            .head(&paths::blob(hex_of(&other)))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        storage
            .head(&paths::blob(hex_of(&digest(bogus))))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(c.send(Method::GET, &loc).await.status(), 404);
    let r = c.get(&format!("/v2/flow/blobs/blobs/{other}")).await;
    assert_eq!(r.status(), 404);
}

/// An upload started on one instance, continued and finished on another.
async fn flow_two_instances(a: &Client, b: &Client) {
    let data = b"0123456789abcdefghijklmnopqrstuvwxyz".repeat(1000);
    let d = digest(&data);
    let loc_a = a.start_upload("flow/two").await;
    let path = loc_a.strip_prefix(&a.base).unwrap().to_string();
    let (x, y) = data.split_at(10_000);
    let r = patch(a, &loc_a, Some((0, x.len())), x).await;
    assert_eq!(r.status(), 202);
    // The other instance knows the session and where it ends.
    let r = b.send(Method::GET, &path).await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "range"), format!("0-{}", x.len() - 1));
    let loc_b = format!("{}{path}", b.base);
    let r = patch(b, &loc_b, Some((x.len(), y.len())), y).await;
    assert_eq!(r.status(), 202);
    let r = a
        .http
        .put(format!("{loc_a}?digest={d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = b.get(&format!("/v2/flow/two/blobs/{d}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
}

/// Manifests by tag and digest, a missing blob refused, deletes, tags, referrers, mount.
async fn flow_manifests(c: &Client, storage: &Storage) {
    let repo = "flow/man";
    let body = image_manifest(c, repo, b"layer-one", json!({})).await;
    let md = digest(&body);
    let r = c.put_manifest(repo, "v1", OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), md);
    assert_eq!(header(&r, "location"), format!("/v2/{repo}/manifests/{md}"));
    for reference in ["v1", md.as_str()] {
        let r = c.get(&format!("/v2/{repo}/manifests/{reference}")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&r, "docker-content-digest"), md);
        assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());
    }

    // A manifest naming a blob the repository lacks: 400, no tag, no link.
    let missing = digest(b"never pushed");
    let bad = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": missing, "size": 12},
        "layers": []
    }))
    .unwrap();
    let r = c.put_manifest(repo, "bad", OCI_MANIFEST, &bad).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        c.get(&format!("/v2/{repo}/manifests/bad")).await.status(),
        404
    );
    assert!(
        storage
            .head(&paths::manifest_link(repo, hex_of(&digest(&bad))))
            .await
            .unwrap()
            .is_none()
    );
    // Not even the manifest's bytes were stored.
    assert!(
        storage
            .head(&paths::blob(hex_of(&digest(&bad))))
            .await
            .unwrap()
            .is_none()
    );

    // Referrers: an artifact whose subject is the image.
    let art = image_manifest(
        c,
        repo,
        b"signature",
        json!({
            "artifactType": "application/vnd.example.sig",
            "subject": {"mediaType": OCI_MANIFEST, "digest": md, "size": body.len()},
            "annotations": {"k": "v"}
        }),
    )
    .await;
    let ad = digest(&art);
    let r = c.put_manifest(repo, &ad, OCI_MANIFEST, &art).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "oci-subject"), md);
    let r = c.get(&format!("/v2/{repo}/referrers/{md}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), OCI_INDEX);
    let idx: Value = r.json().await.unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(idx["manifests"][0]["digest"], ad.as_str());
    assert_eq!(
        idx["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );
    assert_eq!(idx["manifests"][0]["annotations"]["k"], "v");

    // Mount into another repository.
    let layer_d = digest(b"layer-one");
    let r = c
        .http
        .post(format!(
            "{}/v2/flow/other/blobs/uploads/?mount={layer_d}&from={repo}",
            c.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        header(&r, "location"),
        format!("/v2/flow/other/blobs/{layer_d}")
    );
    assert_eq!(
        c.get(&format!("/v2/flow/other/blobs/{layer_d}"))
            .await
            .status(),
        200
    );

    // Deletes: the tag, then the manifest with its referrer entry.
    let r = c
        .send(Method::DELETE, &format!("/v2/{repo}/manifests/v1"))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(
        c.get(&format!("/v2/{repo}/manifests/v1")).await.status(),
        404
    );
    assert_eq!(
        c.get(&format!("/v2/{repo}/manifests/{md}")).await.status(),
        200
    );
    let r = c
        .send(Method::DELETE, &format!("/v2/{repo}/manifests/{ad}"))
        .await;
    assert_eq!(r.status(), 202);
    let idx: Value = c
        .get(&format!("/v2/{repo}/referrers/{md}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 0);
    let r = c
        .send(Method::DELETE, &format!("/v2/{repo}/manifests/{ad}"))
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
}

async fn patch(
    c: &Client,
    url: &str,
    range: Option<(usize, usize)>,
    body: &[u8],
) -> reqwest::Response {
    let mut req = c
        .http
        .patch(url)
        .header("content-type", "application/octet-stream")
        .body(body.to_vec());
    if let Some((start, len)) = range {
        req = req.header("content-range", format!("{start}-{}", start + len - 1));
    }
    req.send().await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Local disk.

#[tokio::test]
async fn blob_flow_on_disk() {
    let s = Server::local().await;
    flow_blobs(&Client::new(&s.url), &s.state.storage).await;
}

#[tokio::test]
async fn manifest_flow_on_disk() {
    let s = Server::local().await;
    flow_manifests(&Client::new(&s.url), &s.state.storage).await;
}

#[tokio::test]
async fn upload_continues_on_another_instance_over_the_same_dir() {
    let a = Server::local().await;
    let b = Server::on(a.local_spec()).await;
    flow_two_instances(&Client::new(&a.url), &Client::new(&b.url)).await;
}

#[tokio::test]
async fn every_answer_names_the_api_version_and_errors_have_spec_bodies() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let r = c.get(&format!("/v2/x/blobs/{}", digest(b"nope"))).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        header(&r, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert_eq!(header(&r, "content-type"), "application/json");
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    let r = c
        .send(Method::HEAD, &format!("/v2/x/blobs/{}", digest(b"nope")))
        .await;
    assert_eq!(r.status(), 404);
    let r = c.get("/v2/x/blobs/sha256:short").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = c.get("/v2/x/blobs/md5:0123").await;
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = c.send(Method::POST, "/v2/x/manifests/latest").await;
    assert_eq!(r.status(), 405);
    assert_eq!(error_code(r).await, "UNSUPPORTED");
}

#[tokio::test]
async fn blob_headers_ranges_and_unsatisfiable_ranges() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let data = b"0123456789".repeat(10);
    let d = c.push_blob("r/x", &data).await;
    let r = c.get(&format!("/v2/r/x/blobs/{d}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/octet-stream");
    assert_eq!(header(&r, "content-length"), "100");
    assert_eq!(header(&r, "accept-ranges"), "bytes");
    assert_eq!(header(&r, "etag"), format!("\"{d}\""));
    assert_eq!(header(&r, "docker-content-digest"), d);
    let get_range = |range: &'static str| {
        let c = c.clone();
        let url = format!("{}/v2/r/x/blobs/{d}", c.base);
        async move { c.http.get(url).header("range", range).send().await.unwrap() }
    };
    let r = get_range("bytes=90-").await;
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), "bytes 90-99/100");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[90..]);
    let r = get_range("bytes=-5").await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[95..]);
    for bad in [
        "bytes=100-",
        "bytes=200-300",
        "bytes=50-10",
        "bytes=-0",
        "bytes=a-b",
    ] {
        let r = get_range(bad).await;
        assert_eq!(r.status(), 416, "{bad}");
        assert_eq!(header(&r, "content-range"), "bytes */100", "{bad}");
    }
    // Another repository does not see the blob.
    assert_eq!(c.get(&format!("/v2/r/y/blobs/{d}")).await.status(), 404);
}

#[tokio::test]
async fn blob_delete_unlinks_only_that_repository() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let d = c.push_blob("del/a", b"shared").await;
    c.push_blob("del/b", b"shared").await;
    let r = c
        .send(Method::DELETE, &format!("/v2/del/a/blobs/{d}"))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(c.get(&format!("/v2/del/a/blobs/{d}")).await.status(), 404);
    assert_eq!(c.get(&format!("/v2/del/b/blobs/{d}")).await.status(), 200);
    let r = c
        .send(Method::DELETE, &format!("/v2/del/a/blobs/{d}"))
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    // The bytes stay until garbage collection.
    assert!(
        s.state
            .storage
            .head(&paths::blob(hex_of(&d)))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn monolithic_post_with_digest_creates_the_blob() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let data = b"monolithic body";
    let d = digest(data);
    let r = c
        .http
        .post(format!("{}/v2/mono/blobs/uploads/?digest={d}", s.url))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/mono/blobs/{d}"));
    assert_eq!(header(&r, "docker-content-digest"), d);
    let r = c.get(&format!("/v2/mono/blobs/{d}")).await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), data);
    // A mismatching body: 400, nothing published.
    let wrong = digest(b"other");
    let r = c
        .http
        .post(format!("{}/v2/mono/blobs/uploads/?digest={wrong}", s.url))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    assert!(
        s.state
            .storage
            .head(&paths::blob(hex_of(&wrong)))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        c.get(&format!("/v2/mono/blobs/{wrong}")).await.status(),
        404
    );
}

#[tokio::test]
async fn chunked_upload_refuses_out_of_order_chunks_and_resumes() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let data: Vec<u8> = (0..42u8).collect();
    let d = digest(&data);
    let (first, second) = data.split_at(22);

    // A chunk that does not start at 0 on a fresh session.
    let loc = c.start_upload("chunk/x").await;
    let r = patch(&c, &loc, Some((22, second.len())), second).await;
    assert_eq!(r.status(), 416);

    let loc = c.start_upload("chunk/x").await;
    let r = patch(&c, &loc, Some((0, first.len())), first).await;
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-21");
    assert!(!header(&r, "location").is_empty());
    // The same chunk again, on the stale URL: out of order.
    let r = patch(&c, &loc, Some((0, first.len())), first).await;
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "range"), "0-21");
    // Resume: ask where it ends.
    let r = c.send(Method::GET, &loc).await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "range"), "0-21");
    let next = c.absolute(&header(&r, "location"));
    // A Content-Range that disagrees with the body is refused.
    let r = patch(&c, &next, Some((22, 5)), second).await;
    assert_eq!(r.status(), 416);
    let r = patch(&c, &next, Some((22, second.len())), second).await;
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-41");
    let r = c
        .http
        .put(format!("{next}?digest={d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        c.get(&format!("/v2/chunk/x/blobs/{d}"))
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        data.as_slice()
    );
    // The session is gone, with all its objects.
    assert_eq!(c.send(Method::GET, &next).await.status(), 404);
    let id = next.rsplit('/').next().unwrap();
    assert!(
        s.state
            .storage
            .list(&paths::upload(id))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !s.dir
            .as_ref()
            .unwrap()
            .path()
            .join(paths::upload(id))
            .exists()
    );
}

/// Waits until a local server has a writer open (a temporary file under `.tmp/`).
async fn wait_for_open_writer(s: &Server) {
    let tmp = s.dir.as_ref().unwrap().path().join(".tmp");
    for _ in 0..500 {
        if std::fs::read_dir(&tmp).unwrap().count() > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no writer opened");
}

/// Feeds a request body piece by piece (an `Err` breaks the request off).
type Feeder = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// A PATCH whose body the test feeds piece by piece.
fn slow_patch(
    c: &Client,
    loc: &str,
) -> (
    Feeder,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let c = c.clone();
    let loc = loc.to_string();
    let task = tokio::spawn(async move { c.http.patch(&loc).body(body).send().await });
    (tx, task)
}

#[tokio::test]
async fn racing_writers_at_one_offset_never_publish_bytes_under_the_wrong_digest() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let loc = c.start_upload("race/x").await;
    // The first PATCH streams slowly; a second one, same offset, same size, other bytes,
    // completes while the first is still open.
    let (tx, first) = slow_patch(&c, &loc);
    tx.send(Ok(b"good ".to_vec())).await.unwrap();
    wait_for_open_writer(&s).await;
    let r = patch(&c, &loc, Some((0, 9)), b"evil data").await;
    assert_eq!(r.status(), 202);
    tx.send(Ok(b"data".to_vec())).await.unwrap();
    drop(tx);
    let r = first.await.unwrap().unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-8");
    // Each digest gets exactly its own bytes, whichever object the session holds.
    let good = digest(b"good data");
    let r = c.finish_upload(&loc, &good, None).await;
    assert_eq!(r.status(), 201);
    let got = c
        .get(&format!("/v2/race/x/blobs/{good}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), b"good data");
    let on_disk = s
        .state
        .storage
        .get(&paths::blob(hex_of(&good)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(on_disk.as_ref(), b"good data");
}

#[tokio::test]
async fn a_client_that_drops_mid_chunk_leaves_a_resumable_session() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let loc = c.start_upload("drop/x").await;
    assert_eq!(patch(&c, &loc, None, b"first ").await.status(), 202);
    let (tx, dropped) = slow_patch(&c, &loc);
    tx.send(Ok(vec![b'x'; 100_000])).await.unwrap();
    wait_for_open_writer(&s).await;
    tx.send(Err(std::io::Error::other("client gives up")))
        .await
        .unwrap();
    assert!(dropped.await.unwrap().is_err());
    // The server throws the partial chunk away; nothing of it is visible.
    let tmp = s.dir.as_ref().unwrap().path().join(".tmp");
    for _ in 0..500 {
        if std::fs::read_dir(&tmp).unwrap().count() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    let r = c.send(Method::GET, &loc).await;
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "range"), "0-5");
    // The client resumes where the session really ends.
    assert_eq!(patch(&c, &loc, Some((6, 6)), b"second").await.status(), 202);
    let d = digest(b"first second");
    let r = c.finish_upload(&loc, &d, None).await;
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn streamed_patch_without_range_then_put_with_a_final_body() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let data = b"streamed-part|final-part".to_vec();
    let d = digest(&data);
    let loc = c.start_upload("stream/x").await;
    let r = patch(&c, &loc, None, &data[..14]).await;
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-13");
    let r = c.finish_upload(&loc, &d, Some(data[14..].to_vec())).await;
    assert_eq!(r.status(), 201);
    let got = c
        .get(&format!("/v2/stream/x/blobs/{d}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
}

#[tokio::test]
async fn single_chunk_upload_is_published_by_rename() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let data = vec![7u8; 3 << 20];
    let d = digest(&data);
    let loc = c.start_upload("one/x").await;
    let id = loc.rsplit('/').next().unwrap().to_string();
    let r = patch(&c, &loc, None, &data).await;
    assert_eq!(r.status(), 202);
    let chunks = s
        .state
        .storage
        .list(&paths::upload_chunks(&id))
        .await
        .unwrap();
    assert_eq!(chunks.len(), 1);
    let chunk = s.state.storage.root_dir().unwrap().join(&chunks[0].key);
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&chunk).unwrap());
    let r = c.finish_upload(&loc, &d, None).await;
    assert_eq!(r.status(), 201);
    let blob = s
        .state
        .storage
        .root_dir()
        .unwrap()
        .join(paths::blob(hex_of(&d)));
    // The very file that received the chunk is now the blob: no copy was made.
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&blob).unwrap()),
        ino
    );
    // A wrong digest on a single chunk is refused without publishing anything.
    let loc = c.start_upload("one/x").await;
    patch(&c, &loc, None, b"abc").await;
    let r = c.finish_upload(&loc, &d, None).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    assert!(
        s.state
            .storage
            .head(&paths::blob(hex_of(&digest(b"abc"))))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn unknown_and_foreign_upload_sessions_are_404() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    for id in [
        "nope",
        "a.b",
        &"0".repeat(32),
        &"A".repeat(32),
        &"0".repeat(33),
    ] {
        let r = c
            .send(Method::GET, &format!("/v2/u/x/blobs/uploads/{id}"))
            .await;
        assert_eq!(r.status(), 404, "{id}");
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    }
    // A session of another repository is not this repository's.
    let loc = c.start_upload("u/x").await;
    let id = loc.rsplit('/').next().unwrap();
    let r = c
        .send(Method::PATCH, &format!("/v2/u/y/blobs/uploads/{id}"))
        .await;
    assert_eq!(r.status(), 404);
    // Cancelling removes it.
    let r = c.send(Method::DELETE, &loc).await;
    assert_eq!(r.status(), 204);
    assert_eq!(c.send(Method::GET, &loc).await.status(), 404);
    assert_eq!(c.send(Method::DELETE, &loc).await.status(), 404);
    // Finishing without a digest is refused.
    let loc = c.start_upload("u/x").await;
    let r = c.send(Method::PUT, &loc).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
}

#[tokio::test]
async fn new_session_answers_with_location_range_and_uuid() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let r = c.send(Method::POST, "/v2/sess/x/blobs/uploads/").await;
    assert_eq!(r.status(), 202);
    let loc = header(&r, "location");
    let id = header(&r, "docker-upload-uuid");
    assert_eq!(loc, format!("/v2/sess/x/blobs/uploads/{id}"));
    assert_eq!(header(&r, "range"), "0-0");
}

#[tokio::test]
async fn mount_links_from_a_repository_that_has_the_blob_or_starts_a_session() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let d = c.push_blob("m/src", b"mount me").await;
    let post = |q: String| {
        let c = c.clone();
        async move {
            c.http
                .post(format!("{}/v2/m/dst/blobs/uploads/?{q}", c.base))
                .send()
                .await
                .unwrap()
        }
    };
    // Without `from`: a session, even though some repository has it.
    let r = post(format!("mount={d}")).await;
    assert_eq!(r.status(), 202);
    assert!(header(&r, "location").starts_with("/v2/m/dst/blobs/uploads/"));
    // From a repository without it: a session.
    let r = post(format!("mount={d}&from=m/empty")).await;
    assert_eq!(r.status(), 202);
    assert_eq!(c.get(&format!("/v2/m/dst/blobs/{d}")).await.status(), 404);
    // From one with it: mounted.
    let r = post(format!("mount={d}&from=m/src")).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/m/dst/blobs/{d}"));
    assert_eq!(c.get(&format!("/v2/m/dst/blobs/{d}")).await.status(), 200);
    let r = post("mount=sha256:bad&from=m/src".to_string()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
}

#[tokio::test]
async fn invalid_names_are_refused_before_anything_is_read() {
    let s = Server::local().await;
    for path in [
        "/v2/a/../b/manifests/latest",
        "/v2/../etc/manifests/latest",
        "/v2/Upper/manifests/latest",
        "/v2/a/_blobs/x/blobs/uploads/",
        "/v2/a//b/tags/list",
    ] {
        let (status, text) = s.raw("GET", path).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("NAME_INVALID"), "{path}: {text}");
    }
    let (status, _) = s.raw("POST", "/v2/a/../b/blobs/uploads/").await;
    assert_eq!(status, 400);
    assert!(
        s.state
            .storage
            .list(paths::UPLOADS)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn manifest_put_validates_tag_digest_media_type_and_size() {
    let s = Server::local_with(|c| c.limits.max_manifest_bytes = 2048).await;
    let c = Client::new(&s.url);
    let body = image_manifest(&c, "v/x", b"l", json!({})).await;
    let r = c.put_manifest("v/x", ".bad-tag", OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "TAG_INVALID");
    let r = c
        .put_manifest("v/x", &digest(b"other"), OCI_MANIFEST, &body)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = c.put_manifest("v/x", "t", OCI_MANIFEST, b"{not json").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    let v1 = br#"{"schemaVersion":1,"name":"v/x","tag":"t","fsLayers":[]}"#;
    let r = c
        .put_manifest(
            "v/x",
            "t",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            v1,
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    // Body and Content-Type disagree.
    let r = c.put_manifest("v/x", "t", DOCKER_MANIFEST, &body).await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    // Over the limit: 413, nothing stored.
    let mut big: Value = serde_json::from_slice(&body).unwrap();
    big["annotations"] = json!({ "pad": "x".repeat(4096) });
    let big = serde_json::to_vec(&big).unwrap();
    let r = c.put_manifest("v/x", "big", OCI_MANIFEST, &big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    assert!(
        s.state
            .storage
            .head(&paths::blob(hex_of(&digest(&big))))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(c.get("/v2/v/x/manifests/big").await.status(), 404);
    // Nothing above created a tag.
    let r = c.get("/v2/v/x/tags/list").await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    // The media type may come from Content-Type alone, and zero layers are fine.
    let mut plain: Value = serde_json::from_slice(&body).unwrap();
    plain.as_object_mut().unwrap().remove("mediaType");
    plain["layers"] = json!([]);
    let plain = serde_json::to_vec(&plain).unwrap();
    let r = c.put_manifest("v/x", "plain", OCI_MANIFEST, &plain).await;
    assert_eq!(r.status(), 201);
    let r = c.send(Method::HEAD, "/v2/v/x/manifests/plain").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), OCI_MANIFEST);
    assert_eq!(header(&r, "content-length"), plain.len().to_string());
    // GET of a reference that cannot be a tag is just unknown; a malformed digest is a 400.
    assert_eq!(c.get("/v2/v/x/manifests/.INVALID").await.status(), 404);
    let r = c.get("/v2/v/x/manifests/sha256:totallywrong").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
}

#[tokio::test]
async fn docker_manifests_and_indexes_need_their_children() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let cd = c.push_blob("d/x", b"{}").await;
    let ld = c.push_blob("d/x", b"layer").await;
    let docker = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": 2},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": ld, "size": 5}]
    }))
    .unwrap();
    let dd = digest(&docker);
    let r = c
        .put_manifest("d/x", "docker", DOCKER_MANIFEST, &docker)
        .await;
    assert_eq!(r.status(), 201);
    let r = c.get("/v2/d/x/manifests/docker").await;
    assert_eq!(header(&r, "content-type"), DOCKER_MANIFEST);
    let index = |child: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": child, "size": 10,
                           "platform": {"architecture": "amd64", "os": "linux"}}]
        }))
        .unwrap()
    };
    let orphan = index(&digest(b"no such manifest"));
    let r = c.put_manifest("d/x", "idx", OCI_INDEX, &orphan).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    let good = index(&dd);
    let r = c.put_manifest("d/x", "idx", OCI_INDEX, &good).await;
    assert_eq!(r.status(), 201);
    let r = c.get("/v2/d/x/manifests/idx").await;
    assert_eq!(header(&r, "content-type"), OCI_INDEX);
    assert_eq!(r.bytes().await.unwrap().as_ref(), good.as_slice());
}

#[tokio::test]
async fn deleting_a_manifest_by_digest_removes_its_tags_and_tells_the_index() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let md = c.push_image("del/m", "a", b"layer").await;
    let body = c.get("/v2/del/m/manifests/a").await.bytes().await.unwrap();
    let r = c.put_manifest("del/m", "b", OCI_MANIFEST, &body).await;
    assert_eq!(r.status(), 201);
    let other = c.push_image("del/m", "c", b"other layer").await;
    let r = c
        .send(Method::DELETE, &format!("/v2/del/m/manifests/{md}"))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(
        c.get(&format!("/v2/del/m/manifests/{md}")).await.status(),
        404
    );
    assert_eq!(c.get("/v2/del/m/manifests/a").await.status(), 404);
    let tags: Value = c.get("/v2/del/m/tags/list").await.json().await.unwrap();
    assert_eq!(tags["tags"], json!(["c"]));
    assert_eq!(
        c.get(&format!("/v2/del/m/manifests/{other}"))
            .await
            .status(),
        200
    );
    let r = c
        .send(Method::DELETE, "/v2/del/m/manifests/nosuchtag")
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    // Every change was published for the search indexes.
    let mut kinds = Vec::new();
    for e in s.state.storage.list(paths::EVENTS).await.unwrap() {
        let raw = s.state.storage.get(&e.key).await.unwrap().unwrap();
        let ev: Value = serde_json::from_slice(&raw).unwrap();
        kinds.push(ev["kind"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds.iter().filter(|k| *k == "manifest_put").count(), 3);
    assert_eq!(kinds.iter().filter(|k| *k == "manifest_deleted").count(), 1);
    let r = c.send(Method::DELETE, "/v2/del/m/manifests/c").await;
    assert_eq!(r.status(), 202);
    let n = s.state.storage.list(paths::EVENTS).await.unwrap().len();
    assert_eq!(n, 5);
}

#[tokio::test]
async fn tags_and_catalog_paginate_with_link_headers() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let md = c.push_image("page/a", "t0", b"l").await;
    let body = c
        .get(&format!("/v2/page/a/manifests/{md}"))
        .await
        .bytes()
        .await
        .unwrap();
    for t in ["t3", "t1", "t4", "t2"] {
        assert_eq!(
            c.put_manifest("page/a", t, OCI_MANIFEST, &body)
                .await
                .status(),
            201
        );
    }
    let r = c.get("/v2/page/a/tags/list").await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], "page/a");
    assert_eq!(v["tags"], json!(["t0", "t1", "t2", "t3", "t4"]));
    let r = c.get("/v2/page/a/tags/list?n=2").await;
    assert_eq!(
        header(&r, "link"),
        "</v2/page/a/tags/list?n=2&last=t1>; rel=\"next\""
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["tags"],
        json!(["t0", "t1"])
    );
    let r = c.get("/v2/page/a/tags/list?n=2&last=t1").await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["tags"],
        json!(["t2", "t3"])
    );
    let r = c.get("/v2/page/a/tags/list?n=2&last=t3").await;
    assert_eq!(header(&r, "link"), "");
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["t4"]));
    // An `n` that is not a number is ignored.
    let r = c.get("/v2/page/a/tags/list?n=x").await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["tags"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let r = c.get("/v2/page/unknown/tags/list").await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");

    for repo in ["page/b", "page/c", "zz"] {
        c.push_image(repo, "x", b"l").await;
    }
    let v: Value = c.get("/v2/_catalog").await.json().await.unwrap();
    assert_eq!(
        v["repositories"],
        json!(["page/a", "page/b", "page/c", "zz"])
    );
    let r = c.get("/v2/_catalog?n=3").await;
    assert_eq!(
        header(&r, "link"),
        "</v2/_catalog?n=3&last=page%2Fc>; rel=\"next\""
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["page/a", "page/b", "page/c"])
    );
    let r = c.get("/v2/_catalog?n=3&last=page%2Fc").await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["zz"])
    );
}

#[tokio::test]
async fn referrers_filter_by_artifact_type() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let subject = digest(b"a subject that was never pushed");
    let r = c.get(&format!("/v2/ref/x/referrers/{subject}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), OCI_INDEX);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    );
    let subj = json!({"mediaType": OCI_MANIFEST, "digest": subject, "size": 1});
    // One artifact typed by its config, one by artifactType.
    let cd = c.push_blob("ref/x", b"{}").await;
    let by_config = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.a", "digest": cd, "size": 2},
        "layers": [], "subject": subj
    }))
    .unwrap();
    let by_field = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.b",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": 2},
        "layers": [], "subject": subj, "annotations": {"x": "1"}
    }))
    .unwrap();
    for m in [&by_config, &by_field] {
        let r = c.put_manifest("ref/x", &digest(m), OCI_MANIFEST, m).await;
        assert_eq!(r.status(), 201);
        assert_eq!(header(&r, "oci-subject"), subject);
    }
    let v: Value = c
        .get(&format!("/v2/ref/x/referrers/{subject}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
    let r = c
        .get(&format!(
            "/v2/ref/x/referrers/{subject}?artifactType=application%2Fvnd.example.a"
        ))
        .await;
    assert_eq!(header(&r, "oci-filters-applied"), "artifactType");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], digest(&by_config));
    assert_eq!(
        v["manifests"][0]["artifactType"],
        "application/vnd.example.a"
    );
    assert_eq!(v["manifests"][0]["size"], by_config.len());
    assert!(v["manifests"][0].get("annotations").is_none());
    let r = c.get("/v2/ref/x/referrers/sha256:nope").await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn blob_size_limit_is_enforced_with_413() {
    let s = Server::local_with(|c| c.limits.max_blob_bytes = 1000).await;
    let c = Client::new(&s.url);
    let big = vec![1u8; 1001];
    let d = digest(&big);
    let loc = c.start_upload("lim/x").await;
    let r = c.finish_upload(&loc, &d, Some(big.clone())).await;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    // In chunks: the chunk that crosses the limit is refused.
    let loc = c.start_upload("lim/x").await;
    assert_eq!(patch(&c, &loc, None, &big[..600]).await.status(), 202);
    let r = patch(&c, &loc, None, &big[600..]).await;
    assert_eq!(r.status(), 413);
    assert!(
        s.state
            .storage
            .head(&paths::blob(hex_of(&d)))
            .await
            .unwrap()
            .is_none()
    );
    // At the limit it is fine.
    c.push_blob("lim/x", &big[..1000]).await;
}

// ---------------------------------------------------------------------------------------------
// S3 (moto): the main flows again, with two instances on one bucket.

#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
#[tokio::test]
async fn main_flows_on_s3() {
    let s3 = S3::start();
    let a = Server::on(crate::common::s3_spec(&s3, "reg")).await;
    let b = Server::on(crate::common::s3_spec(&s3, "reg")).await;
    let (ca, cb) = (Client::new(&a.url), Client::new(&b.url));
    flow_blobs(&ca, &a.state.storage).await;
    flow_two_instances(&ca, &cb).await;
    flow_manifests(&cb, &b.state.storage).await;
    // A push through one instance is pullable through the other.
    let md = ca.push_image("s3/img", "v1", &vec![5u8; 9 << 20]).await;
    let r = cb.get("/v2/s3/img/manifests/v1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "docker-content-digest"), md);
    let r = cb
        .get(&format!("/v2/s3/img/blobs/{}", digest(&vec![5u8; 9 << 20])))
        .await;
    assert_eq!(r.bytes().await.unwrap().len(), 9 << 20);
}

/// POSTs a mount request to `repo` with the given query, optionally as a Basic-auth user.
async fn post_mount(
    c: &Client,
    repo: &str,
    query: &str,
    user: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = c
        .http
        .post(format!("{}/v2/{repo}/blobs/uploads/?{query}", c.base));
    if let Some((u, p)) = user {
        req = req.basic_auth(u, Some(p));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn cross_mount_off_starts_a_session_even_from_a_repository_with_the_blob() {
    let s = Server::local_with(|c| c.api.cross_mount = CrossMount::Off).await;
    let c = Client::new(&s.url);
    let data = b"isolated repositories";
    let d = c.push_blob("iso/src", data).await;
    let r = post_mount(&c, "iso/dst", &format!("mount={d}&from=iso/src"), None).await;
    assert_eq!(r.status(), 202);
    let loc = header(&r, "location");
    assert!(loc.starts_with("/v2/iso/dst/blobs/uploads/"), "{loc}");
    assert_eq!(c.get(&format!("/v2/iso/dst/blobs/{d}")).await.status(), 404);
    assert!(
        s.state
            .storage
            .head(&paths::blob_link("iso/dst", hex_of(&d)))
            .await
            .unwrap()
            .is_none(),
        "no link may be written when mounts are off"
    );
    // The session it started is an ordinary one: uploading the bytes makes the blob visible.
    let r = c
        .http
        .put(format!("{}?digest={d}", c.absolute(&loc)))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(c.get(&format!("/v2/iso/dst/blobs/{d}")).await.status(), 200);
    // A malformed digest is still refused as one.
    let r = post_mount(&c, "iso/dst", "mount=sha256:bad&from=iso/src", None).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
}

#[test]
fn cross_mount_is_read_from_the_api_section() {
    let c: Config = toml::from_str("[api]\ncross_mount = \"off\"\n").unwrap();
    assert_eq!(c.api.cross_mount, CrossMount::Off);
    let c: Config = toml::from_str("[api]\ncross_mount = \"auto\"\n").unwrap();
    assert_eq!(c.api.cross_mount, CrossMount::Auto);
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c.api.cross_mount, CrossMount::From);
    assert!(toml::from_str::<Config>("[api]\ncross_mount = \"yes\"\n").is_err());
}

#[tokio::test]
async fn cross_mount_auto_links_without_from_only_where_every_repository_is_readable() {
    let open = Server::local_with(|c| c.api.cross_mount = CrossMount::Auto).await;
    let c = Client::new(&open.url);
    let layer = b"auto-mounted layer";
    c.push_image("auto/src", "v1", layer).await;
    let d = digest(layer);
    // An open registry: the blob is found in auto/src and linked.
    let r = post_mount(&c, "auto/dst", &format!("mount={d}"), None).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "location"), format!("/v2/auto/dst/blobs/{d}"));
    assert_eq!(
        c.get(&format!("/v2/auto/dst/blobs/{d}")).await.status(),
        200
    );
    // A digest no repository holds: a session.
    let unknown = digest(b"nobody has this");
    let r = post_mount(&c, "auto/dst", &format!("mount={unknown}"), None).await;
    assert_eq!(r.status(), 202);
    assert!(header(&r, "location").starts_with("/v2/auto/dst/blobs/uploads/"));

    // The same storage behind users without anonymous pull: alice may push to team/* but not
    // read auto/src, so an automatic mount would leak the blob to her; she gets a session.
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("wonderland", 4).unwrap();
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let restricted = |anonymous_pull: bool| {
        let mut cfg = Config {
            storage: Some(open.local_spec()),
            ..Config::default()
        };
        cfg.api.cross_mount = CrossMount::Auto;
        cfg.auth.htpasswd = Some(htpasswd.clone());
        cfg.auth.anonymous_pull = Some(anonymous_pull);
        cfg.auth.access = vec![AccessRule {
            user: "alice".into(),
            repositories: vec!["team/*".into()],
            actions: vec!["pull".into(), "push".into()],
        }];
        cfg
    };
    let s = Server::with_config(restricted(false)).await;
    let c = Client::new(&s.url);
    let alice = Some(("alice", "wonderland"));
    let r = post_mount(&c, "team/a", &format!("mount={d}"), alice).await;
    assert_eq!(r.status(), 202);
    assert!(header(&r, "location").starts_with("/v2/team/a/blobs/uploads/"));
    let key = paths::blob_link("team/a", hex_of(&d));
    assert!(s.state.storage.head(&key).await.unwrap().is_none());
    drop(s);
    // With anonymous pull every repository is readable by anyone: the mount is done.
    let s = Server::with_config(restricted(true)).await;
    let c = Client::new(&s.url);
    let r = post_mount(&c, "team/a", &format!("mount={d}"), alice).await;
    assert_eq!(r.status(), 201);
    assert!(s.state.storage.head(&key).await.unwrap().is_some());
}
