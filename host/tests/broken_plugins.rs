//! Real subprocess plugins, each broken in one way, each giving its own clear
//! error while the host stays sound: nothing left running, no runtime
//! directory or socket left behind.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Sandbox;
use outboard_host::launch::{ProcStat, group_members};
use outboard_host::{CallError, ErrorKind};
use outboard_host::{Plugin, Reply, StopMethod};

async fn start_err(sandbox: &Sandbox, mode: &str) -> outboard_host::Error {
    match Plugin::start(&sandbox.broken(mode)).await {
        Ok(p) => {
            p.stop().await;
            panic!("{mode}: started, but should have failed");
        }
        Err(err) => err,
    }
}

#[tokio::test]
async fn a_correct_plugin_starts_answers_and_stops_cleanly() {
    let sandbox = Sandbox::new();
    let plugin = Plugin::start(&sandbox.broken("ok")).await.expect("starts");
    assert_eq!(plugin.manifest().name, "broken-ok");
    assert_eq!(plugin.manifest().subscriptions[0].phase, "test");
    assert!(
        plugin.runtime_dir().starts_with(sandbox.path()),
        "the runtime directory must be in the test's sandbox"
    );
    let socket = plugin.runtime_dir().join("plugin.sock");
    assert!(socket.exists());
    let reply = plugin
        .invoke(
            "test",
            "inv-1",
            1,
            Default::default(),
            Duration::from_secs(2),
        )
        .await
        .expect("invoke");
    assert!(matches!(reply, Reply::Continue { .. }), "{reply:?}");
    let pid = plugin.pid();
    let stopped = plugin.stop().await;
    assert_eq!(stopped.method, StopMethod::Shutdown);
    assert_eq!(stopped.exit, "status 0");
    assert!(group_members(pid).is_empty());
    sandbox.assert_empty();
}

#[tokio::test]
async fn exit_before_handshake_reports_status_and_last_stderr_lines() {
    let sandbox = Sandbox::new();
    let err = start_err(&sandbox, "exit-early").await;
    assert_eq!(err.plugin, "broken-exit-early");
    let ErrorKind::ExitedBeforeHandshake { status, stderr } = &err.kind else {
        panic!("wrong error: {err}");
    };
    assert_eq!(status, "status 3");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("fatal: cannot open /nonexistent/broken.toml")),
        "{stderr:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("plugin broken-exit-early: exited with status 3 before the handshake; last stderr lines:"), "{text}");
    sandbox.assert_empty();
}

