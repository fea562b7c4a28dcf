//! `resource-limiter`: checks the memory and CPU limits in its config once,
//! at `Configure`, and hands them to the container phase as
//! `/metadata/resource_limits = {memory_bytes, cpus, memory}` (only the
//! limits configured; with none it changes nothing).
//!
//! `memory` is bytes (`1048576`) or a number with a suffix: decimal `k`/`K`,
//! `M`, `G`, `T`, `P` or binary `Ki`, `Mi`, `Gi`, `Ti`, `Pi` (`512Mi`, `2G`,
//! `1.5Gi`). `cpus` is a positive number (`2`, `1.5`, `"1.5"`) or
//! millicores (`"500m"`).

use std::process::ExitCode;
use std::sync::{PoisonError, RwLock};

use outboard_plugin::{Config, Invocation, Manifest, Plugin, PluginError, Reply};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The largest byte count that travels exactly as a JSON number (a double).
const MAX_BYTES: u128 = 1 << 53;

/// The config as written, before it is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// A size: a string with an optional suffix, or a number of bytes.
    memory: Option<Value>,
    /// A number of CPUs: a number, a numeric string or millicores.
    cpus: Option<Value>,
}

/// The checked limits.
#[derive(Debug, Clone, Default, PartialEq)]
struct Limits {
    /// The memory limit as given, and in bytes.
    memory: Option<(Value, u64)>,
    /// The CPU limit.
    cpus: Option<f64>,
}

/// The plugin: the limits from `Configure`.
struct ResourceLimiter {
    /// No limits until configured.
    limits: RwLock<Limits>,
}

impl Plugin for ResourceLimiter {
    fn manifest(&self) -> Manifest {
        Manifest::new("resource-limiter", env!("CARGO_PKG_VERSION"))
            .describe("Checks memory and CPU limits and passes them to the container phase")
            .subscribe_idempotent("pre_container", 50)
            .config_schema(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "memory": {
                        "description": "Memory limit: bytes, or a number with k, M, G, T, P, Ki, Mi, Gi, Ti or Pi",
                        "type": ["string", "integer"],
                        "pattern": "^[0-9]+(\\.[0-9]+)?(k|K|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$",
                        "minimum": 1
                    },
                    "cpus": {
                        "description": "CPU limit: a positive number, or millicores such as \"500m\"",
                        "type": ["number", "string"],
                        "pattern": "^[0-9]+(\\.[0-9]+)?m?$",
                        "exclusiveMinimum": 0
                    }
                },
                "additionalProperties": false
            }))
    }

    async fn configure(&self, config: Config) -> Result<(), PluginError> {
        let raw: RawConfig = config.deserialize()?;
        let memory = match raw.memory {
            Some(given) => {
                let bytes = memory_bytes(&given).ok_or_else(|| {
                    PluginError::invalid_config(format!(
                        "memory: {given} is not a size (use bytes such as 1048576, or a number \
                         with k, M, G, T, P, Ki, Mi, Gi, Ti or Pi such as \"512Mi\"; at most 2^53 \
                         bytes)"
                    ))
                })?;
                Some((given, bytes))
            }
            None => None,
        };
        let cpus = match raw.cpus {
            Some(given) => Some(cpus(&given).ok_or_else(|| {
                PluginError::invalid_config(format!(
                    "cpus: {given} is not a positive number of CPUs (use 2, 1.5, \"1.5\" or \
                     millicores such as \"500m\")"
                ))
            })?),
            None => None,
        };
        *self.limits.write().unwrap_or_else(PoisonError::into_inner) = Limits { memory, cpus };
        Ok(())
    }

    async fn invoke(&self, _invocation: Invocation) -> Result<Reply, PluginError> {
        let limits = self
            .limits
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if limits == Limits::default() {
            return Ok(Reply::ok().with_message("no limits configured"));
        }
        let mut out = Map::new();
        if let Some((given, bytes)) = limits.memory {
            out.insert("memory_bytes".into(), json!(bytes));
            out.insert("memory".into(), given);
        }
        if let Some(cpus) = limits.cpus {
            out.insert("cpus".into(), json!(cpus));
        }
        Ok(Reply::ok().set("/metadata/resource_limits", Value::Object(out)))
    }
}

/// A memory size in bytes: a positive whole number of bytes, at most 2^53.
fn memory_bytes(given: &Value) -> Option<u64> {
    let bytes: u128 = match given {
        Value::Number(n) => u128::from(n.as_u64()?),
        Value::String(s) => parse_size(s.trim())?,
        _ => return None,
    };
    (1..=MAX_BYTES)
        .contains(&bytes)
        .then(|| u64::try_from(bytes).ok())
        .flatten()
}

/// `512Mi`, `2G`, `1.5Gi`, `1048576`; exact, in integers, so `1.5Gi` is
/// exactly 1610612736 and `0.5` bytes is refused.
fn parse_size(s: &str) -> Option<u128> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "k" | "K" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "P" => 1000u128.pow(5),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |d: &str| !d.is_empty() && d.len() <= 18 && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (number.contains('.') && !digits(fraction)) {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let mut bytes = whole.checked_mul(multiplier)?;
    if !fraction.is_empty() {
        let scale = 10u128.pow(u32::try_from(fraction.len()).ok()?);
        let part = fraction.parse::<u128>().ok()?.checked_mul(multiplier)?;
        if part % scale != 0 {
            return None; // not a whole number of bytes
        }
        bytes = bytes.checked_add(part / scale)?;
    }
    Some(bytes)
}

