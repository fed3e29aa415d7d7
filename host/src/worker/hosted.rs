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
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

use super::{
    Backoff, CONNECT_TIMEOUT, KEEPALIVE, back_off, error_chain, finish_then_close, keep_alive,
    stopped,
};
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
    loading: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Outgoing>>>>,
    slots: Arc<Semaphore>,
    metrics: Metrics,
}

/// A frame for the hub.
#[derive(Debug)]
enum Outgoing {
    /// A component is ready or refused.
    Status(FromWorker),
    /// An event's reply, serialized.
    Reply(String),
}

/// Why a session ended.
enum SessionEnd {
    Stopped,
    Lost(String),
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl HostedWorker {
    /// A hosted worker that loads components into `sandbox`.
    pub fn new(config: HostedConfig, sandbox: Sandbox) -> Self {
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Self {
            shared: Arc::new(Shared {
                config,
                sandbox,
                client: reqwest::Client::new(),
                components: Mutex::default(),
                loading: Mutex::default(),
                slots,
                metrics: Metrics::new("worker"),
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
        mut stop: watch::Receiver<bool>,
        mut ready: Option<oneshot::Sender<()>>,
    ) -> Result<(), HostedError> {
        let url = websocket_url(&self.shared.config.backend);
        let mut backoff = Backoff::default();
        let mut starting = true;
        loop {
            let mut request = url
                .as_str()
                .into_client_request()
                .expect("a ws:// URL makes a request");
            let auth = format!("Bearer {}", self.shared.config.token);
            request.headers_mut().insert(
                "authorization",
                auth.parse().expect("a token is a valid header value"),
            );
            let connect = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_tungstenite::connect_async_with_config(request, None, true),
            );
            let connected = tokio::select! {
                connected = connect => connected,
                () = stopped(&mut stop) => return Ok(()),
            };
            let why = match connected {
                Ok(Ok((socket, _response))) => {
                    starting = false;
                    backoff.reset();
                    tracing::info!("connected to the hub at {url}");
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    match self.serve(socket, &mut stop).await {
                        SessionEnd::Stopped => return Ok(()),
                        SessionEnd::Lost(reason) => format!("lost the hub connection ({reason})"),
                    }
                }
                Ok(Err(tungstenite::Error::Http(response))) => {
                    let status = response.status();
                    let body = response.body().as_deref().unwrap_or_default();
                    let message = serde_json::from_slice::<ApiError>(body)
                        .map(|error| error.error)
                        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
                    if starting
                        && (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
                    {
                        return Err(HostedError::Refused { status, message });
                    }
                    format!("the hub at {url} answered {status}: {message}")
                }
                Ok(Err(err)) => format!("cannot connect to {url}: {}", error_chain(&err)),
                Err(_) => format!("the connect to {url} timed out"),
            };
            if back_off(&mut backoff, &mut stop, why).await {
                return Ok(());
            }
        }
    }

    /// Serves one connection until it is lost or the worker stops.
    async fn serve(
        &self,
        socket: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        stop: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        let (mut sink, mut stream) = socket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel();
        let mut in_flight = 0usize;
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                biased;
                Some(frame) = outgoing.recv() => {
                    // Every frame that is ready goes out with one flush.
                    let mut frames = Vec::new();
                    let mut next = Some(frame);
                    while let Some(frame) = next {
                        let text = match frame {
                            Outgoing::Reply(text) => {
                                in_flight -= 1;
                                text
                            }
                            Outgoing::Status(status) => {
                                serde_json::to_string(&status).expect("frames serialize")
                            }
                        };
                        frames.push(Ok(Message::text(text)));
                        next = outgoing.try_recv().ok();
                    }
                    let mut frames = futures_util::stream::iter(frames);
                    if let Err(err) = sink.send_all(&mut frames).await {
                        return SessionEnd::Lost(format!("sending to the hub failed: {err}"));
                    }
                }
                () = stopped(stop) => {
                    let reply = |frame: Outgoing| match frame {
                        Outgoing::Reply(text) => Some(text),
                        Outgoing::Status(_) => None,
                    };
                    let grace = self.shared.config.grace;
                    let reason = "hosted worker stopping";
                    finish_then_close(&mut sink, &mut outgoing, reply, in_flight, grace, reason)
                        .await;
                    return SessionEnd::Stopped;
                }
                frame = stream.next() => {
                    last_heard = Instant::now();
                    match frame {
                        None | Some(Ok(Message::Close(_))) => {
                            return SessionEnd::Lost("the hub closed the connection".into());
                        }
                        Some(Err(err)) => return SessionEnd::Lost(err.to_string()),
                        Some(Ok(Message::Text(text))) => {
                            if self.handle(text.as_str(), &out) {
                                in_flight += 1;
                            }
                        }
                        Some(Ok(_)) => {}
                    }
                }
                _ = keepalive.tick() => {
                    if let Err(why) = keep_alive(&mut sink, last_heard, "the hub").await {
                        return SessionEnd::Lost(why);
                    }
                }
            }
        }
    }

    /// Acts on one frame from the hub; true when it started an event (whose
    /// reply will come on `out`).
    fn handle(&self, text: &str, out: &mpsc::UnboundedSender<Outgoing>) -> bool {
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
                self.start(*event, out.clone());
                true
            }
            Err(err) => {
                tracing::warn!("ignored a frame from the hub ({err}): {text:.200}");
                false
            }
        }
    }

