//! The key-value handlers (the store lands with the `state` crate).

use std::sync::Arc;

use outboard_proto::v1;
use tonic::Status;

use crate::caller::Caller;
use crate::services::Shared;

fn not_yet<T>() -> Result<T, Status> {
    Err(Status::unimplemented(
        "the key-value store is not wired yet",
    ))
}

pub(crate) async fn get(
    _: Arc<Shared>,
    _: Caller,
    _: v1::KvGetRequest,
) -> Result<v1::KvGetResponse, Status> {
    not_yet()
}
pub(crate) async fn set(
    _: Arc<Shared>,
    _: Caller,
    _: v1::KvSetRequest,
) -> Result<v1::KvSetResponse, Status> {
    not_yet()
}
pub(crate) async fn delete(
    _: Arc<Shared>,
    _: Caller,
    _: v1::KvDeleteRequest,
) -> Result<v1::KvDeleteResponse, Status> {
    not_yet()
}
pub(crate) async fn list(
    _: Arc<Shared>,
    _: Caller,
    _: v1::KvListRequest,
) -> Result<v1::KvListResponse, Status> {
    not_yet()
}
pub(crate) async fn compare_and_set(
    _: Arc<Shared>,
    _: Caller,
    _: v1::KvCompareAndSetRequest,
) -> Result<v1::KvCompareAndSetResponse, Status> {
    not_yet()
}
