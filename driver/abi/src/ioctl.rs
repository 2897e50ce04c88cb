//! IOCTL codes.
//!
//! All codes are `CTL_CODE(FILE_DEVICE_NETWORK, 0x800 + n, METHOD_BUFFERED, access)`, the
//! convention of Microsoft's own WSK test drivers (msquic, win-net-test), but `SEND_DIRECT`'s,
//! which is `METHOD_IN_DIRECT`: its payload is the caller's output buffer, locked by the I/O
//! manager and sent from where it lies. `QUERY_INFO` and
//! `QUERY_STATS` need read access to the device handle, everything else write access.

use windows_sys::Win32::System::Ioctl::{
    FILE_DEVICE_NETWORK, FILE_READ_ACCESS, FILE_WRITE_ACCESS, METHOD_BUFFERED, METHOD_IN_DIRECT,
};

/// `CTL_CODE` from `devioctl.h`.
#[must_use]
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// Transfer method encoded in the two low bits of a code (`METHOD_FROM_CTL_CODE`).
#[must_use]
pub const fn method_of(code: u32) -> u32 {
    code & 3
}

/// The driver's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ioctl {
    /// ABI and driver versions, provider WSK version, capabilities and limits.
    QueryInfo,
    /// Create a datagram socket and bind it.
    OpenSocket,
    /// Close a socket opened through the same handle.
    CloseSocket,
    /// Send one datagram `count` times.
    Send,
    /// Build everything `Send` would pass to `WskSendTo` and return it instead of sending.
    DescribeSend,
    /// Counters driver-wide and per socket of the handle (ABI 2).
    QueryStats,
    /// Set one socket option (ABI 2).
    SetOption,
    /// Send and time datagrams in the driver ([`crate::capability::BENCH`]).
    Bench,
    /// `Send` without a copy: the payload is the output buffer (`METHOD_IN_DIRECT`)
    /// ([`crate::capability::SEND_DIRECT`]).
    SendDirect,
}

impl Ioctl {
    /// Every request, in code order.
    pub const ALL: [Self; 9] = [
        Self::QueryInfo,
        Self::OpenSocket,
        Self::CloseSocket,
        Self::Send,
        Self::DescribeSend,
        Self::QueryStats,
        Self::SetOption,
        Self::Bench,
        Self::SendDirect,
    ];

    /// The request's `CTL_CODE`.
    #[must_use]
    pub const fn code(self) -> u32 {
        if matches!(self, Self::SendDirect) {
            return ctl_code(
                FILE_DEVICE_NETWORK,
                0x808,
                METHOD_IN_DIRECT,
                FILE_WRITE_ACCESS,
            );
        }
        let (function, access) = match self {
            Self::QueryInfo => (0x800, FILE_READ_ACCESS),
            Self::OpenSocket => (0x801, FILE_WRITE_ACCESS),
            Self::CloseSocket => (0x802, FILE_WRITE_ACCESS),
            Self::Send => (0x803, FILE_WRITE_ACCESS),
            Self::DescribeSend => (0x804, FILE_WRITE_ACCESS),
            Self::QueryStats => (0x805, FILE_READ_ACCESS),
            Self::SetOption => (0x806, FILE_WRITE_ACCESS),
            Self::Bench => (0x807, FILE_WRITE_ACCESS),
            Self::SendDirect => (0x808, FILE_WRITE_ACCESS),
        };
        ctl_code(FILE_DEVICE_NETWORK, function, METHOD_BUFFERED, access)
    }

    /// The ABI version that introduced the request: a driver serving only older versions
    /// does not know it, and a request header must carry at least this version.
    #[must_use]
    pub const fn introduced(self) -> u32 {
        match self {
            Self::QueryStats | Self::SetOption | Self::Bench | Self::SendDirect => 2,
            Self::QueryInfo
            | Self::OpenSocket
            | Self::CloseSocket
            | Self::Send
            | Self::DescribeSend => 1,
        }
    }

    /// The request's name as shown by the CLI (`IOCTL_WSKUDP_<NAME>` in C terms).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::QueryInfo => "QUERY_INFO",
            Self::OpenSocket => "OPEN_SOCKET",
            Self::CloseSocket => "CLOSE_SOCKET",
            Self::Send => "SEND",
            Self::DescribeSend => "DESCRIBE_SEND",
            Self::QueryStats => "QUERY_STATS",
            Self::SetOption => "SET_OPTION",
            Self::Bench => "BENCH",
            Self::SendDirect => "SEND_DIRECT",
        }
    }

    /// The request a code stands for, if any.
    #[must_use]
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|ioctl| ioctl.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_network_buffered_but_send_direct_and_distinct() {
        for (i, ioctl) in Ioctl::ALL.into_iter().enumerate() {
            let code = ioctl.code();
            assert_eq!(code >> 16, FILE_DEVICE_NETWORK);
            let method = if ioctl == Ioctl::SendDirect {
                METHOD_IN_DIRECT
            } else {
                METHOD_BUFFERED
            };
            assert_eq!(method_of(code), method);
            assert_eq!(Ioctl::from_code(code), Some(ioctl));
            for other in &Ioctl::ALL[i + 1..] {
                assert_ne!(code, other.code());
            }
        }
        // The values a C client would compute, spelled out once.
        assert_eq!(Ioctl::QueryInfo.code(), 0x0012_6000);
        assert_eq!(Ioctl::Send.code(), 0x0012_A00C);
        assert_eq!(Ioctl::from_code(0x0012_6004), None);
    }
}
