//! `GET /metrics` and the request tracking behind it (counters in [`crate::metrics`]), and the
//! structured access log.
//!
//! [`track`] is the outermost layer: it counts body bytes as they stream (both bodies are
//! wrapped, never buffered), and when the response body is finished or dropped it records the
//! request's counter and duration and writes one access-log event with target
//! `berth_registry::access`: method, path (never the query, which may hold secrets), status,
//! duration_ms, bytes_in, bytes_out, peer, user (`-` when anonymous), route, and `complete`
//! (false when the client went away before the response body was sent). A request whose
//! handler never answered because the client disconnected is logged and counted with status
//! 499. Routes are [`Route::label`]s plus `web`, `token`, `metrics` and `invalid`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

use super::AppState;
use super::route::Route;
use crate::auth::Principal;
use crate::metrics::{self, Metrics};

/// Status recorded for a request abandoned before its handler answered (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

/// The route label index of a path.
fn route_index(path: &str) -> usize {
    let label = match Route::parse(path) {
        Some(Ok(r)) => r.label(),
        Some(Err(_)) => "invalid",
        None if path == "/metrics" => "metrics",
        None if path == "/token" => "token",
        None => "web",
    };
    metrics::route_index(label)
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
            route = metrics::ROUTES[self.route],
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
            self.metrics.received(n);
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
                    this.finish.metrics.sent(n);
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
    metrics.started();
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
        let label = |p: &str| metrics::ROUTES[route_index(p)];
        assert_eq!(label("/v2/"), "base");
        assert_eq!(label("/v2/a/blobs/sha256:00"), "blob");
        assert_eq!(label("/v2/a/blobs/uploads/x"), "upload");
        assert_eq!(label("/v2/A/blobs/x"), "invalid");
        assert_eq!(label("/metrics"), "metrics");
        assert_eq!(label("/token"), "token");
        assert_eq!(label("/ui/x"), "web");
        assert_eq!(method_label(&Method::CONNECT), "OTHER");
    }
}
