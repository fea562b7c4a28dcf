//! Traces end to end: `outboard run` (and `run --daemon` against `outboard
//! up`) with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a real OTLP/gRPC
//! receiver, real plugins in Rust and Python, and a scripted one that
//! fails. One job is one trace: `outboard.job` → `outboard.dispatch` (one
//! per phase) → `outboard.invoke` (one per call).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use common::otlp::{self, Receiver, Span, Status};
use common::{Sandbox, bin, python_plugin, text};
use daemon::Daemon;
use outboard_host::config::JOB_PHASES;

/// How long spans may take to arrive once the processes that sent them
/// are gone (they flush at exit, so at once; a loaded CI machine is slow).
const ARRIVAL: Duration = Duration::from_secs(30);

/// A parent span a caller of `outboard run` would hand down.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The Rust example env-injector and the Python secret-scrubber in
/// pre_container (a sequential phase), and a scripted plugin (on the Rust
/// SDK) whose post_container call fails (fail-open there, so the job still
/// succeeds). Every plugin samples by its parent (the SDKs' default,
/// spelled out so that a sampler given to the host does not reach them).
fn config() -> String {
    format!(
        r#"
[[plugin]]
name = "env-injector"
command = {injector:?}
grant = ["env:write"]
[plugin.env]
OTEL_TRACES_SAMPLER = "parentbased_always_on"
[plugin.config]
prefix = "ci"

[[plugin]]
name = "secret-scrubber"
command = {scrubber:?}
grant = ["env:write"]
[plugin.env]
OTEL_TRACES_SAMPLER = "parentbased_always_on"

[[plugin]]
name = "flaky"
command = {scripted:?}
stop_grace = "1s"
[plugin.env]
SCRIPTED_SUBSCRIBE = "post_container:0"
OTEL_TRACES_SAMPLER = "parentbased_always_on"
[plugin.config]
post_container = {{ error = "webhook down" }}
"#,
        injector = bin("env-injector").display().to_string(),
        scrubber = python_plugin("secret-scrubber").display().to_string(),
        scripted = bin("scripted-plugin").display().to_string(),
    )
}

/// The config in a file, and a sandbox for the plugins' runtime
/// directories.
struct Setup {
    sandbox: Sandbox,
    _dir: tempfile::TempDir,
    config: String,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("obt-traces-")
            .tempdir_in("/tmp")
            .unwrap();
        let path = dir.path().join("outboard.toml");
        std::fs::write(&path, config()).unwrap();
        Setup {
            sandbox: Sandbox::new(),
            _dir: dir,
            config: path.display().to_string(),
        }
    }

    /// `outboard -v run` of `true` on the config, with `env`.
    async fn run(&self, env: Vec<(&'static str, String)>) -> Output {
        let mut env = env;
        env.push((
            "OUTBOARD_RUNTIME_DIR",
            self.sandbox.path().display().to_string(),
        ));
        let out = outboard(&["-v", "run", "--config", &self.config, "--", "true"], env).await;
        assert!(out.status.success(), "stderr: {}", text(&out.stderr));
        out
    }
}

/// The variables that turn exporting on, towards `receiver`.
fn otel_env(receiver: &Receiver) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        // Spans leave soon, not only at exit (the daemon lives on).
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]
}

/// `outboard ARGS` with `env`, off the runtime's threads (the receiver
/// serves on them).
async fn outboard(args: &[&str], env: Vec<(&'static str, String)>) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        common::outboard_command()
            .args(&args)
            // Only what the test says: no parent, no exporter of its own.
            .env_remove("TRACEPARENT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OUTBOARD_PLUGIN_DIR")
            .env("API_TOKEN", "hunter2")
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The spans of a job once its tree is complete: a job span, seven
/// dispatches (no on_error: the job succeeded), three calls, and the
/// plugins' own span for each call.
async fn job_trace(receiver: &Receiver) -> Vec<Span> {
    receiver
        .wait_for(
            |spans| {
                let named = |n: &str| spans.iter().filter(|s| s.name == n).count();
                named("outboard.job") == 1
                    && named("outboard.dispatch") == 7
                    && named("outboard.invoke") == 3
                    && named("outboard.plugin.invoke") == 3
            },
            ARRIVAL,
        )
        .await
}

fn one<'s>(spans: &'s [Span], what: &str, pred: impl Fn(&Span) -> bool) -> &'s Span {
    let found: Vec<&Span> = spans.iter().filter(|s| pred(s)).collect();
    let [span] = found[..] else {
        panic!(
            "expected one {what}, found {}:\n{}",
            found.len(),
            otlp::render(spans)
        )
    };
    span
}

