//! Socket addresses on the wire.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::AbiError;

/// `AF_UNSPEC`: no address.
pub const AF_UNSPEC: u16 = windows_sys::Win32::Networking::WinSock::AF_UNSPEC;
/// `AF_INET` (2).
pub const AF_INET: u16 = windows_sys::Win32::Networking::WinSock::AF_INET;
/// `AF_INET6` as Windows defines it (23, not Linux's 10).
pub const AF_INET6: u16 = windows_sys::Win32::Networking::WinSock::AF_INET6;

/// An IPv4 or IPv6 address and port, family-tagged with the Windows `AF_*` values.
///
/// `port` is in host byte order; an IPv4 address occupies `addr[..4]` and the rest must be
/// zero. Flow labels are not carried.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct WireAddr {
    /// `AF_UNSPEC`, `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Port, host byte order.
    pub port: u16,
    /// IPv6 scope id; zero for IPv4.
    pub scope_id: u32,
    /// Address bytes in network order.
    pub addr: [u8; 16],
}

impl WireAddr {
    /// The "no address" value (`AF_UNSPEC`, all zero).
    pub const NONE: Self = Self {
        family: AF_UNSPEC,
        port: 0,
        scope_id: 0,
        addr: [0; 16],
    };

    /// Encodes a socket address.
    #[must_use]
    pub const fn from_socket_addr(addr: SocketAddr) -> Self {
        let mut wire = Self::from_ip(addr.ip());
        wire.port = addr.port();
        if let SocketAddr::V6(v6) = addr {
            wire.scope_id = v6.scope_id();
        }
        wire
    }

    /// Encodes an IP address with port 0.
    #[must_use]
    pub const fn from_ip(ip: IpAddr) -> Self {
        let mut addr = [0; 16];
        let family = match ip {
            IpAddr::V4(v4) => {
                let (head, _) = addr.split_at_mut(4);
                head.copy_from_slice(&v4.octets());
                AF_INET
            }
            IpAddr::V6(v6) => {
                addr = v6.octets();
                AF_INET6
            }
        };
        Self {
            family,
            port: 0,
            scope_id: 0,
            addr,
        }
    }

    /// Decodes the IP address, checking the family and that unused bytes are zero.
    ///
    /// # Errors
    /// [`AbiError::UnsupportedFamily`] for anything but `AF_INET`/`AF_INET6`,
    /// [`AbiError::ReservedNotZero`] for stray bytes after an IPv4 address or a scope id on one.
    pub fn ip(&self) -> Result<IpAddr, AbiError> {
        match self.family {
            AF_INET => {
                let (head, tail) = self.addr.split_at(4);
                if tail.iter().any(|&b| b != 0) || self.scope_id != 0 {
                    return Err(AbiError::ReservedNotZero);
                }
                let mut octets = [0; 4];
                octets.copy_from_slice(head);
                Ok(IpAddr::V4(Ipv4Addr::from(octets)))
            }
            AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(self.addr))),
            other => Err(AbiError::UnsupportedFamily(other)),
        }
    }

    /// Decodes the full socket address (see [`WireAddr::ip`] for the checks).
    ///
    /// # Errors
    /// As [`WireAddr::ip`].
    pub fn socket_addr(&self) -> Result<SocketAddr, AbiError> {
        Ok(match self.ip()? {
            IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, self.port)),
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, self.port, 0, self.scope_id)),
        })
    }

    /// `true` for the [`WireAddr::NONE`] encoding.
    #[must_use]
    pub fn is_none(&self) -> bool {
        *self == Self::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in ["127.0.0.1:9", "[::1]:65535", "[fe80::1%7]:53", "0.0.0.0:0"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(WireAddr::from_socket_addr(addr).socket_addr(), Ok(addr));
        }
    }

    #[test]
    fn rejects_bad_encodings() {
        let mut wire = WireAddr::from_socket_addr("127.0.0.1:9".parse().unwrap());
        wire.addr[4] = 1;
        assert_eq!(wire.ip(), Err(AbiError::ReservedNotZero));
        wire.addr[4] = 0;
        wire.family = 10; // Linux's AF_INET6 is not the Windows value.
        assert_eq!(wire.ip(), Err(AbiError::UnsupportedFamily(10)));
        assert_eq!(
            WireAddr::NONE.ip(),
            Err(AbiError::UnsupportedFamily(AF_UNSPEC))
        );
        assert_eq!(AF_INET6, 23);
    }
}
