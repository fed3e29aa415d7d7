//! The [`Store`] in PostgreSQL: the state the hubs of a cluster share
//! (`node-host hub --database postgres://…`).
//!
//! A pool of connections (deadpool); every write that must not interleave
//! with another hub's is one statement or one transaction, so hubs never
//! read-modify-write behind each other's backs. Schema changes go through
//! [`MIGRATIONS`], applied in order at start under an advisory lock (hubs
//! starting together migrate once) and recorded in `node_host_schema`.
//!
//! A database that cannot be reached (down, restarting, the network) is
//! [`StoreError::Unavailable`], which callers see as `unavailable`; the
//! pool connects again by itself once it is back.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{
    Caller, ExosphereRecord, HistoryEvent, HistoryQuery, HistoryWrite, Issued, LimitSettings,
    Prune, PutVersion, Sealed, Store, StoreError, TOKEN_PREFIX, TokenId, TokenKind, TokenRecord,
    UploadedNode, WORKER_TOKEN_PREFIX, new_token, token_hash, unix_millis, unix_seconds,
    valid_account_name,
};
use crate::core::AccountId;

/// Schema versions, in order; entry `i` takes the schema from version `i`
/// to `i + 1`. Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE accounts (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE api_tokens (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        token_sha256 TEXT NOT NULL UNIQUE,
        read_only BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT
    );
    CREATE TABLE worker_tokens (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    );
    CREATE TABLE uploaded_nodes (
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size BIGINT NOT NULL,
        uploaded_at BIGINT NOT NULL,
        PRIMARY KEY (account_id, name)
    );
    CREATE INDEX uploaded_nodes_sha256 ON uploaded_nodes (sha256);
    CREATE TABLE account_limits (
        account_id BIGINT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        fuel BIGINT,
        memory_bytes BIGINT,
        timeout_ms BIGINT,
        output_bytes BIGINT,
        concurrency BIGINT,
        queue BIGINT,
        log_bytes BIGINT
    );
    CREATE TABLE secrets (
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        nonce BYTEA NOT NULL,
        ciphertext BYTEA NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (account_id, name)
    );
    CREATE TABLE exosphere_records (
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, kind, key)
    );
    CREATE TABLE http_origins (
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        origins TEXT[] NOT NULL,
        PRIMARY KEY (account_id, node)
    );
",
    "
    ALTER TABLE uploaded_nodes ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
    CREATE TABLE node_versions (
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        size BIGINT NOT NULL,
        uploaded_at BIGINT NOT NULL,
        PRIMARY KEY (account_id, name, version)
    );
    CREATE INDEX node_versions_sha256 ON node_versions (sha256);
    INSERT INTO node_versions (account_id, name, version, sha256, size, uploaded_at)
        SELECT account_id, name, 1, sha256, size, uploaded_at FROM uploaded_nodes;
    CREATE TABLE event_history (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        uuid TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        caller BIGINT,
        outcome TEXT,
        ran TEXT,
        message TEXT,
        duration_us BIGINT,
        fuel BIGINT,
        version BIGINT,
        logs TEXT,
        UNIQUE (account_id, uuid)
    );
    CREATE INDEX event_history_node ON event_history (account_id, node, id);
    ALTER TABLE account_limits ADD COLUMN keep_versions BIGINT;
    ALTER TABLE account_limits ADD COLUMN history_events BIGINT;
    CREATE TABLE node_config (
        account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (account_id, node, key)
    );
",
    // The history without its (account, uuid) index: the hub merges an
    // event's two records itself. Pruning walks (account, id).
    "
    ALTER TABLE event_history DROP CONSTRAINT IF EXISTS event_history_account_id_uuid_key;
    CREATE INDEX event_history_account ON event_history (account_id, id);
",
];

/// A statement's parameter.
type Param = dyn tokio_postgres::types::ToSql + Sync;

/// What a record may know of its event, in the order both history
/// statements bind it after their keys.
fn known(event: &HistoryEvent) -> [&Param; 8] {
    [
        &event.caller,
        &event.outcome,
        &event.message,
        &event.duration_us,
        &event.fuel,
        &event.version,
        &event.logs,
        &event.ran,
    ]
}

/// The advisory lock held while migrating ("nodehost" in ASCII), so hubs
/// starting at once apply each migration once.
const MIGRATION_LOCK: i64 = 0x6e6f_6465_686f_7374;

/// The `node` of an account's policy row in `http_origins` (node names are
/// never empty).
const POLICY_ROW: &str = "";

