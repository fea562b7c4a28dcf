//! The `[state]` and `[services]` sections: where the host keeps its
//! durable state, and the bounds of the host services plugins call back
//! on. Plain values; the services themselves live outside this library.

use std::path::PathBuf;
use std::time::Duration;

/// Where the state directory is by default for root.
pub const ROOT_STATE_DIR: &str = "/var/lib/outboard";

/// The `[state]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateSpec {
    /// The state directory (`dir`), absolute; `None`: the default
    /// ([`default_state_dir`]) unless the command line names one.
    pub dir: Option<PathBuf>,
}

/// The `[services]` section: limits of the host services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicesSpec {
    /// The largest key-value value, in bytes (`kv value size`).
    pub kv_value_size: u32,
    /// The most bytes of keys plus values of one namespace's live keys
    /// (`kv namespace total`).
    pub kv_namespace_total: u32,
    /// The host's bound on one host-service call.
    pub call_timeout: Duration,
    /// Host-service calls one plugin instance may have in flight.
    pub max_concurrent_calls: u32,
}

impl Default for ServicesSpec {
    /// The protocol's defaults (docs/PROTOCOL.md §17.5).
    fn default() -> Self {
        ServicesSpec {
            kv_value_size: 65_536,
            kv_namespace_total: 16 * 1024 * 1024,
            call_timeout: Duration::from_secs(10),
            max_concurrent_calls: 16,
        }
    }
}

/// The state directory when neither `--state-dir` nor `[state] dir` names
/// one: [`ROOT_STATE_DIR`] for root, else `$XDG_STATE_HOME/outboard`, else
/// `~/.local/state/outboard`; `None` when there is no home to put it in.
pub fn default_state_dir() -> Option<PathBuf> {
    // SAFETY: geteuid cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    state_dir_for(
        root,
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// [`default_state_dir`] as a pure function of who runs and the two
/// variables. A relative `XDG_STATE_HOME` is ignored, as the XDG
/// specification says.
fn state_dir_for(root: bool, xdg: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    if root {
        return Some(PathBuf::from(ROOT_STATE_DIR));
    }
    if let Some(xdg) = xdg.filter(|p| p.is_absolute()) {
        return Some(xdg.join("outboard"));
    }
    home.filter(|p| p.is_absolute())
        .map(|home| home.join(".local/state/outboard"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_state_dir_follows_root_then_xdg_then_home() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(state_dir_for(true, p("/x"), p("/h")), p(ROOT_STATE_DIR));
        assert_eq!(state_dir_for(false, p("/x"), p("/h")), p("/x/outboard"));
        assert_eq!(
            state_dir_for(false, p("rel"), p("/h")),
            p("/h/.local/state/outboard")
        );
        assert_eq!(
            state_dir_for(false, None, p("/h")),
            p("/h/.local/state/outboard")
        );
        assert_eq!(state_dir_for(false, None, None), None);
        assert_eq!(state_dir_for(false, None, p("rel")), None);
    }
}
