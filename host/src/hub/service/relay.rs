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
//!   takes it says so at once (`taken`), then answers; every hub says it is
//!   alive on [`HUBS`] every 2 s, so a taker that dies mid-event fails its
//!   event with `worker_lost` within about 8 s, not at the caller's
//!   timeout.
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

/// How often a hub says it is alive; one silent for three periods is taken
/// for gone.
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
    /// Sent first: the hub `hub` took the event.
    Taken {
        hub: String,
    },
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
        Ok(Self {
            client,
            hub_id: uuid::Uuid::new_v4().to_string(),
            serving: Mutex::default(),
            links: Mutex::default(),
            peers: Arc::default(),
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
                self.hub_id.clone(),
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
        // An inbox of our own rather than a plain request: the hub that
        // takes the event says so first, then answers, and a taker that
        // stops saying it is alive fails the event here long before its
        // timeout.
        let inbox = self.client.new_inbox();
        let mut replies = match self.client.subscribe(inbox.clone()).await {
            Ok(replies) => replies,
            Err(err) => return Some(Err(self.unreachable(&err.to_string()))),
        };
        if let Err(err) = self
            .client
            .publish_with_reply(subject(account, node), inbox, payload.into())
            .await
        {
            return Some(Err(self.unreachable(&err.to_string())));
        }
        let due = tokio::time::Instant::now() + timeout + REPLY_MARGIN;
        let mut check = tokio::time::interval(HEARTBEAT);
        // The hub that took the event, and when it said so.
        let mut taker: Option<(String, Instant)> = None;
        let lost = || Some(Err(HubError::WorkerLost(node.to_owned())));
        loop {
            tokio::select! {
                reply = replies.next() => {
                    let Some(reply) = reply else {
                        return Some(Err(self.unreachable("the reply inbox closed")));
                    };
                    if reply.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                        return None;
                    }
                    match serde_json::from_slice::<Answer>(&reply.payload) {
                        Ok(Answer::Taken { hub }) => taker = Some((hub, Instant::now())),
                        Ok(answer) => return Some(answer.into_result(node)),
                        Err(err) => return Some(Err(HubError::internal(format!(
                            "another hub answered a relayed execute with something else: {err}"
                        )))),
                    }
                }
                _ = check.tick() => {
                    if self.client.connection_state() != async_nats::connection::State::Connected {
                        return Some(Err(self.unreachable("the connection to NATS dropped")));
                    }
                    if taker.as_ref().is_some_and(|(hub, since)| !self.alive(hub, *since)) {
                        tracing::warn!(account, node, "the hub running a relayed event is gone");
                        return lost();
                    }
                }
                () = tokio::time::sleep_until(due) => return lost(),
            }
        }
    }

    /// Whether the hub `id`, which took an event at `since`, said it was
    /// alive lately: a hub just started may not have been heard yet, so
    /// `since` counts as a sign of life too (this hub always is alive).
    fn alive(&self, id: &str, since: Instant) -> bool {
        if id == self.hub_id {
            return true;
        }
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let seen = peers.get(id).map_or(since, |seen| (*seen).max(since));
        seen.elapsed() < 3 * HEARTBEAT
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
            Answer::Taken { .. } => Err(HubError::internal("a relayed execute was taken twice")),
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
    own: String,
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
        let taken =
            serde_json::to_vec(&Answer::Taken { hub: own.clone() }).expect("an answer serializes");
        tokio::spawn(async move {
            let _ = client.publish(reply.clone(), taken.into()).await;
            let answer = match serde_json::from_slice::<Relayed>(&message.payload) {
                Ok(request) => {
                    let timeout = Duration::from_millis(request.timeout_ms);
                    let done = hub
                        .execute_here(account, &node, request.inputs, &request.outputs, timeout)
                        .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_hold_any_node_name() {
        assert_eq!(subject(7, "a.b *>"), "nodehost.execute.7.612e62202a3e");
        assert_ne!(subject(1, "x"), subject(2, "x"));
    }
}
