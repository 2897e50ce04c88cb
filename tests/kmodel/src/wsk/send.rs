//! What a Windows stack makes of one datagram: its destination and control buffer, read with
//! the model's own decoder ([`super::wire`]) under the profile's rules, as a [`Plan`] the
//! Linux side carries out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_PARAMETER,
};

use super::wire::{self, Cmsg, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_UDP};
use crate::profile::Profile;
use crate::state;

/// Largest UDP payload in one IPv4 datagram: 65535 - 20 (IPv4 header) - 8 (UDP header).
pub(crate) const MAX_IPV4_PAYLOAD: usize = 65_507;
/// Largest UDP payload in one IPv6 datagram without a jumbogram: 65535 (payload length) - 8.
pub(crate) const MAX_IPV6_PAYLOAD: usize = 65_527;

/// One datagram (or USO batch) as the stack will send it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Where to: the socket's family (a v4-mapped IPv6 address on a dual-stack socket).
    pub(crate) destination: SocketAddr,
    /// It leaves as IPv4 (an `AF_INET` socket, or a v4-mapped destination).
    pub(crate) ipv4: bool,
    /// Source address (`IN_PKTINFO` / `IN6_PKTINFO`).
    pub(crate) source: Option<IpAddr>,
    /// Outgoing interface (the `PKTINFO` index, when not zero).
    pub(crate) ifindex: Option<u32>,
    /// The TOS byte / traffic class, ECN folded in.
    pub(crate) class: Option<u8>,
    /// TTL / hop limit of this datagram.
    pub(crate) hop_limit: Option<u8>,
    /// USO segment size, when the payload is longer than one segment.
    pub(crate) segment_size: Option<u16>,
}

/// What one control message asks for, once read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    Source(IpAddr, u32),
    Class(u8),
    Ecn(u8),
    HopLimit(u8),
    Segment(u32),
    Nothing,
}

/// The IP version a control message's level belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
    Any,
}

/// Reads one message by the profile's rules: what it asks for on a datagram of `ipv4`, or
/// the status the send fails with.
fn read(message: &Cmsg<'_>, ipv4: bool, profile: Profile) -> Result<Ask, NTSTATUS> {
    use wire::{
        IP_ECN, IP_OPTIONS, IP_PKTINFO, IP_TOS, IP_WFP_REDIRECT_RECORDS, IPV6_ECN, IPV6_HOPLIMIT,
        IPV6_PKTINFO, IPV6_RTHDR, IPV6_TCLASS, IPV6_WFP_REDIRECT_RECORDS, UDP_SEND_MSG_SIZE,
    };
    let bad = Err(STATUS_INVALID_PARAMETER);
    let data = message.data;
    let int = || wire::dword(data).map(u32::cast_signed);
    let byte = |range: std::ops::RangeInclusive<i32>| {
        int()
            .filter(|v| range.contains(v))
            .and_then(|v| u8::try_from(v).ok())
    };
    let (family, present) = match (message.level, message.ty) {
        (IPPROTO_IP, IP_PKTINFO) => (Family::V4, true),
        // "Specifies/receives hop limit" (WSAMSG, control data table). No IPv4 counterpart
        // is listed there: an IP_TTL message is a type the stack does not take (inferred).
        (IPPROTO_IPV6, IPV6_PKTINFO | IPV6_HOPLIMIT) => (Family::V6, true),
        (IPPROTO_IP, IP_TOS) | (IPPROTO_IPV6, IPV6_TCLASS) => {
            (family_of(message.level), profile.has_tclass_on_send())
        }
        (IPPROTO_IP, IP_ECN) | (IPPROTO_IPV6, IPV6_ECN) => {
            (family_of(message.level), profile.has_ecn())
        }
        (IPPROTO_UDP, UDP_SEND_MSG_SIZE) => (Family::Any, profile.has_uso()),
        // Zero-length no-ops wireguard-nt appends to every send (commits a81c92d, a58f766).
        (IPPROTO_IP, IP_OPTIONS | IP_WFP_REDIRECT_RECORDS)
        | (IPPROTO_IPV6, IPV6_RTHDR | IPV6_WFP_REDIRECT_RECORDS)
            if data.is_empty() =>
        {
            return Ok(Ask::Nothing);
        }
        // Inferred: a type the stack does not know at all.
        _ => return bad,
    };
    // Inferred: a message for the other IP version is not looked at.
    if (family == Family::V4 && !ipv4) || (family == Family::V6 && ipv4) {
        return Ok(Ask::Nothing);
    }
    if !present {
        return Err(Profile::MISSING_OPTION);
    }
    let ask = match (message.level, message.ty) {
        (IPPROTO_IP, IP_PKTINFO) => {
            wire::in_pktinfo(data).map(|(ip, index)| Ask::Source(IpAddr::V4(ip), index))
        }
        (IPPROTO_IPV6, IPV6_PKTINFO) => {
            wire::in6_pktinfo(data).map(|(ip, index)| Ask::Source(IpAddr::V6(ip), index))
        }
        (_, IP_TOS | IPV6_TCLASS) => byte(0..=255).map(Ask::Class),
        // "Your application isn't allowed to specify the Congestion Encountered (CE) code
        // point when sending datagrams. The send will return with error WSAEINVAL."
        (_, IP_ECN) => byte(0..=2).map(Ask::Ecn),
        (IPPROTO_IPV6, IPV6_HOPLIMIT) => byte(0..=255).map(Ask::HopLimit),
        _ => wire::dword(data).map(Ask::Segment),
    };
    ask.ok_or(STATUS_INVALID_PARAMETER)
}

