//! `node-host inspect`.

use node_host_e2e::{guest, node_host, run, scratch_dir};

#[test]
fn hello_is_accepted_and_described() {
    let out = run(node_host().arg("inspect").arg(guest("hello")));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout.contains("accepted: yes"), "{}", out.stdout);
    assert!(out.stdout.contains("greeting (required)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("node-host:node/node@0.1.0"),
        "{}",
        out.stdout
    );
}

#[test]
fn json_report() {
    let out = run(node_host()
        .arg("inspect")
        .arg(guest("secrets"))
        .arg("--json"));
    assert_eq!(out.code, Some(0), "{out:#?}");
    let report = out.json();
    assert_eq!(report["accepted"], true);
    assert_eq!(report["kind"], "component");
    assert_eq!(report["info"]["name"], "secrets");
    assert_eq!(report["info"]["secrets"], serde_json::json!(["api-key"]));
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn refused_file_is_reported_with_exit_1() {
    let path = scratch_dir("inspect-core").join("core.wasm");
    std::fs::write(&path, wat::parse_str("(module)").unwrap()).unwrap();
    let out = run(node_host().arg("inspect").arg(&path).arg("--json"));
    assert_eq!(out.code, Some(1), "{out:#?}");
    let report = out.json();
    assert_eq!(report["accepted"], false);
    assert_eq!(report["kind"], "core_module");
    assert_eq!(report["error"]["code"], "core_module");
}
