//! `outboard emit NAME --data JSON`: an operator's event. To the daemon
//! (`Emit`) by default; given a configuration (`--config`, `--plugin-dir`)
//! or `--state-dir`, written straight into that configuration's outbox in
//! the state directory, for its next host (or its running daemon, which
//! looks at the outbox every second) to deliver.

use anyhow::Context;
use outboard_proto::control::v1::EmitRequest;
use outboard_proto::json::json_to_value;
use outboard_services::events::Events;
use outboard_state::Database;
use serde_json::Value;

use super::{load_config, services};
use crate::args::EmitArgs;
use crate::client::{Daemon, call_error};

/// Emits the event; prints its id.
pub(crate) async fn run(args: EmitArgs) -> anyhow::Result<u8> {
    let payload: Value = match &args.data {
        Some(text) => {
            serde_json::from_str(text).with_context(|| format!("--data {text:?} is not JSON"))?
        }
        None => Value::Null,
    };
    let offline = args.source.config.is_some()
        || !args.source.plugin_dir.is_empty()
        || args.state.state_dir.is_some();
    let id = if offline {
        into_outbox(&args, &payload).await?
    } else {
        to_daemon(&args, &payload).await?
    };
    println!("{id}");
    Ok(0)
}

/// Through the daemon's `Emit`.
async fn to_daemon(args: &EmitArgs, payload: &Value) -> anyhow::Result<String> {
    let daemon = Daemon::connect(args.control.control_socket.as_deref()).await?;
    let request = EmitRequest {
        name: args.name.clone(),
        payload: Some(json_to_value(payload)),
    };
    let response = daemon
        .rpc
        .clone()
        .emit(request)
        .await
        .map_err(|s| call_error(&daemon.socket, &s))?;
    Ok(response.into_inner().event_id)
}

/// Straight into the outbox of the configuration's scope.
async fn into_outbox(args: &EmitArgs, payload: &Value) -> anyhow::Result<String> {
    let config = load_config(&args.source)?;
    let dir = services::state_dir(args.state.state_dir.as_deref(), &config)?;
    let database = Database::open(&dir)
        .with_context(|| format!("cannot open the state directory {}", dir.display()))?;
    let events = Events::new(
        std::sync::Arc::new(database),
        &services::scope(&args.source),
        config.events,
    );
    events
        .emit(&args.name, payload)
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))
}
