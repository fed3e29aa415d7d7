//! The [`Store`] in SQLite: one database file in the hub's data directory
//! (or in memory for the embedded hub), behind one connection.
//!
//! Every call of the trait runs on tokio's blocking pool, never on an async
//! thread. Schema changes go through [`MIGRATIONS`], applied in order and
//! recorded in SQLite's `user_version`.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rand::RngCore as _;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::{
    Caller, ExosphereRecord, HistoryEvent, HistoryQuery, HistoryWrite, Issued, LimitSettings,
    Prune, PutVersion, Sealed, Store, StoreError, TOKEN_PREFIX, TokenId, TokenKind, TokenRecord,
    UploadedNode, WORKER_TOKEN_PREFIX, new_token, token_hash, unix_seconds, valid_account_name,
};
use crate::core::AccountId;

mod versions;

/// The database file inside the hub's data directory.
pub const DATABASE_FILE: &str = "hub.sqlite3";

/// Schema versions, in order; entry `i` takes the schema from version `i`
/// to `i + 1`. Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        token_sha256 TEXT NOT NULL UNIQUE,
        read_only INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
",
    "
    CREATE TABLE uploaded_nodes (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        uploaded_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, name)
    );
    CREATE TABLE account_limits (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        fuel INTEGER,
        memory_bytes INTEGER,
        timeout_ms INTEGER,
        output_bytes INTEGER,
        concurrency INTEGER,
        queue INTEGER
    );
",
    "
    CREATE TABLE secrets (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, name)
    );
",
    "
    CREATE TABLE worker_tokens (
        id INTEGER PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
",
    "
    ALTER TABLE account_limits ADD COLUMN log_bytes INTEGER;
",
    "
    ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
",
    "
    CREATE TABLE exosphere_records (
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, kind, key)
    );
",
    "
    CREATE TABLE http_origins (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        origins TEXT NOT NULL,
        PRIMARY KEY (account_id, node)
    );
",
    "
    ALTER TABLE uploaded_nodes ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE node_versions (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        uploaded_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, name, version)
    );
    CREATE INDEX node_versions_sha256 ON node_versions (sha256);
    INSERT INTO node_versions (account_id, name, version, sha256, size, uploaded_at)
        SELECT account_id, name, 1, sha256, size, uploaded_at FROM uploaded_nodes;
    CREATE TABLE event_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        uuid TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        caller INTEGER,
        outcome TEXT,
        ran TEXT,
        message TEXT,
        duration_us INTEGER,
        fuel INTEGER,
        version INTEGER,
        logs TEXT,
        UNIQUE (account_id, uuid)
    );
    CREATE INDEX event_history_node ON event_history (account_id, node, id);
    ALTER TABLE account_limits ADD COLUMN keep_versions INTEGER;
    ALTER TABLE account_limits ADD COLUMN history_events INTEGER;
    CREATE TABLE node_config (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (account_id, node, key)
    );
",
    // The history without its (account, uuid) index: the hub merges an
    // event's two records itself, and a random uuid was the costliest
    // index to keep. Pruning walks (account, id).
    "
    CREATE TABLE event_history_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        uuid TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        caller INTEGER,
        outcome TEXT,
        ran TEXT,
        message TEXT,
        duration_us INTEGER,
        fuel INTEGER,
        version INTEGER,
        logs TEXT
    );
    INSERT INTO event_history_new (id, account_id, node, uuid, at_ms, caller, outcome, ran,
            message, duration_us, fuel, version, logs)
        SELECT id, account_id, node, uuid, at_ms, caller, outcome, ran,
            message, duration_us, fuel, version, logs FROM event_history;
    DROP TABLE event_history;
    ALTER TABLE event_history_new RENAME TO event_history;
    CREATE INDEX event_history_account ON event_history (account_id, id);
    CREATE INDEX event_history_node ON event_history (account_id, node, id);
",
    // The history without AUTOINCREMENT and without its reference to the
    // account (accounts are never deleted): each kept event updated
    // `sqlite_sequence` and looked its account up, a third of what
    // writing it cost. Ids still never come back: the hub numbers the rows
    // itself from the high-water mark kept in `settings`.
    "
    CREATE TABLE event_history_new (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL,
        node TEXT NOT NULL,
        uuid TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        caller INTEGER,
        outcome TEXT,
        ran TEXT,
        message TEXT,
        duration_us INTEGER,
        fuel INTEGER,
        version INTEGER,
        logs TEXT
    );
    INSERT INTO event_history_new (id, account_id, node, uuid, at_ms, caller, outcome, ran,
            message, duration_us, fuel, version, logs)
        SELECT id, account_id, node, uuid, at_ms, caller, outcome, ran,
            message, duration_us, fuel, version, logs FROM event_history;
    INSERT INTO settings (key, value)
        SELECT 'event_history.next_id', seq + 1 FROM sqlite_sequence WHERE name = 'event_history'
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
    DROP TABLE event_history;
    ALTER TABLE event_history_new RENAME TO event_history;
    CREATE INDEX event_history_account ON event_history (account_id, id);
    CREATE INDEX event_history_node ON event_history (account_id, node, id);
