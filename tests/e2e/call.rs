//! `node-host call` on the guest examples.

use node_host_e2e::{guest, node_host, run};
use serde_json::json;

#[test]
fn hello_prints_its_outputs_as_json() {
    let out = run(node_host().arg("call").arg(guest("hello")).arg("name=Ada"));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(
        out.json(),
        json!({"greeting": "Hello Ada", "shout": "HELLO ADA"})
    );
}

#[test]
fn outputs_that_cannot_be_written_are_an_error_not_a_panic() {
    // A full disk: /dev/full refuses every write.
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    for args in [
        vec![
            "call".into(),
            guest("hello").into_os_string(),
            "name=Ada".into(),
        ],
        vec!["inspect".into(), guest("hello").into_os_string()],
    ] {
        let done = node_host()
            .args(&args)
            .stdout(full())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write to standard output"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_reader_that_goes_away_ends_call_quietly() {
    use std::io::Read as _;
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::Stdio;
    let mut child = node_host()
        .arg("call")
        .arg(guest("hello"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before node-host has loaded the node, as `| head`
    // does once it has what it wants.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        status.success() || status.signal() == Some(13),
        "{status:?}: {stderr}"
    );
}

#[test]
fn hello_without_inputs_greets_the_world() {
    let out = run(node_host().arg("call").arg(guest("hello")));
    assert_eq!(
        out.json(),
        json!({"greeting": "Hello world", "shout": "HELLO WORLD"})
    );
}

#[test]
fn inputs_json_and_typed_inputs() {
    let out = run(node_host().arg("call").arg(guest("echo")).args([
        "--inputs-json",
        r#"{"a": [1, {"b": null}]}"#,
        "b:=2.5",
    ]));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.json(), json!({"a": [1, {"b": null}], "b": 2.5}));
}

#[test]
fn out_of_fuel_as_json() {
    let out = run(node_host()
        .arg("call")
        .arg(guest("spin-loop"))
        .args(["--fuel", "1000000", "--json"]));
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert_eq!(out.json()["error"]["code"], "out_of_fuel");
}

#[test]
fn deadline_names_the_code_and_what_to_do() {
    let out = run(node_host().arg("call").arg(guest("spin-loop")).args([
        "--fuel",
        "9000000000000000000",
        "--timeout",
        "200ms",
        "--logs",
    ]));
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("deadline"), "{}", out.stderr);
    assert!(out.stderr.contains("--timeout"), "{}", out.stderr);
    // The fuel count of a loop stopped by the deadline is a lower bound.
    assert!(
        out.stderr.contains("fuel used: at least "),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn memory_limit_from_the_command_line() {
    let bomb = guest("memory-bomb");
    let obeyed = run(node_host()
        .arg("call")
        .arg(&bomb)
        .args(["mib:=4", "--memory", "16MiB"]));
    assert_eq!(obeyed.json(), json!({"held_mib": 4}));
    let violated = run(node_host()
        .arg("call")
        .arg(&bomb)
        .args(["--memory", "16MiB", "--json"]));
    assert_eq!(violated.code, Some(1));
    assert_eq!(violated.json()["error"]["code"], "memory_limit");
}

#[test]
fn panic_message_travels_with_the_trap() {
    let out = run(node_host()
        .arg("call")
        .arg(guest("panic"))
        .args(["message=kaboom", "--json"]));
    assert_eq!(out.code, Some(1));
    let error = &out.json()["error"];
    assert_eq!(error["code"], "trap");
    assert!(
        error["message"].as_str().unwrap().contains("kaboom"),
        "{error}"
    );
}

#[test]
fn guest_error_and_stack_overflow_and_big_output() {
    for (name, expected) in [
        ("node-error", "guest_error"),
        ("deep-recursion", "stack_overflow"),
        ("big-output", "output_too_large"),
    ] {
        let out = run(node_host().arg("call").arg(guest(name)).arg("--json"));
        assert_eq!(out.code, Some(1), "{name}: {out:#?}");
        assert_eq!(out.json()["error"]["code"], expected, "{name}");
    }
}

#[test]
fn secrets_reach_only_a_node_that_declares_them() {
    let out = run(node_host().arg("call").arg(guest("secrets")).args([
        "--secret",
        "api-key=s3cret",
        "--secret",
        "other=nope",
    ]));
    assert_eq!(
        out.json(),
        json!({"declared": "s3cret", "undeclared": null})
    );
}

#[test]
fn nodes_are_pre_initialized_unless_no_preinit_is_given() {
    let out = run(node_host().arg("call").arg(guest("first-call")));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.json(), json!({"info-calls": 1, "execute-calls": 0}));
    let by_flag = run(node_host()
        .args(["call", "--no-preinit"])
        .arg(guest("first-call")));
    let by_env = run(node_host()
        .env("NODE_HOST_NO_PREINIT", "1")
        .arg("call")
        .arg(guest("first-call")));
    for out in [by_flag, by_env] {
        assert_eq!(out.code, Some(0), "{out:#?}");
        assert_eq!(out.json(), json!({"info-calls": 0, "execute-calls": 0}));
    }
}

#[test]
fn logs_flag_shows_captured_output() {
    let out = run(node_host()
        .arg("call")
        .arg(guest("stdout-flood"))
        .args(["bytes:=100", "--logs"]));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.json(), json!({"written": 100}));
    assert!(out.stderr.contains("log [info] flood"), "{}", out.stderr);
    assert!(out.stderr.contains("fuel used:"), "{}", out.stderr);
}

#[test]
fn unknown_input_is_invalid_input() {
    let out = run(node_host()
        .arg("call")
        .arg(guest("hello"))
        .args(["nmae=x", "--json"]));
    assert_eq!(out.code, Some(1));
    assert_eq!(out.json()["error"]["code"], "invalid_input");
}

#[test]
fn usage_errors_exit_2() {
    let no_equals = run(node_host().arg("call").arg(guest("hello")).arg("name"));
    assert_eq!(no_equals.code, Some(2));
    assert!(
        no_equals.stderr.contains("NAME=TEXT"),
        "{}",
        no_equals.stderr
    );
    let bad_size = run(node_host()
        .arg("call")
        .arg(guest("hello"))
        .args(["--memory", "lots"]));
    assert_eq!(bad_size.code, Some(2));
    let twice = run(node_host().arg("call").arg(guest("hello")).args([
        "name=a",
        "--inputs-json",
        r#"{"name": "b"}"#,
    ]));
    assert_eq!(twice.code, Some(2));
    assert!(twice.stderr.contains("given twice"), "{}", twice.stderr);
}

#[test]
fn help_explains_inputs_and_exit_codes() {
    let out = run(node_host().args(["call", "--help"]));
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("NAME:=JSON") && out.stdout.contains("Exit codes"));
}
