//! The operator's commands against a real hub: `node-host node versions`,
//! `node rollback`, `node config` and `logs` (with `--follow`).

use std::time::Duration;

use node_host_e2e::{Hub, Service, execute, node_host, retagged, run, scratch_dir};
use serde_json::json;

fn cli(hub: &Hub, token: &str, args: &[&str]) -> node_host_e2e::Run {
    run(node_host()
        .args(args)
        .args(["--backend", &hub.url, "--token", token]))
}

#[test]
fn versions_rollback_config_and_logs_from_the_command_line() {
    let hub = Hub::start("operator-cli");
    let token = hub.token("alice", false);
    let files = scratch_dir("operator-cli-files");
    hub.upload(&token, "hello").expect_success();
    let second = retagged("hello", "two", &files);
    cli(&hub, &token, &["upload", second.to_str().unwrap()]).expect_success();

    let versions = cli(&hub, &token, &["node", "versions", "hello"]).expect_success();
    let rows: Vec<&str> = versions.stdout.lines().collect();
    assert_eq!(rows.len(), 3, "{}", versions.stdout);
    assert!(rows[1].starts_with("2        *"), "{}", versions.stdout);
    let rolled = cli(&hub, &token, &["node", "rollback", "hello", "1"]).expect_success();
    assert!(
        rolled.stdout.contains("now runs version 1"),
        "{}",
        rolled.stdout
    );
    let missing = cli(&hub, &token, &["node", "rollback", "hello", "9"]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("[version_not_kept]"),
        "{}",
        missing.stderr
    );

    let config = cli(
        &hub,
        &token,
        &["node", "config", "hello", "model=large", "mode=fast"],
    )
    .expect_success();
    assert_eq!(config.json(), json!({"mode": "fast", "model": "large"}));
    let config = cli(
        &hub,
        &token,
        &["node", "config", "hello", "--unset", "mode"],
    )
    .expect_success();
    assert_eq!(config.json(), json!({"model": "large"}));
    let bad = cli(&hub, &token, &["node", "config", "hello", "no-equals-sign"]);
    assert_eq!(bad.code, Some(2));

    let none = cli(&hub, &token, &["logs", "hello"]).expect_success();
    assert!(
        none.stderr.contains("no events kept of `hello`"),
        "{}",
        none.stderr
    );
    let (status, _) = execute(
        &hub.url,
        &token,
        "hello",
        json!({"inputs": {"name": "Ada"}}),
    );
    assert_eq!(status, 200);
    let logs = cli(&hub, &token, &["logs", "hello"]).expect_success();
    assert!(logs.stdout.contains("hello v1  ok"), "{}", logs.stdout);

    // Following: an event after it started shows up.
    let mut follow = node_host();
    follow
        .args(["logs", "--follow", "--json"])
        .args(["--backend", &hub.url, "--token", &token]);
    let mut follow = Service::start(&mut follow);
    follow.wait_for_line("\"node\":\"hello\"", Duration::from_secs(20));
    let (status, answer) = execute(&hub.url, &token, "hello", json!({"inputs": {"name": "Bo"}}));
    assert_eq!(status, 200);
    let uuid = answer["uuid"].as_str().unwrap();
    follow.wait_for_line(uuid, Duration::from_secs(20));

    let reader = hub.token("alice", true);
    let refused = cli(&hub, &reader, &["node", "rollback", "hello", "2"]);
    assert_eq!(
        refused.code,
        Some(2),
        "a read-only token: {}",
        refused.stderr
    );
}
