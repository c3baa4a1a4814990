//! Prometheus metrics (`GET /metrics`, text format 0.0.4) and structured access logs.
//!
//! [`track`] is the outermost layer: it counts body bytes as they stream (both bodies are
//! wrapped, never buffered), and when the response body is finished or dropped it records the
//! request's counter and duration and writes one access-log event with target
//! `berth_registry::access`: method, path (never the query, which may hold secrets), status,
//! duration_ms, bytes_in, bytes_out, peer, user (`-` when anonymous), route, and `complete`
//! (false when the client went away before the response body was sent). A request whose
//! handler never answered because the client disconnected is logged and counted with status
//! 499. Routes are [`Route::label`]s plus `web`, `token`, `metrics` and `invalid`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::Body as _;
use http_body::{Frame, SizeHint};

use crate::auth::Principal;
use crate::route::Route;
use crate::server::AppState;

/// Route labels; a request's label is an index into this list.
const ROUTES: [&str; 12] = [
    "base",
    "catalog",
    "search",
    "tags",
    "manifest",
    "blob",
    "upload",
    "referrers",
    "web",
    "token",
    "metrics",
    "invalid",
];

/// Upper bounds of the duration histogram's buckets, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 120.0];

/// Status recorded for a request abandoned before its handler answered (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

/// One route's duration histogram.
#[derive(Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, secs: f64) {
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add((secs * 1e9) as u64, Ordering::Relaxed);
    }
}

/// The registry's request metrics. Cheap to update from any task.
#[derive(Default)]
pub struct Metrics {
    /// (route index, method, status) → finished requests.
    requests: Mutex<BTreeMap<(usize, &'static str, u16), u64>>,
    durations: [Histogram; ROUTES.len()],
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    in_flight: AtomicI64,
}

impl Metrics {
    /// All counters at zero.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn finished(&self, route: usize, method: &'static str, status: u16, secs: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, method, status))
            .or_insert(0) += 1;
        self.durations[route].observe(secs);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The metrics in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP berth_registry_requests_total Requests finished, by route, method and status.\n\
             # TYPE berth_registry_requests_total counter\n",
        );
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for ((route, method, status), n) in requests {
            let _ = writeln!(
                out,
                "berth_registry_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                ROUTES[route]
            );
        }
        out.push_str(
            "# HELP berth_registry_request_duration_seconds Time from a request's arrival to the end of its response body.\n\
             # TYPE berth_registry_request_duration_seconds histogram\n",
        );
        for (route, h) in ROUTES.iter().zip(&self.durations) {
            let count = h.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (i, b) in h.buckets.iter().enumerate() {
                cumulative += b.load(Ordering::Relaxed);
                let le = BUCKETS.get(i).map_or("+Inf".to_string(), |v| v.to_string());
                let _ = writeln!(
                    out,
                    "berth_registry_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "berth_registry_request_duration_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "berth_registry_request_duration_seconds_count{{route=\"{route}\"}} {cumulative}"
            );
        }
        let _ = write!(
            out,
            "# HELP berth_registry_bytes_received_total Request body bytes received.\n\
             # TYPE berth_registry_bytes_received_total counter\n\
             berth_registry_bytes_received_total {}\n\
             # HELP berth_registry_bytes_sent_total Response body bytes sent.\n\
             # TYPE berth_registry_bytes_sent_total counter\n\
             berth_registry_bytes_sent_total {}\n\
             # HELP berth_registry_in_flight_requests Requests being served, response bodies included.\n\
             # TYPE berth_registry_in_flight_requests gauge\n\
             berth_registry_in_flight_requests {}\n",
            self.bytes_received.load(Ordering::Relaxed),
            self.bytes_sent.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
        );
        out
    }
}

/// The route label index of a path.
fn route_index(path: &str) -> usize {
    let label = match Route::parse(path) {
        Some(Ok(r)) => r.label(),
        Some(Err(_)) => "invalid",
        None if path == "/metrics" => "metrics",
        None if path == "/token" => "token",
        None => "web",
    };
    ROUTES
        .iter()
        .position(|r| *r == label)
        .unwrap_or(ROUTES.len() - 1)
}

/// A bounded method label.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// One request's bookkeeping; records and logs it exactly once, at the latest when dropped.
struct Finish {
    metrics: Arc<Metrics>,
    route: usize,
    method: &'static str,
    path: String,
    peer: Option<SocketAddr>,
    start: Instant,
    bytes_in: Arc<AtomicU64>,
    bytes_out: u64,
    status: Option<u16>,
    user: Option<String>,
    done: bool,
}

