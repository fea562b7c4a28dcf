//! Reading secrets: each source, its failures, the cache, concurrent
//! first use, reloads and the permission rules. Real files and real
//! commands; paused time only where no process runs.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use outboard_host::config::{SecretSource, SecretSpec};
use outboard_host::{Manifest, SecretSpecs};
use outboard_proto::v1;
use tokio::sync::Semaphore;
use tonic::Code;

use super::*;
use crate::denials::Denials;
use crate::registry::Described;

/// What the tests' secret commands print, and must never be shown.
const VALUE: &str = "s3cr3t-Value-42";

/// A caller named `tester` holding `granted`.
fn caller(granted: &[&str]) -> Caller {
    let manifest = v1::Manifest {
        name: "tester".into(),
        version: "1.0.0".into(),
        protocol_version: 1,
        ..Default::default()
    };
    let described = Described {
        manifest: Arc::new(Manifest::from_proto(manifest, 1).unwrap()),
        granted: granted.iter().map(|g| (*g).to_owned()).collect(),
    };
    Caller::new(
        "tester".into(),
        described,
        Arc::new(Semaphore::new(1)),
        Arc::new(Denials::default()),
    )
}

fn specs(entries: &[(&str, SecretSpec)]) -> SecretSpecs {
    Arc::new(
        entries
            .iter()
            .map(|(name, spec)| ((*name).to_owned(), spec.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn file_spec(path: &Path) -> SecretSpec {
    SecretSpec::new(SecretSource::File(path.to_owned()))
}

/// A command spec running `sh -c script` in `dir`.
fn sh(dir: &Path, script: &str) -> SecretSpec {
    SecretSpec::new(SecretSource::Command {
        program: PathBuf::from("/bin/sh"),
        args: vec!["-c".into(), script.into()],
        dir: dir.to_owned(),
    })
}

/// `name` read by a caller granted it.
async fn get(secrets: &Secrets, name: &str) -> Result<Secret, tonic::Status> {
    secrets
        .get(&caller(&[&format!("secret:{name}")]), name)
        .await
}

/// Asserts `status` is UNAVAILABLE with `message`, and holds no value.
fn unavailable(result: Result<Secret, tonic::Status>, message: &str) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), message);
    assert!(!status.message().contains(VALUE), "{status:?}");
}

/// Reads of `name`'s source so far.
fn reads(secrets: &Secrets, name: &str) -> u64 {
    let table = secrets.table();
    let slot = table.slots.get(name).unwrap();
    slot.reads.load(Ordering::Acquire)
}

#[tokio::test]
async fn an_env_source_reads_the_hosts_variable() {
    let secrets = Secrets::new(specs(&[
        ("path", SecretSpec::new(SecretSource::Env("PATH".into()))),
        (
            "unset",
            SecretSpec::new(SecretSource::Env("OUTBOARD_TEST_UNSET_9f2c".into())),
        ),
    ]));
    let path = std::env::var_os("PATH").unwrap();
    assert_eq!(
        get(&secrets, "path").await.unwrap().expose(),
        path.as_encoded_bytes()
    );
    unavailable(
        get(&secrets, "unset").await,
        "secret \"unset\" is unavailable: its env source failed: the host's environment \
         variable OUTBOARD_TEST_UNSET_9f2c is not set",
    );
}

#[tokio::test]
async fn a_file_source_loses_one_trailing_newline_and_refuses_what_is_not_a_small_file() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    fs::write(at("one"), format!("{VALUE}\n")).unwrap();
    fs::write(at("two"), format!("{VALUE}\n\n")).unwrap();
    fs::write(at("empty"), "\n").unwrap();
    fs::write(at("big"), vec![b'x'; MAX_SECRET_BYTES + 1]).unwrap();
    fs::write(at("max"), vec![b'x'; MAX_SECRET_BYTES]).unwrap();
    fs::create_dir(at("dir")).unwrap();
    let fifo = std::ffi::CString::new(at("fifo").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let names = [
        "one", "two", "empty", "big", "max", "dir", "fifo", "missing",
    ];
    let secrets = Secrets::new(specs(&names.map(|n| (n, file_spec(&at(n))))));

    assert_eq!(
        get(&secrets, "one").await.unwrap().expose(),
        VALUE.as_bytes()
    );
    assert_eq!(
        get(&secrets, "two").await.unwrap().expose(),
        format!("{VALUE}\n").as_bytes()
    );
    assert_eq!(
        get(&secrets, "max").await.unwrap().expose().len(),
        MAX_SECRET_BYTES
    );
    let failed = |name: &str, why: String| {
        format!("secret {name:?} is unavailable: its file source failed: {why}")
    };
    unavailable(
        get(&secrets, "empty").await,
        &failed("empty", "gave an empty value".into()),
    );
    unavailable(
        get(&secrets, "big").await,
        &failed("big", "the file is larger than 64 KiB".into()),
    );
    for name in ["dir", "fifo"] {
        unavailable(
            get(&secrets, name).await,
            &failed(name, "the file is not a regular file".into()),
        );
    }
    unavailable(
        get(&secrets, "missing").await,
        &failed(
            "missing",
            "cannot read the file: No such file or directory".into(),
        ),
    );
}

#[tokio::test]
async fn a_command_source_gives_its_stdout_and_its_failures_say_only_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secrets = Secrets::new(specs(&[
        ("ok", sh(d, &format!("printf '{VALUE}\\n'; echo noise >&2"))),
        (
            "fails",
            sh(d, &format!("printf '{VALUE}'; echo {VALUE} >&2; exit 3")),
        ),
        ("killed", sh(d, &format!("echo {VALUE} >&2; kill -9 $$"))),
        ("big", sh(d, "head -c 70000 /dev/zero")),
        (
            "missing",
            SecretSpec::new(SecretSource::Command {
                program: d.join("no-such-program"),
                args: Vec::new(),
                dir: d.to_owned(),
            }),
        ),
    ]));
    assert_eq!(
        get(&secrets, "ok").await.unwrap().expose(),
        VALUE.as_bytes()
    );
    let failed = |name: &str, why: &str| {
        format!("secret {name:?} is unavailable: its command source failed: {why}")
    };
    unavailable(
        get(&secrets, "fails").await,
        &failed("fails", "exited with status 3"),
    );
    unavailable(
        get(&secrets, "killed").await,
        &failed("killed", "was killed by signal 9"),
    );
    unavailable(
        get(&secrets, "big").await,
        &failed("big", "printed more than 64 KiB (killed)"),
    );
    unavailable(
        get(&secrets, "missing").await,
        &failed(
            "missing",
            &format!(
                "{} could not be started: No such file or directory",
                d.join("no-such-program").display()
            ),
        ),
    );
}

