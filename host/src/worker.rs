//! The worker: serves loaded nodes to a Hurozo-compatible backend.
//!
//! It registers every node over HTTP (again every refresh period, and
//! before every connect, so a restarted backend learns them at once), holds
//! one WebSocket per backend, and runs each `remote_node` event for a node it
//! serves in a fresh sandbox on a bounded set of executor threads. Every
//! event gets a reply: outputs, or empty outputs and an `error`.
//!
//! It refuses to queue without bound (beyond its queue it stops reading the
//! socket, so events wait in the backend, never fail here), to send a reply
//! on a connection other than the one the event came on, and to treat
//! anything but a refused token or node at start-up as fatal.

mod backoff;
pub mod hosted;
mod register;
pub mod session;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::core::{Executors, LOCAL_ACCOUNT, Runner, Terms};
pub use crate::metrics::Metrics;
use crate::protocol::hurozo::{Event, Registered, Registration, Reply};
use crate::sandbox::{Limits, NodeComponent};
pub use backoff::{BACKOFF_MAX, BACKOFF_START, Backoff};
pub use register::{RegisterError, error_chain, register};
pub use session::{ConnectRequest, ControlPlane, Failed, KEEPALIVE, Outbox};

/// Re-registration period: Hurozo's worker registers every 60 s and the
/// backend drops a registration 10 minutes after its last refresh.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// How long events in flight may run on after SIGINT/SIGTERM; it covers the
/// default 30 s event deadline.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(35);

/// Events read off the socket per executor before the worker stops reading:
/// enough to keep executors busy between frames, small enough that a slow
/// node does not hoard events another worker could run.
pub const QUEUE_PER_EXECUTOR: usize = 4;

/// Executors when `--concurrency` is not given: one per core.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get())
}

/// How the worker is set up.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The backend's base URL, e.g. `https://app.hurozo.com/`.
    pub backend: url::Url,
    /// The API token (Bearer) used to register.
    pub token: String,
    /// Events that run at once.
    pub concurrency: usize,
    /// Re-registration period.
    pub refresh: Duration,
    /// How long events in flight may finish after a stop.
    pub grace: Duration,
    /// Limits of every event.
    pub limits: Limits,
    /// Secrets nodes may read if they declare them.
    pub secrets: HashMap<String, String>,
}

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The backend refused a registration at start-up (bad token or node).
    #[error("{0}")]
    Refused(#[source] RegisterError),
    /// Two components have the same node name.
    #[error(
        "two components are both named `{0}`; a backend knows a node by its name, so serve one of them"
    )]
    DuplicateNode(String),
    /// Nothing to serve.
    #[error("no components to serve")]
    NoNodes,
}

/// Serves nodes to one backend.
#[derive(Debug, Clone)]
pub struct Worker {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: WorkerConfig,
    client: reqwest::Client,
    nodes: HashMap<String, Arc<NodeComponent>>,
    registrations: Vec<Registration>,
    /// What every event runs with.
    terms: Terms,
    runner: Runner,
    metrics: Metrics,
}

