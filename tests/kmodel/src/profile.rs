//! Which Windows build the WSK provider imitates, and the rules that differ between builds.
//!
//! Every rule names its source: a Microsoft page, msquic's kernel datapath
//! (`src/platform/datapath_winkernel.c`, microsoft/msquic commit 4984c210), wireguard-nt, or
//! third-party reports; "inferred" marks what no source states, and says from what.
//! [`rules`] computes each rule's outcome per profile by running the provider's own decision
//! code (the send planner and the option checks), so the table cannot drift from the model,
//! with one exception: the broadcast rule. No model code decides that one; the Linux socket
//! does at send time (`EACCES`, which `wsk::linux::status_of` maps to `STATUS_ACCESS_DENIED`),
//! so its outcome is written in as a constant and the `broadcast_needs_so_broadcast` test
//! (`tests/wsk_control_socket.rs`) checks it against a real send.
//! [`profiles_table`] prints the table
//! (`cargo run -p wskudp-kmodel --example provider_profiles_table`).

use std::fmt::Write as _;
use std::net::SocketAddr;

use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_PARAMETER,
    STATUS_NOT_SUPPORTED,
};
use wskudp_core::ddi::wsk::make_wsk_version;

use crate::wsk::options::{self, Call, SocketFacts};
use crate::wsk::send::{self, Plan};
use crate::wsk::wire::{
    self, IP_ECN, IP_HOPLIMIT, IP_OPTIONS, IP_PKTINFO, IP_RECVTOS, IP_TOS, IP_TTL, IPPROTO_IP,
    IPPROTO_IPV6, IPPROTO_UDP, IPV6_ECN, IPV6_HOPLIMIT, IPV6_PKTINFO, IPV6_RECVTCLASS, IPV6_TCLASS,
    IPV6_V6ONLY, UDP_RECV_MAX_COALESCED_SIZE, UDP_SEND_MSG_SIZE,
};

/// A Windows build the provider imitates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Current Windows 11 (24H2, build 26100).
    #[default]
    Windows11,
    /// Windows Server 2022 (build 20348): USO as Windows 11, but msquic keeps the receive
    /// TTL and receive TOS options off there for "Some USO/URO bug"
    /// (datapath_winkernel.c:645-652, exact `dwBuildNumber != 20348` test).
    Server2022,
    /// A build before UDP send offload: Windows 10 1809 / Server 2019 (17763) and older;
    /// `WSASetUdpSendMessageSize` needs build 19041.
    NoUso,
    /// A build whose stack does not take the traffic class on send: msquic probes
    /// `IPV6_TCLASS` before using it (datapath_winkernel.c:594-640), and third parties saw
    /// it fail with WSAENOPROTOOPT. Which builds these are is not known.
    NoTclassOnSend,
    /// Windows 7 / Server 2008 R2 (6.1): no `WskSendMessages` (Windows 8+), and none of the
    /// later send options (USO, ECN, traffic class).
    NoSendMessages,
}

impl Profile {
    /// Every profile, in table order.
    pub const ALL: [Self; 5] = [
        Self::Windows11,
        Self::Server2022,
        Self::NoUso,
        Self::NoTclassOnSend,
        Self::NoSendMessages,
    ];

