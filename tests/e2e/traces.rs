//! Traces over OTLP/HTTP: a real hub and a real worker export the event
//! path's spans to a collector the test runs on loopback, in the caller's
//! trace; with no endpoint set, nothing is sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node_host_e2e::{Hub, Service, guest, http, node_host, scratch_dir};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::json;

/// One exported span: its service, name, trace and parent.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
}

/// An OTLP/HTTP collector on 127.0.0.1 that keeps every span it is sent.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Collector {
    fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let app = axum::Router::new().route(
                    "/v1/traces",
                    axum::routing::post(move |body: axum::body::Bytes| {
                        let kept = kept.clone();
                        async move {
                            let request = ExportTraceServiceRequest::decode(body).unwrap();
                            let mut spans = kept.lock().unwrap();
                            for resource in request.resource_spans {
                                let service = resource
                                    .resource
                                    .iter()
                                    .flat_map(|r| &r.attributes)
                                    .find(|kv| kv.key == "service.name")
                                    .and_then(|kv| kv.value.as_ref())
                                    .map(|v| format!("{:?}", v.value))
                                    .unwrap_or_default();
                                for scope in resource.scope_spans {
                                    for span in scope.spans {
                                        spans.push(Span {
                                            service: service.clone(),
                                            name: span.name,
                                            trace: hex(&span.trace_id),
                                            id: hex(&span.span_id),
                                            parent: hex(&span.parent_span_id),
                                        });
                                    }
                                }
                            }
                            ""
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Self { url, spans }
    }

    /// Waits (bounded) until the spans of `trace` include every one of
    /// `names` from `service`, and returns the trace's spans.
    fn wait_for(&self, trace: &str, service: &str, names: &[&str]) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|span| span.trace == trace)
                .cloned()
                .collect();
            let has = |name: &&str| {
                spans
                    .iter()
                    .any(|span| span.name == *name && span.service.contains(service))
            };
            if names.iter().all(has) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no {names:?} from {service} in trace {trace}; spans: {spans:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn execute_in_trace(
    hub: &Hub,
    token: &str,
    node: &str,
    inputs: serde_json::Value,
    trace: &str,
    parent: &str,
) {
    let response = http()
        .post(format!("{}/api/remote_nodes/{node}/execute", hub.url))
        .bearer_auth(token)
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .json(&serde_json::json!({ "inputs": inputs }))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{:?}", response.text());
}

#[test]
fn the_event_path_is_traced_into_the_callers_trace_over_otlp() {
    let collector = Collector::start();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let hub = Hub::start_at_with_env(&scratch_dir("traces"), "127.0.0.1:0", &[], &env);
    let token = hub.token("alice", false);
    hub.upload(&token, "hello").expect_success();

    // An uploaded node, run by the hub: receive → queue → sandbox → reply.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    execute_in_trace(
        &hub,
        &token,
        "hello",
        json!({"name": "Ada"}),
        trace,
        caller_span,
    );
    let spans = collector.wait_for(trace, "hub", &["receive", "queue", "sandbox", "reply"]);
    let receive = spans.iter().find(|s| s.name == "receive").unwrap();
    assert_eq!(receive.parent, caller_span, "a child of the caller's span");
    for name in ["queue", "sandbox", "reply"] {
        let span = spans.iter().find(|s| s.name == name).unwrap();
        assert_ne!(span.parent, "", "{name} has a parent in the trace");
        assert!(
            spans.iter().any(|s| s.id == span.parent),
            "{name}'s parent was exported"
        );
    }

    // A worker's node: the hub hands the trace on, the worker continues it.
    let mut worker = node_host();
    worker
        .arg("run")
        .arg(guest("echo"))
        .args(["--backend", &hub.url, "--token", &token])
        .envs(env);
    let mut worker = Service::start(&mut worker);
    worker.wait_for_line("serving", node_host_e2e::START_BOUND);
    let trace = "0af7651916cd43dd8448eb211c80319c";
    execute_in_trace(
        &hub,
        &token,
        "echo",
        json!({"a": 1}),
        trace,
        "b7ad6b7169203331",
    );
    let spans = collector.wait_for(trace, "worker", &["receive", "queue", "sandbox", "reply"]);
    let hub_wait = spans
        .iter()
        .find(|s| s.name == "worker" && s.service.contains("hub"))
        .expect("the hub's wait for the worker");
    let worker_receive = spans
        .iter()
        .find(|s| s.name == "receive" && s.service.contains("worker"))
        .unwrap();
    assert_eq!(
        worker_receive.parent, hub_wait.id,
        "the worker continues the hub's span"
    );
}

#[test]
fn nothing_is_sent_without_an_endpoint() {
    let collector = Collector::start();
    // The collector's address is known but not given: nothing may reach it.
    let hub = Hub::start("traces-off");
    let token = hub.token("alice", false);
    hub.upload(&token, "hello").expect_success();
    let (trace, parent) = ("11111111111111111111111111111111", "2222222222222222");
    execute_in_trace(&hub, &token, "hello", json!({}), trace, parent);
    std::thread::sleep(Duration::from_millis(500));
    assert!(collector.spans.lock().unwrap().is_empty());
}
