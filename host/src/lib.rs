//! node-host runs untrusted WebAssembly components as sandboxed remote nodes
//! for agent and workflow platforms.
//!
//! The map (data flows down; a lower layer never uses a higher one):
//!
//! ```text
//!  cli            node-host run | call | hub | upload | …  (parses, wires, prints)
//!  worker         control planes that push events: ControlPlane + one session loop
//!                 (Hurozo worker, hosted worker); registration, backoff, drain
//!  exosphere      a runtime that pulls states from an Exosphere state manager
//!  juturna        a gRPC server Juturna pipelines call (MessagingService)
//!  hub            http (routes, auth, WebSockets) -> service::Hub (what the hub does;
//!                 in a cluster, service::relay passes executes between hubs over NATS)
//!                 -> store::Store (SQLite, or PostgreSQL shared by a cluster)
//!                 + store::Blobs (a directory, shared by a cluster)
//!  protocol       wire types only (Hurozo, the hosted-worker protocol), no I/O;
//!                 each translates between its wire and the core's domain
//!  core           Event{id, account, node, inputs, deadline} -> Runner -> Outcome;
//!                 one executor pool, per-account lanes
//!  sandbox        a fresh limited instance per event (fuel, memory, deadline, capture)
//! ```
//!
//! Every event, whatever brings it (a Hurozo WebSocket, the hub's execute
//! API, a hosted worker, `node-host call`), runs through `core::Runner`,
//! the one caller of the sandbox's event path. A new platform is a new
//! front end over the runner (a [`worker::ControlPlane`] for one that pushes
//! events over a WebSocket); a new database is a new `hub::store::Store`.
//! `metrics` is shared by the worker and the hub; `testing` starts the real
//! PostgreSQL and nats-server the tests use.
//!
//! The public API is [`sandbox`], [`worker`], [`exosphere`], [`juturna`] and [`hub::service`] (with
//! [`hub::serve`] to put it on HTTP); `cli` is public only for the
//! `node-host` binary.

#[doc(hidden)]
pub mod cli;
mod core;
pub mod exosphere;
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod hub;
pub mod juturna;
mod metrics;
mod protocol;
pub mod sandbox;
mod telemetry;
#[doc(hidden)]
pub mod testing;
pub mod worker;
