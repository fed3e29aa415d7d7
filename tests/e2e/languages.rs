//! Nodes written in Python, JavaScript and C (built by guest-examples/build)
//! behave like the Rust ones: the same outputs, the same limits, the same
//! error codes, through `node-host call` and through hub + worker.

use std::sync::Once;
use std::time::Duration;

use node_host_e2e::{Hub, execute, guest, node_host, run, run_bounded, start_worker};
use serde_json::{Value, json};

const LANGUAGES: [&str; 3] = ["python", "js", "c"];

/// Compiles every language's guests into the shared compile cache once per
/// test process, one at a time, so tests running in parallel do not each
/// spend a minute compiling the same Python or JavaScript guest.
fn warm_cache() {
    static WARM: Once = Once::new();
    WARM.call_once(|| {
        let useful = ["textstats-python".to_owned(), "jsonpick-js".to_owned()];
        let examples = LANGUAGES
            .iter()
            .flat_map(|language| ["hello", "echo"].map(|node| format!("{node}-{language}")));
        for name in examples.chain(useful) {
            let out = run_bounded(
                node_host().arg("inspect").arg(guest(&name)),
                Duration::from_secs(900),
            );
            assert_eq!(out.code, Some(0), "{out:#?}");
        }
    });
}

/// `node-host call <guest> --json <args>`.
fn call(guest_name: &str, args: &[&str]) -> (Option<i32>, Value) {
    let out = run(node_host()
        .arg("call")
        .arg(guest(guest_name))
        .arg("--json")
        .args(args));
    (out.code, out.json())
}

#[test]
fn hello_in_every_language_answers_like_the_rust_hello() {
    warm_cache();
    let cases: [&[&str]; 8] = [
        &["name=Ada"],
        &[],
        &["name=   "],
        &["name=  Grace  "],
        &["name:=42"],
        &["name:=1.5"],
        &["name:=true"],
        &["name:=null"],
    ];
    for args in cases {
        let (code, want) = call("hello", args);
        assert_eq!(code, Some(0), "{want}");
        for language in LANGUAGES {
            let (code, got) = call(&format!("hello-{language}"), args);
            assert_eq!(code, Some(0), "{language} {args:?}: {got}");
            assert_eq!(got, want, "{language} {args:?}");
        }
    }
}

#[test]
fn every_value_type_round_trips_through_every_language() {
    warm_cache();
    let values = [
        json!("text with ünïcode"),
        json!(""),
        json!(-9007199254740993i64),
        json!(0),
        json!(2.5),
        json!(-0.125),
        json!(true),
        json!(false),
        json!(null),
        json!({"$bytes": "AJ//"}),
        json!([1, {"b": null}, "c"]),
        json!({"nested": {"list": [1.5, 2]}}),
    ];
    for language in LANGUAGES {
        for value in &values {
            let inputs = json!({ "value": value }).to_string();
            let (code, got) = call(&format!("echo-{language}"), &["--inputs-json", &inputs]);
            assert_eq!(code, Some(0), "{language} {value}: {got}");
            assert_eq!(got, json!({ "value": value }), "{language} {value}");
        }
    }
}

#[test]
fn an_endless_loop_in_every_language_ends_at_the_deadline() {
    warm_cache();
    for language in LANGUAGES {
        let (code, got) = call(
            &format!("echo-{language}"),
            &[
                "mode=loop",
                "--timeout",
                "300ms",
                "--fuel",
                "9000000000000000000",
            ],
        );
        assert_eq!(code, Some(1), "{language}: {got}");
        assert_eq!(got["error"]["code"], "deadline", "{language}: {got}");
    }
}

#[test]
fn an_endless_loop_in_every_language_runs_out_of_fuel() {
    warm_cache();
    for language in LANGUAGES {
        let (code, got) = call(
            &format!("echo-{language}"),
            &["mode=loop", "--fuel", "50000000", "--timeout", "60s"],
        );
        assert_eq!(code, Some(1), "{language}: {got}");
        assert_eq!(got["error"]["code"], "out_of_fuel", "{language}: {got}");
    }
}

