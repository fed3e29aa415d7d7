//! End-to-end benchmark over loopback: a real hub, real workers, and the
//! load generator (`node_host_e2e::load`) calling
//! `POST /api/remote_nodes/{node}/execute`.
//!
//! `hello` is served at once, on the same hub, by three workers, each under
//! an account of its own so that each gets its own calls: node-host's
//! worker, the real hurozo 0.1.1 Python worker, and a bare Rust worker (no
//! sandbox, no interpreter: the ceiling of any worker on this hub). Their
//! callers speak HTTP/1.1, a connection each (as curl or a Python client
//! does); a second node-host worker is called over HTTP/2, the callers'
//! requests spread over 4 connections (as a platform's backend sending many
//! events at once would). Each
//! is measured at concurrency 1, 4, 16 and 64, the workers taking turns,
//! for `--rounds` rounds; the table gives the median of the rounds. Then,
//! node-host against the Python worker once each:
//! - `work` at concurrency 64, 1 ms of CPU per event and 10 ms of waiting
//!   per event (where a sequential worker is the limit);
//! - node-host alone: `hello-python` from one caller, 2 ms apart (a light
//!   load, where each event takes an instance made ahead).
//!
//! As floors: a loopback round trip between two processes, and a request
//! through the hub with no worker.
//!
//! It writes `latency.svg` (p50 and p99 against concurrency, per worker)
//! and `cpu.svg` (CPU per `hello` event at concurrency 64, stacked by
//! process) into `--plots DIR` (default `docs/bench`, only for a whole run:
//! a run cut down by a filter or changed by `--hub-flags` draws no plots
//! unless given `--plots`, so that it never overwrites the committed ones).
//!
//! Run: `NODE_HOST_HUROZO_PYTHON=$(tests/hurozo/setup-venv target/hurozo-venv)
//!       cargo bench -p node-host-e2e --bench e2e [-- --seconds 5] [--rounds 3]
//!       [--work-concurrency 64] [--worker node-host|HTTP/2|hurozo|hub|bare] [--case TEXT]
//!       [--callers N] [--plots DIR]`
//! (`--worker` and `--case` keep only the workers and cases whose label
//! contains the text, `--callers` only the `hello` rounds at that
//! concurrency, to profile one; the Python worker is needed only when it
//! runs.)

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use node_host_e2e::load::{
    Measured, Transport, count_arg, loopback_round_trips, measure, measure_hub_only, measure_over,
    measure_paced, percentile,
};
use node_host_e2e::plots::{Bar, LatencySeries};
use node_host_e2e::{Hub, Service, eventually, execute, plots, repo_root, start_worker};
use serde_json::{Value, json};

/// The concurrencies `hello` is measured at.
const CONCURRENCIES: [usize; 4] = [1, 4, 16, 64];

const NODE_HOST: &str = "node-host";
/// node-host's worker again, its callers' requests over HTTP/2.
const NODE_HOST_H2: &str = "node-host, callers on HTTP/2";
/// The HTTP/2 callers' connections: the callers take them in turn.
const H2_CONNECTIONS: usize = 4;
const BARE: &str = "bare Rust worker (no sandbox)";
const PYTHON: &str = "hurozo 0.1.1 (Python)";
/// The hub answering a request of its own, no worker behind it.
const HUB_ONLY: &str = "hub only (no worker)";
/// Not the hub: a hyper server answering every request at once.
const BARE_HTTP: &str = "bare HTTP server (hyper, no hub)";
/// `hello` uploaded to the hub: the hub runs each event in its own sandbox.
const UPLOADED: &str = "uploaded to the hub (no worker)";

struct Case {
    node: &'static str,
    label: &'static str,
    inputs: Value,
    concurrency: usize,
    /// What each caller waits before each call (zero: back to back).
    pause: Duration,
}

