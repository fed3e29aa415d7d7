//! Hosted nodes: components accounts upload, which the hub runs itself.
//!
//! An upload is stored by its sha256 ([`Blobs`]), compiled once (the
//! artifact is cached on disk, so a restarted hub loads it in
//! milliseconds) and installed under the node's name in its account. A new
//! upload of the same name replaces the old one atomically: events already
//! running keep the version they started with.
//!
//! Each account has a lane that admits at most `concurrency` of its events
//! at once and queues at most `queue` more; beyond that an execute is
//! refused, so one account's flood waits in its own lane and never in
//! another's.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::Notify;

use super::store::{LimitSettings, UploadedNode};
use crate::hub::blobs::Blobs;
use crate::protocol::hosted::EventLogs;
use crate::sandbox::value::info_to_json;
use crate::sandbox::{
    DEFAULT_CAPTURE_BYTES, DEFAULT_FUEL, DEFAULT_MEMORY_BYTES, DEFAULT_OUTPUT_BYTES,
    DEFAULT_TIMEOUT, Limits, LoadError, NodeComponent, Sandbox, SandboxConfig,
};

/// The largest component an upload may carry.
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;

/// How long an upload's compile may take before it is given up.
pub const COMPILE_TIME_LIMIT: Duration = Duration::from_secs(300);

/// How long an upload request waits for its compile before answering
/// `compiling` with a status URL, unless `node-host hub --upload-wait` says
/// otherwise. A small node compiles and is
/// pre-initialized in about a second on the build machine (two compiles);
/// this leaves room for a busy machine, while a Python or JavaScript node
/// (minutes) still gets its answer at once.
pub const UPLOAD_READY_WAIT: Duration = Duration::from_secs(10);

/// An account's events running at once, unless its limits say otherwise.
pub const DEFAULT_CONCURRENCY: u64 = 4;

/// An account's events waiting to run, unless its limits say otherwise.
pub const DEFAULT_QUEUE: u64 = 64;

/// Hosted events running at once across all accounts: well below the
/// sandbox's pool of instance slots.
pub const MAX_RUNNING: usize = 256;

/// How long a call whose account's lane is full waits for a place before it
/// is refused with 429. A place that frees within it takes the call; and a
/// client that resends every refusal at once gets at most one answer per
/// this long per connection, so it cannot keep the hub's front end busy
/// while other accounts' calls wait behind its refusals (measured: the
/// fairness bench's flood of immediate resends held the hub's runtime
/// thread at ~100% of a core).
pub const FULL_LANE_WAIT: Duration = Duration::from_millis(50);

pub use crate::protocol::hosted::DEMOTE_AFTER;

/// What the hub keeps of an uploaded node's recent events' output: the
/// newest events, until their logs reach this many bytes.
pub const LOG_BYTES_PER_NODE: usize = 1 << 20;

/// One finished event of an uploaded node, as `GET /api/nodes/{name}/logs`
/// shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoggedEvent {
    /// The event's uuid (the execute answer's).
    pub uuid: String,
    /// When it finished, in seconds since the Unix epoch.
    pub finished_at: i64,
    /// `ok` or the error code.
    pub outcome: String,
    /// What it printed and logged.
    #[serde(flatten)]
    pub logs: EventLogs,
}

#[derive(Debug, Default)]
struct NodeLog {
    events: VecDeque<LoggedEvent>,
    bytes: usize,
}

/// An uploaded node, compiled and ready.
#[derive(Debug)]
pub struct HostedNode {
    /// The loaded component.
    pub component: Arc<NodeComponent>,
    /// What the store keeps about it.
    pub record: UploadedNode,
}

impl HostedNode {
    /// The node's JSON description in the API.
    pub fn to_json(&self) -> Json {
        json!({
            "name": self.record.name,
            "sha256": self.record.sha256,
            "size": self.record.size,
            "uploaded_at": self.record.uploaded_at,
            "status": "ready",
            "info": info_to_json(self.component.info()),
        })
    }
}

