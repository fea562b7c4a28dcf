//! What a plugin answers to `Invoke`: go on (with a patch to the context) or
//! abort (with a reason).

use outboard_proto::patch::{PatchError, PatchOp};
use outboard_proto::v1;
use serde_json::Value;

use crate::PluginError;

/// What the plugin decided about the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Go on, applying the reply's patch.
    Continue,
    /// Veto the phase; the reply's message says why.
    Abort,
}

/// The answer to one invocation: an [`Outcome`], a patch to the context and
/// an optional message.
///
/// Building never panics: an invalid JSON Pointer is kept as an error and
/// the call fails with `INTERNAL` naming the pointer, the same way in the
/// [test harness](crate::testing) as over gRPC.
///
/// ```
/// use outboard_plugin::Reply;
///
/// let reply = Reply::ok()
///     .set("/env/BUILD_ID", "ci-42")
///     .remove("/env/DEBUG")
///     .with_message("build id set");
/// assert_eq!(reply.patch().expect("valid pointers").len(), 2);
/// assert!(Reply::ok().set("env/X", 1).patch().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    outcome: Outcome,
    patch: Vec<PatchOp>,
    message: String,
    /// The first invalid pointer given to `set` or `remove`.
    invalid: Option<PatchError>,
}

impl Reply {
    /// Continue, with no changes yet.
    pub fn ok() -> Reply {
        Reply {
            outcome: Outcome::Continue,
            patch: Vec::new(),
            message: String::new(),
            invalid: None,
        }
    }

    /// Veto the phase, saying why (the message is required).
    pub fn abort(message: impl Into<String>) -> Reply {
        Reply {
            outcome: Outcome::Abort,
            message: message.into(),
            ..Reply::ok()
        }
    }

    /// Sets the value at `pointer` (RFC 6901, e.g. `/env/BUILD_ID`), creating
    /// parent objects as needed.
    pub fn set(self, pointer: &str, value: impl Into<Value>) -> Reply {
        let op = PatchOp::set(pointer, value);
        self.push(op)
    }

    /// Removes the value at `pointer`; removing what is absent is fine.
    pub fn remove(self, pointer: &str) -> Reply {
        let op = PatchOp::remove(pointer);
        self.push(op)
    }

    fn push(mut self, op: Result<PatchOp, PatchError>) -> Reply {
        match op {
            Ok(op) => self.patch.push(op),
            Err(e) => {
                self.invalid.get_or_insert(e);
            }
        }
        self
    }

    /// Sets the message shown in the host's report.
    pub fn with_message(mut self, message: impl Into<String>) -> Reply {
        self.message = message.into();
        self
    }

    /// Continue or abort.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The message, empty if none was set.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The patch operations in order, or the error of the first invalid
    /// pointer.
    pub fn patch(&self) -> Result<&[PatchOp], PluginError> {
        match &self.invalid {
            Some(e) => Err(PluginError::internal(format!(
                "the plugin built an invalid patch: {e}"
            ))),
            None => Ok(&self.patch),
        }
    }

    /// The reply's wire form; fails on an invalid pointer or an abort
    /// without a message.
    pub fn to_proto(&self) -> Result<v1::InvokeResponse, PluginError> {
        let patch = self.patch()?;
        let outcome = match self.outcome {
            Outcome::Continue => v1::Outcome::Continue,
            Outcome::Abort if self.message.trim().is_empty() => {
                return Err(PluginError::internal(
                    "the plugin aborted without a message; an abort must say why",
                ));
            }
            Outcome::Abort => v1::Outcome::Abort,
        };
        Ok(v1::InvokeResponse {
            outcome: outcome as i32,
            patch: patch.iter().map(PatchOp::to_proto).collect(),
            message: self.message.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outboard_proto::patch;
    use serde_json::json;

    #[test]
    fn ok_reply_carries_its_patch_in_order() {
        let reply = Reply::ok()
            .set("/env/A", "1")
            .set("/metadata/x", json!({"n": 2}))
            .remove("/env/B")
            .with_message("done");
        let wire = reply.to_proto().expect("valid");
        assert_eq!(wire.outcome, v1::Outcome::Continue as i32);
        assert_eq!(wire.message, "done");
        assert_eq!(
            patch::from_proto(&wire.patch).expect("readable"),
            vec![
                PatchOp::set("/env/A", "1").expect("valid"),
                PatchOp::set("/metadata/x", json!({"n": 2})).expect("valid"),
                PatchOp::remove("/env/B").expect("valid"),
            ]
        );
    }

    #[test]
    fn invalid_pointer_is_an_error_not_a_panic() {
        let reply = Reply::ok().set("/ok", 1).set("env/X", 1).remove("");
        let err = reply.to_proto().expect_err("invalid pointer");
        assert_eq!(err.code(), crate::Code::Internal);
        assert_eq!(
            err.message(),
            "the plugin built an invalid patch: path \"env/X\" is not a valid JSON Pointer: \
             a JSON Pointer starts with '/'"
        );
    }

    #[test]
    fn abort_needs_a_message() {
        let wire = Reply::abort("license check failed")
            .to_proto()
            .expect("valid");
        assert_eq!(wire.outcome, v1::Outcome::Abort as i32);
        assert_eq!(wire.message, "license check failed");
        let err = Reply::abort(" ").to_proto().expect_err("no message");
        assert!(err.message().contains("must say why"), "{err}");
    }
}