/// A worker serving `hello` for the account of `token`.
struct HelloWorker {
    label: &'static str,
    token: String,
    /// `None` for a node uploaded to the hub, which runs it itself.
    process: Option<Service>,
    /// How its callers reach the hub.
    transport: Transport,
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

/// One row of the table: the median of its rounds.
struct Row {
    worker: &'static str,
    case: &'static str,
    concurrency: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
    /// Per event: the hub's, the worker's (if any), the load generator's.
    cpu: Vec<Duration>,
}

impl Row {
    fn of(worker: &'static str, case: &Case, rounds: &[Measured]) -> Self {
        let median_f = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let median = |mut values: Vec<Duration>| {
            values.sort();
            values[values.len() / 2]
        };
        let width = rounds[0].cpu.len();
        Row {
            worker,
            case: case.label,
            concurrency: case.concurrency,
            per_second: median_f(rounds.iter().map(Measured::per_second).collect()),
            p50: median(rounds.iter().map(|m| m.percentile(0.50)).collect()),
            p99: median(rounds.iter().map(|m| m.percentile(0.99)).collect()),
            errors: rounds.iter().map(|m| m.errors).sum(),
            cpu: (0..width)
                .map(|at| median(rounds.iter().map(|m| m.cpu_per_event()[at]).collect()))
                .collect(),
        }
    }

    fn print(&self) {
        let cpu: Vec<String> = self
            .cpu
            .iter()
            .map(|cpu| format!("{:.1} µs", cpu.as_secs_f64() * 1e6))
            .collect();
        let cpu = match cpu.as_slice() {
            [hub, loader] => format!("{hub} / - / {loader}"),
            all => all.join(" / "),
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.1?} | {:.1?} | {} | {cpu} |",
            self.worker,
            self.case,
            self.concurrency,
            self.per_second,
            self.p50,
            self.p99,
            self.errors
        );
    }
}

fn log(worker: &str, case: &Case, measured: &Measured) {
    eprintln!(
        "{worker:>30} {:<22} c={:<3} {:>9.0}/s p50 {:>9.1?} p99 {:>9.1?} errors {} CPU/event {:?}",
        case.label,
        case.concurrency,
        measured.per_second(),
        measured.percentile(0.50),
        measured.percentile(0.99),
        measured.errors,
        measured.cpu_per_event(),
    );
}

