//! The domain core: what an event is, and the one path every event takes.
//!
//! ```text
//!  front ends (translate wire <-> domain)     Event{id, account, node, inputs, deadline}
//!        │                                          │  + the node, and Terms{limits, secrets}
//!        ▼                                          ▼
//!  Runner ── Lanes (per account: concurrency, queue) ── Executors (one bounded pool)
//!        │
//!        ▼
//!  sandbox: a fresh instance per event ──► Outcome{outputs | failure, fuel, duration, logs}
//! ```
//!
//! No wire type and no I/O here: the core knows neither Hurozo nor HTTP nor
//! SQL. It refuses to run an event anywhere but on its executor pool.

pub(crate) mod clock;
mod event;
pub(crate) mod executors;
mod lanes;
mod runner;

pub use event::{
    AccountId, Event, EventFailure, LOCAL_ACCOUNT, Outcome, RunError, Terms, json_outputs,
};
pub use executors::{Executors, IDLE_FOR};
pub use lanes::{LaneLimits, Lanes, QueueFull};
pub use runner::Runner;
