//! Files that are not nodes: each refused with its own clear error, exit 2.

use std::path::PathBuf;

use node_host_e2e::{guest, node_host, run, scratch_dir};

fn refused(test: &str, bytes: &[u8]) -> (String, serde_json::Value) {
    let path: PathBuf = scratch_dir(test).join("node.wasm");
    std::fs::write(&path, bytes).unwrap();
    let text = run(node_host().arg("call").arg(&path));
    assert_eq!(text.code, Some(2), "{text:#?}");
    assert!(
        text.stderr.contains("cannot be used as a node"),
        "{}",
        text.stderr
    );
    let json = run(node_host().arg("call").arg(&path).arg("--json"));
    assert_eq!(json.code, Some(2), "{json:#?}");
    (text.stderr, json.json()["error"].clone())
}

#[test]
fn missing_file() {
    let out = run(node_host().args(["call", "/nonexistent/node.wasm"]));
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("cannot read the component file"),
        "{}",
        out.stderr
    );
}

#[test]
fn empty_file() {
    let (_, error) = refused("empty", b"");
    assert_eq!(error["code"], "empty_file");
}

#[test]
fn random_bytes() {
    let (stderr, error) = refused("random", b"#!/bin/sh\necho this is not wasm\n");
    assert_eq!(error["code"], "not_wasm");
    assert!(stderr.contains("magic"), "{stderr}");
}

#[test]
fn truncated_component() {
    let hello = std::fs::read(guest("hello")).unwrap();
    let (_, error) = refused("truncated", &hello[..hello.len() / 3]);
    assert_eq!(error["code"], "invalid_component");
}

#[test]
fn core_module() {
    let module = wat::parse_str("(module)").unwrap();
    let (stderr, error) = refused("core", &module);
    assert_eq!(error["code"], "core_module");
    assert!(stderr.contains("wasm32-wasip2"), "{stderr}");
}

#[test]
fn component_of_another_world() {
    let other = wat::parse_str(
        r#"(component
            (core module $m (func (export "run")))
            (core instance $i (instantiate $m))
            (func (export "run") (canon lift (core func $i "run"))))"#,
    )
    .unwrap();
    let (_, error) = refused("other-world", &other);
    assert_eq!(error["code"], "wrong_world");
}

#[test]
fn component_importing_a_denied_interface() {
    let importer =
        wat::parse_str(r#"(component (import "wasi:keyvalue/store@0.2.0" (instance)))"#).unwrap();
    let (stderr, error) = refused("denied", &importer);
    assert_eq!(error["code"], "denied_import");
    assert!(stderr.contains("wasi:keyvalue/store@0.2.0"), "{stderr}");
}
