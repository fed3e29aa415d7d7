//! node-host's Juturna service against Juturna's own Python code (juturna
//! 2.1.1 with its Warp node, in the virtualenv `tests/setup-venv`
//! makes): the real Warp client on every payload, the real pipeline with a
//! `"warped": true` node, and envelopes byte for byte against the package's
//! generated classes.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use node_host::juturna::payload::{any, proto_of};
use node_host::juturna::proto::messaging::ProtoEnvelope;
use node_host::juturna::proto::payloads::{
    AudioProtoPayload, BatchProto, BytesProtoPayload, ImageProtoPayload, ObjectProtoPayload,
    ProtoMessage, VideoProtoPayload,
};
use node_host_e2e::{Service, repo_root, run_bounded, scratch_dir, serve_juturna};
use prost::Message as _;
use serde_json::{Value, json};

/// The virtualenv's python, from `NODE_HOST_JUTURNA_PYTHON`.
fn juturna_python() -> PathBuf {
    node_host_e2e::python_from_env("NODE_HOST_JUTURNA_PYTHON", "tests/juturna/requirements.txt")
}

fn script(name: &str) -> PathBuf {
    repo_root().join("tests/juturna").join(name)
}

/// Runs a script of `tests/juturna/` with `stdin`; the JSON on the last
/// line of its stdout.
fn python(args: &[&str], stdin: &str) -> Value {
    let input = scratch_dir(&format!(
        "python-{}",
        INPUTS.fetch_add(1, Ordering::Relaxed)
    ))
    .join("stdin.json");
    std::fs::write(&input, stdin).unwrap();
    let out = run_bounded(
        Command::new(juturna_python())
            .args(args)
            .stdin(std::fs::File::open(&input).unwrap()),
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(0), "{args:?}: {out:#?}");
    let last = out.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|err| panic!("{err}: {out:#?}"))
}

static INPUTS: AtomicUsize = AtomicUsize::new(0);

/// `node-host serve juturna <guest>`; its port.
fn serve(name: &str, extra: &[&str]) -> (Service, u16) {
    serve_juturna(name, extra)
}

/// Sends `cases` through the real Warp node with `timeout` seconds.
fn warp(port: u16, timeout: u64, cases: Value) -> Vec<Value> {
    let client = script("warp_client.py");
    let answer = python(
        &[
            client.to_str().unwrap(),
            &port.to_string(),
            &timeout.to_string(),
        ],
        &cases.to_string(),
    );
    answer.as_array().expect("a list of results").clone()
}

#[test]
fn the_real_warp_node_gets_object_answers_from_rust_and_python_nodes() {
    for guest_name in ["hello", "hello-python"] {
        let (_service, port) = serve(guest_name, &[]);
        let results = warp(
            port,
            10,
            json!([
                {"kind": "object", "data": {"name": "Ada"}},
                // Refused by the node (no such input), then served again on
                // the same Warp: the reference's node thread dies here.
                {"kind": "object", "data": {"nope": 1}},
                {"kind": "object", "data": {"name": "Bo"}},
                // Juturna's integers travel as doubles and arrive whole.
                {"kind": "object", "data": {"name": 42}},
            ]),
        );
        let first = &results[0];
        assert_eq!(first["ok"], true, "{guest_name}: {first}");
        assert_eq!(
            first["payload"],
            json!({"greeting": "Hello Ada", "shout": "HELLO ADA"}),
            "{guest_name}"
        );
        assert_eq!(first["response_to_matches"], true, "{first}");
        assert_eq!(first["sender"], "warped_node", "{first}");
        assert_eq!(first["message"]["creator"], "source", "{first}");
        assert_eq!(first["message"]["version"], 7, "{first}");
        assert_eq!(
            first["message"]["id"], first["message"]["sent_id"],
            "{first}"
        );
        assert_eq!(
            (&results[1]["ok"], &results[1]["code"]),
            (&json!(false), &json!("INVALID_ARGUMENT")),
            "{}",
            results[1]
        );
        assert!(
            results[1]["details"]
                .as_str()
                .unwrap()
                .starts_with("invalid_input: "),
            "{}",
            results[1]
        );
        assert_eq!(
            results[2]["payload"]["greeting"], "Hello Bo",
            "{}",
            results[2]
        );
        assert_eq!(results[3]["ok"], true, "{}", results[3]);
    }
}

