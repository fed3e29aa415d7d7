//! Registration over HTTP: `POST {backend}/api/remote_nodes/register`.

use std::time::Duration;

use reqwest::StatusCode;

use crate::protocol::hurozo::{ApiError, Registered, Registration};

/// How long one registration request may take.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The backend refused it (4xx): a bad token or a bad node. Retrying the
    /// same request will not help.
    #[error("the backend refused the registration of `{node}` ({status}): {message}")]
    Refused {
        /// The node.
        node: String,
        /// The HTTP status.
        status: StatusCode,
        /// The backend's error message.
        message: String,
    },
    /// The backend could not be reached or failed (5xx, bad reply): worth
    /// retrying.
    #[error("registering `{node}` at {url} failed: {message}")]
    Unavailable {
        /// The node.
        node: String,
        /// The registration URL.
        url: String,
        /// What happened.
        message: String,
    },
}

impl RegisterError {
    /// True when the token itself was refused (401/403).
    pub fn is_auth(&self) -> bool {
        matches!(self, RegisterError::Refused { status, .. }
            if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN)
    }
}

/// Registers one node and returns the backend's answer.
pub async fn register(
    client: &reqwest::Client,
    backend: &url::Url,
    token: &str,
    registration: &Registration,
) -> Result<Registered, RegisterError> {
    let url = backend
        .join("api/remote_nodes/register")
        .expect("a base URL joins a relative path");
    let unavailable = |message: String| RegisterError::Unavailable {
        node: registration.name.clone(),
        url: url.to_string(),
        message,
    };
    let response = client
        .post(url.clone())
        .bearer_auth(token)
        .json(registration)
        .timeout(REGISTER_TIMEOUT)
        .send()
        .await
        .map_err(|err| unavailable(error_chain(&err)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|err| unavailable(error_chain(&err)))?;
    if status.is_client_error() {
        let message = serde_json::from_slice::<ApiError>(&body)
            .map(|error| error.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        return Err(RegisterError::Refused {
            node: registration.name.clone(),
            status,
            message,
        });
    }
    if !status.is_success() {
        return Err(unavailable(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    serde_json::from_slice(&body).map_err(|err| {
        unavailable(format!(
            "the reply is not a registration ({err}): {}",
            String::from_utf8_lossy(&body)
        ))
    })
}

/// reqwest's errors hide the cause (e.g. "connection refused") in the chain.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