    /// A short name (the table's column head).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Windows11 => "Windows 11",
            Self::Server2022 => "Server 2022 (20348)",
            Self::NoUso => "no USO (17763)",
            Self::NoTclassOnSend => "no TCLASS on send",
            Self::NoSendMessages => "no WskSendMessages (Windows 7)",
        }
    }

    /// `WSK_PROVIDER_DISPATCH.Version`: 1.0 on every build. `WskSendMessages` came without a
    /// version change: msquic and wireguard-nt register `MAKE_WSK_VERSION(1,0)` and call it
    /// (`datapath_winkernel.c:237, 2965`); only 1.0 is documented
    /// (windows-driver-docs `registering-a-winsock-kernel-application.md`).
    #[must_use]
    pub const fn wsk_version(self) -> u16 {
        make_wsk_version(1, 0)
    }

    /// Whether the datagram dispatch table has a `WskSendMessages` slot
    /// (`PFN_WSK_SEND_MESSAGES`: "Windows 8").
    #[must_use]
    pub const fn has_send_messages(self) -> bool {
        !matches!(self, Self::NoSendMessages)
    }

    /// Whether UDP send offload exists (`UDP_SEND_MSG_SIZE`, build 19041 and later:
    /// `WSASetUdpSendMessageSize` requirements).
    #[must_use]
    pub const fn has_uso(self) -> bool {
        !matches!(self, Self::NoUso | Self::NoSendMessages)
    }

    /// Whether the traffic class can be set on send (`IPV6_TCLASS` option, `IP_TOS` /
    /// `IPV6_TCLASS` control messages).
    #[must_use]
    pub const fn has_tclass_on_send(self) -> bool {
        !matches!(self, Self::NoTclassOnSend | Self::NoSendMessages)
    }

    /// Whether the ECN control messages and options exist (`WSASetRecvIPEcn`: build 20348;
    /// msquic used them on 17763 CI images in 2020, commit 9c16800).
    #[must_use]
    pub const fn has_ecn(self) -> bool {
        !matches!(self, Self::NoSendMessages)
    }

    /// What a send control message the build does not have does to the send: refused as a
    /// type the stack does not know (inferred).
    pub(crate) const MISSING_OPTION: NTSTATUS = STATUS_INVALID_PARAMETER;

    /// What `WskControlSocket` returns for an option the build does not have (inferred:
    /// user mode reports WSAENOPROTOOPT, whose NTSTATUS is not documented).
    pub(crate) const MISSING_SOCKET_OPTION: NTSTATUS = STATUS_NOT_SUPPORTED;

    /// Whether `WskSetOption` / `WskGetOption` serve `(level, code)` on this build.
    #[must_use]
    pub(crate) const fn has_socket_option(self, (level, code): (u32, u32)) -> bool {
        match (level, code) {
            (IPPROTO_UDP, UDP_SEND_MSG_SIZE | UDP_RECV_MAX_COALESCED_SIZE) => self.has_uso(),
            (IPPROTO_IPV6, IPV6_TCLASS) => self.has_tclass_on_send(),
            (IPPROTO_IP, IP_ECN) | (IPPROTO_IPV6, IPV6_ECN) => self.has_ecn(),
            // The model's stand-in for the 20348 bug msquic avoids: the receive TTL / TOS
            // options fail, so a driver's fallback runs. What 20348 really does is unknown.
            (IPPROTO_IP, IP_HOPLIMIT | IP_RECVTOS)
            | (IPPROTO_IPV6, IPV6_HOPLIMIT | IPV6_RECVTCLASS) => !matches!(self, Self::Server2022),
            _ => true,
        }
    }
}

/// What a build does with an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It takes effect.
    Honoured,
    /// It is accepted and has no effect.
    Ignored,
    /// The call fails with this status.
    Refused(NTSTATUS),
    /// Present.
    Yes,
    /// Absent.
    No,
    /// A value (`WSK_PROVIDER_DISPATCH.Version`).
    Value(u32),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Honoured => f.write_str("honoured"),
            Self::Ignored => f.write_str("ignored"),
            Self::Refused(status) => write!(f, "refused: `{}`", status_name(*status)),
            Self::Yes => f.write_str("yes"),
            Self::No => f.write_str("no"),
            Self::Value(value) => write!(f, "`{value:#06x}`"),
        }
    }
}

/// The `STATUS_*` name of the statuses the rules use.
fn status_name(status: NTSTATUS) -> String {
    use windows_sys::Win32::Foundation as nt;
    let name = match status {
        nt::STATUS_INVALID_PARAMETER => "STATUS_INVALID_PARAMETER",
        nt::STATUS_NOT_SUPPORTED => "STATUS_NOT_SUPPORTED",
        nt::STATUS_INVALID_BUFFER_SIZE => "STATUS_INVALID_BUFFER_SIZE",
        nt::STATUS_ACCESS_DENIED => "STATUS_ACCESS_DENIED",
        _ => return format!("{status:#010x}"),
    };
    name.to_owned()
}

