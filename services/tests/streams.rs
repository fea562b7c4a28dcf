//! The host socket's HTTP/2 bounds against a plugin that uploads and never
//! finishes: every stream may hold a request of up to 4 MiB being received
//! before its call is admitted. A connection may open no more streams than
//! the plugin may have calls in flight (read from the SETTINGS the server
//! sends; hyper's default of 200 on each of 8 connections let one plugin
//! pin gigabytes of the host's memory), and a request still not received
//! when even a call that waited for `Describe` would have ended is reset,
//! its buffer freed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::World;
use tokio::net::UnixStream;

/// A gRPC POST of `method` whose body the caller sends (or not).
fn grpc(method: &str) -> http::Request<()> {
    http::Request::post(format!("http://host/outboard.v1.HostService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request")
}

#[tokio::test]
async fn a_connection_may_open_no_more_streams_than_calls_in_flight() {
    let world = World::with(|o| o.max_concurrent_calls = 4);
    let plugin = world.attach("p", &["kv"]);
    let stream = UnixStream::connect(&plugin.socket).await.expect("connect");
    let (mut send, mut connection) = h2::client::handshake(stream).await.expect("h2");
    // One request, answered (unauthenticated): by then the server's
    // SETTINGS have been read.
    let (response, mut body) = send.send_request(grpc("KvGet"), false).expect("send");
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .expect("body");
    tokio::select! {
        answered = response => { answered.expect("an answer"); }
        ended = &mut connection => panic!("connection ended first: {ended:?}"),
    }
    assert_eq!(connection.max_concurrent_send_streams(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_request_never_finished_is_reset_once_no_call_could_still_run() {
    let world = World::with(|o| {
        o.call_timeout = Duration::from_secs(2);
        o.describe_wait = Duration::from_secs(3);
    });
    let plugin = world.attach("p", &["kv"]);
    let stream = UnixStream::connect(&plugin.socket).await.expect("connect");
    let (mut send, connection) = h2::client::handshake(stream).await.expect("h2");
    tokio::spawn(connection);
    let (response, mut body) = send.send_request(grpc("KvSet"), false).expect("send");
    // A message announced as 1 MiB, of which two bytes come.
    body.send_data(bytes::Bytes::from_static(&[0, 0, 16, 0, 0, 1, 2]), false)
        .expect("part of a body");
    let began = tokio::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(3600), response)
        .await
        .expect("the host ends the stalled request");
    assert!(ended.is_err(), "reset, not answered: {ended:?}");
    // Not before a legitimate call could have ended.
    assert!(
        began.elapsed() >= Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    drop(body);
}
