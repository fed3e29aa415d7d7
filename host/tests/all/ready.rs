//! Instances made ahead of their events (`NodeComponent::make_ready`): as
//! fresh as those made on the event's path, each used by one event, under
//! that event's own fuel, deadline, limits and secrets.

use std::collections::HashMap;
use std::time::Duration;

use node_host::sandbox::{
    ErrorCode, Limits, NodeComponent, READY_INSTANCES, READY_INSTANCES_IN_ALL, Sandbox,
    SandboxConfig,
};

use crate::{code, guest_bytes, inputs, int, outputs, sandbox, text};

/// A node of this test's own, so that no other test takes its instances.
fn own(name: &str) -> NodeComponent {
    sandbox().load(&guest_bytes(name)).unwrap()
}

fn no_secrets() -> HashMap<String, String> {
    HashMap::new()
}

#[test]
fn each_event_takes_an_instance_made_ahead_that_nothing_has_called() {
    let node = own("first-call");
    let limits = Limits::default();
    for _ in 0..READY_INSTANCES + 1 {
        node.make_ready(&no_secrets(), &limits);
    }
    assert_eq!(node.ready_instances(), READY_INSTANCES, "no more are kept");
    for left in (0..READY_INSTANCES).rev() {
        let outcome = node.execute(vec![], &no_secrets(), &limits);
        // Made from the pre-initialized component: one `info` call in its
        // past (pre-initialization's), no `execute`.
        assert_eq!(
            outputs(&outcome),
            &[
                ("info-calls".to_owned(), int(1)),
                ("execute-calls".to_owned(), int(0))
            ]
        );
        assert_eq!(node.ready_instances(), left, "each event takes one");
    }
    let outcome = node.execute(vec![], &no_secrets(), &limits);
    assert_eq!(
        outputs(&outcome)[1].1,
        int(0),
        "none left: made on the path"
    );
}

#[test]
fn the_deadline_starts_when_the_event_takes_the_instance() {
    let node = own("spin-loop");
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    // Obeyed: made long before, yet a short spin has its whole deadline.
    node.make_ready(&no_secrets(), &limits);
    std::thread::sleep(Duration::from_millis(500));
    let outcome = node.execute(
        inputs(&[("iterations", int(1_000))]),
        &no_secrets(),
        &limits,
    );
    assert_eq!(outputs(&outcome)[0].1, int(1_000));
    assert_eq!(node.ready_instances(), 0);
    // Violated: an endless spin still ends at the deadline.
    node.make_ready(&no_secrets(), &limits);
    let outcome = node.execute(inputs(&[]), &no_secrets(), &limits);
    assert_eq!(code(&outcome), ErrorCode::Deadline);
    assert_eq!(node.ready_instances(), 0);
}

#[test]
fn the_fuel_is_the_events_own() {
    let node = own("spin-loop");
    let limits = Limits {
        fuel: 10_000_000,
        ..Limits::default()
    };
    node.make_ready(&no_secrets(), &limits);
    let outcome = node.execute(
        inputs(&[("iterations", int(1_000))]),
        &no_secrets(),
        &limits,
    );
    assert_eq!(outputs(&outcome)[0].1, int(1_000));
    assert!(outcome.fuel_used > 1_000 && outcome.fuel_used < 10_000_000);
    node.make_ready(&no_secrets(), &limits);
    let outcome = node.execute(inputs(&[]), &no_secrets(), &limits);
    assert_eq!(code(&outcome), ErrorCode::OutOfFuel);
    assert_eq!(outcome.fuel_used, 10_000_000);
}

#[test]
fn an_instance_made_for_other_secrets_or_limits_is_not_used() {
    let node = own("secrets");
    let mine = HashMap::from([("api-key".to_owned(), "mine".to_owned())]);
    let theirs = HashMap::from([("api-key".to_owned(), "theirs".to_owned())]);
    node.make_ready(&mine, &Limits::default());
    let outcome = node.execute(vec![], &theirs, &Limits::default());
    assert_eq!(outputs(&outcome)[0].1, text("theirs"));
    assert_eq!(
        node.ready_instances(),
        0,
        "the one made for `mine` is dropped"
    );

    node.make_ready(&mine, &Limits::default());
    let smaller = Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    };
    let outcome = node.execute(vec![], &mine, &smaller);
    assert_eq!(outputs(&outcome)[0].1, text("mine"));
    assert_eq!(node.ready_instances(), 0, "made under another memory cap");
}

