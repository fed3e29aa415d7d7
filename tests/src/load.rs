//! A load generator for benchmarks: many callers executing one node.
//!
//! Its HTTP client ([`RawClient`]) is made to cost less than what it
//! measures: keep-alive HTTP/1.1 connections, each request's bytes made
//! once, a response read into a reused buffer and only its status line
//! and length parsed. Each connection carries one request at a time: the
//! hub (hyper) answers the requests of a connection in order, one after
//! the other, so pipelining on a few connections would only serialize the
//! callers; concurrency C is C connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The value of `--seconds N` among a bench's arguments (default 5).
pub fn seconds_arg(args: &[String]) -> f64 {
    args.iter()
        .position(|arg| arg == "--seconds")
        .and_then(|at| args.get(at + 1))
        .map_or(5.0, |value| {
            value.parse().expect("--seconds takes a number")
        })
}

/// The value of `--NAME N` among a bench's arguments, or `default`.
pub fn count_arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1))
        .map_or(default, |value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, not `{value}`"))
        })
}

/// Where [`loopback_round_trips`] tells the copy of the program it starts
/// to connect and echo.
const ECHO_PEER: &str = "NODE_HOST_BENCH_ECHO_PEER";

/// In a copy of the program started by [`loopback_round_trips`]: echoes
/// every 100-byte message back, then exits. Call it first in `main`.
pub fn echo_if_asked() {
    use std::io::{Read, Write};
    let Some(address) = std::env::var_os(ECHO_PEER) else {
        return;
    };
    let mut peer = std::net::TcpStream::connect(address.to_str().unwrap()).unwrap();
    peer.set_nodelay(true).unwrap();
    let mut message = [0u8; 100];
    while peer.read_exact(&mut message).is_ok() {
        peer.write_all(&message).unwrap();
    }
    std::process::exit(0);
}

/// Where [`start_bare_worker`] tells the copy of the program it starts
/// which hub to serve: `URL TOKEN`.
const BARE_WORKER: &str = "NODE_HOST_BENCH_BARE_WORKER";

/// In a copy of the program started by [`start_bare_worker`]: registers
/// `hello` with the hub and answers its events on one thread, with no
/// sandbox, until the connection ends. Call it first in `main`.
pub fn bare_worker_if_asked() {
    let Some(hub) = std::env::var_os(BARE_WORKER) else {
        return;
    };
    let hub = hub.into_string().expect("hub URL and token in UTF-8");
    let (url, token) = hub.split_once(' ').expect("`URL TOKEN`");
    serve_hello_bare(url, token);
    std::process::exit(0);
}

/// The ceiling of any worker on a hub: a process that serves `hello`
/// as the hurozo worker does (register over HTTP, one WebSocket, one
/// event at a time) but runs no sandbox and no interpreter: a copy of
/// this program (see [`bare_worker_if_asked`]).
pub fn start_bare_worker(hub: &str, token: &str) -> crate::Service {
    crate::Service::start(
        std::process::Command::new(std::env::current_exe().unwrap())
            .env(BARE_WORKER, format!("{hub} {token}")),
    )
}

/// Where [`start_bare_http`] asks the copy of the program it starts to
/// serve HTTP.
const BARE_HTTP: &str = "NODE_HOST_BENCH_BARE_HTTP";

/// In a copy of the program started by [`start_bare_http`]: answers every
/// HTTP/1.1 request with the same small JSON, on one thread with hyper as
/// the hub does, and nothing else (no routing, no token, no store), after
/// printing `listening on http://ADDR`. Call it first in `main`.
pub fn bare_http_if_asked() {
    if std::env::var_os(BARE_HTTP).is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the bare HTTP server");
    runtime.block_on(serve_bare_http());
    std::process::exit(0);
}

async fn serve_bare_http() {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the bare HTTP server");
    let address = listener.local_addr().expect("its address");
    println!("listening on http://{address}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // As the hub: answers are small and must not wait for an ACK.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let answer = hyper::service::service_fn(|_request| async {
                let body = Full::new(Bytes::from_static(br#"{"nodes":[]}"#));
                Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, answer)
                .await;
        });
    }
}

