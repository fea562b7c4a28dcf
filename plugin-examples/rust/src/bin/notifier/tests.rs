//! The plugin through the SDK's test harness: file and URL delivery
//! against a real file and a one-shot server on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use outboard_plugin::testing::{FakeHost, Harness};
use outboard_plugin::{Code, Config, Invocation};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::plugin::Notifier;

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
async fn file_mode_refuses_a_planted_link_and_creates_a_private_file() {
    use outboard_examples::testing::{PRECIOUS, mode, plant_link};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let victim = plant_link(&path);
    let h = harness();
    h.configure(json!({"secret": SECRET, "file": path}))
        .await
        .unwrap();
    let err = h.invoke("post_container", finished(0)).await.unwrap_err();
    assert_eq!(err, outboard_examples::link_refused(&path));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), PRECIOUS);

    std::fs::remove_file(&path).unwrap();
    h.invoke("post_container", finished(0)).await.unwrap();
    assert_eq!(mode(&path), outboard_examples::NEW_FILE_MODE);
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
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
        one_shot_server("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n").await;
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

/// The file mode's one line, and the signature the plugin should have
/// computed for its event under `SECRET`.
fn written_and_expected(path: &std::path::Path) -> (Value, String) {
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let body = serde_json::to_vec(&line["event"]).unwrap();
    let signature = expected_signature(&body);
    (line, signature)
}

#[tokio::test]
async fn without_secret_or_secret_env_the_key_is_the_granted_host_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let host = FakeHost::new()
        .with_grants(["secret:notifier-hmac"])
        .with_secret("notifier-hmac", SECRET);
    let h = harness().with_host(&host);
    h.configure(json!({"file": path})).await.unwrap();
    let out = h.invoke("post_container", finished(0)).await.unwrap();
    let (line, signature) = written_and_expected(&path);
    assert_eq!(line["signature"], json!(signature));
    assert_eq!(
        out.get("/metadata/notifier/signature"),
        Some(&json!(signature))
    );
}

#[tokio::test]
async fn a_host_secret_not_granted_configured_or_offered_fails_configure_saying_what_to_do() {
    let path = "/tmp/never-written";
    // The grant is missing from what Configure says was granted.
    let h = harness().with_host(&FakeHost::new().with_secret("notifier-hmac", SECRET));
    let err = h
        .configure_with(Config::new(json!({"file": path})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "no key: the config sets neither `secret` nor `secret_env`, and the host secret \
         notifier-hmac is not granted (add grant = [\"secret:notifier-hmac\"] to the plugin's \
         table and a [secrets.notifier-hmac] section to outboard.toml)"
    );
    // Granted, but the host has no such secret.
    let h = harness().with_host(&FakeHost::new().with_grants(["secret:notifier-hmac"]));
    let err = h.configure(json!({"file": path})).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().starts_with(
            "no key: the config sets neither `secret` nor `secret_env`, and the host secret \
             notifier-hmac cannot be read: host service GetSecret failed: NOT_FOUND"
        ),
        "{err}"
    );
    // A host without host services: configured, but each event says why
    // it cannot sign.
    let h = harness();
    h.configure(json!({"file": path})).await.unwrap();
    let err = h.invoke("post_container", finished(0)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("host services are not available: OUTBOARD_HOST_SOCKET"),
        "{err}"
    );
    assert!(!std::path::Path::new(path).exists());
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
    let asked: Vec<&str> = m.permissions().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(asked, ["secret:notifier-hmac"]);
}
