//! `WskControlSocket` on datagram sockets: the options and IOCTLs the model serves, with
//! Windows' parameter rules and their Linux translation.
//!
//! Option semantics are Winsock's (`WskControlSocket`: "The underlying network protocol might
//! support additional socket options"): the `IPPROTO_IP` and `IPPROTO_IPV6` option tables
//! (learn.microsoft.com/windows/win32/winsock/ipproto-ip-socket-options,
//! .../ipproto-ipv6-socket-options, .../ipproto-udp-socket-options), the WSK pages for
//! `SO_BROADCAST` and `SIO_WSK_SET_SENDTO_ADDRESS`, and msquic's kernel datapath
//! (`src/platform/datapath_winkernel.c`), which sets most of them through WSK.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;

use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_BUFFER_TOO_SMALL, STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED,
};

use super::linux;
use super::wire::{
    self, IP_DONTFRAGMENT, IP_ECN, IP_HOPLIMIT, IP_MULTICAST_IF, IP_MULTICAST_LOOP,
    IP_MULTICAST_TTL, IP_PKTINFO, IP_RECVERR, IP_RECVTOS, IP_TOS, IP_TTL, IP_UNICAST_IF,
    IPPROTO_IP, IPPROTO_IPV6, IPPROTO_UDP, IPV6_DONTFRAG, IPV6_ECN, IPV6_HOPLIMIT,
    IPV6_MULTICAST_HOPS, IPV6_MULTICAST_IF, IPV6_MULTICAST_LOOP, IPV6_PKTINFO, IPV6_RECVERR,
    IPV6_RECVTCLASS, IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_UNICAST_IF, IPV6_V6ONLY, SO_BROADCAST,
    SOL_SOCKET, UDP_RECV_MAX_COALESCED_SIZE, UDP_SEND_MSG_SIZE,
};
use crate::profile::Profile;

/// Windows' default TTL and hop limit: 128 (`DefaultTTL`, "Appendix A: TCP/IP Configuration
/// Parameters", technet.microsoft.com/library/cc739819; unchanged through Windows 10 per
/// Pyles, Carrell & Tittel, "Guide to TCP/IP", 5th ed., registry appendix, Table 2).
pub(crate) const DEFAULT_TTL: u32 = 128;

/// An option's `Level` and `ControlCode`.
pub(crate) type Key = (u32, u32);

/// A socket's option state, as `WskGetOption` reports it.
#[derive(Clone, Debug)]
pub(crate) struct OptionState {
    /// `IPV6_V6ONLY` (nonzero by default on Windows: "When this value is nonzero (the default
    /// on Windows)", `IPPROTO_IPV6` options table). Always false on `AF_INET` sockets.
    pub(crate) v6only: bool,
    /// The fixed destination (`SIO_WSK_SET_SENDTO_ADDRESS` / `SIO_WSK_SET_REMOTE_ADDRESS`).
    pub(crate) fixed_destination: Option<SocketAddr>,
    /// Values set through `WskSetOption`, as Windows reports them back.
    values: HashMap<Key, u32>,
}

impl OptionState {
    pub(crate) fn new(v6: bool) -> Self {
        Self {
            v6only: v6,
            fixed_destination: None,
            values: HashMap::new(),
        }
    }
}

/// How an option's DWORD is read and applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// 0 = FALSE, anything else TRUE.
    Bool,
    /// A byte-sized count (TTL, hop limit): at most 255.
    Hops,
    /// `IP_MULTICAST_IF`: an IPv4 address in network order, or an interface index in network
    /// order written as 0.x.x.x.
    Multicast4If,
    /// `IP_UNICAST_IF`: an interface index in network order (reported in host order).
    NetOrderIndex,
    /// An interface index in host order.
    Index,
    /// `IPV6_TCLASS`: a traffic class with ECN bits zero.
    TrafficClass,
    /// Any DWORD.
    Dword,
}

/// What the option does on the model's Linux socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// The same value through this Linux `(level, name)` (an `int`).
    Linux(libc::c_int, libc::c_int),
    /// A host-order index through a Linux option that takes it in network order.
    LinuxNetOrder(libc::c_int, libc::c_int),
    /// `IP_MULTICAST_IF` through `ip_mreqn` or `in_addr`.
    Multicast4If,
    /// `IP_DONTFRAGMENT` as `IP_MTU_DISCOVER` `IP_PMTUDISC_DO` / `IP_PMTUDISC_DONT`.
    DontFragment,
    /// Kept for `WskGetOption` only: receive-side options (the model does not receive), and
    /// options Windows accepts without effect.
    Stored,
}

