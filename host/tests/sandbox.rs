//! The sandbox's walls around real plugin processes: the stress plugin
//! pushes against each (`STRESS_AT_START`), and the kernel holds. A test
//! whose mechanism this machine lacks says so and returns; the detection
//! it relies on is `outboard_host::sandbox::offers()`. Each test names its
//! plugin differently, so that it can check that none of its cgroups is
//! left while other tests run theirs.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use outboard_host::config::{Network, SandboxSpec};
use outboard_host::launch::{Exit, Launch, PluginProcess};
use outboard_host::sandbox;
use outboard_host::{Host, HostConfig, RestartPolicy, State, Verdict};
use tokio::io::AsyncReadExt;

/// How long a plugin has to hit its wall and exit.
const WITHIN: Duration = Duration::from_secs(60);

/// A launch of the stress plugin, known as `name`, pushing against
/// `at_start`.
fn stress(name: &str, at_start: &str, sandbox: SandboxSpec) -> Launch {
    Launch {
        env: BTreeMap::from([("STRESS_AT_START".to_owned(), at_start.to_owned())]),
        sandbox,
        ..Launch::new(name, outboard_test_support::bin("stress"), vec![])
    }
}

/// A launch of `sh -c script`, known as `name`.
fn shell(name: &str, script: &str, sandbox: SandboxSpec) -> Launch {
    Launch {
        sandbox,
        ..Launch::new(name, "/bin/sh", vec!["-c".into(), script.into()])
    }
}

/// What a run of a plugin left: its exit, stdout and stderr.
struct Ran {
    exit: Exit,
    out: String,
    err: String,
}

/// Runs `launch` to its exit, then checks that nothing of it is left: no
/// process of its group, no cgroup of its name.
async fn run(launch: &Launch) -> Ran {
    let (process, mut pipes) = PluginProcess::spawn(launch).await.expect("spawn");
    let (mut out, mut err) = (String::new(), String::new());
    let read = async {
        let (a, b) = tokio::join!(
            pipes.stdout.read_to_string(&mut out),
            pipes.stderr.read_to_string(&mut err)
        );
        a.and(b).expect("read the pipes");
    };
    // The pipes close when the last process holding them is gone: a fork
    // bomb's children hold them until the cgroup's removal kills them, so
    // the exit comes first.
    let exit = process
        .exited_within(WITHIN)
        .await
        .expect("the plugin exits");
    tokio::time::timeout(WITHIN, read)
        .await
        .expect("the plugin's pipes close");
    assert_eq!(
        cgroups_named(&launch.name),
        Vec::<PathBuf>::new(),
        "{}: its cgroups are gone once its exit is known",
        launch.name
    );
    assert!(
        process.group_gone_within(WITHIN).await,
        "{}: nothing of its process group is left",
        launch.name
    );
    Ran { exit, out, err }
}

/// The cgroups of plugin `name` made by this test process that exist.
fn cgroups_named(name: &str) -> Vec<PathBuf> {
    sandbox::cgroups_of(name, std::process::id(), sandbox::offers())
}

#[tokio::test]
async fn no_new_privs_always_and_rlimits_as_asked() {
    let spec = SandboxSpec {
        open_files: Some(64),
        core_dumps: Some(false),
        ..SandboxSpec::default()
    };
    let script = "grep NoNewPrivs /proc/self/status; ulimit -n; ulimit -c";
    let ran = run(&shell("rlimits", script, spec)).await;
    assert!(ran.exit.success(), "{}", ran.exit);
    let lines: Vec<&str> = ran.out.lines().collect();
    assert_eq!(lines.len(), 3, "{}", ran.out);
    assert!(lines[0].ends_with('1'), "{}", ran.out);
    assert_eq!(&lines[1..], ["64", "0"], "{}", ran.out);
    let ran = run(&shell(
        "nnp",
        "grep NoNewPrivs /proc/self/status",
        SandboxSpec::default(),
    ))
    .await;
    assert!(
        ran.out.trim_end().ends_with('1'),
        "no sandbox still sets it: {}",
        ran.out
    );
}

