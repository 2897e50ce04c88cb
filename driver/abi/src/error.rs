//! Validation failures, each with one precise `NTSTATUS`.

use core::fmt;

use crate::status::{
    NTSTATUS, STATUS_BUFFER_TOO_SMALL, STATUS_INFO_LENGTH_MISMATCH,
    STATUS_INVALID_ADDRESS_COMPONENT, STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_DEVICE_REQUEST,
    STATUS_INVALID_PARAMETER, STATUS_REVISION_MISMATCH,
};

/// Why a request or response buffer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbiError {
    /// The input is shorter than the request's fixed part.
    InputTooShort {
        /// Bytes the fixed part needs.
        needed: usize,
        /// Bytes supplied.
        got: usize,
    },
    /// The input size is not exactly what the request's fields describe.
    InputLengthMismatch {
        /// Size the fields describe.
        expected: usize,
        /// Bytes supplied.
        got: usize,
    },
    /// The output buffer cannot hold the response.
    OutputTooSmall {
        /// Bytes the response needs.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// The request was built for another ABI version.
    VersionMismatch {
        /// Version the request carries.
        got: u32,
    },
    /// A reserved field or reserved address byte is not zero.
    ReservedNotZero,
    /// Flag bits this ABI version does not define.
    UnknownFlags(u32),
    /// An address family other than `AF_INET` (2) or `AF_INET6` (23).
    UnsupportedFamily(u16),
    /// A destination port of zero.
    ZeroPort,
    /// The source address family differs from the destination's.
    SourceFamilyMismatch,
    /// The source address carries a port (the socket's bound port is always used).
    SourceHasPort,
    /// More segments than [`crate::MAX_SEGMENTS`].
    TooManySegments(u32),
    /// A segment of length zero (an MDL cannot describe zero bytes).
    ZeroLengthSegment {
        /// Index of the segment.
        index: u32,
    },
    /// The segment lengths do not add up to the payload length.
    SegmentSumMismatch {
        /// Sum of the segment lengths.
        sum: u64,
        /// Payload length.
        payload: u32,
    },
    /// A payload of zero bytes.
    EmptyPayload,
    /// A payload above [`crate::MAX_PAYLOAD`].
    PayloadTooLarge(u32),
    /// A datagram count of zero or above [`crate::MAX_COUNT`].
    CountOutOfRange(u32),
    /// An ECN codepoint above 3.
    EcnOutOfRange(u8),
    /// A USO segment size of zero or above [`crate::MAX_PAYLOAD`].
    UsoSegmentSizeOutOfRange(u32),
    /// An IOCTL code the driver does not implement.
    UnknownIoctl(u32),
    /// `OpenSocketRequest::FLAG_DUAL_STACK` on an IPv4 socket.
    DualStackNeedsIpv6,
    /// A source interface without a source address.
    InterfaceWithoutSource,
    /// A source address that is unspecified or multicast.
    SourceNotUnicast,
    /// A `SET_OPTION` option id this version does not define.
    UnknownOption(u32),
    /// A `SEND_DIRECT` whose `payload_len` is not its output buffer's length.
    DirectLengthMismatch {
        /// The request's `payload_len`.
        payload: u32,
        /// The output buffer's length.
        output: usize,
    },
    /// A `BENCH` field outside its range.
    BenchOutOfRange {
        /// The field's name.
        field: &'static str,
        /// The value given.
        value: u64,
    },
    /// A `SET_OPTION` value outside the option's range.
    OptionValueOutOfRange {
        /// The option id.
        option: u32,
        /// The value given.
        value: u32,
    },
}

