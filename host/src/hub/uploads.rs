//! The hosted-node API: `POST /api/nodes` (upload), `GET /api/nodes`,
//! `GET /api/nodes/{name}`, `DELETE /api/nodes/{name}`,
//! `GET /api/uploads/{sha256}`, and running a hosted node's event.
//!
//! An upload is checked before it is accepted: its size, that it is a
//! component, then (compiling) that it exports the node world, imports only
//! what the host grants and has valid info. A small component answers
//! `ready` at once; a big one answers `compiling` with a status URL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::HubState;
use super::api::{Failure, authenticate, internal, require_write};
use super::hosted::{
    AccountLimits, COMPILE_TIME_LIMIT, HostedNode, LoggedEvent, MAX_UPLOAD_BYTES, UploadStatus,
};
use super::hosted_api;
use super::secrets_api::declared_secrets;
use super::store::{UploadedNode, unix_seconds};
use crate::protocol::hosted::{EventLimits, EventLogs};
use crate::protocol::hurozo::{Event, Reply};
use crate::sandbox::value::inputs_from_json;
use crate::sandbox::{LoadError, file_kind, sha256_hex};

/// `POST /api/nodes`: the body is the component.
pub(super) async fn upload(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let caller = authenticate(&state, &headers)?;
    require_write(&caller)?;
    let bytes = axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| {
            Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the component is larger than the hub accepts ({} MiB); \
                     shrink it (strip debug info, build in release mode)",
                    MAX_UPLOAD_BYTES >> 20
                ),
            )
        })?;
    file_kind(&bytes).map_err(refused)?;
    let sha256 = sha256_hex(&bytes);
    let account = caller.account;
    let already = state
        .hosted
        .set_upload_status(account, &sha256, UploadStatus::Compiling);
    if already == Some(UploadStatus::Compiling) {
        // The same component is being compiled for this account: wait for it.
        return Ok(wait_and_answer(&state, account, &sha256, None).await);
    }
    let stored = {
        let state = state.clone();
        let sha256 = sha256.clone();
        let bytes = bytes.clone();
        tokio::task::spawn_blocking(move || state.hosted.blobs().put(&sha256, &bytes)).await
    };
    if let Err(err) = stored
        .map_err(std::io::Error::other)
        .and_then(|stored| stored)
    {
        state.hosted.set_upload_status(
            account,
            &sha256,
            UploadStatus::Failed("internal".into(), err.to_string()),
        );
        return Err(internal(format!("cannot store the component: {err}")));
    }
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let task_state = state.clone();
    let task_sha = sha256.clone();
    tokio::spawn(async move {
        let status = compile_and_install(&task_state, account, &task_sha, bytes).await;
        if let UploadStatus::Failed(code, message) = &status {
            tracing::info!(account, sha256 = %task_sha, code, "upload refused: {message}");
        }
        task_state
            .hosted
            .set_upload_status(account, &task_sha, status);
        let _ = done_tx.send(());
    });
    Ok(wait_and_answer(&state, account, &sha256, Some(done)).await)
}

/// Waits up to the hub's upload wait for the upload to settle, then answers
/// with where it stands.
async fn wait_and_answer(
    state: &HubState,
    account: i64,
    sha256: &str,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Response {
    match done {
        Some(done) => {
            let _ = tokio::time::timeout(state.upload_wait, done).await;
        }
        None => {
            let until = Instant::now() + state.upload_wait;
            while Instant::now() < until
                && state.hosted.upload_status(account, sha256) == Some(UploadStatus::Compiling)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    status_response(state, account, sha256, true)
}

/// The answer for an upload: 201 `ready` with the node, 202 `compiling`
/// with the status URL, or the refusal as a 422 JSON error.
fn status_response(state: &HubState, account: i64, sha256: &str, created: bool) -> Response {
    let status_url = format!("/api/uploads/{sha256}");
    match state.hosted.upload_status(account, sha256) {
        None | Some(UploadStatus::Compiling) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "status": "compiling",
                "sha256": sha256,
                "status_url": status_url,
            })),
        )
            .into_response(),
        Some(UploadStatus::Ready(name)) => match state.hosted.get(account, &name) {
            Some(node) => (
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                axum::Json(json!({"status": "ready", "node": node.to_json()})),
            )
                .into_response(),
            // Installed, then replaced or deleted since.
            None => (
                StatusCode::OK,
                axum::Json(json!({"status": "ready", "sha256": sha256, "node": null})),
            )
                .into_response(),
        },
        Some(UploadStatus::Failed(code, message)) => {
            let mut response =
                Failure::new(StatusCode::UNPROCESSABLE_ENTITY, &code, message).into_response();
            if !created {
                // The status of a failed upload is itself a successful answer.
                *response.status_mut() = StatusCode::OK;
            }
            response
        }
    }
}

