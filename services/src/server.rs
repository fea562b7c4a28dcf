//! The `HostService` handlers. Every call goes the same way: the
//! credential (`UNAUTHENTICATED` before anything else), the caller it
//! names (waiting, bounded, for its `Describe`), a place among its calls in
//! flight, then the handler, all within the host's bound on a call.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use outboard_proto::v1;
use outboard_proto::v1::host_service_server::HostService;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::auth;
use crate::caller::Caller;
use crate::services::Shared;

/// The handlers, shared by every instance's socket.
#[derive(Debug, Clone)]
pub(crate) struct HostServer {
    shared: Arc<Shared>,
}

impl HostServer {
    pub(crate) fn new(shared: Arc<Shared>) -> HostServer {
        HostServer { shared }
    }

    /// Authenticates `request`, waits for a place among the caller's calls
    /// in flight and runs `handler`, all bounded by the call timeout.
    async fn call<T, R, F, Fut>(
        &self,
        method: &str,
        request: Request<T>,
        handler: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(Arc<Shared>, Caller, T) -> Fut,
        Fut: Future<Output = Result<R, Status>>,
    {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return Err(Status::unavailable("the host is stopping"));
        }
        let token = auth::bearer(request.metadata()).map_err(auth::Refusal::status)?;
        let options = &self.shared.options;
        let caller = self
            .shared
            .registry
            .caller(token, options.describe_wait)
            .await?;
        let deadline = Instant::now() + options.call_timeout;
        let permit = tokio::time::timeout_at(deadline, caller.calls.clone().acquire_owned())
            .await
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "plugin {:?} has {} host-service calls in flight (the limit, \
                     max_concurrent_calls) and none ended within {}s",
                    caller.plugin,
                    options.max_concurrent_calls,
                    options.call_timeout.as_secs()
                ))
            })?
            .map_err(|_| Status::unavailable("the host is stopping"))?;
        let plugin = caller.plugin.clone();
        let answer = tokio::time::timeout_at(
            deadline,
            handler(self.shared.clone(), caller, request.into_inner()),
        )
        .await
        .map_err(|_| {
            Status::unavailable(format!(
                "{method} of plugin {plugin:?} did not finish within the host's call timeout \
                 ({}s); retry",
                options.call_timeout.as_secs()
            ))
        })?;
        drop(permit);
        answer.map(Response::new)
    }
}

#[tonic::async_trait]
impl HostService for HostServer {
    async fn kv_get(
        &self,
        request: Request<v1::KvGetRequest>,
    ) -> Result<Response<v1::KvGetResponse>, Status> {
        self.call("KvGet", request, crate::kv::get).await
    }

    async fn kv_set(
        &self,
        request: Request<v1::KvSetRequest>,
    ) -> Result<Response<v1::KvSetResponse>, Status> {
        self.call("KvSet", request, crate::kv::set).await
    }

    async fn kv_delete(
        &self,
        request: Request<v1::KvDeleteRequest>,
    ) -> Result<Response<v1::KvDeleteResponse>, Status> {
        self.call("KvDelete", request, crate::kv::delete).await
    }

    async fn kv_list(
        &self,
        request: Request<v1::KvListRequest>,
    ) -> Result<Response<v1::KvListResponse>, Status> {
        self.call("KvList", request, crate::kv::list).await
    }

    async fn kv_compare_and_set(
        &self,
        request: Request<v1::KvCompareAndSetRequest>,
    ) -> Result<Response<v1::KvCompareAndSetResponse>, Status> {
        self.call("KvCompareAndSet", request, crate::kv::compare_and_set)
            .await
    }

    async fn get_secret(
        &self,
        request: Request<v1::GetSecretRequest>,
    ) -> Result<Response<v1::GetSecretResponse>, Status> {
        self.call("GetSecret", request, |_, _, _| async {
            Err(Status::unimplemented(
                "GetSecret: this host does not serve secrets yet",
            ))
        })
        .await
    }

    async fn publish(
        &self,
        request: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        self.call("Publish", request, |shared, caller, request| async move {
            shared.events.publish(&caller, request).await
        })
        .await
    }
}
