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
mod executor;
pub mod hosted;
mod register;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::metrics::Metrics;
use crate::protocol::hurozo::{Event, Registered, Registration};
use crate::sandbox::{Limits, NodeComponent};
pub use backoff::{BACKOFF_MAX, BACKOFF_START, Backoff};
pub use register::{RegisterError, error_chain, register};

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

/// A ping goes out this often; a backend silent for two periods is gone.
pub const KEEPALIVE: Duration = Duration::from_secs(20);

/// How long a WebSocket connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    metrics: Metrics,
}

/// Why a session ended.
enum SessionEnd {
    Stopped,
    Lost(String),
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
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                client: reqwest::Client::new(),
                nodes: by_name,
                registrations,
                metrics: Metrics::new("worker"),
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
        mut stop: watch::Receiver<bool>,
        mut ready: Option<oneshot::Sender<()>>,
    ) -> Result<(), WorkerError> {
        let config = &self.shared.config;
        let jobs = Arc::new(executor::JobQueue::default());
        let (done_sender, mut done) = mpsc::unbounded_channel();
        executor::spawn(
            config.concurrency,
            &jobs,
            done_sender,
            executor::ExecutorContext {
                limits: config.limits.clone(),
                secrets: Arc::new(config.secrets.clone()),
                metrics: self.shared.metrics.clone(),
            },
        );
        // The first event of each node finds an instance made ahead too
        // (the executors make the next one after each event).
        let nodes: Vec<_> = self.shared.nodes.values().cloned().collect();
        let (secrets, limits) = (config.secrets.clone(), config.limits.clone());
        std::thread::Builder::new()
            .name("node-host-ready".into())
            .spawn(move || {
                for node in nodes {
                    node.make_ready(&secrets, &limits);
                }
            })
            .expect("spawning a thread");
        let refresher = tokio::spawn(self.clone().refresh_loop());
        let mut backoff = Backoff::default();
        let mut starting = true;
        let mut session = 0;
        let result = loop {
            let registered = tokio::select! {
                registered = self.register_all() => registered,
                () = stopped(&mut stop) => break Ok(()),
            };
            let registered = match registered {
                Ok(registered) => registered,
                Err(err) if starting && matches!(err, RegisterError::Refused { .. }) => {
                    break Err(WorkerError::Refused(err));
                }
                Err(err) => {
                    if back_off(&mut backoff, &mut stop, err).await {
                        break Ok(());
                    }
                    continue;
                }
            };
            starting = false;
            let url = match self.websocket_url(&registered) {
                Ok(url) => url,
                Err(message) => {
                    if back_off(&mut backoff, &mut stop, message).await {
                        break Ok(());
                    }
                    continue;
                }
            };
            let connected = tokio::select! {
                connected = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)) => connected,
                () = stopped(&mut stop) => break Ok(()),
            };
            let socket = match connected {
                Ok(Ok((socket, _response))) => socket,
                Ok(Err(err)) => {
                    let why = format!(
                        "cannot open the WebSocket at {}: {}",
                        redact(&url),
                        error_chain(&err)
                    );
                    if back_off(&mut backoff, &mut stop, why).await {
                        break Ok(());
                    }
                    continue;
                }
                Err(_) => {
                    let why = format!("the WebSocket connect to {} timed out", redact(&url));
                    if back_off(&mut backoff, &mut stop, why).await {
                        break Ok(());
                    }
                    continue;
                }
            };
            backoff.reset();
            session += 1;
            tracing::info!(session, "connected to {}", redact(&url));
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            match self
                .serve(socket, session, &jobs, &mut done, &mut stop)
                .await
            {
                SessionEnd::Stopped => break Ok(()),
                SessionEnd::Lost(reason) => {
                    let why = format!("lost the backend connection ({reason})");
                    if back_off(&mut backoff, &mut stop, why).await {
                        break Ok(());
                    }
                }
            }
        };
        refresher.abort();
        jobs.close();
        result
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

    /// Serves one connection until it is lost or the worker stops.
    async fn serve(
        &self,
        socket: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        session: u64,
        jobs: &executor::JobQueue,
        done: &mut mpsc::UnboundedReceiver<executor::Done>,
        stop: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        let (mut sink, mut stream) = socket.split();
        let capacity = self.shared.config.concurrency * QUEUE_PER_EXECUTOR;
        let mut in_flight = 0usize;
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                biased;
                Some(finished) = done.recv() => {
                    // Every reply that is ready goes out with one flush.
                    let mut replies = Vec::new();
                    let mut next = Some(finished);
                    while let Some(finished) = next {
                        if finished.session == session {
                            replies.push(Ok(Message::text(finished.text)));
                        }
                        next = done.try_recv().ok();
                    }
                    in_flight -= replies.len();
                    let mut replies = futures_util::stream::iter(replies);
                    if let Err(err) = sink.send_all(&mut replies).await {
                        return SessionEnd::Lost(format!("sending a reply failed: {err}"));
                    }
                }
                () = stopped(stop) => {
                    let reply = |finished: executor::Done| {
                        (finished.session == session).then_some(finished.text)
                    };
                    let grace = self.shared.config.grace;
                    finish_then_close(&mut sink, done, reply, in_flight, grace, "worker stopping")
                        .await;
                    return SessionEnd::Stopped;
                }
                frame = stream.next(), if in_flight < capacity => {
                    last_heard = Instant::now();
                    match frame {
                        None | Some(Ok(Message::Close(_))) => {
                            return SessionEnd::Lost("the backend closed the connection".into());
                        }
                        Some(Err(err)) => return SessionEnd::Lost(err.to_string()),
                        Some(Ok(Message::Text(text))) => {
                            if let Some(job) = self.accept(text.as_str(), session) {
                                in_flight += 1;
                                self.shared.metrics.started();
                                jobs.push(job);
                            }
                        }
                        Some(Ok(_)) => {}
                    }
                }
                _ = keepalive.tick() => {
                    if let Err(why) = keep_alive(&mut sink, last_heard, "the backend").await {
                        return SessionEnd::Lost(why);
                    }
                }
            }
        }
    }

    /// The job for a frame, or `None` for a frame to ignore (logged).
    fn accept(&self, text: &str, session: u64) -> Option<executor::Job> {
        let event: Event = match serde_json::from_str(text) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!("ignored a frame that is not an event ({err}): {text:.200}");
                return None;
            }
        };
        let Some(node) = self.shared.nodes.get(&event.node) else {
            tracing::debug!(node = %event.node, "ignored an event for a node this worker does not serve");
            return None;
        };
        Some(executor::Job {
            session,
            node: node.clone(),
            event,
            received: Instant::now(),
        })
    }
}

