//! The hub: a Hurozo-compatible backend for remote nodes, and the host of
//! the nodes accounts upload. It is the embedded backend of `node-host run`
//! and the server of `node-host hub`.
//!
//! ```text
//!  http (routes, auth extractors, WebSockets; HubError -> status + code)
//!    │
//!  service::Hub ── registry (registrations, in memory)
//!    │          ── switchboard (worker connections, uuid -> caller)
//!    │          ── catalog (uploaded nodes, uploads, logs) ── core::Runner
//!    │          ── secrets (sealing)
//!    │          ── cluster (following uploads other hubs took), relay (NATS)
//!    ▼
//!  store::Store (accounts, tokens, uploads, limits, secrets: SQLite, or
//!                PostgreSQL shared by the hubs of a cluster)
//!  store::Blobs (components: a directory, shared by a cluster)
//! ```
//!
//! It refuses to queue events without bound, and to let one account see or
//! reach another's nodes: every lookup is keyed by account, so another
//! account's node is simply unknown.

mod http;
mod listener;
mod registry;
mod secrets;
pub mod service;
mod session;
pub(crate) mod store;
mod switchboard;
mod ws_token;

use std::sync::Arc;

use tokio::net::TcpListener;

pub(crate) use http::router;
pub use listener::ServeLimits;
pub use service::{Hub, HubConfig, OpenError, Restored};

/// Where the hub listens unless told otherwise: loopback only, so a hub
/// started by accident is not reachable from the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";

/// Serves the hub on `listener` within `limits` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener::serve(listener, router(hub), limits, shutdown).await
}