",
];

/// The `node` of an account's policy row in `http_origins` (node names are
/// never empty).
const POLICY_ROW: &str = "";

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Backend {
        what,
        source: Box::new(source),
    }
}

/// The hub's database in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Arc<Mutex<Database>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir`, or an in-memory
    /// database that lives as long as the store when `data_dir` is `None`.
    pub fn open(data_dir: Option<&Path>) -> Result<Self, StoreError> {
        Ok(Self {
            db: Arc::new(Mutex::new(Database::open(data_dir)?)),
        })
    }

    /// Runs `query` on the database off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut db = db.lock().unwrap_or_else(PoisonError::into_inner);
            query(&mut db)
        })
        .await
        .map_err(|err| StoreError::Backend {
            what: "run a query",
            source: Box::new(err),
        })?
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create_token(
        &self,
        account: &str,
        read_only: bool,
        expires_at: Option<i64>,
    ) -> Result<Issued, StoreError> {
        let account = account.to_owned();
        self.with(move |db| db.create_token(&account, read_only, expires_at))
            .await
    }

    async fn authenticate(&self, token: &str) -> Result<Option<Caller>, StoreError> {
        let hash = token_hash(token);
        self.with(move |db| db.authenticate(&hash)).await
    }

    async fn create_worker_token(&self) -> Result<Issued, StoreError> {
        self.with(Database::create_worker_token).await
    }

    async fn worker_token(&self, token: &str) -> Result<Option<TokenId>, StoreError> {
        let hash = token_hash(token);
        self.with(move |db| db.worker_token(&hash)).await
    }

    async fn token_live(&self, kind: TokenKind, id: TokenId) -> Result<bool, StoreError> {
        self.with(move |db| db.token_live(kind, id)).await
    }

    async fn tokens(&self, kind: TokenKind) -> Result<Vec<TokenRecord>, StoreError> {
        self.with(move |db| db.tokens(kind)).await
    }

    async fn revoke_token(&self, kind: TokenKind, id: TokenId) -> Result<bool, StoreError> {
        self.with(move |db| db.revoke_token(kind, id)).await
    }

    async fn account_count(&self) -> Result<u64, StoreError> {
        self.with(|db| db.account_count()).await
    }

    async fn account_ids(&self) -> Result<Vec<AccountId>, StoreError> {
        self.with(|db| db.account_ids()).await
    }

    async fn account_id(&self, name: &str) -> Result<AccountId, StoreError> {
        let name = name.to_owned();
        self.with(move |db| db.account_id(&name)).await
    }

    async fn put_uploaded(
        &self,
        account: AccountId,
        node: &UploadedNode,
        keep: usize,
    ) -> Result<PutVersion, StoreError> {
        let node = node.clone();
        self.with(move |db| db.put_uploaded(account, &node, keep))
            .await
    }

    async fn versions(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Vec<UploadedNode>, StoreError> {
        let name = name.to_owned();
        self.with(move |db| db.versions(account, &name)).await
    }

    async fn make_current(
        &self,
        account: AccountId,
        name: &str,
        version: i64,
    ) -> Result<Option<UploadedNode>, StoreError> {
        let name = name.to_owned();
        self.with(move |db| db.make_current(account, &name, version))
            .await
    }

    async fn delete_uploaded(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Vec<String>, StoreError> {
        let name = name.to_owned();
        self.with(move |db| db.delete_uploaded(account, &name))
            .await
    }

    async fn record_history(
        &self,
        writes: Vec<HistoryWrite>,
        prune: Vec<Prune>,
    ) -> Result<Vec<i64>, StoreError> {
        self.with(move |db| db.record_history(&writes, &prune))
            .await
    }

    async fn history(
        &self,
        account: AccountId,
        query: &HistoryQuery,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let query = query.clone();
        self.with(move |db| db.history(account, &query)).await
    }

    async fn history_count(&self, account: AccountId) -> Result<u64, StoreError> {
        self.with(move |db| db.history_count(account)).await
    }

    async fn node_config(
        &self,
        account: AccountId,
        node: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let node = node.to_owned();
        self.with(move |db| db.node_config(account, &node)).await
    }

    async fn set_node_config(
        &self,
        account: AccountId,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (node, key, value) = (node.to_owned(), key.to_owned(), value.map(str::to_owned));
        self.with(move |db| db.set_node_config(account, &node, &key, value.as_deref()))
            .await
    }

    async fn forget_history(&self, account: AccountId, node: &str) -> Result<(), StoreError> {
        let node = node.to_owned();
        self.with(move |db| db.forget_history(account, &node)).await
    }

    async fn uploaded(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<UploadedNode>, StoreError> {
        let name = name.to_owned();
        self.with(move |db| db.uploaded(account, &name)).await
    }

    async fn uploads_of(&self, account: AccountId) -> Result<Vec<UploadedNode>, StoreError> {
        self.with(move |db| db.uploads_of(account)).await
    }

    async fn all_uploaded(&self) -> Result<Vec<(AccountId, UploadedNode)>, StoreError> {
        self.with(|db| db.all_uploaded()).await
    }

    async fn sha256_in_use(&self, sha256: &str) -> Result<bool, StoreError> {
        let sha256 = sha256.to_owned();
        self.with(move |db| db.sha256_in_use(&sha256)).await
    }

    async fn limits(&self, account: AccountId) -> Result<LimitSettings, StoreError> {
        self.with(move |db| db.limits(account)).await
    }

    async fn set_limits(
        &self,
        account: AccountId,
        change: &LimitSettings,
    ) -> Result<(), StoreError> {
        let change = *change;
        self.with(move |db| db.set_limits(account, &change)).await
    }

    async fn put_secret(
        &self,
        account: AccountId,
        name: &str,
        sealed: &Sealed,
    ) -> Result<(), StoreError> {
        let (name, sealed) = (name.to_owned(), sealed.clone());
        self.with(move |db| db.put_secret(account, &name, &sealed))
            .await
    }

    async fn delete_secret(&self, account: AccountId, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.with(move |db| db.delete_secret(account, &name)).await
    }

    async fn secret(&self, account: AccountId, name: &str) -> Result<Option<Sealed>, StoreError> {
        let name = name.to_owned();
        self.with(move |db| db.secret(account, &name)).await
    }

    async fn secret_names(&self, account: AccountId) -> Result<Vec<(String, i64)>, StoreError> {
        self.with(move |db| db.secret_names(account)).await
    }

    async fn claim_setting(&self, key: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (key, candidate) = (key.to_owned(), candidate.to_vec());
        self.with(move |db| db.claim_setting(&key, &candidate))
            .await
    }

    async fn signing_key(&self) -> Result<[u8; 32], StoreError> {
        self.with(Database::signing_key).await
    }

    async fn save_exosphere(
        &self,
        account: AccountId,
        records: Vec<ExosphereRecord>,
    ) -> Result<(), StoreError> {
        self.with(move |db| db.save_exosphere(account, &records))
            .await
    }

    async fn exosphere_records(&self) -> Result<Vec<(AccountId, ExosphereRecord)>, StoreError> {
        self.with(|db| db.exosphere_records()).await
    }

    async fn http_origins(
        &self,
        account: AccountId,
        node: Option<&str>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let node = node.unwrap_or(POLICY_ROW).to_owned();
        self.with(move |db| db.http_origins(account, &node)).await
    }

    async fn set_http_origins(
        &self,
        account: AccountId,
        node: Option<&str>,
        origins: Option<Vec<String>>,
    ) -> Result<bool, StoreError> {
        let node = node.unwrap_or(POLICY_ROW).to_owned();
        self.with(move |db| db.set_http_origins(account, &node, origins.as_deref()))
            .await
    }
}

/// The connection and the queries, synchronous.
#[derive(Debug)]
struct Database {
    db: Connection,
    /// The id of the next event written to the history, once read (see
    /// [`Database::record_history`]).
    next_history_id: Option<i64>,
}

impl Database {
    /// Opens (creating if needed) the database in `data_dir`, or an in-memory
    /// database that lives as long as the process when `data_dir` is `None`.
    fn open(data_dir: Option<&Path>) -> Result<Self, StoreError> {
        let db = match data_dir {
            Some(dir) => {
                create_private_dir(dir)?;
                let path = dir.join(DATABASE_FILE);
                let db = Connection::open(&path).map_err(sql("open"))?;
                // It holds the key that signs WebSocket tokens and every
                // account's sealed secrets: its owner's only, from the start.
                make_private(&path, 0o600).map_err(|source| StoreError::DataDir {
                    path: path.clone(),
                    source,
                })?;
                db.pragma_update(None, "journal_mode", "WAL")
                    .map_err(sql("set WAL mode"))?;
                // In WAL mode NORMAL syncs at checkpoints, not at every
                // commit: a crash of the hub loses nothing, a power cut at
                // most the last commits, and the database stays whole
                // either way. Every commit's fsync was an eighth of the
                // hub's CPU once each event was kept in the history.
                db.pragma_update(None, "synchronous", "NORMAL")
                    .map_err(sql("set the sync mode"))?;
                db
            }
            None => Connection::open_in_memory().map_err(sql("open in memory"))?,
        };
        db.pragma_update(None, "foreign_keys", true)
            .map_err(sql("enable foreign keys"))?;
        let mut store = Self {
            db,
            next_history_id: None,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: usize = self
            .db
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql("read schema version"))?;
        if version > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        // An existing database being brought up to date: rebuilding a
        // long event history takes seconds, so say why the start waits.
        let started = std::time::Instant::now();
        let upgrading = version > 0 && version < MIGRATIONS.len();
        if upgrading {
            tracing::warn!(
                from = version,
                to = MIGRATIONS.len(),
                "updating the database's schema (a long event history takes a while)"
            );
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.db.transaction().map_err(sql("begin migration"))?;
            tx.execute_batch(migration).map_err(sql("migrate"))?;
            tx.pragma_update(None, "user_version", index + 1)
                .map_err(sql("record schema version"))?;
            tx.commit().map_err(sql("commit migration"))?;
        }
        if upgrading {
            let seconds = started.elapsed().as_secs_f64();
            tracing::warn!(seconds, "the database's schema is up to date");
        }
        Ok(())
    }

    /// See [`Store::create_token`].
    fn create_token(
        &mut self,
        account: &str,
        read_only: bool,
        expires_at: Option<i64>,
    ) -> Result<Issued, StoreError> {
        if !valid_account_name(account) {
            return Err(StoreError::InvalidAccountName(account.to_owned()));
        }
        let token = new_token(TOKEN_PREFIX);
        let now = unix_seconds();
        let tx = self.db.transaction().map_err(sql("begin"))?;
        tx.execute(
            "INSERT INTO accounts (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
            params![account, now],
        )
        .map_err(sql("create account"))?;
        let id = tx
            .query_row(
                "INSERT INTO api_tokens (account_id, token_sha256, read_only, created_at, expires_at)
                 SELECT id, ?2, ?3, ?4, ?5 FROM accounts WHERE name = ?1 RETURNING id",
                params![account, token_hash(&token), read_only, now, expires_at],
                |row| row.get(0),
            )
            .map_err(sql("store token"))?;
        tx.commit().map_err(sql("commit"))?;
        Ok(Issued { id, token })
    }

    /// The caller behind the API token whose hash is `hash`, unless it has
    /// expired.
    fn authenticate(&self, hash: &str) -> Result<Option<Caller>, StoreError> {
        self.db
            .prepare_cached(
                "SELECT t.id, t.expires_at, a.id, a.name, t.read_only FROM api_tokens t
                 JOIN accounts a ON a.id = t.account_id
                 WHERE t.token_sha256 = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)",
            )
            .map_err(sql("prepare token lookup"))?
            .query_row(params![hash, unix_seconds()], |row| {
                Ok(Caller {
                    token: row.get(0)?,
                    expires_at: row.get(1)?,
                    account: row.get(2)?,
                    account_name: row.get(3)?,
                    read_only: row.get(4)?,
                })
            })
            .optional()
            .map_err(sql("look up token"))
    }

    /// See [`Store::create_worker_token`].
    fn create_worker_token(&mut self) -> Result<Issued, StoreError> {
        let token = new_token(WORKER_TOKEN_PREFIX);
        let id = self
            .db
            .query_row(
                "INSERT INTO worker_tokens (token_sha256, created_at) VALUES (?1, ?2) RETURNING id",
                params![token_hash(&token), unix_seconds()],
                |row| row.get(0),
            )
            .map_err(sql("store worker token"))?;
        Ok(Issued { id, token })
    }

    /// The id of the hosted-worker token whose hash is `hash`.
    fn worker_token(&self, hash: &str) -> Result<Option<TokenId>, StoreError> {
        self.db
            .prepare_cached("SELECT id FROM worker_tokens WHERE token_sha256 = ?1")
            .map_err(sql("prepare worker token lookup"))?
            .query_row([hash], |row| row.get(0))
            .optional()
            .map_err(sql("look up worker token"))
    }

    /// See [`Store::token_live`].
    fn token_live(&self, kind: TokenKind, id: TokenId) -> Result<bool, StoreError> {
        let found = match kind {
            TokenKind::Api => self
                .db
                .prepare_cached(
                    "SELECT 1 FROM api_tokens
                     WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                )
                .and_then(|mut check| check.exists(params![id, unix_seconds()])),
            TokenKind::Worker => self
                .db
                .prepare_cached("SELECT 1 FROM worker_tokens WHERE id = ?1")
                .and_then(|mut check| check.exists([id])),
        };
        found.map_err(sql("check token"))
    }

    /// See [`Store::tokens`].
    fn tokens(&self, kind: TokenKind) -> Result<Vec<TokenRecord>, StoreError> {
        let query = match kind {
            TokenKind::Api => {
                "SELECT t.id, a.name, t.read_only, t.created_at, t.expires_at FROM api_tokens t
                 JOIN accounts a ON a.id = t.account_id ORDER BY t.id"
            }
            TokenKind::Worker => {
                "SELECT id, NULL, 0, created_at, NULL FROM worker_tokens ORDER BY id"
            }
        };
        let mut statement = self.db.prepare(query).map_err(sql("prepare token list"))?;
        let rows = statement
            .query_map([], |row| {
                Ok(TokenRecord {
                    id: row.get(0)?,
                    account: row.get(1)?,
                    read_only: row.get(2)?,
                    created_at: row.get(3)?,
                    expires_at: row.get(4)?,
                })
            })
            .map_err(sql("list tokens"))?;
        rows.collect::<Result<_, _>>().map_err(sql("list tokens"))
    }

    /// See [`Store::revoke_token`].
    fn revoke_token(&self, kind: TokenKind, id: TokenId) -> Result<bool, StoreError> {
        let query = match kind {
            TokenKind::Api => "DELETE FROM api_tokens WHERE id = ?1",
            TokenKind::Worker => "DELETE FROM worker_tokens WHERE id = ?1",
        };
        let deleted = self.db.execute(query, [id]).map_err(sql("revoke token"))?;
        Ok(deleted > 0)
    }

    /// How many accounts exist.
    fn account_count(&self) -> Result<u64, StoreError> {
        self.db
            .query_row("SELECT COUNT(*) FROM accounts", [], |row| row.get(0))
            .map_err(sql("count accounts"))
    }

    /// Every account's id, in order.
    fn account_ids(&self) -> Result<Vec<AccountId>, StoreError> {
        let mut ids = self
            .db
            .prepare("SELECT id FROM accounts ORDER BY id")
            .map_err(sql("list accounts"))?;
        let ids = ids
            .query_map([], |row| row.get(0))
            .map_err(sql("list accounts"))?;
        ids.collect::<Result<_, _>>().map_err(sql("list accounts"))
    }

    /// The id of the account called `name`.
    fn account_id(&self, name: &str) -> Result<i64, StoreError> {
        self.db
            .query_row("SELECT id FROM accounts WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sql("look up account"))?
            .ok_or_else(|| StoreError::UnknownAccount(name.to_owned()))
    }

    /// `account`'s upload `name`, if any.
    fn uploaded(&self, account: i64, name: &str) -> Result<Option<UploadedNode>, StoreError> {
        self.db
            .prepare_cached(
                "SELECT sha256, size, uploaded_at, version FROM uploaded_nodes
                 WHERE account_id = ?1 AND name = ?2",
            )
            .map_err(sql("prepare upload lookup"))?
            .query_row(params![account, name], |row| {
                Ok(UploadedNode {
                    name: name.to_owned(),
                    sha256: row.get(0)?,
                    size: row.get::<_, i64>(1)? as u64,
                    uploaded_at: row.get(2)?,
                    version: row.get(3)?,
                })
            })
            .optional()
            .map_err(sql("look up uploaded node"))
    }

    /// `account`'s uploads, by name.
    fn uploads_of(&self, account: i64) -> Result<Vec<UploadedNode>, StoreError> {
        let mut statement = self
            .db
            .prepare_cached(
                "SELECT name, sha256, size, uploaded_at, version FROM uploaded_nodes
                 WHERE account_id = ?1 ORDER BY name",
            )
            .map_err(sql("prepare the account's upload listing"))?;
        let rows = statement
            .query_map([account], |row| {
                Ok(UploadedNode {
                    name: row.get(0)?,
                    sha256: row.get(1)?,
                    size: row.get::<_, i64>(2)? as u64,
                    uploaded_at: row.get(3)?,
                    version: row.get(4)?,
                })
            })
            .map_err(sql("list the account's uploads"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read an uploaded node"))
    }

    /// Every account's uploads, for loading them at start-up.
    fn all_uploaded(&self) -> Result<Vec<(i64, UploadedNode)>, StoreError> {
        let mut statement = self
            .db
            .prepare(
                "SELECT account_id, name, sha256, size, uploaded_at, version FROM uploaded_nodes
                 ORDER BY account_id, name",
            )
            .map_err(sql("prepare upload listing"))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    UploadedNode {
                        name: row.get(1)?,
                        sha256: row.get(2)?,
                        size: row.get::<_, i64>(3)? as u64,
                        uploaded_at: row.get(4)?,
                        version: row.get(5)?,
                    },
                ))
            })
            .map_err(sql("list uploaded nodes"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read uploaded node"))
    }

    /// True when any account's upload still uses the component `sha256`.
    fn sha256_in_use(&self, sha256: &str) -> Result<bool, StoreError> {
        self.db
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM uploaded_nodes WHERE sha256 = ?1)
                     OR EXISTS (SELECT 1 FROM node_versions WHERE sha256 = ?1)",
                [sha256],
                |row| row.get(0),
            )
            .map_err(sql("look up component use"))
    }

    /// The limits `account` has set; unset fields are `None` (the defaults).
    fn limits(&self, account: i64) -> Result<LimitSettings, StoreError> {
        self.db
            .query_row(
                "SELECT fuel, memory_bytes, timeout_ms, output_bytes, concurrency, queue,
                        log_bytes, keep_versions, history_events
                 FROM account_limits WHERE account_id = ?1",
                [account],
                |row| {
                    Ok(LimitSettings {
                        fuel: row.get::<_, Option<i64>>(0)?.map(|v| v as u64),
                        memory_bytes: row.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                        timeout_ms: row.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                        output_bytes: row.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                        concurrency: row.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                        queue: row.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                        log_bytes: row.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                        keep_versions: row.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                        history_events: row.get::<_, Option<i64>>(8)?.map(|v| v as u64),
                    })
                },
            )
            .optional()
            .map_err(sql("read account limits"))
            .map(Option::unwrap_or_default)
    }

    /// Sets the given fields of `account`'s limits, keeping the others.
    fn set_limits(&self, account: i64, change: &LimitSettings) -> Result<(), StoreError> {
        let old = self.limits(account)?;
        let new = old.merged(change);
        let value = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
        self.db
            .execute(
                "INSERT OR REPLACE INTO account_limits
                 (account_id, fuel, memory_bytes, timeout_ms, output_bytes, concurrency, queue,
                  log_bytes, keep_versions, history_events)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    account,
                    value(new.fuel),
                    value(new.memory_bytes),
                    value(new.timeout_ms),
                    value(new.output_bytes),
                    value(new.concurrency),
                    value(new.queue),
                    value(new.log_bytes),
                    value(new.keep_versions),
                    value(new.history_events)
                ],
            )
            .map_err(sql("store account limits"))?;
        Ok(())
    }

    /// Stores (or replaces) `account`'s sealed secret `name`.
    fn put_secret(&self, account: i64, name: &str, sealed: &Sealed) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO secrets (account_id, name, nonce, ciphertext, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    account,
                    name,
                    sealed.nonce,
                    sealed.ciphertext,
                    unix_seconds()
                ],
            )
            .map_err(sql("store secret"))?;
        Ok(())
    }

    fn http_origins(&self, account: i64, node: &str) -> Result<Option<Vec<String>>, StoreError> {
        let text: Option<String> = self
            .db
            .prepare_cached("SELECT origins FROM http_origins WHERE account_id = ?1 AND node = ?2")
            .map_err(sql("prepare http origins lookup"))?
            .query_row(params![account, node], |row| row.get(0))
            .optional()
            .map_err(sql("look up http origins"))?;
        text.map(|text| {
            serde_json::from_str(&text).map_err(|err| StoreError::Backend {
                what: "read http origins",
                source: Box::new(err),
            })
        })
        .transpose()
    }

    fn set_http_origins(
        &self,
        account: i64,
        node: &str,
        origins: Option<&[String]>,
    ) -> Result<bool, StoreError> {
        let changed = match origins {
            Some(origins) => self.db.execute(
                "INSERT INTO http_origins (account_id, node, origins) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account_id, node) DO UPDATE SET origins = excluded.origins",
                params![account, node, serde_json::json!(origins).to_string()],
            ),
            None => self.db.execute(
                "DELETE FROM http_origins WHERE account_id = ?1 AND node = ?2",
                params![account, node],
            ),
        }
        .map_err(sql("store http origins"))?;
        Ok(changed > 0)
    }

    /// Forgets `account`'s secret `name`; false when there was none.
    fn delete_secret(&self, account: i64, name: &str) -> Result<bool, StoreError> {
        let deleted = self
            .db
            .execute(
                "DELETE FROM secrets WHERE account_id = ?1 AND name = ?2",
                params![account, name],
            )
            .map_err(sql("delete secret"))?;
        Ok(deleted > 0)
    }

    /// `account`'s sealed secret `name`, if set.
    fn secret(&self, account: i64, name: &str) -> Result<Option<Sealed>, StoreError> {
        self.db
            .prepare_cached(
                "SELECT nonce, ciphertext FROM secrets WHERE account_id = ?1 AND name = ?2",
            )
            .map_err(sql("prepare secret lookup"))?
            .query_row(params![account, name], |row| {
                Ok(Sealed {
                    nonce: row.get(0)?,
                    ciphertext: row.get(1)?,
                })
            })
            .optional()
            .map_err(sql("read secret"))
    }

    /// The names of `account`'s secrets and when each was set, by name.
    fn secret_names(&self, account: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let mut statement = self
            .db
            .prepare("SELECT name, updated_at FROM secrets WHERE account_id = ?1 ORDER BY name")
            .map_err(sql("prepare secret listing"))?;
        let rows = statement
            .query_map([account], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(sql("list secrets"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read secret name"))
    }

    /// Replaces `account`'s Exosphere records, in one transaction.
    fn save_exosphere(
        &mut self,
        account: i64,
        records: &[ExosphereRecord],
    ) -> Result<(), StoreError> {
        let tx = self.db.transaction().map_err(sql("begin Exosphere save"))?;
        {
            let mut statement = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO exosphere_records (account_id, kind, key, body)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql("prepare Exosphere save"))?;
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM exosphere_records WHERE account_id = ?1 AND kind = ?2 AND key = ?3",
                )
                .map_err(sql("prepare Exosphere delete"))?;
            for record in records {
                match &record.body {
                    Some(body) => statement
                        .execute(params![account, record.kind, record.key, body])
                        .map_err(sql("save an Exosphere record"))?,
                    None => delete
                        .execute(params![account, record.kind, record.key])
                        .map_err(sql("delete an Exosphere record"))?,
                };
            }
        }
        tx.commit().map_err(sql("commit Exosphere save"))
    }

    /// Every account's Exosphere records.
    fn exosphere_records(&mut self) -> Result<Vec<(i64, ExosphereRecord)>, StoreError> {
        let mut statement = self
            .db
            .prepare("SELECT account_id, kind, key, body FROM exosphere_records")
            .map_err(sql("prepare Exosphere listing"))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    ExosphereRecord {
                        kind: row.get(1)?,
                        key: row.get(2)?,
                        body: Some(row.get(3)?),
                    },
                ))
            })
            .map_err(sql("list Exosphere records"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read an Exosphere record"))
    }

    /// See [`Store::claim_setting`].
    fn claim_setting(&self, key: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.db
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, candidate],
            )
            .map_err(sql("store a setting"))?;
        self.db
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .map_err(sql("read a setting"))
    }

    /// The key that signs WebSocket tokens, made on first use and kept, so
    /// tokens stay valid across a restart of the hub.
    fn signing_key(&mut self) -> Result<[u8; 32], StoreError> {
        let stored: Option<Vec<u8>> = self
            .db
            .query_row(
                "SELECT value FROM settings WHERE key = 'ws_signing_key'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql("read signing key"))?;
        if let Some(key) = stored.and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()) {
            return Ok(key);
        }
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        self.db
            .execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('ws_signing_key', ?1)",
                [&key[..]],
            )
            .map_err(sql("store signing key"))?;
        Ok(key)
    }
}

