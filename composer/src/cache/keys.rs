//! Signing keys: ed25519 key pairs in files of one line, `NAME:BASE64`
//! (the key's name, a colon, the standard base64 of the key bytes), as
//! Nix writes them. A secret key file holds the 64-byte key pair (the
//! 32-byte seed, then the 32-byte public key); a public key file the
//! 32-byte public key. A signature is written the same way:
//! `NAME:BASE64` of the 64-byte ed25519 signature, NAME naming the key.

use super::CacheError;
use data_encoding::BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A secret (signing) key and its name.
pub struct SecretKey {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.name)
    }
}

/// A public (verifying) key and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: VerifyingKey,
}

/// Checks a key name: 1 to 100 characters of `[A-Za-z0-9._-]`, not
/// starting with `.` (it names the key's files too).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err("a key name has 1 to 100 characters".to_owned());
    }
    if name.starts_with('.') {
        return Err("a key name does not start with `.`".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "`{c}` is not allowed in a key name (letters, digits, `.`, `_`, `-`)"
        ));
    }
    Ok(())
}

/// Splits `NAME:BASE64` and decodes the key bytes.
fn parse_text(text: &str, path: &Path, len: usize) -> Result<(String, Vec<u8>), CacheError> {
    let bad = |reason: String| CacheError::BadKey {
        path: path.to_owned(),
        reason,
    };
    let text = text.trim();
    let (name, b64) = text
        .split_once(':')
        .ok_or_else(|| bad("expected `NAME:BASE64`".to_owned()))?;
    validate_name(name).map_err(bad)?;
    let bytes = BASE64
        .decode(b64.as_bytes())
        .map_err(|e| bad(format!("the key is not base64: {e}")))?;
    if bytes.len() != len {
        return Err(bad(format!(
            "the key has {} bytes, expected {len}",
            bytes.len()
        )));
    }
    Ok((name.to_owned(), bytes))
}

fn read_text(path: &Path) -> Result<String, CacheError> {
    fs::read_to_string(path).map_err(|source| CacheError::KeyIo {
        path: path.to_owned(),
        source,
    })
}

impl SecretKey {
    /// A new key pair from the operating system's random source.
    pub fn generate(name: &str) -> Result<SecretKey, CacheError> {
        validate_name(name).map_err(|reason| CacheError::BadKeyName {
            name: name.to_owned(),
            reason,
        })?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| CacheError::Random {
            reason: e.to_string(),
        })?;
        Ok(SecretKey {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Reads a secret key file.
    pub fn read(path: &Path) -> Result<SecretKey, CacheError> {
        let (name, bytes) = parse_text(&read_text(path)?, path, 64)?;
        let mut pair = [0u8; 64];
        pair.copy_from_slice(&bytes);
        let key = SigningKey::from_keypair_bytes(&pair).map_err(|_| CacheError::BadKey {
            path: path.to_owned(),
            reason: "its public half does not belong to its secret half".to_owned(),
        })?;
        Ok(SecretKey { name, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key pair as the secret key file's line (without newline).
    pub fn to_text(&self) -> String {
        format!(
            "{}:{}",
            self.name,
            BASE64.encode(&self.key.to_keypair_bytes())
        )
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs `message`: `NAME:BASE64(signature)`.
    pub fn sign(&self, message: &[u8]) -> String {
        let sig = self.key.sign(message);
        format!("{}:{}", self.name, BASE64.encode(&sig.to_bytes()))
    }
}

impl PublicKey {
    /// Reads a public key file.
    pub fn read(path: &Path) -> Result<PublicKey, CacheError> {
        PublicKey::parse(&read_text(path)?, path)
    }

    /// Parses a public key's text, `NAME:BASE64`; `origin` names where it
    /// comes from in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<PublicKey, CacheError> {
        let path = origin;
        let (name, bytes) = parse_text(text, path, 32)?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&bytes);
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| CacheError::BadKey {
            path: path.to_owned(),
            reason: "not a valid ed25519 public key".to_owned(),
        })?;
        Ok(PublicKey { name, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key file's line (without newline).
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.name, BASE64.encode(self.key.as_bytes()))
    }

    /// Whether `signature` (the part after `NAME:`) is this key's
    /// signature of `message`. Malformed signatures do not verify.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(bytes) = BASE64.decode(signature.as_bytes()) else {
            return false;
        };
        let Ok(raw) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        self.key
            .verify_strict(message, &Signature::from_bytes(&raw))
            .is_ok()
    }
}

/// Writes a new key pair `DIR/NAME.secret` (mode 0600 from its creation:
/// the file is never readable by others, not even for a moment) and
/// `DIR/NAME.public`. Refuses to overwrite either file; returns both paths.
pub fn generate_files(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), CacheError> {
    let key = SecretKey::generate(name)?;
    let secret = dir.join(format!("{name}.secret"));
    let public = dir.join(format!("{name}.public"));
    for path in [&secret, &public] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(CacheError::KeyExists { path: path.clone() });
        }
    }
    write_new(&secret, 0o600, &key.to_text())?;
    if let Err(e) = write_new(&public, 0o644, &key.public().to_text()) {
        let _ = fs::remove_file(&secret);
        return Err(e);
    }
    Ok((secret, public))
}

/// Creates `path` (never replacing anything) with `mode` and one line.
fn write_new(path: &Path, mode: u32, line: &str) -> Result<(), CacheError> {
    let io = |source| CacheError::KeyIo {
        path: path.to_owned(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                CacheError::KeyExists {
                    path: path.to_owned(),
                }
            } else {
                io(source)
            }
        })?;
    f.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}