#[tokio::test]
async fn no_handshake_times_out_and_the_plugin_is_killed() {
    let sandbox = Sandbox::new();
    let mut spec = sandbox.broken("silent");
    spec.handshake_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = Plugin::start(&spec).await.expect_err("times out");
    assert!(
        matches!(err.kind, ErrorKind::HandshakeTimeout { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("printed no handshake line within 300ms"),
        "{err}"
    );
    // Bounded by the timeout, not by the plugin: well under the 5 s default.
    assert!(started.elapsed() < Duration::from_secs(4));
    sandbox.assert_empty();
}

#[tokio::test]
async fn junk_lines_before_a_valid_handshake_are_tolerated() {
    let sandbox = Sandbox::new();
    let plugin = Plugin::start(&sandbox.broken("junk-then-ok"))
        .await
        .expect("starts despite junk");
    assert_eq!(plugin.manifest().name, "broken-junk-then-ok");
    plugin.stop().await;
    sandbox.assert_empty();
}

#[tokio::test]
async fn wrong_protocol_version_names_both_versions() {
    let sandbox = Sandbox::new();
    let err = start_err(&sandbox, "wrong-version").await;
    assert!(
        matches!(&err.kind, ErrorKind::UnsupportedVersion { plugin: 99, host } if host == &[1]),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "plugin broken-wrong-version: chose protocol version 99 in its handshake, but the host speaks only [1]"
    );
    sandbox.assert_empty();
}

#[tokio::test]
async fn malformed_handshake_is_quoted() {
    let sandbox = Sandbox::new();
    let err = start_err(&sandbox, "malformed").await;
    let ErrorKind::MalformedHandshake { line, .. } = &err.kind else {
        panic!("wrong error: {err}");
    };
    assert_eq!(line, "outboard|1|unix");
    assert!(err.to_string().contains("\"outboard|1|unix\""), "{err}");
    sandbox.assert_empty();
}

#[tokio::test]
async fn invalid_manifest_names_each_bad_field() {
    let sandbox = Sandbox::new();
    let err = start_err(&sandbox, "bad-manifest").await;
    assert!(matches!(err.kind, ErrorKind::InvalidManifest(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("plugin broken-bad-manifest: invalid manifest:"),
        "{text}"
    );
    assert!(
        text.contains("version") && text.contains("\"not-a-version\""),
        "{text}"
    );
    assert!(
        text.contains("subscriptions[0].phase") && text.contains("\"Pre Container!\""),
        "{text}"
    );
    sandbox.assert_empty();
}

#[tokio::test]
async fn calls_without_or_with_a_wrong_token_are_rejected() {
    use hyper_util::rt::TokioIo;
    use outboard_proto::v1::DescribeRequest;
    use outboard_proto::v1::plugin_service_client::PluginServiceClient;
    use tonic::transport::Endpoint;

    let sandbox = Sandbox::new();
    let plugin = Plugin::start(&sandbox.broken("ok")).await.expect("starts");
    let socket = plugin.runtime_dir().join("plugin.sock");
    let channel = Endpoint::from_static("http://plugin")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("connect");
    let mut client = PluginServiceClient::new(channel);

    let status = client
        .describe(DescribeRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let mut forged = tonic::Request::new(DescribeRequest::default());
    forged
        .metadata_mut()
        .insert("authorization", "Bearer 0000".parse().expect("ascii"));
    let status = client.describe(forged).await.expect_err("wrong token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    plugin.stop().await;
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_forked_grandchild_goes_with_the_plugin() {
    let sandbox = Sandbox::new();
    let plugin = Plugin::start(&sandbox.broken("forks-grandchild"))
        .await
        .expect("starts");
    let pgid = plugin.pid();
    let members = group_members(pgid);
    assert!(
        members.len() >= 2,
        "plugin and grandchild expected in group {pgid}: {members:?}"
    );
    let grandchild = members
        .into_iter()
        .find(|&p| p != pgid)
        .expect("a grandchild");
    plugin.stop().await;
    assert!(
        group_members(pgid).is_empty(),
        "left in the group: {:?}",
        group_members(pgid)
    );
    assert!(
        ProcStat::read(grandchild).is_none(),
        "grandchild {grandchild} still exists (zombie or alive)"
    );
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_plugin_that_ignores_shutdown_and_sigterm_is_killed() {
    let sandbox = Sandbox::new();
    let mut spec = sandbox.broken("ignores-sigterm");
    spec.stop_grace = Duration::from_millis(200);
    let plugin = Plugin::start(&spec).await.expect("starts");
    let pid = plugin.pid();
    let stopped = plugin.stop().await;
    assert_eq!(stopped.method, StopMethod::Killed);
    assert_eq!(stopped.exit, "signal 9 (SIGKILL)");
    assert!(group_members(pid).is_empty());
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_crash_during_a_call_is_reported_at_once() {
    let sandbox = Sandbox::new();
    let plugin = Plugin::start(&sandbox.broken("crash-on-invoke"))
        .await
        .expect("starts");
    let started = Instant::now();
    let err = plugin
        .invoke(
            "test",
            "inv-1",
            1,
            Default::default(),
            Duration::from_secs(30),
        )
        .await
        .expect_err("crashes");
    // Reported when the process died, not when the 30 s timeout ran out.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let CallError::Crashed { status, stderr } = &err else {
        panic!("wrong error: {err}");
    };
    assert_eq!(status, "status 101");
    assert!(
        stderr.iter().any(|l| l.contains("crashing on purpose")),
        "{stderr:?}"
    );
    let stopped = plugin.stop().await;
    assert_eq!(stopped.method, StopMethod::AlreadyExited);
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_hanging_call_is_cut_off_at_its_deadline() {
    let sandbox = Sandbox::new();
    let plugin = Plugin::start(&sandbox.broken("hang-invoke"))
        .await
        .expect("starts");
    let err = plugin
        .invoke(
            "test",
            "inv-1",
            1,
            Default::default(),
            Duration::from_millis(200),
        )
        .await
        .expect_err("times out");
    assert_eq!(err, CallError::Timeout(Duration::from_millis(200)));
    plugin.stop().await;
    sandbox.assert_empty();
}

/// Log output captured from the test's own thread.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_zero_stop_grace_stops_a_prompt_plugin_without_a_warning() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread runtime: every task of the stop logs here.
    let _logs = tracing::subscriber::set_default(subscriber);
    let sandbox = Sandbox::new();
    let mut spec = sandbox.broken("ok");
    spec.stop_grace = Duration::ZERO;
    let plugin = Plugin::start(&spec).await.expect("starts");
    let stopped = plugin.stop().await;
    assert_eq!(stopped.method, StopMethod::Terminated);
    let text = logs.text();
    assert!(
        !text.contains("WARN"),
        "warnings for a chosen 0s grace: {text}"
    );
    sandbox.assert_empty();
}

#[tokio::test]
async fn a_socket_replaced_at_the_path_is_refused_and_sent_nothing() {
    use tokio::io::AsyncReadExt;

    let sandbox = Sandbox::new();
    let plugin = Plugin::start(&sandbox.broken("drops-connection"))
        .await
        .expect("starts");
    let socket = plugin.runtime_dir().join("plugin.sock");
    let invoke = |timeout| plugin.invoke("test", "inv-1", 1, Default::default(), timeout);
    invoke(Duration::from_secs(2))
        .await
        .expect("the first call is answered");
    // The plugin, still alive, stops serving and removes its socket.
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() {
        assert!(Instant::now() < deadline, "the plugin kept its socket");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // An impostor takes the path and records all it is sent.
    let impostor = tokio::net::UnixListener::bind(&socket).expect("bind the impostor");
    let received = std::sync::Arc::new(std::sync::Mutex::new((0usize, Vec::<u8>::new())));
    let recorder = {
        let received = received.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = impostor.accept().await {
                received.lock().unwrap().0 += 1;
                let mut bytes = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut bytes).await {
                    received.lock().unwrap().1.extend_from_slice(&bytes[..n]);
                }
            }
        })
    };
    // A call that races the old connection's close may be sent into it and
    // time out there; the next one dials again.
    let err = loop {
        match invoke(Duration::from_millis(300)).await {
            Err(CallError::Timeout(_)) if Instant::now() < deadline => continue,
            other => break other.expect_err("refused"),
        }
    };
    let CallError::PeerRefused(message) = &err else {
        panic!(
            "wrong error: {err}; the impostor got {:?}",
            received.lock().unwrap()
        );
    };
    assert!(
        message.contains(&socket.display().to_string())
            && message.contains("no longer the socket the plugin bound"),
        "{message}"
    );
    let named = outboard_host::Error::new(plugin.name(), err.clone()).to_string();
    assert!(
        named.starts_with("plugin broken-drops-connection: refused to reconnect to "),
        "{named}"
    );
    // A health check is refused the same way, without a dial.
    assert!(plugin.check_health(Duration::from_secs(2)).await.is_err());
    recorder.abort();
    let (connections, bytes) = received.lock().unwrap().clone();
    assert_eq!(
        (connections, bytes.len()),
        (0, 0),
        "the impostor was dialed or sent {bytes:?}"
    );
    plugin.stop().await;
    sandbox.assert_empty();
}

/// The pipe inodes `pid`'s stdout and stderr lead to.
fn pipes_of(pid: u32) -> Vec<String> {
    [1, 2]
        .iter()
        .filter_map(|fd| std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok())
        .map(|link| link.display().to_string())
        .filter(|link| link.starts_with("pipe:"))
        .collect()
}

/// This process's descriptors that lead to any of `pipes`.
fn our_fds_on(pipes: &[String]) -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|link| link.display().to_string())
        .filter(|link| pipes.contains(link))
        .collect()
}

#[tokio::test]
async fn an_escaped_child_holds_no_pipe_of_the_host_and_leaves_no_zombie() {
    let sandbox = Sandbox::new();
    let mut helpers = Vec::new();
    let mut pipes = Vec::new();
    for _ in 0..3 {
        let plugin = Plugin::start(&sandbox.broken("escapes-group"))
            .await
            .expect("starts");
        let helper: u32 = plugin
            .manifest()
            .description
            .rsplit("helper_pid=")
            .next()
            .and_then(|pid| pid.parse().ok())
            .expect("the helper's pid");
        helpers.push(helper);
        pipes.extend(pipes_of(helper));
        plugin.stop().await;
        // The helper left the plugin's group: it outlives the stop.
        assert!(ProcStat::read(helper).is_some_and(|s| !s.zombie));
    }
    assert_eq!(pipes.len(), 6, "each helper holds stdout and stderr");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = our_fds_on(&pipes);
    while !held.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        held = our_fds_on(&pipes);
    }
    for &helper in &helpers {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(helper as i32, libc::SIGKILL) };
    }
    assert!(held.is_empty(), "still open in the host: {held:?}");
    // Re-parented to the host (a child subreaper) when their plugin died,
    // the helpers are reaped once they die: no zombie stays.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left: Vec<u32> = helpers.clone();
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left.retain(|&pid| ProcStat::read(pid).is_some());
    }
    assert!(left.is_empty(), "helpers left as zombies: {left:?}");
    sandbox.assert_empty();
}

/// Sets this process's soft limit on open descriptors.
fn set_nofile(limit: u64) {
    let mut rlim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlim);
        rlim.rlim_cur = limit.min(rlim.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &rlim);
    }
}

