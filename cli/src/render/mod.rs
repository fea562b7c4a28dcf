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

pub(crate) mod checks;
pub(crate) mod job;
pub(crate) mod ls;
mod outcome;
pub(crate) mod report;
pub(crate) mod state;
