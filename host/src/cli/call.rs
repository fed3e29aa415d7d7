//! `node-host call`: one event of a node in a fresh sandbox.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::args::{parse_duration, parse_input, parse_size};
use super::{CompileProgress, EXIT_FAILED, EXIT_USAGE, read_component};
use crate::sandbox::value::{self, NamedValue};
use crate::sandbox::{Limits, Outcome, Sandbox};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  node-host call hello.wasm name=Ada
  node-host call hello.wasm --inputs-json '{\"name\": \"Ada\"}' --json
  node-host call stats.wasm 'numbers:=[1, 2, 3]' --fuel 1000000 --timeout 500ms

Exit codes: 0 outputs printed; 1 the event failed (the error names its code,
e.g. out_of_fuel or deadline); 2 a usage error or a file that is not a node.")]
pub(super) struct CallArgs {
    /// The node: a WebAssembly component (.wasm) that targets node-host's `remote-node` world.
    component: PathBuf,

    /// Inputs: NAME=TEXT for text, NAME:=JSON for any JSON value (number, list, object…).
    #[arg(value_name = "INPUT", value_parser = parse_input)]
    inputs: Vec<NamedValue>,

    /// All inputs as one JSON object; NAME=… arguments are added to it.
    #[arg(long, value_name = "JSON")]
    inputs_json: Option<String>,

    /// A secret the node may read if it declares it (repeatable).
    #[arg(long = "secret", value_name = "NAME=VALUE", value_parser = parse_secret)]
    secrets: Vec<(String, String)>,

    /// Fuel for the event (about one unit per WebAssembly instruction).
    #[arg(long, value_name = "N", default_value_t = crate::sandbox::DEFAULT_FUEL)]
    fuel: u64,

    /// Linear memory cap for the event, summed over all memories (e.g. 64MiB).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    memory: usize,

    /// Wall-clock deadline for the event (e.g. 500ms, 10s).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,

    /// Cap on the total size of the outputs (e.g. 1MiB).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    max_output: usize,

    /// Print failures as {"error":{"code","message"}} on stdout instead of a message on stderr.
    #[arg(long)]
    json: bool,

    /// Also print the node's log lines, stdout and stderr, fuel used and duration, on stderr.
    #[arg(long)]
    logs: bool,
}

fn parse_secret(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("secret `{arg}` must be NAME=VALUE")),
    }
}

pub(super) fn run(args: &CallArgs, sandbox: Sandbox) -> anyhow::Result<ExitCode> {
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
    let secrets: HashMap<String, String> = args.secrets.iter().cloned().collect();
    let limits = Limits {
        fuel: args.fuel,
        memory_bytes: args.memory,
        timeout: args.timeout,
        output_bytes: args.max_output,
        ..Limits::default()
    };

    let bytes = read_component(&args.component)?;
    let mut progress = CompileProgress::new(&args.component);
    let node = match sandbox.load_with_progress(&bytes, &mut || progress.start()) {
        Ok(node) => node,
        Err(err) => {
            drop(progress);
            let message = format!(
                "{} cannot be used as a node: {err}",
                args.component.display()
            );
            if args.json {
                println!(
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

    let outcome = node.execute(inputs, &secrets, &limits);
    if args.logs {
        print_logs(&outcome);
    }
    let failure = match &outcome.result {
        Ok(outputs) => match value::outputs_to_json(outputs) {
            Ok(object) => {
                println!("{}", serde_json::to_string_pretty(&object)?);
                return Ok(ExitCode::SUCCESS);
            }
            Err(message) => crate::sandbox::Failure {
                code: crate::sandbox::ErrorCode::InvalidOutput,
                message,
            },
        },
        Err(failure) => failure.clone(),
    };
    if args.json {
        println!(
            "{}",
            json!({"error": {"code": failure.code.as_str(), "message": failure.message}})
        );
    } else {
        eprintln!(
            "node-host: node `{}` failed with {}: {}\n  what to do: {}",
            node.name(),
            failure.code,
            failure.message,
            failure.code.advice()
        );
    }
    Ok(ExitCode::from(EXIT_FAILED))
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
    eprintln!(
        "fuel used: {}, duration: {:.3} ms",
        outcome.fuel_used,
        outcome.duration.as_secs_f64() * 1e3
    );
}
