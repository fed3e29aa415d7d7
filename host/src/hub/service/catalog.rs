//! The catalog of uploaded nodes: components accounts upload, which the
//! hub runs (itself, or on its hosted workers).
//!
//! An upload is stored by its sha256 ([`Blobs`]), compiled once (the
//! artifact is cached on disk, so a restarted hub loads it in
//! milliseconds) and installed under the node's name in its account. A new
//! upload of the same name replaces the old one atomically: events already
//! running keep the version they started with.
//!
//! Each account's events are admitted through its lane (`core::Lanes`:
//! at most `concurrency` running and `queue` waiting) and run by the hub's
//! runner, so one account's flood waits in its own lane and never in
//! another's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::core::{AccountId, LaneLimits};
use crate::hub::store::{Blobs, FsBlobs, LimitSettings, UploadedNode};
use crate::sandbox::http::HttpGrant;
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

/// Catalog events running at once across all accounts (the hub's executor
/// pool): well below the sandbox's pool of instance slots.
pub const MAX_RUNNING: usize = 256;

pub use crate::protocol::hosted::DEMOTE_AFTER;

/// An uploaded node, compiled and ready.
#[derive(Debug)]
pub struct InstalledNode {
    /// The loaded component.
    pub component: Arc<NodeComponent>,
    /// What the store keeps about it.
    pub record: UploadedNode,
}

impl InstalledNode {
    /// The node's JSON description in the API.
    pub fn to_json(&self) -> Json {
        json!({
            "name": self.record.name,
            "sha256": self.record.sha256,
            "size": self.record.size,
            "uploaded_at": self.record.uploaded_at,
            "version": self.record.version,
            "language": self.component.language(),
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
    /// Versions kept of each node (`None`: the hub's `--keep-versions`).
    pub keep_versions: Option<u64>,
    /// Events kept in the history (`None`: the hub's `--history-events`).
    pub history_events: Option<u64>,
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
            keep_versions: settings.keep_versions,
            history_events: settings.history_events,
        }
    }

    /// The account's lane on one of `hubs` hubs sharing the account's
    /// limits: each takes its share, rounded up, so the cluster runs at most
    /// `hubs - 1` more events at once (and queues at most `hubs - 1` more)
    /// than the account's limit, never fewer.
    pub fn lane(&self, hubs: usize) -> LaneLimits {
        let hubs = hubs.max(1) as u64;
        LaneLimits {
            concurrency: self.concurrency.div_ceil(hubs).max(1),
            queue: self.queue.div_ceil(hubs),
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
            // null: the hub's own default (--keep-versions, --history-events).
            "keep_versions": self.keep_versions,
            "history_events": self.history_events,
        })
    }
}

/// Settled uploads whose status (`GET /api/uploads/SHA256`) an account
/// keeps; older ones are forgotten (404 `unknown_upload`).
pub const KEPT_UPLOAD_STATUSES: usize = 100;

/// The uploaded nodes of every account, their uploads and their logs.
pub struct Catalog {
    blobs: Arc<dyn Blobs>,
    compiled_dir: PathBuf,
    sandbox_config: SandboxConfig,
    sandbox: OnceLock<Result<Sandbox, String>>,
    nodes: Mutex<HashMap<(AccountId, String), Arc<InstalledNode>>>,
    /// Where each upload stands, with the order it was set in.
    uploads: Mutex<HashMap<(AccountId, String), (UploadStatus, u64)>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("blobs", &self.blobs)
            .field("nodes", &self.nodes().len())
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Opens the component store at `components_dir`, else under
    /// `data_dir` (`components/`), else a temporary one; compiled artifacts
    /// go in `data_dir` (`compiled/`), never in a shared directory.
    pub fn open(
        data_dir: Option<&Path>,
        components_dir: Option<&Path>,
        sandbox: SandboxConfig,
    ) -> std::io::Result<Self> {
        let components = components_dir
            .map(Path::to_owned)
            .or_else(|| data_dir.map(|dir| dir.join("components")));
        let blobs = FsBlobs::open(components.as_deref())?;
        let compiled_dir = match data_dir {
            Some(dir) => dir.join("compiled"),
            None => blobs.dir().join("compiled"),
        };
        let blobs = Arc::new(blobs);
        Ok(Self {
            blobs,
            compiled_dir,
            sandbox_config: sandbox,
            sandbox: OnceLock::new(),
            nodes: Mutex::default(),
            uploads: Mutex::default(),
        })
    }

    /// The component store.
    pub fn blobs(&self) -> &Arc<dyn Blobs> {
        &self.blobs
    }

