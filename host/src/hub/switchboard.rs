//! The switchboard: live worker connections, which nodes each serves, and
//! the events waiting for a reply (uuid → caller).
//!
//! Each event goes to exactly one connection of the caller's account that
//! serves the node, the one with the fewest events in flight. When a
//! connection goes, its callers are told at once. The pending map is
//! bounded: beyond [`MAX_PENDING`] a caller is refused as busy rather than
//! queued without limit.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use crate::protocol::hosted::EventLogs;
use crate::protocol::hurozo::{Event, Reply};

/// Events in flight across the hub before callers are refused as busy.
pub const MAX_PENDING: usize = 100_000;

/// How an event that was sent to a worker ended.
#[derive(Debug)]
pub enum Answer {
    /// The worker replied (a hosted worker also sends what the event
    /// printed and logged).
    Reply(Box<Reply>, Option<Box<EventLogs>>),
    /// The worker's connection closed before it replied.
    WorkerLost,
}

/// Why an event could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// No live connection of the account serves the node.
    #[error("no live worker serves this node")]
    NoWorker,
    /// [`MAX_PENDING`] events are already waiting.
    #[error("the hub has too many events in flight")]
    Busy,
}

/// A connection's id, unique for the life of the hub.
pub type LinkId = u64;

#[derive(Debug)]
struct Link {
    account: i64,
    nodes: HashSet<String>,
    outbox: mpsc::UnboundedSender<String>,
    in_flight: usize,
}

#[derive(Debug)]
struct Pending {
    link: LinkId,
    answer: oneshot::Sender<Answer>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: LinkId,
    links: HashMap<LinkId, Link>,
    /// (account, node) → links serving it.
    serving: HashMap<(i64, String), Vec<LinkId>>,
    pending: HashMap<String, Pending>,
}

/// Routes events to workers and replies back to callers.
#[derive(Debug, Default)]
pub struct Switchboard {
    inner: Mutex<Inner>,
}

