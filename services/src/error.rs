//! [`ServicesError`]: why host services could not be opened.

use std::path::PathBuf;

/// Why [`crate::Services::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServicesError {
    /// The state directory or its database could not be opened.
    #[error("{reason} (the state directory is {}: set another with --state-dir or [state] dir)", dir.display())]
    State {
        /// The directory.
        dir: PathBuf,
        /// Why, from the state store.
        reason: String,
    },
}
