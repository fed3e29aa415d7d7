//! The `node-host` command line: parses, wires the layers below, prints.
//!
//! Exit codes: 0 success, 1 the node (or the inspected file) failed,
//! 2 a usage error, a file that cannot be used as a node, or a result that
//! cannot be written.

/// `println!` for the long-running commands (`run`, `hub`, `serve`), which
/// never panics: with its reader gone (a supervisor's log pipe that broke)
/// `println!` panics, and the task that printed dies with it (a worker
/// whose stop-on-signal task died so went on ignoring SIGTERM). What
/// cannot be shown is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// [`say!`] for stderr, in place of `eprintln!`.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` for what a one-shot command answers (`call`, `inspect`,
/// `logs`, ...): a write that fails (a full disk, a closed file) ends the
/// command with an error saying so, where `println!` panics. A reader that
/// went away (`| head`) ends it silently, as SIGPIPE does other tools.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        anyhow::Context::context(
            writeln!(std::io::stdout(), $($arg)*),
            "cannot write to standard output",
        )?
    }};
}

mod args;
mod call;
mod componentize;
mod grant;
mod hub;
mod inspect;
mod new;
mod node;
mod run;
mod serve;
mod upload;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::sandbox::{Sandbox, SandboxConfig};

pub use args::{LimitArgs, parse_backend, parse_duration, parse_input, parse_secret, parse_size};

/// Exit code when the node ran and failed, or a file was inspected and refused.
pub const EXIT_FAILED: u8 = 1;
/// Exit code for a usage error or a file that cannot be used as a node.
pub const EXIT_USAGE: u8 = 2;