const fn family_of(level: u32) -> Family {
    if level == IPPROTO_IP {
        Family::V4
    } else {
        Family::V6
    }
}

/// Whether `address` is an IPv4-mapped IPv6 address (`IN6_IS_ADDR_V4MAPPED`,
/// mingw-w64 `ws2tcpip.h:73`).
pub(crate) const fn v4_mapped(address: &SocketAddr) -> Option<Ipv4Addr> {
    match address {
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped(),
        SocketAddr::V4(_) => None,
    }
}

/// Plans one send of `payload_len` bytes to `destination` (already decoded, of the socket's
/// family) with `control` (`ControlInfo`, `ControlInfoLength` bytes).
pub(crate) fn plan(
    destination: SocketAddr,
    control: &[u8],
    payload_len: usize,
    profile: Profile,
) -> Result<Plan, NTSTATUS> {
    let ipv4 = destination.is_ipv4() || v4_mapped(&destination).is_some();
    let walked = wire::walk(control).map_err(|_| STATUS_INVALID_PARAMETER)?;
    if let Some((offset, len)) = walked.stray {
        state::violation(
            "CmsgStrayBytes",
            format!(
                "ControlInfoLength {} leaves {len} byte(s) at {offset} after the last control message (WSA_CMSG_NXTHDR skips them): ControlInfoLength is not the sum of WSA_CMSG_SPACE",
                control.len()
            ),
        );
    }
    let mut plan = Plan {
        destination,
        ipv4,
        source: None,
        ifindex: None,
        class: None,
        hop_limit: None,
        segment_size: None,
    };
    let mut ecn = None;
    for message in &walked.messages {
        // The model's own hygiene rule: Windows documents none. The `WSACMSGHDR` page only says
        // cmsg_len does not count the padding after the data, and msquic leaves that padding
        // uninitialized (a stack `CMsgBuffer`, `datapath_winkernel.c:2889-2893`), so Windows
        // evidently accepts any value there.
        if message.padding.iter().any(|b| *b != 0) {
            state::violation(
                "CmsgPaddingNotZero",
                format!(
                    "control message level {} type {} has non-zero padding (the model's own rule; Windows documents none)",
                    message.level, message.ty
                ),
            );
        }
        // Inferred: a later message of the same type replaces an earlier one.
        match read(message, ipv4, profile)? {
            Ask::Source(ip, index) => {
                plan.source = Some(ip);
                plan.ifindex = (index != 0).then_some(index);
            }
            Ask::Class(class) => plan.class = Some(class),
            Ask::Ecn(codepoint) => ecn = Some(codepoint),
            Ask::HopLimit(hops) => plan.hop_limit = Some(hops),
            Ask::Segment(size) => {
                // One segment (a size of 0 or at least the payload) is refused on some Windows
                // configurations (firezone PR 11580: WSAEINVAL), which is why quinn (PR 2490)
                // and msquic leave the message off then; the model refuses it everywhere.
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size == 0 || size >= payload_len {
                    return Err(STATUS_INVALID_PARAMETER);
                }
                plan.segment_size = Some(u16::try_from(size).unwrap_or(u16::MAX));
            }
            Ask::Nothing => {}
        }
    }
    // ECN is the low two bits of the TOS byte / traffic class (RFC 3168 §5).
    if let Some(ecn) = ecn {
        plan.class = Some((plan.class.unwrap_or(0) & !3) | ecn);
    }
    let max = if ipv4 {
        MAX_IPV4_PAYLOAD
    } else {
        MAX_IPV6_PAYLOAD
    };
    let largest = plan
        .segment_size
        .map_or(payload_len, |size| usize::from(size).min(payload_len));
    if largest > max {
        return Err(STATUS_INVALID_BUFFER_SIZE);
    }
    Ok(plan)
}
