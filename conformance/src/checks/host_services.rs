//! Host services tolerated (§17.1): launched with `OUTBOARD_HOST_SOCKET`
//! and `OUTBOARD_HOST_TOKEN` pointing at a live socket, a fresh instance
//! still shakes hands, describes itself, takes its config and answers an
//! `Invoke`. The socket here speaks gRPC but serves nothing: every call is
//! answered `UNIMPLEMENTED`. Conformance checks that the variables break
//! nothing, not what a plugin does with them; the host services themselves
//! are above this crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use outboard_host::launch::{Launched, launch_attached};
use outboard_host::{Attach, Attachment, Manifest};
use outboard_proto::handshake::{ENV_HOST_SOCKET, ENV_HOST_TOKEN};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;

use crate::Options;
use crate::check::{Check, CheckName};
use crate::checks::{configure, describe, invoke};
use crate::subject::{Subject, launch_failure};

const NAME: CheckName = CheckName::HostServices;

/// The socket's name in the runtime directory, as the host names it.
const SOCKET_NAME: &str = "host.sock";

/// Launches a fresh instance with the host-service variables and takes it
/// through the setup calls and one `Invoke`.
pub(crate) async fn check(options: &Options) -> Check {
    let attach = Listener::default();
    let launched = match launch_attached(&options.launch_spec(), Some(&attach)).await {
        Ok(launched) => launched,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("with the host-service variables: {}", launch_failure(&e)),
            );
        }
    };
    let result = set_up(options, &launched).await;
    launched.kill().await;
    let connections = attach.connections.load(Ordering::Relaxed);
    Check::of(
        NAME,
        result
            .map(|done| format!("{done} (it connected to the host socket {connections} time(s))")),
    )
}

/// Describe, Configure and an Invoke of the first subscribed phase.
async fn set_up(options: &Options, launched: &Launched) -> Result<String, String> {
    let subject = Subject::connect(launched, options.handshake_timeout)
        .await
        .map_err(|e| format!("with the host-service variables: {e}"))?;
    let (check, manifest) = describe::check(&subject).await;
    let manifest: Manifest = manifest.ok_or_else(|| {
        format!(
            "with the host-service variables, describe: {}",
            check.detail
        )
    })?;
    let (check, _) = configure::valid(&subject, &manifest, options).await;
    if !check.passed {
        return Err(format!(
            "with the host-service variables, configure: {}",
            check.detail
        ));
    }
    let Some(first) = manifest.subscriptions.first() else {
        return Ok("described and configured (no subscriptions to invoke)".to_owned());
    };
    invoke::invoke(&subject, &first.phase)
        .await
        .map(|detail| format!("described, configured, invoke {}: {detail}", first.phase))
        .map_err(|e| {
            format!(
                "with the host-service variables, invoke {}: {e}",
                first.phase
            )
        })
}

/// Binds a socket that answers every call `UNIMPLEMENTED` and counts its
/// connections.
#[derive(Debug, Default)]
struct Listener {
    connections: Arc<AtomicUsize>,
}

impl Attach for Listener {
    fn attach(&self, _name: &str, dir: &Path) -> Result<Box<dyn Attachment>, String> {
        let path = dir.join(SOCKET_NAME);
        let listener = UnixListener::bind(&path)
            .map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let connections = self.connections.clone();
        let incoming = UnixListenerStream::new(listener).map(move |accepted| {
            if accepted.is_ok() {
                connections.fetch_add(1, Ordering::Relaxed);
            }
            accepted
        });
        // No service: every call is UNIMPLEMENTED.
        let server = Server::builder()
            .add_routes(Routes::default())
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        // Two v4 UUIDs: 64 hex digits from the OS generator, the token's form.
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Ok(Box::new(Live {
            path,
            token,
            _stop: stop,
        }))
    }
}

/// One launch's socket; dropping it ends the accept loop and removes it.
struct Live {
    path: PathBuf,
    token: String,
    /// Dropped with the attachment: the accept loop then ends.
    _stop: oneshot::Sender<()>,
}

impl Attachment for Live {
    fn env(&self) -> Vec<(String, String)> {
        vec![
            (ENV_HOST_SOCKET.to_owned(), self.path.display().to_string()),
            (ENV_HOST_TOKEN.to_owned(), self.token.clone()),
        ]
    }

    fn described(&self, _manifest: &Manifest, _granted: &[String]) {}
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
