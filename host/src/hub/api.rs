//! The hub's HTTP and WebSocket API: Hurozo's registration and listing,
//! node-host's execute, the worker WebSocket and `/metrics`; the hosted-node
//! routes are in [`super::uploads`].
//!
//! Every error is JSON `{"error": message, "code": code}`; where Hurozo's
//! documentation names a message, that message is used word for word.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Map, Value as Json};

use super::store::Caller;
use super::switchboard::{Answer, DispatchError};
use super::ws_token::WsClaims;
use super::{EXECUTE_TIMEOUT, HubState};
use super::{hosted_api, secrets_api, uploads};
use crate::protocol::hurozo::{
    ApiError, Event, ExecuteRequest, ExecuteResponse, ListedNode, NodeList, Registered,
    Registration, errors,
};

/// The hub's routes.
pub fn router(state: Arc<HubState>) -> Router {
    Router::new()
        .route("/api/remote_nodes/register", post(register))
        .route("/api/remote_nodes", get(list))
        .route("/api/remote_nodes/{name}/execute", post(execute))
        .route("/api/nodes", post(uploads::upload).get(uploads::list))
        .route(
            "/api/nodes/{name}",
            get(uploads::show).delete(uploads::delete),
        )
        .route("/api/nodes/{name}/logs", get(uploads::logs))
        .route("/api/uploads/{sha256}", get(uploads::upload_status))
        .route("/api/secrets", get(secrets_api::list))
        .route(
            "/api/secrets/{name}",
            axum::routing::put(secrets_api::put).delete(secrets_api::delete),
        )
        .route("/ws", get(websocket))
        .route(
            "/api/hosted/components/{sha256}",
            get(hosted_api::component),
        )
        .route("/api/hosted/ws", get(hosted_api::websocket))
        .route("/metrics", get(metrics))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .with_state(state)
}

/// An error answer: a status and the JSON body.
pub(super) struct Failure(StatusCode, ApiError);

impl Failure {
    pub(super) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self(status, ApiError::new(code, message))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

pub(super) fn internal(err: impl std::fmt::Display) -> Failure {
    tracing::error!("hub: {err}");
    Failure::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("the hub failed: {err}"),
    )
}

/// Refuses a read-only token where the request changes something.
pub(super) fn require_write(caller: &Caller) -> Result<(), Failure> {
    if caller.read_only {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "read_only_token",
            errors::INVALID_TOKEN,
        ));
    }
    Ok(())
}

/// The caller behind the `Authorization: Bearer` header.
pub(super) fn authenticate(state: &HubState, headers: &HeaderMap) -> Result<Caller, Failure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            errors::MISSING_AUTH,
        ));
    };
    let invalid = || {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            errors::INVALID_TOKEN,
        )
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(invalid)?;
    state
        .store()
        .authenticate(token)
        .map_err(internal)?
        .ok_or_else(invalid)
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes, example: &str) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|err| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the request body is not the expected JSON ({err}); send e.g. {example}"),
        )
    })
}

