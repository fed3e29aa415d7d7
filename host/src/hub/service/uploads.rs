//! Uploaded nodes: accepting an upload, where it stands, listing, showing,
//! deleting, their logs, and running their events.
//!
//! An upload is checked before it is accepted: its size, that it is a
//! component, then (compiling) that it exports the node world, imports only
//! what the host grants and has valid info. A small component answers
//! `ready` at once; a big one answers `compiling` with a status URL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value as Json, json};

use super::catalog::{
    AccountLimits, COMPILE_TIME_LIMIT, InstalledNode, MAX_UPLOAD_BYTES, UploadStatus,
};
use super::history::RunRecord;
use super::{Hub, HubError, grants, require_write};
use crate::core::LaneLimits;
use crate::core::{AccountId, Event, EventFailure, Outcome, Terms, json_outputs};
use crate::hub::store::{Caller, UploadedNode, unix_seconds};
use crate::protocol::hosted::{EventLimits, EventLogs};
use crate::protocol::hurozo::ExecuteResponse;
use crate::sandbox::http::HttpUsage;
use crate::sandbox::{file_kind, sha256_hex};

/// Where an upload stands, as its answer says.
#[derive(Debug)]
pub enum UploadAnswer {
    /// Installed; the node as `GET /api/nodes/{name}` shows it (`None` when
    /// it was replaced or deleted since).
    Ready {
        /// The component's sha256.
        sha256: String,
        /// The node.
        node: Option<Json>,
    },
    /// Still compiling: ask again at the status URL.
    Compiling {
        /// The component's sha256.
        sha256: String,
    },
    /// Refused: why.
    Refused(HubError),
}

/// Uploads of one account compiled at once, and waiting for their turn;
/// beyond, an upload is refused with `queue_full`.
const COMPILE_LANE: LaneLimits = LaneLimits {
    concurrency: 1,
    queue: 3,
};

/// Compiles at once across all accounts: the rest of the machine keeps
/// running events meanwhile.
pub const COMPILES_AT_ONCE: usize = 2;

/// What one account may keep uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQuota {
    /// Nodes.
    pub nodes: usize,
    /// Bytes of components, summed over its nodes.
    pub bytes: u64,
}

impl Default for UploadQuota {
    /// 100 nodes and 1 GiB: room for dozens of Python or JavaScript nodes
    /// (12–18 MB each), not for filling a disk.
    fn default() -> Self {
        Self {
            nodes: 100,
            bytes: 1 << 30,
        }
    }
}

