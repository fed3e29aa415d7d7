//! Real servers for tests, never mocks: a private PostgreSQL and a private
//! `nats-server`, each started from the machine's Debian packages in a
//! temporary directory, on a loopback port the OS chose, and stopped (its
//! directory removed) when dropped. `./run-tests` installs the packages
//! (`tests/install-tools`).

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh, empty directory under the system's temporary directory.
fn scratch_dir(kind: &str) -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "node-host-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A loopback port the OS just handed out (and took back): free unless
/// another process takes it in between, which callers retry.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs `start` on ports the OS hands out until it works: another process
/// may take a port between, so five tries.
fn on_a_free_port(what: &str, mut start: impl FnMut(u16) -> io::Result<()>) -> io::Result<()> {
    let mut last = None;
    for _ in 0..5 {
        match start(free_port()?) {
            Ok(()) => return Ok(()),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| failed(format!("{what} did not start"))))
}

fn failed(what: String) -> io::Error {
    io::Error::other(what)
}

/// Runs `command`, failing with its output when it fails.
fn run(command: &mut Command, what: &str) -> io::Result<()> {
    let output = command.stdin(Stdio::null()).output().map_err(|err| {
        failed(format!(
            "cannot run {what} ({:?}): {err}",
            command.get_program()
        ))
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(failed(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

/// A private PostgreSQL server: `initdb` and `pg_ctl` in a temporary
/// directory, trust authentication for the user `nodehost`, on 127.0.0.1.
///
/// PostgreSQL refuses to run as root, so when the tests run as root (as in
/// CI) the server runs as the `postgres` user that Debian's package makes.
#[derive(Debug)]
pub struct PostgresServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The uid and gid the server runs as, when not ours.
    run_as: Option<(u32, u32)>,
}

/// The user the tests connect as.
const PG_USER: &str = "nodehost";

impl PostgresServer {
    /// Makes a new cluster and starts it.
    pub fn start() -> io::Result<Self> {
        let bin = postgres_bin()?;
        let dir = scratch_dir("postgres")?;
        let run_as = postgres_user()?;
        let mut server = Self {
            dir,
            bin,
            port: 0,
            run_as,
        };
        if let Some((uid, gid)) = server.run_as {
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid))?;
        }
        let mut initdb = server.command("initdb");
        initdb
            .arg("-D")
            .arg(server.data())
            .args(["-U", PG_USER, "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C", "--no-instructions"]);
        run(&mut initdb, "initdb")?;
        on_a_free_port("PostgreSQL", |port| {
            server.port = port;
            server.start_again()
        })?;
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt as _;
            command.uid(uid).gid(gid);
        }
        command.current_dir(&self.dir);
        command
    }

    /// Starts the server again (on the same port) after [`stop`](Self::stop).
    pub fn start_again(&mut self) -> io::Result<()> {
        // No fsync (the machine does not crash under a test), but commits
        // are synchronous: an immediate stop keeps every committed write.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off \
             -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        run(&mut start, "pg_ctl start").map_err(|err| {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            failed(format!("{err}\nserver log:\n{log}"))
        })
    }

    /// Stops the server at once (connections are cut, as in a crash of the
    /// database); [`start_again`](Self::start_again) brings it back.
    pub fn stop(&mut self) -> io::Result<()> {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]);
        run(&mut stop, "pg_ctl stop")
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates the empty database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> io::Result<String> {
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .map_err(|err| failed(format!("cannot connect to the test PostgreSQL: {err}")))?;
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|err| failed(format!("cannot create database {name}: {err}")))?;
        drop(client);
        let _ = connection.await;
        Ok(self.url(name))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of PostgreSQL's server programs: `NODE_HOST_PG_BIN`, else
/// the newest `/usr/lib/postgresql/N/bin` (Debian's layout), else the
/// directory of an `initdb` on `PATH`.
fn postgres_bin() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("NODE_HOST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    on_path("initdb")
        .and_then(|initdb| initdb.parent().map(Path::to_owned))
        .ok_or_else(|| {
            failed(
                "PostgreSQL's server programs (initdb, pg_ctl) are not installed: install \
                 Debian's postgresql-15 (tests/install-tools does) or set NODE_HOST_PG_BIN"
                    .into(),
            )
        })
}

/// `program` on `PATH`, if there.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// The `postgres` user's uid and gid when we are root, else `None`.
fn postgres_user() -> io::Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .map(Some)
        .ok_or_else(|| {
            failed(
                "running as root, and PostgreSQL refuses root: no `postgres` user to run it \
                 as (Debian's postgresql package makes one)"
                    .into(),
            )
        })
}

/// A private `nats-server` on 127.0.0.1 (core NATS; no JetStream).
#[derive(Debug)]
pub struct NatsServer {
    dir: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl NatsServer {
    /// Starts one on a port the OS chose.
    pub fn start() -> io::Result<Self> {
        let mut server = Self {
            dir: scratch_dir("nats")?,
            port: 0,
            child: None,
        };
        on_a_free_port("nats-server", |port| {
            server.port = port;
            server.start_again()
        })?;
        Ok(server)
    }

    /// Starts the server again (on the same port) after [`stop`](Self::stop).
    pub fn start_again(&mut self) -> io::Result<()> {
        let program = on_path("nats-server")
            .or_else(|| Some(PathBuf::from("/usr/bin/nats-server")).filter(|path| path.is_file()))
            .ok_or_else(|| {
                failed(
                    "nats-server is not installed: install Debian's nats-server \
                     (tests/install-tools does)"
                        .into(),
                )
            })?;
        let log = std::fs::File::create(self.dir.join("server.log"))?;
        let mut child = Command::new(program)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                return Err(failed(format!("nats-server exited ({status}):\n{log}")));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(failed("nats-server did not listen within 10 s".into()))
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
