//! Hosted nodes against a real `node-host hub`: uploads through the real
//! `node-host upload` and over HTTP, what is refused and why, per-account
//! isolation of every endpoint, limits and their admin command, and uploads
//! surviving a restart without a recompile.

use std::time::{Duration, Instant};

use node_host_e2e::{
    Hub, execute, execute_in_background, guest, http, node_host, run, start_worker,
    with_custom_section,
};
use serde_json::{Value, json};

/// `POST /api/nodes` with raw bytes.
fn post_component(hub: &Hub, token: &str, bytes: Vec<u8>) -> (u16, Value) {
    answer(
        http()
            .post(format!("{}/api/nodes", hub.url))
            .bearer_auth(token)
            .body(bytes),
    )
}

fn get(hub: &Hub, token: &str, path: &str) -> (u16, Value) {
    answer(http().get(format!("{}{path}", hub.url)).bearer_auth(token))
}

fn delete(hub: &Hub, token: &str, path: &str) -> (u16, Value) {
    answer(
        http()
            .delete(format!("{}{path}", hub.url))
            .bearer_auth(token),
    )
}

/// Waits until the account's lane holds `(running, waiting)` events, as
/// `GET /api/nodes/{node}` reports it.
fn wait_for_lane(hub: &Hub, token: &str, node: &str, load: (u64, u64)) {
    let path = format!("/api/nodes/{node}");
    node_host_e2e::eventually(Duration::from_secs(30), "the lane's load", || {
        let lane = &get(hub, token, &path).1["lane"];
        (lane["running"].as_u64(), lane["waiting"].as_u64()) == (Some(load.0), Some(load.1))
    });
}