#[tokio::test]
async fn going_past_the_memory_limit_is_an_out_of_memory_kill() {
    let spec = SandboxSpec {
        memory: Some(64 << 20),
        ..SandboxSpec::default()
    };
    let walls = sandbox::plan("oom", &spec, sandbox::offers()).expect("plan");
    if walls[0].mechanism == sandbox::RLIMIT_AS_MECHANISM {
        eprintln!("skipped: this machine offers no writable memory cgroup (see docs/SECURITY.md)");
        return;
    }
    let ran = run(&stress("oom", "alloc-mib:512", spec.clone())).await;
    assert_eq!(
        ran.exit.signal(),
        Some(libc::SIGKILL),
        "{}: {}",
        ran.exit,
        ran.err
    );
    assert_eq!(ran.exit.out_of_memory(), Some(64 << 20), "{}", ran.exit);
    assert_eq!(
        ran.exit.to_string(),
        "signal 9 (SIGKILL), out of memory: the kernel killed it for going over its \
         sandbox.memory limit of 64Mi"
    );
    // Under the limit, the same plugin is left alone.
    let ran = run(&stress("oom-under", "alloc-mib:16", spec)).await;
    assert!(ran.exit.success(), "{}: {}", ran.exit, ran.err);
    assert_eq!(ran.exit.out_of_memory(), None);
}

#[tokio::test]
async fn without_a_memory_cgroup_rlimit_as_refuses_the_allocation() {
    // The fallback, forced: a plan on a machine offering no cgroup.
    let spec = SandboxSpec {
        memory: Some(64 << 20),
        best_effort: false,
        ..SandboxSpec::default()
    };
    let mut offers = sandbox::offers().clone();
    offers.cgroup_v1.clear();
    offers.cgroup_v2 = None;
    let walls = sandbox::plan("as", &spec, &offers).expect("memory has a fallback");
    assert_eq!(walls[0].mechanism, sandbox::RLIMIT_AS_MECHANISM);
    // Built by the same apply as a launch, with those offers.
    let mut cmd = std::process::Command::new(outboard_test_support::bin("stress"));
    cmd.env("STRESS_AT_START", "alloc-mib:512")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let walls = sandbox::apply("as", &spec, &offers, &mut cmd).expect("apply");
    assert!(walls.cgroup.is_none());
    let out = cmd.output().expect("run the stress plugin");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{}: {err}", out.status);
    assert!(err.contains("allocation refused after"), "{err}");
}

#[tokio::test]
async fn a_fork_bomb_stops_at_the_pids_limit() {
    let spec = SandboxSpec {
        pids: Some(24),
        ..SandboxSpec::default()
    };
    if sandbox::plan("forkbomb", &spec, sandbox::offers()).is_err() {
        eprintln!("skipped: this machine offers no writable pids cgroup (see docs/SECURITY.md)");
        return;
    }
    let ran = run(&stress("forkbomb", "forkbomb", spec)).await;
    assert_eq!(ran.exit.code(), Some(4), "{}: {}", ran.exit, ran.err);
    let started: u32 = ran
        .err
        .split("fork bomb stopped after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("stderr says how far it got: {}", ran.err));
    // The plugin itself counts, and its runtime's threads.
    assert!(started < 24, "{started} processes under a limit of 24");
    assert!(started > 0, "some started: {}", ran.err);
}

/// A non-loopback IPv4 address of this machine's, if it has one.
fn non_loopback_address() -> Option<IpAddr> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut addrs) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cursor = addrs;
    while !cursor.is_null() && found.is_none() {
        // SAFETY: a node of the list getifaddrs returned.
        let ifa = unsafe { &*cursor };
        cursor = ifa.ifa_next;
        if ifa.ifa_addr.is_null()
            || ifa.ifa_flags & libc::IFF_UP as u32 == 0
            || ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0
        {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in.
        let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
        found = Some(IpAddr::from(
            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
        ));
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(addrs) };
    found
}

/// Runs the stress plugin connecting to `addr` with `network`: true if it
/// connected, false if the kernel refused (saying why).
async fn connects(name: &str, addr: SocketAddr, network: Network) -> bool {
    let spec = SandboxSpec {
        network,
        ..SandboxSpec::default()
    };
    let ran = run(&stress(name, &format!("connect:{addr}"), spec)).await;
    match ran.exit.code() {
        Some(0) => true,
        Some(4) => {
            assert!(
                ran.err.contains("cannot connect"),
                "{network:?}: {}",
                ran.err
            );
            false
        }
        _ => panic!("{network:?}: {}: {}", ran.exit, ran.err),
    }
}

