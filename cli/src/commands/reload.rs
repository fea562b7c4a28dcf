//! `outboard reload [--dry-run]`: the daemon re-reads its config and
//! applies the difference; the plan is printed.

use std::io::Write;

use anyhow::Context;
use outboard_proto::control::v1::ReloadRequest;

use super::unless_interrupted;
use crate::args::ReloadArgs;
use crate::client::{Daemon, call_error};
use crate::exit::EXIT_INTERRUPTED;
use crate::render::reload::{self, PlanView};
use crate::signals::Signals;

/// Asks for the reload (or its plan) and prints the plan; a reload the
/// daemon refused is an error with its words (exit status 1).
pub(crate) async fn run(args: ReloadArgs, mut signals: Signals) -> anyhow::Result<u8> {
    let work = async {
        let daemon = Daemon::connect(args.control.control_socket.as_deref()).await?;
        let request = ReloadRequest {
            dry_run: args.dry_run,
        };
        // The daemon's words already say that nothing changed, and why.
        let response = daemon
            .rpc
            .clone()
            .reload(request)
            .await
            .map_err(|s| call_error(&daemon.socket, &s))?;
        anyhow::Ok(response.into_inner())
    };
    let Some(response) = unless_interrupted(work, signals.recv()).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let response = match response {
        Ok(response) => response,
        Err(err) if args.json => {
            // A script reading stdout learns why, not just that it failed.
            let doc = serde_json::json!({ "applied": false, "error": format!("{err:#}") });
            let mut out = std::io::stdout().lock();
            writeln!(out, "{doc}")
                .and_then(|()| out.flush())
                .context("cannot print the error on stdout")?;
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    let plan = response.plan.as_ref().map(PlanView::of).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({ "applied": response.applied, "plan": plan });
        writeln!(out, "{doc}")
    } else {
        reload::plan(&mut out, &plan, response.applied)
    }
    .and_then(|()| out.flush())
    .context("cannot print the plan on stdout")?;
    Ok(0)
}
