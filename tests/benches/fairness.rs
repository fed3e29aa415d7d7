//! Fair scheduling of hosted nodes: how much one account's flood of endless
//! loops slows another account's `hello`, measured in one run.
//!
//! A real hub hosts `hello` for `alice` and `spin-loop` for `mallory`
//! (deadline 1 s, fuel without end, a deep queue). Alice's latency is
//! measured alone, then while 64 of mallory's callers keep her lane full
//! of loops that each burn a whole second of CPU. Target: loaded p99 at
//! most 3× unloaded.
//!
//! Run: `guest-examples/build rust && cargo bench -p node-host-e2e --bench fairness [-- --seconds 5]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use node_host_e2e::load::{Measured, measure};
use node_host_e2e::{Hub, guest, node_host, run};
use serde_json::json;

fn upload(hub: &Hub, token: &str, name: &str) {
    let done = run(node_host().arg("upload").arg(guest(name)).args([
        "--backend",
        &hub.url,
        "--token",
        token,
    ]));
    assert_eq!(done.code, Some(0), "{done:#?}");
}

fn row(label: &str, measured: &Measured) {
    println!(
        "| {label} | {:.0} | {:.1?} | {:.1?} | {} |",
        measured.per_second(),
        measured.percentile(0.50),
        measured.percentile(0.99),
        measured.errors
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = node_host_e2e::load::seconds_arg(&args);
    let hub = Hub::start("bench-fairness");
    let alice = hub.token("alice", false);
    let mallory = hub.token("mallory", false);
    upload(&hub, &alice, "hello");
    upload(&hub, &mallory, "spin-loop");
    let set = run(node_host()
        .args(["hub", "account", "set", "mallory"])
        .args([
            "--timeout",
            "1s",
            "--fuel",
            "100000000000000",
            "--queue",
            "100000",
        ])
        .arg("--data")
        .arg(&hub.data));
    assert_eq!(set.code, Some(0), "{set:#?}");
    let hello = json!({"name": "Ada"});

    let alone = measure(&hub.url, &alice, "hello", &hello, 1, seconds);

    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let (url, token, stop) = (hub.url.clone(), mallory.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut loops = 0;
            while !stop.load(Ordering::Relaxed) {
                let batch = measure(&url, &token, "spin-loop", &json!({}), 64, 2.0);
                loops += batch.errors;
            }
            loops
        })
    };
    std::thread::sleep(std::time::Duration::from_secs(2));
    let flooded = measure(&hub.url, &alice, "hello", &hello, 1, seconds);
    stop.store(true, Ordering::Relaxed);
    let loops = flood.join().expect("the flood thread");

    println!("| alice's `hello`, concurrency 1 | events/s | p50 | p99 | errors |");
    println!("|---|---|---|---|---|");
    row("alone", &alone);
    row("while mallory floods endless loops", &flooded);
    println!(
        "\np99 loaded / unloaded: {:.2}× (target ≤ 3×); p50: {:.2}×; mallory's loops that hit their deadline meanwhile: {loops}",
        flooded.percentile(0.99).as_secs_f64() / alone.percentile(0.99).as_secs_f64(),
        flooded.percentile(0.50).as_secs_f64() / alone.percentile(0.50).as_secs_f64(),
    );
}
