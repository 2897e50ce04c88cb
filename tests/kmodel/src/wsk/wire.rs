//! Winsock's wire formats as the model's provider reads them: `CMSGHDR` control buffers and
//! `SOCKADDR_IN` / `SOCKADDR_IN6`.
//!
//! Written from the headers, never from core's encoder, so a mistake shared by the driver's
//! encoder and a decoder of its own cannot pass here. Header citations are to mingw-w64's
//! independent headers (`/usr/share/mingw-w64/include`, Debian's `mingw-w64-common` 10.0);
//! the Windows SDK keeps the `WSA_CMSG_*` macros in `ws2def.h`, mingw-w64 in `mswsock.h`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// `AF_INET` (`winsock2.h:229`).
pub(crate) const AF_INET: u16 = 2;
/// `AF_INET6` (`winsock2.h:252`).
pub(crate) const AF_INET6: u16 = 23;

/// `SOL_SOCKET` (`winsock2.h:306`).
pub(crate) const SOL_SOCKET: u32 = 0xffff;
/// `IPPROTO_IP` (`ws2def.h`, `IPPROTO` enum: 0).
pub(crate) const IPPROTO_IP: u32 = 0;
/// `IPPROTO_UDP` (`ws2def.h`, `IPPROTO` enum: 17).
pub(crate) const IPPROTO_UDP: u32 = 17;
/// `IPPROTO_IPV6` (`winsock2.h:100`).
pub(crate) const IPPROTO_IPV6: u32 = 41;

/// `SO_BROADCAST` (`winsock2.h:196`).
pub(crate) const SO_BROADCAST: u32 = 0x0020;

// IPPROTO_IP options, `ws2ipdef.h:24-63`.
/// `IP_OPTIONS`.
pub(crate) const IP_OPTIONS: u32 = 1;
/// `IP_TOS`.
pub(crate) const IP_TOS: u32 = 3;
/// `IP_TTL`.
pub(crate) const IP_TTL: u32 = 4;
/// `IP_MULTICAST_IF`.
pub(crate) const IP_MULTICAST_IF: u32 = 9;
/// `IP_MULTICAST_TTL`.
pub(crate) const IP_MULTICAST_TTL: u32 = 10;
/// `IP_MULTICAST_LOOP`.
pub(crate) const IP_MULTICAST_LOOP: u32 = 11;
/// `IP_DONTFRAGMENT`.
pub(crate) const IP_DONTFRAGMENT: u32 = 14;
/// `IP_PKTINFO`.
pub(crate) const IP_PKTINFO: u32 = 19;
/// `IP_HOPLIMIT` (= `IP_RECVTTL`).
pub(crate) const IP_HOPLIMIT: u32 = 21;
/// `IP_UNICAST_IF`.
pub(crate) const IP_UNICAST_IF: u32 = 31;
/// `IP_RECVTOS`.
pub(crate) const IP_RECVTOS: u32 = 40;
/// `IP_ECN`.
pub(crate) const IP_ECN: u32 = 50;
/// `IP_WFP_REDIRECT_RECORDS`.
pub(crate) const IP_WFP_REDIRECT_RECORDS: u32 = 60;
/// `IP_RECVERR`.
pub(crate) const IP_RECVERR: u32 = 75;

