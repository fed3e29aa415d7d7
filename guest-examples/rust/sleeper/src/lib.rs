//! Adversarial node: sleeps in the host (`std::thread::sleep`, which waits
//! on a `wasi:clocks/monotonic-clock` pollable), for an hour or for the given
//! number of milliseconds. Neither fuel nor epochs reach a guest parked in a
//! host call, so only the host can end this wait at the event's deadline.

use std::time::{Duration, Instant};

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, integer_input, output, port};

struct Sleeper;

impl Guest for Sleeper {
    fn info() -> NodeInfo {
        info(
            "sleeper",
            "Sleeps in the host: an hour, or the given milliseconds",
            vec![port(
                "millis",
                "How long to sleep; missing means an hour",
                false,
            )],
            vec![port("slept", "The milliseconds it slept", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let millis = integer_input(&inputs, "millis").map_or(3_600_000, |n| n.max(0) as u64);
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(millis));
        let slept = started.elapsed().as_millis() as i64;
        Ok(vec![output("slept", Value::Integer(slept))])
    }
}

guest_kit::export_node!(Sleeper with_types_in guest_kit);