/// A CPU count: positive and finite; `"500m"` is 0.5.
fn cpus(given: &Value) -> Option<f64> {
    let n = match given {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => {
            let s = s.trim();
            let plain = |t: &str| {
                // Rust's float parser also takes "inf", "NaN" and "1e3".
                (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                    .then(|| t.parse::<f64>().ok())
                    .flatten()
            };
            match s.strip_suffix('m') {
                Some(milli) => plain(milli)? / 1000.0,
                None => plain(s)?,
            }
        }
        _ => return None,
    };
    (n.is_finite() && n > 0.0).then_some(n)
}

fn main() -> ExitCode {
    outboard_plugin::run(ResourceLimiter {
        limits: RwLock::new(Limits::default()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use outboard_plugin::Code;
    use outboard_plugin::testing::Harness;

    fn harness() -> Harness<ResourceLimiter> {
        Harness::new(ResourceLimiter {
            limits: RwLock::new(Limits::default()),
        })
    }

    #[test]
    fn sizes_parse_exactly() {
        let cases: &[(&str, Option<u128>)] = &[
            ("1048576", Some(1_048_576)),
            ("512Mi", Some(512 << 20)),
            ("2G", Some(2_000_000_000)),
            ("1.5Gi", Some(1_610_612_736)),
            ("64k", Some(64_000)),
            ("64K", Some(64_000)),
            ("0.5", None),
            ("1.5", None),
            ("12MB", None),
            ("Mi", None),
            ("1..5Gi", None),
            (".5Gi", None),
            ("5.Gi", None),
            ("-1", None),
            ("1e9", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), *want, "{input:?}");
        }
        assert_eq!(memory_bytes(&json!(4096)), Some(4096));
        assert_eq!(memory_bytes(&json!("0")), None, "zero is no limit");
        assert_eq!(memory_bytes(&json!("9Pi")), None, "over 2^53");
        assert_eq!(memory_bytes(&json!(1.5)), None);
        assert_eq!(memory_bytes(&json!(true)), None);
    }

    #[test]
    fn cpus_parse() {
        assert_eq!(cpus(&json!(2)), Some(2.0));
        assert_eq!(cpus(&json!(1.5)), Some(1.5));
        assert_eq!(cpus(&json!("1.5")), Some(1.5));
        assert_eq!(cpus(&json!("500m")), Some(0.5));
        for bad in [
            json!(0),
            json!(-1),
            json!("0"),
            json!("inf"),
            json!("NaN"),
            json!("1e3"),
            json!("two"),
            json!(null),
        ] {
            assert_eq!(cpus(&bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn configured_limits_reach_the_context() {
        let h = harness();
        h.configure(json!({"memory": "512Mi", "cpus": "1.5"}))
            .await
            .unwrap();
        let out = h
            .invoke(
                "pre_container",
                json!({"command": ["run"], "metadata": {"other": 1}}),
            )
            .await
            .unwrap();
        assert_eq!(
            out.context,
            json!({
                "command": ["run"],
                "metadata": {
                    "other": 1,
                    "resource_limits": {"memory_bytes": 536_870_912, "cpus": 1.5, "memory": "512Mi"},
                },
            })
        );

        h.configure(json!({"cpus": 2})).await.unwrap();
        let out = h.invoke("pre_container", json!({})).await.unwrap();
        assert_eq!(
            out.get("/metadata/resource_limits"),
            Some(&json!({"cpus": 2}))
        );
    }

    #[tokio::test]
    async fn bad_values_are_refused_naming_field_and_value() {
        let h = harness();
        let err = h.configure(json!({"memory": "lots"})).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with("memory: \"lots\" is not a size"),
            "{err}"
        );
        let err = h
            .configure(json!({"memory": "1G", "cpus": "-2"}))
            .await
            .unwrap_err();
        assert!(
            err.message()
                .starts_with("cpus: \"-2\" is not a positive number of CPUs"),
            "{err}"
        );
        let err = h.configure(json!({"disk": "1G"})).await.unwrap_err();
        assert!(err.message().contains("unknown field `disk`"), "{err}");

        // Nothing was accepted, so there is nothing to pass on.
        let out = h.invoke("pre_container", json!({"env": {}})).await.unwrap();
        assert_eq!(out.context, json!({"env": {}}));
        assert_eq!(out.reply.message(), "no limits configured");
    }

    #[tokio::test]
    async fn an_empty_config_means_no_limits() {
        let h = harness();
        h.configure(json!({"memory": "1Gi"})).await.unwrap();
        h.configure(json!({})).await.unwrap();
        let out = h.invoke("pre_container", json!({})).await.unwrap();
        assert_eq!(out.context, json!({}), "no patch");
    }

    #[test]
    fn schema_matches_what_configure_accepts() {
        let h = harness();
        let schema = h.manifest().schema().unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        let mut keys: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["cpus", "memory"]);
    }
}
