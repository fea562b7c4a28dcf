//! `Publish` over a real host socket: the grant, the host's reserved
//! names, the payload limit, idempotency, and the event stored before the
//! answer (read back from the state database by another connection).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{World, authed};
use outboard_proto::json::json_to_value;
use outboard_proto::v1;
use outboard_state::{Database, Outbox};
use serde_json::json;
use tonic::Code;

fn publish(name: &str, payload: serde_json::Value, key: &str) -> v1::PublishRequest {
    v1::PublishRequest {
        name: name.into(),
        payload: Some(json_to_value(&payload)),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn a_granted_event_is_stored_before_the_answer() {
    let world = World::new();
    let plugin = world.attach("builder", &["event:publish:build.*"]);
    let mut client = plugin.client().await;
    let answer = client
        .publish(authed(
            publish("build.flaky", json!({"n": 3}), ""),
            &plugin.token,
        ))
        .await
        .expect("published")
        .into_inner();
    assert!(!answer.duplicate);
    // Another connection to the file sees it: committed.
    let database = Database::open(&world.state.path().join("state")).expect("open");
    let pending = database
        .undistributed(outboard_services::DEFAULT_SCOPE, 10)
        .expect("read");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].name, "build.flaky");
}

#[tokio::test]
async fn the_grant_the_reserved_names_and_the_size_are_checked() {
    let world = World::new();
    let plugin = world.attach("builder", &["event:publish:build.*"]);
    let everything = world.attach("all", &["event:publish:*"]);
    let mut client = plugin.client().await;
    let t = &plugin.token;
    let denied = client
        .publish(authed(publish("deploy.done", json!(null), ""), t))
        .await
        .expect_err("not granted");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        denied.message(),
        r#"plugin "builder" lacks permission "event:publish:deploy.done""#
    );
    let mut all = everything.client().await;
    for reserved in ["job.finished", "plugin.ready", "reload.finished", "host.x"] {
        let status = all
            .publish(authed(
                publish(reserved, json!(null), ""),
                &everything.token,
            ))
            .await
            .expect_err("reserved");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with("name: "), "{status:?}");
    }
    let bad = client
        .publish(authed(publish("build.Bad", json!(null), ""), t))
        .await
        .expect_err("bad name");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let big = json!("x".repeat(300_000));
    let too_big = client
        .publish(authed(publish("build.big", big, ""), t))
        .await
        .expect_err("too big");
    assert_eq!(too_big.code(), Code::ResourceExhausted);
    assert!(
        too_big.message().starts_with("event payload size: "),
        "{too_big:?}"
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_event() {
    let world = World::new();
    let plugin = world.attach("builder", &["event:publish:build.*"]);
    let other = world.attach("other", &["event:publish:build.*"]);
    let mut client = plugin.client().await;
    let first = client
        .publish(authed(
            publish("build.done", json!(1), "run-7"),
            &plugin.token,
        ))
        .await
        .expect("first")
        .into_inner();
    let again = client
        .publish(authed(
            publish("build.done", json!(2), "run-7"),
            &plugin.token,
        ))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(
        (again.event_id.as_str(), again.duplicate),
        (first.event_id.as_str(), true)
    );
    // The key is the instance's own: another plugin's same key is new.
    let theirs = other
        .client()
        .await
        .publish(authed(
            publish("build.done", json!(3), "run-7"),
            &other.token,
        ))
        .await
        .expect("other")
        .into_inner();
    assert!(!theirs.duplicate);
    assert_ne!(theirs.event_id, first.event_id);
}
