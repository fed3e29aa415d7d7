//! Hosted workers (`node-host run --hosted`) against a real hub: they fetch
//! uploaded components by hash, run their events under each account's
//! limits, and the hub runs the events itself when they go.

use std::time::Duration;

use node_host_e2e::{
    Hub, START_BOUND, Service, eventually, execute, execute_in_background, http, metric, node_host,
    run,
};
use serde_json::{Value, json};

/// A hosted-worker token for `hub`.
fn worker_token(hub: &Hub) -> String {
    let done = run(node_host()
        .args(["hub", "worker-token", "create", "--data"])
        .arg(&hub.data));
    assert_eq!(done.code, Some(0), "{done:#?}");
    let token = done.stdout.trim().to_owned();
    assert!(token.starts_with("nhw_"), "{token}");
    token
}

/// Starts `node-host run --hosted` with metrics on a free port; waits until
/// it is connected.
fn start_hosted(hub: &Hub, token: &str) -> (Service, String) {
    let mut service = Service::start(node_host().args([
        "run",
        "--hosted",
        "--backend",
        &hub.url,
        "--worker-token",
        token,
        "--metrics",
        "127.0.0.1:0",
    ]));
    let line = service.wait_for_line("metrics at", START_BOUND);
    let metrics = line.split_whitespace().last().unwrap().to_owned();
    service.wait_for_line("hosted worker of the hub", START_BOUND);
    (service, metrics)
}

/// How many hosted workers have the node's component ready, per the hub.
fn workers_ready(hub: &Hub, token: &str, node: &str) -> u64 {
    let shown: Value = http()
        .get(format!("{}/api/nodes/{node}", hub.url))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    shown["hosted_workers"].as_u64().unwrap_or(0)
}

fn events(metrics: &str, node: &str, outcome: &str) -> f64 {
    metric(
        metrics,
        &format!(r#"node_host_worker_events_total{{node="{node}",outcome="{outcome}"}}"#),
    )
}

#[test]
fn hosted_workers_run_uploaded_nodes_and_the_hub_takes_over_when_they_go() {
    let hub = Hub::start("hosted-workers");
    let alice = hub.token("alice", false);
    let token = worker_token(&hub);

    // A worker connected before the upload hears of it; one connected after
    // is told at connect. Both fetch, verify and compile before saying ready.
    let (first, first_metrics) = start_hosted(&hub, &token);
    hub.upload(&alice, "hello").expect_success();
    let (second, second_metrics) = start_hosted(&hub, &token);
    eventually(START_BOUND, "both hosted workers ready", || {
        workers_ready(&hub, &alice, "hello") == 2
    });
    for i in 0..20 {
        let (status, answer) = execute(
            &hub.url,
            &alice,
            "hello",
            json!({"inputs": {"name": format!("Ada{i}")}}),
        );
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["outputs"]["greeting"], format!("Hello Ada{i}"));
    }
    let ran = events(&first_metrics, "hello", "ok") + events(&second_metrics, "hello", "ok");
    assert_eq!(ran, 20.0, "every event ran once, on a hosted worker");

    // What an event printed and logged on a worker comes back to the hub.
    hub.upload(&alice, "stdout-flood").expect_success();
    eventually(START_BOUND, "stdout-flood ready on both workers", || {
        workers_ready(&hub, &alice, "stdout-flood") == 2
    });
    let (status, answer) = execute(
        &hub.url,
        &alice,
        "stdout-flood",
        json!({"inputs": {"bytes": 64}}),
    );
    assert_eq!(status, 200, "{answer}");
    let logs: Value = http()
        .get(format!("{}/api/nodes/stdout-flood/logs", hub.url))
        .bearer_auth(&alice)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let event = &logs["events"][0];
    assert_eq!(event["uuid"], answer["uuid"], "{logs}");
    assert!(
        event["stdout"].as_str().unwrap().starts_with("flood flood"),
        "{logs}"
    );
    assert_eq!(event["log"][0]["level"], "info", "{logs}");

    // The account's limits travel with its events.
    let set = run(node_host()
        .args([
            "hub",
            "account",
            "set",
            "alice",
            "--timeout",
            "300ms",
            // Fuel enough that only the deadline stops the spin, however
            // fast the machine.
            "--fuel",
            "9000000000000000000",
            "--data",
        ])
        .arg(&hub.data));
    assert_eq!(set.code, Some(0), "{set:#?}");
    // The hub read alice's limits for the events above.
    node_host_e2e::wait_for_new_limits();
    hub.upload(&alice, "spin-loop").expect_success();
    eventually(START_BOUND, "spin-loop ready on both workers", || {
        workers_ready(&hub, &alice, "spin-loop") == 2
    });
    let (status, answer) = execute(&hub.url, &alice, "spin-loop", json!({}));
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("deadline")),
        "{answer}"
    );
    let deadlines = events(&first_metrics, "spin-loop", "deadline")
        + events(&second_metrics, "spin-loop", "deadline");
    assert_eq!(deadlines, 1.0);

    // A worker that goes during an event: the hub runs the event again
    // itself, so the caller gets the node's own answer, not a lost worker.
    let running = execute_in_background(&hub.url, &alice, "spin-loop", json!({}));
    eventually(Duration::from_secs(10), "the loop runs on a worker", || {
        metric(&first_metrics, "node_host_worker_in_flight")
            + metric(&second_metrics, "node_host_worker_in_flight")
            >= 1.0
    });
    drop(first);
    drop(second);
    let (status, answer) = running.join().unwrap();
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("deadline")),
        "{answer}"
    );
    let lost = metric(
        &hub.metrics,
        r#"node_host_hub_events_total{node="spin-loop",outcome="worker_lost"}"#,
    );
    assert_eq!(lost, 1.0, "the first run was lost with its worker");

    // Workers gone: the hub runs the events itself.
    eventually(Duration::from_secs(10), "the hub noticed", || {
        workers_ready(&hub, &alice, "hello") == 0
    });
    let (status, answer) = execute(&hub.url, &alice, "hello", json!({"inputs": {"name": "Bo"}}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"]["greeting"], "Hello Bo");
}

#[test]
fn a_hosted_worker_needs_a_worker_token() {
    let hub = Hub::start("hosted-worker-token");
    let alice = hub.token("alice", false);
    for (token, what) in [
        ("nhw_forged", "a forged token"),
        (alice.as_str(), "an account token"),
    ] {
        let done = run(node_host().args([
            "run",
            "--hosted",
            "--backend",
            &hub.url,
            "--worker-token",
            token,
        ]));
        assert_eq!(done.code, Some(1), "{what}: {done:#?}");
        assert!(
            done.stderr.contains("refused the worker token")
                && done.stderr.contains("node-host hub worker-token create"),
            "{what}: {}",
            done.stderr
        );
    }
    // Components are not handed out without one either.
    let response = http()
        .get(format!(
            "{}/api/hosted/components/{}",
            hub.url,
            "0".repeat(64)
        ))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    let missing = run(node_host().args(["run", "--hosted", "--backend", &hub.url]));
    assert_eq!(missing.code, Some(2), "{missing:#?}");
    assert!(
        missing.stderr.contains("--worker-token"),
        "{}",
        missing.stderr
    );
    let no_backend = run(node_host().args(["run", "--hosted"]));
    assert_eq!(no_backend.code, Some(2), "{no_backend:#?}");
}
