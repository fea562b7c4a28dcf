//! (p) Host services' events, publish to delivery: a publisher plugin
//! (`bench-services publish`) publishes through the Rust SDK's `Publish`
//! when the harness dispatches `bench_publish` to it, and subscriber
//! plugins (`bench-services subscribe`) report each delivery to a Unix
//! datagram socket of the harness. The host is started as `outboard run`
//! and `up` start it ([`ServicesHost`]), so delivery is the services' own:
//! the outbox, the fan-out, the `event:<name>` invocations.
//!
//! The latency of a delivery is the subscriber's reading of
//! `CLOCK_MONOTONIC` when its handler starts minus the publisher's just
//! before its `Publish` call (the payload carries it): one clock for every
//! process of the machine. `bench.n1` reaches one subscriber, `bench.n16`
//! sixteen; the harness publishes the next event only once the last
//! subscriber reported the previous one, so deliveries never queue.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use outboard_host::PluginSpec;
use serde_json::{Map, Value, json};
use tokio::net::UnixDatagram;

use crate::procs::Paths;
use crate::report::EventResults;
use crate::services::{ServicesHost, plugin};
use crate::stats::Latency;

/// The subscribers of `bench.n16` (one of them also takes `bench.n1`).
pub(crate) const FAN_OUT: usize = 16;

/// How long one event may take to reach every subscriber before the item
/// fails (the services retry a failed delivery after a backoff).
const DELIVERY_BOUND: Duration = Duration::from_secs(30);

/// One published event's deliveries.
#[derive(Debug, Default)]
struct Delivered {
    /// The `Publish` call's own time, as the publisher timed it.
    publish: Duration,
    /// Publish-call start to each subscriber's handler, by instance.
    each: BTreeMap<String, Duration>,
}

/// Measures (p): `events` events per contender (1 and 16 subscribers) over
/// `rounds` turns.
pub(crate) async fn measure(
    paths: &Paths,
    dir: &Path,
    rounds: usize,
    events: usize,
) -> anyhow::Result<EventResults> {
    let dir = dir.join("events");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let socket_path = dir.join("deliveries.sock");
    let socket = UnixDatagram::bind(&socket_path)
        .with_context(|| format!("binding {}", socket_path.display()))?;
    let host = ServicesHost::start(&dir.join("state"), plugins(paths, &dir, &socket_path)).await?;
    let measured = in_turns(&host, &socket, rounds, events).await;
    host.stop().await;
    let [one, sixteen] = measured?;
    let publish = one.iter().chain(&sixteen).map(|d| d.publish).collect();
    let single = one.iter().flat_map(|d| d.each.values().copied()).collect();
    let last = sixteen
        .iter()
        .filter_map(|d| d.each.values().max().copied())
        .collect();
    let each = sixteen
        .iter()
        .flat_map(|d| d.each.values().copied())
        .collect();
    Ok(EventResults {
        fan_out: FAN_OUT,
        publish: Latency::of(publish),
        one: Latency::of(single),
        last: Latency::of(last),
        each: Latency::of(each),
    })
}

/// The publisher and the subscribers: `sub-00` takes `bench.*`, the
/// others `bench.n16`.
fn plugins(paths: &Paths, dir: &Path, socket: &Path) -> Vec<PluginSpec> {
    let bin = paths.bin("bench-services");
    let socket = socket.to_string_lossy().into_owned();
    let mut specs = vec![plugin(
        "publisher",
        bin.clone(),
        vec!["publish".to_owned()],
        dir,
    )];
    for i in 0..FAN_OUT {
        let pattern = if i == 0 { "bench.*" } else { "bench.n16" };
        specs.push(plugin(
            &format!("sub-{i:02}"),
            bin.clone(),
            vec!["subscribe".to_owned(), socket.clone(), pattern.to_owned()],
            dir,
        ));
    }
    specs
}

/// Both contenders' events, in rotating turns; round 0 is a warm-up, not
/// counted.
async fn in_turns(
    host: &ServicesHost,
    socket: &UnixDatagram,
    rounds: usize,
    events: usize,
) -> anyhow::Result<[Vec<Delivered>; 2]> {
    let per_round = (events / rounds).max(1);
    let mut delivered: [Vec<Delivered>; 2] = Default::default();
    let mut seq = 0u64;
    for round in 0..=rounds {
        let n = if round == 0 {
            per_round / 4 + 1
        } else {
            per_round
        };
        for k in 0..2 {
            let who = (round + k) % 2;
            let (name, fan_out) = if who == 0 {
                ("bench.n1", 1)
            } else {
                ("bench.n16", FAN_OUT)
            };
            for _ in 0..n {
                seq += 1;
                let d = one_event(host, socket, name, seq, fan_out).await?;
                if round > 0 {
                    delivered[who].push(d);
                }
            }
        }
    }
    Ok(delivered)
}

/// Publishes `name` once and waits for its `fan_out` deliveries.
async fn one_event(
    host: &ServicesHost,
    socket: &UnixDatagram,
    name: &str,
    seq: u64,
    fan_out: usize,
) -> anyhow::Result<Delivered> {
    let context = match json!({"event": name, "seq": seq}) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let after = host.dispatch("bench_publish", context).await?;
    let publish = after
        .pointer("/bench/publish_ns")
        .and_then(Value::as_u64)
        .map(Duration::from_nanos)
        .context("the publisher answered no /bench/publish_ns")?;
    let mut delivered = Delivered {
        publish,
        each: BTreeMap::new(),
    };
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + DELIVERY_BOUND;
    while delivered.each.len() < fan_out {
        let got = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await;
        let Ok(got) = got else {
            bail!(
                "event {name} #{seq} reached {} of its {fan_out} subscribers within {:?} \
                 (reached: {:?})",
                delivered.each.len(),
                DELIVERY_BOUND,
                delivered.each.keys().collect::<Vec<_>>()
            );
        };
        let line = String::from_utf8_lossy(&buf[..got?]).into_owned();
        let (who, their_seq, took) = parse(&line)?;
        // A late or retried delivery of an earlier event, or a second
        // attempt of this one: the first delivery is the one that counts.
        if their_seq == seq {
            delivered.each.entry(who).or_insert(took);
        }
    }
    Ok(delivered)
}

/// `"<instance> <seq> <t0> <t1> <attempt>"`: the instance, the event's
/// seq and its latency.
fn parse(line: &str) -> anyhow::Result<(String, u64, Duration)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("a subscriber reported {line:?}: field {i} is not a number"))
    };
    let (seq, t0, t1) = (number(1)?, number(2)?, number(3)?);
    let who = fields.first().copied().unwrap_or("?").to_owned();
    Ok((who, seq, Duration::from_nanos(t1.saturating_sub(t0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_line_gives_instance_seq_and_latency() {
        let (who, seq, took) = parse("sub-03 7 1000 251000 1").expect("a well-formed line");
        assert_eq!(who, "sub-03");
        assert_eq!(seq, 7);
        assert_eq!(took, Duration::from_micros(250));
        assert!(parse("sub-03 seven 1 2 1").is_err());
    }
}
