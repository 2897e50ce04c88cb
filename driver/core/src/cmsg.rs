//! Control messages (`CMSGHDR` buffers) in the Windows layout, encoded and decoded in one
//! place.
//!
//! The layout is `ws2def.h`'s, on x64:
//! - `WSA_CMSGHDR_ALIGN(n)` and `WSA_CMSGDATA_ALIGN(n)` round up to 8
//!   (`TYPE_ALIGNMENT(WSACMSGHDR)` and `MAX_NATURAL_ALIGNMENT` are both 8);
//! - `WSA_CMSG_LEN(n) = WSA_CMSGDATA_ALIGN(sizeof(WSACMSGHDR)) + n` goes in `cmsg_len`;
//! - `WSA_CMSG_SPACE(n) = WSA_CMSGDATA_ALIGN(sizeof(WSACMSGHDR) + WSA_CMSGHDR_ALIGN(n))` is
//!   how far the next header starts;
//! - `ControlInfoLength` is the total padded space (wireguard-nt learned that tcpip wants the
//!   padded total, not the last `cmsg_len`).
//!
//! The encoder is the quinn-udp design cut down to the messages wskudp sends: typed
//! [`ControlMessage`]s, each knowing its level, type and wire type, written with zeroed
//! padding. The decoder ([`ControlMessage::decode`]) reads one message's data by the same
//! rules; only core's own tests use it. The kernel model does not: it parses control buffers
//! with its own parser, written from `ws2def.h` / `ws2ipdef.h` (`tests/kmodel/src/wsk/wire.rs`),
//! so an error encoder and decoder share cannot pass.
//!
//! IRQL: everything here is computation on caller-provided memory: any IRQL, as long as that
//! memory is resident.

use core::net::{Ipv4Addr, Ipv6Addr};

use windows_sys::Win32::Networking::WinSock::{
    CMSGHDR, IN_PKTINFO, IN6_PKTINFO, IP_ECN, IP_PKTINFO, IP_TOS, IPPROTO_IP, IPPROTO_IPV6,
    IPPROTO_UDP, IPV6_ECN, IPV6_PKTINFO, IPV6_TCLASS, UDP_SEND_MSG_SIZE,
};
use wskudp_abi::{CONTROL_CAPACITY, Ecn};

/// `TYPE_ALIGNMENT(WSACMSGHDR)` = `MAX_NATURAL_ALIGNMENT` on x64.
pub const CMSG_ALIGN: usize = 8;
/// `sizeof(WSACMSGHDR)`.
pub const HEADER_LEN: usize = size_of::<CMSGHDR>();

/// `WSA_CMSGHDR_ALIGN` / `WSA_CMSGDATA_ALIGN` (identical on x64). Saturates instead of
/// wrapping; callers only pass small lengths.
#[must_use]
pub const fn align(len: usize) -> usize {
    len.saturating_add(CMSG_ALIGN - 1) & !(CMSG_ALIGN - 1)
}

/// `CMSGHDR`: `SIZE_T cmsg_len` at 0, `INT cmsg_level` at 8, `INT cmsg_type` at 12.
const LEVEL_OFFSET: usize = core::mem::offset_of!(CMSGHDR, cmsg_level);
const TYPE_OFFSET: usize = core::mem::offset_of!(CMSGHDR, cmsg_type);

/// Offset of the data from the header (`WSA_CMSG_DATA(cmsg) - cmsg`).
pub const DATA_OFFSET: usize = align(HEADER_LEN);

/// `WSA_CMSG_LEN(n)`: the `cmsg_len` of a message with `n` data bytes.
#[must_use]
pub const fn cmsg_len(n: usize) -> usize {
    DATA_OFFSET.saturating_add(n)
}

/// `WSA_CMSG_SPACE(n)`: the bytes a message with `n` data bytes occupies, padding included.
#[must_use]
pub const fn cmsg_space(n: usize) -> usize {
    align(HEADER_LEN.saturating_add(align(n)))
}

