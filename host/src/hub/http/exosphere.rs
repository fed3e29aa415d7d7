//! The hub as an Exosphere state manager: `/v0/namespace/{ns}/…`, the
//! routes the `exospherehost` SDK's runtime and `StateManager` client call,
//! with the reference's bodies, statuses and `{"detail": …}` errors.
//!
//! `x-api-key` is a hub API token, and its namespaces are its account's:
//! two accounts using the same namespace name never see each other's nodes,
//! graphs or states (the reference has one global secret). The rules are
//! [`crate::exosphere::manager`]'s; this layer only parses, locks and answers.
//! States of the account's uploaded nodes are run by the hub itself, on its
//! own runner, as they come due: they need no runtime. Every change is
//! saved in the hub's store before the request that made it is answered,
//! and loaded again on the first request after a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::core::AccountId;
use crate::exosphere::manager::{GraphSpec, Manager, Refusal, RegisteredNode};
use crate::hub::service::{ExosphereState, Hub, HubError};
use crate::hub::store::{Caller, ExosphereRecord};
use crate::protocol::exosphere::{NodeRegistration, Report};
use crate::protocol::hurozo::ExecuteRequest;
use crate::sandbox::Value;
use crate::sandbox::value::from_json;

/// The hub and its state managers.
#[derive(Debug, Clone)]
struct Exosphere {
    hub: Arc<Hub>,
    state: Arc<ExosphereState>,
}

/// The routes, on their own state.
pub fn router(hub: Arc<Hub>) -> Router {
    let state = Exosphere {
        state: hub.exosphere(),
        hub,
    };
    let router = Router::new()
        .route("/v0/namespace/{ns}/nodes/", put(register))
        .route("/v0/namespace/{ns}/states/enqueue", post(enqueue))
        .route("/v0/namespace/{ns}/state/{id}/secrets", get(secrets))
        .route("/v0/namespace/{ns}/state/{id}/executed", post(executed))
        .route("/v0/namespace/{ns}/state/{id}/errored", post(errored))
        .route("/v0/namespace/{ns}/state/{id}/prune", post(prune))
        .route(
            "/v0/namespace/{ns}/state/{id}/re-enqueue-after",
            post(requeue),
        )
        .route("/v0/namespace/{ns}/graph/{g}", put(upsert_graph).get(graph))
        .route("/v0/namespace/{ns}/graph/{g}/trigger", post(trigger))
        .route(
            "/v0/namespace/{ns}/states/run/{run_id}/graph",
            get(run_states),
        )
        .route("/v0/namespace/{ns}/runs/{page}/{size}", get(runs))
        .with_state(state.clone());
    // Cron triggers fire from the hub's runtime, once per hub; a router
    // made outside one (a test of the routes alone) has none.
    if let Ok(runtime) = tokio::runtime::Handle::try_current()
        && !state.state.cron_started.swap(true, Ordering::SeqCst)
    {
        runtime.spawn(state.cron_loop());
    }
    router
}

/// An answer in the reference's shape: JSON, errors as `{"detail": …}`.
type Answer = Result<axum::Json<Json>, Detail>;

/// An error answer: a status and `{"detail": …}`.
#[derive(Debug)]
struct Detail {
    status: StatusCode,
    detail: String,
}

impl IntoResponse for Detail {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "detail": self.detail }))).into_response()
    }
}

fn detail(status: StatusCode, detail: impl Into<String>) -> Detail {
    Detail {
        status,
        detail: detail.into(),
    }
}

fn refused(refusal: Refusal) -> Detail {
    detail(
        StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST),
        refusal.detail,
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Detail> {
    serde_json::from_slice(bytes).map_err(|err| {
        detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the request body is not as expected: {err}"),
        )
    })
}

impl Exosphere {
    /// The account whose token is the request's `x-api-key`.
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, Detail> {
        let key = headers
            .get("x-api-key")
            .and_then(|key| key.to_str().ok())
            .unwrap_or_default();
        let caller = self
            .hub
            .authenticate(Some(key))
            .await
            .map_err(|_| detail(StatusCode::UNAUTHORIZED, "Invalid API key"))?;
        self.state.loaded.get_or_init(|| self.load()).await;
        Ok(caller)
    }

