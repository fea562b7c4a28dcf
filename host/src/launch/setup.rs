//! The two setup calls after the handshake, shared by the host's start and
//! the conformance battery: `Describe`, its manifest validated against the
//! protocol version the plugin chose, and `Configure`.

use std::time::Duration;

use outboard_proto::handshake::SUPPORTED_PROTOCOL_VERSIONS;
use outboard_proto::json::json_to_struct;
use outboard_proto::v1;
use serde_json::{Map, Value};

use crate::error::{CallError, ErrorKind};
use crate::launch::call::Deadline;
use crate::launch::channel::Clients;
use crate::launch::launched::Launched;
use crate::manifest::Manifest;

/// What the host tells a plugin in `Configure`.
#[derive(Debug, Clone, Copy)]
pub struct Configuration<'a> {
    /// The plugin's config, already checked against its schema by the
    /// caller (or, in conformance, deliberately not).
    pub config: &'a Map<String, Value>,
    /// The permissions granted, from those the manifest asks for.
    pub granted: &'a [String],
    /// The name the host knows this instance by.
    pub instance_name: &'a str,
}

/// The host's `DescribeRequest`: the protocol versions it speaks, its
/// version.
pub fn describe_request() -> v1::DescribeRequest {
    v1::DescribeRequest {
        host_protocol_versions: SUPPORTED_PROTOCOL_VERSIONS.to_vec(),
        host_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

impl Launched {
    /// Calls `Describe` within `timeout` and validates the manifest; the
    /// error is [`ErrorKind::Describe`] or [`ErrorKind::InvalidManifest`].
    pub async fn describe(
        &self,
        clients: &Clients,
        timeout: Duration,
    ) -> Result<Manifest, ErrorKind> {
        let deadline = Deadline::after(timeout);
        let mut client = clients.plugin.clone();
        let described = self
            .guard()
            .call(
                deadline,
                client.describe(deadline.request(describe_request())),
            )
            .await
            .map_err(ErrorKind::Describe)?;
        let manifest = described.manifest.ok_or_else(|| {
            ErrorKind::Describe(CallError::InvalidResponse(
                "DescribeResponse has no manifest".to_owned(),
            ))
        })?;
        Ok(Manifest::from_proto(manifest, self.protocol_version())?)
    }

    /// Calls `Configure` with `configuration` within `timeout`.
    pub async fn configure(
        &self,
        clients: &Clients,
        configuration: Configuration<'_>,
        timeout: Duration,
    ) -> Result<(), CallError> {
        let deadline = Deadline::after(timeout);
        let request = v1::ConfigureRequest {
            config: Some(json_to_struct(configuration.config)),
            granted_permissions: configuration.granted.to_vec(),
            protocol_version: self.protocol_version(),
            instance_name: configuration.instance_name.to_owned(),
        };
        let mut client = clients.plugin.clone();
        self.guard()
            .call(deadline, client.configure(deadline.request(request)))
            .await
            .map(|_| ())
    }
}
