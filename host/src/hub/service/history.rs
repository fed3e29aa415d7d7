//! The kept event history: what each execute answered and what its sandbox
//! printed, written to the store off the event's path.
//!
//! An event is handed to [`History::record`], which never waits: a writer
//! task takes what has queued up and writes it in one transaction (one
//! write per batch, not per event), then prunes each account it wrote to
//! down to its [`Retention`]. Reads ([`History::flush`] first) see every
//! event recorded before them. When the store lags so far behind that the
//! queue is full, further events are counted and logged, never waited for:
//! a slow database must not slow the events themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value as Json, json};
use tokio::sync::{mpsc, oneshot};

use super::{Hub, HubError};
use crate::core::AccountId;
use crate::hub::store::{Caller, HistoryEvent, HistoryQuery, Retention, Store, unix_millis};
use crate::protocol::hosted::EventLogs;

/// Events waiting to be written at most.
const QUEUED: usize = 16_384;

/// Events written in one transaction at most.
const BATCH: usize = 1024;

/// How long the writer lets events gather after the first of a batch: at a
/// high rate, a few large transactions cost far less than many small ones.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// What an error message keeps in the history: a guest's message can be
/// as long as it likes, the store's row cannot.
pub const MESSAGE_BYTES: usize = 2048;

/// Events a listing returns at most.
pub const MAX_LISTED: u32 = 1000;

/// How much the hub keeps of uploads and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistorySettings {
    /// Versions kept of each uploaded node (the current one included).
    pub keep_versions: usize,
    /// Events kept per account.
    pub retention: Retention,
}

impl Default for HistorySettings {
    /// 5 versions per node; 1,000 events and 7 days per account.
    fn default() -> Self {
        Self {
            keep_versions: 5,
            retention: Retention::default(),
        }
    }
}

enum Write {
    Event(Box<HistoryEvent>),
    Flush(oneshot::Sender<()>),
}

/// The queue of events on their way to the store.
#[derive(Debug)]
pub struct History {
    /// `None` when the history is off (a retention of 0 events).
    queue: Option<mpsc::Sender<Write>>,
    lost: AtomicU64,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Event(_) => "Event",
            Self::Flush(_) => "Flush",
        })
    }
}

impl History {
    /// Starts the writer (on the current runtime) for `store`; with a
    /// retention of 0 events, none: nothing is kept.
    pub fn start(store: Arc<dyn Store>, retention: Retention) -> Self {
        let queue = (retention.events > 0).then(|| {
            let (queue, writes) = mpsc::channel(QUEUED);
            tokio::spawn(write(store, writes, retention));
            queue
        });
        Self {
            queue,
            lost: AtomicU64::new(0),
        }
    }

    /// Queues `event` for the store; never waits.
    pub fn record(&self, mut event: HistoryEvent) {
        let Some(queue) = &self.queue else { return };
        if let Some(message) = &mut event.message {
            truncate(message, MESSAGE_BYTES);
        }
        if queue.try_send(Write::Event(Box::new(event))).is_err() {
            let lost = self.lost.fetch_add(1, Ordering::Relaxed) + 1;
            if lost.is_power_of_two() {
                tracing::warn!(
                    lost,
                    "the event history is behind the events (the store is slow or down); \
                     events are not being kept"
                );
            }
        }
    }

