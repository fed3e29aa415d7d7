//! The hub's side of hosted workers (`node-host run --hosted`), in the
//! protocol of [`crate::protocol::hosted`]: the component download, the
//! worker WebSocket, and sending a hosted node's event to a worker.
//!
//! Hosted workers sit in the switchboard as connections of a pseudo-account,
//! [`HOSTED_POOL`], serving the sha256 of each component they have ready;
//! the switchboard then routes each event to the least busy of them and
//! fails its caller at once when a worker goes. Such an event then runs in
//! the hub: a node has no effects outside its sandbox, so running it again
//! is safe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::{Failure, internal, pump};
use super::hosted::HostedNode;
use super::switchboard::Answer;
use super::{HubState, uploads};
use crate::protocol::hosted::{EventLimits, FromWorker, HostedEvent, ToWorker};
use crate::protocol::hurozo::{Event, Reply, errors};

/// The switchboard account of hosted workers. Real accounts start at 1.
pub const HOSTED_POOL: i64 = 0;

/// Refuses a request without a valid hosted-worker token.
fn authenticate_worker(state: &HubState, headers: &HeaderMap) -> Result<(), Failure> {
    let token = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            Failure::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                errors::MISSING_AUTH,
            )
        })?
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if state.store().is_worker_token(token).map_err(internal)? {
        return Ok(());
    }
    Err(Failure::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "invalid worker token: hosted workers need a token from \
         `node-host hub worker-token create` (an account's API token is not one)",
    ))
}

/// `GET /api/hosted/components/{sha256}`: a component some account uses.
pub(super) async fn component(
    State(state): State<Arc<HubState>>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    authenticate_worker(&state, &headers)?;
    if !state.hosted.in_use(&sha256) {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "unknown_component",
            format!("no uploaded node uses the component {sha256}"),
        ));
    }
    let read = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.hosted.blobs().get(&sha256)).await
    };
    let bytes = read
        .map_err(internal)?
        .map_err(|err| internal(format!("cannot read the component: {err}")))?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes).into_response())
}

/// `GET /api/hosted/ws`: a hosted worker's connection.
pub(super) async fn websocket(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Failure> {
    authenticate_worker(&state, &headers)?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        let (link, outbox) = state.switchboard.connect(HOSTED_POOL, Default::default());
        state.metrics.connections(1);
        tracing::info!(link, "hosted worker connected");
        let components = ToWorker::Components {
            sha256: state.hosted.components(),
        };
        let hello = serde_json::to_string(&components).expect("frames serialize");
        pump(
            socket,
            outbox,
            Some(hello),
            |text| match serde_json::from_str(text) {
                Ok(FromWorker::Ready { sha256 }) => {
                    if state.hosted.in_use(&sha256) {
                        state.switchboard.serve_more(link, &sha256);
                    }
                }
                Ok(FromWorker::Refused { sha256, message }) => {
                    tracing::warn!(
                        link,
                        sha256,
                        "a hosted worker cannot run a component: {message}"
                    );
                }
                Ok(FromWorker::Reply(hosted)) => {
                    if !state
                        .switchboard
                        .answer_with_logs(link, hosted.reply, Some(hosted.logs))
                    {
                        tracing::debug!(link, "ignored a reply with an unknown uuid");
                    }
                }
                Err(err) => tracing::debug!(link, "ignored a frame from a hosted worker: {err}"),
            },
        )
        .await;
        state.switchboard.disconnect(link);
        state.metrics.connections(-1);
        tracing::info!(link, "hosted worker disconnected");
    }))
}

/// Tells the hosted workers to get a newly installed component ready.
pub(super) fn announce(state: &HubState, sha256: &str) {
    let frame = ToWorker::Components {
        sha256: vec![sha256.to_owned()],
    };
    let text = serde_json::to_string(&frame).expect("frames serialize");
    state.switchboard.broadcast(HOSTED_POOL, &text);
}

/// Tells the hosted workers that no node uses a component any more.
pub(super) fn withdraw(state: &HubState, sha256: &str) {
    state.switchboard.stop_serving(HOSTED_POOL, sha256);
    let frame = ToWorker::Forget {
        sha256: sha256.to_owned(),
    };
    let text = serde_json::to_string(&frame).expect("frames serialize");
    state.switchboard.broadcast(HOSTED_POOL, &text);
}

/// Hosted workers that have the component ready.
pub(super) fn workers_ready(state: &HubState, sha256: &str) -> usize {
    state.switchboard.serving(HOSTED_POOL, sha256)
}

/// Forgets the event in the switchboard when its caller stops waiting.
struct Waiting<'a> {
    state: &'a HubState,
    uuid: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.state.switchboard.abandon(&self.uuid);
    }
}

/// Runs `event` on the least busy hosted worker that has the component
/// ready. `None` when there is none, or when the worker went before it
/// replied: the caller then runs the event in the hub.
pub(super) async fn run_remotely(
    state: &HubState,
    account: i64,
    node: &HostedNode,
    event: &Event,
    limits: EventLimits,
    secrets: &HashMap<String, String>,
) -> Option<Reply> {
    let uuid = event.uuid.as_str()?.to_owned();
    let frame = ToWorker::Event(Box::new(HostedEvent {
        uuid: uuid.clone(),
        node: event.node.clone(),
        sha256: node.record.sha256.clone(),
        inputs: event.inputs.clone(),
        limits,
        secrets: secrets.clone(),
    }));
    let text = serde_json::to_string(&frame).expect("frames serialize");
    let waiter = state
        .switchboard
        .dispatch_text(HOSTED_POOL, &node.record.sha256, &uuid, text)
        .ok()?;
    let _waiting = Waiting { state, uuid };
    let started = Instant::now();
    state.metrics.started();
    match waiter.await {
        Ok(Answer::Reply(reply, logs)) => {
            let logs = logs.map(|logs| *logs).unwrap_or_default();
            uploads::record_logs(state, account, &event.node, &reply, logs);
            let label = reply
                .error
                .as_ref()
                .map_or("ok", |error| error.code.as_str());
            state
                .metrics
                .finished(&event.node, label, started.elapsed(), 0);
            Some(*reply)
        }
        Ok(Answer::WorkerLost) | Err(_) => {
            state
                .metrics
                .finished(&event.node, "worker_lost", started.elapsed(), 0);
            tracing::warn!(node = %event.node, "a hosted worker went during an event; running it in the hub");
            None
        }
    }
}
