//! One datagram as a send passes it to WSK: its route, control messages, `SOCKADDR`, and the
//! payload in a pooled buffer with its MDL chain.

use core::net::{IpAddr, SocketAddr, SocketAddrV6};
use core::ptr::NonNull;

use wskudp_abi::{DescribeSendResponse, Ecn, SendSpec, feature};

use super::pool::{Payload, PayloadBuffer, SendPool};
use crate::cache::Pooled;
use crate::cmsg::{ControlBuffer, ControlMessage};
use crate::ddi::nt::{MDL, NTSTATUS};
use crate::mdl::DirectMdls;
use crate::sockaddr::SockAddrBuffer;
use crate::sockets::SocketInfo;
use crate::status::{
    STATUS_INVALID_ADDRESS_COMPONENT, STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_PARAMETER,
    STATUS_NOT_SUPPORTED,
};

/// Largest UDP payload over IPv4: 65535 - 20 (IPv4 header) - 8 (UDP header).
const MAX_PAYLOAD_V4: usize = 65_507;
/// The ECN field: the two low bits of the TOS byte / traffic class (RFC 3168).
const ECN_MASK: u8 = 0b11;

/// Where a datagram goes, as the stack sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Route {
    /// The destination.
    destination: SocketAddr,
    /// It travels as IPv4: an IPv4 destination, on an `AF_INET` socket or, v4-mapped, on a
    /// dual-stack `AF_INET6` one.
    ipv4: bool,
}

impl Route {
    /// The route of `destination` from a socket bound to `local`.
    ///
    /// # Errors
    /// `STATUS_INVALID_ADDRESS_COMPONENT` if the socket cannot reach that family: an IPv6
    /// destination from an IPv4 socket, an IPv4 one from an IPv6-only socket.
    const fn of(destination: SocketAddr, socket: &SocketInfo) -> Result<Self, NTSTATUS> {
        let ipv4 = match (socket.local, destination) {
            (SocketAddr::V4(_), SocketAddr::V4(_)) => true,
            (SocketAddr::V6(_), SocketAddr::V6(v6)) => v6.ip().to_ipv4_mapped().is_some(),
            (SocketAddr::V6(_), SocketAddr::V4(_)) if socket.dual_stack() => true,
            _ => return Err(STATUS_INVALID_ADDRESS_COMPONENT),
        };
        if ipv4 && socket.local.is_ipv6() && !socket.dual_stack() {
            // A v4-mapped destination on an IPv6-only socket.
            return Err(STATUS_INVALID_ADDRESS_COMPONENT);
        }
        Ok(Self { destination, ipv4 })
    }

    /// The `SOCKADDR` of the socket's family: an IPv4 destination on an `AF_INET6` socket is
    /// written v4-mapped (`SOCKADDR_IN6`), as the WSK `RemoteAddress` must match the family the
    /// socket was created with.
    fn sockaddr(self, socket: &SocketInfo) -> SockAddrBuffer {
        match (socket.local, self.destination) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => SockAddrBuffer::new(SocketAddr::V6(
                SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
            )),
            (_, destination) => SockAddrBuffer::new(destination),
        }
    }
}