/// One behaviour, what each build does, and why the model believes it.
#[derive(Clone, Debug)]
pub struct Rule {
    /// What is decided.
    pub behaviour: &'static str,
    /// What each profile does, in [`Profile::ALL`] order.
    pub outcomes: Vec<(Profile, Outcome)>,
    /// Where the rule comes from.
    pub source: &'static str,
}

fn rule(
    behaviour: &'static str,
    source: &'static str,
    outcome: impl Fn(Profile) -> Outcome,
) -> Rule {
    Rule {
        behaviour,
        outcomes: Profile::ALL.iter().map(|p| (*p, outcome(*p))).collect(),
        source,
    }
}

const fn yes(present: bool) -> Outcome {
    if present { Outcome::Yes } else { Outcome::No }
}

/// What the provider's send planner does with `control` on a datagram of `payload` bytes to
/// 127.0.0.1 (or `[::1]`): honoured when `took(plan)`, ignored when accepted without effect.
fn send_outcome(
    profile: Profile,
    v6: bool,
    control: &[u8],
    payload: usize,
    took: impl Fn(&Plan) -> bool,
) -> Outcome {
    let to: SocketAddr = if v6 {
        "[::1]:9".parse()
    } else {
        "127.0.0.1:9".parse()
    }
    .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9)));
    match send::plan(to, control, payload, profile) {
        Ok(plan) if took(&plan) => Outcome::Honoured,
        Ok(_) => Outcome::Ignored,
        Err(status) => Outcome::Refused(status),
    }
}

/// What `WskSetOption` / `WskGetOption` do with `call` on an unbound `AF_INET6` socket (the
/// probe msquic makes), value checks included.
fn option_outcome(profile: Profile, call: Call, value: Option<u32>, effect: Outcome) -> Outcome {
    let facts = SocketFacts {
        v6: true,
        bound: false,
    };
    let checked = options::check(call, facts, profile).and_then(|()| match (call, value) {
        (Call::Set(key), Some(value)) => options::check_value(key, value),
        _ => Ok(()),
    });
    match checked {
        Ok(()) => effect,
        Err(status) => Outcome::Refused(status),
    }
}

/// [`option_outcome`] of `WskSetOption` for an option's IPv4 and IPv6 forms: the first that
/// differs from `effect`, else `effect`.
fn both_forms(
    profile: Profile,
    v4: options::Key,
    v6: options::Key,
    value: u32,
    effect: Outcome,
) -> Outcome {
    let first = option_outcome(profile, Call::Set(v4), Some(value), effect);
    if first == effect {
        option_outcome(profile, Call::Set(v6), Some(value), effect)
    } else {
        first
    }
}

/// `SIO_WSK_SET_SENDTO_ADDRESS` on a socket bound or not.
fn fixed_destination(profile: Profile, bound: bool) -> Outcome {
    let facts = SocketFacts { v6: true, bound };
    match options::check(Call::FixDestination, facts, profile) {
        Ok(()) => Outcome::Honoured,
        Err(status) => Outcome::Refused(status),
    }
}

const fn int(value: i32) -> [u8; 4] {
    value.to_le_bytes()
}