impl Worker {
    /// A worker for `nodes`, which must have distinct names.
    pub fn new(config: WorkerConfig, nodes: Vec<Arc<NodeComponent>>) -> Result<Self, WorkerError> {
        if nodes.is_empty() {
            return Err(WorkerError::NoNodes);
        }
        let mut by_name = HashMap::new();
        let mut registrations = Vec::new();
        for node in nodes {
            registrations.push(Registration::of(node.info()));
            if let Some(twin) = by_name.insert(node.name().to_owned(), node) {
                return Err(WorkerError::DuplicateNode(twin.name().to_owned()));
            }
        }
        let metrics = Metrics::new("worker");
        let executors = Executors::new("node-host-executor", config.concurrency, None);
        let runner = Runner::new(executors, metrics.clone())
            .making_ahead(true)
            .running_short_events_here(true);
        let terms = Terms {
            limits: config.limits.clone(),
            secrets: Arc::new(config.secrets.clone()),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                client: reqwest::Client::new(),
                nodes: by_name,
                registrations,
                terms,
                runner,
                metrics,
            }),
        })
    }

    /// The worker's metrics.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.clone()
    }

    /// Registers every node once; the answer for the first carries the
    /// WebSocket URL and token.
    pub async fn register_all(&self) -> Result<Registered, RegisterError> {
        let shared = &self.shared;
        let mut first = None;
        for registration in &shared.registrations {
            let registered = register(
                &shared.client,
                &shared.config.backend,
                &shared.config.token,
                registration,
            )
            .await?;
            first.get_or_insert(registered);
        }
        Ok(first.expect("a worker has at least one node"))
    }

    /// Runs until `stop` turns true: registers, connects, serves, reconnects.
    /// `ready` fires after the first successful connect.
    pub async fn run(
        self,
        stop: watch::Receiver<bool>,
        ready: Option<oneshot::Sender<()>>,
    ) -> Result<(), WorkerError> {
        let config = &self.shared.config;
        // The first event of each node finds an instance made ahead too
        // (the runner makes the next one after each event).
        let nodes: Vec<_> = self.shared.nodes.values().cloned().collect();
        let terms = self.shared.terms.clone();
        std::thread::Builder::new()
            .name("node-host-ready".into())
            .spawn(move || {
                for node in nodes {
                    node.make_ready(&terms.secrets, &terms.limits);
                }
            })
            .expect("spawning a thread");
        let refresher = tokio::spawn(self.clone().refresh_loop());
        let result = session::run(&self, config.grace, stop, ready).await;
        refresher.abort();
        self.shared.runner.executors().close();
        result.map_err(WorkerError::Refused)
    }

    /// `{websocket_url}?auth={token}`, the token URL-encoded (Hurozo's own
    /// worker does not encode it, which breaks tokens with `+/=`), plus the
    /// other nodes this connection serves when there is more than one.
    fn websocket_url(&self, registered: &Registered) -> Result<url::Url, String> {
        let mut url = url::Url::parse(&registered.websocket_url).map_err(|err| {
            format!(
                "the backend's websocket_url `{}` is not a URL: {err}",
                registered.websocket_url
            )
        })?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("auth", &registered.token);
            if self.shared.registrations.len() > 1 {
                for registration in &self.shared.registrations {
                    query.append_pair("node", &registration.name);
                }
            }
        }
        Ok(url)
    }

    /// Re-registers every refresh period for as long as the worker runs.
    async fn refresh_loop(self) {
        let mut backoff = Backoff::default();
        let mut wait = self.shared.config.refresh;
        loop {
            tokio::time::sleep(wait).await;
            wait = match self.register_all().await {
                Ok(_) => {
                    backoff.reset();
                    self.shared.config.refresh
                }
                Err(err) => {
                    let retry = backoff.next_wait();
                    tracing::warn!("{err}; retrying in {retry:.1?}");
                    retry
                }
            };
        }
    }
}

impl ControlPlane for Worker {
    type Refusal = RegisterError;

    fn peer(&self) -> &'static str {
        "the backend"
    }

    async fn connect_request(&self) -> Result<ConnectRequest, Failed<RegisterError>> {
        let registered = match self.register_all().await {
            Ok(registered) => registered,
            Err(err @ RegisterError::Refused { .. }) => return Err(Failed::Refused(err)),
            Err(err) => return Err(Failed::Retry(err.to_string())),
        };
        let url = self.websocket_url(&registered).map_err(Failed::Retry)?;
        session::request(&url, &[]).map_err(Failed::Retry)
    }

    fn capacity(&self) -> Option<usize> {
        Some(self.shared.config.concurrency * QUEUE_PER_EXECUTOR)
    }

    /// Runs an event for a node this worker serves; ignores (and logs)
    /// every other frame.
    fn receive(&self, text: &str, outbox: &Outbox) -> bool {
        let event: Event = match serde_json::from_str(text) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!("ignored a frame that is not an event ({err}): {text:.200}");
                return false;
            }
        };
        let Some(node) = self.shared.nodes.get(&event.node).cloned() else {
            tracing::debug!(node = %event.node, "ignored an event for a node this worker does not serve");
            return false;
        };
        let span =
            tracing::info_span!(target: crate::telemetry::TARGET, "receive", node = %event.node);
        crate::telemetry::continue_trace(&span, event.traceparent.as_deref());
        let _received = span.enter();
        let (event, uuid) = event.into_domain(LOCAL_ACCOUNT);
        let name = event.node.clone();
        let reply_to = outbox.clone();
        let refused_uuid = uuid.clone();
        let started = self.shared.runner.start(
            event,
            node.clone(),
            self.shared.terms.clone(),
            move |outcome| {
                let reply = Reply::of_outcome(node.name(), uuid, &outcome);
                reply_to.reply(serde_json::to_string(&reply).expect("replies serialize"));
                if let Some(error) = &reply.error {
                    tracing::info!(node = %reply.node, code = %error.code, "event failed: {}", error.message);
                }
            },
        );
        if let Err(err) = started {
            let reply = Reply::refused(&name, refused_uuid, err.code(), &err.to_string());
            outbox.reply(serde_json::to_string(&reply).expect("replies serialize"));
        }
        true
    }
}
