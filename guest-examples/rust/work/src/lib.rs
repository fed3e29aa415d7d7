//! A node that does a given amount of work per event, for benchmarks: it
//! burns CPU for `ms` milliseconds, or waits that long when `wait` is true
//! (like a node blocked on a slow call).

use std::time::{Duration, Instant};

use guest_kit::{
    Guest, NamedValue, NodeError, NodeInfo, Value, info, input, integer_input, output, port,
};

struct Work;

impl Guest for Work {
    fn info() -> NodeInfo {
        info(
            "work",
            "Burns CPU (or waits) for a number of milliseconds",
            vec![
                port("ms", "Milliseconds of work; missing means 1", false),
                port("wait", "Wait instead of burning CPU", false),
            ],
            vec![port("ms", "The milliseconds of work done", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let ms = integer_input(&inputs, "ms").unwrap_or(1).clamp(0, 60_000);
        let span = Duration::from_millis(ms as u64);
        if matches!(input(&inputs, "wait"), Some(Value::Boolean(true))) {
            std::thread::sleep(span);
        } else {
            let started = Instant::now();
            while started.elapsed() < span {
                std::hint::black_box(());
            }
        }
        Ok(vec![output("ms", Value::Integer(ms))])
    }
}

guest_kit::export_node!(Work with_types_in guest_kit);
