//! `node-host new`: every language's project builds with its own `./build`
//! and runs with `node-host call`, without edits.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use node_host_e2e::{node_host, node_host_binary, run, run_bounded, scratch_dir};
use serde_json::json;

/// Installing a toolchain and building a Python or JavaScript node takes
/// minutes on a busy 2-core machine.
const BUILD_BOUND: Duration = Duration::from_secs(1200);

fn new_project(dir: &Path, name: &str, lang: &str) {
    let out = run(node_host()
        .args(["new", name, "--lang", lang, "--dir"])
        .arg(dir));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.contains("./build"), "{}", out.stdout);
}

/// Runs the project's `./build` (in a target directory per language).
fn build(dir: &Path, lang: &str) {
    let target = node_host_binary()
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/node-host")
        .join(format!("e2e-new-{lang}"));
    let built = run_bounded(
        Command::new(dir.join("build"))
            .current_dir(dir)
            .env("NODE_HOST", node_host_binary())
            .env("CARGO_TARGET_DIR", target),
        BUILD_BOUND,
    );
    assert_eq!(built.code, Some(0), "{lang}: {built:#?}");
}

fn build_and_call(dir: &Path, name: &str, lang: &str) {
    build(dir, lang);
    let called = run_bounded(
        node_host()
            .arg("call")
            .arg(dir.join(format!("{name}.wasm")))
            .args(["name=Ada", "--json"]),
        BUILD_BOUND,
    );
    assert_eq!(called.code, Some(0), "{lang}: {called:#?}");
    assert_eq!(called.json(), json!({"greeting": "Hello Ada"}), "{lang}");
}

#[test]
fn the_http_template_builds_and_calls_an_api_with_a_host_filled_secret() {
    let origin = node_host::sandbox::test_origin::TestOrigin::start();
    let scratch = scratch_dir("new-http");
    for lang in ["rust", "python", "js"] {
        let name = format!("my-{lang}-caller");
        let dir = scratch.join(&name);
        let out = run(node_host()
            .args(["new", &name, "--lang", lang, "--template", "http", "--dir"])
            .arg(&dir));
        assert_eq!(out.code, Some(0), "{out:#?}");
        assert!(out.stdout.contains("--allow-http"), "{}", out.stdout);
        build(&dir, lang);
        let called = run_bounded(
            node_host()
                .arg("call")
                .arg(dir.join(format!("{name}.wasm")))
                .arg(format!("url={}", origin.url("/header/authorization")))
                .args(["--secret", "api-key=k3y", "--json"])
                .args([
                    "--allow-http",
                    &format!("http://127.0.0.1:{}", origin.addr().port()),
                ])
                .arg("--allow-private-addresses"),
            BUILD_BOUND,
        );
        assert_eq!(called.code, Some(0), "{lang}: {called:#?}");
        assert_eq!(
            called.json(),
            json!({"status": 200, "body": "Bearer k3y"}),
            "{lang}"
        );
    }
    let out = run(node_host().args(["new", "no-c", "--lang", "c", "--template", "http"]));
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("rust, python and js"), "{}", out.stderr);
}

#[test]
fn every_language_scaffold_builds_and_runs() {
    let scratch = scratch_dir("new");
    for lang in ["c", "rust", "js", "python"] {
        let name = format!("my-{lang}-node");
        let dir = scratch.join(&name);
        new_project(&dir, &name, lang);
        build_and_call(&dir, &name, lang);
    }
}

#[test]
fn new_refuses_bad_names_and_used_directories() {
    let out = run(node_host().args(["new", "Bad_Name", "--lang", "rust"]));
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("lowercase letters"), "{}", out.stderr);

    let dir = scratch_dir("new-used");
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let out = run(node_host()
        .args(["new", "fine", "--lang", "c", "--dir"])
        .arg(&dir));
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn componentize_refuses_what_cannot_be_a_node() {
    let dir = scratch_dir("componentize");
    let text = dir.join("notes.wasm");
    std::fs::write(&text, "not wasm").unwrap();
    let out = run(node_host().arg("componentize").arg(&text));
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(
        out.stderr.contains("not a core WebAssembly module"),
        "{}",
        out.stderr
    );

    // A core module without the node's exports.
    let module = dir.join("empty.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let out = run(node_host().arg("componentize").arg(&module));
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("remote-node"), "{}", out.stderr);
    assert!(!dir.join("empty.component.wasm").exists());
}
