//! Reverses the bytes of its input `data`: a node for binary payloads
//! (Juturna's Bytes, Audio and Image payloads arrive as `data`). Text is
//! taken as its UTF-8 bytes; the output is always bytes.

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, output, port};

struct Reverse;

impl Guest for Reverse {
    fn info() -> NodeInfo {
        info(
            "reverse",
            "Returns the bytes of data in reverse order",
            vec![
                port("data", "The bytes to reverse", true),
                port("width", "An image's width, if any (unused)", false),
            ],
            vec![port("data", "The bytes, last first", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let data = inputs.into_iter().find(|input| input.name == "data");
        let mut bytes = match data.map(|input| input.value) {
            Some(Value::Bytes(bytes)) => bytes,
            Some(Value::Text(text)) => text.into_bytes(),
            _ => {
                return Err(NodeError {
                    code: "invalid_data".into(),
                    message: "data must be bytes or text".into(),
                });
            }
        };
        bytes.reverse();
        Ok(vec![output("data", Value::Bytes(bytes))])
    }
}

guest_kit::export_node!(Reverse with_types_in guest_kit);
