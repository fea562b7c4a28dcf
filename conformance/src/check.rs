//! One check's result: which check, how it ended, and what was seen.

use std::fmt;

use serde::{Serialize, Serializer};

/// The checks of the battery, in the order they run. The names are stable:
/// scripts read them from `outboard conformance --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckName {
    /// Started without the handshake variables, the plugin exits 1 (§3).
    RunByHand,
    /// It prints a valid handshake line in time (§6).
    Handshake,
    /// Its socket is a socket, mode 0600 or stricter (§5).
    SocketPermissions,
    /// It refuses calls without the token, or with a wrong one (§7).
    TokenRequired,
    /// `Describe` returns a valid manifest (§8.2).
    Describe,
    /// `Configure` accepts a config its schema accepts (§8.3).
    ConfigureValid,
    /// `Configure` refuses one its schema refuses (§8.3).
    ConfigureInvalid,
    /// The health service says SERVING (§10).
    Health,
    /// `Invoke` on a subscribed phase answers well (§8.4, §8.5); one check
    /// per phase, named `invoke <phase>`.
    Invoke,
    /// A request field it does not know is ignored (§13).
    UnknownFields,
    /// An `Invoke` with a short deadline is answered in time (§8.1).
    Deadline,
    /// The fast path (§18): its socket is mode 0600; `HELLO` with the right
    /// token is answered, a wrong token or no `HELLO` refused and closed.
    FastpathHello,
    /// An `INVOKE` is answered with its id; id 0 is refused.
    FastpathFraming,
    /// The same request gets the same answer as over gRPC.
    FastpathSameAnswer,
    /// 16 calls in one write: every id answered exactly once.
    FastpathMultiplexing,
    /// A past deadline or a spent timeout is answered as on gRPC.
    FastpathDeadline,
    /// A `CANCEL`ed call does not stop the next one being answered.
    FastpathCancellation,
    /// A payload that does not decode: `ERROR` INVALID_ARGUMENT, and the
    /// connection goes on.
    FastpathMalformed,
    /// An unknown frame kind: `ERROR` UNIMPLEMENTED, and it goes on.
    FastpathUnknownKind,
    /// A frame over the size limit: `ERROR` RESOURCE_EXHAUSTED, and it
    /// goes on.
    FastpathOversize,
    /// After all of it, the process still runs and answers.
    FastpathAlive,
    /// `Shutdown` is answered, then it exits with status 0 (§8.6).
    Shutdown,
    /// A fresh instance exits soon after SIGTERM (§12).
    Sigterm,
    /// A fresh instance launched with the host-service variables pointing
    /// at a live socket still describes itself, takes its config and
    /// answers an `Invoke` (§17.1).
    HostServices,
}

impl CheckName {
    /// The fast-path checks (§18), in order; on the one launch, after the
    /// deadline check.
    pub const FASTPATH: [CheckName; 10] = [
        CheckName::FastpathHello,
        CheckName::FastpathFraming,
        CheckName::FastpathSameAnswer,
        CheckName::FastpathMultiplexing,
        CheckName::FastpathDeadline,
        CheckName::FastpathCancellation,
        CheckName::FastpathMalformed,
        CheckName::FastpathUnknownKind,
        CheckName::FastpathOversize,
        CheckName::FastpathAlive,
    ];

    /// The checks run on the one launch after the handshake, in order: what
    /// is left of them is blocked when one of them cannot go on.
    pub const ON_ONE_LAUNCH: [CheckName; 21] = {
        let grpc = [
            CheckName::Handshake,
            CheckName::SocketPermissions,
            CheckName::TokenRequired,
            CheckName::Describe,
            CheckName::ConfigureValid,
            CheckName::ConfigureInvalid,
            CheckName::Health,
            CheckName::Invoke,
            CheckName::UnknownFields,
            CheckName::Deadline,
        ];
        // Shutdown last; the fast path after the gRPC checks.
        let mut all = [CheckName::Shutdown; 21];
        let mut i = 0;
        while i < grpc.len() {
            all[i] = grpc[i];
            i += 1;
        }
        let mut j = 0;
        while j < CheckName::FASTPATH.len() {
            all[i + j] = CheckName::FASTPATH[j];
            j += 1;
        }
        all
    };

