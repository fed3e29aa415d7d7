//! Hosted mode (`node-host run --hosted`): runs a hub's uploaded nodes, for
//! every account, in the protocol of [`crate::protocol::hosted`].
//!
//! It holds one WebSocket to the hub with a worker token. For each
//! component the hub names it fetches the bytes, checks their sha256,
//! compiles them (through the compile cache) and only then tells the hub it
//! is ready, so nothing compiles on an event's path. Each event runs in a
//! fresh sandbox under the limits the event carries, on an event thread no
//! other event is using (a long event drops to the lowest CPU priority, and
//! its thread ends with it), at most `concurrency` at once; more wait here,
//! and the hub bounds how many it sends.
//!
//! It refuses components whose bytes do not hash to what was asked, and
//! treats only a refused token at start-up as fatal: a lost hub is retried
//! with backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite;

use super::error_chain;
use super::session::{self, ConnectRequest, ControlPlane, Failed, Outbox};
use serde_json::Value as Json;

use crate::core::{Event, Executors, LOCAL_ACCOUNT, Runner, Terms};
use crate::metrics::Metrics;
use crate::protocol::hosted::{EventLogs, FromWorker, HostedEvent, HostedReply, ToWorker};
use crate::protocol::hurozo::{ApiError, Reply};
use crate::sandbox::value::inputs_from_json;
use crate::sandbox::{NodeComponent, Sandbox, sha256_hex};

/// How long fetching one component may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// How a hosted worker is set up.
#[derive(Debug, Clone)]
pub struct HostedConfig {
    /// The hub's base URL.
    pub backend: url::Url,
    /// The worker token (`node-host hub worker-token create`).
    pub token: String,
    /// Events that run at once.
    pub concurrency: usize,
    /// How long events in flight may finish after a stop.
    pub grace: Duration,
}

/// Why a hosted worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum HostedError {
    /// The hub refused the worker token at start-up.
    #[error("the hub refused the worker token ({status}): {message}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The hub's message.
        message: String,
    },
}

/// Runs a hub's uploaded nodes.
#[derive(Clone)]
pub struct HostedWorker {
    shared: Arc<Shared>,
}

struct Shared {
    config: HostedConfig,
    sandbox: Sandbox,
    client: reqwest::Client,
    /// Ready components by sha256.
    components: Mutex<HashMap<String, Arc<NodeComponent>>>,
    /// Components being fetched and compiled, with whom to tell when done.
    loading: Mutex<HashMap<String, Vec<Outbox>>>,
    /// At most `concurrency` events at once; no instances made ahead (the
    /// hub's lane ends with the reply, so making one would run outside it).
    runner: Runner,
    metrics: Metrics,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl HostedWorker {
    /// A hosted worker that loads components into `sandbox`.
    pub fn new(config: HostedConfig, sandbox: Sandbox) -> Self {
        let metrics = Metrics::new("worker");
        let executors = Executors::new(
            "node-host-event",
            config.concurrency.max(1),
            Some(crate::core::IDLE_FOR),
        );
        Self {
            shared: Arc::new(Shared {
                config,
                sandbox,
                client: reqwest::Client::new(),
                components: Mutex::default(),
                loading: Mutex::default(),
                runner: Runner::new(executors, metrics.clone()),
                metrics,
            }),
        }
    }

    /// The worker's metrics.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics.clone()
    }

    /// Components ready to run.
    pub fn ready_components(&self) -> usize {
        lock(&self.shared.components).len()
    }

    /// Runs until `stop` turns true: connects, serves, reconnects. `ready`
    /// fires after the first successful connect.
    pub async fn run(
        self,
        stop: watch::Receiver<bool>,
        ready: Option<oneshot::Sender<()>>,
    ) -> Result<(), HostedError> {
        let result = session::run(&self, self.shared.config.grace, stop, ready).await;
        self.shared.runner.executors().close();
        result
    }

