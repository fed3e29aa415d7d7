//! Helpers for the end-to-end tests: find the real `node-host` binary and
//! the built guest examples, run commands with a bound, and read results.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// No command in these tests may run longer than this.
pub const COMMAND_BOUND: Duration = Duration::from_secs(120);

/// The `node-host` binary next to this test binary's `deps/` directory.
pub fn node_host_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // Tests and benches live in <target>/<profile>/deps, binaries (the soak)
    // in <target>/<profile>.
    let dir = exe.parent().expect("an executable's directory");
    let profile_dir = if dir.ends_with("deps") {
        dir.parent().expect("<target>/<profile>")
    } else {
        dir
    };
    let binary = profile_dir.join("node-host");
    assert!(
        binary.is_file(),
        "{} is missing: build it first (cargo build --release -p node-host)",
        binary.display()
    );
    binary
}

/// The repository root: found through `CARGO_MANIFEST_DIR` as cargo sets
/// it when it runs a test or bench (so a binary built in another checkout
/// that shares the target directory still uses this checkout), else where
/// this crate was built.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .expect("tests/ is inside the repository")
        .to_owned()
}

/// `guest-examples/dist/<name>.wasm`, which must have been built.
pub fn guest(name: &str) -> PathBuf {
    let path = repo_root()
        .join("guest-examples/dist")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run guest-examples/build first",
        path.display()
    );
    path
}

/// `node-host serve juturna <guest> --listen 127.0.0.1:0 <extra>`, once it
/// serves; the port it serves at.
pub fn serve_juturna(guest_name: &str, extra: &[&str]) -> (Service, u16) {
    let mut service = Service::start(
        node_host()
            .args(["serve", "juturna"])
            .arg(guest(guest_name))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra),
    );
    let port = juturna_port(&mut service);
    (service, port)
}

/// The loopback port a `node-host serve juturna` serves at, from the line
/// it prints once it does.
pub fn juturna_port(service: &mut Service) -> u16 {
    let line = service.wait_for_line("serving", START_BOUND);
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("127.0.0.1:"))
        .and_then(|port| port.parse().ok())
        .expect("the port it serves at")
}

/// The python of a virtualenv that `tests/setup-venv REQUIREMENTS DIR`
/// made, from the environment variable `var` (which `./run-tests` sets).
pub fn python_from_env(var: &str, requirements: &str) -> PathBuf {
    let python = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{var} is not set: run ./run-tests, or set it to the python that \
             `tests/setup-venv {requirements} DIR` prints"
        )
    });
    assert!(python.is_file(), "{} does not exist", python.display());
    python
}

/// A scratch directory for one test, removed and recreated.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("node-host-e2e-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

/// A `node-host` command whose compile cache is kept in the target directory
/// across test runs: the cache is keyed by each component's sha256 and the
/// engine's settings, and compiling a Python or JavaScript guest takes tens of
/// seconds, so every run but the first loads them in milliseconds.
pub fn node_host() -> Command {
    let mut command = Command::new(node_host_binary());
    command
        .env("NODE_HOST_CACHE_DIR", compile_cache())
        .env_remove("NODE_HOST_LOG")
        .stdin(Stdio::null());
    command
}

/// `<target>/e2e-compile-cache`.
fn compile_cache() -> PathBuf {
    let binary = node_host_binary();
    let target = binary
        .parent()
        .and_then(Path::parent)
        .expect("the binary lives in <target>/<profile>/");
    target.join("e2e-compile-cache")
}

/// What a finished command produced.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Run {
    /// `self`, after asserting that the command exited 0.
    pub fn expect_success(self) -> Self {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self
    }

    /// Standard output parsed as JSON; panics with both streams otherwise.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:#?}"))
    }
}

/// Runs `command` to completion, killing it past [`COMMAND_BOUND`].
pub fn run(command: &mut Command) -> Run {
    run_bounded(command, COMMAND_BOUND)
}

