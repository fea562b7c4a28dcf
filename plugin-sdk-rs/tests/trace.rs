//! A plugin built on the SDK continues the host's trace with no code of its
//! own: this executable runs itself as a plugin (as a host would start it,
//! one process per case, since the span exporter belongs to the process),
//! sends it an `Invoke` carrying a `traceparent`, and checks what a real
//! OTLP receiver got and what the plugin wrote on stderr.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use outboard_plugin::{Invocation, Manifest, Plugin, PluginError, Reply};
use outboard_proto::fastpath::{self, HEADER_LEN, Header, Kind};
use outboard_proto::handshake::{TOKEN_METADATA_KEY, bearer};
use outboard_proto::v1::{self, plugin_service_client::PluginServiceClient};
use outboard_test_support::otlp::{self, Receiver};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tonic::transport::{Channel, Endpoint, Uri};
use tracing::Instrument;

const TOKEN: &str = "trace-token-0123456789";
const AS_PLUGIN: &str = "--as-plugin";
const NAME: &str = "traced";
/// The host's `outboard.invoke` span, as the host would send it.
const HOST_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HOST_SPAN: &str = "00f067aa0ba902b7";
const WAIT: Duration = Duration::from_secs(20);

/// The plugin: one span of its own around its work, one log line in it, and
/// the names of its threads in that line (to tell whether an exporter
/// runs).
struct Traced;

impl Plugin for Traced {
    fn manifest(&self) -> Manifest {
        Manifest::new(NAME, "0.1.0").subscribe("pre_container", 0)
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        async {
            tracing::info!(
                phase = invocation.phase.as_str(),
                threads = thread_names().join(","),
                "author log line"
            );
        }
        .instrument(tracing::info_span!("author.work"))
        .await;
        Ok(Reply::ok())
    }
}

/// The names of this process's threads (Linux).
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(AS_PLUGIN) {
        return outboard_plugin::run(Traced);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        invoke_continues_the_hosts_trace_and_shutdown_flushes().await;
        println!("test invoke_continues_the_hosts_trace_and_shutdown_flushes ... ok");
        sigterm_flushes_the_spans().await;
        println!("test sigterm_flushes_the_spans ... ok");
        a_malformed_traceparent_starts_a_new_root().await;
        println!("test a_malformed_traceparent_starts_a_new_root ... ok");
        without_the_environment_nothing_is_exported().await;
        println!("test without_the_environment_nothing_is_exported ... ok");
        at_trace_level_the_export_machinery_is_not_exported().await;
        println!("test at_trace_level_the_export_machinery_is_not_exported ... ok");
        a_fast_path_invoke_continues_the_hosts_trace().await;
        println!("test a_fast_path_invoke_continues_the_hosts_trace ... ok");
    });
    ExitCode::SUCCESS
}

async fn invoke_continues_the_hosts_trace_and_shutdown_flushes() {
    let receiver = Receiver::start().await;
    let mut plugin = Started::new(Some(&receiver.endpoint())).await;
    let traceparent = format!("00-{HOST_TRACE}-{HOST_SPAN}-01");
    plugin
        .invoke(&[("traceparent", &traceparent), ("tracestate", "vendor=x")])
        .await;
    plugin.shutdown().await;
    let stderr = plugin.exited().await;

    // The process has exited: the spans left with the flush at shutdown
    // (the batch would otherwise have waited 5 s), or never.
    let spans = receiver.wait_for(|s| s.len() >= 2, WAIT).await;
    let invoke = find(&spans, "outboard.plugin.invoke");
    assert_eq!(invoke.trace_id, HOST_TRACE, "{}", otlp::render(&spans));
    assert_eq!(invoke.parent_span_id.as_deref(), Some(HOST_SPAN));
    assert_eq!(invoke.service, NAME);
    assert_eq!(invoke.attr("outboard.plugin"), Some(NAME));
    assert_eq!(invoke.attr("outboard.phase"), Some("pre_container"));
    assert_eq!(invoke.attr("outboard.invocation_id"), Some("inv-0001"));
    assert_eq!(invoke.int("outboard.attempt"), Some(2), "an Int");
    // What the span is, not where in the code, on which thread, or how
    // long it idled.
    for span in &spans {
        let noise = span.noise();
        assert!(noise.is_empty(), "{} carries {noise:?}", span.name);
    }
    let author = find(&spans, "author.work");
    assert_eq!(author.trace_id, HOST_TRACE);
    assert_eq!(
        author.parent_span_id.as_deref(),
        Some(invoke.span_id.as_str())
    );

    let line = author_line(&stderr);
    assert_eq!(line["trace_id"], HOST_TRACE, "{line}");
    assert_eq!(line["span_id"], author.span_id.as_str(), "{line}");
    assert!(threads(&line).contains(&"outboard-otlp"), "{line}");
}

