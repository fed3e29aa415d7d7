//! Adversarial node: allocates (and touches) one MiB after another, forever or
//! up to `mib` MiB when that input is given.

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, integer_input, output, port};

struct MemoryBomb;

const MIB: usize = 1 << 20;

impl Guest for MemoryBomb {
    fn info() -> NodeInfo {
        info(
            "memory-bomb",
            "Grows its memory one MiB at a time: forever, or up to `mib` MiB",
            vec![port(
                "mib",
                "How many MiB to hold; missing means no end",
                false,
            )],
            vec![port("held_mib", "The MiB held when done", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let limit = integer_input(&inputs, "mib").map_or(usize::MAX, |n| n.max(0) as usize);
        let mut held: Vec<Vec<u8>> = Vec::new();
        while held.len() < limit {
            held.push(vec![0xA5; MIB]);
        }
        let held_mib = std::hint::black_box(&held).len() as i64;
        Ok(vec![output("held_mib", Value::Integer(held_mib))])
    }
}

guest_kit::export_node!(MemoryBomb with_types_in guest_kit);
