//! A node that fails on purpose: returns its own error with code `refused`.

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, input, port};

struct Refuses;

impl Guest for Refuses {
    fn info() -> NodeInfo {
        info(
            "node-error",
            "Always returns its own error",
            vec![port("reason", "Put into the error message", false)],
            vec![port("never", "Never returned", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let reason = match input(&inputs, "reason") {
            Some(Value::Text(text)) => text.as_str(),
            _ => "no reason given",
        };
        Err(NodeError {
            code: "refused".into(),
            message: format!("node-error refuses every event: {reason}"),
        })
    }
}

guest_kit::export_node!(Refuses with_types_in guest_kit);