impl AbiError {
    /// The `NTSTATUS` the driver completes the request with.
    #[must_use]
    pub const fn status(&self) -> NTSTATUS {
        match self {
            Self::InputTooShort { .. } | Self::InputLengthMismatch { .. } => {
                STATUS_INFO_LENGTH_MISMATCH
            }
            Self::OutputTooSmall { .. } => STATUS_BUFFER_TOO_SMALL,
            Self::VersionMismatch { .. } => STATUS_REVISION_MISMATCH,
            Self::ReservedNotZero
            | Self::UnknownOption(_)
            | Self::InterfaceWithoutSource
            | Self::OptionValueOutOfRange { .. }
            | Self::BenchOutOfRange { .. }
            | Self::UnknownFlags(_)
            | Self::CountOutOfRange(_)
            | Self::EcnOutOfRange(_)
            | Self::UsoSegmentSizeOutOfRange(_) => STATUS_INVALID_PARAMETER,
            Self::UnsupportedFamily(_)
            | Self::ZeroPort
            | Self::SourceFamilyMismatch
            | Self::SourceHasPort
            | Self::DualStackNeedsIpv6
            | Self::SourceNotUnicast => STATUS_INVALID_ADDRESS_COMPONENT,
            Self::TooManySegments(_)
            | Self::ZeroLengthSegment { .. }
            | Self::SegmentSumMismatch { .. }
            | Self::EmptyPayload
            | Self::DirectLengthMismatch { .. }
            | Self::PayloadTooLarge(_) => STATUS_INVALID_BUFFER_SIZE,
            Self::UnknownIoctl(_) => STATUS_INVALID_DEVICE_REQUEST,
        }
    }
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InputTooShort { needed, got } => {
                write!(
                    f,
                    "input is {got} bytes, the request needs at least {needed}"
                )
            }
            Self::InputLengthMismatch { expected, got } => {
                write!(f, "input is {got} bytes, its fields describe {expected}")
            }
            Self::OutputTooSmall { needed, got } => {
                write!(
                    f,
                    "output buffer is {got} bytes, the response needs {needed}"
                )
            }
            Self::VersionMismatch { got } => write!(
                f,
                "request is written in ABI version {got}; this side speaks versions {} to {} (and the request may need a newer one)",
                crate::ABI_OLDEST,
                crate::ABI_VERSION
            ),
            Self::ReservedNotZero => f.write_str("a reserved field is not zero"),
            Self::UnknownFlags(bits) => write!(f, "unknown flag bits {bits:#x}"),
            Self::UnsupportedFamily(family) => {
                write!(
                    f,
                    "address family {family} is neither AF_INET (2) nor AF_INET6 (23)"
                )
            }
            Self::ZeroPort => f.write_str("destination port is 0"),
            Self::SourceFamilyMismatch => {
                f.write_str("source address family differs from the destination's")
            }
            Self::SourceHasPort => f.write_str("source address must not carry a port"),
            Self::TooManySegments(n) => {
                write!(f, "{n} segments, at most {} allowed", crate::MAX_SEGMENTS)
            }
            Self::ZeroLengthSegment { index } => write!(f, "segment {index} has length 0"),
            Self::SegmentSumMismatch { sum, payload } => {
                write!(
                    f,
                    "segment lengths add up to {sum}, payload is {payload} bytes"
                )
            }
            Self::EmptyPayload => f.write_str("payload is empty"),
            Self::PayloadTooLarge(n) => {
                write!(
                    f,
                    "payload is {n} bytes, at most {} allowed",
                    crate::MAX_PAYLOAD
                )
            }
            Self::CountOutOfRange(n) => {
                write!(f, "count {n} is outside 1..={}", crate::MAX_COUNT)
            }
            Self::EcnOutOfRange(n) => write!(f, "ECN codepoint {n} is outside 0..=3"),
            Self::UsoSegmentSizeOutOfRange(n) => {
                write!(
                    f,
                    "USO segment size {n} is outside 1..={}",
                    crate::MAX_PAYLOAD
                )
            }
            Self::UnknownIoctl(code) => write!(f, "IOCTL code {code:#010x} is not implemented"),
            Self::DualStackNeedsIpv6 => {
                f.write_str("a dual-stack socket must be bound to an IPv6 address (e.g. [::]:0)")
            }
            Self::UnknownOption(option) => write!(f, "socket option {option} is not defined"),
            Self::SourceNotUnicast => {
                f.write_str("the source address must be one unicast address of this host")
            }
            Self::InterfaceWithoutSource => {
                f.write_str("a source interface needs a source address (IN_PKTINFO carries both)")
            }
            Self::OptionValueOutOfRange { option, value } => {
                write!(f, "{value} is out of range for socket option {option}")
            }
            Self::DirectLengthMismatch { payload, output } => write!(
                f,
                "payload_len is {payload} but the output buffer (the payload) is {output} bytes"
            ),
            Self::BenchOutOfRange { field, value } => {
                write!(f, "bench {field} {value} is out of range: ")?;
                match *field {
                    "api" => f.write_str("1 (sendto) or 2 (sendmessages)"),
                    "size" => write!(f, "1..={}", crate::MAX_PAYLOAD),
                    "depth" => write!(f, "1..={}", crate::MAX_BENCH_DEPTH),
                    "batch" => write!(
                        f,
                        "1..={} with sendmessages, 1 with sendto",
                        crate::MAX_BENCH_BATCH
                    ),
                    _ => f.write_str("at least 1"),
                }
            }
        }
    }
}

impl core::error::Error for AbiError {}
