//! `notifier`: after the command exits, sends a signed `job.finished` event
//! to a file or to a webhook on this machine.
//!
//! The event is the compact JSON object
//!
//! ```json
//! {"command":["make","test"],"event":"job.finished","exit_code":0,"job_id":"6f1c…","status":"succeeded","timestamp":"2024-05-01T12:00:00.250Z"}
//! ```
//!
//! with its keys in alphabetical order (so a receiver that parses it and
//! writes it back compactly with sorted keys gets the same bytes), `status`
//! `succeeded` when `exit_code` is 0 and `failed` otherwise, `timestamp`
//! RFC 3339 in UTC. Its signature is `sha256=<hex HMAC-SHA256 of the event's
//! bytes under the secret>`. When the context has no `exit_code` (the
//! command did not run: a dry run) nothing is sent.
//!
//! - **File mode** appends one line per job:
//!   `{"signature":"sha256=<hex>","event":{...}}`, the event being the exact
//!   bytes that were signed.
//! - **URL mode** POSTs the event as the request body (HTTP/1.1, written by
//!   hand over TCP) with `Content-Type: application/json`,
//!   `X-Outboard-Signature: sha256=<hex>` and `Connection: close`. Only
//!   `http://` URLs to this machine are accepted: the host must be in
//!   127.0.0.0/8, `[::1]` or `localhost` (which is tried as 127.0.0.1, then
//!   ::1, never looked up). The whole request is bounded by the invocation's
//!   deadline (2 s without one); a status other than 2xx, a connection error
//!   or no answer in time is `UNAVAILABLE`, naming the URL.
//!
//! # Config
//!
//! Exactly one of `secret` and `secret_env`, and exactly one of `file` and
//! `url`:
//!
//! ```toml
//! [plugin.config]
//! secret_env = "NOTIFIER_SECRET"   # or: secret = "..."
//! url = "http://127.0.0.1:8787/hooks/outboard"   # or: file = "/var/log/outboard/events.jsonl"
//! ```
//!
//! `secret_env` names a variable of the plugin's own environment, read at
//! `Configure`. The host passes a plugin only a few of its own variables,
//! so set it with `env` in the `[[plugin]]` table.
//!
//! # Patches
//!
//! `/metadata/notifier = {"delivered_to": "<file or url>", "signature": "sha256=<hex>"}`
//! (`post_container` is parallel in the job profile, so it writes only under
//! its own key).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use outboard_examples::{Clock, append_line, command_argv, exit_code, job_id, rfc3339_millis};
use outboard_plugin::{Config, Invocation, Manifest, Plugin, PluginError, Reply};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a request may take when the invocation has no deadline.
const DEFAULT_BUDGET: Duration = Duration::from_secs(2);

/// What the request leaves of the time to the deadline, so that it fails
/// with its own message rather than being cut off by the SDK.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// The most response-header bytes read before giving up on the answer.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Where a plugin reads its own environment: [`std::env::var`] in
/// production, a table in tests.
type Getenv = fn(&str) -> Option<String>;

/// The config as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// The HMAC key itself.
    secret: Option<String>,
    /// The variable of the plugin's environment holding the key.
    secret_env: Option<String>,
    /// A file to append events to.
    file: Option<PathBuf>,
    /// A webhook on this machine to POST events to.
    url: Option<String>,
}

/// Where events go.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// Appended to this file.
    File(PathBuf),
    /// POSTed to this URL.
    Url(HttpUrl),
}

/// A checked `http://` URL to this machine.
#[derive(Debug, Clone, PartialEq)]
struct HttpUrl {
    /// The URL as configured.
    raw: String,
    /// The `Host` header: host and port as written.
    authority: String,
    /// The loopback addresses to try, in order.
    addrs: Vec<SocketAddr>,
    /// The request target: path and query, at least `/`.
    path: String,
}

/// The checked config. No `Debug`: it holds the secret.
struct Settings {
    /// The HMAC key.
    secret: Vec<u8>,
    /// Where events go.
    target: Target,
}

/// The event, its fields in alphabetical order (see the module docs).
#[derive(Debug, Serialize)]
struct Event<'a> {
    command: &'a [String],
    event: &'static str,
    exit_code: i64,
    job_id: &'a str,
    status: &'static str,
    timestamp: String,
}

