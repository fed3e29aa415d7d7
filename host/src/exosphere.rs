//! node-host as an Exosphere runtime: it registers its nodes with a state
//! manager, pulls states (`states/enqueue`) only while it has room for
//! them, runs each in a fresh sandbox through the runner, and reports how
//! each ended (`executed`, `errored`, `prune` or `re-enqueue-after`).
//!
//! Unlike the SDK's runtime it never dies of a server fault: a refused
//! connection, a timeout, a 5xx or a body that is not JSON is logged and
//! tried again with exponential backoff and jitter, and an outcome that
//! could not be reported is kept and sent again until the server takes it
//! (or refuses it outright with a 4xx, which is logged). Only a refusal of
//! the registration at start-up (a bad key, a refused node) is fatal.
//! On stop it polls no more and reports what it has in hand before it
//! returns, within the grace period.

pub mod cron;
pub mod manager;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value as Json;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::core::{Event, Executors, LOCAL_ACCOUNT, LaneLimits, Runner, Terms};
use crate::metrics::Metrics;
use crate::protocol::exosphere::{
    Enqueue, Enqueued, NodeRegistration, RegisterNodes, Report, Secrets, State,
};
use crate::sandbox::{Limits, NodeComponent};
use crate::worker::Backoff;

/// States held at once when `--batch-size` is not given: the SDK's default.
pub const DEFAULT_BATCH_SIZE: u16 = 16;

/// The wait between polls that found nothing: the SDK's `poll_interval`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long one request to the state manager may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The state manager's base URL (`EXOSPHERE_STATE_MANAGER_URI`).
    pub state_manager: url::Url,
    /// The namespace the nodes live in.
    pub namespace: String,
    /// The runtime's name.
    pub name: String,
    /// The API key, sent as `x-api-key`.
    pub key: String,
    /// States in hand at most; polls ask for no more than the room left.
    pub batch_size: usize,
    /// States that run at once.
    pub concurrency: usize,
    /// The wait after a poll that found nothing.
    pub poll_interval: Duration,
    /// After a stop, how long states in hand may finish and be reported.
    pub grace: Duration,
    /// Limits of every state's sandbox.
    pub limits: Limits,
}

/// Why the runtime cannot run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The state manager refused the registration (bad key, bad node).
    #[error("the state manager refused the registration ({status}): {body}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// What it said.
        body: String,
    },
    /// Two components have the same node name.
    #[error(
        "two components are both named `{0}`; Exosphere knows a node by its name, so serve one of them"
    )]
    DuplicateNode(String),
    /// Nothing to serve.
    #[error("no components to serve")]
    NoNodes,
}

/// A request that did not succeed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// A 4xx: the server will not take this request as it is.
    #[error("{status}: {body}")]
    Refused { status: StatusCode, body: String },
    /// Anything worth trying again: no connection, a timeout, a 5xx, a
    /// body that is not JSON.
    #[error("{0}")]
    Unavailable(String),
}

/// An Exosphere runtime serving some nodes.
#[derive(Debug, Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: RuntimeConfig,
    client: reqwest::Client,
    base: String,
    nodes: HashMap<String, Arc<NodeComponent>>,
    registration: RegisterNodes,
    runner: Runner,
    metrics: Metrics,
    /// One permit per state the runtime may hold.
    room: Arc<Semaphore>,
}

impl Runtime {
    /// A runtime for `nodes`, which must have distinct names.
    pub fn new(
        config: RuntimeConfig,
        nodes: Vec<Arc<NodeComponent>>,
    ) -> Result<Self, RuntimeError> {
        if nodes.is_empty() {
            return Err(RuntimeError::NoNodes);
        }
        let mut by_name = HashMap::new();
        let mut registrations = Vec::new();
        for node in nodes {
            registrations.push(NodeRegistration::of(node.info(), &config.namespace));
            if let Some(twin) = by_name.insert(node.name().to_owned(), node) {
                return Err(RuntimeError::DuplicateNode(twin.name().to_owned()));
            }
        }
        let metrics = Metrics::new("exosphere");
        let executors = Executors::new("node-host-executor", config.concurrency, None);
        let runner = Runner::new(executors, metrics.clone()).making_ahead(true);
        let base = format!(
            "{}/v0/namespace/{}",
            config.state_manager.as_str().trim_end_matches('/'),
            config.namespace
        );
        let registration = RegisterNodes {
            runtime_name: config.name.clone(),
            runtime_namespace: config.namespace.clone(),
            nodes: registrations,
        };
        let room = Arc::new(Semaphore::new(config.batch_size));
        Ok(Self {
            shared: Arc::new(Shared {
                client: reqwest::Client::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .build()
                    .expect("an HTTP client"),
                base,
                nodes: by_name,
                registration,
                runner,
                metrics,
                room,
                config,
            }),
        })
    }

