//! The hub over HTTP: the routes, the auth extractors, the WebSockets, and
//! how a [`HubError`](super::service::HubError) answers. Thin: every
//! decision is the service's.

mod auth;
mod dashboard;
mod error;
mod exosphere;
mod routes;
#[cfg(test)]
mod tests;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};

use super::service::Hub;

/// The hub's routes.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/api/remote_nodes/register", post(routes::register))
        .route("/api/remote_nodes", get(routes::list))
        .route("/api/remote_nodes/{name}/execute", post(routes::execute))
        .route(
            "/api/nodes",
            post(routes::upload).get(routes::uploaded_nodes),
        )
        .route(
            "/api/nodes/{name}",
            get(routes::uploaded_node).delete(routes::delete_uploaded),
        )
        .route("/api/nodes/{name}/logs", get(routes::node_logs))
        .route("/api/nodes/{name}/versions", get(routes::node_versions))
        .route("/api/nodes/{name}/rollback", post(routes::rollback))
        .route("/api/events", get(routes::events))
        .route("/api/nodes/{name}/config", get(routes::node_config))
        .route(
            "/api/nodes/{name}/config/{key}",
            put(routes::put_node_config).delete(routes::delete_node_config),
        )
        .route(
            "/api/nodes/{name}/grant",
            get(routes::http_grant)
                .put(routes::put_http_grant)
                .delete(routes::delete_http_grant),
        )
        .route("/api/uploads/{sha256}", get(routes::upload_status))
        .route("/api/secrets", get(routes::secret_names))
        .route(
            "/api/secrets/{name}",
            put(routes::put_secret).delete(routes::delete_secret),
        )
        .route("/ws", get(ws::worker))
        .route("/api/hosted/components/{sha256}", get(routes::component))
        .route("/api/hosted/ws", get(ws::hosted_worker))
        .route("/healthz", get(routes::healthz))
        .with_state(hub.clone())
        .merge(exosphere::router(hub.clone()))
        .merge(dashboard::router(hub))
}
