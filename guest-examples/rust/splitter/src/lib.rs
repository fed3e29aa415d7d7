//! Exosphere's extras in one node: it splits `text` at commas and fans out
//! one output set per item (the `fan-out` output), or, when `mode` says so,
//! prunes the branch (`prune`), asks to be run again later
//! (`re-enqueue-after`) or fails (`fail`). Exosphere fields are strings, so
//! every input is text.

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, input, output, port};

struct Splitter;

fn text<'a>(inputs: &'a [NamedValue], name: &str) -> &'a str {
    match input(inputs, name) {
        Some(Value::Text(text)) => text,
        _ => "",
    }
}

impl Guest for Splitter {
    fn info() -> NodeInfo {
        // Defaults of "" make the registered schemas those of the SDK's
        // `mode: str = ""` and `item: str = ""`.
        let blank = |mut port: guest_kit::Port| {
            port.default_value = Some(Value::Text(String::new()));
            port
        };
        info(
            "splitter",
            "Splits text at commas into one output set per item",
            vec![
                port("text", "Comma-separated items", true),
                blank(port(
                    "mode",
                    "empty to split; prune, requeue or fail to signal instead",
                    false,
                )),
            ],
            vec![
                blank(port(
                    "item",
                    "One item (in each fanned-out output set)",
                    false,
                )),
                port("fan-out", "The output sets, one per item", false),
            ],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let text = text(&inputs, "text");
        let signal = |code: &str, message: String| NodeError {
            code: code.into(),
            message,
        };
        match text_mode(&inputs) {
            "prune" => Err(signal("prune", format!("{{\"pruned\": \"{text}\"}}"))),
            "requeue" => Err(signal("re-enqueue-after", "1500".into())),
            "fail" => Err(signal("bad_text", format!("cannot split `{text}`"))),
            _ => {
                let items: Vec<String> = text
                    .split(',')
                    .map(|item| format!("{{\"item\": \"{}\"}}", item.trim()))
                    .collect();
                Ok(vec![output(
                    "fan-out",
                    Value::Json(format!("[{}]", items.join(", "))),
                )])
            }
        }
    }
}

fn text_mode(inputs: &[NamedValue]) -> &str {
    text(inputs, "mode")
}

guest_kit::export_node!(Splitter with_types_in guest_kit);
