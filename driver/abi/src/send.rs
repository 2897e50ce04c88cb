//! Parsing (driver side) and encoding (user side) of the variable-size requests.
//!
//! Encoding always ends by parsing what it wrote, so the two sides share one set of rules.

use core::net::{IpAddr, SocketAddr};

use zerocopy::{FromBytes, IntoBytes};

use crate::{
    AbiError, CloseSocketRequest, Ioctl, MAX_COUNT, MAX_PAYLOAD, MAX_SEGMENTS, OpenSocketRequest,
    RequestHeader, SendRequest, SetOptionRequest, StatsRequest, WireAddr,
};

const SEGMENT_LEN_SIZE: usize = size_of::<u32>();

/// An ECN codepoint (RFC 3168), the two low bits of the TOS byte.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ecn {
    /// Not ECN-capable transport.
    NotEct = 0,
    /// ECN-capable transport, ECT(1).
    Ect1 = 1,
    /// ECN-capable transport, ECT(0).
    Ect0 = 2,
    /// Congestion experienced.
    Ce = 3,
}

impl Ecn {
    /// The codepoint with these bits, if they are one.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::NotEct),
            1 => Some(Self::Ect1),
            2 => Some(Self::Ect0),
            3 => Some(Self::Ce),
            _ => None,
        }
    }
}

/// What a client asks `SEND` to do (everything but the segment lengths and payload bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendSpec {
    /// Handle from `OPEN_SOCKET`.
    pub socket: u32,
    /// Destination; `None` (ABI 2): the socket's own, set with [`SocketOption::Destination`].
    pub remote: Option<SocketAddr>,
    /// Source address to request with `IP_PKTINFO`/`IPV6_PKTINFO`.
    pub source: Option<IpAddr>,
    /// TOS byte / traffic class.
    pub tos: Option<u8>,
    /// ECN codepoint.
    pub ecn: Option<Ecn>,
    /// `UDP_SEND_MSG_SIZE` segment size.
    pub uso_segment_size: Option<u32>,
    /// ABI 2: the interface index to send from (`ipi_ifindex`/`ipi6_ifindex`).
    pub source_ifindex: Option<u32>,
    /// Times to send the datagram.
    pub count: u32,
}

/// A validated `SEND`/`DESCRIBE_SEND` request, borrowing the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendView<'a> {
    /// The ABI version the request is written in.
    pub abi_version: u32,
    /// The request's options.
    pub spec: SendSpec,
    /// Raw segment lengths (`segment_count` native-endian `u32`s), possibly empty.
    segment_bytes: &'a [u8],
    /// The payload (empty for `SEND_DIRECT`, whose payload is the caller's output buffer).
    pub payload: &'a [u8],
    /// The payload's length (`SEND_DIRECT`: the output buffer's).
    pub payload_len: u32,
}

impl SendView<'_> {
    /// The MDL lengths the payload is split into, in order. Never empty, each non-zero, and
    /// they add up to the payload length.
    #[must_use]
    pub fn segment_lengths(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        let explicit = self
            .segment_bytes
            .chunks_exact(SEGMENT_LEN_SIZE)
            .map(|chunk| u32::from_ne_bytes(chunk.try_into().unwrap_or_default()));
        let implicit = self.segment_bytes.is_empty().then_some(self.payload_len);
        SegmentLengths { explicit, implicit }
    }

    /// Number of MDLs ([`SendView::segment_lengths`] count).
    #[must_use]
    pub const fn segment_count(&self) -> usize {
        if self.segment_bytes.is_empty() {
            1
        } else {
            self.segment_bytes.len() / SEGMENT_LEN_SIZE
        }
    }
}

struct SegmentLengths<I> {
    explicit: I,
    implicit: Option<u32>,
}

impl<I: ExactSizeIterator<Item = u32>> Iterator for SegmentLengths<I> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        self.implicit.take().or_else(|| self.explicit.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self
            .explicit
            .len()
            .saturating_add(usize::from(self.implicit.is_some()));
        (n, Some(n))
    }
}

impl<I: ExactSizeIterator<Item = u32>> ExactSizeIterator for SegmentLengths<I> {}

pub(crate) struct Options {
    pub(crate) source: Option<IpAddr>,
    pub(crate) source_ifindex: Option<u32>,
    pub(crate) tos: Option<u8>,
    pub(crate) ecn: Option<Ecn>,
    pub(crate) uso_segment_size: Option<u32>,
}

/// Whether `ip` travels as IPv4: an IPv4 address or a v4-mapped IPv6 one.
const fn travels_as_ipv4(ip: IpAddr) -> bool {
    ip.to_canonical().is_ipv4()
}

