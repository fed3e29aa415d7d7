//! Adversarial node: spins forever, or `iterations` times when that input is
//! given (the obeyed case of the fuel and deadline tests). With `host_calls`
//! set to 1 it reads the host's clock at every turn: a loop that spends its
//! time in cheap host calls, which burn little fuel.

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, integer_input, output, port};

struct SpinLoop;

impl Guest for SpinLoop {
    fn info() -> NodeInfo {
        info(
            "spin-loop",
            "Burns CPU: forever, or for the given number of iterations",
            vec![
                port(
                    "iterations",
                    "How long to spin; missing means forever",
                    false,
                ),
                port(
                    "host_calls",
                    "1 to call the host (read its clock) at every turn",
                    false,
                ),
            ],
            vec![port("spun", "The iterations done", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let limit = integer_input(&inputs, "iterations").map_or(u64::MAX, |n| n.max(0) as u64);
        let host_calls = integer_input(&inputs, "host_calls") == Some(1);
        let mut spun = 0u64;
        while spun < limit {
            if host_calls {
                std::hint::black_box(std::time::Instant::now());
            }
            spun = std::hint::black_box(spun + 1);
        }
        Ok(vec![output("spun", Value::Integer(spun as i64))])
    }
}

guest_kit::export_node!(SpinLoop with_types_in guest_kit);