/// Sends `request`; the status and the JSON answer.
fn answer(request: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let response = request.send().unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

fn account_set(hub: &Hub, account: &str, flags: &[&str]) -> node_host_e2e::Run {
    run(node_host()
        .args(["hub", "account", "set", account])
        .args(flags)
        .arg("--data")
        .arg(&hub.data))
}

#[test]
fn upload_execute_list_show_delete() {
    let hub = Hub::start("hosted-lifecycle");
    let token = hub.token("alice", false);
    let done = hub.upload(&token, "hello");
    assert_eq!(done.code, Some(0), "{done:#?}");
    assert!(done.stdout.contains("uploaded `hello`") && done.stdout.contains("ready"));

    let (status, answer) = execute(
        &hub.url,
        &token,
        "hello",
        json!({"inputs": {"name": "Ada"}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["outputs"],
        json!({"greeting": "Hello Ada", "shout": "HELLO ADA"})
    );
    let called = run(node_host().args([
        "call",
        "--backend",
        &hub.url,
        "--token",
        &token,
        "hello",
        "name=Bo",
    ]));
    assert_eq!(called.code, Some(0), "{called:#?}");
    assert!(called.stdout.contains("Hello Bo"));

    let (status, listed) = get(&hub, &token, "/api/nodes");
    assert_eq!(status, 200);
    let nodes = listed["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["name"], "hello");
    assert_eq!(nodes[0]["status"], "ready");
    assert_eq!(nodes[0]["sha256"].as_str().unwrap().len(), 64);
    let (status, shown) = get(&hub, &token, "/api/nodes/hello");
    assert_eq!(status, 200);
    assert_eq!(shown["info"]["outputs"][0]["name"], "greeting");
    assert_eq!(shown["limits"]["concurrency"], 4);
    let (_, remote) = get(&hub, &token, "/api/remote_nodes");
    assert_eq!(
        remote["nodes"],
        json!([{"name": "hello", "inputs": ["name"], "outputs": ["greeting", "shout"]}])
    );

    let sha256 = shown["sha256"].as_str().unwrap().to_owned();
    let stored = |dir: &str| {
        std::fs::read_dir(hub.data.join(dir))
            .unwrap()
            .filter(|entry| {
                let name = entry.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with(&sha256)
            })
            .count()
    };
    assert_eq!((stored("components"), stored("compiled")), (1, 1));
    let (status, deleted) = delete(&hub, &token, "/api/nodes/hello");
    assert_eq!((status, deleted), (200, json!({"deleted": "hello"})));
    assert_eq!(
        (stored("components"), stored("compiled")),
        (0, 0),
        "a component no node uses is removed with its compiled artifact"
    );
    let (status, answer) = execute(&hub.url, &token, "hello", json!({}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("unknown_node"))
    );
    assert_eq!(get(&hub, &token, "/api/nodes/hello").0, 404);
    assert_eq!(delete(&hub, &token, "/api/nodes/hello").0, 404);
}

#[test]
fn logs_of_hosted_events_are_kept_per_account_and_capped() {
    let hub = Hub::start("hosted-logs");
    let alice = hub.token("alice", false);
    let bob = hub.token("bob", false);
    let done = hub.upload(&alice, "stdout-flood");
    assert_eq!(done.code, Some(0), "{done:#?}");
    let set = account_set(&hub, "alice", &["--max-log", "1KiB"]);
    assert_eq!(set.code, Some(0), "{set:#?}");
    assert!(set.stdout.contains("\"log_bytes\": 1024"), "{}", set.stdout);

    let (status, answer) = execute(
        &hub.url,
        &alice,
        "stdout-flood",
        json!({"inputs": {"bytes": 10000}}),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, logs) = get(&hub, &alice, "/api/nodes/stdout-flood/logs");
    assert_eq!(status, 200, "{logs}");
    let events = logs["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{logs}");
    let event = &events[0];
    assert_eq!(event["uuid"], answer["uuid"]);
    assert_eq!(event["outcome"], "ok");
    assert_eq!(event["truncated"], true);
    for stream in ["stdout", "stderr"] {
        let text = event[stream].as_str().unwrap();
        assert!(
            text.starts_with("flood") && text.len() <= 1024,
            "{stream}: {} bytes",
            text.len()
        );
    }
    let logged: usize = event["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["message"].as_str().unwrap().len())
        .sum();
    assert!(logged > 0 && logged <= 1024, "{logged} bytes of log lines");

    let (status, answer) = get(&hub, &bob, "/api/nodes/stdout-flood/logs");
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("unknown_node")),
        "another account's logs are invisible"
    );
    delete(&hub, &alice, "/api/nodes/stdout-flood");
    assert_eq!(get(&hub, &alice, "/api/nodes/stdout-flood/logs").0, 404);
}

#[test]
fn failures_of_hosted_events_carry_their_codes() {
    let hub = Hub::start("hosted-failures");
    let token = hub.token("alice", false);
    for name in ["spin-loop", "panic", "node-error"] {
        let done = hub.upload(&token, name);
        assert_eq!(done.code, Some(0), "{done:#?}");
    }
    // Fuel enough that only the deadline stops the spin, however fast the machine.
    let set = account_set(
        &hub,
        "alice",
        &["--timeout", "300ms", "--fuel", "9000000000000000000"],
    );
    assert_eq!(set.code, Some(0), "{set:#?}");
    assert!(set.stdout.contains("\"timeout_ms\": 300"), "{}", set.stdout);
    let (status, answer) = execute(&hub.url, &token, "spin-loop", json!({}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("deadline")),
        "{answer}"
    );
    account_set(&hub, "alice", &["--timeout", "30s", "--fuel", "1000000"]);
    // The hub read alice's limits for the event above.
    node_host_e2e::wait_for_new_limits();
    let (status, answer) = execute(&hub.url, &token, "spin-loop", json!({}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("out_of_fuel")),
        "{answer}"
    );
    let (status, answer) = execute(&hub.url, &token, "panic", json!({}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("trap")),
        "{answer}"
    );
    let (status, answer) = execute(&hub.url, &token, "node-error", json!({}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("guest_error")),
        "{answer}"
    );
    let called = run(node_host().args([
        "call",
        "--backend",
        &hub.url,
        "--token",
        &token,
        "spin-loop",
    ]));
    assert_eq!(called.code, Some(1), "{called:#?}");
    assert!(
        called.stderr.contains("out_of_fuel") && !called.stderr.contains("failed: node"),
        "{}",
        called.stderr
    );
}

#[test]
fn uploads_are_checked_before_they_are_accepted() {
    let hub = Hub::start("hosted-refusals");
    let token = hub.token("alice", false);
    let reader = hub.token("alice", true);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty", Vec::new(), 422, "empty_file"),
        ("text", b"#!/bin/sh\necho hi\n".to_vec(), 422, "not_wasm"),
        (
            "core module",
            wat::parse_str("(module)").unwrap(),
            422,
            "core_module",
        ),
        (
            "truncated",
            std::fs::read(guest("hello")).unwrap()[..2000].to_vec(),
            422,
            "invalid_component",
        ),
        (
            "other world",
            wat::parse_str(
                r#"(component
                    (core module $m (func (export "run")))
                    (core instance $i (instantiate $m))
                    (func (export "run") (canon lift (core func $i "run"))))"#,
            )
            .unwrap(),
            422,
            "wrong_world",
        ),
        (
            "denied import",
            wat::parse_str(r#"(component (import "wasi:keyvalue/store@0.2.0" (instance)))"#)
                .unwrap(),
            422,
            "denied_import",
        ),
        ("too large", vec![0u8; (64 << 20) + 1], 413, "too_large"),
    ];
    for (what, bytes, status, code) in cases {
        let (got, answer) = post_component(&hub, &token, bytes);
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
        assert!(
            answer["error"].as_str().is_some_and(|m| m.len() > 20),
            "{what}: {answer}"
        );
    }
    let hello = std::fs::read(guest("hello")).unwrap();
    let (status, answer) = post_component(&hub, &reader, hello.clone());
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("read_only_token"))
    );
    let response = http()
        .post(format!("{}/api/nodes", hub.url))
        .body(hello)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(get(&hub, &token, "/api/nodes").1, json!({"nodes": []}));

    let refused = run(node_host()
        .arg("upload")
        .arg(node_host_e2e::repo_root().join("README.md"))
        .args(["--backend", &hub.url, "--token", &token]));
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert!(refused.stderr.contains("not_wasm"), "{}", refused.stderr);
    let no_token = run(node_host()
        .arg("upload")
        .arg(guest("hello"))
        .args(["--backend", &hub.url])
        .env_remove("HUROZO_TOKEN")
        .env_remove("HUROZO_API_TOKEN"));
    assert_eq!(no_token.code, Some(2), "{no_token:#?}");
    assert!(no_token.stderr.contains("--token"), "{}", no_token.stderr);
}

