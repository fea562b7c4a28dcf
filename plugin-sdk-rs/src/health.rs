//! What the plugin's `grpc.health.v1.Health` service answers, and the
//! handle a plugin uses to change it.
//!
//! The SDK serves the health service itself (`SERVING` from the start,
//! `NOT_SERVING` once it is stopping). A plugin gets a [`Health`] handle in
//! [`Config::health`](crate::Config::health) and may report `NOT_SERVING`
//! to ask the host for a restart (PROTOCOL.md §10), for instance when it
//! finds its own state corrupt. It keeps serving calls meanwhile.
//!
//! ```
//! use outboard_plugin::{Config, Invocation, Manifest, Plugin, PluginError, Reply};
//! use outboard_plugin::Health;
//! use std::sync::OnceLock;
//!
//! struct Careful {
//!     health: OnceLock<Health>,
//! }
//!
//! impl Plugin for Careful {
//!     fn manifest(&self) -> Manifest {
//!         Manifest::new("careful", "0.1.0").subscribe("pre_container", 0)
//!     }
//!
//!     async fn configure(&self, config: Config) -> Result<(), PluginError> {
//!         let _ = self.health.set(config.health);
//!         Ok(())
//!     }
//!
//!     async fn invoke(&self, _: Invocation) -> Result<Reply, PluginError> {
//!         let corrupt = false; // whatever the plugin checks
//!         if corrupt && let Some(health) = self.health.get() {
//!             // The host restarts the plugin after a few such checks.
//!             health.set_serving(false);
//!         }
//!         Ok(Reply::ok())
//!     }
//! }
//! ```

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{self, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// A handle on the plugin's health service. Cloning it gives another handle
/// on the same service.
///
/// The status applies to the whole server (service `""`, which the host
/// checks) and to `outboard.v1.PluginService`; other service names are
/// `NOT_FOUND`.
#[derive(Clone)]
pub struct Health {
    /// What the health service answers; `Check` and `Watch` read it.
    state: Arc<watch::Sender<State>>,
}

/// The health service's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    /// `SERVING` if true, else `NOT_SERVING`.
    serving: bool,
    /// `true` while health calls wait without an answer.
    stalled: bool,
}

impl Health {
    /// A handle reporting `SERVING`, not yet attached to any server. The SDK
    /// makes the one a server uses; this is for tests and for
    /// [`Config::new`](crate::Config::new).
    pub fn new() -> Health {
        Health {
            state: Arc::new(watch::Sender::new(State {
                serving: true,
                stalled: false,
            })),
        }
    }

    /// Reports `SERVING` (`true`) or `NOT_SERVING` (`false`) from now on.
    /// A plugin reports `NOT_SERVING` to ask the host to restart it.
    pub fn set_serving(&self, serving: bool) {
        self.state.send_if_modified(|s| {
            let changed = s.serving != serving;
            s.serving = serving;
            changed
        });
    }

    /// `true` while the service reports `SERVING`.
    pub fn is_serving(&self) -> bool {
        self.state.borrow().serving
    }

    /// While `true`, health calls (`Check`, and `Watch` before its first
    /// answer) wait without answering, until this is set back to `false` or
    /// the caller gives up at its deadline. This exists to test how a host
    /// treats a plugin whose health checks hang; a real plugin reports
    /// `NOT_SERVING` instead.
    pub fn set_stalled(&self, stalled: bool) {
        self.state.send_if_modified(|s| {
            let changed = s.stalled != stalled;
            s.stalled = stalled;
            changed
        });
    }

    /// `true` while health calls are held unanswered.
    pub fn is_stalled(&self) -> bool {
        self.state.borrow().stalled
    }

    /// The `grpc.health.v1.Health` service answering from this handle.
    pub(crate) fn server(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService {
            health: self.clone(),
        })
    }

    /// Returns once health calls may be answered.
    async fn until_answering(&self) {
        let mut state = self.state.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = state.wait_for(|s| !s.stalled).await;
    }
}

impl Default for Health {
    fn default() -> Health {
        Health::new()
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = *self.state.borrow();
        f.debug_struct("Health")
            .field("serving", &state.serving)
            .field("stalled", &state.stalled)
            .finish()
    }
}

