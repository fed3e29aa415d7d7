//! Prometheus metrics shared by the worker and the hub: events by node and
//! outcome, a latency histogram, events in flight and fuel burned.
//!
//! Counting and the `/metrics` answer live here; routing it is the caller's business.
//!
//! Label values come from accounts (node names) and from workers (error
//! codes), so they are escaped (prometheus-client writes them as given), cut
//! to [`MAX_LABEL_CHARS`], and each label keeps at most [`MAX_LABEL_VALUES`]
//! distinct values; later ones are counted as `_other`. No account can forge
//! a series or grow the registry without bound.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Distinct values one label keeps; beyond, events count as `_other`.
pub const MAX_LABEL_VALUES: usize = 1_000;

/// Characters of a label value kept.
pub const MAX_LABEL_CHARS: usize = 128;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    node: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

/// One process's metrics; cheap to clone (every field is shared).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    events: Family<EventLabels, Counter>,
    latency: Histogram,
    in_flight: Gauge,
    fuel: Family<NodeLabel, Counter<u64, AtomicU64>>,
    connections: Gauge,
    requests: Option<Family<CodeLabel, Counter>>,
    nodes: Arc<LabelValues>,
    outcomes: Arc<LabelValues>,
}

/// The values one label has taken, bounded.
#[derive(Debug, Default)]
struct LabelValues(Mutex<HashSet<String>>);

impl LabelValues {
    /// `value` as the label holds it: escaped for the text format, cut, or
    /// `_other` once [`MAX_LABEL_VALUES`] others are taken.
    fn of(&self, value: &str) -> String {
        let mut escaped = String::with_capacity(value.len());
        for c in value.chars().take(MAX_LABEL_CHARS) {
            match c {
                '\\' => escaped.push_str("\\\\"),
                '"' => escaped.push_str("\\\""),
                '\n' => escaped.push_str("\\n"),
                c => escaped.push(c),
            }
        }
        let mut values = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        if values.contains(&escaped) {
            return escaped;
        }
        if values.len() >= MAX_LABEL_VALUES {
            return "_other".to_owned();
        }
        values.insert(escaped.clone());
        escaped
    }
}

