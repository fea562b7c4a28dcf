//! The name a process puts on the leases it takes, and whether the process
//! behind such a name is gone: a host that starts releases at once the
//! leases of a crashed predecessor on this machine, instead of waiting for
//! them to run out.
//!
//! The name is `<pid>.<start time>.<random>`: the start time (field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot) tells a reused pid from
//! the original, and the random part keeps two hosts in one process apart.

/// This process's lease owner name.
pub(super) fn mine() -> String {
    let pid = std::process::id();
    let started = start_time(pid).unwrap_or_default();
    format!("{pid}.{started}.{}", uuid::Uuid::new_v4().simple())
}

/// True only if `owner` names a process of this machine that has certainly
/// exited: its pid runs no more, or runs another process (started at
/// another time). Unknown forms, and processes that cannot be told, are
/// alive: their leases run out on their own.
pub(super) fn is_gone(owner: &str) -> bool {
    let mut parts = owner.split('.');
    let (Some(pid), Some(started)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(started)) = (pid.parse::<u32>(), started.parse::<u64>()) else {
        return false;
    };
    if started == 0 || !std::path::Path::new("/proc/self/stat").exists() {
        return false;
    }
    start_time(pid) != Some(started)
}

/// When process `pid` started (clock ticks since boot), from
/// `/proc/<pid>/stat`; `None` if it does not run.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count the fields after its closing one.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_gone() {
        let me = mine();
        assert!(!is_gone(&me), "{me}");
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let started = start_time(pid);
        child.wait().expect("wait");
        if let Some(started) = started {
            assert!(is_gone(&format!("{pid}.{started}.x")));
        }
        // Our pid with another start time: a reused pid.
        let pid = std::process::id();
        assert!(is_gone(&format!("{pid}.1.x")));
        for unknown in ["", "host-a", "12.x.y", "12.0.y"] {
            assert!(!is_gone(unknown), "{unknown}");
        }
    }
}
