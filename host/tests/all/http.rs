//! Outbound HTTP from the `fetch` guest to a loopback origin started by the
//! test: what a grant lets through, what it refuses, and every limit obeyed
//! and violated with its error code.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use node_host::sandbox::http::{HttpAccess, HttpLimits, Origin, Outbound, OutboundSettings};
use node_host::sandbox::test_origin::TestOrigin;
use node_host::sandbox::{ErrorCode, Limits, LoadError, NodeComponent, Outcome, Value};

use super::{guest_bytes, inputs, outputs, sandbox, text};

/// The origin every test in this file calls.
fn origin() -> &'static TestOrigin {
    static ORIGIN: OnceLock<TestOrigin> = OnceLock::new();
    ORIGIN.get_or_init(TestOrigin::start)
}

/// Outbound HTTP as an operator who opened private addresses sets it up.
fn outbound(private_addresses: bool) -> Arc<Outbound> {
    Outbound::new(&OutboundSettings {
        private_addresses,
        extra_roots: Vec::new(),
    })
    .expect("outbound")
}

fn origins(list: &[&str]) -> Vec<Origin> {
    list.iter().map(|text| text.parse().unwrap()).collect()
}

/// The fetch guest loaded with this access.
fn fetch_with(access: Arc<HttpAccess>) -> NodeComponent {
    sandbox()
        .load_with(&guest_bytes("fetch"), Some(access), &mut || {})
        .expect("fetch loads with a grant")
}

/// The fetch guest allowed `allowed` on loopback, with these limits.
fn fetch(allowed: &[&str], limits: HttpLimits) -> NodeComponent {
    let access = HttpAccess::new(&outbound(true), "tests", vec![origins(allowed)], limits);
    fetch_with(access)
}

fn call(node: &NodeComponent, pairs: &[(&str, Value)], limits: &Limits) -> Outcome {
    node.execute(inputs(pairs), &HashMap::new(), limits)
}

fn loopback_grant() -> String {
    format!("http://127.0.0.1:{}", origin().addr().port())
}

fn failure(outcome: &Outcome) -> (ErrorCode, String) {
    let failure = outcome.result.as_ref().expect_err("a failure");
    (failure.code, failure.message.clone())
}

#[test]
fn a_node_that_imports_http_loads_only_with_a_grant() {
    let err = sandbox().load(&guest_bytes("fetch")).unwrap_err();
    assert!(matches!(err, LoadError::HttpNotGranted(_)), "{err}");
    assert_eq!(err.code(), "http_not_granted");
    assert!(err.to_string().contains("--allow-http"), "{err}");
}

#[test]
fn an_allowed_origin_answers_and_the_event_is_accounted() {
    let node = fetch(&[&loopback_grant()], HttpLimits::default());
    let outcome = call(
        &node,
        &[("url", text(&origin().url("/hello")))],
        &Limits::default(),
    );
    let outputs = outputs(&outcome);
    assert_eq!(outputs[0].1, Value::Integer(200));
    assert_eq!(outputs[1].1, text("hello from the origin"));
    let usage = outcome.http.expect("usage of a granted node");
    assert_eq!(usage.requests, 1);
    assert_eq!(usage.bytes_in, "hello from the origin".len() as u64);
    assert_eq!(usage.bytes_out, 0);
}

#[test]
fn a_request_body_goes_out_and_is_counted() {
    let node = fetch(&[&loopback_grant()], HttpLimits::default());
    let body = "y".repeat(10_000);
    let outcome = call(
        &node,
        &[
            ("url", text(&origin().url("/sink"))),
            ("method", text("POST")),
            ("body", text(&body)),
        ],
        &Limits::default(),
    );
    assert_eq!(outputs(&outcome)[1].1, text("10000"));
    assert_eq!(outcome.http.unwrap().bytes_out, 10_000);
}

#[test]
fn an_origin_not_granted_is_http_denied() {
    let node = fetch(&["https://api.example.com"], HttpLimits::default());
    let outcome = call(
        &node,
        &[("url", text(&origin().url("/hello")))],
        &Limits::default(),
    );
    let (code, message) = failure(&outcome);
    assert_eq!(code, ErrorCode::HttpDenied, "{message}");
    assert!(message.contains("is not an allowed origin"), "{message}");
}

