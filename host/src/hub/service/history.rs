//! The kept event history: what each execute answered and what its sandbox
//! printed, written to the store off the event's path.
//!
//! An event is handed to [`History::record`], which never waits: a writer
//! task takes what has queued up, merges the two records of one event (the
//! caller's answer and the sandbox's run) and writes them in one
//! transaction (one commit per batch, not per event) that also prunes each
//! account it wrote to down to its [`Retention`] (by count only now and
//! then: see [`COUNT_EVERY`]); every account is pruned by age at the start
//! and each [`SWEEP`], idle or not. Reads ([`History::flush`] first) see every
//! event recorded before them, pruned exactly. When the store lags so far
//! behind that the queue is full, further events are counted and logged,
//! never waited for: a slow database must not slow the events themselves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use tokio::sync::{mpsc, oneshot};

use super::{Hub, HubError};
use crate::core::AccountId;
use crate::hub::store::{
    Caller, HistoryEvent, HistoryQuery, HistoryWrite, Prune, Retention, Store, unix_millis,
};
use crate::protocol::hosted::EventLogs;

/// Events waiting to be written at most.
const QUEUED: usize = 16_384;

/// Events written in one transaction at most.
const BATCH: usize = 1024;

/// How long the writer lets events gather after the first of a batch: at a
/// high rate, a few large transactions cost far less than many small ones.
const GATHER: Duration = Duration::from_millis(20);

/// How often the writer prunes every account by age, written to or not
/// (also at its start): otherwise an idle account's old events would stay
/// until its next event.
const SWEEP: Duration = Duration::from_secs(600);

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
    /// A record of an event; `paired` when the event's other record (the
    /// caller's answer, the sandbox's run) may come too.
    Event {
        event: Box<HistoryEvent>,
        paired: bool,
    },
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
            Self::Event { .. } => "Event",
            Self::Flush(_) => "Flush",
        })
    }
}

impl History {
    /// Starts the writer (on the current runtime) for `store`; with a
    /// retention of 0 events, none: nothing is kept.
    pub fn start(store: Arc<dyn Store>, retention: Retention) -> Self {
        Self::sweeping_every(SWEEP, store, retention)
    }

    /// [`start`](Self::start), pruning every account by age each `sweep`.
    fn sweeping_every(sweep: Duration, store: Arc<dyn Store>, retention: Retention) -> Self {
        let queue = (retention.events > 0).then(|| {
            let (queue, writes) = mpsc::channel(QUEUED);
            tokio::spawn(write(store, writes, retention, sweep));
            queue
        });
        Self {
            queue,
            lost: AtomicU64::new(0),
        }
    }

    /// Queues `event` for the store, a record whose event has no other;
    /// never waits.
    pub fn record(&self, event: HistoryEvent) {
        self.queue(event, false);
    }

    /// Queues `event`, of which the hub may record another part (see
    /// [`HistoryEvent::merge`]); never waits.
    pub fn record_part(&self, event: HistoryEvent) {
        self.queue(event, true);
    }

