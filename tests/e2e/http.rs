//! Outbound HTTP through the real binary: `node-host call` with and without
//! a grant, and a hub whose operator set an account's policy and whose
//! account granted its uploaded node, over loopback to an origin the test
//! starts. Secrets given to nodes never show in what node-host prints.

use std::time::Duration;

use node_host::sandbox::test_origin::TestOrigin;
use node_host_e2e::{Hub, execute, guest, http, node_host, run};
use serde_json::json;

const SECRET: &str = "sk-test-0a1b2c3d4e5f";

fn loopback(origin: &TestOrigin) -> String {
    format!("http://127.0.0.1:{}", origin.addr().port())
}

#[test]
fn call_reaches_an_allowed_origin_and_accounts_for_it() {
    let origin = TestOrigin::start();
    let out = run(node_host()
        .env("RUST_LOG", "trace")
        .arg("call")
        .arg(guest("fetch"))
        .arg(format!("url={}", origin.url("/hello")))
        .arg(r#"headers:={"authorization": "Bearer ${secret:api-key}"}"#)
        .args(["--secret", &format!("api-key={SECRET}")])
        .args([
            "--allow-http",
            &loopback(&origin),
            "--allow-private-addresses",
        ])
        .arg("--logs"));
    assert_eq!(out.code, Some(0), "{out:#?}");
    let outputs = out.json();
    assert_eq!(outputs["status"], 200);
    assert_eq!(outputs["body"], "hello from the origin");
    assert!(
        out.stderr
            .contains("http: 1 requests, 0 bytes out, 21 bytes in"),
        "{}",
        out.stderr
    );
    // Filled into the header by the host, and never printed, even at trace.
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    assert!(!out.stdout.contains(SECRET), "{}", out.stdout);
}

#[test]
fn call_without_a_grant_is_refused_naming_the_flag() {
    let out = run(node_host()
        .arg("call")
        .arg(guest("fetch"))
        .arg("url=http://x/"));
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("--allow-http"), "{}", out.stderr);
    let json = run(node_host()
        .arg("call")
        .arg(guest("fetch"))
        .arg("url=http://x/")
        .arg("--json"));
    assert_eq!(json.json()["error"]["code"], "http_not_granted");
}

#[test]
fn an_origin_not_allowed_fails_the_event_with_http_denied() {
    let origin = TestOrigin::start();
    let out = run(node_host()
        .arg("call")
        .arg(guest("fetch"))
        .arg(format!("url={}", origin.url("/hello")))
        .args(["--allow-http", "https://api.example.com", "--json"]));
    assert_eq!(out.code, Some(1), "{out:#?}");
    let error = &out.json()["error"];
    assert_eq!(error["code"], "http_denied", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("is not an allowed origin"),
        "{error}"
    );
    assert_eq!(origin.connections(), 0);
}

