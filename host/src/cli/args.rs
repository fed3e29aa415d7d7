//! Parsers for command-line values (inputs, sizes, durations, secrets) and
//! the argument groups several commands share.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::sandbox::http::{
    DEFAULT_HTTP_CONCURRENT, DEFAULT_HTTP_REQUESTS, HttpAccess, HttpLimits, Origin, Outbound,
    OutboundSettings,
};
use crate::sandbox::value::{self, NamedValue, Value};
use crate::sandbox::{DEFAULT_FUEL, Limits};

/// Outbound HTTP for the nodes on the command line, as flags.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Let the nodes call this origin over HTTP(S): scheme://host[:port], with `*.` for any
    /// subdomain and `:*` for any port (e.g. https://api.openai.com, https://*.example.org,
    /// http://127.0.0.1:*). Repeat for more. Without it a node that imports wasi:http does not
    /// load, and no request of any node leaves.
    #[arg(long = "allow-http", value_name = "ORIGIN")]
    pub allow: Vec<Origin>,

    #[command(flatten)]
    pub outbound: OutboundArgs,

    /// Requests one event may make.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HTTP_REQUESTS)]
    pub http_requests: u32,

    /// Requests one event may have open at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HTTP_CONCURRENT)]
    pub http_concurrent: u32,

    /// Bytes of each request body a node sends.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub http_request_bytes: usize,

    /// Bytes of each response body a node reads.
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_size)]
    pub http_response_bytes: usize,
}

/// The operator's settings for nodes' outbound HTTP, as flags.
#[derive(Debug, Clone, Args)]
pub struct OutboundArgs {
    /// Let nodes reach loopback, private and link-local addresses their grants name (refused
    /// by default, also when an allowed name resolves to one).
    #[arg(long)]
    pub allow_private_addresses: bool,

    /// Trust this PEM file's certificate authorities for nodes' HTTPS besides the webpki
    /// roots (repeatable).
    #[arg(long = "http-ca", value_name = "PEM")]
    pub ca: Vec<PathBuf>,
}

impl OutboundArgs {
    /// The settings the flags describe.
    pub fn settings(&self) -> OutboundSettings {
        OutboundSettings {
            private_addresses: self.allow_private_addresses,
            extra_roots: self.ca.clone(),
        }
    }
}

impl HttpArgs {
    /// The limits of each event's requests.
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            requests: self.http_requests,
            concurrent: self.http_concurrent,
            request_bytes: self.http_request_bytes as u64,
            response_bytes: self.http_response_bytes as u64,
        }
    }

    /// What the command line's nodes may reach: `None` without --allow-http.
    pub fn access(&self) -> anyhow::Result<Option<Arc<HttpAccess>>> {
        if self.allow.is_empty() {
            return Ok(None);
        }
        let outbound = Outbound::new(&self.outbound.settings()).context("--http-ca")?;
        Ok(Some(HttpAccess::new(
            &outbound,
            "local",
            vec![self.allow.clone()],
            self.limits(),
        )))
    }
}

/// The limits of every event, as flags.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Fuel per event (about one unit per WebAssembly instruction).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_FUEL)]
    pub fuel: u64,

    /// Linear memory cap per event, summed over all memories (e.g. 64MiB).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub memory: usize,

    /// Wall-clock deadline per event (e.g. 500ms, 10s).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Cap on the total size of an event's outputs (e.g. 1MiB).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_output: usize,

    /// A secret nodes may read if they declare it (repeatable).
    #[arg(long = "secret", value_name = "NAME=VALUE", value_parser = parse_secret)]
    pub secrets: Vec<(String, String)>,
}

impl LimitArgs {
    /// The limits the flags describe.
    pub fn limits(&self) -> Limits {
        Limits {
            fuel: self.fuel,
            memory_bytes: self.memory,
            timeout: self.timeout,
            output_bytes: self.max_output,
            ..Limits::default()
        }
    }

    /// The secrets, by name.
    pub fn secrets(&self) -> HashMap<String, String> {
        self.secrets.iter().cloned().collect()
    }
}

/// Parses `NAME=VALUE` for `--secret`.
pub fn parse_secret(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("secret `{arg}` must be NAME=VALUE")),
    }
}

/// The API token from the environment, as Hurozo's Python package reads it.
pub fn token_from_env() -> Option<String> {
    ["HUROZO_TOKEN", "HUROZO_API_TOKEN"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|token| !token.trim().is_empty())
}

/// Parses a backend base URL; the path is kept as the API's prefix.
pub fn parse_backend(arg: &str) -> Result<url::Url, String> {
    let mut url = url::Url::parse(arg)
        .map_err(|err| format!("`{arg}` is not a URL ({err}); write e.g. http://127.0.0.1:8765"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the backend URL `{arg}` must start with http:// or https://"
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Parses `NAME=TEXT` (a text input) or `NAME:=JSON` (any JSON value).
pub fn parse_input(arg: &str) -> Result<NamedValue, String> {
    let Some((name, rest)) = arg.split_once('=') else {
        return Err(format!(
            "input `{arg}` has no `=`: write NAME=TEXT, or NAME:=JSON for a JSON value"
        ));
    };
    let (name, value) = match name.strip_suffix(':') {
        Some(name) => {
            let json = serde_json::from_str(rest).map_err(|err| {
                format!(
                    "input `{name}`: `{rest}` is not valid JSON ({err}); quote text as NAME=TEXT"
                )
            })?;
            (name, value::from_json(json))
        }
        None => (name, Value::Text(rest.to_owned())),
    };
    if name.is_empty() {
        return Err(format!("input `{arg}` has an empty name"));
    }
    Ok(NamedValue {
        name: name.to_owned(),
        value,
    })
}

/// Parses a byte size: `1048576`, `512KiB`, `64MiB`, `1GiB` (also `K`, `M`,
/// `G`, `KB`, `MB`, `GB`, all powers of 1024).
pub fn parse_size(arg: &str) -> Result<usize, String> {
    let trimmed = arg.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("`{arg}` is not a size: write e.g. 64MiB, 512KiB or 1048576"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{arg}`: use KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("size `{arg}` is too large"))
}

/// Parses a duration: `500ms`, `2s`, `1.5s`, `1m`, `100us`.
pub fn parse_duration(arg: &str) -> Result<Duration, String> {
    let trimmed = arg.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{arg}` is not a duration: write e.g. 500ms, 2s, 1m, 12h or 30d"))?;
    let seconds = match unit.trim() {
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        "" => return Err(format!("duration `{arg}` needs a unit: ms, s, m, h or d")),
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{arg}`: use ms, s, m, h or d"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("duration `{arg}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_text_and_json() {
        let text = parse_input("name=Ada=Lovelace").unwrap();
        assert_eq!(
            (text.name.as_str(), text.value),
            ("name", Value::Text("Ada=Lovelace".into()))
        );
        let json = parse_input("n:=42").unwrap();
        assert_eq!(json.value, Value::Integer(42));
        let json = parse_input("list:=[1,2]").unwrap();
        assert_eq!(json.value, Value::Json("[1,2]".into()));
        let empty = parse_input("name=").unwrap();
        assert_eq!(empty.value, Value::Text(String::new()));
    }

    #[test]
    fn bad_inputs_say_how_to_fix_them() {
        assert!(parse_input("name").unwrap_err().contains("NAME=TEXT"));
        assert!(parse_input("n:={").unwrap_err().contains("not valid JSON"));
        assert!(parse_input("=x").unwrap_err().contains("empty name"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("12 parsecs").unwrap_err().contains("unit"));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("soon").is_err());
    }
}
