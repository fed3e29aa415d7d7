//! Wire formats node-host speaks with platform backends: serde types and
//! the conversions between them and sandbox outcomes. No I/O here; the
//! worker and the hub move these over HTTP and WebSockets.

pub mod exosphere;
pub mod hosted;
pub mod hurozo;
