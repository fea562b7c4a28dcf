//! `outboard up` as the daemon, a real process: SIGTERM with calls in
//! flight drains them, SIGHUP reloads (or says why not and changes
//! nothing), a second daemon on the socket is refused naming the first's
//! pid, and a stale socket left by a killed daemon is replaced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Lines, Sandbox, bin};
use hyper_util::rt::TokioIo;
use outboard_proto::control::v1 as wire;
use outboard_proto::control::v1::control_service_client::ControlServiceClient;
use tonic::transport::{Channel, Endpoint};

/// A scripted plugin subscribed to `build`, doing `script` when invoked.
fn plugin_toml(name: &str, script: &str) -> String {
    format!(
        "[[plugin]]\nname = \"{name}\"\ncommand = {:?}\nenv = {{ SCRIPTED_SUBSCRIBE = \"build:10\" }}\n\
         config = {script}\ncall_timeout = \"10s\"\nstop_grace = \"1s\"\n",
        bin("scripted-plugin").display().to_string()
    )
}

/// A running `outboard up` over a config file in its own sandbox.
struct Up {
    sandbox: Sandbox,
    config: PathBuf,
    socket: PathBuf,
    child: Child,
    stderr: Lines,
}

impl Up {
    /// Starts `outboard up` over `toml` with `args` and waits until it is
    /// ready.
    fn start(toml: &str, args: &[&str]) -> Up {
        let sandbox = Sandbox::new();
        let config = sandbox.path().join("outboard.toml");
        std::fs::write(&config, toml).expect("write config");
        let socket = sandbox.path().join("ctl/control.sock");
        let mut up = Up::spawn(sandbox, config, socket, args);
        up.stderr
            .expect("outboard: ready:", Duration::from_secs(20));
        up
    }

    fn spawn(sandbox: Sandbox, config: PathBuf, socket: PathBuf, args: &[&str]) -> Up {
        let mut child = outboard_up(&config, &socket, sandbox.path())
            .args(args)
            .spawn()
            .expect("spawn outboard up");
        let stderr = Lines::read(child.stderr.take().expect("stderr"));
        Up {
            sandbox,
            config,
            socket,
            child,
            stderr,
        }
    }

