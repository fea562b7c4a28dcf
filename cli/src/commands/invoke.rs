//! `outboard invoke PHASE`: one phase on every plugin subscribed to it.

use std::future::Future;
use std::io::Write;

use anyhow::{Context, bail};
use outboard_host::{Host, Verdict};
use serde_json::{Map, Value};

use super::{load_config, unless_interrupted};
use crate::args::InvokeArgs;
use crate::exit::{EXIT_INTERRUPTED, EXIT_PHASE_FAILED, EXIT_PHASE_VETOED};
use crate::render;

/// Starts the plugins, dispatches `args.phase` with `args.context`, prints
/// the report and stops them; a stop request from `shutdown`, at any
/// moment, stops them too (exit 130).
pub(crate) async fn run(
    args: InvokeArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<u8> {
    let mut shutdown = std::pin::pin!(shutdown);
    let config = load_config(&args.source)?;
    let context = parse_context(&args.context)?;
    let Some(host) = unless_interrupted(Host::start(&config), &mut shutdown).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let host = host?;
    let Some(report) = unless_interrupted(host.dispatch(&args.phase, context), &mut shutdown).await
    else {
        // Ready plugins get the whole stop sequence, not a SIGKILL.
        host.stop().await;
        return Ok(EXIT_INTERRUPTED);
    };
    host.stop().await;

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        render::report::phase(&mut out, &report)?;
    }
    Ok(match report.verdict {
        Verdict::Passed => 0,
        Verdict::Vetoed { .. } => EXIT_PHASE_VETOED,
        // A verdict this command does not know yet is not a success.
        Verdict::Failed { .. } | _ => EXIT_PHASE_FAILED,
    })
}

/// Reads `--context`: inline JSON, or `@FILE`.
fn parse_context(arg: &str) -> anyhow::Result<Map<String, Value>> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some(file) => (
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read --context file {file}"))?,
            file.to_owned(),
        ),
        None => (arg.to_owned(), "--context".to_owned()),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => {
            outboard_proto::json::check_struct(&map).with_context(|| origin.clone())?;
            Ok(map)
        }
        Ok(other) => bail!("{origin}: the context must be a JSON object, not {other}"),
        Err(err) => bail!("{origin}: not valid JSON: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_must_be_an_object() {
        assert!(parse_context(r#"{"env": {}}"#).is_ok());
        let err = parse_context("[1]").expect_err("array");
        assert_eq!(
            err.to_string(),
            "--context: the context must be a JSON object, not [1]"
        );
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(47), "]".repeat(47));
        let err = parse_context(&deep).expect_err("too deep");
        assert_eq!(
            format!("{err:#}"),
            format!(
                "--context: /a{} is nested too deep: more than 96 protobuf message levels \
                 (an object costs 3, an array 2), more than a plugin can decode",
                "/0".repeat(47)
            )
        );
        let err = parse_context("{oops").expect_err("bad json");
        assert!(
            err.to_string().starts_with("--context: not valid JSON"),
            "{err}"
        );
    }
}
