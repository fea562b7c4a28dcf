//! The exit statuses of `describe`, `ls`, `invoke` and `conformance`.
//! `outboard run` has its own (the job's, in `outboard_host::job`), since
//! the command's statuses 1 to 120 must stay distinguishable there.

/// The command could not do its work: a bad config, a plugin that would
/// not start, a context that is not JSON. (`outboard run` says this with
/// `job::EXIT_HOST_ERROR`, 125.)
pub(crate) const EXIT_ERROR: u8 = 1;
/// `invoke`: a plugin vetoed the phase.
pub(crate) const EXIT_PHASE_VETOED: u8 = 3;
/// `invoke`: a plugin failed during the phase.
pub(crate) const EXIT_PHASE_FAILED: u8 = 4;
/// `conformance`: some check failed.
pub(crate) const EXIT_CHECK_FAILED: u8 = 1;
/// After SIGINT or SIGTERM (128 + 2, as shells report SIGINT); the same
/// for every command.
pub(crate) use outboard_host::job::EXIT_INTERRUPTED;
/// What a shell reports for a process killed by SIGPIPE (128 + 13). Rust
/// ignores SIGPIPE (the host writes to plugin sockets that may close), so a
/// reader that went away (`outboard ls | head -1`) shows up as an error.
pub(crate) const EXIT_BROKEN_PIPE: u8 = 141;

/// True if `err` comes from writing to a pipe whose reader has gone: not
/// worth a message, the reader chose to stop.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
