//! Hubs of a cluster pass executes to each other over NATS (`--nats`).
//!
//! A worker's WebSocket lands on one hub; callers reach any hub. So:
//!
//! - Registrations are broadcast on [`REGISTERED`]: every hub knows every
//!   registered node (its outputs, the listing), whichever hub a worker
//!   registered with. A hub started later learns them at the workers' next
//!   refresh (every minute).
//! - A hub with a worker connection serving node N of account A answers on
//!   `nodehost.execute.A.<hex of N>`, in the queue group [`QUEUE`]: NATS
//!   hands each request to exactly one such hub, which sends the event to
//!   one of its workers and replies on the caller's inbox. It subscribes
//!   with the first such connection and unsubscribes with the last, so a
//!   hub without a worker for N is never chosen.
//! - A hub asked to execute N that has no worker for it here publishes the
//!   event once, with an inbox of its own for the reply; no hub listening is
//!   `no_worker`, and there is no retry: an event reaches at most one
//!   worker, and a caller that wants another try asks again. The hub that
//!   takes an event still running after 2 s says `working` every 2 s until
//!   it answers, so a taker that dies mid-event fails the event with
//!   `worker_lost` after 6 s of silence, not at the caller's timeout; an
//!   event answered within 2 s costs two NATS messages, nothing more.
//! - Replies come back on one inbox subscription per hub, told apart by
//!   their last subject token, so an execute subscribes to nothing.
//!
//! Core NATS only (no JetStream): an execute is answered while its caller
//! waits, so there is nothing to keep once the caller has gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::{Hub, HubError};
use crate::core::{AccountId, EventFailure};
use crate::hub::switchboard::LinkId;
use crate::protocol::hurozo::{ExecuteResponse, Registration};

/// Where registrations are broadcast.
pub const REGISTERED: &str = "nodehost.registered";

/// Where every hub says it is alive, every [`HEARTBEAT`].
pub const HUBS: &str = "nodehost.hubs";

/// How often a hub says it is alive, and a hub running a relayed event
/// says it is still working; silence for three periods is taken for gone.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// The queue group every hub answers executes in.
pub const QUEUE: &str = "nodehost-hubs";

/// How long connecting to NATS may take at start.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// More than the caller's timeout that a relayed execute is waited for:
/// the serving hub answers `timeout` itself when the caller's runs out.
const REPLY_MARGIN: Duration = Duration::from_secs(2);

/// Why the hub cannot join the cluster's NATS.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot connect to NATS at {url} (--nats): {reason}; check that nats-server is up and \
     reachable"
)]
pub struct RelayError {
    url: String,
    reason: String,
}

/// This hub's link to the others.
pub(crate) struct Relay {
    client: async_nats::Client,
    /// Tells this hub's own broadcasts from the others'.
    hub_id: String,
    /// Per (account, node) served by a worker connection here: how many
    /// connections serve it, and the task answering relayed executes.
    serving: Mutex<HashMap<(AccountId, String), Serving>>,
    /// Each worker connection's account and nodes.
    links: Mutex<HashMap<LinkId, (AccountId, Vec<String>)>>,
    /// The other hubs and when each last said it was alive.
    peers: Arc<Mutex<HashMap<String, Instant>>>,
    /// Where the answers to this hub's relayed executes arrive:
    /// `<inbox>.<n>`, one `n` per execute waiting.
    inbox: String,
    waiting: Arc<Waiting>,
}

/// The relayed executes waiting for answers, by their inbox token.
#[derive(Default)]
struct Waiting {
    next: std::sync::atomic::AtomicU64,
    by_token: Mutex<HashMap<u64, tokio::sync::mpsc::UnboundedSender<async_nats::Message>>>,
}

/// One relayed execute's answers; it stops waiting when dropped.
struct Replies {
    token: u64,
    waiting: Arc<Waiting>,
    answers: tokio::sync::mpsc::UnboundedReceiver<async_nats::Message>,
}

