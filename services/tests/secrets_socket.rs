//! `GetSecret` over the real host socket: who may read what, and what a
//! failing source tells the plugin (never the value).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use common::{World, authed};
use outboard_host::config::{SecretSource, SecretSpec};
use outboard_proto::v1;
use tonic::Code;

const VALUE: &str = "value-of-a-7c1e";

fn secret(name: &str) -> v1::GetSecretRequest {
    v1::GetSecretRequest { name: name.into() }
}

/// A world with secrets `a` and `b` in files, and `broken`, a command
/// that prints the value on stderr and fails.
fn world(dir: &std::path::Path) -> World {
    std::fs::write(dir.join("a"), format!("{VALUE}\n")).unwrap();
    std::fs::write(dir.join("b"), "value-of-b").unwrap();
    let file = |name: &str| SecretSpec::new(SecretSource::File(dir.join(name)));
    let broken = SecretSpec::new(SecretSource::Command {
        program: PathBuf::from("/bin/sh"),
        args: vec![
            "-c".into(),
            format!("echo {VALUE} >&2; echo {VALUE}; exit 7"),
        ],
        dir: dir.to_owned(),
    });
    let secrets: BTreeMap<String, SecretSpec> = [
        ("a".to_owned(), file("a")),
        ("b".to_owned(), file("b")),
        ("broken".to_owned(), broken),
    ]
    .into();
    World::with(|options| options.secrets = Arc::new(secrets))
}

#[tokio::test]
async fn a_plugin_reads_only_what_it_is_granted_and_cannot_probe_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let plugin = world.attach("reader", &["secret:a", "secret:ghost", "kv"]);
    let mut client = plugin.client().await;

    let got = client
        .get_secret(authed(secret("a"), &plugin.token))
        .await
        .expect("granted and configured");
    assert_eq!(got.into_inner().value, VALUE.as_bytes());

    // Configured but not granted, and neither: the same answer.
    for name in ["b", "nothing-here"] {
        let status = client
            .get_secret(authed(secret(name), &plugin.token))
            .await
            .expect_err("not granted");
        assert_eq!(status.code(), Code::PermissionDenied, "{name}: {status:?}");
        assert_eq!(
            status.message(),
            format!("plugin \"reader\" lacks permission \"secret:{name}\"")
        );
    }
    let status = client
        .get_secret(authed(secret("ghost"), &plugin.token))
        .await
        .expect_err("granted, not configured");
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status
            .message()
            .starts_with("secret \"ghost\" is not configured")
    );
}

#[tokio::test]
async fn another_plugins_grant_does_not_carry_over_and_a_stopped_instance_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let owner = world.attach("owner", &["secret:b"]);
    let mut other = world.attach("other", &[]);
    // Other's token on owner's socket is unknown there; on its own socket
    // it is other, without the grant.
    let mut client = owner.client().await;
    let status = client
        .get_secret(authed(secret("b"), &other.token))
        .await
        .expect_err("not this socket's token");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = other
        .client()
        .await
        .get_secret(authed(secret("b"), &other.token))
        .await
        .expect_err("other holds no grant");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("plugin \"other\""), "{status:?}");
    let got = client
        .get_secret(authed(secret("b"), &owner.token))
        .await
        .unwrap();
    assert_eq!(got.into_inner().value, b"value-of-b");

    let mut others = other.client().await;
    other.exit();
    // Its socket went with it (its connections closed); its token is
    // refused everywhere (host_socket.rs: a stale token).
    let status = others
        .get_secret(authed(secret("b"), &other.token))
        .await
        .expect_err("stopped instance");
    assert!(
        matches!(
            status.code(),
            Code::Unavailable | Code::Unauthenticated | Code::Unknown
        ),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_failing_command_is_unavailable_without_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let world = world(dir.path());
    let plugin = world.attach("reader", &["secret:broken"]);
    let mut client = plugin.client().await;
    let status = client
        .get_secret(authed(secret("broken"), &plugin.token))
        .await
        .expect_err("the command fails");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "secret \"broken\" is unavailable: its command source failed: exited with status 7"
    );
    assert!(!format!("{status:?}").contains(VALUE));
}
