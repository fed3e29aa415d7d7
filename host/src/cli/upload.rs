//! `node-host upload`: send a component to a hub, which validates, compiles
//! and then serves it as a hosted node of the token's account.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use reqwest::StatusCode;
use serde_json::Value as Json;

use super::args::{parse_backend, token_from_env};
use super::{EXIT_FAILED, EXIT_USAGE, read_component};
use crate::hub::service::catalog::COMPILE_TIME_LIMIT;
use crate::worker::error_chain;

/// How often a `compiling` upload's status is asked for.
const POLL_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  node-host upload hello.wasm --backend http://127.0.0.1:8765 --token nh_...
  node-host call --backend http://127.0.0.1:8765 --token nh_... hello name=Ada

A big component (Python, JavaScript) compiles for a while; upload waits, showing progress.
Exit status: 0 uploaded and ready, 1 the hub refused the component, 2 bad usage or access.")]
pub(super) struct UploadArgs {
    /// The component (.wasm) to upload.
    component: PathBuf,

    /// The hub [default: $HUROZO_API_URL].
    #[arg(long, env = "HUROZO_API_URL", value_name = "URL", value_parser = parse_backend)]
    backend: Option<url::Url>,

    /// A write token of the account [default: $HUROZO_TOKEN or $HUROZO_API_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,

    /// Print the hub's answer as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: &UploadArgs) -> anyhow::Result<ExitCode> {
    let backend = args.backend.clone().context(
        "no hub given: pass --backend URL (e.g. http://127.0.0.1:8765) or set HUROZO_API_URL",
    )?;
    let token = args.token.clone().or_else(token_from_env).context(
        "upload needs a write token: pass --token, or set HUROZO_TOKEN (create one with \
         `node-host hub token create --account NAME`)",
    )?;
    let bytes = read_component(&args.component)?;
    let size = bytes.len();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = reqwest::Client::new();
    let url = backend
        .join("api/nodes")
        .context("building the upload URL")?;
    let (status, answer) = runtime.block_on(send(
        client.post(url.clone()).bearer_auth(&token).body(bytes),
        &url,
    ))?;
    let (status, answer) = match status {
        StatusCode::ACCEPTED => {
            let status_url = answer["status_url"]
                .as_str()
                .context("the hub answered `compiling` without a status_url")?;
            let status_url = backend
                .join(status_url.trim_start_matches('/'))
                .context("building the status URL")?;
            runtime.block_on(wait_until_compiled(
                &client,
                &token,
                &status_url,
                &args.component,
            ))?
        }
        _ => (status, answer),
    };
    let message = answer["error"].as_str().unwrap_or_default().to_owned();
    let code = answer["code"].as_str().unwrap_or("http_error").to_owned();
    if args.json {
        out!("{answer}");
    }
    if status.is_success() && answer["status"] == "ready" {
        if !args.json {
            let node = &answer["node"];
            out!(
                "node-host: uploaded `{}` ({:.1} KiB, sha256 {}): ready",
                node["name"].as_str().unwrap_or("?"),
                size as f64 / 1024.0,
                node["sha256"].as_str().unwrap_or("?"),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if status.is_success() && answer["code"].is_string() {
        // A failed compile reported by the status URL.
        eprintln!("node-host: error: the hub refused the component [{code}]: {message}");
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    if status.is_success() {
        eprintln!(
            "node-host: error: the hub gave an answer this upload does not understand \
             ({status}): {answer}\n  what to do: check that --backend is a node-host hub"
        );
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    let refused = matches!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::PAYLOAD_TOO_LARGE
    );
    eprintln!("node-host: error: the hub refused the upload ({status}) [{code}]: {message}");
    Ok(ExitCode::from(if refused {
        EXIT_FAILED
    } else {
        EXIT_USAGE
    }))
}

/// Sends a request and reads a JSON answer (a non-JSON body becomes an
/// error object with the text).
pub(super) async fn send(
    request: reqwest::RequestBuilder,
    url: &url::Url,
) -> anyhow::Result<(StatusCode, Json)> {
    let response = request
        .send()
        .await
        .map_err(|err| anyhow::anyhow!("cannot reach the hub at {url}: {}", error_chain(&err)))?;
    let status = response.status();
    let body = response.bytes().await.context("reading the hub's answer")?;
    let answer = serde_json::from_slice(&body).unwrap_or_else(
        |_| serde_json::json!({"error": String::from_utf8_lossy(&body), "code": "http_error"}),
    );
    Ok((status, answer))
}

/// Polls the upload's status URL until it is no longer `compiling`, with a
/// spinner on a terminal.
async fn wait_until_compiled(
    client: &reqwest::Client,
    token: &str,
    status_url: &url::Url,
    component: &std::path::Path,
) -> anyhow::Result<(StatusCode, Json)> {
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new_spinner().with_message(format!(
        "the hub is compiling {} (big components take a minute)",
        component.display()
    ));
    bar.enable_steady_tick(Duration::from_millis(100));
    let give_up = COMPILE_TIME_LIMIT + Duration::from_secs(30);
    let answer = loop {
        tokio::time::sleep(POLL_EVERY).await;
        let (status, answer) = send(
            client.get(status_url.clone()).bearer_auth(token),
            status_url,
        )
        .await?;
        // The status URL answers 202 while the compile runs (200 once it
        // is done either way).
        if !(status.is_success() && answer["status"] == "compiling") {
            break (status, answer);
        }
        if started.elapsed() > give_up {
            bar.finish_and_clear();
            anyhow::bail!(
                "the hub is still compiling after {} s; check later with GET {status_url}",
                started.elapsed().as_secs()
            );
        }
    };
    bar.finish_and_clear();
    Ok(answer)
}