/// The floor of any HTTP server on this machine for the hub's figures: a
/// hyper server that answers every request at once (see
/// [`bare_http_if_asked`]), and its URL.
pub fn start_bare_http() -> (crate::Service, String) {
    let mut server = crate::Service::start(
        std::process::Command::new(std::env::current_exe().unwrap()).env(BARE_HTTP, "1"),
    );
    let line = server.wait_for_line("listening on", Duration::from_secs(30));
    let url = line.rsplit(' ').next().expect("an address").to_owned();
    (server, url)
}

fn serve_hello_bare(hub: &str, token: &str) {
    use serde_json::{Value, json};
    use tungstenite::Message;
    let registered: Value = crate::http()
        .post(format!("{hub}/api/remote_nodes/register"))
        .bearer_auth(token)
        .json(&json!({"name": "hello", "inputs": ["name"], "outputs": ["greeting", "shout"]}))
        .send()
        .and_then(reqwest::blocking::Response::json)
        .expect("registering the bare worker");
    let url = format!(
        "{}?auth={}",
        registered["websocket_url"].as_str().expect("websocket_url"),
        url::form_urlencoded::byte_serialize(
            registered["token"].as_str().expect("token").as_bytes()
        )
        .collect::<String>()
    );
    let (mut socket, _) = tungstenite::connect(url).expect("connecting the bare worker");
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_nodelay(true).unwrap();
    }
    while let Ok(message) = socket.read() {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let name = event["inputs"]["name"].as_str().unwrap_or("world");
        let greeting = format!("Hello {name}");
        let reply = json!({
            "node": "hello",
            "outputs": {"shout": greeting.to_uppercase(), "greeting": greeting},
            "uuid": event["uuid"],
        });
        if socket.send(Message::text(reply.to_string())).is_err() {
            break;
        }
    }
}

/// Round trips of a 100-byte message over loopback TCP to another
/// process that echoes it (a copy of this program: see
/// [`echo_if_asked`]), `pause` apart, sorted. The floor of one
/// request/reply hop between processes when the peer has been idle for
/// `pause`.
pub fn loopback_round_trips(pause: Duration, count: usize) -> Vec<Duration> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut echo = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ECHO_PEER, listener.local_addr().unwrap().to_string())
        .spawn()
        .expect("starting the echo process");
    let (mut peer, _) = listener.accept().unwrap();
    peer.set_nodelay(true).unwrap();
    let mut message = [0u8; 100];
    let mut trips: Vec<Duration> = (0..count)
        .map(|_| {
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let started = Instant::now();
            peer.write_all(&message).unwrap();
            peer.read_exact(&mut message).unwrap();
            started.elapsed()
        })
        .collect();
    drop(peer);
    echo.wait().unwrap();
    trips.sort();
    trips
}

/// The value at quantile `p` (0 to 1) of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// CPU time (user + system) process `pid` has used so far, from
/// `/proc/PID/stat` (Linux), in the kernel's 10 ms ticks (USER_HZ 100).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|err| panic!("reading /proc/{pid}/stat: {err}"));
    // Fields after the command name, which is in parentheses: state is
    // the first, utime the 12th and stime the 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a stat line") + 1..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// What a load run measured.
pub struct Measured {
    /// Successful events while recording.
    pub events: usize,
    /// Failed requests while recording.
    pub errors: usize,
    /// How long it recorded.
    pub elapsed: Duration,
    /// Latencies of the successful events, sorted.
    pub latencies: Vec<Duration>,
    /// CPU time each watched process used while recording, in the
    /// order given, then the load generator's own.
    pub cpu: Vec<Duration>,
}

impl Measured {
    /// Every round's samples and CPU times as one.
    pub fn pooled(rounds: &[Measured]) -> Measured {
        let mut latencies: Vec<Duration> = rounds
            .iter()
            .flat_map(|round| round.latencies.iter().copied())
            .collect();
        latencies.sort();
        let width = rounds.first().map_or(0, |round| round.cpu.len());
        Measured {
            events: latencies.len(),
            errors: rounds.iter().map(|round| round.errors).sum(),
            elapsed: rounds.iter().map(|round| round.elapsed).sum(),
            latencies,
            cpu: (0..width)
                .map(|at| rounds.iter().map(|round| round.cpu[at]).sum())
                .collect(),
        }
    }

