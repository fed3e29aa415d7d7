//! Capped capture of a guest's stdout, stderr and log lines.
//!
//! wasmtime's `MemoryOutputPipe` traps the guest once it is full; a node must
//! never fail because it printed too much, so these streams keep the first
//! `cap` bytes, drop the rest and remember that they did.

use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Severity of a guest log line.
pub use super::bindings::node_host::node::host::Level;

/// Bytes a guest may hand over in one write; it loops for more.
const WRITE_PERMIT: usize = 64 << 10;

/// What was kept of one captured stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Captured {
    /// The first bytes written, lossily decoded as UTF-8.
    pub text: String,
    /// True when more was written than the cap keeps.
    pub truncated: bool,
}

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    truncated: bool,
}

/// A stdout or stderr for one event, shared between the WASI context and the
/// host that reads it afterwards.
#[derive(Debug, Clone)]
pub(crate) struct CaptureStream {
    buffer: Arc<Mutex<Buffer>>,
    cap: usize,
}

impl CaptureStream {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            buffer: Arc::default(),
            cap,
        }
    }

    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.cap.saturating_sub(buffer.kept.len());
        if bytes.len() > room {
            buffer.truncated = true;
        }
        buffer
            .kept
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The last `max` bytes kept so far (cut to a character boundary).
    pub(crate) fn tail(&self, max: usize) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        let text = String::from_utf8_lossy(&buffer.kept);
        let text = text.trim();
        let start = text.len().saturating_sub(max);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    /// What the guest wrote, up to the cap.
    pub(crate) fn take(&self) -> Captured {
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        Captured {
            text: String::from_utf8_lossy(&std::mem::take(&mut buffer.kept)).into_owned(),
            truncated: buffer.truncated,
        }
    }
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CaptureStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// One line the guest logged through `host.log`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The guest's message.
    pub message: String,
}

/// The log lines of one event, up to a byte cap.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CapturedLog {
    /// The lines kept, oldest first.
    pub lines: Vec<LogLine>,
    /// True when lines were dropped (or the last kept one cut short).
    pub truncated: bool,
    #[serde(skip)]
    bytes: usize,
}

impl CapturedLog {
    pub(crate) fn push(&mut self, level: Level, mut message: String, cap: usize) {
        let room = cap.saturating_sub(self.bytes);
        if room == 0 || self.truncated {
            self.truncated = true;
            return;
        }
        if cut_to(&mut message, room) {
            self.truncated = true;
        }
        self.bytes += message.len();
        self.lines.push(LogLine {
            level: level_name(level),
            message,
        });
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary; true when
/// something was cut.
pub(crate) fn cut_to(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_below_cap_is_whole() {
        let mut stream = CaptureStream::new(8);
        stream.write(bytes::Bytes::from_static(b"abc")).unwrap();
        stream.write(bytes::Bytes::from_static(b"de")).unwrap();
        assert_eq!(
            stream.take(),
            Captured {
                text: "abcde".into(),
                truncated: false
            }
        );
    }

    #[test]
    fn capture_beyond_cap_keeps_the_start_and_never_fails() {
        let mut stream = CaptureStream::new(4);
        for _ in 0..100 {
            stream.write(bytes::Bytes::from_static(b"xyz")).unwrap();
            assert_eq!(stream.check_write().unwrap(), WRITE_PERMIT);
        }
        assert_eq!(
            stream.take(),
            Captured {
                text: "xyzx".into(),
                truncated: true
            }
        );
    }

    #[test]
    fn log_beyond_cap_is_cut_on_a_char_boundary() {
        let mut log = CapturedLog::default();
        log.push(Level::Info, "ab".into(), 5);
        log.push(Level::Warn, "cdé".into(), 5);
        log.push(Level::Error, "dropped".into(), 5);
        assert!(log.truncated);
        let messages: Vec<_> = log.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["ab", "cd"]);
        assert_eq!(log.lines[1].level, "warn");
    }
}
