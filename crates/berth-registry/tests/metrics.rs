//! `/metrics` and the access log through the real router: counters per route, method and
//! status, byte counters that follow the bodies exactly, the in-flight gauge while a body is
//! still streaming, and one access-log event per request carrying the user and the peer.

// A binary of its own: the access-log test captures events with a thread-local subscriber, which
// tracing's per-callsite interest cache does not reliably see when other tests in the same process
// have already hit those callsites with no subscriber.
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_registry::config::Config;
use berth_registry::storage::StorageSpec;
use common::{Client, Server, digest};
use tracing::field::{Field, Visit};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata};

/// One access-log event's fields, as text.
type Fields = BTreeMap<String, String>;

/// A subscriber that keeps the access-log events of this thread.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Fields>>>);

struct Visitor(Fields);

impl Visit for Visitor {
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().to_string(), format!("{v:?}"));
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().to_string(), v.to_string());
    }
}

impl tracing::Subscriber for Capture {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.target() == "berth_registry::access"
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut v = Visitor(Fields::new());
        e.record(&mut v);
        self.0.lock().unwrap().push(v.0);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

impl Capture {
    /// Waits until `n` events arrived (they are written when the response body is dropped,
    /// which may be just after the client has read it) and returns them.
    async fn wait_for(&self, n: usize) -> Vec<Fields> {
        for _ in 0..200 {
            if self.0.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.0.lock().unwrap().clone()
    }
}

/// A scrape of `/metrics`: the body and its samples.
struct Scrape {
    len: u64,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn get(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }
}

async fn scrape(c: &Client) -> Scrape {
    let r = c.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (k, v) = line.rsplit_once(' ').unwrap();
        samples.insert(k.to_string(), v.parse().unwrap());
    }
    Scrape {
        len: text.len() as u64,
        samples,
    }
}

/// Scrapes until every other request has finished (the gauge shows only the scrape itself):
/// a request is recorded when the server drops its response body, which can be just after
/// the client has read the response.
async fn settled(c: &Client) -> Scrape {
    let mut m = scrape(c).await;
    for _ in 0..200 {
        if m.get(IN_FLIGHT) == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        m = scrape(c).await;
    }
    m
}

const RECEIVED: &str = "berth_registry_bytes_received_total";
const SENT: &str = "berth_registry_bytes_sent_total";
const IN_FLIGHT: &str = "berth_registry_in_flight_requests";

fn requests(route: &str, method: &str, status: u16) -> String {
    format!(
        "berth_registry_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
    )
}

#[tokio::test]
async fn byte_counters_follow_the_bodies_exactly() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let blob: Vec<u8> = (0..3 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let s0 = scrape(&c).await;
    let d = c.push_blob("m/bytes", &blob).await;
    let s1 = scrape(&c).await;
    assert_eq!(s1.get(RECEIVED) - s0.get(RECEIVED), blob.len() as f64);
    let got = c
        .get(&format!("/v2/m/bytes/blobs/{d}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len(), blob.len());
    let s2 = scrape(&c).await;
    // The earlier scrape's own body is sent after it was rendered, so it shows up here.
    assert_eq!(
        s2.get(SENT) - s1.get(SENT),
        (blob.len() as u64 + s1.len) as f64
    );
    assert_eq!(s2.get(RECEIVED), s1.get(RECEIVED));
    let r = c
        .http
        .head(format!("{}/v2/m/bytes/blobs/{d}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s3 = scrape(&c).await;
    assert_eq!(
        s3.get(SENT) - s2.get(SENT),
        s2.len as f64,
        "HEAD sends no body"
    );
}

#[tokio::test]
async fn requests_and_durations_are_counted_per_route_method_and_status() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let d = c.push_image("m/app", "v1", b"layer bytes").await;
    assert_eq!(c.get("/v2/m/app/manifests/v1").await.status(), 200);
    assert_eq!(
        c.get(&format!("/v2/m/app/manifests/{d}")).await.status(),
        200
    );
    let missing = digest(b"nothing");
    assert_eq!(
        c.get(&format!("/v2/m/app/blobs/{missing}")).await.status(),
        404
    );
    assert_eq!(c.get("/v2/").await.status(), 200);
    let m = settled(&c).await;
    assert_eq!(m.get(&requests("manifest", "PUT", 201)), 1.0);
    assert_eq!(m.get(&requests("manifest", "GET", 200)), 2.0);
    assert_eq!(m.get(&requests("blob", "GET", 404)), 1.0);
    assert_eq!(m.get(&requests("upload", "POST", 202)), 2.0);
    assert_eq!(m.get(&requests("upload", "PUT", 201)), 2.0);
    assert_eq!(m.get(&requests("base", "GET", 200)), 1.0);
    assert_eq!(
        m.get(&requests("metrics", "GET", 200)),
        0.0,
        "not finished yet"
    );
    assert_eq!(m.get(IN_FLIGHT), 1.0, "only the scrape itself");
    let count = |route: &str| {
        m.get(&format!(
            "berth_registry_request_duration_seconds_count{{route=\"{route}\"}}"
        ))
    };
    assert_eq!(count("manifest"), 3.0);
    assert_eq!(count("upload"), 4.0);
    assert_eq!(
        m.get("berth_registry_request_duration_seconds_bucket{route=\"upload\",le=\"+Inf\"}"),
        4.0
    );
    assert!(m.get("berth_registry_request_duration_seconds_sum{route=\"upload\"}") > 0.0);
    let m2 = settled(&c).await;
    assert!(
        m2.get(&requests("metrics", "GET", 200)) > m.get(&requests("metrics", "GET", 200)),
        "a scrape is counted once it has finished"
    );
}

#[tokio::test]
async fn in_flight_includes_a_request_whose_body_is_still_streaming() {
    let s = Server::local().await;
    let c = Client::new(&s.url);
    let r = c
        .http
        .post(format!("{}/v2/m/stream/blobs/uploads/", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = c.absolute(r.headers()["location"].to_str().unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    let http = c.http.clone();
    let patch = tokio::spawn(async move {
        http.patch(loc)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .unwrap()
            .status()
    });
    let before = settled(&c).await.get(RECEIVED);
    tx.send(vec![1; 1000]).await.unwrap();
    let mut m = scrape(&c).await;
    for _ in 0..200 {
        // Earlier scrapes may still be finishing; the PATCH stays in flight throughout.
        if m.get(RECEIVED) - before >= 1000.0 && m.get(IN_FLIGHT) == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        m = scrape(&c).await;
    }
    assert_eq!(m.get(RECEIVED) - before, 1000.0, "counted while streaming");
    assert_eq!(m.get(IN_FLIGHT), 2.0, "the PATCH and this scrape");
    drop(tx);
    assert_eq!(patch.await.unwrap(), 202);
    assert_eq!(settled(&c).await.get(IN_FLIGHT), 1.0);
}

#[tokio::test]
async fn access_log_has_one_event_per_request_with_user_peer_and_no_query() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("alice:{}\n", bcrypt::hash("pw", 4).unwrap()),
    )
    .unwrap();
    let mut config = Config {
        storage: Some(StorageSpec::new(dir.path().join("data").to_str().unwrap())),
        ..Config::default()
    };
    config.auth.htpasswd = Some(htpasswd);
    let s = Server::with_config(config).await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/v2/", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let refused_len = r.bytes().await.unwrap().len();
    let r = http
        .get(format!("{}/v2/_catalog?n=5&secret=hunter2", s.url))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ok_len = r.bytes().await.unwrap().len();
    let r = http
        .put(format!("{}/v2/m/log/manifests/v1", s.url))
        .basic_auth("alice", Some("pw"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let events = capture.wait_for(3).await;
    assert_eq!(events.len(), 3, "{events:#?}");
    let e = &events[0];
    assert_eq!(e["method"], "GET");
    assert_eq!(e["path"], "/v2/");
    assert_eq!(e["status"], "401");
    assert_eq!(e["user"], "-");
    assert_eq!(e["route"], "base");
    assert_eq!(e["bytes_out"], refused_len.to_string());
    assert_eq!(e["complete"], "true");
    assert!(e["peer"].starts_with("127.0.0.1:"), "{e:?}");
    assert!(e["duration_ms"].parse::<f64>().unwrap() >= 0.0);
    let e = &events[1];
    assert_eq!(e["path"], "/v2/_catalog", "the query is never logged");
    assert!(!format!("{e:?}").contains("hunter2"));
    assert_eq!(e["user"], "alice");
    assert_eq!(e["status"], "200");
    assert_eq!(e["route"], "catalog");
    assert_eq!(e["bytes_out"], ok_len.to_string());
    let e = &events[2];
    assert_eq!(e["method"], "PUT");
    assert_eq!(e["route"], "manifest");
    assert_eq!(e["status"], "400");
    assert_eq!(e["bytes_in"], "8");
    assert_eq!(e["user"], "alice");
}
