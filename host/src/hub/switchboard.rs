//! The switchboard: live worker connections, which nodes each serves, and
//! the events waiting for a reply (uuid → caller).
//!
//! Each event goes to exactly one connection of the caller's account that
//! serves the node, the one with the fewest events in flight. When a
//! connection goes, its callers are told at once. The pending map is
//! bounded, in all and per account: beyond [`MAX_PENDING`], or an account's
//! [`MAX_PENDING_PER_ACCOUNT`], a caller is refused as busy rather than
//! queued without limit, and a caller that stops waiting (it timed out, or
//! went away) gives its entry back: the [`Waiter`] it holds does so when
//! dropped.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use crate::protocol::hosted::EventLogs;
use crate::protocol::hurozo::{Event, Reply};

/// Events in flight across the hub before callers are refused as busy.
pub const MAX_PENDING: usize = 100_000;

/// Events of one account in flight before its callers are refused as busy:
/// a tenth of the hub's, so that one account alone cannot make every other
/// account busy.
pub const MAX_PENDING_PER_ACCOUNT: usize = MAX_PENDING / 10;

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
    /// When it connected (Unix seconds).
    connected_at: i64,
    /// When it last replied.
    replied: Option<std::time::Instant>,
}

/// What the dashboard shows of a worker connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    /// The connection's id.
    pub id: LinkId,
    /// The nodes it serves, by name.
    pub nodes: Vec<String>,
    /// Its events waiting for a reply.
    pub in_flight: usize,
    /// When it connected (Unix seconds).
    pub connected_at: i64,
    /// How long ago it last replied.
    pub replied_ago: Option<std::time::Duration>,
}

#[derive(Debug)]
struct Pending {
    link: LinkId,
    account: i64,
    answer: oneshot::Sender<Answer>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: LinkId,
    links: HashMap<LinkId, Link>,
    /// (account, node) → links serving it.
    serving: HashMap<(i64, String), Vec<LinkId>>,
    pending: HashMap<String, Pending>,
    /// Pending events by account (accounts with none are left out).
    pending_by_account: HashMap<i64, usize>,
}

impl Inner {
    /// Takes `uuid` out of the pending map, with its counts.
    fn take_pending(&mut self, uuid: &str) -> Option<Pending> {
        let pending = self.pending.remove(uuid)?;
        if let Some(link) = self.links.get_mut(&pending.link) {
            link.in_flight = link.in_flight.saturating_sub(1);
        }
        if let Some(count) = self.pending_by_account.get_mut(&pending.account) {
            *count -= 1;
            if *count == 0 {
                self.pending_by_account.remove(&pending.account);
            }
        }
        Some(pending)
    }
}

/// Routes events to workers and replies back to callers.
#[derive(Debug)]
pub struct Switchboard {
    inner: Mutex<Inner>,
    max_pending: usize,
    max_pending_per_account: usize,
}

impl Default for Switchboard {
    fn default() -> Self {
        Self::with_caps(MAX_PENDING, MAX_PENDING_PER_ACCOUNT)
    }
}

/// A caller's wait for the answer to one event. Dropping it (the caller
/// timed out or went away) forgets the event, so that its pending entry
/// and its place in the account's count are given back.
#[derive(Debug)]
pub struct Waiter<'a> {
    board: &'a Switchboard,
    uuid: String,
    answer: oneshot::Receiver<Answer>,
}

impl Waiter<'_> {
    /// The answer; `WorkerLost` if the switchboard dropped the event.
    pub async fn answer(&mut self) -> Answer {
        (&mut self.answer).await.unwrap_or(Answer::WorkerLost)
    }

    /// The answer if it has come.
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Result<Answer, oneshot::error::TryRecvError> {
        self.answer.try_recv()
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.board.abandon(&self.uuid);
    }
}

