//! `SOCKADDR_IN` / `SOCKADDR_IN6` in the Windows layout.
//!
//! IRQL: computation on caller-provided memory only: any IRQL, if that memory is resident.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use windows_sys::Win32::Networking::WinSock::{
    AF_INET, AF_INET6, SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6,
};
use wskudp_abi::SOCKADDR_CAPACITY;

/// Storage for one `SOCKADDR`, aligned like the structures it holds.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockAddrBuffer {
    bytes: [u8; SOCKADDR_CAPACITY],
    len: usize,
}

const _: () = {
    assert!(SOCKADDR_CAPACITY >= size_of::<SOCKADDR_IN6>());
    assert!(align_of::<SockAddrBuffer>() >= align_of::<SOCKADDR_IN6>());
};

impl SockAddrBuffer {
    /// An all-zero buffer large enough for any address, e.g. for `WskGetLocalAddress` to fill.
    #[must_use]
    pub const fn zeroed() -> Self {
        Self {
            bytes: [0; SOCKADDR_CAPACITY],
            len: SOCKADDR_CAPACITY,
        }
    }

    /// Encodes `addr`:
    /// - `SOCKADDR_IN`: `sin_family` at 0, `sin_port` (network order) at 2, `sin_addr` at 4,
    ///   `sin_zero[8]` at 8; 16 bytes;
    /// - `SOCKADDR_IN6`: `sin6_family` at 0, `sin6_port` at 2, `sin6_flowinfo` at 4,
    ///   `sin6_addr` at 8, `sin6_scope_id` at 24; 28 bytes.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        let mut buffer = Self::zeroed();
        let bytes = &mut buffer.bytes;
        let port = addr.port().to_be_bytes();
        buffer.len = match addr {
            SocketAddr::V4(v4) => {
                write(bytes, 0, &AF_INET.to_ne_bytes());
                write(bytes, 2, &port);
                write(bytes, 4, &v4.ip().octets());
                size_of::<SOCKADDR_IN>()
            }
            SocketAddr::V6(v6) => {
                write(bytes, 0, &AF_INET6.to_ne_bytes());
                write(bytes, 2, &port);
                write(bytes, 4, &v6.flowinfo().to_be_bytes());
                write(bytes, 8, &v6.ip().octets());
                write(bytes, 24, &v6.scope_id().to_ne_bytes());
                size_of::<SOCKADDR_IN6>()
            }
        };
        buffer
    }

    /// The encoded bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }

    /// The buffer as a `PSOCKADDR` argument (`bytes` is the first field of this 8-aligned
    /// `repr(C)` struct).
    #[must_use]
    pub const fn as_sockaddr_mut(&mut self) -> *mut SOCKADDR {
        core::ptr::from_mut(self).cast()
    }

    /// The buffer as a `const SOCKADDR*`.
    #[must_use]
    pub const fn as_sockaddr(&self) -> *const SOCKADDR {
        core::ptr::from_ref(self).cast()
    }
}

fn write(out: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = out.get_mut(at..at.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}

fn read<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Decodes a `SOCKADDR_IN` or `SOCKADDR_IN6` from its bytes (at least the structure's size).
/// Returns `None` for another family or a short buffer.
#[must_use]
pub fn decode(bytes: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(read(bytes, 0)?);
    let port = u16::from_be_bytes(read(bytes, 2)?);
    if family == AF_INET && bytes.len() >= size_of::<SOCKADDR_IN>() {
        let ip = Ipv4Addr::from(read::<4>(bytes, 4)?);
        Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
    } else if family == AF_INET6 && bytes.len() >= size_of::<SOCKADDR_IN6>() {
        let flowinfo = u32::from_be_bytes(read(bytes, 4)?);
        let ip = Ipv6Addr::from(read::<16>(bytes, 8)?);
        let scope_id = u32::from_ne_bytes(read(bytes, 24)?);
        Some(SocketAddr::V6(SocketAddrV6::new(
            ip, port, flowinfo, scope_id,
        )))
    } else {
        None
    }
}

// The offsets `new` writes, checked against windows-sys' declarations of the structures.
const _: () = {
    use core::mem::offset_of;
    assert!(size_of::<SOCKADDR_IN>() == 16);
    assert!(offset_of!(SOCKADDR_IN, sin_port) == 2);
    assert!(offset_of!(SOCKADDR_IN, sin_addr) == 4);
    assert!(size_of::<SOCKADDR_IN6>() == 28);
    assert!(offset_of!(SOCKADDR_IN6, sin6_flowinfo) == 4);
    assert!(offset_of!(SOCKADDR_IN6, sin6_addr) == 8);
    assert!(offset_of!(SOCKADDR_IN6, Anonymous) == 24);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bytes() {
        for text in ["127.0.0.1:4000", "[::1]:53", "[fe80::1%3]:9"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(decode(SockAddrBuffer::new(addr).as_bytes()), Some(addr));
        }
        let v4 = SockAddrBuffer::new("10.1.2.3:258".parse().unwrap());
        assert_eq!(
            v4.as_bytes(),
            &[2, 0, 1, 2, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let v6 = SockAddrBuffer::new("[::1]:1".parse().unwrap());
        assert_eq!(v6.as_bytes().len(), 28);
        assert_eq!(&v6.as_bytes()[..4], &[23, 0, 0, 1]);
        assert_eq!(decode(&[10, 0, 0, 1]), None);
    }
}
