//! `outboard`: the command line of the Outboard plugin host.
//!
//! # Layout
//!
//! - `init`: the PID-1 init put in front of the host in a container.
//! - `args`: the command line's definition (clap).
//! - `commands/`: one file per command; each creates its signal listener
//!   (`signals`) before it starts anything.
//! - `client/`: the connection to a running daemon's control socket, for
//!   the management commands, `invoke --daemon` and `run --daemon`.
//! - `render/`: what a person reads: tables, reports, the job summary,
//!   `up`'s state lines, the conformance results.
//! - `logging`: log lines on stderr, and the daemon's log book.
//! - `telemetry`: the host's spans exported over OTLP, when `OTEL_*` ask.
//! - `exit`: the exit statuses.

/// One line on stderr, as `eprintln!` writes it, but never a panic: when
/// stderr itself cannot be written (a full disk), there is nowhere left to
/// say so, and the exit status still tells.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod args;
mod client;
mod commands;
mod exit;
mod init;
mod logging;
mod render;
mod signals;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // First, while the process has a single thread: as PID 1, fork the
    // host and stay behind as its init.
    if let Some(status) = init::become_init_if_pid1() {
        return status;
    }
    let cli = args::Cli::parse();
    refuse_ptrace();
    // Only the daemon keeps plugins' lines, for `outboard logs`.
    let keep_plugin_logs = matches!(cli.command, args::Command::Up(_));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            say!("outboard: cannot start the async runtime: {err}");
            return ExitCode::from(exit::EXIT_ERROR);
        }
    };
    let status = runtime.block_on(async {
        // In the runtime: a trace exporter's connection lives on it.
        let telemetry = logging::init(cli.verbose, cli.log_format, keep_plugin_logs);
        let status = match commands::run(cli.command).await {
            Ok(code) => ExitCode::from(code),
            Err(err) if exit::is_broken_pipe(&err) => ExitCode::from(exit::EXIT_BROKEN_PIPE),
            Err(err) => {
                // Errors may quote a plugin: no control characters reach
                // the terminal.
                let text = format!("{err:#}");
                say!("outboard: {}", outboard_host::Escaped::block(&text));
                ExitCode::from(exit::EXIT_ERROR)
            }
        };
        // After the job, or the daemon's stop: the last spans leave, within
        // a bound.
        if let Some(telemetry) = telemetry {
            telemetry.shutdown().await;
        }
        status
    });
    // The keeper (a forked copy of this process) goes with us, reaped, so
    // that nothing of the host is left running once it has exited.
    outboard_host::launch::retire_keeper();
    status
}

/// Makes this process undumpable: a plugin running as the host's user can
/// then neither `ptrace` the host nor read its memory or descriptors
/// through `/proc` (the kernel gives those files to root). Plugins do not
/// inherit it: `execve` makes a process dumpable again.
fn refuse_ptrace() {
    // SAFETY: prctl with PR_SET_DUMPABLE and a constant has no
    // memory-safety preconditions.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        let err = std::io::Error::last_os_error();
        say!(
            "outboard: warning: cannot make this process undumpable ({err}): plugins running as this user could trace it"
        );
    }
}