/// Wire size of `INT` (`IP_TOS`, `IPV6_TCLASS`, `IP_ECN`, `IPV6_ECN` data).
const INT_LEN: usize = size_of::<i32>();
/// Wire size of `DWORD` (`UDP_SEND_MSG_SIZE` data).
const DWORD_LEN: usize = size_of::<u32>();
/// Largest control data wskudp sends for one datagram: source address, TOS, ECN, USO.
pub const MAX_CONTROL_LEN: usize = cmsg_space(size_of::<IN6_PKTINFO>())
    + cmsg_space(INT_LEN)
    + cmsg_space(INT_LEN)
    + cmsg_space(DWORD_LEN);
const _: () = assert!(CONTROL_CAPACITY >= MAX_CONTROL_LEN);

/// A control message wskudp can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlMessage {
    /// `IPPROTO_IP`/`IP_PKTINFO`, data `IN_PKTINFO { ipi_addr, ipi_ifindex }`: send from this
    /// IPv4 source address (unspecified: any) and interface (0: the route's).
    SourceV4 {
        /// `ipi_addr`.
        address: Ipv4Addr,
        /// `ipi_ifindex`.
        ifindex: u32,
    },
    /// `IPPROTO_IPV6`/`IPV6_PKTINFO`, data `IN6_PKTINFO { ipi6_addr, ipi6_ifindex }`.
    SourceV6 {
        /// `ipi6_addr`.
        address: Ipv6Addr,
        /// `ipi6_ifindex`.
        ifindex: u32,
    },
    /// `IPPROTO_IP`/`IP_TOS`, data `INT`: the whole TOS byte.
    TosV4(u8),
    /// `IPPROTO_IPV6`/`IPV6_TCLASS`, data `INT`: the traffic class.
    TrafficClassV6(u8),
    /// `IPPROTO_IP`/`IP_ECN`, data `INT`: the ECN codepoint.
    EcnV4(Ecn),
    /// `IPPROTO_IPV6`/`IPV6_ECN` (same value as `IP_ECN`), data `INT`.
    EcnV6(Ecn),
    /// `IPPROTO_UDP`/`UDP_SEND_MSG_SIZE`, data `DWORD`: USO segment size.
    UdpSendMsgSize(u32),
}

impl ControlMessage {
    /// `(cmsg_level, cmsg_type)`.
    #[must_use]
    pub const fn level_and_type(&self) -> (i32, i32) {
        match self {
            Self::SourceV4 { .. } => (IPPROTO_IP, IP_PKTINFO),
            Self::SourceV6 { .. } => (IPPROTO_IPV6, IPV6_PKTINFO),
            Self::TosV4(_) => (IPPROTO_IP, IP_TOS),
            Self::TrafficClassV6(_) => (IPPROTO_IPV6, IPV6_TCLASS),
            Self::EcnV4(_) => (IPPROTO_IP, IP_ECN),
            Self::EcnV6(_) => (IPPROTO_IPV6, IPV6_ECN),
            Self::UdpSendMsgSize(_) => (IPPROTO_UDP, UDP_SEND_MSG_SIZE),
        }
    }

    /// Bytes of data (the C type's `sizeof`).
    #[must_use]
    pub const fn data_len(&self) -> usize {
        match self {
            Self::SourceV4 { .. } => size_of::<IN_PKTINFO>(),
            Self::SourceV6 { .. } => size_of::<IN6_PKTINFO>(),
            Self::TosV4(_) | Self::TrafficClassV6(_) | Self::EcnV4(_) | Self::EcnV6(_) => INT_LEN,
            Self::UdpSendMsgSize(_) => DWORD_LEN,
        }
    }