/// Connections the origin accepted while `during` ran (0: nothing left).
fn origin_hits_after(during: impl FnOnce()) -> usize {
    let before = origin().connections();
    during();
    origin().connections() - before
}

#[test]
fn a_refused_request_never_reaches_the_network() {
    let node = fetch(&["http://127.0.0.1:1"], HttpLimits::default());
    let reached = origin_hits_after(|| {
        let outcome = call(
            &node,
            &[("url", text(&origin().url("/hello")))],
            &Limits::default(),
        );
        assert_eq!(failure(&outcome).0, ErrorCode::HttpDenied);
    });
    assert_eq!(reached, 0);
}

#[test]
fn a_redirect_to_an_origin_not_granted_is_http_denied() {
    let node = fetch(&[&loopback_grant()], HttpLimits::default());
    // 127.0.0.2 is loopback too, but another origin.
    let elsewhere = format!("http://127.0.0.2:{}/hello", origin().addr().port());
    let url = origin().url(&format!("/redirect?to={elsewhere}"));
    let outcome = call(
        &node,
        &[("url", text(&url)), ("follow", Value::Boolean(true))],
        &Limits::default(),
    );
    let (code, message) = failure(&outcome);
    assert_eq!(code, ErrorCode::HttpDenied, "{message}");
    assert!(message.contains("127.0.0.2"), "{message}");
    // The same redirect within the grant is followed.
    let within = origin().url(&format!("/redirect?to={}", origin().url("/hello")));
    let outcome = call(
        &node,
        &[("url", text(&within)), ("follow", Value::Boolean(true))],
        &Limits::default(),
    );
    assert_eq!(outputs(&outcome)[1].1, text("hello from the origin"));
    assert_eq!(outputs(&outcome)[2].1, Value::Integer(2));
}

#[test]
fn private_addresses_are_refused_unless_the_operator_opens_them() {
    let port = origin().addr().port();
    let closed = outbound(false);
    // A name that resolves to loopback, and a loopback address itself.
    for (grant, url) in [
        (
            format!("http://localhost:{port}"),
            format!("http://localhost:{port}/hello"),
        ),
        (loopback_grant(), origin().url("/hello")),
    ] {
        let access = HttpAccess::new(
            &closed,
            "tests",
            vec![origins(&[&grant])],
            HttpLimits::default(),
        );
        let outcome = call(
            &fetch_with(access),
            &[("url", text(&url))],
            &Limits::default(),
        );
        let (code, message) = failure(&outcome);
        assert_eq!(code, ErrorCode::HttpDenied, "{url}: {message}");
        assert!(message.contains("private address"), "{message}");
        assert!(message.contains("--allow-private-addresses"), "{message}");
    }
    // Opened by the operator, the same name goes through.
    let node = fetch(
        &[&format!("http://localhost:{port}")],
        HttpLimits::default(),
    );
    let outcome = call(
        &node,
        &[("url", text(&format!("http://localhost:{port}/hello")))],
        &Limits::default(),
    );
    assert_eq!(outputs(&outcome)[0].1, Value::Integer(200));
}

#[test]
fn requests_per_event_obeyed_and_violated() {
    let limits = HttpLimits {
        requests: 3,
        ..HttpLimits::default()
    };
    let node = fetch(&[&loopback_grant()], limits);
    let url = text(&origin().url("/hello"));
    let obeyed = call(
        &node,
        &[("url", url.clone()), ("repeat", Value::Integer(3))],
        &Limits::default(),
    );
    assert_eq!(outputs(&obeyed)[2].1, Value::Integer(3));
    let violated = call(
        &node,
        &[("url", url), ("repeat", Value::Integer(4))],
        &Limits::default(),
    );
    let (code, message) = failure(&violated);
    assert_eq!(code, ErrorCode::HttpLimit, "{message}");
    assert!(message.contains("more than 3 requests"), "{message}");
}