/// Runs untrusted WebAssembly components as sandboxed remote nodes.
///
/// A node is a WebAssembly component that targets the `remote-node` world in
/// node-host's `wit/`. Every event runs in a fresh sandbox: a new instance
/// with fuel, a memory cap and a deadline, and nothing granted (no files,
/// network, environment or arguments).
#[derive(Debug, Parser)]
#[command(name = "node-host", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Where compiled components are cached
    /// [default: $XDG_CACHE_HOME/node-host/compiled or ~/.cache/node-host/compiled]
    #[arg(long, global = true, env = "NODE_HOST_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile every component afresh instead of using the cache.
    #[arg(long, global = true)]
    no_cache: bool,

    /// Allocate every instance on demand instead of from the instance pool:
    /// for a component that needs more than a pool slot holds (a
    /// `pool_limit` refusal). A fresh event costs more.
    #[arg(long, global = true, env = "NODE_HOST_NO_POOLING", value_parser = clap::builder::FalseyValueParser::new())]
    no_pooling: bool,

    /// Do not pre-initialize nodes. By default a node is loaded as it is
    /// after one `info` call (its memories snapshotted), so every event
    /// starts past the guest runtime's first-call work (a fresh JavaScript
    /// event costs about half as much). What `info` leaves
    /// behind is where every event starts; this flag keeps the component as
    /// built.
    #[arg(long, global = true, env = "NODE_HOST_NO_PREINIT", value_parser = clap::builder::FalseyValueParser::new())]
    no_preinit: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve nodes to a backend (or an embedded hub), each event in a fresh sandbox.
    Run(run::RunArgs),
    /// Run one event of a node in a fresh sandbox (or through a hub) and print its outputs.
    Call(call::CallArgs),
    /// Serve a Hurozo-compatible backend, or manage its API tokens.
    Hub(hub::HubArgs),
    /// Serve a node to another platform's protocol (Juturna's gRPC).
    Serve(serve::ServeArgs),
    /// Show a component's node info and imports, and whether this host accepts it.
    Inspect(inspect::InspectArgs),
    /// Wrap a WASI preview 1 core module (a C node) into a node component.
    Componentize(componentize::ComponentizeArgs),
    /// Create a ready-to-build node project in Rust, Python, JavaScript or C.
    New(new::NewArgs),
    /// Upload a component to a hub, which runs it as a hosted node of your account.
    Upload(upload::UploadArgs),
    /// Show or set the origins an uploaded node may call over HTTP, on a hub.
    Grant(grant::GrantArgs),
    /// List an uploaded node's versions on a hub, or roll it back to one.
    Node(node::NodeArgs),
    /// Show the account's recent events on a hub, with what each printed (--follow for more).
    Logs(node::LogsArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = crate::telemetry::init(match &cli.command {
        Command::Hub(_) => "node-host-hub",
        Command::Run(_) => "node-host-worker",
        Command::Serve(_) => "node-host-serve",
        _ => "node-host",
    });
    if !matches!(
        cli.command,
        Command::Run(_) | Command::Hub(_) | Command::Serve(_)
    ) {
        die_quietly_on_closed_stdout();
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            tell!("node-host: error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Lets a one-shot command end quietly when its reader goes away (as in
/// `node-host call … | head -1`), like other Unix tools, instead of
/// panicking on the failed write. Not for the servers: they keep sockets,
/// whose broken pipes must stay errors.
fn die_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: restoring the default action of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let sandbox = || open_sandbox(&cli);
    match &cli.command {
        Command::Run(args) => run::run(args, sandbox()?, base_config(&cli)),
        Command::Call(args) => call::run(args, sandbox),
        Command::Inspect(args) => inspect::run(args, sandbox()?),
        Command::Hub(args) => hub::run(args, base_config(&cli)),
        Command::Serve(args) => serve::run(args, sandbox()?),
        Command::Componentize(args) => componentize::run(args, sandbox()?),
        Command::New(args) => new::run(args),
        Command::Upload(args) => upload::run(args),
        Command::Grant(args) => grant::run(args),
        Command::Node(args) => node::run(args),
        Command::Logs(args) => node::logs(args),
    }
}

fn open_sandbox(cli: &Cli) -> anyhow::Result<Sandbox> {
    let cache_dir = match (cli.no_cache, &cli.cache_dir) {
        (true, _) => None,
        (false, Some(dir)) => Some(dir.clone()),
        (false, None) => default_cache_dir(),
    };
    Sandbox::new(SandboxConfig {
        cache_dir,
        ..base_config(cli)
    })
    .context("setting up the sandbox (try --no-cache, or --cache-dir with a writable directory)")
}

/// The sandbox settings the global flags choose.
fn base_config(cli: &Cli) -> SandboxConfig {
    SandboxConfig {
        pooling: !cli.no_pooling,
        preinitialize: !cli.no_preinit,
        ..SandboxConfig::default()
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    Some(xdg_dir("XDG_CACHE_HOME", ".cache")?.join("compiled"))
}

/// `$<variable>/node-host`, or `$HOME/<fallback>/node-host` when the
/// variable is unset or empty (the XDG base-directory rule).
fn xdg_dir(variable: &str, fallback: &str) -> Option<PathBuf> {
    let base = std::env::var_os(variable)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(fallback)))?;
    Some(base.join("node-host"))
}

/// Reads a component file; `Err` carries the message for exit code 2.
fn read_component(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .with_context(|| format!("cannot read the component file {}", path.display()))
}

/// A spinner on stderr (drawn only on a terminal) for a first compile.
struct CompileProgress {
    label: String,
    bar: Option<indicatif::ProgressBar>,
}

impl CompileProgress {
    fn new(path: &std::path::Path) -> Self {
        Self {
            label: path.display().to_string(),
            bar: None,
        }
    }

    fn start(&mut self) {
        let bar = indicatif::ProgressBar::new_spinner().with_message(format!(
            "compiling {} (first load only; cached afterwards)",
            self.label
        ));
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        self.bar = Some(bar);
    }
}

impl Drop for CompileProgress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `metrics` at `http://addr/metrics`, on a listener of its own so
/// that it can stay internal, and prints where.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: crate::metrics::Metrics,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for --metrics"))?;
    let listener_addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || std::future::ready(metrics.http_response())),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    say!("node-host: metrics at http://{listener_addr}/metrics");
    Ok(())
}
