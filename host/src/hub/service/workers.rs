//! Hurozo's half of the hub: registrations, the listing, executes routed to
//! the workers that registered a node, and those workers' connections.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value as Json;

use super::{Hub, HubError, require_write};
use crate::core::{self, AccountId};
use crate::hub::registry::MAX_REGISTRATIONS;
use crate::hub::store::{Caller, TokenId, TokenKind};
use crate::hub::switchboard::{Answer, DispatchError, LinkId};
use crate::hub::ws_token::WsClaims;
use crate::protocol::hurozo::{
    Event, ExecuteRequest, ExecuteResponse, ListedNode, NodeList, Registered, Registration,
};
use crate::sandbox::value::inputs_from_json;

/// How long an execute waits for the worker's reply when the caller does not
/// say: Hurozo's 600 s, which is also the most a caller may ask for.
pub const EXECUTE_TIMEOUT: Duration = Duration::from_secs(600);

/// Worker connections one account may hold open.
pub const MAX_CONNECTIONS_PER_ACCOUNT: usize = 1_000;

/// What a worker's connect URL proves.
#[derive(Debug)]
pub struct WorkerClaims {
    /// The account the connection belongs to.
    pub account: AccountId,
    /// The API token that registered, checked again while it is open.
    pub api_token: TokenId,
    /// The nodes the connection serves.
    pub nodes: HashSet<String>,
}

impl Hub {
    /// Records (or refreshes) a worker's node and answers with the
    /// WebSocket URL and a token for it. `host` is the `Host` the request
    /// came to, for the URL when no public one is set.
    pub(crate) fn register(
        &self,
        caller: &Caller,
        registration: Registration,
        host: Option<&str>,
    ) -> Result<Registered, HubError> {
        require_write(caller)?;
        registration
            .validate()
            .map_err(|message| HubError::InvalidRequest(message.to_owned()))?;
        if self
            .catalog
            .get(caller.account, &registration.name)
            .is_some()
        {
            return Err(HubError::NameTaken(registration.name));
        }
        let websocket_url = self
            .public_ws_url
            .clone()
            .unwrap_or_else(|| format!("ws://{}/ws", host.unwrap_or("127.0.0.1")));
        let token = self.signer.issue(
            &WsClaims {
                account: caller.account,
                api_token: caller.token,
                node: registration.name.clone(),
            },
            SystemTime::now(),
        );
        let reply = Registered {
            status: "registered".into(),
            websocket_url,
            token,
            inputs: registration.inputs.clone(),
            outputs: registration.outputs.clone(),
        };
        let name = registration.name.clone();
        if let Some(relay) = &self.relay {
            relay.broadcast(caller.account, &registration);
        }
        self.registry()
            .register(
                caller.account,
                registration,
                Instant::now(),
                MAX_REGISTRATIONS,
            )
            .map_err(|held| {
                HubError::AccountLimit(format!(
                    "this account has {held} live registrations, as many as it may; a \
                     registration lapses 10 minutes after its last refresh, so stop the \
                     workers of nodes no longer needed"
                ))
            })?;
        tracing::info!(account = %caller.account_name, node = %name, "registered");
        Ok(reply)
    }

    /// A registration another hub of the cluster took: known here too, so
    /// that this hub lists the node and relays its executes.
    pub(super) fn registered_elsewhere(&self, account: AccountId, registration: Registration) {
        let name = registration.name.clone();
        let taken =
            self.registry()
                .register(account, registration, Instant::now(), MAX_REGISTRATIONS);
        if taken.is_err() {
            tracing::debug!(account, node = %name, "a registration of another hub is beyond the account's limit here");
        }
    }

