//! The results as one markdown table of figures (with their ratios to the
//! floors and to go-plugin) and one of targets, PASS or MISS.

mod daemon;
mod observability;
mod sandbox;
mod services;

use std::fmt::Write as _;
use std::time::Duration;

use outboard_host::Mode;

pub(crate) use self::daemon::{DaemonResults, JobRuns, Rss, note as daemon_note};
pub(crate) use self::observability::{Observability, ObservedLoad};
pub(crate) use self::sandbox::{SandboxResults, SandboxRow};
pub(crate) use self::services::{EventResults, HostServicesResults, KvResults};
use crate::goplugin::GoPlugin;
use crate::outboard::{FanOut, InvokePath};
use crate::stats::Latency;

/// Everything one run measured.
#[derive(Debug)]
pub(crate) struct Results {
    /// (a) raw 64-byte ping-pong.
    pub raw: Latency,
    /// (b) bare tonic `Invoke`.
    pub tonic: Latency,
    /// (b) its throughput by concurrency.
    pub tonic_throughput: Vec<(usize, f64)>,
    /// (c) one dispatch to one no-op plugin over the fast path.
    pub invoke: Latency,
    /// (c) the same over gRPC.
    pub invoke_grpc: Latency,
    /// (f) Outboard's throughput by concurrency, over the fast path.
    pub outboard_throughput: Vec<(usize, f64)>,
    /// (f) the same over gRPC.
    pub outboard_grpc_throughput: Vec<(usize, f64)>,
    /// (i) the no-op plugin's RSS, KiB.
    pub plugin_rss_kib: u64,
    /// (d) the Go example plugin, or why not.
    pub go_example: Result<Latency, String>,
    /// (d) the Python example plugin over the fast path, or why not.
    pub python_example: Result<Latency, String>,
    /// (d) the same over gRPC, or why not.
    pub python_example_grpc: Result<Latency, String>,
    /// (e) by mode, N and path.
    pub fan_out: Vec<FanOut>,
    /// (b) parallel fan-out to N bare tonic servers: N and the latency.
    pub tonic_fan_out: (usize, Latency),
    /// (g) one plugin.
    pub cold_one: Latency,
    /// (g) `many_count` plugins at once.
    pub cold_many: Latency,
    /// How many plugins in `cold_many` and `host_rss_many`.
    pub many_count: usize,
    /// (h).
    pub restart: Latency,
    /// (i) host RSS with no plugins, KiB.
    pub host_rss_none: u64,
    /// (i) host RSS with `many_count` plugins, KiB.
    pub host_rss_many: u64,
    /// (j), or why not.
    pub goplugin: Result<GoPlugin, String>,
    /// (k), (l) and (m): the daemon.
    pub daemon: DaemonResults,
    /// (n) the cost of observability, or why not.
    pub observability: Result<Observability, String>,
    /// (o) and (p): host services.
    pub services: HostServicesResults,
    /// (q) spawn to ready by sandbox, or why not.
    pub sandbox: Result<SandboxResults, String>,
}

/// The most of an error a table cell shows.
const MISSING_WIDTH: usize = 48;