    /// Rebuilds every account's state manager from the store.
    async fn load(&self) {
        let records = match self.hub.store().exosphere_records().await {
            Ok(records) => records,
            Err(err) => {
                tracing::error!(
                    "cannot read the saved Exosphere records; starting without them: {err}"
                );
                return;
            }
        };
        let mut by_account: HashMap<AccountId, Vec<(String, String, String)>> = HashMap::new();
        for (account, record) in records {
            by_account.entry(account).or_default().push((
                record.kind,
                record.key,
                record.body.unwrap_or_default(),
            ));
        }
        let lease = self.hub.exosphere_lease().as_millis() as u64;
        let mut managers = self
            .state
            .managers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for (account, rows) in by_account {
            let (manager, skipped) = Manager::restore(lease, rows);
            if skipped > 0 {
                tracing::warn!(
                    "{skipped} saved Exosphere records of account {account} could not be read"
                );
            }
            managers.insert(account, manager);
        }
    }

    /// Saves what changed in `caller`'s state manager; what cannot be saved
    /// now is kept for the next save.
    async fn save(&self, caller: &Caller) {
        let _in_order = self.state.saving.lock().await;
        let Ok(changes) = self.with(caller, |manager| Ok(manager.take_changes())) else {
            return;
        };
        if changes.is_empty() {
            return;
        }
        let records = changes
            .iter()
            .map(|change| ExosphereRecord {
                kind: change.kind.as_str().to_owned(),
                key: change.key.clone(),
                body: change.body.clone(),
            })
            .collect();
        if let Err(err) = self
            .hub
            .store()
            .save_exosphere(caller.account, records)
            .await
        {
            tracing::warn!("saving Exosphere records failed (kept for the next save): {err}");
            let _ = self.with(caller, |manager| {
                manager.unsaved(&changes);
                Ok(())
            });
        }
    }

    /// Runs `work` on `caller`'s state manager.
    fn with<T>(
        &self,
        caller: &Caller,
        work: impl FnOnce(&mut Manager) -> Result<T, Refusal>,
    ) -> Result<T, Detail> {
        let mut managers = self
            .state
            .managers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let lease = self.hub.exosphere_lease().as_millis() as u64;
        let manager = managers
            .entry(caller.account)
            .or_insert_with(|| Manager::with_lease(lease));
        work(manager).map_err(refused)
    }

    /// Fires the graphs' cron triggers at the start of every minute.
    async fn cron_loop(self) {
        loop {
            let now = now_ms();
            let next_minute = (now / 60_000 + 1) * 60_000;
            tokio::time::sleep(std::time::Duration::from_millis(next_minute - now)).await;
            self.state.loaded.get_or_init(|| self.load()).await;
            self.fire_cron(next_minute / 60_000).await;
        }
    }

    /// Starts a run of every graph whose cron trigger fires in `unix_minute`.
    async fn fire_cron(&self, unix_minute: u64) {
        let due: Vec<(AccountId, String, String)> = {
            let managers = self
                .state
                .managers
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            managers
                .iter()
                .flat_map(|(account, manager)| {
                    manager
                        .due_graphs(unix_minute)
                        .into_iter()
                        .map(|(namespace, graph)| (*account, namespace, graph))
                })
                .collect()
        };
        for (account, namespace, graph) in due {
            // The account's own runs, started by the hub, not by a token.
            let caller = Caller {
                token: 0,
                expires_at: None,
                account,
                account_name: "cron".into(),
                read_only: false,
            };
            let started = self.with(&caller, |manager| {
                manager.trigger(
                    &namespace,
                    &graph,
                    BTreeMap::new(),
                    BTreeMap::new(),
                    0,
                    now_ms(),
                )
            });
            match started {
                Ok(run) => tracing::info!("cron started run {} of graph `{graph}`", run["run_id"]),
                Err(refused) => tracing::warn!(
                    "cron could not start graph `{graph}` of namespace `{namespace}`: {}",
                    refused.detail
                ),
            }
            self.save(&caller).await;
            self.drive(&caller);
        }
    }

    /// Runs the due states of the account's uploaded nodes on the hub's own
    /// runner, in the background: they need no runtime.
    fn drive(&self, caller: &Caller) {
        let (exo, caller) = (self.clone(), caller.clone());
        tokio::spawn(async move { exo.drive_now(&caller).await });
    }

