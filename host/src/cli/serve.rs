//! `node-host serve juturna`: a node as a Juturna remote node over gRPC.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::args::{HttpArgs, LimitArgs, parse_duration};
use super::{CompileProgress, EXIT_USAGE, read_component};
use crate::core::{Executors, Runner};
use crate::juturna::{self, Messaging, Served};
use crate::sandbox::Sandbox;

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    #[command(subcommand)]
    platform: Platform,
}

#[derive(Debug, Subcommand)]
enum Platform {
    /// Serve a node to Juturna pipelines: `MessagingService/SendAndReceive`
    /// over gRPC, what a Warp node (`"warped": true`) calls, each request in
    /// a fresh sandbox.
    ///
    /// An Object payload's keys become the node's inputs (whole numbers come
    /// back as integers); a Bytes payload is the input `data`; Audio, Image
    /// and Video payloads give `data` and their fields; a Batch runs each of
    /// its messages in a sandbox of its own and is answered as a Batch. The
    /// reply is an Object payload of the outputs, or Bytes when the node
    /// returns one bytes output. A node that declares an input
    /// `configuration` gets the request's configuration (or --config's)
    /// there as JSON. The gRPC health service answers on the same port.
    #[command(after_help = "\
Examples:
  node-host serve juturna hello.wasm
  node-host serve juturna hello.wasm --listen 0.0.0.0:50051 --concurrency 16 --metrics 127.0.0.1:9464
  # in the Juturna pipeline: \"warped\": true,
  #   \"warp_configuration\": {\"grpc_host\": \"localhost\", \"grpc_port\": 50051}

Stop with Ctrl-C or SIGTERM: new requests get UNAVAILABLE, those in hand finish (up to
--grace), then it exits 0. Exit codes: 0 stopped; 1 an error such as a port in use;
2 a usage error or a file that is not a node.")]
    Juturna(JuturnaArgs),
}

#[derive(Debug, Args)]
struct JuturnaArgs {
    /// The node: a WebAssembly component.
    component: PathBuf,

    /// Address to listen on; repeat for more [default: 127.0.0.1:50051 and
    /// [::1]:50051]. Use 0.0.0.0:50051 or [::]:50051 to accept other
    /// machines: the service has no authentication, as Juturna's has none.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,

    /// The name replies are sent as (Juturna's pipe name).
    #[arg(long, value_name = "NAME", default_value = "warped_node")]
    pipe_name: String,

    /// A JSON file with the configuration for requests that send none.
    #[arg(long, value_name = "JSON-FILE")]
    config: Option<PathBuf>,

    /// Requests running at once; beyond, RESOURCE_EXHAUSTED
    /// [default: the number of CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: Option<u16>,

    /// After Ctrl-C or SIGTERM, how long requests in hand may finish.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    grace: Duration,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464):
    /// requests by status code, events by outcome, latency, in flight.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,

    #[command(flatten, next_help_heading = "Limits of every request")]
    limits: LimitArgs,

    #[command(
        flatten,
        next_help_heading = "Outbound HTTP (nodes that import wasi:http)"
    )]
    http: HttpArgs,
}

pub(super) fn run(args: &ServeArgs, sandbox: Sandbox) -> anyhow::Result<ExitCode> {
    let Platform::Juturna(args) = &args.platform;
    let default_config = match &args.config {
        None => serde_json::Map::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --config {}", path.display()))?;
            match serde_json::from_str(&text) {
                Ok(serde_json::Value::Object(object)) => object,
                _ => anyhow::bail!(
                    "--config {} must hold a JSON object, e.g. {{\"threshold\": 0.5}}",
                    path.display()
                ),
            }
        }
    };
    let bytes = read_component(&args.component)?;
    let mut progress = CompileProgress::new(&args.component);
    let http = args.http.access()?;
    let node = match sandbox.load_with(&bytes, http, &mut || progress.start()) {
        Ok(node) => Arc::new(node),
        Err(err) => {
            drop(progress);
            tell!(
                "node-host: error: {} cannot be used as a node: {err}",
                args.component.display()
            );
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    drop(progress);
    let concurrency = args
        .concurrency
        .map_or_else(crate::worker::default_concurrency, usize::from);
    let served = Served {
        node: node.clone(),
        limits: args.limits.limits(),
        pipe_name: args.pipe_name.clone(),
        default_config,
        concurrency: concurrency as u64,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let addresses = match args.listen.is_empty() {
            true => juturna::default_listen(),
            false => args.listen.clone(),
        };
        let mut listeners = Vec::new();
        for address in &addresses {
            match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => listeners.push(listener),
                // [::1] where IPv6 is off: the IPv4 default still serves.
                Err(err) if args.listen.is_empty() && address.is_ipv6() => {
                    tracing::warn!("not listening on {address}: {err}");
                }
                Err(err) => {
                    return Err(anyhow::anyhow!(err))
                        .with_context(|| format!("cannot listen on {address} (--listen)"));
                }
            }
        }
        let bound: Vec<String> = listeners
            .iter()
            .filter_map(|listener| listener.local_addr().ok())
            .map(|addr| addr.to_string())
            .collect();
        let metrics = crate::metrics::Metrics::with_requests("juturna");
        if let Some(addr) = args.metrics {
            super::serve_metrics(addr, metrics.clone()).await?;
        }
        let runner = Runner::new(
            Executors::new("node-host-event", concurrency, Some(crate::core::IDLE_FOR)),
            metrics.clone(),
        );
        say!(
            "node-host: serving {} to Juturna at {} (Ctrl-C to stop)",
            node.name(),
            bound.join(", ")
        );
        juturna::serve(
            listeners,
            Messaging::new(served, runner, metrics),
            super::wait_for_signal(),
            args.grace,
        )
        .await
        .context("serving gRPC")?;
        tell!("node-host: stopped");
        Ok(ExitCode::SUCCESS)
    })
}