    /// Gets the component `sha256` ready, then says so on `out`.
    fn prepare(&self, sha256: String, out: mpsc::UnboundedSender<Outgoing>) {
        if lock(&self.shared.components).contains_key(&sha256) {
            let _ = out.send(Outgoing::Status(FromWorker::Ready { sha256 }));
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
            for out in waiting {
                let _ = out.send(Outgoing::Status(status.clone()));
            }
        });
    }

    /// Runs one event on an event thread once a slot is free; its reply
    /// goes to `out`.
    fn start(&self, event: HostedEvent, out: mpsc::UnboundedSender<Outgoing>) {
        let shared = self.shared.clone();
        let reply_to = move |reply: Reply, logs: EventLogs| {
            let frame = FromWorker::Reply(Box::new(HostedReply { reply, logs }));
            let _ = out.send(Outgoing::Reply(
                serde_json::to_string(&frame).expect("frames serialize"),
            ));
        };
        let node = lock(&shared.components).get(&event.sha256).cloned();
        let Some(node) = node else {
            let refused = Reply::failure(
                &event.to_event(),
                "unknown_component",
                &format!(
                    "this hosted worker does not have the component {} ready",
                    event.sha256
                ),
            );
            reply_to(refused, EventLogs::default());
            return;
        };
        shared.metrics.started();
        tokio::spawn(async move {
            let received = Instant::now();
            let permit = shared
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("the slots are never closed");
            let hurozo_event = event.to_event();
            let failed = hurozo_event.clone();
            let inputs = inputs_from_json(event.inputs);
            let metrics = shared.metrics.clone();
            let reply_on_failure = reply_to.clone();
            let spawned = node.execute_on_event_thread(
                inputs,
                event.secrets,
                event.limits.to_limits(),
                move |outcome| {
                    drop(permit);
                    let reply = Reply::to_event(&hurozo_event, &outcome);
                    let label = reply
                        .error
                        .as_ref()
                        .map_or("ok", |error| error.code.as_str());
                    metrics.finished(
                        &hurozo_event.node,
                        label,
                        received.elapsed(),
                        outcome.fuel_used,
                    );
                    reply_to(reply, EventLogs::of(&outcome));
                },
            );
            if let Err(err) = spawned {
                shared
                    .metrics
                    .finished(&failed.node, "internal", received.elapsed(), 0);
                let reply = Reply::failure(
                    &failed,
                    "internal",
                    &format!("cannot start a thread for the event: {err}"),
                );
                reply_on_failure(reply, EventLogs::default());
            }
        });
    }
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
