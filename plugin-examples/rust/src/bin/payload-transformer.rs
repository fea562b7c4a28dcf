//! `payload-transformer`: normalizes a submitted job description before it
//! is accepted, in the style of a Sandrun job rewriter.
//!
//! It subscribes to the sequential phase `submit` (priority 0), whose
//! context carries the job as submitted:
//!
//! ```json
//! {"job": {"image": "python:3.12", "command": "python -c 'print(1)'",
//!          "resources": {"memory_mb": 8192, "cpus": 4}, "labels": {"team": "ml"}}}
//! ```
//!
//! (`image`, `resources` and `labels` are optional; `command` is a string
//! or an argv array of strings.) In one pass it:
//!
//! - sets `image` to `default_image` when the job names none;
//! - splits a string `command` into an argv array: whitespace separates
//!   words, `'...'` keeps everything inside literally, `"..."` too except
//!   that `\"` and `\\` stand for `"` and `\`, and outside quotes a
//!   backslash keeps the next character literally (`a\ b` is one word). No
//!   variables, globs or other shell syntax: `$HOME` stays `$HOME`;
//! - adds the configured `labels` the job does not already have (the job's
//!   own labels win);
//! - lowers `resources.memory_mb` and `resources.cpus` to `max_memory_mb`
//!   and `max_cpus` when they are above them (an absent request is left
//!   alone: the maxima are caps, not defaults).
//!
//! A context without `job`, or whose `job.command` is neither a string nor an
//! array of strings (or is empty, or has an unclosed quote), is
//! `INVALID_ARGUMENT`, saying what was expected.
//!
//! # Config
//!
//! Every key is optional:
//!
//! ```toml
//! [plugin.config]
//! default_image = "docker.io/library/debian:bookworm-slim"
//! max_memory_mb = 4096
//! max_cpus = 2
//!
//! [plugin.config.labels]
//! team = "platform"
//! "sandrun.dev/managed-by" = "outboard"
//! ```
//!
//! # Patches
//!
//! - `/job/image`, `/job/command`, `/job/labels/<name>` (or `/job/labels`
//!   when the job has none), `/job/resources/memory_mb`,
//!   `/job/resources/cpus`: only what changed.
//! - `/metadata/payload_transformer/changes`: a list of short strings, one
//!   per change (empty when the job was already in shape), e.g.
//!   `["image: set to debian:bookworm-slim", "command: split into 3 arguments"]`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{PoisonError, RwLock};

use outboard_plugin::{Config, Invocation, Manifest, Plugin, PluginError, Reply};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The config, as its schema describes it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The image of a job that names none.
    default_image: Option<String>,
    /// Labels to add; the job's own win.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// The most memory a job may ask for, in MiB.
    max_memory_mb: Option<f64>,
    /// The most CPUs a job may ask for.
    max_cpus: Option<f64>,
}

/// The plugin: its config.
struct PayloadTransformer {
    /// The config from `Configure` (nothing to add or cap until then).
    settings: RwLock<Settings>,
}

impl PayloadTransformer {
    fn new() -> PayloadTransformer {
        PayloadTransformer {
            settings: RwLock::new(Settings::default()),
        }
    }
}