#[test]
fn requests_at_once_obeyed_and_violated() {
    let limits = HttpLimits {
        concurrent: 2,
        ..HttpLimits::default()
    };
    let node = fetch(&[&loopback_grant()], limits);
    let url = text(&origin().url("/hello"));
    let obeyed = call(
        &node,
        &[("url", url.clone()), ("parallel", Value::Integer(2))],
        &Limits::default(),
    );
    assert_eq!(outputs(&obeyed)[2].1, Value::Integer(2));
    // One after another, the same number is fine.
    let sequential = call(
        &node,
        &[("url", url.clone()), ("repeat", Value::Integer(5))],
        &Limits::default(),
    );
    assert_eq!(outputs(&sequential)[2].1, Value::Integer(5));
    let violated = call(
        &node,
        &[("url", url), ("parallel", Value::Integer(3))],
        &Limits::default(),
    );
    let (code, message) = failure(&violated);
    assert_eq!(code, ErrorCode::HttpLimit, "{message}");
    assert!(message.contains("open at once"), "{message}");
}

#[test]
fn response_bytes_obeyed_and_violated() {
    let limits = HttpLimits {
        response_bytes: 100_000,
        ..HttpLimits::default()
    };
    let node = fetch(&[&loopback_grant()], limits);
    let obeyed = call(
        &node,
        &[("url", text(&origin().url("/bytes/100000")))],
        &Limits::default(),
    );
    assert_eq!(outcome_body_len(&obeyed), 100_000);
    let violated = call(
        &node,
        &[("url", text(&origin().url("/bytes/100001")))],
        &Limits::default(),
    );
    let (code, message) = failure(&violated);
    assert_eq!(code, ErrorCode::HttpLimit, "{message}");
    assert!(message.contains("100000 bytes"), "{message}");
}

fn outcome_body_len(outcome: &Outcome) -> usize {
    match &outputs(outcome)[1].1 {
        Value::Text(body) => body.len(),
        other => panic!("body {other:?}"),
    }
}

#[test]
fn request_bytes_obeyed_and_violated() {
    let limits = HttpLimits {
        request_bytes: 20_000,
        ..HttpLimits::default()
    };
    let node = fetch(&[&loopback_grant()], limits);
    let post = |size: usize| {
        call(
            &node,
            &[
                ("url", text(&origin().url("/sink"))),
                ("method", text("POST")),
                ("body", text(&"z".repeat(size))),
            ],
            &Limits::default(),
        )
    };
    assert_eq!(outputs(&post(20_000))[1].1, text("20000"));
    let (code, message) = failure(&post(20_001));
    assert_eq!(code, ErrorCode::HttpLimit, "{message}");
    assert!(message.contains("20000 bytes"), "{message}");
}