#[tokio::test]
async fn network_none_cannot_reach_a_loopback_listener() {
    let spec = SandboxSpec {
        network: Network::None,
        ..SandboxSpec::default()
    };
    if sandbox::plan("net-none", &spec, sandbox::offers()).is_err() {
        eprintln!("skipped: this host may not create network namespaces (see docs/SECURITY.md)");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("address");
    assert!(
        connects("net-host", addr, Network::Host).await,
        "the host's network reaches it"
    );
    assert!(!connects("net-none", addr, Network::None).await);
}

#[tokio::test]
async fn network_loopback_cannot_reach_a_non_loopback_address() {
    let spec = SandboxSpec {
        network: Network::Loopback,
        ..SandboxSpec::default()
    };
    if sandbox::plan("net-lo", &spec, sandbox::offers()).is_err() {
        eprintln!("skipped: this host may not create network namespaces (see docs/SECURITY.md)");
        return;
    }
    let Some(ip) = non_loopback_address() else {
        eprintln!("skipped: this machine has no non-loopback IPv4 address up (`ip addr`)");
        return;
    };
    let listener = TcpListener::bind((ip, 0)).expect("listen on the non-loopback address");
    let addr = listener.local_addr().expect("address");
    assert!(
        connects("net-lo-host", addr, Network::Host).await,
        "the host's network reaches {addr}"
    );
    assert!(!connects("net-lo", addr, Network::Loopback).await);
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
    for (name, network, up) in [
        ("lo-up", Network::Loopback, "1"),
        ("lo-down", Network::None, "0"),
    ] {
        let spec = SandboxSpec {
            network,
            ..SandboxSpec::default()
        };
        let ran = run(&shell(name, LO_STATE, spec)).await;
        let lines: Vec<&str> = ran.out.lines().collect();
        assert_eq!(
            lines,
            [up, "1"],
            "{network:?}: lo's addresses, then the interfaces: {}",
            ran.err
        );
    }
}

/// Bit 21 of a `/proc/self/status` capability line: `CAP_SYS_ADMIN`.
fn has_sys_admin(status: &str, line: &str) -> bool {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {line} in {status}"));
    let caps = u64::from_str_radix(hex, 16).expect("hex");
    caps & (1 << 21) != 0
}

#[tokio::test]
async fn a_walled_plugin_that_stays_root_loses_the_capabilities_that_climb_walls() {
    let walled = SandboxSpec {
        network: Network::None,
        ..SandboxSpec::default()
    };
    if !sandbox::offers().root || sandbox::plan("root", &walled, sandbox::offers()).is_err() {
        eprintln!("skipped: needs a root host that can make a network namespace");
        return;
    }
    let script = "grep -E '^Cap(Eff|Bnd|Inh|Amb):' /proc/self/status; \
                  if nsenter --net=/proc/1/ns/net true 2>/dev/null; then echo left; else echo held; fi";
    let ran = run(&shell("root", script, walled)).await;
    assert!(ran.exit.success(), "{}: {}", ran.exit, ran.err);
    assert!(!has_sys_admin(&ran.out, "CapEff:"), "{}", ran.out);
    assert!(!has_sys_admin(&ran.out, "CapBnd:"), "{}", ran.out);
    assert!(ran.out.contains("CapInh:\t0000000000000000"), "{}", ran.out);
    assert!(ran.out.contains("CapAmb:\t0000000000000000"), "{}", ran.out);
    assert!(
        ran.out.trim_end().ends_with("held"),
        "cannot enter the host's network namespace: {}",
        ran.out
    );
    // Without walls a root plugin is root, as before.
    let ran = run(&shell("root", script, SandboxSpec::default())).await;
    assert!(ran.exit.success(), "{}: {}", ran.exit, ran.err);
    assert!(has_sys_admin(&ran.out, "CapEff:"), "{}", ran.out);
}

#[tokio::test]
async fn a_plugin_dropped_to_nobody_runs_as_nobody() {
    let spec = SandboxSpec {
        user: Some("nobody".into()),
        ..SandboxSpec::default()
    };
    let walls = match sandbox::plan("nobody", &spec, sandbox::offers()) {
        Ok(walls) if sandbox::offers().root => walls,
        other => {
            eprintln!("skipped: the test runs as root with a user nobody: {other:?}");
            return;
        }
    };
    let group = walls
        .iter()
        .find(|w| w.setting == "group")
        .expect("a group row");
    let ran = run(&shell(
        "nobody",
        "id -u; id -g; id -G; grep NoNewPrivs /proc/self/status; echo \"$USER $LOGNAME $HOME\"",
        spec,
    ))
    .await;
    assert!(ran.exit.success(), "{}: {}", ran.exit, ran.err);
    let lines: Vec<&str> = ran.out.lines().collect();
    assert_eq!(lines.len(), 5, "{}", ran.out);
    // Its own account's variables, not the host's.
    let passwd = std::fs::read_to_string("/etc/passwd").expect("passwd");
    let home = passwd
        .lines()
        .find_map(|l| l.strip_prefix("nobody:"))
        .and_then(|l| l.split(':').nth(4))
        .expect("nobody's home");
    assert_eq!(lines[4], format!("nobody nobody {home}"), "{}", ran.out);
    let user = walls
        .iter()
        .find(|w| w.setting == "user")
        .expect("a user row");
    assert_eq!(
        user.mechanism,
        format!("setuid to uid {}", lines[0]),
        "uid: {}",
        ran.out
    );
    assert_ne!(lines[0], "0");
    let gid = group.value.split(' ').next().unwrap_or_default();
    assert_eq!(lines[1], gid, "gid: {}", ran.out);
    assert_eq!(lines[2], gid, "no other group: {}", ran.out);
    assert!(lines[3].ends_with('1'), "{}", ran.out);
}

#[tokio::test]
async fn an_out_of_memory_kill_is_a_crash_the_supervisor_reports_as_such() {
    let sb = outboard_test_support::Sandbox::new();
    let mut spec = sb.stress("hungry", "stress:0", serde_json::json!({}));
    spec.env
        .insert("STRESS_AT_START".into(), "alloc-after-ms:200".into());
    spec.sandbox.memory = Some(64 << 20);
    let walls = sandbox::plan("hungry", &spec.sandbox, sandbox::offers()).expect("plan");
    if walls[0].mechanism == sandbox::RLIMIT_AS_MECHANISM {
        eprintln!("skipped: this machine offers no writable memory cgroup (see docs/SECURITY.md)");
        return;
    }
    spec.supervision.restart = RestartPolicy::OnFailure;
    spec.supervision.crash_loop_starts = 2;
    spec.supervision.crash_loop_window = Duration::from_secs(600);
    spec.supervision.backoff_initial = Duration::from_millis(10);
    spec.supervision.backoff_max = Duration::from_millis(100);
    let host = Host::start(&HostConfig {
        plugins: vec![spec],
        ..HostConfig::default()
    })
    .await
    .expect("start");
    let sup = host.plugin("hungry").expect("supervised");
    // Killed, restarted as after a crash, killed again: a crash loop.
    assert!(
        sup.wait_for_state(State::Failed, WITHIN).await,
        "{:?}",
        sup.status()
    );
    let status = sup.status();
    assert_eq!(status.starts, 2, "{status:?}");
    assert_eq!(
        status.reason.as_deref(),
        Some(
            "crash loop: 2 starts within 10m, the last failure: exited with signal 9 (SIGKILL), \
             out of memory: the kernel killed it for going over its sandbox.memory limit of 64Mi"
        ),
        "{status:?}"
    );
    host.stop().await;
    assert_eq!(cgroups_named("hungry"), Vec::<PathBuf>::new());
    sb.assert_empty();
}

#[tokio::test]
async fn a_plugin_dropped_to_nobody_without_a_network_shakes_hands_and_answers_calls() {
    let sb = outboard_test_support::Sandbox::new();
    let mut spec = sb.stress("as-nobody", "stress:0", serde_json::json!({}));
    spec.sandbox = SandboxSpec {
        user: Some("nobody".into()),
        // The host reaches it over its socket's path all the same.
        network: Network::None,
        memory: Some(256 << 20),
        pids: Some(64),
        open_files: Some(256),
        core_dumps: Some(false),
        best_effort: true,
        ..SandboxSpec::default()
    };
    let Ok(Some((uid, gid))) = sandbox::runs_as("as-nobody", &spec.sandbox, sandbox::offers())
    else {
        eprintln!("skipped: the test runs as root with a user nobody");
        return;
    };
    // The runtime directory's base must be searchable by the plugin's user.
    std::fs::set_permissions(sb.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod the base");
    let host = Host::start(&HostConfig {
        plugins: vec![spec],
        ..HostConfig::default()
    })
    .await
    .expect("start as nobody");
    let pid = host
        .plugin("as-nobody")
        .expect("supervised")
        .status()
        .pid
        .expect("ready");
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let ids = |key: &str| {
        proc_status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(ids("Uid:"), vec![uid.to_string(); 4], "{proc_status}");
    assert_eq!(ids("Gid:"), vec![gid.to_string(); 4], "{proc_status}");
    assert_eq!(ids("Groups:"), vec![gid.to_string()], "{proc_status}");
    let report = host.dispatch("stress", serde_json::Map::new()).await;
    assert_eq!(report.verdict, Verdict::Passed, "{:?}", report.entries);
    assert_eq!(report.entries.len(), 1, "the plugin was called: {report:?}");
    host.stop().await;
    assert_eq!(cgroups_named("as-nobody"), Vec::<PathBuf>::new());
    sb.assert_empty();
}

#[tokio::test]
async fn a_wall_that_cannot_be_had_refuses_the_start_naming_plugin_and_setting() {
    let sb = outboard_test_support::Sandbox::new();
    let mut spec = sb.stress("stranger", "stress:0", serde_json::json!({}));
    spec.sandbox.user = Some("no-such-user-here".into());
    // Best effort does not make up a user.
    spec.sandbox.best_effort = true;
    let Err(err) = outboard_host::launch::launch(&spec).await else {
        panic!("a user that does not exist is refused");
    };
    assert_eq!(
        err.to_string(),
        "plugin stranger: sandbox.user \"no-such-user-here\" is not a user on this machine"
    );
    sb.assert_empty();
}

#[tokio::test]
async fn the_plugins_own_cgroups_carry_its_limits() {
    let spec = SandboxSpec {
        memory: Some(96 << 20),
        cpu_millis: Some(250),
        pids: Some(32),
        ..SandboxSpec::default()
    };
    let walls = sandbox::plan("limits", &spec, sandbox::offers()).expect("plan");
    let offers = sandbox::offers();
    let at_usual_place = ["memory", "pids", "cpu"].iter().all(|c| {
        offers
            .cgroup_v1(c)
            .is_some_and(|v1| v1.mount == std::path::Path::new(&format!("/sys/fs/cgroup/{c}")))
    });
    if walls.iter().any(|w| !w.mechanism.starts_with("cgroup v1")) || !at_usual_place {
        eprintln!("skipped: this reads cgroup v1 files at /sys/fs/cgroup/<controller>: {walls:?}");
        return;
    }
    // Read from inside: the plugin's own cgroup per controller (from
    // /proc/self/cgroup), and the limit there.
    let script = "for c in memory pids cpu; do \
        p=$(grep -E \"^[0-9]+:([^:]*,)?$c(,[^:]*)?:\" /proc/self/cgroup | cut -d: -f3); \
        d=/sys/fs/cgroup/$c$p; echo \"${p##*/}\"; \
        case $c in memory) cat $d/memory.limit_in_bytes;; pids) cat $d/pids.max;; \
        cpu) echo $(cat $d/cpu.cfs_quota_us) $(cat $d/cpu.cfs_period_us);; esac; done";
    let ran = run(&shell("limits", script, spec)).await;
    assert!(ran.exit.success(), "{}: {}", ran.exit, ran.err);
    let lines: Vec<&str> = ran.out.lines().collect();
    assert_eq!(lines.len(), 6, "{}: {}", ran.out, ran.err);
    for name in [lines[0], lines[2], lines[4]] {
        assert!(
            name.starts_with("outboard-limits-"),
            "its own cgroup: {}",
            ran.out
        );
    }
    let memory = (96u64 << 20).to_string();
    assert_eq!(
        [lines[1], lines[3], lines[5]],
        [memory.as_str(), "32", "25000 100000"],
        "{}",
        ran.err
    );
}