/// Connections one hub keeps at most.
const POOL_SIZE: usize = 16;

/// How long a query waits for a connection, and a connection for the
/// server, before the store answers `unavailable`.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// The hub's database in PostgreSQL.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// What a query's failure means: a server that cannot be reached (or is
/// shutting down, or refuses connections for now) is `Unavailable`; the
/// rest is a failure of the query.
fn pg(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |err| {
        let unreachable = match err.code() {
            None => true,
            Some(code) => {
                let class = &code.code()[..2];
                // 08: connection exception; 57: operator intervention
                // (shutdown, cannot connect now); 53: out of resources.
                matches!(class, "08" | "57" | "53") || *code == SqlState::READ_ONLY_SQL_TRANSACTION
            }
        };
        if unreachable {
            StoreError::Unavailable {
                what,
                source: Box::new(err),
            }
        } else {
            StoreError::Backend {
                what,
                source: Box::new(err),
            }
        }
    }
}

fn pool_error(err: PoolError) -> StoreError {
    match err {
        PoolError::Backend(err) => pg("connect")(err),
        other => StoreError::Unavailable {
            what: "connect",
            source: Box::new(other),
        },
    }
}

/// A stored count or size: PostgreSQL has no unsigned integers.
fn to_sql(value: Option<u64>) -> Option<i64> {
    value.map(|v| v.min(i64::MAX as u64) as i64)
}