/// The control messages a request asks for on `route`, in the order wskudp always writes them:
/// source address and interface, TOS / traffic class or ECN, USO segment size.
///
/// - The source goes in an `IN_PKTINFO` at `IPPROTO_IP` whenever the datagram travels as IPv4,
///   also from a dual-stack `AF_INET6` socket, and in an `IN6_PKTINFO` otherwise: the rule
///   `WSASendMsg`'s page states for dual-stack sockets (seed 002).
/// - TOS and ECN as msquic's `datapath_winkernel.c` sends them: where the stack takes the TOS
///   byte on send (the socket's [`feature::TOS`] probe), one `IP_TOS` / `IPV6_TCLASS` carries
///   both, ECN in its two low bits, and never `IP_ECN` beside it; elsewhere only `IP_ECN` /
///   `IPV6_ECN` where the stack has ECN ([`feature::ECN`]), and asking for a TOS byte (or ECN
///   without it) is `STATUS_NOT_SUPPORTED`.
/// - ECN CE is never sent: Windows refuses it on send (`WSAEINVAL`, "ECN" Winsock page), so it is
///   `STATUS_INVALID_PARAMETER` here, whether asked as the ECN codepoint or in the TOS byte.
///
/// IRQL: any.
///
/// # Errors
/// `STATUS_INVALID_ADDRESS_COMPONENT` for a source of the other family,
/// `STATUS_INVALID_PARAMETER` for ECN CE, `STATUS_NOT_SUPPORTED` for a TOS byte the stack
/// does not take.
fn control_messages(
    spec: &SendSpec,
    route: Route,
    features: u32,
    payload_len: usize,
) -> Result<impl Iterator<Item = ControlMessage>, NTSTATUS> {
    // The ABI gives an interface only with a source: Windows sends the address as given once
    // ipi_ifindex is set, so an unspecified one would go out as the source (research §1.5).
    let ifindex = spec.source_ifindex.unwrap_or(0);
    // A v4-mapped source is the IPv4 address it maps.
    let source = match (spec.source.as_ref().map(IpAddr::to_canonical), route.ipv4) {
        (None, _) => None,
        (Some(IpAddr::V4(address)), true) => Some(ControlMessage::SourceV4 { address, ifindex }),
        (Some(IpAddr::V6(address)), false) => Some(ControlMessage::SourceV6 { address, ifindex }),
        // A source of the other family than the datagram travels as.
        (Some(_), _) => return Err(STATUS_INVALID_ADDRESS_COMPONENT),
    };
    let v4 = route.ipv4;
    let marking = if features & feature::TOS != 0 {
        // One TOS byte: the requested one, its ECN bits replaced by the ECN codepoint if given.
        let tos = match (spec.tos, spec.ecn) {
            (None, None) => None,
            (tos, ecn) => {
                let tos = tos.unwrap_or(0);
                Some(ecn.map_or(tos, |ecn| (tos & !ECN_MASK) | ecn as u8))
            }
        };
        if tos.is_some_and(|tos| tos & ECN_MASK == Ecn::Ce as u8) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        // All zero is the default: nothing to send (msquic sends nothing then either).
        tos.filter(|tos| *tos != 0).map(|tos| {
            if v4 {
                ControlMessage::TosV4(tos)
            } else {
                ControlMessage::TrafficClassV6(tos)
            }
        })
    } else {
        // No TOS byte on send: a TOS asks for nothing more than ECN when its DSCP bits are
        // zero, and then its ECN bits go as ECN (an explicit ECN codepoint wins).
        let tos = spec.tos.unwrap_or(0);
        if tos & !ECN_MASK != 0 {
            return Err(STATUS_NOT_SUPPORTED);
        }
        let ecn = spec.ecn.or_else(|| Ecn::from_bits(tos & ECN_MASK));
        if ecn == Some(Ecn::Ce) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        if ecn.is_some_and(|ecn| ecn != Ecn::NotEct) && features & feature::ECN == 0 {
            return Err(STATUS_NOT_SUPPORTED);
        }
        ecn.filter(|ecn| *ecn != Ecn::NotEct).map(|ecn| {
            if v4 {
                ControlMessage::EcnV4(ecn)
            } else {
                ControlMessage::EcnV6(ecn)
            }
        })
    };
    // A single segment goes without UDP_SEND_MSG_SIZE: some Windows configurations fail
    // such a send with WSAEINVAL (firezone #11580, quinn #2490).
    let uso = spec
        .uso_segment_size
        .filter(|size| (*size as usize) < payload_len)
        .map(ControlMessage::UdpSendMsgSize);
    Ok(source.into_iter().chain(marking).chain(uso))
}

/// The `SOCKADDR` for `destination` from `socket`, as `SIO_WSK_SET_SENDTO_ADDRESS` and
/// `RemoteAddress` take it (IRQL: any).
///
/// # Errors
/// As [`Route::of`].
pub(crate) fn destination_sockaddr(
    destination: SocketAddr,
    socket: &SocketInfo,
) -> Result<SockAddrBuffer, NTSTATUS> {
    Ok(Route::of(destination, socket)?.sockaddr(socket))
}