#[test]
fn a_server_that_never_answers_ends_at_the_deadline() {
    let node = fetch(&[&loopback_grant()], HttpLimits::default());
    let limits = Limits {
        timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let started = Instant::now();
    let outcome = call(&node, &[("url", text(&origin().url("/never")))], &limits);
    assert_eq!(failure(&outcome).0, ErrorCode::Deadline);
    // Bounded, never hung (generous: these machines are noisy).
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(outcome.http.unwrap().waiting_us >= 400_000);
    // Waiting on the network burns no fuel: a spinning guest burns
    // billions of units in the same half second.
    assert!(outcome.fuel_used < 10_000_000, "{}", outcome.fuel_used);
}

#[test]
fn a_guest_stuck_writing_a_body_before_sending_ends_at_the_deadline() {
    let node = fetch(
        &[&loopback_grant()],
        HttpLimits {
            request_bytes: 64 << 20,
            ..HttpLimits::default()
        },
    );
    let limits = Limits {
        timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    // Far more than the body's buffer holds before anyone reads it.
    let outcome = call(
        &node,
        &[
            ("url", text(&origin().url("/sink"))),
            ("method", text("POST")),
            ("prefill", Value::Integer(8 << 20)),
        ],
        &limits,
    );
    assert_eq!(failure(&outcome).0, ErrorCode::Deadline);
}

#[test]
fn the_host_fills_a_secret_into_a_header_the_guest_never_holds() {
    let node = fetch(&[&loopback_grant()], HttpLimits::default());
    let secrets = HashMap::from([("api-key".to_owned(), "s3cr3t-value".to_owned())]);
    let outcome = node.execute(
        inputs(&[
            ("url", text(&origin().url("/header/authorization"))),
            (
                "headers",
                Value::Json(r#"{"Authorization": "Bearer ${secret:api-key}"}"#.into()),
            ),
        ]),
        &secrets,
        &Limits::default(),
    );
    assert_eq!(outputs(&outcome)[1].1, text("Bearer s3cr3t-value"));
    // A secret the node does not declare is never filled in.
    let outcome = node.execute(
        inputs(&[
            ("url", text(&origin().url("/header/authorization"))),
            (
                "headers",
                Value::Json(r#"{"authorization": "${secret:other}"}"#.into()),
            ),
        ]),
        &HashMap::from([("other".to_owned(), "not-yours".to_owned())]),
        &Limits::default(),
    );
    let (code, message) = failure(&outcome);
    assert_eq!(code, ErrorCode::HttpDenied, "{message}");
    assert!(!message.contains("not-yours"), "{message}");
}

#[test]
fn connections_are_reused_across_events_of_an_account() {
    let node = fetch(&[&loopback_grant()], HttpLimits::default());
    let url = text(&origin().url("/hello"));
    call(&node, &[("url", url.clone())], &Limits::default());
    let opened = origin_hits_after(|| {
        for _ in 0..20 {
            let outcome = call(&node, &[("url", url.clone())], &Limits::default());
            assert_eq!(outputs(&outcome)[0].1, Value::Integer(200));
        }
    });
    // Other tests may open connections at the same time; twenty events
    // on new connections each would open twenty.
    assert!(opened <= 5, "{opened} new connections for 20 events");
}

#[test]
fn one_accounts_grant_never_applies_to_anothers_node() {
    let outbound = outbound(true);
    let grant = origins(&[&loopback_grant()]);
    let ours = HttpAccess::new(
        &outbound,
        "ours",
        vec![grant.clone()],
        HttpLimits::default(),
    );
    // The other account's policy allows nothing; its node asks for the
    // same origin.
    let theirs = HttpAccess::new(
        &outbound,
        "theirs",
        vec![Vec::new(), grant],
        HttpLimits::default(),
    );
    let url = text(&origin().url("/hello"));
    let ok = call(
        &fetch_with(ours),
        &[("url", url.clone())],
        &Limits::default(),
    );
    assert_eq!(outputs(&ok)[0].1, Value::Integer(200));
    let refused = call(&fetch_with(theirs), &[("url", url)], &Limits::default());
    assert_eq!(failure(&refused).0, ErrorCode::HttpDenied);
}

#[test]
fn https_with_a_certificate_the_operator_trusts() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = made.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    let secure = TestOrigin::start_tls(cert, key);
    let dir = std::env::temp_dir().join(format!("node-host-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, made.cert.pem()).unwrap();
    let grant = format!("https://localhost:{}", secure.addr().port());
    let url = text(&secure.url("/hello"));
    // Trusted: the answer comes back over TLS.
    let trusting = Outbound::new(&OutboundSettings {
        private_addresses: true,
        extra_roots: vec![ca],
    })
    .unwrap();
    let access = HttpAccess::new(
        &trusting,
        "tests",
        vec![origins(&[&grant])],
        HttpLimits::default(),
    );
    let outcome = call(
        &fetch_with(access),
        &[("url", url.clone())],
        &Limits::default(),
    );
    assert_eq!(outputs(&outcome)[1].1, text("hello from the origin"));
    // Not trusted (the webpki roots only): the handshake fails and the
    // guest's error says so.
    let access = HttpAccess::new(
        &outbound(true),
        "tests",
        vec![origins(&[&grant])],
        HttpLimits::default(),
    );
    let outcome = call(&fetch_with(access), &[("url", url)], &Limits::default());
    let (code, message) = failure(&outcome);
    assert_eq!(code, ErrorCode::GuestError, "{message}");
    assert!(message.contains("http: "), "{message}");
    std::fs::remove_dir_all(&dir).ok();
}
