//! `node-host serve juturna` as a Juturna pipeline's Warp node calls it:
//! `MessagingService/SendAndReceive` over gRPC, from node-host's generated
//! client. `juturna_python.rs` drives it with Juturna's own.

use std::time::{Duration, Instant};

use node_host::juturna::payload::{any, json_of_struct, proto_of};
use node_host::juturna::proto::messaging::ProtoEnvelope;
use node_host::juturna::proto::messaging::messaging_service_client::MessagingServiceClient;
use node_host::juturna::proto::payloads::{
    BatchProto, BytesProtoPayload, ImageProtoPayload, ObjectProtoPayload, ProtoMessage,
    VideoProtoPayload,
};
use node_host_e2e::{START_BOUND, Service, guest, http, juturna_port, node_host, serve_juturna};
use prost::Message as _;
use serde_json::{Value, json};
use tonic::Code;

/// `node-host serve juturna <guest>` on a port the OS picks.
fn serve(name: &str, extra: &[&str]) -> (Service, String) {
    let mut args = vec!["--pipe-name", "remote-hello"];
    args.extend_from_slice(extra);
    let (service, port) = serve_juturna(name, &args);
    (service, format!("http://127.0.0.1:{port}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An envelope from `sender` whose message carries `payload`.
fn envelope(sender: &str, payload: prost_types::Any, ttl: i64) -> ProtoEnvelope {
    ProtoEnvelope {
        id: "request-1".into(),
        message: Some(ProtoMessage {
            created_at: 1.5,
            creator: "source".into(),
            version: 7,
            payload: Some(payload),
            timers: [("decoded".to_owned(), 0.25)].into(),
            id: 42,
            ..Default::default()
        }),
        sender: sender.into(),
        ttl,
        ..Default::default()
    }
}

fn object(json: Value) -> prost_types::Any {
    let Value::Object(map) = json else {
        panic!("an object")
    };
    let data = prost_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, proto_of(v))).collect(),
    };
    any(
        "ObjectProtoPayload",
        &ObjectProtoPayload { data: Some(data) },
    )
}

/// Sends `request`; the reply or the status.
fn send(url: &str, request: ProtoEnvelope) -> Result<ProtoEnvelope, tonic::Status> {
    runtime().block_on(async {
        let mut client = MessagingServiceClient::connect(url.to_owned())
            .await
            .expect("connects");
        client
            .send_and_receive(request)
            .await
            .map(tonic::Response::into_inner)
    })
}

/// A connection to `url`.
async fn channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("a URL")
        .connect()
        .await
        .expect("connects")
}

fn reply_object(reply: &ProtoEnvelope) -> Value {
    let payload = reply.message.as_ref().unwrap().payload.as_ref().unwrap();
    assert!(
        payload.type_url.ends_with("ObjectProtoPayload"),
        "{}",
        payload.type_url
    );
    let object = ObjectProtoPayload::decode(payload.value.as_slice()).unwrap();
    Value::Object(json_of_struct(object.data.unwrap()))
}

#[test]
fn an_object_message_runs_the_node_and_comes_back_as_juturna_expects() {
    let (_service, url) = serve("hello", &[]);
    let reply = send(&url, envelope("warp", object(json!({"name": "Ada"})), 5)).unwrap();
    assert_eq!(
        reply_object(&reply),
        json!({"greeting": "Hello Ada", "shout": "HELLO ADA"})
    );
    assert_eq!(reply.response_to, "request-1");
    assert_eq!(reply.sender, "remote-hello");
    assert_eq!(reply.request_type, "ObjectPayload");
    assert_eq!(reply.ttl, 5);
    let message = reply.message.as_ref().unwrap();
    assert_eq!(
        (message.creator.as_str(), message.version, message.id),
        ("source", 7, 42)
    );
    assert_eq!(message.timers["decoded"], 0.25);
    let metadata = json_of_struct(reply.metadata.clone().unwrap());
    assert!(
        metadata["processing_time"].as_f64().is_some(),
        "{metadata:?}"
    );
    // Every reply has an id of its own.
    let again = send(&url, envelope("warp", object(json!({"name": "Bo"})), 5)).unwrap();
    assert!(!reply.id.is_empty());
    assert_ne!(reply.id, again.id);
}