#[test]
fn a_node_error_in_every_language_is_a_guest_error() {
    warm_cache();
    for language in LANGUAGES {
        let (code, got) = call(&format!("echo-{language}"), &["mode=fail"]);
        assert_eq!(code, Some(1), "{language}: {got}");
        assert_eq!(got["error"]["code"], "guest_error", "{language}: {got}");
        let message = got["error"]["message"].as_str().unwrap();
        assert!(message.contains("asked_to_fail"), "{language}: {message}");
        assert!(
            message.contains(&format!("echo-{language} was asked to fail")),
            "{language}: {message}"
        );
    }
}

#[test]
fn a_crash_in_every_language_is_a_trap_with_its_reason() {
    warm_cache();
    for (language, reason) in [
        ("python", "boom from python"),
        ("js", "boom from js"),
        ("c", "out of bounds"),
    ] {
        let out = run(node_host()
            .arg("call")
            .arg(guest(&format!("echo-{language}")))
            .args(["mode=throw", "--json", "--logs"]));
        assert_eq!(out.code, Some(1), "{language}: {out:#?}");
        let code = &out.json()["error"]["code"];
        assert!(
            code == "trap" || code == "guest_error",
            "{language}: {out:#?}"
        );
        let everything = format!("{}{}", out.stdout, out.stderr);
        assert!(everything.contains(reason), "{language}: {out:#?}");
    }
}

#[test]
fn printing_in_every_language_is_captured_and_capped() {
    warm_cache();
    for language in LANGUAGES {
        let out = run(node_host()
            .arg("call")
            .arg(guest(&format!("echo-{language}")))
            .args(["mode=print", "value=done", "--json", "--logs"]));
        assert_eq!(out.code, Some(0), "{language}: {out:#?}");
        assert_eq!(out.json(), json!({"value": "done"}), "{language}");
        // Printed lines never reach node-host's own stdout; --logs shows the
        // start of the capture and says it was cut.
        assert!(!out.stdout.contains("line 0"), "{language}");
        assert!(out.stderr.contains("line 0"), "{language}: {}", out.stderr);
        assert!(!out.stderr.contains("line 9999"), "{language}");
        assert!(
            out.stderr.contains("truncated"),
            "{language}: {}",
            out.stderr
        );
    }
}

#[test]
fn secrets_reach_nodes_in_every_language_only_when_declared() {
    warm_cache();
    for language in LANGUAGES {
        let (code, got) = call(
            &format!("echo-{language}"),
            &[
                "mode=secret",
                "--secret",
                "api_key=s3cret",
                "--secret",
                "other=no",
            ],
        );
        assert_eq!(code, Some(0), "{language}: {got}");
        assert_eq!(got, json!({"value": "s3cret"}), "{language}");
        let (code, got) = call(&format!("echo-{language}"), &["mode=secret"]);
        assert_eq!(code, Some(0), "{language}: {got}");
        assert_eq!(got, json!({"value": null}), "{language}");
    }
}

#[test]
fn hello_in_every_language_through_hub_and_worker() {
    warm_cache();
    let hub = Hub::start("languages-hub");
    let token = hub.token("polyglot", false);
    let guests = ["hello", "hello-python", "hello-js", "hello-c"];
    let _worker = start_worker(&hub.url, &token, &guests, &[]);
    let body = json!({"inputs": {"name": "Ada"}});
    let (status, rust) = execute(&hub.url, &token, "hello", body.clone());
    assert_eq!(status, 200, "{rust}");
    for node in &guests[1..] {
        let (status, got) = execute(&hub.url, &token, node, body.clone());
        assert_eq!(status, 200, "{node}: {got}");
        assert_eq!(got["outputs"], rust["outputs"], "{node}");
    }
}

#[test]
fn the_useful_nodes_work() {
    warm_cache();
    let (code, got) = call(
        "textstats-python",
        &["text=the cat and the hat\nand the bat"],
    );
    assert_eq!(code, Some(0), "{got}");
    assert_eq!(
        got,
        json!({"words": 8, "lines": 2, "chars": 31, "top": [["the", 3], ["and", 2], ["cat", 1]]})
    );
    let (code, got) = call(
        "jsonpick-js",
        &[
            r#"document:={"a": {"b": [10, {"c": "deep"}]}, "x": 1}"#,
            r#"paths:=["a.b.1.c", "x", "a.missing"]"#,
        ],
    );
    assert_eq!(code, Some(0), "{got}");
    assert_eq!(
        got,
        json!({"picked": {"a.b.1.c": "deep", "x": 1, "a.missing": null}})
    );
}
