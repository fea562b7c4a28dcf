//! The invoke fast path's framing (feature [`FEATURE`], docs/PROTOCOL.md
//! §18): a fixed 16-byte header, then a protobuf payload.
//!
//! ```text
//! offset  size  field
//!      0     4  payload length, unsigned big-endian, at most MAX_PAYLOAD
//!      4     1  kind (Kind)
//!      5     3  reserved: sent as zero, ignored when read
//!      8     8  call id, unsigned big-endian (0: the connection itself)
//!     16     …  payload
//! ```
//!
//! Types and pure functions only: reading and writing the socket is the
//! host's and the SDKs' business.

use prost::Message;

use crate::v1;

/// The manifest feature a plugin lists when it serves the fast path.
pub const FEATURE: &str = "invoke-fastpath/1";

/// The fast path's version, sent in both HELLO frames.
pub const VERSION: u32 = 1;

/// The size of a frame's header.
pub const HEADER_LEN: usize = 16;

/// The largest payload either side accepts: 4 MiB, gRPC's default largest
/// message, so that what fits one path fits the other.
pub const MAX_PAYLOAD: u32 = 4 * 1024 * 1024;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`v1::FastpathHello`]: the host's first frame, and the plugin's answer.
    Hello,
    /// [`v1::FastpathInvoke`]: a call, host to plugin.
    Invoke,
    /// [`v1::InvokeResponse`]: a call's answer, plugin to host.
    Result,
    /// [`v1::FastpathError`]: a call failed (or, with id 0, the connection).
    Error,
    /// No payload: the host gave up on the call; the plugin stops its work
    /// and does not answer.
    Cancel,
    /// A kind this version does not define.
    Unknown(u8),
}

impl Kind {
    /// The kind's byte on the wire.
    pub fn to_byte(self) -> u8 {
        match self {
            Kind::Hello => 1,
            Kind::Invoke => 2,
            Kind::Result => 3,
            Kind::Error => 4,
            Kind::Cancel => 5,
            Kind::Unknown(byte) => byte,
        }
    }

    /// The kind a byte on the wire stands for.
    pub fn from_byte(byte: u8) -> Kind {
        match byte {
            1 => Kind::Hello,
            2 => Kind::Invoke,
            3 => Kind::Result,
            4 => Kind::Error,
            5 => Kind::Cancel,
            other => Kind::Unknown(other),
        }
    }
}

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// How many payload bytes follow the header.
    pub len: u32,
    /// What the payload is.
    pub kind: Kind,
    /// The call the frame belongs to; 0 for the connection itself.
    pub id: u64,
}

impl Header {
    /// The header as its 16 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0..4].copy_from_slice(&self.len.to_be_bytes());
        bytes[4] = self.kind.to_byte();
        bytes[8..16].copy_from_slice(&self.id.to_be_bytes());
        bytes
    }

    /// The header in `bytes`; the reserved bytes are ignored.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Header {
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[0..4]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[8..16]);
        Header {
            len: u32::from_be_bytes(len),
            kind: Kind::from_byte(bytes[4]),
            id: u64::from_be_bytes(id),
        }
    }

    /// True if the payload is over [`MAX_PAYLOAD`]: the receiver reads and
    /// discards it and answers [`Kind::Error`] `RESOURCE_EXHAUSTED`.
    pub fn too_long(&self) -> bool {
        self.len > MAX_PAYLOAD
    }
}

/// A whole frame: `message` as the payload of a `kind` frame for call `id`.
///
/// # Panics
///
/// If the encoded message is longer than `u32::MAX` bytes; callers check
/// [`MAX_PAYLOAD`] first.
pub fn frame(kind: Kind, id: u64, message: &impl Message) -> Vec<u8> {
    let len = message.encoded_len();
    let mut bytes = Vec::with_capacity(HEADER_LEN + len);
    let header = Header {
        len: u32::try_from(len).expect("a payload fits in u32"),
        kind,
        id,
    };
    bytes.extend_from_slice(&header.encode());
    message
        .encode(&mut bytes)
        .expect("a Vec grows to fit the message");
    bytes
}

/// An [`Kind::Error`] frame for call `id` with a gRPC status `code`.
pub fn error_frame(id: u64, code: i32, message: impl Into<String>) -> Vec<u8> {
    frame(
        Kind::Error,
        id,
        &v1::FastpathError {
            code,
            message: message.into(),
        },
    )
}

/// A [`Kind::Cancel`] frame for call `id`.
pub fn cancel_frame(id: u64) -> [u8; HEADER_LEN] {
    Header {
        len: 0,
        kind: Kind::Cancel,
        id,
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_survives_the_wire_and_ignores_the_reserved_bytes() {
        let header = Header {
            len: 0x0102_0304,
            kind: Kind::Invoke,
            id: 0x1122_3344_5566_7788,
        };
        let mut bytes = header.encode();
        assert_eq!(
            bytes,
            [
                1, 2, 3, 4, 2, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88
            ]
        );
        bytes[5..8].copy_from_slice(&[9, 9, 9]);
        assert_eq!(Header::decode(&bytes), header);
    }

    #[test]
    fn every_kind_has_its_byte_and_unknown_bytes_stay_known_as_such() {
        for byte in 0..=u8::MAX {
            assert_eq!(Kind::from_byte(byte).to_byte(), byte);
        }
        assert_eq!(Kind::from_byte(0), Kind::Unknown(0));
        assert_eq!(Kind::from_byte(6), Kind::Unknown(6));
    }

    #[test]
    fn a_frame_is_its_header_and_the_encoded_message() {
        let error = v1::FastpathError {
            code: 3,
            message: "bad".into(),
        };
        let bytes = error_frame(7, 3, "bad");
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&bytes[..HEADER_LEN]);
        let header = Header::decode(&head);
        assert_eq!(header.kind, Kind::Error);
        assert_eq!(header.id, 7);
        assert_eq!(header.len as usize, bytes.len() - HEADER_LEN);
        assert_eq!(
            v1::FastpathError::decode(&bytes[HEADER_LEN..]).expect("decodes"),
            error
        );
        assert!(!header.too_long());
        assert!(
            Header {
                len: MAX_PAYLOAD + 1,
                ..header
            }
            .too_long()
        );
    }

    #[test]
    fn a_cancel_frame_has_no_payload() {
        assert_eq!(
            Header::decode(&cancel_frame(9)),
            Header {
                len: 0,
                kind: Kind::Cancel,
                id: 9
            }
        );
    }
}