fn from_sql(value: Option<i64>) -> Option<u64> {
    value.map(|v| v.max(0) as u64)
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`,
    /// or key=value pairs) and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|err| StoreError::InvalidDatabaseUrl {
                reason: format!("{err}"),
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_WITHIN);
        }
        config.application_name("node-host hub");
        config.keepalives_idle(Duration::from_secs(30));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(CONNECT_WITHIN))
            .create_timeout(Some(CONNECT_WITHIN))
            .recycle_timeout(Some(CONNECT_WITHIN))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| StoreError::Backend {
                what: "make the connection pool",
                source: Box::new(err),
            })?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("begin migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg("lock the schema"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS node_host_schema (version INTEGER NOT NULL);
             INSERT INTO node_host_schema (version)
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM node_host_schema);",
        )
        .await
        .map_err(pg("record the schema version"))?;
        let version: i32 = tx
            .query_one("SELECT version FROM node_host_schema", &[])
            .await
            .map_err(pg("read the schema version"))?
            .get(0);
        let version = version.max(0) as usize;
        if version > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.batch_execute(migration).await.map_err(pg("migrate"))?;
            tx.execute(
                "UPDATE node_host_schema SET version = $1",
                &[&((index + 1) as i32)],
            )
            .await
            .map_err(pg("record the schema version"))?;
        }
        tx.commit().await.map_err(pg("commit migration"))
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn create_token(
        &self,
        account: &str,
        read_only: bool,
        expires_at: Option<i64>,
    ) -> Result<Issued, StoreError> {
        if !valid_account_name(account) {
            return Err(StoreError::InvalidAccountName(account.to_owned()));
        }
        let token = new_token(TOKEN_PREFIX);
        let now = unix_seconds();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("begin"))?;
        tx.execute(
            "INSERT INTO accounts (name, created_at) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING",
            &[&account, &now],
        )
        .await
        .map_err(pg("create account"))?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO api_tokens (account_id, token_sha256, read_only, created_at, expires_at)
                 SELECT id, $2, $3, $4, $5 FROM accounts WHERE name = $1 RETURNING id",
                &[&account, &token_hash(&token), &read_only, &now, &expires_at],
            )
            .await
            .map_err(pg("store token"))?
            .get(0);
        tx.commit().await.map_err(pg("commit"))?;
        Ok(Issued { id, token })
    }

    async fn authenticate(&self, token: &str) -> Result<Option<Caller>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT t.id, t.expires_at, a.id, a.name, t.read_only FROM api_tokens t
                 JOIN accounts a ON a.id = t.account_id
                 WHERE t.token_sha256 = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)",
                &[&token_hash(token), &unix_seconds()],
            )
            .await
            .map_err(pg("look up token"))?;
        Ok(row.map(|row| Caller {
            token: row.get(0),
            expires_at: row.get(1),
            account: row.get(2),
            account_name: row.get(3),
            read_only: row.get(4),
        }))
    }

    async fn create_worker_token(&self) -> Result<Issued, StoreError> {
        let token = new_token(WORKER_TOKEN_PREFIX);
        let id: i64 = self
            .client()
            .await?
            .query_one(
                "INSERT INTO worker_tokens (token_sha256, created_at) VALUES ($1, $2)
                 RETURNING id",
                &[&token_hash(&token), &unix_seconds()],
            )
            .await
            .map_err(pg("store worker token"))?
            .get(0);
        Ok(Issued { id, token })
    }

    async fn worker_token(&self, token: &str) -> Result<Option<TokenId>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id FROM worker_tokens WHERE token_sha256 = $1",
                &[&token_hash(token)],
            )
            .await
            .map_err(pg("look up worker token"))?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn token_live(&self, kind: TokenKind, id: TokenId) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = match kind {
            TokenKind::Api => {
                client
                    .query_opt(
                        "SELECT 1 FROM api_tokens
                         WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)",
                        &[&id, &unix_seconds()],
                    )
                    .await
            }
            TokenKind::Worker => {
                client
                    .query_opt("SELECT 1 FROM worker_tokens WHERE id = $1", &[&id])
                    .await
            }
        };
        Ok(row.map_err(pg("check token"))?.is_some())
    }

    async fn tokens(&self, kind: TokenKind) -> Result<Vec<TokenRecord>, StoreError> {
        let query = match kind {
            TokenKind::Api => {
                "SELECT t.id, a.name, t.read_only, t.created_at, t.expires_at FROM api_tokens t
                 JOIN accounts a ON a.id = t.account_id ORDER BY t.id"
            }
            TokenKind::Worker => {
                "SELECT id, NULL::TEXT, FALSE, created_at, NULL::BIGINT FROM worker_tokens
                 ORDER BY id"
            }
        };
        let rows = self
            .client()
            .await?
            .query(query, &[])
            .await
            .map_err(pg("list tokens"))?;
        Ok(rows
            .iter()
            .map(|row| TokenRecord {
                id: row.get(0),
                account: row.get(1),
                read_only: row.get(2),
                created_at: row.get(3),
                expires_at: row.get(4),
            })
            .collect())
    }

    async fn revoke_token(&self, kind: TokenKind, id: TokenId) -> Result<bool, StoreError> {
        let query = match kind {
            TokenKind::Api => "DELETE FROM api_tokens WHERE id = $1",
            TokenKind::Worker => "DELETE FROM worker_tokens WHERE id = $1",
        };
        let deleted = self
            .client()
            .await?
            .execute(query, &[&id])
            .await
            .map_err(pg("revoke token"))?;
        Ok(deleted > 0)
    }

    async fn account_count(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .client()
            .await?
            .query_one("SELECT COUNT(*) FROM accounts", &[])
            .await
            .map_err(pg("count accounts"))?
            .get(0);
        Ok(count as u64)
    }

    async fn account_ids(&self) -> Result<Vec<AccountId>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT id FROM accounts ORDER BY id", &[])
            .await
            .map_err(pg("list accounts"))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn account_id(&self, name: &str) -> Result<AccountId, StoreError> {
        self.client()
            .await?
            .query_opt("SELECT id FROM accounts WHERE name = $1", &[&name])
            .await
            .map_err(pg("look up account"))?
            .map(|row| row.get(0))
            .ok_or_else(|| StoreError::UnknownAccount(name.to_owned()))
    }

    async fn put_uploaded(
        &self,
        account: AccountId,
        node: &UploadedNode,
        keep: usize,
    ) -> Result<PutVersion, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("begin an upload"))?;
        // Hubs uploading the same node at once number their versions in turn.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2, 0))",
            &[&account.to_string(), &node.name],
        )
        .await
        .map_err(pg("lock the node's versions"))?;
        let current = tx
            .query_opt(
                "SELECT sha256, version FROM uploaded_nodes WHERE account_id = $1 AND name = $2",
                &[&account, &node.name],
            )
            .await
            .map_err(pg("look up the current version"))?;
        if let Some(row) = current
            && row.get::<_, String>(0) == node.sha256
        {
            return Ok(PutVersion {
                version: row.get(1),
                dropped: Vec::new(),
            });
        }
        let version: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM node_versions
                 WHERE account_id = $1 AND name = $2",
                &[&account, &node.name],
            )
            .await
            .map_err(pg("number a new version"))?
            .get(0);
        let size = to_sql(Some(node.size));
        tx.execute(
            "INSERT INTO node_versions (account_id, name, version, sha256, size, uploaded_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &account,
                &node.name,
                &version,
                &node.sha256,
                &size,
                &node.uploaded_at,
            ],
        )
        .await
        .map_err(pg("store a version"))?;
        tx.execute(
            "INSERT INTO uploaded_nodes (account_id, name, sha256, size, uploaded_at, version)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (account_id, name) DO UPDATE SET sha256 = EXCLUDED.sha256,
                 size = EXCLUDED.size, uploaded_at = EXCLUDED.uploaded_at,
                 version = EXCLUDED.version",
            &[
                &account,
                &node.name,
                &node.sha256,
                &size,
                &node.uploaded_at,
                &version,
            ],
        )
        .await
        .map_err(pg("store uploaded node"))?;
        let kept_besides = keep.max(1) as i64 - 1;
        let dropped = tx
            .query(
                "DELETE FROM node_versions WHERE account_id = $1 AND name = $2 AND version IN (
                     SELECT version FROM node_versions
                     WHERE account_id = $1 AND name = $2 AND version <> $3
                     ORDER BY version DESC OFFSET $4)
                 RETURNING sha256",
                &[&account, &node.name, &version, &kept_besides],
            )
            .await
            .map_err(pg("remove old versions"))?;
        tx.commit().await.map_err(pg("commit an upload"))?;
        Ok(PutVersion {
            version,
            dropped: dropped.iter().map(|row| row.get(0)).collect(),
        })
    }

    async fn versions(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Vec<UploadedNode>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT version, sha256, size, uploaded_at FROM node_versions
                 WHERE account_id = $1 AND name = $2 ORDER BY version DESC",
                &[&account, &name],
            )
            .await
            .map_err(pg("list versions"))?;
        Ok(rows
            .iter()
            .map(|row| UploadedNode {
                name: name.to_owned(),
                version: row.get(0),
                sha256: row.get(1),
                size: from_sql(row.get(2)).unwrap_or(0),
                uploaded_at: row.get(3),
            })
            .collect())
    }

    async fn make_current(
        &self,
        account: AccountId,
        name: &str,
        version: i64,
    ) -> Result<Option<UploadedNode>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE uploaded_nodes AS current
                 SET sha256 = kept.sha256, size = kept.size, uploaded_at = kept.uploaded_at,
                     version = kept.version
                 FROM node_versions AS kept
                 WHERE current.account_id = $1 AND current.name = $2
                     AND kept.account_id = $1 AND kept.name = $2 AND kept.version = $3
                 RETURNING kept.sha256, kept.size, kept.uploaded_at",
                &[&account, &name, &version],
            )
            .await
            .map_err(pg("make a version current"))?;
        Ok(row.map(|row| UploadedNode {
            name: name.to_owned(),
            version,
            sha256: row.get(0),
            size: from_sql(row.get(1)).unwrap_or(0),
            uploaded_at: row.get(2),
        }))
    }

    async fn delete_uploaded(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg("begin a delete"))?;
        let current = tx
            .query_opt(
                "DELETE FROM uploaded_nodes WHERE account_id = $1 AND name = $2 RETURNING sha256",
                &[&account, &name],
            )
            .await
            .map_err(pg("delete uploaded node"))?;
        let versions = tx
            .query(
                "DELETE FROM node_versions WHERE account_id = $1 AND name = $2 RETURNING sha256",
                &[&account, &name],
            )
            .await
            .map_err(pg("delete versions"))?;
        tx.commit().await.map_err(pg("commit a delete"))?;
        let Some(current) = current else {
            return Ok(Vec::new());
        };
        let mut used: Vec<String> = std::iter::once(current.get(0))
            .chain(versions.iter().map(|row| row.get(0)))
            .collect();
        used.sort();
        used.dedup();
        Ok(used)
    }

    async fn record_history(
        &self,
        writes: Vec<HistoryWrite>,
        prune: Vec<Prune>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("begin a history write"))?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO event_history (account_id, node, uuid, at_ms, caller, outcome,
                     message, duration_us, fuel, version, logs, ran)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 RETURNING id",
            )
            .await
            .map_err(pg("prepare a history write"))?;
        // The same rule as `HistoryEvent::merge`, in SQL.
        let merge = tx
            .prepare_cached(
                "UPDATE event_history SET
                     caller = COALESCE($3, caller),
                     outcome = CASE WHEN $2 OR outcome IS NULL THEN $4 ELSE outcome END,
                     message = CASE WHEN $2 OR outcome IS NULL THEN $5 ELSE message END,
                     duration_us = COALESCE($6, duration_us),
                     fuel = COALESCE($7, fuel),
                     version = COALESCE($8, version),
                     logs = COALESCE($9, logs),
                     ran = COALESCE($10, ran)
                 WHERE id = $1",
            )
            .await
            .map_err(pg("prepare a history merge"))?;
        let mut ids = Vec::with_capacity(writes.len());
        for HistoryWrite { event, into } in &writes {
            let id = match into {
                Some(id) => {
                    let key: [&Param; 2] = [id, &event.from_caller];
                    tx.execute(&merge, &[&key[..], &known(event)].concat())
                        .await
                        .map_err(pg("merge an event into the history"))?;
                    *id
                }
                None => {
                    let key: [&Param; 4] = [&event.account, &event.node, &event.uuid, &event.at_ms];
                    tx.query_one(&insert, &[&key[..], &known(event)].concat())
                        .await
                        .map_err(pg("write an event to the history"))?
                        .get(0)
                }
            };
            ids.push(id);
        }
        for Prune {
            account,
            max_age_s,
            newest,
        } in prune
        {
            let oldest = unix_millis() - max_age_s * 1000;
            if let Some(newest) = newest {
                let newest = newest.min(i64::MAX as u64) as i64;
                tx.execute(
                    "DELETE FROM event_history WHERE account_id = $1 AND id <= COALESCE(
                         (SELECT id FROM event_history WHERE account_id = $1
                              ORDER BY id DESC LIMIT 1 OFFSET $2), 0)",
                    &[&account, &newest],
                )
                .await
                .map_err(pg("prune the history"))?;
            }
            tx.execute(
                "DELETE FROM event_history WHERE account_id = $1 AND id < COALESCE(
                     (SELECT id FROM event_history WHERE account_id = $1 AND at_ms >= $2
                          ORDER BY id LIMIT 1), 9223372036854775807)",
                &[&account, &oldest],
            )
            .await
            .map_err(pg("prune the history by age"))?;
        }
        tx.commit().await.map_err(pg("commit a history write"))?;
        Ok(ids)
    }

    async fn history(
        &self,
        account: AccountId,
        query: &HistoryQuery,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        let order = if query.after.is_some() { "ASC" } else { "DESC" };
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT id, node, uuid, at_ms, caller, outcome, message, duration_us, fuel,
                         version, logs, ran
                     FROM event_history
                     WHERE account_id = $1 AND ($2::text IS NULL OR node = $2) AND id > $3
                     ORDER BY id {order} LIMIT $4"
                ),
                &[
                    &account,
                    &query.node,
                    &query.after.unwrap_or(0),
                    &i64::from(query.limit),
                ],
            )
            .await
            .map_err(pg("list the history"))?;
        let mut events: Vec<HistoryEvent> = rows
            .iter()
            .map(|row| HistoryEvent {
                id: row.get(0),
                account,
                node: row.get(1),
                uuid: row.get(2),
                at_ms: row.get(3),
                caller: row.get(4),
                outcome: row.get(5),
                message: row.get(6),
                duration_us: row.get(7),
                fuel: row.get(8),
                version: row.get(9),
                logs: row.get(10),
                ran: row.get(11),
                from_caller: false,
            })
            .collect();
        events.sort_by_key(|event| event.id);
        Ok(events)
    }

    async fn history_count(&self, account: AccountId) -> Result<u64, StoreError> {
        let count: i64 = self
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*) FROM event_history WHERE account_id = $1",
                &[&account],
            )
            .await
            .map_err(pg("count the history"))?
            .get(0);
        Ok(count as u64)
    }

    async fn node_config(
        &self,
        account: AccountId,
        node: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT key, value FROM node_config WHERE account_id = $1 AND node = $2
                 ORDER BY key",
                &[&account, &node],
            )
            .await
            .map_err(pg("list the configuration"))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn set_node_config(
        &self,
        account: AccountId,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let changed =
            match value {
                Some(value) => {
                    client
                        .execute(
                            "INSERT INTO node_config (account_id, node, key, value)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (account_id, node, key) DO UPDATE SET value = EXCLUDED.value",
                            &[&account, &node, &key, &value],
                        )
                        .await
                }
                None => client
                    .execute(
                        "DELETE FROM node_config WHERE account_id = $1 AND node = $2 AND key = $3",
                        &[&account, &node, &key],
                    )
                    .await,
            }
            .map_err(pg("set a configuration value"))?;
        Ok(changed > 0)
    }

    async fn forget_history(&self, account: AccountId, node: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM event_history WHERE account_id = $1 AND node = $2",
                &[&account, &node],
            )
            .await
            .map_err(pg("forget a node's history"))?;
        Ok(())
    }

    async fn uploaded(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<UploadedNode>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT sha256, size, uploaded_at, version FROM uploaded_nodes
                 WHERE account_id = $1 AND name = $2",
                &[&account, &name],
            )
            .await
            .map_err(pg("look up uploaded node"))?;
        Ok(row.map(|row| UploadedNode {
            name: name.to_owned(),
            sha256: row.get(0),
            size: from_sql(row.get(1)).unwrap_or(0),
            uploaded_at: row.get(2),
            version: row.get(3),
        }))
    }

    async fn uploads_of(&self, account: AccountId) -> Result<Vec<UploadedNode>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, sha256, size, uploaded_at, version FROM uploaded_nodes
                 WHERE account_id = $1 ORDER BY name",
                &[&account],
            )
            .await
            .map_err(pg("list the account's uploads"))?;
        Ok(rows
            .iter()
            .map(|row| UploadedNode {
                name: row.get(0),
                sha256: row.get(1),
                size: from_sql(row.get(2)).unwrap_or(0),
                uploaded_at: row.get(3),
                version: row.get(4),
            })
            .collect())
    }

    async fn all_uploaded(&self) -> Result<Vec<(AccountId, UploadedNode)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT account_id, name, sha256, size, uploaded_at, version FROM uploaded_nodes
                 ORDER BY account_id, name",
                &[],
            )
            .await
            .map_err(pg("list uploaded nodes"))?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    UploadedNode {
                        name: row.get(1),
                        sha256: row.get(2),
                        size: from_sql(row.get(3)).unwrap_or(0),
                        uploaded_at: row.get(4),
                        version: row.get(5),
                    },
                )
            })
            .collect())
    }

    async fn sha256_in_use(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self
            .client()
            .await?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM uploaded_nodes WHERE sha256 = $1)
                     OR EXISTS (SELECT 1 FROM node_versions WHERE sha256 = $1)",
                &[&sha256],
            )
            .await
            .map_err(pg("look up component use"))?
            .get(0))
    }

    async fn limits(&self, account: AccountId) -> Result<LimitSettings, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT fuel, memory_bytes, timeout_ms, output_bytes, concurrency, queue,
                        log_bytes, keep_versions, history_events
                 FROM account_limits WHERE account_id = $1",
                &[&account],
            )
            .await
            .map_err(pg("read account limits"))?;
        Ok(
            row.map_or_else(LimitSettings::default, |row| LimitSettings {
                fuel: from_sql(row.get(0)),
                memory_bytes: from_sql(row.get(1)),
                timeout_ms: from_sql(row.get(2)),
                output_bytes: from_sql(row.get(3)),
                concurrency: from_sql(row.get(4)),
                queue: from_sql(row.get(5)),
                log_bytes: from_sql(row.get(6)),
                keep_versions: from_sql(row.get(7)),
                history_events: from_sql(row.get(8)),
            }),
        )
    }

    async fn set_limits(
        &self,
        account: AccountId,
        change: &LimitSettings,
    ) -> Result<(), StoreError> {
        // One statement: two hubs changing different fields at once both
        // land.
        self.client()
            .await?
            .execute(
                "INSERT INTO account_limits
                 (account_id, fuel, memory_bytes, timeout_ms, output_bytes, concurrency, queue,
                  log_bytes, keep_versions, history_events)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (account_id) DO UPDATE SET
                     fuel = COALESCE(EXCLUDED.fuel, account_limits.fuel),
                     memory_bytes = COALESCE(EXCLUDED.memory_bytes, account_limits.memory_bytes),
                     timeout_ms = COALESCE(EXCLUDED.timeout_ms, account_limits.timeout_ms),
                     output_bytes = COALESCE(EXCLUDED.output_bytes, account_limits.output_bytes),
                     concurrency = COALESCE(EXCLUDED.concurrency, account_limits.concurrency),
                     queue = COALESCE(EXCLUDED.queue, account_limits.queue),
                     log_bytes = COALESCE(EXCLUDED.log_bytes, account_limits.log_bytes),
                     keep_versions = COALESCE(EXCLUDED.keep_versions, account_limits.keep_versions),
                     history_events =
                         COALESCE(EXCLUDED.history_events, account_limits.history_events)",
                &[
                    &account,
                    &to_sql(change.fuel),
                    &to_sql(change.memory_bytes),
                    &to_sql(change.timeout_ms),
                    &to_sql(change.output_bytes),
                    &to_sql(change.concurrency),
                    &to_sql(change.queue),
                    &to_sql(change.log_bytes),
                    &to_sql(change.keep_versions),
                    &to_sql(change.history_events),
                ],
            )
            .await
            .map_err(pg("store account limits"))?;
        Ok(())
    }

    async fn put_secret(
        &self,
        account: AccountId,
        name: &str,
        sealed: &Sealed,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO secrets (account_id, name, nonce, ciphertext, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (account_id, name) DO UPDATE SET nonce = EXCLUDED.nonce,
                     ciphertext = EXCLUDED.ciphertext, updated_at = EXCLUDED.updated_at",
                &[
                    &account,
                    &name,
                    &sealed.nonce,
                    &sealed.ciphertext,
                    &unix_seconds(),
                ],
            )
            .await
            .map_err(pg("store secret"))?;
        Ok(())
    }

    async fn delete_secret(&self, account: AccountId, name: &str) -> Result<bool, StoreError> {
        let deleted = self
            .client()
            .await?
            .execute(
                "DELETE FROM secrets WHERE account_id = $1 AND name = $2",
                &[&account, &name],
            )
            .await
            .map_err(pg("delete secret"))?;
        Ok(deleted > 0)
    }

    async fn secret(&self, account: AccountId, name: &str) -> Result<Option<Sealed>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT nonce, ciphertext FROM secrets WHERE account_id = $1 AND name = $2",
                &[&account, &name],
            )
            .await
            .map_err(pg("read secret"))?;
        Ok(row.map(|row| Sealed {
            nonce: row.get(0),
            ciphertext: row.get(1),
        }))
    }

    async fn secret_names(&self, account: AccountId) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, updated_at FROM secrets WHERE account_id = $1 ORDER BY name",
                &[&account],
            )
            .await
            .map_err(pg("list secrets"))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn http_origins(
        &self,
        account: AccountId,
        node: Option<&str>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT origins FROM http_origins WHERE account_id = $1 AND node = $2",
                &[&account, &node.unwrap_or(POLICY_ROW)],
            )
            .await
            .map_err(pg("look up http origins"))?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn set_http_origins(
        &self,
        account: AccountId,
        node: Option<&str>,
        origins: Option<Vec<String>>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let node = node.unwrap_or(POLICY_ROW);
        let changed =
            match origins {
                Some(origins) => client
                    .execute(
                        "INSERT INTO http_origins (account_id, node, origins) VALUES ($1, $2, $3)
                         ON CONFLICT (account_id, node) DO UPDATE SET origins = EXCLUDED.origins",
                        &[&account, &node, &origins],
                    )
                    .await,
                None => {
                    client
                        .execute(
                            "DELETE FROM http_origins WHERE account_id = $1 AND node = $2",
                            &[&account, &node],
                        )
                        .await
                }
            }
            .map_err(pg("store http origins"))?;
        Ok(changed > 0)
    }

    async fn claim_setting(&self, key: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &candidate],
            )
            .await
            .map_err(pg("store a setting"))?;
        Ok(client
            .query_one("SELECT value FROM settings WHERE key = $1", &[&key])
            .await
            .map_err(pg("read a setting"))?
            .get(0))
    }

    async fn signing_key(&self) -> Result<[u8; 32], StoreError> {
        // Hubs starting at once may each make a key: the first one stored
        // wins and every hub uses that one.
        let candidate: [u8; 32] = rand::random();
        let stored = self.claim_setting("ws_signing_key", &candidate).await?;
        <[u8; 32]>::try_from(stored).map_err(|_| StoreError::Backend {
            what: "read signing key",
            source: "the stored signing key is not 32 bytes".into(),
        })
    }

    async fn save_exosphere(
        &self,
        account: AccountId,
        records: Vec<ExosphereRecord>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("begin Exosphere save"))?;
        let save = tx
            .prepare_cached(
                "INSERT INTO exosphere_records (account_id, kind, key, body)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account_id, kind, key) DO UPDATE SET body = EXCLUDED.body",
            )
            .await
            .map_err(pg("prepare Exosphere save"))?;
        let delete = tx
            .prepare_cached(
                "DELETE FROM exosphere_records WHERE account_id = $1 AND kind = $2 AND key = $3",
            )
            .await
            .map_err(pg("prepare Exosphere delete"))?;
        for record in &records {
            match &record.body {
                Some(body) => tx
                    .execute(&save, &[&account, &record.kind, &record.key, body])
                    .await
                    .map_err(pg("save an Exosphere record"))?,
                None => tx
                    .execute(&delete, &[&account, &record.kind, &record.key])
                    .await
                    .map_err(pg("delete an Exosphere record"))?,
            };
        }
        tx.commit().await.map_err(pg("commit Exosphere save"))
    }

    async fn exosphere_records(&self) -> Result<Vec<(AccountId, ExosphereRecord)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT account_id, kind, key, body FROM exosphere_records",
                &[],
            )
            .await
            .map_err(pg("list Exosphere records"))?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    ExosphereRecord {
                        kind: row.get(1),
                        key: row.get(2),
                        body: Some(row.get(3)),
                    },
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PostgresServer;

    #[tokio::test]
    async fn the_shared_store_suite_passes_on_postgresql() {
        let server = PostgresServer::start().unwrap();
        let url = server.create_database("suite").await.unwrap();
        super::super::suite::run(&PostgresStore::connect(&url).await.unwrap()).await;
    }

    #[tokio::test]
    async fn hubs_sharing_a_database_migrate_once_and_see_one_state() {
        let server = PostgresServer::start().unwrap();
        let url = server.create_database("shared").await.unwrap();
        let (a, b) = tokio::join!(PostgresStore::connect(&url), PostgresStore::connect(&url));
        let (a, b) = (a.unwrap(), b.unwrap());
        let (key_a, key_b) = tokio::join!(a.signing_key(), b.signing_key());
        assert_eq!(
            key_a.unwrap(),
            key_b.unwrap(),
            "one signing key for all hubs"
        );
        let token = a.create_token("alice", false, None).await.unwrap();
        assert!(b.authenticate(&token.token).await.unwrap().is_some());
        assert!(b.revoke_token(TokenKind::Api, token.id).await.unwrap());
        assert!(!a.token_live(TokenKind::Api, token.id).await.unwrap());

        let alice = a.account_id("alice").await.unwrap();
        let fuel = LimitSettings {
            fuel: Some(5),
            ..LimitSettings::default()
        };
        let queue = LimitSettings {
            queue: Some(7),
            ..LimitSettings::default()
        };
        let (fuel, queue) = tokio::join!(a.set_limits(alice, &fuel), b.set_limits(alice, &queue));
        fuel.unwrap();
        queue.unwrap();
        let limits = a.limits(alice).await.unwrap();
        assert_eq!(
            (limits.fuel, limits.queue),
            (Some(5), Some(7)),
            "both changes land"
        );
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_and_a_bad_url_is_explained() {
        let server = PostgresServer::start().unwrap();
        let url = server.create_database("newer").await.unwrap();
        drop(PostgresStore::connect(&url).await.unwrap());
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .execute("UPDATE node_host_schema SET version = 99", &[])
            .await
            .unwrap();
        assert!(matches!(
            PostgresStore::connect(&url).await,
            Err(StoreError::TooNew { found: 99, .. })
        ));
        let err = PostgresStore::connect("postgres://a:b@[::1:5432/x")
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidDatabaseUrl { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_database_that_is_down_is_unavailable_until_it_is_back() {
        let mut server = PostgresServer::start().unwrap();
        let url = server.create_database("outage").await.unwrap();
        let store = PostgresStore::connect(&url).await.unwrap();
        store.create_token("alice", false, None).await.unwrap();
        server.stop().unwrap();
        let err = store.account_id("alice").await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
        assert!(err.to_string().contains("unavailable"), "{err}");
        server.start_again().unwrap();
        // The pool drops the dead connections and connects again; the
        // first query after the restart may still meet a closed one.
        let mut answer = store.account_id("alice").await;
        for _ in 0..POOL_SIZE {
            if answer.is_ok() {
                break;
            }
            answer = store.account_id("alice").await;
        }
        answer.expect("the store works again without a restart of the hub");
    }

    #[tokio::test]
    async fn a_database_that_never_answers_is_unavailable_at_start() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let err = PostgresStore::connect(&format!("postgres://nobody@127.0.0.1:{port}/none"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    }
}
