//! The check every call passes first: the connection's peer must have been
//! admitted (see `crate::peer`). A refused peer gets `PERMISSION_DENIED`
//! saying which uid was refused and why.

use tonic::{Request, Status};

use crate::incoming::Admission;

/// Lets the call through if its connection's peer was admitted.
pub(super) fn admit(request: Request<()>) -> Result<Request<()>, Status> {
    match request
        .extensions()
        .get::<Admission>()
        .map(Admission::verdict)
    {
        Some(Ok(_)) => Ok(request),
        Some(Err(refusal)) => Err(Status::permission_denied(format!(
            "the outboard daemon refuses this connection: {refusal}"
        ))),
        // Every connection is judged when accepted; a call without a
        // verdict did not come through the daemon's listener.
        None => Err(Status::permission_denied(
            "the outboard daemon refuses this connection: its peer was not checked",
        )),
    }
}
