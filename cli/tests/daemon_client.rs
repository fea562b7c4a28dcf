//! The management commands and `run --daemon` as real `outboard` processes
//! against a small control service of this test on a real Unix socket,
//! answering what the test wrote: for what a real daemon does not do on
//! demand (a ring that dropped lines, hostile text, a refused reload, a
//! daemon dying mid-call). `daemon_cli.rs` drives a real `outboard up`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use outboard_proto::control::v1::control_service_server::{ControlService, ControlServiceServer};
use outboard_proto::control::v1::*;
use outboard_proto::json::struct_to_json;
use serde_json::{Value, json};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

type Answer<T> = Result<Response<T>, Status>;
type Events<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The control service of this test.
#[derive(Default)]
struct Fake {
    /// A phase whose Invoke never answers, and what became of it.
    hang: Option<(&'static str, Arc<Hanging>)>,
    /// Every RecordJob request, in order.
    jobs: Arc<Mutex<Vec<RecordJobRequest>>>,
    /// Every Emit request, in order.
    emitted: Arc<Mutex<Vec<EmitRequest>>>,
}

/// A hanging Invoke: whether it started, whether the caller dropped it.
#[derive(Default)]
struct Hanging {
    started: AtomicBool,
    dropped: AtomicBool,
}

/// Marks the hanging call dropped when the server drops its handler.
struct DropFlag(Arc<Hanging>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

fn duration(ms: u64) -> Option<prost_types::Duration> {
    Some(outboard_daemon::wire::duration_to_proto(
        Duration::from_millis(ms),
    ))
}

fn plugin(name: &str, state: PluginState) -> PluginStatus {
    let running = state == PluginState::Ready;
    PluginStatus {
        name: name.into(),
        version: "0.1.0".into(),
        state: state as i32,
        pid: if running { 4242 } else { 0 },
        uptime: if running { duration(65_000) } else { None },
        restarts: 1,
        phases: vec!["pre_container".into()],
        invocations: Some(InvocationCounts {
            ok: 7,
            failed: 1,
            ..Default::default()
        }),
        latency_p50: duration(2),
        latency_p99: duration(30),
        latency_window: 8,
        rss_bytes: 5 << 20,
        cpu_percent: 0.5,
        ..Default::default()
    }
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("no plugin named {name} runs in this daemon"))
}

/// A stream of `items`, then (with `follow`) open until the caller hangs up.
fn stream<T: Send + 'static>(items: Vec<T>, follow: bool) -> Events<T> {
    let items = tokio_stream::iter(items.into_iter().map(Ok));
    if follow {
        Box::pin(items.chain(tokio_stream::pending()))
    } else {
        Box::pin(items)
    }
}

#[tonic::async_trait]
impl ControlService for Fake {
    type WatchStream = Events<WatchResponse>;
    type GetLogsStream = Events<GetLogsResponse>;

    async fn get_status(&self, request: Request<GetStatusRequest>) -> Answer<GetStatusResponse> {
        let all = vec![
            plugin("alpha", PluginState::Ready),
            plugin("beta", PluginState::Disabled),
        ];
        let wanted = request.into_inner().plugin;
        let plugins: Vec<PluginStatus> = all
            .into_iter()
            .filter(|p| wanted.is_empty() || p.name == wanted)
            .collect();
        if plugins.is_empty() {
            return Err(not_found(&wanted));
        }
        Ok(Response::new(GetStatusResponse {
            daemon: Some(DaemonStatus {
                pid: 99,
                version: "0.1.0".into(),
                config_source: "/etc/outboard.toml".into(),
                control_socket: "/run/outboard/control.sock".into(),
                reloads: 1,
                ..Default::default()
            }),
            plugins,
        }))
    }