#[test]
fn an_upload_that_outlasts_the_wait_is_polled_until_ready() {
    let hub = Hub::start_with("hosted-upload-wait", &["--upload-wait", "0s"]);
    let token = hub.token("alice", false);
    let (status, answer) = post_component(&hub, &token, std::fs::read(guest("echo")).unwrap());
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("compiling")),
        "{answer}"
    );
    let status_url = answer["status_url"].as_str().expect("a status URL");
    let bound = Instant::now() + Duration::from_secs(120);
    let ready = loop {
        let (status, answer) = get(&hub, &token, status_url);
        if answer["status"] != "compiling" {
            break (status, answer);
        }
        assert_eq!(status, 202, "{answer}");
        assert!(Instant::now() < bound, "still compiling: {answer}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (ready.0, ready.1["node"]["name"].as_str()),
        (200, Some("echo")),
        "{}",
        ready.1
    );

    // `node-host upload` polls through the same 202s to the end.
    let uploaded = hub.upload(&token, "hello");
    assert_eq!(uploaded.code, Some(0), "{uploaded:#?}");
    assert!(uploaded.stdout.contains("`hello`"), "{}", uploaded.stdout);
    assert!(uploaded.stdout.contains("ready"), "{}", uploaded.stdout);
}

#[test]
fn another_accounts_nodes_are_invisible_everywhere() {
    let hub = Hub::start("hosted-isolation");
    let alice = hub.token("alice", false);
    let bob = hub.token("bob", false);
    assert_eq!(hub.upload(&alice, "hello").code, Some(0));
    let (_, shown) = get(&hub, &alice, "/api/nodes/hello");
    let sha = shown["sha256"].as_str().unwrap().to_owned();

    assert_eq!(get(&hub, &bob, "/api/nodes"), (200, json!({"nodes": []})));
    assert_eq!(
        get(&hub, &bob, "/api/remote_nodes"),
        (200, json!({"nodes": []}))
    );
    assert_eq!(get(&hub, &bob, "/api/nodes/hello").0, 404);
    assert_eq!(get(&hub, &bob, "/api/nodes/hello/logs").0, 404);
    assert_eq!(get(&hub, &bob, &format!("/api/uploads/{sha}")).0, 404);
    assert_eq!(delete(&hub, &bob, "/api/nodes/hello").0, 404);
    assert_eq!(execute(&hub.url, &bob, "hello", json!({})).0, 404);
    assert_eq!(
        get(&hub, &alice, &format!("/api/uploads/{sha}")).1["status"],
        "ready"
    );

    // The same bytes under another account: stored once, owned twice.
    assert_eq!(hub.upload(&bob, "hello").code, Some(0));
    assert_eq!(delete(&hub, &alice, "/api/nodes/hello").0, 200);
    let (status, answer) = execute(&hub.url, &bob, "hello", json!({"inputs": {"name": "B"}}));
    assert_eq!(
        (status, &answer["outputs"]["greeting"]),
        (200, &json!("Hello B"))
    );
    let (_, logs) = get(&hub, &bob, "/api/nodes/hello/logs");
    assert_eq!(logs["events"].as_array().unwrap().len(), 1, "{logs}");
    assert_eq!(logs["events"][0]["uuid"], answer["uuid"]);
    assert_eq!(execute(&hub.url, &alice, "hello", json!({})).0, 404);
}