async fn register(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Registered>, Failure> {
    let caller = authenticate(&state, &headers)?;
    require_write(&caller)?;
    let registration: Registration = match serde_json::from_slice(&body) {
        Ok(registration) => registration,
        // Hurozo answers a body without a usable name with its name error.
        Err(_) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                errors::INVALID_NAME,
            ));
        }
    };
    registration
        .validate()
        .map_err(|message| Failure::new(StatusCode::BAD_REQUEST, "invalid_request", message))?;
    if state
        .hosted
        .get(caller.account, &registration.name)
        .is_some()
    {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "name_taken",
            format!(
                "this account has uploaded a node named `{}`; delete it                  (DELETE /api/nodes/{0}) or register the worker's node under another name",
                registration.name
            ),
        ));
    }
    let websocket_url = websocket_url(&state, &headers);
    let token = state.signer.issue(
        &WsClaims {
            account: caller.account,
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
    tracing::info!(account = %caller.account_name, node = %registration.name, "registered");
    state
        .registry()
        .register(caller.account, registration, Instant::now());
    Ok(axum::Json(reply))
}

fn websocket_url(state: &HubState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_ws_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("ws://{host}/ws")
}

async fn list(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
) -> Result<axum::Json<NodeList>, Failure> {
    let caller = authenticate(&state, &headers)?;
    let mut nodes = state.registry().list(caller.account, Instant::now());
    for hosted in state.hosted.list(caller.account) {
        let info = hosted.component.info();
        let names = |ports: &[crate::sandbox::Port]| ports.iter().map(|p| p.name.clone()).collect();
        nodes.push(ListedNode {
            name: info.name.clone(),
            inputs: names(&info.inputs),
            outputs: names(&info.outputs),
        });
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(axum::Json(NodeList { nodes }))
}

async fn execute(
    State(state): State<Arc<HubState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<ExecuteResponse>, Failure> {
    let caller = authenticate(&state, &headers)?;
    let request: ExecuteRequest = if body.is_empty() {
        ExecuteRequest {
            inputs: Map::new(),
            timeout_ms: None,
        }
    } else {
        parse_body(&body, r#"{"inputs": {"name": "Ada"}}"#)?
    };
    let timeout = match request.timeout_ms {
        None => EXECUTE_TIMEOUT,
        Some(0) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "timeout_ms must be at least 1",
            ));
        }
        Some(ms) => Duration::from_millis(ms).min(EXECUTE_TIMEOUT),
    };
    if let Some(node) = state.hosted.get(caller.account, &name) {
        return execute_hosted(&state, caller.account, &name, node, request, timeout).await;
    }
    let outputs = state
        .registry()
        .get(caller.account, &name, Instant::now())
        .map(|registration| registration.outputs.clone())
        .ok_or_else(|| {
            Failure::new(
                StatusCode::NOT_FOUND,
                "unknown_node",
                format!(
                    "unknown node `{name}`: this account has not uploaded it and no worker of \
                     the account has registered it in the last 10 minutes (upload it with \
                     `node-host upload`, or serve it with `node-host run`)"
                ),
            )
        })?;

    let uuid = uuid::Uuid::new_v4().to_string();
    let event = Event {
        kind: Some("remote_node".into()),
        node: name.clone(),
        inputs: request.inputs,
        uuid: Json::String(uuid.clone()),
    };
    let started = Instant::now();
    state.metrics.started();
    let finish = |outcome: &str| state.metrics.finished(&name, outcome, started.elapsed(), 0);
    let waiter = match state.switchboard.dispatch(caller.account, &event) {
        Ok(waiter) => waiter,
        Err(err) => {
            let (status, code, message) = match err {
                DispatchError::NoWorker => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_worker",
                    format!(
                        "node `{name}` is registered but no worker serving it is connected; \
                         check that its `node-host run` is up"
                    ),
                ),
                DispatchError::Busy => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the hub has too many events in flight; retry shortly".to_owned(),
                ),
            };
            finish(code);
            return Err(Failure::new(status, code, message));
        }
    };
    let answer = tokio::time::timeout(timeout, waiter).await;
    match answer {
        Ok(Ok(Answer::Reply(reply, _))) => match reply.error {
            Some(error) => {
                finish(&error.code);
                Err(Failure::new(
                    StatusCode::BAD_GATEWAY,
                    &error.code,
                    format!("node `{name}` failed: {}", error.message),
                ))
            }
            None => {
                finish("ok");
                Ok(axum::Json(ExecuteResponse::ordered(
                    &name,
                    &uuid,
                    &outputs,
                    reply.outputs,
                )))
            }
        },
        Ok(Ok(Answer::WorkerLost) | Err(_)) => {
            finish("worker_lost");
            Err(Failure::new(
                StatusCode::BAD_GATEWAY,
                "worker_lost",
                format!("the worker running node `{name}` disconnected before it replied"),
            ))
        }
        Err(_elapsed) => {
            state.switchboard.abandon(&uuid);
            finish("timeout");
            Err(Failure::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "node `{name}` did not reply within {} ms",
                    timeout.as_millis()
                ),
            ))
        }
    }
}

