//! `audit-log`: appends one JSON line per job to a file.
//!
//! In `post_container` it records what it saw under `/metadata/audit_log`;
//! in `cleanup`, which runs last for every job (also after a veto or a
//! failure), it appends the job's line:
//!
//! ```json
//! {"job_id":"6f1c…","command":["make","test"],"exit_code":0,"status":"succeeded","dry_run":false,"recorded_at":"2024-05-01T12:00:00.250Z"}
//! ```
//!
//! `exit_code` is the context's `/exit_code`, else the one `post_container`
//! recorded, else `null` (the command did not run: a dry run or a veto).
//! `recorded_at` is RFC 3339 in UTC. Everything it needs travels in the
//! context, so the plugin keeps no per-job state.
//!
//! The file is opened in append mode (created if missing, mode 0600) for
//! each line, and the line goes out in one write, so the lines of concurrent
//! jobs do not interleave; a file that cannot be opened or written is
//! `UNAVAILABLE`, naming the path and the OS error. A symbolic link at the
//! path is refused rather than followed, and so is anything but a regular
//! file: no one who can write to the directory can redirect the log.
//!
//! # Config
//!
//! ```toml
//! [plugin.config]
//! path = "/var/log/outboard/audit.jsonl"   # relative to the plugin's working directory
//! ```
//!
//! # Patches
//!
//! Both phases are parallel in the job profile, so it writes only under its
//! own key:
//!
//! - `post_container`: `/metadata/audit_log = {"exit_code": N or null, "seen_at": "<RFC 3339>"}`.
//! - `cleanup`: `/metadata/audit_log/recorded_at = "<RFC 3339>"`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use outboard_examples::{
    Clock, append_line, as_integer, command_argv, exit_code, job_id, rfc3339_millis,
};
use outboard_plugin::{Config, Invocation, Manifest, Plugin, PluginError, Reply};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where `post_container` leaves the exit code for `cleanup`.
const SEEN_EXIT_CODE: &str = "/metadata/audit_log/exit_code";

/// The config, as its schema describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The file the lines are appended to.
    path: PathBuf,
}

/// One line of the audit log, its fields in this order.
#[derive(Debug, Serialize)]
struct Record<'a> {
    job_id: &'a str,
    command: Vec<String>,
    exit_code: Option<i64>,
    status: &'a str,
    dry_run: bool,
    recorded_at: String,
}

/// The plugin: the file from `Configure` and a clock.
struct AuditLog {
    /// `None` until configured.
    path: RwLock<Option<PathBuf>>,
    /// Where `seen_at` and `recorded_at` come from.
    clock: Clock,
}

impl AuditLog {
    fn new(clock: Clock) -> AuditLog {
        AuditLog {
            path: RwLock::new(None),
            clock,
        }
    }

    /// `cleanup`: appends the job's line.
    async fn record(&self, invocation: &Invocation) -> Result<Reply, PluginError> {
        let path = self
            .path
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| PluginError::failed("audit-log was not configured with a `path`"))?;
        let exit_code = match exit_code(invocation)? {
            Some(code) => Some(code),
            None => seen_exit_code(invocation)?,
        };
        let recorded_at = rfc3339_millis((self.clock)());
        let record = Record {
            job_id: job_id(invocation)?,
            command: command_argv(invocation)?,
            exit_code,
            status: status(invocation)?,
            dry_run: dry_run(invocation)?,
            recorded_at: recorded_at.clone(),
        };
        let line = serde_json::to_string(&record).map_err(|e| {
            PluginError::internal(format!("cannot serialize the audit record: {e}"))
        })?;
        append_line(&path, &line).await?;
        Ok(Reply::ok()
            .set("/metadata/audit_log/recorded_at", recorded_at)
            .with_message(format!(
                "recorded job {} in {}",
                record.job_id,
                path.display()
            )))
    }
}

impl Plugin for AuditLog {
    fn manifest(&self) -> Manifest {
        Manifest::new("audit-log", env!("CARGO_PKG_VERSION"))
            .describe("Appends one JSON line per job to an audit file")
            // Recording what was seen again is harmless.
            .subscribe_idempotent("post_container", 0)
            // Not idempotent: a retry would append a second line.
            .subscribe("cleanup", 0)
            .config_schema(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "path": {
                        "description": "The file to append one JSON line per job to (created if missing)",
                        "type": "string",
                        "minLength": 1
                    }
                },
                "required": ["path"],
                "additionalProperties": false
            }))
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let settings: Settings = config.deserialize()?;
        if settings.path.as_os_str().is_empty() {
            return Err(PluginError::invalid_config("path: must not be empty"));
        }
        *self.path.write().unwrap_or_else(PoisonError::into_inner) = Some(settings.path);
        Ok(())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        match invocation.phase.as_str() {
            "post_container" => {
                let code = exit_code(&invocation)?;
                Ok(Reply::ok().set(
                    "/metadata/audit_log",
                    json!({"exit_code": code, "seen_at": rfc3339_millis((self.clock)())}),
                ))
            }
            "cleanup" => self.record(&invocation).await,
            other => Err(PluginError::failed(format!(
                "audit-log does not handle phase {other:?}"
            ))),
        }
    }
}

