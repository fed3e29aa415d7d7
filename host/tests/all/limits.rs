//! Every limit, obeyed and violated, asserting the error code.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use node_host::sandbox::{ErrorCode, Limits, Sandbox, SandboxConfig};

use crate::{code, guest_bytes, inputs, int, outputs, run};

/// Fuel high enough that only the deadline can stop a spin.
const PLENTY_OF_FUEL: u64 = u64::MAX / 2;

#[test]
fn fuel_obeyed() {
    let limits = Limits {
        fuel: 10_000_000,
        ..Limits::default()
    };
    let outcome = run("spin-loop", &[("iterations", int(1_000))], &limits);
    assert_eq!(outputs(&outcome)[0].1, int(1_000));
    assert!(outcome.fuel_used > 1_000 && outcome.fuel_used < 10_000_000);
}

#[test]
fn fuel_violated() {
    let limits = Limits {
        fuel: 10_000_000,
        ..Limits::default()
    };
    let outcome = run("spin-loop", &[], &limits);
    assert_eq!(code(&outcome), ErrorCode::OutOfFuel);
    assert_eq!(outcome.fuel_used, 10_000_000);
}

#[test]
fn deadline_obeyed() {
    let limits = Limits {
        fuel: PLENTY_OF_FUEL,
        timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let outcome = run("spin-loop", &[("iterations", int(100_000))], &limits);
    assert_eq!(outputs(&outcome)[0].1, int(100_000));
}

#[test]
fn deadline_violated() {
    let limits = Limits {
        fuel: PLENTY_OF_FUEL,
        timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let started = Instant::now();
    let outcome = run("spin-loop", &[], &limits);
    assert_eq!(code(&outcome), ErrorCode::Deadline);
    // Stopped at the deadline, not long after: a bound, not a benchmark.
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_deadline_is_checked_at_every_host_call() {
    // A loop of cheap host calls burns little fuel, and a deadline finer than
    // the epoch's tick (the session thread's 1 ms try) would wait for the next
    // tick. Without epochs only the check at host calls can stop this guest
    // before its fuel (seconds of such calls) runs out.
    let sandbox = Sandbox::new(SandboxConfig {
        epochs: false,
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let node = sandbox.load(&guest_bytes("spin-loop")).expect("spin-loop");
    let limits = Limits {
        fuel: 500_000_000,
        timeout: Duration::from_millis(1),
        ..Limits::default()
    };
    let host_calls = inputs(&[("host_calls", int(1))]);
    let outcome = node.execute(host_calls.clone(), &HashMap::new(), &limits);
    assert_eq!(code(&outcome), ErrorCode::Deadline);
    assert!(outcome.fuel_used < limits.fuel);
    // Obeyed: the same loop, ending well within its deadline, finishes.
    let limits = Limits {
        timeout: Duration::from_secs(10),
        ..limits
    };
    let short = [("host_calls", int(1)), ("iterations", int(10_000))];
    let outcome = node.execute(inputs(&short), &HashMap::new(), &limits);
    assert_eq!(outputs(&outcome)[0].1, int(10_000));
}

#[test]
fn memory_obeyed() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let outcome = run("memory-bomb", &[("mib", int(16))], &limits);
    assert_eq!(outputs(&outcome)[0].1, int(16));
}

#[test]
fn memory_violated() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let outcome = run("memory-bomb", &[], &limits);
    assert_eq!(code(&outcome), ErrorCode::MemoryLimit);
}

#[test]
fn memory_cap_applies_at_instantiation() {
    // Smaller than the guest's initial memory: refused before any code runs.
    let limits = Limits {
        memory_bytes: 64 << 10,
        ..Limits::default()
    };
    let outcome = run("hello", &[], &limits);
    assert_eq!(code(&outcome), ErrorCode::MemoryLimit);
}

#[test]
fn stack_obeyed() {
    let outcome = run(
        "deep-recursion",
        &[("depth", int(1_000))],
        &Limits::default(),
    );
    assert_eq!(outputs(&outcome)[0].1, int(1_000));
}

#[test]
fn stack_violated() {
    let outcome = run("deep-recursion", &[], &Limits::default());
    assert_eq!(code(&outcome), ErrorCode::StackOverflow);
}

#[test]
fn output_size_obeyed() {
    let limits = Limits {
        output_bytes: 4096,
        ..Limits::default()
    };
    let outcome = run("big-output", &[("bytes", int(4000))], &limits);
    assert!(
        matches!(&outputs(&outcome)[0].1, node_host::sandbox::Value::Text(t) if t.len() == 4000)
    );
}

#[test]
fn output_size_violated() {
    let outcome = run("big-output", &[], &Limits::default());
    assert_eq!(code(&outcome), ErrorCode::OutputTooLarge);
}

#[test]
fn capture_obeyed() {
    let outcome = run("stdout-flood", &[("bytes", int(1_000))], &Limits::default());
    assert_eq!(outputs(&outcome)[0].1, int(1_000));
    for captured in [&outcome.stdout, &outcome.stderr] {
        assert_eq!(captured.text.len(), 1_000);
        assert!(!captured.truncated);
    }
    assert!(!outcome.log.truncated);
    assert_eq!(outcome.log.lines.len(), 1_000usize.div_ceil(64));
}

#[test]
fn capture_violated_truncates_and_the_node_still_succeeds() {
    let limits = Limits {
        capture_bytes: 4096,
        ..Limits::default()
    };
    let outcome = run("stdout-flood", &[("bytes", int(1 << 20))], &limits);
    assert_eq!(outputs(&outcome)[0].1, int(1 << 20));
    for captured in [&outcome.stdout, &outcome.stderr] {
        assert_eq!(captured.text.len(), 4096);
        assert!(captured.truncated);
    }
    assert!(outcome.log.truncated);
    let logged: usize = outcome.log.lines.iter().map(|l| l.message.len()).sum();
    assert!(logged <= 4096);
}

#[test]
fn a_sleep_in_the_host_obeyed() {
    let outcome = run("sleeper", &[("millis", int(20))], &Limits::default());
    let slept = match outputs(&outcome)[0].1 {
        node_host::sandbox::Value::Integer(ms) => ms,
        ref other => panic!("not an integer: {other:?}"),
    };
    assert!(slept >= 20, "slept {slept} ms");
}

#[test]
fn a_preview1_sleep_through_the_adapter_obeyed_and_violated() {
    // The C sleeper sleeps with wasi-libc's nanosleep: poll_oneoff in the
    // componentize adapter, then the host's clock.
    let outcome = run("sleeper-c", &[("millis", int(20))], &Limits::default());
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert!(
        outcome.duration >= Duration::from_millis(20),
        "{:?}",
        outcome.duration
    );
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let started = Instant::now();
    let outcome = run("sleeper-c", &[], &limits);
    let took = started.elapsed();
    assert_eq!(code(&outcome), ErrorCode::Deadline);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_sleep_in_the_host_violated_ends_at_the_deadline() {
    // A guest parked in a host call is beyond fuel and epochs: the wait
    // itself must end by the deadline.
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let started = Instant::now();
    let outcome = run("sleeper", &[], &limits);
    let took = started.elapsed();
    assert_eq!(code(&outcome), ErrorCode::Deadline);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    // A bound that proves the hour-long sleep was cut, not a benchmark
    // (the overshoot is about one epoch tick; BENCHMARKS.md).
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The node, and the thread, serve the next event.
    let outcome = run("sleeper", &[("millis", int(1))], &limits);
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
}