impl Waiting {
    fn open(self: &Arc<Self>) -> Replies {
        let token = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (sender, answers) = tokio::sync::mpsc::unbounded_channel();
        self.by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, sender);
        Replies {
            token,
            waiting: self.clone(),
            answers,
        }
    }

    /// Hands an answer to its execute, if that still waits.
    fn deliver(&self, message: async_nats::Message) {
        let token = message
            .subject
            .rsplit('.')
            .next()
            .and_then(|token| token.parse::<u64>().ok());
        let by_token = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = token.and_then(|token| by_token.get(&token)) {
            let _ = sender.send(message);
        }
    }
}

impl Drop for Replies {
    fn drop(&mut self) {
        self.waiting
            .by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.token);
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("hub_id", &self.hub_id)
            .finish_non_exhaustive()
    }
}

struct Serving {
    links: usize,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        // Dropping the subscriber unsubscribes.
        self.task.abort();
    }
}

/// A relayed execute.
#[derive(Debug, Serialize, Deserialize)]
struct Relayed {
    inputs: Map<String, Json>,
    timeout_ms: u64,
    /// The node's registered outputs, as the asking hub knows them.
    outputs: Vec<String>,
}

/// The answer to a relayed execute.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    /// The event is still running: sent every [`HEARTBEAT`] until the
    /// answer.
    Working,
    Done(ExecuteResponse),
    /// The node ran and failed with its own code.
    Failed {
        code: String,
        message: String,
    },
    /// The serving hub refused or could not deliver.
    Refused {
        code: String,
        message: String,
    },
}

/// A broadcast registration.
#[derive(Debug, Serialize, Deserialize)]
struct Registered {
    hub: String,
    account: AccountId,
    registration: Registration,
}

/// The subject the hubs serving `node` of `account` answer on: the name in
/// hex, as node names may hold characters NATS subjects may not.
fn subject(account: AccountId, node: &str) -> String {
    let hex: String = node.bytes().map(|byte| format!("{byte:02x}")).collect();
    format!("nodehost.execute.{account}.{hex}")
}

impl Relay {
    /// Connects to NATS at `url` (`nats://host:port`, several separated by
    /// commas).
    pub async fn connect(url: &str) -> Result<Self, RelayError> {
        let failed = |reason: String| RelayError {
            url: url.to_owned(),
            reason,
        };
        let client = async_nats::ConnectOptions::new()
            .name("node-host hub")
            .connection_timeout(CONNECT_WITHIN)
            .request_timeout(None)
            .connect(url)
            .await
            .map_err(|err| failed(err.to_string()))?;
        let inbox = client.new_inbox();
        Ok(Self {
            client,
            hub_id: uuid::Uuid::new_v4().to_string(),
            serving: Mutex::default(),
            links: Mutex::default(),
            peers: Arc::default(),
            inbox,
            waiting: Arc::default(),
        })
    }

    /// The hubs of the cluster that are alive, this one included.
    pub fn hubs(&self) -> usize {
        let now = Instant::now();
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        1 + peers
            .values()
            .filter(|seen| now.duration_since(**seen) < 3 * HEARTBEAT)
            .count()
    }

