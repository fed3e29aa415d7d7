//! The on-disk compile cache.
//!
//! Compiling a big guest takes seconds; deserializing this host's own
//! artifact takes milliseconds. Artifacts are keyed by the component's
//! sha256 and the engine's compatibility hash (wasmtime version, target and
//! every setting that changes generated code), written atomically into a
//! directory only this user can write, and never taken from anywhere else:
//! deserializing is only safe for artifacts this host produced.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components for one engine configuration.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// Opens (creating if needed) the cache at `dir` for `engine`.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn artifact_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of the component with this sha256, if any.
    /// A damaged artifact is removed and reported as a miss.
    pub(crate) fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.artifact_path(sha256);
        // Read into memory rather than map the file: a mapped artifact that
        // anyone truncates later would crash the process with SIGBUS (the
        // load tests truncate one on purpose). Mapping measured 15× faster
        // for a Python guest (see BENCHMARKS.md); doing it safely needs a
        // private copy first.
        let bytes = fs::read(&path).ok()?;
        // SAFETY: the file lives in this host's private cache directory and was
        // written by `put` below from `Component::serialize` of an engine with
        // the same compatibility hash (part of its name); wasmtime also checks
        // the header against this engine before using it.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), "dropping unusable cached artifact: {err}");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores the compilation of the component with this sha256.
    pub(crate) fn put(&self, sha256: &str, component: &Component) -> io::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|err| io::Error::other(err.to_string()))?;
        write_atomically(&self.artifact_path(sha256), &bytes)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// renamed into place: a reader sees the old file or the whole new one, and
/// a file that has its final name is never written again.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let (temp_path, mut file) = tempfile_in(dir)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temp_path, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    written
}

/// A uniquely named file in `dir` for an atomic write-then-rename.
fn tempfile_in(dir: &Path) -> io::Result<(PathBuf, fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}
