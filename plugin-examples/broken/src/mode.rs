//! The faults `broken-plugin` can commit, one per mode, and their names on
//! the command line.

/// The fault to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No fault: a reference plugin for tests.
    Ok,
    /// Writes three lines to stderr and exits with status 3 before any
    /// handshake, like a plugin that cannot read its own config.
    ExitEarly,
    /// Binds nothing, prints nothing and sleeps forever (SIGTERM still kills
    /// it): the host must time the handshake out.
    Silent,
    /// Prints non-handshake lines on stdout before the handshake line (the
    /// host must skip and log them), logs a JSON line to stderr, then works.
    JunkThenOk,
    /// Binds, then announces protocol version 99, then sleeps.
    WrongVersion,
    /// Prints the truncated line `outboard|1|unix`, then sleeps.
    Malformed,
    /// Serves, but its manifest has version "not-a-version" and phase
    /// "Pre Container!".
    BadManifest,
    /// Spawns `sleep 300` (same process group, inheriting stdout and stderr)
    /// before the handshake, logs its pid, then works: stopping the plugin
    /// must take the grandchild with it. The pid is also in the manifest's
    /// description as `grandchild_pid=<pid>`.
    ForksGrandchild,
    /// Logs and ignores SIGTERM, answers `Shutdown` but never exits: only
    /// SIGKILL stops it.
    IgnoresSigterm,
    /// Exits with status 101 inside Invoke, after logging "crashing on
    /// purpose".
    CrashOnInvoke,
    /// Invoke never returns.
    HangInvoke,
    /// Answers its first Invoke, then stops serving (its connections
    /// close), removes its socket and lives on until SIGTERM: the host's
    /// next call must dial again, and find whatever is at the path then.
    DropsConnection,
    /// Spawns `sleep 300` in a process group of its own, inheriting stdout
    /// and stderr, before the handshake, then works: stopping the plugin
    /// leaves the helper running (only the host's death or the test ends
    /// it) and holding the plugin's pipes. The pid is in the manifest's
    /// description as `helper_pid=<pid>`.
    EscapesGroup,
    /// Lists `invoke-fastpath/1`, whether offered the fast path or not,
    /// but never binds its fast-path socket.
    FastNeverBinds,
    /// Lists `invoke-fastpath/1`, binds its fast-path socket and closes
    /// every connection to it at once.
    FastClosesAtOnce,
    /// Lists `invoke-fastpath/1`, answers the HELLO, then answers every
    /// fast-path call with a RESULT that is not protobuf.
    FastGarbage,
    /// Lists `invoke-fastpath/1`, answers the HELLO, then closes the
    /// fast-path connection in its first call (the process lives on).
    FastClosesMidCall,
}

/// Every mode: its argument and what it does, for the usage message.
pub(crate) const MODES: &[(&str, Mode, &str)] = &[
    ("ok", Mode::Ok, "no fault, a reference plugin"),
    (
        "exit-early",
        Mode::ExitEarly,
        "three stderr lines, then exit 3 before the handshake",
    ),
    (
        "silent",
        Mode::Silent,
        "binds nothing, prints nothing, sleeps forever",
    ),
    (
        "junk-then-ok",
        Mode::JunkThenOk,
        "stray stdout lines before the handshake, then works",
    ),
    (
        "wrong-version",
        Mode::WrongVersion,
        "announces protocol version 99, then sleeps",
    ),
    (
        "malformed",
        Mode::Malformed,
        "prints \"outboard|1|unix\", then sleeps",
    ),
    (
        "bad-manifest",
        Mode::BadManifest,
        "serves an invalid manifest",
    ),
    (
        "forks-grandchild",
        Mode::ForksGrandchild,
        "spawns `sleep 300` before the handshake, then works",
    ),
    (
        "ignores-sigterm",
        Mode::IgnoresSigterm,
        "ignores SIGTERM and Shutdown, only SIGKILL stops it",
    ),
    (
        "crash-on-invoke",
        Mode::CrashOnInvoke,
        "exits 101 inside Invoke",
    ),
    ("hang-invoke", Mode::HangInvoke, "Invoke never returns"),
    (
        "drops-connection",
        Mode::DropsConnection,
        "after its first Invoke, stops serving and removes its socket, alive",
    ),
    (
        "escapes-group",
        Mode::EscapesGroup,
        "spawns `sleep 300` in its own process group holding the pipes, then works",
    ),
    (
        "fast-never-binds",
        Mode::FastNeverBinds,
        "lists invoke-fastpath/1 but never binds its fast-path socket",
    ),
    (
        "fast-closes-at-once",
        Mode::FastClosesAtOnce,
        "lists invoke-fastpath/1, closes every fast-path connection at once",
    ),
    (
        "fast-garbage",
        Mode::FastGarbage,
        "lists invoke-fastpath/1, answers fast-path calls with garbage",
    ),
    (
        "fast-closes-mid-call",
        Mode::FastClosesMidCall,
        "lists invoke-fastpath/1, closes the fast-path connection in its first call",
    ),
];

impl Mode {
    /// The mode an argument names, if any.
    pub(crate) fn parse(arg: &str) -> Option<Mode> {
        MODES.iter().find(|(name, ..)| *name == arg).map(|m| m.1)
    }

    /// The mode's argument.
    pub(crate) fn name(self) -> &'static str {
        MODES
            .iter()
            .find(|m| m.1 == self)
            .map(|m| m.0)
            .expect("every mode is in MODES")
    }
}