/// The plugin: the settings from `Configure`, a clock and an environment.
struct Notifier {
    /// `None` until configured.
    settings: RwLock<Option<Arc<Settings>>>,
    /// Where `timestamp` comes from.
    clock: Clock,
    /// Where `secret_env` is looked up.
    getenv: Getenv,
}

impl Notifier {
    fn new(clock: Clock, getenv: Getenv) -> Notifier {
        Notifier {
            settings: RwLock::new(None),
            clock,
            getenv,
        }
    }
}

impl Plugin for Notifier {
    fn manifest(&self) -> Manifest {
        Manifest::new("notifier", env!("CARGO_PKG_VERSION"))
            .describe("Sends a signed job.finished event to a file or a local webhook")
            // Not idempotent: a retry would deliver the event twice.
            .subscribe("post_container", 10)
            .config_schema(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "description": "Exactly one of secret and secret_env, and exactly one of file and url",
                "type": "object",
                "properties": {
                    "secret": {
                        "description": "The HMAC-SHA256 key events are signed with",
                        "type": "string",
                        "minLength": 1
                    },
                    "secret_env": {
                        "description": "The variable of the plugin's environment holding the key",
                        "type": "string",
                        "minLength": 1
                    },
                    "file": {
                        "description": "A file to append one signed event per line to",
                        "type": "string",
                        "minLength": 1
                    },
                    "url": {
                        "description": "An http:// URL on this machine (127.0.0.0/8, [::1] or localhost) to POST events to",
                        "type": "string",
                        "minLength": 1
                    }
                },
                // "Exactly one of" is checked at Configure rather than with
                // oneOf here: a schema failure only says "valid under more
                // than one of the schemas listed in 'oneOf'", and Configure
                // names the keys (and, for `url`, what is allowed).
                "additionalProperties": false
            }))
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let raw: RawConfig = config.deserialize()?;
        let secret = match (raw.secret, raw.secret_env) {
            (Some(secret), None) => secret,
            (None, Some(name)) => (self.getenv)(&name).ok_or_else(|| {
                PluginError::invalid_config(format!(
                    "secret_env: {name} is not set in the plugin's environment (set it with \
                     `env` in the plugin's [[plugin]] table)"
                ))
            })?,
            (Some(_), Some(_)) => {
                return Err(PluginError::invalid_config(
                    "give one of `secret` and `secret_env`, not both",
                ));
            }
            (None, None) => {
                return Err(PluginError::invalid_config(
                    "a key is required: set `secret`, or `secret_env` to the name of a variable \
                     holding it",
                ));
            }
        };
        if secret.is_empty() {
            return Err(PluginError::invalid_config("the secret must not be empty"));
        }
        let target = match (raw.file, raw.url) {
            (Some(file), None) if file.as_os_str().is_empty() => {
                return Err(PluginError::invalid_config("file: must not be empty"));
            }
            (Some(file), None) => Target::File(file),
            (None, Some(url)) => Target::Url(
                parse_url(&url)
                    .map_err(|why| PluginError::invalid_config(format!("url: {url:?} {why}")))?,
            ),
            (Some(_), Some(_)) => {
                return Err(PluginError::invalid_config(
                    "give one of `file` and `url`, not both",
                ));
            }
            (None, None) => {
                return Err(PluginError::invalid_config(
                    "a destination is required: set `file` or `url`",
                ));
            }
        };
        let settings = Settings {
            secret: secret.into_bytes(),
            target,
        };
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(settings));
        Ok(())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        let settings = self
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| PluginError::failed("notifier was not configured"))?;
        let command = command_argv(&invocation)?;
        let job_id = job_id(&invocation)?;
        let Some(exit_code) = exit_code(&invocation)? else {
            return Ok(Reply::ok().with_message("the command did not run; nothing to notify"));
        };
        let event = Event {
            command: &command,
            event: "job.finished",
            exit_code,
            job_id,
            status: if exit_code == 0 {
                "succeeded"
            } else {
                "failed"
            },
            timestamp: rfc3339_millis((self.clock)()),
        };
        let body = serde_json::to_string(&event)
            .map_err(|e| PluginError::internal(format!("cannot serialize the event: {e}")))?;
        let signature = sign(&settings.secret, body.as_bytes());

        let delivered_to = match &settings.target {
            Target::File(path) => {
                // The event's bytes go in verbatim: they are what was signed.
                let line = format!("{{\"signature\":\"{signature}\",\"event\":{body}}}");
                append_line(path, &line).await?;
                path.display().to_string()
            }
            Target::Url(url) => {
                let budget = budget(invocation.deadline, SystemTime::now());
                deliver(url, &body, &signature, budget).await?;
                url.raw.clone()
            }
        };
        Ok(Reply::ok()
            .set(
                "/metadata/notifier",
                json!({"delivered_to": delivered_to, "signature": signature}),
            )
            .with_message(format!(
                "job.finished ({}) sent to {delivered_to}",
                event.status
            )))
    }
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks that `url` is `http://` to a loopback host; the error completes
/// the sentence `url: "<url>" ...`.
fn parse_url(url: &str) -> Result<HttpUrl, String> {
    const ALLOWED: &str = "the host must be this machine (127.0.0.0/8, [::1] or localhost)";
    let rest = match url.split_at_checked(7) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http://") => rest,
        _ => {
            return Err(format!(
                "is not allowed: only http:// URLs are supported, and {ALLOWED}"
            ));
        }
    };
    if let Some(c) = url.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("contains {c:?}; percent-encode it"));
    }
    if url.contains('#') {
        return Err("has a fragment (#...), which is never sent; remove it".into());
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let path = match target.chars().next() {
        None => "/".to_owned(),
        Some('?') => format!("/{target}"),
        Some(_) => target.to_owned(),
    };
    if authority.contains('@') {
        return Err("has user information (user@host), which is not supported".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or("has an IPv6 address without its closing ']'")?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or("has something other than :port after the IPv6 address")?,
                ),
            };
            let ip: Ipv6Addr = host.parse().map_err(|_| {
                format!("has {host:?} between [ and ], which is not an IPv6 address")
            })?;
            (Host::Ip(IpAddr::V6(ip)), port)
        }
        None => {
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let host = if host.eq_ignore_ascii_case("localhost") {
                Host::Localhost
            } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
                Host::Ip(IpAddr::V4(ip))
            } else if host.is_empty() {
                return Err("has no host".into());
            } else {
                return Err(format!("is not allowed: {ALLOWED}, not {host:?}"));
            };
            (host, port)
        }
    };
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("has port {p:?}; a port is a number from 1 to 65535"))?,
    };
    let addrs = match host {
        Host::Localhost => vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        ],
        Host::Ip(ip) if ip.is_loopback() => vec![SocketAddr::new(ip, port)],
        Host::Ip(ip) => return Err(format!("is not allowed: {ALLOWED}, not {ip}")),
    };
    Ok(HttpUrl {
        raw: url.to_owned(),
        authority: authority.to_owned(),
        addrs,
        path,
    })
}

