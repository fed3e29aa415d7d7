//! `node-host run --exosphere`: node-host as an Exosphere runtime, against
//! a scripted state manager that answers as the reference does (the
//! routes, bodies and status codes of `seed-protocols.md` §2) and records
//! every request, so that what node-host sends can be checked, and compared
//! with what Exosphere's own runtime (the `exospherehost` 0.0.3 SDK, in the
//! virtualenv `tests/setup-venv` makes) sends for the same states.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node_host_e2e::{Hub, START_BOUND, Service, guest, http, node_host, repo_root, run};
use serde_json::{Value, json};

const KEY: &str = "exo-key";
const NAMESPACE: &str = "tests";

/// One request the state manager got.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    /// What it was: `register`, `enqueue`, `secrets`, `executed`, `errored`,
    /// `prune` or `re-enqueue-after`.
    kind: String,
    /// The state it was about, if any.
    state: Option<String>,
    key: Option<String>,
    body: Value,
}

#[derive(Debug, Default)]
struct Script {
    /// States still to hand out.
    pending: VecDeque<Value>,
    requests: Vec<Request>,
    /// Kinds of request answered `500 text/plain` so many more times.
    faults: HashMap<String, usize>,
}

/// A scripted state manager on 127.0.0.1, stopped on drop.
struct StateManager {
    url: String,
    script: Arc<Mutex<Script>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl StateManager {
    fn start(states: Vec<Value>, faults: &[(&str, usize)]) -> Self {
        let script = Arc::new(Mutex::new(Script {
            pending: states.into(),
            faults: faults
                .iter()
                .map(|(kind, count)| ((*kind).to_owned(), *count))
                .collect(),
            ..Script::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = script.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(move |method, uri, headers, body| {
                    answer(shared.clone(), method, uri, headers, body)
                });
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            url,
            script,
            stop: Some(stop),
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.script.lock().unwrap().requests.clone()
    }

    /// The requests of `kind` once `count` of them have come, within a bound.
    fn wait_for(&self, kind: &str, count: usize) -> Vec<Request> {
        let started = Instant::now();
        loop {
            let found: Vec<Request> = self
                .requests()
                .into_iter()
                .filter(|request| request.kind == kind)
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{count} `{kind}` requests never came; got {:#?}",
                self.requests()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The body of the request of `kind` about `state`, waiting for it.
    fn report(&self, state: &str) -> (String, Value) {
        let started = Instant::now();
        loop {
            let reported = self.requests().into_iter().rev().find(|request| {
                request.state.as_deref() == Some(state) && request.kind != "secrets"
            });
            if let Some(request) = reported {
                return (request.kind, request.body);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "state {state} was never reported; got {:#?}",
                self.requests()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for StateManager {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The reference's answers, by route; faults first.
async fn answer(
    script: Arc<Mutex<Script>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    let prefix = format!("/v0/namespace/{NAMESPACE}/");
    let Some(route) = uri.path().strip_prefix(&prefix) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"detail": "Not Found"})),
        )
            .into_response();
    };
    let segments: Vec<&str> = route.split('/').collect();
    let (kind, state) = match segments.as_slice() {
        ["nodes", ""] => ("register".to_owned(), None),
        ["states", "enqueue"] => ("enqueue".to_owned(), None),
        ["state", id, what] => ((*what).to_owned(), Some((*id).to_owned())),
        _ => ("unknown".to_owned(), None),
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = headers
        .get("x-api-key")
        .and_then(|key| key.to_str().ok())
        .map(str::to_owned);
    let mut script = script.lock().unwrap();
    script.requests.push(Request {
        method: method.to_string(),
        kind: kind.clone(),
        state: state.clone(),
        key: key.clone(),
        body: body.clone(),
    });
    if key.as_deref() != Some(KEY) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"detail": "Invalid API key"})),
        )
            .into_response();
    }
    if let Some(left) = script.faults.get_mut(&kind)
        && *left > 0
    {
        *left -= 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
    }
    let answer = match kind.as_str() {
        "register" => json!({
            "runtime_name": body["runtime_name"],
            "registered_nodes": body["nodes"],
        }),
        "enqueue" => {
            let wanted = body["batch_size"].as_u64().unwrap_or(1) as usize;
            let count = wanted.min(script.pending.len());
            let states: Vec<Value> = script.pending.drain(..count).collect();
            json!({"count": states.len(), "namespace": NAMESPACE, "status": "QUEUED", "states": states})
        }
        "secrets" => json!({"secrets": {"api-key": "s3cret"}}),
        "executed" => json!({"status": "EXECUTED"}),
        "errored" => json!({"status": "ERRORED", "retry_created": false}),
        "prune" => json!({"status": "PRUNED", "enqueue_after": 0}),
        "re-enqueue-after" => json!({"status": "CREATED", "enqueue_after": body["enqueue_after"]}),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"detail": "Not Found"})),
            )
                .into_response();
        }
    };
    axum::Json(answer).into_response()
}