/// The flag-gated fields: set when their flag is, and zero when it is not.
pub(crate) fn parse_options(
    fixed: &SendRequest,
    remote: Option<SocketAddr>,
) -> Result<Options, AbiError> {
    let has = |flag: u32| fixed.flags & flag != 0;
    let source = if has(SendRequest::FLAG_SOURCE) {
        let ip = fixed.source.ip()?;
        // Families compare as the stack routes them: a v4-mapped address is IPv4.
        if remote.is_some_and(|remote| travels_as_ipv4(ip) != travels_as_ipv4(remote.ip())) {
            return Err(AbiError::SourceFamilyMismatch);
        }
        // A source pins where the datagram comes from: one unicast address of this host.
        if ip.is_unspecified() || ip.is_multicast() || ip.to_canonical().is_multicast() {
            return Err(AbiError::SourceNotUnicast);
        }
        if fixed.source.port != 0 {
            return Err(AbiError::SourceHasPort);
        }
        Some(ip)
    } else if fixed.source.is_none() {
        None
    } else {
        return Err(AbiError::ReservedNotZero);
    };
    let tos = if has(SendRequest::FLAG_TOS) {
        Some(fixed.tos)
    } else if fixed.tos == 0 {
        None
    } else {
        return Err(AbiError::ReservedNotZero);
    };
    let ecn = if has(SendRequest::FLAG_ECN) {
        Some(Ecn::from_bits(fixed.ecn).ok_or(AbiError::EcnOutOfRange(fixed.ecn))?)
    } else if fixed.ecn == 0 {
        None
    } else {
        return Err(AbiError::ReservedNotZero);
    };
    let uso_segment_size = if has(SendRequest::FLAG_USO) {
        if fixed.uso_segment_size == 0 || fixed.uso_segment_size > MAX_PAYLOAD {
            return Err(AbiError::UsoSegmentSizeOutOfRange(fixed.uso_segment_size));
        }
        Some(fixed.uso_segment_size)
    } else if fixed.uso_segment_size == 0 {
        None
    } else {
        return Err(AbiError::ReservedNotZero);
    };
    let source_ifindex = if has(SendRequest::FLAG_SOURCE_IFINDEX) {
        if source.is_none() {
            // IN_PKTINFO / IN6_PKTINFO carry both; Windows sends the address as given.
            return Err(AbiError::InterfaceWithoutSource);
        }
        Some(fixed.source_ifindex)
    } else if fixed.source_ifindex == 0 {
        None
    } else {
        return Err(AbiError::ReservedNotZero);
    };
    Ok(Options {
        source,
        source_ifindex,
        tos,
        ecn,
        uso_segment_size,
    })
}

/// Total size of a `SEND` request with `segment_count` segment lengths and `payload_len`
/// payload bytes, or `None` on overflow.
#[must_use]
pub const fn send_request_len(segment_count: usize, payload_len: usize) -> Option<usize> {
    match segment_count.checked_mul(SEGMENT_LEN_SIZE) {
        Some(segments) => match size_of::<SendRequest>().checked_add(segments) {
            Some(fixed) => fixed.checked_add(payload_len),
            None => None,
        },
        None => None,
    }
}

/// Validates a `SEND`/`DESCRIBE_SEND` input buffer.
///
/// # Errors
/// The first rule the buffer breaks, in field order: size, version, reserved fields, flags,
/// addresses, options, count, segments, payload, exact total length.
pub fn parse_send(input: &[u8]) -> Result<SendView<'_>, AbiError> {
    parse_send_with(input, None)
}

/// Validates a `SEND_DIRECT` input buffer: a `SEND` without its payload bytes.
///
/// Its `payload_len` is the length of the caller's output buffer (`METHOD_IN_DIRECT`: the
/// payload the driver sends from the caller's own locked pages).
///
/// # Errors
/// As [`parse_send`]; [`AbiError::DirectLengthMismatch`] if `payload_len` is not the output
/// buffer's length.
pub fn parse_send_direct(input: &[u8], output_len: usize) -> Result<SendView<'_>, AbiError> {
    parse_send_with(input, Some(output_len))
}

/// [`parse_send`] (`direct` `None`: the payload follows the segment lengths) or
/// [`parse_send_direct`] (`direct` the output buffer's length: no payload in the input).
fn parse_send_with(input: &[u8], direct: Option<usize>) -> Result<SendView<'_>, AbiError> {
    let (fixed, rest) =
        SendRequest::ref_from_prefix(input).map_err(|_| AbiError::InputTooShort {
            needed: size_of::<SendRequest>(),
            got: input.len(),
        })?;
    let ioctl = direct.map_or(Ioctl::Send, |_| Ioctl::SendDirect);
    let abi_version = fixed.header.check(ioctl.introduced())?;
    if fixed.reserved != 0 {
        return Err(AbiError::ReservedNotZero);
    }
    let known = if abi_version >= 2 {
        SendRequest::FLAGS_ALL
    } else {
        SendRequest::FLAGS_V1
    };
    let unknown = fixed.flags & !known;
    if unknown != 0 {
        return Err(AbiError::UnknownFlags(unknown));
    }
    // ABI 2: no destination means the socket's own.
    let remote = if abi_version >= 2 && fixed.remote.is_none() {
        None
    } else {
        let remote = fixed.remote.socket_addr()?;
        if remote.port() == 0 {
            return Err(AbiError::ZeroPort);
        }
        Some(remote)
    };
    let options = parse_options(fixed, remote)?;
    if fixed.count == 0 || fixed.count > MAX_COUNT {
        return Err(AbiError::CountOutOfRange(fixed.count));
    }
    if fixed.segment_count > MAX_SEGMENTS {
        return Err(AbiError::TooManySegments(fixed.segment_count));
    }
    if fixed.payload_len == 0 {
        return Err(AbiError::EmptyPayload);
    }
    if fixed.payload_len > MAX_PAYLOAD {
        return Err(AbiError::PayloadTooLarge(fixed.payload_len));
    }

    let segment_count = fixed.segment_count as usize;
    let in_input = payload_in_input(fixed, direct)?;
    let expected =
        send_request_len(segment_count, in_input).ok_or(AbiError::InputLengthMismatch {
            expected: usize::MAX,
            got: input.len(),
        })?;
    if input.len() != expected {
        return Err(AbiError::InputLengthMismatch {
            expected,
            got: input.len(),
        });
    }
    let segment_bytes_len = segment_count.saturating_mul(SEGMENT_LEN_SIZE);
    let (segment_bytes, payload) =
        rest.split_at_checked(segment_bytes_len)
            .ok_or(AbiError::InputLengthMismatch {
                expected,
                got: input.len(),
            })?;

    let view = SendView {
        abi_version,
        spec: SendSpec {
            socket: fixed.socket,
            remote,
            source: options.source,
            tos: options.tos,
            ecn: options.ecn,
            uso_segment_size: options.uso_segment_size,
            source_ifindex: options.source_ifindex,
            count: fixed.count,
        },
        segment_bytes,
        payload,
        payload_len: fixed.payload_len,
    };
    let mut sum: u64 = 0;
    for (index, len) in (0_u32..).zip(view.segment_lengths()) {
        if len == 0 {
            return Err(AbiError::ZeroLengthSegment { index });
        }
        sum = sum.saturating_add(u64::from(len));
    }
    if sum != u64::from(fixed.payload_len) {
        return Err(AbiError::SegmentSumMismatch {
            sum,
            payload: fixed.payload_len,
        });
    }
    Ok(view)
}

