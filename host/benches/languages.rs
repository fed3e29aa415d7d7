//! Per language: component size, first-load compile time, cached-load time,
//! and the fresh-sandbox event cost of each language's `hello` (made on the
//! event's path, and made ahead as `node-host run` does), all in one run;
//! then what the instantiation knobs give each guest.
//!
//! Run: `guest-examples/build && cargo bench -p node-host --bench languages`
//! (`-- --quick` runs fewer events, `--guest NAME` one guest, `--no-knobs`
//! leaves out the knob table). Prints Markdown tables.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use node_host::sandbox::bench_support::{
    Phases, ReusedInstance, guest_example_bytes, no_secrets, percentile, phases,
};
use node_host::sandbox::{Limits, NamedValue, NodeComponent, Sandbox, SandboxConfig, Value};

const GUESTS: [(&str, &str); 4] = [
    ("Rust", "hello"),
    ("Python", "hello-python"),
    ("JavaScript", "hello-js"),
    ("C", "hello-c"),
];

/// A change to the default sandbox configuration.
type Tune = fn(&mut SandboxConfig);

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// What every `hello` is called with.
fn hello_inputs() -> Vec<NamedValue> {
    vec![NamedValue {
        name: "name".into(),
        value: Value::Text("Ada".into()),
    }]
}

