//! Hubs in a cluster over loopback: a private PostgreSQL (`--database`),
//! a private nats-server (`--nats`), real `node-host hub` processes and
//! real `node-host run` workers serving `hello`, and a load generator
//! calling `POST /api/remote_nodes/hello/execute`.
//!
//! In one run:
//! - the baseline: one hub on SQLite (the default), its worker on it;
//! - one hub of a cluster with its worker on it (PostgreSQL in the path);
//! - cross-hub: the caller on a hub with no worker, the worker on another
//!   (one NATS request and reply in the path);
//! - 1, 2 and 3 hubs, each with a worker, the calls spread over them: the
//!   CPU each execute costs the hubs, which should stay flat as hubs are
//!   added (on two shared cores, events per second cannot grow).
//!
//! Run: `cargo bench -p node-host-e2e --bench cluster [-- --seconds 5]`

use std::time::Duration;

use node_host_e2e::load::{Measured, measure, measure_spread};
use node_host_e2e::{
    Hub, Service, cluster_database, eventually, execute, scratch_dir, start_worker,
};
use serde_json::json;

struct Row {
    case: String,
    concurrency: usize,
    measured: Measured,
    /// How many of the watched processes (first) are hubs; then NATS when
    /// `nats`, then workers.
    hubs: usize,
    nats: bool,
}

fn ready(url: &str, token: &str) {
    eventually(Duration::from_secs(60), "the worker answers", || {
        execute(url, token, "hello", json!({"inputs": {"name": "x"}})).0 == 200
    });
}

fn micros(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e6)
}

fn print(rows: &[Row]) {
    println!(
        "\n| case | callers | executes/s | p50 µs | p99 µs | hubs' CPU/execute µs | NATS CPU/execute µs | workers' CPU/execute µs | load generator CPU/execute µs | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let cpu = row.measured.cpu_per_event();
        let (hubs, rest) = cpu.split_at(row.hubs);
        let (nats, rest) = rest.split_at(usize::from(row.nats));
        let (workers, generator) = rest.split_at(rest.len() - 1);
        let sum = |part: &[Duration]| part.iter().sum::<Duration>();
        let nats = if row.nats {
            micros(sum(nats))
        } else {
            "-".to_owned()
        };
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {nats} | {} | {} | {} |",
            row.case,
            row.concurrency,
            row.measured.per_second(),
            micros(row.measured.percentile(0.5)),
            micros(row.measured.percentile(0.99)),
            micros(sum(hubs)),
            micros(sum(workers)),
            micros(generator[0]),
            row.measured.errors,
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = node_host_e2e::load::seconds_arg(&args);
    let inputs = json!({"name": "Ada"});
    let mut rows = Vec::new();
    let metrics = ["--metrics", "127.0.0.1:0"];

    // The baseline: one hub as it runs today.
    {
        let hub = Hub::start("bench-cluster-single");
        let token = hub.token("bench", false);
        let worker = start_worker(&hub.url, &token, &["hello"], &metrics);
        ready(&hub.url, &token);
        for concurrency in [1, 64] {
            let watch = [hub.service.pid(), worker.pid()];
            let measured = measure(
                &hub.url,
                &token,
                "hello",
                &inputs,
                concurrency,
                seconds,
                &watch,
            );
            rows.push(Row {
                case: "one hub, SQLite (baseline)".into(),
                concurrency,
                measured,
                hubs: 1,
                nats: false,
            });
        }
    }

    let (_postgres, database) = cluster_database("bench");
    let nats = node_host::testing::NatsServer::start().expect("a private nats-server");
    let shared = scratch_dir("bench-cluster-components");
    let flags = [
        "--database",
        &database,
        "--components",
        shared.to_str().unwrap(),
        "--nats",
        &nats.url(),
    ];
    let hubs: Vec<Hub> = (0..3)
        .map(|index| Hub::start_in_cluster(&format!("bench-cluster-{index}"), &flags))
        .collect();
    let urls: Vec<String> = hubs.iter().map(|hub| hub.url.clone()).collect();
    let pids: Vec<u32> = hubs.iter().map(|hub| hub.service.pid()).collect();
    let nats_pid = nats.pid().expect("nats-server runs");
    let token = hubs[0].token("bench", false);
    let first: Service = start_worker(&urls[0], &token, &["hello"], &metrics);
    ready(&urls[0], &token);
    ready(&urls[1], &token);
    for concurrency in [1, 64] {
        let measured = measure(
            &urls[0],
            &token,
            "hello",
            &inputs,
            concurrency,
            seconds,
            &[pids[0], nats_pid, first.pid()],
        );
        rows.push(Row {
            case: "one hub of a cluster, worker on it".into(),
            concurrency,
            measured,
            hubs: 1,
            nats: true,
        });
        let measured = measure(
            &urls[1],
            &token,
            "hello",
            &inputs,
            concurrency,
            seconds,
            &[pids[1], pids[0], nats_pid, first.pid()],
        );
        rows.push(Row {
            case: "cross-hub: caller's hub has no worker".into(),
            concurrency,
            measured,
            hubs: 2,
            nats: true,
        });
    }

    let mut workers = vec![first];
    for url in &urls[1..] {
        workers.push(start_worker(url, &token, &["hello"], &metrics));
        ready(url, &token);
    }
    for count in 1..=3 {
        let mut watch: Vec<u32> = pids[..count].to_vec();
        watch.push(nats_pid);
        watch.extend(workers[..count].iter().map(Service::pid));
        let measured = measure_spread(
            &urls[..count],
            &token,
            "hello",
            &inputs,
            64,
            seconds,
            &watch,
        );
        rows.push(Row {
            case: format!("{count} hubs, a worker on each, calls spread"),
            concurrency: 64,
            measured,
            hubs: count,
            nats: true,
        });
    }
    print(&rows);
}
