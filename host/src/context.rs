//! The context of one call as it is sent: converted at most once into
//! each form a transport needs, however many subscribers share it.
//!
//! gRPC sends a `google.protobuf.Struct`; the fast path sends the same
//! message's bytes, made straight from the JSON without building the
//! `Struct` (see `launch::fastpath`). A parallel phase makes one
//! [`SentContext`] for all its subscribers, so each form is made once per
//! phase, not once per subscriber.

use std::sync::OnceLock;

use outboard_proto::json::json_to_struct;
use prost::Message;
use serde_json::{Map, Value};

/// A context shared by the calls of a phase, converted on first use.
#[derive(Debug)]
pub struct SentContext<'a> {
    /// What it was made from.
    source: Source<'a>,
    /// The `Struct`, for gRPC.
    proto: OnceLock<prost_types::Struct>,
    /// The `Struct`'s encoding, for the fast path.
    encoded: OnceLock<Vec<u8>>,
}

/// What a [`SentContext`] was made from.
#[derive(Debug)]
enum Source<'a> {
    /// The dispatch's JSON object.
    Json(&'a Map<String, Value>),
    /// A `Struct` a caller built.
    Proto(prost_types::Struct),
}

impl<'a> SentContext<'a> {
    /// The context `value`, an object (anything else is sent empty).
    pub fn of(value: &'a Value) -> SentContext<'a> {
        match value {
            Value::Object(map) => SentContext::json(map),
            _ => SentContext::proto(prost_types::Struct::default()),
        }
    }

    /// The context `map`.
    pub fn json(map: &'a Map<String, Value>) -> SentContext<'a> {
        SentContext {
            source: Source::Json(map),
            proto: OnceLock::new(),
            encoded: OnceLock::new(),
        }
    }

    /// The context `proto`, built by the caller.
    pub fn proto(proto: prost_types::Struct) -> SentContext<'static> {
        SentContext {
            source: Source::Proto(proto),
            proto: OnceLock::new(),
            encoded: OnceLock::new(),
        }
    }

    /// The context as a `Struct`, for a gRPC request (a copy: the request
    /// owns its message).
    pub fn to_struct(&self) -> prost_types::Struct {
        match &self.source {
            Source::Proto(proto) => proto.clone(),
            Source::Json(map) => self.proto.get_or_init(|| json_to_struct(map)).clone(),
        }
    }

    /// The `Struct`'s encoding, made once.
    pub fn encoded(&self) -> &[u8] {
        self.encoded.get_or_init(|| match &self.source {
            Source::Proto(proto) => proto.encode_to_vec(),
            Source::Json(map) => crate::launch::fastpath::struct_bytes(map),
        })
    }
}