/// Creates the data directory, or makes an existing one its owner's only
/// (a directory made by hand is often readable by everyone).
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let failed = |source| StoreError::DataDir {
        path: dir.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(failed)?;
    make_private(dir, 0o700).map_err(failed)
}

/// Gives `path` the permission bits `mode` (owner only); a no-op where
/// there are none.
fn make_private(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("node-host-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn the_shared_store_suite_passes_in_memory() {
        super::super::suite::run(&SqliteStore::open(None).unwrap()).await;
    }

    #[tokio::test]
    async fn state_survives_reopening_and_tokens_are_hashed() {
        let dir = temp_dir("store");
        let token = {
            let store = SqliteStore::open(Some(&dir)).unwrap();
            let key = store.signing_key().await.unwrap();
            let token = store
                .create_token("alice", false, None)
                .await
                .unwrap()
                .token;
            assert_eq!(store.signing_key().await.unwrap(), key);
            token
        };
        let store = SqliteStore::open(Some(&dir)).unwrap();
        assert!(store.authenticate(&token).await.unwrap().is_some());
        drop(store);
        for file in std::fs::read_dir(&dir).unwrap() {
            let raw = std::fs::read(file.unwrap().path()).unwrap();
            let needle = token.as_bytes();
            assert!(!raw.windows(needle.len()).any(|window| window == needle));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn uploads_and_limits_survive_reopening() {
        let dir = temp_dir("store-up");
        let node = UploadedNode {
            name: "hello".into(),
            sha256: "bb".into(),
            size: 10,
            uploaded_at: 1,
            version: 1,
        };
        {
            let store = SqliteStore::open(Some(&dir)).unwrap();
            store.create_token("alice", false, None).await.unwrap();
            let alice = store.account_id("alice").await.unwrap();
            store.put_uploaded(alice, &node, 5).await.unwrap();
            let change = LimitSettings {
                fuel: Some(7),
                ..LimitSettings::default()
            };
            store.set_limits(alice, &change).await.unwrap();
        }
        let store = SqliteStore::open(Some(&dir)).unwrap();
        let alice = store.account_id("alice").await.unwrap();
        assert_eq!(store.all_uploaded().await.unwrap(), vec![(alice, node)]);
        assert_eq!(store.limits(alice).await.unwrap().fuel, Some(7));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_history_keeps_its_rows_and_ids_through_the_migration_off_uuids() {
        let dir = temp_dir("store-history-migration");
        std::fs::create_dir_all(&dir).unwrap();
        let db = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        for migration in &MIGRATIONS[..9] {
            db.execute_batch(migration).unwrap();
        }
        db.pragma_update(None, "user_version", 9).unwrap();
        db.execute_batch(
            "INSERT INTO accounts (id, name, created_at) VALUES (1, 'ann', 0);
             INSERT INTO event_history (id, account_id, node, uuid, at_ms, outcome, fuel)
                 VALUES (40, 1, 'n', 'u40', 9999999999999, 'ok', 3),
                        (41, 1, 'n', 'u41', 9999999999999, 'trap', 4);",
        )
        .unwrap();
        drop(db);
        let store = SqliteStore::open(Some(&dir)).unwrap();
        let query = HistoryQuery {
            limit: 10,
            ..HistoryQuery::default()
        };
        let kept = store.history(1, &query).await.unwrap();
        let seen: Vec<_> = kept
            .iter()
            .map(|e| (e.id, e.uuid.as_str(), e.fuel))
            .collect();
        assert_eq!(seen, [(40, "u40", Some(3)), (41, "u41", Some(4))]);
        // New rows come after the old, and a uuid is no longer a key.
        let again = HistoryEvent {
            account: 1,
            node: "n".into(),
            uuid: "u41".into(),
            at_ms: super::super::unix_millis(),
            ..HistoryEvent::default()
        };
        let write = HistoryWrite {
            event: again,
            into: None,
        };
        let ids = store.record_history(vec![write], vec![]).await.unwrap();
        assert!(ids[0] > 41, "{ids:?}");
        assert_eq!(store.history_count(1).await.unwrap(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn history_ids_never_come_back_after_the_migration_off_autoincrement() {
        let dir = temp_dir("store-history-ids");
        std::fs::create_dir_all(&dir).unwrap();
        let db = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        for migration in &MIGRATIONS[..10] {
            db.execute_batch(migration).unwrap();
        }
        db.pragma_update(None, "user_version", 10).unwrap();
        // Row 50 was given and deleted: AUTOINCREMENT remembers it.
        db.execute_batch(
            "INSERT INTO accounts (id, name, created_at) VALUES (1, 'ann', 0);
             INSERT INTO event_history (id, account_id, node, uuid, at_ms)
                 VALUES (40, 1, 'n', 'u40', 0), (50, 1, 'gone', 'u50', 0);
             DELETE FROM event_history WHERE id = 50;",
        )
        .unwrap();
        drop(db);
        let write = |node: &str| HistoryWrite {
            event: HistoryEvent {
                account: 1,
                node: node.into(),
                uuid: uuid::Uuid::new_v4().to_string(),
                at_ms: super::super::unix_millis(),
                ..HistoryEvent::default()
            },
            into: None,
        };
        let store = SqliteStore::open(Some(&dir)).unwrap();
        let ids = store
            .record_history(vec![write("a"), write("a")], vec![])
            .await
            .unwrap();
        assert_eq!(ids, [51, 52], "past every id given before the migration");
        // The newest rows deleted, with and without a restart between.
        store.forget_history(1, "a").await.unwrap();
        let ids = store
            .record_history(vec![write("b")], vec![])
            .await
            .unwrap();
        assert_eq!(ids, [53]);
        store.forget_history(1, "b").await.unwrap();
        drop(store);
        let store = SqliteStore::open(Some(&dir)).unwrap();
        let ids = store
            .record_history(vec![write("c")], vec![])
            .await
            .unwrap();
        assert_eq!(ids, [54]);
        let ids: Vec<i64> = store
            .history(
                1,
                &HistoryQuery {
                    limit: 10,
                    ..HistoryQuery::default()
                },
            )
            .await
            .unwrap()
            .iter()
            .map(|event| event.id)
            .collect();
        assert_eq!(ids, [40, 54]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = temp_dir("store-new");
        drop(SqliteStore::open(Some(&dir)).unwrap());
        let db = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        db.pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        assert!(matches!(
            SqliteStore::open(Some(&dir)),
            Err(StoreError::TooNew { found: 99, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_data_directory_made_by_hand_is_made_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = temp_dir("store-private");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(SqliteStore::open(Some(&dir)).unwrap());
        let mode = |path: &std::path::Path| path.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(DATABASE_FILE)), 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
