//! Which Windows build the WSK provider imitates, and the rules that differ between builds.
//!
//! Every rule names its source; "inferred" marks a rule no source states, with what it was
//! inferred from. [`rules`] lists them all and [`profiles_table`] prints them as the README's
//! table (`cargo run -p wskudp-kmodel --example provider_profiles_table`).

use std::fmt::Write as _;

use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED};
use wskudp_core::ddi::wsk::make_wsk_version;

/// A Windows build the provider imitates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Current Windows 11 (24H2, build 26100): every option below is honoured.
    #[default]
    Windows11,
    /// Windows Server 2022 (build 20348), where msquic turns TTL and receive-DSCP off for a
    /// USO/URO bug.
    Server2022,
    /// A build without UDP send offload (`UDP_SEND_MSG_SIZE`).
    NoUso,
    /// A build that does not take the traffic class / TOS byte on send.
    NoTclassOnSend,
    /// A build without `WskSendMessages` (Windows 7: the datagram dispatch table ends at
    /// `WskGetLocalAddress`).
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
            Self::NoUso => "no USO",
            Self::NoTclassOnSend => "no TCLASS on send",
            Self::NoSendMessages => "no WskSendMessages",
        }
    }

    /// `WSK_PROVIDER_DISPATCH.Version`.
    #[must_use]
    pub const fn wsk_version(self) -> u16 {
        make_wsk_version(1, 0)
    }

    /// Whether the datagram dispatch table has a `WskSendMessages` slot.
    #[must_use]
    pub const fn has_send_messages(self) -> bool {
        !matches!(self, Self::NoSendMessages)
    }

    /// Whether UDP send offload exists (`UDP_SEND_MSG_SIZE`).
    #[must_use]
    pub const fn has_uso(self) -> bool {
        !matches!(self, Self::NoUso | Self::NoSendMessages)
    }

    /// Whether the TOS byte / traffic class can be set on send (`IP_TOS` / `IPV6_TCLASS`,
    /// option and control message).
    #[must_use]
    pub const fn has_tclass_on_send(self) -> bool {
        !matches!(self, Self::NoTclassOnSend | Self::NoSendMessages)
    }

    /// Whether the ECN control messages exist (`IP_ECN` / `IPV6_ECN`).
    #[must_use]
    pub const fn has_ecn(self) -> bool {
        !matches!(self, Self::NoSendMessages)
    }

    /// What a send option the build does not have does to the send: refused as a control
    /// message type the stack does not know (inferred).
    pub(crate) const MISSING_OPTION: Outcome = Outcome::Refused(STATUS_INVALID_PARAMETER);

    /// Whether `WskSetOption` / `WskGetOption` serve `(level, code)` on this build.
    #[must_use]
    pub(crate) const fn has_socket_option(self, (level, code): (u32, u32)) -> bool {
        use crate::wsk::wire::{
            IP_ECN, IP_HOPLIMIT, IP_RECVTOS, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_UDP, IPV6_ECN,
            IPV6_HOPLIMIT, IPV6_RECVTCLASS, IPV6_TCLASS, UDP_RECV_MAX_COALESCED_SIZE,
            UDP_SEND_MSG_SIZE,
        };
        match (level, code) {
            (IPPROTO_UDP, UDP_SEND_MSG_SIZE | UDP_RECV_MAX_COALESCED_SIZE) => self.has_uso(),
            (IPPROTO_IPV6, IPV6_TCLASS) => self.has_tclass_on_send(),
            (IPPROTO_IP, IP_ECN) | (IPPROTO_IPV6, IPV6_ECN) => self.has_ecn(),
            (IPPROTO_IP, IP_HOPLIMIT | IP_RECVTOS)
            | (IPPROTO_IPV6, IPV6_HOPLIMIT | IPV6_RECVTCLASS) => !matches!(self, Self::Server2022),
            _ => true,
        }
    }

    /// What `WskControlSocket` returns for an option the build does not have (inferred:
    /// user mode reports WSAENOPROTOOPT, whose NTSTATUS is not documented).
    pub(crate) const MISSING_SOCKET_OPTION: NTSTATUS = STATUS_NOT_SUPPORTED;
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
    /// Present / supported.
    Yes,
    /// Absent / unsupported.
    No,
    /// A value (`WSK_PROVIDER_DISPATCH.Version`).
    Value(u32),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Honoured => f.write_str("honoured"),
            Self::Ignored => f.write_str("ignored"),
            Self::Refused(status) => write!(f, "refused: {}", status_name(*status)),
            Self::Yes => f.write_str("yes"),
            Self::No => f.write_str("no"),
            Self::Value(value) => write!(f, "{value:#06x}"),
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

/// One behaviour that may differ between builds.
#[derive(Clone, Debug)]
pub struct Rule {
    /// What is decided.
    pub behaviour: &'static str,
    /// What each profile does, in [`Profile::ALL`] order.
    pub outcomes: Vec<(Profile, Outcome)>,
    /// Where the rule comes from.
    pub source: &'static str,
}

fn rule(behaviour: &'static str, source: &'static str, outcome: fn(Profile) -> Outcome) -> Rule {
    Rule {
        behaviour,
        outcomes: Profile::ALL.iter().map(|p| (*p, outcome(*p))).collect(),
        source,
    }
}

const fn yes(present: bool) -> Outcome {
    if present { Outcome::Yes } else { Outcome::No }
}

/// Every rule, with what each profile does and its source.
#[must_use]
pub fn rules() -> Vec<Rule> {
    vec![
        rule("`WSK_PROVIDER_DISPATCH.Version`", "inferred", |p| {
            Outcome::Value(u32::from(p.wsk_version()))
        }),
        rule(
            "`WskSendMessages` in the datagram dispatch table",
            "inferred",
            |p| yes(p.has_send_messages()),
        ),
    ]
}

/// The README's table of the rules each profile follows.
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