/// Whether process `pid` is gone: neither running nor a zombie.
fn gone(pid: i32) -> bool {
    // SAFETY: signal 0 only checks the process exists.
    unsafe { libc::kill(pid, 0) != 0 }
}

/// Polls `check` until it holds, for at most ten seconds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 10s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed_with_its_group_and_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The command and a child of its own both hang; their pids are written
    // first, the grandchild's once it runs.
    let mut spec = sh(
        d,
        "echo $$ > leader; sh -c 'echo $$ > child; exec sleep 600' & exec sleep 600",
    );
    spec.timeout = Duration::from_millis(500);
    let secrets = Secrets::new(specs(&[("slow", spec)]));
    unavailable(
        get(&secrets, "slow").await,
        "secret \"slow\" is unavailable: its command source failed: did not finish within 500ms \
         (killed)",
    );
    let pid = |name: &str| -> i32 {
        fs::read_to_string(d.join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    // The leader was waited for before the answer: no zombie left.
    assert!(gone(pid("leader")), "the command is still there");
    eventually("the command's child is killed", || {
        d.join("child").exists() && gone(pid("child"))
    })
    .await;
}

#[tokio::test]
async fn concurrent_first_requests_run_the_command_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = sh(d, &format!("echo run >> runs; sleep 0.3; printf '{VALUE}'"));
    let secrets = Arc::new(Secrets::new(specs(&[("once", spec)])));
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let secrets = secrets.clone();
            tokio::spawn(async move { get(&secrets, "once").await })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap().expose(), VALUE.as_bytes());
    }
    assert_eq!(fs::read_to_string(d.join("runs")).unwrap(), "run\n");
    assert_eq!(reads(&secrets, "once"), 1);
}

#[tokio::test]
async fn waiting_requests_share_a_failure_instead_of_running_the_command_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut spec = sh(d, "echo run >> runs; sleep 0.3; exit 1");
    spec.cache = Duration::ZERO;
    let secrets = Arc::new(Secrets::new(specs(&[("bad", spec)])));
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let secrets = secrets.clone();
            tokio::spawn(async move { get(&secrets, "bad").await })
        })
        .collect();
    for request in requests {
        assert_eq!(
            request.await.unwrap().unwrap_err().code(),
            Code::Unavailable
        );
    }
    assert_eq!(fs::read_to_string(d.join("runs")).unwrap(), "run\n");
    // A request after the failure tries again (with cache 0s at once;
    // otherwise after FAILURE_HOLD).
    get(&secrets, "bad").await.unwrap_err();
    assert_eq!(fs::read_to_string(d.join("runs")).unwrap(), "run\nrun\n");
}

