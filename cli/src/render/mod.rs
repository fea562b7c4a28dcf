//! What a person (or a script, with `--json`) reads. Commands hand these
//! functions typed values (reports, rows, statuses); nothing here starts or
//! stops anything.
//!
//! - `ls`: the plugin table, and its rows (also `ls --json`'s).
//! - `report`: one phase's report, for `invoke`.
//! - `job`: the job summary `run` prints on stderr.
//! - `outcome`: one plugin's outcome in a word, shared by both reports.
//! - `state`: `up`'s state lines.
//! - `checks`: the conformance results.
//! - `status`: a daemon's plugins (`status`, `restart`, `stop`, `start`).
//! - `logs`: a plugin's log lines from the daemon, with gap markers.
//! - `events`: the daemon's Watch stream as lines.
//! - `reload`: a reload's plan.
//! - `sandbox`: a plugin's walls (`describe --sandbox`, `status`).
//! - `columns`: aligned columns, for every table.

pub(crate) mod checks;
mod columns;
pub(crate) mod dead_letters;
pub(crate) mod events;
pub(crate) mod job;
pub(crate) mod logs;
pub(crate) mod ls;
mod outcome;
pub(crate) mod packages;
pub(crate) mod reload;
pub(crate) mod report;
pub(crate) mod sandbox;
pub(crate) mod state;
pub(crate) mod status;