    /// Gets the component `sha256` ready, then says so on `out`.
    fn prepare(&self, sha256: String, out: Outbox) {
        if lock(&self.shared.components).contains_key(&sha256) {
            out.send(frame(&FromWorker::Ready { sha256 }));
            return;
        }
        {
            let mut loading = lock(&self.shared.loading);
            if let Some(waiting) = loading.get_mut(&sha256) {
                waiting.push(out);
                return;
            }
            loading.insert(sha256.clone(), vec![out]);
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let loaded = load(&shared, &sha256).await;
            let status = match loaded {
                Ok(node) => {
                    tracing::info!(sha256, node = node.name(), "component ready");
                    lock(&shared.components).insert(sha256.clone(), Arc::new(node));
                    FromWorker::Ready {
                        sha256: sha256.clone(),
                    }
                }
                Err(message) => {
                    tracing::warn!(sha256, "cannot use a component: {message}");
                    FromWorker::Refused {
                        sha256: sha256.clone(),
                        message,
                    }
                }
            };
            let waiting = lock(&shared.loading).remove(&sha256).unwrap_or_default();
            let status = frame(&status);
            for out in waiting {
                out.send(status.clone());
            }
        });
    }

    /// Runs one event; its reply goes to `out`.
    fn start(&self, event: HostedEvent, out: &Outbox) {
        let HostedEvent {
            uuid,
            node: name,
            sha256,
            inputs,
            limits,
            secrets,
        } = event;
        let node = lock(&self.shared.components).get(&sha256).cloned();
        let Some(node) = node else {
            let refused = Reply::refused(
                &name,
                Json::String(uuid),
                "unknown_component",
                &format!("this hosted worker does not have the component {sha256} ready"),
            );
            out.reply(reply_frame(refused, EventLogs::default()));
            return;
        };
        let event = Event {
            id: uuid.clone(),
            account: LOCAL_ACCOUNT,
            node: name.clone(),
            inputs: inputs_from_json(inputs),
            deadline: None,
        };
        let terms = Terms {
            limits: limits.to_limits(),
            secrets: Arc::new(secrets),
        };
        let (reply_node, reply_uuid, reply_to) = (name.clone(), uuid.clone(), out.clone());
        let started = self
            .shared
            .runner
            .start(event, node, terms, move |outcome| {
                let reply = Reply::of_outcome(&reply_node, Json::String(reply_uuid), &outcome);
                reply_to.reply(reply_frame(reply, EventLogs::of(&outcome)));
            });
        if let Err(err) = started {
            let reply = Reply::refused(&name, Json::String(uuid), err.code(), &err.to_string());
            out.reply(reply_frame(reply, EventLogs::default()));
        }
    }
}

impl ControlPlane for HostedWorker {
    type Refusal = HostedError;

    fn peer(&self) -> &'static str {
        "the hub"
    }

    async fn connect_request(&self) -> Result<ConnectRequest, Failed<HostedError>> {
        let url = websocket_url(&self.shared.config.backend);
        let auth = format!("Bearer {}", self.shared.config.token);
        session::request(&url, &[("authorization", &auth)]).map_err(Failed::Retry)
    }

    /// The hub's 401 or 403 is a refused token; anything else is retried.
    fn connect_failed(&self, err: &tungstenite::Error, url: &str) -> Failed<HostedError> {
        let tungstenite::Error::Http(response) = err else {
            return Failed::Retry(format!("cannot connect to {url}: {}", error_chain(err)));
        };
        let status = response.status();
        let body = response.body().as_deref().unwrap_or_default();
        let message = serde_json::from_slice::<ApiError>(body)
            .map(|error| error.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Failed::Refused(HostedError::Refused { status, message });
        }
        Failed::Retry(format!("the hub at {url} answered {status}: {message}"))
    }

    fn capacity(&self) -> Option<usize> {
        // The hub bounds what it sends (each account's lane).
        None
    }

    fn receive(&self, text: &str, out: &Outbox) -> bool {
        match serde_json::from_str(text) {
            Ok(ToWorker::Components { sha256 }) => {
                for sha256 in sha256 {
                    self.prepare(sha256, out.clone());
                }
                false
            }
            Ok(ToWorker::Forget { sha256 }) => {
                lock(&self.shared.components).remove(&sha256);
                false
            }
            Ok(ToWorker::Event(event)) => {
                self.start(*event, out);
                true
            }
            Err(err) => {
                tracing::warn!("ignored a frame from the hub ({err}): {text:.200}");
                false
            }
        }
    }
}