#[test]
fn the_real_warp_node_sends_bytes_and_media_and_gets_bytes_back() {
    let (_service, port) = serve("reverse", &[]);
    let results = warp(
        port,
        10,
        json!([
            {"kind": "bytes", "hex": "010203"},
            {"kind": "audio"},
            {"kind": "image"},
            {"kind": "video"},
            {"kind": "batch", "names": ["Ada"]},
            {"kind": "raw", "hex": "ffffffff"},
            {"kind": "bytes", "hex": "0a0b"},
        ]),
    );
    assert_eq!(results[0]["payload"], "030201", "{}", results[0]);
    for media in &results[1..4] {
        assert_eq!(media["ok"], true, "{media}");
        assert_eq!(media["payload"], media["expect_hex"], "{media}");
    }
    // An Object batch to a node that takes bytes: refused, saying which.
    assert_eq!(results[4]["code"], "INVALID_ARGUMENT", "{}", results[4]);
    assert!(
        results[4]["details"]
            .as_str()
            .unwrap()
            .starts_with("batch message 0: "),
        "{}",
        results[4]
    );
    // Bytes that are no envelope: a status that says so.
    assert_eq!(results[5]["ok"], false, "{}", results[5]);
    assert!(
        results[5]["details"].as_str().unwrap().contains("decode"),
        "{}",
        results[5]
    );
    assert_eq!(results[6]["payload"], "0b0a", "{}", results[6]);
}

#[test]
fn a_batch_from_juturnas_classes_is_answered_as_a_batch() {
    let (_service, port) = serve("hello", &[]);
    let results = warp(
        port,
        10,
        json!([{"kind": "batch", "names": ["Ada", "Bo", "Cy"]}]),
    );
    let batch = &results[0];
    assert_eq!(batch["ok"], true, "{batch}");
    assert_eq!(batch["response_to"], "batch-1", "{batch}");
    let greetings: Vec<&Value> = batch["payload"]
        .as_array()
        .unwrap()
        .iter()
        .map(|outputs| &outputs["greeting"])
        .collect();
    assert_eq!(
        greetings,
        [&json!("Hello Ada"), &json!("Hello Bo"), &json!("Hello Cy")]
    );
}

#[test]
fn the_real_warp_node_sees_the_ttl_expire() {
    let (_service, port) = serve("sleeper", &["--timeout", "60s"]);
    let results = warp(
        port,
        1,
        json!([
            {"kind": "object", "data": {"millis": 10}},
            {"kind": "object", "data": {}},
            {"kind": "object", "data": {"millis": 10}},
        ]),
    );
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    assert_eq!(results[1]["code"], "DEADLINE_EXCEEDED", "{}", results[1]);
    assert_eq!(results[2]["ok"], true, "{}", results[2]);
}

#[test]
fn a_real_juturna_pipeline_runs_a_warped_node_on_node_host() {
    let (_service, port) = serve("hello", &[]);
    let pipeline = script("pipeline.py");
    let out = run_bounded(
        Command::new(juturna_python())
            .arg(&pipeline)
            .args(["127.0.0.1", &port.to_string(), "Ada"])
            .current_dir(std::env::temp_dir()),
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    let last = out.stdout.lines().last().unwrap_or_default();
    let answer: Value = serde_json::from_str(last).unwrap_or_else(|err| panic!("{err}: {out:#?}"));
    assert_eq!(
        answer["payload"],
        json!({"greeting": "Hello Ada", "shout": "HELLO ADA"}),
        "{answer}"
    );
}

// Golden envelopes: the same content built by Juturna's Python classes
// (tests/juturna/golden.py) and by node-host's prost types.

fn object_struct(json: Value) -> prost_types::Struct {
    let Value::Object(map) = json else {
        panic!("an object")
    };
    prost_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, proto_of(v))).collect(),
    }
}

fn object(json: Value) -> prost_types::Any {
    any(
        "ObjectProtoPayload",
        &ObjectProtoPayload {
            data: Some(object_struct(json)),
        },
    )
}

/// golden.py's `message()`.
fn message(payload: prost_types::Any, version: i32, id: i32) -> ProtoMessage {
    ProtoMessage {
        created_at: 1_700_000_000.25,
        creator: "source".into(),
        version,
        payload: Some(payload),
        meta: Some(object_struct(json!({"lang": "en"}))),
        timers: [("decode".to_owned(), 0.5), ("acquire".to_owned(), 1.25)].into(),
        id,
    }
}

