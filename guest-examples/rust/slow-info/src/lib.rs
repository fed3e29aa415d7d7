//! A node whose `info` takes 1.5 s (asleep in the host): what a hub that
//! loads its uploads again at start-up must not wait for before it listens.

use std::time::Duration;

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, output, port};

struct SlowInfo;

impl Guest for SlowInfo {
    fn info() -> NodeInfo {
        std::thread::sleep(Duration::from_millis(1500));
        info(
            "slow-info",
            "Takes 1.5 s to describe itself; answers at once",
            Vec::new(),
            vec![port("ready", "Always true", true)],
        )
    }

    fn execute(_inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        Ok(vec![output("ready", Value::Boolean(true))])
    }
}

guest_kit::export_node!(SlowInfo with_types_in guest_kit);