    /// The account's nodes: those its workers registered and those it
    /// uploaded, by name.
    pub(crate) fn list_nodes(&self, caller: &Caller) -> NodeList {
        let mut nodes = self.registry().list(caller.account, Instant::now());
        for uploaded in self.catalog.list(caller.account) {
            let info = uploaded.component.info();
            let names =
                |ports: &[crate::sandbox::Port]| ports.iter().map(|p| p.name.clone()).collect();
            nodes.push(ListedNode {
                name: info.name.clone(),
                inputs: names(&info.inputs),
                outputs: names(&info.outputs),
            });
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        NodeList { nodes }
    }

    /// Runs one event of the account's node `name`: an uploaded node on the
    /// hub's runner (or a hosted worker), a registered one on the least busy
    /// worker that serves it. Outputs come in the node's declared order,
    /// missing ones null.
    pub(crate) async fn execute(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
        request: ExecuteRequest,
    ) -> Result<ExecuteResponse, HubError> {
        let started = Instant::now();
        let uuid = uuid::Uuid::new_v4().to_string();
        let (ran_here, answer) = self.execute_as(caller, name, request, &uuid).await;
        // The history keeps events of this account's nodes only: a name
        // that is nobody's is not an event.
        if !matches!(
            answer,
            Err(HubError::UnknownNode(_) | HubError::InvalidRequest(_))
        ) {
            let uuid = answer
                .as_ref()
                .map_or(uuid.as_str(), |answer| answer.uuid.as_str());
            let answered = answer.as_ref().map(|_| ());
            self.record_answer(caller, name, uuid, started, answered, ran_here);
        }
        answer
    }

    /// [`execute`](Self::execute) as the event `uuid` (a relayed one gets
    /// the uuid of the hub that runs it); true beside the answer when the
    /// event was an uploaded node's, whose run the hub records too.
    async fn execute_as(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
        request: ExecuteRequest,
        uuid: &str,
    ) -> (bool, Result<ExecuteResponse, HubError>) {
        let timeout = match request.timeout_ms {
            None => EXECUTE_TIMEOUT,
            Some(0) => {
                let refusal = HubError::InvalidRequest("timeout_ms must be at least 1".into());
                return (false, Err(refusal));
            }
            Some(ms) => Duration::from_millis(ms).min(EXECUTE_TIMEOUT),
        };
        let deadline = Instant::now() + timeout;
        if let Some(node) = self.node_when_loaded(caller.account, name, deadline).await {
            let event = core::Event {
                id: uuid.to_owned(),
                account: caller.account,
                node: name.to_owned(),
                inputs: inputs_from_json(request.inputs),
                deadline: Some(deadline),
            };
            return (true, self.execute_uploaded(node, event, timeout).await);
        }
        (
            false,
            self.execute_registered(caller, name, request, timeout, uuid)
                .await,
        )
    }

    /// Runs the event on a worker that registered the node.
    async fn execute_registered(
        &self,
        caller: &Caller,
        name: &str,
        request: ExecuteRequest,
        timeout: Duration,
        uuid: &str,
    ) -> Result<ExecuteResponse, HubError> {
        let outputs = self
            .registry()
            .get(caller.account, name, Instant::now())
            .map(|registration| registration.outputs.clone())
            .ok_or_else(|| {
                HubError::UnknownNode(format!(
                    "unknown node `{name}`: this account has not uploaded it and no worker of \
                     the account has registered it in the last 10 minutes (upload it with \
                     `node-host upload`, or serve it with `node-host run`)"
                ))
            })?;
        self.execute_on_worker(
            caller.account,
            name,
            request.inputs,
            &outputs,
            timeout,
            uuid,
        )
        .await
    }

    /// Runs the event on a worker of this hub, else (in a cluster) on one
    /// of another hub's.
    async fn execute_on_worker(
        &self,
        account: AccountId,
        name: &str,
        inputs: serde_json::Map<String, Json>,
        outputs: &[String],
        timeout: Duration,
        uuid: &str,
    ) -> Result<ExecuteResponse, HubError> {
        let Some(relay) = &self.relay else {
            return self
                .execute_here(account, name, inputs, outputs, timeout, uuid)
                .await;
        };
        if self.switchboard.serving(account, name) > 0 {
            let here = self
                .execute_here(account, name, inputs.clone(), outputs, timeout, uuid)
                .await;
            if !matches!(here, Err(HubError::NoWorker(_))) {
                return here;
            }
        }
        let relayed = relay.execute(account, name, inputs, outputs, timeout).await;
        relayed.unwrap_or_else(|| Err(HubError::NoWorker(name.to_owned())))
    }

    /// Runs the event on a worker connected to this hub.
    pub(super) async fn execute_here(
        &self,
        account: AccountId,
        name: &str,
        inputs: serde_json::Map<String, Json>,
        outputs: &[String],
        timeout: Duration,
        uuid: &str,
    ) -> Result<ExecuteResponse, HubError> {
        // The wait for the worker's reply, in the event's trace, which the
        // worker continues.
        let span =
            tracing::info_span!(target: crate::telemetry::TARGET, "worker", node = %name, uuid);
        let event = Event {
            kind: Some("remote_node".into()),
            node: name.to_owned(),
            inputs,
            uuid: Json::String(uuid.to_owned()),
            traceparent: crate::telemetry::traceparent(&span),
        };
        let _entered = span.enter();
        // Both given back if the caller goes away while it waits.
        let counted = self.metrics.start(name);
        let mut waiter = match self.switchboard.dispatch(account, &event) {
            Ok(waiter) => waiter,
            Err(err) => {
                let err = match err {
                    DispatchError::NoWorker => HubError::NoWorker(name.to_owned()),
                    DispatchError::Busy => HubError::Busy,
                };
                counted.finish(err.code(), 0);
                return Err(err);
            }
        };
        let answer = tokio::time::timeout(timeout, waiter.answer()).await;
        let answered = match answer {
            Ok(Answer::Reply(reply, _)) => match reply.error {
                Some(error) => Err(HubError::NodeFailed {
                    node: name.to_owned(),
                    failure: core::EventFailure::new(&error.code, error.message),
                }),
                None => Ok(ExecuteResponse::ordered(name, uuid, outputs, reply.outputs)),
            },
            Ok(Answer::WorkerLost) => Err(HubError::WorkerLost(name.to_owned())),
            Err(_elapsed) => Err(HubError::Timeout {
                node: name.to_owned(),
                what: "reply",
                ms: timeout.as_millis(),
            }),
        };
        counted.finish(answered.as_ref().err().map_or("ok", HubError::code), 0);
        answered
    }

    /// Events of `account` sent to its workers and waiting for a reply.
    #[cfg(test)]
    pub(crate) fn pending_events(&self, account: AccountId) -> usize {
        self.switchboard.pending_of(account)
    }

    /// Lets a worker connect: checks the token of its connect URL, and that
    /// the API token which registered is still valid, and answers what the
    /// connection is.
    pub(crate) async fn accept_worker(
        &self,
        query: Option<&str>,
    ) -> Result<WorkerClaims, HubError> {
        let (token, mut nodes) = parse_ws_query(query);
        let token = token.ok_or_else(|| {
            HubError::InvalidWsToken(
                "connect with ?auth=<token>, the token from POST /api/remote_nodes/register".into(),
            )
        })?;
        let claims = self
            .signer
            .verify(&token, SystemTime::now())
            .map_err(|err| HubError::InvalidWsToken(err.to_string()))?;
        let open = self.switchboard.links_of(claims.account);
        if open >= MAX_CONNECTIONS_PER_ACCOUNT {
            return Err(HubError::AccountLimit(format!(
                "this account has {open} worker connections open, as many as it may; close \
                 some (one `node-host run` serves many nodes on one connection)"
            )));
        }
        if !self.token_live(TokenKind::Api, claims.api_token).await {
            return Err(HubError::InvalidWsToken(
                "the API token that registered was revoked or has expired; \
                 register again with a valid token"
                    .into(),
            ));
        }
        nodes.insert(claims.node);
        Ok(WorkerClaims {
            account: claims.account,
            api_token: claims.api_token,
            nodes,
        })
    }

    /// A worker connection of `account` serving `nodes` is up: events for
    /// it arrive on the returned receiver as JSON text.
    pub(crate) fn worker_connected(
        self: &Arc<Self>,
        account: AccountId,
        nodes: HashSet<String>,
    ) -> (LinkId, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let served: Vec<String> = match self.relay {
            Some(_) => nodes.iter().cloned().collect(),
            None => Vec::new(),
        };
        let (link, outbox) = self.switchboard.connect(account, nodes);
        if let Some(relay) = &self.relay {
            relay.link_up(Arc::downgrade(self), link, account, served);
        }
        self.metrics.connections(1);
        tracing::info!(link, account, "worker connected");
        (link, outbox)
    }

    /// A text frame from the worker connection `link`: a reply.
    pub(crate) fn worker_frame(&self, link: LinkId, text: &str) {
        match serde_json::from_str(text) {
            Ok(reply) => {
                if !self.switchboard.answer(link, reply) {
                    tracing::debug!(link, "ignored a reply with an unknown uuid");
                }
            }
            Err(err) => tracing::debug!(link, "ignored a frame that is not a reply: {err}"),
        }
    }

    /// The connection `link` (a worker's, `kind` says which) is gone: the
    /// callers of its events are told at once.
    pub(crate) fn disconnected(&self, link: LinkId, kind: &'static str) {
        self.switchboard.disconnect(link);
        if let Some(relay) = &self.relay {
            relay.link_down(link);
        }
        self.metrics.connections(-1);
        tracing::info!(link, "{kind} disconnected");
    }
}

/// What a worker's connect URL says: the token, and (a node-host extension)
/// more nodes the connection serves besides the token's own.
fn parse_ws_query(query: Option<&str>) -> (Option<String>, HashSet<String>) {
    let mut token = None;
    let mut nodes = HashSet::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "auth" => token = Some(value.into_owned()),
            "node" => {
                nodes.insert(value.into_owned());
            }
            _ => {}
        }
    }
    (token, nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_query_takes_the_token_and_extra_nodes() {
        let (token, nodes) = parse_ws_query(Some("auth=a%2Bb%3D&node=hello&node=echo&x=1"));
        assert_eq!(token.as_deref(), Some("a+b="));
        assert_eq!(nodes.len(), 2);
        assert!(nodes.contains("echo"));
        assert_eq!(parse_ws_query(None).0, None);
    }
}
