//! The datagrams a service manager reads, built without I/O: each is
//! newline-separated `KEY=value` assignments as `sd_notify(3)` defines
//! them, formatted by the `sd-notify` crate's [`NotifyState`].
//!
//! Status text is data that may come from a config file or a plugin (a
//! reload error quotes both): it is cut to one line and a bound, so it
//! can never add an assignment of its own (a `\nREADY=1`, a
//! `\nMAINPID=1`) nor overflow the datagram.

use std::fmt::Write as _;

use sd_notify::NotifyState;

/// The longest status text sent, in bytes; a longer one is cut at a
/// character boundary and ends with `…`. systemd shows the status on one
/// line of `systemctl status`; more would only be cut there.
const STATUS_MAX: usize = 512;

/// `READY=1`: startup (or a reload) is finished; with the status text and
/// the main pid, so that a wrapper in between cannot make systemd watch
/// the wrong process.
pub(crate) fn ready(status: &str, pid: u32) -> String {
    let status = one_line(status);
    compose(&[
        NotifyState::Ready,
        NotifyState::Status(&status),
        NotifyState::MainPid(pid),
    ])
}

/// `RELOADING=1` with `MONOTONIC_USEC=` (the clock reading at the start of
/// the reload, which `Type=notify-reload` requires and plain `Type=notify`
/// accepts) and the status text.
pub(crate) fn reloading(status: &str, monotonic_usec: i128) -> String {
    let status = one_line(status);
    compose(&[
        NotifyState::Reloading,
        NotifyState::MonotonicUsec(monotonic_usec),
        NotifyState::Status(&status),
    ])
}

/// `STOPPING=1`: the graceful stop began.
pub(crate) fn stopping(status: &str) -> String {
    let status = one_line(status);
    compose(&[NotifyState::Stopping, NotifyState::Status(&status)])
}

/// `WATCHDOG=1`: the daemon is alive and its host answers.
pub(crate) fn watchdog() -> String {
    compose(&[NotifyState::Watchdog])
}

/// The assignments, one a line, each ended by a newline.
fn compose(states: &[NotifyState<'_>]) -> String {
    let mut message = String::new();
    for state in states {
        // Writing to a String cannot fail.
        let _ = writeln!(message, "{state}");
    }
    message
}

/// `text` on one line (every control character, newlines included, becomes
/// a space) and at most [`STATUS_MAX`] bytes.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len().min(STATUS_MAX));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if line.len() + c.len_utf8() > STATUS_MAX - '…'.len_utf8() {
            line.push('…');
            break;
        }
        line.push(c);
    }
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ready_carries_the_status_and_the_main_pid() {
        assert_eq!(
            ready("ready: 2 plugins", 4242),
            "READY=1\nSTATUS=ready: 2 plugins\nMAINPID=4242\n"
        );
    }

    #[test]
    fn reloading_carries_the_monotonic_clock_reading() {
        assert_eq!(
            reloading("reloading", 123_456_789),
            "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=reloading\n"
        );
    }

    #[test]
    fn stopping_and_watchdog() {
        assert_eq!(stopping("stopping"), "STOPPING=1\nSTATUS=stopping\n");
        assert_eq!(watchdog(), "WATCHDOG=1\n");
    }

    #[test]
    fn a_status_cannot_add_an_assignment() {
        let message = ready("bad config\nMAINPID=1\r\nREADY=1", 7);
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(
            lines,
            [
                "READY=1",
                "STATUS=bad config MAINPID=1  READY=1",
                "MAINPID=7"
            ]
        );
    }

    #[test]
    fn a_long_status_is_cut_at_a_character_boundary() {
        let long = "é".repeat(STATUS_MAX);
        let line = one_line(&long);
        assert!(line.len() <= STATUS_MAX, "{} bytes", line.len());
        assert!(line.ends_with('…'));
        assert!(line.trim_end_matches('…').chars().all(|c| c == 'é'));
        assert_eq!(one_line("short"), "short");
    }
}
