//! What one event produced: outputs or a typed failure, plus its metering
//! and captured output.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::capture::{Captured, CapturedLog};
use super::http::HttpUsage;
use super::value::Value;

/// Why an event failed. The string forms (`as_str`) are stable and part of
/// node-host's wire contract: callers branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The inputs do not match the node's declared inputs.
    InvalidInput,
    /// The node returned outputs that do not match its declared outputs.
    InvalidOutput,
    /// The node returned its own error.
    GuestError,
    /// The guest trapped (a Rust panic, an `unreachable`, a bad memory access…).
    Trap,
    /// The guest exhausted its call stack.
    StackOverflow,
    /// The event ran past its wall-clock deadline.
    Deadline,
    /// The event burned all of its fuel.
    OutOfFuel,
    /// The guest asked for more linear memory than the event allows.
    MemoryLimit,
    /// The outputs are larger than the event allows.
    OutputTooLarge,
    /// The node's outbound request was refused: an origin it is not
    /// granted, or a private address (and the event then failed).
    HttpDenied,
    /// The node's outbound HTTP went past a limit of the event: requests,
    /// requests at once, or body bytes (and the event then failed).
    HttpLimit,
}

impl ErrorCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidInput,
        ErrorCode::InvalidOutput,
        ErrorCode::GuestError,
        ErrorCode::Trap,
        ErrorCode::StackOverflow,
        ErrorCode::Deadline,
        ErrorCode::OutOfFuel,
        ErrorCode::MemoryLimit,
        ErrorCode::OutputTooLarge,
        ErrorCode::HttpDenied,
        ErrorCode::HttpLimit,
    ];

    /// The stable wire form, e.g. `out_of_fuel`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidOutput => "invalid_output",
            ErrorCode::GuestError => "guest_error",
            ErrorCode::Trap => "trap",
            ErrorCode::StackOverflow => "stack_overflow",
            ErrorCode::Deadline => "deadline",
            ErrorCode::OutOfFuel => "out_of_fuel",
            ErrorCode::MemoryLimit => "memory_limit",
            ErrorCode::OutputTooLarge => "output_too_large",
            ErrorCode::HttpDenied => "http_denied",
            ErrorCode::HttpLimit => "http_limit",
        }
    }

    /// What the person who hit this error can do about it.
    pub fn advice(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => {
                "pass the inputs the node declares (see `node-host inspect`)"
            }
            ErrorCode::InvalidOutput => "fix the node so it returns only the outputs it declares",
            ErrorCode::GuestError => "the node refused the event; read its message",
            ErrorCode::Trap => "the node crashed; its message and stderr say where",
            ErrorCode::StackOverflow => "the node recursed too deeply; bound its recursion",
            ErrorCode::Deadline => "raise the limit (--timeout) or make the node faster",
            ErrorCode::OutOfFuel => "raise the limit (--fuel) or make the node do less work",
            ErrorCode::MemoryLimit => "raise the limit (--memory) or make the node use less memory",
            ErrorCode::OutputTooLarge => "return less data, or raise the output limit",
            ErrorCode::HttpDenied => {
                "grant the node the origin it calls (--allow-http, or `node-host grant` on a hub)"
            }
            ErrorCode::HttpLimit => "make fewer or smaller requests, or raise the HTTP limits",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed event: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// What went wrong, naming the offending value.
    pub message: String,
}

impl Failure {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Failure {}

/// The outputs of a successful event, in the order the node declares them.
/// A declared optional output the node left out is [`Value::Null`].
pub type Outputs = Vec<(String, Value)>;

/// Everything one event produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The outputs, or why there are none.
    pub result: Result<Outputs, Failure>,
    /// Fuel the event burned (0 when fuel metering is off).
    pub fuel_used: u64,
    /// Wall-clock time from the new store to the returned call.
    pub duration: Duration,
    /// The guest's stdout, up to the capture cap.
    pub stdout: Captured,
    /// The guest's stderr, up to the capture cap.
    pub stderr: Captured,
    /// Lines the guest logged through `host.log`, up to the capture cap.
    pub log: CapturedLog,
    /// The event's outbound HTTP, for a node granted it.
    pub http: Option<HttpUsage>,
}
