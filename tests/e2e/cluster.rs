//! Several `node-host hub` processes sharing one private PostgreSQL
//! (`--database`) and one components directory (`--components`): accounts,
//! tokens and uploads are the cluster's, and an outage of the database is
//! `unavailable`, then heals without a restart.

use std::time::Duration;

use node_host_e2e::{Hub, cluster_database, eventually, execute, http, scratch_dir};
use serde_json::json;

/// Starts a hub of the cluster on `database`, its components in `shared`.
fn cluster_hub(test: &str, database: &str, shared: &std::path::Path) -> Hub {
    let shared = shared.to_str().expect("a UTF-8 path");
    Hub::start_with(
        test,
        &[
            "--database",
            database,
            "--components",
            shared,
            "--token-recheck",
            "500ms",
        ],
    )
}

fn hello(hub: &Hub, token: &str) -> (u16, serde_json::Value) {
    execute(&hub.url, token, "hello", json!({"inputs": {"name": "Ada"}}))
}

#[test]
fn hubs_sharing_a_database_share_accounts_tokens_and_uploads() {
    let (_postgres, database) = cluster_database("cluster");
    let shared = scratch_dir("cluster-components");
    let a = cluster_hub("cluster-a", &database, &shared);
    let b = cluster_hub("cluster-b", &database, &shared);
    let alice = a.token("alice", false);
    let bob = b.token("bob", false);

    let done = a.upload(&alice, "hello");
    assert_eq!(done.code, Some(0), "{done:#?}");
    // Taken by A, run at once by B: read from the store and the shared
    // directory, compiled into B's own cache.
    let (status, answer) = hello(&b, &alice);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["outputs"],
        json!({"greeting": "Hello Ada", "shout": "HELLO ADA"})
    );
    assert!(
        std::fs::read_dir(b.data.join("compiled")).unwrap().count() > 0,
        "B compiled the component itself"
    );
    // Another account sees nothing of it on either hub.
    for hub in [&a, &b] {
        let (status, answer) = hello(hub, &bob);
        assert_eq!((status, &answer["code"]), (404, &json!("unknown_node")));
    }

    // Deleted through A: B stops running it within its recheck period.
    let deleted = http()
        .delete(format!("{}/api/nodes/hello", a.url))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    eventually(
        Duration::from_secs(10),
        "B forgets the deleted node",
        || hello(&b, &alice).0 == 404,
    );

    // A token revoked through one hub is refused by the other.
    let revoke = node_host_e2e::run(node_host_e2e::node_host().args([
        "hub",
        "token",
        "revoke",
        "2",
        "--database",
        &database,
    ]));
    assert_eq!(revoke.code, Some(0), "{revoke:#?}");
    eventually(
        Duration::from_secs(10),
        "A refuses bob's revoked token",
        || hello(&a, &bob).0 == 401,
    );
}

#[test]
fn a_database_outage_is_unavailable_and_heals_without_a_restart() {
    let (mut postgres, database) = cluster_database("outage");
    let shared = scratch_dir("outage-components");
    let hub = cluster_hub("outage", &database, &shared);
    let alice = hub.token("alice", false);
    let done = hub.upload(&alice, "hello");
    assert_eq!(done.code, Some(0), "{done:#?}");
    assert_eq!(hello(&hub, &alice).0, 200);

    postgres.stop().expect("PostgreSQL stops");
    let (status, answer) = hello(&hub, &alice);
    assert_eq!(
        (status, &answer["code"]),
        (503, &json!("unavailable")),
        "{answer}"
    );
    assert!(
        answer["error"].as_str().unwrap().contains("database"),
        "{answer}"
    );

    postgres.start_again().expect("PostgreSQL starts again");
    eventually(Duration::from_secs(20), "the hub works again", || {
        hello(&hub, &alice).0 == 200
    });
}