impl Plugin for PayloadTransformer {
    fn manifest(&self) -> Manifest {
        Manifest::new("payload-transformer", env!("CARGO_PKG_VERSION"))
            .describe(
                "Normalizes submitted jobs: default image, argv command, labels, resource caps",
            )
            // The rewrite depends only on the config and the context.
            .subscribe_idempotent("submit", 0)
            .config_schema(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "default_image": {
                        "description": "The image of a job that names none",
                        "type": "string",
                        "minLength": 1
                    },
                    "labels": {
                        "description": "Labels to add to every job; a job's own labels win",
                        "type": "object",
                        "propertyNames": {"minLength": 1},
                        "additionalProperties": {"type": "string"}
                    },
                    "max_memory_mb": {
                        "description": "The most memory a job may ask for, in MiB",
                        "type": "number",
                        "exclusiveMinimum": 0
                    },
                    "max_cpus": {
                        "description": "The most CPUs a job may ask for",
                        "type": "number",
                        "exclusiveMinimum": 0
                    }
                },
                "additionalProperties": false
            }))
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let settings: Settings = config.deserialize()?;
        if settings.default_image.as_deref() == Some("") {
            return Err(PluginError::invalid_config(
                "default_image: must not be empty",
            ));
        }
        if settings.labels.contains_key("") {
            return Err(PluginError::invalid_config(
                "labels: a label name must not be empty",
            ));
        }
        for (key, max) in [
            ("max_memory_mb", settings.max_memory_mb),
            ("max_cpus", settings.max_cpus),
        ] {
            if let Some(max) = max
                && !(max.is_finite() && max > 0.0)
            {
                return Err(PluginError::invalid_config(format!(
                    "{key}: {max} is not a positive number"
                )));
            }
        }
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings;
        Ok(())
    }

    async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
        let settings = self
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let job = match invocation.context.get("job") {
            Some(Value::Object(job)) => job,
            None => {
                return Err(PluginError::invalid_context(
                    "/job is missing, expected the job description (an object with a `command`)",
                ));
            }
            Some(other) => {
                return Err(PluginError::invalid_context(format!(
                    "/job is {other}, expected the job description (an object with a `command`)"
                )));
            }
        };

        let mut reply = Reply::ok();
        let mut changes = Vec::new();

        if let Some(argv) = split_if_string(job.get("command"))? {
            changes.push(format!("command: split into {} arguments", argv.len()));
            reply = reply.set("/job/command", json!(argv));
        }

        let has_image = match job.get("image") {
            None | Some(Value::Null) => false,
            Some(Value::String(image)) => !image.is_empty(),
            Some(other) => {
                return Err(PluginError::invalid_context(format!(
                    "/job/image is {other}, expected a string"
                )));
            }
        };
        if let (false, Some(image)) = (has_image, &settings.default_image) {
            changes.push(format!("image: set to {image}"));
            reply = reply.set("/job/image", image.as_str());
        }

        let (labels_reply, label_changes) = add_labels(reply, job.get("labels"), &settings.labels)?;
        reply = labels_reply;
        changes.extend(label_changes);

        let (caps_reply, cap_changes) = cap_resources(reply, job.get("resources"), &settings)?;
        reply = caps_reply;
        changes.extend(cap_changes);

        let message = if changes.is_empty() {
            "job unchanged".to_owned()
        } else {
            changes.join("; ")
        };
        Ok(reply
            .set("/metadata/payload_transformer/changes", json!(changes))
            .with_message(message))
    }
}

/// `job.command` checked: `Some(argv)` if it was a string to split, `None`
/// if it already is an argv array.
fn split_if_string(command: Option<&Value>) -> Result<Option<Vec<String>>, PluginError> {
    const EXPECTED: &str = "expected a command line (a string) or an argv (an array of strings)";
    match command {
        Some(Value::String(line)) => {
            let argv = split_command(line).map_err(|why| {
                PluginError::invalid_context(format!(
                    "/job/command {line:?} cannot be split into arguments: {why}"
                ))
            })?;
            if argv.is_empty() {
                return Err(PluginError::invalid_context(format!(
                    "/job/command is {line:?}, {EXPECTED}, with at least the program"
                )));
            }
            Ok(Some(argv))
        }
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(PluginError::invalid_context(format!(
                    "/job/command is [], {EXPECTED}, with at least the program"
                )));
            }
            if let Some((i, item)) = items.iter().enumerate().find(|(_, v)| !v.is_string()) {
                return Err(PluginError::invalid_context(format!(
                    "/job/command/{i} is {item}, expected a string (the argv holds only strings)"
                )));
            }
            Ok(None)
        }
        None => Err(PluginError::invalid_context(format!(
            "/job/command is missing, {EXPECTED}"
        ))),
        Some(other) => Err(PluginError::invalid_context(format!(
            "/job/command is {other}, {EXPECTED}"
        ))),
    }
}

