//! Logs and traces. Logs go to stderr (`NODE_HOST_LOG`, `warn` by default).
//! Traces of the event path (receive → queue → sandbox → reply) go out over
//! OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, so the hub and workers
//! drop into a platform's own tracing: a `traceparent` header on an execute
//! request makes the event part of the caller's trace, and the hub hands
//! the trace on to the worker that runs it.
//!
//! The event path's spans have a target of their own, [`TARGET`], that the
//! log output never wants: with no exporter, no layer is interested in
//! them and each costs one cached check, not a span.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The target of the event path's spans.
pub const TARGET: &str = "node_host::trace";

static EXPORTING: OnceLock<bool> = OnceLock::new();

/// True when traces are exported (set once, at start).
pub fn exporting() -> bool {
    EXPORTING.get().copied().unwrap_or(false)
}

/// Keeps the exporter alive; dropping it sends what is still buffered.
#[must_use = "dropping it stops exporting traces"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            // Never a panic in a drop: stderr may be gone.
            let _ = writeln!(
                std::io::stderr(),
                "node-host: could not send the last traces: {err}"
            );
        }
    }
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty()))
}

/// Sets up logging, and trace export when OTLP is configured, for the
/// process `service` (`node-host-hub`, `node-host-worker`, …; the
/// `OTEL_SERVICE_NAME` variable overrides it).
pub fn init(service: &'static str) -> Telemetry {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("NODE_HOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    filter = filter.add_directive(format!("{TARGET}=off").parse().expect("a valid directive"));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_filter(filter);
    let provider = otlp_configured().then(|| exporter(service)).flatten();
    let _ = EXPORTING.set(provider.is_some());
    let traces = provider.as_ref().map(|provider| {
        let targets =
            tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("node-host"))
            .with_filter(targets)
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .init();
    Telemetry { provider }
}

fn exporter(service: &'static str) -> Option<SdkTracerProvider> {
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "node-host: traces are not exported: {err} (check OTEL_EXPORTER_OTLP_ENDPOINT, \
                 e.g. http://127.0.0.1:4318)"
            );
            return None;
        }
    };
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| service.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .build();
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    )
}

/// Makes `span` part of the trace a W3C `traceparent` names (a caller's,
/// or the hub's for a worker); nothing when traces are not exported or
/// the value is not one.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| exporting()) else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(context);
}

/// The W3C `traceparent` of `span`, to hand its trace on; `None` when
/// traces are not exported.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !exporting() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}
