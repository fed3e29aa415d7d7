//! The executors: dedicated threads that run events on the sync wasmtime
//! API, each event in a fresh sandbox, and hand back the reply as JSON.
//!
//! Dedicated threads rather than tokio tasks: the sync API measured faster
//! than the async one, and a guest that burns its whole deadline then holds
//! one executor, never the thread that reads the socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::protocol::hurozo::{Event, Reply};
use crate::sandbox::value::inputs_from_json;
use crate::sandbox::{Limits, NodeComponent};

/// One event to run.
#[derive(Debug)]
pub struct Job {
    /// The connection the event came on; its reply goes back there only.
    pub session: u64,
    /// The node that runs it.
    pub node: Arc<NodeComponent>,
    /// The event.
    pub event: Event,
    /// When it was read off the socket.
    pub received: Instant,
}

/// A finished event's reply.
#[derive(Debug)]
pub struct Done {
    /// The connection the event came on.
    pub session: u64,
    /// The reply, serialized.
    pub text: String,
}

/// What every executor shares.
#[derive(Debug, Clone)]
pub struct ExecutorContext {
    /// Limits of every event.
    pub limits: Limits,
    /// Secrets a node may read if it declares them.
    pub secrets: Arc<HashMap<String, String>>,
    /// Where events are counted.
    pub metrics: Metrics,
}

/// Starts `count` executor threads. They run until `jobs` is closed and
/// empty.
pub fn spawn(
    count: usize,
    jobs: async_channel::Receiver<Job>,
    done: mpsc::UnboundedSender<Done>,
    context: ExecutorContext,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..count)
        .map(|index| {
            let jobs = jobs.clone();
            let done = done.clone();
            let context = context.clone();
            std::thread::Builder::new()
                .name(format!("node-host-executor-{index}"))
                .spawn(move || {
                    while let Ok(job) = jobs.recv_blocking() {
                        run(job, &context, &done);
                    }
                })
                .expect("spawning an executor thread")
        })
        .collect()
}

/// Runs one event and sends its reply before the sandbox is torn down.
fn run(mut job: Job, context: &ExecutorContext, done: &mpsc::UnboundedSender<Done>) {
    let inputs = inputs_from_json(std::mem::take(&mut job.event.inputs));
    job.node
        .execute_then(inputs, &context.secrets, &context.limits, |outcome| {
            let reply = Reply::to_event(&job.event, &outcome);
            let text = serde_json::to_string(&reply).expect("replies serialize");
            let _ = done.send(Done {
                session: job.session,
                text,
            });
            let label = reply.error.as_ref().map_or("ok", |error| error.code.as_str());
            if let Some(error) = &reply.error {
                tracing::info!(node = %job.event.node, code = %error.code, "event failed: {}", error.message);
            }
            context
                .metrics
                .finished(&job.event.node, label, job.received.elapsed(), outcome.fuel_used);
        });
}
