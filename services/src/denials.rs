//! The log of refused permissions, rate-limited per plugin: every refusal
//! is answered, but a plugin looping on a denied call cannot flood the
//! host's log. The first few in a window are logged; the rest are counted
//! and the count is told with the next line logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lines logged per plugin per [`WINDOW`].
const BURST: u32 = 5;

/// The window [`BURST`] applies to.
const WINDOW: Duration = Duration::from_secs(60);

/// Per plugin: when its window began, how many were logged in it, how many
/// were not since the last line.
#[derive(Debug, Default)]
pub(crate) struct Denials {
    seen: Mutex<HashMap<Arc<str>, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    began: Instant,
    logged: u32,
    suppressed: u64,
}

impl Denials {
    /// Logs that `plugin` lacks `permission`, unless it has logged enough
    /// lately.
    pub(crate) fn log(&self, plugin: &str, permission: &str) {
        if let Some(suppressed) = self.admit(plugin, Instant::now()) {
            if suppressed == 0 {
                tracing::warn!(plugin, "plugin {plugin:?} lacks permission {permission:?}");
            } else {
                tracing::warn!(
                    plugin,
                    "plugin {plugin:?} lacks permission {permission:?} \
                     ({suppressed} more refusals not logged)"
                );
            }
        }
    }

    /// Whether a refusal of `plugin`'s at `now` is logged: `Some(n)` with
    /// the refusals left unlogged before it, `None` to stay quiet.
    fn admit(&self, plugin: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let window = match seen.get_mut(plugin) {
            Some(window) => window,
            None => seen.entry(plugin.into()).or_insert(Window {
                began: now,
                logged: 0,
                suppressed: 0,
            }),
        };
        if now.saturating_duration_since(window.began) >= WINDOW {
            window.began = now;
            window.logged = 0;
        }
        if window.logged < BURST {
            window.logged += 1;
            Some(std::mem::take(&mut window.suppressed))
        } else {
            window.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_then_counted_then_told() {
        let denials = Denials::default();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(denials.admit("p", t0), Some(0));
        }
        for _ in 0..1000 {
            assert_eq!(denials.admit("p", t0 + Duration::from_secs(1)), None);
        }
        // Another plugin has its own window.
        assert_eq!(denials.admit("q", t0), Some(0));
        assert_eq!(denials.admit("p", t0 + WINDOW), Some(1000));
        assert_eq!(denials.admit("p", t0 + WINDOW), Some(0));
    }
}
