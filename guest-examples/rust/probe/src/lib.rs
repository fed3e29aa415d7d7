//! Adversarial node: reaches for what a node is not granted (a file, an
//! environment variable, a socket) and for what it is (the clocks, random
//! bytes), as its `what` input says. A refusal comes back as its own
//! `refused` error with the host's reason; what works comes back as output.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::time::{SystemTime, UNIX_EPOCH};

use guest_kit::{Guest, NamedValue, NodeError, NodeInfo, Value, info, input, output, port};

struct Probe;

fn refused(what: &str, why: impl std::fmt::Display) -> NodeError {
    NodeError {
        code: "refused".into(),
        message: format!("{what}: {why}"),
    }
}

impl Guest for Probe {
    fn info() -> NodeInfo {
        info(
            "probe",
            "Reaches for a file, an environment variable, a socket, the clock or random bytes",
            vec![port("what", "file, env, socket, clock or random", true)],
            vec![port("got", "What it got", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let what = match input(&inputs, "what") {
            Some(Value::Text(what)) => what.clone(),
            _ => String::new(),
        };
        let got = match what.as_str() {
            "file" => std::fs::read_to_string("/etc/hostname")
                .map(Value::Text)
                .map_err(|err| refused("reading /etc/hostname", err))?,
            "env" => std::env::var("HOME")
                .map(Value::Text)
                .map_err(|err| refused("reading $HOME", err))?,
            "socket" => std::net::TcpStream::connect("127.0.0.1:80")
                .map(|_| Value::Text("connected".into()))
                .map_err(|err| refused("connecting to 127.0.0.1:80", err))?,
            "clock" => {
                let since = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|err| refused("reading the clock", err))?;
                Value::Integer(since.as_secs() as i64)
            }
            // Hash keys are drawn from the host's random source on first use.
            "random" => Value::Integer(RandomState::new().hash_one(0u8) as i64),
            other => return Err(refused("probing", format!("unknown probe `{other}`"))),
        };
        Ok(vec![output("got", got)])
    }
}

guest_kit::export_node!(Probe with_types_in guest_kit);