/// Compiles (within [`COMPILE_TIME_LIMIT`]) and, when the component is a
/// valid node, records and installs it.
async fn compile_and_install(
    state: &Arc<HubState>,
    account: i64,
    sha256: &str,
    bytes: axum::body::Bytes,
) -> UploadStatus {
    let size = bytes.len() as u64;
    let loading = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.hosted.load(&bytes))
    };
    let component = match tokio::time::timeout(COMPILE_TIME_LIMIT, loading).await {
        Err(_) => {
            return UploadStatus::Failed(
                "compile_timeout".into(),
                format!(
                    "the component did not compile within {} s",
                    COMPILE_TIME_LIMIT.as_secs()
                ),
            );
        }
        Ok(Err(err)) => return UploadStatus::Failed("internal".into(), err.to_string()),
        Ok(Ok(Err(err))) => return UploadStatus::Failed(err.code().into(), err.to_string()),
        Ok(Ok(Ok((component, _)))) => component,
    };
    let name = component.name().to_owned();
    if state
        .registry()
        .get(account, &name, Instant::now())
        .is_some()
    {
        return UploadStatus::Failed(
            "name_taken".into(),
            format!(
                "a worker of this account serves a node named `{name}` (node-host run); stop it, \
                 or give the uploaded node another name"
            ),
        );
    }
    let record = UploadedNode {
        name: name.clone(),
        sha256: sha256.to_owned(),
        size,
        uploaded_at: unix_seconds(),
    };
    if let Err(err) = state.store().put_uploaded(account, &record) {
        return UploadStatus::Failed("internal".into(), err.to_string());
    }
    let replaced = state.hosted.install(
        account,
        HostedNode {
            component: Arc::new(component),
            record,
        },
    );
    hosted_api::announce(state, sha256);
    if let Some(old) = replaced {
        tracing::info!(account, node = %name, old = %old.record.sha256, new = %sha256, "replaced an uploaded node");
        if old.record.sha256 != sha256 {
            forget_component(state, &old.record.sha256);
        }
    } else {
        tracing::info!(account, node = %name, sha256, "installed an uploaded node");
    }
    UploadStatus::Ready(name)
}

/// Removes a component file nothing uses any more.
fn forget_component(state: &HubState, sha256: &str) {
    let used = state.hosted.in_use(sha256) || state.store().sha256_in_use(sha256).unwrap_or(true);
    if !used {
        hosted_api::withdraw(state, sha256);
        state.hosted.blobs().remove(sha256);
        state.hosted.forget_compiled(sha256);
    }
}

fn refused(err: LoadError) -> Failure {
    Failure::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        err.code(),
        err.to_string(),
    )
}

fn unknown(name: &str) -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "unknown_node",
        format!("this account has no uploaded node `{name}` (upload it with `node-host upload`)"),
    )
}

/// `GET /api/uploads/{sha256}`.
pub(super) async fn upload_status(
    State(state): State<Arc<HubState>>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let caller = authenticate(&state, &headers)?;
    if state
        .hosted
        .upload_status(caller.account, &sha256)
        .is_none()
    {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "unknown_upload",
            format!("this account has no upload with sha256 {sha256}"),
        ));
    }
    Ok(status_response(&state, caller.account, &sha256, false))
}

/// `GET /api/nodes`.
pub(super) async fn list(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
) -> Result<axum::Json<Json>, Failure> {
    let caller = authenticate(&state, &headers)?;
    let nodes: Vec<Json> = state
        .hosted
        .list(caller.account)
        .iter()
        .map(|node| node.to_json())
        .collect();
    Ok(axum::Json(json!({ "nodes": nodes })))
}