/// The payload bytes a request's input carries: all of them for a `SEND`; none for a
/// `SEND_DIRECT` (`direct`: its output buffer's length), whose `payload_len` must be the output
/// buffer's.
const fn payload_in_input(fixed: &SendRequest, direct: Option<usize>) -> Result<usize, AbiError> {
    match direct {
        None => Ok(fixed.payload_len as usize),
        Some(output) if output == fixed.payload_len as usize => Ok(0),
        Some(output) => Err(AbiError::DirectLengthMismatch {
            payload: fixed.payload_len,
            output,
        }),
    }
}

/// `spec`'s options as `SEND` carries them (`flags`, `source`, `tos`, `ecn`,
/// `uso_segment_size`, `source_ifindex`; every other field default). `BENCH` carries the same.
pub(crate) fn options_of(spec: &SendSpec) -> SendRequest {
    let mut fixed = SendRequest::default();
    if let Some(source) = spec.source {
        fixed.flags |= SendRequest::FLAG_SOURCE;
        fixed.source = WireAddr::from_ip(source);
    }
    if let Some(tos) = spec.tos {
        fixed.flags |= SendRequest::FLAG_TOS;
        fixed.tos = tos;
    }
    if let Some(ecn) = spec.ecn {
        fixed.flags |= SendRequest::FLAG_ECN;
        fixed.ecn = ecn as u8;
    }
    if let Some(size) = spec.uso_segment_size {
        fixed.flags |= SendRequest::FLAG_USO;
        fixed.uso_segment_size = size;
    }
    if let Some(index) = spec.source_ifindex {
        fixed.flags |= SendRequest::FLAG_SOURCE_IFINDEX;
        fixed.source_ifindex = index;
    }
    fixed
}

/// Builds a `SEND_DIRECT` request into `out` and returns its length.
///
/// It is a `SEND` of `payload_len` bytes without them (they travel as the output buffer).
/// `segments` may be empty (one segment holding the whole payload).
///
/// # Errors
/// [`AbiError::OutputTooSmall`] if `out` is too short, or whatever [`parse_send_direct`] says
/// about the result.
pub fn encode_send_direct(
    spec: &SendSpec,
    segments: &[u32],
    payload_len: usize,
    out: &mut [u8],
) -> Result<usize, AbiError> {
    let needed = encode_send_fixed(spec, segments, payload_len, out)?;
    let request = out.get(..needed).unwrap_or_default();
    parse_send_direct(request, payload_len)?;
    Ok(needed)
}

/// Builds a `SEND`/`DESCRIBE_SEND` request into `out` and returns its length. `segments`
/// may be empty (one segment holding the whole payload).
///
/// # Errors
/// [`AbiError::OutputTooSmall`] if `out` is shorter than [`send_request_len`], or whatever
/// [`parse_send`] says about the result.
pub fn encode_send(
    spec: &SendSpec,
    segments: &[u32],
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, AbiError> {
    let fixed = encode_send_fixed(spec, segments, payload.len(), out)?;
    let needed = fixed.saturating_add(payload.len());
    let got = out.len();
    let out = out
        .get_mut(..needed)
        .ok_or(AbiError::OutputTooSmall { needed, got })?;
    out.get_mut(fixed..)
        .ok_or(AbiError::OutputTooSmall { needed, got })?
        .copy_from_slice(payload);
    parse_send(out)?;
    Ok(needed)
}

/// Writes a `SEND`'s fixed part and segment lengths for a `payload_len`-byte payload into
/// `out`; returns their length.
fn encode_send_fixed(
    spec: &SendSpec,
    segments: &[u32],
    payload_len: usize,
    out: &mut [u8],
) -> Result<usize, AbiError> {
    let too_large = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let needed = send_request_len(segments.len(), 0).ok_or(AbiError::OutputTooSmall {
        needed: usize::MAX,
        got: out.len(),
    })?;
    let got = out.len();
    let out = out
        .get_mut(..needed)
        .ok_or(AbiError::OutputTooSmall { needed, got })?;

    let fixed = SendRequest {
        header: RequestHeader::CURRENT,
        socket: spec.socket,
        remote: spec
            .remote
            .map_or(WireAddr::NONE, WireAddr::from_socket_addr),
        count: spec.count,
        segment_count: too_large(segments.len()),
        payload_len: too_large(payload_len),
        ..options_of(spec)
    };

    let (head, segment_out) = out.split_at_mut(size_of::<SendRequest>());
    head.copy_from_slice(fixed.as_bytes());
    for (chunk, len) in segment_out.chunks_exact_mut(SEGMENT_LEN_SIZE).zip(segments) {
        chunk.copy_from_slice(&len.to_ne_bytes());
    }
    Ok(needed)
}

/// A validated `OPEN_SOCKET` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenSocketView {
    /// The ABI version the request is written in.
    pub abi_version: u32,
    /// Local address to bind; its family is the socket's.
    pub local: SocketAddr,
    /// ABI 2: an `AF_INET6` socket that also reaches IPv4 destinations.
    pub dual_stack: bool,
}