/// golden.py's `envelope()`: what the Warp sends.
fn envelope(payload: prost_types::Any) -> ProtoEnvelope {
    ProtoEnvelope {
        id: "e-1".into(),
        message: Some(message(payload, 3, 10)),
        sender: "warp".into(),
        ttl: 30,
        created_at: 1_700_000_000.5,
        configuration: Some(object_struct(json!({"threshold": 0.5}))),
        request_type: "TypeVar".into(),
        response_type: "TypeVar".into(),
        ..Default::default()
    }
}

fn golden_cases() -> Vec<(&'static str, ProtoEnvelope)> {
    let image = |value: u8| ImageProtoPayload {
        image_data: vec![value; 2],
        dtype: "uint8".into(),
        width: 2,
        height: 1,
        depth: 1,
        pixel_format: "gray".into(),
        timestamp: 0.5,
    };
    let samples: Vec<u8> = [0.0f32, 0.5].iter().flat_map(|s| s.to_le_bytes()).collect();
    let batch = BatchProto {
        messages: vec![
            message(object(json!({"name": "Ada"})), 0, 20),
            message(object(json!({"name": "Bo"})), 1, 21),
        ],
    };
    let mut reply = ProtoEnvelope {
        id: "r-1".into(),
        message: Some(message(object(json!({"greeting": "Hello Ada"})), 3, 10)),
        sender: "warped_node".into(),
        receiver: "warp".into(),
        response_to: "e-1".into(),
        ttl: 30,
        created_at: 1_700_000_001.5,
        configuration: Some(prost_types::Struct::default()),
        metadata: Some(object_struct(json!({"processing_time": 0.001}))),
        request_type: "ObjectPayload".into(),
        ..Default::default()
    };
    reply.priority = 0;
    vec![
        (
            "object",
            envelope(object(
                json!({"name": "Ada", "count": 3, "x": 2.5, "nested": {"k": [1, true, null]}}),
            )),
        ),
        (
            "bytes",
            envelope(any(
                "BytesProtoPayload",
                &BytesProtoPayload {
                    cnt: vec![0, 1, 0xff],
                    size: 3,
                },
            )),
        ),
        (
            "audio",
            envelope(any(
                "AudioProtoPayload",
                &AudioProtoPayload {
                    audio_data: samples,
                    dtype: "float32".into(),
                    shape: vec![2],
                    sampling_rate: 16_000,
                    channels: 1,
                    start: 0.0,
                    end: 0.25,
                    audio_format: String::new(),
                },
            )),
        ),
        ("image", envelope(any("ImageProtoPayload", &image(7)))),
        (
            "video",
            envelope(any(
                "VideoProtoPayload",
                &VideoProtoPayload {
                    frames: vec![image(1), image(2)],
                    frames_per_second: 25.0,
                    start: 1.0,
                    end: 1.08,
                    codec: "raw".into(),
                },
            )),
        ),
        ("batch", envelope(any("BatchProto", &batch))),
        ("reply", reply),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn envelopes_are_byte_identical_to_juturnas_both_ways() {
    let golden = script("golden.py");
    let python_bytes = python(&[golden.to_str().unwrap(), "emit"], "");
    let ours: Vec<(&str, Vec<u8>)> = golden_cases()
        .into_iter()
        .map(|(name, envelope)| (name, envelope.encode_to_vec()))
        .collect();
    for (name, bytes) in &ours {
        let theirs = python_bytes[name].as_str().expect("a case of golden.py");
        assert_eq!(
            hex(bytes),
            theirs,
            "{name}: prost and Juturna's classes differ"
        );
        // Theirs, decoded by node-host and encoded again, are the same bytes.
        let decoded = ProtoEnvelope::decode(unhex(theirs).as_slice()).expect("decodes");
        assert_eq!(hex(&decoded.encode_to_vec()), theirs, "{name}");
    }
    // Ours, parsed by Juturna's classes and serialised again, are the same.
    let ours_hex: serde_json::Map<String, Value> = ours
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), Value::from(hex(bytes))))
        .collect();
    let parsed = python(
        &[golden.to_str().unwrap(), "parse"],
        &Value::Object(ours_hex.clone()).to_string(),
    );
    assert_eq!(parsed, Value::Object(ours_hex));
}
