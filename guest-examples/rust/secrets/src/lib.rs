//! Reads the secret it declares (`api-key`) and one it does not (`other`) and
//! reports what the host gave it for each.

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, output, port, secret};

struct Secrets;

fn reported(value: Option<String>) -> Value {
    value.map_or(Value::Null, Value::Text)
}

impl Guest for Secrets {
    fn info() -> NodeInfo {
        let mut info = info(
            "secrets",
            "Reports which secrets the host lets it read",
            vec![],
            vec![
                port("declared", "The value of api-key, or null", true),
                port("undeclared", "The value of other, or null", true),
            ],
        );
        info.secrets = vec!["api-key".into()];
        info
    }

    fn execute(_inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        Ok(vec![
            output("declared", reported(secret("api-key"))),
            output("undeclared", reported(secret("other"))),
        ])
    }
}

guest_kit::export_node!(Secrets with_types_in guest_kit);
