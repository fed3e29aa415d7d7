//! Loading: every kind of unfit file gets its own error, and the compile
//! cache answers the second load.

use std::cell::Cell;

use node_host::sandbox::{ErrorCode, LoadError, Sandbox, SandboxConfig};

use crate::{guest_bytes, sandbox};

fn load_error(bytes: &[u8]) -> LoadError {
    sandbox().load(bytes).expect_err("the file must be refused")
}

/// Deterministic bytes that are not WebAssembly.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn empty_file() {
    assert_eq!(load_error(b""), LoadError::Empty);
}

#[test]
fn random_bytes() {
    assert_eq!(load_error(&noise(4096)), LoadError::NotWasm);
}

#[test]
fn truncated_component() {
    let hello = guest_bytes("hello");
    let err = load_error(&hello[..hello.len() / 2]);
    assert!(matches!(err, LoadError::Invalid(_)), "{err:?}");
}

#[test]
fn core_module() {
    let module = wat::parse_str(r#"(module (func (export "execute")))"#).unwrap();
    assert_eq!(load_error(&module), LoadError::CoreModule);
}

#[test]
fn component_too_big_for_a_pool_slot_names_the_limit_and_the_way_out() {
    // Eleven core instances with a memory each: one more than a slot holds.
    let instances = "(core instance (instantiate $m))".repeat(11);
    let big = wat::parse_str(format!(
        "(component (core module $m (memory 1)) {instances})"
    ))
    .unwrap();
    let err = load_error(&big);
    assert_eq!(err.code(), "pool_limit", "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("11 Wasm linear memories") && message.contains("--no-pooling"),
        "{message}"
    );
    // Ten fit, and without the pool eleven get past the same check (to be
    // refused for not being a node).
    let fits = "(core instance (instantiate $m))".repeat(10);
    let fits = wat::parse_str(format!("(component (core module $m (memory 1)) {fits})")).unwrap();
    assert!(matches!(load_error(&fits), LoadError::WrongWorld(_)));
    let on_demand = Sandbox::new(SandboxConfig {
        pooling: false,
        ..SandboxConfig::default()
    })
    .unwrap();
    let err = on_demand.load(&big).unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld(_)), "{err:?}");
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
    let err = load_error(&other);
    assert!(matches!(err, LoadError::WrongWorld(_)), "{err:?}");
    assert!(
        err.to_string().contains("node-host:node/node@0.1.0"),
        "{err}"
    );
}

#[test]
fn component_importing_a_denied_interface() {
    let importer = wat::parse_str(
        r#"(component
            (import "wasi:keyvalue/store@0.2.0" (instance
                (export "open" (func))))
        )"#,
    )
    .unwrap();
    let err = load_error(&importer);
    assert_eq!(
        err,
        LoadError::DeniedImport("wasi:keyvalue/store@0.2.0".into())
    );
    assert!(err.to_string().contains("wasi:keyvalue/store@0.2.0"));
}

#[test]
fn component_importing_http_without_a_grant() {
    let importer = wat::parse_str(
        r#"(component
            (import "wasi:http/outgoing-handler@0.2.0" (instance
                (export "handle" (func))))
        )"#,
    )
    .unwrap();
    let err = load_error(&importer);
    assert_eq!(
        err,
        LoadError::HttpNotGranted("wasi:http/outgoing-handler@0.2.0".into())
    );
    assert!(err.to_string().contains("--allow-http"), "{err}");
}

#[test]
fn allowed_interface_with_wrong_types_does_not_link() {
    let importer = wat::parse_str(
        r#"(component
            (import "node-host:node/host@0.1.0" (instance
                (export "log" (func (param "x" u32)))))
        )"#,
    )
    .unwrap();
    let err = load_error(&importer);
    assert!(matches!(err, LoadError::Unlinkable(_)), "{err:?}");
}

#[test]
fn inspect_reports_imports_exports_and_info() {
    let inspection = sandbox().inspect(&guest_bytes("hello"));
    assert_eq!(inspection.verdict, Ok(()));
    assert!(
        inspection
            .imports
            .iter()
            .any(|i| i.starts_with("node-host:node/host@"))
            || inspection.imports.iter().any(|i| i.starts_with("wasi:"))
    );
    assert_eq!(inspection.exports, ["node-host:node/node@0.1.0"]);
    assert_eq!(inspection.info.unwrap().name, "hello");
}

#[test]
fn second_load_comes_from_the_cache() {
    let dir = std::env::temp_dir().join(format!("node-host-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cached = Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.clone()),
        ..SandboxConfig::default()
    })
    .unwrap();
    let bytes = guest_bytes("hello");
    let compiles = Cell::new(0);
    cached
        .load_with_progress(&bytes, &mut || compiles.set(compiles.get() + 1))
        .unwrap();
    assert_eq!(compiles.get(), 1);
    let artifacts = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(artifacts, 1);

    // A new sandbox (as in a new process) with the same settings: no compile.
    let again = Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.clone()),
        ..SandboxConfig::default()
    })
    .unwrap();
    let node = again
        .load_with_progress(&bytes, &mut || compiles.set(compiles.get() + 1))
        .unwrap();
    assert_eq!(compiles.get(), 1, "the second load must not compile");
    assert_eq!(node.name(), "hello");

    assert!(
        crate::outputs(&node.execute(vec![], &Default::default(), &Default::default())).len() == 2
    );
    // Artifacts are read-only once written.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let metadata = entry.unwrap().metadata().unwrap();
        assert!(metadata.permissions().readonly());
    }

    // A damaged artifact is dropped and compiled again, never trusted. (The
    // node is dropped first: a live node maps its artifact, and the cache
    // never writes a file in place.)
    drop(node);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"garbage").unwrap();
    }
    again
        .load_with_progress(&bytes, &mut || compiles.set(compiles.get() + 1))
        .unwrap();
    assert_eq!(compiles.get(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A node component whose `info` runs `body` (a core function returning the
/// address of its result), built from a bare core module.
fn node_with_info(body: &str) -> Vec<u8> {
    let module = wat::parse_str(format!(
        r#"(module
            (memory (export "memory") 1)
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) unreachable)
            (func (export "node-host:node/node@0.1.0#info") (result i32) {body})
            (func (export "node-host:node/node@0.1.0#execute") (param i32 i32) (result i32)
                unreachable))"#
    ))
    .unwrap();
    node_host::sandbox::componentize::componentize(&module).unwrap()
}

#[test]
fn failing_info_is_refused_with_its_code_with_and_without_pre_initialization() {
    let trapping = node_with_info("unreachable");
    let spinning = node_with_info("(loop (br 0)) unreachable");
    let plain = Sandbox::new(SandboxConfig {
        preinitialize: false,
        ..SandboxConfig::default()
    })
    .unwrap();
    for (what, sandbox) in [("pre-initialized", sandbox()), ("as built", &plain)] {
        for (bytes, code) in [
            (&trapping, ErrorCode::Trap),
            (&spinning, ErrorCode::OutOfFuel),
        ] {
            match sandbox.load(bytes) {
                Err(LoadError::InfoFailed(failure)) => {
                    assert_eq!(failure.code, code, "{what}: {failure}")
                }
                other => panic!("{what}: expected info_failed ({code:?}), got {other:?}"),
            }
        }
    }
}