// IPPROTO_IPV6 options, `ws2ipdef.h:71-106`.
/// `IPV6_UNICAST_HOPS`.
pub(crate) const IPV6_UNICAST_HOPS: u32 = 4;
/// `IPV6_MULTICAST_IF`.
pub(crate) const IPV6_MULTICAST_IF: u32 = 9;
/// `IPV6_MULTICAST_HOPS`.
pub(crate) const IPV6_MULTICAST_HOPS: u32 = 10;
/// `IPV6_MULTICAST_LOOP`.
pub(crate) const IPV6_MULTICAST_LOOP: u32 = 11;
/// `IPV6_DONTFRAG`.
pub(crate) const IPV6_DONTFRAG: u32 = 14;
/// `IPV6_PKTINFO`.
pub(crate) const IPV6_PKTINFO: u32 = 19;
/// `IPV6_HOPLIMIT`.
pub(crate) const IPV6_HOPLIMIT: u32 = 21;
/// `IPV6_V6ONLY`.
pub(crate) const IPV6_V6ONLY: u32 = 27;
/// `IPV6_UNICAST_IF`.
pub(crate) const IPV6_UNICAST_IF: u32 = 31;
/// `IPV6_RTHDR`.
pub(crate) const IPV6_RTHDR: u32 = 32;
/// `IPV6_TCLASS`.
pub(crate) const IPV6_TCLASS: u32 = 39;
/// `IPV6_RECVTCLASS`.
pub(crate) const IPV6_RECVTCLASS: u32 = 40;
/// `IPV6_ECN`.
pub(crate) const IPV6_ECN: u32 = 50;
/// `IPV6_WFP_REDIRECT_RECORDS`.
pub(crate) const IPV6_WFP_REDIRECT_RECORDS: u32 = 60;
/// `IPV6_RECVERR`.
pub(crate) const IPV6_RECVERR: u32 = 75;

/// `UDP_SEND_MSG_SIZE` (SDK `ws2tcpip.h`; absent from mingw-w64; msquic declares it itself,
/// `src/platform/datapath_winkernel.c:22`).
pub(crate) const UDP_SEND_MSG_SIZE: u32 = 2;
/// `UDP_RECV_MAX_COALESCED_SIZE` (SDK `ws2tcpip.h`, 3).
pub(crate) const UDP_RECV_MAX_COALESCED_SIZE: u32 = 3;

/// `IOC_WSK` = `IOC_WS2 | 0x07000000` (WDK `wsk.h`; `IOC_WS2` is `winsock2.h`'s 0x08000000).
const IOC_WSK: u32 = 0x0800_0000 | 0x0700_0000;
/// `IOC_IN` (`winsock2.h:68`).
const IOC_IN: u32 = 0x8000_0000;
/// `SIO_WSK_SET_REMOTE_ADDRESS` = `_WSAIOW(IOC_WSK, 0x1)` (WDK `wsk.h`).
pub(crate) const SIO_WSK_SET_REMOTE_ADDRESS: u32 = IOC_IN | IOC_WSK | 0x1;
/// `SIO_WSK_SET_SENDTO_ADDRESS` = `_WSAIOW(IOC_WSK, 0x6)` (WDK `wsk.h`; `winsock2.h:535`).
pub(crate) const SIO_WSK_SET_SENDTO_ADDRESS: u32 = IOC_IN | IOC_WSK | 0x6;

/// `sizeof(WSACMSGHDR)` on x64: `SIZE_T cmsg_len; INT cmsg_level; INT cmsg_type`
/// (`mswsock.h:170-174`).
pub(crate) const CMSGHDR_LEN: usize = 16;
/// `TYPE_ALIGNMENT(WSACMSGHDR)` (its `SIZE_T`) and `MAX_NATURAL_ALIGNMENT`
/// (`sizeof(ULONGLONG)` on 64-bit, `winnt.h:119`): both 8 on x64.
pub(crate) const CMSG_ALIGNMENT: usize = 8;

/// `WSA_CMSGHDR_ALIGN(n)` / `WSA_CMSGDATA_ALIGN(n)` (`mswsock.h:176-177`; equal on x64).
pub(crate) const fn cmsg_align(n: usize) -> usize {
    (n + CMSG_ALIGNMENT - 1) & !(CMSG_ALIGNMENT - 1)
}

/// `WSA_CMSG_DATA(cmsg) - cmsg` = `WSA_CMSGDATA_ALIGN(sizeof(WSACMSGHDR))` (`mswsock.h:180`).
pub(crate) const CMSG_DATA_OFFSET: usize = cmsg_align(CMSGHDR_LEN);

/// `WSA_CMSG_LEN(n)` (`mswsock.h:182`).
#[cfg(test)]
pub(crate) const fn cmsg_len(n: usize) -> usize {
    CMSG_DATA_OFFSET + n
}