/// Runs `command` to completion, killing it past `bound`. Both streams are
/// drained while it runs, so a command that prints a lot cannot block.
pub fn run_bounded(command: &mut Command, bound: Duration) -> Run {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning node-host");
    let drain = |mut stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting on node-host") {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            panic!("node-host ran longer than {bound:?}: {command:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A long-running `node-host` process (a hub or a worker), killed on drop.
/// Its stdout lines arrive on a channel; its stderr is kept for failure
/// messages.
pub struct Service {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
}

impl Service {
    /// Starts `command` with piped output.
    pub fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning node-host");
        let (sender, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                match std::io::Read::read(&mut pipe, &mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buffer[..n])),
                }
            }
        });
        Self {
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// The URL of the metrics it serves (`--metrics`), from the line it
    /// printed (read already: by `wait_for_line`).
    pub fn metrics_url(&self) -> String {
        let line = self
            .seen
            .iter()
            .find(|line| line.contains("metrics at"))
            .expect("the service printed its metrics address");
        line.split_whitespace().last().unwrap().to_owned()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a stdout line containing `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str, bound: Duration) -> String {
        let deadline = Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing `{needle}` within {bound:?}\nstdout: {:#?}\nstderr: {}",
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// Sends `signal` (e.g. `TERM`, `KILL`) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `bound` for the process to exit; its exit code, or
    /// `None` if it was killed by a signal. Panics if it is still running.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<i32> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting on node-host") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "node-host did not exit within {bound:?}; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a service may take to come up (a first compile included).
pub const START_BOUND: Duration = Duration::from_secs(60);

/// A `node-host hub` on 127.0.0.1 with its own data directory.
pub struct Hub {
    /// The process.
    pub service: Service,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its metrics URL, `http://127.0.0.1:PORT/metrics` (a listener of its own).
    pub metrics: String,
    /// Its data directory.
    pub data: PathBuf,
    /// Its `--database` (a cluster's PostgreSQL), if given.
    pub database: Option<String>,
}

impl Hub {
    /// Starts a hub on a port the OS picks, with a fresh data directory.
    pub fn start(test: &str) -> Self {
        Self::start_at(&scratch_dir(test), "127.0.0.1:0")
    }

    /// Starts a hub like [`Hub::start`], with more `hub` flags.
    pub fn start_with(test: &str, flags: &[&str]) -> Self {
        Self::start_at_with(&scratch_dir(test), "127.0.0.1:0", flags)
    }

    /// Starts a hub on `listen` with `data` (e.g. to restart one).
    pub fn start_at(data: &Path, listen: &str) -> Self {
        Self::start_at_with(data, listen, &[])
    }

    /// Starts a hub on `listen` with `data` and more `hub` flags.
    pub fn start_at_with(data: &Path, listen: &str, flags: &[&str]) -> Self {
        Self::start_at_with_env(data, listen, flags, &[])
    }

    /// A hub of a cluster: [`Hub::start_with`] with the secrets key every
    /// hub of the cluster shares.
    pub fn start_in_cluster(test: &str, flags: &[&str]) -> Self {
        Self::start_at_with_env(
            &scratch_dir(test),
            "127.0.0.1:0",
            flags,
            &[("NODE_HOST_SECRETS_KEY", CLUSTER_SECRETS_KEY)],
        )
    }

    /// [`Hub::start_at_with`] with more environment variables.
    pub fn start_at_with_env(
        data: &Path,
        listen: &str,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut service = Service::start(
            node_host()
                .args([
                    "hub",
                    "--listen",
                    listen,
                    "--metrics",
                    "127.0.0.1:0",
                    "--data",
                ])
                .arg(data)
                .args(flags)
                .envs(env.iter().copied()),
        );
        let metrics = service.wait_for_line("metrics at", START_BOUND);
        let metrics = metrics
            .split_whitespace()
            .last()
            .expect("the metrics line ends with its URL")
            .to_owned();
        let line = service.wait_for_line("hub listening on", START_BOUND);
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .expect("the listening line has a URL")
            .to_owned();
        let database = flags
            .iter()
            .position(|flag| *flag == "--database")
            .and_then(|at| flags.get(at + 1))
            .map(|url| (*url).to_owned());
        Self {
            service,
            url,
            metrics,
            data: data.to_owned(),
            database,
        }
    }

    /// The `host:port` the hub listens on.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// `node-host upload` of the guest example `name` as `token`'s account.
    pub fn upload(&self, token: &str, name: &str) -> Run {
        run(node_host().arg("upload").arg(guest(name)).args([
            "--backend",
            &self.url,
            "--token",
            token,
        ]))
    }

    /// A new API token for `account`.
    pub fn token(&self, account: &str, read_only: bool) -> String {
        let mut command = node_host();
        command
            .args(["hub", "token", "create", "--account", account, "--data"])
            .arg(&self.data);
        if let Some(database) = &self.database {
            command.args(["--database", database]);
        }
        if read_only {
            command.arg("--read-only");
        }
        let done = run(&mut command);
        assert_eq!(done.code, Some(0), "{done:#?}");
        done.stdout.trim().to_owned()
    }

    /// Stores the Exosphere graph `name` in `namespace` with the API key
    /// `key`; asserts the hub found it valid.
    pub fn put_exosphere_graph(
        &self,
        key: &str,
        namespace: &str,
        name: &str,
        graph: &serde_json::Value,
    ) {
        let stored: serde_json::Value = http()
            .put(format!(
                "{}/v0/namespace/{namespace}/graph/{name}",
                self.url
            ))
            .header("x-api-key", key)
            .json(graph)
            .send()
            .and_then(reqwest::blocking::Response::json)
            .expect("storing the graph");
        assert_eq!(stored["validation_status"], "VALID", "{stored:#}");
    }
}

/// Starts `node-host run` for `guests` against `backend`, and waits until
/// it is connected.
pub fn start_worker(backend: &str, token: &str, guests: &[&str], extra: &[&str]) -> Service {
    let mut command = node_host();
    command.arg("run");
    for name in guests {
        command.arg(guest(name));
    }
    command
        .args(["--backend", backend, "--token", token])
        .args(extra);
    let mut service = Service::start(&mut command);
    service.wait_for_line("serving", START_BOUND);
    service
}

/// `POST {backend}/api/remote_nodes/{node}/execute` with `body`; the status
/// and the JSON answer.
pub fn execute(
    backend: &str,
    token: &str,
    node: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = http()
        .post(format!("{backend}/api/remote_nodes/{node}/execute"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .expect("the hub answers");
    let status = response.status().as_u16();
    (status, response.json().expect("the hub answers JSON"))
}

/// A blocking HTTP client with a bound on every request.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(COMMAND_BOUND)
        .build()
        .expect("an HTTP client")
}

/// Waits until `check` is true, polling every 20 ms for at most `bound`.
pub fn eventually(bound: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !check() {
        assert!(Instant::now() < deadline, "not within {bound:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`execute`] on another thread; join the handle for its answer.
pub fn execute_in_background(
    backend: &str,
    token: &str,
    node: &str,
    body: serde_json::Value,
) -> std::thread::JoinHandle<(u16, serde_json::Value)> {
    let (backend, token, node) = (backend.to_owned(), token.to_owned(), node.to_owned());
    std::thread::spawn(move || execute(&backend, &token, &node, body))
}

/// Asserts that `caller`, an execute whose worker went away at `since`, was
/// answered 502 `worker_lost` within `bound` of it (far below any timeout:
/// the hub noticed).
#[track_caller]
pub fn assert_worker_lost(
    caller: std::thread::JoinHandle<(u16, serde_json::Value)>,
    since: Instant,
    bound: Duration,
) {
    let (status, answer) = caller.join().expect("the caller thread");
    assert_eq!(
        (status, answer["code"].as_str()),
        (502, Some("worker_lost")),
        "{answer}"
    );
    assert!(since.elapsed() < bound, "{:?}", since.elapsed());
}

/// The value of the sample `name` (with its labels, if any) on the
/// Prometheus page at `url`; 0 if the page does not have it.
pub fn metric(url: &str, name: &str) -> f64 {
    let text = http()
        .get(url)
        .send()
        .expect("the metrics page answers")
        .text()
        .expect("the metrics page is text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A load generator for benchmarks: many callers executing one node.
pub mod load {
    /// The value of `--seconds N` among a bench's arguments (default 5).
    pub fn seconds_arg(args: &[String]) -> f64 {
        args.iter()
            .position(|arg| arg == "--seconds")
            .and_then(|at| args.get(at + 1))
            .map_or(5.0, |value| {
                value.parse().expect("--seconds takes a number")
            })
    }

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

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
        measure_requests(concurrency, Duration::ZERO, seconds, watch, request)
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
        measure_requests(1, pause, seconds, watch, request)
    }

    /// Makes `POST {hub}/api/remote_nodes/{node}/execute` with `inputs`.
    fn execute_request(
        hub: &str,
        token: &str,
        node: &str,
        inputs: &serde_json::Value,
    ) -> impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static {
        let url = format!("{hub}/api/remote_nodes/{node}/execute");
        let body = serde_json::json!({ "inputs": inputs }).to_string();
        let token = token.to_owned();
        move |client| {
            client
                .post(&url)
                .bearer_auth(&token)
                .header("Content-Type", "application/json")
                .body(body.clone())
        }
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
        measure_requests(concurrency, Duration::ZERO, seconds, watch, move |client| {
            let turn = next.fetch_add(1, Ordering::Relaxed);
            requests[turn % requests.len()](client)
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
        let url = format!("{hub}/api/remote_nodes");
        let token = token.to_owned();
        measure_requests(concurrency, Duration::ZERO, seconds, watch, move |client| {
            client.get(&url).bearer_auth(&token)
        })
    }

    /// Sends the request `request` makes from `concurrency` callers in a
    /// loop for `seconds` (after a warm-up), each waiting `pause` before
    /// each request, recording each latency.
    fn measure_requests(
        concurrency: usize,
        pause: Duration,
        seconds: f64,
        watch: &[u32],
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
    ) -> Measured {
        let request = Arc::new(request);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()
            .unwrap();
        measure_calls(concurrency, pause, seconds, watch, move || {
            let (client, request) = (client.clone(), request.clone());
            async move {
                match request(&client).send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        let _ = response.bytes().await;
                        ok
                    }
                    Err(_) => false,
                }
            }
        })
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
}

/// The secrets key of the tests' clusters (base64 of 32 bytes).
pub const CLUSTER_SECRETS_KEY: &str = "bm9kZS1ob3N0IHRlc3RzJyBjbHVzdGVyIGtleSAhISE=";

/// A private PostgreSQL with one empty database for a cluster of hubs:
/// the server (stopped when dropped) and the database's URL.
pub fn cluster_database(name: &str) -> (node_host::testing::PostgresServer, String) {
    let server = node_host::testing::PostgresServer::start().expect("a private PostgreSQL");
    let url = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(server.create_database(name))
        .expect("an empty database");
    (server, url)
}

/// A TCP load balancer on 127.0.0.1, as one in front of a cluster of hubs:
/// each connection goes to the first of its targets that accepts it, and
/// bytes are copied both ways until either side closes. Stops accepting
/// when dropped.
pub struct Balancer {
    /// `host:port` it listens on.
    pub addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Balancer {
    /// Starts one in front of `targets` (`host:port` each, in order).
    pub fn start(targets: Vec<String>) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => return,
                };
                client.set_nonblocking(false).unwrap();
                let Some(server) = targets
                    .iter()
                    .find_map(|target| std::net::TcpStream::connect(target).ok())
                else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { addr, stop }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