/// A value in a cell.
fn time(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn rate(r: f64) -> String {
    format!("{:.0}/s", r)
}

fn mem(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

fn ratio(x: Option<f64>) -> String {
    match x {
        Some(r) if r.is_finite() => format!("{r:.2}×"),
        _ => "—".to_owned(),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// One row of the figures table.
struct Row {
    item: &'static str,
    what: String,
    n: String,
    p50: String,
    p99: String,
    ratios: [Option<f64>; 3],
}

/// A memory row: `kib` measured once, against go-plugin by `vs_go`.
fn memory_row(item: &'static str, what: String, kib: u64, vs_go: Option<f64>) -> Row {
    Row {
        item,
        what,
        n: "1".into(),
        p50: mem(kib),
        p99: "—".into(),
        ratios: [None, None, vs_go],
    }
}

/// A target and whether it was met.
struct Target {
    what: &'static str,
    measured: String,
    pass: Option<bool>,
}

impl Results {
    fn go(&self) -> Option<&GoPlugin> {
        self.goplugin.as_ref().ok()
    }

    fn go_p50(&self) -> Option<f64> {
        self.go().map(|g| secs(g.latency.p50))
    }

    fn latency_row(&self, item: &'static str, what: String, l: &Latency) -> Row {
        let p50 = secs(l.p50);
        Row {
            item,
            what,
            n: l.n.to_string(),
            p50: time(l.p50),
            p99: time(l.p99),
            ratios: [
                Some(p50 / secs(self.raw.p50)),
                Some(p50 / secs(self.tonic.p50)),
                self.go_p50().map(|g| p50 / g),
            ],
        }
    }

    fn missing_row(item: &'static str, what: String, why: &str) -> Row {
        // The table keeps the first line, cut short; the run's stderr has
        // the whole error.
        let first = why.lines().next().unwrap_or_default();
        let short: String = first.chars().take(MISSING_WIDTH).collect();
        let ellipsis = if short.len() < why.len() { "…" } else { "" };
        Row {
            item,
            what,
            n: "—".into(),
            p50: format!("{short}{ellipsis}"),
            p99: "—".into(),
            ratios: [None; 3],
        }
    }

    /// The table's rows, in item order.
    fn rows(&self) -> Vec<Row> {
        let mut rows = self.latency_rows();
        rows.extend(self.throughput_rows());
        rows.extend(self.start_rows());
        rows.extend(self.memory_rows());
        rows.extend(self.goplugin_rows());
        rows.extend(self.daemon_rows());
        rows
    }

    /// (a) to (e), and (b)'s fan-out.
    fn latency_rows(&self) -> Vec<Row> {
        let mut rows = vec![
            self.latency_row("a", "raw Unix socket, 64 B ping-pong".into(), &self.raw),
            self.latency_row(
                "b",
                "bare tonic `Invoke` over a Unix socket".into(),
                &self.tonic,
            ),
            self.latency_row(
                "c",
                "Outboard `Host::dispatch`, 1 Rust no-op plugin, fast path".into(),
                &self.invoke,
            ),
            self.latency_row(
                "c",
                "Outboard `Host::dispatch`, 1 Rust no-op plugin, gRPC".into(),
                &self.invoke_grpc,
            ),
        ];
        for (what, result) in [
            ("Go `env-guard` (pre_validation), gRPC", &self.go_example),
            (
                "Python `secret-scrubber` (pre_container), fast path",
                &self.python_example,
            ),
            (
                "Python `secret-scrubber` (pre_container), gRPC",
                &self.python_example_grpc,
            ),
        ] {
            let what = format!("Outboard `Host::dispatch`, {what}");
            rows.push(match result {
                Ok(l) => self.latency_row("d", what, l),
                Err(why) => Self::missing_row("d", what, why),
            });
        }
        for (mode, n, path, l) in &self.fan_out {
            let (mode, path) = (mode.as_str(), path.label());
            rows.push(self.latency_row("e", format!("fan-out, {mode}, N = {n}, {path}"), l));
        }
        let (n, l) = &self.tonic_fan_out;
        rows.push(self.latency_row(
            "b",
            format!("fan-out, parallel, bare tonic to {n} servers"),
            l,
        ));
        rows
    }

    /// (b) and (f): bare tonic's and Outboard's throughput.
    fn throughput_rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (item, who, series) in [
            ("b", "bare tonic", &self.tonic_throughput),
            ("f", "Outboard, fast path", &self.outboard_throughput),
            ("f", "Outboard, gRPC", &self.outboard_grpc_throughput),
        ] {
            for &(c, r) in series {
                let go = self.go().and_then(|g| g.throughput(c)).map(|g| r / g);
                rows.push(self.rate_row(item, who, c, r, go));
            }
        }
        rows
    }

    /// (g) cold starts and (h) restarts.
    fn start_rows(&self) -> Vec<Row> {
        let go_cold = self.go().map(|g| secs(g.cold.p50));
        let go_many = self.go().map(|g| secs(g.many.p50));
        vec![
            Row {
                ratios: [None, None, go_cold.map(|g| secs(self.cold_one.p50) / g)],
                ..self.latency_row(
                    "g",
                    "cold start to ready, 1 Rust plugin".into(),
                    &self.cold_one,
                )
            },
            Row {
                ratios: [None, None, go_many.map(|g| secs(self.cold_many.p50) / g)],
                ..self.latency_row(
                    "g",
                    format!("cold start to ready, {} plugins at once", self.many_count),
                    &self.cold_many,
                )
            },
            Row {
                ratios: [None; 3],
                ..self.latency_row("h", "restart, SIGKILL → ready again".into(), &self.restart)
            },
        ]
    }

    /// (i) memory, against go-plugin's.
    fn memory_rows(&self) -> Vec<Row> {
        let go = self.go();
        [
            (
                "host RSS, 0 plugins".to_owned(),
                self.host_rss_none,
                go.map(|g| g.info.host_rss_idle_kib),
            ),
            (
                format!("host RSS, {} plugins", self.many_count),
                self.host_rss_many,
                go.map(|g| g.host_rss_many_kib),
            ),
            (
                "RSS of one Rust no-op plugin".to_owned(),
                self.plugin_rss_kib,
                go.map(|g| g.plugin_rss_kib),
            ),
        ]
        .into_iter()
        .map(|(what, kib, go)| memory_row("i", what, kib, go.map(|g| kib as f64 / g as f64)))
        .collect()
    }

    /// (j) go-plugin, or why it is missing.
    fn goplugin_rows(&self) -> Vec<Row> {
        let Some(g) = self.go() else {
            return vec![Self::missing_row(
                "j",
                "go-plugin".into(),
                self.goplugin.as_ref().err().map_or("", String::as_str),
            )];
        };
        let mut rows = vec![self.latency_row(
            "j",
            format!("go-plugin {} (gRPC), no-op call", g.info.go_plugin_version),
            &g.latency,
        )];
        for &(c, r) in &g.throughput {
            rows.push(self.rate_row("j", "go-plugin", c, r, Some(1.0)));
        }
        rows.push(Row {
            item: "j",
            what: "go-plugin cold start to first call answered".into(),
            n: g.cold.n.to_string(),
            p50: time(g.cold.p50),
            p99: time(g.cold.p99),
            ratios: [None, None, Some(1.0)],
        });
        rows.push(Row {
            ratios: [None, None, Some(1.0)],
            ..self.latency_row(
                "j",
                format!(
                    "go-plugin: {} plugins at once to first call answered",
                    self.many_count
                ),
                &g.many,
            )
        });
        for (what, kib) in [
            (
                "go-plugin host RSS, 0 plugins".to_owned(),
                g.info.host_rss_idle_kib,
            ),
            (
                format!("go-plugin host RSS, {} plugins", self.many_count),
                g.host_rss_many_kib,
            ),
            ("RSS of the go-plugin plugin".to_owned(), g.plugin_rss_kib),
        ] {
            rows.push(memory_row("j", what, kib, Some(1.0)));
        }
        rows
    }

    /// A throughput row: `who`'s rate `r` at concurrency `c`, against bare
    /// tonic's at the same concurrency and `vs_go`.
    fn rate_row(&self, item: &'static str, who: &str, c: usize, r: f64, vs_go: Option<f64>) -> Row {
        let tonic = self
            .tonic_throughput
            .iter()
            .find(|(tc, _)| *tc == c)
            .map(|(_, t)| r / t);
        Row {
            item,
            what: format!("throughput, {who}, concurrency {c}"),
            n: "—".into(),
            p50: rate(r),
            p99: "—".into(),
            ratios: [None, tonic, vs_go],
        }
    }

    /// (e) parallel to 16 over `path`, against one dispatch over it.
    fn parallel_16(&self, path: InvokePath, one: &Latency) -> Option<f64> {
        self.fan_out
            .iter()
            .find(|(m, n, p, _)| *m == Mode::Parallel && *n == 16 && *p == path)
            .map(|(_, _, _, l)| secs(l.p50) / secs(one.p50))
    }

    /// The invoke targets: the fast path against go-plugin, the raw socket
    /// and its own gRPC figures; gRPC against bare tonic.
    fn invoke_targets(&self) -> Vec<Target> {
        let fast = secs(self.invoke.p50);
        let grpc = secs(self.invoke_grpc.p50);
        let mut targets = Vec::new();
        let go = self.go_p50().map(|g| fast / g);
        targets.push(Target {
            what: "dispatch p50, fast path ≤ 0.5× go-plugin (c / j)",
            measured: ratio(go),
            pass: go.map(|r| r <= 0.5),
        });
        let raw = fast / secs(self.raw.p50);
        targets.push(Target {
            what: "dispatch p50, fast path ≤ 10× the raw socket (c / a)",
            measured: format!("{raw:.2}×"),
            pass: Some(raw <= 10.0),
        });
        let at = |series: &[(usize, f64)]| series.iter().find(|(n, _)| *n == 64).map(|(_, r)| *r);
        let tp_go = at(&self.outboard_throughput)
            .zip(self.go().and_then(|g| g.throughput(64)))
            .map(|(o, g)| o / g);
        targets.push(Target {
            what: "throughput at concurrency 64, fast path ≥ 1.5× go-plugin (f / j)",
            measured: ratio(tp_go),
            pass: tp_go.map(|r| r >= 1.5),
        });
        let par16 = self.parallel_16(InvokePath::Fast, &self.invoke);
        let par16_grpc = self.parallel_16(InvokePath::Grpc, &self.invoke_grpc);
        let floor16 = (self.tonic_fan_out.0 == 16)
            .then(|| secs(self.tonic_fan_out.1.p50) / secs(self.tonic.p50));
        targets.push(Target {
            what: "parallel fan-out to 16 p50 ≤ 4× one dispatch, fast path (e / c)",
            measured: format!(
                "{} (gRPC: {}, bare tonic: {})",
                ratio(par16),
                ratio(par16_grpc),
                ratio(floor16)
            ),
            pass: par16.map(|r| r <= 4.0),
        });
        let python = match (&self.python_example, &self.python_example_grpc) {
            (Ok(fast), Ok(grpc)) => Some(secs(fast.p50) / secs(grpc.p50)),
            _ => None,
        };
        targets.push(Target {
            what: "Python example p50, fast path ≤ 0.5× its gRPC (d / d)",
            measured: ratio(python),
            pass: python.map(|r| r <= 0.5),
        });
        let go_example = self
            .go_example
            .as_ref()
            .ok()
            .map(|l| secs(l.p50) / secs(self.tonic.p50));
        targets.push(Target {
            what: "Go example (gRPC) p50 ≤ 1.67× bare tonic, its ratio before the fast path (d / b)",
            measured: ratio(go_example),
            pass: go_example.map(|r| r <= 1.67),
        });
        let r = grpc / secs(self.tonic.p50);
        targets.push(Target {
            what: "dispatch p50, gRPC ≤ 1.3× bare tonic (c / b)",
            measured: format!("{r:.2}×"),
            pass: Some(r <= 1.3),
        });
        let tp = at(&self.outboard_grpc_throughput)
            .zip(at(&self.tonic_throughput))
            .map(|(o, t)| o / t);
        targets.push(Target {
            what: "throughput at concurrency 64, gRPC ≥ 0.8× bare tonic (f / b)",
            measured: ratio(tp),
            pass: tp.map(|r| r >= 0.8),
        });
        targets
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = self.invoke_targets();
        targets.push(Target {
            what: "cold start of a Rust plugin p50 ≤ 10 ms",
            measured: time(self.cold_one.p50),
            pass: Some(self.cold_one.p50 <= Duration::from_millis(10)),
        });
        targets.push(Target {
            what: "100 plugins ready ≤ 2 s (slowest run)",
            measured: if self.many_count == 100 {
                time(self.cold_many.p99)
            } else {
                format!("only {} plugins measured", self.many_count)
            },
            pass: Some(self.many_count == 100 && self.cold_many.p99 <= Duration::from_secs(2)),
        });
        targets.push(Target {
            what: "SIGKILL → ready p50 ≤ 50 ms",
            measured: time(self.restart.p50),
            pass: Some(self.restart.p50 <= Duration::from_millis(50)),
        });
        targets.push(Target {
            what: "host RSS ≤ 20 MB with 100 plugins",
            measured: mem(self.host_rss_many),
            pass: Some(self.host_rss_many as f64 * 1024.0 <= 20e6),
        });
        targets.extend(self.daemon_targets());
        targets.extend(self.observability_targets());
        targets
    }

    /// The two tables, as markdown.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let mut figures = vec![vec![
            "".to_owned(),
            "measurement".to_owned(),
            "n".to_owned(),
            "p50 / value".to_owned(),
            "p99".to_owned(),
            "× (a) raw".to_owned(),
            "× (b) tonic".to_owned(),
            "× (j) go-plugin".to_owned(),
        ]];
        for row in self.rows() {
            figures.push(vec![
                format!("({})", row.item),
                row.what,
                row.n,
                row.p50,
                row.p99,
                ratio(row.ratios[0]),
                ratio(row.ratios[1]),
                ratio(row.ratios[2]),
            ]);
        }
        table(
            &mut out,
            &figures,
            &[false, false, true, true, true, true, true, true],
        );
        out.push('\n');
        out.push_str(&self.observability_markdown());
        out.push('\n');
        out.push_str(&self.services.markdown());
        out.push('\n');
        out.push_str(&sandbox_markdown(&self.sandbox));
        out.push('\n');
        let mut targets = vec![vec![
            "target".to_owned(),
            "measured".to_owned(),
            "result".to_owned(),
        ]];
        for t in self.targets() {
            targets.push(vec![
                t.what.to_owned(),
                t.measured,
                match t.pass {
                    Some(true) => "PASS".to_owned(),
                    Some(false) => "MISS".to_owned(),
                    None => "n/a".to_owned(),
                },
            ]);
        }
        table(&mut out, &targets, &[false, true, false]);
        out
    }
}

