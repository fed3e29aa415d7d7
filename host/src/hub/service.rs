//! What the hub does, with no HTTP in it: accounts and tokens, Hurozo
//! registrations and the workers that serve them, uploaded nodes, secrets
//! and hosted workers. Every front end (the HTTP routes and WebSockets of
//! `hub::http` today) calls these methods and maps [`HubError`]; none of
//! them decides anything itself.
//!
//! It refuses to let one account see or reach another's nodes, uploads or
//! secrets: every lookup is keyed by the caller's account, so another
//! account's thing is simply unknown.

pub(crate) mod catalog;
mod cluster;
mod error;
mod grants;
pub(crate) mod history;
mod hosted_workers;
mod relay;
pub(crate) mod stats;
mod uploads;
mod vault;
mod versions;
pub(crate) mod workers;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::registry::Registry;
use super::secrets::SecretBox;
use super::session::{SESSION_SECONDS, SessionClaims, SessionSigner};
use super::store::{Caller, PostgresStore, SqliteStore, Store, TokenId, TokenKind, UploadedNode};
use super::switchboard::Switchboard;
use super::ws_token::WsTokenSigner;
use crate::core::{AccountId, Executors, IDLE_FOR, Lanes, Runner};
use crate::metrics::Metrics;
use crate::sandbox::SandboxConfig;
use crate::sandbox::http::{Outbound, OutboundError, OutboundSettings};
pub(crate) use catalog::AccountLimits;
pub use catalog::UPLOAD_READY_WAIT;
use catalog::{Catalog, InstalledNode, MAX_RUNNING};
pub use error::HubError;
pub use history::HistorySettings;
pub use uploads::{COMPILES_AT_ONCE, UploadQuota};
pub(crate) use uploads::{UploadAnswer, upload_too_large};
pub(crate) use workers::WorkerClaims;

pub use crate::core::{EventFailure, QueueFull};

/// How often the hub pings each worker: the period at which workers ping
/// the hub too, so that a worker too busy to read still shows it is alive.
pub const KEEPALIVE: Duration = Duration::from_secs(20);
pub use crate::hub::secrets::SecretsError;
pub use crate::hub::store::StoreError;
pub use relay::RelayError;

/// Callers remembered by their API token, so that a request does not wait
/// on the store to be let in: beyond this many the memory is cleared. A
/// caller is remembered for one [`HubConfig::token_recheck`] at most, so a
/// token revoked on any hub is refused within that period.
const REMEMBERED_CALLERS: usize = 10_000;

/// How long a hub trusts what it learnt of a token (a remembered caller, an
/// open WebSocket's token) before it asks the store again: the longest a
/// revoked token still works.
pub const TOKEN_RECHECK: Duration = Duration::from_secs(10);

/// How long the hub uses an account's limits it read before reading them
/// again: `node-host hub account set` writes them to the store, and each
/// uploaded node's event read them there (a blocking store query: a third
/// of the hub's CPU for an uploaded `hello`). A change applies within this.
pub const LIMITS_RECHECK: Duration = Duration::from_secs(1);

/// How the hub is set up.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// SQLite and the signing key live here; `None` keeps everything in
    /// memory for the life of the process (the embedded hub).
    pub data_dir: Option<PathBuf>,
    /// The PostgreSQL database the hubs of a cluster share
    /// (`postgres://…`), in place of SQLite in `data_dir`.
    pub database: Option<String>,
    /// Where uploaded components are kept, when not in `data_dir`: in a
    /// cluster, a directory every hub mounts. Compiled artifacts stay each
    /// hub's own, in `data_dir`.
    pub components_dir: Option<PathBuf>,
    /// The NATS server(s) the hubs of a cluster pass executes through
    /// (`nats://…`): a node's worker may be connected to any hub.
    pub nats: Option<String>,
    /// The WebSocket URL handed to workers, when the hub is reached through
    /// a proxy (e.g. `wss://hub.example.com/ws`). By default it is built
    /// from the `Host` header of the registration request.
    pub public_ws_url: Option<String>,
    /// How uploaded nodes' sandbox is set up (pooling, pre-initialization);
    /// its compile cache is always the hub's own, under `data_dir`.
    pub sandbox: SandboxConfig,
    /// How long an upload request waits for its compile before it answers
    /// 202 `compiling` (usually [`UPLOAD_READY_WAIT`]).
    pub upload_wait: Duration,
    /// What one account may keep uploaded.
    pub quota: UploadQuota,
    /// How often the hub pings each worker; one silent for two periods is
    /// dropped and its events fail at once (usually [`KEEPALIVE`]: workers
    /// ping as often, so a busy worker is never taken for a dead one).
    pub keepalive: Duration,
    /// How long the hub trusts a token it checked (usually
    /// [`TOKEN_RECHECK`]): a revoked or expired token is refused, and the
    /// WebSockets opened with it are closed, within this period.
    pub token_recheck: Duration,
    /// How long an Exosphere state handed to a runtime is held for it
    /// (usually [`EXOSPHERE_LEASE`]); then it is handed out again.
    pub exosphere_lease: Duration,
    /// The operator's settings for uploaded nodes' outbound HTTP.
    pub outbound: OutboundSettings,
    /// Versions kept of each upload, and the event history kept per account.
    pub history: HistorySettings,
}