    fn queue(&self, mut event: HistoryEvent, paired: bool) {
        let Some(queue) = &self.queue else { return };
        if let Some(message) = &mut event.message {
            truncate(message, MESSAGE_BYTES);
        }
        let event = Box::new(event);
        if queue.try_send(Write::Event { event, paired }).is_err() {
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

async fn write(
    store: Arc<dyn Store>,
    mut writes: mpsc::Receiver<Write>,
    retention: Retention,
    every: Duration,
) {
    let mut batch: Vec<(HistoryEvent, bool)> = Vec::new();
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    let mut recent = Recent::default();
    let mut uncounted = Uncounted::default();
    // Before any write: what a listing shows is pruned from the start.
    prune_all_by_age(&*store, retention.max_age_s).await;
    let mut sweep = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            _ = sweep.tick() => {
                prune_all_by_age(&*store, retention.max_age_s).await;
                continue;
            }
            write = writes.recv() => match write {
                Some(write) => write,
                None => break,
            },
        };
        if matches!(first, Write::Event { .. }) {
            tokio::time::sleep(GATHER).await;
        }
        let mut next = Some(first);
        while let Some(write) = next.take() {
            match write {
                Write::Event { event, paired } => batch.push((*event, paired)),
                Write::Flush(done) => flushed.push(done),
            }
            if batch.len() < BATCH {
                next = writes.try_recv().ok();
            }
        }
        let events = batch.len();
        let (rows, keys) = merged(std::mem::take(&mut batch), &mut recent);
        // Rows added to each account (a merge adds none).
        let mut added: BTreeMap<AccountId, u64> = BTreeMap::new();
        for row in &rows {
            *added.entry(row.event.account).or_default() += u64::from(row.into.is_none());
        }
        let flushing = !flushed.is_empty();
        if flushing {
            for account in uncounted.behind() {
                added.entry(account).or_default();
            }
        }
        let mut prune = Vec::with_capacity(added.len());
        for (account, added) in added {
            // Each account keeps its own count, else the hub's.
            let keep = match store.limits(account).await {
                Ok(limits) => limits.history_events.unwrap_or(retention.events),
                Err(_) => retention.events,
            };
            let count = uncounted.add(account, added, keep) || flushing;
            if count {
                uncounted.counted(account);
            }
            prune.push(Prune {
                account,
                max_age_s: retention.max_age_s,
                newest: count.then_some(keep),
            });
        }
        if !rows.is_empty() || !prune.is_empty() {
            match store.record_history(rows, prune).await {
                Ok(ids) => {
                    for (key, id) in keys.into_iter().zip(ids) {
                        if let Some(key) = key {
                            recent.remember(key, id);
                        }
                    }
                }
                Err(err) => tracing::warn!(events, "cannot keep events in the history: {err}"),
            }
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Prunes the events of every account older than `max_age_s`.
async fn prune_all_by_age(store: &dyn Store, max_age_s: i64) {
    let pruned = async {
        let prune = store.account_ids().await?.into_iter().map(|account| Prune {
            account,
            max_age_s,
            newest: None,
        });
        store.record_history(Vec::new(), prune.collect()).await
    };
    if let Err(err) = pruned.await {
        tracing::warn!("cannot prune the event history by age: {err}");
    }
}

/// How many rows the writer may add to an account before counting its
/// history again, as a share of what the account keeps: counting walks
/// every row kept (milliseconds at 100,000), so an account holds up to a
/// sixteenth more than it keeps, for a while. A flush counts every account
/// behind, so what a reader sees is exact.
const COUNT_EVERY: u64 = 16;

/// Rows added to each account since its history was last counted; an
/// account not written to since the hub started is counted at its first
/// write (a hub stopped between two counts left it up to a sixteenth over).
#[derive(Default)]
struct Uncounted(std::collections::HashMap<AccountId, u64>);

impl Uncounted {
    /// Notes `added` rows; true when the account's history is due to be
    /// counted, of which it keeps `keep`.
    fn add(&mut self, account: AccountId, added: u64, keep: u64) -> bool {
        let since = self.0.entry(account).or_insert(u64::MAX);
        *since = since.saturating_add(added);
        *since >= (keep / COUNT_EVERY).max(1)
    }

    fn counted(&mut self, account: AccountId) {
        self.0.insert(account, 0);
    }

    /// The accounts with rows added since their last count.
    fn behind(&self) -> Vec<AccountId> {
        let behind = self.0.iter().filter(|(_, since)| **since > 0);
        behind.map(|(account, _)| *account).collect()
    }
}

/// An event's key in the history: its account and uuid (the hub's uuids
/// are parsed to save an allocation each).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Parsed(AccountId, u128),
    Text(AccountId, String),
}

impl Key {
    fn of(event: &HistoryEvent) -> Self {
        match uuid::Uuid::try_parse(&event.uuid) {
            Ok(uuid) => Self::Parsed(event.account, uuid.as_u128()),
            Err(_) => Self::Text(event.account, event.uuid.clone()),
        }
    }
}

/// Rows written lately with one record of their event, which may yet get
/// the other (the caller's answer after the sandbox's run, or the run of an
/// event whose caller gave up first): at most twice [`RECENT`], the older
/// half forgotten a generation at a time. An event's two records are a few
/// microseconds apart, so nearly all meet in one batch; these are the few
/// split across two.
#[derive(Default)]
struct Recent {
    now: std::collections::HashMap<Key, i64>,
    before: std::collections::HashMap<Key, i64>,
}

/// Rows [`Recent`] keeps in each generation.
const RECENT: usize = 16_384;

impl Recent {
    fn take(&mut self, key: &Key) -> Option<i64> {
        self.now.remove(key).or_else(|| self.before.remove(key))
    }

    fn remember(&mut self, key: Key, id: i64) {
        if self.now.len() >= RECENT {
            let fresh = std::collections::HashMap::with_capacity(RECENT);
            self.before = std::mem::replace(&mut self.now, fresh);
        }
        self.now.insert(key, id);
    }
}

/// A batch as rows to write: an event's two records merged into one, and a
/// record whose other half was written lately merged into that row. Beside
/// each row, the key to remember it by when it may yet get its other half.
fn merged(
    batch: Vec<(HistoryEvent, bool)>,
    recent: &mut Recent,
) -> (Vec<HistoryWrite>, Vec<Option<Key>>) {
    let mut rows: Vec<HistoryWrite> = Vec::with_capacity(batch.len());
    let mut keys: Vec<Option<Key>> = Vec::with_capacity(batch.len());
    let mut at: std::collections::HashMap<Key, usize> = std::collections::HashMap::new();
    for (event, paired) in batch {
        if !paired {
            rows.push(HistoryWrite { event, into: None });
            keys.push(None);
            continue;
        }
        let key = Key::of(&event);
        if let Some(&row) = at.get(&key) {
            rows[row].event.merge(event);
            keys[row] = None;
            continue;
        }
        let into = recent.take(&key);
        at.insert(key.clone(), rows.len());
        keys.push(into.is_none().then_some(key));
        rows.push(HistoryWrite { event, into });
    }
    (rows, keys)
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
        ran_here: bool,
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
        let record = HistoryEvent {
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
        };
        // An uploaded node's run is recorded too, to be merged with this.
        if ran_here {
            self.history.record_part(record);
        } else {
            self.history.record(record);
        }
    }

    /// Records what the sandbox of an uploaded node's event did.
    pub(super) fn record_run(&self, run: RunRecord<'_>) {
        let (outcome, message) = match run.finished {
            Ok(_) => ("ok".to_owned(), None),
            Err(failure) => (failure.code.clone(), Some(failure.message.clone())),
        };
        self.history.record_part(HistoryEvent {
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

    /// A store with the account `ann`, and its id.
    async fn store_with_ann() -> (Arc<dyn Store>, AccountId) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(None).unwrap());
        store.create_token("ann", false, None).await.unwrap();
        let account = store.account_id("ann").await.unwrap();
        (store, account)
    }

    /// Event `u{n}` of `account`'s node `n`, answered now.
    fn ok_event(account: AccountId, n: u32) -> HistoryEvent {
        HistoryEvent {
            account,
            node: "n".into(),
            uuid: format!("u{n}"),
            at_ms: unix_millis(),
            outcome: Some("ok".into()),
            ..HistoryEvent::default()
        }
    }

    #[tokio::test]
    async fn a_flush_sees_every_event_recorded_before_it() {
        let (store, account) = store_with_ann().await;
        let history = History::start(store.clone(), Retention::default());
        for n in 0..100 {
            history.record(ok_event(account, n));
        }
        history.flush().await;
        assert_eq!(store.history_count(account).await.unwrap(), 100);
        assert_eq!(history.lost(), 0);
    }

    #[tokio::test]
    async fn an_idle_accounts_old_events_go_without_a_new_event() {
        let (store, ann) = store_with_ann().await;
        store.create_token("bob", false, None).await.unwrap();
        let bob = store.account_id("bob").await.unwrap();
        // Events of two hours ago and of now, written by an earlier hub
        // that kept them longer.
        let aged = |account, n| HistoryEvent {
            at_ms: unix_millis() - 2 * 3600 * 1000,
            ..ok_event(account, n)
        };
        let writes = [aged(ann, 0), ok_event(ann, 1), aged(bob, 2)];
        let writes = writes.map(|event| HistoryWrite { event, into: None });
        store
            .record_history(writes.into(), Vec::new())
            .await
            .unwrap();
        let retention = Retention {
            events: 100,
            max_age_s: 3600,
        };
        // Neither account writes again: the sweep at the writer's start
        // prunes them both.
        let every = Duration::from_millis(50);
        let history = History::sweeping_every(every, store.clone(), retention);
        history.flush().await;
        assert_eq!(store.history_count(ann).await.unwrap(), 1);
        assert_eq!(store.history_count(bob).await.unwrap(), 0);
        // Aged while the hub runs (written here as if by another hub): the
        // next sweep prunes it, with no event and no listing to prompt it.
        let late = HistoryWrite {
            event: aged(bob, 3),
            into: None,
        };
        store.record_history(vec![late], Vec::new()).await.unwrap();
        assert_eq!(store.history_count(bob).await.unwrap(), 1);
        for _ in 0..200 {
            if store.history_count(bob).await.unwrap() == 0 {
                return;
            }
            tokio::time::sleep(every).await;
        }
        panic!("the aged event was still kept 10 s later");
    }

    #[test]
    fn an_account_is_counted_at_its_first_write_then_every_sixteenth_of_its_keep() {
        let mut uncounted = Uncounted::default();
        assert!(uncounted.add(1, 1, 160), "first write since the start");
        uncounted.counted(1);
        assert!(uncounted.behind().is_empty());
        assert!(!uncounted.add(1, 9, 160));
        assert_eq!(uncounted.behind(), [1]);
        assert!(uncounted.add(1, 1, 160), "ten rows, a sixteenth of 160");
        uncounted.counted(1);
        // An account that keeps fewer than sixteen is counted at every write.
        assert!(uncounted.add(2, 1, 3));
        uncounted.counted(2);
        assert!(uncounted.add(2, 1, 3));
    }

    #[tokio::test]
    async fn the_count_is_pruned_now_and_then_and_exactly_at_a_flush() {
        let (store, account) = store_with_ann().await;
        let retention = Retention {
            events: 160,
            max_age_s: 3600,
        };
        let history = History::start(store.clone(), retention);
        let record = |range: std::ops::Range<u32>| {
            for n in range {
                history.record(ok_event(account, n));
            }
        };
        // Waits (without a flush, which would count) until `uuid` is kept,
        // then answers how many are.
        let kept_once_written = async |uuid: &str| -> u64 {
            let newest = HistoryQuery {
                limit: 1,
                ..HistoryQuery::default()
            };
            for _ in 0..500 {
                let events = store.history(account, &newest).await.unwrap();
                if events.first().is_some_and(|event| event.uuid == uuid) {
                    return store.history_count(account).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{uuid} was not written within 5 s");
        };
        record(0..200);
        history.flush().await;
        assert_eq!(store.history_count(account).await.unwrap(), 160);
        record(200..205);
        assert_eq!(kept_once_written("u204").await, 165, "not counted yet");
        record(205..210);
        assert_eq!(kept_once_written("u209").await, 160, "a sixteenth: counted");
        record(210..213);
        assert_eq!(kept_once_written("u212").await, 163);
        history.flush().await;
        assert_eq!(store.history_count(account).await.unwrap(), 160);
    }

    fn event(uuid: &str, from_caller: bool) -> HistoryEvent {
        HistoryEvent {
            account: 1,
            node: "n".into(),
            uuid: uuid.into(),
            at_ms: unix_millis(),
            outcome: Some(if from_caller { "timeout" } else { "ok" }.into()),
            ran: (!from_caller).then(|| "ok".into()),
            caller: from_caller.then_some(7),
            fuel: (!from_caller).then_some(42),
            from_caller,
            ..HistoryEvent::default()
        }
    }

    #[test]
    fn an_events_two_records_become_one_row_in_either_order() {
        let uuid = uuid::Uuid::new_v4().to_string();
        for (first, second) in [(false, true), (true, false)] {
            let mut recent = Recent::default();
            let batch = vec![
                (event(&uuid, first), true),
                (event("other", false), true),
                (event(&uuid, second), true),
                (event("lone", true), false),
            ];
            let (rows, keys) = merged(batch, &mut recent);
            assert_eq!(rows.len(), 3);
            let row = &rows[0].event;
            assert_eq!(row.outcome.as_deref(), Some("timeout"), "the caller's wins");
            assert_eq!(row.ran.as_deref(), Some("ok"));
            assert_eq!((row.caller, row.fuel), (Some(7), Some(42)));
            assert!(rows.iter().all(|row| row.into.is_none()));
            assert_eq!(keys[0], None, "a whole event gets nothing more");
            assert!(keys[1].is_some(), "a lone part may");
            assert_eq!(
                keys[2], None,
                "a record with no other part is not kept in mind"
            );
        }
    }

    #[test]
    fn a_record_whose_other_half_was_written_goes_into_its_row() {
        let uuid = uuid::Uuid::new_v4().to_string();
        let mut recent = Recent::default();
        let (_, keys) = merged(vec![(event(&uuid, false), true)], &mut recent);
        recent.remember(keys[0].clone().unwrap(), 77);
        let (rows, keys) = merged(vec![(event(&uuid, true), true)], &mut recent);
        assert_eq!(rows[0].into, Some(77));
        assert_eq!(keys[0], None);
        // Once only, and another account's same uuid is another event.
        let mut elsewhere = event(&uuid, false);
        elsewhere.account = 2;
        let batch = vec![(event(&uuid, false), true), (elsewhere, true)];
        let (rows, _) = merged(batch, &mut recent);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|row| row.into.is_none()));
    }

    #[test]
    fn recent_rows_are_bounded() {
        let mut recent = Recent::default();
        for n in 0..(3 * RECENT) {
            recent.remember(Key::Text(1, n.to_string()), n as i64);
        }
        assert!(recent.now.len() + recent.before.len() <= 2 * RECENT);
        assert_eq!(
            recent.take(&Key::Text(1, "0".into())),
            None,
            "the oldest forgotten"
        );
        let newest = 3 * RECENT - 1;
        assert_eq!(
            recent.take(&Key::Text(1, newest.to_string())),
            Some(newest as i64)
        );
    }

    #[tokio::test]
    async fn records_split_across_batches_still_make_one_row() {
        let (store, account) = store_with_ann().await;
        let history = History::start(store.clone(), Retention::default());
        let uuid = uuid::Uuid::new_v4().to_string();
        let mut run = event(&uuid, false);
        run.account = account;
        let mut answer = event(&uuid, true);
        answer.account = account;
        history.record_part(run);
        history.flush().await;
        history.record_part(answer);
        history.flush().await;
        let all = HistoryQuery {
            limit: 10,
            ..HistoryQuery::default()
        };
        let kept = store.history(account, &all).await.unwrap();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].outcome.as_deref(), Some("timeout"));
        assert_eq!((kept[0].fuel, kept[0].caller), (Some(42), Some(7)));
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
