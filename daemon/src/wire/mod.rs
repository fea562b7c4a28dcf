//! Conversions between the host's types and `outboard.control.v1`.

mod report;

pub use report::{
    WireError, dispatch_event, duration_from_proto, duration_to_proto, failure_from_proto,
    failure_to_proto, mode_to_proto, outcome_from_proto, outcome_to_proto, policy_to_proto,
    report_from_proto, report_to_proto, verdict_from_proto, verdict_to_proto,
};