impl Switchboard {
    /// A switchboard that holds at most `total` events waiting for a reply,
    /// and `per_account` of one account.
    pub fn with_caps(total: usize, per_account: usize) -> Self {
        Self {
            inner: Mutex::default(),
            max_pending: total,
            max_pending_per_account: per_account,
        }
    }

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
                connected_at: crate::hub::store::unix_seconds(),
                replied: None,
            },
        );
        (id, inbox)
    }

    /// The connections `account` holds open, oldest first.
    pub fn links(&self, account: i64) -> Vec<LinkView> {
        let inner = self.lock();
        let mut links: Vec<LinkView> = inner
            .links
            .iter()
            .filter(|(_, link)| link.account == account)
            .map(|(id, link)| {
                let mut nodes: Vec<String> = link.nodes.iter().cloned().collect();
                nodes.sort();
                LinkView {
                    id: *id,
                    nodes,
                    in_flight: link.in_flight,
                    connected_at: link.connected_at,
                    replied_ago: link.replied.map(|at| at.elapsed()),
                }
            })
            .collect();
        links.sort_by_key(|link| link.id);
        links
    }

    /// The connections `account` holds open.
    pub fn links_of(&self, account: i64) -> usize {
        self.lock()
            .links
            .values()
            .filter(|link| link.account == account)
            .count()
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
            if let Some(pending) = inner.take_pending(&uuid) {
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
    pub fn dispatch(&self, account: i64, event: &Event) -> Result<Waiter<'_>, DispatchError> {
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
    ) -> Result<Waiter<'_>, DispatchError> {
        let uuid = uuid.to_owned();
        let mut inner = self.lock();
        let account_pending = inner.pending_by_account.get(&account).copied();
        if inner.pending.len() >= self.max_pending
            || account_pending.unwrap_or(0) >= self.max_pending_per_account
        {
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
                uuid.clone(),
                Pending {
                    link: chosen,
                    account,
                    answer,
                },
            );
            *inner.pending_by_account.entry(account).or_default() += 1;
            return Ok(Waiter {
                board: self,
                uuid,
                answer: waiter,
            });
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
        let pending = inner.take_pending(uuid).expect("checked above");
        if let Some(link) = inner.links.get_mut(&from) {
            link.replied = Some(std::time::Instant::now());
        }
        pending
            .answer
            .send(Answer::Reply(Box::new(reply), logs.map(Box::new)))
            .is_ok()
    }

    /// Forgets an event whose caller stopped waiting (a no-op once it was
    /// answered).
    fn abandon(&self, uuid: &str) {
        self.lock().take_pending(uuid);
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

    /// Events of `account` waiting for a reply.
    #[cfg(test)]
    pub fn pending_of(&self, account: i64) -> usize {
        self.lock()
            .pending_by_account
            .get(&account)
            .copied()
            .unwrap_or(0)
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

    #[test]
    fn a_caller_that_stops_waiting_gives_its_entry_back() {
        let board = Switchboard::default();
        let (a, _inbox) = board.connect(1, nodes(&["hello"]));
        let waiters: Vec<_> = (0..1_000)
            .map(|i| {
                board
                    .dispatch(1, &event("hello", &format!("u{i}")))
                    .unwrap()
            })
            .collect();
        assert_eq!((board.pending(), board.pending_of(1)), (1_000, 1_000));
        drop(waiters);
        assert_eq!((board.pending(), board.pending_of(1)), (0, 0));
        assert!(!board.answer(a, reply("hello", "u1")), "forgotten");
    }

    #[test]
    fn one_account_at_its_cap_is_busy_and_no_other() {
        let board = Switchboard::with_caps(10, 3);
        let _alice = board.connect(1, nodes(&["hello"]));
        let _bob = board.connect(2, nodes(&["hello"]));
        // Obeyed: up to the cap.
        let held: Vec<_> = (0..3)
            .map(|i| {
                board
                    .dispatch(1, &event("hello", &format!("a{i}")))
                    .unwrap()
            })
            .collect();
        // Violated: one more is busy, for this account only.
        assert_eq!(
            board.dispatch(1, &event("hello", "a3")).unwrap_err(),
            DispatchError::Busy
        );
        let bobs: Vec<_> = (0..3)
            .map(|i| {
                board
                    .dispatch(2, &event("hello", &format!("b{i}")))
                    .unwrap()
            })
            .collect();
        drop(held);
        assert!(
            board.dispatch(1, &event("hello", "a4")).is_ok(),
            "places freed"
        );
        drop(bobs);
        // The hub-wide cap still holds over all accounts.
        let board = Switchboard::with_caps(2, 2);
        let _alice = board.connect(1, nodes(&["hello"]));
        let _bob = board.connect(2, nodes(&["hello"]));
        let _a = board.dispatch(1, &event("hello", "a")).unwrap();
        let _b = board.dispatch(2, &event("hello", "b")).unwrap();
        assert_eq!(
            board.dispatch(2, &event("hello", "c")).unwrap_err(),
            DispatchError::Busy
        );
    }
}