fn main() {
    node_host_e2e::load::echo_if_asked();
    node_host_e2e::load::bare_worker_if_asked();
    node_host_e2e::load::bare_http_if_asked();
    let args: Vec<String> = std::env::args().collect();
    let seconds = node_host_e2e::load::seconds_arg(&args);
    let rounds = count_arg(&args, "--rounds", 3).max(1);
    // Executors of node-host's worker for the `work` cases (one per event in flight by default).
    let work_concurrency = flag_value(&args, "--work-concurrency").unwrap_or("64");
    let worker_filter = flag_value(&args, "--worker").unwrap_or("");
    let case_filter = flag_value(&args, "--case").unwrap_or("");
    let partial = ["--worker", "--case", "--callers", "--hub-flags"]
        .iter()
        .any(|flag| flag_value(&args, flag).is_some());
    let plots_dir = match flag_value(&args, "--plots") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => (!partial).then(|| repo_root().join("docs/bench")),
    };
    // `--hub-flags "--history-events 0"`: the hub run otherwise (to weigh
    // what a feature costs, say).
    let hub_flags: Vec<&str> = flag_value(&args, "--hub-flags")
        .map(|flags| flags.split_whitespace().collect())
        .unwrap_or_default();
    let hub = Hub::start_with("bench-e2e", &hub_flags);
    let wanted = |worker: &str| worker.contains(worker_filter);
    let hello = |concurrency| Case {
        node: "hello",
        label: "hello",
        inputs: json!({"name": "Ada"}),
        concurrency,
        pause: Duration::ZERO,
    };
    let callers = flag_value(&args, "--callers").map(|n| {
        n.parse::<usize>()
            .unwrap_or_else(|_| panic!("--callers takes a number, not {n:?}"))
    });
    let hello_cases: Vec<Case> = if "hello".contains(case_filter) {
        CONCURRENCIES
            .into_iter()
            .filter(|c| callers.is_none_or(|n| n == *c))
            .map(hello)
            .collect()
    } else {
        Vec::new()
    };

    // The floors: one loopback hop to an idle peer, and a request through
    // the hub with no worker behind it.
    let floors = wanted("hub only") && !hello_cases.is_empty();
    let trips = floors.then(|| {
        let idle = loopback_round_trips(Duration::from_micros(200), 5_000);
        let busy = loopback_round_trips(Duration::ZERO, 5_000);
        (idle, busy)
    });
    let mut rows = Vec::new();
    if floors {
        let token = hub.token("floor", false);
        // Below the hub: what any HTTP server pays here for a request.
        let (server, bare_url) = node_host_e2e::load::start_bare_http();
        let servers = [
            (
                HUB_ONLY,
                "GET /api/remote_nodes",
                &hub.url,
                hub.service.pid(),
            ),
            (BARE_HTTP, "GET, a fixed answer", &bare_url, server.pid()),
        ];
        for (label, request, url, pid) in servers {
            for concurrency in [1, 64] {
                let floor = Case {
                    node: "-",
                    label: request,
                    inputs: json!(null),
                    concurrency,
                    pause: Duration::ZERO,
                };
                let measured = measure_hub_only(url, &token, concurrency, seconds, &[pid]);
                log(label, &floor, &measured);
                rows.push(Row::of(label, &floor, &[measured]));
            }
        }
    }

    // `hello` from the three workers at once, each under its own account,
    // taking turns round after round.
    let mut workers = Vec::new();
    if !hello_cases.is_empty() {
        for (label, account) in [
            (NODE_HOST, "node-host"),
            (NODE_HOST_H2, "node-host-h2"),
            (BARE, "bare"),
            (PYTHON, "python"),
            (UPLOADED, "uploaded"),
        ] {
            if !wanted(label) {
                continue;
            }
            let token = hub.token(account, false);
            let process = match label {
                NODE_HOST | NODE_HOST_H2 => Some(start_worker(&hub.url, &token, &["hello"], &[])),
                BARE => Some(node_host_e2e::load::start_bare_worker(&hub.url, &token)),
                PYTHON => Some(python_worker(&hub, &token, "hello_node.py")),
                _ => {
                    hub.upload(&token, "hello").expect_success();
                    None
                }
            };
            let transport = match label {
                NODE_HOST_H2 => Transport::Http2 {
                    connections: H2_CONNECTIONS,
                },
                _ => Transport::Http1,
            };
            workers.push(HelloWorker {
                label,
                token,
                process,
                transport,
            });
        }
    }
    for worker in &workers {
        ready(&hub, &worker.token, "hello", json!({"name": "Ada"}));
    }
    let mut hello_rounds: Vec<Vec<Vec<Measured>>> = workers
        .iter()
        .map(|_| hello_cases.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        for (worker, by_case) in workers.iter().zip(&mut hello_rounds) {
            let pids: Vec<u32> = std::iter::once(hub.service.pid())
                .chain(worker.process.as_ref().map(Service::pid))
                .collect();
            for (case, measured) in hello_cases.iter().zip(by_case.iter_mut()) {
                let once = measure_over(
                    worker.transport,
                    &hub.url,
                    &worker.token,
                    case.node,
                    &case.inputs,
                    case.concurrency,
                    seconds,
                    &pids,
                );
                log(worker.label, case, &once);
                measured.push(once);
            }
        }
    }
    for (worker, by_case) in workers.iter().zip(&hello_rounds) {
        for (case, measured) in hello_cases.iter().zip(by_case) {
            rows.push(Row::of(worker.label, case, measured));
        }
    }
    drop(workers);

    // The other cases, once: node-host's worker and the Python worker.
    let token = hub.token("cases", false);
    let kept = |cases: Vec<Case>| -> Vec<Case> {
        cases
            .into_iter()
            .filter(|case| case.label.contains(case_filter))
            .collect()
    };
    // A Python node under a light load: the events find the worker idle, so
    // each takes an instance made ahead.
    let python_cases = kept(vec![Case {
        node: "hello-python",
        label: "hello-python, 2 ms apart",
        inputs: json!({"name": "Ada"}),
        concurrency: 1,
        pause: Duration::from_millis(2),
    }]);
    let work = |label, inputs| Case {
        node: "work",
        label,
        inputs,
        concurrency: 64,
        pause: Duration::ZERO,
    };
    let work_cases = kept(vec![
        work("work: 1 ms CPU", json!({"ms": 1})),
        work("work: 10 ms wait", json!({"ms": 10, "wait": true})),
    ]);
    let mut measure_cases = |worker: &'static str, process: Service, cases: &[Case]| {
        ready(&hub, &token, cases[0].node, cases[0].inputs.clone());
        let pids = [hub.service.pid(), process.pid()];
        for case in cases {
            let measured = if case.pause.is_zero() {
                let (node, inputs) = (case.node, &case.inputs);
                measure(
                    &hub.url,
                    &token,
                    node,
                    inputs,
                    case.concurrency,
                    seconds,
                    &pids,
                )
            } else {
                let (node, inputs) = (case.node, &case.inputs);
                measure_paced(&hub.url, &token, node, inputs, case.pause, seconds, &pids)
            };
            log(worker, case, &measured);
            rows.push(Row::of(worker, case, &[measured]));
        }
    };
    for (cases, guests, extra) in [
        (&python_cases[..], &["hello-python"][..], &[][..]),
        (
            &work_cases[..],
            &["work"][..],
            &["--concurrency", work_concurrency][..],
        ),
    ] {
        if !cases.is_empty() && wanted(NODE_HOST) {
            let process = start_worker(&hub.url, &token, guests, extra);
            measure_cases(NODE_HOST, process, cases);
        }
    }
    if !work_cases.is_empty() && wanted(PYTHON) {
        let process = python_worker(&hub, &token, "work_node.py");
        measure_cases(PYTHON, process, &work_cases);
    }

    if let Some((idle, busy)) = &trips {
        println!("| loopback TCP round trip (100 bytes, echo process) | p50 | p99 |");
        println!("|---|---|---|");
        for (label, trips) in [
            ("peer idle 200 µs before each", idle),
            ("back to back", busy),
        ] {
            println!(
                "| {label} | {:.1?} | {:.1?} |",
                percentile(trips, 0.50),
                percentile(trips, 0.99)
            );
        }
        println!();
    }
    println!(
        "`hello` rows: median of {rounds} rounds; others: one run of {seconds} s.\n\n\
         | worker | node | concurrency | events/s | p50 | p99 | errors | CPU per event: hub / worker / load generator |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        row.print();
    }
    summarize(
        &rows,
        trips.as_ref().map(|(idle, _)| percentile(idle, 0.50)),
    );
    match plots_dir {
        _ if hello_cases.is_empty() => {}
        Some(dir) => {
            std::fs::create_dir_all(&dir).expect("making the plots' directory");
            draw(&rows, &dir);
            println!("\nplots: {}/{{latency,cpu}}.svg", dir.display());
        }
        None => println!("\nplots: not drawn for a partial run (--plots DIR draws them)"),
    }
}

