//! Secrets at rest: each value is sealed with XChaCha20-Poly1305 (an AEAD
//! from RustCrypto's `chacha20poly1305`) under the hub's secrets key, with a
//! random nonce per value and the owning account and the secret's name as
//! associated data, so a sealed value moved to another row or account does
//! not open.
//!
//! The key comes from `NODE_HOST_SECRETS_KEY` (32 bytes, base64), or from
//! `secrets.key` in the hub's data directory, made on first use and
//! readable by this user only. The embedded hub keeps a random key in
//! memory. Values are never returned by the API; only a node that declares
//! a secret gets it, in its own account.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;

/// The environment variable that holds the secrets key (base64 of 32 bytes).
pub const KEY_ENV: &str = "NODE_HOST_SECRETS_KEY";

/// The key file in the hub's data directory.
pub const KEY_FILE: &str = "secrets.key";

/// The largest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 << 10;

const NONCE_BYTES: usize = 24;

/// Why the secrets key cannot be had, or a value cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// `NODE_HOST_SECRETS_KEY` is not 32 bytes of base64.
    #[error("{KEY_ENV} must be 32 bytes in base64 (e.g. from `openssl rand -base64 32`)")]
    BadKey,
    /// The key file cannot be read or written.
    #[error("cannot use the secrets key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A sealed value does not open with this key.
    #[error(
        "secret `{0}` cannot be decrypted: the hub's secrets key changed ({KEY_ENV} or \
         {KEY_FILE} in the data directory); restore the key, or set the secret again"
    )]
    WrongKey(String),
    /// The other hubs of the cluster seal secrets under another key.
    #[error(
        "this hub's secrets key is not the one the other hubs sharing its database use: give \
         every hub of the cluster the same {KEY_ENV} (base64 of 32 bytes), or secrets set \
         through one hub cannot be read by another"
    )]
    KeyMismatch,
}

/// Seals and opens secret values with the hub's key.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// A hash of the key (which it does not reveal: the key is 256 random
    /// bits), for hubs of a cluster to check that they share it.
    check: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

/// A sealed value: its nonce and ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The random nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

impl SecretBox {
    /// The key from the environment, else from the data directory's key
    /// file (made if missing), else (no directory) a fresh random key.
    pub fn open(data_dir: Option<&Path>) -> Result<Self, SecretsError> {
        if let Ok(encoded) = std::env::var(KEY_ENV) {
            let key = BASE64
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or(SecretsError::BadKey)?;
            return Ok(Self::with_key(&key));
        }
        let Some(dir) = data_dir else {
            return Ok(Self::with_key(&random_key()));
        };
        let path = dir.join(KEY_FILE);
        let failed = |source| SecretsError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key = <[u8; 32]>::try_from(bytes).map_err(|_| {
                    failed(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the file is not a 32-byte key",
                    ))
                })?;
                Ok(Self::with_key(&key))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let key = random_key();
                write_private(&path, &key).map_err(failed)?;
                Ok(Self::with_key(&key))
            }
            Err(err) => Err(failed(err)),
        }
    }

    fn with_key(key: &[u8; 32]) -> Self {
        use sha2::Digest as _;
        let mut check = sha2::Sha256::new();
        check.update(b"node-host secrets key check\0");
        check.update(key);
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            check: check.finalize().into(),
        }
    }

    /// What hubs sharing a database compare to know they share the key.
    pub fn key_check(&self) -> [u8; 32] {
        self.check
    }

    /// Seals `value` for `account`'s secret `name`.
    pub fn seal(&self, account: i64, name: &str, value: &str) -> Sealed {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &associated(account, name),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message of this size");
        Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens what [`seal`](Self::seal) sealed for the same account and name.
    pub fn open_value(
        &self,
        account: i64,
        name: &str,
        sealed: &Sealed,
    ) -> Result<String, SecretsError> {
        let wrong = || SecretsError::WrongKey(name.to_owned());
        if sealed.nonce.len() != NONCE_BYTES {
            return Err(wrong());
        }
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &associated(account, name),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map_err(|_| wrong())
    }
}

/// Secret names: 1 to 128 of `[A-Za-z0-9._-]`.
pub fn valid_secret_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn associated(account: i64, name: &str) -> Vec<u8> {
    format!("node-host secret\0{account}\0{name}").into_bytes()
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_open_only_for_their_account_and_name() {
        let sealer = SecretBox::with_key(&random_key());
        let sealed = sealer.seal(1, "api-key", "s3cret");
        assert!(
            !sealed
                .ciphertext
                .windows(6)
                .any(|window| window == b"s3cret")
        );
        assert_eq!(sealer.open_value(1, "api-key", &sealed).unwrap(), "s3cret");
        assert!(sealer.open_value(2, "api-key", &sealed).is_err());
        assert!(sealer.open_value(1, "other", &sealed).is_err());
        let other_key = SecretBox::with_key(&random_key());
        assert!(matches!(
            other_key.open_value(1, "api-key", &sealed),
            Err(SecretsError::WrongKey(_))
        ));
        assert_ne!(sealer.seal(1, "api-key", "s3cret"), sealed, "fresh nonce");
    }

    #[test]
    fn the_key_file_is_made_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("node-host-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = SecretBox::open(Some(&dir)).unwrap();
        let sealed = first.seal(1, "a", "v");
        let again = SecretBox::open(Some(&dir)).unwrap();
        assert_eq!(again.open_value(1, "a", &sealed).unwrap(), "v");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secret_names_are_checked() {
        assert!(valid_secret_name("api-key.v2_x"));
        for bad in ["", "a b", "a/b", &"x".repeat(129)] {
            assert!(!valid_secret_name(bad));
        }
    }
}
