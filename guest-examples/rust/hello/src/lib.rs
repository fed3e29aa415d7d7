//! The hello-world node of Hurozo's examples: greets `name`, or `world` when
//! the name is blank or missing.

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, input, output, port};

struct Hello;

impl Guest for Hello {
    fn info() -> NodeInfo {
        info(
            "hello",
            "Greets someone, politely and loudly",
            vec![port(
                "name",
                "Who to greet; blank or missing means world",
                false,
            )],
            vec![
                port("greeting", "Hello <name>", true),
                port("shout", "HELLO <NAME>", true),
            ],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let name = match input(&inputs, "name") {
            Some(Value::Text(text)) => text.trim().to_owned(),
            Some(Value::Integer(n)) => n.to_string(),
            Some(Value::Float(x)) => x.to_string(),
            Some(Value::Boolean(b)) => b.to_string(),
            Some(Value::Json(json)) => json.clone(),
            Some(Value::Bytes(bytes)) => String::from_utf8_lossy(bytes).trim().to_owned(),
            Some(Value::Null) | None => String::new(),
        };
        let name = if name.is_empty() { "world" } else { &name };
        Ok(vec![
            output("greeting", Value::Text(format!("Hello {name}"))),
            output(
                "shout",
                Value::Text(format!("HELLO {}", name.to_uppercase())),
            ),
        ])
    }
}

guest_kit::export_node!(Hello with_types_in guest_kit);
