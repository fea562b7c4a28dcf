//! Outboard's plugin host, the library a program embeds.
//!
//! # Layout
//!
//! - [`config`]: which plugins to run and how: plain spec types, the
//!   `outboard.toml` schema, plugin directories, command resolution.
//! - [`launch`]: one plugin process: its private runtime directory, its
//!   scrubbed environment, the spawner thread, its process group, the
//!   handshake and the authenticated gRPC channel.
//! - `output`: a plugin's stdout and stderr as log records carrying its
//!   name: bounded lines, the stderr tail, JSON records, crash reports.
//! - `manifest`: what a plugin says about itself in `Describe`, validated,
//!   and its config checked against the schema it declares.
//! - `depends`: the plugins' dependency graph: start order, stop order,
//!   and the missing, unsatisfied or cyclic dependencies that refuse a start.
//! - `instance`: one running plugin: start → ready, call, stop.
//! - `context`: [`SentContext`], a call's context converted once per form
//!   (gRPC's `Struct`, the fast path's bytes) for all of a phase's calls.
//! - `supervisor`: a plugin kept ready: restarts with backoff, health
//!   checks, crash-loop quarantine; its policy is pure, and its seam
//!   ([`Launcher`], [`Instance`]) lets tests run it in memory (the
//!   `test-util` feature exports the fake as `testing`).
//! - `figures`: every figure the host keeps ([`Figures`]), by plugin and
//!   phase name, read by `outboard status` and the daemon's metrics alike.
//! - `dispatch`: one phase fanned out to its subscribers, sequentially or in
//!   parallel, with patches, merge conflicts, timeouts and policies.
//! - `host`: [`Host`], the running plugins and their phases: routing
//!   snapshots swapped whole, reload plans applied blue/green, an
//!   operator's disable and enable, [`HostEvent`]s.
//! - [`job`]: the job profile's phases around a command.
//! - [`sandbox`]: a plugin's walls: what the machine offers.
//! - `error`: the errors, each naming the plugin and what went wrong.
//! - [`trace`]: the spans a trace is made of (`outboard.job`,
//!   `outboard.dispatch`, `outboard.invoke`) and W3C context in and out.
//!
//! The library never prints and never exits: the `outboard` command line
//! (crate `outboard-cli`) decides what a person sees.

pub mod config;
mod context;
mod depends;
mod dispatch;
mod error;
mod figures;
mod host;
mod instance;
pub mod job;
pub mod launch;
mod manifest;
mod output;
pub mod sandbox;
mod supervisor;
pub mod trace;

pub use config::{
    Defaults, EventsSpec, FailurePolicy, HostConfig, Mode, PhaseSpec, PluginSpec, RestartPolicy,
    Retry, ServicesSpec, StateSpec, SubscriptionOverride, Supervision,
};
pub use context::SentContext;
pub use depends::{DependencyError, DependencyErrors, Turn};
pub use dispatch::{
    Entry, FailureKind, Outcome, Report, Route, Subscriber, Verdict, patch_to_json,
};
pub use error::{CallError, Error, ErrorKind};
pub use figures::{
    BUCKET_BOUNDS, CallFigures, Figures, Histogram, JobCounts, JobResult, LATENCY_WINDOW,
    MAX_PHASES, OTHER_PHASES, Outcomes, PhaseFigures, PluginFigures, RestartReason, Stats,
    StatsSnapshot, UnknownJobResult,
};
pub use host::{
    Host, HostEvent, HostHandle, NoSuchPlugin, PluginChange, ReloadError, ReloadPlan, SecretSpecs,
    StartFailures, start_all, stop_all,
};
pub use instance::{Plugin, Reply, StopMethod, Stopped};
pub use launch::{Attach, Attachment, Exit};
pub use manifest::{
    ConfigSchemaError, ConfigViolation, Dependency, FieldError, Manifest, ManifestError,
    Permission, Subscription,
};
pub use output::{Escaped, Stream};
/// In-memory plugins for tests: a fake launcher whose starts, exits, health
/// answers and calls are scripted.
#[cfg(feature = "test-util")]
pub use supervisor::fake as testing;
pub use supervisor::{HealthCheck, Instance, Launcher, PluginLauncher, State, Status, Supervisor};