/// The sending half of a worker's WebSocket.
type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// One keepalive tick: a ping to the peer, or why it counts as gone (silent
/// for two periods, or the ping cannot be sent).
async fn keep_alive(sink: &mut Sink, last_heard: Instant, peer: &str) -> Result<(), String> {
    if last_heard.elapsed() > 2 * KEEPALIVE {
        return Err(format!("{peer} stopped answering pings"));
    }
    sink.send(Message::Ping(Default::default()))
        .await
        .map_err(|err| format!("sending a ping failed: {err}"))
}

/// After a stop: sends the replies of the `in_flight` events as they finish
/// (what `reply` makes of each message from `finished`; `None` is not one of
/// them), for at most `grace`, then closes the connection with `reason`.
async fn finish_then_close<T>(
    sink: &mut Sink,
    finished: &mut mpsc::UnboundedReceiver<T>,
    reply: impl Fn(T) -> Option<String>,
    mut in_flight: usize,
    grace: Duration,
    reason: &str,
) {
    let deadline = tokio::time::Instant::now() + grace;
    tracing::info!(in_flight, "stopping: finishing events in flight");
    while in_flight > 0 {
        tokio::select! {
            Some(message) = finished.recv() => {
                if let Some(text) = reply(message) {
                    in_flight -= 1;
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(in_flight, "events still running after the {grace:?} grace period; leaving without their replies");
                break;
            }
        }
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: reason.to_owned().into(),
        })))
        .await;
}

/// Resolves once `stop` is true; never, if its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Logs why an attempt failed and waits the next backoff step; true if the
/// worker was stopped meanwhile.
async fn back_off(
    backoff: &mut Backoff,
    stop: &mut watch::Receiver<bool>,
    why: impl std::fmt::Display,
) -> bool {
    let wait = backoff.next_wait();
    tracing::warn!("{why}; retrying in {wait:.1?}");
    sleep_or_stop(wait, stop).await
}

/// Sleeps for `wait`; true if the worker was stopped meanwhile.
async fn sleep_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        () = stopped(stop) => true,
    }
}

/// A URL fit for logs: the token replaced.
fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(key, value)| {
            let value = if key == "auth" {
                "…".to_owned()
            } else {
                value.into_owned()
            };
            (key.into_owned(), value)
        })
        .collect();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    shown.to_string()
}
