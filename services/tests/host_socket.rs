//! Host services over real sockets: authentication, permissions,
//! isolation between plugins, limits, and the socket's life.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{World, authed, get, set};
use outboard_proto::v1;
use tonic::{Code, Request};

#[tokio::test]
async fn a_good_token_is_served_and_wrong_missing_and_stale_ones_are_not() {
    let world = World::new();
    let mut plugin = world.attach("counter", &["kv"]);
    let mut client = plugin.client().await;

    client
        .kv_set(authed(set("k", b"v"), &plugin.token))
        .await
        .expect("set with the good token");
    let got = client
        .kv_get(authed(get("k"), &plugin.token))
        .await
        .expect("get")
        .into_inner();
    assert!(got.found);
    assert_eq!(got.value, b"v");

    let wrong = "0".repeat(64);
    let status = client
        .kv_get(authed(get("k"), &wrong))
        .await
        .expect_err("wrong");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = client
        .kv_get(Request::new(get("k")))
        .await
        .expect_err("missing");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = client
        .kv_get(authed(get("k"), "not-a-token"))
        .await
        .expect_err("malformed");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let mut repeated = authed(get("k"), &plugin.token);
    repeated.metadata_mut().append(
        "authorization",
        format!("Bearer {}", plugin.token).parse().expect("ascii"),
    );
    let status = client.kv_get(repeated).await.expect_err("repeated");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Its process exits: the token is refused from then on, on any socket,
    // and its own socket is gone.
    let stale = plugin.token.clone();
    let socket = plugin.socket.clone();
    plugin.exit();
    assert!(!socket.exists(), "the socket outlived its instance");
    let other = world.attach("other", &["kv"]);
    let mut other_client = other.client().await;
    let status = other_client
        .kv_get(authed(get("k"), &stale))
        .await
        .expect_err("stale");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

#[tokio::test]
async fn the_socket_is_private_and_inside_the_runtime_directory() {
    let world = World::new();
    let plugin = world.attach("p", &[]);
    assert_eq!(plugin.socket.parent(), Some(plugin.dir.path()));
    assert_eq!(
        plugin.socket.file_name().and_then(|n| n.to_str()),
        Some("host.sock")
    );
    let mode = std::fs::metadata(&plugin.socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert_eq!(plugin.token.len(), 64);
    // The token is a secret: not in the services' debug output either.
    let debug = format!("{:?}", world.services);
    assert!(debug.contains("\"p\""), "{debug}");
    assert!(!debug.contains(&plugin.token), "the token leaked: {debug}");
}

#[tokio::test]
async fn every_kv_call_is_denied_without_kv_naming_plugin_and_permission() {
    let world = World::new();
    let plugin = world.attach("nokv", &["kv:shared:jobs"]);
    let mut client = plugin.client().await;
    let t = &plugin.token;
    let results = [
        client.kv_get(authed(get("k"), t)).await.map(|_| ()),
        client.kv_set(authed(set("k", b"v"), t)).await.map(|_| ()),
        client
            .kv_delete(authed(
                v1::KvDeleteRequest {
                    namespace: String::new(),
                    key: "k".into(),
                },
                t,
            ))
            .await
            .map(|_| ()),
        client
            .kv_list(authed(v1::KvListRequest::default(), t))
            .await
            .map(|_| ()),
        client
            .kv_compare_and_set(authed(
                v1::KvCompareAndSetRequest {
                    key: "k".into(),
                    expected: Some(v1::kv_compare_and_set_request::Expected::ExpectedAbsent(())),
                    ..Default::default()
                },
                t,
            ))
            .await
            .map(|_| ()),
    ];
    for result in results {
        let status = result.expect_err("denied");
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(status.message(), r#"plugin "nokv" lacks permission "kv""#);
    }
}

#[tokio::test]
async fn a_shared_namespace_needs_its_grant_and_is_shared_by_those_holding_it() {
    let world = World::new();
    let writer = world.attach("writer", &["kv:shared:jobs"]);
    let reader = world.attach("reader", &["kv:shared:jobs"]);
    let outsider = world.attach("outsider", &["kv", "kv:shared:other"]);
    let shared_set = v1::KvSetRequest {
        namespace: "jobs".into(),
        key: "k".into(),
        value: b"shared".to_vec(),
        ttl: None,
    };
    let shared_get = v1::KvGetRequest {
        namespace: "jobs".into(),
        key: "k".into(),
    };

    writer
        .client()
        .await
        .kv_set(authed(shared_set, &writer.token))
        .await
        .expect("writer sets");
    let got = reader
        .client()
        .await
        .kv_get(authed(shared_get.clone(), &reader.token))
        .await
        .expect("reader gets")
        .into_inner();
    assert_eq!(got.value, b"shared");

    let status = outsider
        .client()
        .await
        .kv_get(authed(shared_get, &outsider.token))
        .await
        .expect_err("no grant");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        r#"plugin "outsider" lacks permission "kv:shared:jobs""#
    );

    // The shared namespace is not the writer's own.
    let own = writer
        .client()
        .await
        .kv_get(authed(get("k"), &writer.token))
        .await
        .expect_err("writer lacks kv");
    assert_eq!(own.code(), Code::PermissionDenied);

    // A bad namespace name is an argument error naming the field.
    let status = writer
        .client()
        .await
        .kv_get(authed(
            v1::KvGetRequest {
                namespace: "Jobs!".into(),
                key: "k".into(),
            },
            &writer.token,
        ))
        .await
        .expect_err("bad name");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("namespace: "),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_token_counts_only_on_its_own_instances_socket() {
    let world = World::new();
    let victim = world.attach("victim", &["kv"]);
    let thief = world.attach("thief", &["kv"]);
    victim
        .client()
        .await
        .kv_set(authed(set("secret", b"mine"), &victim.token))
        .await
        .expect("victim writes");

    // The thief's token on the victim's socket, and the victim's token
    // (read from its environment) on the thief's own socket: both unknown.
    let mut on_victims_socket = victim.client().await;
    let refused = on_victims_socket
        .kv_get(authed(get("secret"), &thief.token))
        .await
        .expect_err("another instance's token");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = thief
        .client()
        .await
        .kv_get(authed(get("secret"), &victim.token))
        .await
        .expect_err("a stolen token on the thief's socket");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let victims = victim
        .client()
        .await
        .kv_get(authed(get("secret"), &victim.token))
        .await
        .expect("victim reads")
        .into_inner();
    assert_eq!(victims.value, b"mine");
}

#[tokio::test]
async fn a_process_that_is_not_the_plugin_or_its_descendant_is_refused() {
    // The instance's plugin is a child of this test; the test itself is
    // not its descendant, so it plays another plugin of the same user that
    // read the token and the socket path from /proc/<pid>/environ.
    let world = World::new();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn");
    let plugin = world.attach_spawned("victim", &["kv"], child.id());
    let refused = plugin
        .client()
        .await
        .kv_get(authed(get("k"), &plugin.token))
        .await
        .expect_err("not the plugin's process");
    assert_ne!(refused.code(), Code::Ok, "{refused:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn limits_are_resource_exhausted_naming_the_limit() {
    let world = World::with(|o| {
        o.kv_limits.value_size = 10;
        o.kv_limits.namespace_total = 100;
    });
    let plugin = world.attach("p", &["kv"]);
    let mut client = plugin.client().await;
    let status = client
        .kv_set(authed(set("k", &[0; 11]), &plugin.token))
        .await
        .expect_err("too big");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("kv value size"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("10"), "{}", status.message());

    let mut refused = None;
    for i in 0..20 {
        if let Err(status) = client
            .kv_set(authed(set(&format!("key{i}"), &[1; 10]), &plugin.token))
            .await
        {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("the namespace filled up");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("kv namespace total"),
        "{}",
        status.message()
    );

    let status = client
        .kv_get(authed(get(&"k".repeat(513)), &plugin.token))
        .await
        .expect_err("long key");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("key: "),
        "{}",
        status.message()
    );
    let status = client
        .kv_list(authed(
            v1::KvListRequest {
                page_size: -1,
                ..Default::default()
            },
            &plugin.token,
        ))
        .await
        .expect_err("negative page");
    assert!(
        status.message().starts_with("page_size: "),
        "{}",
        status.message()
    );
    let status = client
        .kv_list(authed(
            v1::KvListRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            &plugin.token,
        ))
        .await
        .expect_err("bad token");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("page_token"),
        "{}",
        status.message()
    );
    let status = client
        .kv_compare_and_set(authed(
            v1::KvCompareAndSetRequest {
                key: "k".into(),
                ..Default::default()
            },
            &plugin.token,
        ))
        .await
        .expect_err("no expectation");
    assert!(
        status.message().starts_with("expected: "),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_call_before_describe_waits_for_it() {
    let world = World::new();
    let plugin = world.attach_only("early");
    let mut client = plugin.client().await;
    let token = plugin.token.clone();
    let mut call = tokio::spawn(async move { client.kv_set(authed(set("k", b"v"), &token)).await });
    // Not answered while the instance is not described (it would be at
    // once, were it refused)...
    let early = tokio::time::timeout(Duration::from_millis(200), &mut call).await;
    assert!(early.is_err(), "answered before Describe: {early:?}");
    // ...and served once it is.
    plugin.describe(&["kv"]);
    call.await.expect("joined").expect("served after Describe");
}

#[tokio::test]
async fn a_call_waits_for_describe_only_so_long() {
    let world = World::with(|o| o.describe_wait = Duration::from_millis(50));
    let plugin = world.attach_only("slow");
    let status = plugin
        .client()
        .await
        .kv_get(authed(get("k"), &plugin.token))
        .await
        .expect_err("never described");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn publish_and_get_secret_still_authenticate_first() {
    let world = World::new();
    let plugin = world.attach("p", &[]);
    let mut client = plugin.client().await;
    let status = client
        .publish(Request::new(v1::PublishRequest::default()))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .get_secret(Request::new(v1::GetSecretRequest { name: "x".into() }))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("proc").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_launches_leak_no_socket_descriptor_or_task() {
    let world = World::new();
    let metrics = tokio::runtime::Handle::current().metrics();
    // One round first, so that lazily created things (the blocking pool,
    // the database's connections) are there before counting.
    let round = |world: &World| {
        let mut plugin = world.attach("restarting", &["kv"]);
        async move {
            let mut client = plugin.client().await;
            client
                .kv_set(authed(set("k", b"v"), &plugin.token))
                .await
                .expect("set");
            drop(client);
            let dir = plugin.dir.path().to_owned();
            plugin.exit();
            let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").flatten().collect();
            assert!(left.is_empty(), "left in the runtime dir: {left:?}");
        }
    };
    round(&world).await;
    let (fds, tasks) = (open_fds(), metrics.num_alive_tasks());
    for _ in 0..50 {
        round(&world).await;
    }
    assert_eq!(world.services.live_tokens(), 0);
    // Connection and accept tasks end shortly after their instance: wait
    // for them, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (open_fds() > fds || metrics.num_alive_tasks() > tasks)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        open_fds() <= fds,
        "descriptors: {} after, {fds} before",
        open_fds()
    );
    assert!(
        metrics.num_alive_tasks() <= tasks,
        "tasks: {} after, {tasks} before",
        metrics.num_alive_tasks()
    );
}

#[tokio::test]
async fn a_flood_of_connections_is_capped_and_passes() {
    use tokio::io::AsyncReadExt;
    let world = World::new();
    let plugin = world.attach("flooder", &["kv"]);
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(
            tokio::net::UnixStream::connect(&plugin.socket)
                .await
                .expect("connect"),
        );
    }
    // The ninth is accepted and closed at once.
    let mut ninth = tokio::net::UnixStream::connect(&plugin.socket)
        .await
        .expect("connect");
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), ninth.read(&mut buf))
        .await
        .expect("closed within 5 s");
    assert_eq!(read.expect("read"), 0, "the ninth connection was served");
    // Once the flood goes, a client is served again.
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = plugin.client().await;
        match client.kv_get(authed(get("k"), &plugin.token)).await {
            Ok(_) => break,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("not served after the flood: {status:?}"),
        }
    }
}