async fn sigterm_flushes_the_spans() {
    let receiver = Receiver::start().await;
    let mut plugin = Started::new(Some(&receiver.endpoint())).await;
    let traceparent = format!("00-{HOST_TRACE}-{HOST_SPAN}-01");
    plugin.invoke(&[("traceparent", &traceparent)]).await;
    let pid = plugin.child.id().unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    plugin.exited().await;
    let spans = receiver.wait_for(|s| s.len() >= 2, WAIT).await;
    let invoke = find(&spans, "outboard.plugin.invoke");
    assert_eq!(invoke.parent_span_id.as_deref(), Some(HOST_SPAN));
}

async fn a_malformed_traceparent_starts_a_new_root() {
    let receiver = Receiver::start().await;
    let mut plugin = Started::new(Some(&receiver.endpoint())).await;
    plugin
        .invoke(&[("traceparent", "00-not-a-trace-context-01")])
        .await;
    plugin.shutdown().await;
    let stderr = plugin.exited().await;
    let spans = receiver.wait_for(|s| s.len() >= 2, WAIT).await;
    let invoke = find(&spans, "outboard.plugin.invoke");
    assert_eq!(invoke.parent_span_id, None, "{}", otlp::render(&spans));
    assert_ne!(invoke.trace_id, HOST_TRACE);
    let author = find(&spans, "author.work");
    assert_eq!(author.trace_id, invoke.trace_id);
    assert_eq!(author_line(&stderr)["trace_id"], invoke.trace_id.as_str());
}

async fn without_the_environment_nothing_is_exported() {
    let mut plugin = Started::new(None).await;
    let traceparent = format!("00-{HOST_TRACE}-{HOST_SPAN}-01");
    plugin.invoke(&[("traceparent", &traceparent)]).await;
    plugin.shutdown().await;
    let stderr = plugin.exited().await;
    let line = author_line(&stderr);
    assert!(line.get("trace_id").is_none(), "{line}");
    assert!(line.get("span_id").is_none(), "{line}");
    let threads = threads(&line);
    assert!(
        !threads
            .iter()
            .any(|t| t.starts_with("outboard-otlp") || t.starts_with("OpenTelemetry")),
        "{line}"
    );
}

async fn at_trace_level_the_export_machinery_is_not_exported() {
    let receiver = Receiver::start().await;
    let mut plugin = Started::with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
        ("OTEL_SERVICE_NAME", NAME),
        ("RUST_LOG", "trace"),
    ])
    .await;
    let traceparent = format!("00-{HOST_TRACE}-{HOST_SPAN}-01");
    plugin.invoke(&[("traceparent", &traceparent)]).await;
    plugin.shutdown().await;
    plugin.exited().await;
    let spans = receiver.wait_for(|s| s.len() >= 2, WAIT).await;
    // h2, hyper and tonic make trace-level spans for the plugin's server
    // and for every export; none of them is exported.
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["author.work", "outboard.plugin.invoke"],
        "{}",
        otlp::render(&spans)
    );
}

async fn a_fast_path_invoke_continues_the_hosts_trace() {
    let receiver = Receiver::start().await;
    let mut plugin = Started::start(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
            ("OTEL_SERVICE_NAME", NAME),
        ],
        true,
    )
    .await;
    let traceparent = format!("00-{HOST_TRACE}-{HOST_SPAN}-01");
    plugin.invoke_fast(&[("traceparent", &traceparent)]).await;
    plugin.shutdown().await;
    plugin.exited().await;
    let spans = receiver.wait_for(|s| s.len() >= 2, WAIT).await;
    let invoke = find(&spans, "outboard.plugin.invoke");
    assert_eq!(invoke.trace_id, HOST_TRACE, "{}", otlp::render(&spans));
    assert_eq!(invoke.parent_span_id.as_deref(), Some(HOST_SPAN));
    assert_eq!(invoke.attr("outboard.invocation_id"), Some("inv-0001"));
    let author = find(&spans, "author.work");
    assert_eq!(
        author.parent_span_id.as_deref(),
        Some(invoke.span_id.as_str())
    );
}

/// The one span named `name`.
fn find<'a>(spans: &'a [otlp::Span], name: &str) -> &'a otlp::Span {
    let found: Vec<&otlp::Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name}:\n{}", otlp::render(spans));
    found[0]
}

/// The plugin's log line written inside its own span.
fn author_line(stderr: &str) -> Value {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|v| v["message"] == "author log line")
        .unwrap_or_else(|| panic!("no author log line on stderr:\n{stderr}"))
}

/// The thread names the author's log line lists.
fn threads(line: &Value) -> Vec<&str> {
    line["threads"].as_str().unwrap().split(',').collect()
}

/// A plugin process started as a host would, handshake read, connected.
struct Started {
    child: Child,
    client: PluginServiceClient<Channel>,
    stderr: tokio::task::JoinHandle<String>,
    _dir: tempfile::TempDir,
}

