//! `node-host grant`: show or set the origins an uploaded node of your
//! account may call over HTTP, on a hub.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::args::{parse_backend, token_from_env};
use super::upload::send;
use super::{EXIT_FAILED, EXIT_USAGE};
use crate::sandbox::http::Origin;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  node-host grant fetch https://api.example.com --backend http://127.0.0.1:8765 --token nh_...
  node-host grant fetch --backend http://127.0.0.1:8765      (show the grant)
  node-host grant fetch --clear --backend http://127.0.0.1:8765

A grant may be given before the node is uploaded; a node that imports wasi:http is refused
at upload until it has one. Each origin must be within the account's policy, which the
hub's operator sets (`node-host hub account http ACCOUNT --allow ORIGIN`).
Exit status: 0 done, 1 the hub refused, 2 bad usage or access.")]
pub(super) struct GrantArgs {
    /// The uploaded node's name (it need not be uploaded yet).
    node: String,

    /// Origins the node may call: scheme://host[:port], with `*.` for any subdomain and `:*`
    /// for any port. They replace the node's grant; none given shows it.
    #[arg(value_name = "ORIGIN")]
    allow: Vec<Origin>,

    /// Remove the node's grant: every request it makes is refused.
    #[arg(long, conflicts_with = "allow")]
    clear: bool,

    /// The hub [default: $HUROZO_API_URL].
    #[arg(long, env = "HUROZO_API_URL", value_name = "URL", value_parser = parse_backend)]
    backend: Option<url::Url>,

    /// A token of the account (a write token to change the grant)
    /// [default: $HUROZO_TOKEN or $HUROZO_API_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
}

pub(super) fn run(args: &GrantArgs) -> anyhow::Result<ExitCode> {
    let backend = args.backend.clone().context(
        "no hub given: pass --backend URL (e.g. http://127.0.0.1:8765) or set HUROZO_API_URL",
    )?;
    let token = args
        .token
        .clone()
        .or_else(token_from_env)
        .context("grant needs the account's token: pass --token, or set HUROZO_TOKEN")?;
    let url = backend
        .join(&format!("api/nodes/{}/grant", args.node))
        .context("building the grant URL")?;
    let client = reqwest::Client::new();
    let request = if args.clear {
        client.delete(url.clone())
    } else if args.allow.is_empty() {
        client.get(url.clone())
    } else {
        let allow: Vec<String> = args.allow.iter().map(ToString::to_string).collect();
        client.put(url.clone()).json(&json!({"allow": allow}))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (status, answer) = runtime.block_on(send(request.bearer_auth(&token), &url))?;
    if status.is_success() {
        out!("{answer}");
        return Ok(ExitCode::SUCCESS);
    }
    let message = answer["error"].as_str().unwrap_or("the hub refused");
    let code = answer["code"].as_str().unwrap_or("unknown");
    eprintln!("node-host: error: {message} ({code})");
    Ok(ExitCode::from(if matches!(status.as_u16(), 401 | 403) {
        EXIT_USAGE
    } else {
        EXIT_FAILED
    }))
}