    async fn drive_now(&self, caller: &Caller) {
        let uploaded: BTreeSet<String> = self
            .hub
            .uploaded_infos(caller.account)
            .into_iter()
            .map(|info| info.name)
            .collect();
        if uploaded.is_empty() {
            return;
        }
        let now = now_ms();
        let Ok((due, next)) = self.with(caller, |manager| {
            Ok((
                manager.take_due(&uploaded, HUB_RUN_BATCH, now),
                manager.next_due(&uploaded, now),
            ))
        }) else {
            return;
        };
        self.save(caller).await;
        if let Some(at) = next {
            let (exo, caller) = (self.clone(), caller.clone());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(at.saturating_sub(now))).await;
                exo.drive(&caller);
            });
        }
        for (namespace, state) in due {
            let (exo, caller) = (self.clone(), caller.clone());
            tokio::spawn(async move {
                let request = ExecuteRequest {
                    inputs: state.inputs,
                    timeout_ms: None,
                };
                let report = match exo.hub.execute(&caller, &state.node_name, request).await {
                    Ok(answer) => {
                        let outputs: Vec<(String, Value)> = answer
                            .outputs
                            .into_iter()
                            .map(|(name, value)| (name, from_json(value)))
                            .collect();
                        Report::of_result(Ok(&outputs))
                    }
                    Err(HubError::NodeFailed { failure, .. }) => {
                        Report::of_result(Err((&failure.code, &failure.message)))
                    }
                    Err(err) => Report::Errored(format!("{}: {err}", err.code())),
                };
                let id = &state.state_id;
                let now = now_ms();
                let random: f64 = rand::random();
                let reported = exo.with(&caller, |manager| match report {
                    Report::Executed(sets) => manager.executed(&namespace, id, sets, now),
                    Report::Errored(error) => manager.errored(&namespace, id, error, random, now),
                    Report::Prune(data) => manager.prune(&namespace, id, data, now),
                    Report::Requeue(ms) => manager.requeue(&namespace, id, ms, now),
                });
                if let Err(refused) = reported {
                    tracing::warn!(
                        "the hub's own run of state `{id}` could not be recorded: {}",
                        refused.detail
                    );
                }
                exo.save(&caller).await;
                exo.drive(&caller);
            });
        }
    }
}

/// States of uploaded nodes the hub takes at once per account.
const HUB_RUN_BATCH: usize = 64;

#[derive(Deserialize)]
struct Registration {
    runtime_name: String,
    nodes: Vec<RegisteredNode>,
}

