//! The typed clients against the in-memory `FakeHost`: the semantics an
//! author relies on (PROTOCOL.md §17.4–17.5), and the harness delivering
//! events to `Plugin::on_event`.

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::Duration;

use outboard_plugin::host::StatusCode as Status;
use outboard_plugin::host::{Cas, Expected, HostError, ListOptions};
use outboard_plugin::testing::{FakeHost, Harness};
use outboard_plugin::{Code, Config, Event, Invocation, Manifest, Plugin, PluginError, Reply};
use serde_json::json;

mod common;
use common::increment;

#[tokio::test]
async fn get_set_delete_and_ttl_on_the_fake_clock() {
    let host = FakeHost::new();
    let kv = host.services().kv();
    assert_eq!(kv.get("k").await.unwrap(), None);
    kv.set("k", "", None).await.unwrap();
    let entry = kv
        .get("k")
        .await
        .unwrap()
        .expect("an empty value is present");
    assert_eq!((entry.value.len(), entry.expires), (0, None));
    kv.set("k", "v", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let entry = kv.get("k").await.unwrap().unwrap();
    assert_eq!(entry.expires, Some(host.now() + Duration::from_secs(10)));
    host.advance(Duration::from_secs(9));
    assert!(kv.get("k").await.unwrap().is_some());
    host.advance(Duration::from_secs(1));
    assert_eq!(kv.get("k").await.unwrap(), None, "expired at its instant");
    assert!(
        !kv.delete("k").await.unwrap(),
        "an expired key is not deleted"
    );
    kv.set("k", "v", None).await.unwrap();
    assert!(kv.delete("k").await.unwrap());
    assert!(!kv.delete("k").await.unwrap());
}

#[tokio::test]
async fn compare_and_set_swaps_or_reports_the_current_value() {
    let host = FakeHost::new();
    let kv = host.services().kv();
    assert_eq!(
        kv.compare_and_set("n", Expected::Absent, "1", None)
            .await
            .unwrap(),
        Cas::Swapped
    );
    assert_eq!(
        kv.compare_and_set("n", Expected::Absent, "2", None)
            .await
            .unwrap(),
        Cas::Mismatch {
            current: Some(b"1".to_vec())
        }
    );
    assert_eq!(
        kv.compare_and_set("n", Expected::Value(b"1".to_vec()), "2", None)
            .await
            .unwrap(),
        Cas::Swapped
    );
    assert_eq!(
        kv.compare_and_set("gone", Expected::Value(Vec::new()), "x", None)
            .await
            .unwrap(),
        Cas::Mismatch { current: None },
        "an empty expected value never matches an absent key"
    );
    kv.set("t", "old", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    host.advance(Duration::from_secs(1));
    assert_eq!(
        kv.compare_and_set("t", Expected::Absent, "new", None)
            .await
            .unwrap(),
        Cas::Swapped,
        "an expired key counts as absent"
    );
}

#[tokio::test]
async fn sixteen_concurrent_increments_lose_nothing() {
    let host = FakeHost::new();
    let kv = host.services().kv().shared("jobs");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                increment(&kv, "count").await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(host.value(Some("jobs"), "count"), Some(b"16".to_vec()));
    assert_eq!(host.value(None, "count"), None, "own and shared are apart");
}

#[tokio::test]
async fn lists_walk_pages_in_key_order() {
    let host = FakeHost::new();
    let kv = host.services().kv();
    for i in (0..250).rev() {
        kv.set(&format!("job/{i:03}"), i.to_string(), None)
            .await
            .unwrap();
    }
    kv.set("other", "x", None).await.unwrap();
    let first = kv
        .list_page(
            "job/",
            ListOptions {
                page_size: 100,
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.entries.len(), 100);
    assert_eq!(first.entries[0].key, "job/000");
    assert!(first.next.is_some());
    let all = kv.list("job/").collect().await.unwrap();
    let keys: Vec<String> = all.iter().map(|e| e.key.clone()).collect();
    let expected: Vec<String> = (0..250).map(|i| format!("job/{i:03}")).collect();
    assert_eq!(keys, expected);
    let keys_only = kv.list("job/").keys_only().collect().await.unwrap();
    assert!(keys_only.iter().all(|e| e.value.is_empty()));
    let err = kv
        .shared("other-ns")
        .list_page(
            "",
            ListOptions {
                page_token: first.next.unwrap(),
                ..ListOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Status::InvalidArgument);
}

#[tokio::test]
async fn limits_and_field_rules_are_named() {
    let host = FakeHost::new().with_limits(4, 1 << 20);
    let kv = host.services().kv();
    let err = kv.set("k", "12345", None).await.unwrap_err();
    assert_eq!(err.code(), Status::ResourceExhausted);
    assert!(
        err.to_string().contains("kv value size: 5 bytes > limit 4"),
        "{err}"
    );
    let err = kv.get("").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "host service KvGet failed: INVALID_ARGUMENT: key: empty"
    );
    let err = kv.shared("Bad Name").get("k").await.unwrap_err();
    assert!(err.to_string().contains("namespace:"), "{err}");
    let err = host
        .services()
        .events()
        .publish("job.finished", json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
}

#[tokio::test]
async fn grants_are_checked_when_asked_and_secrets_stay_redacted() {
    let host = FakeHost::new()
        .with_plugin("counter")
        .with_grants(["kv", "secret:api-key", "event:publish:build.*"])
        .with_secret("api-key", "s3cret")
        .with_secret("other", "nope");
    let services = host.services();
    services.kv().set("k", "v", None).await.unwrap();
    let err = services.kv().shared("jobs").get("k").await.unwrap_err();
    assert_eq!(err.code(), Status::PermissionDenied);
    assert!(
        err.to_string()
            .ends_with("plugin \"counter\" lacks permission \"kv:shared:jobs\""),
        "{err}"
    );
    let secret = services.secrets().get("api-key").await.unwrap();
    assert_eq!(secret.expose_str(), Some("s3cret"));
    assert!(!format!("{secret:?}").contains("s3cret"));
    for name in ["other", "missing"] {
        let err = services.secrets().get(name).await.unwrap_err();
        assert_eq!(err.code(), Status::PermissionDenied, "no probing: {name}");
    }
    let id = services
        .events()
        .publish("build.flaky", json!({"cmd": "make"}))
        .await
        .unwrap();
    let err = services
        .events()
        .publish("deploy.done", json!(null))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Status::PermissionDenied);
    let published = host.published();
    assert_eq!(published.len(), 1);
    assert_eq!(
        (published[0].id.as_str(), published[0].name.as_str()),
        (id.as_str(), "build.flaky")
    );
    assert_eq!(published[0].payload, json!({"cmd": "make"}));
}

#[tokio::test]
async fn a_publish_retried_with_its_key_publishes_once() {
    let host = FakeHost::new();
    let events = host.services().events();
    let first = events
        .publish_with_key("build.flaky", json!(1), "run-7")
        .await
        .unwrap();
    let again = events
        .publish_with_key("build.flaky", json!(1), "run-7")
        .await
        .unwrap();
    let other = events
        .publish_with_key("build.flaky", json!(2), "run-8")
        .await
        .unwrap();
    assert_eq!(first, again, "the retry answers the first event's id");
    assert_ne!(first, other);
    assert_eq!(host.published().len(), 2, "{:?}", host.published());
}

#[tokio::test]
async fn without_host_services_every_call_names_the_variable() {
    let services = Config::new(json!({})).host;
    assert!(!services.is_offered());
    let err = services.kv().get("k").await.unwrap_err();
    assert!(err.is_not_offered());
    assert!(err.to_string().contains("OUTBOARD_HOST_SOCKET"), "{err}");
    assert_eq!(PluginError::from(err).code(), Code::FailedPrecondition);
}

/// Remembers job events in KV; subscribes to `job.*` only.
struct Watcher {
    seen: Mutex<Vec<String>>,
}

impl Plugin for Watcher {
    fn manifest(&self) -> Manifest {
        Manifest::new("watcher", "0.1.0").subscribe_event("job.*")
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        config.kv().set("configured", "yes", None).await?;
        Ok(())
    }

    async fn invoke(&self, _: Invocation) -> Result<Reply, PluginError> {
        Err(PluginError::failed("no phases"))
    }

    async fn on_event(&self, event: Event) -> Result<(), PluginError> {
        self.seen.lock().unwrap().push(event.id.clone());
        let code = event
            .get("/exit_code")
            .and_then(|v| v.as_i64())
            .unwrap_or(-1);
        event.kv().set(&event.name, code.to_string(), None).await?;
        Ok(())
    }
}

/// Subscribes to events but never implements `on_event`.
struct Forgetful;

impl Plugin for Forgetful {
    fn manifest(&self) -> Manifest {
        Manifest::new("forgetful", "0.1.0").subscribe_event("*")
    }
    async fn invoke(&self, _: Invocation) -> Result<Reply, PluginError> {
        Ok(Reply::ok())
    }
}

#[tokio::test]
async fn events_reach_on_event_and_the_rest_is_unimplemented() {
    let host = FakeHost::new();
    let harness = Harness::new(Watcher {
        seen: Mutex::new(Vec::new()),
    })
    .with_host(&host);
    assert_eq!(
        harness.manifest().to_proto(1).event_subscriptions[0].pattern,
        "job.*"
    );
    harness.configure(json!({})).await.unwrap();
    assert_eq!(host.value(None, "configured"), Some(b"yes".to_vec()));
    harness
        .deliver(Event::new("job.finished", json!({"exit_code": 3})))
        .await
        .unwrap();
    assert_eq!(host.value(None, "job.finished"), Some(b"3".to_vec()));
    assert_eq!(*harness.plugin().seen.lock().unwrap(), ["event-1"]);
    let err = harness
        .deliver(Event::new("reload.finished", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err}");

    let err = Harness::new(Forgetful)
        .deliver(Event::new("anything", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("Plugin::on_event"), "{err}");
}

#[tokio::test]
async fn host_errors_convert_for_question_mark() {
    let err: HostError = FakeHost::new()
        .with_grants(Vec::<String>::new())
        .services()
        .kv()
        .get("k")
        .await
        .unwrap_err();
    assert_eq!(PluginError::from(err).code(), Code::FailedPrecondition);
}