/// p50 and p99 of `iterations` fresh-sandbox events, after a warm-up.
fn events(node: &NodeComponent, iterations: usize) -> (Duration, Duration) {
    let inputs = hello_inputs();
    let limits = Limits::default();
    let secrets = no_secrets();
    let run = || {
        let started = Instant::now();
        let outcome = node.execute(inputs.clone(), &secrets, &limits);
        let elapsed = started.elapsed();
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        elapsed
    };
    for _ in 0..iterations / 10 {
        run();
    }
    let mut samples: Vec<Duration> = (0..iterations).map(|_| run()).collect();
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// With an instance made ahead of each event, as `node-host run`'s
/// executors do: p50 and p99 of the time to the reply (the outcome handed
/// over), and p50 of the whole cycle (the event, its teardown, and making
/// the next instance), which is what each event still costs the CPU.
fn events_made_ahead(node: &NodeComponent, iterations: usize) -> (Duration, Duration, Duration) {
    let inputs = hello_inputs();
    let limits = Limits::default();
    let secrets = no_secrets();
    let run = || {
        let started = Instant::now();
        let reply = node.execute_then(inputs.clone(), &secrets, &limits, |outcome| {
            assert!(outcome.result.is_ok(), "{:?}", outcome.result);
            started.elapsed()
        });
        node.make_ready(&secrets, &limits);
        (reply, started.elapsed())
    };
    for _ in 0..iterations / 10 {
        run();
    }
    let (mut replies, mut cycles): (Vec<Duration>, Vec<Duration>) =
        (0..iterations).map(|_| run()).unzip();
    replies.sort();
    cycles.sort();
    (
        percentile(&replies, 0.5),
        percentile(&replies, 0.99),
        percentile(&cycles, 0.5),
    )
}

fn sandbox(cache_dir: &std::path::Path, tune: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    let mut config = SandboxConfig {
        cache_dir: Some(cache_dir.to_owned()),
        ..SandboxConfig::default()
    };
    tune(&mut config);
    Sandbox::new(config).expect("sandbox")
}

/// The value after `flag` on the command line, if any.
fn option(flag: &str) -> Option<String> {
    std::env::args().skip_while(|arg| arg != flag).nth(1)
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    // `--guest NAME` measures one guest only (for profiling).
    let only = option("--guest");
    let guests: Vec<(&str, &str)> = GUESTS
        .into_iter()
        .filter(|(_, name)| only.as_deref().is_none_or(|only| only == *name))
        .collect();
    let iterations = if quick { 500 } else { 5_000 };
    // `--cache DIR` keeps compiled guests between runs (then "first load"
    // is a cache hit too): for iterating on the knobs, not for the table.
    let kept_cache = option("--cache").map(PathBuf::from);
    let cache = kept_cache.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("node-host-bench-languages-{}", std::process::id()))
    });
    println!("{iterations} fresh-sandbox events per guest (fuel + epochs on, default limits)\n");
    println!(
        "| language | guest | size | first load (compile) | cached load | event p50 | event p99 \
         | made ahead: reply p50 | reply p99 | whole cycle p50 |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut loaded = Vec::new();
    for &(language, name) in &guests {
        let bytes = guest_example_bytes(name);
        let started = Instant::now();
        sandbox(&cache, |_| {}).load(&bytes).expect("first load");
        let compile = started.elapsed();
        let warm = sandbox(&cache, |_| {});
        let started = Instant::now();
        let node = warm.load(&bytes).expect("cached load");
        let cached = started.elapsed();
        let (p50, p99) = events(&node, iterations);
        let (reply_p50, reply_p99, cycle_p50) = events_made_ahead(&node, iterations);
        println!(
            "| {language} | `{name}` | {:.1} MB | {:.2} s | {:.1} ms | {:.0} µs | {:.0} µs \
             | {:.0} µs | {:.0} µs | {:.0} µs |",
            bytes.len() as f64 / 1e6,
            compile.as_secs_f64(),
            cached.as_secs_f64() * 1e3,
            micros(p50),
            micros(p99),
            micros(reply_p50),
            micros(reply_p99),
            micros(cycle_p50),
        );
        loaded.push((name, bytes));
    }

    // `--no-knobs` leaves out the knob table (for iterating on a guest).
    let knobs_wanted = !std::env::args().any(|arg| arg == "--no-knobs");
    if knobs_wanted {
        println!("\nInstantiation knobs (event p50 / p99, µs):\n");
    }
    let knobs: [(&str, Tune); 7] = [
        (
            "default (PAGEMAP_SCAN, keep 64 MiB, pre-initialized)",
            |_| {},
        ),
        ("not pre-initialized", |config| config.preinitialize = false),
        ("keep 16 MiB", |config| {
            config.memory_keep_resident = 16 << 20
        }),
        ("no PAGEMAP_SCAN, keep 2 MiB", |config| {
            config.pagemap_scan = false;
            config.memory_keep_resident = 2 << 20;
        }),
        ("no PAGEMAP_SCAN, keep 16 MiB", |config| {
            config.pagemap_scan = false;
            config.memory_keep_resident = 16 << 20;
        }),
        ("no copy-on-write images", |config| {
            config.memory_cow = false
        }),
        ("no pooling allocator", |config| config.pooling = false),
    ];
    let mut header = String::from("| guest |");
    let mut rule = String::from("|---|");
    for (label, _) in knobs {
        header.push_str(&format!(" {label} |"));
        rule.push_str("---:|");
    }
    if knobs_wanted {
        println!("{header}\n{rule}");
    }
    for (name, bytes) in loaded.iter().filter(|_| knobs_wanted) {
        let mut row = format!("| `{name}` |");
        for (_, tune) in knobs {
            let node = sandbox(&cache, tune).load(bytes).expect("load");
            let (p50, p99) = events(&node, iterations / 5);
            row.push_str(&format!(" {:.0} / {:.0} |", micros(p50), micros(p99)));
        }
        println!("{row}");
    }

    println!("\nPhases of a fresh event, p50 (µs):\n");
    println!("| guest | store + WASI | instantiate | call | drop | call, reused instance |");
    println!("|---|---:|---:|---:|---:|---:|");
    let inputs = hello_inputs();
    for &(_, name) in &guests {
        let node = sandbox(&cache, |_| {})
            .load(&guest_example_bytes(name))
            .expect("load");
        let mut all: Vec<Phases> = (0..iterations / 5)
            .map(|_| phases(&node, &inputs, &Limits::default()))
            .collect();
        let mut p50 = |pick: fn(&Phases) -> Duration| {
            all.sort_by_key(pick);
            micros(pick(&all[all.len() / 2]))
        };
        let (store, instantiate, call, drop) = (
            p50(|p| p.store),
            p50(|p| p.instantiate),
            p50(|p| p.call),
            p50(|p| p.drop),
        );
        // The same call on one instance kept across calls: what a fresh
        // instance costs the call itself (cold caches, first-touch pages).
        let mut reused = ReusedInstance::new(&node);
        let mut calls: Vec<Duration> = (0..iterations / 5)
            .map(|_| {
                let started = Instant::now();
                reused.call(&inputs);
                started.elapsed()
            })
            .collect();
        calls.sort();
        println!(
            "| `{name}` | {store:.1} | {instantiate:.1} | {call:.1} | {drop:.1} | {:.1} |",
            micros(percentile(&calls, 0.5))
        );
    }
    if kept_cache.is_none() {
        let _ = std::fs::remove_dir_all(&cache);
    }
}
