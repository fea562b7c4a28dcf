//! Appending a line to an output file, opened so that no one else can
//! redirect it: a symbolic link at the path is refused rather than followed,
//! anything but a regular file is refused, and a new file is readable and
//! writable by its owner only.

use std::fs::{File, FileType, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use outboard_plugin::PluginError;

/// The mode of a file [`append_line`] creates: the owner's only, whatever
/// the directory.
pub const NEW_FILE_MODE: u32 = 0o600;

/// Why a symbolic link at the path is refused, after `cannot open <path>
/// for appending: `.
const LINK_REFUSED: &str = "it is a symbolic link, which is not followed (refusing to write where someone else may \
     point it)";

/// The error [`append_line`] answers for a symbolic link at `path`.
pub fn link_refused(path: &Path) -> PluginError {
    refused(path, LINK_REFUSED)
}

/// `UNAVAILABLE`: `cannot open <path> for appending: <why>`.
fn refused(path: &Path, why: impl std::fmt::Display) -> PluginError {
    PluginError::unavailable(format!(
        "cannot open {} for appending: {why}",
        path.display()
    ))
}

/// Appends `line` and a newline to the file at `path`, creating it if need
/// be, with a single write on a file opened in append mode: the kernel
/// places each such write at the end of the file, so on a local file system
/// lines written at the same time by concurrent jobs (or processes) do not
/// interleave. Failing to
/// open or write is `UNAVAILABLE`, naming the path and the OS error. The
/// blocking I/O runs off the async threads.
///
/// A symbolic link at `path` is refused, not followed, and so is anything
/// that is not a regular file; a new file gets mode [`NEW_FILE_MODE`].
pub async fn append_line(path: &Path, line: &str) -> Result<(), PluginError> {
    let path: PathBuf = path.to_owned();
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    tokio::task::spawn_blocking(move || append_bytes(&path, &bytes))
        .await
        .map_err(|e| PluginError::internal(format!("the file writer task failed: {e}")))?
}

/// The blocking part of [`append_line`].
fn append_bytes(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let mut file = open_append(path)?;
    // One buffer, one call: write_all only loops on a short write, which a
    // regular file gives only when the disk is full (an error next time).
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .map_err(|e| PluginError::unavailable(format!("cannot write to {}: {e}", path.display())))
}

/// Opens `path` for appending, creating it with mode [`NEW_FILE_MODE`] if
/// it is missing. In a directory another user can write to, that user could
/// plant a symbolic link (or a FIFO) at the path before the first write; so
/// the last component is never followed (`O_NOFOLLOW`), opening does not
/// wait for a FIFO's reader (`O_NONBLOCK`), and anything but a regular file
/// is refused. Errors are `UNAVAILABLE` and name the path.
fn open_append(path: &Path) -> Result<File, PluginError> {
    let refuse = |why: String| refused(path, why);
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(NEW_FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match not_regular(path, &e) {
            Some(why) => refuse(why),
            None => refuse(e.to_string()),
        })?;
    let kind = file
        .metadata()
        .map_err(|e| refuse(e.to_string()))?
        .file_type();
    if !kind.is_file() {
        return Err(refuse(format!(
            "it is {}, not a regular file",
            kind_name(kind)
        )));
    }
    Ok(file)
}

/// Why opening failed, when it failed because of what is at `path`:
/// `O_NOFOLLOW` answers a symbolic link with `ELOOP`, `O_NONBLOCK` a FIFO
/// without a reader with `ENXIO`.
fn not_regular(path: &Path, error: &std::io::Error) -> Option<String> {
    if !matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) {
        return None;
    }
    let kind = std::fs::symlink_metadata(path).ok()?.file_type();
    if kind.is_symlink() {
        Some(LINK_REFUSED.to_owned())
    } else if kind.is_file() {
        None
    } else {
        Some(format!("it is {}, not a regular file", kind_name(kind)))
    }
}

/// `a directory`, `a FIFO`, ... for an error message.
fn kind_name(kind: FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "something"
    }
}

/// For the plugins' tests of what [`append_line`] refuses.
#[doc(hidden)]
pub mod testing {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// What the target of a planted link holds, and must still hold.
    pub const PRECIOUS: &str = "precious\n";

    /// Plants at `path` a symbolic link to `victim`, a new file beside it
    /// holding [`PRECIOUS`], as another user with write access to the
    /// directory could; returns the victim's path.
    pub fn plant_link(path: &Path) -> PathBuf {
        let victim = path.with_file_name("victim");
        std::fs::write(&victim, PRECIOUS).expect("write the victim");
        std::os::unix::fs::symlink(&victim, path).expect("plant the link");
        victim
    }

    /// The permission bits of the file at `path`.
    pub fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn append_line_appends_and_reports_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.jsonl");
        append_line(&path, "one").await.expect("first");
        append_line(&path, "two").await.expect("second");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "one\ntwo\n");

        let missing = dir.path().join("no-such-dir").join("log.jsonl");
        let err = append_line(&missing, "x").await.expect_err("no dir");
        assert_eq!(err.code(), outboard_plugin::Code::Unavailable);
        assert!(
            err.message().starts_with(&format!(
                "cannot open {} for appending: No such file or directory",
                missing.display()
            )),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_new_file_is_the_owners_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.jsonl");
        append_line(&path, "one").await.expect("append");
        assert_eq!(testing::mode(&path), 0o600);
    }

    #[tokio::test]
    async fn a_symbolic_link_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("log.jsonl");
        let target = testing::plant_link(&link);
        // A dangling link would make the open create its target.
        let dangling = dir.path().join("dangling.jsonl");
        std::os::unix::fs::symlink(dir.path().join("created"), &dangling).expect("symlink");

        for path in [&link, &dangling] {
            let err = append_line(path, "x").await.expect_err("a link");
            assert_eq!(err.code(), outboard_plugin::Code::Unavailable);
            assert_eq!(
                err.message(),
                format!(
                    "cannot open {} for appending: it is a symbolic link, which is not followed \
                     (refusing to write where someone else may point it)",
                    path.display()
                )
            );
        }
        assert_eq!(
            std::fs::read_to_string(&target).expect("read"),
            testing::PRECIOUS
        );
        assert!(!dir.path().join("created").exists());
    }

    #[tokio::test]
    async fn what_is_not_a_regular_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = append_line(&fifo, "x").await.expect_err("a FIFO");
        assert_eq!(
            err.message(),
            format!(
                "cannot open {} for appending: it is a FIFO, not a regular file",
                fifo.display()
            )
        );
        let err = append_line(dir.path(), "x").await.expect_err("a directory");
        assert!(
            err.message().starts_with(&format!(
                "cannot open {} for appending: ",
                dir.path().display()
            )),
            "{err}"
        );
    }
}