    /// Writes the data (exactly [`ControlMessage::data_len`] bytes) in the C layout.
    fn write_data(&self, out: &mut [u8]) {
        let int = |value: u8| i32::from(value).to_ne_bytes();
        match self {
            // IN_PKTINFO: IN_ADDR ipi_addr (network order) at 0, ULONG ipi_ifindex at 4.
            Self::SourceV4 { address, ifindex } => {
                put(out, 0, &address.octets());
                put(out, 4, &ifindex.to_ne_bytes());
            }
            // IN6_PKTINFO: IN6_ADDR ipi6_addr at 0, ULONG ipi6_ifindex at 16.
            Self::SourceV6 { address, ifindex } => {
                put(out, 0, &address.octets());
                put(out, 16, &ifindex.to_ne_bytes());
            }
            Self::TosV4(value) | Self::TrafficClassV6(value) => put(out, 0, &int(*value)),
            Self::EcnV4(ecn) | Self::EcnV6(ecn) => put(out, 0, &int(*ecn as u8)),
            Self::UdpSendMsgSize(size) => put(out, 0, &size.to_ne_bytes()),
        }
    }

    /// Decodes one message's data, applying the length and range rules a Windows transport
    /// applies.
    ///
    /// # Errors
    /// [`CmsgError::UnknownType`] for a (level, type) wskudp does not send,
    /// [`CmsgError::BadDataLength`] if `data` is not exactly the C type's size,
    /// [`CmsgError::BadValue`] for an out-of-range ECN, TOS or segment size.
    pub fn decode(level: i32, ty: i32, data: &[u8]) -> Result<Self, CmsgError> {
        let fixed = |expected: usize| {
            if data.len() == expected {
                Ok(())
            } else {
                Err(CmsgError::BadDataLength {
                    level,
                    ty,
                    len: data.len(),
                })
            }
        };
        let int = || -> Result<u8, CmsgError> {
            fixed(INT_LEN)?;
            let value = i32::from_ne_bytes(take(data));
            u8::try_from(value).map_err(|_| CmsgError::BadValue { level, ty })
        };
        let ecn = || int().and_then(|v| Ecn::from_bits(v).ok_or(CmsgError::BadValue { level, ty }));
        match (level, ty) {
            (IPPROTO_IP, IP_PKTINFO) => {
                fixed(size_of::<IN_PKTINFO>())?;
                Ok(Self::SourceV4 {
                    address: Ipv4Addr::from(take::<4>(data)),
                    ifindex: u32::from_ne_bytes(take(data.get(4..).unwrap_or_default())),
                })
            }
            (IPPROTO_IPV6, IPV6_PKTINFO) => {
                fixed(size_of::<IN6_PKTINFO>())?;
                Ok(Self::SourceV6 {
                    address: Ipv6Addr::from(take::<16>(data)),
                    ifindex: u32::from_ne_bytes(take(data.get(16..).unwrap_or_default())),
                })
            }
            (IPPROTO_IP, IP_TOS) => int().map(Self::TosV4),
            (IPPROTO_IPV6, IPV6_TCLASS) => int().map(Self::TrafficClassV6),
            (IPPROTO_IP, IP_ECN) => ecn().map(Self::EcnV4),
            (IPPROTO_IPV6, IPV6_ECN) => ecn().map(Self::EcnV6),
            (IPPROTO_UDP, UDP_SEND_MSG_SIZE) => {
                fixed(DWORD_LEN)?;
                match u32::from_ne_bytes(take(data)) {
                    0 => Err(CmsgError::BadValue { level, ty }),
                    size => Ok(Self::UdpSendMsgSize(size)),
                }
            }
            _ => Err(CmsgError::UnknownType { level, ty }),
        }
    }
}

/// The first `N` bytes of `data`, zero-filled if it is shorter.
fn take<const N: usize>(data: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    put(&mut out, 0, data.get(..N).unwrap_or(data));
    out
}

/// Copies `bytes` into `out` at `at`, as far as `out` reaches.
fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = out.get_mut(at..) {
        let n = dst.len().min(bytes.len());
        if let (Some(dst), Some(src)) = (dst.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
    }
}

