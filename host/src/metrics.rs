//! Prometheus metrics shared by the worker and the hub: events by node and
//! outcome, a latency histogram, events in flight and fuel burned.
//!
//! Counting and the `/metrics` answer live here; routing it is the caller's business.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

/// One process's metrics; cheap to clone (every field is shared).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    events: Family<EventLabels, Counter>,
    latency: Histogram,
    in_flight: Gauge,
    fuel: Family<NodeLabel, Counter<u64, AtomicU64>>,
    connections: Gauge,
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
        self.events
            .get_or_create(&EventLabels {
                node: node.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.latency.observe(elapsed.as_secs_f64());
        if fuel > 0 {
            self.fuel
                .get_or_create(&NodeLabel {
                    node: node.to_owned(),
                })
                .inc_by(fuel);
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
}
