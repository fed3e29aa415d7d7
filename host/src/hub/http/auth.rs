//! Who is calling: extractors that let a handler run only for an account's
//! API token ([`Account`]) or a hosted-worker token ([`HostedWorker`]).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::hub::service::{Hub, HubError};
use crate::hub::store::{Caller, TokenId};

/// The `Authorization: Bearer` token of a request: `None` without the
/// header, empty when the header holds no bearer token.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default(),
    )
}

/// The account behind the request's API token.
#[derive(Debug, Clone)]
pub struct Account(pub Caller);

impl FromRequestParts<Arc<Hub>> for Account {
    type Rejection = HubError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, HubError> {
        hub.authenticate(bearer(parts)).await.map(Account)
    }
}

/// A request made with a hosted-worker token: the token's id.
#[derive(Debug, Clone, Copy)]
pub struct HostedWorker(pub TokenId);

impl FromRequestParts<Arc<Hub>> for HostedWorker {
    type Rejection = HubError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, HubError> {
        hub.authenticate_worker(bearer(parts))
            .await
            .map(HostedWorker)
    }
}
