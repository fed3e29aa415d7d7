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

pub use node_host::sandbox::bench_support::with_custom_section;

/// The guest example `name` with [`with_custom_section`]`(…, tag)`, written
/// into `dir`: its path.
pub fn retagged(name: &str, tag: &str, dir: &Path) -> PathBuf {
    let bytes = with_custom_section(std::fs::read(guest(name)).unwrap(), tag);
    let path = dir.join(format!("{name}-{tag}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
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

/// A long-running `node-host` process (a hub or a worker), killed on drop,
/// and by the kernel when the thread that started it ends (a test or bench
/// killed by a signal, which drops nothing, leaves no process behind).
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
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: between fork and exec the closure makes one system
            // call and allocates nothing.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
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

/// Waits until a running hub has let go of the account limits it read
/// before `node-host hub account set` changed them: it reads them again
/// after [`LIMITS_RECHECK`](node_host::hub::service::LIMITS_RECHECK).
pub fn wait_for_new_limits() {
    std::thread::sleep(node_host::hub::service::LIMITS_RECHECK + Duration::from_millis(100));
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

pub mod browser;
pub mod load;
pub mod plots;

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
