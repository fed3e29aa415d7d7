//! The hub's durable state, behind the [`Store`] seam: accounts, their API
//! tokens (hashed at rest), hosted-worker tokens, the key that signs
//! WebSocket tokens, the nodes each account has uploaded (by sha256; the
//! bytes live in [`blobs`]), each account's limits, and its secrets (sealed
//! by `hub::secrets`, never stored in the clear).
//!
//! One implementation per database: [`sqlite`] (one hub, the default) and
//! [`postgres`] (the hubs of a cluster share it). Every implementation
//! passes the same suite of tests (`suite`). Registrations and connections
//! are deliberately not here: workers refresh them every minute, so they
//! live in memory and a restarted hub learns them again.

pub mod blobs;
mod postgres;
mod sqlite;
#[cfg(test)]
mod suite;

use std::path::PathBuf;

use crate::core::AccountId;
pub use crate::hub::secrets::Sealed;
pub use blobs::{Blobs, FsBlobs};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// What the hub keeps. Every method may block on I/O and so is async;
/// implementations never block an async thread.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Creates a new API token for `account` (creating the account if it is
    /// new), valid until `expires_at` (Unix seconds) or for ever, and returns
    /// it. Only its hash is stored: this is the one time it can be seen.
    async fn create_token(
        &self,
        account: &str,
        read_only: bool,
        expires_at: Option<i64>,
    ) -> Result<Issued, StoreError>;

    /// The caller behind an API token, or `None` for a token that is
    /// unknown, revoked or expired.
    async fn authenticate(&self, token: &str) -> Result<Option<Caller>, StoreError>;

    /// Creates a hosted-worker token and returns it (only its hash is kept).
    /// It lets `node-host run --hosted` fetch uploaded components and run
    /// every account's events; it opens no account API.
    async fn create_worker_token(&self) -> Result<Issued, StoreError>;

    /// The id of the hosted-worker token `token`, or `None` when it is not
    /// one of this hub's (or was revoked).
    async fn worker_token(&self, token: &str) -> Result<Option<TokenId>, StoreError>;

    /// True while the token `id` of `kind` exists and has not expired: how
    /// a hub finds out that a token it let in was revoked since.
    async fn token_live(&self, kind: TokenKind, id: TokenId) -> Result<bool, StoreError>;

    /// Every token of `kind`, oldest first (never their values).
    async fn tokens(&self, kind: TokenKind) -> Result<Vec<TokenRecord>, StoreError>;

    /// Deletes the token `id` of `kind`; false when there was none.
    async fn revoke_token(&self, kind: TokenKind, id: TokenId) -> Result<bool, StoreError>;

    /// How many accounts exist.
    async fn account_count(&self) -> Result<u64, StoreError>;

    /// Every account's id, in order.
    async fn account_ids(&self) -> Result<Vec<AccountId>, StoreError>;

    /// The id of the account called `name`.
    async fn account_id(&self, name: &str) -> Result<AccountId, StoreError>;

    /// Records a new version of `account`'s node `node.name` (one more than
    /// its newest; `node.version` is ignored) served by the component
    /// `node.sha256`, and makes it the current one. Of the node's versions
    /// the newest `keep` stay (the current one always); the rest are
    /// removed and their components named in the answer.
    async fn put_uploaded(
        &self,
        account: AccountId,
        node: &UploadedNode,
        keep: usize,
    ) -> Result<PutVersion, StoreError>;

    /// The versions kept of `account`'s node `name`, newest first.
    async fn versions(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Vec<UploadedNode>, StoreError>;

    /// Makes the kept `version` of `account`'s node `name` its current one
    /// and returns it; `None` when no such version is kept.
    async fn make_current(
        &self,
        account: AccountId,
        name: &str,
        version: i64,
    ) -> Result<Option<UploadedNode>, StoreError>;

    /// Forgets the upload `name` of `account` and all its versions, and
    /// names the components they used (empty when there was none).
    async fn delete_uploaded(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Vec<String>, StoreError>;

    /// `account`'s upload `name`, if any: how a hub of a cluster learns of
    /// an upload another hub took.
    async fn uploaded(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<UploadedNode>, StoreError>;

    /// `account`'s uploads, by name: what its quota counts in a cluster.
    async fn uploads_of(&self, account: AccountId) -> Result<Vec<UploadedNode>, StoreError>;

    /// Every account's uploads, for loading them at start-up.
    async fn all_uploaded(&self) -> Result<Vec<(AccountId, UploadedNode)>, StoreError>;

    /// True when any account's upload, current or kept version, still uses
    /// the component `sha256`.
    async fn sha256_in_use(&self, sha256: &str) -> Result<bool, StoreError>;

    /// The limits `account` has set; unset fields are `None` (the defaults).
    async fn limits(&self, account: AccountId) -> Result<LimitSettings, StoreError>;

    /// Sets the given fields of `account`'s limits, keeping the others.
    async fn set_limits(
        &self,
        account: AccountId,
        change: &LimitSettings,
    ) -> Result<(), StoreError>;

    /// Stores (or replaces) `account`'s sealed secret `name`.
    async fn put_secret(
        &self,
        account: AccountId,
        name: &str,
        sealed: &Sealed,
    ) -> Result<(), StoreError>;

    /// Forgets `account`'s secret `name`; false when there was none.
    async fn delete_secret(&self, account: AccountId, name: &str) -> Result<bool, StoreError>;

    /// `account`'s sealed secret `name`, if set.
    async fn secret(&self, account: AccountId, name: &str) -> Result<Option<Sealed>, StoreError>;

    /// The names of `account`'s secrets and when each was set, by name.
    async fn secret_names(&self, account: AccountId) -> Result<Vec<(String, i64)>, StoreError>;

    /// The origins `account` may reach over HTTP: its policy (set by the
    /// hub's operator) when `node` is `None`, else its grant to `node`.
    /// `None` when none is set.
    async fn http_origins(
        &self,
        account: AccountId,
        node: Option<&str>,
    ) -> Result<Option<Vec<String>>, StoreError>;

    /// Sets (or, with `None`, removes) what [`http_origins`](Self::http_origins)
    /// returns; false when removing found nothing.
    async fn set_http_origins(
        &self,
        account: AccountId,
        node: Option<&str>,
        origins: Option<Vec<String>>,
    ) -> Result<bool, StoreError>;

    /// The setting `key`: `candidate` is stored unless a value is there
    /// already, and the stored value is returned (the first caller's, when
    /// hubs of a cluster race).
    async fn claim_setting(&self, key: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// The key that signs WebSocket tokens, made on first use and kept, so
    /// tokens stay valid across a restart of the hub.
    async fn signing_key(&self) -> Result<[u8; 32], StoreError>;

    /// Saves `account`'s Exosphere state-manager records, each replacing
    /// the one of the same kind and key (or deleting it, when it has no
    /// body), all or none.
    async fn save_exosphere(
        &self,
        account: AccountId,
        records: Vec<ExosphereRecord>,
    ) -> Result<(), StoreError>;

    /// Every account's Exosphere records.
    async fn exosphere_records(&self) -> Result<Vec<(AccountId, ExosphereRecord)>, StoreError>;

    /// Writes what is known of some events, all or none, then prunes each
    /// account of `prune`: to its newest `newest` events when given, and
    /// none older than `max_age_s` before the first younger one (by id:
    /// rows are written about in the order of their `at_ms`, an event that
    /// ran long a few minutes after younger ones at most, so pruning by age
    /// reads only what it deletes, not every row of the account each
    /// batch; such an event goes with the first younger one, minutes
    /// later). A write `into` a kept row merges into it
    /// (see [`HistoryEvent::merge`]); any other adds a row. Answers the id
    /// of each write's row, in order.
    async fn record_history(
        &self,
        writes: Vec<HistoryWrite>,
        prune: Vec<Prune>,
    ) -> Result<Vec<i64>, StoreError>;

    /// `account`'s kept events matching `query`, oldest first.
    async fn history(
        &self,
        account: AccountId,
        query: &HistoryQuery,
    ) -> Result<Vec<HistoryEvent>, StoreError>;

    /// How many events `account` has kept: what its retention bounds.
    async fn history_count(&self, account: AccountId) -> Result<u64, StoreError>;

    /// The configuration of `account`'s node `node`, by key.
    async fn node_config(
        &self,
        account: AccountId,
        node: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Sets (or, with `None`, removes) the configuration `key` of
    /// `account`'s node `node`; false when removing found nothing.
    async fn set_node_config(
        &self,
        account: AccountId,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Forgets the kept events of `account`'s node `node`.
    async fn forget_history(&self, account: AccountId, node: &str) -> Result<(), StoreError>;
}

/// What [`Store::put_uploaded`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutVersion {
    /// The new version's number.
    pub version: i64,
    /// The components of the versions it removed (beyond the kept count).
    pub dropped: Vec<String>,
}

/// One event as the hub keeps it. Every field but the key (account, uuid)
/// may be missing, because two parts of the hub learn of one event: the
/// API that answered the caller (caller, outcome, duration) and the
/// sandbox that ran it (fuel, logs, its own outcome).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HistoryEvent {
    /// Its place in the history: higher is newer (0 before it is stored).
    pub id: i64,
    /// The account (not shown: every listing is of one account).
    #[serde(skip)]
    pub account: AccountId,
    /// The node.
    pub node: String,
    /// The event's uuid (the execute answer's).
    pub uuid: String,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The id of the API token that asked for it.
    pub caller: Option<TokenId>,
    /// `ok` or the error code the caller was answered (the sandbox's when
    /// no caller's is known).
    pub outcome: Option<String>,
    /// `ok` or the error code of the sandbox that ran it: it differs from
    /// `outcome` when, say, the caller stopped waiting (`timeout`) and the
    /// sandbox was then stopped by its deadline (`deadline`).
    pub ran: Option<String>,
    /// The error's message.
    pub message: Option<String>,
    /// How long the caller waited, in microseconds.
    pub duration_us: Option<i64>,
    /// Fuel it burnt.
    pub fuel: Option<i64>,
    /// The version of the node that ran it.
    pub version: Option<i64>,
    /// What it printed and logged: the JSON of the captured streams.
    #[serde(skip)]
    pub logs: Option<String>,
    /// True when this record is the caller's view (its outcome wins).
    #[serde(skip)]
    pub from_caller: bool,
}

/// One write of [`Store::record_history`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryWrite {
    /// What is known of the event.
    pub event: HistoryEvent,
    /// The kept row (its id) it completes, or `None` for a new row.
    pub into: Option<i64>,
}

impl HistoryEvent {
    /// Adds what `later`, the other part's record of the same event, knows:
    /// its fields where it has them, and its outcome and message when it is
    /// the caller's view or this record has none. The place in the history
    /// (id, time) stays this record's.
    pub fn merge(&mut self, later: HistoryEvent) {
        if later.from_caller || self.outcome.is_none() {
            self.outcome = later.outcome;
            self.message = later.message;
        }
        self.caller = later.caller.or(self.caller);
        self.ran = later.ran.or(self.ran.take());
        self.duration_us = later.duration_us.or(self.duration_us);
        self.fuel = later.fuel.or(self.fuel);
        self.version = later.version.or(self.version);
        self.logs = later.logs.or(self.logs.take());
        self.from_caller |= later.from_caller;
    }
}

/// How much history each account keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events at most.
    pub events: u64,
    /// Seconds at most.
    pub max_age_s: i64,
}

impl Default for Retention {
    /// 1,000 events and 7 days per account.
    fn default() -> Self {
        Self {
            events: 1_000,
            max_age_s: 7 * 24 * 3600,
        }
    }
}

/// How [`Store::record_history`] prunes one account's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    /// Whose.
    pub account: AccountId,
    /// Events older than this many seconds go.
    pub max_age_s: i64,
    /// The newest this many events stay, when given: counting them walks
    /// them all, so a caller that writes often counts now and then.
    pub newest: Option<u64>,
}

