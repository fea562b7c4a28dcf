#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use outboard_host::config::{HostConfig, PluginSpec};
use outboard_host::testing::FakeLauncher;
use outboard_host::{Host, State};
use tower::ServiceExt as _;

use super::readiness::{Member, Phase, judge};
use super::{HttpState, router};
use crate::logs::LogBook;

/// `GET path` on the router; the status, the content type and the body.
async fn get(state: &HttpState, path: &str) -> (StatusCode, String, String) {
    request(state, "GET", path).await
}

async fn request(state: &HttpState, method: &str, path: &str) -> (StatusCode, String, String) {
    let response = router(state.clone())
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn member(name: &str, state: State, optional: bool) -> Member {
    Member {
        name: name.into(),
        state,
        optional,
    }
}

#[test]
fn ready_when_every_required_plugin_is() {
    let all = [
        member("a", State::Ready, false),
        member("b", State::Disabled, false),
        member("c", State::Failed, true),
    ];
    let r = judge(Phase::Running, &all);
    assert!(r.ready, "{r:?}");
    assert_eq!(r.text(), "ok\n");
    let some = [
        member("z", State::Restarting, false),
        member("a", State::Failed, false),
        member("b", State::Ready, false),
    ];
    let r = judge(Phase::Running, &some);
    assert!(!r.ready);
    assert_eq!(r.text(), "not ready\na: failed\nz: restarting\n");
    assert!(!judge(Phase::Starting, &[]).ready);
    let stopping = judge(Phase::Stopping, &all);
    assert!(!stopping.ready);
    assert_eq!(stopping.text(), "not ready\nstopping\n");
    let json = serde_json::to_value(judge(Phase::Running, &some)).unwrap();
    assert_eq!(json["not_ready"][0]["plugin"], "a");
    assert_eq!(json["not_ready"][0]["state"], "failed");
}

#[tokio::test]
async fn while_starting_alive_but_not_ready() {
    let state = HttpState::new(LogBook::default());
    let (code, _, body) = get(&state, "/healthz").await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "ok: starting\n"));
    let (code, _, body) = get(&state, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("starting"), "{body}");
    let (code, _, body) = get(&state, "/plugins/x/health").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"error\""), "{body}");
    let (code, content_type, body) = get(&state, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(body.contains("process_threads "), "{body}");
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let state = HttpState::new(LogBook::default());
    assert_eq!(get(&state, "/nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&state, "/plugins/x").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        request(&state, "POST", "/metrics").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        request(&state, "DELETE", "/readyz").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// A running host with one fake plugin, `alpha` (subscribed to `p`), and
/// the HTTP state it is attached to.
async fn serving_alpha() -> (Arc<Host>, HttpState) {
    let launcher = FakeLauncher::new();
    launcher.plugin("alpha", &[("p", 0, false)]);
    let config = HostConfig {
        plugins: vec![PluginSpec::new("alpha", "/fake/alpha")],
        ..HostConfig::default()
    };
    let host = Arc::new(Host::start_with(&config, launcher).await.unwrap());
    let state = HttpState::new(LogBook::default());
    state.attach(host.clone());
    (host, state)
}

#[tokio::test]
async fn a_running_host_is_ready_and_its_plugins_health_is_json() {
    let (host, state) = serving_alpha().await;
    assert_eq!(
        get(&state, "/healthz").await,
        (
            StatusCode::OK,
            "text/plain; charset=utf-8".into(),
            "ok\n".into()
        )
    );
    assert_eq!(get(&state, "/readyz").await.0, StatusCode::OK);
    let (code, content_type, body) = get(&state, "/plugins/alpha/health").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["plugin"], "alpha");
    assert_eq!(json["state"], "ready");
    assert_eq!(json["ready"], true);
    assert_eq!(json["restarts"], 0);
    assert!(json["last_health_check"].is_null(), "{json}");
    // A dispatch, then a scrape: read from the host's figures.
    host.dispatch("p", serde_json::Map::new()).await;
    let (code, _, body) = get(&state, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    for line in [
        "outboard_plugin_up{plugin=\"alpha\"} 1",
        "outboard_plugin_state{plugin=\"alpha\",state=\"ready\"} 1",
        "outboard_plugin_invocations_total{plugin=\"alpha\",phase=\"p\",outcome=\"ok\"} 1",
        "outboard_phase_dispatch_duration_seconds_count{phase=\"p\"} 1",
        "outboard_plugin_restarts_total{plugin=\"alpha\",reason=\"crashed\"} 0",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in:\n{body}");
    }
    // An unknown name: 404, JSON, the name escaped and cut.
    let long = format!("{}\"%0A{}", "x".repeat(10), "y".repeat(200));
    let (code, content_type, body) = get(&state, &format!("/plugins/{long}/health")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let error = json["error"].as_str().unwrap();
    assert!(
        error.starts_with("no plugin named \"xxxxxxxxxx\\\"\\n"),
        "{error}"
    );
    assert!(error.len() < 120, "{error}");
    // Stopping: not ready any more.
    state.close();
    let (code, _, body) = get(&state, "/readyz?verbose").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["ready"], false);
    assert_eq!(json["reason"], "stopping");
    tokio::time::timeout(Duration::from_secs(10), host.shutdown())
        .await
        .unwrap();
}

/// Reads the test holds up: each blocks until the gate opens.
#[derive(Default)]
struct Gate {
    state: std::sync::Mutex<(bool, usize)>,
    opened: std::sync::Condvar,
}

impl Gate {
    /// Counts itself in, then waits while the gate is closed.
    fn wait(&self) {
        let mut state = self.state.lock().unwrap();
        state.1 += 1;
        while state.0 {
            state = self.opened.wait(state).unwrap();
        }
    }
}

#[tokio::test]
async fn a_host_that_does_not_answer_makes_every_probe_503_and_costs_no_more_threads() {
    let (host, state) = serving_alpha().await;
    // Every blocking read the handlers may run is taken and held, as reads
    // of a host wedged on a lock would be.
    let gate = Arc::new(Gate::default());
    gate.state.lock().unwrap().0 = true;
    for _ in 0..super::blocking::SLOTS {
        let gate = gate.clone();
        let _ = state
            .shared()
            .blocking()
            .run(Duration::from_millis(1), move || gate.wait())
            .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gate.state.lock().unwrap().1 < super::blocking::SLOTS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reads never ran"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (healthz, readyz, health) = tokio::join!(
        get(&state, "/healthz"),
        get(&state, "/readyz?verbose"),
        get(&state, "/plugins/alpha/health"),
    );
    assert_eq!(healthz.0, StatusCode::SERVICE_UNAVAILABLE, "{healthz:?}");
    assert_eq!(readyz.0, StatusCode::SERVICE_UNAVAILABLE, "{readyz:?}");
    let json: serde_json::Value = serde_json::from_str(&readyz.2).unwrap();
    assert_eq!(
        json["reason"],
        "the host did not give its plugins' states in time"
    );
    assert_eq!(health.0, StatusCode::SERVICE_UNAVAILABLE, "{health:?}");
    assert_eq!(
        gate.state.lock().unwrap().1,
        super::blocking::SLOTS,
        "a probe started a read of its own"
    );
    // The host answers again: so do the probes.
    {
        let mut state = gate.state.lock().unwrap();
        state.0 = false;
        gate.opened.notify_all();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(&state, "/readyz").await.0 != StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
    assert_eq!(get(&state, "/plugins/alpha/health").await.0, StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(10), host.shutdown())
        .await
        .unwrap();
}

/// Serves a daemon still starting on a fresh port; its address, the
/// server's task and the sender that stops it.
async fn serving() -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(super::serve(
        listener,
        HttpState::new(LogBook::default()),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, task, stop)
}

/// A connection to `addr` that was answered `GET /healthz` (200) and is
/// kept alive.
async fn answered_once(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 256];
    let n = client.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &first[..n]);
    client
}

/// Reads until the peer closes; what it sent.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(start_paused = true)]
async fn a_client_that_sends_no_headers_is_closed_at_the_header_timeout() {
    let (addr, task, stop) = serving().await;
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let since = tokio::time::Instant::now();
    let sent = read_to_close(&mut idle).await;
    assert!(
        since.elapsed() >= super::conn::HEADER_READ,
        "{:?}",
        since.elapsed()
    );
    assert!(
        since.elapsed() < super::conn::MAX_LIFE,
        "{:?}",
        since.elapsed()
    );
    // hyper says why before it closes, or just closes.
    assert!(
        sent.is_empty() || sent.starts_with("HTTP/1.1 408"),
        "{sent}"
    );
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_kept_alive_connection_left_idle_is_closed_at_the_header_timeout() {
    let (addr, task, stop) = serving().await;
    let mut client = answered_once(addr).await;
    // Answered and kept alive; the client then sends nothing more.
    let since = tokio::time::Instant::now();
    read_to_close(&mut client).await;
    assert!(
        since.elapsed() >= super::conn::HEADER_READ && since.elapsed() < super::conn::MAX_LIFE,
        "closed after {:?}",
        since.elapsed()
    );
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test]
async fn a_stop_closes_kept_alive_connections_and_serve_returns() {
    let (addr, task, stop) = serving().await;
    // The answer comes on a connection kept alive; the stop then closes it.
    let mut client = answered_once(addr).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("serve returns once stopped")
        .unwrap();
    read_to_close(&mut client).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );
}

#[tokio::test(start_paused = true)]
async fn an_aborted_server_closes_every_connection_at_once() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (addr, task, _stop) = serving().await;
    // Served once (so the connection is the server's), then half a
    // request head.
    let mut client = answered_once(addr).await;
    client
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let since = tokio::time::Instant::now();
    task.abort();
    let _ = task.await;
    // Closed, by a reset (the half head was never read) or an end.
    let mut rest = Vec::new();
    match client.read_to_end(&mut rest).await {
        Ok(_) => {}
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
    }
    assert_eq!(
        since.elapsed(),
        Duration::ZERO,
        "the connection was waited for"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );
}

#[tokio::test]
async fn the_router_takes_more_routes_beside_its_own() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let state = HttpState::new(LogBook::default());
    let ext = axum::Router::new().route(
        "/{plugin}/hello",
        axum::routing::get(
            |axum::extract::Path(plugin): axum::extract::Path<String>| async move {
                format!("hello from {plugin}\n")
            },
        ),
    );
    let app = router(state).nest("/ext", ext);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(super::serve_router(listener, app, async move {
        let _ = stopped.await;
    }));
    for (path, want) in [
        ("/ext/alpha/hello", "hello from alpha\n"),
        ("/healthz", "ok: starting\n"),
    ] {
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(want), "{answer}");
    }
    let _ = stop.send(());
    task.await.unwrap();
}
