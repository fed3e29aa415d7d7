//! `node-host run`: serve components to a backend, or to an embedded hub.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::sync::{oneshot, watch};

use super::args::{HttpArgs, LimitArgs, parse_backend, parse_duration, token_from_env};
use super::{CompileProgress, EXIT_FAILED, EXIT_USAGE, read_component, wait_for_signal};
use crate::exosphere::{RuntimeConfig, RuntimeError};
use crate::hub::{self, Hub, HubConfig};
use crate::sandbox::{NodeComponent, Sandbox, SandboxConfig};
use crate::worker::hosted::{HostedConfig, HostedWorker};
use crate::worker::{Worker, WorkerConfig, WorkerError};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  node-host run hello.wasm
      serve on an embedded hub on 127.0.0.1 and print how to call the node
  HUROZO_TOKEN=... node-host run hello.wasm echo.wasm --backend https://app.hurozo.com
      serve two nodes to a Hurozo backend
  NODE_HOST_WORKER_TOKEN=nhw_... node-host run --hosted --backend http://hub.internal:8765
      run the nodes accounts uploaded to a node-host hub (a hosted worker)
  EXOSPHERE_API_KEY=... node-host run hello.wasm --exosphere http://localhost:8000 --namespace demo --name rt1
      be an Exosphere runtime: pull the nodes' states from a state manager

Stop with Ctrl-C or SIGTERM: events in flight finish (up to --grace), then it exits 0.
Exit codes: 0 stopped; 1 the backend refused the token or a node; 2 a usage error or a
file that is not a node.")]
pub(super) struct RunArgs {
    /// The nodes to serve: WebAssembly components (.wasm), one node each.
    #[arg(required_unless_present = "hosted", value_name = "COMPONENT")]
    components: Vec<PathBuf>,

    /// Be a hosted worker of a node-host hub: run the nodes its accounts
    /// uploaded, fetched from the hub, under each account's limits (the
    /// limit flags below do not apply). Needs --backend and --worker-token.
    #[arg(long, requires = "backend", conflicts_with = "components")]
    hosted: bool,

    /// The hub's worker token for --hosted (`node-host hub worker-token create`).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "NODE_HOST_WORKER_TOKEN",
        hide_env_values = true
    )]
    worker_token: Option<String>,

    /// The backend's base URL. Without it, an embedded hub starts on 127.0.0.1.
    #[arg(long, env = "HUROZO_API_URL", value_name = "URL", value_parser = parse_backend)]
    backend: Option<url::Url>,

    /// API token for --backend [default: $HUROZO_TOKEN or $HUROZO_API_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,

    /// Events that run at once; more wait in the backend, never fail [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: Option<u16>,

    /// How often each node is registered again.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    refresh: Duration,

    /// After Ctrl-C or SIGTERM, how long events in flight may finish.
    #[arg(long, value_name = "DURATION", default_value = "35s", value_parser = parse_duration)]
    grace: Duration,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,

    /// Be an Exosphere runtime: register the nodes with the state manager at
    /// URL [default: $EXOSPHERE_STATE_MANAGER_URI], pull their states and
    /// run each in a fresh sandbox. Needs --namespace and --name.
    #[arg(
        long,
        value_name = "URL",
        num_args = 0..=1,
        value_parser = parse_backend,
        conflicts_with_all = ["backend", "hosted", "hub_listen"],
        requires_all = ["namespace", "runtime_name"],
        help_heading = "Exosphere"
    )]
    exosphere: Option<Option<url::Url>>,

    /// The Exosphere namespace the nodes are registered in.
    #[arg(
        long,
        value_name = "NS",
        requires = "exosphere",
        help_heading = "Exosphere"
    )]
    namespace: Option<String>,

    /// The Exosphere runtime's name.
    #[arg(
        long = "name",
        value_name = "RUNTIME",
        requires = "exosphere",
        help_heading = "Exosphere"
    )]
    runtime_name: Option<String>,

    /// The state manager's API key, sent as x-api-key.
    #[arg(
        long,
        value_name = "KEY",
        env = "EXOSPHERE_API_KEY",
        hide_env_values = true,
        help_heading = "Exosphere"
    )]
    key: Option<String>,

    /// States held at once; a poll asks for no more than the room left.
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::exosphere::DEFAULT_BATCH_SIZE,
        value_parser = clap::value_parser!(u16).range(1..),
        help_heading = "Exosphere"
    )]
    batch_size: u16,

    /// The wait after a poll that found no state.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, help_heading = "Exosphere")]
    poll_interval: Duration,

    /// Where the embedded hub listens when there is no --backend
    /// [default: 127.0.0.1:8765, or a free port if that one is taken].
    #[arg(long, value_name = "ADDR", conflicts_with = "backend")]
    hub_listen: Option<SocketAddr>,

    #[command(flatten, next_help_heading = "Limits of every event")]
    limits: LimitArgs,

    #[command(
        flatten,
        next_help_heading = "Outbound HTTP (nodes that import wasi:http)"
    )]
    http: HttpArgs,
}

