//! `node-host node versions|rollback` and `node-host logs`: an uploaded
//! node's versions and the account's kept events, on a hub.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};

use super::args::{parse_backend, token_from_env};
use super::upload::send;
use super::{EXIT_FAILED, EXIT_USAGE};
use crate::core::clock::{utc_millis, utc_minutes};

/// How often `logs --follow` asks for newer events.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Which hub, as whom.
#[derive(Debug, Args)]
pub(super) struct HubAccess {
    /// The hub [default: $HUROZO_API_URL].
    #[arg(long, env = "HUROZO_API_URL", value_name = "URL", value_parser = parse_backend)]
    backend: Option<url::Url>,

    /// A token of the account (a write token to roll back)
    /// [default: $HUROZO_TOKEN or $HUROZO_API_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
}

/// A hub to ask, with a runtime to ask it on.
struct Hub {
    backend: url::Url,
    token: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl HubAccess {
    fn connect(&self) -> anyhow::Result<Hub> {
        let backend = self.backend.clone().context(
            "no hub given: pass --backend URL (e.g. http://127.0.0.1:8765) or set HUROZO_API_URL",
        )?;
        let token = self.token.clone().or_else(token_from_env).context(
            "the hub needs the account's token: pass --token, or set HUROZO_TOKEN (create one \
             with `node-host hub token create --account NAME`)",
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(Hub {
            backend,
            token,
            client: reqwest::Client::new(),
            runtime,
        })
    }
}

impl Hub {
    /// `GET` (or, with a body, `POST`) `path`: the answer when it succeeded,
    /// else the exit code after saying why.
    fn ask(&self, path: &str, body: Option<Json>) -> anyhow::Result<Result<Json, ExitCode>> {
        let method = match body {
            Some(_) => reqwest::Method::POST,
            None => reqwest::Method::GET,
        };
        self.send(method, path, body)
    }

    /// [`ask`](Self::ask) with any method.
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
    ) -> anyhow::Result<Result<Json, ExitCode>> {
        let url = self
            .backend
            .join(path)
            .with_context(|| format!("building the URL of {path}"))?;
        let mut request = self.client.request(method, url.clone());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, answer) = self
            .runtime
            .block_on(send(request.bearer_auth(&self.token), &url))?;
        if status.is_success() {
            return Ok(Ok(answer));
        }
        let message = answer["error"].as_str().unwrap_or("the hub refused");
        let code = answer["code"].as_str().unwrap_or("http_error");
        eprintln!("node-host: error: {message} [{code}]");
        let usage = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        Ok(Err(ExitCode::from(if usage {
            EXIT_USAGE
        } else {
            EXIT_FAILED
        })))
    }
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  node-host node versions hello --backend http://127.0.0.1:8765 --token nh_...
  node-host node rollback hello 2 --backend http://127.0.0.1:8765 --token nh_...
  node-host node config hello model=large --unset old-key

Every upload of a node is a new version; the hub keeps the newest few of each node
(`node-host hub --keep-versions N`, 5 by default) and its events run the current one.
Exit status: 0 done, 1 the hub refused (an unknown node or version), 2 bad usage or access.")]
pub(super) struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// List the kept versions of an uploaded node, newest first.
    Versions {
        /// The uploaded node's name.
        node: String,
        /// Print the hub's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubAccess,
    },
    /// Show or set a node's configuration: values it reads like secrets
    /// (`host.secret(KEY)` for a KEY it declares), visible to its account.
    Config {
        /// The uploaded node's name (it need not be uploaded yet).
        node: String,
        /// KEY=VALUE pairs to set.
        #[arg(value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Keys to remove.
        #[arg(long, value_name = "KEY")]
        unset: Vec<String>,
        #[command(flatten)]
        hub: HubAccess,
    },
    /// Make a kept version of an uploaded node the one its events run.
    Rollback {
        /// The uploaded node's name.
        node: String,
        /// The version to run (see `node-host node versions`).
        version: i64,
        #[command(flatten)]
        hub: HubAccess,
    },
}

