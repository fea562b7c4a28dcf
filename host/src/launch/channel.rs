//! The gRPC channel to a plugin: HTTP/2 over its Unix socket, a few
//! connections made at start and reused for every call, the calls spread
//! over them in turn, with the launch token attached to each request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use outboard_proto::handshake::{TOKEN_METADATA_KEY, bearer};
use outboard_proto::v1::plugin_service_client::PluginServiceClient;
use tonic::metadata::{AsciiMetadataValue, MetadataKey};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::health_client::HealthClient;

use crate::launch::peer::PeerCheck;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Debug, Clone)]
pub struct TokenInterceptor {
    value: AsciiMetadataValue,
}

impl TokenInterceptor {
    /// An interceptor sending `token`, which must be printable ASCII.
    pub fn new(token: &str) -> Result<TokenInterceptor, String> {
        let value = bearer(token)
            .parse()
            .map_err(|_| "the token is not printable ASCII".to_owned())?;
        Ok(TokenInterceptor { value })
    }
}

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert(
            MetadataKey::from_static(TOKEN_METADATA_KEY),
            self.value.clone(),
        );
        Ok(request)
    }
}

/// The channel with the token attached.
pub type AuthChannel = InterceptedService<Pool, TokenInterceptor>;

/// How many connections the host makes to each plugin.
///
/// hyper drives each HTTP/2 connection from one task on each side, which
/// frames, encodes and decodes every call on it: with one connection, many
/// calls at once keep one core busy with it on each side while the other
/// waits. Two connections, the calls spread over them in turn, raised the
/// throughput at 64 callers by a third on the 2-core machine of
/// BENCHMARKS.md ("Tuning tonic and hyper"); one call at a time is not
/// slower.
pub const CONNECTIONS: usize = 2;

/// The connections to one plugin, each call on the next one in turn.
#[derive(Debug)]
pub struct Pool {
    /// The connections, each a channel that dials again when it drops.
    all: Arc<[Channel]>,
    /// The connection the next call takes, modulo their number.
    next: Arc<AtomicUsize>,
    /// The connection of the call being made: chosen when the caller first
    /// asks whether the pool is ready, used by the call that follows.
    chosen: Channel,
    /// Whether the next readiness check chooses a connection.
    choose: bool,
}

impl Pool {
    /// A pool of `all`, which must not be empty.
    fn new(all: Vec<Channel>) -> Pool {
        let chosen = all[0].clone();
        Pool {
            all: all.into(),
            next: Arc::default(),
            chosen,
            choose: true,
        }
    }
}

impl Clone for Pool {
    fn clone(&self) -> Pool {
        Pool {
            all: self.all.clone(),
            next: self.next.clone(),
            chosen: self.chosen.clone(),
            choose: true,
        }
    }
}

/// A request on a channel.
type Request = tonic::codegen::http::Request<tonic::body::Body>;

impl tower::Service<Request> for Pool {
    type Response = <Channel as tower::Service<Request>>::Response;
    type Error = <Channel as tower::Service<Request>>::Error;
    type Future = <Channel as tower::Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.choose {
            self.choose = false;
            if self.all.len() > 1 {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.all.len();
                self.chosen = self.all[i].clone();
            }
        }
        tower::Service::poll_ready(&mut self.chosen, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.choose = true;
        tower::Service::call(&mut self.chosen, request)
    }
}

/// Clients for the services a plugin serves, sharing its connections.
#[derive(Debug, Clone)]
pub struct Clients {
    /// `outboard.v1.PluginService`.
    pub plugin: PluginServiceClient<AuthChannel>,
    /// `grpc.health.v1.Health`.
    pub health: HealthClient<AuthChannel>,
    /// The connections under both, for [`Clients::first_only`].
    channels: Arc<[Channel]>,
    /// The token on every call.
    interceptor: TokenInterceptor,
}

impl Clients {
    /// Clients taking the connections in `channels` in turn.
    fn over(channels: Arc<[Channel]>, interceptor: TokenInterceptor) -> Clients {
        let channel = InterceptedService::new(Pool::new(channels.to_vec()), interceptor.clone());
        Clients {
            plugin: PluginServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
            channels,
            interceptor,
        }
    }

    /// The same clients on the first connection alone; the others close
    /// once nothing else holds them. For a plugin whose `Invoke` takes its
    /// fast path, gRPC carries a few calls (health, `Shutdown`), and a
    /// second connection would cost the host tens of KiB per plugin for
    /// nothing.
    pub(crate) fn first_only(&self) -> Clients {
        Clients::over(self.channels[..1].into(), self.interceptor.clone())
    }
}