#[test]
fn a_full_lane_refuses_with_429_naming_the_limit() {
    let hub = Hub::start("hosted-queue");
    let token = hub.token("alice", false);
    let other = hub.token("bob", false);
    assert_eq!(hub.upload(&token, "spin-loop").code, Some(0));
    assert_eq!(hub.upload(&other, "hello").code, Some(0));
    let set = account_set(
        &hub,
        "alice",
        &[
            "--concurrency",
            "1",
            "--queue",
            "1",
            "--timeout",
            "4s",
            "--fuel",
            "1000000000000",
        ],
    );
    assert_eq!(set.code, Some(0), "{set:#?}");
    let running = execute_in_background(&hub.url, &token, "spin-loop", json!({}));
    wait_for_lane(&hub, &token, "spin-loop", (1, 0));
    let queued = execute_in_background(&hub.url, &token, "spin-loop", json!({}));
    wait_for_lane(&hub, &token, "spin-loop", (1, 1));
    let (status, answer) = execute(&hub.url, &token, "spin-loop", json!({}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (429, Some("queue_full")),
        "{answer}"
    );
    assert!(
        answer["error"].as_str().unwrap().contains("--queue"),
        "{answer}"
    );
    // Another account is not held up by alice's full lane.
    let (status, _) = execute(&hub.url, &other, "hello", json!({}));
    assert_eq!(status, 200);
    assert_eq!(running.join().unwrap().1["code"], "deadline");
    assert_eq!(queued.join().unwrap().1["code"], "deadline");

    let unknown = account_set(&hub, "carol", &["--queue", "1"]);
    assert_eq!(unknown.code, Some(2), "{unknown:#?}");
    assert!(
        unknown.stderr.contains("no account is named `carol`"),
        "{}",
        unknown.stderr
    );
    let nothing = account_set(&hub, "alice", &[]);
    assert_ne!(nothing.code, Some(0));
    assert!(
        nothing.stderr.contains("nothing to change"),
        "{}",
        nothing.stderr
    );
}

#[test]
fn uploads_survive_a_restart_without_recompiling() {
    let mut hub = Hub::start("hosted-restart");
    let token = hub.token("alice", false);
    assert_eq!(hub.upload(&token, "hello").code, Some(0));
    account_set(&hub, "alice", &["--queue", "7"]);
    let data = hub.data.clone();
    hub.service.signal("TERM");
    hub.service.wait_exit(Duration::from_secs(30));
    drop(hub);
    let hub = Hub::start_at(&data, "127.0.0.1:0");
    node_host_e2e::eventually(Duration::from_secs(10), "the restore line", || {
        hub.service.stderr().contains("loaded 1 uploaded nodes")
    });
    assert!(
        hub.service
            .stderr()
            .contains("(1 from the compile cache, 0 compiled)"),
        "{}",
        hub.service.stderr()
    );
    let (status, answer) = execute(
        &hub.url,
        &token,
        "hello",
        json!({"inputs": {"name": "Ada"}}),
    );
    assert_eq!(
        (status, &answer["outputs"]["greeting"]),
        (200, &json!("Hello Ada"))
    );
    assert_eq!(
        get(&hub, &token, "/api/nodes/hello").1["limits"]["queue"],
        7
    );
}

#[test]
fn a_name_is_either_uploaded_or_served_by_a_worker() {
    let hub = Hub::start("hosted-names");
    let token = hub.token("alice", false);
    let worker = start_worker(&hub.url, &token, &["hello"], &[]);
    let (status, answer) = post_component(&hub, &token, std::fs::read(guest("hello")).unwrap());
    assert_eq!(
        (status, answer["code"].as_str()),
        (422, Some("name_taken")),
        "{answer}"
    );
    drop(worker);
    assert_eq!(hub.upload(&token, "echo").code, Some(0));
    let response = http()
        .post(format!("{}/api/remote_nodes/register", hub.url))
        .bearer_auth(&token)
        .json(&json!({"name": "echo", "inputs": [], "outputs": ["x"]}))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 409);
    let answer: Value = response.json().unwrap();
    assert_eq!(answer["code"], "name_taken");
}

