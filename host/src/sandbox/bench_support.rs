//! Hooks for benchmarks and tests only: a reused instance (the baseline a
//! fresh sandbox is compared with), a per-phase timing of one fresh event,
//! percentiles and the guest examples' bytes. node-host itself never reuses
//! an instance across events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::bindings::RemoteNode;
use super::capture::CaptureStream;
use super::engine::EventState;
use super::limits::Limits;
use super::node::{NodeComponent, new_store};
use super::value::NamedValue;

/// One instance kept across calls (what node-host refuses to do).
pub struct ReusedInstance {
    store: Store<EventState>,
    node: RemoteNode,
}

impl ReusedInstance {
    /// Instantiates `node` once with fuel and deadline set high enough for
    /// many calls.
    pub fn new(node: &NodeComponent) -> Self {
        let limits = Limits {
            fuel: u64::MAX / 2,
            timeout: Duration::from_secs(3600),
            ..Limits::default()
        };
        let capture = CaptureStream::new(limits.capture_bytes);
        let mut store = new_store(
            &node.sandbox,
            &node.sandbox.engine,
            &limits,
            &capture,
            &capture,
            Vec::new(),
            None,
        );
        let super::node::Pre::Sync(pre) = &node.pre else {
            panic!("a reused instance of a node with outbound HTTP is not measured");
        };
        let instance = pre.instantiate(&mut store).expect("instantiate");
        Self {
            store,
            node: instance,
        }
    }

    /// Calls `execute` on the kept instance; panics on any failure.
    pub fn call(&mut self, inputs: &[NamedValue]) -> usize {
        let outputs = self
            .node
            .node_host_node_node()
            .call_execute(&mut self.store, inputs)
            .expect("call")
            .expect("node succeeded");
        outputs.len()
    }
}

/// Wall-clock time of each phase of one fresh event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Capture streams, WASI context and `Store` with its limits.
    pub store: Duration,
    /// Instantiating from the pre-linked component.
    pub instantiate: Duration,
    /// Lowering the inputs, running `execute`, lifting the outputs.
    pub call: Duration,
    /// Dropping the instance and store (returning the pool slot).
    pub drop: Duration,
}

/// Runs one fresh event the way `execute` does, timing each phase.
pub fn phases(node: &NodeComponent, inputs: &[NamedValue], limits: &Limits) -> Phases {
    let t0 = Instant::now();
    let stdout = CaptureStream::new(limits.capture_bytes);
    let stderr = CaptureStream::new(limits.capture_bytes);
    let mut store = new_store(
        &node.sandbox,
        &node.sandbox.engine,
        limits,
        &stdout,
        &stderr,
        Vec::new(),
        None,
    );
    let t1 = Instant::now();
    let super::node::Pre::Sync(pre) = &node.pre else {
        panic!("the phases of a node with outbound HTTP are not measured");
    };
    let instance = pre.instantiate(&mut store).expect("instantiate");
    let t2 = Instant::now();
    let result = instance
        .node_host_node_node()
        .call_execute(&mut store, inputs)
        .expect("call");
    let t3 = Instant::now();
    drop(result);
    let _ = instance;
    drop(store);
    let t4 = Instant::now();
    Phases {
        store: t1 - t0,
        instantiate: t2 - t1,
        call: t3 - t2,
        drop: t4 - t3,
    }
}

/// The value at quantile `p` (0 to 1) of `sorted`, which must not be empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The bytes of `guest-examples/dist/<name>.wasm`; panics with what to do
/// when it has not been built. The repository is found through
/// `bytes` (a component) with a custom section appended whose payload ends
/// in `note`: the same node in other bytes, so another upload (a new
/// version) of it.
pub fn with_custom_section(mut bytes: Vec<u8>, note: &str) -> Vec<u8> {
    let name = b"node-host-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(note.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB128 size");
    bytes.push(0);
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    bytes
}

/// `CARGO_MANIFEST_DIR` as cargo sets it when it runs a test or bench, so a
/// binary built in another checkout that shares the target directory still
/// reads this checkout's guests.
pub fn guest_example_bytes(name: &str) -> Vec<u8> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let path = manifest_dir
        .join("../guest-examples/dist")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read {} ({err}): run guest-examples/build first",
            path.display()
        )
    })
}

/// Secrets for benchmarks that pass none.
pub fn no_secrets() -> HashMap<String, String> {
    HashMap::new()
}