/// Every rule, with what each profile does and its source.
#[must_use]
#[allow(clippy::too_many_lines, reason = "one entry per rule")]
pub fn rules() -> Vec<Rule> {
    let cmsg = wire::encode_cmsg;
    let mut rules = vec![
        rule(
            "`WSK_PROVIDER_DISPATCH.Version`",
            "msquic `datapath_winkernel.c:237` and wireguard-nt register 1.0 and call `WskSendMessages`; only 1.0 is documented (`registering-a-winsock-kernel-application`)",
            |p| Outcome::Value(u32::from(p.wsk_version())),
        ),
        rule(
            "`WskSendMessages` slot in the datagram dispatch table",
            "`PFN_WSK_SEND_MESSAGES` page: minimum Windows 8; wireguard-nt (commit bc849f3) emulates it with `WskSendTo` before 6.2",
            |p| yes(p.has_send_messages()),
        ),
        rule(
            "`IP_PKTINFO` / `IPV6_PKTINFO` message (source, interface)",
            "`IN_PKTINFO` / `IN6_PKTINFO` pages; `WSASendMsg` remarks (dual stack: `IN_PKTINFO` for IPv4 and v4-mapped destinations)",
            |p| {
                let info = [[127, 0, 0, 1].as_slice(), &[0; 4]].concat();
                send_outcome(
                    p,
                    false,
                    &cmsg(IPPROTO_IP, IP_PKTINFO, &info),
                    100,
                    |plan| plan.source.is_some(),
                )
            },
        ),
        rule(
            "`IP_TOS` / `IPV6_TCLASS` message (`INT`, DSCP and ECN)",
            "msquic sends it only after its `IPV6_TCLASS` probe succeeds (`datapath_winkernel.c:594-640, 2922-2936`); probe failures reported as WSAENOPROTOOPT (socket2 PR 364, via trippy issue 202); refusal status inferred",
            |p| {
                send_outcome(
                    p,
                    true,
                    &cmsg(IPPROTO_IPV6, IPV6_TCLASS, &int(0x28)),
                    100,
                    |plan| plan.class == Some(0x28),
                )
            },
        ),
        rule(
            "`IP_ECN` / `IPV6_ECN` message, ECT(0) / ECT(1) (folded into the TOS byte on Linux)",
            "Winsock ECN page; `WSASetRecvIPEcn` minimum build 20348 (msquic ran it on 17763 images, commit 9c16800)",
            |p| {
                send_outcome(p, false, &cmsg(IPPROTO_IP, IP_ECN, &int(1)), 100, |plan| {
                    plan.class == Some(1)
                })
            },
        ),
        rule(
            "`IP_ECN` / `IPV6_ECN` message, CE",
            "Winsock ECN page: \"The send will return with error WSAEINVAL\" (user mode; `STATUS_INVALID_PARAMETER` for WSK inferred, Wine's `NtStatusToWSAError`)",
            |p| send_outcome(p, false, &cmsg(IPPROTO_IP, IP_ECN, &int(3)), 100, |_| true),
        ),
        rule(
            "`IPV6_HOPLIMIT` message (per-datagram hop limit)",
            "`WSAMSG` control data table: \"Specifies/receives hop limit\"",
            |p| {
                send_outcome(
                    p,
                    true,
                    &cmsg(IPPROTO_IPV6, IPV6_HOPLIMIT, &int(9)),
                    100,
                    |plan| plan.hop_limit == Some(9),
                )
            },
        ),
        rule(
            "`IP_TTL` message (per-datagram TTL)",
            "inferred: not among `WSAMSG`'s IPv4 control data (only `IP_PKTINFO`, `IP_ORIGINAL_ARRIVAL_IF`); msquic only receives it",
            |p| {
                send_outcome(p, false, &cmsg(IPPROTO_IP, IP_TTL, &int(9)), 100, |plan| {
                    plan.hop_limit.is_some()
                })
            },
        ),
        rule(
            "`UDP_SEND_MSG_SIZE` message, segment smaller than the payload",
            "`IPPROTO_UDP` socket options; `WSASetUdpSendMessageSize` minimum build 19041; msquic `datapath_winkernel.c:2949-2959`",
            |p| {
                send_outcome(
                    p,
                    false,
                    &cmsg(IPPROTO_UDP, UDP_SEND_MSG_SIZE, &500_u32.to_le_bytes()),
                    1200,
                    |plan| plan.segment_size == Some(500),
                )
            },
        ),
        rule(
            "`UDP_SEND_MSG_SIZE` message, one segment (size 0 or >= payload)",
            "WSAEINVAL on some configurations (firezone PR 11580); quinn (PR 2490) and msquic leave it off",
            |p| {
                send_outcome(
                    p,
                    false,
                    &cmsg(IPPROTO_UDP, UDP_SEND_MSG_SIZE, &2000_u32.to_le_bytes()),
                    1200,
                    |_| true,
                )
            },
        ),
        rule(
            "empty `IP_OPTIONS` / `IPV6_RTHDR` message",
            "wireguard-nt appends one to every send (commits a81c92d, a58f766)",
            |p| send_outcome(p, false, &cmsg(IPPROTO_IP, IP_OPTIONS, &[]), 100, |_| false),
        ),
        rule(
            "a message of the other IP version (`IPV6_TCLASS` on an IPv4 datagram)",
            "inferred: msquic and quinn pick the level by the datagram's IP version; Linux skips other levels",
            |p| {
                send_outcome(
                    p,
                    false,
                    &cmsg(IPPROTO_IPV6, IPV6_TCLASS, &int(0x28)),
                    100,
                    |_| false,
                )
            },
        ),
        rule(
            "a type the stack does not know; a wrong data size",
            "inferred (no source states it)",
            |p| send_outcome(p, false, &cmsg(IPPROTO_IP, 99, &int(1)), 100, |_| true),
        ),
        rule(
            "`cmsg_len` below the header or past `ControlInfoLength`; the last `cmsg_len` as `ControlInfoLength` (unpadded)",
            "wireguard-nt commit 19ab593 (\"It expects to receive the total space, with padding\"); status inferred",
            |p| {
                let tos = cmsg(IPPROTO_IP, IP_TOS, &int(8));
                send_outcome(p, false, tos.get(..20).unwrap_or(&tos), 100, |_| true)
            },
        ),
        rule(
            "payload over 65507 (IPv4) / 65527 (IPv6) bytes",
            "`WSASendMsg`: WSAEMSGSIZE; `STATUS_INVALID_BUFFER_SIZE` from Wine's `NtStatusToWSAError` (inferred)",
            |p| send_outcome(p, false, &[], 65_508, |_| true),
        ),
        // Not computed: the send planner does not look at broadcast addresses. The model's send
        // fails because Linux's `sendto` returns EACCES without SO_BROADCAST (mapped by
        // `wsk::linux::status_of`); `broadcast_needs_so_broadcast` in tests/wsk_control_socket.rs
        // checks this constant against a real send. Windows' NTSTATUS is inferred from
        // WSASendMsg's WSAEACCES.
        rule(
            "broadcast destination without `SO_BROADCAST`",
            "`WSASendMsg`: WSAEACCES; WSK `SO_BROADCAST` page: off by default; `STATUS_ACCESS_DENIED` inferred (the outcome is not computed: the model's send gets Linux's EACCES)",
            |_| Outcome::Refused(STATUS_ACCESS_DENIED),
        ),
        rule(
            "`WskGetOption(UDP_SEND_MSG_SIZE)` (msquic's USO probe)",
            "msquic `datapath_winkernel.c:497-546`; build 19041; failure status inferred",
            |p| {
                option_outcome(
                    p,
                    Call::Get((IPPROTO_UDP, UDP_SEND_MSG_SIZE)),
                    None,
                    Outcome::Honoured,
                )
            },
        ),
        rule(
            "`WskSetOption(IPV6_TCLASS)`, ECN bits 0 (msquic's DSCP probe)",
            "msquic `datapath_winkernel.c:594-640`; WSAENOPROTOOPT reports (trippy issue 202); failure status inferred",
            |p| {
                option_outcome(
                    p,
                    Call::Set((IPPROTO_IPV6, IPV6_TCLASS)),
                    Some(0x10),
                    Outcome::Honoured,
                )
            },
        ),
        rule(
            "`WskSetOption(IPV6_TCLASS)`, ECN bits set",
            "msquic PR 5130 (commit e08fd6e): probing with 1 \"would always error\"",
            |p| {
                option_outcome(
                    p,
                    Call::Set((IPPROTO_IPV6, IPV6_TCLASS)),
                    Some(1),
                    Outcome::Honoured,
                )
            },
        ),
        rule(
            "`WskSetOption(IP_TOS)`",
            "`IPPROTO_IP` options: \"Do not use\"; msquic `datapath_winuser.c:546`: \"IPv4 just fails silently\"",
            |p| {
                option_outcome(
                    p,
                    Call::Set((IPPROTO_IP, IP_TOS)),
                    Some(0xB8),
                    Outcome::Ignored,
                )
            },
        ),
        rule(
            "`WskSetOption(IP_HOPLIMIT / IPV6_HOPLIMIT / IP_RECVTOS / IPV6_RECVTCLASS)` (receive TTL, DSCP)",
            "msquic skips them on 20348 for a USO/URO bug (`datapath_winkernel.c:645-652`); refusing them is the model's stand-in",
            |p| {
                option_outcome(
                    p,
                    Call::Set((IPPROTO_IP, IP_HOPLIMIT)),
                    Some(1),
                    Outcome::Honoured,
                )
            },
        ),
        rule(
            "`WskSetOption(IP_ECN / IPV6_ECN)` (receive ECN)",
            "Winsock ECN page; `WSASetRecvIPEcn` build 20348",
            |p| {
                option_outcome(
                    p,
                    Call::Set((IPPROTO_IPV6, IPV6_ECN)),
                    Some(1),
                    Outcome::Honoured,
                )
            },
        ),
        rule(
            "`WskSetOption(IPV6_V6ONLY)` = 0 before `WskBind` (dual stack)",
            "`dual-stack-sockets`: set to zero \"before the socket is bound\"; WSK documents no default, so the driver sets it on every `AF_INET6` socket",
            |p| {
                let facts = SocketFacts {
                    v6: true,
                    bound: false,
                };
                match options::check(Call::Set((IPPROTO_IPV6, IPV6_V6ONLY)), facts, p) {
                    Ok(()) => Outcome::Honoured,
                    Err(status) => Outcome::Refused(status),
                }
            },
        ),
        rule(
            "`WskSetOption(IPV6_V6ONLY)` after `WskBind`",
            "`dual-stack-sockets`: set it \"before the socket is bound\"; default on (`IPPROTO_IPV6` options); status inferred",
            |p| {
                let facts = SocketFacts {
                    v6: true,
                    bound: true,
                };
                match options::check(Call::Set((IPPROTO_IPV6, IPV6_V6ONLY)), facts, p) {
                    Ok(()) => Outcome::Honoured,
                    Err(status) => Outcome::Refused(status),
                }
            },
        ),
        rule(
            "`WskSetOption(IP_PKTINFO / IPV6_PKTINFO)` (receive packet info)",
            "`IP_PKTINFO` / `IPV6_PKTINFO` option pages (the model does not receive: stored)",
            |p| {
                option_outcome(
                    p,
                    Call::Set((IPPROTO_IPV6, IPV6_PKTINFO)),
                    Some(1),
                    Outcome::Honoured,
                )
            },
        ),
    ];
    rules.extend(
        OPTION_PAIRS
            .iter()
            .map(|&(behaviour, source, v4, v6, value, effect)| {
                rule(behaviour, source, move |p| {
                    both_forms(p, v4, v6, value, effect)
                })
            }),
    );
    rules.extend([
        // Not computed, as the broadcast row: the model's send gets Linux's EMSGSIZE (mapped by
        // `wsk::linux::status_of`); the `sizes` scenario checks it over a 1500-byte MTU inside
        // tests/in-netns.sh.
        rule(
            "datagram over the path MTU with don't-fragment set",
            "inferred: `WSASendMsg`: WSAEMSGSIZE; `STATUS_INVALID_BUFFER_SIZE` from Wine's `NtStatusToWSAError`, as for an oversize payload (the outcome is not computed: the model's send gets Linux's EMSGSIZE)",
            |_| Outcome::Refused(STATUS_INVALID_BUFFER_SIZE),
        ),
        rule(
            "`SIO_WSK_SET_SENDTO_ADDRESS` after `WskBind` (a socket's fixed destination)",
            "`SIO_WSK_SET_SENDTO_ADDRESS` page: set \"after the datagram socket has been bound\"; a `WskSendTo` with a `RemoteAddress` overrides it for that datagram (`WskSendTo` page)",
            |p| fixed_destination(p, true),
        ),
        rule(
            "`SIO_WSK_SET_SENDTO_ADDRESS` before `WskBind`",
            "`SIO_WSK_SET_SENDTO_ADDRESS` page (\"after ... bound\"); status inferred (user mode gives WSAEINVAL)",
            |p| fixed_destination(p, false),
        ),
    ]);
    rules
}