/// Checks the tree under the job span and returns it; `parent` is the job
/// span's expected parent.
fn check_tree(spans: &[Span], parent: Option<&str>) {
    let all = otlp::render(spans);
    let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len(), 1, "one job, one trace:\n{all}");

    let job = one(spans, "job span", |s| s.name == "outboard.job");
    assert_eq!(job.parent_span_id.as_deref(), parent, "{all}");
    assert_eq!(job.int("outboard.exit_code"), Some(0), "{all}");
    // Spans carry what they are, not where in the code they came from
    // nor how long they idled: on the host's and the plugins' alike.
    for span in spans {
        let noise = span.noise();
        assert!(noise.is_empty(), "{} carries {noise:?}:\n{all}", span.name);
    }
    assert_eq!(job.service, "outboard");
    assert_eq!(job.attr("outboard.status"), Some("succeeded"), "{all}");

    let dispatch = |phase: &str| {
        one(spans, phase, |s| {
            s.name == "outboard.dispatch" && s.attr("outboard.phase") == Some(phase)
        })
    };
    // Every phase of the job profile but on_error: the job succeeded.
    for phase in JOB_PHASES.into_iter().filter(|p| *p != "on_error") {
        let span = dispatch(phase);
        assert_eq!(
            span.parent_span_id.as_deref(),
            Some(&*job.span_id),
            "{phase}:\n{all}"
        );
        assert_eq!(
            span.attr("outboard.verdict"),
            Some("passed"),
            "{phase}:\n{all}"
        );
        assert_eq!(span.service, "outboard");
    }
    let pre = dispatch("pre_container");
    assert_eq!(pre.attr("outboard.mode"), Some("sequential"));
    assert_eq!(pre.int("outboard.subscribers"), Some(2), "{all}");
    let post = dispatch("post_container");
    assert_eq!(post.attr("outboard.mode"), Some("parallel"));
    assert_eq!(post.int("outboard.subscribers"), Some(1));
    assert_eq!(dispatch("cleanup").int("outboard.subscribers"), Some(0));

    let invoke = |plugin: &str| {
        one(spans, plugin, |s| {
            s.name == "outboard.invoke" && s.attr("outboard.plugin") == Some(plugin)
        })
    };
    // env-injector sets BUILD_ID and BUILD_TIMESTAMP; secret-scrubber
    // redacts API_TOKEN at least (the test's own environment may hold more).
    for (plugin, ops) in [("env-injector", 2..=2), ("secret-scrubber", 1..=i64::MAX)] {
        let span = invoke(plugin);
        assert_eq!(span.parent_span_id.as_deref(), Some(&*pre.span_id), "{all}");
        assert_eq!(span.attr("outboard.phase"), Some("pre_container"));
        assert_eq!(span.int("outboard.attempt"), Some(1), "{all}");
        assert_eq!(span.attr("outboard.outcome"), Some("ok"), "{all}");
        let count = span.int("outboard.patch.ops").expect("an Int patch size");
        assert!(ops.contains(&count), "{plugin}:\n{all}");
        assert_eq!(span.status, Status::Unset, "{all}");
    }
    // Each plugin, Rust or Python, continued the trace of its call: its
    // own span is a child of the host's, under its own service name.
    for plugin in ["env-injector", "secret-scrubber", "flaky"] {
        let call = invoke(plugin);
        let own = one(spans, &format!("{plugin}'s own span"), |s| {
            s.name == "outboard.plugin.invoke" && s.service == plugin
        });
        assert_eq!(own.parent_span_id.as_deref(), Some(&*call.span_id), "{all}");
    }
    let failed = invoke("flaky");
    assert_eq!(
        failed.parent_span_id.as_deref(),
        Some(&*post.span_id),
        "{all}"
    );
    // The outcome in the words of `/metrics` and `outboard status`; the
    // kind of failure as the job report names it.
    assert_eq!(failed.attr("outboard.outcome"), Some("failed"), "{all}");
    assert_eq!(failed.attr("outboard.failure"), Some("error"), "{all}");
    match &failed.status {
        Status::Error(message) => assert!(message.contains("webhook down"), "{all}"),
        other => panic!("the failed call's status is {other:?}:\n{all}"),
    }
}

