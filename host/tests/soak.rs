//! One process survives 1,000 consecutive adversarial events, every one
//! classified correctly, with resident memory flat after warm-up. A test
//! binary of its own, so no other test's allocations move the RSS figure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use node_host::sandbox::{ErrorCode, Limits, NamedValue, Sandbox, SandboxConfig, Value};

const EVENTS: usize = 1_000;
const WARM_UP: usize = 200;
/// Growth of resident memory allowed between warm-up and the end.
const RSS_GROWTH_ALLOWED: u64 = 32 << 20;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn guest(sandbox: &Sandbox, name: &str) -> node_host::sandbox::NodeComponent {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-examples/dist")
        .join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read {} ({err}): run guest-examples/build first",
            path.display()
        )
    });
    sandbox.load(&bytes).unwrap()
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
    // (guest, inputs, limits, expected code or None for success)
    let deadline_limits = Limits {
        fuel: u64::MAX / 2,
        timeout: Duration::from_millis(20),
        ..limits.clone()
    };
    let cases: Vec<(_, Vec<NamedValue>, &Limits, Option<ErrorCode>)> = vec![
        (
            guest(&sandbox, "spin-loop"),
            vec![],
            &limits,
            Some(ErrorCode::OutOfFuel),
        ),
        (
            guest(&sandbox, "spin-loop"),
            vec![],
            &deadline_limits,
            Some(ErrorCode::Deadline),
        ),
        (
            guest(&sandbox, "memory-bomb"),
            vec![],
            &limits,
            Some(ErrorCode::MemoryLimit),
        ),
        (
            guest(&sandbox, "deep-recursion"),
            vec![],
            &limits,
            Some(ErrorCode::StackOverflow),
        ),
        (
            guest(&sandbox, "panic"),
            vec![],
            &limits,
            Some(ErrorCode::Trap),
        ),
        (
            guest(&sandbox, "big-output"),
            vec![],
            &limits,
            Some(ErrorCode::OutputTooLarge),
        ),
        (
            guest(&sandbox, "node-error"),
            vec![],
            &limits,
            Some(ErrorCode::GuestError),
        ),
        (
            guest(&sandbox, "stdout-flood"),
            int("bytes", 64 << 10),
            &limits,
            None,
        ),
        (guest(&sandbox, "hello"), vec![], &limits, None),
    ];
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
