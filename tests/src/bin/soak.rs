//! The soak: many events through a real hub and a real worker, mixing good
//! and adversarial nodes, then checks that nothing leaked.
//!
//! ```text
//! cargo run --release -p node-host-e2e --bin soak -- [--events 100000] [--callers 32]
//!     [--no-rss-check]
//! ```
//!
//! Every event must be answered exactly once, with outputs or the error
//! code its node earns (each worker counts each event once: their metrics
//! must add up to the events sent); after the run, the hub and the worker
//! hold no event in flight, their open files are as many as after warm-up,
//! and their resident memory is within 10% of it (`--no-rss-check` skips
//! that for short runs, where instance pools and allocator arenas are
//! still growing to their working size). Exits 1 naming what
//! failed; prints throughput, latency and each process's CPU per event.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node_host_e2e::load::count_arg;
use node_host_e2e::{Hub, metric, start_worker};
use serde_json::{Value, json};

/// One kind of event: its node, its inputs, how many of each round of the
/// mix, and the codes it may end with (none: outputs). An adversarial node
/// may also end at its deadline: on two shared cores a busy machine can
/// reach the deadline before the fuel, memory or output limit.
struct Case {
    node: &'static str,
    inputs: Value,
    weight: usize,
    expect: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let ok: &[&str] = &[];
    let case = |node, inputs, weight, expect| Case {
        node,
        inputs,
        weight,
        expect,
    };
    vec![
        case("hello", json!({"name": "Ada"}), 100, ok),
        case("echo", json!({"a": "x"}), 50, ok),
        case("stdout-flood", json!({"bytes": 65536}), 30, ok),
        case("spin-loop", json!({}), 30, &["out_of_fuel", "deadline"]),
        case("memory-bomb", json!({}), 30, &["memory_limit", "deadline"]),
        case(
            "deep-recursion",
            json!({}),
            30,
            &["stack_overflow", "deadline"],
        ),
        case("panic", json!({}), 30, &["trap", "deadline"]),
        case(
            "big-output",
            json!({"bytes": 131072}),
            30,
            &["output_too_large", "deadline"],
        ),
        case("node-error", json!({}), 30, &["guest_error", "refused"]),
        // Asleep in the host until the deadline: it holds a place that long.
        case("sleeper", json!({}), 1, &["deadline"]),
    ]
}

/// The mix: each case as many times as its weight, in a fixed order.
fn mix() -> Vec<Case> {
    cases()
        .into_iter()
        .flat_map(|case| {
            (0..case.weight).map(move |_| Case {
                node: case.node,
                inputs: case.inputs.clone(),
                weight: 1,
                expect: case.expect,
            })
        })
        .collect()
}

/// What `/proc` says of a process: resident bytes, open files, CPU seconds.
#[derive(Debug, Clone, Copy)]
struct Usage {
    rss: u64,
    files: usize,
    cpu: f64,
}

