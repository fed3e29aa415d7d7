//! Juturna remote nodes: `node-host serve juturna` against the reference,
//! `python -m juturna remotize` (juturna 2.1.1), each serving a hello node
//! (node-host the Rust `hello` component, the reference the same node in
//! Python, `tests/juturna/plugins`), on the same machine, in the same run,
//! from the same client: a tonic client in this program sending Object
//! messages as Juturna's Warp does, at concurrency 1 and 16. Rounds
//! alternate the two servers so that the machine's noise falls on both.
//!
//! Reported per server and concurrency: requests/s, p50 and p99 latency,
//! and CPU time per request of the server and of the client (from
//! /proc/PID/stat), pooled over the rounds. Goals (issue "Juturna remote
//! nodes"): ≥ 5× the reference's requests/s at concurrency 16, p50 ≤ the
//! reference's at concurrency 1.
//!
//! Run: `NODE_HOST_JUTURNA_PYTHON=$(tests/setup-venv tests/juturna/requirements.txt target/juturna-venv)
//! cargo bench -p node-host-e2e --bench juturna [-- --seconds 5 --rounds 3]`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use node_host::juturna::payload::{any, proto_of};
use node_host::juturna::proto::messaging::ProtoEnvelope;
use node_host::juturna::proto::messaging::messaging_service_client::MessagingServiceClient;
use node_host::juturna::proto::payloads::{ObjectProtoPayload, ProtoMessage};
use node_host_e2e::load::{Measured, measure_calls};
use node_host_e2e::{START_BOUND, Service, repo_root, scratch_dir, serve_juturna};

/// The request every call sends: `{"name": "Ada"}` from sender `bench`.
fn hello_request() -> ProtoEnvelope {
    let data = prost_types::Struct {
        fields: [("name".to_owned(), proto_of("Ada".into()))].into(),
    };
    ProtoEnvelope {
        id: "bench".into(),
        sender: "bench".into(),
        ttl: 30,
        message: Some(ProtoMessage {
            creator: "bench".into(),
            payload: Some(any(
                "ObjectProtoPayload",
                &ObjectProtoPayload { data: Some(data) },
            )),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A port nobody listens on now (for the reference, which takes a port,
/// not a listener).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `url` answers one hello request.
fn wait_until_serving(url: &str) {
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    loop {
        let answered = runtime.block_on(async {
            let Ok(mut client) = MessagingServiceClient::connect(url.to_owned()).await else {
                return false;
            };
            client.send_and_receive(hello_request()).await.is_ok()
        });
        if answered {
            return;
        }
        assert!(started.elapsed() < START_BOUND, "{url} never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The reference server, from a scratch copy of the plugin folder (it
/// takes the folder as a relative import path and writes `remote_pipes/`
/// beside it).
fn start_reference(python: &Path, port: u16) -> Service {
    let dir = scratch_dir("bench-juturna-reference");
    copy_dir(
        &repo_root().join("tests/juturna/plugins"),
        &dir.join("plugins"),
    );
    Service::start(
        std::process::Command::new(python)
            .args([
                "-B", "-m", "juturna", "remotize", "-n", "hello", "-m", "hello_py",
            ])
            .args(["-P", "plugins", "-p", &port.to_string()])
            .current_dir(&dir),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Calls `url` from `concurrency` callers for `seconds`, each caller on a
/// connection of its own (as each Warp node has its own channel).
fn measure(url: &str, concurrency: usize, seconds: f64, server: u32) -> Measured {
    type Client = MessagingServiceClient<tonic::transport::Channel>;
    // Connected on first use, on the runtime the calls run on.
    let clients: Arc<Vec<tokio::sync::OnceCell<Client>>> = Arc::new(
        (0..concurrency)
            .map(|_| tokio::sync::OnceCell::new())
            .collect(),
    );
    let next = AtomicUsize::new(0);
    let url = url.to_owned();
    measure_calls(concurrency, Duration::ZERO, seconds, &[server], move || {
        let at = next.fetch_add(1, Ordering::Relaxed) % concurrency;
        let (clients, url) = (clients.clone(), url.clone());
        async move {
            let client = clients[at]
                .get_or_init(|| async {
                    MessagingServiceClient::connect(url)
                        .await
                        .expect("connects")
                })
                .await;
            client
                .clone()
                .send_and_receive(hello_request())
                .await
                .is_ok()
        }
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = node_host_e2e::load::seconds_arg(&args);
    let rounds = node_host_e2e::load::count_arg(&args, "--rounds", 3);
    let python: PathBuf = std::env::var_os("NODE_HOST_JUTURNA_PYTHON")
        .expect(
            "set NODE_HOST_JUTURNA_PYTHON to the python that `tests/setup-venv tests/juturna/requirements.txt DIR` prints",
        )
        .into();

    let (ours, port) = serve_juturna("hello", &["--concurrency", "16"]);
    let ours_url = format!("http://127.0.0.1:{port}");
    let port = free_port();
    let reference = start_reference(&python, port);
    let reference_url = format!("http://127.0.0.1:{port}");
    wait_until_serving(&ours_url);
    wait_until_serving(&reference_url);

    println!(
        "| server | concurrency | requests/s | p50 | p99 | server CPU/request | client CPU/request | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    for concurrency in [1, 16] {
        let (mut node_host_rounds, mut reference_rounds) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            node_host_rounds.push(measure(&ours_url, concurrency, seconds, ours.pid()));
            reference_rounds.push(measure(
                &reference_url,
                concurrency,
                seconds,
                reference.pid(),
            ));
        }
        let node_host = Measured::pooled(&node_host_rounds);
        let reference = Measured::pooled(&reference_rounds);
        for (name, measured) in [("node-host", &node_host), ("juturna remotize", &reference)] {
            let cpu = measured.cpu_per_event();
            println!(
                "| {name} | {concurrency} | {:.0} | {:.1?} | {:.1?} | {:.1?} | {:.1?} | {} |",
                measured.per_second(),
                measured.percentile(0.50),
                measured.percentile(0.99),
                cpu[0],
                cpu[1],
                measured.errors
            );
        }
        summary.push((
            concurrency,
            node_host.per_second() / reference.per_second(),
            node_host.percentile(0.5),
            reference.percentile(0.5),
        ));
    }
    for (concurrency, ratio, ours, theirs) in summary {
        println!(
            "concurrency {concurrency}: node-host {ratio:.1}× the reference's requests/s; p50 {ours:.1?} vs {theirs:.1?}"
        );
    }
}
