//! Exosphere runtimes on the hub's state manager: node-host's runtime
//! (`run --exosphere`, the Rust `hello` component) against the SDK's
//! (`exospherehost` 0.0.3 `Runtime`, the same node in Python,
//! `tests/exosphere/sdk_hello.py`), same hub, same run, each in a namespace
//! of its own, both polling every 0.1 s when idle with `batch_size` 16.
//!
//! Each round triggers N runs of a graph at once and times until every
//! run's last state succeeded: a one-node graph (`hello`) and a chain of
//! three (`hello` → `hello` → `hello`, each greeting the previous shout).
//! Reported: states per second, and CPU time per state of the runtime and
//! of the hub (from /proc/PID/stat). Goal (issue "Exosphere nodes"): ≥ 3×
//! the SDK runtime's states per second at batch size 16.
//!
//! Run: `NODE_HOST_EXOSPHERE_PYTHON=$(tests/setup-venv tests/exosphere/requirements.txt
//! target/exosphere-venv) cargo bench -p node-host-e2e --bench exosphere [-- --runs 500]`

use std::time::{Duration, Instant};

use node_host_e2e::load::cpu_time;
use node_host_e2e::{Hub, START_BOUND, Service, guest, http, node_host, repo_root};
use serde_json::{Value, json};

fn api(hub: &Hub, namespace: &str, path: &str) -> String {
    format!("{}/v0/namespace/{namespace}{path}", hub.url)
}

/// A chain of `length` hello nodes in `namespace`.
fn chain(namespace: &str, length: usize) -> Value {
    let nodes: Vec<Value> = (0..length)
        .map(|i| {
            let name = if i == 0 {
                "${{ store.name }}".to_owned()
            } else {
                format!("${{{{ h{}.outputs.shout }}}}", i - 1)
            };
            let mut node = json!({"node_name": "hello", "namespace": namespace,
                "identifier": format!("h{i}"), "inputs": {"name": name}});
            if i + 1 < length {
                node["next_nodes"] = json!([format!("h{}", i + 1)]);
            }
            node
        })
        .collect();
    json!({"secrets": {}, "nodes": nodes, "store_config": {"required_keys": ["name"]}})
}

/// Whether every state of `run_id` is done and its last node succeeded.
fn finished(hub: &Hub, key: &str, namespace: &str, run_id: &str, last: &str) -> bool {
    let answer: Value = http()
        .get(api(hub, namespace, &format!("/states/run/{run_id}/graph")))
        .header("x-api-key", key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    answer["states"]
        .as_array()
        .unwrap()
        .iter()
        .any(|state| state["identifier"] == last && state["status"] == "SUCCESS")
}

/// Triggers `runs` runs of `graph` and waits until all finished; the
/// elapsed time and the CPU the runtime and the hub used.
fn round(
    hub: &Hub,
    key: &str,
    namespace: &str,
    graph: &str,
    last: &str,
    runs: usize,
    runtime: u32,
) -> (Duration, Duration, Duration) {
    let cpu_before = (cpu_time(runtime), cpu_time(hub.service.pid()));
    let started = Instant::now();
    let mut ids = Vec::with_capacity(runs);
    for i in 0..runs {
        let triggered: Value = http()
            .post(api(hub, namespace, &format!("/graph/{graph}/trigger")))
            .header("x-api-key", key)
            .json(&json!({"store": {"name": format!("n{i}")}}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        ids.push(triggered["run_id"].as_str().unwrap().to_owned());
    }
    // States are handed out oldest first: the last run finishes last.
    let bound = Instant::now();
    while !finished(hub, key, namespace, ids.last().unwrap(), last) {
        assert!(
            bound.elapsed() < Duration::from_secs(600),
            "the runs did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let cpu = (
        cpu_time(runtime) - cpu_before.0,
        cpu_time(hub.service.pid()) - cpu_before.1,
    );
    for id in &ids {
        assert!(
            finished(hub, key, namespace, id, last),
            "run {id} did not finish"
        );
    }
    (elapsed, cpu.0, cpu.1)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = node_host_e2e::load::count_arg(&args, "--runs", 500);
    let python = std::env::var_os("NODE_HOST_EXOSPHERE_PYTHON").expect(
        "set NODE_HOST_EXOSPHERE_PYTHON to the python that `tests/setup-venv tests/exosphere/requirements.txt DIR` prints",
    );
    let hub = Hub::start("bench-exosphere");
    let key = hub.token("bench", false);

    let mut ours = Service::start(
        node_host()
            .arg("run")
            .arg(guest("hello"))
            .args([
                "--exosphere",
                &hub.url,
                "--namespace",
                "nodehost",
                "--name",
                "rt",
            ])
            .args(["--batch-size", "16", "--poll-interval", "100ms"])
            .env("EXOSPHERE_API_KEY", &key),
    );
    ours.wait_for_line("Exosphere runtime", START_BOUND);
    let theirs = Service::start(
        std::process::Command::new(&python)
            .arg(repo_root().join("tests/exosphere/sdk_hello.py"))
            .args([&hub.url, &key, "sdk", "16"]),
    );
    // The SDK registers before it polls; wait until the graph validates.
    let started = Instant::now();
    loop {
        let stored: Value = http()
            .put(api(&hub, "sdk", "/graph/one"))
            .header("x-api-key", &key)
            .json(&chain("sdk", 1))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if stored["validation_status"] == "VALID" {
            break;
        }
        assert!(
            started.elapsed() < START_BOUND,
            "the SDK runtime never registered: {stored}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    hub.put_exosphere_graph(&key, "sdk", "three", &chain("sdk", 3));
    hub.put_exosphere_graph(&key, "nodehost", "one", &chain("nodehost", 1));
    hub.put_exosphere_graph(&key, "nodehost", "three", &chain("nodehost", 3));

    println!("| runtime | graph | runs | states/s | runtime CPU/state | hub CPU/state |");
    println!("|---|---|---|---|---|---|");
    let mut rates = Vec::new();
    for (graph, last, per_run) in [("one", "h0", 1), ("three", "h2", 3)] {
        let mut pair = Vec::new();
        for (name, namespace, pid) in [
            ("node-host", "nodehost", ours.pid()),
            ("SDK", "sdk", theirs.pid()),
        ] {
            let (elapsed, runtime_cpu, hub_cpu) =
                round(&hub, &key, namespace, graph, last, runs, pid);
            let states = (runs * per_run) as u32;
            let rate = f64::from(states) / elapsed.as_secs_f64();
            println!(
                "| {name} | {graph} | {runs} | {rate:.0} | {:.0?} | {:.0?} |",
                runtime_cpu / states,
                hub_cpu / states
            );
            pair.push(rate);
        }
        rates.push((graph, pair[0] / pair[1]));
    }
    for (graph, ratio) in rates {
        println!("graph `{graph}`: node-host's runtime {ratio:.1}× the SDK's states per second");
    }
}
