//! Reading a secret's source: a variable of the host's environment, a
//! regular file, or a command's output ([`super::command`]). The value is
//! bounded in size, loses one trailing newline, and must not be empty.
//! A failure says what failed in the source's terms (the variable's name,
//! the exit status; a file's path only in the host's log), never what it
//! read.

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use outboard_host::config::{SecretSource, SecretSpec};

use super::command;
use super::secret::Secret;

/// The largest value a source may give: far above any key or token, and a
/// `/dev/zero` or a runaway command is cut off before it fills the memory.
pub const MAX_SECRET_BYTES: usize = 64 << 10;

/// Why a source gave no value. The text is safe to show: it never quotes
/// what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SourceError(pub(super) String);

/// Reads `spec`'s source once.
pub(super) async fn read(spec: &SecretSpec) -> Result<Secret, SourceError> {
    let bytes = match &spec.source {
        SecretSource::Env(var) => env(var)?,
        SecretSource::File(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || file(&path))
                .await
                .map_err(|e| SourceError(format!("the reading task failed: {e}")))??
        }
        SecretSource::Command { program, args, dir } => {
            command::run(program, args, dir, spec.timeout).await?
        }
    };
    value(bytes)
}

/// `bytes` without one trailing newline, refused when nothing is left: an
/// empty secret is a source not set up yet, not a key.
fn value(mut bytes: Vec<u8>) -> Result<Secret, SourceError> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    let secret = Secret::new(bytes);
    if secret.expose().is_empty() {
        return Err(SourceError("gave an empty value".into()));
    }
    Ok(secret)
}

/// The host's variable `var`.
fn env(var: &str) -> Result<Vec<u8>, SourceError> {
    let Some(value) = std::env::var_os(var) else {
        return Err(SourceError(format!(
            "the host's environment variable {var} is not set"
        )));
    };
    if value.len() > MAX_SECRET_BYTES {
        return Err(SourceError(format!(
            "the host's environment variable {var} is larger than {} KiB",
            MAX_SECRET_BYTES >> 10
        )));
    }
    Ok(value.as_bytes().to_vec())
}

/// The contents of the regular file `path`: opened without blocking (a FIFO
/// cannot hang the host) and checked before a byte is read (a device cannot
/// feed it forever); a file that grows past the limit meanwhile is noticed.
pub(super) fn file(path: &Path) -> Result<Vec<u8>, SourceError> {
    // The path is not in the messages: they reach the plugin, which need
    // not learn the host's layout (the host's log names the file).
    let failed =
        |e: std::io::Error| SourceError(format!("cannot read the file: {}", io_reason(&e)));
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(failed)?;
    let meta = file.metadata().map_err(failed)?;
    if !meta.is_file() {
        return Err(SourceError("the file is not a regular file".to_owned()));
    }
    let too_large = || {
        SourceError(format!(
            "the file is larger than {} KiB",
            MAX_SECRET_BYTES >> 10
        ))
    };
    if meta.len() > MAX_SECRET_BYTES as u64 {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(MAX_SECRET_BYTES.min(meta.len() as usize));
    file.take(MAX_SECRET_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() > MAX_SECRET_BYTES {
        // Wiped: the buffer holds part of a secret.
        drop(Secret::new(bytes));
        return Err(too_large());
    }
    Ok(bytes)
}

/// An I/O error's message without the "(os error N)" suffix.
pub(super) fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}
