//! Adversarial node: returns a text output of `bytes` bytes (default 4 MiB).

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, integer_input, output, port};

struct BigOutput;

const DEFAULT_BYTES: i64 = 4 << 20;

impl Guest for BigOutput {
    fn info() -> NodeInfo {
        info(
            "big-output",
            "Returns an output of the given size (default 4 MiB)",
            vec![port("bytes", "Size of the output", false)],
            vec![port("data", "That many bytes of text", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let size = integer_input(&inputs, "bytes")
            .unwrap_or(DEFAULT_BYTES)
            .max(0) as usize;
        Ok(vec![output("data", Value::Text("x".repeat(size)))])
    }
}

guest_kit::export_node!(BigOutput with_types_in guest_kit);
