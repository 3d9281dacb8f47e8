//! Prometheus metrics: request counts by route and status, and request
//! latency histograms by route. Routes are the router's patterns (never raw
//! paths), so the number of series stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Label for requests no route matched (static files, 404 pages).
pub const UNMATCHED: &str = "unmatched";

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Series>,
}

/// By method, then route (looked up without allocating: this runs for
/// every request, boot storms included).
#[derive(Default)]
struct Series {
    methods: BTreeMap<String, BTreeMap<String, Route>>,
}

#[derive(Default)]
struct Route {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
}

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut series = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !series.methods.contains_key(method) {
            series.methods.insert(method.to_string(), BTreeMap::new());
        }
        let Some(routes) = series.methods.get_mut(method) else {
            return;
        };
        if !routes.contains_key(route) {
            routes.insert(route.to_string(), Route::default());
        }
        let Some(stats) = routes.get_mut(route) else {
            return;
        };
        *stats.statuses.entry(status).or_default() += 1;
        let histogram = &mut stats.latency;
        for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let series = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP bootler_build_info Version of the running bootler."
        );
        let _ = writeln!(out, "# TYPE bootler_build_info gauge");
        let _ = writeln!(
            out,
            "bootler_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            out,
            "# HELP bootler_http_requests_total HTTP requests answered, by method, route and status."
        );
        let _ = writeln!(out, "# TYPE bootler_http_requests_total counter");
        let routes = || {
            series.methods.iter().flat_map(|(method, routes)| {
                routes.iter().map(move |(route, r)| (method, route, r))
            })
        };
        for (method, route, stats) in routes() {
            for (status, count) in &stats.statuses {
                let _ = writeln!(
                    out,
                    "bootler_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                    escape(method),
                    escape(route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP bootler_http_request_duration_seconds Time to answer HTTP requests, by method and route."
        );
        let _ = writeln!(
            out,
            "# TYPE bootler_http_request_duration_seconds histogram"
        );
        for (method, route, stats) in routes() {
            let histogram = &stats.latency;
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
                let _ = writeln!(
                    out,
                    "bootler_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "bootler_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "bootler_http_request_duration_seconds_sum{{{labels}}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "bootler_http_request_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The route pattern of a request, with axum's internal wildcard names
/// folded to `*`.
fn route_label(matched: Option<&MatchedPath>) -> std::borrow::Cow<'_, str> {
    match matched {
        Some(path) if !path.as_str().contains("{*") => std::borrow::Cow::Borrowed(path.as_str()),
        Some(path) => path
            .as_str()
            .split('/')
            .map(|segment| {
                if segment.starts_with("{*") {
                    "*"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
            .into(),
        None => UNMATCHED.into(),
    }
}

/// Middleware: times every request and records it.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    state.metrics.record(
        method.as_str(),
        &route_label(matched.as_ref()),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
pub async fn export(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

pub fn shared() -> Arc<Metrics> {
    Arc::new(Metrics::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_histograms_render_in_prometheus_text() {
        let metrics = Metrics::default();
        metrics.record("GET", "/healthz", 200, 0.002);
        metrics.record("GET", "/healthz", 200, 0.3);
        metrics.record("GET", "/readyz", 503, 0.02);
        let text = metrics.render();
        assert!(text.contains(
            "bootler_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "bootler_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"503\"} 1\n"
        ));
        assert!(text.contains(
            "bootler_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "bootler_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.5\"} 2\n"
        ));
        assert!(text.contains(
            "bootler_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.contains(
            "bootler_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 2\n"
        ));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