/// Adds the configured labels the job lacks.
fn add_labels(
    mut reply: Reply,
    existing: Option<&Value>,
    wanted: &BTreeMap<String, String>,
) -> Result<(Reply, Vec<String>), PluginError> {
    let existing = match existing {
        None | Some(Value::Null) => None,
        Some(Value::Object(labels)) => {
            if let Some((key, value)) = labels.iter().find(|(_, v)| !v.is_string()) {
                return Err(PluginError::invalid_context(format!(
                    "/job/labels/{} is {value}, expected a string",
                    token(key)
                )));
            }
            Some(labels)
        }
        Some(other) => {
            return Err(PluginError::invalid_context(format!(
                "/job/labels is {other}, expected an object of strings"
            )));
        }
    };
    let added: Vec<(&String, &String)> = wanted
        .iter()
        .filter(|(key, _)| existing.is_none_or(|labels| !labels.contains_key(*key)))
        .collect();
    let changes = added
        .iter()
        .map(|(key, value)| format!("label {key}={value} added"))
        .collect();
    if existing.is_some() {
        for (key, value) in added {
            reply = reply.set(&format!("/job/labels/{}", token(key)), value.as_str());
        }
    } else if !added.is_empty() {
        // No labels object (or a null one) to add members to: set it whole.
        let labels: Map<String, Value> = added
            .into_iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        reply = reply.set("/job/labels", Value::Object(labels));
    }
    Ok((reply, changes))
}

/// Lowers the requested resources to the configured maxima.
fn cap_resources(
    mut reply: Reply,
    resources: Option<&Value>,
    settings: &Settings,
) -> Result<(Reply, Vec<String>), PluginError> {
    let resources = match resources {
        None | Some(Value::Null) => return Ok((reply, Vec::new())),
        Some(Value::Object(resources)) => resources,
        Some(other) => {
            return Err(PluginError::invalid_context(format!(
                "/job/resources is {other}, expected an object with `memory_mb` and/or `cpus`"
            )));
        }
    };
    let mut changes = Vec::new();
    for (key, max) in [
        ("memory_mb", settings.max_memory_mb),
        ("cpus", settings.max_cpus),
    ] {
        let asked = match resources.get(key) {
            None | Some(Value::Null) => continue,
            Some(value) => value
                .as_f64()
                .filter(|n| n.is_finite() && *n > 0.0)
                .ok_or_else(|| {
                    PluginError::invalid_context(format!(
                        "/job/resources/{key} is {value}, expected a positive number"
                    ))
                })?,
        };
        if let Some(max) = max
            && asked > max
        {
            changes.push(format!("resources.{key}: {asked} lowered to {max}"));
            reply = reply.set(&format!("/job/resources/{key}"), max);
        }
    }
    Ok((reply, changes))
}

