//! minisign keys: making a pair, reading a secret key to sign with, and
//! the public keys an operator trusts.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use minisign::{KeyPair, PublicKey, PublicKeyBox, SecretKey, SecretKeyBox};

use crate::error::PackageError;

/// The largest key file read: a key is two short lines.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Where `generate_key_pair` wrote a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairFiles {
    /// The secret key (mode 0600).
    pub secret: PathBuf,
    /// The public key, `<secret>.pub`.
    pub public: PathBuf,
    /// The pair's key id, as minisign prints it.
    pub key_id: String,
}

/// A secret key read from a file, to sign packages with.
pub struct SigningKey {
    /// The key itself.
    pub(crate) secret: SecretKey,
    /// Its public half, to check each signature once made.
    pub(crate) public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret: only which key it is.
        write!(f, "SigningKey({})", key_id(self.public.keynum()))
    }
}

/// A public key the operator trusts to sign packages.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The key.
    pub(crate) key: PublicKey,
}

/// The key id of `keynum`, as minisign prints it (16 upper-case hex digits
/// of the little-endian number).
pub fn key_id(keynum: &[u8]) -> String {
    keynum.iter().rev().map(|b| format!("{b:02X}")).collect()
}

/// Makes an unencrypted minisign key pair at `secret` (0600) and
/// `secret.pub`, refusing to overwrite either.
pub fn generate_key_pair(secret: &Path) -> Result<KeyPairFiles, PackageError> {
    let public = PathBuf::from(format!("{}.pub", secret.display()));
    let pair = KeyPair::generate_unencrypted_keypair().map_err(|e| PackageError::Key {
        source_name: secret.display().to_string(),
        reason: e.to_string(),
    })?;
    let id = key_id(pair.pk.keynum());
    let key_error = |e: minisign::PError| PackageError::Key {
        source_name: secret.display().to_string(),
        reason: e.to_string(),
    };
    let comment = format!("outboard signing key {id}");
    let secret_text = pair
        .sk
        .to_box(Some(&comment))
        .map_err(key_error)?
        .into_string();
    let public_text = pair.pk.to_box().map_err(key_error)?.into_string();
    // The public key first: if it exists we stop before any secret is written.
    write_new(&public, &public_text, 0o644)?;
    if let Err(error) = write_new(secret, &secret_text, 0o600) {
        let _ = fs::remove_file(&public);
        return Err(error);
    }
    Ok(KeyPairFiles {
        secret: secret.to_owned(),
        public,
        key_id: id,
    })
}

/// Writes `text` to a new file `path` with `mode`; an existing file is an
/// error saying so.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), PackageError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => PackageError::Key {
                source_name: path.display().to_string(),
                reason: "the file exists; keygen never overwrites a key, remove it first or pick another path".to_owned(),
            },
            _ => PackageError::Io { path: path.to_owned(), error },
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(PackageError::io(path))
}

/// Reads a key file of at most `MAX_KEY_FILE_BYTES`.
fn read_key_file(path: &Path) -> Result<String, PackageError> {
    let meta = fs::metadata(path).map_err(PackageError::io(path))?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE_BYTES {
        return Err(PackageError::Key {
            source_name: path.display().to_string(),
            reason: "not a regular file of at most 64 KiB".to_owned(),
        });
    }
    fs::read_to_string(path).map_err(PackageError::io(path))
}

impl SigningKey {
    /// The unencrypted minisign secret key in `path`.
    pub fn from_file(path: &Path) -> Result<SigningKey, PackageError> {
        let key_error = |reason: String| PackageError::Key {
            source_name: path.display().to_string(),
            reason,
        };
        let text = read_key_file(path)?;
        let boxed = SecretKeyBox::from_string(&text).map_err(|e| key_error(e.to_string()))?;
        let secret = boxed
            .into_unencrypted_secret_key()
            .map_err(|e| key_error(format!("not an unencrypted minisign secret key: {e}")))?;
        let public = PublicKey::from_secret_key(&secret).map_err(|e| key_error(e.to_string()))?;
        Ok(SigningKey { secret, public })
    }

    /// The key id signatures made with this key carry.
    pub fn key_id(&self) -> String {
        key_id(self.public.keynum())
    }
}

impl TrustedKey {
    /// A trusted key given as a minisign public key string (`RW...`) or as
    /// the path of a minisign public key file.
    pub fn parse(given: &str) -> Result<TrustedKey, PackageError> {
        let key_error = |reason: String| PackageError::Key {
            source_name: given.to_owned(),
            reason,
        };
        let trimmed = given.trim();
        let key = if trimmed.starts_with("RW") && !trimmed.contains('/') {
            PublicKey::from_base64(trimmed)
        } else {
            let text = read_key_file(Path::new(given))?;
            PublicKeyBox::from_string(&text).and_then(PublicKeyBox::into_public_key)
        }
        .map_err(|e| {
            key_error(format!(
                "not a minisign public key (a `RW...` string or a .pub file): {e}"
            ))
        })?;
        Ok(TrustedKey { key })
    }

    /// The key's id, as minisign prints it.
    pub fn key_id(&self) -> String {
        key_id(self.key.keynum())
    }
}

/// The keys `[trust] keys = [...]` lists in the host config `file`; a
/// key file's relative path is relative to `file`'s folder. No `[trust]`
/// table means no keys.
pub fn trusted_keys_in_config(file: &Path) -> Result<Vec<TrustedKey>, PackageError> {
    let config_error = |reason: String| PackageError::Key {
        source_name: format!("{} [trust] keys", file.display()),
        reason,
    };
    let meta = fs::metadata(file).map_err(PackageError::io(file))?;
    if !meta.is_file() || meta.len() > 4 * 1024 * 1024 {
        return Err(config_error(
            "the config is not a regular file of at most 4 MiB".to_owned(),
        ));
    }
    let text = fs::read_to_string(file).map_err(PackageError::io(file))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| config_error(e.to_string()))?;
    let Some(trust) = table.get("trust") else {
        return Ok(Vec::new());
    };
    if let Some(unknown) = trust
        .as_table()
        .and_then(|t| t.keys().find(|k| *k != "keys"))
    {
        return Err(config_error(format!(
            "unknown key {unknown:?}; [trust] has only `keys`"
        )));
    }
    let keys = trust
        .get("keys")
        .and_then(toml::Value::as_array)
        .ok_or_else(|| {
            config_error("[trust] needs `keys = [...]`, a list of strings".to_owned())
        })?;
    let base = file.parent().unwrap_or(Path::new("."));
    keys.iter()
        .map(|key| {
            let key = key.as_str().ok_or_else(|| {
                config_error("every key is a string: `RW...` or a .pub file".to_owned())
            })?;
            let resolved = if key.trim().starts_with("RW") || Path::new(key).is_absolute() {
                key.to_owned()
            } else {
                base.join(key).display().to_string()
            };
            TrustedKey::parse(&resolved)
        })
        .collect()
}