    /// Waits until every event recorded before this call is written (or
    /// failed to be).
    pub async fn flush(&self) {
        let Some(queue) = &self.queue else { return };
        let (done, written) = oneshot::channel();
        if queue.send(Write::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Events not kept because the queue was full.
    #[cfg(test)]
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

async fn write(store: Arc<dyn Store>, mut writes: mpsc::Receiver<Write>, retention: Retention) {
    let mut batch: Vec<HistoryEvent> = Vec::new();
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = writes.recv().await {
        if matches!(first, Write::Event(_)) {
            tokio::time::sleep(GATHER).await;
        }
        let mut next = Some(first);
        while let Some(write) = next.take() {
            match write {
                Write::Event(event) => batch.push(*event),
                Write::Flush(done) => flushed.push(done),
            }
            if batch.len() < BATCH {
                next = writes.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let events = batch.len();
            let mut accounts: Vec<AccountId> = batch.iter().map(|event| event.account).collect();
            accounts.sort_unstable();
            accounts.dedup();
            if let Err(err) = store.record_history(std::mem::take(&mut batch)).await {
                tracing::warn!(events, "cannot keep events in the history: {err}");
            }
            // Each account keeps its own count, else the hub's.
            for account in accounts {
                let events = match store.limits(account).await {
                    Ok(limits) => limits.history_events.unwrap_or(retention.events),
                    Err(_) => retention.events,
                };
                let kept = Retention {
                    events,
                    ..retention
                };
                if let Err(err) = store.prune_history(account, kept).await {
                    tracing::warn!(account, "cannot prune the event history: {err}");
                }
            }
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

fn truncate(text: &mut String, max: usize) {
    if crate::sandbox::cut_to(text, max) {
        text.push('…');
    }
}

impl Hub {
    /// The caller's kept events, oldest first: of one node, newer than
    /// `after` (to follow), the newest `limit` (at most [`MAX_LISTED`]).
    pub(crate) async fn events(
        &self,
        caller: &Caller,
        node: Option<&str>,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<HistoryEvent>, HubError> {
        self.history.flush().await;
        let query = HistoryQuery {
            node: node.map(str::to_owned),
            after,
            limit: limit.unwrap_or(100).clamp(1, MAX_LISTED),
        };
        Ok(self.store.history(caller.account, &query).await?)
    }

    /// [`events`](Self::events) as the API shows them.
    pub(crate) async fn events_json(
        &self,
        caller: &Caller,
        node: Option<&str>,
        after: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Json, HubError> {
        let events = self.events(caller, node, after, limit).await?;
        let shown: Vec<Json> = events.iter().map(event_json).collect();
        Ok(json!({ "events": shown }))
    }

    /// Records what an execute answered its caller.
    pub(super) fn record_answer(
        &self,
        caller: &Caller,
        node: &str,
        uuid: &str,
        started: std::time::Instant,
        answer: Result<(), &HubError>,
    ) {
        let took = started.elapsed();
        let at_ms = unix_millis();
        let minute = at_ms.div_euclid(60_000);
        self.stats
            .record(caller.account, node, minute, took, answer.is_ok());
        // Refusals that shed load are counted, not kept: a client that
        // hammers a full lane must not make the hub write for each refusal.
        if matches!(answer, Err(HubError::QueueFull(_) | HubError::Busy)) {
            return;
        }
        self.history.record(HistoryEvent {
            account: caller.account,
            node: node.to_owned(),
            uuid: uuid.to_owned(),
            at_ms,
            caller: Some(caller.token),
            outcome: Some(answer.map_or_else(|err| err.code().to_owned(), |()| "ok".to_owned())),
            message: answer.err().map(ToString::to_string),
            duration_us: Some(took.as_micros().min(i64::MAX as u128) as i64),
            from_caller: true,
            ..HistoryEvent::default()
        });
    }

    /// Records what the sandbox of an uploaded node's event did.
    pub(super) fn record_run(&self, run: RunRecord<'_>) {
        let (outcome, message) = match run.finished {
            Ok(_) => ("ok".to_owned(), None),
            Err(failure) => (failure.code.clone(), Some(failure.message.clone())),
        };
        self.history.record(HistoryEvent {
            account: run.account,
            node: run.node.to_owned(),
            uuid: run.uuid.to_owned(),
            at_ms: unix_millis(),
            outcome: Some(outcome.clone()),
            ran: Some(outcome),
            message,
            fuel: run.fuel.map(|fuel| fuel.min(i64::MAX as u64) as i64),
            version: Some(run.version),
            logs: serde_json::to_string(&run.logs).ok(),
            ..HistoryEvent::default()
        });
    }
}

/// What the sandbox of one event did, for [`Hub::record_run`].
pub(super) struct RunRecord<'a> {
    pub account: crate::core::AccountId,
    pub node: &'a str,
    pub uuid: &'a str,
    pub version: i64,
    pub finished: &'a Result<Map<String, Json>, crate::core::EventFailure>,
    pub fuel: Option<u64>,
    pub logs: EventLogs,
}

/// One kept event as the API shows it: its captured streams inline.
pub fn event_json(event: &HistoryEvent) -> Json {
    let mut shown = serde_json::to_value(event).unwrap_or_default();
    let logs: Option<EventLogs> = event
        .logs
        .as_deref()
        .and_then(|logs| serde_json::from_str(logs).ok());
    if let (Some(logs), Some(shown)) = (logs, shown.as_object_mut())
        && let Ok(Json::Object(streams)) = serde_json::to_value(logs)
    {
        shown.extend(streams);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::store::SqliteStore;

    #[test]
    fn long_messages_are_cut_at_a_character() {
        let mut text = "é".repeat(2000);
        truncate(&mut text, MESSAGE_BYTES);
        assert!(text.len() <= MESSAGE_BYTES + '…'.len_utf8());
        assert!(text.ends_with('…'));
        let mut short = "fine".to_owned();
        truncate(&mut short, MESSAGE_BYTES);
        assert_eq!(short, "fine");
    }

    #[tokio::test]
    async fn a_flush_sees_every_event_recorded_before_it() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(None).unwrap());
        store.create_token("ann", false, None).await.unwrap();
        let account = store.account_id("ann").await.unwrap();
        let history = History::start(store.clone(), Retention::default());
        for n in 0..100 {
            history.record(HistoryEvent {
                account,
                node: "n".into(),
                uuid: format!("u{n}"),
                at_ms: unix_millis(),
                outcome: Some("ok".into()),
                ..HistoryEvent::default()
            });
        }
        history.flush().await;
        assert_eq!(store.history_count(account).await.unwrap(), 100);
        assert_eq!(history.lost(), 0);
    }

    /// The bytes the database's live pages take (its write-ahead log,
    /// reused in place between checkpoints, is not data).
    fn database_bytes(dir: &std::path::Path) -> u64 {
        let db = rusqlite::Connection::open(dir.join("hub.sqlite3")).unwrap();
        let pragma = |name: &str| -> u64 {
            db.pragma_query_value(None, name, |row| row.get::<_, i64>(0))
                .unwrap() as u64
        };
        (pragma("page_count") - pragma("freelist_count")) * pragma("page_size")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_chatty_events_keep_the_store_within_the_retention() {
        use crate::hub::service::{HubConfig, UploadAnswer};
        use crate::protocol::hurozo::ExecuteRequest;
        let dir = std::env::temp_dir().join(format!("node-host-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = HubConfig::for_tests(Some(dir.clone()));
        config.history.retention = Retention {
            events: 200,
            max_age_s: 3600,
        };
        let hub = Hub::open(&config).await.unwrap();
        let token = hub
            .store()
            .create_token("talker", false, None)
            .await
            .unwrap();
        let caller = hub.authenticate(Some(&token.token)).await.unwrap();
        let chatty = crate::sandbox::bench_support::guest_example_bytes("chatty");
        let answer = hub.upload(&caller, chatty.into()).await.unwrap();
        assert!(matches!(answer, UploadAnswer::Ready { .. }), "{answer:?}");
        // Each event prints and logs 1 KB: 2 KB or so kept per event.
        let line = "x".repeat(1000);
        let mut sizes = Vec::new();
        for round in 0..100 {
            let events = (0..100).map(|_| {
                let mut inputs = serde_json::Map::new();
                inputs.insert("line".into(), line.clone().into());
                hub.execute(
                    &caller,
                    "chatty",
                    ExecuteRequest {
                        inputs,
                        timeout_ms: None,
                    },
                )
            });
            for answer in futures_util::future::join_all(events).await {
                assert!(answer.is_ok(), "{answer:?}");
            }
            if round % 25 == 24 {
                hub.history.flush().await;
                sizes.push(database_bytes(&dir));
            }
        }
        hub.history.flush().await;
        assert_eq!(
            hub.store().history_count(caller.account).await.unwrap(),
            200
        );
        assert_eq!(hub.history.lost(), 0, "none dropped on the way");
        let kept = hub
            .events(&caller, Some("chatty"), None, Some(1000))
            .await
            .unwrap();
        assert_eq!(kept.len(), 200);
        assert!(kept.iter().all(|event| {
            event
                .logs
                .as_deref()
                .is_some_and(|logs| logs.contains(&line))
        }));
        // Without the retention 10,000 events would be over 20 MB; the
        // store stays at what 200 of them and SQLite's log take.
        let (first, last) = (sizes[0], *sizes.last().unwrap());
        assert!(
            last < 8 << 20,
            "the database grew to {last} bytes: {sizes:?}"
        );
        assert!(
            last <= first + (1 << 20),
            "the database keeps growing: {sizes:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