/// Validates an `OPEN_SOCKET` input buffer.
///
/// # Errors
/// Size, version or address problems.
pub fn parse_open_socket(input: &[u8]) -> Result<OpenSocketView, AbiError> {
    let header = read_header(input)?;
    let abi_version = header.check(1)?;
    // Version 1's layout is a prefix of version 2's; what it lacks reads as zero.
    let v1 = abi_version < 2;
    let expected = if v1 {
        OpenSocketRequest::V1_LEN
    } else {
        size_of::<OpenSocketRequest>()
    };
    if input.len() != expected {
        return Err(AbiError::InputLengthMismatch {
            expected,
            got: input.len(),
        });
    }
    let request: OpenSocketRequest = crate::wire::read_any_version(input, expected)?;
    if request.reserved != 0 {
        return Err(AbiError::ReservedNotZero);
    }
    let unknown = request.flags & !OpenSocketRequest::FLAGS_ALL;
    if unknown != 0 {
        return Err(AbiError::UnknownFlags(unknown));
    }
    let local = request.local.socket_addr()?;
    let dual_stack = request.flags & OpenSocketRequest::FLAG_DUAL_STACK != 0;
    if dual_stack && local.is_ipv4() {
        return Err(AbiError::DualStackNeedsIpv6);
    }
    Ok(OpenSocketView {
        abi_version,
        local,
        dual_stack,
    })
}

/// Builds an `OPEN_SOCKET` request.
#[must_use]
pub const fn encode_open_socket(local: SocketAddr) -> OpenSocketRequest {
    encode_open_socket_with(local, 0)
}

/// Builds an `OPEN_SOCKET` request with `OpenSocketRequest::FLAG_*` bits.
#[must_use]
pub const fn encode_open_socket_with(local: SocketAddr, flags: u32) -> OpenSocketRequest {
    OpenSocketRequest {
        header: RequestHeader::CURRENT,
        local: WireAddr::from_socket_addr(local),
        flags,
        reserved: 0,
    }
}

/// A socket option `SET_OPTION` sets (ABI 2), each through `WskControlSocket`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketOption {
    /// `IP_TTL` / `IPV6_UNICAST_HOPS`: hop limit of unicast datagrams, 1..=255.
    HopLimit(u8),
    /// `SO_BROADCAST`: may send to broadcast addresses.
    Broadcast(bool),
    /// `IP_MULTICAST_IF` / `IPV6_MULTICAST_IF`: the interface (index) multicast leaves by.
    MulticastInterface(u32),
    /// `IP_MULTICAST_TTL` / `IPV6_MULTICAST_HOPS`: hop limit of multicast datagrams, 0..=255.
    MulticastHopLimit(u8),
    /// `IP_MULTICAST_LOOP` / `IPV6_MULTICAST_LOOP`: multicast also delivered locally.
    MulticastLoop(bool),
    /// `IP_UNICAST_IF` / `IPV6_UNICAST_IF`: the interface (index) unicast leaves by; 0 clears.
    UnicastInterface(u32),
    /// `IP_DONTFRAGMENT` / `IPV6_DONTFRAG`: fail rather than fragment.
    DontFragment(bool),
    /// `SIO_WSK_SET_SENDTO_ADDRESS`: the destination of `SEND`s that give none.
    Destination(SocketAddr),
}

impl SocketOption {
    /// The option's wire id.
    #[must_use]
    pub const fn id(&self) -> u32 {
        match self {
            Self::HopLimit(_) => 1,
            Self::Broadcast(_) => 2,
            Self::MulticastInterface(_) => 3,
            Self::MulticastHopLimit(_) => 4,
            Self::MulticastLoop(_) => 5,
            Self::UnicastInterface(_) => 6,
            Self::DontFragment(_) => 7,
            Self::Destination(_) => 8,
        }
    }

    const fn wire(&self) -> (u32, WireAddr) {
        match *self {
            Self::HopLimit(hops) | Self::MulticastHopLimit(hops) => (hops as u32, WireAddr::NONE),
            Self::Broadcast(on) | Self::MulticastLoop(on) | Self::DontFragment(on) => {
                (on as u32, WireAddr::NONE)
            }
            Self::MulticastInterface(index) | Self::UnicastInterface(index) => {
                (index, WireAddr::NONE)
            }
            Self::Destination(address) => (0, WireAddr::from_socket_addr(address)),
        }
    }
}

/// A validated `SET_OPTION` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetOptionView {
    /// The ABI version the request is written in.
    pub abi_version: u32,
    /// Handle from `OPEN_SOCKET`.
    pub socket: u32,
    /// The option and its value.
    pub option: SocketOption,
}

