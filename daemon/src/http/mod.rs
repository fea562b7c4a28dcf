//! The daemon's HTTP listener (`outboard up --http ADDR`, `[http] listen`):
//! `/metrics` for Prometheus, `/healthz` and `/readyz` for probes, and
//! `/plugins/<name>/health`.
//!
//! ```text
//! let listener = TcpListener::bind(addr).await?;   // before any plugin starts
//! let state = HttpState::new(log_book);
//! tokio::spawn(http::serve(listener, state.clone(), stopped));
//! state.attach(host);                               // once every plugin started
//! state.close();                                    // the daemon begins to stop
//! ```
//!
//! The router is built by [`router`]; routes mounted later (a plugin's own,
//! under `/ext/<plugin>/`) are added to it with `Router::nest` and served
//! by [`serve_router`]. Unknown paths answer 404, a known path with another method 405.
//!
//! # Layout
//!
//! - this file: [`serve`] and [`router`].
//! - `state`: [`HttpState`], what the handlers read.
//! - `conn`: the accept loop and each connection's bounds.
//! - `blocking`: the handlers' blocking reads, bounded in time and number.
//! - `metrics/`: `GET /metrics`.
//! - `probes`: `GET /healthz` and `GET /readyz`; `readiness`, the judgement.
//! - `plugin_health`: `GET /plugins/<name>/health`.

mod blocking;
mod conn;
mod metrics;
mod plugin_health;
mod probes;
mod readiness;
mod state;
#[cfg(test)]
mod tests;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

pub use state::HttpState;

/// Serves the daemon's HTTP routes on `listener` until `shutdown`
/// resolves; then stops accepting, lets each connection finish the
/// response it is writing (within a few seconds) and returns.
pub async fn serve(listener: TcpListener, state: HttpState, shutdown: impl Future<Output = ()>) {
    serve_router(listener, router(state), shutdown).await;
}

/// [`serve`] with routes of the caller's: [`router`]'s, extended (a
/// plugin's own under `/ext/<plugin>/`), with the same connection bounds
/// and graceful stop.
pub async fn serve_router(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    conn::accept_loop(listener, app, shutdown).await;
}

/// Every route the daemon serves over HTTP, with `state`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::handler))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/plugins/{name}/health", get(plugin_health::handler))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}
