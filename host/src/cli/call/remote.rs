//! `node-host call --backend`: executes a node through a hub.

use std::process::ExitCode;

use anyhow::Context as _;
use reqwest::StatusCode;
use serde_json::Map;

use super::{CallArgs, print_failure, print_outputs};
use crate::cli::args::token_from_env;
use crate::cli::{EXIT_FAILED, EXIT_USAGE};
use crate::protocol::hurozo::{ApiError, ExecuteRequest, ExecuteResponse};
use crate::sandbox::Limits;
use crate::sandbox::value::{self, NamedValue};
use crate::worker::error_chain;

pub(super) fn run(
    args: &CallArgs,
    backend: &url::Url,
    inputs: Vec<NamedValue>,
) -> anyhow::Result<ExitCode> {
    if args.limits.limits() != Limits::default() || !args.limits.secrets.is_empty() {
        anyhow::bail!(
            "--fuel, --memory, --timeout, --max-output and --secret apply to local calls; \
             with --backend the worker serving the node sets them"
        );
    }
    let token = args.token.clone().or_else(token_from_env).context(
        "--backend needs an API token: pass --token, or set HUROZO_TOKEN (create one with \
         `node-host hub token create --account NAME`)",
    )?;
    let mut object = Map::new();
    for input in inputs {
        let json = value::to_json(&input.value)
            .map_err(|err| anyhow::anyhow!("input `{}`: {err}", input.name))?;
        object.insert(input.name, json);
    }
    let url = backend
        .join(&format!(
            "api/remote_nodes/{}/execute",
            percent_encode_segment(&args.target)
        ))
        .context("building the execute URL")?;
    let request = ExecuteRequest {
        inputs: object,
        timeout_ms: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (status, body) = runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(url.clone())
            .bearer_auth(&token)
            .json(&request)
            .send()
            .await
            .map_err(|err| {
                anyhow::anyhow!("cannot reach the hub at {url}: {}", error_chain(&err))
            })?;
        let status = response.status();
        let body = response.bytes().await.context("reading the hub's answer")?;
        anyhow::Ok((status, body))
    })?;
    if status.is_success() {
        let response: ExecuteResponse = serde_json::from_slice(&body).with_context(|| {
            format!(
                "the hub's answer is not an execute response: {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        print_outputs(&response.outputs)?;
        return Ok(ExitCode::SUCCESS);
    }
    let error: ApiError = serde_json::from_slice(&body).unwrap_or_else(|_| ApiError {
        error: String::from_utf8_lossy(&body).into_owned(),
        code: None,
    });
    let code = error.code.as_deref().unwrap_or("http_error");
    // The node ran and failed, or could not be reached in time: exit 1, like
    // a local failure. Anything else is the caller's mistake: exit 2.
    let node_failed = matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    );
    if node_failed {
        // The hub says "node `X` failed: why"; the failure line names the node already.
        let prefix = format!("node `{}` failed: ", args.target);
        let message = error.error.strip_prefix(&prefix).unwrap_or(&error.error);
        print_failure(args.json, &args.target, code, message, None)?;
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    if args.json {
        out!(
            "{}",
            serde_json::json!({"error": {"code": code, "message": error.error}})
        );
    } else {
        eprintln!(
            "node-host: error: the hub refused the call ({status}): {}",
            error.error
        );
    }
    Ok(ExitCode::from(EXIT_USAGE))
}

/// Node names may hold any character but `/`; encode what a path segment cannot carry.
fn percent_encode_segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