    async fn client(&self) -> ControlServiceClient<Channel> {
        ControlServiceClient::new(channel(&self.socket).await)
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Waits for its exit (bounded); its status and everything it said.
    fn wait(mut self) -> (std::process::ExitStatus, String, Sandbox) {
        let exited = common::wait_until(Duration::from_secs(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = self.child.kill();
        }
        let status = self.child.wait().expect("wait");
        assert!(exited, "outboard up did not exit: {}", self.stderr.rest());
        (status, self.stderr.rest(), self.sandbox)
    }
}

/// `outboard up --config CONFIG --control-socket SOCKET`, runtime
/// directories under `runtime`, stderr piped.
fn outboard_up(config: &Path, socket: &Path, runtime: &Path) -> Command {
    let mut command = common::outboard_command();
    command
        .args(["up", "--config"])
        .arg(config)
        .arg("--control-socket")
        .arg(socket)
        .env("OUTBOARD_RUNTIME_DIR", runtime)
        .env_remove("OUTBOARD_PLUGIN_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// A channel to the control socket at `path`.
async fn channel(path: &Path) -> Channel {
    let path = path.to_owned();
    Endpoint::from_static("http://outboard.control")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect to the control socket")
}

/// Waits (polling, bounded) until the daemon has `count` dispatches in
/// flight.
async fn wait_in_flight(client: &mut ControlServiceClient<Channel>, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client
        .get_status(wire::GetStatusRequest::default())
        .await
        .expect("status")
        .into_inner()
        .daemon
        .expect("daemon")
        .in_flight
        != count
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {count} in flight"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Invokes `build` with an empty context; the report's context.
async fn build(client: &mut ControlServiceClient<Channel>) -> serde_json::Value {
    let response = client
        .invoke(wire::InvokeRequest {
            phase: "build".into(),
            context: None,
        })
        .await
        .expect("invoke")
        .into_inner();
    let report = response.report.expect("report");
    let context = report.context.expect("context");
    serde_json::Value::Object(outboard_proto::json::struct_to_json(&context))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_calls_in_flight_drains_them_then_exits_0_leaving_nothing() {
    let slow = plugin_toml(
        "slow",
        r#"{ build = { sleep_ms = 1500, set = { "/done" = true } } }"#,
    );
    let mut up = Up::start(&slow, &["--drain-timeout", "20s"]);
    let client = up.client().await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { build(&mut client).await })
        })
        .collect();
    let mut probe = client.clone();
    wait_in_flight(&mut probe, 3).await;
    up.signal(libc::SIGTERM);
    up.stderr
        .expect("dispatches in flight (3)", Duration::from_secs(5));
    // New work is refused while the three finish.
    let refused = probe
        .invoke(wire::InvokeRequest {
            phase: "build".into(),
            context: None,
        })
        .await
        .expect_err("refused while draining");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    for call in calls {
        let context = call.await.expect("joined");
        assert_eq!(context["done"], serde_json::json!(true), "{context}");
    }
    let socket = up.socket.clone();
    let (status, stderr, sandbox) = up.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!socket.exists(), "the socket is removed: {stderr}");
    assert!(
        !socket.with_extension("sock.lock").exists(),
        "the lock is removed"
    );
    let left: Vec<_> = std::fs::read_dir(sandbox.path())
        .expect("read")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "outboard.toml" && n != "ctl")
        .collect();
    assert!(left.is_empty(), "runtime directories left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_and_a_broken_one_changes_nothing() {
    let first = plugin_toml("alpha", r#"{ build = { set = { "/a" = 1 } } }"#);
    let mut up = Up::start(&first, &[]);
    let mut client = up.client().await;
    assert_eq!(build(&mut client).await, serde_json::json!({"a": 1}));

    let second = plugin_toml("alpha", r#"{ build = { set = { "/a" = 2 } } }"#)
        + &plugin_toml("beta", r#"{ build = { set = { "/b" = 3 } } }"#);
    std::fs::write(&up.config, &second).expect("write config");
    up.signal(libc::SIGHUP);
    up.stderr.expect(
        "outboard: reload applied: added beta",
        Duration::from_secs(20),
    );
    assert_eq!(
        build(&mut client).await,
        serde_json::json!({"a": 2, "b": 3})
    );

    std::fs::write(&up.config, second + "[[plugin]\n").expect("write config");
    up.signal(libc::SIGHUP);
    up.stderr.expect(
        "outboard: the config cannot be read, nothing changed: ",
        Duration::from_secs(20),
    );
    assert_eq!(
        build(&mut client).await,
        serde_json::json!({"a": 2, "b": 3})
    );
    up.signal(libc::SIGTERM);
    let (status, stderr, _) = up.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("outboard.toml:"),
        "names the file: {stderr}"
    );
}

#[test]
fn a_second_daemon_is_refused_naming_the_pid_and_a_killed_ones_socket_is_replaced() {
    let toml = plugin_toml("alpha", "{}");
    let first = Up::start(&toml, &[]);
    let second = outboard_up(&first.config, &first.socket, first.sandbox.path())
        .output()
        .expect("run a second outboard up");
    let said = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "another outboard daemon (pid {})",
            first.child.id()
        )),
        "{said}"
    );
    assert!(!said.contains("ready"), "it started nothing: {said}");

    // SIGKILL: no graceful exit, the socket stays behind.
    first.signal(libc::SIGKILL);
    let (_, _, sandbox) = first.wait();
    let config = sandbox.path().join("outboard.toml");
    let socket = sandbox.path().join("ctl/control.sock");
    assert!(socket.exists(), "a killed daemon leaves its socket");
    let mut third = Up::spawn(sandbox, config, socket, &[]);
    third
        .stderr
        .expect("replaced the stale control socket", Duration::from_secs(20));
    third
        .stderr
        .expect("outboard: ready:", Duration::from_secs(20));
    third.signal(libc::SIGTERM);
    let (status, stderr, _) = third.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_longer_than_the_drain_timeout_does_not_hold_the_stop() {
    // Longer than `wait` gives the daemon to exit: a stop that waited for
    // the call would be killed there, and the call would have passed.
    let stuck = plugin_toml(
        "stuck",
        r#"{ build = { sleep_ms = 60000, set = { "/done" = true } } }"#,
    );
    let mut up = Up::start(&stuck, &["--drain-timeout", "300ms"]);
    let mut client = up.client().await;
    let call = tokio::spawn({
        let mut client = client.clone();
        async move {
            client
                .invoke(wire::InvokeRequest {
                    phase: "build".into(),
                    context: None,
                })
                .await
        }
    });
    wait_in_flight(&mut client, 1).await;
    up.signal(libc::SIGTERM);
    up.stderr.expect("get up to 300ms", Duration::from_secs(5));
    let (status, stderr, _) = up.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // The call is answered, as failed, or its connection ends: never hangs,
    // and never runs to its end.
    let answered = tokio::time::timeout(Duration::from_secs(5), call).await;
    let finished = match answered.expect("the call in flight hangs").expect("joined") {
        Ok(response) => response.into_inner().report.is_some_and(|r| {
            r.verdict
                .and_then(|v| v.result)
                .is_some_and(|v| matches!(v, wire::verdict::Result::Passed(_)))
        }),
        Err(_) => false,
    };
    assert!(!finished, "the stop waited for the call: {stderr}");
}

#[test]
fn the_daemon_section_sets_the_sockets_group_and_the_drain() {
    use std::os::unix::fs::MetadataExt;

    let toml = "[daemon]\ncontrol_group = \"root\"\ndrain_timeout = \"7s\"\n".to_owned()
        + &plugin_toml("alpha", "{}");
    let up = Up::start(&toml, &[]);
    let meta = std::fs::metadata(&up.socket).expect("socket");
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, 0));
    let dir = std::fs::metadata(up.socket.parent().expect("dir")).expect("dir");
    assert_eq!(dir.mode() & 0o777, 0o710);
    up.signal(libc::SIGTERM);
    let (status, stderr, _) = up.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("get up to 7s"), "{stderr}");
}