    /// Successful events per second.
    pub fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU time per successful event of each watched process, then of
    /// the load generator.
    pub fn cpu_per_event(&self) -> Vec<Duration> {
        let events = self.events.max(1) as u32;
        self.cpu.iter().map(|cpu| *cpu / events).collect()
    }

    /// The latency at quantile `p` (0 to 1).
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// Calls `POST {hub}/api/remote_nodes/{node}/execute` with `inputs` from
/// `concurrency` callers in a loop for `seconds` (after a warm-up of a
/// fifth of that, at least 0.5 s), recording each call's latency and
/// the CPU time the processes `watch` use meanwhile.
pub fn measure(
    hub: &str,
    token: &str,
    node: &str,
    inputs: &serde_json::Value,
    concurrency: usize,
    seconds: f64,
    watch: &[u32],
) -> Measured {
    let request = execute_request(hub, token, node, inputs);
    measure_requests(concurrency, Duration::ZERO, seconds, watch, move || {
        request.clone()
    })
}

/// [`measure`] from one caller that waits `pause` before each call (not
/// timed): events that find the hub and the worker idle, as under a
/// light load, rather than back to back.
pub fn measure_paced(
    hub: &str,
    token: &str,
    node: &str,
    inputs: &serde_json::Value,
    pause: Duration,
    seconds: f64,
    watch: &[u32],
) -> Measured {
    let request = execute_request(hub, token, node, inputs);
    measure_requests(1, pause, seconds, watch, move || request.clone())
}

/// `POST {hub}/api/remote_nodes/{node}/execute` with `inputs`: the
/// hub's client and the request's bytes.
fn execute_request(
    hub: &str,
    token: &str,
    node: &str,
    inputs: &serde_json::Value,
) -> (Arc<RawClient>, Arc<[u8]>) {
    let client = Arc::new(RawClient::new(hub));
    let body = serde_json::json!({ "inputs": inputs }).to_string();
    let request = client.request(
        "POST",
        &format!("/api/remote_nodes/{node}/execute"),
        token,
        body.as_bytes(),
    );
    (client, request)
}

/// [`measure`] with the calls spread over `hubs` in turn (each call to
/// the next hub).
pub fn measure_spread(
    hubs: &[String],
    token: &str,
    node: &str,
    inputs: &serde_json::Value,
    concurrency: usize,
    seconds: f64,
    watch: &[u32],
) -> Measured {
    let requests: Vec<_> = hubs
        .iter()
        .map(|hub| execute_request(hub, token, node, inputs))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    measure_requests(concurrency, Duration::ZERO, seconds, watch, move || {
        let turn = next.fetch_add(1, Ordering::Relaxed);
        requests[turn % requests.len()].clone()
    })
}

/// The floor under [`measure`]: `GET {hub}/api/remote_nodes` (the
/// token checked, the account's nodes listed, no worker involved) from
/// the same load generator.
pub fn measure_hub_only(
    hub: &str,
    token: &str,
    concurrency: usize,
    seconds: f64,
    watch: &[u32],
) -> Measured {
    let client = Arc::new(RawClient::new(hub));
    let request = client.request("GET", "/api/remote_nodes", token, b"");
    measure_requests(concurrency, Duration::ZERO, seconds, watch, move || {
        (client.clone(), request.clone())
    })
}

/// Sends the request `request` picks (a client and the request's bytes)
/// from `concurrency` callers in a loop for `seconds` (after a warm-up),
/// each waiting `pause` before each request, recording each latency.
fn measure_requests(
    concurrency: usize,
    pause: Duration,
    seconds: f64,
    watch: &[u32],
    request: impl Fn() -> (Arc<RawClient>, Arc<[u8]>) + Send + Sync + 'static,
) -> Measured {
    measure_calls(concurrency, pause, seconds, watch, move || {
        let (client, request) = request();
        async move { client.send(&request).await.is_ok_and(|status| status < 300) }
    })
}

/// `HOST:PORT` of `url` (`http://HOST:PORT`, nothing after): the load
/// generator speaks plain HTTP only.
fn authority(url: &str) -> String {
    url.strip_prefix("http://")
        .unwrap_or_else(|| panic!("the load generator speaks plain http, not `{url}`"))
        .trim_end_matches('/')
        .to_owned()
}

/// An HTTP/2 (prior knowledge) client of one server for the load
/// generator: its calls go over `connections` connections in turn, many
/// at once on each.
pub struct H2Client {
    senders: Vec<hyper::client::conn::http2::SendRequest<http_body_util::Full<hyper::body::Bytes>>>,
    next: std::sync::atomic::AtomicUsize,
    authority: String,
}

impl H2Client {
    /// Opens `connections` connections to `url` (`http://HOST:PORT`).
    pub async fn connect(url: &str, connections: usize) -> std::io::Result<Self> {
        let authority = authority(url);
        let mut senders = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let stream = tokio::net::TcpStream::connect(&authority).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(stream),
            )
            .await
            .map_err(std::io::Error::other)?;
            tokio::spawn(connection);
            senders.push(sender);
        }
        Ok(Self {
            senders,
            next: std::sync::atomic::AtomicUsize::new(0),
            authority,
        })
    }

    /// Sends `POST path` with `token` and the JSON `body`: the response's
    /// status and body, once the whole of it is in.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: hyper::body::Bytes,
    ) -> Option<(u16, hyper::body::Bytes)> {
        use http_body_util::BodyExt as _;
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        let mut sender = self.senders[at].clone();
        let request = hyper::Request::post(format!("http://{}{path}", self.authority))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(body))
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    }
}

