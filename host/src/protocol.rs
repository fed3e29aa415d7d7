//! Wire formats node-host speaks with platform backends: serde types and
//! the conversions between them and sandbox outcomes. No I/O here; the
//! worker and the hub move these over HTTP and WebSockets.

pub mod exosphere;
pub mod hosted;
pub mod hurozo;

/// Bytes the hub and the worker read from their WebSocket at a time.
/// tungstenite zeroes this much before every read, the ones that find
/// nothing too: its default 128 KiB cost the hub about 1% of its CPU under
/// load. Events and replies are small; a big one takes a few reads.
pub const WS_READ_BUFFER: usize = 16 << 10;