/// One option the model serves.
#[derive(Clone, Copy, Debug)]
struct Spec {
    key: Key,
    kind: Kind,
    /// Only on `AF_INET6` sockets (`IPPROTO_IPV6` options). `IPPROTO_IP` options also apply
    /// to the IPv4 side of a dual-stack socket: msquic sets `IP_DONTFRAGMENT`, `IP_PKTINFO`
    /// and `IP_UNICAST_IF` on its `AF_INET6` socket (datapath_winkernel.c:1417-1707).
    v6_only: bool,
    effect: Effect,
    default: u32,
}

const fn spec(key: Key, kind: Kind, effect: Effect, default: u32) -> Spec {
    Spec {
        key,
        kind,
        v6_only: key.0 == IPPROTO_IPV6,
        effect,
        default,
    }
}

/// The options the model serves.
const SPECS: &[Spec] = &[
    // WSK `SO_BROADCAST` page: ULONG 0/1, "the default ... broadcast messages are not allowed".
    spec(
        (SOL_SOCKET, SO_BROADCAST),
        Kind::Bool,
        Effect::Linux(libc::SOL_SOCKET, libc::SO_BROADCAST),
        0,
    ),
    spec(
        (IPPROTO_IP, IP_TTL),
        Kind::Hops,
        Effect::Linux(libc::IPPROTO_IP, libc::IP_TTL),
        DEFAULT_TTL,
    ),
    // "It is illegal to set the TTL to a value greater than 255."
    spec(
        (IPPROTO_IPV6, IPV6_UNICAST_HOPS),
        Kind::Hops,
        Effect::Linux(libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
        DEFAULT_TTL,
    ),
    spec(
        (IPPROTO_IP, IP_MULTICAST_IF),
        Kind::Multicast4If,
        Effect::Multicast4If,
        0,
    ),
    spec(
        (IPPROTO_IP, IP_MULTICAST_TTL),
        Kind::Hops,
        Effect::Linux(libc::IPPROTO_IP, libc::IP_MULTICAST_TTL),
        1,
    ),
    // Receiver-side on Windows: "the option must be set on the receiving socket; while the
    // POSIX option must be set on the sending socket" (IPPROTO_IP table); IPv6: "echoed to
    // the sockets receive buffer". The sending Linux socket keeps looping back.
    spec(
        (IPPROTO_IP, IP_MULTICAST_LOOP),
        Kind::Bool,
        Effect::Stored,
        1,
    ),
    spec(
        (IPPROTO_IPV6, IPV6_MULTICAST_LOOP),
        Kind::Bool,
        Effect::Stored,
        1,
    ),
    spec(
        (IPPROTO_IPV6, IPV6_MULTICAST_IF),
        Kind::Index,
        Effect::Linux(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF),
        0,
    ),
    spec(
        (IPPROTO_IPV6, IPV6_MULTICAST_HOPS),
        Kind::Hops,
        Effect::Linux(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS),
        1,
    ),
    // Linux's IP_UNICAST_IF also takes the index in network order (ip_setsockopt: ntohl).
    spec(
        (IPPROTO_IP, IP_UNICAST_IF),
        Kind::NetOrderIndex,
        Effect::Linux(libc::IPPROTO_IP, libc::IP_UNICAST_IF),
        0,
    ),
    // Linux's IPV6_UNICAST_IF takes network order too (ipv6_setsockopt: ntohl), Windows'
    // host order.
    spec(
        (IPPROTO_IPV6, IPV6_UNICAST_IF),
        Kind::Index,
        Effect::LinuxNetOrder(libc::IPPROTO_IPV6, libc::IPV6_UNICAST_IF),
        0,
    ),
    // "data should not be fragmented regardless of the local MTU ... respect[ed] for UDP".
    spec(
        (IPPROTO_IP, IP_DONTFRAGMENT),
        Kind::Bool,
        Effect::DontFragment,
        0,
    ),
    spec(
        (IPPROTO_IPV6, IPV6_DONTFRAG),
        Kind::Bool,
        Effect::Linux(libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG),
        0,
    ),
    // WSASetUdpSendMessageSize: a socket-wide segment size, 0 = none.
    spec(
        (IPPROTO_UDP, UDP_SEND_MSG_SIZE),
        Kind::Dword,
        Effect::Linux(libc::SOL_UDP, libc::UDP_SEGMENT),
        0,
    ),
    // msquic probes it with a value whose ECN bits are 0 (datapath_winkernel.c:596); with
    // ECN bits set "would always error" (msquic PR #5130, commit e08fd6e).
    spec(
        (IPPROTO_IPV6, IPV6_TCLASS),
        Kind::TrafficClass,
        Effect::Linux(libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
        0,
    ),
    // "Do not use" (IPPROTO_IP table); msquic: "IPv4 just fails silently"
    // (datapath_winuser.c:546).
    spec((IPPROTO_IP, IP_TOS), Kind::Dword, Effect::Stored, 0),
    // Receive-side: the model does not receive.
    spec((IPPROTO_IP, IP_PKTINFO), Kind::Bool, Effect::Stored, 0),
    spec((IPPROTO_IPV6, IPV6_PKTINFO), Kind::Bool, Effect::Stored, 0),
    spec((IPPROTO_IP, IP_ECN), Kind::Bool, Effect::Stored, 0),
    spec((IPPROTO_IPV6, IPV6_ECN), Kind::Bool, Effect::Stored, 0),
    spec((IPPROTO_IP, IP_RECVTOS), Kind::Bool, Effect::Stored, 0),
    spec(
        (IPPROTO_IPV6, IPV6_RECVTCLASS),
        Kind::Bool,
        Effect::Stored,
        0,
    ),
    spec((IPPROTO_IP, IP_HOPLIMIT), Kind::Bool, Effect::Stored, 0),
    spec((IPPROTO_IPV6, IPV6_HOPLIMIT), Kind::Bool, Effect::Stored, 0),
    spec((IPPROTO_IP, IP_RECVERR), Kind::Bool, Effect::Stored, 0),
    spec((IPPROTO_IPV6, IPV6_RECVERR), Kind::Bool, Effect::Stored, 0),
    spec(
        (IPPROTO_UDP, UDP_RECV_MAX_COALESCED_SIZE),
        Kind::Dword,
        Effect::Stored,
        0,
    ),
];

fn find(key: Key) -> Option<&'static Spec> {
    SPECS.iter().find(|spec| spec.key == key)
}

/// A `WskControlSocket` call, as far as it can be judged before its buffers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Set(Key),
    Get(Key),
    /// `SIO_WSK_SET_SENDTO_ADDRESS` / `SIO_WSK_SET_REMOTE_ADDRESS`.
    FixDestination,
}