/// Validates a send of `payload_len` bytes for `socket` and encodes its control messages and
/// `RemoteAddress` (`None`: the socket's fixed destination). IRQL: any.
///
/// # Errors
/// As [`Datagram::prepare`], but for the buffer.
fn addressed(
    spec: &SendSpec,
    payload_len: usize,
    socket: &SocketInfo,
) -> Result<(ControlBuffer, Option<SockAddrBuffer>), NTSTATUS> {
    let destination = spec
        .remote
        .or(socket.destination)
        .ok_or(STATUS_INVALID_PARAMETER)?;
    let route = Route::of(destination, socket)?;
    // Only a payload of more than one segment needs USO: one segment goes without it.
    let segments = spec
        .uso_segment_size
        .is_some_and(|size| (size as usize) < payload_len);
    if segments && socket.features & feature::USO == 0 {
        return Err(STATUS_NOT_SUPPORTED);
    }
    // The largest datagram that leaves: a USO segment, or the whole payload when USO is not
    // asked for or one segment holds it all (then no UDP_SEND_MSG_SIZE is sent).
    let largest = spec
        .uso_segment_size
        .map_or(payload_len, |size| (size as usize).min(payload_len));
    if route.ipv4 && largest > MAX_PAYLOAD_V4 {
        return Err(STATUS_INVALID_BUFFER_SIZE);
    }
    let mut control = ControlBuffer::new();
    {
        let mut encoder = control.encoder();
        for message in control_messages(spec, route, socket.features, payload_len)? {
            // Cannot fail: the capacity covers every message at once (cmsg.rs asserts it).
            encoder
                .push(&message)
                .map_err(|_| STATUS_INVALID_PARAMETER)?;
        }
    }
    // A request without a destination leaves RemoteAddress NULL: the socket's fixed one.
    Ok((control, spec.remote.map(|_| route.sockaddr(socket))))
}

/// Everything one datagram is made of, validated, with its payload in a buffer of the socket's
/// pool (or the caller's locked pages) and the MDL chain over it.
///
/// IRQL: <= `DISPATCH_LEVEL` (non-paged pool only).
///
/// # Invariants
/// While `payload` is `Some`, `head` is the first MDL of the chain its buffer describes, `len`
/// bytes long; the buffer goes back to its pool ([`Datagram::release`]) only after every send
/// of it completed.
pub(crate) struct Datagram {
    control: ControlBuffer,
    /// `None`: `RemoteAddress` NULL, the socket's fixed destination.
    remote: Option<SockAddrBuffer>,
    payload: Option<Held>,
    head: *mut MDL,
    len: usize,
}

/// Where a datagram's payload lies.
#[allow(
    clippy::large_enum_variant,
    reason = "a datagram lives in its request's pooled batch memory, never on a hot stack"
)]
enum Held {
    /// A buffer of the socket's pool, the request's bytes copied in.
    Pooled(Pooled<PayloadBuffer>),
    /// The caller's own pages, locked by the I/O manager (`SEND_DIRECT`).
    Direct(DirectMdls),
}

// SAFETY: The MDL chain and buffer are non-paged pool owned by this value; sends only read them.
unsafe impl Send for Datagram {}
// SAFETY: As above.
unsafe impl Sync for Datagram {}

/// What a send asks for besides its payload: destination, source, TOS, ECN, USO.
pub(crate) struct Addressing<'a> {
    /// The request's options.
    pub(crate) spec: &'a SendSpec,
    /// MDL lengths (empty: one MDL).
    pub(crate) segments: &'a [u32],
}

impl Datagram {
    /// Validates a send for `socket`, encodes its control messages and destination, and fills
    /// a buffer of `pool` with the payload.
    ///
    /// # Errors
    /// `STATUS_INVALID_PARAMETER` if the request names no destination and the socket has none;
    /// `STATUS_INVALID_ADDRESS_COMPONENT` if the socket cannot reach the destination's family
    /// or the source is of another; `STATUS_NOT_SUPPORTED` for USO of more than one segment on
    /// a socket whose provider lacks it; `STATUS_INVALID_BUFFER_SIZE` for more than an IPv4
    /// datagram holds without USO; `STATUS_INSUFFICIENT_RESOURCES` if no buffer is free and
    /// none can be built.
    pub(crate) fn prepare(
        addressing: &Addressing<'_>,
        payload: Payload<'_>,
        socket: &SocketInfo,
        pool: &SendPool,
    ) -> Result<Self, NTSTATUS> {
        let payload_len = payload.len();
        let (control, remote) = addressed(addressing.spec, payload_len, socket)?;
        let buffer = pool.take_buffer(payload_len)?;
        // SAFETY: Just taken from the pool: ours, nothing in flight over it.
        let filled = unsafe { buffer.fill(payload, addressing.segments.iter().copied()) };
        let head = match filled {
            Ok(head) => head,
            Err(status) => {
                pool.give_buffer(buffer);
                return Err(status);
            }
        };
        // INVARIANT: the chain at `head` describes the `payload_len` bytes just written.
        Ok(Self {
            control,
            remote,
            payload: Some(Held::Pooled(buffer)),
            head,
            len: payload_len,
        })
    }

