//! The host socket's HTTP/2 bounds, read from the SETTINGS it sends: a
//! hostile plugin may not open more streams per connection than it may
//! have calls in flight. Every stream may hold a request of up to 4 MiB
//! being received before its call is admitted, so hyper's default of 200
//! streams on each of 8 connections let one plugin pin gigabytes of the
//! host's memory with uploads it never finishes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::World;
use tokio::net::UnixStream;

#[tokio::test]
async fn a_connection_may_open_no_more_streams_than_calls_in_flight() {
    let world = World::with(|o| o.max_concurrent_calls = 4);
    let plugin = world.attach("p", &["kv"]);
    let stream = UnixStream::connect(&plugin.socket).await.expect("connect");
    let (mut send, mut connection) = h2::client::handshake(stream).await.expect("h2");
    // One request, answered (unauthenticated): by then the server's
    // SETTINGS have been read.
    let request = http::Request::post("http://host/outboard.v1.HostService/KvGet")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut body) = send.send_request(request, false).expect("send");
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .expect("body");
    tokio::select! {
        answered = response => { answered.expect("an answer"); }
        ended = &mut connection => panic!("connection ended first: {ended:?}"),
    }
    assert_eq!(connection.max_concurrent_send_streams(), 4);
}