    /// Says this hub is alive every [`HEARTBEAT`], and counts the others
    /// that do, for as long as the hub lives.
    async fn keep_count(&self, hub: Weak<Hub>) -> Result<(), RelayError> {
        let mut heard = self
            .client
            .subscribe(HUBS)
            .await
            .map_err(|err| RelayError {
                url: "the cluster".into(),
                reason: err.to_string(),
            })?;
        let (own, peers) = (self.hub_id.clone(), self.peers.clone());
        tokio::spawn(async move {
            while let Some(message) = heard.next().await {
                let Ok(id) = std::str::from_utf8(&message.payload) else {
                    continue;
                };
                if id != own {
                    let mut peers = peers.lock().unwrap_or_else(|p| p.into_inner());
                    let now = Instant::now();
                    peers.retain(|_, seen| now.duration_since(*seen) < 10 * HEARTBEAT);
                    peers.insert(id.to_owned(), now);
                }
            }
        });
        let (client, own) = (self.client.clone(), self.hub_id.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT);
            loop {
                every.tick().await;
                if hub.strong_count() == 0 {
                    return;
                }
                // Lost while NATS is down: the others count this hub out.
                let _ = client.publish(HUBS, own.clone().into()).await;
            }
        });
        Ok(())
    }

    /// Starts taking the registrations other hubs broadcast.
    pub async fn start(&self, hub: Weak<Hub>) -> Result<(), RelayError> {
        let mut registrations =
            self.client
                .subscribe(REGISTERED)
                .await
                .map_err(|err| RelayError {
                    url: "the cluster".into(),
                    reason: err.to_string(),
                })?;
        self.keep_count(hub.clone()).await?;
        let mut answers = self
            .client
            .subscribe(format!("{}.*", self.inbox))
            .await
            .map_err(|err| RelayError {
                url: "the cluster".into(),
                reason: err.to_string(),
            })?;
        let waiting = self.waiting.clone();
        tokio::spawn(async move {
            while let Some(answer) = answers.next().await {
                waiting.deliver(answer);
            }
        });
        let own = self.hub_id.clone();
        tokio::spawn(async move {
            while let Some(message) = registrations.next().await {
                let Some(hub) = hub.upgrade() else { return };
                match serde_json::from_slice::<Registered>(&message.payload) {
                    Ok(registered) if registered.hub != own => {
                        hub.registered_elsewhere(registered.account, registered.registration);
                    }
                    Ok(_) => {}
                    Err(err) => tracing::debug!("ignored a registration broadcast: {err}"),
                }
            }
        });
        Ok(())
    }

    /// Tells the other hubs of a registration taken here.
    pub fn broadcast(&self, account: AccountId, registration: &Registration) {
        let message = Registered {
            hub: self.hub_id.clone(),
            account,
            registration: registration.clone(),
        };
        let payload = serde_json::to_vec(&message).expect("a registration serializes");
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(err) = client.publish(REGISTERED, payload.into()).await {
                tracing::warn!("cannot tell the other hubs of a registration: {err}");
            }
        });
    }

    /// A worker connection here serves `nodes` of `account`: answer the
    /// executes other hubs relay for them.
    pub fn link_up(&self, hub: Weak<Hub>, link: LinkId, account: AccountId, nodes: Vec<String>) {
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        for node in &nodes {
            if let Some(served) = serving.get_mut(&(account, node.clone())) {
                served.links += 1;
                continue;
            }
            let task = tokio::spawn(answer_relayed(
                self.client.clone(),
                hub.clone(),
                account,
                node.clone(),
            ));
            serving.insert((account, node.clone()), Serving { links: 1, task });
        }
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(link, (account, nodes));
    }

    /// The worker connection `link` is gone.
    pub fn link_down(&self, link: LinkId) {
        let Some((account, nodes)) = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&link)
        else {
            return;
        };
        let mut serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        for node in nodes {
            let key = (account, node);
            if let Some(served) = serving.get_mut(&key) {
                served.links -= 1;
                if served.links == 0 {
                    serving.remove(&key);
                }
            }
        }
    }

    /// Asks the hub that has a worker for `node` of `account` to run the
    /// event. `None` when no hub has one.
    pub async fn execute(
        &self,
        account: AccountId,
        node: &str,
        inputs: Map<String, Json>,
        outputs: &[String],
        timeout: Duration,
    ) -> Option<Result<ExecuteResponse, HubError>> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Some(Err(self.unreachable("not connected")));
        }
        let request = Relayed {
            inputs,
            timeout_ms: timeout.as_millis() as u64,
            outputs: outputs.to_vec(),
        };
        let payload = serde_json::to_vec(&request).expect("an execute serializes");
        let mut replies = self.waiting.open();
        let inbox = format!("{}.{}", self.inbox, replies.token);
        if let Err(err) = self
            .client
            .publish_with_reply(subject(account, node), inbox, payload.into())
            .await
        {
            return Some(Err(self.unreachable(&err.to_string())));
        }
        let due = tokio::time::Instant::now() + timeout + REPLY_MARGIN;
        loop {
            let silent = tokio::time::Instant::now() + 3 * HEARTBEAT;
            let reply = tokio::select! {
                reply = replies.answers.recv() => reply,
                () = tokio::time::sleep_until(silent.min(due)) => None,
            };
            let Some(reply) = reply else {
                if self.client.connection_state() != async_nats::connection::State::Connected {
                    return Some(Err(self.unreachable("the connection to NATS dropped")));
                }
                if tokio::time::Instant::now() >= due {
                    tracing::warn!(account, node, "a relayed event outlived its timeout");
                } else {
                    tracing::warn!(account, node, "the hub running a relayed event went silent");
                }
                return Some(Err(HubError::WorkerLost(node.to_owned())));
            };
            if reply.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                return None;
            }
            match serde_json::from_slice::<Answer>(&reply.payload) {
                Ok(Answer::Working) => {}
                Ok(answer) => return Some(answer.into_result(node)),
                Err(err) => {
                    return Some(Err(HubError::internal(format!(
                        "another hub answered a relayed execute with something else: {err}"
                    ))));
                }
            }
        }
    }
}