/// Validates a `SET_OPTION` input buffer (a request ABI 2 introduced).
///
/// # Errors
/// Size, version, reserved fields, an unknown option or a value outside its range.
pub fn parse_set_option(input: &[u8]) -> Result<SetOptionView, AbiError> {
    let request = read_exact::<SetOptionRequest>(input)?;
    let abi_version = request.header.check(Ioctl::SetOption.introduced())?;
    if request.reserved != 0 {
        return Err(AbiError::ReservedNotZero);
    }
    let value = request.value;
    let out_of_range = AbiError::OptionValueOutOfRange {
        option: request.option,
        value,
    };
    let boolean = || match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(out_of_range),
    };
    let byte = |low: u32| {
        u8::try_from(value)
            .ok()
            .filter(|v| u32::from(*v) >= low)
            .ok_or(out_of_range)
    };
    // IP_UNICAST_IF / IP_MULTICAST_IF carry an interface index as an address in 0.0.0.0/8:
    // 24 bits (IPPROTO_IP socket options page); one limit for both families.
    let interface = |index: u32| {
        if index <= 0x00FF_FFFF {
            Ok(index)
        } else {
            Err(out_of_range)
        }
    };
    let option = match request.option {
        1 => SocketOption::HopLimit(byte(1)?),
        2 => SocketOption::Broadcast(boolean()?),
        3 => SocketOption::MulticastInterface(interface(value)?),
        4 => SocketOption::MulticastHopLimit(byte(0)?),
        5 => SocketOption::MulticastLoop(boolean()?),
        6 => SocketOption::UnicastInterface(interface(value)?),
        7 => SocketOption::DontFragment(boolean()?),
        8 => {
            if value != 0 {
                return Err(AbiError::ReservedNotZero);
            }
            let address = request.address.socket_addr()?;
            if address.port() == 0 {
                return Err(AbiError::ZeroPort);
            }
            SocketOption::Destination(address)
        }
        other => return Err(AbiError::UnknownOption(other)),
    };
    if !matches!(option, SocketOption::Destination(_)) && !request.address.is_none() {
        return Err(AbiError::ReservedNotZero);
    }
    Ok(SetOptionView {
        abi_version,
        socket: request.socket,
        option,
    })
}

/// Builds a `SET_OPTION` request.
#[must_use]
pub const fn encode_set_option(socket: u32, option: SocketOption) -> SetOptionRequest {
    let (value, address) = option.wire();
    SetOptionRequest {
        header: RequestHeader::CURRENT,
        socket,
        option: option.id(),
        value,
        reserved: 0,
        address,
    }
}

fn read_header(input: &[u8]) -> Result<RequestHeader, AbiError> {
    RequestHeader::read_from_prefix(input)
        .map(|(header, _)| header)
        .map_err(|_| AbiError::InputTooShort {
            needed: size_of::<RequestHeader>(),
            got: input.len(),
        })
}

/// Validates a `CLOSE_SOCKET` input buffer and returns its ABI version and the handle.
///
/// # Errors
/// Size, version or reserved-field problems.
pub fn parse_close_socket(input: &[u8]) -> Result<(u32, u32), AbiError> {
    let request = read_exact::<CloseSocketRequest>(input)?;
    let abi_version = request.header.check(1)?;
    if request.reserved != 0 {
        return Err(AbiError::ReservedNotZero);
    }
    Ok((abi_version, request.socket))
}

/// Validates a `QUERY_STATS` input buffer (a request ABI 2 introduced) and returns its version.
///
/// # Errors
/// Size, version or reserved-field problems.
pub fn parse_query_stats(input: &[u8]) -> Result<u32, AbiError> {
    read_exact::<StatsRequest>(input)?
        .header
        .check(Ioctl::QueryStats.introduced())
}

/// Builds a `QUERY_STATS` request.
#[must_use]
pub const fn encode_query_stats() -> StatsRequest {
    StatsRequest {
        header: RequestHeader::CURRENT,
    }
}

/// Rewrites the ABI version in an encoded request's header (its first four bytes), for a
/// client speaking an older version whose layouts are the same.
pub fn set_request_version(request: &mut [u8], version: u32) {
    if let Some(field) = request.get_mut(..4) {
        field.copy_from_slice(&version.to_ne_bytes());
    }
}

/// Builds a `CLOSE_SOCKET` request.
#[must_use]
pub const fn encode_close_socket(socket: u32) -> CloseSocketRequest {
    CloseSocketRequest {
        header: RequestHeader::CURRENT,
        socket,
        reserved: 0,
    }
}

