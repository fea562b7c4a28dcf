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
    /// The registry id of the instance whose socket this serves; `None`
    /// serves any token (tests).
    socket: Option<u64>,
}

impl HostServer {
    #[cfg(test)]
    pub(crate) fn new(shared: Arc<Shared>) -> HostServer {
        HostServer {
            shared,
            socket: None,
        }
    }

    /// The handlers for the socket of instance `id`: only its token counts.
    pub(crate) fn on_socket(shared: Arc<Shared>, id: u64) -> HostServer {
        HostServer {
            shared,
            socket: Some(id),
        }
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
            .caller(token, options.describe_wait, self.socket)
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
        self.call("GetSecret", request, crate::secrets::get_secret)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use outboard_host::Manifest;
    use tokio::sync::oneshot;

    use super::*;
    use crate::options::ServicesOptions;
    use crate::registry::Described;
    use crate::services::Services;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A server whose registry holds one described instance, `p`, with
    /// `max_calls` calls in flight and a call timeout of 1 s.
    fn server(state: &std::path::Path, max_calls: usize) -> HostServer {
        let mut options = ServicesOptions::new(state.join("state"));
        options.max_concurrent_calls = max_calls;
        options.call_timeout = Duration::from_secs(1);
        let services = Services::open(options).expect("open");
        let registry = &services.shared.registry;
        let id = registry.insert("p", TOKEN.to_owned(), max_calls);
        let manifest = v1::Manifest {
            name: "p".into(),
            version: "1.0.0".into(),
            protocol_version: 1,
            ..Default::default()
        };
        registry.describe(
            id,
            Described {
                manifest: Arc::new(Manifest::from_proto(manifest, 1).expect("valid")),
                granted: Arc::from(Vec::new()),
            },
        );
        HostServer::new(services.shared.clone())
    }

    fn request() -> Request<()> {
        let mut request = Request::new(());
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {TOKEN}").parse().expect("ascii"),
        );
        request
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_the_hosts_bound_is_unavailable_naming_it() {
        let state = tempfile::tempdir().expect("tempdir");
        let server = server(state.path(), 4);
        let status = server
            .call("KvGet", request(), |_, _, ()| {
                std::future::pending::<Result<(), Status>>()
            })
            .await
            .expect_err("cut off");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(
            status.message().contains("call timeout"),
            "{}",
            status.message()
        );
        assert!(status.message().contains("\"p\""), "{}", status.message());
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_instances_bound_wait_then_are_refused() {
        let state = tempfile::tempdir().expect("tempdir");
        let server = server(state.path(), 1);
        let (release, released) = oneshot::channel::<()>();
        let (entered, entered_rx) = oneshot::channel::<()>();
        let first = {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .call("KvSet", request(), |_, _, ()| async move {
                        let _ = entered.send(());
                        let _ = released.await;
                        Ok(())
                    })
                    .await
            })
        };
        entered_rx.await.expect("the first call runs");
        let status = server
            .call("KvGet", request(), |_, _, ()| async { Ok(()) })
            .await
            .expect_err("no place");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("max_concurrent_calls"),
            "{}",
            status.message()
        );
        // Once the first ends, its place is free again.
        let _ = release.send(());
        first.await.expect("joined").expect("first call");
        server
            .call("KvGet", request(), |_, _, ()| async { Ok(()) })
            .await
            .expect("a place again");
    }

    #[tokio::test]
    async fn a_stopping_host_refuses_calls() {
        let state = tempfile::tempdir().expect("tempdir");
        let server = server(state.path(), 1);
        server.shared.stopping.store(true, Ordering::SeqCst);
        let status = server
            .call("KvGet", request(), |_, _, ()| async { Ok(()) })
            .await
            .expect_err("stopping");
        assert_eq!(status.code(), tonic::Code::Unavailable);
    }
}