    /// The sandbox uploaded nodes run in, made on first use (a hub that hosts
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
        // Outbound HTTP is granted by account once the node's name is known.
        let mut node = sandbox.load_with(bytes, HttpGrant::Later, &mut || compiled = true)?;
        // Only the hub shows it, so only the hub reads it (one more pass
        // over the bytes).
        node.language = crate::sandbox::language_of(bytes);
        Ok((node, compiled))
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, HashMap<(AccountId, String), Arc<InstalledNode>>> {
        self.nodes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn uploads(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(AccountId, String), (UploadStatus, u64)>> {
        self.uploads
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The account's node `name`, if it uploaded one.
    pub fn get(&self, account: AccountId, name: &str) -> Option<Arc<InstalledNode>> {
        self.nodes().get(&(account, name.to_owned())).cloned()
    }

    /// The account's uploaded nodes, sorted by name.
    pub fn list(&self, account: AccountId) -> Vec<Arc<InstalledNode>> {
        let mut listed: Vec<_> = self
            .nodes()
            .iter()
            .filter(|((owner, _), _)| *owner == account)
            .map(|(_, node)| node.clone())
            .collect();
        listed.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        listed
    }

    /// Installs `node` unless the account already has a node of its name
    /// (an upload made while the hub was loading its uploads again wins);
    /// true when installed.
    pub fn install_if_absent(&self, account: AccountId, node: InstalledNode) -> bool {
        let mut nodes = self.nodes();
        let key = (account, node.record.name.clone());
        if nodes.contains_key(&key) {
            return false;
        }
        nodes.insert(key, Arc::new(node));
        true
    }

    /// Installs `node` for `account`, returning the version it replaced.
    pub fn install(&self, account: AccountId, node: InstalledNode) -> Option<Arc<InstalledNode>> {
        self.nodes()
            .insert((account, node.record.name.clone()), Arc::new(node))
    }

    /// Installs `node` only if the account's node of its name is still the
    /// component `expected` (`None`: still absent); true when installed.
    /// How a hub following another's upload never puts an older version
    /// over one uploaded here meanwhile.
    pub fn install_over(
        &self,
        account: AccountId,
        node: InstalledNode,
        expected: Option<&str>,
    ) -> bool {
        let mut nodes = self.nodes();
        let key = (account, node.record.name.clone());
        let current = nodes.get(&key).map(|node| node.record.sha256.as_str());
        if current != expected {
            return false;
        }
        nodes.insert(key, Arc::new(node));
        true
    }

    /// Every installed node's account and name.
    pub fn installed_names(&self) -> Vec<(AccountId, String)> {
        self.nodes().keys().cloned().collect()
    }

    /// Removes the account's node `name` if it is still the component
    /// `sha256`.
    pub fn remove_if(&self, account: AccountId, name: &str, sha256: &str) -> bool {
        let mut nodes = self.nodes();
        let key = (account, name.to_owned());
        if nodes
            .get(&key)
            .is_some_and(|node| node.record.sha256 == sha256)
        {
            nodes.remove(&key);
            return true;
        }
        false
    }

    /// Removes the account's node `name`.
    pub fn remove(&self, account: AccountId, name: &str) -> Option<Arc<InstalledNode>> {
        self.nodes().remove(&(account, name.to_owned()))
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

    /// Forgets the account's upload of `sha256` (it was never started).
    pub fn forget_upload(&self, account: AccountId, sha256: &str) {
        self.uploads().remove(&(account, sha256.to_owned()));
    }

    /// Where the account's upload of `sha256` stands.
    pub fn upload_status(&self, account: AccountId, sha256: &str) -> Option<UploadStatus> {
        self.uploads()
            .get(&(account, sha256.to_owned()))
            .map(|(status, _)| status.clone())
    }

    /// Records where the account's upload of `sha256` stands; returns the
    /// status it had. Of the uploads that are settled (ready or refused),
    /// each account keeps the newest [`KEPT_UPLOAD_STATUSES`].
    pub fn set_upload_status(
        &self,
        account: AccountId,
        sha256: &str,
        status: UploadStatus,
    ) -> Option<UploadStatus> {
        let mut uploads = self.uploads();
        let order = uploads
            .values()
            .map(|(_, order)| order + 1)
            .max()
            .unwrap_or(0);
        let settled = status != UploadStatus::Compiling;
        let had = uploads.insert((account, sha256.to_owned()), (status, order));
        if settled {
            let mut kept: Vec<(u64, String)> = uploads
                .iter()
                .filter(|((owner, _), (status, _))| {
                    *owner == account && *status != UploadStatus::Compiling
                })
                .map(|((_, sha256), (_, order))| (*order, sha256.clone()))
                .collect();
            if kept.len() > KEPT_UPLOAD_STATUSES {
                kept.sort_unstable();
                for (_, sha256) in &kept[..kept.len() - KEPT_UPLOAD_STATUSES] {
                    uploads.remove(&(account, sha256.clone()));
                }
            }
        }
        had.map(|(status, _)| status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accounts_lane_is_shared_by_the_hubs_of_a_cluster() {
        let limits = AccountLimits::from_settings(&LimitSettings {
            concurrency: Some(5),
            queue: Some(10),
            ..LimitSettings::default()
        });
        let lane = |hubs| {
            let lane = limits.lane(hubs);
            (lane.concurrency, lane.queue)
        };
        assert_eq!(lane(1), (5, 10));
        assert_eq!(
            lane(2),
            (3, 5),
            "rounded up: never fewer than the limit in all"
        );
        assert_eq!(lane(8), (1, 2), "every hub runs at least one");
        assert_eq!(lane(0), (5, 10));
    }

    #[test]
    fn an_account_keeps_the_newest_settled_upload_statuses() {
        let catalog = Catalog::open(None, None, SandboxConfig::default()).unwrap();
        catalog.set_upload_status(1, "compiling", UploadStatus::Compiling);
        for n in 0..KEPT_UPLOAD_STATUSES + 5 {
            let sha256 = format!("sha{n}");
            catalog.set_upload_status(1, &sha256, UploadStatus::Compiling);
            catalog.set_upload_status(1, &sha256, UploadStatus::Ready(format!("node{n}")));
        }
        catalog.set_upload_status(2, "other", UploadStatus::Ready("x".into()));
        assert_eq!(
            catalog.upload_status(1, "sha0"),
            None,
            "the oldest is forgotten"
        );
        assert_eq!(catalog.upload_status(1, "sha4"), None);
        assert!(catalog.upload_status(1, "sha5").is_some());
        let newest = format!("sha{}", KEPT_UPLOAD_STATUSES + 4);
        assert!(catalog.upload_status(1, &newest).is_some());
        assert_eq!(
            catalog.upload_status(1, "compiling"),
            Some(UploadStatus::Compiling),
            "an upload in progress is never forgotten"
        );
        assert!(
            catalog.upload_status(2, "other").is_some(),
            "nor another account's"
        );
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
