//! The hub's HTTP API against a real `node-host hub` process: Hurozo's
//! documented errors, per-account scoping, execute errors, and the
//! WebSocket contract as seen by a hand-driven worker.

use std::net::TcpStream;
use std::time::Duration;

use node_host_e2e::{Hub, execute, http};
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

fn post_register(hub: &Hub, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut request = http()
        .post(format!("{}/api/remote_nodes/register", hub.url))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send().unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

fn hello_registration() -> &'static str {
    r#"{"name": "hello", "inputs": ["name"], "outputs": ["greeting", "shout"]}"#
}

/// A worker driven by hand: registers `hello` and holds the WebSocket.
struct RawWorker {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
}

impl RawWorker {
    fn connect(hub: &Hub, token: &str) -> Self {
        let (status, registered) = post_register(hub, Some(token), hello_registration());
        assert_eq!(status, 200, "{registered}");
        let url = format!(
            "{}?auth={}",
            registered["websocket_url"].as_str().unwrap(),
            registered["token"].as_str().unwrap()
        );
        let (socket, _) = tungstenite::connect(url).expect("the hub accepts the token");
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
        }
        Self { socket }
    }

    fn next_event(&mut self) -> Value {
        loop {
            match self.socket.read().expect("an event") {
                Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    fn send(&mut self, text: &str) {
        self.socket.send(Message::text(text)).unwrap();
    }

    /// True if no event arrives within `wait`.
    fn stays_quiet(&mut self, wait: Duration) -> bool {
        if let MaybeTlsStream::Plain(stream) = self.socket.get_ref() {
            stream.set_read_timeout(Some(wait)).unwrap();
        }
        match self.socket.read() {
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            other => panic!("expected silence, got {other:?}"),
        }
    }
}

/// Executes `hello` on another thread.
fn execute_in_background(
    hub: &Hub,
    token: &str,
    body: Value,
) -> std::thread::JoinHandle<(u16, Value)> {
    node_host_e2e::execute_in_background(&hub.url, token, "hello", body)
}

#[test]
fn registration_errors_are_hurozos_word_for_word() {
    let hub = Hub::start("register-errors");
    let token = hub.token("alice", false);
    let reader = hub.token("alice", true);
    let cases: [(Option<&str>, &str, u16, &str); 6] = [
        (
            None,
            hello_registration(),
            401,
            "Missing Authorization header",
        ),
        (
            Some("nh_forged"),
            hello_registration(),
            401,
            "Invalid API token",
        ),
        (
            Some(reader.as_str()),
            hello_registration(),
            403,
            "Invalid API token",
        ),
        (
            Some(token.as_str()),
            r#"{"name": "a/b", "outputs": ["x"]}"#,
            400,
            "Missing or invalid name",
        ),
        (
            Some(token.as_str()),
            r#"{"inputs": [], "outputs": ["x"]}"#,
            400,
            "Missing or invalid name",
        ),
        (
            Some(token.as_str()),
            r#"{"name": "n", "outputs": []}"#,
            400,
            "At least one output required",
        ),
    ];
    for (token, body, status, message) in cases {
        let (got_status, answer) = post_register(&hub, token, body);
        assert_eq!(
            (got_status, answer["error"].as_str()),
            (status, Some(message)),
            "{body}"
        );
    }
    let (_, read_only) = post_register(&hub, Some(&reader), hello_registration());
    assert_eq!(read_only["code"], "read_only_token");
}

#[test]
fn registration_answer_and_listing_are_per_account() {
    let hub = Hub::start("register-list");
    let alice = hub.token("alice", false);
    let alice_reader = hub.token("alice", true);
    let bob = hub.token("bob", false);
    let (status, registered) = post_register(&hub, Some(&alice), hello_registration());
    assert_eq!(status, 200);
    assert_eq!(registered["status"], "registered");
    assert_eq!(registered["inputs"], json!(["name"]));
    assert_eq!(registered["outputs"], json!(["greeting", "shout"]));
    assert_eq!(
        registered["websocket_url"],
        format!("ws://{}/ws", hub.addr())
    );
    let ws_token = registered["token"].as_str().unwrap();
    assert!(
        ws_token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "URL-safe: {ws_token}"
    );

    let list = |token: &str| -> Value {
        http()
            .get(format!("{}/api/remote_nodes", hub.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let expected =
        json!({"nodes": [{"name": "hello", "inputs": ["name"], "outputs": ["greeting", "shout"]}]});
    assert_eq!(list(&alice), expected);
    assert_eq!(list(&alice_reader), expected);
    assert_eq!(list(&bob), json!({"nodes": []}));
    let (status, answer) = execute(&hub.url, &bob, "hello", json!({"inputs": {}}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("unknown_node"))
    );
}

#[test]
fn execute_errors_name_their_cause() {
    let hub = Hub::start("execute-errors");
    let token = hub.token("alice", false);
    let (status, answer) = execute(&hub.url, &token, "nope", json!({"inputs": {}}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("unknown_node")),
        "{answer}"
    );
    post_register(&hub, Some(&token), hello_registration());
    let (status, answer) = execute(&hub.url, &token, "hello", json!({"inputs": {}}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (503, Some("no_worker")),
        "{answer}"
    );
    let (status, answer) = execute(&hub.url, &token, "hello", json!({"inputs": 5}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_request")),
        "{answer}"
    );
    let (status, answer) = execute(&hub.url, "nh_forged", "hello", json!({}));
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("Invalid API token"))
    );
}

#[test]
fn an_event_round_trips_through_a_hand_driven_worker() {
    let hub = Hub::start("raw-round-trip");
    let token = hub.token("alice", false);
    let mut worker = RawWorker::connect(&hub, &token);
    let caller = execute_in_background(&hub, &token, json!({"inputs": {"name": "Ada"}}));
    let event = worker.next_event();
    assert_eq!(event["type"], "remote_node");
    assert_eq!(event["node"], "hello");
    assert_eq!(event["inputs"], json!({"name": "Ada"}));
    let uuid = event["uuid"].as_str().unwrap().to_owned();
    // Garbage and strangers' replies are ignored; the connection stays up.
    worker.send("this is not JSON");
    worker.send(r#"{"node": "hello", "outputs": {}, "uuid": "not-a-pending-uuid"}"#);
    // Outputs out of order, one missing, one unregistered.
    worker.send(
        &json!({"node": "hello", "outputs": {"shout": "HI ADA", "extra": 1}, "uuid": uuid})
            .to_string(),
    );
    let (status, answer) = caller.join().unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::to_string(&answer).unwrap(),
        format!(
            r#"{{"node":"hello","uuid":"{uuid}","outputs":{{"greeting":null,"shout":"HI ADA"}}}}"#
        )
    );
}

#[test]
fn a_worker_error_reply_becomes_a_502_with_its_code() {
    let hub = Hub::start("raw-error");
    let token = hub.token("alice", false);
    let mut worker = RawWorker::connect(&hub, &token);
    let caller = execute_in_background(&hub, &token, json!({"inputs": {}}));
    let event = worker.next_event();
    worker.send(
        &json!({"node": "hello", "outputs": {}, "uuid": event["uuid"],
                "error": {"code": "out_of_fuel", "message": "ran out of fuel"}})
        .to_string(),
    );
    let (status, answer) = caller.join().unwrap();
    assert_eq!(status, 502);
    assert_eq!(answer["code"], "out_of_fuel");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("ran out of fuel")
    );
}

#[test]
fn a_worker_that_disconnects_mid_event_fails_the_caller_at_once() {
    let hub = Hub::start("raw-disconnect");
    let token = hub.token("alice", false);
    let mut worker = RawWorker::connect(&hub, &token);
    let caller = execute_in_background(&hub, &token, json!({"inputs": {}}));
    worker.next_event();
    let started = std::time::Instant::now();
    drop(worker);
    node_host_e2e::assert_worker_lost(caller, started, Duration::from_secs(30));
}

#[test]
fn a_silent_worker_makes_the_caller_time_out() {
    let hub = Hub::start("raw-timeout");
    let token = hub.token("alice", false);
    let mut worker = RawWorker::connect(&hub, &token);
    let caller = execute_in_background(&hub, &token, json!({"inputs": {}, "timeout_ms": 300}));
    worker.next_event();
    let (status, answer) = caller.join().unwrap();
    assert_eq!(
        (status, answer["code"].as_str()),
        (504, Some("timeout")),
        "{answer}"
    );
    // A late reply for the abandoned uuid is ignored; the socket stays usable.
    let caller = execute_in_background(&hub, &token, json!({"inputs": {}}));
    let event = worker.next_event();
    worker.send(&json!({"node": "hello", "outputs": {"greeting": "g", "shout": "s"}, "uuid": event["uuid"]}).to_string());
    assert_eq!(caller.join().unwrap().0, 200);
}

#[test]
fn websocket_tokens_forged_or_missing_are_refused() {
    let hub = Hub::start("ws-tokens");
    let token = hub.token("alice", false);
    let (_, registered) = post_register(&hub, Some(&token), hello_registration());
    let ws = registered["websocket_url"].as_str().unwrap();
    let real = registered["token"].as_str().unwrap();
    let (body, signature) = real.split_once('.').unwrap();
    let mut forged_signature = signature.to_owned();
    let last = if forged_signature.ends_with('A') {
        "B"
    } else {
        "A"
    };
    forged_signature.replace_range(forged_signature.len() - 1.., last);
    for url in [
        ws.to_owned(),
        format!("{ws}?auth="),
        format!("{ws}?auth=garbage"),
        format!("{ws}?auth={body}.{forged_signature}"),
        format!("{ws}?auth={token}"),
    ] {
        match tungstenite::connect(&url) {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "{url}")
            }
            other => panic!("{url} was not refused: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn one_accounts_events_never_reach_another_accounts_connection() {
    let hub = Hub::start("ws-accounts");
    let alice = hub.token("alice", false);
    let bob = hub.token("bob", false);
    let mut alice_worker = RawWorker::connect(&hub, &alice);
    let mut bob_worker = RawWorker::connect(&hub, &bob);
    let caller = execute_in_background(&hub, &bob, json!({"inputs": {}}));
    let event = bob_worker.next_event();
    bob_worker.send(&json!({"node": "hello", "outputs": {"greeting": "g", "shout": "s"}, "uuid": event["uuid"]}).to_string());
    assert_eq!(caller.join().unwrap().0, 200);
    assert!(alice_worker.stays_quiet(Duration::from_millis(300)));
    // Alice cannot answer Bob's events either.
    let caller = execute_in_background(&hub, &bob, json!({"inputs": {}, "timeout_ms": 2000}));
    let event = bob_worker.next_event();
    alice_worker.send(&json!({"node": "hello", "outputs": {"greeting": "forged", "shout": "forged"}, "uuid": event["uuid"]}).to_string());
    bob_worker.send(&json!({"node": "hello", "outputs": {"greeting": "g", "shout": "s"}, "uuid": event["uuid"]}).to_string());
    let (status, answer) = caller.join().unwrap();
    assert_eq!(
        (status, answer["outputs"]["greeting"].as_str()),
        (200, Some("g"))
    );
}

#[test]
fn metrics_count_executions() {
    let hub = Hub::start("hub-metrics");
    let token = hub.token("alice", false);
    post_register(&hub, Some(&token), hello_registration());
    execute(&hub.url, &token, "hello", json!({"inputs": {}}));
    let response = http().get(&hub.metrics).send().unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().unwrap();
    assert!(
        text.contains(r#"node_host_hub_events_total{node="hello",outcome="no_worker"} 1"#),
        "{text}"
    );
}

/// The ids `node-host hub token list` shows for `account`, oldest first.
fn token_ids(hub: &Hub, account: &str) -> Vec<String> {
    let listed = node_host_e2e::run(
        node_host_e2e::node_host()
            .args(["hub", "token", "list", "--account", account, "--data"])
            .arg(&hub.data),
    )
    .expect_success();
    let mut lines = listed.stdout.lines();
    assert!(
        lines
            .next()
            .is_some_and(|header| header.contains("ACCOUNT"))
    );
    lines
        .map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(columns[1], account, "{line}");
            columns[0].to_owned()
        })
        .collect()
}

#[test]
fn a_revoked_token_is_refused_and_closes_the_connections_it_opened() {
    let hub = Hub::start_with("token-revoke", &["--token-recheck", "200ms"]);
    let token = hub.token("alice", false);
    let reader = hub.token("alice", true);
    let ids = token_ids(&hub, "alice");
    assert_eq!(ids.len(), 2, "{ids:?}");
    let mut worker = RawWorker::connect(&hub, &token);
    // A WebSocket token issued before the revocation, used after it.
    let (status, unused) = post_register(&hub, Some(&token), hello_registration());
    assert_eq!(status, 200, "{unused}");

    node_host_e2e::run(
        node_host_e2e::node_host()
            .args(["hub", "token", "revoke", &ids[0], "--data"])
            .arg(&hub.data),
    )
    .expect_success();

    // The open connection is closed with "policy violation".
    let closed = loop {
        match worker.socket.read() {
            Ok(Message::Close(frame)) => break frame,
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            other => panic!("expected the hub to close the connection, got {other:?}"),
        }
    };
    let frame = closed.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
    // The API refuses the token, the unused WebSocket token is refused too,
    // and the account's other token still works.
    let (status, answer) = execute(&hub.url, &token, "hello", json!({"inputs": {}}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let url = format!(
        "{}?auth={}",
        unused["websocket_url"].as_str().unwrap(),
        unused["token"].as_str().unwrap()
    );
    assert!(
        tungstenite::connect(url).is_err(),
        "the revoked token's WebSocket token is refused"
    );
    let (status, answer) = execute(&hub.url, &reader, "hello", json!({"inputs": {}}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (503, Some("no_worker")),
        "{answer}"
    );
    assert_eq!(token_ids(&hub, "alice"), ids[1..].to_vec());

    // An unknown id is an error that says where the ids are.
    let unknown = node_host_e2e::run(
        node_host_e2e::node_host()
            .args(["hub", "token", "revoke", &ids[0], "--data"])
            .arg(&hub.data),
    );
    assert_eq!(unknown.code, Some(2), "{unknown:#?}");
    assert!(unknown.stderr.contains("token list"), "{}", unknown.stderr);
}

/// Reads from `stream` until the peer closes it or `bound` passes: what
/// arrived, and whether it was closed.
fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> (String, bool) {
    use std::io::Read as _;
    stream.set_read_timeout(Some(bound)).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (String::from_utf8_lossy(&answer).into_owned(), true),
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&answer).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&answer).into_owned(), false),
        }
    }
}

#[test]
fn a_client_slow_to_send_its_headers_or_body_is_cut_off() {
    use std::io::Write as _;
    let hub = Hub::start_with(
        "slow-clients",
        &["--header-timeout", "300ms", "--body-timeout", "300ms"],
    );
    let token = hub.token("alice", false);

    // Half a request line, then nothing: closed at the header timeout.
    let mut headers = TcpStream::connect(hub.addr()).unwrap();
    headers.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    let started = std::time::Instant::now();
    let (_, closed) = read_until_closed(&mut headers, Duration::from_secs(10));
    assert!(
        closed,
        "the hub closed a connection whose headers never came"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // An idle keep-alive connection is closed the same way.
    let mut idle = TcpStream::connect(hub.addr()).unwrap();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(10));
    assert!(closed, "the hub closed an idle connection");

    // A body that trickles: the request is refused once its time is up.
    let mut body = TcpStream::connect(hub.addr()).unwrap();
    let request = format!(
        "POST /api/remote_nodes/register HTTP/1.1\r\nHost: {}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"name\"",
        hub.addr()
    );
    body.write_all(request.as_bytes()).unwrap();
    let (answer, _) = read_until_closed(&mut body, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");

    // A client that sends in time is served.
    let response = http().get(format!("{}/healthz", hub.url)).send().unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[test]
fn callers_on_http2_send_many_events_over_one_connection() {
    let hub = Hub::start("http2-callers");
    let token = hub.token("alice", false);
    let _worker = node_host_e2e::start_worker(&hub.url, &token, &["hello"], &[]);
    node_host_e2e::eventually(Duration::from_secs(60), "the worker serves hello", || {
        execute(
            &hub.url,
            &token,
            "hello",
            json!({"inputs": {"name": "Ada"}}),
        )
        .0 == 200
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answers = runtime.block_on(async {
        let client = std::sync::Arc::new(
            node_host_e2e::load::H2Client::connect(&hub.url, 1)
                .await
                .unwrap(),
        );
        let calls: Vec<_> = (0..40)
            .map(|at| {
                let (client, token) = (client.clone(), token.clone());
                tokio::spawn(async move {
                    let body = json!({"inputs": {"name": format!("caller {at}")}});
                    let path = "/api/remote_nodes/hello/execute";
                    client.post(path, &token, body.to_string().into()).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap().expect("an answer over HTTP/2"));
        }
        answers
    });
    for (at, (status, body)) in answers.into_iter().enumerate() {
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["outputs"]["greeting"],
            format!("Hello caller {at}"),
            "{body}"
        );
    }
}

#[test]
fn an_http2_connection_that_stalls_or_goes_quiet_is_closed() {
    use std::io::Write as _;
    let hub = Hub::start_with("http2-quiet", &["--header-timeout", "300ms"]);
    let token = hub.token("alice", false);
    let started = std::time::Instant::now();

    // The first two bytes of HTTP/2's preface, then nothing.
    let mut stalled = TcpStream::connect(hub.addr()).unwrap();
    stalled.write_all(b"PR").unwrap();
    let (_, closed) = read_until_closed(&mut stalled, Duration::from_secs(10));
    assert!(
        closed,
        "the hub closed a connection whose preface never came"
    );

    // A whole preface and the client's settings, then nothing: the hub
    // answers with its own settings, then goes away (GOAWAY) and closes.
    let mut quiet = TcpStream::connect(hub.addr()).unwrap();
    quiet
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let (said, closed) = read_until_closed(&mut quiet, Duration::from_secs(10));
    assert!(closed, "the hub closed a quiet HTTP/2 connection");
    assert!(!said.is_empty(), "the hub spoke HTTP/2 first");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A request in flight outlives the quiet: a node that waits 1.5 s
    // (five header timeouts with nothing read) still answers its caller.
    let _worker = node_host_e2e::start_worker(&hub.url, &token, &["work"], &[]);
    let inputs = json!({"inputs": {"ms": 1, "wait": true}});
    node_host_e2e::eventually(Duration::from_secs(60), "the worker serves work", || {
        execute(&hub.url, &token, "work", inputs.clone()).0 == 200
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = runtime.block_on(async {
        let client = node_host_e2e::load::H2Client::connect(&hub.url, 1)
            .await
            .unwrap();
        let body = json!({"inputs": {"ms": 1500, "wait": true}}).to_string();
        let path = "/api/remote_nodes/work/execute";
        client.post(path, &token, body.into()).await.unwrap()
    });
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn clients_beyond_the_connection_limit_wait_for_a_place() {
    let hub = Hub::start_with("connection-limit", &["--max-connections", "2"]);
    let first = TcpStream::connect(hub.addr()).unwrap();
    let second = TcpStream::connect(hub.addr()).unwrap();
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let healthz = format!("{}/healthz", hub.url);
    assert!(
        impatient.get(&healthz).send().is_err(),
        "a third connection waits while two are open"
    );
    drop(first);
    let response = http().get(&healthz).send().unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "served once a place is free"
    );
    drop(second);
}

#[test]
fn a_worker_message_over_16_mib_ends_its_connection_not_the_hub() {
    let hub = Hub::start("ws-message-limit");
    let token = hub.token("alice", false);
    let mut worker = RawWorker::connect(&hub, &token);
    let huge = format!(
        r#"{{"node":"hello","outputs":{{"greeting":"{}"}},"uuid":"x"}}"#,
        "a".repeat(17 << 20)
    );
    // The hub may stop reading before the whole message is written.
    let _ = worker.socket.send(Message::text(huge));
    let ended = loop {
        match worker.socket.read() {
            Ok(Message::Close(_)) | Err(_) => break true,
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("unexpected frame {other:?}"),
        }
    };
    assert!(ended);
    let (status, answer) = execute(&hub.url, &token, "hello", json!({"inputs": {}}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (503, Some("no_worker")),
        "{answer}"
    );
    // A worker within the limit still connects and serves.
    let mut again = RawWorker::connect(&hub, &token);
    let url = hub.url.clone();
    let reader = hub.token("alice", true);
    let caller = std::thread::spawn(move || execute(&url, &reader, "hello", json!({"inputs": {}})));
    let event = again.next_event();
    again.send(
        &json!({"node": "hello", "outputs": {"greeting": "g", "shout": "s"}, "uuid": event["uuid"]})
            .to_string(),
    );
    assert_eq!(caller.join().unwrap().0, 200);
}

#[test]
fn a_worker_cut_off_mid_reply_fails_its_caller_at_once() {
    use std::io::Write as _;
    let hub = Hub::start("cut-mid-reply");
    let token = hub.token("alice", false);
    let mut worker = RawWorker::connect(&hub, &token);
    let caller =
        node_host_e2e::execute_in_background(&hub.url, &token, "hello", json!({"inputs": {}}));
    let _event = worker.next_event();
    // Half a frame: a masked text frame that announces 100 bytes, 10 of
    // them, then the connection ends.
    let MaybeTlsStream::Plain(stream) = worker.socket.get_mut() else {
        unreachable!("a ws:// connection");
    };
    stream.write_all(&[0x81, 0x80 | 100, 1, 2, 3, 4]).unwrap();
    stream.write_all(&[b'x'; 10]).unwrap();
    stream.shutdown(std::net::Shutdown::Both).unwrap();
    let cut = std::time::Instant::now();
    node_host_e2e::assert_worker_lost(caller, cut, Duration::from_secs(5));
    let health = http().get(format!("{}/healthz", hub.url)).send().unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
