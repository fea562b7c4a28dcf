//! `GET /healthz` (liveness) and `GET /readyz` (readiness), with the status
//! codes Kubernetes probes expect: 200 for yes, 503 for no.

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use outboard_host::Host;
use serde::Deserialize;

use super::HttpState;
use super::blocking::Unanswered;
use super::readiness::{Member, Phase, judge};

/// How long the host may take to give its plugins' states before the
/// daemon is judged not alive.
pub(crate) const HOST_ANSWER: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 `ok` when the runtime answers (this handler runs on
/// it) and the host gives its plugins' states within [`HOST_ANSWER`]
/// (read on the blocking pool, bounded as scrapes are); else 503. While
/// the plugins start there is no host to ask yet: alive, 200.
pub(crate) async fn healthz(State(state): State<HttpState>) -> Response {
    let Some(host) = state.shared().host() else {
        return (StatusCode::OK, "ok: starting\n").into_response();
    };
    let answered = state
        .shared()
        .blocking()
        .run(HOST_ANSWER, move || {
            host.plugins().iter().map(|p| p.state()).collect::<Vec<_>>()
        })
        .await;
    match answered {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(Unanswered::Failed(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not alive: reading the plugins' states failed\n",
        )
            .into_response(),
        Err(Unanswered::TimedOut) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not alive: the host did not give its plugins' states in time\n",
        )
            .into_response(),
    }
}

/// Every plugin of `host`, as the readiness judgement needs it.
fn members_of(host: &Host) -> Vec<Member> {
    host.plugins()
        .iter()
        .map(|p| Member {
            name: p.name().to_owned(),
            state: p.state(),
            optional: p.optional(),
        })
        .collect()
}

/// `?verbose` asks for JSON.
#[derive(Debug, Deserialize)]
pub(crate) struct ReadyQuery {
    verbose: Option<String>,
}

/// `GET /readyz`: 200 `ok` when every required plugin is ready, else 503
/// naming each that is not, with its state (plain text; JSON with
/// `?verbose`). 503 while the plugins start, once the daemon stops, and
/// when the host does not give its plugins' states within [`HOST_ANSWER`]
/// (read off the async threads, as `/healthz` reads them).
pub(crate) async fn readyz(
    State(state): State<HttpState>,
    Query(query): Query<ReadyQuery>,
) -> Response {
    let shared = state.shared();
    let (phase, members) = match shared.host() {
        None => (Phase::Starting, Vec::new()),
        Some(host) => {
            let members = shared
                .blocking()
                .run(HOST_ANSWER, move || members_of(&host))
                .await;
            match members {
                Ok(members) if shared.closing() => (Phase::Stopping, members),
                Ok(members) => (Phase::Running, members),
                Err(_) => (Phase::Unanswered, Vec::new()),
            }
        }
    };
    let readiness = judge(phase, &members);
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if query.verbose.is_some() {
        (code, Json(readiness)).into_response()
    } else {
        (code, readiness.text()).into_response()
    }
}