/// A key as a JSON Pointer reference token (RFC 6901: `~` → `~0` first,
/// then `/` → `~1`).
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Splits a command line into words with the quoting described in the
/// module docs; the error says which quote is never closed.
fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // True once the current word has begun, so that `""` is an (empty) word.
    let mut in_word = false;
    let mut chars = line.chars().enumerate();
    while let Some((at, c)) = chars.next() {
        let unclosed = || format!("the {c} at character {} is never closed", at + 1);
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => word.push(c),
                        None => return Err(unclosed()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c @ ('"' | '\\'))) => word.push(c),
                            Some((_, c)) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(unclosed()),
                        },
                        Some((_, c)) => word.push(c),
                        None => return Err(unclosed()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some((_, c)) => word.push(c),
                    None => return Err("it ends with a lone backslash".to_owned()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn main() -> ExitCode {
    outboard_plugin::run(PayloadTransformer::new())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outboard_plugin::Code;
    use outboard_plugin::testing::Harness;

    async fn configured(config: Value) -> Harness<PayloadTransformer> {
        let h = Harness::new(PayloadTransformer::new());
        h.configure(config).await.unwrap();
        h
    }

    fn full_config() -> Value {
        json!({
            "default_image": "debian:bookworm-slim",
            "labels": {"team": "platform", "sandrun.dev/managed-by": "outboard"},
            "max_memory_mb": 4096,
            "max_cpus": 2,
        })
    }

    #[test]
    fn splitting_follows_simple_shell_quoting() {
        let cases: &[(&str, &[&str])] = &[
            ("make test", &["make", "test"]),
            ("  make\t -j4\n test  ", &["make", "-j4", "test"]),
            (
                "python -c 'print(\"hi there\")'",
                &["python", "-c", "print(\"hi there\")"],
            ),
            (
                r#"echo "a \"quoted\" word" '\n'"#,
                &["echo", "a \"quoted\" word", "\\n"],
            ),
            (r#"echo "C:\dir\\""#, &["echo", "C:\\dir\\"]),
            (r"touch a\ b", &["touch", "a b"]),
            ("echo '' \"\"", &["echo", "", ""]),
            ("pre'fix 'and\"suf fix\"", &["prefix andsuf fix"]),
            ("echo $HOME *", &["echo", "$HOME", "*"]),
            ("", &[]),
            ("   ", &[]),
        ];
        for (line, want) in cases {
            let want: Vec<String> = want.iter().map(|w| (*w).to_owned()).collect();
            assert_eq!(split_command(line), Ok(want), "{line:?}");
        }
        assert_eq!(
            split_command("echo 'oops"),
            Err("the ' at character 6 is never closed".to_owned())
        );
        assert_eq!(
            split_command(r#"say "it\""#),
            Err("the \" at character 5 is never closed".to_owned())
        );
        assert_eq!(
            split_command("trailing \\"),
            Err("it ends with a lone backslash".to_owned())
        );
    }

    #[tokio::test]
    async fn a_bare_job_is_filled_in_and_the_changes_recorded() {
        let h = configured(full_config()).await;
        let out = h
            .invoke(
                "submit",
                json!({
                    "job": {
                        "command": "python -c 'print(1)'",
                        "resources": {"memory_mb": 8192, "cpus": 1.5},
                    },
                    "metadata": {"submitted_by": "ci"},
                }),
            )
            .await
            .unwrap();
        assert_eq!(
            out.context,
            json!({
                "job": {
                    "image": "debian:bookworm-slim",
                    "command": ["python", "-c", "print(1)"],
                    "resources": {"memory_mb": 4096, "cpus": 1.5},
                    "labels": {"team": "platform", "sandrun.dev/managed-by": "outboard"},
                },
                "metadata": {
                    "submitted_by": "ci",
                    "payload_transformer": {"changes": [
                        "command: split into 3 arguments",
                        "image: set to debian:bookworm-slim",
                        "label sandrun.dev/managed-by=outboard added",
                        "label team=platform added",
                        "resources.memory_mb: 8192 lowered to 4096",
                    ]},
                },
            })
        );
    }

    #[tokio::test]
    async fn what_the_job_already_says_wins() {
        let h = configured(full_config()).await;
        let job = json!({
            "image": "python:3.12",
            "command": ["python", "main.py"],
            "resources": {"memory_mb": 512, "cpus": 8},
            "labels": {"team": "ml", "a/b~c": "x"},
        });
        let out = h.invoke("submit", json!({"job": job})).await.unwrap();
        assert_eq!(out.get("/job/image"), Some(&json!("python:3.12")));
        assert_eq!(out.get("/job/command"), Some(&json!(["python", "main.py"])));
        assert_eq!(
            out.get("/job/labels"),
            Some(&json!({"team": "ml", "a/b~c": "x", "sandrun.dev/managed-by": "outboard"}))
        );
        assert_eq!(
            out.get("/job/resources"),
            Some(&json!({"memory_mb": 512, "cpus": 2}))
        );
        assert_eq!(
            out.get("/metadata/payload_transformer/changes"),
            Some(&json!([
                "label sandrun.dev/managed-by=outboard added",
                "resources.cpus: 8 lowered to 2",
            ]))
        );
    }

    #[tokio::test]
    async fn a_job_in_shape_is_left_alone() {
        let h = configured(json!({})).await;
        let job = json!({"command": ["true"], "labels": null});
        let out = h
            .invoke("submit", json!({"job": job.clone()}))
            .await
            .unwrap();
        assert_eq!(out.get("/job"), Some(&job));
        assert_eq!(
            out.get("/metadata/payload_transformer/changes"),
            Some(&json!([]))
        );
        assert_eq!(out.reply.message(), "job unchanged");

        // A null labels object is replaced whole.
        let h = configured(json!({"labels": {"team": "platform"}})).await;
        let out = h.invoke("submit", json!({"job": job})).await.unwrap();
        assert_eq!(out.get("/job/labels"), Some(&json!({"team": "platform"})));
    }

    #[tokio::test]
    async fn a_bad_job_is_invalid_context_saying_what_was_expected() {
        let h = configured(full_config()).await;
        let cases = [
            (
                json!({"command": ["x"]}),
                "/job is missing, expected the job description (an object with a `command`)",
            ),
            (
                json!({"job": "make"}),
                "/job is \"make\", expected the job description (an object with a `command`)",
            ),
            (
                json!({"job": {}}),
                "/job/command is missing, expected a command line (a string) or an argv (an \
                 array of strings)",
            ),
            (
                json!({"job": {"command": 42}}),
                "/job/command is 42, expected a command line (a string) or an argv (an array of \
                 strings)",
            ),
            (
                json!({"job": {"command": ["ls", 1]}}),
                "/job/command/1 is 1, expected a string (the argv holds only strings)",
            ),
            (
                json!({"job": {"command": "  "}}),
                "/job/command is \"  \", expected a command line (a string) or an argv (an array \
                 of strings), with at least the program",
            ),
            (
                json!({"job": {"command": "echo 'hi"}}),
                "/job/command \"echo 'hi\" cannot be split into arguments: the ' at character 6 \
                 is never closed",
            ),
            (
                json!({"job": {"command": ["ls"], "image": 3}}),
                "/job/image is 3, expected a string",
            ),
            (
                json!({"job": {"command": ["ls"], "labels": ["a"]}}),
                "/job/labels is [\"a\"], expected an object of strings",
            ),
            (
                json!({"job": {"command": ["ls"], "labels": {"a/b": 1}}}),
                "/job/labels/a~1b is 1, expected a string",
            ),
            (
                json!({"job": {"command": ["ls"], "resources": {"memory_mb": "lots"}}}),
                "/job/resources/memory_mb is \"lots\", expected a positive number",
            ),
            (
                json!({"job": {"command": ["ls"], "resources": 4}}),
                "/job/resources is 4, expected an object with `memory_mb` and/or `cpus`",
            ),
        ];
        for (ctx, want) in cases {
            let err = h.invoke("submit", ctx.clone()).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{ctx}");
            assert_eq!(err.message(), want, "{ctx}");
        }
    }

    #[tokio::test]
    async fn bad_config_is_refused() {
        let h = Harness::new(PayloadTransformer::new());
        let cases = [
            (
                json!({"default_image": ""}),
                "default_image: must not be empty",
            ),
            (
                json!({"labels": {"": "x"}}),
                "labels: a label name must not be empty",
            ),
            (
                json!({"max_cpus": 0}),
                "max_cpus: 0 is not a positive number",
            ),
        ];
        for (config, want) in cases {
            let err = h.configure(config).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument);
            assert_eq!(err.message(), want);
        }
        let err = h
            .configure(json!({"labels": {"team": 7}}))
            .await
            .unwrap_err();
        assert!(err.message().contains("invalid type"), "{err}");
        let err = h.configure(json!({"max_disk_mb": 1})).await.unwrap_err();
        assert!(
            err.message().contains("unknown field `max_disk_mb`"),
            "{err}"
        );
    }

    #[test]
    fn manifest_subscribes_to_submit_with_a_closed_schema() {
        let h = Harness::new(PayloadTransformer::new());
        let m = h.manifest();
        assert_eq!((m.name(), m.version()), ("payload-transformer", "0.1.0"));
        let sub = m.subscription_for("submit").unwrap();
        assert_eq!((sub.priority, sub.idempotent), (0, true));
        let schema = m.schema().unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        let mut keys: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["default_image", "labels", "max_cpus", "max_memory_mb"]
        );
    }
}