#[test]
fn a_flood_of_endless_loops_slows_only_its_own_account() {
    let hub = Hub::start("hosted-fairness");
    let attacker = hub.token("mallory", false);
    let victim = hub.token("alice", false);
    assert_eq!(hub.upload(&attacker, "spin-loop").code, Some(0));
    assert_eq!(hub.upload(&victim, "hello").code, Some(0));
    let set = account_set(
        &hub,
        "mallory",
        &[
            "--timeout",
            "200ms",
            "--fuel",
            "1000000000000",
            "--queue",
            "1000",
        ],
    );
    assert_eq!(set.code, Some(0), "{set:#?}");
    let flood: Vec<_> = (0..200)
        .map(|_| execute_in_background(&hub.url, &attacker, "spin-loop", json!({})))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..50 {
        let name = format!("n{i}");
        let (status, answer) = execute(
            &hub.url,
            &victim,
            "hello",
            json!({"inputs": {"name": name}}),
        );
        assert_eq!(status, 200, "hello {i} under the flood: {answer}");
        assert_eq!(answer["outputs"]["greeting"], format!("Hello {name}"));
    }
    for event in flood {
        let (status, answer) = event.join().unwrap();
        assert_eq!(
            (status, answer["code"].as_str()),
            (502, Some("deadline")),
            "{answer}"
        );
    }
}

/// `bytes` with a custom section appended: another sha256, the same node.

#[test]
fn a_new_upload_replaces_a_node_while_running_events_finish() {
    let hub = Hub::start("hosted-replace");
    let token = hub.token("alice", false);
    let first = std::fs::read(guest("work")).unwrap();
    let second = with_custom_section(first.clone(), "v2");
    let (status, answer) = post_component(&hub, &token, first);
    assert_eq!(status, 201, "{answer}");
    let old_sha = answer["node"]["sha256"].as_str().unwrap().to_owned();
    let running = execute_in_background(
        &hub.url,
        &token,
        "work",
        json!({"inputs": {"ms": 1500, "wait": true}}),
    );
    wait_for_lane(&hub, &token, "work", (1, 0));
    let (status, answer) = post_component(&hub, &token, second);
    assert_eq!(status, 201, "{answer}");
    let new_sha = answer["node"]["sha256"].as_str().unwrap().to_owned();
    assert_ne!(new_sha, old_sha);
    assert_eq!(
        get(&hub, &token, "/api/nodes/work").1["sha256"],
        new_sha.as_str()
    );
    assert_eq!(
        get(&hub, &token, "/api/nodes").1["nodes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, answer) = running.join().unwrap();
    assert_eq!(status, 200, "the event that was running finished: {answer}");
    let (status, answer) = execute(&hub.url, &token, "work", json!({"inputs": {"ms": 1}}));
    assert_eq!(status, 200, "{answer}");
    // The replaced version is kept, to roll back to; deleting the node
    // removes every version's file.
    let file = |sha: &str| hub.data.join(format!("components/{sha}.wasm"));
    assert!(file(&old_sha).exists(), "the replaced version is kept");
    assert!(file(&new_sha).exists());
    let deleted = http()
        .delete(format!("{}/api/nodes/work", hub.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    assert!(!file(&old_sha).exists() && !file(&new_sha).exists());
}

fn put_secret(hub: &Hub, token: &str, name: &str, body: &str) -> (u16, Value) {
    answer(
        http()
            .put(format!("{}/api/secrets/{name}", hub.url))
            .bearer_auth(token)
            .body(body.to_owned()),
    )
}

fn secrets_seen(hub: &Hub, token: &str) -> Value {
    let (status, answer) = execute(&hub.url, token, "secrets", json!({}));
    assert_eq!(status, 200, "{answer}");
    answer["outputs"].clone()
}

#[test]
fn secrets_reach_only_declaring_nodes_of_their_account_and_are_never_returned() {
    let mut hub = Hub::start("hosted-secrets");
    let alice = hub.token("alice", false);
    let reader = hub.token("alice", true);
    let bob = hub.token("bob", false);
    assert_eq!(hub.upload(&alice, "secrets").code, Some(0));
    assert_eq!(hub.upload(&bob, "secrets").code, Some(0));
    let value = |v: &str| json!({ "value": v }).to_string();
    assert_eq!(
        put_secret(&hub, &alice, "api-key", &value("alice-s3cret")).0,
        200
    );
    assert_eq!(
        put_secret(&hub, &alice, "other", &value("never-shown")).0,
        200
    );
    let (status, answer) = put_secret(&hub, &reader, "api-key", &value("x"));
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("read_only_token"))
    );
    assert_eq!(put_secret(&hub, &alice, "bad%20name", &value("x")).0, 400);
    assert_eq!(put_secret(&hub, &alice, "api-key", "plain text").0, 400);

    assert_eq!(
        secrets_seen(&hub, &alice),
        json!({"declared": "alice-s3cret", "undeclared": null})
    );
    assert_eq!(
        secrets_seen(&hub, &bob),
        json!({"declared": null, "undeclared": null})
    );
    assert_eq!(
        put_secret(&hub, &bob, "api-key", &value("bob-s3cret")).0,
        200
    );
    assert_eq!(secrets_seen(&hub, &bob)["declared"], "bob-s3cret");
    assert_eq!(secrets_seen(&hub, &alice)["declared"], "alice-s3cret");

    let listed = http()
        .get(format!("{}/api/secrets", hub.url))
        .bearer_auth(&alice)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let listed_json: Value = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = listed_json["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|secret| secret["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-key", "other"]);
    assert!(
        !listed.contains("s3cret") && !listed.contains("never-shown"),
        "{listed}"
    );

    assert_eq!(
        delete(&hub, &bob, "/api/secrets/other").0,
        404,
        "alice's, not bob's"
    );
    assert_eq!(delete(&hub, &alice, "/api/secrets/api-key").0, 200);
    assert_eq!(delete(&hub, &alice, "/api/secrets/api-key").0, 404);
    assert_eq!(secrets_seen(&hub, &alice)["declared"], Value::Null);

    // Sealed at rest, and still readable after a restart (the key file stays).
    let data = hub.data.clone();
    hub.service.signal("TERM");
    hub.service.wait_exit(Duration::from_secs(30));
    drop(hub);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(10).any(|window| window == b"bob-s3cret"),
                "{} holds a secret in the clear",
                path.display()
            );
        }
    }
    let hub = Hub::start_at(&data, "127.0.0.1:0");
    assert_eq!(secrets_seen(&hub, &bob)["declared"], "bob-s3cret");
}