impl Started {
    /// Started with an OTLP endpoint (export on) or without (off).
    async fn new(endpoint: Option<&str>) -> Started {
        match endpoint {
            Some(endpoint) => {
                Started::with_env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                    ("OTEL_SERVICE_NAME", NAME),
                ])
                .await
            }
            None => Started::with_env(&[]).await,
        }
    }

    /// Started with `env` on top of the host's variables.
    async fn with_env(env: &[(&str, &str)]) -> Started {
        Started::start(env, false).await
    }

    /// Started with `env` on top of the host's variables, and offered the
    /// invoke fast path if `fastpath`.
    async fn start(env: &[(&str, &str)], fastpath: bool) -> Started {
        let dir = tempfile::Builder::new()
            .prefix("ob-trace-")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("p.sock");
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .arg(AS_PLUGIN)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("OUTBOARD_MAGIC_COOKIE", "0b7f4a8e-outboard-plugin")
            .env("OUTBOARD_PROTOCOL_VERSIONS", "1")
            .env("OUTBOARD_SOCKET", &socket)
            .env("OUTBOARD_TOKEN", TOKEN)
            .env("OUTBOARD_PLUGIN_NAME", NAME)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.envs(env.iter().copied());
        if fastpath {
            command.env("OUTBOARD_FASTPATH_SOCKET", dir.path().join("fast.sock"));
        }
        let mut child = command.spawn().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut out = String::new();
            let _ = stderr.read_to_string(&mut out).await;
            out
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut handshake = String::new();
        tokio::time::timeout(WAIT, stdout.read_line(&mut handshake))
            .await
            .expect("a handshake line in time")
            .unwrap();
        assert!(handshake.starts_with("outboard|1|unix|"), "{handshake:?}");
        let client = PluginServiceClient::new(connect(&socket).await);
        Started {
            child,
            client,
            stderr,
            _dir: dir,
        }
    }

    /// Invokes `pre_container` with `trace_context`; the call must succeed.
    async fn invoke(&mut self, trace_context: &[(&str, &str)]) {
        self.client
            .invoke(authed(invoke_request(trace_context)))
            .await
            .unwrap();
    }

    /// [`Started::invoke`] on the fast path, with raw frames.
    async fn invoke_fast(&mut self, trace_context: &[(&str, &str)]) {
        let mut stream = UnixStream::connect(self._dir.path().join("fast.sock"))
            .await
            .unwrap();
        let hello = v1::FastpathHello {
            token: TOKEN.into(),
            version: fastpath::VERSION,
        };
        stream
            .write_all(&fastpath::frame(Kind::Hello, 0, &hello))
            .await
            .unwrap();
        assert_eq!(read_frame(&mut stream).await.0.kind, Kind::Hello);
        let call = v1::FastpathInvoke {
            request: Some(invoke_request(trace_context)),
            timeout: None,
        };
        stream
            .write_all(&fastpath::frame(Kind::Invoke, 1, &call))
            .await
            .unwrap();
        let (header, payload) = read_frame(&mut stream).await;
        assert_eq!((header.kind, header.id), (Kind::Result, 1), "{payload:?}");
    }

    async fn shutdown(&mut self) {
        let request = v1::ShutdownRequest {
            grace: Some(Duration::from_secs(2).try_into().unwrap()),
            reason: "test".into(),
        };
        self.client.shutdown(authed(request)).await.unwrap();
    }

    /// Waits for a clean exit; what the plugin wrote on stderr.
    async fn exited(mut self) -> String {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the plugin exits")
            .unwrap();
        let stderr = self.stderr.await.unwrap();
        assert!(status.success(), "{status}\n{stderr}");
        stderr
    }
}

/// The `pre_container` request every case sends, with `trace_context`.
fn invoke_request(trace_context: &[(&str, &str)]) -> v1::InvokeRequest {
    v1::InvokeRequest {
        phase: "pre_container".into(),
        invocation_id: "inv-0001".into(),
        attempt: 2,
        deadline: None,
        trace_context: trace_context
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        context: None,
    }
}

/// Reads one fast-path frame.
async fn read_frame(stream: &mut UnixStream) -> (Header, Vec<u8>) {
    let mut head = [0u8; HEADER_LEN];
    tokio::time::timeout(WAIT, stream.read_exact(&mut head))
        .await
        .expect("a frame in time")
        .unwrap();
    let header = Header::decode(&head);
    let mut payload = vec![0; header.len as usize];
    stream.read_exact(&mut payload).await.unwrap();
    (header, payload)
}

fn authed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(TOKEN_METADATA_KEY, bearer(TOKEN).parse().unwrap());
    request
}

/// Connects to the socket the handshake named (already bound).
async fn connect(socket: &Path) -> Channel {
    let path = socket.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { UnixStream::connect(path).await.map(TokioIo::new) }
    });
    Endpoint::from_static("http://plugin.invalid")
        .connect_with_connector(connector)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {socket:?}: {e}"))
}