fn read_exact<T: FromBytes>(input: &[u8]) -> Result<T, AbiError> {
    let needed = size_of::<T>();
    if input.len() < needed {
        return Err(AbiError::InputTooShort {
            needed,
            got: input.len(),
        });
    }
    if input.len() != needed {
        return Err(AbiError::InputLengthMismatch {
            expected: needed,
            got: input.len(),
        });
    }
    T::read_from_bytes(input).map_err(|_| AbiError::InputLengthMismatch {
        expected: needed,
        got: input.len(),
    })
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    extern crate std;
    use std::{vec, vec::Vec};

    use proptest::prelude::*;

    use super::*;
    use crate::status::{
        STATUS_INFO_LENGTH_MISMATCH, STATUS_INVALID_ADDRESS_COMPONENT, STATUS_INVALID_BUFFER_SIZE,
        STATUS_INVALID_PARAMETER, STATUS_REVISION_MISMATCH,
    };

    fn spec() -> SendSpec {
        SendSpec {
            socket: 7,
            remote: Some("127.0.0.1:4000".parse().unwrap()),
            source: Some("127.0.0.2".parse().unwrap()),
            tos: Some(0xb8),
            ecn: Some(Ecn::Ect0),
            uso_segment_size: Some(100),
            source_ifindex: Some(5),
            count: 3,
        }
    }

    fn encode(spec: &SendSpec, segments: &[u32], payload: &[u8]) -> Result<Vec<u8>, AbiError> {
        let mut out = vec![0; send_request_len(segments.len(), payload.len()).unwrap()];
        let n = encode_send(spec, segments, payload, &mut out)?;
        assert_eq!(n, out.len());
        Ok(out)
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let payload: Vec<u8> = (0..=255).collect();
        let bytes = encode(&spec(), &[1, 55, 200], &payload).unwrap();
        let view = parse_send(&bytes).unwrap();
        assert_eq!(view.spec, spec());
        assert_eq!(view.payload, &payload[..]);
        assert_eq!(view.segment_lengths().collect::<Vec<_>>(), [1, 55, 200]);
        assert_eq!(view.segment_count(), 3);
    }

    fn encode_direct(spec: &SendSpec, segments: &[u32], len: usize) -> Vec<u8> {
        let mut out = vec![0; send_request_len(segments.len(), 0).unwrap()];
        let n = encode_send_direct(spec, segments, len, &mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn send_direct_carries_no_payload_and_takes_the_output_length() {
        let bytes = encode_direct(&spec(), &[1, 55, 200], 256);
        assert_eq!(bytes.len(), send_request_len(3, 0).unwrap());
        let view = parse_send_direct(&bytes, 256).unwrap();
        assert_eq!(view.spec, spec());
        assert!(view.payload.is_empty());
        assert_eq!(view.payload_len, 256);
        assert_eq!(view.segment_lengths().collect::<Vec<_>>(), [1, 55, 200]);
        // No segments: one, the whole output buffer.
        let view_bytes = encode_direct(&spec(), &[], 1000);
        let view = parse_send_direct(&view_bytes, 1000).unwrap();
        assert_eq!(view.segment_lengths().collect::<Vec<_>>(), [1000]);
    }

    #[test]
    fn send_direct_refuses_a_mismatch_a_payload_and_version_1() {
        let bytes = encode_direct(&spec(), &[], 256);
        assert_eq!(
            parse_send_direct(&bytes, 255),
            Err(AbiError::DirectLengthMismatch {
                payload: 256,
                output: 255
            })
        );
        assert_eq!(
            parse_send_direct(&bytes, 255).unwrap_err().status(),
            STATUS_INVALID_BUFFER_SIZE
        );
        // A SEND's payload bytes after the segments are not a SEND_DIRECT.
        let with_payload = encode(&spec(), &[], &[9; 256]).unwrap();
        assert!(parse_send_direct(&with_payload, 256).is_err());
        // Introduced in ABI 2.
        let mut old = encode_direct(
            &SendSpec {
                source_ifindex: None,
                ..spec()
            },
            &[],
            256,
        );
        set_request_version(&mut old, 1);
        assert_eq!(
            parse_send_direct(&old, 256).unwrap_err().status(),
            STATUS_REVISION_MISMATCH
        );
    }

    #[test]
    fn no_segments_means_one_segment() {
        let bytes = encode(&spec(), &[], b"hello").unwrap();
        let view = parse_send(&bytes).unwrap();
        assert_eq!(view.segment_lengths().collect::<Vec<_>>(), [5]);
        assert_eq!(view.segment_lengths().len(), 1);
    }

    #[test]
    fn versions_outside_the_served_range_are_refused() {
        let good = encode(&spec(), &[2, 3], b"hello").unwrap();
        for version in [0, crate::ABI_OLDEST - 1, crate::ABI_VERSION + 1, u32::MAX] {
            let mut bytes = good.clone();
            set_request_version(&mut bytes, version);
            let error = parse_send(&bytes).unwrap_err();
            assert_eq!(error, AbiError::VersionMismatch { got: version });
            assert_eq!(error.status(), STATUS_REVISION_MISMATCH);
        }
        // Version 1 knows no source interface; everything else of this request is version 1.
        let v1 = encode(
            &SendSpec {
                source_ifindex: None,
                ..spec()
            },
            &[2, 3],
            b"hello",
        )
        .unwrap();
        for version in crate::ABI_OLDEST..=crate::ABI_VERSION {
            let mut bytes = v1.clone();
            set_request_version(&mut bytes, version);
            assert_eq!(parse_send(&bytes).unwrap().abi_version, version);
        }
        let mut bytes = good;
        set_request_version(&mut bytes, 1);
        assert_eq!(
            parse_send(&bytes),
            Err(AbiError::UnknownFlags(SendRequest::FLAG_SOURCE_IFINDEX))
        );
        // Version 2 may leave the destination to the socket; version 1 may not.
        let mut no_remote = encode(
            &SendSpec {
                remote: None,
                source_ifindex: None,
                ..spec()
            },
            &[],
            b"x",
        )
        .unwrap();
        assert_eq!(parse_send(&no_remote).unwrap().spec.remote, None);
        set_request_version(&mut no_remote, 1);
        assert!(matches!(
            parse_send(&no_remote),
            Err(AbiError::UnsupportedFamily(0))
        ));
        // A request ABI 2 introduced refuses a version-1 header.
        let mut stats = encode_query_stats();
        stats.header.abi_version = 1;
        assert_eq!(
            parse_query_stats(stats.as_bytes()),
            Err(AbiError::VersionMismatch { got: 1 })
        );
        assert_eq!(parse_query_stats(encode_query_stats().as_bytes()), Ok(2));
    }

    #[test]
    fn each_rule_has_its_status() {
        let good = encode(&spec(), &[2, 3], b"hello").unwrap();
        let with = |f: &mut dyn FnMut(&mut SendRequest)| {
            let mut bytes = good.clone();
            let (fixed, _) = SendRequest::mut_from_prefix(&mut bytes).unwrap();
            f(fixed);
            parse_send(&bytes).map(|_| ())
        };
        let cases: Vec<(AbiError, i32)> = vec![
            (
                with(&mut |r| {
                    r.flags &= !SendRequest::FLAG_SOURCE_IFINDEX;
                })
                .unwrap_err(),
                STATUS_INVALID_PARAMETER,
            ),
            (
                with(&mut |r| r.flags |= 1 << 9).unwrap_err(),
                STATUS_INVALID_PARAMETER,
            ),
            (
                with(&mut |r| r.remote.port = 0).unwrap_err(),
                STATUS_INVALID_ADDRESS_COMPONENT,
            ),
            (
                with(&mut |r| r.remote.family = 10).unwrap_err(),
                STATUS_INVALID_ADDRESS_COMPONENT,
            ),
            (
                with(&mut |r| r.source.port = 1).unwrap_err(),
                STATUS_INVALID_ADDRESS_COMPONENT,
            ),
            (
                with(&mut |r| r.ecn = 4).unwrap_err(),
                STATUS_INVALID_PARAMETER,
            ),
            (
                with(&mut |r| r.count = 0).unwrap_err(),
                STATUS_INVALID_PARAMETER,
            ),
            (
                with(&mut |r| r.count = MAX_COUNT + 1).unwrap_err(),
                STATUS_INVALID_PARAMETER,
            ),
            (
                with(&mut |r| r.uso_segment_size = 0).unwrap_err(),
                STATUS_INVALID_PARAMETER,
            ),
            (
                with(&mut |r| r.segment_count = MAX_SEGMENTS + 1).unwrap_err(),
                STATUS_INVALID_BUFFER_SIZE,
            ),
            (
                with(&mut |r| r.payload_len = 4).unwrap_err(),
                STATUS_INFO_LENGTH_MISMATCH,
            ),
            (
                with(&mut |r| r.payload_len = MAX_PAYLOAD + 1).unwrap_err(),
                STATUS_INVALID_BUFFER_SIZE,
            ),
            (
                with(&mut |r| r.payload_len = 0).unwrap_err(),
                STATUS_INVALID_BUFFER_SIZE,
            ),
            (
                with(&mut |r| r.flags &= !SendRequest::FLAG_TOS).unwrap_err(),
                STATUS_INVALID_PARAMETER,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error}");
        }
        // Segments that do not add up, and a zero-length segment.
        assert_eq!(
            encode(&spec(), &[2, 2], b"hello").unwrap_err(),
            AbiError::SegmentSumMismatch { sum: 4, payload: 5 }
        );
        assert_eq!(
            encode(&spec(), &[5, 0], b"hello").unwrap_err(),
            AbiError::ZeroLengthSegment { index: 1 }
        );
        // Source family must match the destination.
        let mut mixed = spec();
        mixed.source = Some("::1".parse().unwrap());
        assert_eq!(
            encode(&mixed, &[], b"x").unwrap_err(),
            AbiError::SourceFamilyMismatch
        );
        // Trailing bytes are refused, and so is a truncated request.
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            parse_send(&long),
            Err(AbiError::InputLengthMismatch { .. })
        ));
        assert!(matches!(
            parse_send(&good[..10]),
            Err(AbiError::InputTooShort {
                needed: 88,
                got: 10
            })
        ));
    }

    #[test]
    fn sources_follow_the_route_family_and_are_unicast() {
        let with_source = |source: &str, remote: &str| {
            let spec = SendSpec {
                source: Some(source.parse().unwrap()),
                remote: Some(remote.parse().unwrap()),
                source_ifindex: None,
                ..spec()
            };
            encode(&spec, &[], b"x").map(|_| ())
        };
        // A v4-mapped source travels as IPv4, like a v4-mapped destination.
        assert_eq!(with_source("::ffff:127.0.0.2", "127.0.0.1:9"), Ok(()));
        assert_eq!(with_source("127.0.0.2", "[::ffff:127.0.0.1]:9"), Ok(()));
        assert_eq!(
            with_source("::1", "127.0.0.1:9"),
            Err(AbiError::SourceFamilyMismatch)
        );
        for source in ["0.0.0.0", "224.0.0.1", "::", "ff02::1", "::ffff:224.0.0.1"] {
            let remote = if source.contains(':') && !source.contains("ffff") {
                "[::1]:9"
            } else {
                "127.0.0.1:9"
            };
            let refused = with_source(source, remote).unwrap_err();
            assert_eq!(refused, AbiError::SourceNotUnicast, "{source}");
            assert_eq!(refused.status(), STATUS_INVALID_ADDRESS_COMPONENT);
        }
    }

    #[test]
    fn interface_indexes_fit_the_ipv4_options_24_bits() {
        for option in [
            SocketOption::UnicastInterface(0x00FF_FFFF),
            SocketOption::MulticastInterface(1),
        ] {
            assert!(parse_set_option(encode_set_option(1, option).as_bytes()).is_ok());
        }
        let too_wide = encode_set_option(1, SocketOption::UnicastInterface(0x0100_0000));
        assert_eq!(
            parse_set_option(too_wide.as_bytes()),
            Err(AbiError::OptionValueOutOfRange {
                option: 6,
                value: 0x0100_0000
            })
        );
    }

    #[test]
    fn socket_options_round_trip_and_refuse_bad_values() {
        let destination: SocketAddr = "[::1]:9".parse().unwrap();
        for option in [
            SocketOption::HopLimit(1),
            SocketOption::HopLimit(255),
            SocketOption::Broadcast(true),
            SocketOption::MulticastInterface(7),
            SocketOption::MulticastHopLimit(0),
            SocketOption::MulticastLoop(false),
            SocketOption::UnicastInterface(0),
            SocketOption::DontFragment(true),
            SocketOption::Destination(destination),
        ] {
            let request = encode_set_option(3, option);
            let view = parse_set_option(request.as_bytes()).unwrap();
            assert_eq!((view.socket, view.option), (3, option));
        }
        let with = |f: &dyn Fn(&mut SetOptionRequest)| {
            let mut request = encode_set_option(3, SocketOption::HopLimit(4));
            f(&mut request);
            parse_set_option(request.as_bytes())
        };
        assert_eq!(
            with(&|r| r.value = 0),
            Err(AbiError::OptionValueOutOfRange {
                option: 1,
                value: 0
            })
        );
        assert_eq!(
            with(&|r| r.value = 256),
            Err(AbiError::OptionValueOutOfRange {
                option: 1,
                value: 256
            })
        );
        assert_eq!(with(&|r| r.option = 99), Err(AbiError::UnknownOption(99)));
        assert_eq!(
            with(&|r| r.address = WireAddr::from_socket_addr(destination)),
            Err(AbiError::ReservedNotZero)
        );
        assert_eq!(
            with(&|r| r.header.abi_version = 1),
            Err(AbiError::VersionMismatch { got: 1 })
        );
        let mut zero_port = encode_set_option(3, SocketOption::Destination(destination));
        zero_port.address.port = 0;
        assert_eq!(
            parse_set_option(zero_port.as_bytes()),
            Err(AbiError::ZeroPort)
        );
        assert_eq!(
            AbiError::OptionValueOutOfRange {
                option: 1,
                value: 0
            }
            .status(),
            STATUS_INVALID_PARAMETER
        );
    }

    #[test]
    fn open_and_close_requests() {
        let local: SocketAddr = "[::1]:0".parse().unwrap();
        let open = encode_open_socket(local);
        assert_eq!(parse_open_socket(open.as_bytes()).unwrap().local, local);
        assert!(matches!(
            parse_open_socket(&open.as_bytes()[..39]),
            Err(AbiError::InputLengthMismatch { .. })
        ));
        assert!(matches!(
            parse_open_socket(&open.as_bytes()[..4]),
            Err(AbiError::InputTooShort { .. })
        ));
        // Version 1's layout: 32 bytes, no flags.
        let mut v1 = encode_open_socket(local);
        v1.header.abi_version = 1;
        let view = parse_open_socket(v1.bytes_for_version(1)).unwrap();
        assert_eq!(
            (view.abi_version, view.local, view.dual_stack),
            (1, local, false)
        );
        assert!(matches!(
            parse_open_socket(v1.as_bytes()),
            Err(AbiError::InputLengthMismatch {
                expected: 32,
                got: 40
            })
        ));
        let dual = encode_open_socket_with(local, OpenSocketRequest::FLAG_DUAL_STACK);
        assert!(parse_open_socket(dual.as_bytes()).unwrap().dual_stack);
        let v4 = encode_open_socket_with(
            "0.0.0.0:0".parse().unwrap(),
            OpenSocketRequest::FLAG_DUAL_STACK,
        );
        assert_eq!(
            parse_open_socket(v4.as_bytes()),
            Err(AbiError::DualStackNeedsIpv6)
        );
        let unknown = encode_open_socket_with(local, 1 << 7);
        assert_eq!(
            parse_open_socket(unknown.as_bytes()),
            Err(AbiError::UnknownFlags(1 << 7))
        );
        let close = encode_close_socket(9);
        assert_eq!(
            parse_close_socket(close.as_bytes()),
            Ok((crate::ABI_VERSION, 9))
        );
        let mut bytes = close.as_bytes().to_vec();
        bytes.push(0);
        assert_eq!(
            parse_close_socket(&bytes),
            Err(AbiError::InputLengthMismatch {
                expected: 16,
                got: 17
            })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_send(&bytes);
            let _ = parse_open_socket(&bytes);
            let _ = parse_close_socket(&bytes);
        }

        #[test]
        fn valid_requests_round_trip(
            payload in proptest::collection::vec(any::<u8>(), 1..2000),
            cuts in proptest::collection::vec(any::<u16>(), 0..8),
            v6 in any::<bool>(),
            port in 1..=u16::MAX,
            count in 1..=MAX_COUNT,
            tos in proptest::option::of(any::<u8>()),
            ecn in proptest::option::of(0_u8..4),
        ) {
            // Split the payload at sorted, distinct cut points.
            let mut points: Vec<usize> = cuts.iter().map(|c| *c as usize % payload.len()).filter(|p| *p > 0).collect();
            points.sort_unstable();
            points.dedup();
            let mut segments = Vec::new();
            let mut last = 0;
            for p in points.iter().copied().chain([payload.len()]) {
                segments.push(u32::try_from(p - last).unwrap());
                last = p;
            }
            let remote: SocketAddr = if v6 { (core::net::Ipv6Addr::LOCALHOST, port).into() } else { (core::net::Ipv4Addr::LOCALHOST, port).into() };
            let spec = SendSpec { socket: 1, remote: Some(remote), source: None, tos, ecn: ecn.and_then(Ecn::from_bits), uso_segment_size: None, source_ifindex: None, count };
            let bytes = encode(&spec, &segments, &payload).unwrap();
            let view = parse_send(&bytes).unwrap();
            prop_assert_eq!(view.spec, spec);
            prop_assert_eq!(view.payload, &payload[..]);
            prop_assert_eq!(view.segment_lengths().collect::<Vec<_>>(), segments);
        }

        #[test]
        fn any_single_byte_change_is_caught_or_harmless(index in 0_usize..100, value in any::<u8>()) {
            let mut bytes = encode(&spec(), &[2, 3], b"hello").unwrap();
            let index = index % bytes.len();
            bytes[index] = value;
            match parse_send(&bytes) {
                // A change that still parses must describe a consistent request.
                Ok(view) => {
                    let sum: u64 = view.segment_lengths().map(u64::from).sum();
                    prop_assert_eq!(sum, view.payload.len() as u64);
                }
                Err(error) => prop_assert!(error.status() < 0),
            }
        }
    }
}
