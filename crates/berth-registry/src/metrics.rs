//! The registry's metrics registry: request counters, duration histograms, byte counters and
//! the in-flight gauge, rendered in Prometheus text format 0.0.4. Routes are the labels in
//! [`ROUTES`]. Recording requests as they pass (and the access log) is the HTTP layer's
//! (`http::metrics`); this module knows nothing of HTTP.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Route labels; a request's label is an index into this list.
pub const ROUTES: [&str; 12] = [
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

    /// Counts a request that has arrived and is being served.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts request body bytes received.
    pub fn received(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts response body bytes sent.
    pub fn sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    /// Records a finished request: its route (an index into [`ROUTES`], see [`route_index`]),
    /// method label, status and duration.
    pub fn finished(&self, route: usize, method: &'static str, status: u16, secs: f64) {
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

/// The index in [`ROUTES`] of a route label; unknown labels count as `invalid`.
pub fn route_index(label: &str) -> usize {
    ROUTES
        .iter()
        .position(|r| *r == label)
        .unwrap_or(ROUTES.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_cumulative_buckets_and_counters() {
        let m = Metrics::new();
        for (secs, status) in [(0.001, 200), (0.02, 200), (3.0, 404), (1000.0, 200)] {
            m.started();
            m.finished(5, "GET", status, secs);
        }
        m.sent(42);
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
