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
    Hub::start_in_cluster(
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

    // A hub whose secrets key is not the cluster's is refused at start:
    // secrets set through the others would not open on it.
    let stranger = node_host_e2e::run_bounded(
        node_host_e2e::node_host()
            .args(["hub", "--listen", "127.0.0.1:0", "--data"])
            .arg(scratch_dir("cluster-stranger"))
            .args(["--database", &database])
            .env(
                "NODE_HOST_SECRETS_KEY",
                "YSBzdHJhbmdlciBrZXk6IG5vdCB0aGUgY2x1c3RlcnM=",
            ),
        Duration::from_secs(30),
    );
    assert_ne!(stranger.code, Some(0));
    assert!(
        stranger.stderr.contains("NODE_HOST_SECRETS_KEY"),
        "{}",
        stranger.stderr
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
    // Within a second of reading them the hub runs alice's events under
    // the limits it read; then it must read them again, and cannot.
    node_host_e2e::wait_for_new_limits();
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

/// Hubs on one private PostgreSQL and one private NATS.
struct Cluster {
    postgres: node_host::testing::PostgresServer,
    database: String,
    nats: node_host::testing::NatsServer,
    hubs: Vec<Hub>,
}

fn start_cluster(test: &str, hubs: usize) -> Cluster {
    start_cluster_with(test, hubs, &[])
}

fn start_cluster_with(test: &str, hubs: usize, extra: &[&str]) -> Cluster {
    let (postgres, database) = cluster_database(test);
    let nats = node_host::testing::NatsServer::start().expect("a private nats-server");
    let shared = scratch_dir(&format!("{test}-components"));
    let shared = shared.to_str().expect("a UTF-8 path");
    let hubs = (0..hubs)
        .map(|index| {
            Hub::start_in_cluster(
                &format!("{test}-{index}"),
                &[
                    "--database",
                    &database,
                    "--components",
                    shared,
                    "--nats",
                    &nats.url(),
                ]
                .iter()
                .chain(extra)
                .copied()
                .collect::<Vec<_>>(),
            )
        })
        .collect();
    Cluster {
        postgres,
        database,
        nats,
        hubs,
    }
}

/// Executes `hello` for `name` on `url` (5 s timeout): the status, and the
/// answer.
fn hello_named(url: &str, token: &str, name: &str) -> (u16, serde_json::Value) {
    execute(
        url,
        token,
        "hello",
        json!({"inputs": {"name": name}, "timeout_ms": 5000}),
    )
}

fn greeted(name: &str) -> serde_json::Value {
    json!({"greeting": format!("Hello {name}"), "shout": format!("HELLO {}", name.to_uppercase())})
}

fn worker_events(worker: &node_host_e2e::Service) -> f64 {
    node_host_e2e::metric(
        &worker.metrics_url(),
        r#"node_host_worker_events_total{node="hello",outcome="ok"}"#,
    )
}

#[test]
fn executes_reach_a_worker_on_any_hub_exactly_once() {
    let cluster = start_cluster("relay", 3);
    let urls: Vec<String> = cluster.hubs.iter().map(|hub| hub.url.clone()).collect();
    let alice = cluster.hubs[0].token("alice", false);
    let bob = cluster.hubs[0].token("bob", false);
    let metrics = ["--metrics", "127.0.0.1:0"];
    // Alice's worker on hub 0, Bob's on hub 1; hub 2 has none.
    let alices = node_host_e2e::start_worker(&urls[0], &alice, &["hello"], &metrics);
    let bobs = node_host_e2e::start_worker(&urls[1], &bob, &["hello"], &metrics);
    for url in &urls {
        for token in [&alice, &bob] {
            eventually(
                Duration::from_secs(10),
                "every hub reaches both workers",
                || hello_named(url, token, "warm-up").0 == 200,
            );
        }
    }
    let (alice_before, bob_before) = (worker_events(&alices), worker_events(&bobs));

    let threads = 8;
    let rounds = 1250;
    let callers: Vec<_> = (0..threads)
        .map(|thread| {
            let (urls, alice, bob) = (urls.clone(), alice.clone(), bob.clone());
            std::thread::spawn(move || {
                let mut sent = (0, 0);
                for round in 0..rounds {
                    let turn = thread + round;
                    let url = &urls[turn % urls.len()];
                    let name = format!("t{thread}r{round}");
                    let token = if turn % 2 == 0 {
                        sent.0 += 1;
                        &alice
                    } else {
                        sent.1 += 1;
                        &bob
                    };
                    let (status, answer) = hello_named(url, token, &name);
                    assert_eq!(status, 200, "{url}: {answer}");
                    assert_eq!(answer["outputs"], greeted(&name));
                }
                sent
            })
        })
        .collect();
    let (mut to_alice, mut to_bob) = (0.0, 0.0);
    for caller in callers {
        let (a, b) = caller.join().expect("every execute answered right");
        to_alice += f64::from(a);
        to_bob += f64::from(b);
    }
    assert_eq!(to_alice + to_bob, (threads * rounds) as f64);
    // Every execute reached its account's worker once: none twice, none
    // to the other account's.
    assert_eq!(worker_events(&alices) - alice_before, to_alice);
    assert_eq!(worker_events(&bobs) - bob_before, to_bob);
}

#[test]
fn a_hub_killed_under_load_fails_only_its_own_callers() {
    let mut cluster = start_cluster("kill", 3);
    let urls: Vec<String> = cluster.hubs.iter().map(|hub| hub.url.clone()).collect();
    let alice = cluster.hubs[0].token("alice", false);
    let metrics = ["--metrics", "127.0.0.1:0"];
    let worker = node_host_e2e::start_worker(&urls[0], &alice, &["hello"], &metrics);
    for url in &urls {
        eventually(
            Duration::from_secs(10),
            "every hub reaches the worker",
            || hello_named(url, &alice, "warm-up").0 == 200,
        );
    }
    let before = worker_events(&worker);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Callers of hubs 0 and 1 (which lives), and of hub 2 (which is killed).
    let callers: Vec<_> = (0..6)
        .map(|index| {
            let (url, alice, stop) = (urls[index % 3].clone(), alice.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u32, 0u32);
                for round in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) || round == 100_000 {
                        break;
                    }
                    let name = format!("c{index}r{round}");
                    let answer = node_host_e2e::http()
                        .post(format!("{url}/api/remote_nodes/hello/execute"))
                        .bearer_auth(&alice)
                        .json(&json!({"inputs": {"name": name}, "timeout_ms": 5000}))
                        .send()
                        .and_then(|response| response.json::<serde_json::Value>());
                    match answer {
                        Ok(answer) if answer["outputs"] == greeted(&name) => ok += 1,
                        _ => failed += 1,
                    }
                }
                (index % 3, ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let killed = cluster.hubs.pop().expect("three hubs");
    killed.service.signal("KILL");
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0.0;
    let mut attempted = 0.0;
    for caller in callers {
        let (hub, ok, failed) = caller.join().unwrap();
        answered += f64::from(ok);
        attempted += f64::from(ok + failed);
        if hub == 2 {
            assert!(failed > 0, "the killed hub's callers see it go");
        } else {
            assert_eq!(failed, 0, "callers of the hubs that live are not touched");
            assert!(ok > 0);
        }
    }
    // No event ran twice: the worker ran each answered one, and at most the
    // few the killed hub had in flight besides.
    let ran = worker_events(&worker) - before;
    assert!(
        ran >= answered && ran <= attempted,
        "ran {ran}, answered {answered}, attempted {attempted}"
    );
    drop(killed);
}

#[test]
fn a_nats_outage_is_unavailable_across_hubs_and_heals() {
    let mut cluster = start_cluster("nats-outage", 2);
    let urls: Vec<String> = cluster.hubs.iter().map(|hub| hub.url.clone()).collect();
    let alice = cluster.hubs[0].token("alice", false);
    let _worker = node_host_e2e::start_worker(&urls[0], &alice, &["hello"], &[]);
    eventually(Duration::from_secs(10), "hub 1 reaches the worker", || {
        hello_named(&urls[1], &alice, "warm-up").0 == 200
    });

    cluster.nats.stop();
    eventually(
        Duration::from_secs(10),
        "a relayed execute is unavailable",
        || {
            let (status, answer) = hello_named(&urls[1], &alice, "x");
            status == 503 && answer["code"] == "unavailable"
        },
    );
    // The worker's own hub goes on serving it.
    assert_eq!(
        hello_named(&urls[0], &alice, "Ada").1["outputs"],
        greeted("Ada")
    );

    cluster
        .nats
        .start_again()
        .expect("nats-server starts again");
    eventually(
        Duration::from_secs(20),
        "relayed executes work again",
        || hello_named(&urls[1], &alice, "Ada").0 == 200,
    );
}

/// Runs `call` from `threads` threads in a loop while `outage` runs, and
/// a second after; every answer must be one of `allowed` (a status and a
/// code, or 200 with the right outputs).
fn under_load(
    threads: usize,
    call: impl Fn(&str) -> (u16, serde_json::Value) + Send + Sync + 'static,
    allowed: &'static [(u16, &'static str)],
    outage: impl FnOnce(),
) -> (u32, u32) {
    let call = std::sync::Arc::new(call);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..threads)
        .map(|thread| {
            let (call, stop) = (call.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut ok, mut refused) = (0u32, 0u32);
                for round in 0..100_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let name = format!("t{thread}r{round}");
                    let (status, answer) = call(&name);
                    if status == 200 {
                        assert_eq!(answer["outputs"], greeted(&name), "{answer}");
                        ok += 1;
                    } else {
                        let code = answer["code"].as_str().unwrap_or_default();
                        assert!(
                            allowed.contains(&(status, code)),
                            "unexpected {status} {answer}"
                        );
                        refused += 1;
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    outage();
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    callers
        .into_iter()
        .map(|caller| caller.join().expect("only allowed answers"))
        .fold((0, 0), |(a, b), (ok, refused)| (a + ok, b + refused))
}

#[test]
fn postgresql_restarted_under_load_refuses_cleanly_and_recovers() {
    let mut cluster = start_cluster("pg-restart", 2);
    let alice = cluster.hubs[0].token("alice", false);
    let done = cluster.hubs[0].upload(&alice, "hello");
    assert_eq!(done.code, Some(0), "{done:#?}");
    let urls: Vec<String> = cluster.hubs.iter().map(|hub| hub.url.clone()).collect();
    for url in &urls {
        eventually(Duration::from_secs(10), "both hubs run the upload", || {
            hello_named(url, &alice, "warm-up").0 == 200
        });
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (token, spread) = (alice.clone(), urls.clone());
    let postgres = &mut cluster.postgres;
    let (ok, refused) = under_load(
        4,
        move |name| {
            let url = &spread[next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2];
            hello_named(url, &token, name)
        },
        &[(503, "unavailable")],
        || {
            postgres.stop().expect("PostgreSQL stops");
            std::thread::sleep(Duration::from_millis(500));
            postgres.start_again().expect("PostgreSQL starts again");
        },
    );
    assert!(ok > 0 && refused > 0, "{ok} answered, {refused} refused");
    for url in &urls {
        eventually(Duration::from_secs(20), "both hubs recover", || {
            hello_named(url, &alice, "Ada").0 == 200
        });
    }
}

#[test]
fn nats_restarted_under_load_refuses_relayed_executes_cleanly_and_recovers() {
    let mut cluster = start_cluster("nats-restart", 2);
    let urls: Vec<String> = cluster.hubs.iter().map(|hub| hub.url.clone()).collect();
    let alice = cluster.hubs[0].token("alice", false);
    let _worker = node_host_e2e::start_worker(&urls[0], &alice, &["hello"], &[]);
    eventually(Duration::from_secs(10), "hub 1 reaches the worker", || {
        hello_named(&urls[1], &alice, "warm-up").0 == 200
    });
    let (token, relaying) = (alice.clone(), urls[1].clone());
    let nats = &mut cluster.nats;
    let (ok, refused) = under_load(
        4,
        move |name| {
            execute(
                &relaying,
                &token,
                "hello",
                json!({"inputs": {"name": name}, "timeout_ms": 1000}),
            )
        },
        // An execute in flight when NATS went is lost with it: `worker_lost`
        // if NATS is back before its reply was due, else `unavailable`; just
        // after NATS is back, `no_worker` until the worker's hub has
        // subscribed again.
        &[
            (503, "unavailable"),
            (502, "worker_lost"),
            (503, "no_worker"),
        ],
        || {
            nats.stop();
            std::thread::sleep(Duration::from_millis(500));
            nats.start_again().expect("nats-server starts again");
        },
    );
    assert!(ok > 0 && refused > 0, "{ok} answered, {refused} refused");
    eventually(
        Duration::from_secs(20),
        "relayed executes work again",
        || hello_named(&urls[1], &alice, "Ada").0 == 200,
    );
}

#[test]
fn quotas_and_lanes_hold_across_the_cluster() {
    let cluster = start_cluster_with("limits", 2, &["--quota-nodes", "1"]);
    let alice = cluster.hubs[0].token("alice", false);
    let done = cluster.hubs[0].upload(&alice, "hello");
    assert_eq!(done.code, Some(0), "{done:#?}");
    // The quota counts the cluster's uploads, not one hub's.
    let refused = cluster.hubs[1].upload(&alice, "echo");
    assert_ne!(refused.code, Some(0), "{refused:#?}");
    assert!(
        refused.stderr.contains("quota_exceeded") || refused.stdout.contains("quota_exceeded"),
        "{refused:#?}"
    );

    let set = node_host_e2e::run(node_host_e2e::node_host().args([
        "hub",
        "account",
        "set",
        "alice",
        "--concurrency",
        "4",
        "--queue",
        "10",
        "--database",
        &cluster.database,
    ]));
    assert_eq!(set.code, Some(0), "{set:#?}");
    for hub in &cluster.hubs {
        eventually(
            Duration::from_secs(15),
            "each hub runs half the lane",
            || {
                let shown: serde_json::Value = http()
                    .get(format!("{}/api/nodes/hello", hub.url))
                    .bearer_auth(&alice)
                    .send()
                    .unwrap()
                    .json()
                    .unwrap();
                shown["lane"]["hubs"] == 2
                    && shown["lane"]["concurrency_here"] == 2
                    && shown["lane"]["queue_here"] == 5
            },
        );
    }
}

#[test]
fn a_worker_whose_hub_dies_reconnects_to_another_through_the_balancer() {
    let mut cluster = start_cluster("failover", 2);
    let addrs: Vec<String> = cluster
        .hubs
        .iter()
        .map(|hub| hub.addr().to_owned())
        .collect();
    let balancer = node_host_e2e::Balancer::start(addrs);
    let alice = cluster.hubs[0].token("alice", false);
    let worker = node_host_e2e::start_worker(
        &format!("http://{}", balancer.addr),
        &alice,
        &["hello"],
        &[],
    );
    let survivor = cluster.hubs[1].url.clone();
    eventually(
        Duration::from_secs(10),
        "the other hub reaches the worker",
        || hello_named(&survivor, &alice, "warm-up").0 == 200,
    );

    let connections = |hub: &Hub| node_host_e2e::metric(&hub.metrics, "node_host_hub_connections");
    assert_eq!(
        (connections(&cluster.hubs[0]), connections(&cluster.hubs[1])),
        (1.0, 0.0),
        "the balancer sent the worker to hub 0"
    );
    let dead = cluster.hubs.remove(0);
    dead.service.signal("KILL");
    eventually(
        Duration::from_secs(30),
        "the worker serves through the surviving hub",
        || hello_named(&survivor, &alice, "Ada").1["outputs"] == greeted("Ada"),
    );
    assert_eq!(connections(&cluster.hubs[0]), 1.0, "now on the survivor");
    drop((worker, dead));
}

#[test]
fn an_event_relayed_to_a_hub_that_dies_fails_fast() {
    let mut cluster = start_cluster("taker-dies", 2);
    let alice = cluster.hubs[0].token("alice", false);
    // A worker on hub 0 that takes events and never answers.
    let registered: serde_json::Value = http()
        .post(format!("{}/api/remote_nodes/register", cluster.hubs[0].url))
        .bearer_auth(&alice)
        .json(&json!({"name": "hello", "inputs": ["name"], "outputs": ["greeting", "shout"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let url = format!(
        "{}?auth={}",
        registered["websocket_url"].as_str().unwrap(),
        registered["token"].as_str().unwrap()
    );
    let (_silent, _) = tungstenite::connect(url).expect("hub 0 takes the worker");
    let relaying = cluster.hubs[1].url.clone();
    eventually(
        Duration::from_secs(10),
        "hub 1 knows the registration",
        || {
            execute(
                &relaying,
                &alice,
                "hello",
                json!({"inputs": {}, "timeout_ms": 1}),
            )
            .1["code"]
                == "timeout"
        },
    );

    let started = std::time::Instant::now();
    let caller = {
        let (url, token) = (relaying.clone(), alice.clone());
        std::thread::spawn(move || {
            execute(
                &url,
                &token,
                "hello",
                json!({"inputs": {}, "timeout_ms": 120_000}),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    cluster.hubs.remove(0).service.signal("KILL");
    let (status, answer) = caller.join().unwrap();
    assert_eq!(
        (status, &answer["code"]),
        (502, &json!("worker_lost")),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failed after {:?}, not at the caller's timeout",
        started.elapsed()
    );
}

#[test]
fn a_relayed_event_longer_than_the_silence_window_is_answered() {
    let cluster = start_cluster("long-relayed", 2);
    let alice = cluster.hubs[0].token("alice", false);
    let _worker = node_host_e2e::start_worker(&cluster.hubs[0].url, &alice, &["sleeper"], &[]);
    let relaying = cluster.hubs[1].url.clone();
    let quick = json!({"inputs": {"millis": 1}});
    eventually(Duration::from_secs(10), "hub 1 reaches the worker", || {
        execute(&relaying, &alice, "sleeper", quick.clone()).0 == 200
    });
    // 8 s is longer than the 6 s of silence after which a relayed event
    // counts as lost: the serving hub's `working` keeps it alive.
    let (status, answer) = execute(
        &relaying,
        &alice,
        "sleeper",
        json!({"inputs": {"millis": 8000}, "timeout_ms": 30_000}),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["outputs"]["slept"].as_i64().unwrap() >= 8000,
        "{answer}"
    );
}
