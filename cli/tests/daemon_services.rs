//! Host services with a real daemon and a real plugin (`kv-plugin`, which
//! calls the host's key-value store when invoked): what a plugin writes
//! survives a daemon restart and a daemon SIGKILL, every acknowledged
//! write included, and plugin restarts leak no socket or descriptor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::path::Path;
use std::time::Duration;

use common::{bin, wait_until};
use daemon::{Client, Daemon};
use outboard_proto::control::v1::{EntryOutcome, InvokeRequest};
use outboard_proto::json::{json_to_struct, struct_to_json};
use serde_json::{Map, Value, json};

/// The kv-plugin, granted its own namespace.
fn config() -> String {
    format!(
        "[[plugin]]\nname = \"kv\"\ncommand = {:?}\ngrant = [\"kv\"]\ncall_timeout = \"10s\"\nstop_grace = \"1s\"\n",
        bin("kv-plugin").display().to_string()
    )
}

/// A daemon running [`config`] on the state directory `state`.
fn daemon_on(state: &Path) -> Daemon {
    let state = state.display().to_string();
    Daemon::launch(
        move |_| (config(), vec!["--state-dir".to_owned(), state]),
        &[],
    )
}

/// Invokes `kv` with `/kv` = `op`; the context after the plugin's patch,
/// or the call's error.
async fn kv(client: &mut Client, op: Value) -> Result<Map<String, Value>, String> {
    let mut context = Map::new();
    context.insert("kv".into(), op);
    let report = client
        .invoke(InvokeRequest {
            phase: "kv".into(),
            context: Some(json_to_struct(&context)),
        })
        .await
        .map_err(|s| s.to_string())?
        .into_inner()
        .report
        .ok_or("no report")?;
    let failed = report
        .entries
        .iter()
        .find(|e| e.outcome != EntryOutcome::Ok as i32);
    if let Some(entry) = failed {
        return Err(format!("{entry:?}"));
    }
    Ok(struct_to_json(&report.context.unwrap_or_default()))
}

async fn set(client: &mut Client, key: &str, value: &str) -> Result<(), String> {
    let after = kv(client, json!({"op": "set", "key": key, "value": value})).await?;
    if after["kv"]["done"] == true {
        Ok(())
    } else {
        Err(format!("not acknowledged: {after:?}"))
    }
}

async fn get(client: &mut Client, key: &str) -> Option<String> {
    let after = kv(client, json!({"op": "get", "key": key}))
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"));
    (after["kv"]["found"] == true).then(|| after["kv"]["value"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_plugin_writes_survives_a_daemon_restart() {
    let state = tempfile::tempdir().unwrap();
    let first = daemon_on(state.path());
    let mut client = first.client().await;
    set(&mut client, "greeting", "hello").await.unwrap();
    assert_eq!(get(&mut client, "greeting").await.as_deref(), Some("hello"));
    drop(client);
    first.stop();

    let second = daemon_on(state.path());
    let mut client = second.client().await;
    assert_eq!(get(&mut client, "greeting").await.as_deref(), Some("hello"));
    drop(client);
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_daemon_sigkill() {
    let state = tempfile::tempdir().unwrap();
    let first = daemon_on(state.path());
    let pid = i32::try_from(first.pid()).unwrap();
    let mut client = first.client().await;
    let mut acknowledged = Vec::new();
    for i in 0..1000 {
        if i == 500 {
            // Mid-way, with a write in flight: the next call races the kill.
            let mut racing = client.clone();
            let write = tokio::spawn(async move { set(&mut racing, "racing", "x").await });
            // SAFETY: kill(2) on the daemon's pid, which it still has.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = write.await;
        }
        let key = format!("key-{i:04}");
        match set(&mut client, &key, &format!("value {i}")).await {
            Ok(()) => acknowledged.push(key),
            Err(_) => break,
        }
    }
    assert!(
        (500..1000).contains(&acknowledged.len()),
        "{} writes acknowledged: the kill came too late or too early",
        acknowledged.len()
    );
    drop(client);
    drop(first);

    let second = daemon_on(state.path());
    let mut client = second.client().await;
    for (i, key) in acknowledged.iter().enumerate() {
        assert_eq!(
            get(&mut client, key).await,
            Some(format!("value {i}")),
            "acknowledged write {key} lost"
        );
    }
    let counted = kv(&mut client, json!({"op": "count"})).await.unwrap();
    let count = counted["kv"]["count"].as_u64().unwrap() as usize;
    // The write racing the kill may or may not have landed.
    assert!(
        count == acknowledged.len() || count == acknowledged.len() + 1,
        "{count} keys for {} acknowledged writes",
        acknowledged.len()
    );
    drop(client);
    second.stop();
}

/// Open descriptors of process `pid`, the state database's files aside:
/// its read connections are a bounded pool (at most 8) that grows with
/// concurrent reads (the event workers' among them), not per instance.
fn fds_of(pid: u32) -> usize {
    fd_targets(pid)
        .iter()
        .filter(|t| !t.contains("/state.db"))
        .count()
}

/// What process `pid`'s descriptors point to, for a failure's message.
fn fd_targets(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_restarts_leak_no_host_socket_or_descriptor() {
    let state = tempfile::tempdir().unwrap();
    let daemon = daemon_on(state.path());
    let mut client = daemon.client().await;
    set(&mut client, "k", "v").await.unwrap();
    let restart = |round: usize| {
        let out = daemon.cli(&["restart", "kv"]);
        assert!(out.status.success(), "restart {round}: {out:?}");
    };
    // One restart first, so that what the daemon opens once and keeps (the
    // database's connections, the control server's) is there before
    // counting.
    restart(0);
    daemon.wait_all_ready().await;
    assert_eq!(get(&mut client, "k").await.as_deref(), Some("v"));
    let baseline = fds_of(daemon.pid());
    for round in 1..=20 {
        restart(round);
        daemon.wait_all_ready().await;
        // The restarted instance has a new socket and token, and the same
        // namespace.
        assert_eq!(
            get(&mut client, "k").await.as_deref(),
            Some("v"),
            "round {round}"
        );
    }
    // Connections of the instances gone close shortly after them.
    let pid = daemon.pid();
    assert!(
        wait_until(Duration::from_secs(10), || fds_of(pid) <= baseline),
        "descriptors: {} after 20 restarts, {baseline} before: {:?}",
        fds_of(pid),
        fd_targets(pid)
    );
    let dirs: Vec<_> = std::fs::read_dir(daemon.runtime_base())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "runtime directories left: {dirs:?}");
    assert!(
        dirs[0].join("host.sock").exists(),
        "the running instance has no host socket"
    );
    drop(client);
    daemon.stop();
}
