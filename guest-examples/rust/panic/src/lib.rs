//! Adversarial node: panics with `message` (Rust prints the panic to stderr
//! and aborts, which the host sees as a trap).

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, input, port};

struct Panic;

impl Guest for Panic {
    fn info() -> NodeInfo {
        info(
            "panic",
            "Panics with the given message",
            vec![port("message", "What to panic with", false)],
            vec![port("never", "Never returned", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let message = match input(&inputs, "message") {
            Some(Value::Text(text)) => text.clone(),
            _ => "the panic node panicked".to_owned(),
        };
        panic!("{message}");
    }
}

guest_kit::export_node!(Panic with_types_in guest_kit);