impl Switchboard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Adds a connection of `account` serving `nodes`; events for it arrive
    /// on the returned receiver as JSON text.
    pub fn connect(
        &self,
        account: i64,
        nodes: HashSet<String>,
    ) -> (LinkId, mpsc::UnboundedReceiver<String>) {
        let (outbox, inbox) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        for node in &nodes {
            inner
                .serving
                .entry((account, node.clone()))
                .or_default()
                .push(id);
        }
        inner.links.insert(
            id,
            Link {
                account,
                nodes,
                outbox,
                in_flight: 0,
            },
        );
        (id, inbox)
    }

    /// Removes a connection; callers waiting on it get [`Answer::WorkerLost`].
    pub fn disconnect(&self, id: LinkId) {
        let mut inner = self.lock();
        let Some(link) = inner.links.remove(&id) else {
            return;
        };
        for node in link.nodes {
            let key = (link.account, node);
            if let Some(ids) = inner.serving.get_mut(&key) {
                ids.retain(|other| *other != id);
                if ids.is_empty() {
                    inner.serving.remove(&key);
                }
            }
        }
        let lost: Vec<String> = inner
            .pending
            .iter()
            .filter(|(_, pending)| pending.link == id)
            .map(|(uuid, _)| uuid.clone())
            .collect();
        for uuid in lost {
            if let Some(pending) = inner.pending.remove(&uuid) {
                let _ = pending.answer.send(Answer::WorkerLost);
            }
        }
    }

    /// Adds `node` to what connection `id` serves (a hosted worker that has
    /// got a component ready).
    pub fn serve_more(&self, id: LinkId, node: &str) {
        let mut inner = self.lock();
        let Some(link) = inner.links.get_mut(&id) else {
            return;
        };
        if link.nodes.insert(node.to_owned()) {
            let key = (link.account, node.to_owned());
            inner.serving.entry(key).or_default().push(id);
        }
    }

    /// Stops every connection of `account` from being sent events for `node`.
    pub fn stop_serving(&self, account: i64, node: &str) {
        let mut inner = self.lock();
        let Some(ids) = inner.serving.remove(&(account, node.to_owned())) else {
            return;
        };
        for id in ids {
            if let Some(link) = inner.links.get_mut(&id) {
                link.nodes.remove(node);
            }
        }
    }

    /// How many connections of `account` serve `node`.
    pub fn serving(&self, account: i64, node: &str) -> usize {
        self.lock()
            .serving
            .get(&(account, node.to_owned()))
            .map_or(0, Vec::len)
    }

    /// Sends `text` to every connection of `account` (not an event: nothing
    /// waits for a reply).
    pub fn broadcast(&self, account: i64, text: &str) {
        let inner = self.lock();
        for link in inner.links.values().filter(|link| link.account == account) {
            let _ = link.outbox.send(text.to_owned());
        }
    }

    /// Sends `event` (whose uuid must be a fresh string) to the least busy
    /// connection of `account` that serves its node.
    pub fn dispatch(
        &self,
        account: i64,
        event: &Event,
    ) -> Result<oneshot::Receiver<Answer>, DispatchError> {
        let uuid = event.uuid.as_str().unwrap_or_default();
        let text = serde_json::to_string(event).expect("events serialize");
        self.dispatch_text(account, &event.node, uuid, text)
    }

    /// Like [`dispatch`](Self::dispatch) for an event already serialized as
    /// `text`, whose reply will carry `uuid`.
    pub fn dispatch_text(
        &self,
        account: i64,
        node: &str,
        uuid: &str,
        text: String,
    ) -> Result<oneshot::Receiver<Answer>, DispatchError> {
        let uuid = uuid.to_owned();
        let mut inner = self.lock();
        if inner.pending.len() >= MAX_PENDING {
            return Err(DispatchError::Busy);
        }
        let key = (account, node.to_owned());
        loop {
            let candidates = inner.serving.get(&key).ok_or(DispatchError::NoWorker)?;
            let chosen = candidates
                .iter()
                .copied()
                .min_by_key(|id| inner.links[id].in_flight)
                .ok_or(DispatchError::NoWorker)?;
            let link = inner
                .links
                .get_mut(&chosen)
                .expect("serving lists live links");
            if link.outbox.send(text.clone()).is_err() {
                // Its socket task has ended but not yet disconnected: skip it.
                drop(inner);
                self.disconnect(chosen);
                inner = self.lock();
                continue;
            }
            link.in_flight += 1;
            let (answer, waiter) = oneshot::channel();
            inner.pending.insert(
                uuid,
                Pending {
                    link: chosen,
                    answer,
                },
            );
            return Ok(waiter);
        }
    }

    /// Delivers a reply that arrived on connection `from`. Returns false for
    /// a uuid that is not waiting on that connection (unknown, already
    /// answered, timed out, or another connection's), which is ignored.
    pub fn answer(&self, from: LinkId, reply: Reply) -> bool {
        self.answer_with_logs(from, reply, None)
    }

    /// [`answer`](Self::answer) with what the event printed and logged.
    pub fn answer_with_logs(&self, from: LinkId, reply: Reply, logs: Option<EventLogs>) -> bool {
        let Some(uuid) = reply.uuid.as_str() else {
            return false;
        };
        let mut inner = self.lock();
        match inner.pending.get(uuid) {
            Some(pending) if pending.link == from => {}
            _ => return false,
        }
        let pending = inner.pending.remove(uuid).expect("checked above");
        if let Some(link) = inner.links.get_mut(&from) {
            link.in_flight = link.in_flight.saturating_sub(1);
        }
        pending
            .answer
            .send(Answer::Reply(Box::new(reply), logs.map(Box::new)))
            .is_ok()
    }

    /// Forgets an event whose caller stopped waiting (it timed out).
    pub fn abandon(&self, uuid: &str) {
        let mut inner = self.lock();
        if let Some(pending) = inner.pending.remove(uuid)
            && let Some(link) = inner.links.get_mut(&pending.link)
        {
            link.in_flight = link.in_flight.saturating_sub(1);
        }
    }

    /// Live connections.
    #[cfg(test)]
    pub fn connections(&self) -> usize {
        self.lock().links.len()
    }

    /// Events waiting for a reply.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn event(node: &str, uuid: &str) -> Event {
        serde_json::from_value(
            json!({"type": "remote_node", "node": node, "inputs": {}, "uuid": uuid}),
        )
        .unwrap()
    }

    fn reply(node: &str, uuid: &str) -> Reply {
        Reply::success(&event(node, uuid), Map::new())
    }

    fn nodes(names: &[&str]) -> HashSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn events_go_to_the_least_busy_connection_of_the_account() {
        let board = Switchboard::default();
        let (a, mut inbox_a) = board.connect(1, nodes(&["hello"]));
        let (b, mut inbox_b) = board.connect(1, nodes(&["hello"]));
        let (_, mut other_account) = board.connect(2, nodes(&["hello"]));
        let _first = board.dispatch(1, &event("hello", "u1")).unwrap();
        let _second = board.dispatch(1, &event("hello", "u2")).unwrap();
        let got_a = inbox_a.try_recv().unwrap();
        let got_b = inbox_b.try_recv().unwrap();
        assert_ne!(got_a, got_b, "one event each");
        assert!(other_account.try_recv().is_err());
        assert_eq!(board.pending(), 2);
        assert!(board.answer(
            a,
            reply("hello", if got_a.contains("u1") { "u1" } else { "u2" })
        ));
        assert!(board.answer(
            b,
            reply("hello", if got_b.contains("u1") { "u1" } else { "u2" })
        ));
        assert_eq!(board.pending(), 0);
    }

    #[test]
    fn no_worker_for_an_unserved_node_or_another_account() {
        let board = Switchboard::default();
        let _link = board.connect(1, nodes(&["hello"]));
        assert_eq!(
            board.dispatch(1, &event("echo", "u1")).unwrap_err(),
            DispatchError::NoWorker
        );
        assert_eq!(
            board.dispatch(2, &event("hello", "u1")).unwrap_err(),
            DispatchError::NoWorker
        );
    }

    #[test]
    fn replies_count_only_from_the_connection_that_got_the_event() {
        let board = Switchboard::default();
        let (a, _inbox_a) = board.connect(1, nodes(&["hello"]));
        let (b, _inbox_b) = board.connect(1, nodes(&["other"]));
        let mut waiter = board.dispatch(1, &event("hello", "u1")).unwrap();
        assert!(!board.answer(b, reply("hello", "u1")), "wrong connection");
        assert!(!board.answer(a, reply("hello", "nope")), "unknown uuid");
        assert!(waiter.try_recv().is_err());
        assert!(board.answer(a, reply("hello", "u1")));
        assert!(matches!(waiter.try_recv(), Ok(Answer::Reply(..))));
        assert!(!board.answer(a, reply("hello", "u1")), "answered once");
    }

    #[test]
    fn a_lost_connection_fails_its_callers_at_once() {
        let board = Switchboard::default();
        let (a, _inbox) = board.connect(1, nodes(&["hello"]));
        let mut waiter = board.dispatch(1, &event("hello", "u1")).unwrap();
        board.disconnect(a);
        assert!(matches!(waiter.try_recv(), Ok(Answer::WorkerLost)));
        assert_eq!(board.connections(), 0);
        assert_eq!(
            board.dispatch(1, &event("hello", "u2")).unwrap_err(),
            DispatchError::NoWorker
        );
    }

    #[test]
    fn nodes_can_be_served_later_and_withdrawn() {
        let board = Switchboard::default();
        let (a, mut inbox) = board.connect(0, nodes(&[]));
        assert_eq!(
            board.dispatch(0, &event("sha", "u1")).unwrap_err(),
            DispatchError::NoWorker
        );
        board.serve_more(a, "sha");
        board.serve_more(a, "sha");
        assert_eq!(board.serving(0, "sha"), 1);
        let _waiter = board.dispatch(0, &event("sha", "u1")).unwrap();
        assert!(inbox.try_recv().unwrap().contains("u1"));
        board.broadcast(0, "hello all");
        board.broadcast(1, "another account");
        assert_eq!(inbox.try_recv().unwrap(), "hello all");
        assert!(inbox.try_recv().is_err());
        board.stop_serving(0, "sha");
        assert_eq!(board.serving(0, "sha"), 0);
        assert_eq!(
            board.dispatch(0, &event("sha", "u2")).unwrap_err(),
            DispatchError::NoWorker
        );
        board.disconnect(a);
    }

    #[test]
    fn a_closed_outbox_is_skipped() {
        let board = Switchboard::default();
        let (_a, inbox_a) = board.connect(1, nodes(&["hello"]));
        drop(inbox_a);
        let (_b, mut inbox_b) = board.connect(1, nodes(&["hello"]));
        let _waiter = board.dispatch(1, &event("hello", "u1")).unwrap();
        assert!(inbox_b.try_recv().is_ok());
        assert_eq!(board.connections(), 1);
    }
}