fn state(id: &str, node: &str, inputs: Value) -> Value {
    json!({
        "state_id": id,
        "node_name": node,
        "identifier": format!("{node}-1"),
        "inputs": inputs,
        "created_at": "2026-12-03T00:00:00Z",
    })
}

/// The splitter states both runtimes get.
fn splitter_states() -> Vec<Value> {
    vec![
        state("s1", "splitter", json!({"text": "a, b,c"})),
        state("s2", "splitter", json!({"text": "x", "mode": "prune"})),
        state("s3", "splitter", json!({"text": "x", "mode": "requeue"})),
        state("s4", "splitter", json!({"text": "x", "mode": "fail"})),
    ]
}

/// `node-host run --exosphere` serving `guests`.
fn runtime(manager: &StateManager, guests: &[&str], key: &str) -> Service {
    let mut command = node_host();
    command.arg("run");
    for name in guests {
        command.arg(guest(name));
    }
    command
        .args(["--exosphere", &manager.url, "--namespace", NAMESPACE])
        .args(["--name", "node-host-runtime", "--poll-interval", "100ms"])
        .env("EXOSPHERE_API_KEY", key);
    Service::start(&mut command)
}

#[test]
fn every_kind_of_state_is_run_and_reported() {
    let mut states = splitter_states();
    states.extend([
        state("s5", "hello", json!({"name": "Ada"})),
        state("s6", "secrets", json!({})),
        state("s7", "unknown", json!({"a": "b"})),
    ]);
    let manager = StateManager::start(states, &[]);
    let mut service = runtime(&manager, &["hello", "splitter", "secrets"], KEY);
    service.wait_for_line("Exosphere runtime", START_BOUND);

    let register = &manager.wait_for("register", 1)[0];
    assert_eq!(register.method, "PUT");
    assert_eq!(register.body["runtime_name"], "node-host-runtime");
    assert_eq!(register.body["runtime_namespace"], NAMESPACE);
    let nodes = register.body["nodes"].as_array().unwrap();
    let hello = nodes.iter().find(|node| node["name"] == "hello").unwrap();
    assert_eq!(
        hello["outputs_schema"],
        json!({"properties": {
            "greeting": {"title": "Greeting", "type": "string"},
            "shout": {"title": "Shout", "type": "string"}},
            "required": ["greeting", "shout"], "title": "Outputs", "type": "object"})
    );
    assert_eq!(hello["namespace"], NAMESPACE);
    let secrets = nodes.iter().find(|node| node["name"] == "secrets").unwrap();
    assert_eq!(secrets["secrets"], json!(["api-key"]));

    assert_eq!(
        manager.report("s1"),
        (
            "executed".to_owned(),
            json!({"outputs": [{"item": "a"}, {"item": "b"}, {"item": "c"}]})
        )
    );
    assert_eq!(
        manager.report("s2"),
        ("prune".to_owned(), json!({"data": {"pruned": "x"}}))
    );
    assert_eq!(
        manager.report("s3"),
        (
            "re-enqueue-after".to_owned(),
            json!({"enqueue_after": 1500})
        )
    );
    assert_eq!(
        manager.report("s4"),
        (
            "errored".to_owned(),
            json!({"error": "guest_error: bad_text: cannot split `x`"})
        )
    );
    assert_eq!(
        manager.report("s5"),
        (
            "executed".to_owned(),
            json!({"outputs": [{"greeting": "Hello Ada", "shout": "HELLO ADA"}]})
        )
    );
    // The declared secret from the state manager; the undeclared one null,
    // so left out.
    assert_eq!(
        manager.report("s6"),
        (
            "executed".to_owned(),
            json!({"outputs": [{"declared": "s3cret"}]})
        )
    );
    let (kind, body) = manager.report("s7");
    assert_eq!(kind, "errored");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown_node: "),
        "{body}"
    );
    let requests = manager.requests();
    assert!(
        requests
            .iter()
            .all(|request| request.key.as_deref() == Some(KEY)),
        "every request carries x-api-key"
    );
    // Secrets were asked for the node that declares them, and only it.
    let asked: Vec<_> = requests
        .iter()
        .filter(|request| request.kind == "secrets")
        .filter_map(|request| request.state.clone())
        .collect();
    assert_eq!(asked, ["s6"]);
    // Every poll asked for no more than the room it had.
    assert!(requests.iter().filter(|r| r.kind == "enqueue").all(|r| {
        let size = r.body["batch_size"].as_u64().unwrap();
        (1..=16).contains(&size) && r.body["nodes"].as_array().unwrap().len() == 3
    }));

    service.signal("TERM");
    assert_eq!(service.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn server_faults_never_stop_it_and_no_outcome_is_lost() {
    let manager = StateManager::start(
        vec![state("s1", "hello", json!({"name": "Bo"}))],
        &[("register", 2), ("enqueue", 2), ("executed", 3)],
    );
    let mut service = runtime(&manager, &["hello"], KEY);
    service.wait_for_line("Exosphere runtime", Duration::from_secs(60));
    // Three 500s with text bodies on the report: it was kept and sent again.
    let executed = manager.wait_for("executed", 4);
    assert!(
        executed
            .iter()
            .all(|request| request.state.as_deref() == Some("s1")
                && request.body
                    == json!({"outputs": [{"greeting": "Hello Bo", "shout": "HELLO BO"}]})),
        "{executed:#?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        manager
            .requests()
            .iter()
            .filter(|request| request.kind == "executed")
            .count(),
        4,
        "reported until taken, then never again"
    );
    let stderr = service.stderr();
    assert!(stderr.contains("kept, retrying"), "{stderr}");
    service.signal("TERM");
    assert_eq!(service.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn a_refused_key_is_fatal_with_a_clear_message() {
    let manager = StateManager::start(Vec::new(), &[]);
    let out = run(node_host()
        .arg("run")
        .arg(guest("hello"))
        .args(["--exosphere", &manager.url, "--namespace", NAMESPACE])
        .args(["--name", "rt", "--key", "wrong"]));
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("401"), "{}", out.stderr);
    assert!(out.stderr.contains("--key"), "{}", out.stderr);
    let twice = run(node_host()
        .arg("run")
        .arg(guest("hello"))
        .arg(guest("hello"))
        .args(["--exosphere", &manager.url, "--namespace", NAMESPACE])
        .args(["--name", "rt", "--key", KEY]));
    assert_ne!(twice.code, Some(0), "{twice:#?}");
    assert!(
        twice.stderr.contains("both named `hello`"),
        "{}",
        twice.stderr
    );
    let missing = run(node_host()
        .arg("run")
        .arg(guest("hello"))
        .args(["--exosphere", &manager.url, "--namespace", NAMESPACE])
        .args(["--name", "rt"])
        .env_remove("EXOSPHERE_API_KEY"));
    assert_ne!(missing.code, Some(0), "{missing:#?}");
    assert!(
        missing.stderr.contains("EXOSPHERE_API_KEY"),
        "{}",
        missing.stderr
    );
}

fn exosphere_python() -> PathBuf {
    node_host_e2e::python_from_env(
        "NODE_HOST_EXOSPHERE_PYTHON",
        "tests/exosphere/requirements.txt",
    )
}

#[test]
fn node_host_sends_what_exospheres_own_runtime_sends() {
    let ours = StateManager::start(splitter_states(), &[]);
    let theirs = StateManager::start(splitter_states(), &[]);
    let _node_host = runtime(&ours, &["splitter"], KEY);
    let _sdk = Service::start(
        Command::new(exosphere_python())
            .arg(repo_root().join("tests/exosphere/sdk_runtime.py"))
            .args([&theirs.url, NAMESPACE, "node-host-runtime", KEY]),
    );
    let register = |manager: &StateManager| {
        let request = manager.wait_for("register", 1).remove(0);
        (request.method, request.key, request.body)
    };
    assert_eq!(register(&ours), register(&theirs));
    for id in ["s1", "s2", "s3"] {
        assert_eq!(ours.report(id), theirs.report(id), "state {id}");
    }
    // A failure: both errored; the text is each runtime's own.
    let (ours_kind, ours_body) = ours.report("s4");
    let (theirs_kind, theirs_body) = theirs.report("s4");
    assert_eq!(
        (ours_kind.as_str(), theirs_kind.as_str()),
        ("errored", "errored")
    );
    assert_eq!(theirs_body, json!({"error": "cannot split `x`"}));
    assert!(
        ours_body["error"]
            .as_str()
            .unwrap()
            .ends_with("cannot split `x`"),
        "{ours_body}"
    );
    let enqueue = |manager: &StateManager| {
        let request = manager.wait_for("enqueue", 1).remove(0);
        (request.method, request.body["nodes"].clone())
    };
    assert_eq!(enqueue(&ours), enqueue(&theirs));
}

/// A state of a run, as `GET /states/run/{id}/graph` lists it.
fn run_states(hub: &Hub, key: &str, run_id: &str) -> Vec<Value> {
    let answer: Value = http()
        .get(format!(
            "{}/v0/namespace/{NAMESPACE}/states/run/{run_id}/graph",
            hub.url
        ))
        .header("x-api-key", key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    answer["states"].as_array().cloned().unwrap_or_default()
}

fn of<'a>(states: &'a [Value], identifier: &str, status: &str) -> Vec<&'a Value> {
    states
        .iter()
        .filter(|state| state["identifier"] == identifier && state["status"] == status)
        .collect()
}

/// Stores `graph` as `name` in the tests' namespace; asserts it is valid.
fn put_graph(hub: &Hub, key: &str, name: &str, graph: &Value) {
    hub.put_exosphere_graph(key, NAMESPACE, name, graph);
}

/// `split` (the `splitter` node, on the store's `names`) fanning out to
/// `greet` (the node `greeter`, greeting each item).
fn greetings_graph(greeter: &str) -> Value {
    json!({
        "nodes": [
            {"node_name": "splitter", "namespace": NAMESPACE, "identifier": "split",
             "inputs": {"text": "${{ store.names }}"}, "next_nodes": ["greet"]},
            {"node_name": greeter, "namespace": NAMESPACE, "identifier": "greet",
             "inputs": {"name": "${{ split.outputs.item }}"}},
        ],
        "store_config": {"required_keys": ["names"]},
    })
}

/// The greetings of the succeeded `greet` states, sorted.
fn greetings(states: &[Value]) -> Vec<&str> {
    let mut greetings: Vec<&str> = of(states, "greet", "SUCCESS")
        .iter()
        .map(|state| state["outputs"]["greeting"].as_str().unwrap())
        .collect();
    greetings.sort();
    greetings
}

/// Triggers graph `name` with `body`; the run's id.
fn trigger(hub: &Hub, key: &str, name: &str, body: &Value) -> String {
    let triggered: Value = http()
        .post(format!(
            "{}/v0/namespace/{NAMESPACE}/graph/{name}/trigger",
            hub.url
        ))
        .header("x-api-key", key)
        .json(body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    triggered["run_id"].as_str().expect("a run id").to_owned()
}

/// The run's states once `count` states of `identifier` succeeded (within
/// a bound).
fn wait_for_success(
    hub: &Hub,
    key: &str,
    run_id: &str,
    identifier: &str,
    count: usize,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let states = run_states(hub, key, run_id);
        if of(&states, identifier, "SUCCESS").len() >= count {
            return states;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{count} states of `{identifier}` never succeeded: {states:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_sdk_runs_a_whole_workflow_on_the_hub() {
    let hub = Hub::start("exosphere-sdk-flow");
    let key = hub.token("alice", false);
    let out = node_host_e2e::run_bounded(
        Command::new(exosphere_python())
            .arg(repo_root().join("tests/exosphere/sdk_flow.py"))
            .args([&hub.url, &key, NAMESPACE]),
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    let answer: Value = serde_json::from_str(out.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|err| panic!("{err}: {out:#?}"));
    let states = answer["states"].as_array().unwrap();
    // One split state per word (fan-out), each followed by its shout.
    assert_eq!(of(states, "split", "SUCCESS").len(), 3, "{answer:#}");
    let pruned = of(states, "shout", "PRUNED");
    assert_eq!(pruned.len(), 1, "{answer:#}");
    assert_eq!(pruned[0]["inputs"]["word"], "drop");
    // `later` asked to run again and then did: the same state, succeeded.
    let shouted: Vec<&Value> = of(states, "shout", "SUCCESS");
    let mut loud: Vec<&str> = shouted
        .iter()
        .map(|state| state["outputs"]["loud"].as_str().unwrap())
        .collect();
    loud.sort();
    assert_eq!(loud, ["ADA!", "LATER!"], "the secret reached the node");
    // Each flaky failed once, was retried by the graph's policy, and passed.
    assert_eq!(of(states, "flaky", "RETRY_CREATED").len(), 2, "{answer:#}");
    let done = of(states, "flaky", "SUCCESS");
    assert_eq!(done.len(), 2, "{answer:#}");
    assert!(done.iter().all(|state| state["retry_count"] == 1));
    // The graph's secret is one of the account's sealed secrets now.
    let secrets: Value = http()
        .get(format!("{}/api/secrets", hub.url))
        .bearer_auth(&key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(secrets["secrets"][0]["name"], "suffix", "{secrets}");
    // Another account sees nothing of it.
    let mallory = hub.token("mallory", false);
    let run_id = answer["run_id"].as_str().unwrap();
    let status = http()
        .get(format!(
            "{}/v0/namespace/{NAMESPACE}/states/run/{run_id}/graph",
            hub.url
        ))
        .header("x-api-key", &mallory)
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let wrong = http()
        .post(format!(
            "{}/v0/namespace/{NAMESPACE}/states/enqueue",
            hub.url
        ))
        .header("x-api-key", "nh_wrong")
        .json(&json!({"nodes": ["Split"], "batch_size": 1}))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().unwrap(),
        json!({"detail": "Invalid API key"})
    );
}

#[test]
fn node_hosts_runtime_runs_a_workflow_on_the_hub() {
    let hub = Hub::start("exosphere-node-host-flow");
    let key = hub.token("alice", false);
    let mut command = node_host();
    // A Rust node and a Python one, in one runtime.
    command
        .arg("run")
        .arg(guest("splitter"))
        .arg(guest("hello-python"))
        .args(["--exosphere", &hub.url, "--namespace", NAMESPACE])
        .args(["--name", "rt", "--poll-interval", "100ms"])
        .env("EXOSPHERE_API_KEY", &key);
    let mut runtime = Service::start(&mut command);
    runtime.wait_for_line("Exosphere runtime", START_BOUND);
    put_graph(&hub, &key, "greetings", &greetings_graph("hello-python"));
    let run_id = trigger(
        &hub,
        &key,
        "greetings",
        &json!({"store": {"names": "Ada,Bo,Cy"}}),
    );
    let states = wait_for_success(&hub, &key, &run_id, "greet", 3);
    assert_eq!(greetings(&states), ["Hello Ada", "Hello Bo", "Hello Cy"]);
    runtime.signal("TERM");
    assert_eq!(runtime.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn a_dead_runtimes_state_is_handed_out_again_and_reported_once() {
    let hub = Hub::start_with("exosphere-lease", &["--exosphere-lease", "1s"]);
    let key = hub.token("alice", false);
    let start_runtime = || {
        let mut command = node_host();
        command
            .arg("run")
            .arg(guest("hello"))
            .args(["--exosphere", &hub.url, "--namespace", NAMESPACE])
            .args(["--name", "rt", "--poll-interval", "100ms"])
            .env("EXOSPHERE_API_KEY", &key);
        let mut runtime = Service::start(&mut command);
        runtime.wait_for_line("Exosphere runtime", START_BOUND);
        runtime
    };
    // Registered, then gone.
    let mut runtime = start_runtime();
    runtime.signal("TERM");
    assert_eq!(runtime.wait_exit(Duration::from_secs(10)), Some(0));
    let api = |path: &str| format!("{}/v0/namespace/{NAMESPACE}{path}", hub.url);
    let graph = json!({"nodes": [{"node_name": "hello", "namespace": NAMESPACE,
        "identifier": "greet", "inputs": {"name": "Ada"}}]});
    put_graph(&hub, &key, "one", &graph);
    let run_id = trigger(&hub, &key, "one", &json!({}));
    // A runtime takes the state and dies without a word.
    let taken: Value = http()
        .post(api("/states/enqueue"))
        .header("x-api-key", &key)
        .json(&json!({"nodes": ["hello"], "batch_size": 1}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let lost = taken["states"][0]["state_id"].as_str().unwrap().to_owned();
    // A live runtime gets it once the lease has passed, and finishes it.
    let mut runtime = start_runtime();
    let started = Instant::now();
    let states = wait_for_success(&hub, &key, &run_id, "greet", 1);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not before the lease passed"
    );
    let done = of(&states, "greet", "SUCCESS");
    assert_eq!(done.len(), 1, "{states:#?}");
    assert_ne!(done[0]["id"], lost.as_str());
    assert_eq!(done[0]["outputs"]["greeting"], "Hello Ada");
    assert_eq!(
        of(&states, "greet", "LEASE_EXPIRED").len(),
        1,
        "{states:#?}"
    );
    // The dead runtime's late report is refused, and changes nothing.
    let late = http()
        .post(api(&format!("/state/{lost}/executed")))
        .header("x-api-key", &key)
        .json(&json!({"outputs": [{"greeting": "late"}]}))
        .send()
        .unwrap();
    assert_eq!(late.status(), 409);
    let detail = late.json::<Value>().unwrap()["detail"].to_string();
    assert!(detail.contains("lease"), "{detail}");
    assert_eq!(
        of(&run_states(&hub, &key, &run_id), "greet", "SUCCESS").len(),
        1
    );
    runtime.signal("TERM");
    assert_eq!(runtime.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn the_hub_runs_the_states_of_uploaded_nodes_itself() {
    let hub = Hub::start("exosphere-uploaded");
    let key = hub.token("alice", false);
    hub.upload(&key, "splitter").expect_success();
    hub.upload(&key, "hello").expect_success();
    let api = |path: &str| format!("{}/v0/namespace/{NAMESPACE}{path}", hub.url);
    put_graph(&hub, &key, "greetings", &greetings_graph("hello"));
    let run_id = trigger(
        &hub,
        &key,
        "greetings",
        &json!({"store": {"names": "Ada, Bo"}}),
    );
    // No runtime anywhere: the hub runs both nodes, fan-out included.
    let states = wait_for_success(&hub, &key, &run_id, "greet", 2);
    assert_eq!(greetings(&states), ["Hello Ada", "Hello Bo"]);
    let runs: Value = http()
        .get(api("/runs/1/10"))
        .header("x-api-key", &key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(runs["runs"][0]["run_id"], run_id.as_str(), "{runs:#}");
    assert_eq!(runs["runs"][0]["status"], "SUCCESS", "{runs:#}");
    assert_eq!(runs["runs"][0]["success_count"], 4, "{runs:#}");
    // The uploaded nodes' events are the account's, as any execute's.
    let logs: Value = http()
        .get(format!("{}/api/nodes/hello/logs", hub.url))
        .bearer_auth(&key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(logs["events"].as_array().map(Vec::len), Some(2), "{logs}");
}

#[test]
fn runs_survive_a_hub_restart() {
    let mut hub = Hub::start("exosphere-restart");
    let key = hub.token("alice", false);
    let post = |hub: &Hub, path: &str, body: Value| -> (u16, Value) {
        let response = http()
            .post(format!("{}/v0/namespace/{NAMESPACE}{path}", hub.url))
            .header("x-api-key", &key)
            .json(&body)
            .send()
            .unwrap();
        (response.status().as_u16(), response.json().unwrap())
    };
    // A runtime registers `hello` (as the SDK does) and takes the state.
    let registered = http()
        .put(format!("{}/v0/namespace/{NAMESPACE}/nodes/", hub.url))
        .header("x-api-key", &key)
        .json(
            &json!({"runtime_name": "rt", "runtime_namespace": NAMESPACE, "nodes": [{
            "name": "hello", "namespace": NAMESPACE, "inputs_schema": {}, "outputs_schema": {},
            "secrets": []}]}),
        )
        .send()
        .unwrap();
    assert_eq!(registered.status(), 200);
    let graph = json!({"nodes": [
        {"node_name": "hello", "namespace": NAMESPACE, "identifier": "a",
         "inputs": {"name": "Ada"}, "next_nodes": ["b"]},
        {"node_name": "hello", "namespace": NAMESPACE, "identifier": "b",
         "inputs": {"name": "${{ a.outputs.shout }}"}},
    ]});
    let stored = http()
        .put(format!("{}/v0/namespace/{NAMESPACE}/graph/two", hub.url))
        .header("x-api-key", &key)
        .json(&graph)
        .send()
        .unwrap();
    assert_eq!(stored.status(), 201);
    let (_, triggered) = post(&hub, "/graph/two/trigger", json!({}));
    let run_id = triggered["run_id"].as_str().unwrap().to_owned();
    let (_, taken) = post(
        &hub,
        "/states/enqueue",
        json!({"nodes": ["hello"], "batch_size": 4}),
    );
    let first = taken["states"][0]["state_id"].as_str().unwrap().to_owned();

    let data = hub.data.clone();
    hub.service.signal("TERM");
    hub.service.wait_exit(Duration::from_secs(30));
    drop(hub);
    let hub = Hub::start_at(&data, "127.0.0.1:0");

    // The state is still the runtime's: its report is taken, and the run
    // goes on from the saved graph and outputs.
    let (status, answer) = post(
        &hub,
        &format!("/state/{first}/executed"),
        json!({"outputs": [{"greeting": "Hello Ada", "shout": "HELLO ADA"}]}),
    );
    assert_eq!(status, 200, "{answer}");
    let (_, next) = post(
        &hub,
        "/states/enqueue",
        json!({"nodes": ["hello"], "batch_size": 4}),
    );
    assert_eq!(next["states"][0]["inputs"]["name"], "HELLO ADA", "{next}");
    let states = run_states(&hub, &key, &run_id);
    assert_eq!(of(&states, "a", "SUCCESS").len(), 1, "{states:#?}");
    assert_eq!(of(&states, "b", "QUEUED").len(), 1, "{states:#?}");
}

#[test]
fn a_runtime_killed_mid_state_leaves_it_to_another_which_runs_it_once() {
    // The lease outlasts the node's run (1 s), as it must: a state still
    // running when its lease passes is handed out again.
    let hub = Hub::start_with("exosphere-killed", &["--exosphere-lease", "2s"]);
    let key = hub.token("alice", false);
    let start_runtime = || {
        let mut command = node_host();
        command
            .arg("run")
            .arg(guest("sleeper"))
            .args(["--exosphere", &hub.url, "--namespace", NAMESPACE])
            .args([
                "--name",
                "rt",
                "--poll-interval",
                "100ms",
                "--timeout",
                "60s",
            ])
            .env("EXOSPHERE_API_KEY", &key);
        let mut runtime = Service::start(&mut command);
        runtime.wait_for_line("Exosphere runtime", START_BOUND);
        runtime
    };
    let first = start_runtime();
    let graph = json!({"nodes": [{"node_name": "sleeper", "namespace": NAMESPACE,
        "identifier": "nap", "inputs": {"millis": "1000"}}]});
    put_graph(&hub, &key, "nap", &graph);
    let run_id = trigger(&hub, &key, "nap", &json!({}));
    node_host_e2e::eventually(
        Duration::from_secs(10),
        "the first runtime takes the state",
        || of(&run_states(&hub, &key, &run_id), "nap", "QUEUED").len() == 1,
    );
    first.signal("KILL");
    let _second = start_runtime();
    wait_for_success(&hub, &key, &run_id, "nap", 1);
    // Give a late duplicate the time to show, were there one.
    std::thread::sleep(Duration::from_millis(300));
    let states = run_states(&hub, &key, &run_id);
    let done = of(&states, "nap", "SUCCESS");
    assert_eq!(done.len(), 1, "run once: {states:#?}");
    let slept: u64 = done[0]["outputs"]["slept"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(slept >= 1000, "{slept}");
    assert_eq!(of(&states, "nap", "LEASE_EXPIRED").len(), 1, "{states:#?}");
}