    async fn watch(&self, request: Request<WatchRequest>) -> Answer<Self::WatchStream> {
        let event = |event| WatchResponse {
            time: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            event: Some(event),
        };
        use watch_response::Event;
        let events = vec![
            event(Event::PluginStatus(plugin("alpha", PluginState::Ready))),
            event(Event::Dispatch(DispatchEvent {
                phase: "pre_container".into(),
                invocation_id: "inv-1".into(),
                verdict: Some(Verdict {
                    result: Some(verdict::Result::Vetoed(VerdictVetoed {
                        plugin: "alpha".into(),
                        message: "no\u{1b}[2J".into(),
                    })),
                }),
                duration: duration(3),
                entries: vec![EntrySummary {
                    plugin: "alpha".into(),
                    outcome: EntryOutcome::Vetoed as i32,
                    failure: 0,
                    duration: duration(3),
                }],
            })),
            event(Event::Reload(ReloadEvent {
                plan: Some(ReloadPlan {
                    added: vec!["gamma".into()],
                    ..Default::default()
                }),
                error: String::new(),
            })),
            event(Event::Missed(3)),
        ];
        Ok(Response::new(stream(events, request.into_inner().follow)))
    }

    async fn get_logs(&self, request: Request<GetLogsRequest>) -> Answer<Self::GetLogsStream> {
        let request = request.into_inner();
        if request.plugin != "alpha" {
            return Err(not_found(&request.plugin));
        }
        let line = |sequence: u64, message: &str| GetLogsResponse {
            line: Some(LogLine {
                time: Some(prost_types::Timestamp {
                    seconds: 1_800_000_000,
                    nanos: 0,
                }),
                stream: "stderr".into(),
                level: "info".into(),
                message: message.into(),
                fields_json: String::new(),
                sequence,
            }),
        };
        let lines = vec![
            line(1, "starting"),
            line(2, "ready\u{1b}]0;owned\u{7}"),
            line(5, "after the gap"),
        ];
        Ok(Response::new(stream(lines, request.follow)))
    }

    async fn restart_plugin(
        &self,
        request: Request<RestartPluginRequest>,
    ) -> Answer<RestartPluginResponse> {
        let request = request.into_inner();
        let plugins = if request.all {
            vec![
                plugin("alpha", PluginState::Ready),
                plugin("beta", PluginState::Ready),
            ]
        } else if request.plugin == "alpha" {
            vec![plugin("alpha", PluginState::Ready)]
        } else {
            return Err(not_found(&request.plugin));
        };
        Ok(Response::new(RestartPluginResponse { plugins }))
    }

    async fn stop_plugin(&self, request: Request<StopPluginRequest>) -> Answer<StopPluginResponse> {
        let name = request.into_inner().plugin;
        Ok(Response::new(StopPluginResponse {
            plugin: Some(plugin(&name, PluginState::Disabled)),
        }))
    }

    async fn start_plugin(
        &self,
        request: Request<StartPluginRequest>,
    ) -> Answer<StartPluginResponse> {
        let name = request.into_inner().plugin;
        let mut status = plugin(&name, PluginState::Ready);
        if name == "flaky" {
            status = plugin(&name, PluginState::Failed);
            status.last_exit_reason = "exited with status 3".into();
        }
        Ok(Response::new(StartPluginResponse {
            plugin: Some(status),
        }))
    }

    async fn reload(&self, request: Request<ReloadRequest>) -> Answer<ReloadResponse> {
        if !request.into_inner().dry_run {
            return Err(Status::failed_precondition(
                "plugin gamma failed to start: exited with status 1",
            ));
        }
        Ok(Response::new(ReloadResponse {
            plan: Some(ReloadPlan {
                unchanged: vec!["alpha".into()],
                added: vec!["gamma".into()],
                changed: vec![PluginChange {
                    name: "beta".into(),
                    fields: vec!["env".into()],
                }],
                ..Default::default()
            }),
            applied: false,
        }))
    }

