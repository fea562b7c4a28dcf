//! A secret's value never shows anywhere the host writes or answers. A
//! real `outboard up` serves the real notifier, which signs each event
//! with the host secret `notifier-hmac` read through `GetSecret`; the test
//! checks that the signature in its patch is the HMAC under the value (so
//! the value did reach the plugin), then scans everything an operator or a
//! client can see for the value, raw, in hex and in base64: the daemon's
//! stderr at debug level, `outboard logs`, the `run` report file and its
//! `--json`, `status`, `describe`, `reload`, `invoke`, the control API's
//! answers and every file in the daemon's directories (the state database
//! included). Then a reload turns the secret into a command that prints
//! the value on stderr (and stdout) and fails: the plugin's error names the
//! secret and the source kind, and still nothing shows the value.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{bin, outboard, text};
use daemon::Daemon;
use hmac::{Hmac, KeyInit, Mac};
use outboard_proto::control::v1::{GetLogsRequest, GetStatusRequest, InvokeRequest, ReloadRequest};
use outboard_proto::json::json_to_struct;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_stream::StreamExt;

/// A value no output could hold by chance.
fn canary() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("canary-{}-{nanos}-K3y", std::process::id())
}

/// Base64 (the standard alphabet, or the URL-safe one) of `bytes`, with
/// padding.
fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every form of `value` the scan looks for: the value, its hex (both
/// cases), and its base64 in both alphabets at each of the three
/// alignments it may have inside a longer encoded text (the characters
/// its neighbours would change left out).
fn forms(value: &str) -> Vec<String> {
    let mut forms = vec![
        value.to_owned(),
        hex::encode(value),
        hex::encode_upper(value),
    ];
    for url_safe in [false, true] {
        for shift in 0..3 {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(value.as_bytes());
            let encoded = base64(&shifted, url_safe);
            // Skip the characters that hold the filler's bits, and the last
            // group, which the next bytes would change.
            let core = &encoded[(shift * 8).div_ceil(6) + 1..encoded.len() - 4];
            forms.push(core.to_owned());
        }
    }
    forms
}

/// What a scan found: where, and which form.
struct Scan {
    forms: Vec<String>,
    places: usize,
}

impl Scan {
    fn new(value: &str) -> Scan {
        Scan {
            forms: forms(value),
            places: 0,
        }
    }

    /// Fails the test if `text`, from `place`, holds a form of the value.
    fn clean(&mut self, place: &str, text: &str) {
        self.places += 1;
        for form in &self.forms {
            assert!(
                !text.contains(form.as_str()),
                "{place} shows the secret (as {form:?}):\n{text}"
            );
        }
    }

    /// [`Scan::clean`] for a command's stdout and stderr.
    fn output(&mut self, place: &str, out: &Output) {
        self.clean(&format!("{place} (stdout)"), &text(&out.stdout));
        self.clean(&format!("{place} (stderr)"), &text(&out.stderr));
    }

    /// [`Scan::clean`] for every file under `dir` but `except`.
    fn files(&mut self, dir: &Path, except: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                self.files(&path, except);
            } else if path != except && path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                self.clean(
                    &path.display().to_string(),
                    &String::from_utf8_lossy(&bytes),
                );
            }
        }
    }
}

/// The daemon's config: the secret from `source`, the notifier granted it.
fn config(work: &Path, source: &str) -> String {
    format!(
        "[secrets.notifier-hmac]\n{source}\n\n\
         [[plugin]]\nname = \"notifier\"\ncommand = {:?}\ngrant = [\"secret:notifier-hmac\"]\n\n\
         [plugin.config]\nfile = {:?}\n",
        bin("notifier"),
        work.join("events.jsonl"),
    )
}