    /// The runtime's metrics.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.clone()
    }

    /// Registers, then pulls and runs states until `stop` turns true; then
    /// reports what is in hand (within the grace period) and returns.
    /// `ready` fires once the nodes are registered.
    pub async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        ready: Option<oneshot::Sender<()>>,
    ) -> Result<(), RuntimeError> {
        let registration =
            serde_json::to_value(&self.shared.registration).expect("a registration is JSON");
        let mut backoff = Backoff::default();
        loop {
            match self
                .call(reqwest::Method::PUT, "/nodes/", Some(&registration))
                .await
            {
                Ok(_) => break,
                Err(CallError::Refused { status, body }) => {
                    return Err(RuntimeError::Refused { status, body });
                }
                Err(CallError::Unavailable(err)) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(
                        "registering with the state manager failed: {err}; retrying in {wait:.1?}"
                    );
                    if stopped_within(&mut stop, wait).await {
                        return Ok(());
                    }
                }
            }
        }
        if let Some(ready) = ready {
            let _ = ready.send(());
        }
        let names: Vec<String> = self.shared.nodes.keys().cloned().collect();
        let room = self.shared.room.clone();
        let mut backoff = Backoff::default();
        while !*stop.borrow() {
            let free = room.available_permits();
            if free == 0 {
                tokio::select! {
                    permit = room.clone().acquire_owned() => drop(permit),
                    changed = stop.changed() => if changed.is_err() { break },
                }
                continue;
            }
            let wait = match self.enqueue(&names, free).await {
                Ok(states) if states.is_empty() => {
                    backoff.reset();
                    self.shared.config.poll_interval
                }
                Ok(states) => {
                    backoff.reset();
                    for state in states {
                        let Ok(permit) = room.clone().try_acquire_owned() else {
                            // More than asked for: take none beyond room.
                            tracing::warn!(
                                "the state manager handed out more states than asked for; `{}` stays with it",
                                state.state_id
                            );
                            continue;
                        };
                        let runtime = self.clone();
                        tokio::spawn(async move {
                            runtime.handle(state).await;
                            drop(permit);
                        });
                    }
                    Duration::ZERO
                }
                Err(err) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(
                        "polling the state manager failed: {err}; retrying in {wait:.1?}"
                    );
                    wait
                }
            };
            if !wait.is_zero() && stopped_within(&mut stop, wait).await {
                break;
            }
        }
        let batch = self.shared.config.batch_size as u32;
        let in_hand = batch - room.available_permits() as u32;
        if in_hand > 0 {
            tracing::info!("stopping: finishing and reporting {in_hand} states in hand");
        }
        let drained =
            tokio::time::timeout(self.shared.config.grace, room.acquire_many(batch)).await;
        if drained.is_err() {
            tracing::warn!(
                "stopping: {} states were not finished and reported within the grace period; the state manager still holds them",
                batch - room.available_permits() as u32
            );
        }
        self.shared.runner.executors().close();
        Ok(())
    }

    /// Asks for at most `room` states.
    async fn enqueue(&self, names: &[String], room: usize) -> Result<Vec<State>, CallError> {
        let body = serde_json::to_value(Enqueue {
            nodes: names.to_vec(),
            batch_size: room,
        })
        .expect("an enqueue is JSON");
        let answer = self
            .call(reqwest::Method::POST, "/states/enqueue", Some(&body))
            .await?;
        let enqueued: Enqueued = serde_json::from_value(answer).map_err(|err| {
            CallError::Unavailable(format!("the enqueue answer is not as expected: {err}"))
        })?;
        Ok(enqueued.states)
    }

    /// Runs one state and reports how it ended.
    async fn handle(&self, state: State) {
        let report = self.run_state(&state).await;
        self.report(&state.state_id, report).await;
    }

    async fn run_state(&self, state: &State) -> Report {
        let Some(node) = self.shared.nodes.get(&state.node_name).cloned() else {
            return Report::Errored(format!(
                "unknown_node: this runtime does not serve `{}`",
                state.node_name
            ));
        };
        let secrets = if node.info().secrets.is_empty() {
            BTreeMap::new()
        } else {
            match self.secrets(&state.state_id).await {
                Ok(secrets) => secrets,
                Err(err) => {
                    return Report::Errored(format!(
                        "secrets_unavailable: the state manager did not give the state's secrets: {err}"
                    ));
                }
            }
        };
        let event = Event {
            id: state.state_id.clone(),
            account: LOCAL_ACCOUNT,
            node: state.node_name.clone(),
            inputs: state.node_inputs(),
            deadline: None,
        };
        let lane = LaneLimits {
            concurrency: self.shared.config.concurrency as u64,
            queue: self.shared.config.batch_size as u64,
        };
        let terms = Terms {
            limits: self.shared.config.limits.clone(),
            secrets: Arc::new(secrets.into_iter().collect()),
        };
        let runner = &self.shared.runner;
        let outcome = match runner.admit(&event, lane).await {
            Ok(permit) => runner.run(permit, event, node, terms, |_| {}).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(outcome) => match &outcome.result {
                Ok(outputs) => Report::of_result(Ok(outputs)),
                Err(failure) => {
                    Report::of_result(Err((failure.code.as_str(), failure.message.as_str())))
                }
            },
            Err(err) => Report::Errored(format!("{}: {err}", err.code())),
        }
    }

    /// The state's secrets, tried a few times.
    async fn secrets(&self, state_id: &str) -> Result<BTreeMap<String, String>, CallError> {
        let path = format!("/state/{state_id}/secrets");
        let mut backoff = Backoff::default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.call(reqwest::Method::GET, &path, None).await {
                Ok(answer) => {
                    return serde_json::from_value::<Secrets>(answer)
                        .map(|secrets| secrets.secrets)
                        .map_err(|err| {
                            CallError::Unavailable(format!(
                                "the secrets answer is not as expected: {err}"
                            ))
                        });
                }
                Err(CallError::Unavailable(err)) if attempt < 5 => {
                    let wait = backoff.next_wait();
                    tracing::warn!(
                        "fetching the secrets of `{state_id}` failed: {err}; retrying in {wait:.1?}"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Sends `report` until the state manager takes it or refuses it.
    async fn report(&self, state_id: &str, report: Report) {
        let path = format!("/state/{state_id}/{}", report.path());
        let body = report.body();
        let mut backoff = Backoff::default();
        loop {
            match self.call(reqwest::Method::POST, &path, Some(&body)).await {
                Ok(_) => return,
                Err(CallError::Refused { status, body }) => {
                    tracing::warn!(
                        "the state manager refused the report `{}` of state `{state_id}` ({status}): {body}",
                        report.path()
                    );
                    return;
                }
                Err(CallError::Unavailable(err)) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(
                        "reporting `{}` of state `{state_id}` failed: {err}; kept, retrying in {wait:.1?}",
                        report.path()
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One request to `{base}{path}`; its JSON answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Json, CallError> {
        let url = format!("{}{path}", self.shared.base);
        let mut request = self
            .shared
            .client
            .request(method, &url)
            .header("x-api-key", &self.shared.config.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| {
            CallError::Unavailable(format!("{url}: {}", crate::worker::error_chain(&err)))
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| CallError::Unavailable(format!("{url}: reading the answer: {err}")))?;
        let retryable =
            status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS;
        if status.is_client_error() && !retryable {
            return Err(CallError::Refused {
                status,
                body: text.chars().take(500).collect(),
            });
        }
        if !status.is_success() {
            return Err(CallError::Unavailable(format!(
                "{url}: {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        serde_json::from_str(&text).map_err(|err| {
            CallError::Unavailable(format!(
                "{url}: the answer is not JSON ({err}): {}",
                text.chars().take(200).collect::<String>()
            ))
        })
    }
}

/// Waits `wait`, or less if `stop` turns true; true when it did.
async fn stopped_within(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(wait) => *stop.borrow(),
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
    }
}