/// Which kept events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only this node's.
    pub node: Option<String>,
    /// Only events newer than this id (for following).
    pub after: Option<i64>,
    /// The newest this many (of those matching).
    pub limit: u32,
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// One saved record of an Exosphere state manager (a node, graph, run or
/// state), its body JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExosphereRecord {
    /// `node`, `graph`, `run`, `state` or `united`.
    pub kind: String,
    /// Which one.
    pub key: String,
    /// Its JSON; `None` deletes the record.
    pub body: Option<String>,
}

/// Prefix of every API token, so a leaked one is recognisable in logs and
/// by secret scanners.
pub const TOKEN_PREFIX: &str = "nh_";

/// Prefix of every hosted-worker token.
pub const WORKER_TOKEN_PREFIX: &str = "nhw_";

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the hub data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database cannot be reached (down, restarting, unreachable): the
    /// request may succeed later.
    #[error(
        "hub database unavailable: cannot {what}: {source}; the hub retries on the next \
         request (check that the database is up and reachable)"
    )]
    Unavailable {
        /// What the store was doing.
        what: &'static str,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `--database` is not a database URL this hub understands.
    #[error(
        "invalid --database URL: {reason}; give postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE \
         (or leave it out for SQLite in the data directory)"
    )]
    InvalidDatabaseUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The database failed.
    #[error("hub database: cannot {what}: {source}")]
    Backend {
        /// What the store was doing.
        what: &'static str,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database was written by a newer node-host.
    #[error(
        "the hub database has schema version {found}, newer than this node-host knows ({known}); \
         upgrade node-host or use another --data directory"
    )]
    TooNew {
        /// The database's version.
        found: usize,
        /// The newest version this build knows.
        known: usize,
    },
    /// An account name that is not allowed.
    #[error("invalid account name `{0}`: use 1 to 64 letters, digits, `-`, `_` or `.`")]
    InvalidAccountName(String),
    /// No account has this name.
    #[error("no account is named `{0}`; create it with `node-host hub token create --account {0}`")]
    UnknownAccount(String),
}