/// `outboard up` on the config, exporting to `receiver`.
fn traced_daemon(receiver: &Receiver) -> Daemon {
    let env = otel_env(receiver);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    tokio::task::block_in_place(|| Daemon::start_with_env(&config(), &env))
}

/// The spans of one `outboard run`, exporting, with `more` in its
/// environment.
async fn traced_job(more: Vec<(&'static str, String)>) -> Vec<Span> {
    let receiver = Receiver::start().await;
    let setup = Setup::new();
    let mut env = otel_env(&receiver);
    env.extend(more);
    setup.run(env).await;
    let spans = job_trace(&receiver).await;
    setup.sandbox.assert_empty();
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_one_trace_of_job_dispatch_and_invoke_spans() {
    let spans = traced_job(vec![]).await;
    check_tree(&spans, None);
    // For a person reading the test's output (`--nocapture`).
    println!("{}", otlp::tree(&spans));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_joins_the_trace_of_its_callers_traceparent() {
    let spans = traced_job(vec![(
        "TRACEPARENT",
        format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"),
    )])
    .await;
    check_tree(&spans, Some(CALLER_SPAN));
    assert_eq!(spans[0].trace_id, CALLER_TRACE);
    println!("{}", otlp::tree(&spans));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_is_ignored_and_the_job_starts_its_own_trace() {
    check_tree(
        &traced_job(vec![("TRACEPARENT", "00-not-hex-at-all-01".to_owned())]).await,
        None,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_daemon_against_up_is_one_trace_across_both_processes() {
    let receiver = Receiver::start().await;
    let env = otel_env(&receiver);
    let daemon = traced_daemon(&receiver);
    let socket = daemon.socket().display().to_string();
    let out = outboard(
        &["run", "--daemon", "--control-socket", &socket, "--", "true"],
        env.clone(),
    )
    .await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    // The daemon's spans leave at the latest when it stops.
    tokio::task::block_in_place(|| daemon.stop());
    let spans = job_trace(&receiver).await;
    check_tree(&spans, None);
    println!("{}", otlp::tree(&spans));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_turned_off_export_nothing_and_log_lines_never_name_a_span() {
    let receiver = Receiver::start().await;
    let setup = Setup::new();
    // The endpoint is named, but traces are turned off.
    let mut off = otel_env(&receiver);
    off.push(("OTEL_TRACES_EXPORTER", "none".to_owned()));
    let quiet = setup.run(off).await;
    let traced = setup.run(otel_env(&receiver)).await;
    let spans = job_trace(&receiver).await;
    // Only the traced run exported, its plugins included: one trace.
    check_tree(&spans, None);
    for out in [&quiet, &traced] {
        let stderr = text(&out.stderr);
        assert!(stderr.contains("INFO"), "-v logs something: {stderr}");
        for name in ["outboard.job", "outboard.dispatch", "outboard.invoke"] {
            assert!(!stderr.contains(name), "{stderr}");
        }
    }
}

/// The export is gRPC only: asking for HTTP is answered once on stderr,
/// naming where the spans go instead, and they do go there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_other_than_grpc_is_said_once_and_grpc_is_used() {
    let receiver = Receiver::start().await;
    let setup = Setup::new();
    let mut env = otel_env(&receiver);
    env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()));
    let out = setup.run(env).await;
    let stderr = text(&out.stderr);
    let warning = format!(
        "traces: OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf is not supported, \
         exporting over gRPC to {}",
        receiver.endpoint()
    );
    assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    receiver
        .wait_for(
            |spans| spans.iter().any(|s| s.name == "outboard.job"),
            ARRIVAL,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_silent_collector_never_fails_a_job() {
    let setup = Setup::new();
    // Nothing listens on a port just given back.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    // A listener nobody accepts on: connections hang, never answered, and
    // the flush at exit gives up at its bound.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    for port in [closed_port, silent_port] {
        let env = vec![(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )];
        // `run` asserts the job succeeded; that it returned at all is the
        // other half.
        setup.run(env).await;
    }
    setup.sandbox.assert_empty();
    drop(silent);
}

/// `outboard invoke pre_container ARGS` under the caller's TRACEPARENT,
/// exporting to `receiver`.
async fn invoke_under_caller(receiver: &Receiver, args: &[&str]) {
    let mut env = otel_env(receiver);
    env.push(("TRACEPARENT", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")));
    env.push(("OUTBOARD_RUNTIME_DIR", "/tmp".to_owned()));
    let context = r#"{"env": {"PATH": "/bin"}, "command": ["true"]}"#;
    let mut all = vec!["invoke", "pre_container", "--context", context];
    all.extend(args);
    let out = outboard(&all, env).await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
}

/// Checks that the one dispatch is the caller's span's child, and each
/// call the dispatch's.
async fn check_dispatch_under_caller(receiver: &Receiver) {
    let spans = receiver
        .wait_for(
            |spans| spans.iter().filter(|s| s.name == "outboard.invoke").count() == 2,
            ARRIVAL,
        )
        .await;
    let all = otlp::render(&spans);
    let dispatch = one(&spans, "dispatch", |s| s.name == "outboard.dispatch");
    assert_eq!(dispatch.trace_id, CALLER_TRACE, "{all}");
    assert_eq!(
        dispatch.parent_span_id.as_deref(),
        Some(CALLER_SPAN),
        "{all}"
    );
    for call in spans.iter().filter(|s| s.name == "outboard.invoke") {
        assert_eq!(
            call.parent_span_id.as_deref(),
            Some(&*dispatch.span_id),
            "{all}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_daemon_hands_its_callers_traceparent_to_the_daemons_dispatch() {
    let receiver = Receiver::start().await;
    let daemon = traced_daemon(&receiver);
    let socket = daemon.socket().display().to_string();
    invoke_under_caller(&receiver, &["--daemon", "--control-socket", &socket]).await;
    tokio::task::block_in_place(|| daemon.stop());
    check_dispatch_under_caller(&receiver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_makes_its_dispatch_a_child_of_its_callers_traceparent() {
    let receiver = Receiver::start().await;
    let setup = Setup::new();
    invoke_under_caller(&receiver, &["--config", &setup.config]).await;
    check_dispatch_under_caller(&receiver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_the_hosts_sampler_drops_is_dropped_by_its_plugins_too() {
    let receiver = Receiver::start().await;
    let setup = Setup::new();
    let mut env = otel_env(&receiver);
    env.push(("OTEL_TRACES_SAMPLER", "always_off".to_owned()));
    setup.run(env).await;
    // The host and its plugins flush before `outboard run` exits, so
    // whatever they were to send has arrived: nothing. The plugins sample
    // by their parent (see `config`), whose flags say "not sampled".
    let spans = receiver.spans();
    assert!(spans.is_empty(), "{}", otlp::render(&spans));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_name_is_the_operators_and_each_plugin_keeps_its_own() {
    let spans = traced_job(vec![("OTEL_SERVICE_NAME", "ci-host".to_owned())]).await;
    let all = otlp::render(&spans);
    for span in &spans {
        let expected = match span.name.as_str() {
            "outboard.plugin.invoke" => span.attr("outboard.plugin").unwrap(),
            _ => "ci-host",
        };
        assert_eq!(span.service, expected, "{all}");
    }
}