#[test]
fn bytes_and_image_payloads_reach_the_node_as_data() {
    let (_service, url) = serve("reverse", &[]);
    let bytes = any(
        "BytesProtoPayload",
        &BytesProtoPayload {
            cnt: vec![1, 2, 3],
            size: 3,
        },
    );
    let reply = send(&url, envelope("warp", bytes, 5)).unwrap();
    let payload = reply.message.unwrap().payload.unwrap();
    assert!(payload.type_url.ends_with("BytesProtoPayload"));
    assert_eq!(
        BytesProtoPayload::decode(payload.value.as_slice())
            .unwrap()
            .cnt,
        [3, 2, 1]
    );
    assert_eq!(reply.request_type, "BytesPayload");
    // The node declares `data` and `width`: the image's other fields are
    // left out rather than refused.
    let image = ImageProtoPayload {
        image_data: vec![9, 8],
        dtype: "uint8".into(),
        width: 2,
        height: 1,
        depth: 1,
        ..Default::default()
    };
    let reply = send(&url, envelope("warp", any("ImageProtoPayload", &image), 5)).unwrap();
    let payload = reply.message.unwrap().payload.unwrap();
    assert_eq!(
        BytesProtoPayload::decode(payload.value.as_slice())
            .unwrap()
            .cnt,
        [8, 9]
    );
}

#[test]
fn bad_requests_get_a_clear_status_and_the_service_goes_on() {
    let (_service, url) = serve("hello", &[]);
    let missing_sender = send(&url, envelope("", object(json!({})), 5)).unwrap_err();
    assert_eq!(missing_sender.code(), Code::InvalidArgument);
    assert_eq!(
        missing_sender.message(),
        "Missing sender in request envelope"
    );

    let mut no_payload = envelope("warp", object(json!({})), 5);
    no_payload.message.as_mut().unwrap().payload = None;
    let status = send(&url, no_payload).unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let unknown_input = send(&url, envelope("warp", object(json!({"nope": 1})), 5)).unwrap_err();
    assert_eq!(unknown_input.code(), Code::InvalidArgument);
    assert!(
        unknown_input.message().starts_with("invalid_input: "),
        "{}",
        unknown_input.message()
    );

    let garbled = prost_types::Any {
        type_url: "type.googleapis.com/juturna.proto.payloads.BytesProtoPayload".into(),
        value: vec![0xff; 3],
    };
    assert_eq!(
        send(&url, envelope("warp", garbled, 5)).unwrap_err().code(),
        Code::InvalidArgument
    );

    let compressed = any("CompressedProtoPayload", &ObjectProtoPayload::default());
    let status = send(&url, envelope("warp", compressed, 5)).unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(
        status.message().contains("CompressedProtoPayload"),
        "{}",
        status.message()
    );

    assert!(send(&url, envelope("warp", object(json!({"name": "Ada"})), 5)).is_ok());
}

#[test]
fn a_node_error_is_a_status_with_its_code_and_the_next_request_succeeds() {
    let (_service, url) = serve("node-error", &[]);
    let status = send(&url, envelope("warp", object(json!({})), 5)).unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert!(
        status.message().starts_with("guest_error: refused"),
        "{}",
        status.message()
    );
    // The reference's node thread dies here; node-host's next sandbox runs.
    let status = send(&url, envelope("warp", object(json!({})), 5)).unwrap_err();
    assert_eq!(status.code(), Code::Internal);
}

