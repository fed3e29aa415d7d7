//! What the fuzz targets in `fuzz/` (cargo fuzz) call: each feeds arbitrary
//! bytes to a real parser of the hub, the worker or the sandbox, and checks
//! what must hold besides not crashing. Hidden: not an API.
//!
//! Built only with `--cfg fuzzing` (which cargo fuzz sets) or for tests, so
//! the shipped binary carries none of it.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::Value as Json;
use tower::ServiceExt as _;

use crate::core::{Event, Executors, Runner, Terms};
use crate::hub::service::{Hub, HubConfig, KEEPALIVE, TOKEN_RECHECK, UploadQuota};
use crate::metrics::Metrics;
use crate::protocol::{hosted, hurozo};
use crate::sandbox::value::{from_json, inputs_from_json, outputs_to_json, to_json};
use crate::sandbox::{Limits, NodeComponent, Sandbox, SandboxConfig};

/// One in-memory hub for every input of a process, with an account token
/// and the `hello` example uploaded, so execute bodies reach a sandbox.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    hub: Arc<Hub>,
    token: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (hub, token) = runtime.block_on(async {
            let hub = Hub::open(&HubConfig {
                outbound: Default::default(),
                data_dir: None,
                database: None,
                components_dir: None,
                nats: None,
                public_ws_url: None,
                sandbox: SandboxConfig {
                    pooling: false,
                    ..SandboxConfig::default()
                },
                upload_wait: Duration::from_secs(60),
                quota: UploadQuota::default(),
                keepalive: KEEPALIVE,
                token_recheck: TOKEN_RECHECK,
                exosphere_lease: crate::hub::service::EXOSPHERE_LEASE,
                history: Default::default(),
            })
            .await
            .expect("an in-memory hub");
            let token = hub
                .store()
                .create_token("fuzz", false, None)
                .await
                .expect("a token")
                .token;
            let caller = hub.authenticate(Some(&token)).await.expect("the token");
            hub.upload(&caller, hello_bytes().into())
                .await
                .expect("hello uploads");
            (hub, token)
        });
        Fixture {
            runtime,
            hub,
            token,
        }
    })
}

/// A sandbox for one input at a time: instances allocated on demand, no
/// compile cache.
fn bare_sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        pooling: false,
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .expect("a sandbox")
}

/// The `hello` example's component.
fn hello_bytes() -> Vec<u8> {
    std::fs::read(example("hello")).expect(
        "guest-examples/dist/hello.wasm: build the guests first (guest-examples/rust/build)",
    )
}

/// A guest example's component, `guest-examples/dist/<name>.wasm`.
pub fn example(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-examples/dist")
        .join(format!("{name}.wasm"))
}

/// A frame from a worker, as the hub reads it from a Hurozo worker's and a
/// hosted worker's WebSocket.
pub fn hub_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = fixture();
    let hub = &fixture.hub;
    let (link, _outbox) = hub.worker_connected(1, ["hello".to_owned()].into());
    hub.worker_frame(link, text);
    hub.disconnected(link, "worker");
    let (link, _outbox, _hello) = hub.hosted_worker_connected();
    hub.hosted_worker_frame(link, text);
    hub.disconnected(link, "hosted worker");
}

/// A frame from the hub, as a Hurozo worker and a hosted worker read it:
/// an event that parses becomes a domain event that names its node.
pub fn worker_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = serde_json::from_str::<hurozo::Event>(text) {
        let node = event.node.clone();
        let (domain, _uuid) = event.into_domain(1);
        assert_eq!(domain.node, node);
    }
    if let Ok(hosted::ToWorker::Event(event)) = serde_json::from_str::<hosted::ToWorker>(text) {
        let _ = event.limits.to_limits();
    }
}