#[test]
fn a_hub_runs_an_uploaded_node_within_its_grant_and_its_accounts_policy() {
    let origin = TestOrigin::start();
    let mut hub = Hub::start_with("http-hub", &["--allow-private-addresses"]);
    let alice = hub.token("alice", false);
    let bob = hub.token("bob", false);
    let grant = |token: &str, origins: &[&str]| {
        run(node_host().args(["grant", "fetch"]).args(origins).args([
            "--backend",
            &hub.url,
            "--token",
            token,
        ]))
    };
    // Without a grant the upload is refused, saying what to run.
    let refused = hub.upload(&alice, "fetch");
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert!(
        refused.stderr.contains("node-host grant fetch"),
        "{}",
        refused.stderr
    );
    // The account's policy allows nothing until the operator sets it.
    let outside = grant(&alice, &[&loopback(&origin)]);
    assert_eq!(outside.code, Some(1), "{outside:#?}");
    assert!(
        outside.stderr.contains("origin_not_in_policy"),
        "{}",
        outside.stderr
    );
    let policy = run(node_host()
        .args([
            "hub",
            "account",
            "http",
            "alice",
            "--allow",
            "http://127.0.0.1:*",
            "--data",
        ])
        .arg(&hub.data));
    assert_eq!(policy.code, Some(0), "{policy:#?}");
    assert_eq!(policy.json()["allow"], json!(["http://127.0.0.1:*"]));
    let granted = grant(&alice, &[&loopback(&origin)]);
    assert_eq!(granted.code, Some(0), "{granted:#?}");
    assert_eq!(granted.json()["allow"], json!([loopback(&origin)]));
    let uploaded = hub.upload(&alice, "fetch");
    assert_eq!(uploaded.code, Some(0), "{uploaded:#?}");

    // The account's secret goes into the header; nothing prints it.
    let stored = http()
        .put(format!("{}/api/secrets/api-key", hub.url))
        .bearer_auth(&alice)
        .json(&json!({"value": SECRET}))
        .send()
        .unwrap();
    assert!(stored.status().is_success());
    let (status, answer) = execute(
        &hub.url,
        &alice,
        "fetch",
        json!({"inputs": {
            "url": origin.url("/header/x-probe"),
            "headers": {"authorization": "Bearer ${secret:api-key}", "x-probe": "seen"},
        }}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"]["body"], "seen");
    assert_eq!(answer["http"]["requests"], 1, "{answer}");
    assert_eq!(answer["http"]["bytes_in"], 4, "{answer}");
    let logs: serde_json::Value = http()
        .get(format!("{}/api/nodes/fetch/logs", hub.url))
        .bearer_auth(&alice)
        .send()
        .and_then(reqwest::blocking::Response::json)
        .unwrap();
    let usage = &logs["events"][0]["http"];
    assert_eq!(usage["requests"], 1, "{logs:#}");
    assert_eq!(usage["bytes_in"], 4, "{logs:#}");
    assert!(!logs.to_string().contains(SECRET));
    assert!(!hub.service.stderr().contains(SECRET));

    // Another origin, even on loopback, is refused.
    let elsewhere = format!("http://127.0.0.2:{}/hello", origin.addr().port());
    let (status, answer) = execute(
        &hub.url,
        &alice,
        "fetch",
        json!({"inputs": {"url": elsewhere}}),
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("http_denied")),
        "{answer}"
    );

    // Bob's account gets nothing from alice's policy or grant.
    let theirs = grant(&bob, &[&loopback(&origin)]);
    assert!(
        theirs.stderr.contains("origin_not_in_policy"),
        "{}",
        theirs.stderr
    );
    let theirs = hub.upload(&bob, "fetch");
    assert_eq!(theirs.code, Some(1), "{theirs:#?}");
    let (status, _) = execute(
        &hub.url,
        &bob,
        "fetch",
        json!({"inputs": {"url": origin.url("/hello")}}),
    );
    assert_eq!(status, 404);

    // Cleared: the next event's request is refused.
    let cleared = run(node_host().args([
        "grant",
        "fetch",
        "--clear",
        "--backend",
        &hub.url,
        "--token",
        &alice,
    ]));
    assert_eq!(cleared.code, Some(0), "{cleared:#?}");
    let hello = json!({"inputs": {"url": origin.url("/hello")}});
    let (status, answer) = execute(&hub.url, &alice, "fetch", hello.clone());
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("http_denied")),
        "{answer}"
    );

    // Restarted, the hub loads the node again with every request refused,
    // and a new grant applies at once.
    let data = hub.data.clone();
    hub.service.signal("TERM");
    hub.service.wait_exit(Duration::from_secs(30));
    drop(hub);
    let hub = Hub::start_at_with(&data, "127.0.0.1:0", &["--allow-private-addresses"]);
    let (status, answer) = execute(&hub.url, &alice, "fetch", hello.clone());
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("http_denied")),
        "{answer}"
    );
    let regranted = run(node_host()
        .args(["grant", "fetch", &loopback(&origin)])
        .args(["--backend", &hub.url, "--token", &alice]));
    assert_eq!(regranted.code, Some(0), "{regranted:#?}");
    let (status, answer) = execute(&hub.url, &alice, "fetch", hello);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn every_language_calls_an_allowed_origin_with_a_host_filled_secret() {
    let origin = TestOrigin::start();
    for node in ["fetch", "fetch-python", "fetch-js"] {
        let call = |inputs: &[String]| {
            run(node_host()
                .arg("call")
                .arg(guest(node))
                .args(inputs)
                .args(["--secret", &format!("api-key={SECRET}")])
                .args([
                    "--allow-http",
                    &loopback(&origin),
                    "--allow-private-addresses",
                ]))
        };
        let got = call(&[
            format!("url={}", origin.url("/header/authorization")),
            r#"headers:={"Authorization": "Bearer ${secret:api-key}"}"#.into(),
        ]);
        assert_eq!(got.code, Some(0), "{node}: {got:#?}");
        assert_eq!(got.json()["status"], 200, "{node}");
        assert_eq!(got.json()["body"], format!("Bearer {SECRET}"), "{node}");
        let posted = call(&[
            format!("url={}", origin.url("/sink")),
            "method=POST".into(),
            format!("body={}", "p".repeat(10_000)),
        ]);
        assert_eq!(posted.code, Some(0), "{node}: {posted:#?}");
        assert_eq!(posted.json()["body"], "10000", "{node}");
        let denied = call(&["url=http://127.0.0.2:9/".into(), "--json".into()]);
        assert_eq!(denied.code, Some(1), "{node}: {denied:#?}");
        assert_eq!(denied.json()["error"]["code"], "http_denied", "{node}");
    }
}