#[test]
fn the_ttl_is_the_deadline() {
    let (_service, url) = serve("sleeper", &["--timeout", "60s"]);
    // Obeyed: a 50 ms sleep within a 5 s ttl.
    let reply = send(&url, envelope("warp", object(json!({"millis": 50})), 5)).unwrap();
    assert_eq!(
        reply_object(&reply)["slept"].as_i64().map(|ms| ms >= 50),
        Some(true)
    );
    // Violated: an hour's sleep, cut at the 1 s ttl.
    let started = Instant::now();
    let status = send(&url, envelope("warp", object(json!({})), 1)).unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn requests_beyond_the_concurrency_are_refused_as_resource_exhausted() {
    let (_service, url) = serve("sleeper", &["--concurrency", "1", "--timeout", "60s"]);
    let holding = {
        let url = url.clone();
        std::thread::spawn(move || {
            send(&url, envelope("warp", object(json!({"millis": 1500})), 10))
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let refused = send(&url, envelope("warp", object(json!({"millis": 1})), 10)).unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(holding.join().unwrap().is_ok());
    assert!(send(&url, envelope("warp", object(json!({"millis": 1})), 10)).is_ok());
}

#[test]
fn a_video_reaches_the_node_as_its_frames_bytes() {
    let (_service, url) = serve("reverse", &[]);
    let frame = |bytes: &[u8]| ImageProtoPayload {
        image_data: bytes.to_vec(),
        dtype: "uint8".into(),
        width: 2,
        height: 1,
        depth: 1,
        ..Default::default()
    };
    let video = VideoProtoPayload {
        frames: vec![frame(&[1, 2]), frame(&[3, 4])],
        frames_per_second: 25.0,
        codec: "raw".into(),
        ..Default::default()
    };
    let reply = send(&url, envelope("warp", any("VideoProtoPayload", &video), 5)).unwrap();
    let payload = reply.message.unwrap().payload.unwrap();
    assert_eq!(
        BytesProtoPayload::decode(payload.value.as_slice())
            .unwrap()
            .cnt,
        [4, 3, 2, 1]
    );
}

#[test]
fn a_batch_runs_each_message_alone_and_is_answered_as_a_batch() {
    let (_service, url) = serve("hello", &[]);
    let message = |id: i32, payload| ProtoMessage {
        creator: format!("source-{id}"),
        id,
        payload: Some(payload),
        ..Default::default()
    };
    let batch = BatchProto {
        messages: vec![
            message(1, object(json!({"name": "Ada"}))),
            message(2, object(json!({"name": "Bo"}))),
            message(3, object(json!({"name": "Cy"}))),
        ],
    };
    let reply = send(&url, envelope("warp", any("BatchProto", &batch), 5)).unwrap();
    assert_eq!(reply.request_type, "Batch");
    let payload = reply.message.as_ref().unwrap().payload.clone().unwrap();
    assert!(
        payload.type_url.ends_with("BatchProto"),
        "{}",
        payload.type_url
    );
    let answered = BatchProto::decode(payload.value.as_slice()).unwrap();
    let greetings: Vec<(i32, String, Value)> = answered
        .messages
        .iter()
        .map(|message| {
            let object = message.payload.as_ref().unwrap();
            let object = ObjectProtoPayload::decode(object.value.as_slice()).unwrap();
            let outputs = json_of_struct(object.data.unwrap());
            (
                message.id,
                message.creator.clone(),
                outputs["greeting"].clone(),
            )
        })
        .collect();
    assert_eq!(
        greetings,
        [
            (1, "source-1".to_owned(), json!("Hello Ada")),
            (2, "source-2".to_owned(), json!("Hello Bo")),
            (3, "source-3".to_owned(), json!("Hello Cy")),
        ]
    );

    // One message the node refuses fails the batch and says which.
    let batch = BatchProto {
        messages: vec![
            message(1, object(json!({"name": "Ada"}))),
            message(2, object(json!({"nope": 1}))),
        ],
    };
    let status = send(&url, envelope("warp", any("BatchProto", &batch), 5)).unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("batch message 1: invalid_input"),
        "{}",
        status.message()
    );
    let nested = BatchProto {
        messages: vec![message(1, any("BatchProto", &BatchProto::default()))],
    };
    let status = send(&url, envelope("warp", any("BatchProto", &nested), 5)).unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[test]
fn an_oversize_message_is_refused_and_the_service_goes_on() {
    let (_service, url) = serve("reverse", &[]);
    let big = vec![7u8; node_host::juturna::MAX_MESSAGE + 1];
    let bytes = any(
        "BytesProtoPayload",
        &BytesProtoPayload {
            size: big.len() as i64,
            cnt: big,
        },
    );
    let status = runtime().block_on(async {
        let mut client = MessagingServiceClient::connect(url.clone())
            .await
            .expect("connects")
            .max_encoding_message_size(usize::MAX);
        client
            .send_and_receive(envelope("warp", bytes, 5))
            .await
            .unwrap_err()
    });
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let small = any(
        "BytesProtoPayload",
        &BytesProtoPayload {
            cnt: vec![1, 2],
            size: 2,
        },
    );
    assert!(send(&url, envelope("warp", small, 5)).is_ok());
}

#[test]
fn health_and_metrics_answer() {
    let mut service = Service::start(
        node_host()
            .args(["serve", "juturna"])
            .arg(guest("hello"))
            .args(["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]),
    );
    let metrics_line = service.wait_for_line("metrics at", START_BOUND);
    let metrics_url = metrics_line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .expect("the metrics address")
        .to_owned();
    let url = format!("http://127.0.0.1:{}", juturna_port(&mut service));
    let status = runtime().block_on(async {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_client::HealthClient;
        let mut client = HealthClient::new(channel(&url).await);
        let mut status = Vec::new();
        for service in ["", "juturna.proto.messaging.MessagingService"] {
            let answer = client
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .expect("health answers")
                .into_inner();
            status.push(answer.status);
        }
        status
    });
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(status, [serving, serving]);

    send(&url, envelope("warp", object(json!({"name": "Ada"})), 5)).unwrap();
    send(&url, envelope("", object(json!({"name": "Ada"})), 5)).unwrap_err();
    send(&url, envelope("warp", object(json!({"nope": 1})), 5)).unwrap_err();
    let text = http().get(&metrics_url).send().unwrap().text().unwrap();
    for line in [
        r#"node_host_juturna_requests_total{code="OK"} 1"#,
        r#"node_host_juturna_requests_total{code="INVALID_ARGUMENT"} 2"#,
        r#"node_host_juturna_events_total{node="hello",outcome="ok"} 1"#,
        r#"node_host_juturna_events_total{node="hello",outcome="invalid_input"} 1"#,
        "node_host_juturna_event_seconds_count 2",
        "node_host_juturna_in_flight 0",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
}

#[test]
fn sigterm_drains_requests_in_hand_and_turns_new_ones_away() {
    let (mut service, url) = serve("sleeper", &["--timeout", "60s", "--grace", "20s"]);
    let in_hand = {
        let url = url.clone();
        std::thread::spawn(move || {
            send(&url, envelope("warp", object(json!({"millis": 1500})), 10))
        })
    };
    std::thread::sleep(Duration::from_millis(400));
    // One connection opened before the stop, used after it.
    let (refused, health) = runtime().block_on(async {
        let mut client = MessagingServiceClient::connect(url.clone())
            .await
            .expect("connects");
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&url).await);
        service.signal("TERM");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let refused = client
            .send_and_receive(envelope("warp", object(json!({"millis": 1})), 10))
            .await
            .unwrap_err();
        let health = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|answer| answer.into_inner().status);
        (refused, health)
    });
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("shutting down"),
        "{}",
        refused.message()
    );
    let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;
    assert_eq!(health.ok(), Some(not_serving));
    let finished = in_hand
        .join()
        .unwrap()
        .expect("the request in hand finishes");
    assert!(reply_object(&finished)["slept"].as_i64().unwrap() >= 1500);
    assert_eq!(service.wait_exit(Duration::from_secs(15)), Some(0));
}