#[test]
fn output_is_captured_for_the_event_that_takes_the_instance() {
    let node = own("panic");
    node.make_ready(&no_secrets(), &Limits::default());
    let message = inputs(&[("message", text("the sky fell"))]);
    let outcome = node.execute(message, &no_secrets(), &Limits::default());
    assert_eq!(code(&outcome), ErrorCode::Trap);
    assert!(
        outcome.stderr.text.contains("the sky fell"),
        "{:?}",
        outcome.stderr
    );
    assert_eq!(node.ready_instances(), 0);
}

#[test]
fn a_memory_bomb_in_an_instance_made_ahead_meets_the_events_cap() {
    let node = own("memory-bomb");
    let limits = Limits {
        memory_bytes: 12 << 20,
        ..Limits::default()
    };
    node.make_ready(&no_secrets(), &limits);
    let outcome = node.execute(inputs(&[("mib", int(8))]), &no_secrets(), &limits);
    assert_eq!(outputs(&outcome)[0].1, int(8));
    node.make_ready(&no_secrets(), &limits);
    let outcome = node.execute(inputs(&[]), &no_secrets(), &limits);
    assert_eq!(code(&outcome), ErrorCode::MemoryLimit);
}

#[test]
fn an_instance_that_cannot_be_made_is_left_to_the_event_to_report() {
    let node = own("hello");
    // Smaller than the guest's initial memory: instantiation is refused.
    let limits = Limits {
        memory_bytes: 64 << 10,
        ..Limits::default()
    };
    node.make_ready(&no_secrets(), &limits);
    assert_eq!(node.ready_instances(), 0);
    let outcome = node.execute(vec![], &no_secrets(), &limits);
    assert_eq!(code(&outcome), ErrorCode::MemoryLimit);
}

#[test]
fn the_nodes_of_a_sandbox_hold_a_bounded_number_of_instances_made_ahead() {
    // A sandbox of this test's own: the count is per sandbox.
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let bytes = guest_bytes("hello");
    let nodes: Vec<NodeComponent> = (0..READY_INSTANCES_IN_ALL / READY_INSTANCES + 1)
        .map(|_| sandbox.load(&bytes).unwrap())
        .collect();
    for node in &nodes {
        for _ in 0..READY_INSTANCES {
            node.make_ready(&no_secrets(), &Limits::default());
        }
    }
    let held = |nodes: &[NodeComponent]| -> usize {
        nodes.iter().map(NodeComponent::ready_instances).sum()
    };
    assert_eq!(
        held(&nodes),
        READY_INSTANCES_IN_ALL,
        "up to the bound, no more"
    );
    assert_eq!(nodes.last().unwrap().ready_instances(), 0);
    // An instance taken gives its place back.
    let outcome = nodes[0].execute(vec![], &no_secrets(), &Limits::default());
    assert_eq!(outputs(&outcome)[0].1, text("Hello world"));
    let last = nodes.last().unwrap();
    last.make_ready(&no_secrets(), &Limits::default());
    assert_eq!(last.ready_instances(), 1);
    assert_eq!(held(&nodes), READY_INSTANCES_IN_ALL);
}

#[test]
fn an_instance_made_ahead_serves_an_event_with_a_shorter_deadline_under_its_own() {
    let node = own("spin-loop");
    let made_for = Limits {
        fuel: u64::MAX / 2,
        timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    node.make_ready(&no_secrets(), &made_for);
    let shorter = Limits {
        timeout: Duration::from_millis(200),
        ..made_for
    };
    let started = std::time::Instant::now();
    let outcome = node.execute(inputs(&[]), &no_secrets(), &shorter);
    assert_eq!(code(&outcome), ErrorCode::Deadline);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(node.ready_instances(), 0, "taken, not made anew");
}