#[test]
fn hosted_events_get_never_called_instances_and_the_lane_empties_after_each() {
    let hub = Hub::start("hosted-made-ahead");
    let token = hub.token("alice", false);
    let done = hub.upload(&token, "first-call");
    assert_eq!(done.code, Some(0), "{done:#?}");
    // After each event the hub makes the node's next instance inside the
    // account's lane; every event still gets one that nothing has called.
    for _ in 0..5 {
        let (status, answer) = execute(&hub.url, &token, "first-call", json!({"inputs": {}}));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["outputs"],
            json!({"info-calls": 1, "execute-calls": 0}),
            "{answer}"
        );
        wait_for_lane(&hub, &token, "first-call", (0, 0));
    }
}

#[test]
fn a_restarting_hub_listens_before_it_loads_its_uploads_again() {
    // Loading a node runs its `info`, which for this one takes 1.5 s.
    let mut hub = Hub::start("hosted-slow-restore");
    let token = hub.token("alice", false);
    assert_eq!(hub.upload(&token, "slow-info").code, Some(0));
    let data = hub.data.clone();
    hub.service.signal("TERM");
    hub.service.wait_exit(Duration::from_secs(30));
    drop(hub);

    let hub = Hub::start_at(&data, "127.0.0.1:0");
    // Listening already (Hub::start_at waited for that line), still loading.
    assert!(
        !hub.service.stderr().contains("loaded 1 uploaded nodes"),
        "{}",
        hub.service.stderr()
    );
    let health = node_host_e2e::http()
        .get(format!("{}/healthz", hub.url))
        .send()
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // An event for the node waits until it is loaded, then runs.
    let (status, answer) = execute(&hub.url, &token, "slow-info", json!({"inputs": {}}));
    assert_eq!(
        (status, &answer["outputs"]["ready"]),
        (200, &json!(true)),
        "{answer}"
    );
    node_host_e2e::eventually(Duration::from_secs(30), "the restore line", || {
        hub.service.stderr().contains("loaded 1 uploaded nodes")
    });
    assert!(
        hub.service
            .stderr()
            .contains("loading 1 uploaded nodes in the background"),
        "{}",
        hub.service.stderr()
    );
}