impl Finish {
    fn done(&mut self, complete: bool) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.start.elapsed();
        let status = self.status.unwrap_or(CLIENT_CLOSED);
        self.metrics
            .finished(self.route, self.method, status, elapsed.as_secs_f64());
        let peer = self.peer.map_or_else(|| "-".to_string(), |p| p.to_string());
        tracing::info!(
            target: "berth_registry::access",
            method = self.method,
            path = %self.path,
            status,
            duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out = self.bytes_out,
            peer = %peer,
            user = self.user.as_deref().unwrap_or("-"),
            route = ROUTES[self.route],
            complete,
            "request"
        );
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.done(false);
    }
}

/// A request body that counts its bytes as the handler reads them.
struct CountedRequest {
    inner: Body,
    metrics: Arc<Metrics>,
    seen: Arc<AtomicU64>,
}

impl http_body::Body for CountedRequest {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            let n = d.len() as u64;
            self.metrics.bytes_received.fetch_add(n, Ordering::Relaxed);
            self.seen.fetch_add(n, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts its bytes as they are sent and finishes the request's record
/// when it ends or is dropped.
struct CountedResponse {
    inner: Body,
    finish: Finish,
    complete: bool,
}

impl http_body::Body for CountedResponse {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    let n = d.len() as u64;
                    this.finish
                        .metrics
                        .bytes_sent
                        .fetch_add(n, Ordering::Relaxed);
                    this.finish.bytes_out += n;
                }
                if this.inner.is_end_stream() {
                    this.complete = true;
                }
            }
            Poll::Ready(None) => this.complete = true,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountedResponse {
    fn drop(&mut self) {
        let complete = self.complete || self.inner.is_end_stream() || self.finish.method == "HEAD";
        self.finish.done(complete);
    }
}

/// Records each request (counters, duration, bytes) and writes its access-log line.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let metrics = state.metrics.clone();
    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let bytes_in = Arc::new(AtomicU64::new(0));
    let mut finish = Finish {
        metrics: metrics.clone(),
        route: route_index(req.uri().path()),
        method: method_label(req.method()),
        path: req.uri().path().to_string(),
        peer: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
        start: Instant::now(),
        bytes_in: bytes_in.clone(),
        bytes_out: 0,
        status: None,
        user: None,
        done: false,
    };
    let req = req.map(|inner| {
        Body::new(CountedRequest {
            inner,
            metrics,
            seen: bytes_in,
        })
    });
    let resp = next.run(req).await;
    finish.status = Some(resp.status().as_u16());
    finish.user = resp
        .extensions()
        .get::<Principal>()
        .and_then(|p| p.0.clone());
    resp.map(|inner| {
        Body::new(CountedResponse {
            inner,
            finish,
            complete: false,
        })
    })
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_bounded_labels() {
        let label = |p: &str| ROUTES[route_index(p)];
        assert_eq!(label("/v2/"), "base");
        assert_eq!(label("/v2/a/blobs/sha256:00"), "blob");
        assert_eq!(label("/v2/a/blobs/uploads/x"), "upload");
        assert_eq!(label("/v2/A/blobs/x"), "invalid");
        assert_eq!(label("/metrics"), "metrics");
        assert_eq!(label("/token"), "token");
        assert_eq!(label("/ui/x"), "web");
        assert_eq!(method_label(&Method::CONNECT), "OTHER");
    }

    #[test]
    fn render_has_cumulative_buckets_and_counters() {
        let m = Metrics::new();
        for (secs, status) in [(0.001, 200), (0.02, 200), (3.0, 404), (1000.0, 200)] {
            m.in_flight.fetch_add(1, Ordering::Relaxed);
            m.finished(5, "GET", status, secs);
        }
        m.bytes_sent.fetch_add(42, Ordering::Relaxed);
        let text = m.render();
        for line in [
            "berth_registry_requests_total{route=\"blob\",method=\"GET\",status=\"200\"} 3",
            "berth_registry_requests_total{route=\"blob\",method=\"GET\",status=\"404\"} 1",
            "berth_registry_request_duration_seconds_bucket{route=\"blob\",le=\"0.005\"} 1",
            "berth_registry_request_duration_seconds_bucket{route=\"blob\",le=\"0.025\"} 2",
            "berth_registry_request_duration_seconds_bucket{route=\"blob\",le=\"1\"} 2",
            "berth_registry_request_duration_seconds_bucket{route=\"blob\",le=\"5\"} 3",
            "berth_registry_request_duration_seconds_bucket{route=\"blob\",le=\"120\"} 3",
            "berth_registry_request_duration_seconds_bucket{route=\"blob\",le=\"+Inf\"} 4",
            "berth_registry_request_duration_seconds_count{route=\"blob\"} 4",
            "berth_registry_bytes_sent_total 42",
            "berth_registry_bytes_received_total 0",
            "berth_registry_in_flight_requests 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let sum: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("berth_registry_request_duration_seconds_sum{route=\"blob\"} ")
            })
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 1003.021).abs() < 1e-6, "{sum}");
        assert!(
            !text.contains("route=\"base\""),
            "unused routes are left out"
        );
    }
}
