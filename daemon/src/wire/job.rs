//! A job's result (how it ended) as `outboard.control.v1.JobResult`, both
//! ways: `outboard run --daemon` sends it, the daemon counts it. The wire's
//! names are the host's ([`JobResult::as_str`]) in upper case after
//! `JOB_RESULT_`, so one table serves both directions.

use outboard_host::JobResult;
use outboard_proto::control::v1 as wire;

/// The prefix of every `JobResult` value's name on the wire.
const PREFIX: &str = "JOB_RESULT_";

/// `result` as the wire's; unspecified for one the wire does not name
/// (which the daemon refuses rather than miscount).
pub fn job_result_to_proto(result: JobResult) -> wire::JobResult {
    let name = format!("{PREFIX}{}", result.as_str().to_ascii_uppercase());
    wire::JobResult::from_str_name(&name).unwrap_or(wire::JobResult::Unspecified)
}

/// The wire's job result (its raw value) as the host's; `None` for one
/// unset or unknown, which is not counted (the results stay a fixed set).
pub fn job_result_from_proto(raw: i32) -> Option<JobResult> {
    let name = wire::JobResult::try_from(raw).ok()?.as_str_name();
    name.strip_prefix(PREFIX)?.to_ascii_lowercase().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_goes_over_the_wire_and_back() {
        for result in JobResult::ALL {
            let wire = job_result_to_proto(result);
            assert_ne!(wire, wire::JobResult::Unspecified, "{result:?}");
            assert_eq!(job_result_from_proto(wire as i32), Some(result));
        }
        assert_eq!(job_result_from_proto(0), None);
        assert_eq!(job_result_from_proto(99), None);
    }
}
