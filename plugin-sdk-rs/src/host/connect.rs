//! The connection to the host's socket: made on the first call, then kept
//! (and re-dialled by the channel if it drops), every call carrying the
//! Bearer token and a deadline.

use std::sync::OnceLock;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use outboard_proto::handshake::{TOKEN_METADATA_KEY, bearer};
use outboard_proto::v1::host_service_client::HostServiceClient;
use outboard_proto::v1::host_service_server::HostService;
use outboard_proto::v1::{
    GetSecretRequest, GetSecretResponse, KvCompareAndSetRequest, KvCompareAndSetResponse,
    KvDeleteRequest, KvDeleteResponse, KvGetRequest, KvGetResponse, KvListRequest, KvListResponse,
    KvSetRequest, KvSetResponse, PublishRequest, PublishResponse,
};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Response, Status};

use super::{ENV_HOST_SOCKET, HostEndpoint};

/// How long a call may take when the caller set no deadline of its own
/// (PROTOCOL.md §17.4: the plugin SHOULD set one).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long dialling the socket may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `HostService` as seen through the socket: each method forwards the
/// request to the host.
pub(super) struct SocketClient {
    /// Where, and the token.
    endpoint: HostEndpoint,
    /// Made on the first call (it needs the runtime), then shared.
    channel: OnceLock<Channel>,
}

impl std::fmt::Debug for SocketClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl SocketClient {
    pub(super) fn new(endpoint: HostEndpoint) -> SocketClient {
        SocketClient {
            endpoint,
            channel: OnceLock::new(),
        }
    }

    fn client(&self) -> HostServiceClient<Channel> {
        let channel = self.channel.get_or_init(|| {
            let path = self.endpoint.socket.clone();
            // The URI is required but unused: the connector dials the socket.
            Endpoint::from_static("http://outboard.host")
                .connect_timeout(CONNECT_TIMEOUT)
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
        });
        HostServiceClient::new(channel.clone())
    }

    /// The request with the token and, unless it has one, a deadline.
    fn prepare<T>(&self, mut request: Request<T>) -> Result<Request<T>, Status> {
        let value = MetadataValue::try_from(bearer(&self.endpoint.token)).map_err(|_| {
            Status::unauthenticated(
                "OUTBOARD_HOST_TOKEN holds characters that cannot travel in gRPC metadata; \
                 the host set it, so report this to the host's operator",
            )
        })?;
        request.metadata_mut().insert(TOKEN_METADATA_KEY, value);
        if !request.metadata().contains_key("grpc-timeout") {
            request.set_timeout(CALL_TIMEOUT);
        }
        Ok(request)
    }

    /// A failure to reach the host says where it tried; the host's own
    /// answers pass unchanged.
    fn explain(&self, status: Status) -> Status {
        if std::error::Error::source(&status).is_none() {
            return status;
        }
        Status::new(
            status.code(),
            format!(
                "cannot reach the host at {ENV_HOST_SOCKET}={}: {}",
                self.endpoint.socket.display(),
                status.message()
            ),
        )
    }
}

/// Each method: the token and a deadline on, the call, a failure to reach
/// the host explained.
#[tonic::async_trait]
impl HostService for SocketClient {
    async fn kv_get(
        &self,
        request: Request<KvGetRequest>,
    ) -> Result<Response<KvGetResponse>, Status> {
        let request = self.prepare(request)?;
        self.client()
            .kv_get(request)
            .await
            .map_err(|s| self.explain(s))
    }

    async fn kv_set(
        &self,
        request: Request<KvSetRequest>,
    ) -> Result<Response<KvSetResponse>, Status> {
        let request = self.prepare(request)?;
        self.client()
            .kv_set(request)
            .await
            .map_err(|s| self.explain(s))
    }

    async fn kv_delete(
        &self,
        request: Request<KvDeleteRequest>,
    ) -> Result<Response<KvDeleteResponse>, Status> {
        let request = self.prepare(request)?;
        self.client()
            .kv_delete(request)
            .await
            .map_err(|s| self.explain(s))
    }

    async fn kv_list(
        &self,
        request: Request<KvListRequest>,
    ) -> Result<Response<KvListResponse>, Status> {
        let request = self.prepare(request)?;
        self.client()
            .kv_list(request)
            .await
            .map_err(|s| self.explain(s))
    }

    async fn kv_compare_and_set(
        &self,
        request: Request<KvCompareAndSetRequest>,
    ) -> Result<Response<KvCompareAndSetResponse>, Status> {
        let request = self.prepare(request)?;
        self.client()
            .kv_compare_and_set(request)
            .await
            .map_err(|s| self.explain(s))
    }

    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let request = self.prepare(request)?;
        self.client()
            .get_secret(request)
            .await
            .map_err(|s| self.explain(s))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let request = self.prepare(request)?;
        self.client()
            .publish(request)
            .await
            .map_err(|s| self.explain(s))
    }
}