/// Connects to the socket at `socket` ([`CONNECTIONS`] connections) with
/// `token` on every call, failing if nothing listens there within `timeout`.
pub async fn connect(socket: &Path, token: &str, timeout: Duration) -> Result<Clients, String> {
    connect_checked(Arc::new(PeerCheck::new(socket)), token, timeout).await
}

/// [`connect`], every dial checked by `check`.
pub(crate) async fn connect_checked(
    check: Arc<PeerCheck>,
    token: &str,
    timeout: Duration,
) -> Result<Clients, String> {
    let interceptor = TokenInterceptor::new(token)?;
    // One `timeout` for them all.
    let deadline = tokio::time::Instant::now() + timeout;
    let mut all = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        all.push(dial_checked(check.clone(), left.max(Duration::from_millis(1))).await?);
    }
    Ok(Clients::over(all.into(), interceptor))
}

/// A plain HTTP/2 channel to the socket at `socket`, with no token on its
/// calls (conformance uses one to check that the plugin demands it), failing
/// if nothing listens there within `timeout`.
///
/// The channel dials again whenever its connection drops. Every dial is
/// checked before anything is sent: the directory and the socket must be
/// those of the first connection, the peer must run as the host's user; a
/// call on a refused connection fails with [`CallError::PeerRefused`](crate::CallError::PeerRefused).
pub async fn dial(socket: &Path, timeout: Duration) -> Result<Channel, String> {
    dial_checked(Arc::new(PeerCheck::new(socket)), timeout).await
}

/// [`dial`], every dial checked by `check`.
pub(crate) async fn dial_checked(
    check: Arc<PeerCheck>,
    timeout: Duration,
) -> Result<Channel, String> {
    let path: PathBuf = check.socket().to_owned();
    // The URI is required by the API but unused: the connector below always
    // dials the socket.
    let endpoint = Endpoint::from_static("http://outboard.plugin")
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    let connector = tower::service_fn(move |_: Uri| {
        let (path, check) = (path.clone(), check.clone());
        async move {
            check.remember(check.before_dial())?;
            let stream = tokio::net::UnixStream::connect(path).await?;
            check.remember(check.after_dial(&stream))?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    tokio::time::timeout(timeout, endpoint.connect_with_connector(connector))
        .await
        .map_err(|_| {
            format!(
                "no connection within {}",
                humantime::format_duration(timeout)
            )
        })?
        .map_err(|err| error_chain(&err))
}

/// An error and its sources on one line: transport errors hide the useful
/// part ("No such file or directory") in their source chain.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use tonic_health::ServingStatus;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Status;

    use super::*;

    /// A health server on `socket`, answering `status` for the service
    /// `which`.
    async fn serve(socket: &Path, status: ServingStatus) {
        let listener = tokio::net::UnixListener::bind(socket).expect("bind");
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("which", status).await;
        let incoming = futures_util::stream::unfold(listener, |listener| async move {
            let accepted = listener.accept().await.map(|(stream, _)| stream);
            Some((accepted, listener))
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming),
        );
    }

    #[tokio::test]
    async fn calls_take_the_connections_in_turn() {
        // Private, as a plugin's runtime directory is: the dial checks it.
        let dir = crate::launch::peer::private_dir("obc-");
        let (a, b) = (dir.path().join("a.sock"), dir.path().join("b.sock"));
        serve(&a, ServingStatus::Serving).await;
        serve(&b, ServingStatus::NotServing).await;
        let timeout = Duration::from_secs(10);
        let all = vec![
            dial(&a, timeout).await.expect("a"),
            dial(&b, timeout).await.expect("b"),
        ];
        let pool = Pool::new(all);
        let mut client = HealthClient::new(InterceptedService::new(
            pool,
            TokenInterceptor::new("token").expect("ascii"),
        ));
        let mut seen = Vec::new();
        for i in 0..6 {
            // Half the calls through a clone each, as `Plugin::invoke`
            // makes them, half through the same client.
            let mut clone = client.clone();
            let caller = if i < 3 { &mut clone } else { &mut client };
            let request = HealthCheckRequest {
                service: "which".into(),
            };
            let status = caller.check(request).await.expect("check").into_inner();
            seen.push(Status::try_from(status.status).expect("a status"));
        }
        use Status::{NotServing, Serving};
        assert_eq!(
            seen,
            [
                Serving, NotServing, Serving, NotServing, Serving, NotServing
            ]
        );
    }
}
