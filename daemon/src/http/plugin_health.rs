//! `GET /plugins/<name>/health`: one plugin's state and its last health
//! check, as JSON; 404 with a JSON error for a plugin the daemon does not
//! have.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use outboard_host::{HealthCheck, Host, State as PluginState};
use serde::Serialize;

use super::HttpState;
use super::metrics::collector::state_name;
use super::probes::HOST_ANSWER;

/// The longest name echoed back in an error, in characters: the path is
/// the client's, not ours to repeat at length.
const ECHOED_NAME: usize = 64;

/// The answer for a known plugin.
#[derive(Debug, Serialize)]
struct PluginHealth<'a> {
    /// Its name.
    plugin: &'a str,
    /// Its supervision state.
    state: &'static str,
    /// Whether calls go to it now.
    ready: bool,
    /// Whether the daemon's readiness ignores it.
    optional: bool,
    /// Its running process, if any.
    pid: Option<u32>,
    /// Starts after the first.
    restarts: u32,
    /// Why it last failed, or why it is quarantined.
    last_failure: Option<String>,
    /// Its last health check; `None` before the first.
    last_health_check: Option<HealthCheck>,
}

/// An error, as JSON.
#[derive(Debug, Serialize)]
struct Error {
    error: String,
}

/// `GET /plugins/<name>/health`.
pub(crate) async fn handler(State(state): State<HttpState>, Path(name): Path<String>) -> Response {
    let Some(host) = state.shared().host() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is starting its plugins".to_owned(),
        );
    };
    // The host's locks, off the async threads, as the probes read them.
    let answered = state
        .shared()
        .blocking()
        .run(HOST_ANSWER, move || health_of(&host, &name))
        .await;
    answered.unwrap_or_else(|_| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the host did not give the plugin's state in time".to_owned(),
        )
    })
}

/// The answer for `name` on `host`: its health, or 404.
fn health_of(host: &Host, name: &str) -> Response {
    let Some(plugin) = host.plugin(name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no plugin named {:?}", echoed(name)),
        );
    };
    let status = plugin.status();
    let body = PluginHealth {
        plugin: plugin.name(),
        state: state_name(status.state),
        ready: status.state == PluginState::Ready,
        optional: plugin.optional(),
        pid: status.pid,
        restarts: status.starts.saturating_sub(1),
        last_failure: status.reason,
        last_health_check: plugin.last_health_check(),
    };
    (StatusCode::OK, Json(body)).into_response()
}

/// `why` as a JSON error with `code`.
fn error(code: StatusCode, why: String) -> Response {
    (code, Json(Error { error: why })).into_response()
}

/// A client's name cut to [`ECHOED_NAME`] characters (its quoting as a
/// Rust string escapes control characters; JSON escapes the rest).
fn echoed(name: &str) -> String {
    if name.chars().count() <= ECHOED_NAME {
        name.to_owned()
    } else {
        let cut: String = name.chars().take(ECHOED_NAME).collect();
        format!("{cut}…")
    }
}