/// How the load generator's callers reach the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/1.1, a connection per caller (as curl or a Python client).
    Http1,
    /// HTTP/2, the callers' requests spread over `connections`.
    Http2 {
        /// The connections the callers share.
        connections: usize,
    },
}

/// [`measure`] with the callers' requests over `transport`.
#[allow(clippy::too_many_arguments)]
pub fn measure_over(
    transport: Transport,
    hub: &str,
    token: &str,
    node: &str,
    inputs: &serde_json::Value,
    concurrency: usize,
    seconds: f64,
    watch: &[u32],
) -> Measured {
    let Transport::Http2 { connections } = transport else {
        return measure(hub, token, node, inputs, concurrency, seconds, watch);
    };
    let body: hyper::body::Bytes = serde_json::json!({ "inputs": inputs }).to_string().into();
    let path: Arc<str> = format!("/api/remote_nodes/{node}/execute").into();
    let token: Arc<str> = token.into();
    let hub = hub.to_owned();
    // Connected on the load generator's own runtime, by the first caller.
    let client: Arc<tokio::sync::OnceCell<H2Client>> = Arc::default();
    measure_calls(concurrency, Duration::ZERO, seconds, watch, move || {
        let (client, hub, path, token, body) = (
            client.clone(),
            hub.clone(),
            path.clone(),
            token.clone(),
            body.clone(),
        );
        async move {
            let client = client
                .get_or_init(|| async {
                    H2Client::connect(&hub, connections)
                        .await
                        .unwrap_or_else(|err| panic!("connecting to {hub} over HTTP/2: {err}"))
                })
                .await;
            client
                .post(&path, &token, body)
                .await
                .is_some_and(|(status, _)| status < 300)
        }
    })
}

/// A keep-alive HTTP/1.1 client of one server for the load generator: it
/// keeps the connections its callers return and opens one more when all
/// are busy, so C callers use C connections.
pub struct RawClient {
    address: String,
    idle: std::sync::Mutex<Vec<RawConnection>>,
}

/// One connection of a [`RawClient`] and its reused read buffer.
struct RawConnection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl RawClient {
    /// A client of `url` (`http://HOST:PORT`, nothing after).
    pub fn new(url: &str) -> Self {
        Self {
            address: authority(url),
            idle: std::sync::Mutex::default(),
        }
    }