/// `sandbox` runs the nodes given on the command line; `hub_sandbox` is how an
/// embedded hub sets up the nodes uploaded to it (the same global flags).
pub(super) fn run(
    args: &RunArgs,
    sandbox: Sandbox,
    hub_sandbox: SandboxConfig,
) -> anyhow::Result<ExitCode> {
    if args.hosted {
        return runtime()?.block_on(serve_hosted(args, sandbox));
    }
    let http = args.http.access()?;
    let mut nodes = Vec::new();
    for path in &args.components {
        let bytes = read_component(path)?;
        let mut progress = CompileProgress::new(path);
        match sandbox.load_with(&bytes, http.clone(), &mut || progress.start()) {
            Ok(node) => nodes.push(Arc::new(node)),
            Err(err) => {
                drop(progress);
                tell!(
                    "node-host: error: {} cannot be used as a node: {err}",
                    path.display()
                );
                return Ok(ExitCode::from(EXIT_USAGE));
            }
        }
    }
    if let Some(url) = &args.exosphere {
        return runtime()?.block_on(serve_exosphere(args, url.clone(), nodes));
    }
    runtime()?.block_on(serve(args, nodes, hub_sandbox))
}

/// `run --exosphere`: an Exosphere runtime.
async fn serve_exosphere(
    args: &RunArgs,
    url: Option<url::Url>,
    nodes: Vec<Arc<NodeComponent>>,
) -> anyhow::Result<ExitCode> {
    let url = match url {
        Some(url) => url,
        None => {
            let from_env = std::env::var("EXOSPHERE_STATE_MANAGER_URI").context(
                "--exosphere needs the state manager's URL: pass --exosphere URL or set \
                 EXOSPHERE_STATE_MANAGER_URI",
            )?;
            parse_backend(&from_env)
                .map_err(anyhow::Error::msg)
                .context("EXOSPHERE_STATE_MANAGER_URI")?
        }
    };
    let key = args.key.clone().context(
        "--exosphere needs the state manager's API key: pass --key or set EXOSPHERE_API_KEY",
    )?;
    let config = RuntimeConfig {
        state_manager: url.clone(),
        namespace: args
            .namespace
            .clone()
            .context("--exosphere needs --namespace")?,
        name: args
            .runtime_name
            .clone()
            .context("--exosphere needs --name")?,
        key,
        batch_size: usize::from(args.batch_size),
        concurrency: args
            .concurrency
            .map_or_else(crate::worker::default_concurrency, usize::from),
        poll_interval: args.poll_interval,
        grace: args.grace,
        limits: args.limits.limits(),
    };
    let names: Vec<String> = nodes.iter().map(|node| node.name().to_owned()).collect();
    let namespace = config.namespace.clone();
    let runtime = crate::exosphere::Runtime::new(config, nodes)?;
    if let Some(addr) = args.metrics {
        super::serve_metrics(addr, runtime.metrics()).await?;
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop));
    let (ready, is_ready) = oneshot::channel();
    let running = tokio::spawn(runtime.run(stopped, Some(ready)));
    if is_ready.await.is_ok() {
        say!(
            "node-host: Exosphere runtime for {} in namespace {namespace} at {url} (Ctrl-C to stop)",
            names.join(", ")
        );
    }
    match running.await.context("the runtime task failed")? {
        Ok(()) => {
            tell!("node-host: stopped");
            Ok(ExitCode::SUCCESS)
        }
        Err(err @ RuntimeError::Refused { .. }) => {
            tell!(
                "node-host: error: {err}\n  what to do: check --key / EXOSPHERE_API_KEY and \
                 --namespace; the state manager must accept this key for the namespace"
            );
            Ok(ExitCode::from(EXIT_FAILED))
        }
        Err(err) => Err(err.into()),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `run --hosted`: a hosted worker of the hub at `--backend`.
async fn serve_hosted(args: &RunArgs, sandbox: Sandbox) -> anyhow::Result<ExitCode> {
    let backend = args.backend.clone().context("--hosted needs --backend")?;
    let token = args.worker_token.clone().context(
        "--hosted needs a worker token: pass --worker-token or set NODE_HOST_WORKER_TOKEN \
         (create one on the hub with `node-host hub worker-token create`)",
    )?;
    let worker = HostedWorker::new(
        HostedConfig {
            backend: backend.clone(),
            token,
            concurrency: args
                .concurrency
                .map_or_else(crate::worker::default_concurrency, usize::from),
            grace: args.grace,
        },
        sandbox,
    );
    if let Some(addr) = args.metrics {
        super::serve_metrics(addr, worker.metrics()).await?;
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop));
    let (ready, is_ready) = oneshot::channel();
    let running = tokio::spawn(worker.run(stopped, Some(ready)));
    if is_ready.await.is_ok() {
        say!("node-host: hosted worker of the hub at {backend} (Ctrl-C to stop)");
    }
    match running.await.context("the hosted worker task failed")? {
        Ok(()) => {
            tell!("node-host: stopped");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            tell!(
                "node-host: error: {err}\n  what to do: check --worker-token / \
                 NODE_HOST_WORKER_TOKEN; create one on the hub with \
                 `node-host hub worker-token create`"
            );
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

async fn serve(
    args: &RunArgs,
    nodes: Vec<Arc<NodeComponent>>,
    hub_sandbox: SandboxConfig,
) -> anyhow::Result<ExitCode> {
    let (backend, token, embedded) = match &args.backend {
        Some(backend) => {
            let token = args.token.clone().or_else(token_from_env).context(
                "--backend needs an API token: pass --token or set HUROZO_TOKEN (or HUROZO_API_TOKEN)",
            )?;
            (backend.clone(), token, None)
        }
        None => {
            let (backend, token, hub) =
                start_embedded_hub(args.hub_listen, hub_sandbox, args.http.outbound.settings())
                    .await?;
            (backend, token, Some(hub))
        }
    };
    let config = WorkerConfig {
        backend: backend.clone(),
        token: token.clone(),
        concurrency: args
            .concurrency
            .map_or_else(crate::worker::default_concurrency, usize::from),
        refresh: args.refresh,
        grace: args.grace,
        limits: args.limits.limits(),
        secrets: args.limits.secrets(),
    };
    let infos: Vec<_> = nodes.iter().map(|node| node.info().clone()).collect();
    let worker = Worker::new(config, nodes)?;
    if let Some(addr) = args.metrics {
        super::serve_metrics(addr, worker.metrics()).await?;
    }

    let (stop, stopped) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop));
    let (ready, is_ready) = oneshot::channel();
    let running = tokio::spawn(worker.run(stopped, Some(ready)));
    let names: Vec<&str> = infos.iter().map(|info| info.name.as_str()).collect();
    if is_ready.await.is_ok() {
        match &embedded {
            Some(_) => print_quick_start(&backend, &token, &infos),
            None => say!(
                "node-host: serving {} at {backend} (Ctrl-C to stop)",
                names.join(", ")
            ),
        }
    }
    match running.await.context("the worker task failed")? {
        Ok(()) => {
            tell!("node-host: stopped");
            Ok(ExitCode::SUCCESS)
        }
        Err(WorkerError::Refused(err)) => {
            let hint = if err.is_auth() {
                "check --token / HUROZO_TOKEN: the backend does not accept it for registering"
            } else {
                "the backend will not accept this node as it is; fix its info (name, outputs)"
            };
            tell!("node-host: error: {err}\n  what to do: {hint}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
        Err(err) => Err(err.into()),
    }
}

/// Starts a hub in this process with an in-memory account `local`; returns
/// its URL, a token for it, and its state.
async fn start_embedded_hub(
    listen: Option<SocketAddr>,
    sandbox: SandboxConfig,
    outbound: crate::sandbox::http::OutboundSettings,
) -> anyhow::Result<(url::Url, String, Arc<Hub>)> {
    let state = Hub::open(&HubConfig {
        outbound,
        data_dir: None,
        database: None,
        components_dir: None,
        nats: None,
        public_ws_url: None,
        sandbox,
        upload_wait: crate::hub::service::UPLOAD_READY_WAIT,
        quota: crate::hub::service::UploadQuota::default(),
        keepalive: crate::hub::service::KEEPALIVE,
        token_recheck: crate::hub::service::TOKEN_RECHECK,
        exosphere_lease: crate::hub::service::EXOSPHERE_LEASE,
        history: Default::default(),
    })
    .await?;
    let token = state
        .store()
        .create_token("local", false, None)
        .await?
        .token;
    let default: SocketAddr = hub::DEFAULT_LISTEN.parse().expect("a valid address");
    let listener = match listen {
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("the embedded hub cannot listen on {addr} (--hub-listen)"))?,
        None => match tokio::net::TcpListener::bind(default).await {
            Ok(listener) => listener,
            Err(_) => tokio::net::TcpListener::bind((default.ip(), 0))
                .await
                .context("the embedded hub cannot listen on 127.0.0.1")?,
        },
    };
    let addr = listener.local_addr()?;
    let serving = state.clone();
    tokio::spawn(async move {
        if let Err(err) = hub::serve(
            listener,
            serving,
            hub::ServeLimits::default(),
            std::future::pending(),
        )
        .await
        {
            tracing::error!("the embedded hub stopped: {err}");
        }
    });
    let backend = url::Url::parse(&format!("http://{addr}/")).expect("a valid URL");
    Ok((backend, token, state))
}

fn print_quick_start(backend: &url::Url, token: &str, infos: &[crate::sandbox::NodeInfo]) {
    let base = backend.as_str().trim_end_matches('/');
    say!("node-host: serving on the embedded hub at {base} (Ctrl-C to stop)");
    for info in infos {
        let mut json = serde_json::Map::new();
        let mut args = String::new();
        for port in info
            .inputs
            .iter()
            .filter(|port| port.default_value.is_none())
        {
            json.insert(port.name.clone(), "world".into());
            args.push_str(&format!(" {}=world", port.name));
        }
        let body = serde_json::json!({ "inputs": json });
        say!();
        say!("Execute `{}`:", info.name);
        say!(
            "  curl -s -X POST {base}/api/remote_nodes/{}/execute -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{body}'",
            info.name
        );
        say!(
            "  node-host call --backend {base} --token {token} {}{args}",
            info.name
        );
    }
    say!();
    say!("Watch its events in a browser: {base}/ (sign in with the token above)");
}

/// Turns the first Ctrl-C or SIGTERM into a stop; a second Ctrl-C quits at once.
async fn stop_on_signal(stop: watch::Sender<bool>) {
    wait_for_signal().await;
    tell!("node-host: stopping; events in flight finish first (Ctrl-C again to quit now)");
    let _ = stop.send(true);
    wait_for_signal().await;
    std::process::exit(130);
}