/// What to do once the buffers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Set {
        key: Key,
        value: u32,
    },
    Get {
        key: Key,
    },
    /// `None` clears.
    FixDestination(Option<SocketAddr>),
}

/// What a socket is when the call is made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketFacts {
    pub(crate) v6: bool,
    pub(crate) bound: bool,
}

/// The checks made when the call is made: the status to fail with, or `Ok` to go on.
pub(crate) fn check(call: Call, facts: SocketFacts, profile: Profile) -> Result<(), NTSTATUS> {
    let key = match call {
        Call::Set(key) | Call::Get(key) => key,
        // "it must do so after the datagram socket has been bound"; status inferred (a
        // user-mode call on an unbound socket gives WSAEINVAL).
        Call::FixDestination => {
            return if facts.bound {
                Ok(())
            } else {
                Err(STATUS_INVALID_PARAMETER)
            };
        }
    };
    if key == (IPPROTO_IPV6, IPV6_V6ONLY) {
        if !facts.v6 {
            return Err(STATUS_NOT_SUPPORTED);
        }
        // Dual-stack sockets: "the IPV6_V6ONLY socket option must be set to zero before the
        // socket is bound" (win32 dual-stack-sockets.md); status inferred.
        if matches!(call, Call::Set(_)) && facts.bound {
            return Err(STATUS_INVALID_PARAMETER);
        }
        return Ok(());
    }
    let Some(spec) = find(key) else {
        // Inferred: which status tcpip gives an option it does not have is not documented.
        return Err(STATUS_NOT_SUPPORTED);
    };
    if spec.v6_only && !facts.v6 {
        return Err(STATUS_NOT_SUPPORTED);
    }
    if !profile.has_socket_option(key) {
        return Err(Profile::MISSING_SOCKET_OPTION);
    }
    Ok(())
}

