//! What can go wrong with the state database, worded for the operator.

use std::path::PathBuf;

/// An error of the state store. Every variant names what it concerns (the
/// file, the limit and namespace, the field) and, where there is one, what
/// to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state directory or database file is unsafe to use: a symlink,
    /// not a directory, owned by another user, or writable by others.
    #[error("state directory {path}: {reason}")]
    Unsafe {
        /// The directory or file refused.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A file-system call on the state directory failed.
    #[error("state directory {path}: {source}")]
    Io {
        /// The directory or file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The disk (or the database's size cap) is full; nothing was written.
    #[error(
        "state database {path}: the disk is full, nothing was written; free space on its file system and retry"
    )]
    Full {
        /// The database file.
        path: PathBuf,
    },
    /// The database file is damaged or is not an SQLite database.
    #[error(
        "state database {path} is corrupt or not a database ({detail}); stop outboard, move the file aside (with its -wal and -shm files) and restore a backup, or start afresh"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The database was written by a newer outboard whose schema this one
    /// does not know.
    #[error(
        "state database {path} has schema version {found}, this outboard knows up to {known}; run the newer outboard, or restore a backup made by this version"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The newest schema version this build knows.
        known: i64,
    },
    /// A schema step failed; the database stays at the version before it.
    #[error("state database {path}: schema step \"{step}\" failed: {source}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The step's name.
        step: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// Any other failure of the database.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A write would exceed a limit; nothing was written.
    #[error(
        "{limit} limit of {value} bytes would be exceeded in namespace \"{namespace}\"; nothing was written"
    )]
    Limit {
        /// The limit's name as in PROTOCOL.md §17.5 (`kv value size`,
        /// `kv namespace total`).
        limit: &'static str,
        /// The limit's value in bytes.
        value: u64,
        /// The namespace written to.
        namespace: String,
    },
    /// A page token that this listing did not hand out (another namespace
    /// or prefix, or not a token at all).
    #[error("page_token: {0}")]
    InvalidToken(&'static str),
    /// A key or prefix that breaks the protocol's rule.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field (`key`, `prefix`).
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
}

impl StateError {
    /// Classifies an SQLite error on the database at `path`: a full disk and
    /// a corrupt file get their own variants, so that their message says what
    /// to do.
    pub(crate) fn sqlite(path: &std::path::Path, source: rusqlite::Error) -> StateError {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StateError::Full { path },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StateError::Corrupt {
                path,
                detail: source.to_string(),
            },
            _ => StateError::Sqlite { path, source },
        }
    }
}
