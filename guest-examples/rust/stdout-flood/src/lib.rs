//! Adversarial node: writes `bytes` bytes (default 8 MiB) to stdout and to
//! stderr, and as many bytes of log lines, then returns normally.

use std::io::Write;

use guest_kit::{
    Guest, Level, NamedValue, NodeError, NodeInfo, Value, info, integer_input, log, output, port,
};

struct StdoutFlood;

const DEFAULT_BYTES: i64 = 8 << 20;
const LINE: &[u8; 64] = b"flood flood flood flood flood flood flood flood flood flood flo\n";

impl Guest for StdoutFlood {
    fn info() -> NodeInfo {
        info(
            "stdout-flood",
            "Prints and logs far more than any capture keeps, then returns",
            vec![port(
                "bytes",
                "How much to write to each stream (default 8 MiB)",
                false,
            )],
            vec![port("written", "Bytes written to each stream", true)],
        )
    }

    fn execute(inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, NodeError> {
        let total = integer_input(&inputs, "bytes")
            .unwrap_or(DEFAULT_BYTES)
            .max(0) as usize;
        let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
        let mut written = 0;
        while written < total {
            let chunk = &LINE[..LINE.len().min(total - written)];
            stdout.write_all(chunk).expect("stdout accepts every write");
            stderr.write_all(chunk).expect("stderr accepts every write");
            log(
                Level::Info,
                std::str::from_utf8(chunk).expect("ascii").trim_end(),
            );
            written += chunk.len();
        }
        stdout.flush().expect("stdout flushes");
        Ok(vec![output("written", Value::Integer(written as i64))])
    }
}

guest_kit::export_node!(StdoutFlood with_types_in guest_kit);