#[cfg(test)]
impl HubConfig {
    /// A hub for tests: in `data_dir` (in memory with `None`), on its own,
    /// with every default.
    pub(crate) fn for_tests(data_dir: Option<PathBuf>) -> Self {
        Self {
            outbound: OutboundSettings::default(),
            data_dir,
            database: None,
            components_dir: None,
            nats: None,
            public_ws_url: None,
            sandbox: SandboxConfig::default(),
            upload_wait: UPLOAD_READY_WAIT,
            quota: UploadQuota::default(),
            keepalive: KEEPALIVE,
            token_recheck: TOKEN_RECHECK,
            exosphere_lease: EXOSPHERE_LEASE,
            history: HistorySettings::default(),
        }
    }
}

/// How long an Exosphere state handed to a runtime is held for it.
pub const EXOSPHERE_LEASE: Duration =
    Duration::from_millis(crate::exosphere::manager::DEFAULT_LEASE_MS);

/// Why the hub cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database or the data directory.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secrets key.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// Outbound HTTP (a trusted CA file).
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    /// The cluster's NATS.
    #[error(transparent)]
    Relay(#[from] RelayError),
}

/// Why a component the store names could not be loaded (see
/// `Hub::load_stored`).
#[derive(Debug)]
pub(crate) enum StoredLoadError {
    /// Its file could not be read.
    Read(String),
    /// It did not load.
    Load(crate::sandbox::LoadError),
    /// Its outbound HTTP grant refused it: the refusal's code and message.
    Grant {
        /// The code.
        code: String,
        /// The message.
        message: String,
    },
}

impl std::fmt::Display for StoredLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(why) => f.write_str(why),
            Self::Load(err) => write!(f, "{err}"),
            Self::Grant { message, .. } => f.write_str(message),
        }
    }
}

/// How the uploaded nodes were loaded again when the hub started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Loaded from the compile cache.
    pub cached: usize,
    /// Compiled anew (the artifact was missing or unusable).
    pub compiled: usize,
    /// Not loaded (logged); their uploads stay recorded.
    pub failed: usize,
    /// Still loading.
    pub pending: usize,
}

