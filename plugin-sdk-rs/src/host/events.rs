//! [`Events`]: publishing events (PROTOCOL.md §17.4).

use outboard_proto::json::json_to_value;
use outboard_proto::v1::PublishRequest;
use serde_json::Value;
use tonic::Request;

use super::{HostError, HostServices};

/// Publishing events (`event:publish:GLOB` granted for the name). When
/// [`Events::publish`] returns, the event is stored durably; the host
/// delivers it to subscribers later, at least once.
#[derive(Debug, Clone, PartialEq)]
pub struct Events {
    /// Where the calls go.
    host: HostServices,
}

impl Events {
    pub(super) fn new(host: HostServices) -> Events {
        Events { host }
    }

    /// Publishes the event `name` (1 to 128 characters of `[a-z0-9_.-]`,
    /// not starting with the host's own `plugin.`, `job.`, `reload.` or
    /// `host.`) with a JSON `payload`, and returns its id.
    pub async fn publish(&self, name: &str, payload: Value) -> Result<String, HostError> {
        self.publish_with_key(name, payload, "").await
    }

    /// [`Events::publish`] that is safe to retry: a second publish by this
    /// plugin with the same `key` (at most 128 bytes; empty: none) within
    /// the host's retention stores nothing and returns the first event's
    /// id. Use it when a publish may have reached the host though the call
    /// failed (a timeout), so that the retry does not publish twice.
    pub async fn publish_with_key(
        &self,
        name: &str,
        payload: Value,
        key: &str,
    ) -> Result<String, HostError> {
        let request = PublishRequest {
            name: name.to_owned(),
            payload: Some(json_to_value(&payload)),
            idempotency_key: key.to_owned(),
        };
        let response = self
            .host
            .service()?
            .publish(Request::new(request))
            .await
            .map_err(|s| HostError::status("Publish", s))?;
        Ok(response.into_inner().event_id)
    }
}