/// (q)'s table, or why it is missing.
pub(crate) fn sandbox_markdown(sandbox: &Result<SandboxResults, String>) -> String {
    match sandbox {
        Ok(results) => results.markdown(),
        Err(why) => format!("(q) spawn to ready by sandbox: not measured: {why}\n"),
    }
}

/// A markdown table with padded columns (readable as plain text too).
fn table(out: &mut String, rows: &[Vec<String>], right: &[bool]) {
    let columns = rows.first().map_or(0, Vec::len);
    let width: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
                .max(3)
        })
        .collect();
    let line = |out: &mut String, cells: &[String]| {
        out.push('|');
        for (c, cell) in cells.iter().enumerate() {
            let pad = width[c] - cell.chars().count();
            if right[c] {
                let _ = write!(out, " {}{} |", " ".repeat(pad), cell);
            } else {
                let _ = write!(out, " {}{} |", cell, " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(out, &rows[0]);
    out.push('|');
    for c in 0..columns {
        let dashes = "-".repeat(width[c]);
        if right[c] {
            let _ = write!(out, " {}: |", &dashes[1..]);
        } else {
            let _ = write!(out, " {dashes} |");
        }
    }
    out.push('\n');
    for row in &rows[1..] {
        line(out, row);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::goplugin::Info;

    /// A latency of `micros` p50 and three times that p99 (shared with
    /// the sub-tables' tests).
    pub(super) fn latency(micros: u64) -> Latency {
        Latency {
            n: 10,
            p50: Duration::from_micros(micros),
            p99: Duration::from_micros(micros * 3),
        }
    }

    /// A run with every item, go-plugin's included when `go` is set.
    fn results(go: bool) -> Results {
        let goplugin = GoPlugin {
            latency: latency(90),
            throughput: vec![(1, 9_000.0), (16, 40_000.0), (64, 45_000.0)],
            cold: latency(8_000),
            plugin_rss_kib: 9_000,
            many: latency(300_000),
            host_rss_many_kib: 80_000,
            info: Info {
                go_version: "go1.26".into(),
                go_plugin_version: "v1.6.3".into(),
                host_rss_idle_kib: 7_000,
            },
        };
        Results {
            raw: latency(10),
            tonic: latency(60),
            tonic_throughput: vec![(1, 15_000.0), (16, 60_000.0), (64, 70_000.0)],
            invoke: latency(40),
            invoke_grpc: latency(80),
            outboard_throughput: vec![(1, 25_000.0), (16, 90_000.0), (64, 95_000.0)],
            outboard_grpc_throughput: vec![(1, 11_000.0), (16, 50_000.0), (64, 52_000.0)],
            plugin_rss_kib: 6_000,
            go_example: Ok(latency(120)),
            python_example: Ok(latency(300)),
            python_example_grpc: Err("not built (run scripts/tools)".into()),
            fan_out: vec![
                (Mode::Parallel, 16, InvokePath::Fast, latency(150)),
                (Mode::Parallel, 16, InvokePath::Grpc, latency(400)),
                (Mode::Sequential, 16, InvokePath::Fast, latency(600)),
                (Mode::Sequential, 16, InvokePath::Grpc, latency(1_200)),
            ],
            tonic_fan_out: (16, latency(300)),
            cold_one: latency(9_000),
            cold_many: latency(250_000),
            many_count: 100,
            restart: latency(20_000),
            host_rss_none: 5_000,
            host_rss_many: 30_000,
            goplugin: if go {
                Ok(goplugin)
            } else {
                Err("no Go".into())
            },
            daemon: DaemonResults {
                job: Ok(JobRuns {
                    plugins: 10,
                    missing: Vec::new(),
                    standalone: latency(200_000),
                    daemon: latency(9_000),
                }),
                invoke: if go {
                    Ok(latency(160))
                } else {
                    Err("outboard up: no control socket".into())
                },
                examples_rss: Ok(Rss {
                    daemon_kib: 12_000,
                    plugins_kib: 90_000,
                }),
                many_rss: Err("not ready".into()),
            },
            observability: Err("outboard up --http: no such option".into()),
            services: HostServicesResults {
                kv: Err("no venv".into()),
                events: Err("not built".into()),
            },
            sandbox: Err("no cgroup".into()),
        }
    }

    #[test]
    fn rows_come_in_item_order() {
        let items = |go| -> String { results(go).rows().iter().map(|r| r.item).collect() };
        assert_eq!(items(true), "abccdddeeeebbbbffffffgghiiijjjjjjjjjkklmmm");
        assert_eq!(items(false), "abccdddeeeebbbbffffffgghiiijkklmmm");
        println!("{}", results(true).markdown());
        println!("{}", results(false).markdown());
    }

    #[test]
    fn the_invoke_targets_compare_the_fast_path_with_go_plugin_the_socket_and_grpc() {
        let targets = results(true).invoke_targets();
        let measured: Vec<(&str, Option<bool>)> = targets
            .iter()
            .map(|t| (t.measured.as_str(), t.pass))
            .collect();
        assert_eq!(
            measured,
            [
                ("0.44×", Some(true)),
                ("4.00×", Some(true)),
                ("2.11×", Some(true)),
                ("3.75× (gRPC: 5.00×, bare tonic: 5.00×)", Some(true)),
                ("—", None),
                ("2.00×", Some(false)),
                ("1.33×", Some(false)),
                ("0.74×", Some(false)),
            ]
        );
        assert_eq!(results(false).invoke_targets()[0].pass, None);
    }

    #[test]
    fn the_daemon_target_is_the_speed_up_and_its_invoke_cost_is_reported() {
        let targets = results(true).daemon_targets();
        assert_eq!(targets[0].measured, "22.2×");
        assert_eq!(targets[0].pass, Some(true));
        assert_eq!(targets[1].measured, "+120.0 µs per call (4.00× (c))");
        assert_eq!(targets[1].pass, None);
        let missing = results(false).daemon_targets();
        assert_eq!(missing[1].measured, "—");
    }
}