/// The hub: its state and everything it does.
#[derive(Debug)]
pub struct Hub {
    store: Arc<dyn Store>,
    registry: Mutex<Registry>,
    switchboard: Switchboard,
    signer: WsTokenSigner,
    metrics: Metrics,
    public_ws_url: Option<String>,
    upload_wait: Duration,
    catalog: Catalog,
    quota: UploadQuota,
    keepalive: Duration,
    /// Each account's uploads compiling and waiting to (see `uploads`).
    compile_lanes: Lanes,
    /// Compiles at once across all accounts.
    compiles: Arc<tokio::sync::Semaphore>,
    /// Held while a component file is stored and its node recorded, or
    /// checked for users and removed: one account's delete never removes
    /// the file another account's upload of the same bytes just stored.
    component_files: tokio::sync::Mutex<()>,
    /// Runs the uploaded nodes the hub runs itself.
    runner: Runner,
    /// Uploads read from the store at start-up and not loaded yet: an
    /// event for one waits until it is.
    restoring: Mutex<HashSet<(AccountId, String)>>,
    restored: tokio::sync::watch::Sender<Restored>,
    secrets: SecretBox,
    callers: Mutex<HashMap<String, (Caller, Instant)>>,
    /// Accounts' limits as read from the store, and when (see
    /// [`LIMITS_RECHECK`]).
    limits: Mutex<HashMap<AccountId, (AccountLimits, Instant)>>,
    token_recheck: Duration,
    exosphere_lease: Duration,
    /// The Exosphere state managers of the accounts: one per hub, however
    /// many routers serve it.
    exosphere: Arc<ExosphereState>,
    /// Uploaded nodes' outbound HTTP: one pooled client per account.
    outbound: Arc<Outbound>,
    /// The store is shared with other hubs (PostgreSQL): uploads they take
    /// are followed (`cluster`).
    shared: bool,
    /// Held while loading an upload another hub took.
    following: tokio::sync::Mutex<()>,
    /// The other hubs, over NATS, when in a cluster.
    relay: Option<relay::Relay>,
    /// Events on their way to the store's history.
    history: history::History,
    /// Each node's last hour, for the dashboard's charts.
    stats: stats::Stats,
    /// Signs the dashboard's sessions.
    sessions: SessionSigner,
    /// Versions kept of each upload.
    keep_versions: usize,
    /// How much event history each account keeps.
    retention: super::store::Retention,
}

/// What the hub keeps for its Exosphere state-manager API (the rules are
/// `crate::exosphere::manager`'s; the routes are `http::exosphere`).
#[derive(Debug, Default)]
pub struct ExosphereState {
    /// Every account's state manager.
    pub managers: Mutex<HashMap<AccountId, crate::exosphere::manager::Manager>>,
    /// Set once the saved records are loaded (on the first request).
    pub loaded: tokio::sync::OnceCell<()>,
    /// Held while changes are taken and saved, so saves land in order.
    pub saving: tokio::sync::Mutex<()>,
    /// Whether the cron loop runs.
    pub cron_started: std::sync::atomic::AtomicBool,
}

impl Hub {
    /// Opens the hub's store (PostgreSQL at `config.database`, else SQLite
    /// in `config.data_dir`, or in memory) and its signing key; see
    /// [`with_store`](Self::with_store).
    pub async fn open(config: &HubConfig) -> Result<Arc<Self>, OpenError> {
        let store: Arc<dyn Store> = match &config.database {
            Some(url) => Arc::new(PostgresStore::connect(url).await?),
            None => Arc::new(SqliteStore::open(config.data_dir.as_deref())?),
        };
        Self::with_store(config, store).await
    }

