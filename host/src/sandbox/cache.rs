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

    /// `key` is the component's sha256, followed by `-preinit` for its
    /// pre-initialized compile.
    fn artifact_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}-{}.cwasm", self.engine_key))
    }

    /// Removes every artifact of the component `sha256` in `dir`, whatever
    /// engine made it. A process that has one loaded keeps its mapping.
    pub fn remove_component(dir: &Path, sha256: &str) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let prefix = format!("{sha256}-");
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".cwasm") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The cached compilation under `key` (see `artifact_path`), if any.
    /// A damaged artifact is removed and reported as a miss.
    ///
    /// The artifact is mapped, not read: wasmtime then uses the file as the
    /// copy-on-write source of the guest's linear memory, so a cached load of
    /// a big guest takes milliseconds (reading 40 MB measured ~10× slower on
    /// the benchmark machine). This is safe because a file that has its final
    /// name is never written again (see [`write_atomically`]) and removing it
    /// does not disturb a mapping. Overwriting or truncating an artifact in
    /// place while a process uses it would crash that process; the files are
    /// read-only and the directory is private to this user, who could
    /// equally well replace the code in it.
    pub(crate) fn get(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.artifact_path(key);
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file lives in this host's private cache directory and was
        // written by `put` below from `Engine::precompile_component` of an
        // engine with the same compatibility hash (part of its name); wasmtime
        // also checks the header against this engine before using it.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(err) => {
                let message = format!("{err:#}");
                // A component too big for the instance pool is reported by
                // the compile that follows; any other failure is damage.
                if !super::load::exceeds_pool(&message) {
                    tracing::warn!(path = %path.display(), "dropping unusable cached artifact: {message}");
                }
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores an artifact produced by `Engine::precompile_component` for the
    /// component under `key` (see `artifact_path`), read-only.
    pub(crate) fn put(&self, key: &str, artifact: &[u8]) -> io::Result<()> {
        write_atomically(&self.artifact_path(key), artifact)
    }
}

/// Loads a compiled artifact that is not in a cache through a private
/// in-memory file.
///
/// wasmtime maps a component loaded from a file and uses that mapping as the
/// copy-on-write source of the guest's linear memory. Loaded from memory
/// instead, it copies every memory image into a memfd of its own and seals
/// it, which the kernel sometimes refuses under load (`EBUSY`, reported as
/// "cannot add seals to the memfd"; seen once in CI). The file here is a
/// memfd only this process holds. Where memfds or `/proc` are missing, the
/// artifact is deserialized from memory.
///
/// # Safety
/// `artifact` must come from `Component::serialize` (or a cache file this
/// host wrote) of an engine with the same compatibility hash.
pub(crate) unsafe fn deserialize_private(
    engine: &Engine,
    artifact: &[u8],
) -> wasmtime::Result<Component> {
    #[cfg(target_os = "linux")]
    if let Some(file) = private_file(artifact) {
        use std::os::fd::AsRawFd;
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if path.exists() {
            // SAFETY: as for this function; wasmtime opens its own handle on
            // the memfd, so `file` may close when this returns.
            return unsafe { Component::deserialize_file(engine, &path) };
        }
    }
    // SAFETY: as for this function.
    unsafe { Component::deserialize(engine, artifact) }
}

/// An anonymous in-memory file holding `bytes`, or `None` if the kernel
/// cannot make one.
#[cfg(target_os = "linux")]
fn private_file(bytes: &[u8]) -> Option<fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: a valid NUL-terminated name and flags; the result is checked.
    let fd = unsafe { libc::memfd_create(c"node-host-artifact".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let mut file = unsafe { fs::File::from_raw_fd(fd) };
    file.write_all(bytes).ok()?;
    Some(file)
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// renamed into place: a reader sees the old file or the whole new one, and
/// a file that has its final name is never written again (it is made
/// read-only before it gets that name).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let (temp_path, mut file) = tempfile_in(dir)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| make_read_only(&file))
        .and_then(|()| fs::rename(&temp_path, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp_path);
    }
    written
}

fn make_read_only(file: &fs::File) -> io::Result<()> {
    let mut permissions = file.metadata()?.permissions();
    permissions.set_readonly(true);
    file.set_permissions(permissions)
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