impl Hub {
    /// Accepts the component `bytes` as a node of the caller's account:
    /// waits up to the hub's upload wait for it to compile and be checked.
    pub(crate) async fn upload(
        self: &Arc<Self>,
        caller: &Caller,
        bytes: Bytes,
    ) -> Result<UploadAnswer, HubError> {
        require_write(caller)?;
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(upload_too_large());
        }
        file_kind(&bytes).map_err(|err| HubError::refused(&err))?;
        let sha256 = sha256_hex(&bytes);
        let account = caller.account;
        let already = self
            .catalog
            .set_upload_status(account, &sha256, UploadStatus::Compiling);
        if already == Some(UploadStatus::Compiling) {
            // The same component is being compiled for this account: wait for it.
            return Ok(self.wait_and_answer(account, &sha256, None).await);
        }
        // The account's turn to compile: one at a time, a few waiting, the
        // rest refused, so that one account's uploads cannot keep the
        // machine compiling for everyone.
        let place = match self.compile_lanes.enter(account, COMPILE_LANE) {
            Ok(place) => place,
            Err(full) => {
                self.catalog.forget_upload(account, &sha256);
                return Err(HubError::CompileQueueFull(full));
            }
        };
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let hub = self.clone();
        let task_sha = sha256.clone();
        tokio::spawn(async move {
            let turn = place.turn().await;
            let compiling = hub.compiles.clone().acquire_owned().await;
            let status = hub.compile_and_install(account, &task_sha, bytes).await;
            drop((compiling, turn));
            if matches!(status, UploadStatus::Failed(..)) {
                // Nothing of a refused upload is kept: the compiled code of a
                // component no node uses is removed.
                hub.forget_component(&task_sha).await;
            }
            if let UploadStatus::Failed(code, message) = &status {
                tracing::info!(account, sha256 = %task_sha, code, "upload refused: {message}");
            }
            hub.catalog.set_upload_status(account, &task_sha, status);
            let _ = done_tx.send(());
        });
        Ok(self.wait_and_answer(account, &sha256, Some(done)).await)
    }

    /// Where the caller's upload of `sha256` stands.
    pub(crate) fn upload_status(
        &self,
        caller: &Caller,
        sha256: &str,
    ) -> Result<UploadAnswer, HubError> {
        if self.catalog.upload_status(caller.account, sha256).is_none() {
            return Err(HubError::UnknownUpload(sha256.to_owned()));
        }
        Ok(self.answer(caller.account, sha256))
    }

    /// Waits up to the hub's upload wait for the upload to settle, then
    /// answers with where it stands.
    async fn wait_and_answer(
        &self,
        account: AccountId,
        sha256: &str,
        done: Option<tokio::sync::oneshot::Receiver<()>>,
    ) -> UploadAnswer {
        match done {
            Some(done) => {
                let _ = tokio::time::timeout(self.upload_wait, done).await;
            }
            None => {
                let until = Instant::now() + self.upload_wait;
                while Instant::now() < until
                    && self.catalog.upload_status(account, sha256) == Some(UploadStatus::Compiling)
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        self.answer(account, sha256)
    }

    fn answer(&self, account: AccountId, sha256: &str) -> UploadAnswer {
        let sha256 = sha256.to_owned();
        match self.catalog.upload_status(account, &sha256) {
            None | Some(UploadStatus::Compiling) => UploadAnswer::Compiling { sha256 },
            Some(UploadStatus::Ready(name)) => UploadAnswer::Ready {
                node: self.catalog.get(account, &name).map(|node| node.to_json()),
                sha256,
            },
            Some(UploadStatus::Failed(code, message)) => {
                UploadAnswer::Refused(HubError::Refused { code, message })
            }
        }
    }

    /// Compiles (within [`COMPILE_TIME_LIMIT`]) and, when the component is a
    /// valid node, records and installs it.
    async fn compile_and_install(
        self: &Arc<Self>,
        account: AccountId,
        sha256: &str,
        bytes: Bytes,
    ) -> UploadStatus {
        let size = bytes.len() as u64;
        let loading = {
            let hub = self.clone();
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || hub.catalog.load(&bytes))
        };
        let component = match tokio::time::timeout(COMPILE_TIME_LIMIT, loading).await {
            Err(_) => {
                return UploadStatus::Failed(
                    "compile_timeout".into(),
                    format!(
                        "the component did not compile within {} s",
                        COMPILE_TIME_LIMIT.as_secs()
                    ),
                );
            }
            Ok(Err(err)) => return UploadStatus::Failed("internal".into(), err.to_string()),
            Ok(Ok(Err(err))) => return UploadStatus::Failed(err.code().into(), err.to_string()),
            Ok(Ok(Ok((component, _)))) => component,
        };
        let component = match self
            .with_granted_http(account, component, grants::Loading::Upload)
            .await
        {
            Ok(component) => component,
            Err((code, message)) => return UploadStatus::Failed(code, message),
        };
        let name = component.name().to_owned();
        if let Err(refusal) = self.within_quota(account, &name, size).await {
            return refusal;
        }
        if self
            .registry()
            .get(account, &name, Instant::now())
            .is_some()
        {
            return UploadStatus::Failed(
                "name_taken".into(),
                format!(
                    "a worker of this account serves a node named `{name}` (node-host run); stop \
                     it, or give the uploaded node another name"
                ),
            );
        }
        // Stored only now that it is a node this hub runs; storing, recording
        // and installing are one step for `forget_component`.
        let files = self.component_files.lock().await;
        let stored = {
            let (blobs, sha256) = (self.catalog.blobs().clone(), sha256.to_owned());
            tokio::task::spawn_blocking(move || blobs.put(&sha256, &bytes)).await
        };
        if let Err(err) = stored
            .map_err(std::io::Error::other)
            .and_then(|stored| stored)
        {
            return UploadStatus::Failed(
                "internal".into(),
                format!("cannot store the component: {err}"),
            );
        }
        let mut record = UploadedNode {
            name: name.clone(),
            sha256: sha256.to_owned(),
            size,
            uploaded_at: unix_seconds(),
            version: 0,
        };
        // The account's own count of kept versions, else the hub's.
        let keep = match self.store.limits(account).await {
            Ok(limits) => limits
                .keep_versions
                .map_or(self.keep_versions, |keep| keep.max(1) as usize),
            Err(err) => return UploadStatus::Failed("unavailable".into(), err.to_string()),
        };
        let put = match self.store.put_uploaded(account, &record, keep).await {
            Ok(put) => put,
            Err(err) => return UploadStatus::Failed("internal".into(), err.to_string()),
        };
        record.version = put.version;
        let replaced = self.catalog.install(
            account,
            InstalledNode {
                component: Arc::new(component),
                record,
            },
        );
        drop(files);
        self.announce(sha256);
        if let Some(old) = replaced {
            tracing::info!(account, node = %name, old = %old.record.sha256, new = %sha256, version = put.version, "replaced an uploaded node");
        } else {
            tracing::info!(account, node = %name, sha256, "installed an uploaded node");
        }
        // Versions beyond the kept count go with their compiled code.
        for dropped in put.dropped {
            self.forget_component(&dropped).await;
        }
        UploadStatus::Ready(name)
    }

    /// Refuses a node `name` of `size` bytes that would take the account
    /// beyond its quota (a node replacing one of the same name counts only
    /// its difference). In a cluster the store's records count, so the
    /// quota holds across hubs.
    async fn within_quota(
        &self,
        account: AccountId,
        name: &str,
        size: u64,
    ) -> Result<(), UploadStatus> {
        let held: Vec<(String, u64)> = if self.shared {
            self.store
                .uploads_of(account)
                .await
                .map_err(|err| UploadStatus::Failed("unavailable".into(), err.to_string()))?
                .into_iter()
                .map(|record| (record.name, record.size))
                .collect()
        } else {
            self.catalog
                .list(account)
                .iter()
                .map(|node| (node.record.name.clone(), node.record.size))
                .collect()
        };
        let replaced = held.iter().find(|(held, _)| held == name);
        let nodes = held.len() + usize::from(replaced.is_none());
        let bytes = held.iter().map(|(_, size)| size).sum::<u64>() + size
            - replaced.map_or(0, |(_, size)| *size);
        let quota = self.quota;
        if nodes > quota.nodes || bytes > quota.bytes {
            return Err(UploadStatus::Failed(
                "quota_exceeded".into(),
                format!(
                    "this upload would give the account {nodes} nodes of {bytes} bytes in all; \
                     its quota is {} nodes and {} bytes: delete a node first (DELETE \
                     /api/nodes/NAME), or ask the hub's operator to raise the quota \
                     (`node-host hub --quota-nodes N --quota-bytes SIZE`)",
                    quota.nodes, quota.bytes
                ),
            ));
        }
        Ok(())
    }

    /// Removes a component file nothing uses any more. Checking and removing
    /// are one step against an upload of the same bytes storing them.
    async fn forget_component(&self, sha256: &str) {
        let _files = self.component_files.lock().await;
        let used =
            self.catalog.in_use(sha256) || self.store.sha256_in_use(sha256).await.unwrap_or(true);
        if !used {
            self.withdraw(sha256);
            self.catalog.blobs().remove(sha256);
            self.catalog.forget_compiled(sha256);
        }
    }

    /// The caller's uploaded nodes.
    pub(crate) fn uploaded_nodes(&self, caller: &Caller) -> Json {
        let nodes: Vec<Json> = self
            .catalog
            .list(caller.account)
            .iter()
            .map(|node| node.to_json())
            .collect();
        json!({ "nodes": nodes })
    }

    /// The caller's uploaded node `name`, the limits its events run under,
    /// the hosted workers that have it ready and the account's lane.
    pub(crate) async fn uploaded_node(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
    ) -> Result<Json, HubError> {
        let node = self.installed(caller, name).await?;
        let limits = self.account_limits(caller.account).await?;
        let mut shown = node.to_json();
        shown["limits"] = limits.to_json();
        shown["hosted_workers"] = self.workers_ready(&node.record.sha256).into();
        let (running, waiting) = self.runner.lanes().load(caller.account);
        let hubs = self.hubs();
        let here = limits.lane(hubs);
        shown["lane"] = json!({
            "running": running,
            "waiting": waiting,
            "hubs": hubs,
            "concurrency_here": here.concurrency,
            "queue_here": here.queue,
        });
        Ok(shown)
    }

    /// Deletes the caller's uploaded node `name`: events in flight finish;
    /// new ones are refused as unknown.
    pub(crate) async fn delete_uploaded(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
    ) -> Result<Json, HubError> {
        require_write(caller)?;
        self.installed(caller, name).await?;
        let removed = self
            .catalog
            .remove(caller.account, name)
            .ok_or_else(|| unknown(name))?;
        let mut used = self.store.delete_uploaded(caller.account, name).await?;
        used.push(removed.record.sha256.clone());
        // Each component once (the store names the current one too).
        used.sort_unstable();
        used.dedup();
        for sha256 in used {
            self.forget_component(&sha256).await;
        }
        self.store.forget_history(caller.account, name).await?;
        self.stats.forget(caller.account, name);
        tracing::info!(account = %caller.account_name, node = %name, "deleted an uploaded node");
        Ok(json!({"deleted": name}))
    }

    /// What the recent events of the caller's node `name` printed and
    /// logged, oldest first.
    pub(crate) async fn node_logs(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
    ) -> Result<Json, HubError> {
        self.installed(caller, name).await?;
        let events = self
            .events(caller, Some(name), None, Some(super::history::MAX_LISTED))
            .await?;
        let events: Vec<Json> = events
            .iter()
            .filter(|event| event.logs.is_some())
            .map(|event| {
                let mut shown = super::history::event_json(event);
                shown["finished_at"] = json!(event.at_ms / 1000);
                // What the sandbox did (the caller may have been answered
                // otherwise, e.g. `timeout` for an event stopped by its
                // `deadline`).
                shown["outcome"] = json!(event.ran.as_ref().or(event.outcome.as_ref()));
                shown
            })
            .collect();
        Ok(json!({"node": name, "events": events}))
    }

    /// The caller's uploaded node `name`, waiting up to the upload wait for
    /// it while the hub loads its uploads again after a restart.
    pub(super) async fn installed(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
    ) -> Result<Arc<InstalledNode>, HubError> {
        let deadline = Instant::now() + self.upload_wait;
        self.node_when_loaded(caller.account, name, deadline)
            .await
            .ok_or_else(|| unknown(name))
    }

    /// The account's limits, read from the store at most once per
    /// [`LIMITS_RECHECK`](super::LIMITS_RECHECK).
    async fn account_limits(&self, account: AccountId) -> Result<AccountLimits, HubError> {
        let lock = || self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((limits, read)) = lock().get(&account)
            && read.elapsed() < super::LIMITS_RECHECK
        {
            return Ok(limits.clone());
        }
        let read = Instant::now();
        let limits = AccountLimits::from_settings(&self.store.limits(account).await?);
        lock().insert(account, (limits.clone(), read));
        Ok(limits)
    }

    /// Runs one event of an uploaded node under the account's limits: waits
    /// for a place in the account's lane (or is refused as `queue_full`),
    /// then sends the event to a hosted worker that has the component ready,
    /// or else runs it on the hub's runner. Bounded by the event's deadline.
    pub(super) async fn execute_uploaded(
        self: &Arc<Self>,
        node: Arc<InstalledNode>,
        event: Event,
        timeout: Duration,
    ) -> Result<ExecuteResponse, HubError> {
        let (name, id) = (event.node.clone(), event.id.clone());
        let deadline = event.deadline.expect("the execute API sets a deadline");
        let outputs: Vec<String> = node
            .component
            .info()
            .outputs
            .iter()
            .map(|port| port.name.clone())
            .collect();
        let ms = timeout.as_millis();
        let finished = tokio::time::timeout_at(deadline.into(), self.run_uploaded(node, event, ms))
            .await
            .map_err(|_elapsed| HubError::Timeout {
                node: name.clone(),
                what: "finish",
                ms,
            })??;
        let (finished, http) = finished;
        let returned = finished.map_err(|failure| HubError::NodeFailed {
            node: name.clone(),
            failure,
        })?;
        let mut response = ExecuteResponse::ordered(&name, &id, &outputs, returned);
        response.http = http;
        Ok(response)
    }

    /// [`execute_uploaded`](Self::execute_uploaded) without the deadline
    /// around it (`ms`: the caller's timeout, for its refusal), with the
    /// event's outbound HTTP when the hub ran it.
    async fn run_uploaded(
        self: &Arc<Self>,
        node: Arc<InstalledNode>,
        event: Event,
        ms: u128,
    ) -> Result<(Result<Map<String, Json>, EventFailure>, Option<HttpUsage>), HubError> {
        let account = event.account;
        let mut limits = self.account_limits(account).await?;
        let secrets = self
            .declared_secrets(account, &node.record.name, node.component.info())
            .await?;
        let permit = self
            .runner
            .admit(&event, limits.lane(self.hubs()))
            .await
            .map_err(|err| HubError::from_run(&event.node, ms, err))?;
        // The sandbox's deadline is the caller's when that comes first (what
        // is left of it once the event has its turn): a node never runs on
        // after its caller gave up, and that deadline is the caller's
        // `timeout`, not the node's `deadline`.
        let left = event
            .deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()));
        let callers_deadline = left.filter(|left| *left < limits.event.timeout);
        if let Some(left) = callers_deadline {
            limits.event.timeout = left;
        }
        let node_name = event.node.clone();
        let timed_out = |finished: Result<Map<String, Json>, EventFailure>| match finished {
            Err(failure) if callers_deadline.is_some() && failure.code == "deadline" => {
                Err(HubError::Timeout {
                    node: node_name.clone(),
                    what: "finish",
                    ms,
                })
            }
            finished => Ok(finished),
        };
        let wire_limits = EventLimits::of(&limits.event);
        // A node with outbound HTTP runs on the hub, which holds its grant
        // and its account's connections (hosted workers hold neither).
        if node.component.imports_http() {
            self.refresh_http(account, &node).await?;
        } else if let Some(finished) = self
            .run_remotely(&node, &event, wire_limits, &secrets)
            .await
        {
            return Ok((timed_out(finished)?, None));
        }
        let (name, id, version) = (event.node.clone(), event.id.clone(), node.record.version);
        let terms = Terms {
            limits: limits.event,
            secrets: Arc::new(secrets),
        };
        let hub = self.clone();
        // Kept even when the caller has stopped waiting.
        let keep_logs = move |outcome: &Outcome| {
            hub.record_run(RunRecord {
                account,
                node: &name,
                uuid: &id,
                version,
                finished: &json_outputs(outcome),
                fuel: Some(outcome.fuel_used),
                logs: EventLogs::of(outcome),
            });
        };
        let outcome = self
            .runner
            .run(permit, event, node.component.clone(), terms, keep_logs)
            .await
            .map_err(|err| HubError::from_run(&node_name, ms, err))?;
        Ok((timed_out(json_outputs(&outcome))?, outcome.http))
    }
}

/// The refusal of an upload bigger than [`MAX_UPLOAD_BYTES`].
pub(crate) fn upload_too_large() -> HubError {
    HubError::TooLarge(format!(
        "the component is larger than the hub accepts ({} MiB); shrink it (strip debug info, \
         build in release mode)",
        MAX_UPLOAD_BYTES >> 20
    ))
}

fn unknown(name: &str) -> HubError {
    HubError::UnknownNode(format!(
        "this account has no uploaded node `{name}` (upload it with `node-host upload`)"
    ))
}