/// `latency.svg` and `cpu.svg` of the `hello` rows into `dir`.
fn draw(rows: &[Row], dir: &std::path::Path) {
    let workers: Vec<&'static str> = [NODE_HOST, NODE_HOST_H2, BARE, PYTHON]
        .into_iter()
        .filter(|worker| rows.iter().any(|row| row.worker == *worker))
        .collect();
    let hello = |worker: &'static str| {
        rows.iter()
            .filter(move |row| row.worker == worker && row.case == "hello")
    };
    let series: Vec<LatencySeries> = workers
        .iter()
        .map(|worker| LatencySeries {
            label: worker,
            points: hello(worker)
                .map(|row| (row.concurrency, row.p50, row.p99))
                .collect(),
        })
        .collect();
    // A run of other cases (`--worker hub`, `--case work`) has nothing to draw.
    let drawn = plots::latency(
        &dir.join("latency.svg"),
        "hello through the hub: latency against callers",
        &series,
    );
    if !drawn.expect("drawing latency.svg") {
        println!("latency.svg not drawn: this run measured no `hello` rows");
    }
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let bars: Vec<Bar> = workers
        .iter()
        .filter_map(|worker| {
            let row = hello(worker).find(|row| row.concurrency == 64)?;
            Some(Bar {
                label: worker,
                parts: vec![
                    ("hub", micros(row.cpu[0])),
                    ("worker", micros(row.cpu[1])),
                    ("load generator", micros(row.cpu[2])),
                ],
            })
        })
        .collect();
    let drawn = plots::stacked(
        &dir.join("cpu.svg"),
        "CPU per hello event at 64 callers, by process",
        &bars,
    );
    if !drawn.expect("drawing cpu.svg") {
        println!("cpu.svg not drawn: this run measured no `hello` row at 64 callers");
    }
}