/// `GET /api/nodes/{name}`: the node and the limits its events run under.
pub(super) async fn show(
    State(state): State<Arc<HubState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<Json>, Failure> {
    let caller = authenticate(&state, &headers)?;
    let node = state
        .hosted
        .get(caller.account, &name)
        .ok_or_else(|| unknown(&name))?;
    let limits = account_limits(&state, caller.account)?;
    let mut shown = node.to_json();
    shown["limits"] = limits.to_json();
    shown["hosted_workers"] = hosted_api::workers_ready(&state, &node.record.sha256).into();
    let (running, waiting) = state.hosted.lane_load(caller.account);
    shown["lane"] = json!({"running": running, "waiting": waiting});
    Ok(axum::Json(shown))
}

/// `DELETE /api/nodes/{name}`: events in flight finish; new ones get 404.
pub(super) async fn delete(
    State(state): State<Arc<HubState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<Json>, Failure> {
    let caller = authenticate(&state, &headers)?;
    require_write(&caller)?;
    let removed = state
        .hosted
        .remove(caller.account, &name)
        .ok_or_else(|| unknown(&name))?;
    state
        .store()
        .delete_uploaded(caller.account, &name)
        .map_err(internal)?;
    forget_component(&state, &removed.record.sha256);
    state.hosted.forget_logs(caller.account, &name);
    tracing::info!(account = %caller.account_name, node = %name, "deleted an uploaded node");
    Ok(axum::Json(json!({"deleted": name})))
}

fn account_limits(state: &HubState, account: i64) -> Result<AccountLimits, Failure> {
    let settings = state.store().limits(account).map_err(internal)?;
    Ok(AccountLimits::from_settings(&settings))
}

/// Runs one event of a hosted node under the account's limits: waits for a
/// place in the account's lane (or is refused with 429), then sends the
/// event to a hosted worker that has the component ready, or else runs it
/// in a fresh sandbox on an event thread no other event is using (a long
/// event lowers its thread's priority for good, and the thread ends with
/// it). The reply has the same shape a remote worker's would.
pub(super) async fn execute_hosted(
    state: &Arc<HubState>,
    account: i64,
    node: Arc<HostedNode>,
    event: Event,
) -> Result<Reply, Failure> {
    let limits = account_limits(state, account)?;
    let secrets = declared_secrets(state, account, node.component.info())?;
    let permit = state.hosted.admit(account, &limits).await.map_err(|full| {
        Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            full.to_string(),
        )
    })?;
    let wire_limits = EventLimits::of(&limits.event);
    if let Some(reply) =
        hosted_api::run_remotely(state, account, &node, &event, wire_limits, &secrets).await
    {
        return Ok(reply);
    }
    let metrics = state.metrics.clone();
    let (reply_tx, reply) = tokio::sync::oneshot::channel();
    let node_name = event.node.clone();
    state.metrics.started();
    let started = Instant::now();
    let inputs = inputs_from_json(event.inputs.clone());
    let logged = state.clone();
    // The account's place in its lane is given back once the node's next
    // instance is made (what the closure returns is kept until then).
    let spawned = node.component.execute_on_event_thread_making_next(
        inputs,
        secrets,
        limits.event,
        move |outcome| {
            let reply = Reply::to_event(&event, &outcome);
            let logs = EventLogs::of(&outcome);
            record_logs(&logged, account, &event.node, &reply, logs);
            let label = reply
                .error
                .as_ref()
                .map_or("ok", |error| error.code.as_str());
            metrics.finished(&event.node, label, started.elapsed(), outcome.fuel_used);
            let _ = reply_tx.send(reply);
            permit
        },
    );
    if let Err(err) = spawned {
        state
            .metrics
            .finished(&node_name, "internal", Duration::ZERO, 0);
        return Err(internal(format!(
            "cannot start a thread for the event: {err}"
        )));
    }
    reply
        .await
        .map_err(|_| internal("the event's thread ended without a reply"))
}

/// Keeps what an event of the account's uploaded node `node` printed and
/// logged.
pub(super) fn record_logs(
    state: &HubState,
    account: i64,
    node: &str,
    reply: &Reply,
    logs: EventLogs,
) {
    let event = LoggedEvent {
        uuid: reply.uuid.as_str().unwrap_or_default().to_owned(),
        finished_at: unix_seconds(),
        outcome: reply
            .error
            .as_ref()
            .map_or_else(|| "ok".to_owned(), |error| error.code.clone()),
        logs,
    };
    state.hosted.record_logs(account, node, event);
}

/// `GET /api/nodes/{name}/logs`: what the node's recent events printed and
/// logged, oldest first.
pub(super) async fn logs(
    State(state): State<Arc<HubState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<Json>, Failure> {
    let caller = authenticate(&state, &headers)?;
    if state.hosted.get(caller.account, &name).is_none() {
        return Err(unknown(&name));
    }
    let events = state.hosted.logs(caller.account, &name);
    Ok(axum::Json(json!({"node": name, "events": events})))
}

/// Outputs of a hosted node's reply, keyed as its info declares.
pub(super) fn declared_outputs(node: &HostedNode) -> Vec<String> {
    node.component
        .info()
        .outputs
        .iter()
        .map(|port| port.name.clone())
        .collect()
}
