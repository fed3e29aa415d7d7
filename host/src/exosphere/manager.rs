//! An Exosphere state manager's rules, with no I/O: registered nodes,
//! graphs and their validation, triggers, states and how they move
//! (enqueue with leases, executed with fan-out and next states, errored
//! with retries, prune, re-enqueue-after), as `seed-protocols.md` §2.5
//! describes the reference, and better where it says so:
//!
//! - **Leases**: a state handed out by enqueue is held for [`Manager::lease`];
//!   when that passes without a report, the state is put back as a new
//!   state (the old one becomes `LEASE_EXPIRED`), so a runtime that died
//!   strands nothing, and its late report is refused by the old state id:
//!   no state is reported twice by two live runtimes.
//! - `GET /graph` returns what is stored, not the defaults.
//!
//! Time is given by the caller in milliseconds since the epoch, so the
//! rules are tested without a clock.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

/// How long a handed-out state is held for its runtime by default.
pub const DEFAULT_LEASE_MS: u64 = 300_000;

/// Finished runs an account keeps by default; beyond, the oldest finished
/// run goes, with its states.
pub const DEFAULT_KEEP_RUNS: usize = 10_000;

/// A state's status, as the reference names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Waiting to be handed out.
    Created,
    /// Handed out to a runtime.
    Queued,
    /// Reported executed; its next states are being made.
    Executed,
    /// Failed for good.
    Errored,
    /// Its next states could not be made.
    NextCreatedError,
    /// Done, next states made.
    Success,
    /// Pruned by its node.
    Pruned,
    /// Failed and retried as a new state.
    RetryCreated,
    /// Its lease passed; handed out again as a new state.
    LeaseExpired,
}

/// Why a request is refused: an HTTP status and a `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {detail}")]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, as the reference's `{"detail": …}`.
    pub detail: String,
}

fn refuse(status: u16, detail: impl Into<String>) -> Refusal {
    Refusal {
        status,
        detail: detail.into(),
    }
}

/// A node as a runtime registered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredNode {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its inputs' JSON Schema.
    pub inputs_schema: Json,
    /// Its outputs' JSON Schema.
    pub outputs_schema: Json,
    /// The secrets it reads.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// `unites` of a graph node: it runs once, when every state descending
/// from `identifier` in the run is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unites {
    /// The node above the fan-out.
    pub identifier: String,
    /// `ALL_SUCCESS` or `ALL_DONE`.
    #[serde(default = "all_success")]
    pub strategy: String,
}

fn all_success() -> String {
    "ALL_SUCCESS".into()
}

/// One node of a graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    /// The registered node it runs.
    pub node_name: String,
    /// Its namespace.
    pub namespace: String,
    /// Unique in the graph.
    pub identifier: String,
    /// Input templates: strings with `${{ id.outputs.field }}` and
    /// `${{ store.key }}`.
    #[serde(default)]
    pub inputs: Map<String, Json>,
    /// The nodes that follow.
    #[serde(default)]
    pub next_nodes: Option<Vec<String>>,
    /// A join.
    #[serde(default)]
    pub unites: Option<Unites>,
}

/// How failed states are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries before a state is `ERRORED`.
    #[serde(default = "three")]
    pub max_retries: u32,
    /// `EXPONENTIAL`, `LINEAR` or `FIXED`, each also `_FULL_JITTER` or `_EQUAL_JITTER`.
    #[serde(default = "exponential")]
    pub strategy: String,
    /// Milliseconds.
    #[serde(default = "two_seconds")]
    pub backoff_factor: u64,
    /// For the exponential strategies.
    #[serde(default = "two")]
    pub exponent: u32,
    /// A cap in milliseconds.
    #[serde(default)]
    pub max_delay: Option<u64>,
}

fn three() -> u32 {
    3
}
fn exponential() -> String {
    "EXPONENTIAL".into()
}
fn two_seconds() -> u64 {
    2000
}
fn two() -> u32 {
    2
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: three(),
            strategy: exponential(),
            backoff_factor: two_seconds(),
            exponent: two(),
            max_delay: None,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry `n` (1 for the first), `random` in [0, 1)
    /// drawing the jitter.
    pub fn delay_ms(&self, n: u32, random: f64) -> u64 {
        let n = n.max(1);
        let (kind, jitter) = match self.strategy.split_once('_') {
            Some((kind, jitter)) => (kind, jitter),
            None => (self.strategy.as_str(), ""),
        };
        let base = match kind {
            "LINEAR" => self.backoff_factor.saturating_mul(u64::from(n)),
            "FIXED" => self.backoff_factor,
            _ => self
                .backoff_factor
                .saturating_mul(u64::from(self.exponent).saturating_pow(n - 1)),
        };
        let delay = match jitter {
            "FULL_JITTER" => (base as f64 * random) as u64,
            "EQUAL_JITTER" => base / 2 + ((base - base / 2) as f64 * random) as u64,
            _ => base,
        };
        self.max_delay.map_or(delay, |cap| delay.min(cap))
    }
}

/// Store keys a run needs, and defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// Keys a trigger must give (or a default cover).
    #[serde(default)]
    pub required_keys: Vec<String>,
    /// Values of keys a trigger leaves out.
    #[serde(default)]
    pub default_values: BTreeMap<String, String>,
}

/// `PUT /graph/{g}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphSpec {
    /// Secrets the graph's nodes read, by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// The nodes.
    pub nodes: Vec<GraphNode>,
    /// How failures are retried.
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
    /// The store's keys.
    #[serde(default)]
    pub store_config: Option<StoreConfig>,
    /// Cron triggers, kept as given.
    #[serde(default)]
    pub triggers: Option<Vec<Json>>,
}

/// A stored graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Graph {
    spec: GraphSpec,
    errors: Vec<String>,
    created_at: u64,
    updated_at: u64,
}

/// One state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    id: String,
    namespace: String,
    graph: String,
    run_id: String,
    identifier: String,
    node_name: String,
    status: Status,
    inputs: Map<String, Json>,
    outputs: Map<String, Json>,
    error: Option<String>,
    /// Identifier → state id of every ancestor, this state's own included
    /// once executed.
    parents: BTreeMap<String, String>,
    retry_count: u32,
    enqueue_after: u64,
    lease_until: u64,
}

/// One run of a graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    namespace: String,
    graph: String,
    store: BTreeMap<String, String>,
    created_at: u64,
}

/// The state manager.
#[derive(Debug)]
pub struct Manager {
    /// How long a handed-out state is held for its runtime.
    pub lease: u64,
    /// Finished runs kept; beyond, the oldest go with their states.
    pub keep_runs: usize,
    /// The states of each run.
    by_run: HashMap<String, BTreeSet<String>>,
    /// Finished runs, oldest first.
    finished: VecDeque<String>,
    nodes: BTreeMap<(String, String), RegisteredNode>,
    graphs: BTreeMap<(String, String), Graph>,
    states: HashMap<String, State>,
    /// States waiting to be handed out, oldest first.
    created: VecDeque<String>,
    runs: BTreeMap<String, Run>,
    /// `unites` nodes already made, by run and identifier.
    united: BTreeSet<(String, String)>,
    /// Handed-out states by the end of their lease, soonest first (an
    /// entry whose state has moved on since is skipped).
    leases: BTreeSet<(u64, String)>,
    /// Records changed since [`take_changes`](Manager::take_changes).
    dirty: BTreeSet<(Kind, String)>,
}

