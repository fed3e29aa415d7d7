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
//!    ▼
//!  store::Store (accounts, tokens, uploads, limits, secrets: SQLite)
//!  store::Blobs (components: a directory)
//! ```
//!
//! It refuses to queue events without bound, and to let one account see or
//! reach another's nodes: every lookup is keyed by account, so another
//! account's node is simply unknown.

mod http;
mod registry;
mod secrets;
pub mod service;
pub(crate) mod store;
mod switchboard;
mod ws_token;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub(crate) use http::router;
pub use service::{Hub, HubConfig, OpenError, Restored};

/// Where the hub listens unless told otherwise: loopback only, so a hub
/// started by accident is not reachable from the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";

/// Serves the hub on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    // Events and replies are small frames: without TCP_NODELAY each one can
    // wait out a 40 ms delayed ACK.
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a connection: {err}");
        }
    });
    let app = router(hub).into_make_service_with_connect_info::<SocketAddr>();
    tokio::select! {
        served = axum::serve(listener, app) => served,
        () = shutdown => Ok(()),
    }
}