/// An HTTP request to the hub: the first byte picks the route, the rest is
/// the body. Every answer is a status with a JSON body, and an error names
/// a code.
pub fn http_request(data: &[u8]) {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let (method, uri) = match route % 6 {
        0 => (Method::POST, "/api/remote_nodes/register"),
        1 => (Method::POST, "/api/remote_nodes/hello/execute"),
        2 => (Method::PUT, "/api/secrets/fuzzed"),
        3 => (Method::POST, "/api/remote_nodes/unknown/execute"),
        4 => (Method::GET, "/api/remote_nodes"),
        _ => (Method::DELETE, "/api/secrets/fuzzed"),
    };
    let fixture = fixture();
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {}", fixture.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let router = crate::hub::router(fixture.hub.clone());
    fixture.runtime.block_on(async {
        let response = router.oneshot(request).await.expect("the router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        let answer: Json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("{status}: the answer is not JSON ({err})"));
        if !status.is_success() {
            assert!(
                answer["code"].as_str().is_some_and(|code| !code.is_empty()),
                "{status}: an error without a code: {answer}"
            );
        }
    });
}

/// JSON to node values and back: every JSON document converts, and the
/// conversion is stable (converting the result again changes nothing).
pub fn json_values(data: &[u8]) {
    let Ok(json) = serde_json::from_slice::<Json>(data) else {
        return;
    };
    let once = to_json(&from_json(json.clone())).expect("every JSON value has a JSON form");
    let twice = to_json(&from_json(once.clone())).expect("and so does its conversion");
    assert_eq!(once, twice);
    if let Json::Object(object) = json {
        let names: Vec<String> = object.keys().cloned().collect();
        let inputs = inputs_from_json(object);
        assert_eq!(inputs.len(), names.len());
        let outputs: Vec<_> = inputs
            .into_iter()
            .map(|input| (input.name, input.value))
            .collect();
        let back = outputs_to_json(&outputs).expect("every input has a JSON form");
        assert_eq!(back.keys().cloned().collect::<Vec<_>>(), names);
    }
}

/// Component bytes as an upload brings them: loading refuses them or
/// accepts a node, and an accepted node's event ends within its limits.
pub fn component(data: &[u8]) {
    static SANDBOX: OnceLock<(Sandbox, Runner)> = OnceLock::new();
    let (sandbox, runner) = SANDBOX.get_or_init(|| {
        let sandbox = bare_sandbox();
        let runner = Runner::new(Executors::new("fuzz-event", 1, None), Metrics::new("fuzz"));
        (sandbox, runner)
    });
    let Ok(node) = sandbox.load(data) else {
        return;
    };
    let node: Arc<NodeComponent> = Arc::new(node);
    let limits = Limits {
        fuel: 10_000_000,
        memory_bytes: 16 << 20,
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let event = Event {
        id: "fuzz".into(),
        account: 1,
        node: node.name().to_owned(),
        inputs: Vec::new(),
        deadline: Some(Instant::now() + Duration::from_secs(5)),
    };
    let terms = Terms {
        limits,
        secrets: Arc::default(),
    };
    let started = Instant::now();
    let outcome = runner.run_blocking(event, node, terms);
    assert!(outcome.is_ok(), "the runner ran the event");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an event under a 200 ms deadline took {:?}",
        started.elapsed()
    );
}

/// A gRPC request body as Juturna's Warp sends it: bytes that decode as an
/// envelope are answered by the real service over `hello`, a reply that
/// names its request or a status with a reason, never a panic.
pub fn juturna_envelope(data: &[u8]) {
    use crate::juturna::proto::messaging::ProtoEnvelope;
    use crate::juturna::proto::messaging::messaging_service_server::MessagingService as _;
    use crate::juturna::{Messaging, Served};
    use prost::Message as _;
    static SERVICE: OnceLock<(tokio::runtime::Runtime, Messaging)> = OnceLock::new();
    let Ok(envelope) = ProtoEnvelope::decode(data) else {
        return;
    };
    let (runtime, messaging) = SERVICE.get_or_init(|| {
        let sandbox = bare_sandbox();
        let hello = hello_bytes();
        let node = Arc::new(sandbox.load(&hello).expect("hello loads"));
        let served = Served {
            node,
            limits: Limits {
                timeout: Duration::from_millis(500),
                ..Limits::default()
            },
            pipe_name: "fuzz".into(),
            default_config: serde_json::Map::new(),
            concurrency: 1,
        };
        let metrics = Metrics::with_requests("fuzz");
        let runner = Runner::new(Executors::new("fuzz-event", 1, None), metrics.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        (runtime, Messaging::new(served, runner, metrics))
    });
    let id = envelope.id.clone();
    let answer = runtime.block_on(messaging.send_and_receive(tonic::Request::new(envelope)));
    match answer {
        Ok(reply) => {
            let reply = reply.into_inner();
            assert_eq!(reply.response_to, id);
            assert_eq!(reply.sender, "fuzz");
            assert!(reply.message.and_then(|message| message.payload).is_some());
        }
        Err(status) => {
            assert_ne!(status.code(), tonic::Code::Unknown, "{status:?}");
            assert!(!status.message().is_empty(), "{status:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each entry point on a few inputs, so the targets cannot rot unbuilt.

    #[test]
    fn the_entry_points_take_good_and_bad_inputs() {
        for input in [
            &b""[..],
            b"{}",
            b"not json",
            br#"{"node":"hello","outputs":{"greeting":"g"},"uuid":"u"}"#,
            br#"{"type":"reply","reply":{"node":"x","outputs":{},"uuid":1},"logs":{}}"#,
            br#"{"type":"remote_node","node":"hello","inputs":{"name":"Ada"},"uuid":"1"}"#,
            b"\x01{\"inputs\": {\"name\": \"Ada\"}}",
            b"\x00{\"name\": \"n\", \"outputs\": [\"o\"]}",
            b"\x02{\"value\": \"v\"}",
            br#"{"$bytes": "AAEC", "x": [1, 2.5, 18446744073709551615, null]}"#,
            b"\x00asm\x0d\x00\x01\x00",
        ] {
            super::hub_frame(input);
            super::worker_frame(input);
            super::http_request(input);
            super::json_values(input);
            super::component(input);
            super::juturna_envelope(input);
        }
        super::component(&std::fs::read(super::example("spin-loop")).unwrap());
    }

    #[test]
    fn a_juturna_envelope_is_answered_or_refused_with_a_reason() {
        use crate::juturna::payload::{any, proto_of};
        use crate::juturna::proto::messaging::ProtoEnvelope;
        use crate::juturna::proto::payloads::{ObjectProtoPayload, ProtoMessage};
        use prost::Message as _;
        let object = |name: &str| ObjectProtoPayload {
            data: Some(prost_types::Struct {
                fields: [("name".to_owned(), proto_of(name.into()))].into(),
            }),
        };
        let envelope = |sender: &str| ProtoEnvelope {
            id: "e1".into(),
            sender: sender.into(),
            message: Some(ProtoMessage {
                payload: Some(any("ObjectProtoPayload", &object("Ada"))),
                ..ProtoMessage::default()
            }),
            ..ProtoEnvelope::default()
        };
        super::juturna_envelope(&envelope("warp").encode_to_vec());
        super::juturna_envelope(&envelope("").encode_to_vec());
    }
}
