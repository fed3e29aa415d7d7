//! The hub's durable state in SQLite: accounts, their API tokens (hashed at
//! rest), the key that signs WebSocket tokens, the nodes each account has
//! uploaded (by sha256; the bytes live in [`super::blobs`]), each
//! account's limits, and its secrets (sealed by [`super::secrets`]).
//!
//! Registrations and connections are deliberately not here: workers refresh
//! them every minute, so they live in memory and a restarted hub learns them
//! again. Schema changes go through [`MIGRATIONS`], applied in order and
//! recorded in SQLite's `user_version`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use rusqlite::{Connection, OptionalExtension as _, params};
use sha2::{Digest as _, Sha256};

use super::secrets::Sealed;

/// The database file inside the hub's data directory.
pub const DATABASE_FILE: &str = "hub.sqlite3";

/// Prefix of every API token, so a leaked one is recognisable in logs and
/// by secret scanners.
pub const TOKEN_PREFIX: &str = "nh_";

/// Prefix of every hosted-worker token.
pub const WORKER_TOKEN_PREFIX: &str = "nhw_";

/// Random bytes in an API token: 256 bits, beyond guessing.
const TOKEN_BYTES: usize = 32;

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
];

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
    /// SQLite failed.
    #[error("hub database {what}: {source}")]
    Sqlite {
        /// What the store was doing.
        what: &'static str,
        /// Why.
        source: rusqlite::Error,
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

fn sql(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { what, source }
}

/// Who a valid API token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account's id.
    pub account: i64,
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
        }
    }
}