/// Why a control buffer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmsgError {
    /// The messages do not fit in [`CONTROL_CAPACITY`] bytes.
    Full,
    /// The buffer is not aligned to [`CMSG_ALIGN`].
    Misaligned,
    /// A header with `cmsg_len` below the header size.
    LengthTooSmall {
        /// Offset of the header.
        offset: usize,
    },
    /// A message whose padded extent runs past `ControlInfoLength`.
    Truncated {
        /// Offset of the header.
        offset: usize,
    },
    /// Bytes after the last message that do not form a header.
    TrailingBytes {
        /// Offset of the stray bytes.
        offset: usize,
    },
    /// A (level, type) wskudp does not send.
    UnknownType {
        /// `cmsg_level`.
        level: i32,
        /// `cmsg_type`.
        ty: i32,
    },
    /// Data of the wrong size for its type.
    BadDataLength {
        /// `cmsg_level`.
        level: i32,
        /// `cmsg_type`.
        ty: i32,
        /// Data bytes present.
        len: usize,
    },
    /// A value outside its range.
    BadValue {
        /// `cmsg_level`.
        level: i32,
        /// `cmsg_type`.
        ty: i32,
    },
}

/// Storage for one datagram's control messages, aligned as a `CMSGHDR` must be.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlBuffer {
    bytes: [u8; CONTROL_CAPACITY],
    len: usize,
}

const _: () = assert!(align_of::<ControlBuffer>() >= align_of::<CMSGHDR>());

impl ControlBuffer {
    /// No messages.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            bytes: [0; CONTROL_CAPACITY],
            len: 0,
        }
    }

    /// The encoded messages: `ControlInfo` / `ControlInfoLength`.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }

    /// Start of the buffer.
    #[must_use]
    pub const fn as_ptr(&self) -> *const u8 {
        self.bytes.as_ptr()
    }

    /// The buffer as `ControlInfo` (null when empty, as `WskSendTo` expects), and its
    /// `ControlInfoLength`.
    #[must_use]
    pub fn as_control_info(&self) -> (*const CMSGHDR, u32) {
        if self.len == 0 {
            (core::ptr::null(), 0)
        } else {
            // `bytes` is the first field of this 8-aligned repr(C) struct.
            let info = core::ptr::from_ref(self).cast::<CMSGHDR>();
            (info, u32::try_from(self.len).unwrap_or(0))
        }
    }

    /// An encoder appending to this buffer. The length it records is final once the encoder
    /// is dropped (quinn-udp's finish-on-drop): the buffer cannot be read half-written.
    pub const fn encoder(&mut self) -> Encoder<'_> {
        Encoder { buffer: self }
    }
}

impl Default for ControlBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends messages to a [`ControlBuffer`].
pub struct Encoder<'a> {
    buffer: &'a mut ControlBuffer,
}

impl Encoder<'_> {
    /// Appends one message: header with `cmsg_len = WSA_CMSG_LEN(data)`, the data, then zero
    /// padding up to `WSA_CMSG_SPACE(data)`.
    ///
    /// # Errors
    /// [`CmsgError::Full`] if it does not fit; the buffer is unchanged.
    pub fn push(&mut self, message: &ControlMessage) -> Result<(), CmsgError> {
        let start = self.buffer.len;
        let data_len = message.data_len();
        let end = start
            .checked_add(cmsg_space(data_len))
            .filter(|end| *end <= CONTROL_CAPACITY)
            .ok_or(CmsgError::Full)?;
        let slot = self
            .buffer
            .bytes
            .get_mut(start..end)
            .ok_or(CmsgError::Full)?;
        slot.fill(0);
        let (level, ty) = message.level_and_type();
        put(slot, 0, &cmsg_len(data_len).to_ne_bytes());
        put(slot, LEVEL_OFFSET, &level.to_ne_bytes());
        put(slot, TYPE_OFFSET, &ty.to_ne_bytes());
        if let Some(data) = slot.get_mut(DATA_OFFSET..DATA_OFFSET.saturating_add(data_len)) {
            message.write_data(data);
        }
        self.buffer.len = end;
        Ok(())
    }
}

