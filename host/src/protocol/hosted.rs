//! The hosted-worker protocol, between a hub and the `node-host run --hosted`
//! processes that run its uploaded nodes. node-host's own; no platform
//! speaks it.
//!
//! A hosted worker authenticates with a worker token (`Authorization:
//! Bearer`), not an account's: it serves every account's uploaded nodes.
//!
//! - `GET /api/hosted/components/{sha256}`: the component with that hash.
//!   The worker checks the hash before it compiles the bytes.
//! - WebSocket `/api/hosted/ws`. The hub sends [`ToWorker`] frames: which
//!   components to get ready (at connect, then on each upload), which to
//!   drop, and events. The worker sends [`FromWorker`] frames: a component is
//!   ready (fetched, verified, compiled), refused, or an event's reply in
//!   Hurozo's shape. The hub sends an event only to a worker that said the
//!   component is ready, so nothing compiles on the event path.
//!
//! An event carries the limits of its account and the secrets its node
//! declared: hosted workers are the operator's machines, as trusted as the
//! hub (connect them over TLS when they are not on the hub's host).

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::hurozo::Reply;
use crate::sandbox::{Limits, Outcome};

/// A hosted event that has run this long drops to the lowest CPU priority
/// (see [`Limits::demote_after`]): accounts whose events loop for seconds
/// share what the short events of others leave. The same in the hub and in
/// hosted workers.
pub const DEMOTE_AFTER: Duration = Duration::from_millis(10);

/// Hub to hosted worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// Get these components ready (and say so with [`FromWorker::Ready`]).
    Components {
        /// Their sha256 hashes, hex.
        sha256: Vec<String>,
    },
    /// No account uses this component any more.
    Forget {
        /// Its sha256, hex.
        sha256: String,
    },
    /// Run one event.
    Event(Box<HostedEvent>),
}

/// One event of an uploaded node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostedEvent {
    /// Fresh per event; the reply carries it back.
    pub uuid: String,
    /// The node's name.
    pub node: String,
    /// The component that runs it.
    pub sha256: String,
    /// Inputs by name, as in a Hurozo event.
    pub inputs: Map<String, Json>,
    /// The account's limits.
    pub limits: EventLimits,
    /// The secrets the node declared that its account has set.
    #[serde(default)]
    pub secrets: HashMap<String, String>,
}

/// The per-event limits of an account, on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLimits {
    /// Fuel per event.
    pub fuel: u64,
    /// Linear memory per instance, bytes.
    pub memory_bytes: u64,
    /// Wall-clock deadline, milliseconds.
    pub timeout_ms: u64,
    /// Total size of the outputs, bytes.
    pub output_bytes: u64,
    /// What is kept of each captured stream, bytes.
    pub log_bytes: u64,
}

impl EventLimits {
    /// The wire form of `limits`.
    pub fn of(limits: &Limits) -> Self {
        Self {
            fuel: limits.fuel,
            memory_bytes: limits.memory_bytes as u64,
            timeout_ms: limits.timeout.as_millis() as u64,
            output_bytes: limits.output_bytes as u64,
            log_bytes: limits.capture_bytes as u64,
        }
    }

    /// The limits a hosted event runs under: these, with the rest at their
    /// defaults and [`DEMOTE_AFTER`].
    pub fn to_limits(self) -> Limits {
        Limits {
            fuel: self.fuel,
            memory_bytes: usize::try_from(self.memory_bytes).unwrap_or(usize::MAX),
            timeout: Duration::from_millis(self.timeout_ms),
            output_bytes: usize::try_from(self.output_bytes).unwrap_or(usize::MAX),
            capture_bytes: usize::try_from(self.log_bytes).unwrap_or(usize::MAX),
            demote_after: Some(DEMOTE_AFTER),
        }
    }
}

/// Hosted worker to hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The component is fetched, verified and compiled: send its events.
    Ready {
        /// Its sha256, hex.
        sha256: String,
    },
    /// The component cannot run on this worker.
    Refused {
        /// Its sha256, hex.
        sha256: String,
        /// Why.
        message: String,
    },
    /// An event's reply.
    Reply(Box<HostedReply>),
}

/// An event's reply from a hosted worker: Hurozo's reply and what the event
/// printed and logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostedReply {
    /// The reply.
    #[serde(flatten)]
    pub reply: Reply,
    /// What the event printed and logged.
    #[serde(default)]
    pub logs: EventLogs,
}

/// What one event printed and logged, each stream up to the account's cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLogs {
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// Its log lines, oldest first.
    pub log: Vec<LogEntry>,
    /// True when something was cut off at the cap.
    pub truncated: bool,
    /// Its outbound HTTP, for a node granted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<crate::sandbox::http::HttpUsage>,
}

/// One log line of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The message.
    pub message: String,
}

impl EventLogs {
    /// What `outcome` captured.
    pub fn of(outcome: &Outcome) -> Self {
        Self {
            stdout: outcome.stdout.text.clone(),
            stderr: outcome.stderr.text.clone(),
            log: outcome
                .log
                .lines
                .iter()
                .map(|line| LogEntry {
                    level: line.level.to_owned(),
                    message: line.message.clone(),
                })
                .collect(),
            truncated: outcome.stdout.truncated
                || outcome.stderr.truncated
                || outcome.log.truncated,
            http: outcome.http,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_are_tagged_json() {
        let event = ToWorker::Event(Box::new(HostedEvent {
            uuid: "u1".into(),
            node: "hello".into(),
            sha256: "ab".into(),
            inputs: json!({"name": "Ada"}).as_object().unwrap().clone(),
            limits: EventLimits::of(&Limits::default()),
            secrets: HashMap::new(),
        }));
        let text = serde_json::to_value(&event).unwrap();
        assert_eq!(text["type"], "event");
        assert_eq!(text["limits"]["timeout_ms"], 30_000);
        assert_eq!(serde_json::from_value::<ToWorker>(text).unwrap(), event);

        let reply: FromWorker = serde_json::from_value(json!({
            "type": "reply", "node": "hello", "outputs": {"greeting": "hi"}, "uuid": "u1"
        }))
        .unwrap();
        let FromWorker::Reply(reply) = reply else {
            panic!("not a reply: {reply:?}")
        };
        assert_eq!(reply.reply.node, "hello");
        assert_eq!(reply.logs, EventLogs::default(), "logs are optional");
        assert_eq!(
            serde_json::to_value(FromWorker::Ready {
                sha256: "ab".into()
            })
            .unwrap(),
            json!({"type": "ready", "sha256": "ab"})
        );
    }

    #[test]
    fn limits_survive_the_wire_and_demote() {
        let limits = Limits {
            fuel: 7,
            memory_bytes: 1 << 20,
            timeout: Duration::from_millis(250),
            output_bytes: 99,
            capture_bytes: 5,
            ..Limits::default()
        };
        let back = EventLimits::of(&limits).to_limits();
        assert_eq!(
            (
                back.fuel,
                back.memory_bytes,
                back.timeout,
                back.output_bytes,
                back.capture_bytes
            ),
            (7, 1 << 20, Duration::from_millis(250), 99, 5)
        );
        assert_eq!(back.demote_after, Some(DEMOTE_AFTER));
    }
}
