//! The secrets API: `PUT /api/secrets/{name}` with `{"value": "…"}`,
//! `DELETE /api/secrets/{name}`, and `GET /api/secrets` (names only: no
//! API ever returns a value).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value as Json, json};

use super::HubState;
use super::api::{Failure, authenticate, internal, require_write};
use super::secrets::{MAX_SECRET_BYTES, valid_secret_name};
use crate::sandbox::NodeInfo;

#[derive(serde::Deserialize)]
struct SecretBody {
    value: String,
}

fn check_name(name: &str) -> Result<(), Failure> {
    if valid_secret_name(name) {
        return Ok(());
    }
    Err(Failure::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("invalid secret name `{name}`: use 1 to 128 letters, digits, `-`, `_` or `.`"),
    ))
}

/// `PUT /api/secrets/{name}`: stores the value, sealed.
pub(super) async fn put(
    State(state): State<Arc<HubState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Json>, Failure> {
    let caller = authenticate(&state, &headers)?;
    require_write(&caller)?;
    check_name(&name)?;
    let body: SecretBody = serde_json::from_slice(&body).map_err(|err| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the body must be {{\"value\": \"…\"}} ({err})"),
        )
    })?;
    if body.value.len() > MAX_SECRET_BYTES {
        return Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a secret holds at most {} KiB", MAX_SECRET_BYTES >> 10),
        ));
    }
    let sealed = state.secrets.seal(caller.account, &name, &body.value);
    state
        .store()
        .put_secret(caller.account, &name, &sealed)
        .map_err(internal)?;
    tracing::info!(account = %caller.account_name, secret = %name, "secret set");
    Ok(axum::Json(json!({"name": name, "status": "stored"})))
}

/// `DELETE /api/secrets/{name}`.
pub(super) async fn delete(
    State(state): State<Arc<HubState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<Json>, Failure> {
    let caller = authenticate(&state, &headers)?;
    require_write(&caller)?;
    check_name(&name)?;
    let deleted = state
        .store()
        .delete_secret(caller.account, &name)
        .map_err(internal)?;
    if !deleted {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "unknown_secret",
            format!("this account has no secret `{name}`"),
        ));
    }
    Ok(axum::Json(json!({"deleted": name})))
}

/// `GET /api/secrets`: the names and when each was set.
pub(super) async fn list(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
) -> Result<axum::Json<Json>, Failure> {
    let caller = authenticate(&state, &headers)?;
    let names = state
        .store()
        .secret_names(caller.account)
        .map_err(internal)?;
    let secrets: Vec<Json> = names
        .into_iter()
        .map(|(name, updated_at)| json!({"name": name, "updated_at": updated_at}))
        .collect();
    Ok(axum::Json(json!({ "secrets": secrets })))
}

/// The values of the secrets `info` declares that `account` has set.
pub(super) fn declared_secrets(
    state: &HubState,
    account: i64,
    info: &NodeInfo,
) -> Result<HashMap<String, String>, Failure> {
    let mut values = HashMap::new();
    for name in &info.secrets {
        let sealed = state.store().secret(account, name).map_err(internal)?;
        if let Some(sealed) = sealed {
            let value = state
                .secrets
                .open_value(account, name, &sealed)
                .map_err(|err| {
                    tracing::error!("{err}");
                    Failure::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "secret_unavailable",
                        err.to_string(),
                    )
                })?;
            values.insert(name.clone(), value);
        }
    }
    Ok(values)
}
