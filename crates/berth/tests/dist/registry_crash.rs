//! kill -9 of a registry instance in the middle of an upload body, with a second instance on the
//! same storage: a chunked upload resumes on the survivor from the offset it reports, and a
//! monolithic upload killed mid-body is never served and can simply be retried. No partial blob
//! may ever be visible under `blobs/`.

use std::sync::Arc;
use std::time::Duration;

use crate::registry_util::{Api, Registry, S3, Store, digest, random_bytes, slow_body, with_query};

const REPO: &str = "e2e/crash";
/// Size of each small chunk PATCHed before the kill.
const CHUNK: usize = 256 << 10;
/// Size of the PATCH or PUT body that is cut by the kill.
const BIG: usize = 8 << 20;
/// How much of it leaves the client before the kill.
const SENT_BEFORE_KILL: usize = 3 << 20;
/// Pieces the slow body is fed in.
const PIECE: usize = 64 << 10;

/// Starts a request on a background thread with a body that stops after `SENT_BEFORE_KILL`
/// bytes, SIGKILLs `victim` while it waits for the rest, and returns what the client saw.
fn kill_mid_body(
    victim: &mut Registry,
    data: &[u8],
    build: impl FnOnce(reqwest::blocking::Body) -> reqwest::blocking::RequestBuilder + Send + 'static,
) -> String {
    let (body, mut feeder) = slow_body();
    let len = data.len() as u64;
    let client =
        std::thread::spawn(
            move || match build(reqwest::blocking::Body::sized(body, len)).send() {
                Ok(r) => format!("answered {}", r.status()),
                Err(e) => format!("failed: {e}"),
            },
        );
    for piece in data[..SENT_BEFORE_KILL].chunks(PIECE) {
        assert!(feeder.feed(piece), "the request ended before the kill");
    }
    feeder
        .wait_taken(SENT_BEFORE_KILL as u64, Duration::from_secs(20))
        .expect("client sends the first part of the body");
    // Let the bytes cross the socket and reach the handler before the kill.
    std::thread::sleep(Duration::from_millis(300));
    assert!(victim.alive(), "the instance died before the kill");
    victim.kill9();
    feeder.close();
    let seen = client.join().expect("client thread");
    assert!(
        !seen.starts_with("answered 2"),
        "a truncated body was accepted: {seen}"
    );
    seen
}

fn chunked_upload_resumes_on_the_other_instance(store: &Store) {
    let mut a = Registry::start(store, &[]);
    let b = Registry::start(store, &[]);
    let api = Api::new();
    let total = 2 * CHUNK + BIG;
    let data = random_bytes(total);
    let d = digest(&data);

    let path = api.start_upload(&a.base, REPO).expect("POST on A");
    let path = api
        .patch(&a.base, &path, 0, &data[..CHUNK])
        .expect("PATCH 1 on A");
    let path = api
        .patch(&a.base, &path, CHUNK as u64, &data[CHUNK..2 * CHUNK])
        .expect("PATCH 2 on A");
    let stored = 2 * CHUNK as u64;

    let url = format!("{}{}", a.base, path);
    let http = api.http.clone();
    let range = format!("{stored}-{}", total - 1);
    let seen = kill_mid_body(&mut a, &data[2 * CHUNK..], move |body| {
        http.patch(url)
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(body)
    });
    eprintln!("client of the killed PATCH: {seen}");

    // The survivor reports where the session stands: exactly what was acknowledged, since a
    // chunk cut by the kill was never fully stored (and the digest at the end proves that the
    // session holds exactly those bytes).
    let offset = api
        .upload_offset(&b.base, &path)
        .expect("GET upload status on B");
    eprintln!("upload status on B after the kill: offset {offset} ({stored} acknowledged)");
    assert_eq!(
        offset, stored,
        "upload status after the kill; {} bytes of the cut chunk had been sent",
        SENT_BEFORE_KILL
    );
    let path = api
        .patch(&b.base, &path, offset, &data[offset as usize..])
        .expect("resume PATCH on B");
    api.finish(&b.base, &path, &d, &[])
        .expect("PUT ?digest= on B");

    let r = api
        .send(api.req("GET", &b.base, &format!("/v2/{REPO}/blobs/{d}")))
        .expect("GET blob on B");
    assert_eq!(r.status, 200, "GET blob on B: {}", r.show());
    assert!(
        digest(&r.body) == d,
        "GET blob on B: wrong bytes ({} bytes)",
        r.body.len()
    );
    store.check_blobs().expect("no partial blob is visible");

    // The killed instance's storage is usable by a fresh instance.
    let a2 = Registry::start(store, &[]);
    assert!(
        api.blob_exists(&a2.base, REPO, &d).expect("HEAD on A'"),
        "blob missing on A'"
    );
}

fn monolithic_put_killed_is_never_served(store: &Store) {
    let mut a = Registry::start(store, &[]);
    let b = Registry::start(store, &[]);
    let api = Api::new();
    let data = random_bytes(BIG);
    let d = digest(&data);

    let path = api.start_upload(&a.base, REPO).expect("POST on A");
    let url = format!("{}{}", a.base, with_query(&path, &format!("digest={d}")));
    let http = api.http.clone();
    let seen = kill_mid_body(&mut a, &data, move |body| {
        http.put(url)
            .header("content-type", "application/octet-stream")
            .body(body)
    });
    eprintln!("client of the killed PUT: {seen}");

    for method in ["HEAD", "GET"] {
        let r = api
            .send(api.req(method, &b.base, &format!("/v2/{REPO}/blobs/{d}")))
            .expect("blob request on B");
        assert_eq!(r.status, 404, "{method} of the cut blob on B: {}", r.show());
    }
    store.check_blobs().expect("no partial blob is visible");
    let hex = d.strip_prefix("sha256:").unwrap();
    let listed = store.objects().expect("list storage");
    assert!(
        !listed
            .iter()
            .any(|(k, _)| k == &format!("blobs/sha256/{hex}")),
        "the cut blob's bytes are under blobs/"
    );

    api.push_blob(&b.base, REPO, &data).expect("retry on B");
    let r = api
        .send(api.req("GET", &b.base, &format!("/v2/{REPO}/blobs/{d}")))
        .expect("GET blob on B");
    assert_eq!(r.status, 200, "GET retried blob: {}", r.show());
    assert!(digest(&r.body) == d, "GET retried blob: wrong bytes");
    store.check_blobs().expect("every blob matches its name");
}

#[test]
fn kill9_mid_patch_resumes_on_other_instance_on_disk() {
    chunked_upload_resumes_on_the_other_instance(&Store::local());
}

#[test]
#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
fn kill9_mid_patch_resumes_on_other_instance_on_s3() {
    let s3 = Arc::new(S3::start());
    chunked_upload_resumes_on_the_other_instance(&Store::s3(&s3, "crash"));
}

#[test]
fn kill9_mid_monolithic_put_never_serves_partial_blob_on_disk() {
    monolithic_put_killed_is_never_served(&Store::local());
}

#[test]
#[cfg_attr(not(feature = "peers"), ignore = "peers tier: needs moto")]
fn kill9_mid_monolithic_put_never_serves_partial_blob_on_s3() {
    let s3 = Arc::new(S3::start());
    monolithic_put_killed_is_never_served(&Store::s3(&s3, "crash"));
}