/// The exit code `post_container` recorded, if it ran and saw one.
fn seen_exit_code(invocation: &Invocation) -> Result<Option<i64>, PluginError> {
    match invocation.get(SEEN_EXIT_CODE) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => as_integer(value).map(Some).ok_or_else(|| {
            PluginError::invalid_context(format!(
                "{SEEN_EXIT_CODE} is {value}, expected an integer"
            ))
        }),
    }
}

/// `/status`: `succeeded` or `failed`.
fn status(invocation: &Invocation) -> Result<&str, PluginError> {
    match invocation.context.get("status") {
        Some(Value::String(s)) if s == "succeeded" || s == "failed" => Ok(s),
        None => Err(PluginError::invalid_context(
            "/status is missing, expected \"succeeded\" or \"failed\"",
        )),
        Some(other) => Err(PluginError::invalid_context(format!(
            "/status is {other}, expected \"succeeded\" or \"failed\""
        ))),
    }
}

/// `/dry_run`: a boolean, `false` if absent.
fn dry_run(invocation: &Invocation) -> Result<bool, PluginError> {
    match invocation.context.get("dry_run") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(PluginError::invalid_context(format!(
            "/dry_run is {other}, expected a boolean"
        ))),
    }
}

fn main() -> ExitCode {
    outboard_plugin::run(AuditLog::new(SystemTime::now))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outboard_plugin::Code;
    use outboard_plugin::testing::Harness;
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2024-05-01T12:00:00.250Z.
    fn fixed() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_714_564_800_250)
    }

    const JOB_ID: &str = "6f1c2a8e-0b7d-4c11-9a53-2d4e5f607182";

    async fn configured(path: &Path) -> Harness<AuditLog> {
        let h = Harness::new(AuditLog::new(fixed));
        h.configure(json!({"path": path})).await.unwrap();
        h
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn one_line_per_job_across_post_container_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let h = configured(&path).await;

        let mut ctx = json!({
            "job_id": JOB_ID,
            "command": ["make", "test"],
            "env": {"CI": "1"},
            "metadata": {"job_timer": {"duration_ms": 5}},
            "dry_run": false,
            "exit_code": 2,
        });
        let seen = h.invoke("post_container", ctx.clone()).await.unwrap();
        assert_eq!(
            seen.get("/metadata/audit_log"),
            Some(&json!({"exit_code": 2, "seen_at": "2024-05-01T12:00:00.250Z"}))
        );
        assert!(!path.exists(), "post_container writes nothing");

        // The runner carries the merged context on and adds the status.
        ctx = seen.context;
        ctx["status"] = json!("failed");
        let done = h.invoke("cleanup", ctx).await.unwrap();
        assert_eq!(
            done.get("/metadata/audit_log/recorded_at"),
            Some(&json!("2024-05-01T12:00:00.250Z"))
        );

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"job_id\":\"{JOB_ID}\",\"command\":[\"make\",\"test\"],\"exit_code\":2,\
                 \"status\":\"failed\",\"dry_run\":false,\
                 \"recorded_at\":\"2024-05-01T12:00:00.250Z\"}}\n"
            ),
            "exactly one line, fields in order"
        );
    }

    #[tokio::test]
    async fn a_command_that_did_not_run_has_a_null_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let h = configured(&path).await;
        let ctx = json!({
            "job_id": JOB_ID,
            "command": ["deploy"],
            "env": {},
            "metadata": {},
            "dry_run": true,
        });
        let seen = h.invoke("post_container", ctx).await.unwrap();
        assert_eq!(
            seen.get("/metadata/audit_log/exit_code"),
            Some(&json!(null))
        );
        let mut ctx = seen.context;
        ctx["status"] = json!("succeeded");
        h.invoke("cleanup", ctx).await.unwrap();

        let record = &lines(&path)[0];
        assert_eq!(record["exit_code"], json!(null));
        assert_eq!(record["dry_run"], json!(true));
        assert_eq!(record["status"], json!("succeeded"));
    }

    #[tokio::test]
    async fn cleanup_falls_back_to_what_post_container_saw_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
        let h = configured(&path).await;
        let ctx = json!({
            "job_id": JOB_ID,
            "command": ["true"],
            "metadata": {"audit_log": {"exit_code": 0, "seen_at": "x"}},
            "status": "succeeded",
        });
        h.invoke("cleanup", ctx).await.unwrap();
        let all = lines(&path);
        assert_eq!(all.len(), 2, "appended, not truncated");
        assert_eq!(all[1]["exit_code"], json!(0));
        assert_eq!(all[1]["dry_run"], json!(false), "absent means false");
    }

    #[tokio::test]
    async fn concurrent_jobs_each_get_a_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let h = std::sync::Arc::new(configured(&path).await);
        let mut tasks = Vec::new();
        for n in 0..16 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                let ctx = json!({
                    "job_id": format!("job-{n}"),
                    "command": ["echo", "x".repeat(4096)],
                    "exit_code": n,
                    "status": "succeeded",
                });
                h.invoke("cleanup", ctx).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut ids: Vec<String> = lines(&path)
            .iter()
            .map(|l| l["job_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        let mut want: Vec<String> = (0..16).map(|n| format!("job-{n}")).collect();
        want.sort();
        assert_eq!(ids, want);
    }

    #[tokio::test]
    async fn an_unwritable_path_is_unavailable_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("audit.jsonl");
        let h = configured(&path).await;
        let ctx = json!({"job_id": JOB_ID, "command": ["true"], "status": "succeeded"});
        let err = h.invoke("cleanup", ctx).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(
            err.message(),
            format!(
                "cannot open {} for appending: No such file or directory (os error 2)",
                path.display()
            )
        );
    }

    #[tokio::test]
    async fn a_link_planted_at_the_path_is_refused_and_a_new_file_is_private() {
        use outboard_examples::testing::{PRECIOUS, mode, plant_link};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let victim = plant_link(&path);
        let h = configured(&path).await;
        let ctx = json!({"job_id": JOB_ID, "command": ["true"], "status": "succeeded"});
        let err = h.invoke("cleanup", ctx.clone()).await.unwrap_err();
        assert_eq!(err, outboard_examples::link_refused(&path));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), PRECIOUS);

        std::fs::remove_file(&path).unwrap();
        h.invoke("cleanup", ctx).await.unwrap();
        assert_eq!(mode(&path), outboard_examples::NEW_FILE_MODE);
        assert_eq!(lines(&path).len(), 1);
    }

    #[tokio::test]
    async fn bad_config_and_context_are_invalid_argument() {
        let h = Harness::new(AuditLog::new(fixed));
        let err = h.configure(json!({})).await.unwrap_err();
        assert!(err.message().contains("missing field `path`"), "{err}");
        let err = h.configure(json!({"path": ""})).await.unwrap_err();
        assert_eq!(err.message(), "path: must not be empty");
        let err = h
            .configure(json!({"path": "/tmp/x", "rotate": true}))
            .await
            .unwrap_err();
        assert!(err.message().contains("unknown field `rotate`"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let h = configured(&path).await;
        let base = json!({"job_id": JOB_ID, "command": ["true"], "status": "succeeded"});
        for (key, value, want) in [
            (
                "status",
                json!("done"),
                "/status is \"done\", expected \"succeeded\" or \"failed\"",
            ),
            (
                "dry_run",
                json!("no"),
                "/dry_run is \"no\", expected a boolean",
            ),
            (
                "job_id",
                json!(7),
                "/job_id is 7, expected the job's id (a non-empty string)",
            ),
            (
                "exit_code",
                json!("0"),
                "/exit_code is \"0\", expected an integer",
            ),
        ] {
            let mut ctx = base.clone();
            ctx[key] = value;
            let err = h.invoke("cleanup", ctx).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument);
            assert_eq!(err.message(), want);
        }
        assert!(!path.exists(), "nothing written for a bad context");
    }

    #[test]
    fn manifest_subscribes_to_both_phases_with_a_closed_schema() {
        let h = Harness::new(AuditLog::new(fixed));
        let m = h.manifest();
        assert_eq!((m.name(), m.version()), ("audit-log", "0.1.0"));
        let post = m.subscription_for("post_container").unwrap();
        let cleanup = m.subscription_for("cleanup").unwrap();
        assert_eq!((post.priority, cleanup.priority), (0, 0));
        assert!(!cleanup.idempotent);
        let schema = m.schema().unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["required"], json!(["path"]));
    }
}