#[tokio::test]
async fn a_value_is_kept_for_its_cache_time_and_cache_zero_reads_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    fs::write(&path, "one").unwrap();
    let mut uncached = file_spec(&path);
    uncached.cache = Duration::ZERO;
    let secrets = Secrets::new(specs(&[("kept", file_spec(&path)), ("fresh", uncached)]));
    assert_eq!(get(&secrets, "kept").await.unwrap().expose(), b"one");
    assert_eq!(get(&secrets, "fresh").await.unwrap().expose(), b"one");
    fs::write(&path, "two").unwrap();
    assert_eq!(get(&secrets, "kept").await.unwrap().expose(), b"one");
    assert_eq!(get(&secrets, "fresh").await.unwrap().expose(), b"two");
    assert_eq!((reads(&secrets, "kept"), reads(&secrets, "fresh")), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn a_value_past_its_cache_time_is_dropped_and_read_again() {
    let spec = SecretSpec::new(SecretSource::Env("PATH".into()));
    let cache = spec.cache;
    let secrets = Secrets::new(specs(&[("path", spec)]));
    get(&secrets, "path").await.unwrap();
    let held = |s: &Secrets| {
        let slot = s.table().slots.get("path").unwrap().clone();
        slot.last.try_lock().unwrap().is_some()
    };
    assert!(held(&secrets));
    tokio::time::sleep(cache - Duration::from_secs(1)).await;
    get(&secrets, "path").await.unwrap();
    assert_eq!(reads(&secrets, "path"), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Forgotten, not merely stale: the value is no longer in memory.
    assert!(!held(&secrets));
    get(&secrets, "path").await.unwrap();
    assert_eq!(reads(&secrets, "path"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_answered_again_for_a_second_then_the_source_is_read_again() {
    let unset = SecretSpec::new(SecretSource::Env("OUTBOARD_TEST_UNSET_77ab".into()));
    let mut uncached = unset.clone();
    uncached.cache = Duration::ZERO;
    let secrets = Secrets::new(specs(&[("held", unset), ("uncached", uncached)]));
    for _ in 0..3 {
        get(&secrets, "held").await.unwrap_err();
        get(&secrets, "uncached").await.unwrap_err();
    }
    assert_eq!(
        (reads(&secrets, "held"), reads(&secrets, "uncached")),
        (1, 3)
    );
    tokio::time::sleep(FAILURE_HOLD).await;
    get(&secrets, "held").await.unwrap_err();
    assert_eq!(reads(&secrets, "held"), 2);
}

#[tokio::test]
async fn a_reload_drops_the_values_of_changed_and_removed_secrets_only() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    for name in ["a", "b", "c", "b2"] {
        fs::write(at(name), name).unwrap();
    }
    let secrets = Secrets::new(specs(&[
        ("same", file_spec(&at("a"))),
        ("changed", file_spec(&at("b"))),
        ("removed", file_spec(&at("c"))),
    ]));
    for name in ["same", "changed", "removed"] {
        get(&secrets, name).await.unwrap();
    }
    fs::write(at("a"), "a, rotated").unwrap();
    secrets.configure(specs(&[
        ("same", file_spec(&at("a"))),
        ("changed", file_spec(&at("b2"))),
    ]));
    assert_eq!(get(&secrets, "same").await.unwrap().expose(), b"a");
    assert_eq!(get(&secrets, "changed").await.unwrap().expose(), b"b2");
    assert_eq!(
        get(&secrets, "removed").await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(!secrets.table().slots.contains_key("removed"));
}

#[tokio::test]
async fn not_granted_is_denied_whether_configured_or_not_and_granted_unknown_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    fs::write(&path, VALUE).unwrap();
    let secrets = Secrets::new(specs(&[("real", file_spec(&path))]));
    // A star in a secret grant is just a character.
    let nobody = caller(&["secret:other", "secret:re*", "kv"]);
    for name in ["real", "unknown", "re"] {
        let status = secrets.get(&nobody, name).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{name}: {status:?}");
        assert_eq!(
            status.message(),
            format!("plugin \"tester\" lacks permission \"secret:{name}\"")
        );
    }
    let status = get(&secrets, "unknown").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.message(),
        "secret \"unknown\" is not configured: add a [secrets.unknown] section to the host's \
         configuration"
    );
    // A name no secret could have: refused without quoting it.
    for name in ["", "a b", &"x".repeat(1 << 20)] {
        let status = get(&secrets, name).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "name is not a valid secret name: 1 to 64 characters of a-z, A-Z, 0-9, '_', '.' \
             and '-'"
        );
    }
    // A denied request did not read the source.
    assert!(!secrets.table().slots.contains_key("real"));
}
