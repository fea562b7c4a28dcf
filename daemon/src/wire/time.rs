//! Moments on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` as a `google.protobuf.Timestamp` (before 1970 reads as 1970).
pub fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}
