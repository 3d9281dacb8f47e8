//! Secrets kept at rest (BMC passwords): sealed with ChaCha20-Poly1305
//! under a key from the configuration (`power.secret_key_file`), never
//! shown back. Every replica needs the same key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const PREFIX: &str = "sealed:v1:";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Seals and opens secrets with one key.
#[derive(Clone)]
pub struct SecretBox {
    key: Arc<OnceLock<ChaCha20Poly1305>>,
    /// Where the key is read from (and created) at first use.
    path: Option<PathBuf>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box with a 32-byte key.
    pub fn new(key: [u8; 32]) -> SecretBox {
        let cell = OnceLock::new();
        let _ = cell.set(ChaCha20Poly1305::new(&Key::from(key)));
        SecretBox {
            key: Arc::new(cell),
            path: None,
        }
    }

    /// A box whose key is in `path` (32 bytes, base64, one line), read at
    /// first use and created then with a new random key (readable by the
    /// owner only) when the file is missing. Nothing is written until a
    /// secret is sealed or opened.
    pub fn at(path: &Path) -> SecretBox {
        SecretBox {
            key: Arc::new(OnceLock::new()),
            path: Some(path.to_path_buf()),
        }
    }

    /// The key in `path`, read (or created) now.
    pub fn from_file(path: &Path) -> Result<SecretBox, String> {
        let secrets = SecretBox::at(path);
        secrets.cipher()?;
        Ok(secrets)
    }

    fn cipher(&self) -> Result<&ChaCha20Poly1305, String> {
        if let Some(cipher) = self.key.get() {
            return Ok(cipher);
        }
        let path = self
            .path
            .as_deref()
            .ok_or_else(|| "no key for secrets at rest".to_string())?;
        let key = read_or_create(path)?;
        Ok(self
            .key
            .get_or_init(|| ChaCha20Poly1305::new(&Key::from(key))))
    }

    /// `sealed:v1:<base64 of nonce and ciphertext>`.
    pub fn seal(&self, secret: &str) -> Result<String, String> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| format!("no random nonce: {e}"))?;
        let sealed = self
            .cipher()?
            .encrypt(&Nonce::from(nonce), secret.as_bytes())
            .map_err(|_| "the secret could not be sealed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    /// The secret sealed by [`SecretBox::seal`] under the same key.
    pub fn open(&self, sealed: &str) -> Result<String, String> {
        let wrong = || {
            "a stored secret cannot be opened with power.secret_key_file's key (was the key changed?); set the password again".to_string()
        };
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or_else(wrong)?;
        let (nonce, data) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| wrong())?;
        let plain = self
            .cipher()?
            .decrypt(&Nonce::from(nonce), data)
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map_err(|_| wrong())
    }
}

/// The key in `path`; a new random one written there if the file is
/// missing.
fn read_or_create(path: &Path) -> Result<[u8; 32], String> {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| format!("no random key for {shown}: {e}"))?;
            let text = format!("{}\n", B64.encode(key));
            match write_private(path, &text) {
                Ok(()) => {
                    tracing::info!(path = %shown, "created a new key for secrets at rest");
                    text
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read the key file {shown}: {e}"))?
                }
                Err(e) => return Err(format!("cannot create the key file {shown}: {e}")),
            }
        }
        Err(e) => return Err(format!("cannot read the key file {shown}: {e}")),
    };
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| format!("{shown} does not hold a base64 key"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{shown} must hold a 32-byte key (base64)"))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_differently_each_time_and_opens_only_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/power.key");
        // Nothing is written until a secret is sealed.
        let lazy = SecretBox::at(&path);
        assert!(!path.exists());
        let early = lazy.seal("hobbes").unwrap();
        assert!(path.exists());
        let one = SecretBox::from_file(&path).unwrap();
        assert_eq!(one.open(&early).unwrap(), "hobbes");
        let again = SecretBox::from_file(&path).unwrap();
        let a = one.seal("calvin").unwrap();
        let b = one.seal("calvin").unwrap();
        assert_ne!(a, b);
        assert!(!a.contains("calvin"));
        assert_eq!(again.open(&a).unwrap(), "calvin");
        let other = SecretBox::new([7; 32]);
        assert!(other.open(&a).is_err());
        assert!(one.open("calvin").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("bad.key"), "short").unwrap();
        assert!(SecretBox::from_file(&dir.path().join("bad.key")).is_err());
    }
}
