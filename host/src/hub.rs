//! The hub: a Hurozo-compatible backend for remote nodes.
//!
//! It keeps accounts and API tokens ([`store`]), the nodes each account has
//! registered ([`registry`]), the live worker connections and the events
//! waiting on them ([`switchboard`]), and serves the HTTP and WebSocket API
//! ([`api`]). It is the embedded backend of `node-host run` and the server of
//! `node-host hub`.
//!
//! It also hosts nodes that accounts upload ([`hosted`], served through
//! [`uploads`]): each event runs in a fresh instance under the account's
//! limits, on a hosted worker (`node-host run --hosted`, see
//! [`hosted_api`]) when one has the component ready, else in the hub's own
//! sandbox.
//!
//! It refuses to queue events without bound, and to let one account see or
//! reach another's nodes: every lookup is keyed by account, so another
//! account's node is simply unknown.

mod api;
pub mod blobs;
pub mod hosted;
mod hosted_api;
pub mod registry;
pub mod secrets;
mod secrets_api;
pub mod store;
pub mod switchboard;
mod uploads;
pub mod ws_token;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::sandbox::SandboxConfig;
pub use api::router;
use hosted::{Hosted, HostedNode};
use registry::Registry;
use secrets::{SecretBox, SecretsError};
use store::{Store, StoreError};
use switchboard::Switchboard;
use ws_token::WsTokenSigner;

/// Where the hub listens unless told otherwise: loopback only, so a hub
/// started by accident is not reachable from the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";

/// How long an execute waits for the worker's reply when the caller does not
/// say: Hurozo's 600 s, which is also the most a caller may ask for.
pub const EXECUTE_TIMEOUT: Duration = Duration::from_secs(600);

/// How the hub is set up.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// SQLite and the signing key live here; `None` keeps everything in
    /// memory for the life of the process (the embedded hub).
    pub data_dir: Option<PathBuf>,
    /// The WebSocket URL handed to workers, when the hub is reached through
    /// a proxy (e.g. `wss://hub.example.com/ws`). By default it is built
    /// from the `Host` header of the registration request.
    pub public_ws_url: Option<String>,
    /// How uploaded nodes' sandbox is set up (pooling, pre-initialization);
    /// its compile cache is always the hub's own, under `data_dir`.
    pub sandbox: SandboxConfig,
    /// How long an upload request waits for its compile before it answers
    /// 202 `compiling` (usually [`hosted::UPLOAD_READY_WAIT`]).
    pub upload_wait: std::time::Duration,
}

/// The hub's shared state, behind an `Arc` in every request.
#[derive(Debug)]
pub struct HubState {
    store: Mutex<Store>,
    registry: Mutex<Registry>,
    switchboard: Switchboard,
    signer: WsTokenSigner,
    metrics: Metrics,
    public_ws_url: Option<String>,
    upload_wait: std::time::Duration,
    hosted: Hosted,
    restored: Restored,
    secrets: SecretBox,
}

/// Why the hub cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The database or the data directory.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secrets key.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

/// How the uploaded nodes were loaded when the hub started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Loaded from the compile cache.
    pub cached: usize,
    /// Compiled anew (the artifact was missing or unusable).
    pub compiled: usize,
}

impl HubState {
    /// Opens the store and the signing key.
    ///
    /// Uploaded nodes are loaded again before this returns: from the compile
    /// cache in milliseconds each, or compiled anew when the artifact is gone
    /// (after a node-host upgrade). One that cannot be loaded is logged and
    /// skipped; its upload stays recorded.
    pub fn open(config: &HubConfig) -> Result<Arc<Self>, HubError> {
        let mut store = Store::open(config.data_dir.as_deref())?;
        let signer = WsTokenSigner::new(store.signing_key()?);
        let hosted =
            Hosted::open(config.data_dir.as_deref(), config.sandbox.clone()).map_err(|source| {
                StoreError::DataDir {
                    path: config.data_dir.clone().unwrap_or_default(),
                    source,
                }
            })?;
        let restored = restore_uploads(&hosted, store.all_uploaded()?);
        let secrets = SecretBox::open(config.data_dir.as_deref())?;
        Ok(Arc::new(Self {
            store: Mutex::new(store),
            registry: Mutex::default(),
            switchboard: Switchboard::default(),
            signer,
            metrics: Metrics::new("hub"),
            public_ws_url: config.public_ws_url.clone(),
            upload_wait: config.upload_wait,
            hosted,
            restored,
            secrets,
        }))
    }

    /// The uploaded nodes loaded at start-up: from the compile cache, and
    /// compiled anew.
    pub fn restored(&self) -> Restored {
        self.restored
    }

    /// The account store (for creating tokens).
    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Loads every recorded upload into `hosted`; one that cannot be loaded is
/// logged and skipped (its record stays).
fn restore_uploads(hosted: &Hosted, uploaded: Vec<(i64, store::UploadedNode)>) -> Restored {
    let mut restored = Restored::default();
    for (account, record) in uploaded {
        let loaded = hosted
            .blobs()
            .get(&record.sha256)
            .map_err(|err| err.to_string())
            .and_then(|bytes| hosted.load(&bytes).map_err(|err| err.to_string()));
        match loaded {
            Ok((component, was_compiled)) => {
                if was_compiled {
                    restored.compiled += 1;
                } else {
                    restored.cached += 1;
                }
                hosted.install(
                    account,
                    HostedNode {
                        component: Arc::new(component),
                        record,
                    },
                );
            }
            Err(err) => tracing::error!(
                account,
                node = %record.name,
                "cannot load the uploaded node, skipping it: {err}"
            ),
        }
    }
    restored
}

/// Serves the hub on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HubState>,
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
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::select! {
        served = axum::serve(listener, app) => served,
        () = shutdown => Ok(()),
    }
}