async fn register(
    State(exo): State<Exosphere>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let registration: Registration = body(&bytes)?;
    let caller = exo.caller(&headers).await?;
    let names = exo.with(&caller, |manager| {
        Ok(manager.register(&ns, registration.nodes))
    })?;
    exo.save(&caller).await;
    Ok(axum::Json(json!({
        "runtime_name": registration.runtime_name,
        "registered_nodes": names.iter().map(|name| json!({"name": name})).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct EnqueueBody {
    nodes: Vec<String>,
    batch_size: usize,
}

async fn enqueue(
    State(exo): State<Exosphere>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let request: EnqueueBody = body(&bytes)?;
    let caller = exo.caller(&headers).await?;
    let states = exo.with(&caller, |manager| {
        Ok(manager.enqueue(&ns, &request.nodes, request.batch_size.min(1_000), now_ms()))
    })?;
    exo.save(&caller).await;
    Ok(axum::Json(json!({
        "count": states.len(),
        "namespace": ns,
        "status": "QUEUED",
        "states": states,
    })))
}

async fn secrets(
    State(exo): State<Exosphere>,
    Path((ns, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let caller = exo.caller(&headers).await?;
    let names = exo.with(&caller, |manager| manager.secret_names(&ns, &id))?;
    let values = exo
        .hub
        .secret_values(caller.account, &names)
        .await
        .map_err(|err| detail(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    let values: BTreeMap<String, String> = values.into_iter().collect();
    Ok(axum::Json(json!({ "secrets": values })))
}

#[derive(Deserialize)]
struct ExecutedBody {
    #[serde(default)]
    outputs: Vec<Map<String, Json>>,
}

async fn executed(
    State(exo): State<Exosphere>,
    Path((ns, id)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let request: ExecutedBody = body(&bytes)?;
    let caller = exo.caller(&headers).await?;
    let answer = exo.with(&caller, |manager| {
        manager.executed(&ns, &id, request.outputs, now_ms())
    })?;
    exo.save(&caller).await;
    exo.drive(&caller);
    Ok(axum::Json(answer))
}

#[derive(Deserialize)]
struct ErroredBody {
    error: String,
}

async fn errored(
    State(exo): State<Exosphere>,
    Path((ns, id)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let request: ErroredBody = body(&bytes)?;
    let random: f64 = rand::random();
    let caller = exo.caller(&headers).await?;
    let answer = exo.with(&caller, |manager| {
        manager.errored(&ns, &id, request.error, random, now_ms())
    })?;
    exo.save(&caller).await;
    exo.drive(&caller);
    Ok(axum::Json(answer))
}

#[derive(Deserialize)]
struct PruneBody {
    #[serde(default)]
    data: Map<String, Json>,
}

async fn prune(
    State(exo): State<Exosphere>,
    Path((ns, id)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let request: PruneBody = body(&bytes)?;
    let caller = exo.caller(&headers).await?;
    let answer = exo.with(&caller, |manager| {
        manager.prune(&ns, &id, request.data, now_ms())
    })?;
    exo.save(&caller).await;
    exo.drive(&caller);
    Ok(axum::Json(answer))
}

#[derive(Deserialize)]
struct RequeueBody {
    enqueue_after: u64,
}

async fn requeue(
    State(exo): State<Exosphere>,
    Path((ns, id)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let request: RequeueBody = body(&bytes)?;
    if request.enqueue_after == 0 {
        return Err(detail(
            StatusCode::BAD_REQUEST,
            "enqueue_after must be above 0",
        ));
    }
    let caller = exo.caller(&headers).await?;
    let answer = exo.with(&caller, |manager| {
        manager.requeue(&ns, &id, request.enqueue_after, now_ms())
    })?;
    exo.save(&caller).await;
    exo.drive(&caller);
    Ok(axum::Json(answer))
}

async fn upsert_graph(
    State(exo): State<Exosphere>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<(StatusCode, axum::Json<Json>), Detail> {
    let mut spec: GraphSpec = body(&bytes)?;
    let caller = exo.caller(&headers).await?;
    // The graph's secrets go to the account's sealed secrets; the graph
    // keeps their names (an empty value keeps the one already stored).
    for (name, value) in &mut spec.secrets {
        if !value.is_empty() {
            exo.hub
                .put_secret(&caller, name, value)
                .await
                .map_err(|err| detail(StatusCode::BAD_REQUEST, err.to_string()))?;
        }
        value.clear();
    }
    // The account's uploaded nodes are registered in every namespace its
    // graphs name: the hub runs them itself.
    let namespaces: BTreeSet<String> = spec
        .nodes
        .iter()
        .map(|node| node.namespace.clone())
        .chain([ns.clone()])
        .collect();
    let uploaded = exo.hub.uploaded_infos(caller.account);
    let graph = exo.with(&caller, |manager| {
        for namespace in &namespaces {
            let nodes = uploaded
                .iter()
                .map(|info| {
                    let registration = NodeRegistration::of(info, namespace);
                    RegisteredNode {
                        name: registration.name,
                        namespace: registration.namespace,
                        inputs_schema: registration.inputs_schema,
                        outputs_schema: registration.outputs_schema,
                        secrets: registration.secrets,
                    }
                })
                .collect();
            manager.register(namespace, nodes);
        }
        manager.upsert_graph(&ns, &name, spec, now_ms())
    })?;
    exo.save(&caller).await;
    Ok((StatusCode::CREATED, axum::Json(graph)))
}

async fn graph(
    State(exo): State<Exosphere>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let caller = exo.caller(&headers).await?;
    exo.with(&caller, |manager| {
        manager.graph(&ns, &name).ok_or_else(|| Refusal {
            status: 404,
            detail: format!("Graph template not found: {name}"),
        })
    })
    .map(axum::Json)
}

#[derive(Deserialize)]
struct TriggerBody {
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default)]
    store: BTreeMap<String, String>,
    #[serde(default)]
    start_delay: u64,
}

async fn trigger(
    State(exo): State<Exosphere>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Answer {
    let request: TriggerBody = if bytes.is_empty() {
        TriggerBody {
            inputs: BTreeMap::new(),
            store: BTreeMap::new(),
            start_delay: 0,
        }
    } else {
        body(&bytes)?
    };
    let caller = exo.caller(&headers).await?;
    let answer = exo.with(&caller, |manager| {
        manager.trigger(
            &ns,
            &name,
            request.inputs,
            request.store,
            request.start_delay,
            now_ms(),
        )
    })?;
    exo.save(&caller).await;
    exo.drive(&caller);
    Ok(axum::Json(answer))
}

async fn run_states(
    State(exo): State<Exosphere>,
    Path((ns, run_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let caller = exo.caller(&headers).await?;
    exo.with(&caller, |manager| manager.run_states(&ns, &run_id))
        .map(axum::Json)
}

async fn runs(
    State(exo): State<Exosphere>,
    Path((ns, page, size)): Path<(String, usize, usize)>,
    headers: HeaderMap,
) -> Answer {
    let caller = exo.caller(&headers).await?;
    exo.with(&caller, |manager| Ok(manager.runs(&ns, page, size)))
        .map(axum::Json)
}