/// The hub's database.
#[derive(Debug)]
pub struct Store {
    db: Connection,
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir`, or an in-memory
    /// database that lives as long as the process when `data_dir` is `None`.
    pub fn open(data_dir: Option<&Path>) -> Result<Self, StoreError> {
        let db = match data_dir {
            Some(dir) => {
                create_private_dir(dir)?;
                let db = Connection::open(dir.join(DATABASE_FILE)).map_err(sql("open"))?;
                db.pragma_update(None, "journal_mode", "WAL")
                    .map_err(sql("set WAL mode"))?;
                db
            }
            None => Connection::open_in_memory().map_err(sql("open in memory"))?,
        };
        db.pragma_update(None, "foreign_keys", true)
            .map_err(sql("enable foreign keys"))?;
        let mut store = Self { db };
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
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = self.db.transaction().map_err(sql("begin migration"))?;
            tx.execute_batch(migration).map_err(sql("migrate"))?;
            tx.pragma_update(None, "user_version", index + 1)
                .map_err(sql("record schema version"))?;
            tx.commit().map_err(sql("commit migration"))?;
        }
        Ok(())
    }

    /// Creates a new API token for `account` (creating the account if it is
    /// new) and returns it. Only its hash is stored: this is the one time the
    /// token can be seen.
    pub fn create_token(&mut self, account: &str, read_only: bool) -> Result<String, StoreError> {
        if !valid_account_name(account) {
            return Err(StoreError::InvalidAccountName(account.to_owned()));
        }
        let mut random = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut random);
        let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        let now = unix_seconds();
        let tx = self.db.transaction().map_err(sql("begin"))?;
        tx.execute(
            "INSERT INTO accounts (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
            params![account, now],
        )
        .map_err(sql("create account"))?;
        tx.execute(
            "INSERT INTO api_tokens (account_id, token_sha256, read_only, created_at)
             SELECT id, ?2, ?3, ?4 FROM accounts WHERE name = ?1",
            params![account, token_hash(&token), read_only, now],
        )
        .map_err(sql("store token"))?;
        tx.commit().map_err(sql("commit"))?;
        Ok(token)
    }

    /// The caller behind an API token, or `None` for an unknown token.
    pub fn authenticate(&self, token: &str) -> Result<Option<Caller>, StoreError> {
        self.db
            .prepare_cached(
                "SELECT a.id, a.name, t.read_only FROM api_tokens t
                 JOIN accounts a ON a.id = t.account_id WHERE t.token_sha256 = ?1",
            )
            .map_err(sql("prepare token lookup"))?
            .query_row([token_hash(token)], |row| {
                Ok(Caller {
                    account: row.get(0)?,
                    account_name: row.get(1)?,
                    read_only: row.get(2)?,
                })
            })
            .optional()
            .map_err(sql("look up token"))
    }

    /// Creates a hosted-worker token and returns it (only its hash is kept).
    /// It lets `node-host run --hosted` fetch uploaded components and run
    /// every account's events; it opens no account API.
    pub fn create_worker_token(&mut self) -> Result<String, StoreError> {
        let mut random = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut random);
        let token = format!("{WORKER_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        self.db
            .execute(
                "INSERT INTO worker_tokens (token_sha256, created_at) VALUES (?1, ?2)",
                params![token_hash(&token), unix_seconds()],
            )
            .map_err(sql("store worker token"))?;
        Ok(token)
    }

    /// True when `token` is a hosted-worker token of this hub.
    pub fn is_worker_token(&self, token: &str) -> Result<bool, StoreError> {
        self.db
            .prepare_cached("SELECT 1 FROM worker_tokens WHERE token_sha256 = ?1")
            .map_err(sql("prepare worker token lookup"))?
            .exists([token_hash(token)])
            .map_err(sql("look up worker token"))
    }

    /// How many accounts exist.
    pub fn account_count(&self) -> Result<u64, StoreError> {
        self.db
            .query_row("SELECT COUNT(*) FROM accounts", [], |row| row.get(0))
            .map_err(sql("count accounts"))
    }

    /// The id of the account called `name`.
    pub fn account_id(&self, name: &str) -> Result<i64, StoreError> {
        self.db
            .query_row("SELECT id FROM accounts WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sql("look up account"))?
            .ok_or_else(|| StoreError::UnknownAccount(name.to_owned()))
    }

    /// Records that `account` serves `node.name` from the component with
    /// `node.sha256`, replacing an earlier upload of the same name.
    pub fn put_uploaded(&self, account: i64, node: &UploadedNode) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO uploaded_nodes (account_id, name, sha256, size, uploaded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    account,
                    node.name,
                    node.sha256,
                    node.size as i64,
                    node.uploaded_at
                ],
            )
            .map_err(sql("store uploaded node"))?;
        Ok(())
    }

    /// Forgets the upload `name` of `account`; false when there was none.
    pub fn delete_uploaded(&self, account: i64, name: &str) -> Result<bool, StoreError> {
        let deleted = self
            .db
            .execute(
                "DELETE FROM uploaded_nodes WHERE account_id = ?1 AND name = ?2",
                params![account, name],
            )
            .map_err(sql("delete uploaded node"))?;
        Ok(deleted > 0)
    }

    /// Every account's uploads, for loading them at start-up.
    pub fn all_uploaded(&self) -> Result<Vec<(i64, UploadedNode)>, StoreError> {
        let mut statement = self
            .db
            .prepare(
                "SELECT account_id, name, sha256, size, uploaded_at FROM uploaded_nodes
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
                    },
                ))
            })
            .map_err(sql("list uploaded nodes"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("read uploaded node"))
    }

    /// True when any account's upload still uses the component `sha256`.
    pub fn sha256_in_use(&self, sha256: &str) -> Result<bool, StoreError> {
        self.db
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM uploaded_nodes WHERE sha256 = ?1)",
                [sha256],
                |row| row.get(0),
            )
            .map_err(sql("look up component use"))
    }

    /// The limits `account` has set; unset fields are `None` (the defaults).
    pub fn limits(&self, account: i64) -> Result<LimitSettings, StoreError> {
        self.db
            .query_row(
                "SELECT fuel, memory_bytes, timeout_ms, output_bytes, concurrency, queue,
                        log_bytes
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
                    })
                },
            )
            .optional()
            .map_err(sql("read account limits"))
            .map(Option::unwrap_or_default)
    }

    /// Sets the given fields of `account`'s limits, keeping the others.
    pub fn set_limits(&self, account: i64, change: &LimitSettings) -> Result<(), StoreError> {
        let old = self.limits(account)?;
        let new = old.merged(change);
        let value = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
        self.db
            .execute(
                "INSERT OR REPLACE INTO account_limits
                 (account_id, fuel, memory_bytes, timeout_ms, output_bytes, concurrency, queue,
                  log_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    account,
                    value(new.fuel),
                    value(new.memory_bytes),
                    value(new.timeout_ms),
                    value(new.output_bytes),
                    value(new.concurrency),
                    value(new.queue),
                    value(new.log_bytes)
                ],
            )
            .map_err(sql("store account limits"))?;
        Ok(())
    }

    /// Stores (or replaces) `account`'s sealed secret `name`.
    pub fn put_secret(&self, account: i64, name: &str, sealed: &Sealed) -> Result<(), StoreError> {
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

    /// Forgets `account`'s secret `name`; false when there was none.
    pub fn delete_secret(&self, account: i64, name: &str) -> Result<bool, StoreError> {
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
    pub fn secret(&self, account: i64, name: &str) -> Result<Option<Sealed>, StoreError> {
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
    pub fn secret_names(&self, account: i64) -> Result<Vec<(String, i64)>, StoreError> {
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

    /// The key that signs WebSocket tokens, made on first use and kept, so
    /// tokens stay valid across a restart of the hub.
    pub fn signing_key(&mut self) -> Result<[u8; 32], StoreError> {
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

/// Account names: 1 to 64 of `[A-Za-z0-9._-]`.
pub fn valid_account_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Tokens carry 256 random bits, so one round of SHA-256 is enough to make
/// a stolen database useless for logging in; a slow password hash would
/// only slow every request down.
fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let failed = |source| StoreError::DataDir {
        path: dir.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_their_account_only() {
        let mut store = Store::open(None).unwrap();
        let alice = store.create_token("alice", false).unwrap();
        let reader = store.create_token("alice", true).unwrap();
        let bob = store.create_token("bob", false).unwrap();
        assert!(alice.starts_with(TOKEN_PREFIX));
        let caller = store.authenticate(&alice).unwrap().unwrap();
        assert_eq!(
            (caller.account_name.as_str(), caller.read_only),
            ("alice", false)
        );
        let read_only = store.authenticate(&reader).unwrap().unwrap();
        assert_eq!(
            (read_only.account, read_only.read_only),
            (caller.account, true)
        );
        assert_ne!(
            store.authenticate(&bob).unwrap().unwrap().account,
            caller.account
        );
        assert_eq!(store.authenticate("nh_forged").unwrap(), None);
        assert_eq!(store.account_count().unwrap(), 2);
    }

    #[test]
    fn worker_tokens_are_not_account_tokens() {
        let mut store = Store::open(None).unwrap();
        let worker = store.create_worker_token().unwrap();
        let alice = store.create_token("alice", false).unwrap();
        assert!(worker.starts_with(WORKER_TOKEN_PREFIX));
        assert!(store.is_worker_token(&worker).unwrap());
        assert!(!store.is_worker_token(&alice).unwrap());
        assert!(!store.is_worker_token("nhw_forged").unwrap());
        assert_eq!(store.authenticate(&worker).unwrap(), None);
        assert_eq!(store.account_count().unwrap(), 1);
    }

    #[test]
    fn state_survives_reopening_and_tokens_are_hashed() {
        let dir = std::env::temp_dir().join(format!("node-host-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let token = {
            let mut store = Store::open(Some(&dir)).unwrap();
            let key = store.signing_key().unwrap();
            let token = store.create_token("alice", false).unwrap();
            assert_eq!(store.signing_key().unwrap(), key);
            token
        };
        let mut store = Store::open(Some(&dir)).unwrap();
        assert!(store.authenticate(&token).unwrap().is_some());
        assert_eq!(store.signing_key().unwrap(), store.signing_key().unwrap());
        drop(store);
        for file in std::fs::read_dir(&dir).unwrap() {
            let raw = std::fs::read(file.unwrap().path()).unwrap();
            let needle = token.as_bytes();
            assert!(!raw.windows(needle.len()).any(|window| window == needle));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn account_names_are_checked() {
        let mut store = Store::open(None).unwrap();
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            assert!(matches!(
                store.create_token(bad, false),
                Err(StoreError::InvalidAccountName(_))
            ));
        }
    }

    #[test]
    fn uploads_and_limits_are_per_account_and_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("node-host-store-up-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let node = |sha: &str| UploadedNode {
            name: "hello".into(),
            sha256: sha.into(),
            size: 10,
            uploaded_at: 1,
        };
        {
            let mut store = Store::open(Some(&dir)).unwrap();
            store.create_token("alice", false).unwrap();
            store.create_token("bob", false).unwrap();
            let alice = store.account_id("alice").unwrap();
            let bob = store.account_id("bob").unwrap();
            store.put_uploaded(alice, &node("aa")).unwrap();
            store.put_uploaded(alice, &node("bb")).unwrap();
            store.put_uploaded(bob, &node("aa")).unwrap();
            assert!(store.delete_uploaded(bob, "hello").unwrap());
            assert!(!store.delete_uploaded(bob, "hello").unwrap());
            assert!(!store.sha256_in_use("aa").unwrap());
            store
                .set_limits(
                    alice,
                    &LimitSettings {
                        fuel: Some(7),
                        ..LimitSettings::default()
                    },
                )
                .unwrap();
            store
                .set_limits(
                    alice,
                    &LimitSettings {
                        queue: Some(3),
                        ..LimitSettings::default()
                    },
                )
                .unwrap();
            assert_eq!(store.limits(bob).unwrap(), LimitSettings::default());
        }
        let store = Store::open(Some(&dir)).unwrap();
        let alice = store.account_id("alice").unwrap();
        assert_eq!(store.all_uploaded().unwrap(), vec![(alice, node("bb"))]);
        let limits = store.limits(alice).unwrap();
        assert_eq!(
            (limits.fuel, limits.queue, limits.timeout_ms),
            (Some(7), Some(3), None)
        );
        assert!(matches!(
            store.account_id("carol"),
            Err(StoreError::UnknownAccount(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_are_per_account() {
        let mut store = Store::open(None).unwrap();
        store.create_token("alice", false).unwrap();
        store.create_token("bob", false).unwrap();
        let (alice, bob) = (
            store.account_id("alice").unwrap(),
            store.account_id("bob").unwrap(),
        );
        let sealed = Sealed {
            nonce: vec![1; 24],
            ciphertext: vec![2; 20],
        };
        store.put_secret(alice, "api-key", &sealed).unwrap();
        assert_eq!(store.secret(alice, "api-key").unwrap(), Some(sealed));
        assert_eq!(store.secret(bob, "api-key").unwrap(), None);
        assert_eq!(store.secret_names(alice).unwrap().len(), 1);
        assert!(!store.delete_secret(bob, "api-key").unwrap());
        assert!(store.delete_secret(alice, "api-key").unwrap());
        assert!(store.secret_names(alice).unwrap().is_empty());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = std::env::temp_dir().join(format!("node-host-store-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        drop(Store::open(Some(&dir)).unwrap());
        let db = Connection::open(dir.join(DATABASE_FILE)).unwrap();
        db.pragma_update(None, "user_version", 99).unwrap();
        drop(db);
        assert!(matches!(
            Store::open(Some(&dir)),
            Err(StoreError::TooNew { found: 99, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