/// The figures the targets are about, from this run.
fn summarize(rows: &[Row], idle_trip: Option<Duration>) {
    let hello = |worker: &str, concurrency: usize| {
        rows.iter().find(|row| {
            row.worker == worker && row.case == "hello" && row.concurrency == concurrency
        })
    };
    println!();
    if let Some(python) = hello(PYTHON, 64) {
        for worker in [NODE_HOST, NODE_HOST_H2, BARE] {
            if let Some(row) = hello(worker, 64) {
                println!(
                    "{worker}: {:.2}x the Python worker's events/s for `hello` at concurrency 64",
                    row.per_second / python.per_second
                );
            }
        }
    }
    for (worker, row) in [NODE_HOST, NODE_HOST_H2]
        .into_iter()
        .filter_map(|worker| Some((worker, hello(worker, 64)?)))
    {
        let cpu = |at: usize| row.cpu[at].as_secs_f64() * 1e6;
        println!(
            "{worker} at concurrency 64, CPU per event: hub {:.1} µs, worker {:.1} µs, load generator {:.1} µs",
            cpu(0),
            cpu(1),
            cpu(2)
        );
        if let Some(python) = hello(PYTHON, 64) {
            println!(
                "  worker against the Python worker's {:.1} µs: {:.2}x",
                python.cpu[1].as_secs_f64() * 1e6,
                row.cpu[1].as_secs_f64() / python.cpu[1].as_secs_f64()
            );
        }
    }
    if let Some(row) = hello(UPLOADED, 64) {
        println!(
            "{UPLOADED} at concurrency 64, CPU per event: hub {:.1} µs (its sandbox included), \
             load generator {:.1} µs",
            row.cpu[0].as_secs_f64() * 1e6,
            row.cpu[1].as_secs_f64() * 1e6
        );
    }
    let floor = |worker: &str| {
        let row = rows
            .iter()
            .find(|row| row.worker == worker && row.concurrency == 64)?;
        Some(row.cpu[0].as_secs_f64() * 1e6)
    };
    if let (Some(bare), Some(hub)) = (floor(BARE_HTTP), floor(HUB_ONLY)) {
        println!(
            "CPU per request at concurrency 64 of a bare hyper server answering at once: {bare:.1} µs \
             (the hub answering a GET: {hub:.1} µs)"
        );
    }
    if let Some(row) = hello(NODE_HOST, 1) {
        let floor = idle_trip.map_or_else(String::new, |trip| {
            format!(" (one idle loopback round trip: {trip:.1?})")
        });
        println!("node-host at concurrency 1: p50 {:.1?}{floor}", row.p50);
    }
}