    async fn invoke(&self, request: Request<InvokeRequest>) -> Answer<InvokeResponse> {
        let request = request.into_inner();
        if let Some((phase, hanging)) = &self.hang
            && request.phase == *phase
        {
            let _flag = DropFlag(hanging.clone());
            hanging.started.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        let context = request
            .context
            .as_ref()
            .map(struct_to_json)
            .unwrap_or_default();
        // Every other phase passes at once, with no plugin.
        let report = outboard_host::Report {
            phase: request.phase.as_str().into(),
            mode: outboard_host::Mode::Sequential,
            invocation_id: "inv".into(),
            verdict: outboard_host::Verdict::Passed,
            entries: Vec::new(),
            context: Value::Object(context),
            duration: Duration::ZERO,
        };
        Ok(Response::new(InvokeResponse {
            report: Some(outboard_daemon::wire::report_to_proto(&report)),
        }))
    }

    async fn record_job(&self, request: Request<RecordJobRequest>) -> Answer<RecordJobResponse> {
        self.jobs.lock().unwrap().push(request.into_inner());
        Ok(Response::new(RecordJobResponse {}))
    }

    async fn emit(&self, request: Request<EmitRequest>) -> Answer<EmitResponse> {
        let request = request.into_inner();
        if request.name.starts_with("job.") {
            return Err(Status::invalid_argument(
                "name: \"job.x\" starts with \"job.\"",
            ));
        }
        self.emitted.lock().unwrap().push(request);
        Ok(Response::new(EmitResponse {
            event_id: "0b6c3a4e-event".into(),
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Answer<ListDeadLettersResponse> {
        // Two pages of one letter each, to be followed.
        let (id, next) = match request.into_inner().page_token.as_str() {
            "" => ("7", "7"),
            "7" => ("9", ""),
            other => return Err(Status::invalid_argument(format!("page_token: {other:?}"))),
        };
        Ok(Response::new(ListDeadLettersResponse {
            dead_letters: vec![DeadLetter {
                id: id.into(),
                event_id: format!("event-{id}"),
                event: "build.flaky".into(),
                subscriber: "crashy".into(),
                attempts: 3,
                last_error: "crashed: exited with status 101 during the call\nsecond line".into(),
                time: Some(prost_types::Timestamp {
                    seconds: 1_800_000_000,
                    nanos: 0,
                }),
            }],
            next_page_token: next.into(),
        }))
    }

    async fn retry_dead_letter(
        &self,
        request: Request<RetryDeadLetterRequest>,
    ) -> Answer<RetryDeadLetterResponse> {
        use retry_dead_letter_request::Target;
        let retried = match request.into_inner().target {
            Some(Target::Id(id)) if id == "7" => 1,
            Some(Target::Id(id)) => return Err(Status::not_found(format!("no dead letter {id}"))),
            Some(Target::All(true)) => 2,
            _ => return Err(Status::invalid_argument("target")),
        };
        Ok(Response::new(RetryDeadLetterResponse { retried }))
    }
}

/// Serves `fake` on `socket` until the runtime ends.
fn serve(fake: Fake, socket: &Path) {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ControlServiceServer::new(fake))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await
            .unwrap();
    });
}

/// Runs `outboard args` on a thread (the test's runtime keeps serving).
async fn outboard_on(socket: &Path, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_outboard"));
    command
        .args(args)
        .env("OUTBOARD_CONTROL_SOCKET", socket)
        .env("OUTBOARD_RUNTIME_DIR", "/tmp")
        .env_remove("OUTBOARD_PLUGIN_DIR");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `args` name a plugin the daemon does not have: its NOT_FOUND message,
/// status 1.
async fn refused_naming_ghost(socket: &Path, args: &[&str]) {
    let out = outboard_on(socket, args).await;
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    assert_eq!(
        stderr(&out),
        "outboard: no plugin named ghost runs in this daemon\n",
        "{args:?}"
    );
    assert!(out.stdout.is_empty());
}

fn canned(sandbox: &Sandbox) -> PathBuf {
    let socket = sandbox.path().join("control.sock");
    serve(Fake::default(), &socket);
    socket
}

#[test]
fn with_no_daemon_every_client_command_says_how_to_start_one() {
    let sandbox = Sandbox::new();
    let socket = sandbox.path().join("none.sock");
    let socket = socket.to_str().unwrap();
    let expected = format!(
        "outboard: no outboard daemon is listening on {socket}; start one with `outboard up \
         --config FILE` (or point --control-socket / OUTBOARD_CONTROL_SOCKET at a running one)\n"
    );
    for args in [
        vec!["status", "--control-socket", socket],
        vec!["logs", "alpha", "--control-socket", socket],
        vec!["restart", "--all", "--control-socket", socket],
        vec!["reload", "--control-socket", socket],
        vec!["events", "--control-socket", socket],
        vec![
            "invoke",
            "pre_container",
            "--daemon",
            "--control-socket",
            socket,
        ],
    ] {
        let out = outboard(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), expected, "{args:?}");
        assert!(out.stdout.is_empty());
    }
    // The variable names the socket as well as the flag; `run` exits as a
    // host error does.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["run", "--daemon", "--", "true"])
        .env("OUTBOARD_CONTROL_SOCKET", socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(stderr(&out), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_every_plugin_as_a_table_and_as_json() {
    let sandbox = Sandbox::new();
    let socket = canned(&sandbox);
    let out = outboard_on(&socket, &["status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("outboard daemon 0.1.0 (pid 99)"), "{text}");
    assert!(
        text.contains("alpha  0.1.0    ready     4242  1m05s   1         7 ok, 1 failed  2.0ms  30.0ms  5.0MiB  0.5   pre_container"),
        "{text}"
    );
    assert!(text.contains("beta   0.1.0    disabled  -"), "{text}");

    let out = outboard_on(&socket, &["status", "alpha", "--json"]).await;
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["daemon"]["pid"], 99);
    assert_eq!(doc["plugins"].as_array().unwrap().len(), 1);
    assert_eq!(doc["plugins"][0]["state"], "ready");
    assert_eq!(doc["plugins"][0]["invocations"]["failed"], 1);
    assert_eq!(doc["plugins"][0]["uptime_ms"], 65_000);

    refused_naming_ghost(&socket, &["status", "ghost"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_draws_again_on_each_change() {
    let sandbox = Sandbox::new();
    let socket = canned(&sandbox);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["status", "--watch", "--json"])
        .env("OUTBOARD_CONTROL_SOCKET", &socket)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    // The first draw, then at least one more for the events that follow.
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a draw within 10 s")
            .unwrap()
            .expect("a line");
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["plugins"][0]["name"], "alpha");
    }
    sigterm(child.id().unwrap());
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(130));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_mark_the_gap_and_escape_what_the_plugin_wrote() {
    let sandbox = Sandbox::new();
    let socket = canned(&sandbox);
    let out = outboard_on(&socket, &["logs", "alpha", "-n", "10"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "2027-01-15T08:00:00.000Z stderr info  starting\n\
         2027-01-15T08:00:00.000Z stderr info  ready\\u{1b}]0;owned\\u{7}\n\
         … 2 lines dropped\n\
         2027-01-15T08:00:00.000Z stderr info  after the gap\n"
    );
    let out = outboard_on(&socket, &["logs", "alpha", "--json"]).await;
    let docs: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs[2], json!({"dropped": 2}));
    assert_eq!(docs[1]["message"], "ready\u{1b}]0;owned\u{7}");

    refused_naming_ghost(&socket, &["logs", "ghost"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_stop_and_start_print_the_resulting_states() {
    let sandbox = Sandbox::new();
    let socket = canned(&sandbox);
    let out = outboard_on(&socket, &["restart", "alpha"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("alpha  0.1.0    ready"),
        "{}",
        stdout(&out)
    );

    let out = outboard_on(&socket, &["restart", "--all", "--json"]).await;
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<&Value> = doc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["state"])
        .collect();
    assert_eq!(states, [&json!("ready"), &json!("ready")]);

    let out = outboard_on(&socket, &["stop", "beta", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["plugins"][0]["state"], "disabled");

    let out = outboard_on(&socket, &["start", "beta"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A plugin that does not come up: its state and why, and status 1.
    let out = outboard_on(&socket, &["start", "flaky"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("flaky: last exit: exited with status 3"));
    assert_eq!(stderr(&out), "outboard: flaky is failed (wanted ready)\n");

    refused_naming_ghost(&socket, &["restart", "ghost"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_prints_the_plan_or_the_daemons_error() {
    let sandbox = Sandbox::new();
    let socket = canned(&sandbox);
    let out = outboard_on(&socket, &["reload", "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "reload plan (dry run: nothing changed):\n\
         \x20 added:          gamma\n\
         \x20 changed:        beta (env)\n\
         \x20 unchanged:      alpha\n"
    );
    let out = outboard_on(&socket, &["reload"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "outboard: plugin gamma failed to start: exited \
         with status 1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_one_line_each() {
    let sandbox = Sandbox::new();
    let socket = canned(&sandbox);
    let out = outboard_on(&socket, &["events"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0],
        "2027-01-15T08:00:00.000Z plugin alpha ready pid 4242"
    );
    assert!(
        lines[1].starts_with(
            "2027-01-15T08:00:00.000Z dispatch pre_container vetoed by alpha: no\\u{1b}[2J in 3.0 ms [alpha=vetoed]"
        ),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2],
        "2027-01-15T08:00:00.000Z reload applied: added: gamma"
    );
    assert_eq!(
        lines[3],
        "2027-01-15T08:00:00.000Z … 3 events missed (this watcher fell behind)"
    );
    let out = outboard_on(&socket, &["events", "--json"]).await;
    let types: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types, ["plugin", "dispatch", "reload", "missed"]);
}

/// `run --daemon` with pre_validation hanging on a fake daemon of its own
/// runtime; returns the job, the hanging call, and the runtime (dropping
/// it is the daemon dying).
fn job_on_hanging_daemon(
    sandbox: &Sandbox,
) -> (std::process::Child, Arc<Hanging>, tokio::runtime::Runtime) {
    let socket = sandbox.path().join("control.sock");
    let hanging = Arc::new(Hanging::default());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = Fake {
        hang: Some(("pre_validation", hanging.clone())),
        ..Fake::default()
    };
    runtime.block_on(async { serve(fake, &socket) });
    let job = std::process::Command::new(env!("CARGO_BIN_EXE_outboard"))
        .args(["run", "--daemon", "--", "true"])
        .env("OUTBOARD_CONTROL_SOCKET", &socket)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || hanging
            .started
            .load(Ordering::SeqCst)),
        "the job's first phase reached the daemon"
    );
    (job, hanging, runtime)
}

/// The job's exit status and stderr, within `timeout`.
fn finished(mut job: std::process::Child, timeout: Duration) -> (Option<i32>, String) {
    let done = wait_until(timeout, || job.try_wait().unwrap().is_some());
    if !done {
        job.kill().unwrap();
    }
    let out = job.wait_with_output().unwrap();
    assert!(done, "the job hung: {}", stderr(&out));
    (out.status.code(), stderr(&out))
}

#[test]
fn a_daemon_that_dies_mid_job_fails_the_phase_and_the_job_ends() {
    let sandbox = Sandbox::new();
    let (job, _hanging, daemon) = job_on_hanging_daemon(&sandbox);
    daemon.shutdown_background();
    let (code, stderr) = finished(job, Duration::from_secs(10));
    assert_eq!(code, Some(122), "{stderr}");
    assert!(
        stderr.contains("phase pre_validation could not run on the daemon: the connection to the outboard daemon"),
        "{stderr}"
    );
}

#[test]
fn a_signal_cancels_the_phase_in_flight_on_the_daemon() {
    let sandbox = Sandbox::new();
    let (job, hanging, _daemon) = job_on_hanging_daemon(&sandbox);
    sigterm(job.id());
    let (code, stderr) = finished(job, Duration::from_secs(10));
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        wait_until(Duration::from_secs(5), || hanging
            .dropped
            .load(Ordering::SeqCst)),
        "the daemon saw the call cancelled"
    );
}

/// `run --daemon` tells the daemon how its job ended, once it is over:
/// succeeded, or the kind of the failure, with the job's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_run_through_the_daemon_records_its_result_there() {
    let sandbox = Sandbox::new();
    let socket = sandbox.path().join("control.sock");
    let fake = Fake::default();
    let jobs = fake.jobs.clone();
    serve(fake, &socket);
    let ok = outboard_on(&socket, &["run", "--daemon", "--json", "--", "true"]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let failed = outboard_on(&socket, &["run", "--daemon", "--", "sh", "-c", "exit 3"]).await;
    assert_eq!(failed.status.code(), Some(3), "{}", stderr(&failed));

    let recorded = jobs.lock().unwrap().clone();
    let results: Vec<i32> = recorded.iter().map(|r| r.result).collect();
    assert_eq!(
        results,
        [JobResult::Succeeded as i32, JobResult::ExitCode as i32]
    );
    let report: Value = serde_json::from_str(&stdout(&ok)).unwrap();
    assert_eq!(json!(recorded[0].job_id), report["job_id"]);
}

/// `events --dead` follows the pages into one table (errors on one line),
/// or JSON lines; `--retry` puts back one or all; `emit` sends the name and
/// the payload and prints the id; the daemon's refusals are said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_retry_and_emit_go_to_the_daemon() {
    let sandbox = Sandbox::new();
    let socket = sandbox.path().join("control.sock");
    let fake = Fake::default();
    let emitted = fake.emitted.clone();
    serve(fake, &socket);

    let out = outboard_on(&socket, &["events", "--dead"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("ID  EVENT        SUBSCRIBER  ATTEMPTS  TIME"),
        "{text}"
    );
    assert!(
        lines[1]
            .starts_with("7   build.flaky  crashy      3         2027-01-15T08:00:00Z  event-7"),
        "{text}"
    );
    assert!(lines[1].ends_with("during the call"), "{text}");
    let out = outboard_on(&socket, &["events", "--dead", "--json"]).await;
    let ids: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone())
        .collect();
    assert_eq!(ids, [json!("7"), json!("9")]);

    let one = outboard_on(&socket, &["events", "--retry", "7"]).await;
    assert_eq!(
        stdout(&one),
        "1 dead letter put back for delivery\n",
        "{}",
        stderr(&one)
    );
    let all = outboard_on(&socket, &["events", "--retry", "--all"]).await;
    assert_eq!(
        stdout(&all),
        "2 dead letters put back for delivery\n",
        "{}",
        stderr(&all)
    );
    let missing = outboard_on(&socket, &["events", "--retry", "8"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no dead letter 8"),
        "{}",
        stderr(&missing)
    );
    let neither = outboard_on(&socket, &["events", "--retry"]).await;
    assert!(stderr(&neither).contains("--all"), "{}", stderr(&neither));

    let out = outboard_on(
        &socket,
        &["emit", "deploy.done", "--data", r#"{"env":"prod"}"#],
    )
    .await;
    assert_eq!(stdout(&out), "0b6c3a4e-event\n", "{}", stderr(&out));
    let sent = emitted.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].name, "deploy.done");
    let payload = outboard_proto::json::value_to_json(sent[0].payload.as_ref().unwrap());
    assert_eq!(payload, json!({"env": "prod"}));
    let refused = outboard_on(&socket, &["emit", "job.x"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("job."), "{}", stderr(&refused));
    let bad = outboard_on(&socket, &["emit", "x", "--data", "{nope"]).await;
    assert!(stderr(&bad).contains("is not JSON"), "{}", stderr(&bad));
}
