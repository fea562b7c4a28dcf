//! Delivering an event over HTTP/1.1, written by hand over TCP: one POST,
//! bounded by the invocation's deadline, a 2xx answer being success.

use std::time::{Duration, SystemTime};

use outboard_plugin::PluginError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::url::HttpUrl;

/// How long a request may take when the invocation has no deadline.
const DEFAULT_BUDGET: Duration = Duration::from_secs(2);

/// What the request leaves of the time to the deadline, so that it fails
/// with its own message rather than being cut off by the SDK.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// The most response-header bytes read before giving up on the answer.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// The time a request may take: up to the deadline less a margin, or
/// [`DEFAULT_BUDGET`] without a deadline.
pub(crate) fn budget(deadline: Option<SystemTime>, now: SystemTime) -> Duration {
    match deadline {
        None => DEFAULT_BUDGET,
        Some(deadline) => {
            let left = deadline.duration_since(now).unwrap_or(Duration::ZERO);
            left.saturating_sub(DEADLINE_MARGIN).max(left / 2)
        }
    }
}

/// POSTs `body` to `url` within `budget`; a 2xx answer is success.
pub(crate) async fn deliver(
    url: &HttpUrl,
    body: &str,
    signature: &str,
    budget: Duration,
) -> Result<(), PluginError> {
    let status = tokio::time::timeout(budget, post(url, body, signature))
        .await
        .map_err(|_| {
            PluginError::unavailable(format!(
                "POST {}: no answer within {} ms",
                url.raw,
                budget.as_millis()
            ))
        })?
        .map_err(|why| PluginError::unavailable(format!("POST {}: {why}", url.raw)))?;
    if (200..300).contains(&status.0) {
        Ok(())
    } else {
        Err(PluginError::unavailable(format!(
            "POST {} answered {} {}",
            url.raw, status.0, status.1
        )))
    }
}

/// Sends the request and reads the final status line: (code, reason).
async fn post(url: &HttpUrl, body: &str, signature: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(url.addrs.as_slice())
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\n\
         Host: {host}\r\n\
         User-Agent: outboard-notifier/{version}\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {length}\r\n\
         X-Outboard-Signature: {signature}\r\n\
         Connection: close\r\n\
         \r\n\
         {body}",
        path = url.path,
        host = url.authority,
        version = env!("CARGO_PKG_VERSION"),
        length = body.len(),
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    read_status(&mut stream).await
}

/// Reads response heads until a final (non-1xx) one and returns its status.
async fn read_status(stream: &mut TcpStream) -> Result<(u16, String), String> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        while let Some(end) = find(&head, b"\r\n\r\n") {
            let status = parse_status_line(&head[..end])?;
            if !(100..200).contains(&status.0) {
                return Ok(status);
            }
            head.drain(..end + 4); // an interim answer such as 100 Continue
        }
        if head.len() > MAX_RESPONSE_HEAD {
            return Err(format!(
                "the response headers exceed {MAX_RESPONSE_HEAD} bytes"
            ));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("cannot read the response: {e}"))?;
        if n == 0 {
            return Err(if head.is_empty() {
                "the server closed the connection without answering".into()
            } else {
                "the server closed the connection in the middle of the response headers".into()
            });
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

/// `HTTP/1.1 204 No Content` → (204, "No Content").
fn parse_status_line(head: &[u8]) -> Result<(u16, String), String> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line).trim_end().to_owned();
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let reason = parts.next().unwrap_or_default();
    let three_digits = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
    match code.parse::<u16>() {
        Ok(code) if three_digits && version.starts_with("HTTP/1.") => Ok((code, reason.to_owned())),
        _ => {
            let shown: String = line.chars().take(80).collect();
            Err(format!("the answer is not HTTP/1.x: {shown:?}"))
        }
    }
}

/// The position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn budget_follows_the_deadline() {
        let now = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(budget(None, now), DEFAULT_BUDGET);
        assert_eq!(
            budget(Some(now + Duration::from_secs(5)), now),
            Duration::from_millis(4900)
        );
        assert_eq!(
            budget(Some(now + Duration::from_millis(150)), now),
            Duration::from_millis(75)
        );
        assert_eq!(
            budget(Some(now - Duration::from_secs(1)), now),
            Duration::ZERO
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 204 No Content"),
            Ok((204, "No Content".to_owned()))
        );
        assert_eq!(parse_status_line(b"HTTP/1.0 200"), Ok((200, String::new())));
        assert!(parse_status_line(b"SSH-2.0-OpenSSH").is_err());
        assert!(parse_status_line(b"HTTP/1.1 20 OK").is_err());
        assert!(parse_status_line(b"HTTP/1.1 +20 OK").is_err());
    }
}