/// `WSA_CMSG_SPACE(n)` (`mswsock.h:181`).
#[cfg(test)]
pub(crate) const fn cmsg_space(n: usize) -> usize {
    cmsg_align(CMSGHDR_LEN + cmsg_align(n))
}

/// `sizeof(IN_PKTINFO)`: `IN_ADDR ipi_addr; UINT ipi_ifindex` (`ws2tcpip.h:120-125`).
pub(crate) const IN_PKTINFO_LEN: usize = 8;
/// `sizeof(IN6_PKTINFO)`: `IN6_ADDR ipi6_addr; UINT ipi6_ifindex` (`ws2tcpip.h:127-132`).
pub(crate) const IN6_PKTINFO_LEN: usize = 20;
/// `sizeof(INT)` / `sizeof(DWORD)`.
pub(crate) const INT_LEN: usize = 4;

/// One control message as it lies in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cmsg<'a> {
    /// Offset of its header in the buffer.
    pub(crate) offset: usize,
    /// `cmsg_level`.
    pub(crate) level: u32,
    /// `cmsg_type`.
    pub(crate) ty: u32,
    /// `cmsg_len - WSA_CMSG_LEN(0)` bytes at `WSA_CMSG_DATA`.
    pub(crate) data: &'a [u8],
    /// The bytes between the data and the next header (`WSA_CMSGHDR_ALIGN(cmsg_len)`).
    pub(crate) padding: &'a [u8],
}

/// Why a control buffer cannot be walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// `cmsg_len` below `sizeof(WSACMSGHDR)`: `WSA_CMSG_NXTHDR` would not advance.
    LengthBelowHeader {
        /// Offset of the header.
        offset: usize,
        /// Its `cmsg_len`.
        len: usize,
    },
    /// `cmsg_len` or its padded extent runs past `ControlInfoLength`.
    PastEnd {
        /// Offset of the header.
        offset: usize,
        /// Its `cmsg_len`.
        len: usize,
    },
}

/// A walked control buffer: its messages, and the bytes after the last one that
/// `WSA_CMSG_NXTHDR` skips (fewer than a header).
#[derive(Debug, Default)]
pub(crate) struct ControlBuffer<'a> {
    pub(crate) messages: Vec<Cmsg<'a>>,
    /// `(offset, len)` of bytes after the last message too short for a header.
    pub(crate) stray: Option<(usize, usize)>,
}

/// Walks `bytes` (`ControlInfo`, `ControlInfoLength` bytes) as `WSA_CMSG_FIRSTHDR` /
/// `WSA_CMSG_NXTHDR` do (`mswsock.h:178-179`), refusing a header whose `cmsg_len` is below
/// the header size or whose padded extent (`WSA_CMSGHDR_ALIGN(cmsg_len)`) passes the end.
///
/// The macros alone accept an unpadded total, but Windows' stack does not: wireguard-nt
/// passed the last `cmsg_len` as the length, which failed for `IN6_PKTINFO` (36, padded
/// 40) and worked for `IN_PKTINFO` (24), and was fixed by passing the padded total
/// (wireguard-nt commit 19ab593, "It expects to receive the total space, with padding").
pub(crate) fn walk(bytes: &[u8]) -> Result<ControlBuffer<'_>, Malformed> {
    let mut walked = ControlBuffer::default();
    let mut offset = 0;
    // FIRSTHDR: a header only if the buffer holds one; NXTHDR: the next only if it fits.
    while bytes.len().saturating_sub(offset) >= CMSGHDR_LEN {
        let header = &bytes[offset..offset + CMSGHDR_LEN];
        let len = usize::try_from(u64::from_le_bytes(read(header, 0))).unwrap_or(usize::MAX);
        let level = u32::from_le_bytes(read(header, 8));
        let ty = u32::from_le_bytes(read(header, 12));
        if len < CMSGHDR_LEN {
            return Err(Malformed::LengthBelowHeader { offset, len });
        }
        let remaining = bytes.len() - offset;
        if len > remaining || cmsg_align(len) > remaining {
            return Err(Malformed::PastEnd { offset, len });
        }
        let data_start = offset + CMSG_DATA_OFFSET.min(len);
        let end = offset + len;
        let padded_end = offset + cmsg_align(len);
        walked.messages.push(Cmsg {
            offset,
            level,
            ty,
            data: &bytes[data_start..end],
            padding: &bytes[end..padded_end],
        });
        offset = padded_end;
    }
    if offset < bytes.len() {
        walked.stray = Some((offset, bytes.len() - offset));
    }
    Ok(walked)
}