    /// The bytes of a request `METHOD path` with `token` as its bearer and
    /// `body` (JSON) if not empty.
    pub fn request(&self, method: &str, path: &str, token: &str, body: &[u8]) -> Arc<[u8]> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n",
            self.address
        );
        if !body.is_empty() || method == "POST" {
            request.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        bytes.into()
    }

    /// Sends `request` on an idle connection (or a new one) and reads the
    /// response; its status. A connection that failed is dropped.
    pub async fn send(&self, request: &[u8]) -> std::io::Result<u16> {
        let idle = self.idle.lock().unwrap().pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => {
                let stream = tokio::net::TcpStream::connect(&self.address).await?;
                stream.set_nodelay(true)?;
                RawConnection {
                    stream,
                    buffer: Vec::with_capacity(4096),
                }
            }
        };
        let (status, keep) = connection.exchange(request).await?;
        if keep {
            self.idle.lock().unwrap().push(connection);
        }
        Ok(status)
    }
}

impl RawConnection {
    /// Writes `request`, reads one whole response: its status, and whether
    /// the connection may carry another.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, bool)> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
        self.stream.write_all(request).await?;
        self.buffer.clear();
        loop {
            if self.buffer.len() == self.buffer.capacity() {
                self.buffer.reserve(self.buffer.capacity());
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(head) = response
                .parse(&self.buffer)
                .map_err(|_| invalid("not an HTTP response"))?
            else {
                continue;
            };
            let mut length = None;
            let mut keep = true;
            for header in response.headers.iter() {
                if header.name.eq_ignore_ascii_case("content-length") {
                    length = std::str::from_utf8(header.value)
                        .ok()
                        .and_then(|value| value.trim().parse::<usize>().ok());
                } else if header.name.eq_ignore_ascii_case("connection") {
                    keep = !header.value.eq_ignore_ascii_case(b"close");
                }
            }
            let status = response.code.unwrap_or(0);
            let length = length.ok_or_else(|| invalid("a response without Content-Length"))?;
            if self.buffer.len() >= head + length {
                return Ok((status, keep));
            }
        }
    }
}

/// Makes the call `call` makes (true when it succeeded) from
/// `concurrency` callers in a loop for `seconds` (after a warm-up of a
/// fifth of that, at least 0.5 s), each waiting `pause` before each
/// call, recording each latency and the CPU time the processes `watch`
/// use meanwhile. Runs on a runtime of its own, one thread.
pub fn measure_calls<Call>(
    concurrency: usize,
    pause: Duration,
    seconds: f64,
    watch: &[u32],
    call: impl Fn() -> Call + Send + Sync + 'static,
) -> Measured
where
    Call: std::future::Future<Output = bool> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let call = Arc::new(call);
    runtime.block_on(async {
        let warm_up = Duration::from_secs_f64((seconds / 5.0).max(0.5));
        let run_for = Duration::from_secs_f64(seconds);
        let recording = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let call = call.clone();
                let (recording, stop) = (recording.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                        let started = Instant::now();
                        let ok = call().await;
                        if recording.load(Ordering::Relaxed) {
                            if ok {
                                latencies.push(started.elapsed());
                            } else {
                                errors += 1;
                            }
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut watched = watch.to_vec();
        watched.push(std::process::id());
        let cpu = || watched.iter().map(|&pid| cpu_time(pid)).collect::<Vec<_>>();
        tokio::time::sleep(warm_up).await;
        recording.store(true, Ordering::Relaxed);
        let cpu_before = cpu();
        let started = Instant::now();
        tokio::time::sleep(run_for).await;
        recording.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed();
        let cpu = cpu()
            .into_iter()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before))
            .collect();
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (mut some, failed) = task.await.unwrap();
            latencies.append(&mut some);
            errors += failed;
        }
        latencies.sort();
        Measured {
            events: latencies.len(),
            errors,
            elapsed,
            latencies,
            cpu,
        }
    })
}
