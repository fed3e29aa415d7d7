//! End-to-end benchmark over loopback: a real hub, a real worker, and a load
//! generator calling `POST /api/remote_nodes/{node}/execute`.
//!
//! In one run it measures node-host's worker and the real hurozo 0.1.1
//! Python worker serving the same nodes on the same hub:
//! - `hello` at concurrency 1 and 64 (the per-event overhead);
//! - `work` at concurrency 64, 1 ms of CPU per event and 10 ms of waiting
//!   per event (where a sequential worker is the limit);
//! - node-host alone: `hello-python` from one caller, 2 ms apart (a light
//!   load, where each event takes an instance made ahead).
//!
//! and, as floors, a loopback round trip between two processes, a request
//! through the hub with no worker, and `hello` answered by a bare Rust
//! worker (no sandbox): the ceiling any worker can reach on this hub.
//!
//! Run: `NODE_HOST_HUROZO_PYTHON=$(tests/hurozo/setup-venv target/hurozo-venv)
//!       cargo bench -p node-host-e2e --bench e2e [-- --seconds 5] [--work-concurrency 64]
//!       [--worker node-host|hurozo|hub|bare] [--case TEXT]`
//! (`--worker` and `--case` keep only the workers and cases whose label
//! contains the text; the Python worker is needed only when it runs.)

use std::process::Command;
use std::time::Duration;

use node_host_e2e::load::{
    Measured, loopback_round_trips, measure, measure_hub_only, measure_paced, percentile,
};
use node_host_e2e::{Hub, Service, eventually, execute, repo_root, start_worker};
use serde_json::{Value, json};

struct Case {
    node: &'static str,
    label: &'static str,
    inputs: Value,
    concurrency: usize,
    /// What each caller waits before each call (zero: back to back).
    pause: Duration,
}

fn python_worker(hub: &Hub, token: &str, script: &str) -> Service {
    let python = std::env::var_os("NODE_HOST_HUROZO_PYTHON").expect(
        "set NODE_HOST_HUROZO_PYTHON to the python that `tests/hurozo/setup-venv DIR` prints",
    );
    Service::start(
        Command::new(python)
            .arg(repo_root().join("tests/hurozo").join(script))
            .env("HUROZO_TOKEN", token)
            .env("HUROZO_API_URL", &hub.url),
    )
}

fn ready(hub: &Hub, token: &str, node: &str, inputs: Value) {
    eventually(Duration::from_secs(60), "the worker answers", || {
        execute(&hub.url, token, node, json!({"inputs": inputs})).0 == 200
    });
}

/// The value after `flag` on the command line.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|arg| arg == flag)?;
    Some(
        args.get(at + 1)
            .unwrap_or_else(|| panic!("{flag} needs a value")),
    )
}

