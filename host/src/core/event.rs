//! The domain of an event, owned by no wire format: what is asked
//! ([`Event`]), what it runs with ([`Terms`]), and why it did not run
//! ([`RunError`]). What it produced is the sandbox's [`Outcome`]: outputs
//! or a coded failure, fuel, duration and what it printed and logged.
//!
//! Each protocol module translates between its wire types and these; none
//! of its types reaches the core.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value as Json};

use super::lanes::QueueFull;
pub use crate::sandbox::Outcome;
use crate::sandbox::value::outputs_to_json;
use crate::sandbox::{ErrorCode, Limits, NamedValue};

/// An account: the unit of isolation. Every lane, node, secret and upload
/// belongs to one.
pub type AccountId = i64;

/// The account of a worker's own events (`node-host run` serves the nodes
/// of one backend account, so there is nothing to keep apart).
pub const LOCAL_ACCOUNT: AccountId = 0;

/// One event: a node of an account asked to run once.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per event; replies and logs carry it.
    pub id: String,
    /// Whose event it is.
    pub account: AccountId,
    /// The node's name.
    pub node: String,
    /// The inputs by name.
    pub inputs: Vec<NamedValue>,
    /// When the caller stops waiting, waiting for a turn included; `None`
    /// leaves only the sandbox's own deadline ([`Limits::timeout`]).
    pub deadline: Option<Instant>,
}

/// What an event runs with.
#[derive(Debug, Clone, Default)]
pub struct Terms {
    /// The sandbox's limits.
    pub limits: Limits,
    /// The caller's secrets; the node sees only those its info declares.
    pub secrets: Arc<HashMap<String, String>>,
}

/// Why an event did not run to an [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The account's lane is full.
    #[error(transparent)]
    QueueFull(#[from] QueueFull),
    /// The caller's deadline passed first (waiting for a turn included).
    #[error("node `{node}` did not finish before the caller's deadline")]
    Timeout {
        /// The node.
        node: String,
    },
    /// No executor thread runs and none can start.
    #[error("cannot start a thread for the event: {0}")]
    NoThread(#[source] std::io::Error),
    /// The executor ended without an outcome (a bug in node-host).
    #[error("the event's executor ended without an outcome")]
    Lost,
}

impl RunError {
    /// The stable code of this error on every wire.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::QueueFull(_) => "queue_full",
            RunError::Timeout { .. } => "timeout",
            RunError::NoThread(_) | RunError::Lost => "internal",
        }
    }
}

/// A failed event in terms every wire can carry: a stable code (see the
/// README's table) and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFailure {
    /// e.g. `out_of_fuel`, `queue_full`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl EventFailure {
    /// A failure with `code` and `message`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The outputs of `outcome` as a JSON object in declared order, or why
/// there are none (an output that has no JSON form is `invalid_output`).
pub fn json_outputs(outcome: &Outcome) -> Result<Map<String, Json>, EventFailure> {
    match &outcome.result {
        Ok(outputs) => outputs_to_json(outputs)
            .map_err(|message| EventFailure::new(ErrorCode::InvalidOutput.as_str(), message)),
        Err(failure) => Err(EventFailure::new(
            failure.code.as_str(),
            failure.message.clone(),
        )),
    }
}

/// `ok`, or the code of the failure: how an outcome is counted.
pub fn outcome_label(outcome: &Outcome) -> &'static str {
    outcome
        .result
        .as_ref()
        .err()
        .map_or("ok", |failure| failure.code.as_str())
}
