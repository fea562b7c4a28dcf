//! Unknown fields (§13): an `InvokeRequest` carrying a field this protocol
//! version does not define (number 999, a varint), sent as raw bytes, is
//! answered as if the field were not there.

use outboard_host::launch::Deadline;
use outboard_host::launch::channel::TokenInterceptor;
use outboard_proto::v1;
use prost::Message as _;
use prost::bytes::{Buf as _, BufMut as _};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::service::interceptor::InterceptedService;

use crate::check::{Check, CheckName};
use crate::checks::invoke::{INVOKE_TIMEOUT, invoke_request, job_context, judge, refusal};
use crate::subject::Subject;

/// The protobuf field number of the unknown field.
const UNKNOWN_FIELD_TAG: u32 = 999;

/// Invokes `phase` with the unknown field.
pub(crate) async fn check(subject: &Subject<'_>, phase: &str) -> Check {
    Check::of(CheckName::UnknownFields, tolerated(subject, phase).await)
}

async fn tolerated(subject: &Subject<'_>, phase: &str) -> Result<String, String> {
    let context = job_context();
    let deadline = Deadline::after(INVOKE_TIMEOUT);
    let mut bytes = invoke_request(phase, &context, deadline).encode_to_vec();
    prost::encoding::encode_key(
        UNKNOWN_FIELD_TAG,
        prost::encoding::WireType::Varint,
        &mut bytes,
    );
    prost::encoding::encode_varint(1, &mut bytes);

    let token = TokenInterceptor::new(subject.launched.token())?;
    let mut grpc = tonic::client::Grpc::new(InterceptedService::new(subject.raw.clone(), token));
    let path = PathAndQuery::from_static("/outboard.v1.PluginService/Invoke");
    let sent = async {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        grpc.unary(deadline.request(bytes), path, RawCodec).await
    };
    let noted = |detail: String| {
        format!("{phase}: {detail} (unknown field {UNKNOWN_FIELD_TAG} in the request bytes)")
    };
    match subject.launched.guard().call(deadline, sent).await {
        Ok(response) => judge(&response, &context).map(noted),
        Err(failure) => refusal(failure)
            .map(noted)
            .map_err(|e| format!("Invoke with unknown field {UNKNOWN_FIELD_TAG} failed: {e}")),
    }
}

/// Sends the request as bytes already encoded; decodes an `InvokeResponse`.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = v1::InvokeResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = v1::InvokeResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<v1::InvokeResponse>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        v1::InvokeResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("cannot decode InvokeResponse: {e}")))
    }
}