    /// The hub on `store`. Uploaded nodes are loaded again in the
    /// background, never before this returns: loading runs the guest's
    /// `info`, and a hub must listen whatever its tenants uploaded. Each
    /// comes from the compile cache in milliseconds, or is compiled anew
    /// when the artifact is gone (after a node-host upgrade); an event for a
    /// node not loaded yet waits for it. One that cannot be loaded is logged
    /// and skipped; its upload stays recorded.
    pub(crate) async fn with_store(
        config: &HubConfig,
        store: Arc<dyn Store>,
    ) -> Result<Arc<Self>, OpenError> {
        let signing_key = store.signing_key().await?;
        let signer = WsTokenSigner::new(signing_key);
        let sessions = SessionSigner::new(&signing_key);
        let catalog = Catalog::open(
            config.data_dir.as_deref(),
            config.components_dir.as_deref(),
            config.sandbox.clone(),
        )
        .map_err(|source| StoreError::DataDir {
            path: config
                .components_dir
                .clone()
                .or_else(|| config.data_dir.clone())
                .unwrap_or_default(),
            source,
        })?;
        let uploaded = store.all_uploaded().await?;
        let restoring = uploaded
            .iter()
            .map(|(account, record)| (*account, record.name.clone()))
            .collect();
        let (restored, _) = tokio::sync::watch::channel(Restored {
            pending: uploaded.len(),
            ..Restored::default()
        });
        let secrets = SecretBox::open(config.data_dir.as_deref())?;
        if config.database.is_some() {
            let check = secrets.key_check();
            if store.claim_setting("secrets_key_check", &check).await? != check {
                return Err(SecretsError::KeyMismatch.into());
            }
        }
        let outbound = Outbound::new(&config.outbound)?;
        let relay = match &config.nats {
            Some(url) => Some(relay::Relay::connect(url).await?),
            None => None,
        };
        let metrics = Metrics::new("hub");
        let executors = Executors::new("node-host-event", MAX_RUNNING, Some(IDLE_FOR));
        let history = history::History::start(store.clone(), config.history.retention);
        let hub = Arc::new(Self {
            history,
            stats: stats::Stats::default(),
            sessions,
            keep_versions: config.history.keep_versions.max(1),
            retention: config.history.retention,
            store,
            registry: Mutex::default(),
            switchboard: Switchboard::default(),
            signer,
            runner: Runner::new(executors, metrics.clone()).making_ahead(true),
            metrics,
            public_ws_url: config.public_ws_url.clone(),
            upload_wait: config.upload_wait,
            catalog,
            quota: config.quota,
            keepalive: config.keepalive,
            compile_lanes: Lanes::default(),
            compiles: Arc::new(tokio::sync::Semaphore::new(COMPILES_AT_ONCE)),
            component_files: tokio::sync::Mutex::new(()),
            restoring: Mutex::new(restoring),
            restored,
            secrets,
            callers: Mutex::default(),
            limits: Mutex::default(),
            token_recheck: config.token_recheck,
            exosphere_lease: config.exosphere_lease,
            exosphere: Arc::default(),
            outbound,
            shared: config.database.is_some(),
            following: tokio::sync::Mutex::new(()),
            relay,
        });
        if let Some(relay) = &hub.relay {
            relay.start(Arc::downgrade(&hub)).await?;
        }
        tokio::spawn(hub.clone().restore(uploaded));
        if hub.shared {
            tokio::spawn(Self::follow_uploads(
                Arc::downgrade(&hub),
                config.token_recheck,
            ));
        }
        Ok(hub)
    }

    /// The info of every node the account uploaded and the hub has loaded.
    pub fn uploaded_infos(&self, account: AccountId) -> Vec<crate::sandbox::NodeInfo> {
        self.catalog
            .list(account)
            .iter()
            .map(|node| node.component.info().clone())
            .collect()
    }

    /// The hub's Exosphere state managers.
    pub fn exosphere(&self) -> Arc<ExosphereState> {
        self.exosphere.clone()
    }

    /// How long an Exosphere state handed to a runtime is held for it.
    pub fn exosphere_lease(&self) -> Duration {
        self.exosphere_lease
    }

    /// How far loading the uploads again has come.
    pub fn restored(&self) -> Restored {
        *self.restored.borrow()
    }

    /// Waits until every upload is loaded again (or failed to).
    pub async fn restore_finished(&self) -> Restored {
        let mut progress = self.restored.subscribe();
        let finished = progress
            .wait_for(|restored| restored.pending == 0)
            .await
            .map(|restored| *restored);
        finished.unwrap_or_else(|_| self.restored())
    }

    /// Loads `uploaded` again, as many at once as compiles may run, and
    /// installs each unless an upload replaced it meanwhile.
    async fn restore(self: Arc<Self>, uploaded: Vec<(AccountId, UploadedNode)>) {
        let mut loading = tokio::task::JoinSet::new();
        for (account, record) in uploaded {
            let place = self.compiles.clone().acquire_owned().await;
            let hub = self.clone();
            loading.spawn(async move {
                let _place = place;
                let loaded = hub.load_stored(account, &record.sha256).await;
                hub.restored_one(account, record, loaded.map_err(|err| err.to_string()));
            });
        }
        while loading.join_next().await.is_some() {}
        let restored = self.restored();
        tracing::info!(?restored, "loaded the uploaded nodes again");
    }

