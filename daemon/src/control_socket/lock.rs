//! The lock file beside the control socket: an exclusive `flock` held for
//! the daemon's whole life, the file holding its pid. A second daemon that
//! finds it held refuses to start and names the pid; a lock that is free
//! means whatever socket is left beside it belongs to no live daemon.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug)]
pub(super) enum LockFailure {
    /// Another process holds it; the pid it wrote, if any yet.
    Held(Option<u32>),
    /// The file could not be opened, locked or written.
    Io(io::Error),
}

/// The held lock; released (and its file removed) by [`Lock::release`] or
/// when dropped.
#[derive(Debug)]
pub(super) struct Lock {
    /// The open, locked file.
    file: File,
    /// Where it is, to remove it on release.
    path: PathBuf,
}

impl Lock {
    /// Takes the lock at `path`, creating the file (0600) if need be, and
    /// writes this process's pid into it. Held by another process: refused
    /// with the pid it wrote.
    pub(super) fn acquire(path: &Path) -> Result<Lock, LockFailure> {
        let io_error = LockFailure::Io;
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                // A symlink here is someone else's doing: refused, not
                // followed to a file they chose.
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(path)
                .map_err(io_error)?;
            let meta = file.metadata().map_err(io_error)?;
            if !meta.is_file() {
                return Err(io_error(io::Error::other("not a regular file")));
            }
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(LockFailure::Held(read_pid(&mut file)));
                }
                Err(TryLockError::Error(error)) => return Err(io_error(error)),
            }
            // The daemon that held it may have removed the file between our
            // open and our lock: then this lock guards nothing, and a third
            // daemon could create and lock a new file. Locked and still the
            // file the path names: ours.
            match fs::symlink_metadata(path) {
                Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {}
                Ok(_) => continue,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(io_error(err)),
            }
            write_pid(&mut file).map_err(io_error)?;
            return Ok(Lock {
                file,
                path: path.to_owned(),
            });
        }
    }
}

impl Drop for Lock {
    /// Removes the file, then lets the lock go: a daemon starting meanwhile
    /// either fails to take the old file's lock or finds the path gone (or
    /// naming another file) and starts afresh.
    fn drop(&mut self) {
        if let Err(err) = fs::remove_file(&self.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(
                "cannot remove the control socket's lock file {}: {err}",
                self.path.display()
            );
        }
        // The lock itself goes with the descriptor, when `file` drops.
        let _ = &self.file;
    }
}

/// This process's pid, alone on the file's first line.
fn write_pid(file: &mut File) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()
}

/// The pid the lock's holder wrote; `None` if it has not written it yet or
/// the file says something else.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    // A pid is short: whatever else is there is not ours to read.
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