/// Where an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadStatus {
    /// Still compiling.
    Compiling,
    /// Installed as this node.
    Ready(String),
    /// Refused: a code and what is wrong.
    Failed(String, String),
}

/// The limits an account's events run under, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLimits {
    /// Per event.
    pub event: Limits,
    /// Events running at once.
    pub concurrency: u64,
    /// Events waiting to run.
    pub queue: u64,
}

impl AccountLimits {
    /// Fills the unset fields of `settings` with the defaults.
    pub fn from_settings(settings: &LimitSettings) -> Self {
        let event = Limits {
            fuel: settings.fuel.unwrap_or(DEFAULT_FUEL),
            memory_bytes: settings
                .memory_bytes
                .map_or(DEFAULT_MEMORY_BYTES, |bytes| bytes as usize),
            timeout: settings
                .timeout_ms
                .map_or(DEFAULT_TIMEOUT, Duration::from_millis),
            output_bytes: settings
                .output_bytes
                .map_or(DEFAULT_OUTPUT_BYTES, |bytes| bytes as usize),
            capture_bytes: settings
                .log_bytes
                .map_or(DEFAULT_CAPTURE_BYTES, |bytes| bytes as usize),
            demote_after: Some(DEMOTE_AFTER),
        };
        Self {
            event,
            concurrency: settings.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1),
            queue: settings.queue.unwrap_or(DEFAULT_QUEUE),
        }
    }

    /// The JSON form shown by `GET /api/nodes/{name}`.
    pub fn to_json(&self) -> Json {
        json!({
            "fuel": self.event.fuel,
            "memory_bytes": self.event.memory_bytes,
            "timeout_ms": self.event.timeout.as_millis() as u64,
            "output_bytes": self.event.output_bytes,
            "log_bytes": self.event.capture_bytes,
            "concurrency": self.concurrency,
            "queue": self.queue,
        })
    }
}

/// An execute refused because the account's lane is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this account already has {running} events running (its concurrency limit) and {waiting} \
     waiting (its queue limit, {queue}); retry later, or raise them with \
     `node-host hub account set NAME --concurrency N --queue N`"
)]
pub struct QueueFull {
    /// Events running.
    pub running: u64,
    /// Events waiting.
    pub waiting: u64,
    /// The queue limit.
    pub queue: u64,
}

#[derive(Debug, Default)]
struct LaneState {
    running: u64,
    waiting: u64,
}

/// One account's admission control.
#[derive(Debug, Default)]
struct Lane {
    state: Mutex<LaneState>,
    freed: Notify,
}

impl Lane {
    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The right to run one event; gives the slot back when dropped.
#[derive(Debug)]
pub struct Permit {
    lane: Arc<Lane>,
    /// The hub-wide slot, held until the event ends.
    _running: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.lane.lock().running -= 1;
        self.lane.freed.notify_one();
    }
}

/// A place in the queue; given back when dropped (the caller gave up).
struct Queued<'a> {
    lane: &'a Lane,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.lane.lock().waiting -= 1;
        // A notification this waiter consumed is passed on by tokio.
    }
}

/// The hub's hosted nodes, their uploads and the accounts' lanes.
pub struct Hosted {
    blobs: Blobs,
    compiled_dir: PathBuf,
    sandbox_config: SandboxConfig,
    sandbox: OnceLock<Result<Sandbox, String>>,
    nodes: Mutex<HashMap<(i64, String), Arc<HostedNode>>>,
    uploads: Mutex<HashMap<(i64, String), UploadStatus>>,
    lanes: Mutex<HashMap<i64, Arc<Lane>>>,
    running: Arc<tokio::sync::Semaphore>,
    logs: Mutex<HashMap<(i64, String), NodeLog>>,
}

impl std::fmt::Debug for Hosted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosted")
            .field("blobs", &self.blobs)
            .field("nodes", &self.nodes().len())
            .finish_non_exhaustive()
    }
}

