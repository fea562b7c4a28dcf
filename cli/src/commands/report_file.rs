//! `run --report PATH`: where the report goes, without ever replacing what
//! is not a regular file.
//!
//! - Nothing at PATH: a temporary file beside it, renamed to PATH, but
//!   never over something that appeared there meanwhile.
//! - A regular file (also through symlinks): a temporary file beside the
//!   file itself, renamed over it, so a reader sees the old report or the
//!   new one, never half of one; the symlink stays.
//! - A character device or a FIFO (`/dev/stdout`, `/dev/null`, a named
//!   pipe with a reader): written directly, as a shell's `>` would.
//! - Anything else (a directory, a block device, a socket, a dangling
//!   symlink, a FIFO nobody reads): refused, naming the path.
//!
//! Every write is flushed and synced before it counts, so a full disk is an
//! error, never a silent success.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;

/// Writes `value` as pretty JSON (and a newline) to `path`, following the
/// rules above. Errors name the path.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    match open_existing(path)? {
        // Whatever appears at the path meanwhile is not replaced either.
        Existing::Nothing => replace(path, value, Replace::Never),
        Existing::Regular => {
            // Through symlinks to the file itself: the link is not replaced.
            let target = std::fs::canonicalize(path)
                .with_context(|| format!("cannot resolve {}", path.display()))?;
            replace(&target, value, Replace::Regular)
        }
        Existing::Stream(file) => {
            write_to(file, value).with_context(|| format!("cannot write {}", path.display()))
        }
    }
}

/// What is at the path already.
enum Existing {
    /// Nothing (and no symlink either).
    Nothing,
    /// A regular file, perhaps behind symlinks.
    Regular,
    /// A character device or FIFO, open for writing.
    Stream(File),
}

/// Looks at `path` by opening it for writing, without creating or
/// truncating anything, and asks the open file what it is: no window in
/// which the path could change between the look and the write.
fn open_existing(path: &Path) -> anyhow::Result<Existing> {
    let opened = File::options()
        .write(true)
        // A FIFO without a reader fails (ENXIO) instead of blocking
        // forever; a terminal does not become the controlling one.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            if path.symlink_metadata().is_ok() {
                bail!(
                    "{} is a symlink to nothing; not replacing it",
                    path.display()
                );
            }
            return Ok(Existing::Nothing);
        }
        Err(err) if err.raw_os_error() == Some(libc::ENXIO) => {
            bail!("{} has no reader (a FIFO or socket)", path.display())
        }
        Err(err) => return Err(err).with_context(|| format!("cannot open {}", path.display())),
    };
    let kind = file
        .metadata()
        .with_context(|| format!("cannot inspect {}", path.display()))?
        .file_type();
    if kind.is_file() {
        Ok(Existing::Regular)
    } else if kind.is_char_device() || kind.is_fifo() {
        clear_nonblock(&file).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Existing::Stream(file))
    } else {
        bail!(
            "{} is not a regular file, a character device or a FIFO; not writing to it",
            path.display()
        )
    }
}

/// Whether the final rename may replace what is at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// Nothing was there: the rename fails if something is now.
    Never,
    /// A regular file was there: the rename replaces it.
    Regular,
}

/// Writes to a temporary file beside `path` (mode 0600), then renames it
/// to `path`.
fn replace(path: &Path, value: &impl Serialize, mode: Replace) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let (file, temp) = file.into_parts();
    write_to(file, value).with_context(|| format!("cannot write {}", temp.display()))?;
    let renamed = match mode {
        Replace::Never => temp.persist_noclobber(path),
        Replace::Regular => temp.persist(path),
    };
    renamed.with_context(|| format!("cannot rename the report to {}", path.display()))?;
    Ok(())
}

/// Writes the JSON to `file`, flushes it and, for a regular file, syncs
/// it: a full disk or a failing device says so here.
fn write_to(file: File, value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, value)?;
    out.write_all(b"\n")?;
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    if file.metadata()?.file_type().is_file() {
        file.sync_all()?;
    }
    Ok(())
}

/// Back to blocking writes once the FIFO is open.
fn clear_nonblock(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function borrows, with integer
    // arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn a_new_path_and_a_regular_file_get_the_report_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        write_json(&path, &json!({"a": 1})).expect("new");
        assert_eq!(read(&path), "{\n  \"a\": 1\n}\n");
        write_json(&path, &json!({"a": 2})).expect("over");
        assert_eq!(read(&path), "{\n  \"a\": 2\n}\n");
    }

    #[test]
    fn a_symlink_is_written_through_and_stays_a_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target.json");
        std::fs::write(&target, "old").expect("write");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        write_json(&link, &json!(1)).expect("through");
        assert!(link.symlink_metadata().expect("meta").is_symlink());
        assert_eq!(read(&target), "1\n");
    }

    #[test]
    fn a_dangling_symlink_a_directory_and_a_lonely_fifo_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).expect("symlink");
        let err = write_json(&link, &json!(1)).expect_err("dangling");
        assert!(format!("{err:#}").contains("symlink to nothing"), "{err:#}");
        assert!(link.symlink_metadata().expect("still there").is_symlink());

        let err = write_json(dir.path(), &json!(1)).expect_err("a directory");
        assert!(
            format!("{err:#}").contains(&dir.path().display().to_string()),
            "{err:#}"
        );

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("cstr");
        // SAFETY: mkfifo reads a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = write_json(&fifo, &json!(1)).expect_err("no reader");
        assert!(format!("{err:#}").contains("has no reader"), "{err:#}");
        let kind = fifo.symlink_metadata().expect("still there").file_type();
        assert!(kind.is_fifo(), "the FIFO was replaced");
    }

    #[test]
    fn a_character_device_is_written_and_kept_and_a_full_one_is_an_error() {
        write_json(Path::new("/dev/null"), &json!(1)).expect("/dev/null");
        let kind = Path::new("/dev/null")
            .symlink_metadata()
            .expect("meta")
            .file_type();
        assert!(kind.is_char_device());
        let err = write_json(Path::new("/dev/full"), &json!({"a": 1})).expect_err("full");
        let text = format!("{err:#}");
        assert!(
            text.contains("/dev/full") && text.contains("No space left"),
            "{text}"
        );
    }
}