    /// Loads the stored component `sha256` as a node of `account`: read
    /// from the blobs and loaded off the async threads (from the compile
    /// cache when its code is there; true when it was compiled anew), then
    /// given the node's HTTP grant. How a restart, a hub following another's
    /// upload and a rollback all load a component the store names.
    pub(super) async fn load_stored(
        self: &Arc<Self>,
        account: AccountId,
        sha256: &str,
    ) -> Result<(crate::sandbox::NodeComponent, bool), StoredLoadError> {
        let loader = self.clone();
        let sha256 = sha256.to_owned();
        let (component, compiled) = tokio::task::spawn_blocking(move || {
            let bytes = loader.catalog.blobs().get(&sha256).map_err(|err| {
                StoredLoadError::Read(format!("cannot read its component: {err}"))
            })?;
            loader.catalog.load(&bytes).map_err(StoredLoadError::Load)
        })
        .await
        .unwrap_or_else(|err| Err(StoredLoadError::Read(err.to_string())))?;
        let component = self
            .with_granted_http(account, component, grants::Loading::Restored)
            .await
            .map_err(|(code, message)| StoredLoadError::Grant { code, message })?;
        Ok((component, compiled))
    }

    /// Installs one restored node and counts it.
    fn restored_one(
        &self,
        account: AccountId,
        record: UploadedNode,
        loaded: Result<(crate::sandbox::NodeComponent, bool), String>,
    ) {
        let key = (account, record.name.clone());
        let outcome = match loaded {
            Ok((component, compiled)) => {
                let sha256 = record.sha256.clone();
                let installed = InstalledNode {
                    component: Arc::new(component),
                    record,
                };
                if self.catalog.install_if_absent(account, installed) {
                    self.announce(&sha256);
                }
                Ok(compiled)
            }
            Err(err) => {
                tracing::error!(
                    account,
                    node = %record.name,
                    "cannot load the uploaded node, skipping it: {err}"
                );
                Err(())
            }
        };
        self.restoring
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&key);
        self.restored.send_modify(|restored| {
            restored.pending -= 1;
            match outcome {
                Ok(true) => restored.compiled += 1,
                Ok(false) => restored.cached += 1,
                Err(()) => restored.failed += 1,
            }
        });
    }

    /// The account's uploaded node `name`; while it is being loaded again
    /// after a restart, waits for it until `deadline`. A hub of a cluster
    /// that does not have it looks in the shared store (another hub may
    /// have taken the upload).
    pub(crate) async fn node_when_loaded(
        self: &Arc<Self>,
        account: AccountId,
        name: &str,
        deadline: Instant,
    ) -> Option<Arc<InstalledNode>> {
        let mut progress = self.restored.subscribe();
        loop {
            if let Some(node) = self.catalog.get(account, name) {
                return Some(node);
            }
            let key = (account, name.to_owned());
            let restoring = self
                .restoring
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .contains(&key);
            if !restoring {
                // A registered node is never also an upload (each refuses the
                // other's name), so only an unknown name is looked up.
                let registered = self.registry().get(account, name, Instant::now()).is_some();
                if self.shared && !registered {
                    let _ =
                        tokio::time::timeout_at(deadline.into(), self.follow_upload(account, name))
                            .await;
                    return self.catalog.get(account, name);
                }
                return None;
            }
            let changed = tokio::time::timeout_at(deadline.into(), progress.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                return self.catalog.get(account, name);
            }
        }
    }

    /// The hubs of this hub's cluster that are alive (1 on its own): each
    /// runs its share of an account's concurrency and queue.
    pub(crate) fn hubs(&self) -> usize {
        self.relay.as_ref().map_or(1, relay::Relay::hubs)
    }

    /// The hub's store.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How often the hub pings each worker.
    pub(crate) fn keepalive(&self) -> Duration {
        self.keepalive
    }

    /// The hub's metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The caller behind an API token (the value of `Authorization: Bearer`);
    /// `None` when the request carries no `Authorization` at all.
    pub(crate) async fn authenticate(&self, token: Option<&str>) -> Result<Caller, HubError> {
        let token = token.ok_or(HubError::MissingAuth)?;
        if token.is_empty() {
            return Err(HubError::InvalidToken);
        }
        if let Some(caller) = self.remembered(token) {
            return Ok(caller);
        }
        let caller = self.store.authenticate(token).await?;
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        let Some(caller) = caller else {
            callers.remove(token);
            return Err(HubError::InvalidToken);
        };
        if callers.len() >= REMEMBERED_CALLERS {
            callers.clear();
        }
        callers.insert(token.to_owned(), (caller.clone(), Instant::now()));
        Ok(caller)
    }

    /// A caller let in less than one `token_recheck` ago whose token has
    /// not expired since.
    fn remembered(&self, token: &str) -> Option<Caller> {
        let callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        let (caller, checked) = callers.get(token)?;
        let expired = caller
            .expires_at
            .is_some_and(|expires| expires <= crate::hub::store::unix_seconds());
        (checked.elapsed() < self.token_recheck && !expired).then(|| caller.clone())
    }

    /// Refuses anything but a hosted-worker token; the token's id.
    pub(crate) async fn authenticate_worker(
        &self,
        token: Option<&str>,
    ) -> Result<TokenId, HubError> {
        let token = token.ok_or(HubError::MissingAuth)?;
        self.store
            .worker_token(token)
            .await?
            .ok_or(HubError::InvalidWorkerToken)
    }

    /// Signs in to the dashboard with an API token: the session cookie's
    /// value and who it is.
    pub(crate) async fn sign_in(&self, token: &str) -> Result<(String, Caller), HubError> {
        let caller = self.authenticate(Some(token.trim())).await?;
        let now = super::store::unix_seconds();
        let expires = caller
            .expires_at
            .map_or(now + SESSION_SECONDS, |at| at.min(now + SESSION_SECONDS));
        let session = self.sessions.issue(&SessionClaims {
            token: caller.token,
            account: caller.account,
            account_name: caller.account_name.clone(),
            read_only: caller.read_only,
            expires,
        });
        Ok((session, caller))
    }

    /// The caller behind a dashboard session: refused once the session has
    /// ended or its token was revoked or has expired.
    pub(crate) async fn session(&self, session: &str) -> Result<Caller, HubError> {
        let claims = self
            .sessions
            .verify(session, super::store::unix_seconds())
            .ok_or(HubError::InvalidToken)?;
        if !self.token_live(TokenKind::Api, claims.token).await {
            return Err(HubError::InvalidToken);
        }
        Ok(Caller {
            token: claims.token,
            expires_at: Some(claims.expires),
            account: claims.account,
            account_name: claims.account_name,
            read_only: claims.read_only,
        })
    }

    /// The CSRF token of a dashboard session.
    pub(crate) fn csrf(&self, session: &str) -> String {
        self.sessions.csrf(session)
    }

    /// True when `given` is the CSRF token of the dashboard session.
    pub(crate) fn csrf_ok(&self, session: &str, given: &str) -> bool {
        self.sessions.csrf_ok(session, given)
    }

    /// The account's worker connections.
    pub(crate) fn worker_links(&self, account: AccountId) -> Vec<super::switchboard::LinkView> {
        self.switchboard.links(account)
    }

    /// The last hour of the account's `node`, minute by minute.
    pub(crate) fn node_stats(&self, account: AccountId, node: &str) -> Vec<stats::MinuteFigures> {
        let minute = super::store::unix_millis().div_euclid(60_000);
        self.stats.last_hour(account, node, minute)
    }

    /// How many events the account keeps, and how many it may.
    pub(crate) async fn history_kept(&self, account: AccountId) -> Result<(u64, u64), HubError> {
        self.history.flush().await;
        let kept = self.store.history_count(account).await?;
        let limit = self.store.limits(account).await?.history_events;
        Ok((kept, limit.unwrap_or(self.retention.events)))
    }

    /// How often an open WebSocket's token is checked again.
    pub(crate) fn token_recheck(&self) -> Duration {
        self.token_recheck
    }

    /// False once the token `id` of `kind` was revoked or has expired. A
    /// store that cannot answer keeps the connection: an outage of the
    /// database must not drop every worker.
    pub(crate) async fn token_live(&self, kind: TokenKind, id: TokenId) -> bool {
        match self.store.token_live(kind, id).await {
            Ok(live) => live,
            Err(err) => {
                tracing::warn!("cannot check a connection's token, keeping it: {err}");
                true
            }
        }
    }
}

/// Refuses a read-only token where the request changes something.
pub(crate) fn require_write(caller: &Caller) -> Result<(), HubError> {
    match caller.read_only {
        true => Err(HubError::ReadOnlyToken),
        false => Ok(()),
    }
}