/// One control message as `WSA_CMSG_*` lay it out: header with `cmsg_len =
/// WSA_CMSG_LEN(data.len())`, the data at `WSA_CMSG_DATA`, zero padding to
/// `WSA_CMSG_SPACE(data.len())` (for the profile table's probes).
pub(crate) fn encode_cmsg(level: u32, ty: u32, data: &[u8]) -> Vec<u8> {
    let len = CMSG_DATA_OFFSET + data.len();
    let mut out = Vec::with_capacity(cmsg_align(len));
    out.extend((len as u64).to_le_bytes());
    out.extend(level.to_le_bytes());
    out.extend(ty.to_le_bytes());
    out.extend(data);
    out.resize(cmsg_align(len), 0);
    out
}

/// The `N` bytes at `at` (zero-filled past the end).
fn read<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(src) = bytes.get(at..) {
        let n = src.len().min(N);
        out[..n].copy_from_slice(&src[..n]);
    }
    out
}

/// A little-endian `INT`/`DWORD` of exactly four bytes.
pub(crate) fn dword(data: &[u8]) -> Option<u32> {
    (data.len() == INT_LEN).then(|| u32::from_le_bytes(read(data, 0)))
}

/// `IN_PKTINFO`: `ipi_addr` (network order) at 0, `ipi_ifindex` (host order) at 4.
pub(crate) fn in_pktinfo(data: &[u8]) -> Option<(Ipv4Addr, u32)> {
    (data.len() == IN_PKTINFO_LEN).then(|| {
        (
            Ipv4Addr::from(read::<4>(data, 0)),
            u32::from_le_bytes(read(data, 4)),
        )
    })
}

/// `IN6_PKTINFO`: `ipi6_addr` at 0, `ipi6_ifindex` (host order) at 16.
pub(crate) fn in6_pktinfo(data: &[u8]) -> Option<(Ipv6Addr, u32)> {
    (data.len() == IN6_PKTINFO_LEN).then(|| {
        (
            Ipv6Addr::from(read::<16>(data, 0)),
            u32::from_le_bytes(read(data, 16)),
        )
    })
}

/// `sizeof(SOCKADDR_IN)`: `short sin_family; u_short sin_port; IN_ADDR sin_addr;
/// char sin_zero[8]` (`psdk_inc/_ip_types.h:75-80`).
pub(crate) const SOCKADDR_IN_LEN: usize = 16;
/// `sizeof(SOCKADDR_IN6)`: `short sin6_family; u_short sin6_port; u_long sin6_flowinfo;
/// IN6_ADDR sin6_addr; u_long sin6_scope_id` (`ws2ipdef.h:140-149`).
pub(crate) const SOCKADDR_IN6_LEN: usize = 28;

/// The size of a socket address of `family`, if it is one the provider serves.
pub(crate) const fn sockaddr_len(family: u16) -> Option<usize> {
    match family {
        AF_INET => Some(SOCKADDR_IN_LEN),
        AF_INET6 => Some(SOCKADDR_IN6_LEN),
        _ => None,
    }
}

/// The address family of a socket: `AF_INET6` or `AF_INET`.
pub(crate) const fn family_for(v6: bool) -> u16 {
    if v6 { AF_INET6 } else { AF_INET }
}

/// `sa_family` (host order `ADDRESS_FAMILY` at offset 0).
pub(crate) fn family(bytes: &[u8]) -> u16 {
    u16::from_le_bytes(read(bytes, 0))
}

