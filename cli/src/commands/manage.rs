//! `outboard restart NAME|--all`, `outboard stop NAME`, `outboard start
//! NAME`: an operator's hand on one plugin (or all) of a running daemon.
//! Each prints the resulting state(s) as `status` does.

use std::io::Write;

use anyhow::Context;
use outboard_proto::control::v1::{
    PluginStatus, RestartPluginRequest, StartPluginRequest, StopPluginRequest,
};

use super::unless_interrupted;
use crate::args::{Control, RestartArgs};
use crate::client::{Daemon, call_error};
use crate::exit::{EXIT_ERROR, EXIT_INTERRUPTED};
use crate::render::status::{self, PluginView};
use crate::signals::Signals;

/// What to do to the plugin(s).
#[derive(Debug)]
pub(crate) enum Action {
    /// Restart one (`Some`) or all (`None`).
    Restart(Option<String>),
    /// Disable one.
    Stop(String),
    /// Enable one.
    Start(String),
}

impl Action {
    /// The action of `outboard restart`.
    pub(crate) fn restart(args: &RestartArgs) -> Action {
        Action::Restart(if args.all { None } else { args.name.clone() })
    }

    /// The state each plugin should end in.
    fn wanted(&self) -> &'static str {
        match self {
            Action::Restart(_) | Action::Start(_) => "ready",
            Action::Stop(_) => "disabled",
        }
    }
}

/// Does `action`, prints the states; exit status 1 if a plugin is not in
/// the state the action should leave it in.
pub(crate) async fn run(
    action: Action,
    as_json: bool,
    control: Control,
    mut signals: Signals,
) -> anyhow::Result<u8> {
    let work = async {
        let daemon = Daemon::connect(control.control_socket.as_deref()).await?;
        call(&daemon, &action).await
    };
    let Some(plugins) = unless_interrupted(work, signals.recv()).await else {
        return Ok(EXIT_INTERRUPTED);
    };
    let views: Vec<PluginView> = plugins?.iter().map(PluginView::of).collect();
    let mut out = std::io::stdout().lock();
    if as_json {
        let doc = serde_json::json!({ "plugins": views });
        writeln!(out, "{doc}")
    } else {
        status::table(&mut out, &views)
    }
    .and_then(|()| out.flush())
    .context("cannot print the states on stdout")?;
    let wanted = action.wanted();
    let off: Vec<String> = views
        .iter()
        .filter(|v| v.state != wanted)
        .map(|v| format!("{} is {}", v.name, v.state))
        .collect();
    if off.is_empty() {
        return Ok(0);
    }
    say!(
        "outboard: {} (wanted {wanted})",
        outboard_host::Escaped::line(&off.join(", "))
    );
    Ok(EXIT_ERROR)
}

/// The call, and the plugins' states it answers with.
async fn call(daemon: &Daemon, action: &Action) -> anyhow::Result<Vec<PluginStatus>> {
    let mut rpc = daemon.rpc.clone();
    let failed = |s: tonic::Status| call_error(&daemon.socket, &s);
    Ok(match action {
        Action::Restart(name) => {
            let request = RestartPluginRequest {
                plugin: name.clone().unwrap_or_default(),
                all: name.is_none(),
                wait: None,
            };
            rpc.restart_plugin(request)
                .await
                .map_err(failed)?
                .into_inner()
                .plugins
        }
        Action::Stop(name) => {
            let request = StopPluginRequest {
                plugin: name.clone(),
            };
            rpc.stop_plugin(request)
                .await
                .map_err(failed)?
                .into_inner()
                .plugin
                .into_iter()
                .collect()
        }
        Action::Start(name) => {
            let request = StartPluginRequest {
                plugin: name.clone(),
                wait: None,
            };
            rpc.start_plugin(request)
                .await
                .map_err(failed)?
                .into_inner()
                .plugin
                .into_iter()
                .collect()
        }
    })
}