/// `outboard run --daemon ... --json --report FILE -- true`: its output,
/// and the report file's text.
fn run_job(daemon: &Daemon, report: &Path) -> (Output, String) {
    let out = common::outboard_command()
        .args(["run", "--daemon", "--control-socket"])
        .arg(daemon.socket())
        .arg("--json")
        .arg("--report")
        .arg(report)
        .args(["--", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("run outboard run");
    let written = std::fs::read_to_string(report).unwrap_or_default();
    (out, written)
}

/// The notifier's entry in a job report (the post_container phase's).
fn notifier_entry(report: &Value) -> Value {
    let phases = report["phases"].as_array().expect("phases");
    phases
        .iter()
        .filter(|p| p["phase"] == "post_container")
        .flat_map(|p| p["entries"].as_array().unwrap().iter())
        .find(|e| e["plugin"] == "notifier")
        .unwrap_or_else(|| panic!("no notifier entry: {report:#}"))
        .clone()
}

/// `sha256=<hex HMAC-SHA256 of body under key>`.
fn hmac_of(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Everything the control API answers, scanned.
async fn control_api(daemon: &Daemon, scan: &mut Scan) {
    let mut client = daemon.client().await;
    let status = client
        .get_status(GetStatusRequest::default())
        .await
        .unwrap();
    scan.clean("GetStatus", &format!("{:?}", status.into_inner()));
    let mut logs = client
        .get_logs(GetLogsRequest {
            plugin: "notifier".into(),
            lines: 0,
            since: None,
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut lines = Vec::new();
    while let Some(line) = logs.next().await {
        lines.push(format!("{:?}", line.unwrap()));
    }
    scan.clean("GetLogs", &lines.join("\n"));
    let plan = client
        .reload(ReloadRequest { dry_run: true })
        .await
        .unwrap();
    scan.clean("Reload (dry run)", &format!("{:?}", plan.into_inner()));
    let context = json!({
        "job_id": "leak-scan",
        "command": ["true"],
        "env": {},
        "metadata": {},
        "dry_run": false,
        "exit_code": 0,
    });
    let answer = client
        .invoke(InvokeRequest {
            phase: "post_container".into(),
            context: Some(json_to_struct(context.as_object().unwrap())),
        })
        .await;
    scan.clean("Invoke", &format!("{answer:?}"));
}

/// Every CLI view of the daemon, scanned.
fn cli_views(daemon: &Daemon, scan: &mut Scan) {
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["logs", "notifier"],
        &["logs", "notifier", "--json"],
        &["reload", "--dry-run", "--json"],
    ] {
        scan.output(&format!("outboard {}", args.join(" ")), &daemon.cli(args));
    }
    let config = daemon.config_path().display().to_string();
    let describe = outboard(&["describe", "--plugin", "notifier", "--config", &config]);
    assert!(describe.status.success(), "{}", text(&describe.stderr));
    scan.output("outboard describe", &describe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_value_shows_nowhere_though_the_plugin_uses_it() {
    let value = canary();
    let mut scan = Scan::new(&value);
    let mut key_file = PathBuf::new();
    let daemon = Daemon::launch(
        |work| {
            key_file = work.join("key");
            std::fs::write(&key_file, format!("{value}\n")).unwrap();
            (config(work, "file = \"key\""), vec!["-vv".to_owned()])
        },
        &[],
    );
    daemon.wait_all_ready().await;
    let work = daemon.work().to_owned();

    // The value reached the plugin: its signature is the HMAC under it.
    let (out, written) = run_job(&daemon, &work.join("report.json"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = notifier_entry(&report);
    let events = std::fs::read_to_string(work.join("events.jsonl")).unwrap();
    let line: Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
    let body = serde_json::to_vec(&line["event"]).unwrap();
    let signature = hmac_of(&value, &body);
    assert_eq!(line["signature"], json!(signature), "{entry:#}");
    assert!(entry.to_string().contains(&signature), "{entry:#}");
    scan.output("outboard run --daemon --json", &out);
    scan.clean("the --report file", &written);
    cli_views(&daemon, &mut scan);
    control_api(&daemon, &mut scan).await;

    // A reload makes the secret a command that prints it (from the key
    // file: its argv may be shown, so it must not hold the value) on
    // stderr and stdout, and fails.
    let failing = "command = [\"/bin/sh\", \"-c\", \"cat key >&2; cat key; exit 3\"]";
    daemon.write_config(&config(&work, failing));
    let reload = daemon.cli(&["reload", "--json"]);
    assert!(reload.status.success(), "{}", text(&reload.stderr));
    scan.output("outboard reload --json", &reload);
    let (out, written) = run_job(&daemon, &work.join("report-2.json"));
    let report: Value = serde_json::from_str(&written).expect("a report is written");
    let entry = notifier_entry(&report);
    assert!(
        entry.to_string().contains(
            "secret \\\"notifier-hmac\\\" is unavailable: its command source failed: exited \
             with status 3"
        ),
        "the reloaded definition is used and its failure named: {entry:#}"
    );
    scan.output("outboard run --daemon --json (failing source)", &out);
    scan.clean("the --report file (failing source)", &written);
    cli_views(&daemon, &mut scan);
    control_api(&daemon, &mut scan).await;

    // While the daemon still has them: its state database, the events,
    // the reports, the config.
    scan.files(&work, &key_file);
    let stderr = daemon.stop();
    assert!(
        stderr.contains("secrets changed, added or removed: notifier-hmac"),
        "the reload is logged: {stderr}"
    );
    assert!(
        stderr.contains("secret \"notifier-hmac\" is unavailable"),
        "the failure is logged: {stderr}"
    );
    scan.clean("the daemon's stderr", &stderr);
    assert!(scan.places > 30, "scanned {} places", scan.places);
}

/// The scan would see the value however it is embedded: inside longer
/// hex or base64 texts at every alignment, in either alphabet.
#[test]
fn the_scan_finds_the_value_in_every_encoding_and_alignment() {
    let value = canary();
    let scan_forms = forms(&value);
    let found = |text: &str| scan_forms.iter().any(|f| text.contains(f.as_str()));
    for prefix in ["", "a", "ab", "abc", "{\"k\":\""] {
        for suffix in ["", "x", "xy", "\"}"] {
            let embedded = format!("{prefix}{value}{suffix}");
            assert!(found(&embedded));
            assert!(found(&hex::encode(&embedded)));
            assert!(found(&hex::encode_upper(&embedded)));
            assert!(found(&base64(embedded.as_bytes(), false)), "{embedded}");
            assert!(found(&base64(embedded.as_bytes(), true)), "{embedded}");
        }
    }
    assert!(!found(&base64(
        b"something else entirely, long enough",
        false
    )));
    assert_eq!(
        base64(b"any carnal pleas", false),
        "YW55IGNhcm5hbCBwbGVhcw=="
    );
}
