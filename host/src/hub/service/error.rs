//! [`HubError`]: every way a request to the hub can fail, each with a
//! stable `code` that every front end (HTTP, WebSocket, gRPC) carries as
//! is. The front end chooses the status; it never invents a code.

use crate::core::{EventFailure, QueueFull, RunError};
use crate::protocol::hurozo::errors;
use crate::sandbox::LoadError;

/// Why the hub refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No `Authorization` header.
    #[error("{}", errors::MISSING_AUTH)]
    MissingAuth,
    /// An unknown or malformed API token.
    #[error("{}", errors::INVALID_TOKEN)]
    InvalidToken,
    /// A read-only token where the request changes something.
    #[error("{}", errors::INVALID_TOKEN)]
    ReadOnlyToken,
    /// A hosted-worker endpoint without a hosted-worker token.
    #[error(
        "invalid worker token: hosted workers need a token from \
         `node-host hub worker-token create` (an account's API token is not one)"
    )]
    InvalidWorkerToken,
    /// A worker WebSocket without a usable `?auth=` token.
    #[error("{0}")]
    InvalidWsToken(String),
    /// The request is malformed: the message says how.
    #[error("{0}")]
    InvalidRequest(String),
    /// The account has no such node (another account's are invisible).
    #[error("{0}")]
    UnknownNode(String),
    /// The account has no such upload.
    #[error("this account has no upload with sha256 {0}")]
    UnknownUpload(String),
    /// The node keeps no such version.
    #[error(
        "node `{node}` has no version {version} (kept versions: {kept}); list them with \
         `node-host node versions {node}`"
    )]
    UnknownVersion {
        /// The node.
        node: String,
        /// The version asked for.
        version: i64,
        /// The versions it keeps, newest first.
        kept: String,
    },
    /// The account has no such secret.
    #[error("this account has no secret `{0}`")]
    UnknownSecret(String),
    /// No uploaded node uses this component.
    #[error("no uploaded node uses the component {0}")]
    UnknownComponent(String),
    /// A registration under a name the account uploaded.
    #[error(
        "this account has uploaded a node named `{0}`; delete it (DELETE /api/nodes/{0}) or \
         register the worker's node under another name"
    )]
    NameTaken(String),
    /// The upload or secret is bigger than the hub takes.
    #[error("{0}")]
    TooLarge(String),
    /// The upload is not a node this host runs: its code and why.
    #[error("{message}")]
    Refused {
        /// `not_wasm`, `denied_import`, `compile_timeout`, `name_taken`, …
        code: String,
        /// What is wrong.
        message: String,
    },
    /// The account's lane is full.
    #[error(transparent)]
    QueueFull(#[from] QueueFull),
    /// The account has as many uploads compiling and waiting as it may.
    #[error(
        "this account already has {} upload compiling and {} waiting to compile; wait for \
         them (GET /api/uploads/SHA256), then upload again",
        .0.running,
        .0.waiting
    )]
    CompileQueueFull(QueueFull),
    /// A registered node whose worker is not connected.
    #[error(
        "node `{0}` is registered but no worker serving it is connected; check that its \
         `node-host run` is up"
    )]
    NoWorker(String),
    /// The hub has too many events in flight.
    #[error("the hub has too many events in flight; retry shortly")]
    Busy,
    /// The account holds as many of something (connections, registrations)
    /// as it may: the message says what and how to get under.
    #[error("{0}")]
    AccountLimit(String),
    /// The node ran and failed: its own code.
    #[error("node `{node}` failed: {}", failure.message)]
    NodeFailed {
        /// The node.
        node: String,
        /// The failure, with the sandbox's or the node's code.
        failure: EventFailure,
    },
    /// The worker went before it replied.
    #[error("the worker running node `{0}` disconnected before it replied")]
    WorkerLost(String),
    /// The caller's timeout passed first.
    #[error(
        "node `{node}` did not {what} within {ms} ms{}",
        if *what == "finish" { " (waiting for its turn included)" } else { "" }
    )]
    Timeout {
        /// The node.
        node: String,
        /// "reply" or "finish" (waiting for its turn included).
        what: &'static str,
        /// The caller's timeout.
        ms: u128,
    },
    /// A declared secret cannot be decrypted: the secrets key changed.
    #[error("{0}")]
    SecretUnavailable(String),
    /// Another hub of the cluster refused or could not deliver a relayed
    /// execute: its code and message, as it gave them.
    #[error("{message}")]
    Relayed {
        /// The other hub's code (`no_worker`, `busy`, `timeout`, …).
        code: String,
        /// Its message.
        message: String,
    },
    /// Something the hub depends on (its database) cannot be reached for
    /// now: the request may be retried.
    #[error("{0}")]
    Unavailable(String),
    /// The hub itself failed.
    #[error("the hub failed: {0}")]
    Internal(String),
}

impl HubError {
    /// The stable code of this error.
    pub fn code(&self) -> &str {
        match self {
            HubError::MissingAuth
            | HubError::InvalidToken
            | HubError::InvalidWorkerToken
            | HubError::InvalidWsToken(_) => "unauthorized",
            HubError::ReadOnlyToken => "read_only_token",
            HubError::InvalidRequest(_) => "invalid_request",
            HubError::UnknownNode(_) => "unknown_node",
            HubError::UnknownUpload(_) => "unknown_upload",
            HubError::UnknownVersion { .. } => "version_not_kept",
            HubError::UnknownSecret(_) => "unknown_secret",
            HubError::UnknownComponent(_) => "unknown_component",
            HubError::NameTaken(_) => "name_taken",
            HubError::TooLarge(_) => "too_large",
            HubError::Refused { code, .. } => code,
            HubError::QueueFull(_) | HubError::CompileQueueFull(_) => "queue_full",
            HubError::NoWorker(_) => "no_worker",
            HubError::Busy => "busy",
            HubError::AccountLimit(_) => "quota_exceeded",
            HubError::NodeFailed { failure, .. } => &failure.code,
            HubError::WorkerLost(_) => "worker_lost",
            HubError::Timeout { .. } => "timeout",
            HubError::SecretUnavailable(_) => "secret_unavailable",
            HubError::Relayed { code, .. } => code,
            HubError::Unavailable(_) => "unavailable",
            HubError::Internal(_) => "internal",
        }
    }

    /// An internal failure, logged where it happens.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!("hub: {err}");
        HubError::Internal(err.to_string())
    }

    /// A refused upload.
    pub fn refused(err: &LoadError) -> Self {
        HubError::Refused {
            code: err.code().to_owned(),
            message: err.to_string(),
        }
    }

    /// What the runner's refusal means to a caller of `node` who waits at
    /// most `ms`.
    pub(crate) fn from_run(node: &str, ms: u128, err: RunError) -> Self {
        match err {
            RunError::QueueFull(full) => HubError::QueueFull(full),
            RunError::Timeout { .. } => HubError::Timeout {
                node: node.to_owned(),
                what: "finish",
                ms,
            },
            RunError::NoThread(_) | RunError::Lost => HubError::internal(err),
        }
    }
}

impl From<super::super::store::StoreError> for HubError {
    fn from(err: super::super::store::StoreError) -> Self {
        match err {
            super::super::store::StoreError::Unavailable { .. } => {
                tracing::warn!("hub: {err}");
                HubError::Unavailable(err.to_string())
            }
            err => HubError::internal(err),
        }
    }
}
