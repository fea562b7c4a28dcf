//! What `Configure` starts once: floods of lines, newline-free output and
//! grandchildren.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outboard_plugin::PluginError;
use serde_json::{Map, Value, json};

use crate::faults::{Faults, Flood};

/// Starts the floods, writes the newline-free bytes and spawns the
/// grandchildren.
pub(crate) fn start_side_effects(faults: &Faults) -> Result<(), PluginError> {
    if let Some(f) = faults.flood_stderr {
        spawn_thread("stress-flood-stderr", move || {
            flood_lines("stderr", f, std::io::stderr())
        })?;
    }
    if let Some(f) = faults.flood_stdout {
        spawn_thread("stress-flood-stdout", move || {
            flood_lines("stdout", f, std::io::stdout())
        })?;
    }
    if faults.newline_free_bytes > 0 {
        let n = faults.newline_free_bytes;
        spawn_thread("stress-no-newline", move || write_without_newline(n))?;
    }
    if faults.fork_grandchildren > 0 {
        let pids = spawn_grandchildren(faults.fork_grandchildren, false)?;
        log_pids(
            &format!(
                "stress: spawned {} grandchildren in the plugin's process group",
                pids.len()
            ),
            "own",
            &pids,
        );
    }
    if faults.orphan_grandchildren > 0 {
        let pids = spawn_grandchildren(faults.orphan_grandchildren, true)?;
        log_pids(
            &format!(
                "stress: spawned {} grandchildren that left the process group (setsid)",
                pids.len()
            ),
            "escaped",
            &pids,
        );
    }
    Ok(())
}

/// Starts `body` on a thread called `name`.
fn spawn_thread(name: &str, body: impl FnOnce() + Send + 'static) -> Result<(), PluginError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map(drop)
        .map_err(|e| PluginError::failed(format!("cannot start thread {name}: {e}")))
}

/// Writes `flood.lines_per_sec` lines a second to `stream` until a write
/// fails (the reader is gone). A writer blocked by a full pipe does not
/// make up for more than a second of lines afterwards.
fn flood_lines(name: &str, flood: Flood, mut out: impl Write) {
    let started = Instant::now();
    let rate = flood.lines_per_sec as f64;
    let tick = Duration::from_secs_f64((1.0 / rate).max(0.005));
    let mut written: u64 = 0;
    let mut line = Vec::with_capacity(flood.line_bytes + 1);
    loop {
        let due = (started.elapsed().as_secs_f64() * rate) as u64 + 1;
        written = written.max(due.saturating_sub(flood.lines_per_sec));
        while written < due {
            written += 1;
            line.clear();
            line.extend_from_slice(format!("stress flood {name} line {written} ").as_bytes());
            line.resize(flood.line_bytes, b'x');
            line.push(b'\n');
            if out.write_all(&line).and_then(|()| out.flush()).is_err() {
                return;
            }
        }
        std::thread::sleep(tick);
    }
}

/// Writes `n` bytes to stderr, holding its lock so that nothing else lands
/// in the middle, and no newline.
fn write_without_newline(n: u64) {
    let chunk = [b'x'; 64 * 1024];
    let mut err = std::io::stderr().lock();
    let mut left = n;
    while left > 0 {
        let len = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        if err.write_all(&chunk[..len]).is_err() {
            return;
        }
        left -= len as u64;
    }
    let _ = err.flush();
}

/// Spawns `n` `sleep 3600`, each in a session of its own if `escape`.
fn spawn_grandchildren(n: u64, escape: bool) -> Result<Vec<u32>, PluginError> {
    let mut pids = Vec::new();
    for _ in 0..n {
        let mut command = Command::new("sleep");
        command
            .arg("3600")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if escape {
            use std::os::unix::process::CommandExt;
            command.stderr(Stdio::null());
            // SAFETY: the closure runs in the forked child before exec, where
            // only async-signal-safe calls are allowed; it calls setsid(2),
            // which is one, and builds an io::Error from errno without
            // allocating.
            unsafe {
                command.pre_exec(|| {
                    if libc::setsid() == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        // The Child is dropped without waiting: the grandchild outlives our
        // interest in it, as a careless plugin's children do.
        let child = command.spawn().map_err(|e| {
            let key = if escape {
                "orphan_grandchildren"
            } else {
                "fork_grandchildren"
            };
            PluginError::failed(format!(
                "{key}: cannot spawn `sleep 3600` (after {} of {n}): {e}",
                pids.len()
            ))
        })?;
        pids.push(child.id());
    }
    Ok(pids)
}

/// One JSON log line carrying the pids as an array (tracing would quote
/// them as a string).
fn log_pids(message: &str, process_group: &str, pids: &[u32]) {
    let mut line = Map::new();
    line.insert("level".into(), json!("WARN"));
    line.insert("message".into(), json!(message));
    line.insert("process_group".into(), json!(process_group));
    line.insert("pids".into(), json!(pids));
    let _ = writeln!(std::io::stderr().lock(), "{}", Value::Object(line));
}