/// A URL's host, before the loopback check.
enum Host {
    /// `localhost`, never looked up.
    Localhost,
    /// An address literal.
    Ip(IpAddr),
}

/// The time a request may take: up to the deadline less a margin, or
/// [`DEFAULT_BUDGET`] without a deadline.
fn budget(deadline: Option<SystemTime>, now: SystemTime) -> Duration {
    match deadline {
        None => DEFAULT_BUDGET,
        Some(deadline) => {
            let left = deadline.duration_since(now).unwrap_or(Duration::ZERO);
            left.saturating_sub(DEADLINE_MARGIN).max(left / 2)
        }
    }
}

/// POSTs `body` to `url` within `budget`; a 2xx answer is success.
async fn deliver(
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

fn main() -> ExitCode {
    outboard_plugin::run(Notifier::new(SystemTime::now, |name| {
        std::env::var(name).ok()
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outboard_plugin::Code;
    use outboard_plugin::testing::Harness;
    use serde_json::Value;
    use std::time::UNIX_EPOCH;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    const SECRET: &str = "s3cret-key";
    const JOB_ID: &str = "6f1c2a8e-0b7d-4c11-9a53-2d4e5f607182";

    /// 2024-05-01T12:00:00.250Z.
    fn fixed() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_714_564_800_250)
    }

    /// The plugin's environment in tests.
    fn test_env(name: &str) -> Option<String> {
        match name {
            "NOTIFIER_SECRET" => Some(SECRET.to_owned()),
            "EMPTY_SECRET" => Some(String::new()),
            _ => None,
        }
    }

    fn harness() -> Harness<Notifier> {
        Harness::new(Notifier::new(fixed, test_env))
    }

    fn finished(exit_code: i64) -> Value {
        json!({
            "job_id": JOB_ID,
            "command": ["make", "test"],
            "env": {"CI": "1"},
            "metadata": {},
            "dry_run": false,
            "exit_code": exit_code,
        })
    }

    /// The HMAC recomputed independently of [`sign`]'s formatting.
    fn expected_signature(body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256={hex}")
    }

    /// What the test server received.
    struct Captured {
        request_line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Captured {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A server on 127.0.0.1 that takes one request, answers `answer` and
    /// hands back what it received.
    async fn one_shot_server(answer: &'static str) -> (u16, JoinHandle<Captured>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut reader = tokio::io::BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).await.unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                let line = line.trim_end_matches("\r\n");
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.to_owned(), value.trim().to_owned()));
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap();
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await.unwrap();
            reader.get_mut().write_all(answer.as_bytes()).await.unwrap();
            reader.get_mut().shutdown().await.unwrap();
            Captured {
                request_line: request_line.trim_end().to_owned(),
                headers,
                body,
            }
        });
        (port, task)
    }

    #[tokio::test]
    async fn file_mode_appends_a_signed_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let h = harness();
        h.configure(json!({"secret": SECRET, "file": path}))
            .await
            .unwrap();
        let out = h.invoke("post_container", finished(0)).await.unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: Value = serde_json::from_str(text.trim_end()).unwrap();
        let event = &line["event"];
        assert_eq!(
            event,
            &json!({
                "command": ["make", "test"],
                "event": "job.finished",
                "exit_code": 0,
                "job_id": JOB_ID,
                "status": "succeeded",
                "timestamp": "2024-05-01T12:00:00.250Z",
            })
        );
        // Keys are sorted, so the compact re-serialization is the signed body.
        let body = serde_json::to_vec(event).unwrap();
        assert!(text.contains(std::str::from_utf8(&body).unwrap()));
        let signature = expected_signature(&body);
        assert_eq!(line["signature"], json!(signature));
        assert_eq!(
            out.get("/metadata/notifier"),
            Some(&json!({"delivered_to": path.display().to_string(), "signature": signature}))
        );
    }

    #[tokio::test]
    async fn secret_env_is_read_at_configure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let h = harness();
        h.configure(json!({"secret_env": "NOTIFIER_SECRET", "file": path}))
            .await
            .unwrap();
        let out = h.invoke("post_container", finished(3)).await.unwrap();
        let line: Value =
            serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim_end()).unwrap();
        assert_eq!(line["event"]["status"], json!("failed"));
        let body = serde_json::to_vec(&line["event"]).unwrap();
        assert_eq!(
            out.get("/metadata/notifier/signature"),
            Some(&json!(expected_signature(&body)))
        );

        let err = h
            .configure(json!({"secret_env": "NOT_SET", "file": path}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "secret_env: NOT_SET is not set in the plugin's environment (set it with `env` in \
             the plugin's [[plugin]] table)"
        );
        let err = h
            .configure(json!({"secret_env": "EMPTY_SECRET", "file": path}))
            .await
            .unwrap_err();
        assert_eq!(err.message(), "the secret must not be empty");
    }

    #[tokio::test]
    async fn url_mode_posts_the_signed_event() {
        let (port, server) = one_shot_server("HTTP/1.1 204 No Content\r\n\r\n").await;
        let url = format!("http://127.0.0.1:{port}/hooks/outboard?source=ci");
        let h = harness();
        h.configure(json!({"secret": SECRET, "url": url}))
            .await
            .unwrap();
        let out = h.invoke("post_container", finished(1)).await.unwrap();
        let got = server.await.unwrap();

        assert_eq!(got.request_line, "POST /hooks/outboard?source=ci HTTP/1.1");
        assert_eq!(
            got.header("host"),
            Some(format!("127.0.0.1:{port}").as_str())
        );
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(got.header("connection"), Some("close"));
        assert_eq!(
            got.header("content-length"),
            Some(got.body.len().to_string().as_str())
        );
        let event: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(event["event"], json!("job.finished"));
        assert_eq!(event["job_id"], json!(JOB_ID));
        assert_eq!(event["command"], json!(["make", "test"]));
        assert_eq!(event["exit_code"], json!(1));
        assert_eq!(event["status"], json!("failed"));
        assert_eq!(event["timestamp"], json!("2024-05-01T12:00:00.250Z"));
        assert_eq!(
            serde_json::to_vec(&event).unwrap(),
            got.body,
            "compact, keys sorted"
        );

        let signature = expected_signature(&got.body);
        assert_eq!(got.header("x-outboard-signature"), Some(signature.as_str()));
        assert_eq!(
            out.get("/metadata/notifier"),
            Some(&json!({"delivered_to": url, "signature": signature}))
        );
    }

    #[tokio::test]
    async fn localhost_and_interim_answers_work() {
        let (port, server) = one_shot_server(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        let h = harness();
        h.configure(json!({"secret": SECRET, "url": format!("http://localhost:{port}")}))
            .await
            .unwrap();
        h.invoke("post_container", finished(0)).await.unwrap();
        let got = server.await.unwrap();
        assert_eq!(got.request_line, "POST / HTTP/1.1");
        assert_eq!(
            got.header("host"),
            Some(format!("localhost:{port}").as_str())
        );
    }

    #[tokio::test]
    async fn a_non_2xx_answer_is_unavailable_naming_url_and_status() {
        let (port, server) =
            one_shot_server("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                .await;
        let url = format!("http://127.0.0.1:{port}/hook");
        let h = harness();
        h.configure(json!({"secret": SECRET, "url": url}))
            .await
            .unwrap();
        let err = h.invoke("post_container", finished(0)).await.unwrap_err();
        server.await.unwrap();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(
            err.message(),
            format!("POST {url} answered 500 Internal Server Error")
        );
    }

    #[tokio::test]
    async fn connection_errors_and_silence_are_unavailable() {
        // A port nobody listens on any more.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/hook");
        let h = harness();
        h.configure(json!({"secret": SECRET, "url": url}))
            .await
            .unwrap();
        let err = h.invoke("post_container", finished(0)).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert!(
            err.message()
                .starts_with(&format!("POST {url}: cannot connect: ")),
            "{err}"
        );

        // A server that reads the request and never answers: the deadline
        // bounds the call.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
        });
        let url = format!("http://127.0.0.1:{port}/hook");
        h.configure(json!({"secret": SECRET, "url": url}))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let invocation = Invocation::new("post_container", finished(0))
            .with_deadline(SystemTime::now() + Duration::from_millis(400));
        let err = h.invoke_with(invocation).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "bounded");
        assert_eq!(err.code(), Code::Unavailable);
        assert!(
            err.message()
                .starts_with(&format!("POST {url}: no answer within ")),
            "{err}"
        );
        silent.abort();
    }

    #[tokio::test]
    async fn a_command_that_did_not_run_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let h = harness();
        h.configure(json!({"secret": SECRET, "file": path}))
            .await
            .unwrap();
        let mut ctx = finished(0);
        ctx.as_object_mut().unwrap().remove("exit_code");
        ctx["dry_run"] = json!(true);
        let out = h.invoke("post_container", ctx.clone()).await.unwrap();
        assert_eq!(out.context, ctx, "no patch");
        assert!(!path.exists());
    }

    #[test]
    fn only_loopback_http_urls_are_accepted() {
        let ok = [
            ("http://127.0.0.1:8080/hook", "127.0.0.1:8080", "/hook"),
            ("http://127.1.2.3/", "127.1.2.3:80", "/"),
            ("http://[::1]:9000", "[::1]:9000", "/"),
            ("HTTP://LocalHost:81/a?b=c", "127.0.0.1:81", "/a?b=c"),
            ("http://localhost?x=1", "127.0.0.1:80", "/?x=1"),
        ];
        for (url, addr, path) in ok {
            let parsed = parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(parsed.addrs[0].to_string(), addr, "{url}");
            assert_eq!(parsed.path, path, "{url}");
        }
        assert_eq!(parse_url("http://localhost").unwrap().addrs.len(), 2);

        let refused = [
            ("https://127.0.0.1/hook", "only http:// URLs are supported"),
            ("ftp://127.0.0.1/", "only http:// URLs are supported"),
            ("http://example.com/hook", "not \"example.com\""),
            ("http://10.0.0.1/hook", "not 10.0.0.1"),
            ("http://0.0.0.0:80/", "not 0.0.0.0"),
            ("http://[::2]/", "not ::2"),
            ("http://[::ffff:127.0.0.1]/", "not ::ffff:127.0.0.1"),
            ("http://127.1/", "not \"127.1\""),
            (
                "http://localhost.example.com/",
                "not \"localhost.example.com\"",
            ),
            ("http://user@127.0.0.1/", "user information"),
            ("http://127.0.0.1:0/", "port \"0\""),
            ("http://127.0.0.1:99999/", "port \"99999\""),
            ("http://127.0.0.1:/", "port \"\""),
            ("http:///hook", "has no host"),
            ("http://127.0.0.1/a b", "contains ' '"),
            ("http://127.0.0.1/a\r\nX-Evil: 1", "contains '\\r'"),
            ("http://127.0.0.1/#top", "fragment"),
            ("http://[::1/", "closing ']'"),
        ];
        for (url, want) in refused {
            let err = parse_url(url).map(|u| u.raw).unwrap_err();
            assert!(err.contains(want), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn config_must_name_one_secret_and_one_destination() {
        let h = harness();
        let cases = [
            (
                json!({"secret": "k", "url": "http://192.168.1.10/hook"}),
                "url: \"http://192.168.1.10/hook\" is not allowed: the host must be this machine \
                 (127.0.0.0/8, [::1] or localhost), not 192.168.1.10",
            ),
            (
                json!({"secret": "k", "url": "https://localhost/hook"}),
                "url: \"https://localhost/hook\" is not allowed: only http:// URLs are supported, \
                 and the host must be this machine (127.0.0.0/8, [::1] or localhost)",
            ),
            (
                json!({"secret": "k", "secret_env": "NOTIFIER_SECRET", "file": "/tmp/x"}),
                "give one of `secret` and `secret_env`, not both",
            ),
            (
                json!({"file": "/tmp/x"}),
                "a key is required: set `secret`, or `secret_env` to the name of a variable \
                 holding it",
            ),
            (
                json!({"secret": "k", "file": "/tmp/x", "url": "http://127.0.0.1/"}),
                "give one of `file` and `url`, not both",
            ),
            (
                json!({"secret": "k"}),
                "a destination is required: set `file` or `url`",
            ),
            (
                json!({"secret": "", "file": "/tmp/x"}),
                "the secret must not be empty",
            ),
        ];
        for (config, want) in cases {
            let err = h.configure(config.clone()).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{config}");
            assert_eq!(err.message(), want, "{config}");
        }
        let err = h
            .configure(json!({"secret": "k", "file": "/tmp/x", "retries": 3}))
            .await
            .unwrap_err();
        assert!(err.message().contains("unknown field `retries`"), "{err}");

        // Nothing was accepted: invoking is an error, not a silent pass.
        let err = h.invoke("post_container", finished(0)).await.unwrap_err();
        assert_eq!(err.message(), "notifier was not configured");
    }

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

    #[test]
    fn manifest_subscribes_after_the_audit_log_with_a_closed_schema() {
        let h = harness();
        let m = h.manifest();
        assert_eq!((m.name(), m.version()), ("notifier", "0.1.0"));
        let sub = m.subscription_for("post_container").unwrap();
        assert_eq!((sub.priority, sub.idempotent), (10, false));
        let schema = m.schema().unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        let mut keys: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["file", "secret", "secret_env", "url"]);
    }
}