/// Decodes a `SOCKADDR_IN` / `SOCKADDR_IN6`: ports (and `sin6_flowinfo`) in network order,
/// `sin6_scope_id` in host order. `sin_zero` is not looked at. `None` for another family or
/// too few bytes.
pub(crate) fn decode_sockaddr(bytes: &[u8]) -> Option<SocketAddr> {
    let family = family(bytes);
    if bytes.len() < sockaddr_len(family)? {
        return None;
    }
    let port = u16::from_be_bytes(read(bytes, 2));
    Some(match family {
        AF_INET => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(read::<4>(bytes, 4)), port)),
        _ => SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(read::<16>(bytes, 8)),
            port,
            u32::from_be_bytes(read(bytes, 4)),
            u32::from_le_bytes(read(bytes, 24)),
        )),
    })
}

/// Encodes `address` as the `SOCKADDR_IN` / `SOCKADDR_IN6` Windows would write.
pub(crate) fn encode_sockaddr(address: SocketAddr) -> Vec<u8> {
    let port = address.port().to_be_bytes();
    match address {
        SocketAddr::V4(v4) => [
            AF_INET.to_le_bytes().as_slice(),
            &port,
            &v4.ip().octets(),
            &[0; 8],
        ]
        .concat(),
        SocketAddr::V6(v6) => [
            AF_INET6.to_le_bytes().as_slice(),
            &port,
            &v6.flowinfo().to_be_bytes(),
            &v6.ip().octets(),
            &v6.scope_id().to_le_bytes(),
        ]
        .concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u64, level: u32, ty: u32) -> Vec<u8> {
        [
            len.to_le_bytes().as_slice(),
            &level.to_le_bytes(),
            &ty.to_le_bytes(),
        ]
        .concat()
    }

    #[test]
    fn macros_as_the_header_computes_them() {
        assert_eq!(cmsg_len(4), 20);
        assert_eq!(cmsg_space(4), 24);
        assert_eq!(cmsg_space(IN_PKTINFO_LEN), 24);
        assert_eq!(cmsg_space(IN6_PKTINFO_LEN), 40);
        assert_eq!(cmsg_space(0), 16);
        assert_eq!(SIO_WSK_SET_SENDTO_ADDRESS, 0x8F00_0006);
    }

    #[test]
    fn walk_follows_nxthdr() {
        let mut buffer = header(20, IPPROTO_IP, IP_TOS);
        buffer.extend([0xB8, 0, 0, 0, 0, 0, 0, 0]);
        buffer.extend(header(16, IPPROTO_IP, IP_OPTIONS));
        let walked = walk(&buffer).unwrap();
        assert_eq!(walked.messages.len(), 2);
        assert_eq!(walked.messages[0].data, [0xB8, 0, 0, 0]);
        assert_eq!(walked.messages[0].padding, [0; 4]);
        assert_eq!(walked.messages[1].offset, 24);
        assert!(walked.messages[1].data.is_empty());
        assert_eq!(walked.stray, None);
        // The unpadded total (20 of 24) is refused.
        assert_eq!(
            walk(&buffer[..20]).unwrap_err(),
            Malformed::PastEnd { offset: 0, len: 20 }
        );
        // Bytes too few for a header are skipped, as NXTHDR skips them.
        let mut stray = buffer.clone();
        stray.extend([0; 8]);
        assert_eq!(walk(&stray).unwrap().stray, Some((40, 8)));
        let mut zero = header(0, IPPROTO_IP, IP_TOS);
        zero.extend([0; 8]);
        assert_eq!(
            walk(&zero).unwrap_err(),
            Malformed::LengthBelowHeader { offset: 0, len: 0 }
        );
    }

    #[test]
    fn sockaddr_round_trip() {
        for text in ["127.0.0.1:4660", "[fe80::1%7]:53", "[::ffff:10.0.0.1]:1"] {
            let address: SocketAddr = text.parse().unwrap();
            let bytes = encode_sockaddr(address);
            assert_eq!(decode_sockaddr(&bytes), Some(address));
        }
        let v4 = encode_sockaddr("127.0.0.1:4660".parse().unwrap());
        assert_eq!(v4[..8], [2, 0, 0x12, 0x34, 127, 0, 0, 1]);
        assert_eq!(decode_sockaddr(&v4[..15]), None);
    }
}
