//! `node-host hub`: serve the Hurozo-compatible backend, and manage tokens
//! and account limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::args::{OutboundArgs, parse_duration, parse_size};
use crate::hub::service::{AccountLimits, UploadQuota};
use crate::hub::store::{
    LimitSettings, PostgresStore, SqliteStore, Store, TokenId, TokenKind, TokenRecord, unix_seconds,
};
use crate::hub::{self, Hub, HubConfig};
use crate::sandbox::SandboxConfig;

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\
Examples:
  node-host hub token create --account alice --expires 90d
  node-host hub token list
  node-host hub token revoke 3
  node-host hub account set alice --timeout 2s --concurrency 8
  node-host hub worker-token create
  node-host hub --listen 127.0.0.1:8765
  HUROZO_TOKEN=nh_... node-host run hello.wasm --backend http://127.0.0.1:8765"
)]
pub(super) struct HubArgs {
    #[command(subcommand)]
    action: Option<HubAction>,

    /// Address to listen on (use 0.0.0.0:PORT to accept other machines).
    #[arg(long, value_name = "ADDR", default_value = hub::DEFAULT_LISTEN)]
    listen: SocketAddr,

    #[command(flatten)]
    data: DataArgs,

    /// Keep uploaded components in DIR instead of in --data: in a cluster,
    /// a directory every hub mounts (compiled artifacts stay in each hub's
    /// own --data).
    #[arg(long, value_name = "DIR", env = "NODE_HOST_HUB_COMPONENTS")]
    components: Option<PathBuf>,

    /// Join a cluster of hubs: pass executes to the hub a node's worker is
    /// connected to, through this NATS server (nats://HOST:PORT). Needs
    /// --database, the same for every hub of the cluster.
    #[arg(
        long,
        value_name = "URL",
        env = "NODE_HOST_HUB_NATS",
        requires = "database"
    )]
    nats: Option<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics, on a listener of
    /// their own (e.g. 127.0.0.1:9464). They name every account's nodes:
    /// keep ADDR internal. Without it the hub serves no metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,

    /// The WebSocket URL to give workers, when the hub sits behind a proxy
    /// (e.g. wss://hub.example.com/ws) [default: ws://<Host header>/ws].
    #[arg(long, value_name = "URL")]
    public_ws_url: Option<String>,

    /// How long an upload request waits for the node's compile before it
    /// answers 202 `compiling` with a status URL to poll (`node-host upload`
    /// polls it for you).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    upload_wait: Duration,

    /// Uploaded nodes one account may keep; beyond, an upload is refused
    /// with `quota_exceeded`.
    #[arg(long, value_name = "N", default_value = "100")]
    quota_nodes: usize,

    /// Bytes of uploaded components one account may keep (e.g. 1GiB, 500MiB).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    quota_bytes: usize,

    /// Connections open at once, worker WebSockets included; beyond, new
    /// clients wait until one closes.
    #[arg(long, value_name = "N", default_value = "10000", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,

    /// The most a client may take to send a request's headers (also how
    /// long an idle keep-alive connection is kept; an HTTP/2 connection
    /// that sends nothing for that long is shut down gracefully).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,

    /// The most a client may take to send a request's body (an upload's
    /// component included) once its headers are in.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    body_timeout: Duration,

    /// How often the hub pings each worker; one silent for two periods is
    /// dropped and its events fail at once. For tests: workers ping every
    /// 20 s themselves, so a shorter period can drop a worker too busy to
    /// answer.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration, hide = true)]
    ping_every: Duration,

    /// How long the hub trusts a token it checked: a token revoked with
    /// `node-host hub token revoke` is refused, and the worker connections
    /// it opened are closed, within this period. For tests.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, hide = true)]
    token_recheck: Duration,

    /// How long an Exosphere state handed to a runtime is held for it; a
    /// runtime that reports nothing in that time is taken for dead and the
    /// state is handed out again.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    exosphere_lease: Duration,

    #[command(flatten, next_help_heading = "Uploaded nodes' outbound HTTP")]
    outbound: OutboundArgs,

    #[command(flatten, next_help_heading = "Versions and event history")]
    history: HistoryArgs,
}

#[derive(Debug, Clone, Args)]
struct HistoryArgs {
    /// Versions kept of each uploaded node, the current one included: the
    /// ones `node-host node rollback` can go back to. Older ones are
    /// removed with their compiled code.
    #[arg(long, value_name = "N", default_value = "5", value_parser = clap::value_parser!(u32).range(1..=1000))]
    keep_versions: u32,

