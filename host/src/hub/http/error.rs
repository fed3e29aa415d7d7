//! How a [`HubError`] answers over HTTP: a status per variant and the JSON
//! body `{"error": message, "code": code}`, the code the service chose.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::hub::service::HubError;
use crate::protocol::hurozo::ApiError;

/// The HTTP status of each error.
pub fn status(err: &HubError) -> StatusCode {
    match err {
        HubError::MissingAuth
        | HubError::InvalidToken
        | HubError::InvalidWorkerToken
        | HubError::InvalidWsToken(_) => StatusCode::UNAUTHORIZED,
        HubError::ReadOnlyToken => StatusCode::FORBIDDEN,
        HubError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        HubError::UnknownNode(_)
        | HubError::UnknownUpload(_)
        | HubError::UnknownVersion { .. }
        | HubError::UnknownSecret(_)
        | HubError::UnknownComponent(_) => StatusCode::NOT_FOUND,
        HubError::NameTaken(_) => StatusCode::CONFLICT,
        HubError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        HubError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        HubError::QueueFull(_) | HubError::CompileQueueFull(_) | HubError::AccountLimit(_) => {
            StatusCode::TOO_MANY_REQUESTS
        }
        HubError::NoWorker(_) | HubError::Busy | HubError::Unavailable(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        HubError::NodeFailed { .. } | HubError::WorkerLost(_) => StatusCode::BAD_GATEWAY,
        HubError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        HubError::SecretUnavailable(_) | HubError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        HubError::Relayed { code, .. } => match code.as_str() {
            "invalid_request" => StatusCode::BAD_REQUEST,
            "unknown_node" => StatusCode::NOT_FOUND,
            "queue_full" | "quota_exceeded" => StatusCode::TOO_MANY_REQUESTS,
            "no_worker" | "busy" | "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "worker_lost" => StatusCode::BAD_GATEWAY,
            "timeout" => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

/// The JSON body of an error.
pub fn body(err: &HubError) -> axum::Json<ApiError> {
    axum::Json(ApiError::new(err.code(), err.to_string()))
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        (status(&self), body(&self)).into_response()
    }
}
