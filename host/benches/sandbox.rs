//! Fresh-sandbox event cost for the `hello` guest, beside a reused instance,
//! with fuel and epochs on and off, plus a per-phase breakdown.
//!
//! Run: `guest-examples/build && cargo bench -p node-host --bench sandbox`
//! (`-- --quick` runs fewer iterations). Prints p50/p99 per case.

use std::time::{Duration, Instant};

use node_host::sandbox::bench_support::{
    Phases, ReusedInstance, guest_example_bytes, no_secrets, percentile, phases,
};
use node_host::sandbox::{Limits, NamedValue, NodeComponent, Sandbox, SandboxConfig, Value};

fn load(config: SandboxConfig) -> NodeComponent {
    let bytes = guest_example_bytes("hello");
    Sandbox::new(config)
        .expect("sandbox")
        .load(&bytes)
        .expect("hello loads")
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<44} p50 {:>8.2} µs   p99 {:>8.2} µs   ({} samples)",
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.len()
    );
}

fn measure(iterations: usize, mut event: impl FnMut()) -> Vec<Duration> {
    for _ in 0..iterations / 10 {
        event();
    }
    (0..iterations)
        .map(|_| {
            let started = Instant::now();
            event();
            started.elapsed()
        })
        .collect()
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let iterations = if quick { 2_000 } else { 20_000 };
    let inputs = vec![NamedValue {
        name: "name".into(),
        value: Value::Text("Ada".into()),
    }];
    let limits = Limits::default();
    let secrets = no_secrets();

    let metered = load(SandboxConfig::default());
    let unmetered = load(SandboxConfig {
        fuel: false,
        epochs: false,
        ..SandboxConfig::default()
    });
    println!("hello, {iterations} events per case\n");

    for (label, node) in [
        ("fuel + epochs", &metered),
        ("no fuel, no epochs", &unmetered),
    ] {
        report(
            &format!("fresh sandbox event ({label})"),
            measure(iterations, || {
                let outcome = node.execute(inputs.clone(), &secrets, &limits);
                assert!(outcome.result.is_ok());
            }),
        );
        let mut reused = ReusedInstance::new(node);
        report(
            &format!("reused instance call ({label})"),
            measure(iterations, || {
                assert_eq!(reused.call(&inputs), 2);
            }),
        );
    }

    println!("\nphases of a fresh event (fuel + epochs), p50:");
    let mut all: Vec<Phases> = (0..iterations)
        .map(|_| phases(&metered, &inputs, &limits))
        .collect();
    let mut p50 = |pick: fn(&Phases) -> Duration| {
        all.sort_by_key(pick);
        pick(&all[all.len() / 2]).as_secs_f64() * 1e6
    };
    println!(
        "  store + WASI ctx {:.2} µs | instantiate {:.2} µs | call {:.2} µs | drop {:.2} µs",
        p50(|p| p.store),
        p50(|p| p.instantiate),
        p50(|p| p.call),
        p50(|p| p.drop)
    );
}