fn usage(pid: u32) -> Usage {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    let files = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th fields of the whole line.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    Usage {
        rss: pages * 4096,
        files,
        cpu: ticks / CLOCK_TICKS,
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of `/proc/<pid>/stat`'s CPU times, 100
/// on every architecture Linux runs on.
const CLOCK_TICKS: f64 = 100.0;

/// Sends events `from..to` of the mix from `callers` threads; returns the
/// latencies and the outcomes by node and code.
fn send(
    hub: &Hub,
    token: &str,
    range: std::ops::Range<usize>,
    callers: usize,
) -> (Vec<Duration>, BTreeMap<String, usize>, Vec<String>) {
    let cases = Arc::new(mix());
    let next = Arc::new(AtomicUsize::new(range.start));
    let outcomes = Arc::new(Mutex::new(BTreeMap::new()));
    let wrong = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (cases, next, outcomes, wrong) =
                (cases.clone(), next.clone(), outcomes.clone(), wrong.clone());
            let (url, token, end) = (hub.url.clone(), token.to_owned(), range.end);
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let mut latencies = Vec::new();
                loop {
                    let event = next.fetch_add(1, Ordering::Relaxed);
                    if event >= end {
                        return latencies;
                    }
                    let case = &cases[event % cases.len()];
                    let started = Instant::now();
                    let answer = client
                        .post(format!("{url}/api/remote_nodes/{}/execute", case.node))
                        .bearer_auth(&token)
                        .json(&json!({"inputs": case.inputs}))
                        .send()
                        .and_then(|response| {
                            let status = response.status().as_u16();
                            response.json::<Value>().map(|body| (status, body))
                        });
                    latencies.push(started.elapsed());
                    let got = match &answer {
                        Ok((200, body)) if body["outputs"].is_object() => "ok".to_owned(),
                        Ok((_, body)) => body["code"].as_str().unwrap_or("no code").to_owned(),
                        Err(err) => format!("no answer ({err})"),
                    };
                    let expected = match case.expect {
                        [] => got == "ok",
                        codes => codes.contains(&got.as_str()),
                    };
                    if !expected {
                        wrong.lock().unwrap().push(format!(
                            "event {event} on {}: got {got}: {answer:?}",
                            case.node
                        ));
                    }
                    *outcomes
                        .lock()
                        .unwrap()
                        .entry(format!("{} {got}", case.node))
                        .or_insert(0) += 1;
                }
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    latencies.sort_unstable();
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let wrong = std::mem::take(&mut *wrong.lock().unwrap());
    (latencies, outcomes, wrong)
}

/// The sum of a counter family's samples on a metrics page.
fn counted(url: &str, family: &str) -> f64 {
    let text = node_host_e2e::http()
        .get(url)
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with(family))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events = count_arg(&args, "--events", 100_000);
    let callers = count_arg(&args, "--callers", 32);
    let check_rss = !args.iter().any(|arg| arg == "--no-rss-check");
    let warm_up = (events / 20).max(mix().len());
    let names: Vec<&str> = {
        let mut names: Vec<&str> = cases().iter().map(|case| case.node).collect();
        names.sort_unstable();
        names.dedup();
        names
    };

    let hub = Hub::start("soak");
    let token = hub.token("soak", false);
    let worker = start_worker(
        &hub.url,
        &token,
        &names,
        &[
            "--timeout",
            "200ms",
            "--fuel",
            "20000000",
            "--memory",
            "16MiB",
            "--max-output",
            "64KiB",
            "--concurrency",
            "4",
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let worker_metrics = worker
        .seen
        .iter()
        .find(|line| line.contains("metrics at"))
        .and_then(|line| line.split_whitespace().last())
        .expect("the worker printed its metrics address")
        .to_owned();

    eprintln!(
        "soak: {warm_up} events to warm up, then {} more, {callers} callers",
        events - warm_up
    );
    let (_, _, wrong) = send(&hub, &token, 0..warm_up, callers);
    let hub_pid = hub.service.pid();
    let worker_pid = worker.pid();
    let (hub_warm, worker_warm) = (usage(hub_pid), usage(worker_pid));
    let started = Instant::now();
    let (latencies, outcomes, mut wrong_after) = send(&hub, &token, warm_up..events, callers);
    let elapsed = started.elapsed();
    // Let connections the callers closed be closed on the hub's side too.
    std::thread::sleep(Duration::from_millis(500));
    let (hub_end, worker_end) = (usage(hub_pid), usage(worker_pid));

    let mut failures = Vec::new();
    wrong_after.extend(wrong);
    if !wrong_after.is_empty() {
        failures.push(format!(
            "{} events ended wrongly, e.g. {}",
            wrong_after.len(),
            wrong_after
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let hub_counted = counted(&hub.metrics, "node_host_hub_events_total");
    let worker_counted = counted(&worker_metrics, "node_host_worker_events_total");
    for (who, counted) in [("hub", hub_counted), ("worker", worker_counted)] {
        if counted as usize != events {
            failures.push(format!("the {who} counted {counted} events, not {events}"));
        }
    }
    for (who, url, gauge) in [
        ("hub", &hub.metrics, "node_host_hub_in_flight"),
        ("worker", &worker_metrics, "node_host_worker_in_flight"),
    ] {
        let left = metric(url, gauge);
        if left != 0.0 {
            failures.push(format!("the {who} still has {left} events in flight"));
        }
    }
    for (who, warm, end) in [
        ("hub", hub_warm, hub_end),
        ("worker", worker_warm, worker_end),
    ] {
        if check_rss && end.rss as f64 > warm.rss as f64 * 1.10 {
            failures.push(format!(
                "the {who}'s resident memory grew from {} to {} MiB",
                warm.rss >> 20,
                end.rss >> 20
            ));
        }
        if end.files > warm.files + 2 {
            failures.push(format!(
                "the {who} has {} open files, {} after warm-up",
                end.files, warm.files
            ));
        }
    }

    let measured = events - warm_up;
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "soak: {measured} events in {elapsed:.1?} ({:.0}/s), {callers} callers",
        measured as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    for (who, warm, end) in [
        ("hub", hub_warm, hub_end),
        ("worker", worker_warm, worker_end),
    ] {
        println!(
            "  {who:6} RSS {} -> {} MiB, open files {} -> {}, CPU {:.1} µs/event",
            warm.rss >> 20,
            end.rss >> 20,
            warm.files,
            end.files,
            (end.cpu - warm.cpu) * 1e6 / measured as f64
        );
    }
    for (outcome, count) in &outcomes {
        println!("  {count:>7}  {outcome}");
    }
    let mut worker = worker;
    worker.signal("TERM");
    let _ = worker.wait_exit(Duration::from_secs(30));
    if failures.is_empty() {
        println!("soak: passed");
    } else {
        for failure in &failures {
            eprintln!("soak: FAILED: {failure}");
        }
        std::process::exit(1);
    }
}
