//! What flaky-counter keeps per command, and the pure rules on it: a run
//! counted, the recent outcomes trimmed to the window, flaky or not.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One command's counts, stored as JSON under [`key`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The argv, for a human reading the store.
    pub(crate) command: Vec<String>,
    /// Runs counted, ever (while the key lives).
    pub(crate) runs: u64,
    /// Of those, the ones that exited non-zero.
    pub(crate) failures: u64,
    /// The latest outcomes, oldest first: `P` passed, `F` failed; at most
    /// the window's length.
    pub(crate) recent: String,
}

impl Record {
    /// The record after one more run of `command` that `passed` (or not),
    /// keeping the last `window` outcomes.
    pub(crate) fn counted(mut self, command: &[String], passed: bool, window: usize) -> Record {
        self.command = command.to_vec();
        self.runs += 1;
        self.failures += u64::from(!passed);
        self.recent.push(if passed { 'P' } else { 'F' });
        let excess = self.recent.len().saturating_sub(window);
        self.recent.drain(..excess);
        self
    }

    /// Flaky: among the recent runs, some passed and some failed.
    pub(crate) fn is_flaky(&self) -> bool {
        self.recent.contains('P') && self.recent.contains('F')
    }
}

/// The store key of `command`: a digest of its argv (so that any command,
/// however long, gives a key of 71 bytes and two argvs that join to the
/// same text stay apart).
pub(crate) fn key(command: &[String]) -> String {
    let argv = serde_json::to_vec(command).unwrap_or_default();
    format!("cmd/{}", hex::encode(Sha256::digest(argv)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn counts_and_trims_to_the_window() {
        let cmd = argv(&["make", "test"]);
        let mut r = Record::default();
        for passed in [true, false, true, true] {
            r = r.counted(&cmd, passed, 3);
        }
        assert_eq!((r.runs, r.failures, r.recent.as_str()), (4, 1, "FPP"));
        assert!(r.is_flaky());
        let r = r.counted(&cmd, true, 3);
        assert_eq!(r.recent, "PPP");
        assert!(!r.is_flaky(), "the failure left the window");
        assert!(!Record::default().counted(&cmd, false, 3).is_flaky());
    }

    #[test]
    fn keys_are_short_and_tell_argvs_apart() {
        let a = key(&argv(&["sh", "-c", "a b"]));
        let b = key(&argv(&["sh", "-c", "a", "b"]));
        assert_ne!(a, b);
        assert_eq!(a.len(), 68);
        assert_eq!(key(&argv(&["x"; 10_000])).len(), 68);
    }
}
