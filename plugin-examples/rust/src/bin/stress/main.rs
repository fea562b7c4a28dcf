//! `stress`: a plugin that misbehaves on demand, for the host's supervision
//! and chaos tests (restarts, quarantine, health-driven restarts, bounded
//! logs, no orphans). With no config and no `STRESS_*` variables it is a
//! well-behaved plugin: every `Invoke` answers CONTINUE with a patch setting
//! `/metadata/stress/<instance name>/count` to the number of invocations
//! this process has seen, this one included, so that a test can tell which
//! instance answered and whether it was restarted.
//!
//! # Environment
//!
//! What must be known before `Configure` (the manifest, faults at start,
//! signal handling) comes from the environment, which the host sets from
//! the plugin's `env` table. A bad value stops the plugin with exit 1 and a
//! message naming the variable.
//!
//! - `STRESS_PHASES`: the subscriptions, a comma list of
//!   `phase[:priority[:idempotent]]` (default `stress:0`), e.g.
//!   `pre_container:10,post_container:-5:idempotent`.
//! - `STRESS_AT_START`: a fault before the handshake or independent of
//!   calls: `exit` (write `stress: exiting at start on purpose` to stderr
//!   and exit 3 at once), `exit-after-ms:N` (serve normally, then write
//!   `stress: exiting N ms after start on purpose` and exit 3 N ms after
//!   the process started), `hang` (never print the handshake; sleep until
//!   killed); or push against a sandbox wall and exit (0: it gave way, 4:
//!   it held, saying which on stderr): `alloc-mib:N` (allocate and touch N
//!   MiB), `alloc-after-ms:N` (serve normally, then N ms after start
//!   allocate and touch memory without end, until killed or refused: exit
//!   4), `forkbomb` (start `sleep`s until one fails), `connect:ADDR` (a
//!   TCP connection), `read:PATH` (read a file).
//! - `STRESS_IGNORE_SIGTERM=1`: log SIGTERM and carry on. The SDK's own
//!   SIGTERM/SIGINT handling is off (SIGINT then kills at once); only
//!   `Shutdown` or SIGKILL stop the plugin.
//!
//! # Config
//!
//! Every key is optional, and the faults combine:
//!
//! ```toml
//! [[plugin]]
//! name = "stress-a"
//! command = "target/debug/stress"
//! env = { STRESS_PHASES = "pre_container:10", STRESS_IGNORE_SIGTERM = "1" }
//!
//! [plugin.config]
//! crash_after = 3              # exit 101 inside the 3rd Invoke since start
//! hang_invoke = false          # Invoke never returns (until its deadline)
//! invoke_delay_ms = 200        # sleep before answering each Invoke
//! panic_on_invoke = false      # panic inside Invoke
//! health = "not_serving_after:2"   # serving | not_serving | not_serving_after:N
//!                                  # | stop_answering | stop_answering_after:N
//! flood_stderr = { lines_per_sec = 1000, line_bytes = 200 }
//! flood_stdout = { lines_per_sec = 10, line_bytes = 40000 }
//! newline_free_bytes = 100000  # that many bytes on stderr, no newline
//! fork_grandchildren = 2       # `sleep 3600` in the plugin's process group
//! orphan_grandchildren = 1     # `sleep 3600` in a session of its own
//! ignore_shutdown = false      # answer Shutdown but do not exit
//! ```
//!
//! - The `count` and `crash_after` count invocations since the process
//!   started; the one that reaches `crash_after` logs
//!   `stress: crashing after N invocations` (at error) and exits 101.
//! - `panic_on_invoke`: a panic in `Invoke` prints Rust's panic message to
//!   stderr as plain lines: an empty line, `thread 'tokio-rt-worker' (<tid>)
//!   panicked at <file>:<line>:<col>:`, the message, then with
//!   `RUST_BACKTRACE=1` `stack backtrace:` and two lines a frame, else a
//!   `note:` line. The process does not exit: tokio catches the panic in
//!   the task serving the call's HTTP/2 stream, the stream is reset
//!   (`RST_STREAM CANCEL`), and a tonic client sees `CANCELLED` "h2 protocol
//!   error: http2 error" long before any deadline. The next call is served
//!   as usual.
//! - `health`: `not_serving` reports NOT_SERVING from `Configure` on (so a
//!   host fails the start, whose check follows `Configure`);
//!   `not_serving_after:N` from the N-th invocation on; `stop_answering`
//!   leaves every health check unanswered (the caller times out) from
//!   `Configure` on, `stop_answering_after:N` from the N-th invocation on.
//!   `Invoke` is served all the same.
//! - `flood_stderr`, `flood_stdout`: a thread writes `line_bytes`-byte lines
//!   (plus the newline), `lines_per_sec` a second, until the process exits.
//! - `newline_free_bytes`: written once, at `Configure`; whatever the plugin
//!   writes to stderr next continues that line.
//! - Grandchildren are spawned at `Configure` with stdin and stdout on
//!   `/dev/null`; those in the group inherit stderr, the escaped ones do not
//!   (the host cannot kill them, so they must not hold its pipe open for an
//!   hour). Their pids are logged as one JSON line on stderr:
//!   `{"level":"WARN","message":"stress: spawned ...","process_group":"own"
//!   or "escaped","pids":[...]}`. The test that asks for escaped
//!   grandchildren must kill them itself.
//! - `ignore_shutdown`: `Shutdown` is answered and the server stops, then the
//!   plugin hangs in its shutdown hook: until SIGTERM, or, with
//!   `STRESS_IGNORE_SIGTERM=1`, until SIGKILL.
//!
//! Floods, `newline_free_bytes` and grandchildren start with the first
//! `Configure` that asks for any of them; a later `Configure` does not start
//! more.
//!
//! # Layout
//!
//! - `launch`: the `STRESS_*` environment, read before the handshake.
//! - `faults`: the config, checked key by key, and its JSON Schema.
//! - `health`: what the health service reports, and when that changes.
//! - `plugin`: the [`Plugin`](outboard_plugin::Plugin) that commits the faults.
//! - `side_effects`: floods, newline-free output and grandchildren.

