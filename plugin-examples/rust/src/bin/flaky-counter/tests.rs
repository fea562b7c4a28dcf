//! flaky-counter against the SDK's fake host.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use outboard_plugin::Code;
use outboard_plugin::testing::{FakeHost, Harness};
use serde_json::{Value, json};

use super::FlakyCounter;
use super::record::{Record, key};

fn job(command: &[&str], exit_code: Option<i64>) -> Value {
    let mut context = json!({"job_id": "j1", "command": command, "env": {}, "metadata": {}});
    if let Some(code) = exit_code {
        context["exit_code"] = json!(code);
    }
    context
}

async fn configured(host: &FakeHost, config: Value) -> Harness<FlakyCounter> {
    let harness = Harness::new(FlakyCounter::default()).with_host(host);
    harness.configure(config).await.unwrap();
    harness
}

fn stored(host: &FakeHost, command: &[&str]) -> Record {
    let argv: Vec<String> = command.iter().map(|w| (*w).to_owned()).collect();
    serde_json::from_slice(&host.value(None, &key(&argv)).unwrap()).unwrap()
}

#[tokio::test]
async fn counts_per_command_and_reports_flaky_ones() {
    let host = FakeHost::new().with_grants(["kv"]);
    let h = configured(&host, json!({"window": 3})).await;
    let test = ["make", "test"];
    let out = h
        .invoke("post_container", job(&test, Some(0)))
        .await
        .unwrap();
    assert_eq!(
        out.get("/metadata/flaky_counter"),
        Some(&json!({"runs": 1, "failures": 0, "recent": "P", "flaky": false}))
    );
    assert_eq!(out.reply.message(), "");
    let out = h
        .invoke("post_container", job(&test, Some(2)))
        .await
        .unwrap();
    assert_eq!(out.get("/metadata/flaky_counter/flaky"), Some(&json!(true)));
    assert_eq!(
        out.reply.message(),
        "flaky: `make test` passed and failed in its last 2 runs (PF)"
    );
    h.invoke("post_container", job(&["make", "lint"], Some(1)))
        .await
        .unwrap();
    assert_eq!(stored(&host, &test).runs, 2);
    assert_eq!(stored(&host, &["make", "lint"]).failures, 1);
    for _ in 0..3 {
        h.invoke("post_container", job(&test, Some(0)))
            .await
            .unwrap();
    }
    let record = stored(&host, &test);
    assert_eq!((record.runs, record.failures), (5, 1));
    assert!(!record.is_flaky(), "the failure left the window of 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_jobs_lose_no_count() {
    let host = FakeHost::new();
    let h = Arc::new(configured(&host, json!({})).await);
    let jobs: Vec<_> = (0..16)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let code = if i % 4 == 0 { 1 } else { 0 };
                h.invoke("post_container", job(&["cargo", "test"], Some(code)))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for j in jobs {
        j.await.unwrap();
    }
    let record = stored(&host, &["cargo", "test"]);
    assert_eq!((record.runs, record.failures), (16, 4));
    assert_eq!(record.recent.len(), 10);
}

#[tokio::test]
async fn a_dry_run_counts_nothing_and_old_records_are_forgotten() {
    let host = FakeHost::new();
    let h = configured(&host, json!({"forget_after": "1h"})).await;
    let out = h
        .invoke("post_container", job(&["make"], None))
        .await
        .unwrap();
    assert_eq!(out.get("/metadata/flaky_counter"), None);
    h.invoke("post_container", job(&["make"], Some(1)))
        .await
        .unwrap();
    host.advance(Duration::from_secs(3600));
    let out = h
        .invoke("post_container", job(&["make"], Some(0)))
        .await
        .unwrap();
    assert_eq!(out.get("/metadata/flaky_counter/runs"), Some(&json!(1)));
}

#[tokio::test]
async fn without_host_services_it_counts_nothing_and_says_so() {
    let h = Harness::new(FlakyCounter::default());
    h.configure(json!({})).await.unwrap();
    let out = h
        .invoke("post_container", job(&["make"], Some(1)))
        .await
        .unwrap();
    assert_eq!(out.get("/metadata/flaky_counter"), None);
    assert_eq!(
        out.reply.message(),
        "not counted: this host offers no host services"
    );
}

#[tokio::test]
async fn configure_names_what_is_missing() {
    let host = FakeHost::new();
    let h = Harness::new(FlakyCounter::default()).with_host(&host);
    let err = h
        .configure_with(outboard_plugin::Config::new(json!({})))
        .await
        .unwrap_err();
    assert!(err.message().contains("\"kv\" was not granted"), "{err}");
    let err = h.configure(json!({"window": 1})).await.unwrap_err();
    assert_eq!(err.message(), "window: 1 is not between 2 and 1000");
    let err = h
        .configure(json!({"forget_after": "soon"}))
        .await
        .unwrap_err();
    assert!(err.message().starts_with("forget_after: \"soon\""), "{err}");
}

#[tokio::test]
async fn a_denied_store_fails_the_call_naming_the_permission() {
    let host = FakeHost::new()
        .with_plugin("flaky-counter")
        .with_grants(Vec::<String>::new());
    let h = configured(&host, json!({})).await;
    let err = h
        .invoke("post_container", job(&["make"], Some(0)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("lacks permission \"kv\""), "{err}");
}