/// The status `service` has in `state`, or `None` for a service this server
/// does not have.
fn status_for(service: &str, state: State) -> Option<ServingStatus> {
    if !(service.is_empty() || service == outboard_proto::SERVICE_NAME) {
        return None;
    }
    Some(if state.serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    })
}

/// The answer for a service this server does not have, as tonic-health
/// words it.
fn not_found() -> Status {
    Status::not_found("service not registered")
}

/// `grpc.health.v1.Health` over a [`Health`] handle.
#[derive(Debug)]
pub(crate) struct HealthService {
    /// Where the answers come from.
    health: Health,
}

#[tonic::async_trait]
impl health_server::Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.health.until_answering().await;
        let state = *self.health.state.borrow();
        let status = status_for(&request.get_ref().service, state).ok_or_else(not_found)?;
        Ok(Response::new(HealthCheckResponse {
            status: status as i32,
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.health.until_answering().await;
        let service = request.into_inner().service;
        let receiver = self.health.state.subscribe();
        if status_for(&service, *receiver.borrow()).is_none() {
            return Err(not_found());
        }
        // The current status first, then each change of it (not of `stalled`).
        let mut last = None;
        let updates = tokio_stream::wrappers::WatchStream::new(receiver).filter_map(move |state| {
            let status = status_for(&service, state)?;
            (last.replace(status) != Some(status)).then_some(Ok(HealthCheckResponse {
                status: status as i32,
            }))
        });
        Ok(Response::new(Box::pin(updates)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tonic_health::pb::health_server::Health as _;

    fn check(service: &str) -> Request<HealthCheckRequest> {
        Request::new(HealthCheckRequest {
            service: service.into(),
        })
    }

    async fn status(service: &HealthService, name: &str) -> Result<ServingStatus, tonic::Code> {
        let response = service
            .check(check(name))
            .await
            .map_err(|e| e.code())?
            .into_inner();
        Ok(ServingStatus::try_from(response.status).expect("a known status"))
    }

    #[tokio::test]
    async fn serving_then_not_serving_on_every_known_name() {
        let health = Health::new();
        let service = HealthService {
            health: health.clone(),
        };
        assert!(health.is_serving() && !health.is_stalled());
        for name in ["", outboard_proto::SERVICE_NAME] {
            assert_eq!(status(&service, name).await, Ok(ServingStatus::Serving));
        }
        // A clone is the same handle.
        health.clone().set_serving(false);
        assert!(!health.is_serving());
        for name in ["", outboard_proto::SERVICE_NAME] {
            assert_eq!(status(&service, name).await, Ok(ServingStatus::NotServing));
        }
        health.set_serving(true);
        assert_eq!(status(&service, "").await, Ok(ServingStatus::Serving));
        assert_eq!(
            status(&service, "no.such.Service").await,
            Err(tonic::Code::NotFound)
        );
        assert_eq!(
            format!("{health:?}"),
            "Health { serving: true, stalled: false }"
        );
    }

    #[tokio::test]
    async fn a_stalled_check_waits_until_released() {
        let health = Health::new();
        let service = Arc::new(HealthService {
            health: health.clone(),
        });
        health.set_stalled(true);
        assert!(health.is_stalled());
        let waiting = tokio::spawn({
            let service = service.clone();
            async move { status(&service, "").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a stalled check answered");
        health.set_serving(false);
        health.set_stalled(false);
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released")
            .expect("no panic");
        assert_eq!(answer, Ok(ServingStatus::NotServing));
    }

    #[tokio::test]
    async fn watch_sends_the_status_then_its_changes() {
        let health = Health::new();
        let service = HealthService {
            health: health.clone(),
        };
        let mut updates = service.watch(check("")).await.expect("known").into_inner();
        let next = |r: Option<Result<HealthCheckResponse, Status>>| {
            ServingStatus::try_from(r.expect("an update").expect("ok").status).expect("known")
        };
        assert_eq!(next(updates.next().await), ServingStatus::Serving);
        // Stalling is not a status change; serving is.
        health.set_stalled(true);
        health.set_stalled(false);
        health.set_serving(false);
        assert_eq!(next(updates.next().await), ServingStatus::NotServing);
        let err = service
            .watch(check("no.such.Service"))
            .await
            .map(|_| ())
            .expect_err("unknown");
        assert_eq!(err.code(), tonic::Code::NotFound);
    }
}
