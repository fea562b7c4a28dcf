//! What the host writes on the fast path: the context encoded straight
//! from JSON as a `google.protobuf.Struct`, and INVOKE frames that splice
//! those bytes in as `InvokeRequest.context` (field 6), so that a phase
//! sent to many plugins encodes its context once.

use std::time::Duration;

use outboard_proto::fastpath::{HEADER_LEN, Header, Kind, MAX_PAYLOAD};
use outboard_proto::v1;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use serde_json::{Map, Value};

/// `InvokeRequest.context`'s field number.
const CONTEXT_FIELD: u32 = 6;
/// `FastpathInvoke.request`'s field number.
const REQUEST_FIELD: u32 = 1;
/// `FastpathInvoke.timeout`'s field number.
const TIMEOUT_FIELD: u32 = 2;

/// `map` encoded as a `google.protobuf.Struct`: the bytes prost makes of
/// `json_to_struct(map)`, without building the `Struct`.
pub(crate) fn struct_bytes(map: &Map<String, Value>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(struct_len(map));
    write_struct(map, &mut buf);
    buf
}

/// An INVOKE frame for call `id`: `request` (whose `context` must be
/// `None`) with `context`, the encoded `Struct`, as its context, and
/// `timeout`. `Err` with the payload's size when it is over
/// [`MAX_PAYLOAD`]: nothing is sent then.
pub(crate) fn invoke_frame<'a>(
    id: u64,
    request: &v1::InvokeRequest,
    context: &'a [u8],
    timeout: Duration,
) -> Result<InvokeFrame<'a>, usize> {
    debug_assert!(request.context.is_none(), "the context is spliced in");
    let request_len = request.encoded_len() + delimited_len(CONTEXT_FIELD, context.len());
    let timeout = prost_types::Duration::try_from(timeout).ok();
    let timeout_len = timeout
        .as_ref()
        .map_or(0, |t| delimited_len(TIMEOUT_FIELD, t.encoded_len()));
    let len = delimited_len(REQUEST_FIELD, request_len) + timeout_len;
    let too_long = || len;
    let header_len = u32::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_PAYLOAD)
        .ok_or_else(too_long)?;
    let mut head = Vec::with_capacity(HEADER_LEN + len - context.len() - timeout_len);
    let header = Header {
        len: header_len,
        kind: Kind::Invoke,
        id,
    };
    head.extend_from_slice(&header.encode());
    encode_key(REQUEST_FIELD, WireType::LengthDelimited, &mut head);
    encode_varint(request_len as u64, &mut head);
    request.encode_raw(&mut head);
    encode_key(CONTEXT_FIELD, WireType::LengthDelimited, &mut head);
    encode_varint(context.len() as u64, &mut head);
    let mut tail = Vec::with_capacity(timeout_len);
    if let Some(timeout) = &timeout {
        prost::encoding::message::encode(TIMEOUT_FIELD, timeout, &mut tail);
    }
    let frame = InvokeFrame {
        head,
        context,
        tail,
    };
    debug_assert_eq!(frame.len(), HEADER_LEN + len);
    Ok(frame)
}

/// An INVOKE frame in three parts, the phase's shared context borrowed, so
/// that it is copied once, into the writer's queue.
#[derive(Debug)]
pub(crate) struct InvokeFrame<'a> {
    /// The header, the request's own fields and the context's key.
    head: Vec<u8>,
    /// The encoded context.
    context: &'a [u8],
    /// The timeout, if any.
    tail: Vec<u8>,
}

impl InvokeFrame<'_> {
    /// The frame's size, header included.
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.context.len() + self.tail.len()
    }

    /// Appends the frame to `out`.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.len());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(self.context);
        out.extend_from_slice(&self.tail);
    }

    /// The frame as one buffer.
    #[cfg(test)]
    fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// The size of a length-delimited field `tag` with a `len`-byte body.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

// google.protobuf.Struct { map<string, Value> fields = 1; }
// map entry { string key = 1; Value value = 2; }
// Value { oneof kind { NullValue null_value = 1; double number_value = 2;
//   string string_value = 3; bool bool_value = 4; Struct struct_value = 5;
//   ListValue list_value = 6; } }
// ListValue { repeated Value values = 1; }
//
// Lengths are computed before each nested message is written, so a value
// at depth d is measured d times; contexts are shallow (dispatch refuses
// deep ones, see `outboard_proto::json::check_struct`).

fn struct_len(map: &Map<String, Value>) -> usize {
    map.iter()
        .map(|(key, value)| delimited_len(1, entry_len(key, value)))
        .sum()
}