/// What a saved record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A registered node; key `[namespace, name]` as JSON.
    Node,
    /// A graph; key `[namespace, name]` as JSON.
    Graph,
    /// A run; key its id.
    Run,
    /// A state; key its id.
    State,
    /// A join made; key `[run, what]` as JSON.
    United,
}

impl Kind {
    /// Its name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Graph => "graph",
            Kind::Run => "run",
            Kind::State => "state",
            Kind::United => "united",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "node" => Kind::Node,
            "graph" => Kind::Graph,
            "run" => Kind::Run,
            "state" => Kind::State,
            "united" => Kind::United,
            _ => return None,
        })
    }
}

/// A record to save: its kind, key and body (JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What it is.
    pub kind: Kind,
    /// Which one.
    pub key: String,
    /// Its JSON; `None` when it is gone (a retired run's).
    pub body: Option<String>,
}

fn to_body<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("the records are JSON")
}

fn pair_key(a: &str, b: &str) -> String {
    serde_json::to_string(&(a, b)).expect("strings are JSON")
}

impl Default for Manager {
    fn default() -> Self {
        Self {
            lease: DEFAULT_LEASE_MS,
            keep_runs: DEFAULT_KEEP_RUNS,
            by_run: HashMap::new(),
            finished: VecDeque::new(),
            nodes: BTreeMap::new(),
            graphs: BTreeMap::new(),
            states: HashMap::new(),
            created: VecDeque::new(),
            runs: BTreeMap::new(),
            united: BTreeSet::new(),
            leases: BTreeSet::new(),
            dirty: BTreeSet::new(),
        }
    }
}

/// A state handed out by enqueue, as the wire has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandedOut {
    /// Its id.
    pub state_id: String,
    /// Its node.
    pub node_name: String,
    /// Its identifier in the graph.
    pub identifier: String,
    /// Its inputs.
    pub inputs: Map<String, Json>,
    /// When it was made, ms since the epoch.
    pub created_at: u64,
}