fn main() {
    node_host_e2e::load::echo_if_asked();
    node_host_e2e::load::bare_worker_if_asked();
    let args: Vec<String> = std::env::args().collect();
    let seconds = node_host_e2e::load::seconds_arg(&args);
    // Executors of node-host's worker for the `work` cases (one per event in flight by default).
    let work_concurrency = flag_value(&args, "--work-concurrency").unwrap_or("64");
    let worker_filter = flag_value(&args, "--worker").unwrap_or("");
    let case_filter = flag_value(&args, "--case").unwrap_or("");
    let hub = Hub::start("bench-e2e");
    let token = hub.token("bench", false);
    let hello = |concurrency| Case {
        node: "hello",
        label: "hello",
        inputs: json!({"name": "Ada"}),
        concurrency,
        pause: Duration::ZERO,
    };
    let work = |label, inputs| Case {
        node: "work",
        label,
        inputs,
        concurrency: 64,
        pause: Duration::ZERO,
    };
    let kept = |cases: Vec<Case>| -> Vec<Case> {
        cases
            .into_iter()
            .filter(|case| case.label.contains(case_filter))
            .collect()
    };
    let hello_cases = kept(vec![hello(1), hello(64)]);
    // A Python node under a light load: the events find the worker idle, so
    // each takes an instance made ahead.
    let python_cases = kept(vec![Case {
        node: "hello-python",
        label: "hello-python, 2 ms apart",
        inputs: json!({"name": "Ada"}),
        concurrency: 1,
        pause: Duration::from_millis(2),
    }]);
    let work_cases = kept(vec![
        work("work: 1 ms CPU", json!({"ms": 1})),
        work("work: 10 ms wait", json!({"ms": 10, "wait": true})),
    ]);

    let mut rows = Vec::new();
    let mut record = |worker: &str, case: &Case, measured: Measured| {
        eprintln!(
            "{worker:>22} {:<22} c={:<3} {:>9.0}/s p50 {:>9.1?} p99 {:>9.1?} errors {} CPU/event {:?}",
            case.label,
            case.concurrency,
            measured.per_second(),
            measured.percentile(0.50),
            measured.percentile(0.99),
            measured.errors,
            measured.cpu_per_event(),
        );
        rows.push((worker.to_owned(), case.label, case.concurrency, measured));
    };

    // The floors: one loopback hop to an idle peer, and a request through
    // the hub with no worker behind it.
    let floors = "hub only".contains(worker_filter) && "hello".contains(case_filter);
    let trips = floors.then(|| {
        let idle = loopback_round_trips(Duration::from_micros(200), 5_000);
        let busy = loopback_round_trips(Duration::ZERO, 5_000);
        (idle, busy)
    });
    if floors {
        for concurrency in [1, 64] {
            let floor = Case {
                node: "-",
                label: "GET /api/remote_nodes",
                inputs: json!(null),
                concurrency,
                pause: Duration::ZERO,
            };
            let pids = [hub.service.pid()];
            let measured = measure_hub_only(&hub.url, &token, concurrency, seconds, &pids);
            record("hub only (no worker)", &floor, measured);
        }
    }
    // Measures `cases` against the worker `process`, which serves them.
    let mut measure_cases = |worker: &str, process: Service, cases: &[Case]| {
        ready(&hub, &token, cases[0].node, cases[0].inputs.clone());
        let pids = [hub.service.pid(), process.pid()];
        for case in cases {
            let measured = if case.pause.is_zero() {
                measure(
                    &hub.url,
                    &token,
                    case.node,
                    &case.inputs,
                    case.concurrency,
                    seconds,
                    &pids,
                )
            } else {
                let (node, inputs) = (case.node, &case.inputs);
                measure_paced(&hub.url, &token, node, inputs, case.pause, seconds, &pids)
            };
            record(worker, case, measured);
        }
    };
    for (cases, guests, extra) in [
        (&hello_cases[..], &["hello"][..], &[][..]),
        (&python_cases[..], &["hello-python"][..], &[][..]),
        (
            &work_cases[..],
            &["work"][..],
            &["--concurrency", work_concurrency][..],
        ),
    ] {
        if cases.is_empty() || !"node-host".contains(worker_filter) {
            continue;
        }
        let process = start_worker(&hub.url, &token, guests, extra);
        measure_cases("node-host", process, cases);
    }
    // The ceiling of any worker on this hub and machine: `hello` answered
    // by a Rust process with no sandbox, one event at a time.
    const BARE: &str = "bare Rust worker (no sandbox)";
    const PYTHON: &str = "hurozo 0.1.1 (Python)";
    if !hello_cases.is_empty() && BARE.contains(worker_filter) {
        let process = node_host_e2e::load::start_bare_worker(&hub.url, &token);
        measure_cases(BARE, process, &hello_cases);
    }
    for (cases, script) in [
        (&hello_cases[..], "hello_node.py"),
        (&work_cases[..], "work_node.py"),
    ] {
        if cases.is_empty() || !"hurozo".contains(worker_filter) {
            continue;
        }
        let process = python_worker(&hub, &token, script);
        measure_cases(PYTHON, process, cases);
    }

    if let Some((idle, busy)) = trips {
        println!("| loopback TCP round trip (100 bytes, echo process) | p50 | p99 |");
        println!("|---|---|---|");
        for (label, trips) in [
            ("peer idle 200 µs before each", idle),
            ("back to back", busy),
        ] {
            println!(
                "| {label} | {:.1?} | {:.1?} |",
                percentile(&trips, 0.50),
                percentile(&trips, 0.99)
            );
        }
        println!();
    }
    println!(
        "| worker | node | concurrency | events/s | p50 | p99 | errors | CPU per event: hub / worker / load generator |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (worker, label, concurrency, measured) in &rows {
        let cpu: Vec<String> = measured
            .cpu_per_event()
            .iter()
            .map(|cpu| format!("{:.0} µs", cpu.as_secs_f64() * 1e6))
            .collect();
        let cpu = match cpu.as_slice() {
            [hub, loader] => format!("{hub} / - / {loader}"),
            all => all.join(" / "),
        };
        println!(
            "| {worker} | {label} | {concurrency} | {:.0} | {:.1?} | {:.1?} | {} | {cpu} |",
            measured.per_second(),
            measured.percentile(0.50),
            measured.percentile(0.99),
            measured.errors
        );
    }
    // Each worker's `hello` throughput at concurrency 64 against the Python
    // worker's, on the same hub in this run.
    let hello_64 = |worker: &str| {
        rows.iter()
            .find(|(name, label, concurrency, _)| {
                name == worker && *label == "hello" && *concurrency == 64
            })
            .map(|(_, _, _, measured)| measured.per_second())
    };
    if let Some(python) = hello_64(PYTHON) {
        println!();
        for worker in ["node-host", BARE] {
            if let Some(events) = hello_64(worker) {
                println!(
                    "{worker}: {:.2}x the Python worker's events/s for `hello` at concurrency 64",
                    events / python
                );
            }
        }
    }
}
