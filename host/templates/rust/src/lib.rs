//! The `{{name}}` node: greets `name`.
//!
//! node-host calls `info` once when it loads the component, then runs every
//! event in a fresh instance: `execute` gets the inputs and returns outputs
//! matched to the declared outputs by name. Nothing is granted: no files,
//! network or environment. Build with `./build`, then:
//!
//!     node-host call {{name}}.wasm name=Ada

wit_bindgen::generate!({ path: "wit", world: "remote-node" });

use exports::node_host::node::node::Guest;
use node_host::node::host::{Level, log};
use node_host::node::types::{NamedValue, NodeError, NodeInfo, Port, Value};

struct Node;

impl Guest for Node {
    fn info() -> NodeInfo {
        NodeInfo {
            name: "{{name}}".into(),
            version: "0.1.0".into(),
            description: "Greets someone".into(),
            inputs: vec![Port {
                name: "name".into(),
                description: "Who to greet".into(),
                required: false,
                default_value: Some(Value::Text("world".into())),
            }],
            outputs: vec![Port {
                name: "greeting".into(),
                description: "Hello <name>".into(),
                required: true,
                default_value: None,
            }],
            secrets: Vec::new(),
        }
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let name = match inputs.into_iter().find(|input| input.name == "name") {
            Some(NamedValue {
                value: Value::Text(text),
                ..
            }) => text,
            Some(_) => {
                return Err(NodeError {
                    code: "invalid_input".into(),
                    message: "`name` must be text".into(),
                });
            }
            None => "world".into(),
        };
        log(Level::Info, &format!("greeting {name}"));
        Ok(vec![NamedValue {
            name: "greeting".into(),
            value: Value::Text(format!("Hello {name}")),
        }])
    }
}

export!(Node);
