//! Fair scheduling of hosted nodes: how much one account's flood of endless
//! loops slows another account's `hello`, measured in one run.
//!
//! A real hub hosts `hello` for `alice` and `spin-loop` for `mallory`
//! (deadline 1 s, fuel without end, 4 running and 8 queued; the rest of her
//! calls are refused with 429 and sent again at once). Each round measures
//! alice's latency alone, then while 64 of mallory's callers keep her lane
//! full of loops that each burn a whole second of CPU, then lets mallory's
//! loops drain. Rounds alternate so that the machine's own noise falls on
//! both sides; the verdict pools every round. Target: loaded p99 at most 3×
//! unloaded.
//!
//! Run: `guest-examples/build rust && cargo bench -p node-host-e2e --bench fairness
//! [-- --seconds 5 --rounds 3]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use node_host_e2e::load::{Measured, measure};
use node_host_e2e::{Hub, node_host, run};
use serde_json::json;

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
    let rounds = node_host_e2e::load::count_arg(&args, "--rounds", 3);
    let hub = Hub::start("bench-fairness");
    let alice = hub.token("alice", false);
    let mallory = hub.token("mallory", false);
    hub.upload(&alice, "hello").expect_success();
    hub.upload(&mallory, "spin-loop").expect_success();
    let set = run(node_host()
        .args(["hub", "account", "set", "mallory"])
        .args([
            "--timeout",
            "1s",
            "--fuel",
            "100000000000000",
            "--queue",
            "8",
        ])
        .arg("--data")
        .arg(&hub.data));
    assert_eq!(set.code, Some(0), "{set:#?}");
    let hello = json!({"name": "Ada"});

    println!("| alice's `hello`, concurrency 1 | events/s | p50 | p99 | errors |");
    println!("|---|---|---|---|---|");
    let (mut alone, mut flooded) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let quiet = measure(&hub.url, &alice, "hello", &hello, 1, seconds, &[]);
        row(&format!("alone (round {round})"), &quiet);
        alone.push(quiet);

        let stop = Arc::new(AtomicBool::new(false));
        let flood = {
            let (url, token, stop) = (hub.url.clone(), mallory.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    measure(&url, &token, "spin-loop", &json!({}), 64, 1.0, &[]);
                }
            })
        };
        std::thread::sleep(Duration::from_secs(2));
        let loaded = measure(&hub.url, &alice, "hello", &hello, 1, seconds, &[]);
        row(
            &format!("while mallory floods endless loops (round {round})"),
            &loaded,
        );
        flooded.push(loaded);
        stop.store(true, Ordering::Relaxed);
        flood.join().expect("the flood thread");
        // Mallory's running and queued loops end within their deadline.
        std::thread::sleep(Duration::from_secs(4));
    }
    let (alone, flooded) = (Measured::pooled(&alone), Measured::pooled(&flooded));
    row("alone, all rounds", &alone);
    row("while flooded, all rounds", &flooded);
    println!(
        "\np99 loaded / unloaded, all rounds: {:.2}× (target ≤ 3×); p50: {:.2}×",
        flooded.percentile(0.99).as_secs_f64() / alone.percentile(0.99).as_secs_f64(),
        flooded.percentile(0.50).as_secs_f64() / alone.percentile(0.50).as_secs_f64(),
    );
}
