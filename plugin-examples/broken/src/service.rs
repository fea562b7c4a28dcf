//! The plugin service, faults included, behind a check of the token.

use std::sync::Arc;
use std::time::Duration;

use outboard_proto::handshake;
use outboard_proto::v1;
use outboard_proto::v1::plugin_service_server::PluginService;
use prost_types::value::Kind;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::mode::Mode;
use crate::{MIN_DRAIN, SIGTERM_DRAIN};

/// Lets a call through only with `authorization: Bearer <token>`.
pub(crate) fn check_token(
    token: &str,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
    let expected = handshake::bearer(token);
    move |request: Request<()>| match request.metadata().get(handshake::TOKEN_METADATA_KEY) {
        Some(value) if constant_time_eq(value.as_bytes(), expected.as_bytes()) => Ok(request),
        Some(_) => Err(Status::unauthenticated("wrong token")),
        None => Err(Status::unauthenticated(format!(
            "missing {} metadata",
            handshake::TOKEN_METADATA_KEY
        ))),
    }
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `PluginService` implementation, faults included.
#[derive(Debug)]
pub(crate) struct Broken {
    /// The fault to commit.
    pub(crate) mode: Mode,
    /// The negotiated version, announced in the handshake line.
    pub(crate) protocol_version: u32,
    /// The manifest's description.
    pub(crate) description: String,
    /// Set to ask `run` to stop.
    pub(crate) stop: Arc<watch::Sender<Option<Duration>>>,
    /// True if it serves (a broken) fast path: the host offered one and
    /// the mode is a fast-path fault.
    pub(crate) fastpath: bool,
}

impl Broken {
    /// `broken-<mode>`.
    fn plugin_name(&self) -> String {
        format!("broken-{}", self.mode.name())
    }

    /// The manifest, invalid in `bad-manifest`.
    fn manifest(&self) -> v1::Manifest {
        let mut manifest = v1::Manifest {
            name: self.plugin_name(),
            version: "0.1.0".into(),
            protocol_version: self.protocol_version,
            description: self.description.clone(),
            features: if self.fastpath {
                vec![outboard_proto::fastpath::FEATURE.to_owned()]
            } else {
                Vec::new()
            },
            subscriptions: vec![v1::Subscription {
                phase: "test".into(),
                priority: 0,
                idempotent: false,
            }],
            permissions: Vec::new(),
            dependencies: Vec::new(),
            config_schema: None,
            event_subscriptions: Vec::new(),
        };
        if self.mode == Mode::BadManifest {
            manifest.version = "not-a-version".into();
            manifest.subscriptions[0].phase = "Pre Container!".into();
            manifest.protocol_version = 1;
        }
        manifest
    }
}

#[tonic::async_trait]
impl PluginService for Broken {
    async fn describe(
        &self,
        _request: Request<v1::DescribeRequest>,
    ) -> Result<Response<v1::DescribeResponse>, Status> {
        Ok(Response::new(v1::DescribeResponse {
            manifest: Some(self.manifest()),
        }))
    }

    async fn configure(
        &self,
        request: Request<v1::ConfigureRequest>,
    ) -> Result<Response<v1::ConfigureResponse>, Status> {
        let request = request.into_inner();
        let keys = request.config.map_or(0, |c| c.fields.len());
        // Both names the host gives this instance, so that tests can see
        // that they agree (PROTOCOL.md §2.1).
        let env_name = std::env::var(outboard_proto::handshake::ENV_PLUGIN_NAME).ok();
        eprintln!(
            "configured as {:?} (OUTBOARD_PLUGIN_NAME {:?}) with {keys} config key(s)",
            request.instance_name,
            env_name.as_deref().unwrap_or("<unset>")
        );
        Ok(Response::new(v1::ConfigureResponse {}))
    }

    async fn invoke(
        &self,
        request: Request<v1::InvokeRequest>,
    ) -> Result<Response<v1::InvokeResponse>, Status> {
        let request = request.into_inner();
        match self.mode {
            Mode::CrashOnInvoke => {
                eprintln!("crashing on purpose");
                std::process::exit(101);
            }
            Mode::HangInvoke => {
                eprintln!("invoked for {:?}; never answering", request.phase);
                std::future::pending::<()>().await;
            }
            Mode::DropsConnection => {
                eprintln!("answering, then no longer serving");
                self.stop.send_replace(Some(MIN_DRAIN));
            }
            _ => {}
        }
        Ok(Response::new(v1::InvokeResponse {
            outcome: v1::Outcome::Continue as i32,
            patch: vec![v1::PatchOperation {
                op: v1::PatchOp::Set as i32,
                path: format!("/seen/{}", self.plugin_name()),
                value: Some(prost_types::Value {
                    kind: Some(Kind::NumberValue(f64::from(request.attempt))),
                }),
            }],
            message: String::new(),
        }))
    }

    async fn shutdown(
        &self,
        request: Request<v1::ShutdownRequest>,
    ) -> Result<Response<v1::ShutdownResponse>, Status> {
        let request = request.into_inner();
        if self.mode == Mode::IgnoresSigterm {
            eprintln!("asked to shut down ({:?}), ignoring it", request.reason);
        } else {
            let grace = request
                .grace
                .and_then(|g| Duration::try_from(g).ok())
                .unwrap_or(SIGTERM_DRAIN)
                .max(MIN_DRAIN);
            eprintln!("shutting down ({:?})", request.reason);
            self.stop.send_replace(Some(grace));
        }
        Ok(Response::new(v1::ShutdownResponse {}))
    }
}
