//! `node-host call`: one event of a node in a fresh sandbox, here or
//! through a hub.

mod remote;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::args::{HttpArgs, LimitArgs, parse_backend, parse_input};
use super::{CompileProgress, EXIT_FAILED, EXIT_USAGE, read_component};
use anyhow::Context as _;

use crate::core::{Event, Executors, LOCAL_ACCOUNT, Runner, Terms};
use crate::metrics::Metrics;
use crate::sandbox::value::{self, NamedValue};
use crate::sandbox::{ErrorCode, Outcome, Sandbox};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  node-host call hello.wasm name=Ada
  node-host call hello.wasm --inputs-json '{\"name\": \"Ada\"}' --json
  node-host call stats.wasm 'numbers:=[1, 2, 3]' --fuel 1000000 --timeout 500ms
  node-host call --backend http://127.0.0.1:8765 --token nh_... hello name=Ada

Exit codes: 0 outputs printed; 1 the event failed (the error names its code,
e.g. out_of_fuel or deadline); 2 a usage error or a file that is not a node.")]
pub(super) struct CallArgs {
    /// The node: a WebAssembly component (.wasm) that targets node-host's `remote-node` world;
    /// with --backend, the name of a node registered there.
    #[arg(value_name = "COMPONENT|NODE")]
    target: String,

    /// Inputs: NAME=TEXT for text, NAME:=JSON for any JSON value (number, list, object…).
    #[arg(value_name = "INPUT", value_parser = parse_input)]
    inputs: Vec<NamedValue>,

    /// All inputs as one JSON object; NAME=… arguments are added to it.
    #[arg(long, value_name = "JSON")]
    inputs_json: Option<String>,

    /// Execute the node through this hub (`POST /api/remote_nodes/NODE/execute`) instead of
    /// loading a component here.
    #[arg(long, value_name = "URL", value_parser = parse_backend)]
    backend: Option<url::Url>,

    /// API token for --backend [default: $HUROZO_TOKEN or $HUROZO_API_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,

    #[command(
        flatten,
        next_help_heading = "Limits (local calls; with --backend the worker's apply)"
    )]
    limits: LimitArgs,

    #[command(
        flatten,
        next_help_heading = "Outbound HTTP (nodes that import wasi:http)"
    )]
    http: HttpArgs,

    /// Print failures as {"error":{"code","message"}} on stdout instead of a message on stderr.
    #[arg(long)]
    json: bool,

    /// Also print the node's log lines, stdout and stderr, fuel used and duration, on stderr.
    #[arg(long)]
    logs: bool,
}

pub(super) fn run(
    args: &CallArgs,
    sandbox: impl FnOnce() -> anyhow::Result<Sandbox>,
) -> anyhow::Result<ExitCode> {
    let inputs = collect_inputs(args)?;
    if let Some(backend) = &args.backend {
        return remote::run(args, backend, inputs);
    }
    let sandbox = sandbox()?;
    let component = PathBuf::from(&args.target);
    let secrets = args.limits.secrets();
    let limits = args.limits.limits();

    let bytes = read_component(&component)?;
    let mut progress = CompileProgress::new(&component);
    let http = args.http.access()?;
    let node = match sandbox.load_with(&bytes, http, &mut || progress.start()) {
        Ok(node) => node,
        Err(err) => {
            drop(progress);
            let message = format!("{} cannot be used as a node: {err}", component.display());
            if args.json {
                out!(
                    "{}",
                    json!({"error": {"code": err.code(), "message": message}})
                );
            } else {
                eprintln!("node-host: error: {message}");
            }
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    drop(progress);

    let node = std::sync::Arc::new(node);
    let event = Event {
        id: uuid::Uuid::new_v4().to_string(),
        account: LOCAL_ACCOUNT,
        node: node.name().to_owned(),
        inputs,
        deadline: None,
    };
    let terms = Terms {
        limits,
        secrets: std::sync::Arc::new(secrets),
    };
    let runner = Runner::new(
        Executors::new("node-host-event", 1, None),
        Metrics::new("call"),
    );
    let outcome = runner
        .run_blocking(event, node.clone(), terms)
        .context("running the event")?;
    if args.logs {
        print_logs(&outcome);
    }
    let failure = match &outcome.result {
        Ok(outputs) => match value::outputs_to_json(outputs) {
            Ok(object) => {
                print_outputs(&object)?;
                return Ok(ExitCode::SUCCESS);
            }
            Err(message) => crate::sandbox::Failure {
                code: crate::sandbox::ErrorCode::InvalidOutput,
                message,
            },
        },
        Err(failure) => failure.clone(),
    };
    print_failure(
        args.json,
        node.name(),
        failure.code.as_str(),
        &failure.message,
        Some(failure.code.advice()),
    )?;
    Ok(ExitCode::from(EXIT_FAILED))
}

/// The inputs from --inputs-json and NAME=… arguments.
fn collect_inputs(args: &CallArgs) -> anyhow::Result<Vec<NamedValue>> {
    let mut inputs = match &args.inputs_json {
        Some(text) => match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(object)) => value::inputs_from_json(object),
            Ok(_) => {
                anyhow::bail!("--inputs-json must be a JSON object, like {{\"name\": \"Ada\"}}")
            }
            Err(err) => anyhow::bail!("--inputs-json is not valid JSON: {err}"),
        },
        None => Vec::new(),
    };
    for input in &args.inputs {
        if inputs.iter().any(|given| given.name == input.name) {
            anyhow::bail!("input `{}` is given twice", input.name);
        }
        inputs.push(input.clone());
    }
    Ok(inputs)
}

fn print_outputs(outputs: &serde_json::Map<String, serde_json::Value>) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(outputs)?);
    Ok(())
}

fn print_failure(
    json: bool,
    node: &str,
    code: &str,
    message: &str,
    advice: Option<&str>,
) -> anyhow::Result<()> {
    if json {
        out!("{}", json!({"error": {"code": code, "message": message}}));
        return Ok(());
    }
    eprintln!("node-host: node `{node}` failed with {code}: {message}");
    if let Some(advice) = advice {
        eprintln!("  what to do: {advice}");
    }
    Ok(())
}

fn print_logs(outcome: &Outcome) {
    for line in &outcome.log.lines {
        eprintln!("log [{}] {}", line.level, line.message);
    }
    if outcome.log.truncated {
        eprintln!("log: (truncated at the capture cap)");
    }
    for (name, captured) in [("stdout", &outcome.stdout), ("stderr", &outcome.stderr)] {
        if !captured.text.is_empty() {
            eprintln!("{name}:\n{}", captured.text.trim_end());
        }
        if captured.truncated {
            eprintln!("{name}: (truncated at the capture cap)");
        }
    }
    // Compiled code counts fuel in a register and stores it only at calls
    // and returns, and the deadline can stop it between two stores.
    let fuel = match &outcome.result {
        Err(failure) if failure.code == ErrorCode::Deadline => format!(
            "at least {} (the deadline stopped the event before its last count)",
            outcome.fuel_used
        ),
        _ => outcome.fuel_used.to_string(),
    };
    eprintln!(
        "fuel used: {fuel}, duration: {:.3} ms",
        outcome.duration.as_secs_f64() * 1e3
    );
    if let Some(http) = &outcome.http {
        eprintln!(
            "http: {} requests, {} bytes out, {} bytes in, {:.3} ms waiting",
            http.requests,
            http.bytes_out,
            http.bytes_in,
            http.waiting_us as f64 / 1e3
        );
    }
}
