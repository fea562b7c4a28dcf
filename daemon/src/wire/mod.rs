//! Conversions between the host's types and `outboard.control.v1`.
//!
//! - `report`: a dispatch's report, both ways, and the `Watch` stream's
//!   dispatch event.
//! - `status`: a plugin's status, statistics and usage as `PluginStatus`.
//! - `plan`: a reload plan.
//! - `job`: a job's result.
//! - `time`: timestamps.

mod job;
mod plan;
mod report;
mod status;
mod time;

pub use job::{job_result_from_proto, job_result_to_proto};
pub use plan::{plan_names, plan_to_proto};
pub use report::{
    WireError, dispatch_event, duration_from_proto, duration_to_proto, failure_from_proto,
    failure_to_proto, mode_to_proto, outcome_from_proto, outcome_to_proto, policy_to_proto,
    report_from_proto, report_to_proto, verdict_from_proto, verdict_to_proto,
};
pub use status::{PluginFacts, plugin_status, state_to_proto};
pub use time::timestamp;
