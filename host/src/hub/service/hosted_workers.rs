//! The hub's side of hosted workers (`node-host run --hosted`), in the
//! protocol of [`crate::protocol::hosted`]: the component download, their
//! connections, and sending an uploaded node's event to one of them.
//!
//! Hosted workers sit in the switchboard as connections of a pseudo-account,
//! [`HOSTED_POOL`], serving the sha256 of each component they have ready;
//! the switchboard then routes each event to the least busy of them and
//! fails its caller at once when a worker goes. Such an event then runs in
//! the hub: a node has no effects outside its sandbox, so running it again
//! is safe.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::catalog::InstalledNode;
use super::{Hub, HubError};
use crate::core::{AccountId, Event, EventFailure};
use crate::hub::switchboard::{Answer, LinkId};
use crate::protocol::hosted::{EventLimits, FromWorker, HostedEvent, ToWorker};
use crate::sandbox::value::to_json;

/// The switchboard account of hosted workers. Real accounts start at 1.
pub const HOSTED_POOL: AccountId = 0;

impl Hub {
    /// The bytes of a component some account uses, for a hosted worker.
    pub(crate) async fn component(&self, sha256: &str) -> Result<Vec<u8>, HubError> {
        if !self.catalog.in_use(sha256) {
            return Err(HubError::UnknownComponent(sha256.to_owned()));
        }
        let (blobs, sha256) = (self.catalog.blobs().clone(), sha256.to_owned());
        tokio::task::spawn_blocking(move || blobs.get(&sha256))
            .await
            .map_err(HubError::internal)?
            .map_err(|err| HubError::internal(format!("cannot read the component: {err}")))
    }

    /// A hosted worker connected: its link, where its frames come from, and
    /// the first frame to send it (the components in use).
    pub(crate) fn hosted_worker_connected(
        &self,
    ) -> (LinkId, tokio::sync::mpsc::UnboundedReceiver<String>, String) {
        let (link, outbox) = self.switchboard.connect(HOSTED_POOL, Default::default());
        self.metrics.connections(1);
        tracing::info!(link, "hosted worker connected");
        let components = ToWorker::Components {
            sha256: self.catalog.components(),
        };
        (link, outbox, frame(&components))
    }

    /// A text frame from the hosted worker `link`.
    pub(crate) fn hosted_worker_frame(&self, link: LinkId, text: &str) {
        match serde_json::from_str(text) {
            Ok(FromWorker::Ready { sha256 }) => {
                if self.catalog.in_use(&sha256) {
                    self.switchboard.serve_more(link, &sha256);
                }
            }
            Ok(FromWorker::Refused { sha256, message }) => {
                tracing::warn!(
                    link,
                    sha256,
                    "a hosted worker cannot run a component: {message}"
                );
            }
            Ok(FromWorker::Reply(hosted)) => {
                if !self
                    .switchboard
                    .answer_with_logs(link, hosted.reply, Some(hosted.logs))
                {
                    tracing::debug!(link, "ignored a reply with an unknown uuid");
                }
            }
            Err(err) => tracing::debug!(link, "ignored a frame from a hosted worker: {err}"),
        }
    }

    /// Tells the hosted workers to get a newly installed component ready.
    pub(super) fn announce(&self, sha256: &str) {
        let components = ToWorker::Components {
            sha256: vec![sha256.to_owned()],
        };
        self.switchboard.broadcast(HOSTED_POOL, &frame(&components));
    }

    /// Tells the hosted workers that no node uses a component any more.
    pub(super) fn withdraw(&self, sha256: &str) {
        self.switchboard.stop_serving(HOSTED_POOL, sha256);
        let forget = ToWorker::Forget {
            sha256: sha256.to_owned(),
        };
        self.switchboard.broadcast(HOSTED_POOL, &frame(&forget));
    }

    /// Hosted workers that have the component ready.
    pub(super) fn workers_ready(&self, sha256: &str) -> usize {
        self.switchboard.serving(HOSTED_POOL, sha256)
    }

    /// Runs `event` on the least busy hosted worker that has the component
    /// ready. `None` when there is none, or when the worker went before it
    /// replied: the caller then runs the event in the hub.
    pub(super) async fn run_remotely(
        &self,
        node: &InstalledNode,
        event: &Event,
        limits: EventLimits,
        secrets: &HashMap<String, String>,
    ) -> Option<Result<Map<String, Json>, EventFailure>> {
        let inputs = event
            .inputs
            .iter()
            .map(|input| Ok((input.name.clone(), to_json(&input.value)?)))
            .collect::<Result<Map<String, Json>, String>>()
            .ok()?;
        let hosted = ToWorker::Event(Box::new(HostedEvent {
            uuid: event.id.clone(),
            node: event.node.clone(),
            sha256: node.record.sha256.clone(),
            inputs,
            limits,
            secrets: secrets.clone(),
        }));
        let mut waiter = self
            .switchboard
            .dispatch_text(HOSTED_POOL, &node.record.sha256, &event.id, frame(&hosted))
            .ok()?;
        let counted = self.metrics.start(&event.node);
        match waiter.answer().await {
            Answer::Reply(reply, logs) => {
                let logs = logs.map(|logs| *logs).unwrap_or_default();
                let finished = match reply.error {
                    None => Ok(reply.outputs),
                    Some(error) => Err(EventFailure::new(&error.code, error.message)),
                };
                self.record_run(super::history::RunRecord {
                    account: event.account,
                    node: &event.node,
                    uuid: &event.id,
                    version: node.record.version,
                    finished: &finished,
                    fuel: None,
                    logs,
                });
                let label = finished
                    .as_ref()
                    .err()
                    .map_or("ok", |failure| failure.code.as_str());
                counted.finish(label, 0);
                Some(finished)
            }
            Answer::WorkerLost => {
                counted.finish("worker_lost", 0);
                tracing::warn!(node = %event.node, "a hosted worker went during an event; running it in the hub");
                None
            }
        }
    }
}

fn frame(frame: &ToWorker) -> String {
    serde_json::to_string(frame).expect("frames serialize")
}
