//! Helpers for the end-to-end tests: find the real `node-host` binary and
//! the built guest examples, run commands with a bound, and read results.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// No command in these tests may run longer than this.
pub const COMMAND_BOUND: Duration = Duration::from_secs(120);

/// The `node-host` binary next to this test binary's `deps/` directory.
pub fn node_host_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in <target>/<profile>/deps");
    let binary = profile_dir.join("node-host");
    assert!(
        binary.is_file(),
        "{} is missing: build it first (cargo build --release -p node-host)",
        binary.display()
    );
    binary
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// A scratch directory for one test, removed and recreated.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("node-host-e2e-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

/// A `node-host` command with a compile cache private to this test process.
pub fn node_host() -> Command {
    let mut command = Command::new(node_host_binary());
    let cache = std::env::temp_dir().join(format!("node-host-e2e-cache-{}", std::process::id()));
    command
        .env("NODE_HOST_CACHE_DIR", cache)
        .env_remove("NODE_HOST_LOG")
        .stdin(Stdio::null());
    command
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
    /// Standard output parsed as JSON; panics with both streams otherwise.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:#?}"))
    }
}

/// Runs `command` to completion, killing it past [`COMMAND_BOUND`].
pub fn run(command: &mut Command) -> Run {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning node-host");
    let started = Instant::now();
    while child.try_wait().expect("waiting on node-host").is_none() {
        if started.elapsed() > COMMAND_BOUND {
            let _ = child.kill();
            panic!("node-host ran longer than {COMMAND_BOUND:?}: {command:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child
        .wait_with_output()
        .expect("collecting node-host's output");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
