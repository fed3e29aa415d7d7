//! The hub's HTTP routes, each a thin handler: extract, call the service,
//! answer. Where Hurozo's documentation names an error message, the service
//! uses it word for word.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::auth::{Account, HostedWorker};
use crate::hub::service::catalog::MAX_UPLOAD_BYTES;
use crate::hub::service::{Hub, HubError, UploadAnswer, upload_too_large};
use crate::protocol::hurozo::{
    ExecuteRequest, ExecuteResponse, NodeList, Registered, Registration, errors,
};

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes, example: &str) -> Result<T, HubError> {
    serde_json::from_slice(body).map_err(|err| {
        HubError::InvalidRequest(format!(
            "the request body is not the expected JSON ({err}); send e.g. {example}"
        ))
    })
}

/// `POST /api/remote_nodes/register` (Hurozo).
pub async fn register(
    State(hub): State<Arc<Hub>>,
    Account(caller): Account,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Registered>, HubError> {
    crate::hub::service::require_write(&caller)?;
    // Hurozo answers a body without a usable name with its name error.
    let registration: Registration = serde_json::from_slice(&body)
        .map_err(|_| HubError::InvalidRequest(errors::INVALID_NAME.to_owned()))?;
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok());
    hub.register(&caller, registration, host).map(axum::Json)
}

/// `GET /api/remote_nodes` (Hurozo).
pub async fn list(State(hub): State<Arc<Hub>>, Account(caller): Account) -> axum::Json<NodeList> {
    axum::Json(hub.list_nodes(&caller))
}

/// `POST /api/remote_nodes/{name}/execute` (node-host's). A `traceparent`
/// header makes the event part of the caller's trace.
pub async fn execute(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<ExecuteResponse>, HubError> {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        target: crate::telemetry::TARGET, "receive",
        node = %name, account = %caller.account_name,
    );
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    crate::telemetry::continue_trace(&span, traceparent);
    let request: ExecuteRequest = if body.is_empty() {
        ExecuteRequest {
            inputs: Map::new(),
            timeout_ms: None,
        }
    } else {
        parse_body(&body, r#"{"inputs": {"name": "Ada"}}"#)?
    };
    hub.execute(&caller, &name, request)
        .instrument(span)
        .await
        .map(axum::Json)
}

/// `POST /api/nodes`: the body is the component.
pub async fn upload(
    State(hub): State<Arc<Hub>>,
    Account(caller): Account,
    body: Body,
) -> Result<Response, HubError> {
    crate::hub::service::require_write(&caller)?;
    let bytes = axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| upload_too_large())?;
    let answer = hub.upload(&caller, bytes).await?;
    Ok(upload_answer(answer, true))
}

/// `GET /api/uploads/{sha256}`.
pub async fn upload_status(
    State(hub): State<Arc<Hub>>,
    Path(sha256): Path<String>,
    Account(caller): Account,
) -> Result<Response, HubError> {
    let answer = hub.upload_status(&caller, &sha256)?;
    Ok(upload_answer(answer, false))
}

/// An upload's answer: 201 (a new upload) or 200 `ready` with the node, 202
/// `compiling` with the status URL, or the refusal: a 422 for the upload
/// itself, a 200 for its status (the status of a failed upload is itself a
/// successful answer).
pub(super) fn upload_answer(answer: UploadAnswer, created: bool) -> Response {
    match answer {
        UploadAnswer::Compiling { sha256 } => (
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "status": "compiling",
                "status_url": format!("/api/uploads/{sha256}"),
                "sha256": sha256,
            })),
        )
            .into_response(),
        UploadAnswer::Ready {
            node: Some(node), ..
        } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, axum::Json(json!({"status": "ready", "node": node}))).into_response()
        }
        // Installed, then replaced or deleted since.
        UploadAnswer::Ready { sha256, node: None } => (
            StatusCode::OK,
            axum::Json(json!({"status": "ready", "sha256": sha256, "node": null})),
        )
            .into_response(),
        UploadAnswer::Refused(err) => {
            let status = if created {
                super::error::status(&err)
            } else {
                StatusCode::OK
            };
            (status, super::error::body(&err)).into_response()
        }
    }
}

/// `GET /api/nodes`.
pub async fn uploaded_nodes(
    State(hub): State<Arc<Hub>>,
    Account(caller): Account,
) -> axum::Json<Json> {
    axum::Json(hub.uploaded_nodes(&caller))
}

/// `GET /api/nodes/{name}`: the node and the limits its events run under.
pub async fn uploaded_node(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
) -> Result<axum::Json<Json>, HubError> {
    hub.uploaded_node(&caller, &name).await.map(axum::Json)
}

/// `DELETE /api/nodes/{name}`: events in flight finish; new ones get 404.
pub async fn delete_uploaded(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
) -> Result<axum::Json<Json>, HubError> {
    hub.delete_uploaded(&caller, &name).await.map(axum::Json)
}

/// `GET /api/nodes/{name}/logs`.
pub async fn node_logs(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
) -> Result<axum::Json<Json>, HubError> {
    hub.node_logs(&caller, &name).await.map(axum::Json)
}

/// `GET /api/nodes/{name}/versions`: the kept versions, newest first.
pub async fn node_versions(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
) -> Result<axum::Json<Json>, HubError> {
    hub.node_versions(&caller, &name).await.map(axum::Json)
}

#[derive(serde::Deserialize)]
struct RollbackBody {
    version: i64,
}