    /// Events kept per account in the event history (what `node-host logs`,
    /// GET /api/events and the dashboard show, with what each printed);
    /// 0 keeps none (the history is off).
    #[arg(long, value_name = "N", default_value = "1000", value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    history_events: u64,

    /// The longest an event is kept in the history.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    history_age: Duration,
}

impl HistoryArgs {
    fn settings(&self) -> crate::hub::service::HistorySettings {
        crate::hub::service::HistorySettings {
            keep_versions: self.keep_versions as usize,
            retention: crate::hub::store::Retention {
                events: self.history_events,
                max_age_s: self.history_age.as_secs().min(i64::MAX as u64) as i64,
            },
        }
    }
}

#[derive(Debug, Clone, Args)]
struct DataArgs {
    /// Where the hub keeps its database
    /// [default: $XDG_DATA_HOME/node-host/hub or ~/.local/share/node-host/hub].
    #[arg(long, value_name = "DIR", env = "NODE_HOST_HUB_DATA")]
    data: Option<PathBuf>,

    /// Keep accounts, tokens, uploads' records, limits and secrets in this
    /// PostgreSQL database (postgres://USER[:PASSWORD]@HOST[:PORT]/DB)
    /// instead of SQLite in --data: every hub of a cluster gives the same
    /// one. Its tables are made or upgraded at start.
    #[arg(long, value_name = "URL", env = "NODE_HOST_HUB_DATABASE")]
    database: Option<String>,
}

impl DataArgs {
    /// The hub's store: PostgreSQL at `--database`, else SQLite in the data
    /// directory. Opened on the caller's runtime, which must outlive it.
    async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match &self.database {
            Some(url) => Arc::new(PostgresStore::connect(url).await?),
            None => Arc::new(SqliteStore::open(Some(&self.dir()?))?),
        })
    }

    /// Where the store is, for messages (never the database URL: it may
    /// hold a password).
    fn shown(&self) -> anyhow::Result<String> {
        Ok(match &self.database {
            Some(_) => "the PostgreSQL database (--database)".to_owned(),
            None => self.dir()?.display().to_string(),
        })
    }

    fn dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.data {
            return Ok(dir.clone());
        }
        let base = super::xdg_dir("XDG_DATA_HOME", ".local/share")
            .context("no --data given and neither XDG_DATA_HOME nor HOME is set")?;
        Ok(base.join("hub"))
    }
}

#[derive(Debug, Subcommand)]
enum HubAction {
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenAction),
    /// Show or change an account's limits for its uploaded nodes.
    #[command(subcommand)]
    Account(AccountAction),
    /// Manage tokens of hosted workers (`node-host run --hosted`).
    #[command(subcommand)]
    WorkerToken(WorkerTokenAction),
}

