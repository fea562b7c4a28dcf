//! Write an [Outboard](https://github.com/outboard-rs/outboard) plugin in
//! Rust: implement [`Plugin`], call [`run`] from `main`, and the SDK does the
//! rest of the protocol — the environment check, the Unix socket, the
//! handshake line, the token check, gRPC with health and reflection,
//! deadlines, and a graceful stop.
//!
//! # Layout
//!
//! - [`plugin`]: the [`Plugin`] trait, the one thing an author implements.
//! - [`manifest`], [`config`], [`invocation`], [`reply`]: the friendly types
//!   the trait speaks — [`Manifest`] (what `Describe` answers), [`Config`]
//!   (what `Configure` brings), [`Invocation`] (one phase), [`Reply`] (go on
//!   with a patch, or abort).
//! - [`health`]: [`Health`], the handle a plugin gets in [`Config`] to
//!   report `NOT_SERVING` on its health service.
//! - [`host`]: host services (PROTOCOL.md §17) — the typed clients
//!   [`Kv`](host::Kv), [`Secrets`](host::Secrets) and
//!   [`Events`](host::Events), reached from an [`Invocation`], a [`Config`]
//!   or an [`Event`] (`invocation.kv()`), and the [`Event`]s a plugin
//!   subscribes to with [`Manifest::subscribe_event`] and handles in
//!   [`Plugin::on_event`].
//! - [`error`]: [`PluginError`] (each kind answers with one [`Code`]) and
//!   [`ServeError`].
//! - [`settings`]: the `OUTBOARD_*` environment, read by
//!   [`Settings::from_env`].
//! - `server`, `service`, `auth`, `deadline` (private): [`serve_with`], the
//!   `PluginService` implementation, the token interceptor and the call
//!   deadlines.
//! - `fastpath` (private): the invoke fast path (PROTOCOL.md §18), served
//!   beside gRPC when the host sets `OUTBOARD_FASTPATH_SOCKET`; its calls
//!   run the same `Invoke` code as gRPC's.
//! - `environment` (private): the `OUTBOARD_*` variables, taken out of the
//!   environment before children can inherit them.
//! - [`logging`]: JSON log lines on stderr, as the host parses them.
//! - `telemetry` (private): continuing the host's trace — with the `otel`
//!   feature (on by default) and `OTEL_EXPORTER_OTLP_ENDPOINT` set, every
//!   `Invoke` runs in a span `outboard.plugin.invoke` whose parent is the
//!   host's `traceparent`, spans leave over OTLP/gRPC, and log lines carry
//!   `trace_id` and `span_id`.
//! - [`testing`]: [`testing::Harness`], to unit-test a plugin without a
//!   host, and [`testing::FakeHost`], host services in memory.
//!
//! # Traces
//!
//! With the cargo feature `otel` (on by default), a plugin continues the
//! host's trace with no code of its own (PROTOCOL.md §8.8): when the host
//! passes `OTEL_EXPORTER_OTLP_ENDPOINT` (and `OTEL_TRACES_EXPORTER` is not
//! `none`), [`logging::init`] also exports spans over OTLP/gRPC under
//! `OTEL_SERVICE_NAME`; every `Invoke` runs in a span
//! `outboard.plugin.invoke` whose parent is the `traceparent` in
//! [`Invocation::trace_context`]; the plugin's own `tracing` spans inside
//! it are its children; log lines carry `trace_id` and `span_id`; and the
//! spans still queued are sent (for at most 400 ms) when serving stops.
//! Without the environment, nothing of this runs.
//!
//! # The invoke fast path
//!
//! When the host sets `OUTBOARD_FASTPATH_SOCKET` (PROTOCOL.md §18), the
//! server also binds that socket before the handshake line, lists
//! `invoke-fastpath/1` in the manifest it serves, and answers `Invoke` there
//! as length-prefixed protobuf frames, many calls at once on one
//! connection, with the same code, deadlines, shutdown grace and spans as
//! on gRPC: the plugin sees no difference. [`Settings::fastpath`]`(false)`
//! declines it (nothing bound, the feature not listed).

//! # Example
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! use outboard_plugin::{Invocation, Manifest, Plugin, PluginError, Reply};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn manifest(&self) -> Manifest {
//!         Manifest::new("hello", "0.1.0")
//!             .describe("Greets the job")
//!             .subscribe("pre_container", 50)
//!     }
//!
//!     async fn invoke(&self, invocation: Invocation) -> Result<Reply, PluginError> {
//!         let user = invocation.env("USER").unwrap_or("world");
//!         Ok(Reply::ok().set("/env/GREETING", format!("hello, {user}")))
//!     }
//! }
//!
//! fn main() -> ExitCode {
//!     outboard_plugin::run(Hello)
//! }
//! ```

#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod health;
pub mod host;
pub mod invocation;
pub mod logging;
pub mod manifest;
pub mod plugin;
pub mod reply;
pub mod settings;
pub mod testing;

mod auth;
mod deadline;
mod environment;
mod fastpath;
mod server;
mod service;
mod telemetry;

use std::process::ExitCode;
use std::time::Duration;

pub use config::Config;
pub use error::{Code, PluginError, ServeError};
pub use health::Health;
pub use host::{Event, HostError, HostServices};
pub use invocation::Invocation;
pub use manifest::{Dependency, FieldError, Manifest, ManifestError, Permission, Subscription};
pub use plugin::Plugin;
pub use reply::{Outcome, Reply};
pub use server::{SIGNAL_GRACE, serve_with};
pub use settings::{Settings, SettingsError};

/// How long [`run`] waits for leftover background work after serving ends.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(500);

/// Serves `plugin` for the host that started this process: reads the
/// `OUTBOARD_*` environment ([`Settings::from_env`]) and calls
/// [`serve_with`]. Run by hand, it fails with
/// [`ServeError::Settings`] saying so.
pub async fn serve<P: Plugin>(plugin: P) -> Result<(), ServeError> {
    let settings = Settings::from_env().map_err(|source| ServeError::Settings {
        plugin: plugin.manifest().name().to_owned(),
        source,
    })?;
    serve_with(plugin, settings).await
}

/// The whole `main` of a plugin: takes the `OUTBOARD_*` variables out of
/// the environment (so that no child the plugin starts sees the token; call
/// it before starting any thread), installs the JSON log subscriber (unless
/// one is already installed, see [`logging::init`]; with span export when
/// the `OTEL_*` environment asks for it), builds a tokio runtime,
/// [`serve`]s, and turns the result into the exit code — 0 after a graceful
/// stop, 1 with one line on stderr otherwise.
pub fn run<P: Plugin>(plugin: P) -> ExitCode {
    let name = plugin.manifest().name().to_owned();
    run_with(&name, || serve(plugin))
}

/// [`run`] for a `main` that serves its own way (its own [`Settings`],
/// extra signal handling): takes the `OUTBOARD_*` variables, installs the
/// JSON log subscriber, builds the runtime, runs the future `serving` returns inside it, and turns the
/// result into the exit code. `name` names the plugin in a runtime error.
pub fn run_with<F, Fut>(name: &str, serving: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), ServeError>>,
{
    // Before any thread exists (the runtime's, the span exporter's):
    // children must not inherit the token.
    environment::take();
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(source) => {
            eprintln!(
                "{}",
                ServeError::Runtime {
                    plugin: name.to_owned(),
                    source
                }
            );
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serving());
    // `serve_with` flushes the spans when it stops; this covers a `serving`
    // that ends another way.
    telemetry::shutdown();
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