impl Metrics {
    /// Metrics named `node_host_<component>_…`, e.g. component `worker`.
    pub fn new(component: &str) -> Self {
        let mut registry = Registry::with_prefix(format!("node_host_{component}"));
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Events finished, by node and outcome (ok or an error code)",
            events.clone(),
        );
        // 10 µs to ~84 s: a fresh-sandbox hello up to the longest deadline.
        let latency = Histogram::new(exponential_buckets(10e-6, 2.0, 24));
        registry.register(
            "event_seconds",
            "Time from receiving an event to its reply",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight",
            "Events received and not yet answered",
            in_flight.clone(),
        );
        let fuel = Family::<NodeLabel, Counter<u64, AtomicU64>>::default();
        registry.register("fuel_used", "Fuel burned by events, by node", fuel.clone());
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        Self {
            registry: Arc::new(registry),
            events,
            latency,
            in_flight,
            fuel,
            connections,
            requests: None,
            nodes: Arc::default(),
            outcomes: Arc::default(),
        }
    }

    /// [`new`](Self::new) plus requests answered by a server, by status
    /// code (`node_host_<component>_requests_total{code="OK"}`): those turned
    /// away before they became events among them.
    pub fn with_requests(component: &str) -> Self {
        let mut metrics = Self::new(component);
        let requests = Family::<CodeLabel, Counter>::default();
        Arc::get_mut(&mut metrics.registry)
            .expect("a new registry has one owner")
            .register(
                "requests",
                "Requests answered, by status code",
                requests.clone(),
            );
        metrics.requests = Some(requests);
        metrics
    }

    /// A request answered with status `code`; a no-op without
    /// [`with_requests`](Self::with_requests).
    pub fn request(&self, code: &'static str) {
        if let Some(requests) = &self.requests {
            requests.get_or_create(&CodeLabel { code }).inc();
        }
    }

    /// An event started.
    pub fn started(&self) {
        self.in_flight.inc();
    }

    /// An event that [`started`](Self::started) finished with `outcome`
    /// (`ok` or an error code) after `elapsed`, burning `fuel`.
    pub fn finished(&self, node: &str, outcome: &str, elapsed: Duration, fuel: u64) {
        self.in_flight.dec();
        let node = self.nodes.of(node);
        self.events
            .get_or_create(&EventLabels {
                node: node.clone(),
                outcome: self.outcomes.of(outcome),
            })
            .inc();
        self.latency.observe(elapsed.as_secs_f64());
        if fuel > 0 {
            self.fuel.get_or_create(&NodeLabel { node }).inc_by(fuel);
        }
    }

    /// Counts an event of `node` as started; see [`InFlight`].
    pub fn start(&self, node: &str) -> InFlight {
        self.started();
        InFlight {
            metrics: self.clone(),
            node: node.to_owned(),
            started: Instant::now(),
            finished: false,
        }
    }

    /// The count of open connections changed by `delta`.
    pub fn connections(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// The answer to `GET /metrics`: [`render`](Self::render) with its content type.
    pub fn http_response(&self) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        (
            [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
            self.render(),
        )
            .into_response()
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// An event counted as started. [`finish`](Self::finish) counts how it
/// ended; dropped without that (its caller went away), it is counted as
/// `abandoned`, so that the in-flight gauge never keeps an event nobody
/// waits for.
#[must_use = "an event dropped at once is counted as abandoned"]
#[derive(Debug)]
pub struct InFlight {
    metrics: Metrics,
    node: String,
    started: Instant,
    finished: bool,
}

impl InFlight {
    /// Counts the event as finished with `outcome` (`ok` or an error code).
    pub fn finish(mut self, outcome: &str, fuel: u64) {
        self.finished = true;
        let elapsed = self.started.elapsed();
        self.metrics.finished(&self.node, outcome, elapsed, fuel);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.finished {
            let elapsed = self.started.elapsed();
            self.metrics.finished(&self.node, "abandoned", elapsed, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_events_latency_in_flight_and_fuel() {
        let metrics = Metrics::new("worker");
        metrics.started();
        metrics.started();
        metrics.finished("hello", "ok", Duration::from_micros(40), 1200);
        let text = metrics.render();
        assert!(
            text.contains(r#"node_host_worker_events_total{node="hello",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains("node_host_worker_in_flight 1"), "{text}");
        assert!(
            text.contains(r#"node_host_worker_fuel_used_total{node="hello"} 1200"#),
            "{text}"
        );
        assert!(
            text.contains("node_host_worker_event_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn requests_are_counted_by_code_where_asked_for() {
        let metrics = Metrics::with_requests("juturna");
        metrics.request("OK");
        metrics.request("OK");
        metrics.request("UNAVAILABLE");
        let text = metrics.render();
        assert!(
            text.contains(r#"node_host_juturna_requests_total{code="OK"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"node_host_juturna_requests_total{code="UNAVAILABLE"} 1"#),
            "{text}"
        );
        let plain = Metrics::new("worker");
        plain.request("OK");
        assert!(!plain.render().contains("requests"));
    }

    #[test]
    fn label_values_cannot_forge_series_or_grow_without_bound() {
        let metrics = Metrics::new("hub");
        let forged = "x\"} 1\nnode_host_hub_forged 1\n#";
        metrics.started();
        metrics.finished(forged, "ok", Duration::from_micros(1), 0);
        let text = metrics.render();
        assert!(
            !text
                .lines()
                .any(|line| line.starts_with("node_host_hub_forged")),
            "{text}"
        );
        assert!(
            text.contains(r#"node="x\"} 1\nnode_host_hub_forged 1\n#""#),
            "{text}"
        );
        for node in 0..MAX_LABEL_VALUES + 5 {
            metrics.started();
            metrics.finished(&format!("n{node}"), "ok", Duration::from_micros(1), 0);
        }
        let text = metrics.render();
        assert!(text.contains(r#"node="_other",outcome="ok"} 6"#), "{text}");
        metrics.started();
        metrics.finished(&"y".repeat(10_000), "ok", Duration::from_micros(1), 0);
        assert!(metrics.render().lines().all(|line| line.len() < 1_000));
    }
}
