//! A talkative node: prints its `line` input to stdout, logs it at `warn`
//! and returns it; with `fail` set it then fails with the line as its error
//! message. What a guest prints, logs and says is what tenants and the
//! dashboard read, so this is how tests send text of their choosing (markup
//! included) through all three.

use guest_kit::{
    Guest, Level, NamedValue, NodeError, NodeInfo, Value, info, input, log, output, port,
};

struct Chatty;

impl Guest for Chatty {
    fn info() -> NodeInfo {
        info(
            "chatty",
            "Prints, logs and returns its line (and fails with it when asked)",
            vec![
                port("line", "What to print, log and return", false),
                port(
                    "fail",
                    "Fail with the line as the error message when true",
                    false,
                ),
            ],
            vec![port("line", "The line", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let line = match input(&inputs, "line") {
            Some(Value::Text(text)) => text.clone(),
            _ => "hello from chatty".to_owned(),
        };
        println!("{line}");
        log(Level::Warn, &line);
        if matches!(input(&inputs, "fail"), Some(Value::Boolean(true))) {
            return Err(NodeError {
                code: "asked_to_fail".into(),
                message: line,
            });
        }
        Ok(vec![output("line", Value::Text(line))])
    }
}

guest_kit::export_node!(Chatty with_types_in guest_kit);
