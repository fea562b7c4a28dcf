//! Host services (PROTOCOL.md §17): the typed clients a plugin uses to call
//! back into the host — [`Kv`] (a key-value store with expiry and
//! compare-and-set), [`Secrets`] and [`Events`] — and the [`Event`]s it
//! receives.
//!
//! A plugin reaches them from an invocation ([`Invocation::kv`](crate::Invocation::kv)),
//! from `configure` ([`Config::kv`](crate::Config::kv)) and from an event
//! ([`Event::kv`]). They all share one [`HostServices`] handle per process,
//! which connects to `OUTBOARD_HOST_SOCKET` on the first call and keeps the
//! connection. When the host offers no services (the variables are absent),
//! every call fails with [`HostError::NotOffered`] naming the variable, and
//! nothing else changes: a plugin that never calls works as before.
//!
//! Every call carries `authorization: Bearer <OUTBOARD_HOST_TOKEN>`; the
//! token is read at start (before the SDK takes the `OUTBOARD_*` variables
//! out of the environment) and never appears in `Debug` output or logs.
//!
//! In tests, [`testing::FakeHost`](crate::testing::FakeHost) stands in for
//! the host, with the same rules.

mod connect;
mod error;
pub(crate) mod event;
mod events;
mod glob;
mod kv;
mod secrets;
mod status;

use std::path::PathBuf;
use std::sync::Arc;

use outboard_proto::v1::host_service_server::HostService;

pub use error::HostError;
pub use event::Event;
pub use events::Events;
pub(crate) use glob::matches as glob_matches;
pub use kv::{Cas, Entry, Expected, Kv, List, ListOptions, Page};
pub use secrets::{Secret, Secrets};
pub use status::StatusCode;

/// The variable holding the host-services socket's path.
pub const ENV_HOST_SOCKET: &str = "OUTBOARD_HOST_SOCKET";

/// The variable holding the host-services token.
pub const ENV_HOST_TOKEN: &str = "OUTBOARD_HOST_TOKEN";

/// Where the host serves `HostService` to this plugin instance and the
/// credential for it, as `OUTBOARD_HOST_SOCKET` and `OUTBOARD_HOST_TOKEN`
/// give them.
#[derive(Clone, PartialEq, Eq)]
pub struct HostEndpoint {
    /// The Unix socket's absolute path.
    pub socket: PathBuf,
    /// The Bearer token every call carries.
    pub token: String,
}

impl std::fmt::Debug for HostEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never let it reach a log line.
        f.debug_struct("HostEndpoint")
            .field("socket", &self.socket)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl HostEndpoint {
    /// Reads the two variables through `lookup`: `Ok(None)` when neither is
    /// set (the host offers no services), an error naming the variable when
    /// only one is, or the socket path is not absolute.
    pub(crate) fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<HostEndpoint>, &'static str> {
        let socket = lookup(ENV_HOST_SOCKET).filter(|v| !v.is_empty());
        let token = lookup(ENV_HOST_TOKEN).filter(|v| !v.is_empty());
        match (socket, token) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(ENV_HOST_TOKEN),
            (None, Some(_)) => Err(ENV_HOST_SOCKET),
            (Some(socket), Some(_)) if !socket.starts_with('/') => Err(ENV_HOST_SOCKET),
            (Some(socket), Some(token)) => Ok(Some(HostEndpoint {
                socket: PathBuf::from(socket),
                token,
            })),
        }
    }
}

/// The handle on the host's services, shared by every call of the process;
/// cloning it is cheap and shares the connection.
#[derive(Clone)]
pub struct HostServices {
    /// How calls reach the host: over the socket, in process (a fake), or
    /// not at all (then the reason, for the error).
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    /// The host offers none; the variable that was missing or unusable.
    Absent(&'static str),
    /// Over the socket, or in process: the same trait either way.
    Service(Arc<dyn HostService>),
}

impl Default for HostServices {
    /// No host services ([`HostError::NotOffered`] on every call).
    fn default() -> HostServices {
        HostServices::absent(ENV_HOST_SOCKET)
    }
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.transport {
            Transport::Absent(var) => write!(f, "HostServices(absent: {var})"),
            Transport::Service(_) => f.write_str("HostServices(offered)"),
        }
    }
}

/// Two handles are equal when they reach the same services (or both none).
impl PartialEq for HostServices {
    fn eq(&self, other: &HostServices) -> bool {
        match (&self.transport, &other.transport) {
            (Transport::Absent(a), Transport::Absent(b)) => a == b,
            (Transport::Service(a), Transport::Service(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl HostServices {
    /// The services at `endpoint`, connecting on the first call.
    pub fn connect(endpoint: HostEndpoint) -> HostServices {
        HostServices::with_service(Arc::new(connect::SocketClient::new(endpoint)))
    }

    /// Services answered by `service` in process (the
    /// [`FakeHost`](crate::testing::FakeHost) gives one).
    pub(crate) fn with_service(service: Arc<dyn HostService>) -> HostServices {
        HostServices {
            transport: Transport::Service(service),
        }
    }

    /// No services: every call fails with [`HostError::NotOffered`] naming
    /// `missing`, the variable that was absent or unusable.
    pub(crate) fn absent(missing: &'static str) -> HostServices {
        HostServices {
            transport: Transport::Absent(missing),
        }
    }

    /// `true` if the host offers services (the variables were set).
    pub fn is_offered(&self) -> bool {
        matches!(self.transport, Transport::Service(_))
    }

    /// The key-value store, in the plugin's own namespace (permission `kv`).
    pub fn kv(&self) -> Kv {
        Kv::new(self.clone())
    }

    /// The secrets the operator granted.
    pub fn secrets(&self) -> Secrets {
        Secrets::new(self.clone())
    }

    /// Publishing events.
    pub fn events(&self) -> Events {
        Events::new(self.clone())
    }

    /// The service to call, or why there is none.
    pub(crate) fn service(&self) -> Result<&dyn HostService, HostError> {
        match &self.transport {
            Transport::Absent(missing) => Err(HostError::NotOffered { missing }),
            Transport::Service(s) => Ok(s.as_ref()),
        }
    }
}