/// A token's id: what lists show and what revokes it (never its value).
pub type TokenId = i64;

/// The two kinds of token a hub issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An account's API token (`nh_…`).
    Api,
    /// A hosted worker's token (`nhw_…`).
    Worker,
}

/// A token just made: the one time its value is seen.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Its id.
    pub id: TokenId,
    /// Its value, to hand to whoever will use it.
    pub token: String,
}

/// What a list of tokens shows of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its id.
    pub id: TokenId,
    /// The account it belongs to (`None` for a hosted-worker token).
    pub account: Option<String>,
    /// A read-only API token.
    pub read_only: bool,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it stops being accepted (Unix seconds), if ever.
    pub expires_at: Option<i64>,
}

/// Who a valid API token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's id.
    pub token: TokenId,
    /// When the token stops being accepted (Unix seconds), if ever.
    pub expires_at: Option<i64>,
    /// The account's id.
    pub account: AccountId,
    /// The account's name.
    pub account_name: String,
    /// Read-only tokens may list and execute, never register.
    pub read_only: bool,
}

/// A node an account uploaded: which component serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedNode {
    /// The node's name (from its info).
    pub name: String,
    /// The hex sha256 of the component.
    pub sha256: String,
    /// The component's size in bytes.
    pub size: u64,
    /// When it was uploaded (Unix seconds).
    pub uploaded_at: i64,
    /// Its version: the count of the node's uploads when it was uploaded
    /// (1 for the first).
    pub version: i64,
}

