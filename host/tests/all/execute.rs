//! The event path: inputs in, outputs out, and every way a node can fail
//! by itself.

use std::collections::HashMap;

use node_host::sandbox::{ErrorCode, Limits, Value};

use crate::{code, guest, inputs, int, outputs, run, text};

fn out(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .collect()
}

#[test]
fn hello_greets_by_name() {
    let outcome = run("hello", &[("name", text("Ada"))], &Limits::default());
    assert_eq!(
        outputs(&outcome),
        &out(&[
            ("greeting", text("Hello Ada")),
            ("shout", text("HELLO ADA"))
        ])
    );
    assert!(outcome.fuel_used > 0);
}

#[test]
fn hello_without_a_name_greets_the_world() {
    for given in [
        vec![],
        vec![("name", text("   "))],
        vec![("name", Value::Null)],
    ] {
        let outcome = run("hello", &given, &Limits::default());
        assert_eq!(outputs(&outcome)[0].1, text("Hello world"), "{given:?}");
    }
}

#[test]
fn info_is_read_once_at_load() {
    let node = guest("hello");
    assert_eq!(node.name(), "hello");
    let names: Vec<_> = node
        .info()
        .outputs
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["greeting", "shout"]);
    assert_eq!(node.sha256().len(), 64);
}

#[test]
fn unknown_input_is_invalid_input() {
    let outcome = run("hello", &[("nmae", text("typo"))], &Limits::default());
    assert_eq!(code(&outcome), ErrorCode::InvalidInput);
    let message = &outcome.result.as_ref().unwrap_err().message;
    assert!(
        message.contains("nmae") && message.contains("name"),
        "{message}"
    );
}

#[test]
fn duplicate_input_is_invalid_input() {
    let outcome = run(
        "hello",
        &[("name", text("a")), ("name", text("b"))],
        &Limits::default(),
    );
    assert_eq!(code(&outcome), ErrorCode::InvalidInput);
}