mod faults;
mod health;
mod launch;
mod plugin;
mod side_effects;
mod walls;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use outboard_plugin::{ServeError, Settings};

use crate::launch::{AtStart, Launch};
use crate::plugin::Stress;

/// The manifest name.
const NAME: &str = "stress";
/// The exit status of the faults at start.
const EXIT_AT_START: u8 = 3;

fn main() -> ExitCode {
    let launch = match Launch::from_lookup(|var| std::env::var(var).ok()) {
        Ok(launch) => launch,
        Err(why) => {
            eprintln!("{NAME}: {why}");
            return ExitCode::FAILURE;
        }
    };
    match launch.at_start {
        Some(AtStart::Exit) => {
            eprintln!("stress: exiting at start on purpose");
            return ExitCode::from(EXIT_AT_START);
        }
        Some(AtStart::Wall(wall)) => return wall.push(),
        Some(AtStart::Hang) => loop {
            // No handlers: SIGTERM's default action ends it.
            std::thread::sleep(Duration::from_secs(3600));
        },
        Some(AtStart::AllocAfter(after)) => {
            let spawned = std::thread::Builder::new()
                .name("stress-alloc-after".into())
                .spawn(move || {
                    std::thread::sleep(after);
                    eprintln!(
                        "stress: allocating without end {} ms after start on purpose",
                        after.as_millis()
                    );
                    walls::Wall::Alloc(u64::MAX).push();
                    std::process::exit(i32::from(walls::EXIT_REFUSED));
                });
            if let Err(e) = spawned {
                eprintln!("{NAME}: cannot start the alloc-after thread: {e}");
                return ExitCode::FAILURE;
            }
        }
        Some(AtStart::ExitAfter(after)) => {
            let started = Instant::now();
            let spawned = std::thread::Builder::new()
                .name("stress-exit-after".into())
                .spawn(move || {
                    std::thread::sleep(after.saturating_sub(started.elapsed()));
                    eprintln!(
                        "stress: exiting {} ms after start on purpose",
                        after.as_millis()
                    );
                    std::process::exit(i32::from(EXIT_AT_START));
                });
            if let Err(e) = spawned {
                eprintln!("{NAME}: cannot start the exit-after thread: {e}");
                return ExitCode::FAILURE;
            }
        }
        None => {}
    }
    let plugin = Stress::new(&launch, std::process::exit);
    if launch.ignore_sigterm {
        serve_ignoring_sigterm(plugin)
    } else {
        outboard_plugin::run(plugin)
    }
}

/// `outboard_plugin::run`, except that SIGTERM is logged and ignored: the
/// SDK's signal handling is turned off and this process listens for SIGTERM
/// itself (before the handshake, so that no SIGTERM can kill it).
fn serve_ignoring_sigterm(plugin: Stress) -> ExitCode {
    outboard_plugin::run_with(NAME, || async {
        let settings = Settings::from_env().map_err(|source| ServeError::Settings {
            plugin: NAME.into(),
            source,
        })?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|source| ServeError::Signals {
                plugin: NAME.into(),
                source,
            })?;
        tokio::spawn(async move {
            while term.recv().await.is_some() {
                tracing::warn!("stress: got SIGTERM, ignoring it on purpose");
            }
        });
        outboard_plugin::serve_with(plugin, settings.handle_signals(false)).await
    })
}