#[derive(Debug, Subcommand)]
enum WorkerTokenAction {
    /// List the hosted-worker tokens (their ids, never their values).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke hosted-worker tokens by id (see `list`).
    ///
    /// A running hub refuses them, and closes the hosted workers' connections
    /// opened with them, within 10 s.
    Revoke {
        /// The tokens' ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<TokenId>,

        #[command(flatten)]
        data: DataArgs,
    },
    /// Create a hosted-worker token and print it.
    ///
    /// A hosted worker with this token fetches every account's uploaded
    /// components and runs their events, secrets included: give it only to
    /// machines as trusted as the hub. The token is shown once; the hub
    /// keeps only its hash.
    #[command(after_help = "\
Example:
  NODE_HOST_WORKER_TOKEN=$(node-host hub worker-token create) \\
    node-host run --hosted --backend http://127.0.0.1:8765")]
    Create {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AccountAction {
    /// Change an account's limits (the flags given; the rest stay as they are).
    ///
    /// A running hub applies the change to the next event.
    #[command(after_help = "\
Example:
  node-host hub account set alice --timeout 2s --concurrency 8 --queue 100")]
    Set {
        /// The account.
        name: String,

        /// Fuel per event (about one unit per WebAssembly instruction).
        #[arg(long, value_name = "N")]
        fuel: Option<u64>,

        /// Linear memory per instance (e.g. 128MiB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        memory: Option<usize>,

        /// Wall-clock deadline per event (e.g. 500ms, 10s).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<Duration>,

        /// Total size of an event's outputs (e.g. 1MiB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_output: Option<usize>,

        /// What is kept of each event's stdout, stderr and log lines, each
        /// (e.g. 16KiB); see GET /api/nodes/NAME/logs.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_log: Option<usize>,

        /// Events of the account running at once.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        concurrency: Option<u64>,

        /// Events of the account waiting beyond those; more are refused with 429.
        #[arg(long, value_name = "N")]
        queue: Option<u64>,

        /// Versions kept of each of the account's uploaded nodes, the
        /// current one included [default: the hub's --keep-versions].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
        keep_versions: Option<u64>,

        /// Events the account keeps in the event history; 0 keeps none
        /// [default: the hub's --history-events].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
        history_events: Option<u64>,

        #[command(flatten)]
        data: DataArgs,
    },
    /// Show or change the origins an account's uploaded nodes may call
    /// over HTTP: the upper bound of the grants the account gives its nodes
    /// (`node-host grant`). Allows nothing until set.
    ///
    /// A running hub applies the change to the next event.
    #[command(after_help = "\
Examples:
  node-host hub account http alice --allow https://api.openai.com --allow 'https://*.example.org'
  node-host hub account http alice --clear")]
    Http {
        /// The account.
        name: String,

        /// An origin the account's nodes may be granted: scheme://host[:port], with `*.` for
        /// any subdomain and `:*` for any port (repeatable; replaces the list).
        #[arg(long = "allow", value_name = "ORIGIN", conflicts_with = "clear")]
        allow: Vec<crate::sandbox::http::Origin>,

        /// Allow nothing (every request of the account's nodes is refused).
        #[arg(long)]
        clear: bool,

        #[command(flatten)]
        data: DataArgs,
    },
    /// Print the limits an account's events run under.
    Show {
        /// The account.
        name: String,

        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create an API token (and the account, if it is new) and print it.
    ///
    /// The token is shown once; the hub keeps only its hash.
    Create {
        /// The account the token belongs to (letters, digits, `-`, `_`, `.`).
        #[arg(long, value_name = "NAME")]
        account: String,

        /// The token may list and execute nodes but not register them.
        #[arg(long)]
        read_only: bool,

        /// The token stops working after this long (e.g. 12h, 90d)
        /// [default: never].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<Duration>,

        #[command(flatten)]
        data: DataArgs,
    },
    /// List API tokens: id, account, access, created, expires (never their
    /// values).
    List {
        /// Only this account's tokens.
        #[arg(long, value_name = "NAME")]
        account: Option<String>,

        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke API tokens by id (see `list`).
    ///
    /// A running hub refuses them, and closes the worker connections
    /// registered with them, within 10 s.
    #[command(after_help = "\
Example:
  node-host hub token list --account alice
  node-host hub token revoke 3")]
    Revoke {
        /// The tokens' ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<TokenId>,

        #[command(flatten)]
        data: DataArgs,
    },
}

pub(super) fn run(args: &HubArgs, sandbox: SandboxConfig) -> anyhow::Result<ExitCode> {
    match &args.action {
        Some(HubAction::Token(action)) => tokens(action),
        Some(HubAction::Account(action)) => account(action),
        Some(HubAction::WorkerToken(action)) => worker_tokens(action),
        None => serve(args, sandbox),
    }
}

fn tokens(action: &TokenAction) -> anyhow::Result<ExitCode> {
    match action {
        TokenAction::Create {
            account,
            read_only,
            expires,
            data,
        } => {
            let expires_at = expires.map(|after| unix_seconds() + after.as_secs() as i64);
            let issued = block_on(async {
                let store = data.open().await?;
                anyhow::Ok(store.create_token(account, *read_only, expires_at).await?)
            })??;
            out!("{}", issued.token);
            let kind = if *read_only { "read-only" } else { "write" };
            let until =
                expires_at.map_or_else(String::new, |at| format!(", valid until {}", utc(at)));
            eprintln!(
                "node-host: created {kind} token {} for account `{account}`{until} in {}; \
                 it is shown only now",
                issued.id,
                data.shown()?
            );
            Ok(ExitCode::SUCCESS)
        }
        TokenAction::List { account, data } => {
            let mut records =
                block_on(async { anyhow::Ok(data.open().await?.tokens(TokenKind::Api).await?) })??;
            if let Some(account) = account {
                records.retain(|record| record.account.as_deref() == Some(account.as_str()));
            }
            print_tokens(&records, true)?;
            Ok(ExitCode::SUCCESS)
        }
        TokenAction::Revoke { ids, data } => revoke(TokenKind::Api, ids, data),
    }
}

fn worker_tokens(action: &WorkerTokenAction) -> anyhow::Result<ExitCode> {
    match action {
        WorkerTokenAction::Create { data } => {
            let issued =
                block_on(async { anyhow::Ok(data.open().await?.create_worker_token().await?) })??;
            out!("{}", issued.token);
            eprintln!(
                "node-host: created hosted-worker token {} in {}; it is shown only now",
                issued.id,
                data.shown()?
            );
            Ok(ExitCode::SUCCESS)
        }
        WorkerTokenAction::List { data } => {
            let records = block_on(async {
                anyhow::Ok(data.open().await?.tokens(TokenKind::Worker).await?)
            })??;
            print_tokens(&records, false)?;
            Ok(ExitCode::SUCCESS)
        }
        WorkerTokenAction::Revoke { ids, data } => revoke(TokenKind::Worker, ids, data),
    }
}

/// Revokes every token in `ids`; an unknown id is an error, after the
/// others are revoked.
fn revoke(kind: TokenKind, ids: &[TokenId], data: &DataArgs) -> anyhow::Result<ExitCode> {
    let revoked = block_on(async {
        let store = data.open().await?;
        let mut revoked = Vec::new();
        for &id in ids {
            revoked.push((id, store.revoke_token(kind, id).await?));
        }
        anyhow::Ok(revoked)
    })??;
    let mut unknown = Vec::new();
    for (id, found) in revoked {
        if found {
            eprintln!(
                "node-host: revoked token {id}; a running hub refuses it, and closes the \
                 connections opened with it, within {} s",
                crate::hub::service::TOKEN_RECHECK.as_secs()
            );
        } else {
            unknown.push(id.to_string());
        }
    }
    if unknown.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let list = match kind {
        TokenKind::Api => "node-host hub token list",
        TokenKind::Worker => "node-host hub worker-token list",
    };
    anyhow::bail!(
        "no token has the id {}; `{list}` shows the ids",
        unknown.join(", ")
    )
}

/// Prints `records` as a table (with the account columns for API tokens).
fn print_tokens(records: &[TokenRecord], api: bool) -> anyhow::Result<()> {
    if records.is_empty() {
        eprintln!("node-host: no tokens");
        return Ok(());
    }
    let now = unix_seconds();
    if api {
        out!(
            "{:>6}  {:<20}  {:<10}  {:<20}  EXPIRES",
            "ID",
            "ACCOUNT",
            "ACCESS",
            "CREATED"
        );
    } else {
        out!("{:>6}  {:<20}  EXPIRES", "ID", "CREATED");
    }
    for record in records {
        let expires = match record.expires_at {
            None => "never".to_owned(),
            Some(at) if at <= now => format!("{} (expired)", utc(at)),
            Some(at) => utc(at),
        };
        if api {
            let access = if record.read_only {
                "read-only"
            } else {
                "write"
            };
            out!(
                "{:>6}  {:<20}  {:<10}  {:<20}  {expires}",
                record.id,
                record.account.as_deref().unwrap_or("-"),
                access,
                utc(record.created_at),
            );
        } else {
            out!(
                "{:>6}  {:<20}  {expires}",
                record.id,
                utc(record.created_at)
            );
        }
    }
    Ok(())
}

use crate::core::clock::utc_minutes as utc;

fn account(action: &AccountAction) -> anyhow::Result<ExitCode> {
    let (name, data) = match action {
        AccountAction::Set { name, data, .. }
        | AccountAction::Show { name, data }
        | AccountAction::Http { name, data, .. } => (name, data),
    };
    if let AccountAction::Http {
        allow, clear, data, ..
    } = action
    {
        return http_policy(name, allow, *clear, data);
    }
    block_on(async {
        let store = data.open().await?;
        let id = store.account_id(name).await?;
        if let AccountAction::Set {
            fuel,
            memory,
            timeout,
            max_output,
            max_log,
            concurrency,
            queue,
            keep_versions,
            history_events,
            ..
        } = action
        {
            let change = LimitSettings {
                fuel: *fuel,
                memory_bytes: memory.map(|bytes| bytes as u64),
                timeout_ms: timeout.map(|timeout| timeout.as_millis() as u64),
                output_bytes: max_output.map(|bytes| bytes as u64),
                concurrency: *concurrency,
                queue: *queue,
                log_bytes: max_log.map(|bytes| bytes as u64),
                keep_versions: *keep_versions,
                history_events: *history_events,
            };
            if change == LimitSettings::default() {
                anyhow::bail!(
                    "nothing to change: give at least one of --fuel, --memory, --timeout, \
                 --max-output, --max-log, --concurrency, --queue, --keep-versions, \
                 --history-events"
                );
            }
            store.set_limits(id, &change).await?;
        }
        let limits = AccountLimits::from_settings(&store.limits(id).await?);
        out!("{}", serde_json::to_string_pretty(&limits.to_json())?);
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })?
}

/// `hub account http`: shows or sets an account's outbound HTTP policy.
fn http_policy(
    name: &str,
    allow: &[crate::sandbox::http::Origin],
    clear: bool,
    data: &DataArgs,
) -> anyhow::Result<ExitCode> {
    block_on(async {
        let store = data.open().await?;
        let id = store.account_id(name).await?;
        if clear {
            store.set_http_origins(id, None, None).await?;
        } else if !allow.is_empty() {
            let origins = allow.iter().map(ToString::to_string).collect();
            store.set_http_origins(id, None, Some(origins)).await?;
        }
        let policy = store.http_origins(id, None).await?.unwrap_or_default();
        out!("{}", serde_json::json!({"account": name, "allow": policy}));
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })?
}

/// Runs `work` on a runtime of its own (the store is async).
fn block_on<T>(work: impl Future<Output = T>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(work))
}

fn serve(args: &HubArgs, sandbox: SandboxConfig) -> anyhow::Result<ExitCode> {
    let dir = args.data.dir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let state = runtime.block_on(Hub::open(&HubConfig {
        outbound: args.outbound.settings(),
        data_dir: Some(dir.clone()),
        database: args.data.database.clone(),
        components_dir: args.components.clone(),
        nats: args.nats.clone(),
        public_ws_url: args.public_ws_url.clone(),
        sandbox,
        upload_wait: args.upload_wait,
        quota: UploadQuota {
            nodes: args.quota_nodes,
            bytes: args.quota_bytes as u64,
        },
        keepalive: args.ping_every,
        token_recheck: args.token_recheck,
        exosphere_lease: args.exosphere_lease,
        history: args.history.settings(),
    }))?;
    let restoring = state.restored().pending;
    if restoring > 0 {
        tell!(
            "node-host: loading {restoring} uploaded nodes in the background; \
             an event for one waits until it is loaded"
        );
        let hub = state.clone();
        runtime.spawn(async move {
            let restored = hub.restore_finished().await;
            let failed = match restored.failed {
                0 => String::new(),
                n => format!("; {n} could not be loaded (see the log above)"),
            };
            tell!(
                "node-host: loaded {} uploaded nodes ({} from the compile cache, {} compiled){failed}",
                restored.cached + restored.compiled,
                restored.cached,
                restored.compiled
            );
        });
    }
    if runtime.block_on(state.store().account_count())? == 0 {
        tell!(
            "node-host: the hub has no accounts yet; create a token with\n  node-host hub token create --account NAME {}",
            match args.data.database {
                Some(_) => "--database URL".to_owned(),
                None => format!("--data {}", dir.display()),
            }
        );
    }
    runtime.block_on(async {
        if let Some(addr) = args.metrics {
            super::serve_metrics(addr, state.metrics().clone()).await?;
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("the hub cannot listen on {} (--listen)", args.listen))?;
        let addr = listener.local_addr()?;
        say!(
            "node-host: hub listening on http://{addr} (data in {})",
            args.data.shown()?
        );
        let limits = hub::ServeLimits {
            max_connections: args.max_connections as usize,
            header_timeout: args.header_timeout,
            body_timeout: args.body_timeout,
        };
        hub::serve(listener, state, limits, super::wait_for_signal())
            .await
            .context("serving the hub")?;
        tell!("node-host: hub stopped");
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::super::{Cli, Command};

    #[test]
    fn dates_are_printed_in_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(super::utc(1_798_761_599), "2026-12-31 23:59 UTC");
        assert_eq!(super::utc(-86_400), "1969-12-31 00:00 UTC");
    }

    #[test]
    fn the_hub_waits_for_uploads_as_long_as_the_embedded_hub() {
        let cli = Cli::try_parse_from(["node-host", "hub"]).unwrap();
        let Command::Hub(args) = cli.command else {
            panic!("`node-host hub` parses as the hub command");
        };
        assert_eq!(args.upload_wait, crate::hub::service::UPLOAD_READY_WAIT);
    }
}