/// Options with an IPv4 and an IPv6 form, set on a socket: behaviour, source, the two keys, a
/// value to set and what a build that has them does with it.
const OPTION_PAIRS: [(&str, &str, options::Key, options::Key, u32, Outcome); 6] = [
    (
        "`WskSetOption(IP_UNICAST_IF / IPV6_UNICAST_IF)` (pin the interface)",
        "`IPPROTO_IP` options: `IP_UNICAST_IF` index \"in network byte order\"; `IPPROTO_IPV6` options: `IPV6_UNICAST_IF` in host order; msquic sets `IP_UNICAST_IF` on its `AF_INET6` socket (`datapath_winkernel.c:1417-1707`)",
        (IPPROTO_IP, wire::IP_UNICAST_IF),
        (IPPROTO_IPV6, wire::IPV6_UNICAST_IF),
        1,
        Outcome::Honoured,
    ),
    (
        "`WskSetOption(IP_MULTICAST_IF / IPV6_MULTICAST_IF)`",
        "`IPPROTO_IP` options: an IPv4 address, or an interface index in network byte order (first octet 0); `IPPROTO_IPV6` options: an interface index",
        (IPPROTO_IP, wire::IP_MULTICAST_IF),
        (IPPROTO_IPV6, wire::IPV6_MULTICAST_IF),
        1,
        Outcome::Honoured,
    ),
    (
        "`WskSetOption(IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS)`",
        "`IPPROTO_IP` / `IPPROTO_IPV6` options: multicast TTL / hop limit, default 1",
        (IPPROTO_IP, wire::IP_MULTICAST_TTL),
        (IPPROTO_IPV6, wire::IPV6_MULTICAST_HOPS),
        3,
        Outcome::Honoured,
    ),
    (
        "`WskSetOption(IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP)` on the sending socket",
        "`IPPROTO_IP` options: the Winsock option \"applies only to the receive path\"; `IPPROTO_IPV6` options: data sent \"(not necessarily by the same socket)\" reaches sockets that ask for it; the model stores it and keeps looping",
        (IPPROTO_IP, wire::IP_MULTICAST_LOOP),
        (IPPROTO_IPV6, wire::IPV6_MULTICAST_LOOP),
        0,
        Outcome::Ignored,
    ),
    (
        "`WskSetOption(IP_TTL / IPV6_UNICAST_HOPS)` (per-socket hop limit)",
        "`IPPROTO_IP` / `IPPROTO_IPV6` options: \"It is illegal to set the TTL to a value greater than 255\" (refusal status inferred)",
        (IPPROTO_IP, IP_TTL),
        (IPPROTO_IPV6, wire::IPV6_UNICAST_HOPS),
        7,
        Outcome::Honoured,
    ),
    (
        "`WskSetOption(IP_DONTFRAGMENT / IPV6_DONTFRAG)`",
        "`IPPROTO_IP` options: \"data should not be fragmented regardless of the local MTU\", respected for UDP; `IPPROTO_IPV6` options: `IPV6_DONTFRAG`; msquic sets `IP_DONTFRAGMENT` (`datapath_winkernel.c:1417-1707`)",
        (IPPROTO_IP, wire::IP_DONTFRAGMENT),
        (IPPROTO_IPV6, wire::IPV6_DONTFRAG),
        1,
        Outcome::Honoured,
    ),
];

/// The README's table of what each profile does, with sources.
#[must_use]
pub fn profiles_table() -> String {
    let mut table = String::from("| behaviour |");
    for profile in Profile::ALL {
        let _ = write!(table, " {} |", profile.name());
    }
    table.push_str(" source |\n|---|");
    for _ in Profile::ALL {
        table.push_str("---|");
    }
    table.push_str("---|\n");
    for rule in rules() {
        let _ = write!(table, "| {} |", rule.behaviour);
        for (_, outcome) in &rule.outcomes {
            let _ = write!(table, " {outcome} |");
        }
        let _ = writeln!(table, " {} |", rule.source);
    }
    table
}