impl Manager {
    /// A state manager whose handed-out states are held `lease_ms`.
    pub fn with_lease(lease_ms: u64) -> Self {
        Self {
            lease: lease_ms,
            ..Self::default()
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", uuid::Uuid::new_v4().simple())
    }

    fn touch(&mut self, id: &str) {
        self.dirty.insert((Kind::State, id.to_owned()));
    }

    /// Every record changed since the last call, as it is now.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|(kind, key)| {
                let pair = || serde_json::from_str::<(String, String)>(&key).ok();
                let body = match kind {
                    Kind::State => self.states.get(&key).map(to_body),
                    Kind::Run => self.runs.get(&key).map(to_body),
                    Kind::Node => pair().and_then(|pair| self.nodes.get(&pair).map(to_body)),
                    Kind::Graph => pair().and_then(|pair| self.graphs.get(&pair).map(to_body)),
                    Kind::United => pair()
                        .filter(|pair| self.united.contains(pair))
                        .map(|_| "true".to_owned()),
                };
                Change { kind, key, body }
            })
            .collect()
    }

    /// Marks `changes` as not saved yet (their save failed).
    pub fn unsaved(&mut self, changes: &[Change]) {
        self.dirty.extend(
            changes
                .iter()
                .map(|change| (change.kind, change.key.clone())),
        );
    }

    /// A state manager rebuilt from saved records (`(kind, key, body)`);
    /// records that do not parse are skipped and counted.
    pub fn restore(lease_ms: u64, records: Vec<(String, String, String)>) -> (Self, usize) {
        let mut manager = Self::with_lease(lease_ms);
        let mut skipped = 0;
        for (kind, key, body) in records {
            let restored = match Kind::parse(&kind) {
                Some(Kind::State) => serde_json::from_str::<State>(&body)
                    .map(|state| {
                        manager.states.insert(key, state);
                    })
                    .is_ok(),
                Some(Kind::Run) => serde_json::from_str::<Run>(&body)
                    .map(|run| {
                        manager.runs.insert(key, run);
                    })
                    .is_ok(),
                Some(Kind::Node) => match (
                    serde_json::from_str::<(String, String)>(&key),
                    serde_json::from_str::<RegisteredNode>(&body),
                ) {
                    (Ok(key), Ok(node)) => {
                        manager.nodes.insert(key, node);
                        true
                    }
                    _ => false,
                },
                Some(Kind::Graph) => match (
                    serde_json::from_str::<(String, String)>(&key),
                    serde_json::from_str::<Graph>(&body),
                ) {
                    (Ok(key), Ok(graph)) => {
                        manager.graphs.insert(key, graph);
                        true
                    }
                    _ => false,
                },
                Some(Kind::United) => match serde_json::from_str::<(String, String)>(&key) {
                    Ok(key) => {
                        manager.united.insert(key);
                        true
                    }
                    Err(_) => false,
                },
                None => false,
            };
            if !restored {
                skipped += 1;
            }
        }
        let mut waiting: Vec<&State> = manager
            .states
            .values()
            .filter(|state| state.status == Status::Created)
            .collect();
        waiting.sort_by(|a, b| (a.enqueue_after, &a.id).cmp(&(b.enqueue_after, &b.id)));
        manager.created = waiting.iter().map(|state| state.id.clone()).collect();
        manager.leases = manager
            .states
            .values()
            .filter(|state| state.status == Status::Queued)
            .map(|state| (state.lease_until, state.id.clone()))
            .collect();
        for state in manager.states.values() {
            manager
                .by_run
                .entry(state.run_id.clone())
                .or_default()
                .insert(state.id.clone());
        }
        let mut finished: Vec<(u64, String)> = manager
            .runs
            .iter()
            .filter(|(id, _)| manager.run_finished(id))
            .map(|(id, run)| (run.created_at, id.clone()))
            .collect();
        finished.sort();
        manager.finished = finished.into_iter().map(|(_, id)| id).collect();
        (manager, skipped)
    }

    /// `PUT /nodes/`: a runtime registers its nodes.
    pub fn register(&mut self, namespace: &str, nodes: Vec<RegisteredNode>) -> Vec<String> {
        let mut names = Vec::new();
        for node in nodes {
            names.push(node.name.clone());
            self.dirty
                .insert((Kind::Node, pair_key(namespace, &node.name)));
            self.nodes
                .insert((namespace.to_owned(), node.name.clone()), node);
        }
        names
    }

    /// `PUT /graph/{g}`: stores the graph and validates it; store keys that
    /// are used but not declared are refused at once.
    pub fn upsert_graph(
        &mut self,
        namespace: &str,
        name: &str,
        spec: GraphSpec,
        now: u64,
    ) -> Result<Json, Refusal> {
        let declared: BTreeSet<&str> = spec
            .store_config
            .iter()
            .flat_map(|config| {
                config
                    .required_keys
                    .iter()
                    .map(String::as_str)
                    .chain(config.default_values.keys().map(String::as_str))
            })
            .collect();
        for node in &spec.nodes {
            for template in node.inputs.values() {
                for reference in references(template) {
                    if let Reference::Store(key) = reference
                        && !declared.contains(key.as_str())
                    {
                        return Err(refuse(
                            400,
                            format!(
                                "node `{}` uses store key `{key}`, which store_config neither requires nor gives a default",
                                node.identifier
                            ),
                        ));
                    }
                }
            }
        }
        let errors = self.validate(namespace, &spec);
        let key = (namespace.to_owned(), name.to_owned());
        self.dirty.insert((Kind::Graph, pair_key(namespace, name)));
        let created_at = self.graphs.get(&key).map_or(now, |graph| graph.created_at);
        self.graphs.insert(
            key,
            Graph {
                spec,
                errors,
                created_at,
                updated_at: now,
            },
        );
        Ok(self.graph(namespace, name).expect("just stored"))
    }

    /// `GET /graph/{g}`.
    pub fn graph(&self, namespace: &str, name: &str) -> Option<Json> {
        let graph = self.graphs.get(&(namespace.to_owned(), name.to_owned()))?;
        let secrets: BTreeMap<&str, bool> = graph
            .spec
            .secrets
            .keys()
            .map(|name| (name.as_str(), true))
            .collect();
        Some(json!({
            "name": name,
            "namespace": namespace,
            "nodes": graph.spec.nodes,
            "secrets": secrets,
            "retry_policy": graph.spec.retry_policy.clone().unwrap_or_default(),
            "store_config": graph.spec.store_config.clone().unwrap_or_default(),
            "triggers": graph.spec.triggers.clone().unwrap_or_default(),
            "created_at": graph.created_at,
            "updated_at": graph.updated_at,
            "validation_status": if graph.errors.is_empty() { "VALID" } else { "INVALID" },
            "validation_errors": graph.errors,
        }))
    }

    /// What is wrong with `spec`: one root, acyclic, connected, identifiers
    /// unique, targets present, nodes registered, secrets present, templates
    /// referring to ancestors only.
    fn validate(&self, namespace: &str, spec: &GraphSpec) -> Vec<String> {
        let mut errors = Vec::new();
        let mut by_id: BTreeMap<&str, &GraphNode> = BTreeMap::new();
        for node in &spec.nodes {
            if node.identifier.trim().is_empty() || node.identifier == "store" {
                errors.push(format!("`{}` cannot be an identifier", node.identifier));
            }
            if by_id.insert(node.identifier.as_str(), node).is_some() {
                errors.push(format!("identifier `{}` is used twice", node.identifier));
            }
        }
        for node in &spec.nodes {
            for next in node.next_nodes.iter().flatten() {
                if !by_id.contains_key(next.as_str()) {
                    errors.push(format!(
                        "`{}` names next node `{next}`, which is not in the graph",
                        node.identifier
                    ));
                }
            }
            if let Some(unites) = &node.unites
                && !by_id.contains_key(unites.identifier.as_str())
            {
                errors.push(format!(
                    "`{}` unites `{}`, which is not in the graph",
                    node.identifier, unites.identifier
                ));
            }
            match self
                .nodes
                .get(&(node.namespace.clone(), node.node_name.clone()))
            {
                None => errors.push(format!(
                    "node `{}` of `{}` is not registered in namespace `{}`",
                    node.node_name, node.identifier, node.namespace
                )),
                Some(registered) => {
                    for secret in &registered.secrets {
                        if !spec.secrets.contains_key(secret) {
                            errors.push(format!(
                                "node `{}` reads secret `{secret}`, which the graph does not give",
                                node.node_name
                            ));
                        }
                    }
                }
            }
        }
        if namespace.is_empty() {
            errors.push("the namespace is empty".into());
        }
        for trigger in spec.triggers.iter().flatten() {
            if let Err(err) = cron_of(trigger) {
                errors.push(err);
            }
        }
        let targets: BTreeSet<&str> = spec
            .nodes
            .iter()
            .flat_map(|node| node.next_nodes.iter().flatten().map(String::as_str))
            .collect();
        let roots: Vec<&str> = spec
            .nodes
            .iter()
            .map(|node| node.identifier.as_str())
            .filter(|id| !targets.contains(id))
            .collect();
        if roots.len() != 1 {
            errors.push(format!(
                "a graph has exactly one root (a node no other names as next); this one has {}: {roots:?}",
                roots.len()
            ));
        }
        if errors.is_empty() {
            let ancestors = ancestors(&by_id, roots[0]);
            match ancestors {
                Err(cycle) => errors.push(format!("the graph has a cycle through `{cycle}`")),
                Ok(ancestors) => {
                    for node in &spec.nodes {
                        let Some(above) = ancestors.get(node.identifier.as_str()) else {
                            errors.push(format!(
                                "`{}` cannot be reached from the root `{}`",
                                node.identifier, roots[0]
                            ));
                            continue;
                        };
                        for template in node.inputs.values() {
                            for reference in references(template) {
                                if let Reference::Output(id, _) = reference
                                    && !above.contains(id.as_str())
                                {
                                    errors.push(format!(
                                        "`{}` refers to `{id}`, which is not one of its ancestors",
                                        node.identifier
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
        errors
    }

    /// The valid graphs with a cron trigger that fires in the minute
    /// starting `unix_minute` minutes after the epoch, as (namespace, name).
    pub fn due_graphs(&self, unix_minute: u64) -> Vec<(String, String)> {
        self.graphs
            .iter()
            .filter(|(_, graph)| graph.errors.is_empty())
            .filter(|(_, graph)| {
                graph
                    .spec
                    .triggers
                    .iter()
                    .flatten()
                    .filter_map(|trigger| cron_of(trigger).ok())
                    .any(|schedule| schedule.matches(unix_minute))
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// `POST /graph/{g}/trigger`: a new run, its root state made.
    pub fn trigger(
        &mut self,
        namespace: &str,
        name: &str,
        inputs: BTreeMap<String, String>,
        store: BTreeMap<String, String>,
        start_delay: u64,
        now: u64,
    ) -> Result<Json, Refusal> {
        let graph = self
            .graphs
            .get(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| refuse(404, format!("Graph template not found: {name}")))?;
        if !graph.errors.is_empty() {
            return Err(refuse(
                400,
                format!("Graph {name} is not valid: {}", graph.errors.join("; ")),
            ));
        }
        let config = graph.spec.store_config.clone().unwrap_or_default();
        let mut run_store = config.default_values.clone();
        run_store.extend(store);
        let missing: Vec<&String> = config
            .required_keys
            .iter()
            .filter(|key| !run_store.contains_key(*key))
            .collect();
        if !missing.is_empty() {
            return Err(refuse(400, format!("Missing store keys: {missing:?}")));
        }
        let targets: BTreeSet<&str> = graph
            .spec
            .nodes
            .iter()
            .flat_map(|node| node.next_nodes.iter().flatten().map(String::as_str))
            .collect();
        let root = graph
            .spec
            .nodes
            .iter()
            .find(|node| !targets.contains(node.identifier.as_str()))
            .expect("a valid graph has a root")
            .clone();
        let run_id = self.id("run-");
        self.dirty.insert((Kind::Run, run_id.clone()));
        self.runs.insert(
            run_id.clone(),
            Run {
                namespace: namespace.to_owned(),
                graph: name.to_owned(),
                store: run_store.clone(),
                created_at: now,
            },
        );
        let mut rendered = render(&root.inputs, &BTreeMap::new(), &self.states, &run_store)
            .map_err(|err| refuse(400, err))?;
        for (key, value) in inputs {
            rendered.insert(key, Json::from(value));
        }
        self.create_state(
            namespace,
            name,
            &run_id,
            &root,
            rendered,
            BTreeMap::new(),
            0,
            now + start_delay,
        );
        Ok(json!({"status": "CREATED", "run_id": run_id}))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_state(
        &mut self,
        namespace: &str,
        graph: &str,
        run_id: &str,
        node: &GraphNode,
        inputs: Map<String, Json>,
        parents: BTreeMap<String, String>,
        retry_count: u32,
        enqueue_after: u64,
    ) -> String {
        let id = self.id("state-");
        self.add_waiting(State {
            id,
            namespace: namespace.to_owned(),
            graph: graph.to_owned(),
            run_id: run_id.to_owned(),
            identifier: node.identifier.clone(),
            node_name: node.node_name.clone(),
            status: Status::Created,
            inputs,
            outputs: Map::new(),
            error: None,
            parents,
            retry_count,
            enqueue_after,
            lease_until: 0,
        })
    }

    /// A new waiting state like `old` (its retry, or `old` again after its
    /// lease passed): the same node, inputs and parents, `retry_count`, due
    /// at `enqueue_after`.
    fn again(&mut self, old: &State, retry_count: u32, enqueue_after: u64) -> String {
        let id = self.id("state-");
        self.add_waiting(State {
            id,
            status: Status::Created,
            outputs: Map::new(),
            error: None,
            retry_count,
            enqueue_after,
            lease_until: 0,
            ..old.clone()
        })
    }

    /// Records `state` as waiting to be handed out; its id.
    fn add_waiting(&mut self, state: State) -> String {
        let id = state.id.clone();
        self.touch(&id);
        self.by_run
            .entry(state.run_id.clone())
            .or_default()
            .insert(id.clone());
        self.states.insert(id.clone(), state);
        self.created.push_back(id.clone());
        id
    }

    /// `POST /states/enqueue`: hands out up to `batch_size` states of
    /// `nodes` that are due, each held for [`lease`](Self::lease). States
    /// whose lease passed are put back first, as new states.
    pub fn enqueue(
        &mut self,
        namespace: &str,
        nodes: &[String],
        batch_size: usize,
        now: u64,
    ) -> Vec<HandedOut> {
        self.expire_leases(now);
        let mut handed = Vec::new();
        let mut kept = VecDeque::new();
        while let Some(id) = self.created.pop_front() {
            let Some(state) = self.states.get_mut(&id) else {
                continue;
            };
            if state.status != Status::Created {
                continue;
            }
            let due = state.enqueue_after <= now;
            if handed.len() < batch_size
                && due
                && state.namespace == namespace
                && nodes.contains(&state.node_name)
            {
                state.status = Status::Queued;
                state.lease_until = now + self.lease;
                self.leases.insert((state.lease_until, state.id.clone()));
                self.dirty.insert((Kind::State, state.id.clone()));
                handed.push(HandedOut {
                    state_id: state.id.clone(),
                    node_name: state.node_name.clone(),
                    identifier: state.identifier.clone(),
                    inputs: state.inputs.clone(),
                    created_at: now,
                });
            } else {
                kept.push_back(id);
            }
        }
        self.created = kept;
        handed
    }

    /// Hands out due states of `nodes` in any namespace, up to `limit`,
    /// leased as [`enqueue`](Self::enqueue) does: the hub's own runs of its
    /// uploaded nodes, which every namespace of the account shares.
    pub fn take_due(
        &mut self,
        nodes: &BTreeSet<String>,
        limit: usize,
        now: u64,
    ) -> Vec<(String, HandedOut)> {
        let namespaces: BTreeSet<String> = self
            .created
            .iter()
            .filter_map(|id| self.states.get(id))
            .filter(|state| nodes.contains(&state.node_name))
            .map(|state| state.namespace.clone())
            .collect();
        let names: Vec<String> = nodes.iter().cloned().collect();
        let mut taken = Vec::new();
        for namespace in namespaces {
            let room = limit.saturating_sub(taken.len());
            if room == 0 {
                break;
            }
            for state in self.enqueue(&namespace, &names, room, now) {
                taken.push((namespace.clone(), state));
            }
        }
        taken
    }

    /// When the next state of `nodes` that waits (a retry's delay, a
    /// re-enqueue-after) comes due, if one does.
    pub fn next_due(&self, nodes: &BTreeSet<String>, now: u64) -> Option<u64> {
        self.created
            .iter()
            .filter_map(|id| self.states.get(id))
            .filter(|state| {
                state.status == Status::Created
                    && nodes.contains(&state.node_name)
                    && state.enqueue_after > now
            })
            .map(|state| state.enqueue_after)
            .min()
    }

    /// The states of run `run_id`.
    fn states_of<'a>(&'a self, run_id: &str) -> impl Iterator<Item = &'a State> + 'a {
        self.by_run
            .get(run_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.states.get(id))
    }

    /// Whether no state of the run waits, runs or is being followed up.
    fn run_finished(&self, run_id: &str) -> bool {
        self.states_of(run_id).all(|state| {
            !matches!(
                state.status,
                Status::Created | Status::Queued | Status::Executed
            )
        })
    }

    /// Notes run `run_id` as finished if it is, and lets the oldest
    /// finished runs go beyond [`keep_runs`](Self::keep_runs).
    fn retire(&mut self, run_id: &str) {
        if self.finished.iter().any(|id| id == run_id) || !self.run_finished(run_id) {
            return;
        }
        self.finished.push_back(run_id.to_owned());
        while self.finished.len() > self.keep_runs {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            for id in self.by_run.remove(&old).unwrap_or_default() {
                self.states.remove(&id);
                self.dirty.insert((Kind::State, id));
            }
            self.runs.remove(&old);
            self.dirty.insert((Kind::Run, old.clone()));
            let joins: Vec<(String, String)> = self
                .united
                .iter()
                .filter(|(run, _)| *run == old)
                .cloned()
                .collect();
            for join in joins {
                self.dirty
                    .insert((Kind::United, pair_key(&join.0, &join.1)));
                self.united.remove(&join);
            }
        }
    }

    fn expire_leases(&mut self, now: u64) {
        let mut expired = Vec::new();
        while let Some((until, id)) = self.leases.first().cloned() {
            if until > now {
                break;
            }
            self.leases.pop_first();
            if self
                .states
                .get(&id)
                .is_some_and(|state| state.status == Status::Queued && state.lease_until == until)
            {
                expired.push(id);
            }
        }
        for id in expired {
            self.touch(&id);
            let old = self.states.get_mut(&id).expect("listed");
            old.status = Status::LeaseExpired;
            old.error = Some("its lease passed without a report; handed out again".into());
            let old = old.clone();
            self.again(&old, old.retry_count, now);
        }
    }

    /// The state `id` of `namespace`, queued to a runtime whose lease holds.
    fn queued(&mut self, namespace: &str, id: &str, now: u64) -> Result<&mut State, Refusal> {
        self.expire_leases(now);
        if self
            .states
            .get(id)
            .is_none_or(|state| state.namespace != namespace)
        {
            return Err(refuse(404, format!("State {id} not found")));
        }
        self.touch(id);
        let state = self.states.get_mut(id).expect("just found");
        match state.status {
            Status::Queued => Ok(state),
            Status::LeaseExpired => Err(refuse(
                409,
                format!(
                    "State {id}'s lease passed before this report; it was handed to another runtime"
                ),
            )),
            Status::Executed | Status::Success | Status::NextCreatedError => {
                Err(refuse(400, "State is already executed"))
            }
            _ => Err(refuse(400, "State is not queued")),
        }
    }

    /// `POST /state/{id}/executed`: the first output set is the state's,
    /// each further one a clone (fan-out); then the next states are made.
    pub fn executed(
        &mut self,
        namespace: &str,
        id: &str,
        outputs: Vec<Map<String, Json>>,
        now: u64,
    ) -> Result<Json, Refusal> {
        let state = self.queued(namespace, id, now)?;
        let mut sets = outputs.into_iter();
        state.outputs = sets.next().unwrap_or_default();
        state.status = Status::Executed;
        let original = state.clone();
        let mut executed = vec![original.id.clone()];
        for set in sets {
            let clone_id = self.id("state-");
            let mut clone = original.clone();
            clone.id = clone_id.clone();
            clone.outputs = set;
            self.touch(&clone_id);
            self.by_run
                .entry(clone.run_id.clone())
                .or_default()
                .insert(clone_id.clone());
            self.states.insert(clone_id.clone(), clone);
            executed.push(clone_id);
        }
        for state_id in executed {
            self.next_states(&state_id, now);
        }
        Ok(json!({"status": "EXECUTED"}))
    }

    /// Makes the next states of executed state `id` and marks it SUCCESS
    /// (or NEXT_CREATED_ERROR); then any join now due.
    fn next_states(&mut self, id: &str, now: u64) {
        let state = self.states[id].clone();
        let Some(run) = self.runs.get(&state.run_id).cloned() else {
            return;
        };
        let Some(graph) = self
            .graphs
            .get(&(run.namespace.clone(), run.graph.clone()))
            .cloned()
        else {
            return;
        };
        let node = graph
            .spec
            .nodes
            .iter()
            .find(|node| node.identifier == state.identifier);
        let mut parents = state.parents.clone();
        parents.insert(state.identifier.clone(), state.id.clone());
        let mut error = None;
        for next in node
            .and_then(|node| node.next_nodes.clone())
            .unwrap_or_default()
        {
            let Some(next_node) = graph.spec.nodes.iter().find(|node| node.identifier == next)
            else {
                continue;
            };
            if next_node.unites.is_some() {
                continue; // made by `unite` once its branches are done
            }
            match render(&next_node.inputs, &parents, &self.states, &run.store) {
                Ok(inputs) => {
                    let next_node = next_node.clone();
                    self.create_state(
                        &state.namespace,
                        &state.graph,
                        &state.run_id,
                        &next_node,
                        inputs,
                        parents.clone(),
                        0,
                        now,
                    );
                }
                Err(err) => error = Some(err),
            }
        }
        self.touch(id);
        let state = self.states.get_mut(id).expect("known");
        match error {
            None => state.status = Status::Success,
            Some(err) => {
                state.status = Status::NextCreatedError;
                state.error = Some(err);
            }
        }
        let run_id = state.run_id.clone();
        self.unite(&run_id, &graph, now);
        self.retire(&run_id);
    }

    /// Makes every `unites` node of the run whose branches are done: once
    /// per state of the node it unites (a node above a fan-out has one, so
    /// the join runs once; the fanning node itself has one per branch, as
    /// in the reference).
    fn unite(&mut self, run_id: &str, graph: &Graph, now: u64) {
        let Some(run) = self.runs.get(run_id).cloned() else {
            return;
        };
        for node in &graph.spec.nodes {
            let Some(unites) = &node.unites else {
                continue;
            };
            let anchors: Vec<String> = self
                .states_of(run_id)
                .filter(|state| {
                    state.identifier == unites.identifier && state.status == Status::Success
                })
                .map(|state| state.id.clone())
                .collect();
            for anchor_id in anchors {
                let key = (
                    run_id.to_owned(),
                    format!("{}@{anchor_id}", node.identifier),
                );
                if self.united.contains(&key) {
                    continue;
                }
                let descendants: Vec<&State> = self
                    .states_of(run_id)
                    .filter(|state| state.parents.get(&unites.identifier) == Some(&anchor_id))
                    .collect();
                let done = if unites.strategy == "ALL_DONE" {
                    descendants.iter().all(|state| {
                        !matches!(
                            state.status,
                            Status::Created | Status::Queued | Status::Executed
                        )
                    })
                } else {
                    descendants.iter().all(|state| {
                        matches!(
                            state.status,
                            Status::Success
                                | Status::RetryCreated
                                | Status::Pruned
                                | Status::LeaseExpired
                        )
                    })
                };
                if !done {
                    continue;
                }
                let mut parents = self.states[&anchor_id].parents.clone();
                parents.insert(unites.identifier.clone(), anchor_id.clone());
                if let Ok(inputs) = render(&node.inputs, &parents, &self.states, &run.store) {
                    self.dirty.insert((Kind::United, pair_key(&key.0, &key.1)));
                    self.united.insert(key);
                    self.create_state(
                        &run.namespace,
                        &run.graph,
                        run_id,
                        node,
                        inputs,
                        parents,
                        0,
                        now,
                    );
                }
            }
        }
    }

    /// `POST /state/{id}/errored`: retried per the graph's policy, or ERRORED.
    pub fn errored(
        &mut self,
        namespace: &str,
        id: &str,
        error: String,
        random: f64,
        now: u64,
    ) -> Result<Json, Refusal> {
        let state = self.queued(namespace, id, now)?;
        state.error = Some(error);
        let state = state.clone();
        let policy = self
            .graphs
            .get(&(state.namespace.clone(), state.graph.clone()))
            .and_then(|graph| graph.spec.retry_policy.clone())
            .unwrap_or_default();
        let retry = state.retry_count < policy.max_retries;
        if retry {
            let delay = policy.delay_ms(state.retry_count + 1, random);
            self.again(&state, state.retry_count + 1, now + delay);
        }
        self.states.get_mut(id).expect("known").status = if retry {
            Status::RetryCreated
        } else {
            Status::Errored
        };
        if let Some(graph) = self
            .graphs
            .get(&(state.namespace.clone(), state.graph.clone()))
            .cloned()
        {
            self.unite(&state.run_id, &graph, now);
        }
        self.retire(&state.run_id);
        Ok(json!({"status": "ERRORED", "retry_created": retry}))
    }

    /// `POST /state/{id}/prune`.
    pub fn prune(
        &mut self,
        namespace: &str,
        id: &str,
        data: Map<String, Json>,
        now: u64,
    ) -> Result<Json, Refusal> {
        let state = self.queued(namespace, id, now)?;
        state.status = Status::Pruned;
        state.outputs = data;
        let (run_id, graph) = (
            state.run_id.clone(),
            (state.namespace.clone(), state.graph.clone()),
        );
        if let Some(graph) = self.graphs.get(&graph).cloned() {
            self.unite(&run_id, &graph, now);
        }
        self.retire(&run_id);
        Ok(json!({"status": "PRUNED", "enqueue_after": 0}))
    }

    /// `POST /state/{id}/re-enqueue-after`: the same state back, later.
    pub fn requeue(
        &mut self,
        namespace: &str,
        id: &str,
        after: u64,
        now: u64,
    ) -> Result<Json, Refusal> {
        let state = self.queued(namespace, id, now)?;
        state.status = Status::Created;
        state.enqueue_after = now + after;
        let id = state.id.clone();
        self.created.push_back(id);
        Ok(json!({"status": "CREATED", "enqueue_after": now + after}))
    }

    /// The names of the secrets of the state's graph (`GET
    /// /state/{id}/secrets`; the values are the caller's to fill in).
    pub fn secret_names(&self, namespace: &str, id: &str) -> Result<Vec<String>, Refusal> {
        let state = self
            .states
            .get(id)
            .filter(|state| state.namespace == namespace)
            .ok_or_else(|| refuse(404, format!("State {id} not found")))?;
        let graph = self
            .graphs
            .get(&(state.namespace.clone(), state.graph.clone()))
            .ok_or_else(|| refuse(404, format!("Graph {} not found", state.graph)))?;
        Ok(graph.spec.secrets.keys().cloned().collect())
    }

    /// `GET /runs/{page}/{size}`: the namespace's runs, newest first, with
    /// counts of their states; `page` counts from 1.
    pub fn runs(&self, namespace: &str, page: usize, size: usize) -> Json {
        let mut runs: Vec<(&String, &Run)> = self
            .runs
            .iter()
            .filter(|(_, run)| run.namespace == namespace)
            .collect();
        runs.sort_by(|a, b| b.1.created_at.cmp(&a.1.created_at).then(b.0.cmp(a.0)));
        let total = runs.len();
        let size = size.clamp(1, 1_000);
        let listed: Vec<Json> = runs
            .into_iter()
            .skip(page.saturating_sub(1).saturating_mul(size))
            .take(size)
            .map(|(run_id, run)| {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for state in self.states_of(run_id) {
                    let bucket = match state.status {
                        Status::Success | Status::Pruned => "success_count",
                        Status::Errored | Status::NextCreatedError => "errored_count",
                        Status::RetryCreated | Status::LeaseExpired => "retried_count",
                        Status::Created | Status::Queued | Status::Executed => "pending_count",
                    };
                    *counts.entry(bucket).or_default() += 1;
                }
                let count = |name| counts.get(name).copied().unwrap_or(0);
                let status = if count("pending_count") > 0 {
                    "PENDING"
                } else if count("errored_count") > 0 {
                    "FAILED"
                } else {
                    "SUCCESS"
                };
                json!({
                    "run_id": run_id,
                    "graph_name": run.graph,
                    "created_at": run.created_at,
                    "status": status,
                    "success_count": count("success_count"),
                    "pending_count": count("pending_count"),
                    "errored_count": count("errored_count"),
                    "retried_count": count("retried_count"),
                    "total_count": counts.values().sum::<usize>(),
                })
            })
            .collect();
        json!({"namespace": namespace, "total": total, "page": page, "size": size, "runs": listed})
    }

    /// `GET /states/run/{run_id}/graph`: the run's states.
    pub fn run_states(&self, namespace: &str, run_id: &str) -> Result<Json, Refusal> {
        let run = self
            .runs
            .get(run_id)
            .filter(|run| run.namespace == namespace)
            .ok_or_else(|| refuse(404, format!("Run {run_id} not found")))?;
        let mut states: Vec<&State> = self.states_of(run_id).collect();
        states.sort_by(|a, b| a.id.cmp(&b.id));
        let states: Vec<Json> = states
            .into_iter()
            .map(|state| {
                json!({
                    "id": state.id,
                    "identifier": state.identifier,
                    "node_name": state.node_name,
                    "status": state.status,
                    "inputs": state.inputs,
                    "outputs": state.outputs,
                    "error": state.error,
                    "retry_count": state.retry_count,
                    "parents": state.parents,
                })
            })
            .collect();
        Ok(json!({
            "run_id": run_id,
            "graph_name": run.graph,
            "created_at": run.created_at,
            "states": states,
        }))
    }
}

/// The schedule of a trigger: `{"type": "CRON", "value": {"expression": …}}`.
fn cron_of(trigger: &Json) -> Result<super::cron::Schedule, String> {
    if trigger["type"] != "CRON" {
        return Err(format!(
            "trigger {trigger} is not of type CRON, the only type there is"
        ));
    }
    let expression = trigger["value"]["expression"]
        .as_str()
        .ok_or_else(|| format!("trigger {trigger} has no value.expression"))?;
    super::cron::Schedule::parse(expression).map_err(|err| format!("trigger `{expression}`: {err}"))
}

/// Every node reachable from `root`, with the identifiers above it; or the
/// identifier of a node on a cycle.
fn ancestors<'a>(
    by_id: &BTreeMap<&'a str, &'a GraphNode>,
    root: &'a str,
) -> Result<BTreeMap<&'a str, BTreeSet<&'a str>>, String> {
    // The reachable part, and how many edges come into each node of it.
    let mut reachable = BTreeSet::from([root]);
    let mut stack = vec![root];
    let mut incoming: BTreeMap<&str, usize> = BTreeMap::new();
    while let Some(id) = stack.pop() {
        for next in by_id[id].next_nodes.iter().flatten() {
            let next = next.as_str();
            *incoming.entry(next).or_default() += 1;
            if reachable.insert(next) {
                stack.push(next);
            }
        }
    }
    // Kahn's order: a node is taken once every edge into it is; what is
    // never taken lies on a cycle.
    let mut above: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::from([(root, BTreeSet::new())]);
    let mut ready = vec![root];
    let mut taken = 0;
    while let Some(id) = ready.pop() {
        taken += 1;
        let mut mine = above[id].clone();
        mine.insert(id);
        for next in by_id[id].next_nodes.iter().flatten() {
            let next = next.as_str();
            above.entry(next).or_default().extend(mine.iter().copied());
            let left = incoming.get_mut(next).expect("counted");
            *left -= 1;
            if *left == 0 {
                ready.push(next);
            }
        }
    }
    if taken < reachable.len() {
        let stuck = reachable
            .iter()
            .find(|id| incoming.get(*id).is_some_and(|left| *left > 0))
            .copied()
            .unwrap_or(root);
        return Err(stuck.to_owned());
    }
    Ok(above)
}

/// A placeholder in a template.
#[derive(Debug, Clone, PartialEq)]
enum Reference {
    /// `${{ id.outputs.field }}`.
    Output(String, String),
    /// `${{ store.key }}`.
    Store(String),
}

/// The placeholders of a template value (strings only).
fn references(template: &Json) -> Vec<Reference> {
    let Json::String(text) = template else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${{") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        let parts: Vec<&str> = inner.split('.').map(str::trim).collect();
        match parts.as_slice() {
            ["store", key] => found.push(Reference::Store((*key).to_owned())),
            [id, "outputs", field] => {
                found.push(Reference::Output((*id).to_owned(), (*field).to_owned()));
            }
            _ => {}
        }
        rest = &after[end + 2..];
    }
    found
}

/// `inputs` with every placeholder filled from the ancestors' outputs
/// (`parents`: identifier → state id) and the run's store.
fn render(
    inputs: &Map<String, Json>,
    parents: &BTreeMap<String, String>,
    states: &HashMap<String, State>,
    store: &BTreeMap<String, String>,
) -> Result<Map<String, Json>, String> {
    let mut rendered = Map::new();
    for (name, template) in inputs {
        let Json::String(text) = template else {
            rendered.insert(name.clone(), template.clone());
            continue;
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 3..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let inner = after[..end].trim();
            let parts: Vec<&str> = inner.split('.').map(str::trim).collect();
            let value = match parts.as_slice() {
                ["store", key] => store
                    .get(*key)
                    .cloned()
                    .ok_or_else(|| format!("store key `{key}` has no value in this run"))?,
                [id, "outputs", field] => {
                    let state = parents
                        .get(*id)
                        .and_then(|state_id| states.get(state_id))
                        .ok_or_else(|| format!("`{id}` is not an ancestor that ran"))?;
                    match state.outputs.get(*field) {
                        Some(Json::String(text)) => text.clone(),
                        Some(other) => other.to_string(),
                        None => {
                            return Err(format!("`{id}` has no output `{field}`"));
                        }
                    }
                }
                _ => return Err(format!("`${{{{ {inner} }}}}` is not a placeholder")),
            };
            out.push_str(&value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        rendered.insert(name.clone(), Json::from(out));
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> RegisteredNode {
        RegisteredNode {
            name: name.into(),
            namespace: "ns".into(),
            inputs_schema: json!({}),
            outputs_schema: json!({}),
            secrets: Vec::new(),
        }
    }

    fn graph_node(id: &str, name: &str, inputs: Json, next: &[&str]) -> GraphNode {
        GraphNode {
            node_name: name.into(),
            namespace: "ns".into(),
            identifier: id.into(),
            inputs: inputs.as_object().cloned().unwrap_or_default(),
            next_nodes: (!next.is_empty()).then(|| next.iter().map(|s| (*s).to_owned()).collect()),
            unites: None,
        }
    }

    fn spec(nodes: Vec<GraphNode>) -> GraphSpec {
        GraphSpec {
            secrets: BTreeMap::new(),
            nodes,
            retry_policy: None,
            store_config: Some(StoreConfig {
                required_keys: vec!["greeting".into()],
                default_values: BTreeMap::new(),
            }),
            triggers: None,
        }
    }

    /// start → split → (fan-out) echo ×3 → join (unites start: once).
    fn manager() -> Manager {
        let mut manager = Manager::default();
        manager.register(
            "ns",
            vec![node("start"), node("split"), node("echo"), node("join")],
        );
        let mut join = graph_node(
            "join",
            "join",
            json!({"from": "${{ start.outputs.word }}"}),
            &[],
        );
        join.unites = Some(Unites {
            identifier: "start".into(),
            strategy: "ALL_SUCCESS".into(),
        });
        let graph = spec(vec![
            graph_node(
                "start",
                "start",
                json!({"word": "${{ store.greeting }}"}),
                &["split"],
            ),
            graph_node(
                "split",
                "split",
                json!({"text": "${{ start.outputs.word }}"}),
                &["echo"],
            ),
            graph_node(
                "echo",
                "echo",
                json!({"value": "${{ store.greeting }}: ${{ split.outputs.item }}"}),
                &["join"],
            ),
            join,
        ]);
        let stored = manager.upsert_graph("ns", "g", graph, 1).unwrap();
        assert_eq!(stored["validation_status"], "VALID", "{stored}");
        manager
    }

    /// Starts a run of graph `g` with `greeting` = `hi` at `now`; its id.
    fn start_run(manager: &mut Manager, now: u64) -> String {
        let store = [("greeting".to_owned(), "hi".to_owned())].into();
        let run = manager
            .trigger("ns", "g", BTreeMap::new(), store, 0, now)
            .unwrap();
        run["run_id"].as_str().unwrap().to_owned()
    }

    #[test]
    fn a_run_flows_through_fan_out_templates_and_a_join() {
        let mut manager = manager();
        let run_id = start_run(&mut manager, 10);
        let start = manager.enqueue("ns", &["start".into()], 16, 10);
        assert_eq!(start[0].inputs["word"], "hi");
        let word = Map::from_iter([("word".to_owned(), Json::from("hi"))]);
        manager
            .executed("ns", &start[0].state_id, vec![word], 10)
            .unwrap();
        let split = manager.enqueue("ns", &["split".into()], 16, 10);
        assert_eq!(split.len(), 1);
        assert_eq!(split[0].inputs["text"], "hi");
        let sets = ["a", "b", "c"]
            .iter()
            .map(|item| Map::from_iter([("item".to_owned(), Json::from(*item))]))
            .collect();
        manager
            .executed("ns", &split[0].state_id, sets, 11)
            .unwrap();
        let echoes = manager.enqueue("ns", &["echo".into(), "join".into()], 16, 12);
        let mut values: Vec<&str> = echoes
            .iter()
            .map(|s| s.inputs["value"].as_str().unwrap())
            .collect();
        values.sort();
        assert_eq!(values, ["hi: a", "hi: b", "hi: c"]);
        assert!(
            echoes.iter().all(|state| state.node_name == "echo"),
            "the join waits"
        );
        for (i, echo) in echoes.iter().enumerate() {
            assert_eq!(
                manager.enqueue("ns", &["join".into()], 16, 13),
                [],
                "not before every branch is done"
            );
            manager
                .executed("ns", &echo.state_id, vec![Map::new()], 13 + i as u64)
                .unwrap();
        }
        let join = manager.enqueue("ns", &["join".into()], 16, 20);
        assert_eq!(join.len(), 1, "the join runs once");
        assert_eq!(join[0].inputs["from"], "hi");
        manager
            .executed("ns", &join[0].state_id, vec![Map::new()], 21)
            .unwrap();
        let states = manager.run_states("ns", &run_id).unwrap();
        let statuses: Vec<&str> = states["states"]
            .as_array()
            .unwrap()
            .iter()
            .map(|state| state["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses.len(), 8, "{states}");
        assert!(
            statuses.iter().all(|status| *status == "SUCCESS"),
            "{states}"
        );
    }

    /// The saved records of `manager`, as the store gives them back.
    fn saved(manager: &mut Manager, records: &mut BTreeMap<(String, String), String>) {
        for change in manager.take_changes() {
            let key = (change.kind.as_str().to_owned(), change.key);
            match change.body {
                Some(body) => records.insert(key, body),
                None => records.remove(&key),
            };
        }
    }

    #[test]
    fn a_run_goes_on_after_a_restart_from_the_saved_records() {
        let mut records = BTreeMap::new();
        let mut manager = manager();
        start_run(&mut manager, 10);
        let start = manager.enqueue("ns", &["start".into()], 16, 10);
        let word = Map::from_iter([("word".to_owned(), Json::from("hi"))]);
        manager
            .executed("ns", &start[0].state_id, vec![word], 11)
            .unwrap();
        let split = manager.enqueue("ns", &["split".into()], 16, 12);
        saved(&mut manager, &mut records);
        assert!(manager.take_changes().is_empty(), "nothing changed since");

        let rows = records
            .iter()
            .map(|((kind, key), body)| (kind.clone(), key.clone(), body.clone()))
            .collect();
        let (mut restarted, skipped) = Manager::restore(DEFAULT_LEASE_MS, rows);
        assert_eq!(skipped, 0);
        // The state handed out before the restart is still its runtime's.
        let sets = ["a", "b"]
            .iter()
            .map(|item| Map::from_iter([("item".to_owned(), Json::from(*item))]))
            .collect();
        restarted
            .executed("ns", &split[0].state_id, sets, 13)
            .unwrap();
        let echoes = restarted.enqueue("ns", &["echo".into()], 16, 14);
        assert_eq!(echoes.len(), 2);
        for echo in &echoes {
            restarted
                .executed("ns", &echo.state_id, vec![Map::new()], 15)
                .unwrap();
        }
        assert_eq!(restarted.enqueue("ns", &["join".into()], 16, 16).len(), 1);
        assert!(restarted.graph("ns", "g").is_some());
    }

    #[test]
    fn the_oldest_finished_runs_go_beyond_the_kept_count() {
        let mut manager = manager();
        manager.keep_runs = 2;
        let mut graph = spec(vec![graph_node("a", "split", json!({}), &[])]);
        graph.store_config = None;
        manager.upsert_graph("ns", "one", graph, 0).unwrap();
        let mut runs = Vec::new();
        for at in 0..4 {
            let run = manager
                .trigger("ns", "one", BTreeMap::new(), BTreeMap::new(), 0, at)
                .unwrap();
            runs.push(run["run_id"].as_str().unwrap().to_owned());
        }
        // A run still going is never dropped.
        let states = manager.enqueue("ns", &["split".into()], 3, 10);
        for state in &states {
            manager
                .executed("ns", &state.state_id, vec![Map::new()], 11)
                .unwrap();
        }
        let changes = manager.take_changes();
        assert_eq!(
            manager.runs("ns", 1, 10)["total"],
            3,
            "two finished kept, one going"
        );
        assert_eq!(manager.run_states("ns", &runs[0]).unwrap_err().status, 404);
        assert!(manager.run_states("ns", &runs[3]).is_ok(), "still going");
        assert!(
            changes.iter().any(|change| change.kind == Kind::Run
                && change.key == runs[0]
                && change.body.is_none()),
            "the dropped run is deleted from the store"
        );
    }

    #[test]
    fn cron_triggers_are_checked_and_fire_in_their_minute() {
        let mut manager = manager();
        let mut graph = spec(vec![graph_node("a", "split", json!({}), &[])]);
        graph.store_config = None;
        graph.triggers = Some(vec![
            json!({"type": "CRON", "value": {"expression": "*/10 * * * *"}}),
        ]);
        manager
            .upsert_graph("ns", "every-ten", graph.clone(), 0)
            .unwrap();
        graph.triggers = Some(vec![
            json!({"type": "CRON", "value": {"expression": "61 * * * *"}}),
        ]);
        let bad = manager.upsert_graph("ns", "bad", graph, 0).unwrap();
        assert_eq!(bad["validation_status"], "INVALID");
        assert!(
            bad["validation_errors"].to_string().contains("minute `61`"),
            "{bad}"
        );
        assert_eq!(
            manager.due_graphs(30),
            [("ns".to_owned(), "every-ten".to_owned())]
        );
        assert_eq!(manager.due_graphs(31), []);
    }

    #[test]
    fn bad_graphs_are_invalid_with_reasons() {
        let mut manager = manager();
        let cyclic = spec(vec![
            graph_node("a", "split", json!({}), &["b"]),
            graph_node("b", "echo", json!({"x": "${{ c.outputs.y }}"}), &["a"]),
            graph_node("c", "nope", json!({}), &["zzz"]),
        ]);
        let stored = manager.upsert_graph("ns", "bad", cyclic, 1).unwrap();
        assert_eq!(stored["validation_status"], "INVALID");
        let errors = stored["validation_errors"].to_string();
        assert!(errors.contains("`zzz`"), "{errors}");
        assert!(errors.contains("not registered"), "{errors}");
        let undeclared = spec(vec![graph_node(
            "a",
            "split",
            json!({"x": "${{ store.other }}"}),
            &[],
        )]);
        assert_eq!(
            manager
                .upsert_graph("ns", "bad2", undeclared, 1)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            manager
                .trigger("ns", "g", BTreeMap::new(), BTreeMap::new(), 0, 1)
                .unwrap_err()
                .status,
            400,
            "a required store key is missing"
        );
    }

    #[test]
    fn a_lease_that_passes_hands_the_state_out_again_and_refuses_the_late_report() {
        let mut manager = manager();
        manager.lease = 1_000;
        start_run(&mut manager, 0);
        let first = manager.enqueue("ns", &["start".into()], 16, 0);
        assert_eq!(manager.enqueue("ns", &["start".into()], 16, 999), []);
        let second = manager.enqueue("ns", &["start".into()], 16, 1_000);
        assert_eq!(second.len(), 1);
        assert_ne!(second[0].state_id, first[0].state_id);
        assert_eq!(second[0].inputs, first[0].inputs);
        let late = manager
            .executed("ns", &first[0].state_id, vec![Map::new()], 1_001)
            .unwrap_err();
        assert_eq!(late.status, 409, "{late}");
        let word = Map::from_iter([("word".to_owned(), Json::from("hi"))]);
        manager
            .executed("ns", &second[0].state_id, vec![word], 1_002)
            .unwrap();
        assert_eq!(manager.enqueue("ns", &["split".into()], 16, 1_002).len(), 1);
        assert_eq!(
            manager
                .executed("ns", &second[0].state_id, vec![Map::new()], 1_003)
                .unwrap_err()
                .detail,
            "State is already executed"
        );
    }

    #[test]
    fn failures_are_retried_by_policy_then_errored() {
        let mut manager = manager();
        let mut graph = spec(vec![graph_node("a", "split", json!({}), &[])]);
        graph.store_config = None;
        graph.retry_policy = Some(RetryPolicy {
            max_retries: 1,
            strategy: "FIXED".into(),
            backoff_factor: 200,
            exponent: 2,
            max_delay: None,
        });
        manager.upsert_graph("ns", "r", graph, 0).unwrap();
        manager
            .trigger("ns", "r", BTreeMap::new(), BTreeMap::new(), 0, 0)
            .unwrap();
        let first = manager.enqueue("ns", &["split".into()], 16, 0);
        let answer = manager
            .errored("ns", &first[0].state_id, "boom".into(), 0.5, 10)
            .unwrap();
        assert_eq!(answer["retry_created"], true);
        assert_eq!(
            manager.enqueue("ns", &["split".into()], 16, 209),
            [],
            "not before the delay"
        );
        let retry = manager.enqueue("ns", &["split".into()], 16, 210);
        assert_eq!(retry.len(), 1);
        let answer = manager
            .errored("ns", &retry[0].state_id, "boom".into(), 0.5, 300)
            .unwrap();
        assert_eq!(answer["retry_created"], false);
    }

    #[test]
    fn retry_delays_follow_the_strategies() {
        let policy = |strategy: &str| RetryPolicy {
            strategy: strategy.into(),
            backoff_factor: 1000,
            exponent: 3,
            max_delay: Some(5000),
            max_retries: 3,
        };
        assert_eq!(policy("EXPONENTIAL").delay_ms(1, 0.0), 1000);
        assert_eq!(policy("EXPONENTIAL").delay_ms(2, 0.0), 3000);
        assert_eq!(policy("EXPONENTIAL").delay_ms(3, 0.0), 5000, "capped");
        assert_eq!(policy("LINEAR").delay_ms(2, 0.0), 2000);
        assert_eq!(policy("FIXED").delay_ms(3, 0.0), 1000);
        assert_eq!(policy("FIXED_FULL_JITTER").delay_ms(1, 0.25), 250);
        assert_eq!(policy("FIXED_EQUAL_JITTER").delay_ms(1, 0.5), 750);
    }

    #[test]
    fn prune_and_requeue_move_the_state() {
        let mut manager = manager();
        start_run(&mut manager, 0);
        let split = manager.enqueue("ns", &["start".into()], 16, 0);
        manager.requeue("ns", &split[0].state_id, 1500, 10).unwrap();
        assert_eq!(manager.enqueue("ns", &["start".into()], 16, 1_509), []);
        let again = manager.enqueue("ns", &["start".into()], 16, 1_510);
        assert_eq!(again[0].state_id, split[0].state_id, "the same state");
        manager
            .prune("ns", &again[0].state_id, Map::new(), 1_511)
            .unwrap();
        assert_eq!(
            manager
                .prune("ns", &again[0].state_id, Map::new(), 1_512)
                .unwrap_err()
                .status,
            400
        );
    }
}