fn entry_len(key: &str, value: &Value) -> usize {
    // prost leaves out a map entry's key when it is the default ("").
    let key = if key.is_empty() {
        0
    } else {
        delimited_len(1, key.len())
    };
    key + delimited_len(2, value_len(value))
}

fn value_len(value: &Value) -> usize {
    match value {
        Value::Null => key_len(1) + 1,
        Value::Number(_) => key_len(2) + 8,
        Value::String(s) => delimited_len(3, s.len()),
        Value::Bool(_) => key_len(4) + 1,
        Value::Object(map) => delimited_len(5, struct_len(map)),
        Value::Array(values) => delimited_len(6, list_len(values)),
    }
}

fn list_len(values: &[Value]) -> usize {
    values.iter().map(|v| delimited_len(1, value_len(v))).sum()
}

fn write_struct(map: &Map<String, Value>, buf: &mut Vec<u8>) {
    for (key, value) in map {
        encode_key(1, WireType::LengthDelimited, buf);
        encode_varint(entry_len(key, value) as u64, buf);
        if !key.is_empty() {
            write_bytes(1, key.as_bytes(), buf);
        }
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(value_len(value) as u64, buf);
        write_value(value, buf);
    }
}

fn write_value(value: &Value, buf: &mut Vec<u8>) {
    match value {
        Value::Null => {
            encode_key(1, WireType::Varint, buf);
            encode_varint(0, buf);
        }
        Value::Number(n) => {
            encode_key(2, WireType::SixtyFourBit, buf);
            // As `json_to_value`: every JSON number is a double.
            buf.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
        }
        Value::String(s) => write_bytes(3, s.as_bytes(), buf),
        Value::Bool(b) => {
            encode_key(4, WireType::Varint, buf);
            encode_varint(u64::from(*b), buf);
        }
        Value::Object(map) => {
            encode_key(5, WireType::LengthDelimited, buf);
            encode_varint(struct_len(map) as u64, buf);
            write_struct(map, buf);
        }
        Value::Array(values) => {
            encode_key(6, WireType::LengthDelimited, buf);
            encode_varint(list_len(values) as u64, buf);
            for value in values {
                encode_key(1, WireType::LengthDelimited, buf);
                encode_varint(value_len(value) as u64, buf);
                write_value(value, buf);
            }
        }
    }
}

fn write_bytes(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use outboard_proto::json::json_to_struct;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Any JSON a context may hold, a few levels deep.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn object() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map(".{0,8}", json_value(), 0..8)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn the_bytes_are_what_prost_makes_of_the_struct(map in object()) {
            prop_assert_eq!(struct_bytes(&map), json_to_struct(&map).encode_to_vec());
        }

        #[test]
        fn a_spliced_frame_decodes_as_the_whole_request(map in object(), attempt in 1u32..5, ms in 0u64..100_000) {
            let request = v1::InvokeRequest {
                phase: "pre_container".into(),
                invocation_id: "inv".into(),
                attempt,
                deadline: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 5 }),
                trace_context: [("traceparent".to_owned(), "00-x".to_owned())].into(),
                context: None,
            };
            let timeout = Duration::from_millis(ms);
            let context = struct_bytes(&map);
            let frame = invoke_frame(9, &request, &context, timeout).expect("fits").to_vec();
            let mut head = [0u8; HEADER_LEN];
            head.copy_from_slice(&frame[..HEADER_LEN]);
            let header = Header::decode(&head);
            prop_assert_eq!((header.kind, header.id), (Kind::Invoke, 9));
            prop_assert_eq!(header.len as usize, frame.len() - HEADER_LEN);
            let invoke = v1::FastpathInvoke::decode(&frame[HEADER_LEN..]).expect("decodes");
            let whole = v1::InvokeRequest { context: Some(json_to_struct(&map)), ..request };
            prop_assert_eq!(invoke.request, Some(whole));
            prop_assert_eq!(invoke.timeout, prost_types::Duration::try_from(timeout).ok());
        }
    }

    #[test]
    fn a_request_over_the_limit_is_refused_with_its_size() {
        let big = json!({"blob": "x".repeat(MAX_PAYLOAD as usize)});
        let Value::Object(map) = big else {
            unreachable!()
        };
        let len = invoke_frame(
            1,
            &v1::InvokeRequest::default(),
            &struct_bytes(&map),
            Duration::ZERO,
        )
        .expect_err("too long");
        assert!(len > MAX_PAYLOAD as usize, "{len}");
    }
}