/// The highest descriptor number this process has open.
fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or(2)
}

/// Runs in a child process of its own (the descriptor limit is the whole
/// process's): every start under a limit from "none left" upwards either
/// succeeds or fails leaving no runtime directory behind.
#[test]
fn a_start_that_runs_out_of_descriptors_leaves_no_runtime_directory() {
    const CHILD: &str = "OUTBOARD_TEST_EMFILE_CHILD";
    const NAME: &str = "a_start_that_runs_out_of_descriptors_leaves_no_runtime_directory";
    if std::env::var_os(CHILD).is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
            .env(CHILD, "1")
            .status()
            .unwrap();
        assert!(status.success(), "the child run failed: {status}");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sandbox = Sandbox::new();
    let spec = sandbox.broken("ok");
    // Warm up what is made once (the spawner thread, the SIGCHLD pipe).
    runtime.block_on(async { Plugin::start(&spec).await.unwrap().stop().await });
    let original = {
        let mut rlim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit with a valid struct.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlim) };
        rlim.rlim_cur
    };
    let mut failures = 0;
    for spare in 0..24 {
        set_nofile(highest_fd() + 64);
        // Fill every free number below the limit, then free `spare` of them.
        let mut filler = Vec::new();
        while let Ok(file) = std::fs::File::open("/dev/null") {
            filler.push(file);
        }
        filler.truncate(filler.len().saturating_sub(spare));
        let started = runtime.block_on(Plugin::start(&spec));
        drop(filler);
        set_nofile(original);
        match started {
            Ok(plugin) => {
                runtime.block_on(plugin.stop());
            }
            Err(err) => {
                failures += 1;
                eprintln!("with {spare} spare descriptors: {err}");
            }
        }
        sandbox.assert_empty();
    }
    assert!(failures > 0, "no start ran out of descriptors");
}
