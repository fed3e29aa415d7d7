//! Returns each given input as the output of the same name. It declares
//! outputs `a` (required) and `b` (optional) but takes an input `extra` too,
//! so callers can make it return an undeclared output or leave out a
//! required one: the host's output checks are tested with it.

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, info, port};

struct Echo;

impl Guest for Echo {
    fn info() -> NodeInfo {
        info(
            "echo",
            "Returns its inputs as outputs of the same names",
            vec![
                port("a", "Returned as output a", false),
                port("b", "Returned as output b", false),
                port(
                    "extra",
                    "Returned as output extra, which is not declared",
                    false,
                ),
            ],
            vec![
                port("a", "Input a", true),
                port("b", "Input b, or null", false),
            ],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        Ok(inputs)
    }
}

guest_kit::export_node!(Echo with_types_in guest_kit);
