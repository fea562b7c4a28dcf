//! (o) and (p)'s table: host services as a plugin sees them, the key-value
//! calls against the storage floor and (a), and event delivery.

use super::{ratio, secs, table, time};
use crate::stats::Latency;

/// (o) and (p), each or why not.
#[derive(Debug, Clone)]
pub(crate) struct HostServicesResults {
    /// (o) the key-value store.
    pub kv: Result<KvResults, String>,
    /// (p) events.
    pub events: Result<EventResults, String>,
}

/// (o): each contender's calls, taken in turns.
#[derive(Debug, Clone)]
pub(crate) struct KvResults {
    /// (a)'s raw ping-pong, in the same turns.
    pub raw: Latency,
    /// `KvStore::get` on the services' database, from the harness.
    pub db_get: Latency,
    /// `KvStore::set` on it.
    pub db_set: Latency,
    /// `KvGet` from the Rust plugin through the SDK.
    pub rust_get: Latency,
    /// `KvSet` from it.
    pub rust_set: Latency,
    /// `KvGet` and `KvSet` from the Python plugin, or why not.
    pub python: Result<(Latency, Latency), String>,
}

/// (p): publish-call start to delivery.
#[derive(Debug, Clone)]
pub(crate) struct EventResults {
    /// Subscribers of the fanned-out event.
    pub fan_out: usize,
    /// The `Publish` call itself, in the publisher.
    pub publish: Latency,
    /// To the only subscriber.
    pub one: Latency,
    /// To the last of `fan_out` subscribers, per event.
    pub last: Latency,
    /// To each of them.
    pub each: Latency,
}

/// One row: item, what, the latency, and the floor it is read against.
type Line = (&'static str, String, Latency, Option<Latency>);

impl HostServicesResults {
    /// The rows, in item order; a missing item gives one row saying why.
    fn lines(&self) -> Vec<Result<Line, (&'static str, String)>> {
        let mut lines = Vec::new();
        match &self.kv {
            Ok(kv) => {
                let get = Some(kv.db_get);
                let set = Some(kv.db_set);
                lines.extend([
                    Ok((
                        "o",
                        "raw Unix socket, 64 B ping-pong ((a), same turns)".into(),
                        kv.raw,
                        None,
                    )),
                    Ok((
                        "o",
                        "floor: `Database` get, from the harness".into(),
                        kv.db_get,
                        get,
                    )),
                    Ok((
                        "o",
                        "floor: `Database` set, from the harness".into(),
                        kv.db_set,
                        set,
                    )),
                    Ok((
                        "o",
                        "`KvGet` from a Rust plugin (SDK)".into(),
                        kv.rust_get,
                        get,
                    )),
                    Ok((
                        "o",
                        "`KvSet` from a Rust plugin (SDK)".into(),
                        kv.rust_set,
                        set,
                    )),
                ]);
                match &kv.python {
                    Ok((py_get, py_set)) => lines.extend([
                        Ok((
                            "o",
                            "`KvGet` from a Python plugin (SDK)".into(),
                            *py_get,
                            get,
                        )),
                        Ok((
                            "o",
                            "`KvSet` from a Python plugin (SDK)".into(),
                            *py_set,
                            set,
                        )),
                    ]),
                    Err(why) => lines.push(Err(("o", format!("Python plugin: {why}")))),
                }
            }
            Err(why) => lines.push(Err(("o", format!("key-value store: not measured: {why}")))),
        }
        match &self.events {
            Ok(e) => lines.extend([
                Ok((
                    "p",
                    "`Publish` call, in the publisher".into(),
                    e.publish,
                    None,
                )),
                Ok(("p", "publish → delivered, 1 subscriber".into(), e.one, None)),
                Ok((
                    "p",
                    format!("publish → delivered to the last of {}", e.fan_out),
                    e.last,
                    None,
                )),
                Ok((
                    "p",
                    format!("publish → delivered, each of {}", e.fan_out),
                    e.each,
                    None,
                )),
            ]),
            Err(why) => lines.push(Err(("p", format!("events: not measured: {why}")))),
        }
        lines
    }

    /// The table, under its own heading line.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::from(
            "(o, p) host services, as a plugin sees them: each call timed inside the plugin; \
             the floors in the same turns\n\n",
        );
        let raw = self.kv.as_ref().ok().map(|kv| kv.raw);
        let mut rows = vec![
            [
                "",
                "measurement",
                "n",
                "p50",
                "p99",
                "× (a) raw",
                "p50 × floor",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        for line in self.lines() {
            rows.push(match line {
                Ok((item, what, l, floor)) => vec![
                    format!("({item})"),
                    what,
                    l.n.to_string(),
                    time(l.p50),
                    time(l.p99),
                    ratio(raw.map(|r| secs(l.p50) / secs(r.p50))),
                    ratio(floor.map(|f| secs(l.p50) / secs(f.p50))),
                ],
                Err((item, why)) => {
                    let mut row = vec![format!("({item})"), why];
                    row.extend(["—"; 5].map(str::to_owned));
                    row
                }
            });
        }
        table(
            &mut out,
            &rows,
            &[false, false, true, true, true, true, true],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::latency;
    use super::*;

    #[test]
    fn plugin_calls_are_read_against_their_floor() {
        let results = HostServicesResults {
            kv: Ok(KvResults {
                raw: latency(10),
                db_get: latency(20),
                db_set: latency(1000),
                rust_get: latency(200),
                rust_set: latency(1500),
                python: Err("not built (run scripts/tools)".into()),
            }),
            events: Err("Publish: UNIMPLEMENTED".into()),
        };
        let md = results.markdown();
        let row = |what: &str| {
            md.lines()
                .find(|l| l.contains(what))
                .unwrap_or_else(|| panic!("no row {what} in\n{md}"))
                .to_owned()
        };
        assert!(row("`KvGet` from a Rust plugin").contains("10.00×"), "{md}");
        assert!(row("`KvSet` from a Rust plugin").contains("1.50×"), "{md}");
        assert!(row("Python plugin: not built").contains('—'), "{md}");
        assert!(row("events: not measured: Publish: UNIMPLEMENTED").starts_with("| (p)"));
    }
}
