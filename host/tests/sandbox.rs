//! The sandbox's walls around real plugin processes: the stress plugin
//! pushes against each (`STRESS_AT_START`), and the kernel holds. A test
//! whose mechanism this machine lacks says so and returns; the detection
//! it relies on is `outboard_host::sandbox::offers()`.

use std::collections::BTreeMap;
use std::time::Duration;

use outboard_host::config::{Network, SandboxSpec};
use outboard_host::launch::{Exit, Launch, PluginProcess};
use outboard_host::sandbox;
use tokio::io::AsyncReadExt;

/// How long a plugin has to hit its wall and exit.
const WITHIN: Duration = Duration::from_secs(60);

/// A launch of the stress plugin pushing against `at_start`.
fn stress(at_start: &str, sandbox: SandboxSpec) -> Launch {
    Launch {
        env: BTreeMap::from([("STRESS_AT_START".to_owned(), at_start.to_owned())]),
        sandbox,
        ..Launch::new("stress", outboard_test_support::bin("stress"), vec![])
    }
}

/// A launch of `sh -c script`.
fn shell(script: &str, sandbox: SandboxSpec) -> Launch {
    Launch {
        sandbox,
        ..Launch::new("sh", "/bin/sh", vec!["-c".into(), script.into()])
    }
}

/// Runs `launch` to its exit: the exit, stdout, stderr, and whether the
/// kernel killed it for memory.
async fn run(launch: &Launch) -> (Exit, String, String, bool) {
    let (process, mut pipes) = PluginProcess::spawn(launch).await.expect("spawn");
    let (mut out, mut err) = (String::new(), String::new());
    let read = async {
        let (a, b) = tokio::join!(
            pipes.stdout.read_to_string(&mut out),
            pipes.stderr.read_to_string(&mut err)
        );
        a.and(b).expect("read the pipes");
    };
    tokio::time::timeout(WITHIN, read)
        .await
        .expect("the plugin closes its pipes");
    let exit = process
        .exited_within(WITHIN)
        .await
        .expect("the plugin exits");
    (exit, out, err, process.out_of_memory())
}

#[tokio::test]
async fn no_new_privs_always_and_rlimits_as_asked() {
    let spec = SandboxSpec {
        open_files: Some(64),
        core_dumps: Some(false),
        ..SandboxSpec::default()
    };
    let script = "grep NoNewPrivs /proc/self/status; ulimit -n; ulimit -c";
    let (exit, out, _, _) = run(&shell(script, spec)).await;
    assert!(exit.success(), "{exit}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].ends_with('1'), "{out}");
    assert_eq!(&lines[1..], ["64", "0"], "{out}");
    let (_, out, _, _) = run(&shell(
        "grep NoNewPrivs /proc/self/status",
        SandboxSpec::default(),
    ))
    .await;
    assert!(
        out.trim_end().ends_with('1'),
        "no sandbox still sets it: {out}"
    );
}

#[tokio::test]
async fn going_past_the_memory_limit_is_an_out_of_memory_kill() {
    let offers = sandbox::offers();
    if !offers.cgroup_v2_usable() && offers.cgroup_v1("memory").is_none() {
        eprintln!("skipped: this machine offers no writable memory cgroup (see docs/SECURITY.md)");
        return;
    }
    let spec = SandboxSpec {
        memory: Some(64 << 20),
        ..SandboxSpec::default()
    };
    let (exit, _, err, oom) = run(&stress("alloc-mib:512", spec)).await;
    assert_eq!(exit.signal(), Some(libc::SIGKILL), "{exit}: {err}");
    assert!(oom, "the kill is reported as out of memory");
    let (exit, _, err, oom) = run(&stress(
        "alloc-mib:16",
        SandboxSpec {
            memory: Some(64 << 20),
            ..SandboxSpec::default()
        },
    ))
    .await;
    assert!(exit.success() && !oom, "{exit}: {err}");
}

#[tokio::test]
async fn a_fork_bomb_stops_at_the_pids_limit() {
    let offers = sandbox::offers();
    if !offers.cgroup_v2_usable() && offers.cgroup_v1("pids").is_none() {
        eprintln!("skipped: this machine offers no writable pids cgroup (see docs/SECURITY.md)");
        return;
    }
    let spec = SandboxSpec {
        pids: Some(24),
        ..SandboxSpec::default()
    };
    let (exit, _, err, _) = run(&stress("forkbomb", spec)).await;
    assert_eq!(exit.code(), Some(4), "{exit}: {err}");
    let started: u32 = err
        .split("fork bomb stopped after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("stderr says how far it got: {err}"));
    assert!(started < 24, "{started} processes under a limit of 24");
}

#[tokio::test]
async fn network_none_and_loopback_cannot_reach_the_hosts_listener() {
    if !sandbox::offers().network_namespace {
        eprintln!("skipped: this host may not create network namespaces (see docs/SECURITY.md)");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("address");
    let at_start = format!("connect:{addr}");
    let (exit, _, err, _) = run(&stress(&at_start, SandboxSpec::default())).await;
    assert!(exit.success(), "the host network reaches it: {exit}: {err}");
    for network in [Network::None, Network::Loopback] {
        let spec = SandboxSpec {
            network,
            ..SandboxSpec::default()
        };
        let (exit, _, err, _) = run(&stress(&at_start, spec)).await;
        assert_eq!(exit.code(), Some(4), "{network:?}: {exit}: {err}");
        assert!(err.contains("cannot connect"), "{network:?}: {err}");
    }
}

/// Read in the plugin's namespace: `lo` lists `::1` there once it is up
/// (addresses are assigned when an interface comes up), and
/// `/proc/net/dev` lists the namespace's interfaces.
const LO_STATE: &str = "grep -c ' lo$' /proc/net/if_inet6; grep -c ':' /proc/net/dev";

#[tokio::test]
async fn loopback_has_lo_up_and_none_has_it_down() {
    if !sandbox::offers().network_namespace {
        eprintln!("skipped: this host may not create network namespaces (see docs/SECURITY.md)");
        return;
    }
    let host_lo = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    if !host_lo.lines().any(|l| l.ends_with(" lo")) {
        eprintln!(
            "skipped: IPv6 is off here, so lo's state cannot be read from /proc/net/if_inet6"
        );
        return;
    }
    for (network, up) in [(Network::Loopback, "1"), (Network::None, "0")] {
        let spec = SandboxSpec {
            network,
            ..SandboxSpec::default()
        };
        let (_, out, err, _) = run(&shell(LO_STATE, spec)).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [up, "1"],
            "{network:?}: lo's addresses, then the interfaces: {err}"
        );
    }
}