#[test]
fn values_of_every_kind_round_trip() {
    let values = [
        Value::Null,
        Value::Boolean(true),
        Value::Integer(-42),
        Value::Float(2.5),
        text("héllo"),
        Value::Bytes(vec![0, 1, 255]),
        Value::Json(r#"{"k":[1,2]}"#.into()),
    ];
    for value in values {
        let outcome = run("echo", &[("a", value.clone())], &Limits::default());
        assert_eq!(outputs(&outcome), &out(&[("a", value), ("b", Value::Null)]));
    }
}

#[test]
fn outputs_come_in_declared_order() {
    let outcome = run("echo", &[("b", int(2)), ("a", int(1))], &Limits::default());
    assert_eq!(outputs(&outcome), &out(&[("a", int(1)), ("b", int(2))]));
}

#[test]
fn undeclared_output_is_invalid_output() {
    let outcome = run(
        "echo",
        &[("a", int(1)), ("extra", int(3))],
        &Limits::default(),
    );
    assert_eq!(code(&outcome), ErrorCode::InvalidOutput);
    assert!(outcome.result.unwrap_err().message.contains("extra"));
}

#[test]
fn missing_required_output_is_invalid_output() {
    let outcome = run("echo", &[("b", int(2))], &Limits::default());
    assert_eq!(code(&outcome), ErrorCode::InvalidOutput);
}

#[test]
fn invalid_json_output_is_invalid_output() {
    let outcome = run(
        "echo",
        &[("a", Value::Json("{oops".into()))],
        &Limits::default(),
    );
    assert_eq!(code(&outcome), ErrorCode::InvalidOutput);
}

#[test]
fn node_error_is_guest_error_with_its_message() {
    let outcome = run(
        "node-error",
        &[("reason", text("closed today"))],
        &Limits::default(),
    );
    assert_eq!(code(&outcome), ErrorCode::GuestError);
    let message = outcome.result.unwrap_err().message;
    assert!(
        message.starts_with("refused: ") && message.contains("closed today"),
        "{message}"
    );
}

#[test]
fn panic_is_a_trap_carrying_the_panic_message() {
    let outcome = run(
        "panic",
        &[("message", text("the sky fell"))],
        &Limits::default(),
    );
    assert_eq!(code(&outcome), ErrorCode::Trap);
    let message = outcome.result.unwrap_err().message;
    assert!(message.contains("the sky fell"), "{message}");
    assert!(outcome.stderr.text.contains("the sky fell"));
}

#[test]
fn declared_secret_is_readable_and_undeclared_is_not() {
    let secrets = HashMap::from([
        ("api-key".to_owned(), "s3cret".to_owned()),
        ("other".to_owned(), "not for you".to_owned()),
    ]);
    let outcome = guest("secrets").execute(inputs(&[]), &secrets, &Limits::default());
    assert_eq!(
        outputs(&outcome),
        &out(&[("declared", text("s3cret")), ("undeclared", Value::Null)])
    );
}

#[test]
fn missing_secret_reads_as_none() {
    let outcome = guest("secrets").execute(inputs(&[]), &HashMap::new(), &Limits::default());
    assert_eq!(outputs(&outcome)[0].1, Value::Null);
}

#[test]
fn every_event_starts_from_a_fresh_instance() {
    // The memory bomb holds what it allocates until it returns; if the
    // instance were reused, the second event would start with 8 MiB held.
    let limits = Limits {
        memory_bytes: 12 << 20,
        ..Limits::default()
    };
    for _ in 0..3 {
        let outcome = run("memory-bomb", &[("mib", int(8))], &limits);
        assert_eq!(outputs(&outcome)[0].1, int(8));
    }
}

#[test]
fn every_event_starts_fresh_from_the_state_one_info_call_leaves() {
    // Pre-initialization (the default): each event's new instance starts
    // just after one `info` call, never after another event.
    for _ in 0..3 {
        let outcome = run("first-call", &[], &Limits::default());
        assert_eq!(
            outputs(&outcome),
            &out(&[("info-calls", int(1)), ("execute-calls", int(0))])
        );
    }
}

#[test]
fn without_pre_initialization_events_start_from_the_component_as_built() {
    let sandbox = node_host::sandbox::Sandbox::new(node_host::sandbox::SandboxConfig {
        preinitialize: false,
        ..Default::default()
    })
    .unwrap();
    let node = sandbox.load(&crate::guest_bytes("first-call")).unwrap();
    for _ in 0..2 {
        let outcome = node.execute(vec![], &HashMap::new(), &Limits::default());
        assert_eq!(
            outputs(&outcome),
            &out(&[("info-calls", int(0)), ("execute-calls", int(0))])
        );
    }
}

/// The message of a failed outcome.
fn failure_message(outcome: &node_host::sandbox::Outcome) -> String {
    match &outcome.result {
        Ok(outputs) => panic!("expected a failure, got {outputs:?}"),
        Err(failure) => failure.message.clone(),
    }
}

#[test]
fn files_environment_and_sockets_are_not_granted() {
    for (what, why) in [
        ("file", "reading /etc/hostname"),
        ("env", "reading $HOME"),
        ("socket", "connecting to 127.0.0.1:80"),
    ] {
        let outcome = run("probe", &[("what", text(what))], &Limits::default());
        assert_eq!(code(&outcome), ErrorCode::GuestError, "{what}");
        let message = failure_message(&outcome);
        assert!(message.contains(why), "{what}: {message}");
    }
}

#[test]
fn clocks_and_random_work_and_random_is_fresh_in_every_event() {
    let outcome = run("probe", &[("what", text("clock"))], &Limits::default());
    let Value::Integer(seconds) = outputs(&outcome)[0].1 else {
        panic!("not an integer: {outcome:?}");
    };
    // Later than 2026-01-01: the host's wall clock, not a frozen one.
    assert!(seconds > 1_767_225_600, "{seconds}");
    let draws: std::collections::HashSet<String> = (0..4)
        .map(|_| {
            let outcome = run("probe", &[("what", text("random"))], &Limits::default());
            format!("{:?}", outputs(&outcome)[0].1)
        })
        .collect();
    assert_eq!(
        draws.len(),
        4,
        "each event draws its own random bytes: {draws:?}"
    );
}