fn frame(frame: &FromWorker) -> String {
    serde_json::to_string(frame).expect("frames serialize")
}

fn reply_frame(reply: Reply, logs: EventLogs) -> String {
    frame(&FromWorker::Reply(Box::new(HostedReply { reply, logs })))
}

/// `ws(s)://…/api/hosted/ws` for the hub at `backend`.
fn websocket_url(backend: &url::Url) -> url::Url {
    let mut url = backend
        .join("api/hosted/ws")
        .expect("a base URL joins a relative path");
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .expect("ws and wss are valid schemes");
    url
}

/// Fetches, verifies and compiles the component `sha256`.
async fn load(shared: &Arc<Shared>, sha256: &str) -> Result<NodeComponent, String> {
    let bytes = fetch_component(
        &shared.client,
        &shared.config.backend,
        &shared.config.token,
        sha256,
    )
    .await?;
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || shared.sandbox.load(&bytes))
        .await
        .map_err(|err| format!("compiling failed: {err}"))?
        .map_err(|err| err.to_string())
}

/// `GET {backend}/api/hosted/components/{sha256}`, refusing bytes that do
/// not hash to `sha256`.
pub async fn fetch_component(
    client: &reqwest::Client,
    backend: &url::Url,
    token: &str,
    sha256: &str,
) -> Result<Vec<u8>, String> {
    let url = backend
        .join(&format!("api/hosted/components/{sha256}"))
        .map_err(|err| format!("`{sha256}` does not make a URL: {err}"))?;
    let response = client
        .get(url.clone())
        .bearer_auth(token)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|err| format!("cannot fetch {url}: {}", error_chain(&err)))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|err| format!("cannot fetch {url}: {}", error_chain(&err)))?;
    if !status.is_success() {
        return Err(format!(
            "fetching {url} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    let got = sha256_hex(&bytes);
    if got != sha256 {
        return Err(format!(
            "the hub sent a component whose sha256 is {got}, not the {sha256} asked for; refused"
        ));
    }
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_websocket_url_follows_the_scheme() {
        let url = |base: &str| websocket_url(&url::Url::parse(base).unwrap()).to_string();
        assert_eq!(
            url("http://127.0.0.1:8765/"),
            "ws://127.0.0.1:8765/api/hosted/ws"
        );
        assert_eq!(
            url("https://hub.example.com/base/"),
            "wss://hub.example.com/base/api/hosted/ws"
        );
    }

    #[tokio::test]
    async fn a_component_that_does_not_match_its_hash_is_refused() {
        let served = b"\0asm but not what was asked for".to_vec();
        let app = axum::Router::new().route(
            "/api/hosted/components/{sha256}",
            axum::routing::get(move || std::future::ready(served.clone())),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let backend = url::Url::parse(&format!("http://{addr}/")).unwrap();
        let client = reqwest::Client::new();
        let asked = sha256_hex(b"the real component");
        let refused = fetch_component(&client, &backend, "nhw_x", &asked)
            .await
            .unwrap_err();
        assert!(refused.contains("refused"), "{refused}");
        assert!(refused.contains(&asked), "{refused}");
        let matching = sha256_hex(b"\0asm but not what was asked for");
        let fetched = fetch_component(&client, &backend, "nhw_x", &matching)
            .await
            .unwrap();
        assert_eq!(fetched, b"\0asm but not what was asked for");
        server.abort();
    }
}
