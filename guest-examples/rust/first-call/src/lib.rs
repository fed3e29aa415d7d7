//! Reports how many times this instance ran `info` and `execute` before the
//! current event: shows what state a fresh event starts from. With
//! pre-initialization (the default) every event starts right after one
//! `info` call, so it reports 1 and 0; without it, 0 and 0.

use std::sync::atomic::{AtomicI64, Ordering};

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, output, port};

static INFO_CALLS: AtomicI64 = AtomicI64::new(0);
static EXECUTE_CALLS: AtomicI64 = AtomicI64::new(0);

struct FirstCall;

impl Guest for FirstCall {
    fn info() -> NodeInfo {
        INFO_CALLS.fetch_add(1, Ordering::Relaxed);
        info(
            "first-call",
            "Counts the calls this instance saw before the event",
            vec![],
            vec![
                port("info-calls", "`info` calls before this event", true),
                port("execute-calls", "`execute` calls before this event", true),
            ],
        )
    }

    fn execute(_inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let executed = EXECUTE_CALLS.fetch_add(1, Ordering::Relaxed);
        Ok(vec![
            output(
                "info-calls",
                Value::Integer(INFO_CALLS.load(Ordering::Relaxed)),
            ),
            output("execute-calls", Value::Integer(executed)),
        ])
    }
}

guest_kit::export_node!(FirstCall with_types_in guest_kit);