/// The execute of an uploaded node, run by the hub itself: the same answers
/// as for a worker's node.
async fn execute_hosted(
    state: &Arc<HubState>,
    account: i64,
    name: &str,
    node: Arc<super::hosted::HostedNode>,
    request: ExecuteRequest,
    timeout: Duration,
) -> Result<axum::Json<ExecuteResponse>, Failure> {
    let uuid = uuid::Uuid::new_v4().to_string();
    let outputs = uploads::declared_outputs(&node);
    let event = Event {
        kind: Some("remote_node".into()),
        node: name.to_owned(),
        inputs: request.inputs,
        uuid: Json::String(uuid.clone()),
    };
    let reply = tokio::time::timeout(
        timeout,
        uploads::execute_hosted(state, account, node, event),
    )
    .await
    .map_err(|_elapsed| {
        Failure::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "node `{name}` did not finish within {} ms (waiting for its turn included)",
                timeout.as_millis()
            ),
        )
    })??;
    match reply.error {
        Some(error) => Err(Failure::new(
            StatusCode::BAD_GATEWAY,
            &error.code,
            format!("node `{name}` failed: {}", error.message),
        )),
        None => Ok(axum::Json(ExecuteResponse::ordered(
            name,
            &uuid,
            &outputs,
            reply.outputs,
        ))),
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

async fn websocket(
    State(state): State<Arc<HubState>>,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Failure> {
    let (token, mut nodes) = parse_ws_query(query.as_deref());
    let Some(token) = token else {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "connect with ?auth=<token>, the token from POST /api/remote_nodes/register",
        ));
    };
    let claims = state
        .signer
        .verify(&token, SystemTime::now())
        .map_err(|err| Failure::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string()))?;
    nodes.insert(claims.node);
    Ok(upgrade.on_upgrade(move |socket| serve_worker(state, claims.account, nodes, socket)))
}

async fn serve_worker(
    state: Arc<HubState>,
    account: i64,
    nodes: HashSet<String>,
    socket: WebSocket,
) {
    let (link, outbox) = state.switchboard.connect(account, nodes);
    state.metrics.connections(1);
    tracing::info!(link, account, "worker connected");
    pump(socket, outbox, None, |text| {
        match serde_json::from_str(text) {
            Ok(reply) => {
                if !state.switchboard.answer(link, reply) {
                    tracing::debug!(link, "ignored a reply with an unknown uuid");
                }
            }
            Err(err) => tracing::debug!(link, "ignored a frame that is not a reply: {err}"),
        }
    })
    .await;
    state.switchboard.disconnect(link);
    state.metrics.connections(-1);
    tracing::info!(link, account, "worker disconnected");
}

/// Moves one worker connection's frames until either side ends: `first`
/// then whatever arrives on `outbox` goes out; each text frame that comes in
/// goes to `on_text`.
pub(super) async fn pump(
    socket: WebSocket,
    mut outbox: tokio::sync::mpsc::UnboundedReceiver<String>,
    first: Option<String>,
    mut on_text: impl FnMut(&str),
) {
    let (mut sink, mut stream) = socket.split();
    let writer = async {
        if let Some(text) = first
            && sink.send(Message::Text(text.into())).await.is_err()
        {
            return;
        }
        // Frames queued while the last ones were written go out with one
        // flush: `send_all` flushes only when the outbox has nothing ready.
        let mut frames = futures_util::stream::poll_fn(|cx| outbox.poll_recv(cx))
            .map(|text| Ok(Message::Text(text.into())));
        let _ = sink.send_all(&mut frames).await;
    };
    let reader = async {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) => on_text(text.as_str()),
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
}

async fn metrics(State(state): State<Arc<HubState>>) -> Response {
    state.metrics.http_response()
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
