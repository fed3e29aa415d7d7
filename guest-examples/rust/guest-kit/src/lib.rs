//! Rust bindings for node-host's `remote-node` world, generated once, plus the
//! few helpers every example node needs (declaring ports, reading inputs).
//!
//! A node crate implements [`Guest`] and exports it with
//! `guest_kit::export_node!(MyNode with_types_in guest_kit);`.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "remote-node",
    pub_export_macro: true,
    export_macro_name: "export_node",
    default_bindings_module: "guest_kit",
});

pub use exports::node_host::node::node::Guest;
pub use node_host::node::host::{Level, log, secret};
pub use node_host::node::types::{NamedValue, NodeError, NodeInfo, Port, Value};

/// A port with no default value.
pub fn port(name: &str, description: &str, required: bool) -> Port {
    Port {
        name: name.into(),
        description: description.into(),
        required,
        default_value: None,
    }
}

/// The value of input `name`, if the caller gave it.
pub fn input<'a>(inputs: &'a [NamedValue], name: &str) -> Option<&'a Value> {
    inputs
        .iter()
        .find(|input| input.name == name)
        .map(|input| &input.value)
}

/// The integer input `name`, if given as an integer (or as text that parses).
pub fn integer_input(inputs: &[NamedValue], name: &str) -> Option<i64> {
    match input(inputs, name)? {
        Value::Integer(n) => Some(*n),
        Value::Text(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A named output.
pub fn output(name: &str, value: Value) -> NamedValue {
    NamedValue {
        name: name.into(),
        value,
    }
}

/// Node info with the crate's version filled in and no secrets.
pub fn info(name: &str, description: &str, inputs: Vec<Port>, outputs: Vec<Port>) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        version: "0.1.0".into(),
        description: description.into(),
        inputs,
        outputs,
        secrets: Vec::new(),
    }
}