    /// The stable name, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::RunByHand => "run-by-hand",
            CheckName::Handshake => "handshake",
            CheckName::SocketPermissions => "socket permissions",
            CheckName::TokenRequired => "token required",
            CheckName::Describe => "describe",
            CheckName::ConfigureValid => "configure valid",
            CheckName::ConfigureInvalid => "configure invalid",
            CheckName::Health => "health",
            CheckName::Invoke => "invoke",
            CheckName::UnknownFields => "unknown fields tolerated",
            CheckName::Deadline => "deadline honoured",
            CheckName::FastpathHello => "fastpath hello",
            CheckName::FastpathFraming => "fastpath framing",
            CheckName::FastpathSameAnswer => "fastpath same answer as grpc",
            CheckName::FastpathMultiplexing => "fastpath multiplexing",
            CheckName::FastpathDeadline => "fastpath deadline",
            CheckName::FastpathCancellation => "fastpath cancellation",
            CheckName::FastpathMalformed => "fastpath malformed payload",
            CheckName::FastpathUnknownKind => "fastpath unknown kind",
            CheckName::FastpathOversize => "fastpath over-size frame",
            CheckName::FastpathAlive => "fastpath no crash",
            CheckName::Shutdown => "shutdown",
            CheckName::Sigterm => "sigterm",
            CheckName::HostServices => "host services tolerated",
        }
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for CheckName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Outcome {
    /// The plugin does what the protocol asks.
    Passed,
    /// It does not; the detail says how.
    Failed,
    /// The check does not apply to this plugin (no config schema, no
    /// subscription); counts as passed.
    NotApplicable,
    /// The check could not run because an earlier one failed; counts as
    /// failed.
    Blocked,
}

impl Outcome {
    /// True if the outcome counts as passed.
    pub fn passed(self) -> bool {
        matches!(self, Outcome::Passed | Outcome::NotApplicable)
    }
}

/// One check's result. Its JSON has `name`, `passed` and `detail`, plus the
/// typed `outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The check's name, e.g. `handshake`, or `invoke pre_container` for
    /// the [`CheckName::Invoke`] of one phase.
    pub name: String,
    /// Whether it passed: [`Outcome::passed`].
    pub passed: bool,
    /// Why, or what was seen; a check that did not run says `skipped: `
    /// and why.
    pub detail: String,
    /// How it ended.
    pub outcome: Outcome,
}

impl Check {
    /// A check named `name` that ended with `outcome`.
    pub fn new(name: impl fmt::Display, outcome: Outcome, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            passed: outcome.passed(),
            detail: detail.into(),
            outcome,
        }
    }

    /// A passed check.
    pub fn pass(name: impl fmt::Display, detail: impl Into<String>) -> Check {
        Check::new(name, Outcome::Passed, detail)
    }

    /// A failed check.
    pub fn fail(name: impl fmt::Display, detail: impl Into<String>) -> Check {
        Check::new(name, Outcome::Failed, detail)
    }

    /// A check that does not apply to this plugin, and why.
    pub fn not_applicable(name: impl fmt::Display, why: &str) -> Check {
        Check::new(name, Outcome::NotApplicable, format!("skipped: {why}"))
    }

    /// A check that could not run because an earlier one failed, and why.
    pub fn blocked(name: impl fmt::Display, why: &str) -> Check {
        Check::new(name, Outcome::Blocked, format!("skipped: {why}"))
    }

    /// Passed with the detail of `Ok`, or failed with that of `Err`.
    pub fn of(name: impl fmt::Display, result: Result<String, String>) -> Check {
        match result {
            Ok(detail) => Check::pass(name, detail),
            Err(detail) => Check::fail(name, detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_keeps_name_passed_and_detail_and_adds_the_outcome() {
        let check = Check::not_applicable(CheckName::Invoke, "no subscriptions");
        assert_eq!(
            serde_json::to_value(&check).expect("serializes"),
            serde_json::json!({
                "name": "invoke",
                "passed": true,
                "detail": "skipped: no subscriptions",
                "outcome": "not-applicable",
            })
        );
        let blocked = Check::blocked(CheckName::Health, "no valid manifest");
        assert!(!blocked.passed);
        assert_eq!(blocked.outcome, Outcome::Blocked);
    }

    #[test]
    fn names_pad_in_tables() {
        assert_eq!(format!("{:8}|", CheckName::Health), "health  |");
    }
}
