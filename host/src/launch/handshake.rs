//! Reading the handshake line off a plugin's stdout.
//!
//! The wait is bounded three ways: the line arrives, the plugin exits (or
//! closes stdout), or the timeout passes. Lines before the handshake that do
//! not start with `outboard|` are logged as the plugin's output and skipped,
//! so a stray `println!` in a plugin does not break its start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outboard_proto::handshake::{HANDSHAKE_PREFIX, HandshakeLine};
use tokio::io::AsyncBufRead;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::ErrorKind;
use crate::launch::exit::Exit;
use crate::output::{self as logs, Stream, Tail};

/// How long to let stderr drain after an early exit, so the error can show
/// the plugin's last words.
const STDERR_DRAIN: Duration = Duration::from_millis(200);

/// What the handshake needs to know about the plugin being started.
#[derive(Debug)]
pub struct Expect<'a> {
    /// The plugin's name, for its log lines.
    pub plugin: &'a Arc<str>,
    /// The socket the plugin was told to bind.
    pub socket: &'a Path,
    /// The protocol versions the host offered.
    pub versions: &'a [u32],
    /// How long to wait.
    pub timeout: Duration,
}

/// Waits for the handshake line on `stdout` and checks it against what the
/// host offered.
pub async fn read<R: AsyncBufRead + Unpin>(
    expect: &Expect<'_>,
    stdout: &mut R,
    mut exit: watch::Receiver<Option<Exit>>,
    stderr: &Tail,
) -> Result<HandshakeLine, ErrorKind> {
    let deadline = Instant::now() + expect.timeout;
    let mut stdout_open = true;
    loop {
        tokio::select! {
            line = logs::read_line(stdout), if stdout_open => match line {
                Ok(Some(line)) if line.starts_with(HANDSHAKE_PREFIX) => return check(expect, &line),
                Ok(Some(line)) => {
                    tracing::debug!(target: "outboard::plugin", plugin = &**expect.plugin, "output before the handshake, ignored");
                    logs::forward_line(expect.plugin, Stream::Stdout, &line);
                }
                // End of stream or a read error: stdout is gone, so only an
                // exit or the timeout can end the wait now.
                Ok(None) | Err(_) => stdout_open = false,
            },
            // Copy the status out inside the branch's future: the watch
            // guard must not live across the await below.
            status = async { exit.wait_for(Option::is_some).await.ok().and_then(|s| *s) } => {
                tokio::time::sleep(STDERR_DRAIN).await;
                return Err(ErrorKind::ExitedBeforeHandshake {
                    status: Exit::describe(status),
                    stderr: stderr.lines(),
                });
            }
            () = tokio::time::sleep_until(deadline) => {
                return Err(if stdout_open {
                    ErrorKind::HandshakeTimeout { timeout: expect.timeout, stderr: stderr.lines() }
                } else {
                    ErrorKind::ClosedStdout { stderr: stderr.lines() }
                });
            }
        }
    }
}

fn check(expect: &Expect<'_>, line: &str) -> Result<HandshakeLine, ErrorKind> {
    let handshake: HandshakeLine = line.parse().map_err(|err| ErrorKind::MalformedHandshake {
        line: line.to_owned(),
        reason: format!("{err}"),
    })?;
    if !expect.versions.contains(&handshake.protocol_version) {
        return Err(ErrorKind::UnsupportedVersion {
            plugin: handshake.protocol_version,
            host: expect.versions.to_vec(),
        });
    }
    if Path::new(&handshake.socket_path) != expect.socket {
        return Err(ErrorKind::WrongSocket {
            announced: handshake.socket_path,
            expected: expect.socket.display().to_string(),
        });
    }
    Ok(handshake)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect<'a>(plugin: &'a Arc<str>, timeout: Duration) -> Expect<'a> {
        Expect {
            plugin,
            socket: Path::new("/tmp/ob-t/plugin.sock"),
            versions: &[1],
            timeout,
        }
    }

    async fn run(output: &'static str, timeout: Duration) -> Result<HandshakeLine, ErrorKind> {
        let name: Arc<str> = "p".into();
        let (_tx, exit) = watch::channel(None);
        let mut stdout = tokio::io::BufReader::new(output.as_bytes());
        read(&expect(&name, timeout), &mut stdout, exit, &Tail::default()).await
    }

    #[tokio::test]
    async fn stray_lines_before_the_handshake_are_skipped() {
        let line = run(
            "Loading...\n\n{\"level\":\"info\"}\noutboard|1|unix|/tmp/ob-t/plugin.sock|grpc\n",
            Duration::from_secs(1),
        )
        .await
        .expect("handshake");
        assert_eq!(line.protocol_version, 1);
    }

    #[tokio::test]
    async fn bad_lines_are_quoted() {
        let err = run("outboard|1|unix\n", Duration::from_secs(1))
            .await
            .expect_err("malformed");
        assert_eq!(
            err.to_string(),
            "printed a malformed handshake line \"outboard|1|unix\": it has 3 '|'-separated fields, \
             expected 5: outboard|<version>|unix|<socket path>|grpc"
        );
        let err = run(
            "outboard|2|unix|/tmp/ob-t/plugin.sock|grpc\n",
            Duration::from_secs(1),
        )
        .await
        .expect_err("version");
        assert!(
            matches!(err, ErrorKind::UnsupportedVersion { plugin: 2, .. }),
            "{err}"
        );
        let err = run(
            "outboard|1|unix|/elsewhere.sock|grpc\n",
            Duration::from_secs(1),
        )
        .await
        .expect_err("socket");
        assert!(matches!(err, ErrorKind::WrongSocket { .. }), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn closed_stdout_ends_at_the_timeout_with_its_own_message() {
        let err = run("just noise\n", Duration::from_secs(10))
            .await
            .expect_err("no handshake");
        assert!(matches!(err, ErrorKind::ClosedStdout { .. }), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_times_out() {
        let name: Arc<str> = "p".into();
        let (_tx, exit) = watch::channel(None);
        let (_writer, reader) = tokio::io::duplex(64);
        let mut stdout = tokio::io::BufReader::new(reader);
        let err = read(
            &expect(&name, Duration::from_millis(300)),
            &mut stdout,
            exit,
            &Tail::default(),
        )
        .await
        .expect_err("timeout");
        assert_eq!(
            err.to_string(),
            "printed no handshake line within 300ms (expected `outboard|1|unix|<socket>|grpc` on stdout) \
             (it wrote nothing to stderr)"
        );
    }
}
