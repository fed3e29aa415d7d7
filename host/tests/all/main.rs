//! Integration tests of the sandbox library: real guests built from
//! `guest-examples/` (run `guest-examples/build` first) and inline WAT.

mod execute;
mod http;
mod limits;
mod load;
mod ready;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use node_host::sandbox::{
    ErrorCode, Limits, NamedValue, NodeComponent, Outcome, Outputs, Sandbox, SandboxConfig, Value,
};

pub use node_host::sandbox::bench_support::guest_example_bytes as guest_bytes;

/// One sandbox (engine, pool, epoch ticker) for the whole test binary, as
/// in node-host itself.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).expect("sandbox"))
}

/// A guest example, loaded once per test binary.
pub fn guest(name: &str) -> Arc<NodeComponent> {
    static LOADED: OnceLock<std::sync::Mutex<HashMap<String, Arc<NodeComponent>>>> =
        OnceLock::new();
    let loaded = LOADED.get_or_init(Default::default);
    if let Some(node) = loaded.lock().unwrap().get(name) {
        return node.clone();
    }
    let node = Arc::new(
        sandbox()
            .load(&guest_bytes(name))
            .unwrap_or_else(|err| panic!("loading {name}: {err}")),
    );
    loaded
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_insert(node)
        .clone()
}

/// Named inputs from `(name, value)` pairs.
pub fn inputs(pairs: &[(&str, Value)]) -> Vec<NamedValue> {
    pairs
        .iter()
        .map(|(name, value)| NamedValue {
            name: (*name).to_owned(),
            value: value.clone(),
        })
        .collect()
}

/// Runs one event with no secrets.
pub fn run(name: &str, pairs: &[(&str, Value)], limits: &Limits) -> Outcome {
    guest(name).execute(inputs(pairs), &HashMap::new(), limits)
}

/// The outputs of a successful outcome; panics with the failure otherwise.
pub fn outputs(outcome: &Outcome) -> &Outputs {
    match &outcome.result {
        Ok(outputs) => outputs,
        Err(failure) => panic!("expected outputs, got {failure}"),
    }
}

/// The error code of a failed outcome; panics with the outputs otherwise.
pub fn code(outcome: &Outcome) -> ErrorCode {
    match &outcome.result {
        Ok(outputs) => panic!("expected a failure, got outputs {outputs:?}"),
        Err(failure) => failure.code,
    }
}

/// An integer input.
pub fn int(n: i64) -> Value {
    Value::Integer(n)
}

/// A text value.
pub fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}