/// The value check of `WskSetOption`, once the input is read (status inferred).
pub(crate) fn check_value(key: Key, value: u32) -> Result<(), NTSTATUS> {
    let kind = find(key).map_or(Kind::Bool, |spec| spec.kind);
    let valid = match kind {
        Kind::Hops => value <= 255,
        Kind::TrafficClass => value <= 255 && value.trailing_zeros() >= 2,
        Kind::Bool | Kind::Multicast4If | Kind::NetOrderIndex | Kind::Index | Kind::Dword => true,
    };
    if valid {
        Ok(())
    } else {
        Err(STATUS_INVALID_PARAMETER)
    }
}

/// The input size rule: a DWORD (`SO_BROADCAST`: "`InputSize` sizeof(ULONG)"; every option
/// table lists DWORD). Shorter is refused (status inferred: user mode gives WSAEFAULT).
pub(crate) const fn input_ok(size: usize) -> Result<(), NTSTATUS> {
    if size < wire::INT_LEN {
        Err(STATUS_INVALID_PARAMETER)
    } else {
        Ok(())
    }
}

/// The output size rule for `WskGetOption` (status inferred).
pub(crate) const fn output_ok(size: usize) -> Result<(), NTSTATUS> {
    if size < wire::INT_LEN {
        Err(STATUS_BUFFER_TOO_SMALL)
    } else {
        Ok(())
    }
}

/// Carries out a checked request on the socket (at completion): the DWORD `WskGetOption`
/// returns, if any.
pub(crate) fn apply(
    fd: RawFd,
    state: &mut OptionState,
    request: Request,
) -> Result<Option<u32>, NTSTATUS> {
    match request {
        Request::FixDestination(address) => {
            state.fixed_destination = address;
            Ok(None)
        }
        Request::Get { key } => Ok(Some(get(state, key))),
        Request::Set { key, value } if key == (IPPROTO_IPV6, IPV6_V6ONLY) => {
            linux::set_int(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                i32::from(value != 0),
            )?;
            state.v6only = value != 0;
            Ok(None)
        }
        Request::Set { key, value } => {
            let spec = find(key).ok_or(STATUS_NOT_SUPPORTED)?;
            match spec.effect {
                Effect::Linux(level, name) => {
                    let value = match spec.kind {
                        Kind::Bool => i32::from(value != 0),
                        _ => value.cast_signed(),
                    };
                    linux::set_int(fd, level, name, value)?;
                }
                Effect::LinuxNetOrder(level, name) => {
                    linux::set_int(fd, level, name, i32::from_ne_bytes(value.to_be_bytes()))?;
                }
                Effect::Multicast4If => {
                    let octets = value.to_le_bytes();
                    if octets[0] == 0 && value != 0 {
                        linux::set_multicast_if_index(fd, u32::from_be_bytes(octets))?;
                    } else {
                        linux::set_multicast_if_address(fd, Ipv4Addr::from(octets))?;
                    }
                }
                Effect::DontFragment => {
                    let mode = if value == 0 {
                        libc::IP_PMTUDISC_DONT
                    } else {
                        libc::IP_PMTUDISC_DO
                    };
                    linux::set_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode)?;
                }
                Effect::Stored => {}
            }
            let reported = match spec.kind {
                Kind::Bool => u32::from(value != 0),
                // "When getting this option, the optval returns the current default interface
                // index ... in host byte order."
                Kind::NetOrderIndex => u32::from_be_bytes(value.to_le_bytes()),
                Kind::Multicast4If => {
                    let octets = value.to_le_bytes();
                    if octets[0] == 0 {
                        u32::from_be_bytes(octets)
                    } else {
                        value
                    }
                }
                _ => value,
            };
            state.values.insert(key, reported);
            Ok(None)
        }
    }
}

fn get(state: &OptionState, key: Key) -> u32 {
    if key == (IPPROTO_IPV6, IPV6_V6ONLY) {
        return u32::from(state.v6only);
    }
    state
        .values
        .get(&key)
        .copied()
        .or_else(|| find(key).map(|spec| spec.default))
        .unwrap_or(0)
}

/// The fixed destination an IOCTL's input names: a SOCKADDR of the socket's family ("a
/// pointer to the specific SOCKADDR structure type that corresponds to the address family ...
/// of the datagram socket"). (No input clears it: the caller's case.)
pub(crate) fn destination(bytes: &[u8], v6: bool) -> Result<SocketAddr, NTSTATUS> {
    if wire::family(bytes) != wire::family_for(v6) {
        return Err(STATUS_INVALID_PARAMETER);
    }
    wire::decode_sockaddr(bytes).ok_or(STATUS_INVALID_PARAMETER)
}