/// One message read from a control buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawMessage<'a> {
    /// `cmsg_level`.
    pub level: i32,
    /// `cmsg_type`.
    pub ty: i32,
    /// The data (`cmsg_len - WSA_CMSG_LEN(0)` bytes).
    pub data: &'a [u8],
    /// The padding after the data, up to the next header.
    pub padding: &'a [u8],
}

/// Walks a control buffer like `WSA_CMSG_FIRSTHDR`/`WSA_CMSG_NXTHDR`, made strict.
///
/// Every message's padded extent must fit in the buffer, and the buffer must end exactly
/// where the last message's padded extent ends.
pub struct Iter<'a> {
    bytes: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Iter<'a> {
    /// Iterates over `ControlInfo[..ControlInfoLength]`, whose first byte is at `address`.
    ///
    /// # Errors
    /// [`CmsgError::Misaligned`] if `address` is not 8-aligned.
    pub const fn new(bytes: &'a [u8], address: usize) -> Result<Self, CmsgError> {
        if !address.is_multiple_of(CMSG_ALIGN) {
            return Err(CmsgError::Misaligned);
        }
        Ok(Self {
            bytes,
            offset: 0,
            failed: false,
        })
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<RawMessage<'a>, CmsgError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.bytes.len() {
            return None;
        }
        let offset = self.offset;
        let result = (|| {
            let rest = self.bytes.get(offset..).unwrap_or_default();
            if rest.len() < HEADER_LEN {
                return Err(CmsgError::TrailingBytes { offset });
            }
            let cmsg_len_field = usize::from_ne_bytes(take(rest));
            let level = i32::from_ne_bytes(take(rest.get(LEVEL_OFFSET..).unwrap_or_default()));
            let ty = i32::from_ne_bytes(take(rest.get(TYPE_OFFSET..).unwrap_or_default()));
            if cmsg_len_field < DATA_OFFSET {
                return Err(CmsgError::LengthTooSmall { offset });
            }
            let extent = align(cmsg_len_field);
            if extent > rest.len() || extent < cmsg_len_field {
                return Err(CmsgError::Truncated { offset });
            }
            let data = rest.get(DATA_OFFSET..cmsg_len_field).unwrap_or_default();
            let padding = rest.get(cmsg_len_field..extent).unwrap_or_default();
            self.offset = offset.saturating_add(extent);
            Ok(RawMessage {
                level,
                ty,
                data,
                padding,
            })
        })();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn macro_values_on_x64() {
        assert_eq!(HEADER_LEN, 16);
        assert_eq!(cmsg_len(0), 16);
        assert_eq!(cmsg_len(size_of::<IN6_PKTINFO>()), 36);
        assert_eq!(cmsg_space(size_of::<IN6_PKTINFO>()), 40);
        assert_eq!(cmsg_space(size_of::<IN_PKTINFO>()), 24);
        assert_eq!(cmsg_space(4), 24);
        assert_eq!(cmsg_space(0), 16);
        assert_eq!(MAX_CONTROL_LEN, 112);
    }

    fn encode(messages: &[ControlMessage]) -> ControlBuffer {
        let mut buffer = ControlBuffer::new();
        let mut encoder = buffer.encoder();
        for message in messages {
            encoder.push(message).unwrap();
        }
        buffer
    }

    fn decode(buffer: &ControlBuffer) -> Vec<ControlMessage> {
        Iter::new(buffer.as_bytes(), buffer.as_ptr() as usize)
            .unwrap()
            .map(|raw| {
                let raw = raw.unwrap();
                assert!(raw.padding.iter().all(|b| *b == 0));
                ControlMessage::decode(raw.level, raw.ty, raw.data).unwrap()
            })
            .collect()
    }

    #[test]
    fn all_messages_round_trip_with_padded_total() {
        let messages = [
            ControlMessage::SourceV6 {
                address: "2001:db8::7".parse().unwrap(),
                ifindex: 3,
            },
            ControlMessage::TrafficClassV6(0xb8),
            ControlMessage::EcnV6(Ecn::Ce),
            ControlMessage::UdpSendMsgSize(1200),
        ];
        let buffer = encode(&messages);
        assert_eq!(buffer.as_bytes().len(), MAX_CONTROL_LEN);
        assert_eq!(decode(&buffer), messages);

        let v4 = [
            ControlMessage::SourceV4 {
                address: "127.0.0.2".parse().unwrap(),
                ifindex: 0x0102_0304,
            },
            ControlMessage::EcnV4(Ecn::Ect1),
        ];
        let buffer = encode(&v4);
        assert_eq!(buffer.as_bytes().len(), 24 + 24);
        assert_eq!(decode(&buffer), v4);
        // The exact bytes of IP_PKTINFO: cmsg_len 24, level 0, type 19, address, ifindex
        // (host order).
        assert_eq!(
            &buffer.as_bytes()[..24],
            &[
                24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 19, 0, 0, 0, 127, 0, 0, 2, 4, 3, 2, 1
            ]
        );
    }

    #[test]
    fn full_buffer_is_refused_unchanged() {
        let mut buffer = ControlBuffer::new();
        let mut encoder = buffer.encoder();
        let message = ControlMessage::SourceV6 {
            address: Ipv6Addr::LOCALHOST,
            ifindex: 0,
        };
        for _ in 0..3 {
            encoder.push(&message).unwrap();
        }
        assert_eq!(encoder.push(&message), Err(CmsgError::Full));
        assert_eq!(buffer.as_bytes().len(), 120);
    }

    #[test]
    fn malformed_buffers_are_rejected() {
        let good = encode(&[ControlMessage::TosV4(1)]);
        let aligned = good.as_ptr() as usize;
        // Length field below the header size.
        let mut bytes = good.as_bytes().to_vec();
        bytes[0] = 8;
        assert_eq!(
            Iter::new(&bytes, aligned).unwrap().next(),
            Some(Err(CmsgError::LengthTooSmall { offset: 0 }))
        );
        // ControlInfoLength = cmsg_len instead of the padded space.
        let short = &good.as_bytes()[..cmsg_len(4)];
        assert_eq!(
            Iter::new(short, aligned).unwrap().next(),
            Some(Err(CmsgError::Truncated { offset: 0 }))
        );
        // Stray bytes after the last message.
        let mut long = good.as_bytes().to_vec();
        long.extend_from_slice(&[0; 8]);
        let all: Vec<_> = Iter::new(&long, aligned).unwrap().collect();
        assert_eq!(
            all.last(),
            Some(&Err(CmsgError::TrailingBytes { offset: 24 }))
        );
        // Misaligned buffer, wrong data size, bad ECN, unknown type.
        assert_eq!(
            Iter::new(good.as_bytes(), aligned + 4).err(),
            Some(CmsgError::Misaligned)
        );
        assert!(matches!(
            ControlMessage::decode(IPPROTO_IP, IP_PKTINFO, &[0; 12]),
            Err(CmsgError::BadDataLength { len: 12, .. })
        ));
        assert!(matches!(
            ControlMessage::decode(IPPROTO_IP, IP_ECN, &4_i32.to_ne_bytes()),
            Err(CmsgError::BadValue { .. })
        ));
        assert!(matches!(
            ControlMessage::decode(IPPROTO_IP, 9, &[]),
            Err(CmsgError::UnknownType { level: 0, ty: 9 })
        ));
    }
}
