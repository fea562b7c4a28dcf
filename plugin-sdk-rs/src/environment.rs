//! The `OUTBOARD_*` variables, read once and then taken out of the process
//! environment, so that no child the plugin starts inherits the token
//! (PROTOCOL.md §2.1).
//!
//! Removing a variable is only sound while no other thread can read the
//! environment, so [`run`](crate::run) and [`run_with`](crate::run_with)
//! take them before they build the runtime, and only if the process has a
//! single thread then. A plugin that calls [`serve`](crate::serve) in a
//! runtime of its own keeps them, and removes them from the commands it
//! starts (`Command::env_remove`).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The prefix of every variable the host sets for a plugin.
const PREFIX: &str = "OUTBOARD_";

/// The variables as they were when they were taken, if they were.
static TAKEN: OnceLock<HashMap<String, String>> = OnceLock::new();

/// A variable the host set: from what was taken, else from the environment.
pub(crate) fn var(name: &str) -> Option<String> {
    match TAKEN.get() {
        Some(taken) => taken.get(name).cloned(),
        None => std::env::var(name).ok(),
    }
}

/// Takes every `OUTBOARD_*` variable out of the environment, keeping their
/// values for [`var`], if this process has a single thread; otherwise
/// leaves the environment as it is.
pub(crate) fn take() {
    if !single_threaded() {
        return;
    }
    let found: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    let names: Vec<String> = found.keys().cloned().collect();
    if TAKEN.set(found).is_err() {
        return;
    }
    for name in names {
        // SAFETY: the process has one thread (checked above), so nothing
        // can read or write the environment at the same time.
        unsafe { std::env::remove_var(name) };
    }
}

/// Whether this process has exactly one thread (Linux: `/proc/self/task`);
/// `false` where that cannot be told.
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}