pub(super) fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        NodeCommand::Versions { node, json, hub } => {
            let hub = hub.connect()?;
            let answer = match hub.ask(&format!("api/nodes/{}/versions", segment(node)), None)? {
                Ok(answer) => answer,
                Err(code) => return Ok(code),
            };
            if *json {
                out!("{answer}");
            } else {
                out!("{}", versions_table(&answer).trim_end_matches('\n'));
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Config {
            node,
            set,
            unset,
            hub,
        } => {
            let pairs = set
                .iter()
                .map(|pair| {
                    pair.split_once('=')
                        .with_context(|| format!("`{pair}` is not KEY=VALUE (e.g. model=large)"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let hub = hub.connect()?;
            let path = |key: &str| format!("api/nodes/{}/config/{}", segment(node), segment(key));
            for (key, value) in pairs {
                let body = json!({ "value": value });
                if let Err(code) = hub.send(reqwest::Method::PUT, &path(key), Some(body))? {
                    return Ok(code);
                }
            }
            for key in unset {
                if let Err(code) = hub.send(reqwest::Method::DELETE, &path(key), None)? {
                    return Ok(code);
                }
            }
            match hub.ask(&format!("api/nodes/{}/config", segment(node)), None)? {
                Ok(answer) => {
                    out!("{}", serde_json::to_string_pretty(&answer["config"])?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(code) => Ok(code),
            }
        }
        NodeCommand::Rollback { node, version, hub } => {
            let hub = hub.connect()?;
            let body = json!({ "version": version });
            let answer =
                match hub.ask(&format!("api/nodes/{}/rollback", segment(node)), Some(body))? {
                    Ok(answer) => answer,
                    Err(code) => return Ok(code),
                };
            out!(
                "node-host: `{node}` now runs version {} (sha256 {})",
                answer["version"],
                answer["sha256"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn versions_table(answer: &Json) -> String {
    let mut table = format!(
        "{:<8} {:<8} {:<21} {:>10}  {}\n",
        "VERSION", "CURRENT", "UPLOADED", "SIZE", "SHA256"
    );
    for version in answer["versions"].as_array().into_iter().flatten() {
        table.push_str(&format!(
            "{:<8} {:<8} {:<21} {:>10}  {}\n",
            version["version"].to_string(),
            if version["current"] == true { "*" } else { "" },
            utc_minutes(version["uploaded_at"].as_i64().unwrap_or(0)),
            format!(
                "{:.1} KiB",
                version["size"].as_f64().unwrap_or(0.0) / 1024.0
            ),
            version["sha256"].as_str().unwrap_or("?"),
        ));
    }
    table
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  node-host logs hello --backend http://127.0.0.1:8765 --token nh_...
  node-host logs --follow              (every node of the account, as events arrive)

The hub keeps each account's newest events (`node-host hub --history-events N`, 1000 by
default, for at most `--history-age`, 7 days), with what each printed and logged.
Exit status: 0 done, 1 the hub refused, 2 bad usage or access.")]
pub(super) struct LogsArgs {
    /// Only this node's events [default: every node of the account].
    node: Option<String>,

    /// Keep printing events as they arrive (until interrupted).
    #[arg(long, short)]
    follow: bool,

    /// Show the newest N events first (1 to 1000).
    #[arg(long, short = 'n', value_name = "N", default_value = "20", value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,

    /// Print each event as one line of JSON.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    hub: HubAccess,
}

pub(super) fn logs(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let hub = args.hub.connect()?;
    let node = args
        .node
        .as_ref()
        .map(|node| format!("&node={}", urlencode(node)))
        .unwrap_or_default();
    let mut after: Option<i64> = None;
    loop {
        let path = match after {
            None => format!("api/events?limit={}{node}", args.limit),
            Some(after) => format!("api/events?after={after}&limit=1000{node}"),
        };
        let answer = match hub.ask(&path, None)? {
            Ok(answer) => answer,
            Err(code) => return Ok(code),
        };
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        if after.is_none() && events.is_empty() && !args.follow {
            eprintln!(
                "node-host: no events kept{}",
                args.node
                    .as_ref()
                    .map(|node| format!(" of `{node}`"))
                    .unwrap_or_default()
            );
        }
        for event in &events {
            if args.json {
                out!("{event}");
            } else {
                out!("{}", event_text(event).trim_end_matches('\n'));
            }
        }
        let newest = events.iter().filter_map(|event| event["id"].as_i64()).max();
        after = newest.or(after).or(Some(0));
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// One event for people: a heading line, then what it printed, indented.
fn event_text(event: &Json) -> String {
    let outcome = event["outcome"].as_str().unwrap_or("?");
    let mut text = format!(
        "{}  {}{}  {}",
        utc_millis(event["at_ms"].as_i64().unwrap_or(0)),
        event["node"].as_str().unwrap_or("?"),
        event["version"]
            .as_i64()
            .map(|version| format!(" v{version}"))
            .unwrap_or_default(),
        outcome,
    );
    if let Some(us) = event["duration_us"].as_i64() {
        text.push_str(&format!("  {:.1} ms", us as f64 / 1000.0));
    }
    if let Some(fuel) = event["fuel"].as_i64() {
        text.push_str(&format!("  fuel {fuel}"));
    }
    text.push_str(&format!("  {}\n", event["uuid"].as_str().unwrap_or("")));
    if let Some(message) = event["message"].as_str() {
        text.push_str(&format!("  error: {message}\n"));
    }
    for stream in ["stdout", "stderr"] {
        for line in event[stream].as_str().unwrap_or("").lines() {
            text.push_str(&format!("  {stream}: {line}\n"));
        }
    }
    for entry in event["log"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "  log {}: {}\n",
            entry["level"].as_str().unwrap_or("?"),
            entry["message"].as_str().unwrap_or("")
        ));
    }
    if event["truncated"] == true {
        text.push_str("  (output cut at the account's log limit)\n");
    }
    text
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `text` as one segment of a URL path (a node's name may hold `?`, `#`
/// or spaces).
fn segment(text: &str) -> String {
    urlencode(text).replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_as_a_heading_and_its_output() {
        let event = json!({
            "id": 4, "node": "hello", "version": 2, "uuid": "u-1", "at_ms": 1_796_315_222_900_i64,
            "outcome": "guest_error", "message": "no name", "duration_us": 1500, "fuel": 77,
            "stdout": "one\ntwo", "stderr": "", "log": [{"level": "warn", "message": "hm"}],
            "truncated": true,
        });
        assert_eq!(
            event_text(&event),
            "2026-12-03 16:27:02.900 UTC  hello v2  guest_error  1.5 ms  fuel 77  u-1\n  \
             error: no name\n  stdout: one\n  stdout: two\n  log warn: hm\n  \
             (output cut at the account's log limit)\n"
        );
    }

    #[test]
    fn versions_are_a_table_with_the_current_one_starred() {
        let answer = json!({"versions": [
            {"version": 2, "current": true, "uploaded_at": 0, "size": 2048, "sha256": "bb"},
            {"version": 1, "current": false, "uploaded_at": 0, "size": 1024, "sha256": "aa"},
        ]});
        let table = versions_table(&answer);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("2        *"), "{table}");
        assert!(lines[2].starts_with("1         "), "{table}");
        assert!(lines[1].ends_with("2.0 KiB  bb"), "{table}");
    }
}