impl Answer {
    /// What the asking hub answers its caller.
    fn into_result(self, node: &str) -> Result<ExecuteResponse, HubError> {
        match self {
            Answer::Done(response) => Ok(response),
            Answer::Failed { code, message } => Err(HubError::NodeFailed {
                node: node.to_owned(),
                failure: EventFailure::new(&code, message),
            }),
            Answer::Refused { code, message } => Err(HubError::Relayed { code, message }),
            Answer::Working => Err(HubError::internal("a relayed execute is still running")),
        }
    }
}

impl Relay {
    /// The error of an execute that NATS cannot carry now.
    fn unreachable(&self, why: &str) -> HubError {
        HubError::Unavailable(format!(
            "this hub cannot reach the other hubs of its cluster over NATS ({why}); it \
             reconnects by itself: retry shortly"
        ))
    }
}

/// Answers the executes other hubs relay for `node` of `account`, each on
/// a task of its own, until the subscription is dropped.
async fn answer_relayed(
    client: async_nats::Client,
    hub: Weak<Hub>,
    account: AccountId,
    node: String,
) {
    let mut requests = match client
        .queue_subscribe(subject(account, &node), QUEUE.into())
        .await
    {
        Ok(requests) => requests,
        Err(err) => {
            tracing::error!(account, node, "cannot answer executes of other hubs: {err}");
            return;
        }
    };
    while let Some(message) = requests.next().await {
        let (Some(reply), Some(hub)) = (message.reply, hub.upgrade()) else {
            continue;
        };
        let (client, node) = (client.clone(), node.clone());
        tokio::spawn(async move {
            let answer = match serde_json::from_slice::<Relayed>(&message.payload) {
                Ok(request) => {
                    let timeout = Duration::from_millis(request.timeout_ms);
                    let uuid = uuid::Uuid::new_v4().to_string();
                    let (inputs, outputs) = (request.inputs, &request.outputs);
                    let run = hub.execute_here(account, &node, inputs, outputs, timeout, &uuid);
                    let done = still_working(&client, &reply, run).await;
                    match done {
                        Ok(response) => Answer::Done(response),
                        Err(HubError::NodeFailed { failure, .. }) => Answer::Failed {
                            code: failure.code,
                            message: failure.message,
                        },
                        Err(err) => Answer::Refused {
                            code: err.code().to_owned(),
                            message: err.to_string(),
                        },
                    }
                }
                Err(err) => Answer::Refused {
                    code: "invalid_request".into(),
                    message: format!("a relayed execute that is not one: {err}"),
                },
            };
            let payload = serde_json::to_vec(&answer).expect("an answer serializes");
            if let Err(err) = client.publish(reply, payload.into()).await {
                tracing::warn!(account, node, "cannot answer a relayed execute: {err}");
            }
        });
    }
}

/// Runs `run`, saying `working` on `reply` every [`HEARTBEAT`] until it
/// is done.
async fn still_working<T>(
    client: &async_nats::Client,
    reply: &async_nats::Subject,
    run: impl std::future::Future<Output = T>,
) -> T {
    let working = bytes::Bytes::from(serde_json::to_vec(&Answer::Working).expect("serializes"));
    let mut run = std::pin::pin!(run);
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        tokio::select! {
            done = &mut run => return done,
            _ = every.tick() => {
                let _ = client.publish(reply.clone(), working.clone()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_hold_any_node_name() {
        assert_eq!(subject(7, "a.b *>"), "nodehost.execute.7.612e62202a3e");
        assert_ne!(subject(1, "x"), subject(2, "x"));
    }
}