/// `POST /api/nodes/{name}/rollback` with `{"version": N}`.
pub async fn rollback(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
    body: Bytes,
) -> Result<axum::Json<Json>, HubError> {
    crate::hub::service::require_write(&caller)?;
    let body: RollbackBody = parse_body(&body, r#"{"version": 2}"#)?;
    hub.rollback(&caller, &name, body.version)
        .await
        .map(axum::Json)
}

/// What `GET /api/events` takes.
#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    /// Only this node's events.
    pub node: Option<String>,
    /// Only events after this id (to follow).
    pub after: Option<i64>,
    /// The newest this many (100 unless given, 1000 at most).
    pub limit: Option<u32>,
}

/// `GET /api/events?node=NAME&after=ID&limit=N`: the account's kept events,
/// oldest first, with what each printed and logged.
pub async fn events(
    State(hub): State<Arc<Hub>>,
    Account(caller): Account,
    query: Result<axum::extract::Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Json>, HubError> {
    let axum::extract::Query(query) = query.map_err(|err| {
        HubError::InvalidRequest(format!(
            "bad query ({err}); use ?node=NAME&after=ID&limit=N (numbers for after and limit)"
        ))
    })?;
    hub.events_json(&caller, query.node.as_deref(), query.after, query.limit)
        .await
        .map(axum::Json)
}

/// `GET /api/nodes/{name}/config`: the node's configuration.
pub async fn node_config(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
) -> Result<axum::Json<Json>, HubError> {
    hub.node_config(&caller, &name).await.map(axum::Json)
}

#[derive(serde::Deserialize)]
struct ConfigBody {
    value: String,
}

/// `PUT /api/nodes/{name}/config/{key}` with `{"value": "…"}`.
pub async fn put_node_config(
    State(hub): State<Arc<Hub>>,
    Path((name, key)): Path<(String, String)>,
    Account(caller): Account,
    body: Bytes,
) -> Result<axum::Json<Json>, HubError> {
    crate::hub::service::require_write(&caller)?;
    let body: ConfigBody = parse_body(&body, r#"{"value": "large"}"#)?;
    hub.set_node_config(&caller, &name, &key, Some(&body.value))
        .await
        .map(axum::Json)
}

/// `DELETE /api/nodes/{name}/config/{key}`.
pub async fn delete_node_config(
    State(hub): State<Arc<Hub>>,
    Path((name, key)): Path<(String, String)>,
    Account(caller): Account,
) -> Result<axum::Json<Json>, HubError> {
    hub.set_node_config(&caller, &name, &key, None)
        .await
        .map(axum::Json)
}

/// `GET /api/nodes/{name}/grant`: the origins the node may call.
pub async fn http_grant(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
) -> Result<axum::Json<Json>, HubError> {
    hub.http_grant(&caller, &name).await.map(axum::Json)
}

#[derive(serde::Deserialize)]
struct GrantBody {
    allow: Vec<String>,
}

/// `PUT /api/nodes/{name}/grant` with `{"allow": ["https://…", …]}`.
pub async fn put_http_grant(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
    body: Bytes,
) -> Result<axum::Json<Json>, HubError> {
    crate::hub::service::require_write(&caller)?;
    let body: GrantBody = serde_json::from_slice(&body).map_err(|err| {
        HubError::InvalidRequest(format!(
            "the body must be {{\"allow\": [\"https://api.example.com\", …]}} ({err})"
        ))
    })?;
    hub.set_http_grant(&caller, &name, body.allow)
        .await
        .map(axum::Json)
}

/// `DELETE /api/nodes/{name}/grant`.
pub async fn delete_http_grant(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
) -> Result<axum::Json<Json>, HubError> {
    hub.delete_http_grant(&caller, &name).await.map(axum::Json)
}

#[derive(serde::Deserialize)]
struct SecretBody {
    value: String,
}

/// `PUT /api/secrets/{name}` with `{"value": "…"}`.
pub async fn put_secret(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
    body: Bytes,
) -> Result<axum::Json<Json>, HubError> {
    crate::hub::service::require_write(&caller)?;
    let body: SecretBody = serde_json::from_slice(&body).map_err(|err| {
        HubError::InvalidRequest(format!("the body must be {{\"value\": \"…\"}} ({err})"))
    })?;
    hub.put_secret(&caller, &name, &body.value)
        .await
        .map(axum::Json)
}

/// `DELETE /api/secrets/{name}`.
pub async fn delete_secret(
    State(hub): State<Arc<Hub>>,
    Path(name): Path<String>,
    Account(caller): Account,
) -> Result<axum::Json<Json>, HubError> {
    hub.delete_secret(&caller, &name).await.map(axum::Json)
}

/// `GET /api/secrets`: names and when each was set, never values.
pub async fn secret_names(
    State(hub): State<Arc<Hub>>,
    Account(caller): Account,
) -> Result<axum::Json<Json>, HubError> {
    hub.secret_names(&caller).await.map(axum::Json)
}

/// `GET /api/hosted/components/{sha256}`: a component some account uses.
pub async fn component(
    State(hub): State<Arc<Hub>>,
    Path(sha256): Path<String>,
    _worker: HostedWorker,
) -> Result<Response, HubError> {
    let bytes = hub.component(&sha256).await?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes).into_response())
}

/// `GET /healthz`.
pub async fn healthz() -> axum::Json<Json> {
    axum::Json(json!({"status": "ok"}))
}
