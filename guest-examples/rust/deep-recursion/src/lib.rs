//! Adversarial node: recurses without end, or `depth` levels deep when that
//! input is given.

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, integer_input, output, port};

struct DeepRecursion;

#[inline(never)]
fn descend(depth: u64, limit: u64) -> u64 {
    if depth >= limit {
        return depth;
    }
    // black_box runs after the call returns, so the call is never a tail
    // call and the compiler cannot turn the recursion into a loop.
    std::hint::black_box(descend(depth + 1, limit))
}

impl Guest for DeepRecursion {
    fn info() -> NodeInfo {
        info(
            "deep-recursion",
            "Recurses forever, or `depth` levels deep",
            vec![port("depth", "How deep to go; missing means no end", false)],
            vec![port("reached", "The depth reached", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let limit = integer_input(&inputs, "depth").map_or(u64::MAX, |n| n.max(0) as u64);
        let reached = descend(0, limit);
        Ok(vec![output("reached", Value::Integer(reached as i64))])
    }
}

guest_kit::export_node!(DeepRecursion with_types_in guest_kit);