/// `outboard reload ARGS` against `up`'s socket.
fn reload(up: &Up, args: &[&str]) -> std::process::Output {
    let socket = up.socket.to_str().expect("utf-8 socket path");
    let mut all = vec!["reload", "--control-socket", socket];
    all.extend_from_slice(args);
    common::outboard(&all)
}

#[test]
fn a_failed_reload_says_why_once_also_in_json_and_a_bad_config_names_its_line() {
    let alpha = plugin_toml("alpha", "{}");
    let up = Up::start(&alpha, &[]);
    let flaky = "[[plugin]]\nname = \"flaky\"\ncommand = \"/bin/sh\"\n\
                 args = [\"-c\", \"echo starting up >&2; echo fatal: no config >&2; exit 3\"]\n";
    std::fs::write(&up.config, alpha.clone() + flaky).expect("write config");
    let out = reload(&up, &[]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.starts_with("outboard: reload failed, nothing changed: plugin flaky: "),
        "{said}"
    );
    assert_eq!(said.matches("nothing changed").count(), 1, "{said}");
    assert_eq!(said.matches("fail").count(), 1, "{said}");
    // With --json, stdout says why too.
    let out = reload(&up, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(doc["applied"], serde_json::json!(false), "{doc}");
    let error = doc["error"].as_str().expect("an error");
    assert!(
        error.starts_with("reload failed, nothing changed: plugin flaky: "),
        "{error}"
    );

    let lines = alpha.lines().count();
    std::fs::write(&up.config, alpha + "[[plugin]\n").expect("write config");
    for args in [&[][..], &["--dry-run"][..]] {
        let out = reload(&up, args);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.starts_with("outboard: the config cannot be read, nothing changed: "),
            "{args:?}: {said}"
        );
        assert!(
            said.contains(&format!("outboard.toml:{}:", lines + 1)),
            "{args:?}: {said}"
        );
        assert!(!said.contains("reload"), "{args:?}: {said}");
    }
    up.signal(libc::SIGTERM);
    let (status, stderr, _) = up.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn the_daemons_log_lines_into_a_pipe_have_no_colour_codes() {
    let toml = plugin_toml("alpha", "{}");
    let sandbox = Sandbox::new();
    let config = sandbox.path().join("outboard.toml");
    std::fs::write(&config, toml).expect("write config");
    let socket = sandbox.path().join("ctl/control.sock");
    // -v: the host's info lines too.
    let mut up = Up::spawn(sandbox, config, socket, &["-v"]);
    // One plugin: "stops it".
    up.stderr.expect(
        "SIGINT or SIGTERM stops it, SIGHUP reloads",
        Duration::from_secs(20),
    );
    up.signal(libc::SIGTERM);
    let (status, stderr, _) = up.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(" INFO "), "some log lines: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

/// A SIGHUP while the daemon drains (logrotate, a `systemctl reload` that
/// races a stop) is not a second stop request: the calls in flight still
/// finish and the daemon exits 0, its plugins never killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_while_draining_does_not_kill_the_calls_in_flight() {
    let slow = plugin_toml(
        "slow",
        r#"{ build = { sleep_ms = 1500, set = { "/done" = true } } }"#,
    );
    let mut up = Up::start(&slow, &["--drain-timeout", "20s"]);
    let mut client = up.client().await;
    let call = tokio::spawn({
        let mut client = client.clone();
        async move { build(&mut client).await }
    });
    wait_in_flight(&mut client, 1).await;
    up.signal(libc::SIGTERM);
    up.stderr
        .expect("dispatches in flight (1)", Duration::from_secs(5));
    up.signal(libc::SIGHUP);
    let context = call.await.expect("joined");
    assert_eq!(context["done"], serde_json::json!(true), "{context}");
    let (status, stderr, _) = up.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("killing them"), "{stderr}");
}

/// A daemon that is stopped (SIGSTOP) still accepts connections into its
/// backlog; `outboard status` says it does not answer instead of hanging.
#[test]
fn status_of_a_daemon_that_does_not_answer_fails_with_a_deadline() {
    let up = Up::start(&plugin_toml("alpha", "{}"), &[]);
    up.signal(libc::SIGSTOP);
    let socket = up.socket.to_str().expect("utf-8 socket path");
    let out = common::outboard(&["status", "--control-socket", socket]);
    up.signal(libc::SIGCONT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not answer within 10s"), "{stderr}");
    up.signal(libc::SIGTERM);
    let (status, stderr, _) = up.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}