/// An account's limit settings as stored: `None` means the hub's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LimitSettings {
    /// Fuel per event.
    pub fuel: Option<u64>,
    /// Linear memory per instance, in bytes.
    pub memory_bytes: Option<u64>,
    /// Wall-clock deadline per event, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Output size per event, in bytes.
    pub output_bytes: Option<u64>,
    /// Events of the account running at once.
    pub concurrency: Option<u64>,
    /// Events of the account waiting to run.
    pub queue: Option<u64>,
    /// What is kept of each captured stream (stdout, stderr, log) per event.
    pub log_bytes: Option<u64>,
    /// Versions kept of each of the account's uploaded nodes.
    pub keep_versions: Option<u64>,
    /// Events the account keeps in the event history.
    pub history_events: Option<u64>,
}

impl LimitSettings {
    /// `self` with every field that `change` sets replaced.
    pub fn merged(&self, change: &LimitSettings) -> LimitSettings {
        LimitSettings {
            fuel: change.fuel.or(self.fuel),
            memory_bytes: change.memory_bytes.or(self.memory_bytes),
            timeout_ms: change.timeout_ms.or(self.timeout_ms),
            output_bytes: change.output_bytes.or(self.output_bytes),
            concurrency: change.concurrency.or(self.concurrency),
            queue: change.queue.or(self.queue),
            log_bytes: change.log_bytes.or(self.log_bytes),
            keep_versions: change.keep_versions.or(self.keep_versions),
            history_events: change.history_events.or(self.history_events),
        }
    }
}

/// Account names: 1 to 64 of `[A-Za-z0-9._-]`.
pub fn valid_account_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Random bytes in a token: 256 bits, beyond guessing.
const TOKEN_BYTES: usize = 32;

/// A fresh token: `prefix` and 256 random bits, base64url.
fn new_token(prefix: &str) -> String {
    let random: [u8; TOKEN_BYTES] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random))
}

/// Tokens carry 256 random bits, so one round of SHA-256 is enough to make
/// a stolen database useless for logging in; a slow password hash would
/// only slow every request down.
fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}
