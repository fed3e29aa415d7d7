//! One process survives 1,000 consecutive adversarial events, every one
//! classified correctly, with resident memory flat after warm-up. A test
//! binary of its own, so no other test's allocations move the RSS figure.

use std::collections::HashMap;
use std::time::Duration;

use node_host::sandbox::bench_support;
use node_host::sandbox::{
    ErrorCode, Limits, NamedValue, NodeComponent, Sandbox, SandboxConfig, Value,
};

const EVENTS: usize = 1_000;
const WARM_UP: usize = 200;
/// Growth of resident memory allowed between warm-up and the end.
const RSS_GROWTH_ALLOWED: u64 = 32 << 20;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn guest(sandbox: &Sandbox, name: &str) -> NodeComponent {
    sandbox
        .load(&bench_support::guest_example_bytes(name))
        .unwrap()
}

#[test]
fn a_thousand_adversarial_events() {
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let limits = Limits {
        fuel: 50_000_000,
        memory_bytes: 16 << 20,
        timeout: Duration::from_secs(5),
        capture_bytes: 4096,
        ..Limits::default()
    };
    let int = |name: &str, n: i64| {
        vec![NamedValue {
            name: name.into(),
            value: Value::Integer(n),
        }]
    };
    let deadline_limits = Limits {
        fuel: u64::MAX / 2,
        timeout: Duration::from_millis(20),
        ..limits.clone()
    };
    // (guest, inputs, limits, expected code or None for success)
    let table: [(&str, Vec<NamedValue>, &Limits, Option<ErrorCode>); 9] = [
        ("spin-loop", vec![], &limits, Some(ErrorCode::OutOfFuel)),
        (
            "spin-loop",
            vec![],
            &deadline_limits,
            Some(ErrorCode::Deadline),
        ),
        ("memory-bomb", vec![], &limits, Some(ErrorCode::MemoryLimit)),
        (
            "deep-recursion",
            vec![],
            &limits,
            Some(ErrorCode::StackOverflow),
        ),
        ("panic", vec![], &limits, Some(ErrorCode::Trap)),
        (
            "big-output",
            vec![],
            &limits,
            Some(ErrorCode::OutputTooLarge),
        ),
        ("node-error", vec![], &limits, Some(ErrorCode::GuestError)),
        ("stdout-flood", int("bytes", 64 << 10), &limits, None),
        ("hello", vec![], &limits, None),
    ];
    // Each guest is loaded (compiled) once, however many rows use it.
    let mut loaded: HashMap<&str, NodeComponent> = HashMap::new();
    for (name, ..) in &table {
        loaded.entry(name).or_insert_with(|| guest(&sandbox, name));
    }
    let cases: Vec<_> = table
        .into_iter()
        .map(|(name, inputs, limits, expected)| (&loaded[name], inputs, limits, expected))
        .collect();
    let secrets = HashMap::new();
    let mut after_warm_up = 0;
    for event in 0..EVENTS {
        let (node, inputs, limits, expected) = &cases[event % cases.len()];
        let outcome = node.execute(inputs.clone(), &secrets, limits);
        let got = outcome.result.as_ref().err().map(|failure| failure.code);
        assert_eq!(
            got,
            *expected,
            "event {event} on {}: {:?}",
            node.name(),
            outcome.result
        );
        if event + 1 == WARM_UP {
            after_warm_up = resident_bytes();
        }
    }
    let end = resident_bytes();
    assert!(
        end <= after_warm_up + RSS_GROWTH_ALLOWED,
        "resident memory grew from {after_warm_up} to {end} bytes"
    );
}
