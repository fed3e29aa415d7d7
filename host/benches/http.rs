//! Outbound HTTP: one allowed GET per event from the Rust `fetch` node, each
//! event in a fresh sandbox, against the same GET made by a native Rust
//! client (hyper-util's pooled client, as node-host uses) in the same
//! process, to the same loopback origin, in the same run. Rounds alternate
//! the two so that the machine's noise falls on both.
//!
//! Reported: p50 and p99 latency per request, and CPU time per request of
//! the whole process (getrusage; the origin runs in this process too, the
//! same for both, so the difference is the sandbox's), plus the TCP
//! connections the origin accepted after warm-up (connection reuse: 0
//! expected). A `hello` event (fresh sandbox, no network) is the floor.
//! Goal (issue "Nodes that call the outside world"): the node's p50 ≤ 1.5×
//! the native client's.
//!
//! Run: `guest-examples/build && cargo bench -p node-host --bench http`
//! (`-- --requests N --rounds N`). Prints a Markdown table.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use node_host::sandbox::bench_support::{guest_example_bytes, no_secrets, percentile};
use node_host::sandbox::http::{HttpAccess, HttpLimits, Outbound, OutboundSettings};
use node_host::sandbox::test_origin::TestOrigin;
use node_host::sandbox::{Limits, NamedValue, NodeComponent, Sandbox, SandboxConfig, Value};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1))
        .map_or(default, |value| value.parse().expect("a number"))
}

/// CPU time (user + system) of this process so far.
fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Latencies and CPU per request of one measured run.
#[derive(Default)]
struct Runs {
    samples: Vec<Duration>,
    cpu: Duration,
    requests: usize,
}

impl Runs {
    fn measure(&mut self, requests: usize, one: impl Fn()) {
        let before = cpu();
        for _ in 0..requests {
            let started = Instant::now();
            one();
            self.samples.push(started.elapsed());
        }
        self.cpu += cpu() - before;
        self.requests += requests;
    }

    fn row(&mut self, what: &str, floor: Option<Duration>) -> (Duration, String) {
        self.samples.sort();
        let p50 = percentile(&self.samples, 0.5);
        let p99 = percentile(&self.samples, 0.99);
        let cpu = self.cpu / self.requests as u32;
        let ratio = floor.map_or("1.00×".to_owned(), |floor| {
            format!("{:.2}×", p50.as_secs_f64() / floor.as_secs_f64())
        });
        let row = format!(
            "| {what} | {:.1} | {:.1} | {ratio} | {:.1} |",
            us(p50),
            us(p99),
            us(cpu)
        );
        (p50, row)
    }
}

fn us(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn main() {
    let requests = arg("--requests", 2000);
    let rounds = arg("--rounds", 3);
    let origin = TestOrigin::start();
    let url = origin.url("/hello");
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let outbound = Outbound::new(&OutboundSettings {
        private_addresses: true,
        extra_roots: Vec::new(),
    })
    .expect("outbound");
    let grant = vec![vec![
        format!("http://127.0.0.1:{}", origin.addr().port())
            .parse()
            .unwrap(),
    ]];
    let access = HttpAccess::new(&outbound, "bench", grant, HttpLimits::default());
    let fetch: NodeComponent = sandbox
        .load_with(&guest_example_bytes("fetch"), Some(access), &mut || {})
        .expect("fetch loads");
    let hello = sandbox
        .load(&guest_example_bytes("hello"))
        .expect("hello loads");
    let limits = Limits::default();
    let secrets: HashMap<String, String> = no_secrets();
    let fetch_inputs = vec![NamedValue {
        name: "url".into(),
        value: Value::Text(url.clone()),
    }];
    let hello_inputs = vec![NamedValue {
        name: "name".into(),
        value: Value::Text("Ada".into()),
    }];
    let node_get = || {
        let outcome = fetch.execute(fetch_inputs.clone(), &secrets, &limits);
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    };
    // The same node whose request the host refuses before it leaves: the
    // sandbox and wasi:http without the network.
    let refused_inputs = vec![NamedValue {
        name: "url".into(),
        value: Value::Text(url.replace("127.0.0.1", "127.0.0.2")),
    }];
    let node_refused = || {
        let outcome = fetch.execute(refused_inputs.clone(), &secrets, &limits);
        assert!(outcome.result.is_err());
    };
    let no_scheme = vec![NamedValue {
        name: "url".into(),
        value: Value::Text("nothing".into()),
    }];
    let node_no_call = || {
        let outcome = fetch.execute(no_scheme.clone(), &secrets, &limits);
        assert!(outcome.result.is_err());
    };
    let hello_event = || {
        let outcome = hello.execute(hello_inputs.clone(), &secrets, &limits);
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let native: Client<HttpConnector, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let uri: http::Uri = url.parse().unwrap();
    let native_get = || {
        runtime.block_on(async {
            let response = native.get(uri.clone()).await.expect("the origin answers");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body.len(), 21);
        });
    };

    // Warm-up: compiled code, pools and connections.
    for _ in 0..requests / 10 {
        native_get();
        node_get();
        node_refused();
        hello_event();
    }
    let connections = origin.connections();
    let mut native_runs = Runs::default();
    let mut node_runs = Runs::default();
    let mut refused_runs = Runs::default();
    let mut hello_runs = Runs::default();
    let mut no_call_runs = Runs::default();
    // `--only refused` (or native, fetch, hello) runs one kind alone, for
    // a profiler.
    if let Some(only) = std::env::args().skip_while(|arg| arg != "--only").nth(1) {
        let one: &dyn Fn() = match only.as_str() {
            "native" => &native_get,
            "fetch" => &node_get,
            "refused" => &node_refused,
            "hello" => &hello_event,
            other => panic!("--only {other}: choose native, fetch, refused or hello"),
        };
        let mut runs = Runs::default();
        runs.measure(rounds * requests, one);
        println!("{}", runs.row(&only, None).1);
        return;
    }
    for _ in 0..rounds {
        no_call_runs.measure(requests, node_no_call);
        native_runs.measure(requests, native_get);
        node_runs.measure(requests, node_get);
        refused_runs.measure(requests, node_refused);
        hello_runs.measure(requests, hello_event);
    }
    let opened = origin.connections() - connections;

    println!(
        "{rounds} rounds × {requests} requests, one at a time, to http://127.0.0.1 (loopback)\n"
    );
    println!("| | p50 µs | p99 µs | p50 vs native | CPU µs/request (process) |");
    println!("|---|---:|---:|---:|---:|");
    let (native_p50, row) = native_runs.row("native Rust client (hyper-util, pooled)", None);
    println!("{row}");
    let (_, row) = node_runs.row(
        "node-host: fetch node, fresh sandbox per event",
        Some(native_p50),
    );
    println!("{row}");
    let (_, row) = refused_runs.row(
        "fetch node, its request refused by the host (no network)",
        Some(native_p50),
    );
    println!("{row}");
    let (_, row) = no_call_runs.row("fetch node, no request", Some(native_p50));
    println!("{row}");
    let (_, row) = hello_runs.row(
        "floor: hello event, fresh sandbox, no network",
        Some(native_p50),
    );
    println!("{row}");
    println!(
        "\nTCP connections the origin accepted after warm-up: {opened} (for {} requests)",
        2 * rounds * requests
    );
}