impl Hosted {
    /// Opens the component store under `data_dir` (`components/`, with
    /// compiled artifacts in `compiled/`), or a temporary one.
    pub fn open(data_dir: Option<&Path>, sandbox: SandboxConfig) -> std::io::Result<Self> {
        let blobs = Blobs::open(data_dir.map(|dir| dir.join("components")).as_deref())?;
        let compiled_dir = match data_dir {
            Some(dir) => dir.join("compiled"),
            None => blobs.dir().join("compiled"),
        };
        Ok(Self {
            blobs,
            compiled_dir,
            sandbox_config: sandbox,
            sandbox: OnceLock::new(),
            nodes: Mutex::default(),
            uploads: Mutex::default(),
            lanes: Mutex::default(),
            running: Arc::new(tokio::sync::Semaphore::new(MAX_RUNNING)),
            logs: Mutex::default(),
        })
    }

    /// The component store.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The sandbox hosted nodes run in, made on first use (a hub that hosts
    /// nothing never reserves the pooling allocator's address space).
    pub fn sandbox(&self) -> Result<&Sandbox, String> {
        self.sandbox
            .get_or_init(|| {
                Sandbox::new(SandboxConfig {
                    cache_dir: Some(self.compiled_dir.clone()),
                    ..self.sandbox_config.clone()
                })
                .map_err(|err| err.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Loads a component (blocking: compiles unless the artifact is cached).
    /// The flag says whether it had to compile.
    pub fn load(&self, bytes: &[u8]) -> Result<(NodeComponent, bool), LoadError> {
        let sandbox = self
            .sandbox()
            .map_err(|err| LoadError::Invalid(format!("the hub cannot run components: {err}")))?;
        let mut compiled = false;
        let node = sandbox.load_with_progress(bytes, &mut || compiled = true)?;
        Ok((node, compiled))
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, String), Arc<HostedNode>>> {
        self.nodes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, String), UploadStatus>> {
        self.uploads
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The account's node `name`, if it uploaded one.
    pub fn get(&self, account: i64, name: &str) -> Option<Arc<HostedNode>> {
        self.nodes().get(&(account, name.to_owned())).cloned()
    }

    /// The account's hosted nodes, sorted by name.
    pub fn list(&self, account: i64) -> Vec<Arc<HostedNode>> {
        let mut listed: Vec<_> = self
            .nodes()
            .iter()
            .filter(|((owner, _), _)| *owner == account)
            .map(|(_, node)| node.clone())
            .collect();
        listed.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        listed
    }

    /// Installs `node` for `account`, returning the version it replaced.
    pub fn install(&self, account: i64, node: HostedNode) -> Option<Arc<HostedNode>> {
        self.nodes()
            .insert((account, node.record.name.clone()), Arc::new(node))
    }

    /// Removes the account's node `name`.
    pub fn remove(&self, account: i64, name: &str) -> Option<Arc<HostedNode>> {
        self.nodes().remove(&(account, name.to_owned()))
    }

    fn node_logs(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, String), NodeLog>> {
        self.logs
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Keeps what an event of the account's node `name` printed and logged,
    /// dropping the oldest events beyond [`LOG_BYTES_PER_NODE`] (the newest
    /// is always kept: its size is bounded by the account's log limit).
    pub fn record_logs(&self, account: i64, name: &str, event: LoggedEvent) {
        let mut logs = self.node_logs();
        let log = logs.entry((account, name.to_owned())).or_default();
        log.bytes += event.logs.size();
        log.events.push_back(event);
        while log.bytes > LOG_BYTES_PER_NODE && log.events.len() > 1 {
            let dropped = log.events.pop_front().expect("more than one event");
            log.bytes -= dropped.logs.size();
        }
    }

    /// The kept events of the account's node `name`, oldest first.
    pub fn logs(&self, account: i64, name: &str) -> Vec<LoggedEvent> {
        self.node_logs()
            .get(&(account, name.to_owned()))
            .map(|log| log.events.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets the logs of the account's node `name`.
    pub fn forget_logs(&self, account: i64, name: &str) {
        self.node_logs().remove(&(account, name.to_owned()));
    }

    /// Removes the compiled artifacts of the component `sha256`.
    pub fn forget_compiled(&self, sha256: &str) {
        crate::sandbox::cache::CompileCache::remove_component(&self.compiled_dir, sha256);
    }

    /// True when some account's installed node uses the component `sha256`.
    pub fn in_use(&self, sha256: &str) -> bool {
        self.nodes()
            .values()
            .any(|node| node.record.sha256 == sha256)
    }

    /// The distinct components of the installed nodes, by sha256.
    pub fn components(&self) -> Vec<String> {
        let mut components: Vec<String> = self
            .nodes()
            .values()
            .map(|node| node.record.sha256.clone())
            .collect();
        components.sort();
        components.dedup();
        components
    }

    /// Where the account's upload of `sha256` stands.
    pub fn upload_status(&self, account: i64, sha256: &str) -> Option<UploadStatus> {
        self.uploads().get(&(account, sha256.to_owned())).cloned()
    }

    /// Records where the account's upload of `sha256` stands; returns the
    /// status it had.
    pub fn set_upload_status(
        &self,
        account: i64,
        sha256: &str,
        status: UploadStatus,
    ) -> Option<UploadStatus> {
        self.uploads().insert((account, sha256.to_owned()), status)
    }

    fn lane(&self, account: i64) -> Arc<Lane> {
        self.lanes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .entry(account)
            .or_default()
            .clone()
    }

    /// Waits for a slot in the account's lane: at once while fewer than
    /// `limits.concurrency` of its events run, in the queue while fewer than
    /// `limits.queue` wait, refused beyond (after [`FULL_LANE_WAIT`] without
    /// a place); then for one of the hub's [`MAX_RUNNING`]. Dropping the
    /// future gives up the place in the queue.
    pub async fn admit(&self, account: i64, limits: &AccountLimits) -> Result<Permit, QueueFull> {
        let lane = self.lane(account);
        let mut queued = None;
        let mut refuse_at = None;
        loop {
            let freed = lane.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let admitted = {
                let mut state = lane.lock();
                if state.running < limits.concurrency {
                    state.running += 1;
                    true
                } else {
                    if queued.is_none() {
                        if state.waiting < limits.queue {
                            state.waiting += 1;
                            queued = Some(Queued { lane: &lane });
                        } else {
                            let now = tokio::time::Instant::now();
                            let refuse_at = *refuse_at.get_or_insert(now + FULL_LANE_WAIT);
                            if now >= refuse_at {
                                return Err(QueueFull {
                                    running: state.running,
                                    waiting: state.waiting,
                                    queue: limits.queue,
                                });
                            }
                        }
                    }
                    false
                }
            };
            if admitted {
                drop(queued);
                let mut permit = Permit {
                    lane: lane.clone(),
                    _running: None,
                };
                // The hub-wide cap, after the account's own.
                permit._running = self.running.clone().acquire_owned().await.ok();
                return Ok(permit);
            }
            match (&queued, refuse_at) {
                // Not in the queue (it is full): look again when a place
                // frees, or at the refusal time at the latest.
                (None, Some(refuse_at)) => {
                    let _ = tokio::time::timeout_at(refuse_at, freed).await;
                }
                _ => freed.await,
            }
        }
    }

    /// Events of the account running and waiting in its lane right now.
    pub fn lane_load(&self, account: i64) -> (u64, u64) {
        let lane = self.lane(account);
        let state = lane.lock();
        (state.running, state.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrency: u64, queue: u64) -> AccountLimits {
        AccountLimits::from_settings(&LimitSettings {
            concurrency: Some(concurrency),
            queue: Some(queue),
            ..LimitSettings::default()
        })
    }

    #[tokio::test]
    async fn a_lane_runs_its_concurrency_queues_its_queue_and_refuses_beyond() {
        let hosted = Hosted::open(None, SandboxConfig::default()).unwrap();
        let limits = limits(1, 1);
        let first = hosted.admit(1, &limits).await.unwrap();
        let hosted = Arc::new(hosted);
        let waiting = {
            let hosted = hosted.clone();
            let limits = limits.clone();
            tokio::spawn(async move { hosted.admit(1, &limits).await.map(drop) })
        };
        for _ in 0..100 {
            if hosted.lane_load(1) == (1, 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(hosted.lane_load(1), (1, 1));
        let refused = hosted.admit(1, &limits).await.unwrap_err();
        assert_eq!((refused.running, refused.waiting, refused.queue), (1, 1, 1));
        assert!(refused.to_string().contains("--queue"));
        // Another account's lane is untouched by this one's.
        drop(hosted.admit(2, &limits).await.unwrap());
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(hosted.lane_load(1), (0, 0));
    }

    #[tokio::test]
    async fn a_full_lane_refuses_only_after_waiting_for_a_place() {
        let hosted = Hosted::open(None, SandboxConfig::default()).unwrap();
        let limits = limits(1, 0);
        let running = hosted.admit(1, &limits).await.unwrap();
        // Violated: no place frees, so the call is refused once the wait is over.
        let asked = tokio::time::Instant::now();
        let refused = hosted.admit(1, &limits).await.unwrap_err();
        assert!(asked.elapsed() >= FULL_LANE_WAIT, "{:?}", asked.elapsed());
        assert_eq!((refused.running, refused.waiting), (1, 0));
        // Obeyed: a place that frees within the wait takes the call.
        let hosted = Arc::new(hosted);
        let waiting = {
            let (hosted, limits) = (hosted.clone(), limits.clone());
            tokio::spawn(async move { hosted.admit(1, &limits).await.map(drop) })
        };
        tokio::time::sleep(FULL_LANE_WAIT / 5).await;
        drop(running);
        waiting
            .await
            .unwrap()
            .expect("admitted once the place freed");
        assert_eq!(hosted.lane_load(1), (0, 0));
    }

    #[tokio::test]
    async fn giving_up_in_the_queue_frees_the_place() {
        let hosted = Hosted::open(None, SandboxConfig::default()).unwrap();
        let limits = limits(1, 1);
        let _running = hosted.admit(1, &limits).await.unwrap();
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), hosted.admit(1, &limits)).await;
        assert!(gave_up.is_err());
        assert_eq!(hosted.lane_load(1), (1, 0));
    }

    #[test]
    fn logs_keep_the_newest_events_within_the_budget() {
        let hosted = Hosted::open(None, SandboxConfig::default()).unwrap();
        let event = |uuid: &str, bytes: usize| LoggedEvent {
            uuid: uuid.into(),
            finished_at: 0,
            outcome: "ok".into(),
            logs: EventLogs {
                stdout: "x".repeat(bytes),
                ..EventLogs::default()
            },
        };
        hosted.record_logs(1, "hello", event("a", LOG_BYTES_PER_NODE / 2));
        hosted.record_logs(1, "hello", event("b", LOG_BYTES_PER_NODE / 2));
        hosted.record_logs(1, "hello", event("c", 10));
        let kept: Vec<String> = hosted
            .logs(1, "hello")
            .into_iter()
            .map(|e| e.uuid)
            .collect();
        assert_eq!(kept, ["b", "c"]);
        hosted.record_logs(1, "hello", event("huge", 2 * LOG_BYTES_PER_NODE));
        let kept: Vec<String> = hosted
            .logs(1, "hello")
            .into_iter()
            .map(|e| e.uuid)
            .collect();
        assert_eq!(kept, ["huge"], "the newest stays whatever its size");
        assert!(hosted.logs(2, "hello").is_empty(), "another account's");
        hosted.forget_logs(1, "hello");
        assert!(hosted.logs(1, "hello").is_empty());
    }

    #[test]
    fn unset_limits_are_the_defaults() {
        let limits = AccountLimits::from_settings(&LimitSettings {
            timeout_ms: Some(250),
            ..LimitSettings::default()
        });
        assert_eq!(limits.event.timeout, Duration::from_millis(250));
        assert_eq!(limits.event.fuel, DEFAULT_FUEL);
        assert_eq!(
            (limits.concurrency, limits.queue),
            (DEFAULT_CONCURRENCY, DEFAULT_QUEUE)
        );
        assert_eq!(limits.to_json()["timeout_ms"], 250);
    }
}
