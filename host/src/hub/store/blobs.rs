//! Uploaded components, content-addressed: the [`Blobs`] seam, and its
//! filesystem implementation (`<dir>/<sha256>.wasm`).
//!
//! A component is written once (atomically) and read back by its hash,
//! which is checked on every read, so a damaged or swapped file is reported
//! rather than run. The embedded hub, which keeps nothing across restarts,
//! uses a private temporary directory that goes away with it. Calls block:
//! async callers make them on `spawn_blocking`.

use std::io;
use std::path::{Path, PathBuf};

use crate::sandbox::cache::write_atomically;
use crate::sandbox::sha256_hex;

/// Where uploaded components live, by their hex sha256. One implementation
/// per kind of storage (a directory today).
pub trait Blobs: Send + Sync + std::fmt::Debug {
    /// Stores `bytes`, whose hex sha256 is `sha256` (kept if already there).
    fn put(&self, sha256: &str, bytes: &[u8]) -> io::Result<()>;

    /// The bytes of the component `sha256`, checked against the hash.
    fn get(&self, sha256: &str) -> io::Result<Vec<u8>>;

    /// Removes the component `sha256`, if stored.
    fn remove(&self, sha256: &str);
}

/// Components in a directory.
#[derive(Debug)]
pub struct FsBlobs {
    dir: PathBuf,
    /// Removed on drop: the directory of an in-memory hub.
    temporary: bool,
}

impl FsBlobs {
    /// Opens (creating if needed) the store at `dir`, or a fresh temporary
    /// one when `dir` is `None`.
    pub fn open(dir: Option<&Path>) -> io::Result<Self> {
        let (dir, temporary) = match dir {
            Some(dir) => (dir.to_owned(), false),
            None => {
                use std::sync::atomic::{AtomicU64, Ordering};
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let name = format!(
                    "node-host-hub-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                (std::env::temp_dir().join(name), true)
            }
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir)?;
        Ok(Self { dir, temporary })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    /// The directory (compiled artifacts go beside it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Blobs for FsBlobs {
    fn put(&self, sha256: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(sha256);
        if path.is_file() {
            return Ok(());
        }
        write_atomically(&path, bytes)
    }

    fn get(&self, sha256: &str) -> io::Result<Vec<u8>> {
        let path = self.path(sha256);
        let bytes = std::fs::read(&path)?;
        if sha256_hex(&bytes) != sha256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} does not match its sha256", path.display()),
            ));
        }
        Ok(bytes)
    }

    fn remove(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.path(sha256));
    }
}

impl Drop for FsBlobs {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_round_trip_by_hash_and_damage_is_caught() {
        let blobs = FsBlobs::open(None).unwrap();
        let dir = blobs.dir().to_owned();
        let bytes = b"\0asm not really".to_vec();
        let sha = sha256_hex(&bytes);
        blobs.put(&sha, &bytes).unwrap();
        blobs.put(&sha, &bytes).unwrap();
        assert_eq!(blobs.get(&sha).unwrap(), bytes);
        let path = dir.join(format!("{sha}.wasm"));
        assert!(path.metadata().unwrap().permissions().readonly());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"swapped").unwrap();
        assert_eq!(
            blobs.get(&sha).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        blobs.remove(&sha);
        assert!(blobs.get(&sha).is_err());
        drop(blobs);
        assert!(!dir.exists(), "a temporary store goes away with the hub");
    }
}