    /// As [`Datagram::prepare`], for a payload that stays where the caller wrote it: the
    /// `len` bytes the request's locked MDL `source` describes (`METHOD_IN_DIRECT`), split into
    /// partial MDLs as `addressing` asks. Nothing is copied.
    ///
    /// # Errors
    /// As [`Datagram::prepare`].
    ///
    /// # Safety
    /// `source` must be the request's locked MDL, and the request completed only after this
    /// datagram is released.
    pub(crate) unsafe fn prepare_direct(
        addressing: &Addressing<'_>,
        source: NonNull<MDL>,
        len: usize,
        socket: &SocketInfo,
    ) -> Result<Self, NTSTATUS> {
        let (control, remote) = addressed(addressing.spec, len, socket)?;
        // SAFETY: The caller's guarantee.
        let mdls = unsafe { DirectMdls::new(source, addressing.segments.iter().copied())? };
        Ok(Self {
            control,
            remote,
            head: mdls.head(),
            payload: Some(Held::Direct(mdls)),
            len,
        })
    }

    /// The first MDL of the payload's chain.
    pub(crate) const fn head(&self) -> *mut MDL {
        self.head
    }

    /// Payload bytes.
    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    /// The `CMSGHDR` buffer.
    pub(crate) const fn control(&self) -> &ControlBuffer {
        &self.control
    }

    /// `RemoteAddress` (`None`: the socket's fixed destination).
    pub(crate) const fn remote(&self) -> Option<&SockAddrBuffer> {
        self.remote.as_ref()
    }

    /// Pool blocks and bytes the payload holds (for the socket's pool accounting): its pooled
    /// buffer, or nothing for a payload in the caller's own pages.
    pub(crate) fn footprint(&self) -> (u64, usize) {
        match self.payload.as_ref() {
            Some(Held::Pooled(buffer)) => (
                1,
                size_of::<PayloadBuffer>().saturating_add(buffer.capacity()),
            ),
            Some(Held::Direct(_)) | None => (0, 0),
        }
    }

    /// Gives the payload buffer back to `pool` (a direct payload's partial MDLs are freed),
    /// once every send of it completed. IRQL: <= `DISPATCH_LEVEL`.
    pub(crate) fn release(&mut self, pool: &SendPool) {
        self.head = core::ptr::null_mut();
        match self.payload.take() {
            Some(Held::Pooled(buffer)) => pool.give_buffer(buffer),
            Some(Held::Direct(mdls)) => drop(mdls),
            None => {}
        }
    }

    /// What `WskSendTo` would receive, for `DESCRIBE_SEND`: the chain a send uses.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    pub(crate) fn describe(&self) -> DescribeSendResponse {
        let mut response = DescribeSendResponse::default();
        let control = self.control.as_bytes();
        let remote = self
            .remote
            .as_ref()
            .map_or(&[][..], SockAddrBuffer::as_bytes);
        copy_prefix(&mut response.control, control);
        copy_prefix(&mut response.remote, remote);
        if let Some(Held::Pooled(buffer)) = self.payload.as_ref() {
            let mdls = buffer.mdls();
            for (slot, len) in response.mdl_lengths.iter_mut().zip(mdls.byte_counts()) {
                *slot = len;
            }
            response.mdl_count = len_u32(mdls.len());
        }
        response.control_len = len_u32(control.len());
        response.remote_len = len_u32(remote.len());
        response.payload_len = len_u32(self.len);
        response
    }
}

fn copy_prefix(out: &mut [u8], bytes: &[u8]) {
    if let Some(dst) = out.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Lengths here are bounded by the ABI limits (at most `MAX_PAYLOAD`), far below `u32::MAX`.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
