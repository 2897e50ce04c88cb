//! A UDP receiver that reports what arrived: payload, source, destination, interface and TOS.
//!
//! The destination address and arrival interface (`IP_PKTINFO`/`IPV6_PKTINFO`) and the TOS
//! byte / traffic class come through `recvmsg` on Unix hosts and `WSARecvMsg` on Windows.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// One received datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The payload.
    pub payload: Vec<u8>,
    /// Who sent it.
    pub source: SocketAddr,
    /// The address it was sent to.
    pub destination: Option<IpAddr>,
    /// The index of the interface it arrived on (`ipi_ifindex` / `ipi6_ifindex`).
    pub interface: Option<u32>,
    /// The TOS byte / traffic class it carried (Unix hosts).
    pub tos: Option<u8>,
    /// The TTL / hop limit it arrived with (Unix hosts).
    pub hop_limit: Option<u8>,
}

/// A bound UDP socket collecting datagrams.
pub struct Receiver {
    socket: UdpSocket,
    /// `WSARecvMsg`, looked up once at bind.
    #[cfg(windows)]
    recv_msg: windows_sys::Win32::Networking::WinSock::LPFN_WSARECVMSG,
}

impl Receiver {
    /// Binds `address` (port 0 picks one) with a large receive buffer, and asks for
    /// destination and TOS information.
    ///
    /// # Errors
    /// The bind or socket-option failure.
    pub fn bind(address: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(address)?;
        #[cfg(unix)]
        unix::enable_ancillary(&socket, address.is_ipv6())?;
        #[cfg(windows)]
        windows::enable_ancillary(&socket, address.is_ipv6())?;
        Ok(Self {
            #[cfg(windows)]
            recv_msg: windows::wsa_recv_msg(&socket)?,
            socket,
        })
    }

    /// Joins `group` on the interface with address `interface` (`IP_ADD_MEMBERSHIP`).
    ///
    /// # Errors
    /// The socket-option failure.
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.socket.join_multicast_v4(&group, &interface)
    }

    /// Joins `group` on the interface with index `interface` (`IPV6_ADD_MEMBERSHIP`).
    ///
    /// # Errors
    /// The socket-option failure.
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket.join_multicast_v6(&group, interface)
    }

    /// The bound address.
    ///
    /// # Errors
    /// `getsockname` failure.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits up to `timeout` for one datagram.
    ///
    /// # Errors
    /// `WouldBlock`/`TimedOut` when nothing arrived in time, or a socket error.
    pub fn recv(&self, timeout: Duration) -> io::Result<Arrival> {
        self.socket.set_read_timeout(Some(timeout))?;
        #[cfg(unix)]
        {
            unix::recv(&self.socket)
        }
        #[cfg(windows)]
        {
            windows::recv(&self.socket, self.recv_msg)
        }
        #[cfg(not(any(unix, windows)))]
        {
            let mut buffer = vec![0; 65_536];
            let (len, source) = self.socket.recv_from(&mut buffer)?;
            buffer.truncate(len);
            Ok(Arrival {
                payload: buffer,
                source,
                destination: None,
                interface: None,
                tos: None,
                hop_limit: None,
            })
        }
    }

    /// Takes every datagram already queued, without waiting.
    ///
    /// # Errors
    /// A socket error switching to non-blocking mode and back.
    pub fn take_queued(&self) -> io::Result<Vec<Arrival>> {
        self.socket.set_nonblocking(true)?;
        let mut arrivals = Vec::new();
        while let Ok(arrival) = self.recv(Duration::from_secs(1)) {
            arrivals.push(arrival);
        }
        self.socket.set_nonblocking(false)?;
        Ok(arrivals)
    }

    /// Collects datagrams until `count` arrived or `timeout` passes without one.
    #[must_use]
    pub fn recv_up_to(&self, count: usize, timeout: Duration) -> Vec<Arrival> {
        let mut arrivals = Vec::with_capacity(count);
        while arrivals.len() < count {
            match self.recv(timeout) {
                Ok(arrival) => arrivals.push(arrival),
                Err(_) => break,
            }
        }
        arrivals
    }
}

#[cfg(unix)]
mod unix {
    use std::io::{self, IoSliceMut};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
    };

    use super::Arrival;

    pub(super) fn enable_ancillary(socket: &UdpSocket, v6: bool) -> io::Result<()> {
        // Room for bursts (the kernel caps it at net.core.rmem_max).
        setsockopt(socket, sockopt::RcvBuf, &(8 << 20))?;
        if v6 {
            setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true)?;
            setsockopt(socket, sockopt::Ipv6RecvTClass, &true)?;
            setsockopt(socket, sockopt::Ipv6RecvHopLimit, &true)?;
        } else {
            setsockopt(socket, sockopt::Ipv4PacketInfo, &true)?;
            setsockopt(socket, sockopt::IpRecvTos, &true)?;
            setsockopt(socket, sockopt::Ipv4RecvTtl, &true)?;
        }
        Ok(())
    }

    pub(super) fn recv(socket: &UdpSocket) -> io::Result<Arrival> {
        let mut buffer = vec![0_u8; 65_536];
        let mut control = nix::cmsg_space!(
            nix::libc::in6_pktinfo,
            nix::libc::c_int,
            nix::libc::in_pktinfo,
            u8,
            nix::libc::c_int
        );
        let (len, source, destination, interface, tos, hop_limit) = {
            let mut iov = [IoSliceMut::new(&mut buffer)];
            let message = recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut control),
                MsgFlags::empty(),
            )?;
            let mut destination = None;
            let mut interface = None;
            let mut tos = None;
            let mut hop_limit = None;
            for cmsg in message.cmsgs()? {
                match cmsg {
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        destination = Some(IpAddr::V4(Ipv4Addr::from(
                            info.ipi_addr.s_addr.to_ne_bytes(),
                        )));
                        interface = u32::try_from(info.ipi_ifindex).ok();
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                        interface = Some(info.ipi6_ifindex);
                    }
                    ControlMessageOwned::Ipv4Tos(value) => tos = Some(value),
                    ControlMessageOwned::Ipv6TClass(value) => tos = u8::try_from(value).ok(),
                    ControlMessageOwned::Ipv4Ttl(value)
                    | ControlMessageOwned::Ipv6HopLimit(value) => {
                        hop_limit = u8::try_from(value).ok();
                    }
                    _ => {}
                }
            }
            let source = message.address.and_then(|address| {
                address
                    .as_sockaddr_in()
                    .map(|v4| SocketAddr::V4((*v4).into()))
                    .or_else(|| {
                        address
                            .as_sockaddr_in6()
                            .map(|v6| SocketAddr::V6((*v6).into()))
                    })
            });
            (
                message.bytes,
                source,
                destination,
                interface,
                tos,
                hop_limit,
            )
        };
        buffer.truncate(len);
        let source = source.ok_or_else(|| io::Error::other("datagram without a source address"))?;
        Ok(Arrival {
            payload: buffer,
            source,
            destination,
            interface,
            tos,
            hop_limit,
        })
    }
}

/// The Windows receiver: `WSARecvMsg` (an extension function, found with `WSAIoctl`) with
/// `IP_PKTINFO`/`IPV6_PKTINFO` for the destination and interface, `IP_RECVTOS`/`IPV6_RECVTCLASS`
/// for the TOS byte / traffic class, ECN bits included (msquic's user-mode datapath asks for the
/// same, `datapath_winuser.c`), and `IP_HOPLIMIT`/`IPV6_HOPLIMIT` for the hop limit where msquic
/// asks for it. Not run here: no Windows.
#[cfg(windows)]
mod windows {
    use std::io;
    use std::net::UdpSocket;
    use std::os::windows::io::AsRawSocket;

    use windows_sys::Win32::Networking::WinSock::{
        IP_HOPLIMIT, IP_PKTINFO, IP_RECVTOS, IPPROTO_IP, IPPROTO_IPV6, IPV6_HOPLIMIT, IPV6_PKTINFO,
        IPV6_RECVTCLASS, LPFN_WSARECVMSG, SIO_GET_EXTENSION_FUNCTION_POINTER, SO_RCVBUF, SOCKET,
        SOL_SOCKET, WSABUF, WSAID_WSARECVMSG, WSAIoctl, WSAMSG, setsockopt,
    };

    use super::Arrival;
    use super::wsa::{parse_control, socket_address};

    fn socket_of(socket: &UdpSocket) -> SOCKET {
        // A SOCKET is the raw socket value.
        usize::try_from(socket.as_raw_socket()).unwrap_or(usize::MAX)
    }

    /// A `DWORD` socket option.
    fn set_option(socket: &UdpSocket, level: i32, option: i32, value: u32) -> io::Result<()> {
        // SAFETY: `value` is a 4-byte option value that outlives the call.
        let result = unsafe {
            setsockopt(
                socket_of(socket),
                level,
                option,
                (&raw const value).cast(),
                4,
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Windows Server 2022's build: msquic turns the received hop limit and DSCP off there,
    /// "Some USO/URO bug blocks TTL/Recv DSCP feature support on Windows Server 2022"
    /// (`datapath_winuser.c`).
    const SERVER_2022: u32 = 20348;

    pub(super) fn enable_ancillary(socket: &UdpSocket, v6: bool) -> io::Result<()> {
        let (level, pktinfo, tos, hop_limit) = if v6 {
            (IPPROTO_IPV6, IPV6_PKTINFO, IPV6_RECVTCLASS, IPV6_HOPLIMIT)
        } else {
            (IPPROTO_IP, IP_PKTINFO, IP_RECVTOS, IP_HOPLIMIT)
        };
        // Room for bursts, as the Unix receiver asks (the pipelined scenarios send thousands).
        let _ = set_option(socket, SOL_SOCKET, SO_RCVBUF, 8 << 20);
        set_option(socket, level, pktinfo, 1)?;
        // Optional: refused or not asked for, arrivals carry no TOS / hop limit and the
        // scenarios that need one report their check skipped. Not on Server 2022, as msquic.
        if crate::record::windows_build() != Some(SERVER_2022) {
            let _ = set_option(socket, level, tos, 1);
            let _ = set_option(socket, level, hop_limit, 1);
        }
        Ok(())
    }

    /// `WSARecvMsg`, an extension function each socket provider gives out.
    pub(super) fn wsa_recv_msg(socket: &UdpSocket) -> io::Result<LPFN_WSARECVMSG> {
        let guid = WSAID_WSARECVMSG;
        let mut function: LPFN_WSARECVMSG = None;
        let mut returned = 0_u32;
        // SAFETY: The GUID in and the function pointer out are plain buffers of the sizes
        // given; no overlapped I/O.
        let result = unsafe {
            WSAIoctl(
                socket_of(socket),
                SIO_GET_EXTENSION_FUNCTION_POINTER,
                (&raw const guid).cast(),
                u32::try_from(size_of_val(&guid)).unwrap_or(0),
                (&raw mut function).cast(),
                u32::try_from(size_of_val(&function)).unwrap_or(0),
                &raw mut returned,
                std::ptr::null_mut(),
                None,
            )
        };
        if result != 0 || function.is_none() {
            return Err(io::Error::last_os_error());
        }
        Ok(function)
    }

    pub(super) fn recv(socket: &UdpSocket, recv_msg: LPFN_WSARECVMSG) -> io::Result<Arrival> {
        let function = recv_msg.ok_or_else(|| io::Error::other("no WSARecvMsg"))?;
        let mut payload = vec![0_u8; 65_536];
        let mut control = [0_u64; 64];
        let mut name = [0_u64; 16];
        let mut data = WSABUF {
            len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            buf: payload.as_mut_ptr(),
        };
        let mut message = WSAMSG {
            name: name.as_mut_ptr().cast(),
            namelen: i32::try_from(size_of_val(&name)).unwrap_or(0),
            lpBuffers: &raw mut data,
            dwBufferCount: 1,
            Control: WSABUF {
                len: u32::try_from(size_of_val(&control)).unwrap_or(0),
                buf: control.as_mut_ptr().cast(),
            },
            dwFlags: 0,
        };
        let mut received = 0_u32;
        // SAFETY: Every buffer `message` points to lives until the call returns; blocking
        // (no OVERLAPPED), so nothing is written afterwards. SO_RCVTIMEO bounds the wait.
        let result = unsafe {
            function(
                socket_of(socket),
                &raw mut message,
                &raw mut received,
                std::ptr::null_mut(),
                None,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        payload.truncate(usize::try_from(received).unwrap_or(0));
        // SAFETY: `name` and `control` are plain byte buffers of the given sizes.
        let name_bytes =
            unsafe { std::slice::from_raw_parts(name.as_ptr().cast::<u8>(), size_of_val(&name)) };
        let used = usize::try_from(message.Control.len)
            .unwrap_or(0)
            .min(size_of_val(&control));
        // SAFETY: As above; `used` is at most the buffer's size.
        let control_bytes =
            unsafe { std::slice::from_raw_parts(control.as_ptr().cast::<u8>(), used) };
        let source = socket_address(name_bytes)
            .ok_or_else(|| io::Error::other("datagram without a source address"))?;
        let control = parse_control(control_bytes);
        Ok(Arrival {
            payload,
            source,
            destination: control.destination,
            interface: control.interface,
            tos: control.tos,
            hop_limit: control.hop_limit,
        })
    }
}

/// What `WSARecvMsg` hands back, read by ws2def.h's rules: the sender's `SOCKADDR_IN` /
/// `SOCKADDR_IN6` and the control messages. Platform-neutral so Linux tests it.
#[cfg(any(windows, test))]
mod wsa {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

    /// `AF_INET`, `AF_INET6` as `sa_family` holds them.
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 23;
    /// `sizeof(CMSGHDR)` on 64-bit Windows, and the alignment of its entries
    /// (`WSA_CMSGDATA_ALIGN`, `WSA_CMSGHDR_ALIGN`: pointer size).
    const CMSG_HEADER: usize = 16;
    const CMSG_ALIGN: usize = 8;
    /// ws2def.h / ws2ipdef.h levels and types.
    const IPPROTO_IP: i32 = 0;
    const IPPROTO_IPV6: i32 = 41;
    const IP_PKTINFO: i32 = 19;
    const IP_TOS: i32 = 3;
    const IPV6_PKTINFO: i32 = 19;
    const IPV6_TCLASS: i32 = 39;
    /// The hop limit as it arrives when `IP_HOPLIMIT` / `IPV6_HOPLIMIT` is on: `IP_TTL` at
    /// `IPPROTO_IP`, `IPV6_HOPLIMIT` at `IPPROTO_IPV6`, each an INT (msquic's receive path).
    const IP_TTL: i32 = 4;
    const IPV6_HOPLIMIT: i32 = 21;

    fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
    }

    /// The sender's address from a `SOCKADDR_IN` / `SOCKADDR_IN6`.
    pub(super) fn socket_address(bytes: &[u8]) -> Option<SocketAddr> {
        let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
        match u16_at(bytes, 0)? {
            AF_INET => {
                let ip: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
                Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
            }
            AF_INET6 => {
                let flow = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
                let ip: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
                let scope = u32::from_le_bytes(bytes.get(24..28)?.try_into().ok()?);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(ip),
                    port,
                    flow,
                    scope,
                )))
            }
            _ => None,
        }
    }

    /// What the control buffer says about one datagram.
    #[derive(Debug, Default, PartialEq, Eq)]
    pub(super) struct Control {
        /// `ipi_addr` / `ipi6_addr`.
        pub(super) destination: Option<IpAddr>,
        /// `ipi_ifindex` / `ipi6_ifindex`.
        pub(super) interface: Option<u32>,
        /// `IP_TOS` / `IPV6_TCLASS`.
        pub(super) tos: Option<u8>,
        /// `IP_TTL` / `IPV6_HOPLIMIT`.
        pub(super) hop_limit: Option<u8>,
    }

    fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    }

    /// Destination, interface and TOS from the control buffer (`WSA_CMSG_FIRSTHDR` / `NXTHDR`
    /// rules). `IN_PKTINFO` is `{IN_ADDR ipi_addr; ULONG ipi_ifindex}`, `IN6_PKTINFO`
    /// `{IN6_ADDR ipi6_addr; ULONG ipi6_ifindex}` (ws2ipdef.h).
    pub(super) fn parse_control(control: &[u8]) -> Control {
        let mut out = Control::default();
        let mut at = 0;
        while let Some(header) = control.get(at..at + CMSG_HEADER) {
            let len = usize::from_le_bytes(header[..8].try_into().unwrap_or_default());
            let level = i32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
            let kind = i32::from_le_bytes(header[12..16].try_into().unwrap_or_default());
            let Some(data) = len
                .checked_sub(CMSG_HEADER)
                .and_then(|n| control.get(at + CMSG_HEADER..at + CMSG_HEADER + n))
            else {
                break;
            };
            match (level, kind) {
                (IPPROTO_IP, IP_PKTINFO) => {
                    if let Some(ip) = data.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                        out.destination = Some(IpAddr::V4(Ipv4Addr::from(ip)));
                        out.interface = u32_at(data, 4);
                    }
                }
                (IPPROTO_IPV6, IPV6_PKTINFO) => {
                    if let Some(ip) = data.get(..16).and_then(|b| <[u8; 16]>::try_from(b).ok()) {
                        out.destination = Some(IpAddr::V6(Ipv6Addr::from(ip)));
                        out.interface = u32_at(data, 16);
                    }
                }
                // An INT holding the byte.
                (IPPROTO_IP, IP_TOS) | (IPPROTO_IPV6, IPV6_TCLASS) => {
                    out.tos = data.first().copied();
                }
                (IPPROTO_IP, IP_TTL) | (IPPROTO_IPV6, IPV6_HOPLIMIT) => {
                    out.hop_limit = u32_at(data, 0).and_then(|hops| u8::try_from(hops).ok());
                }
                _ => {}
            }
            let Some(next) = len.checked_next_multiple_of(CMSG_ALIGN) else {
                break;
            };
            if next == 0 {
                break;
            }
            at += next;
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
            let mut out = (CMSG_HEADER + data.len()).to_le_bytes().to_vec();
            out.extend_from_slice(&level.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(CMSG_ALIGN), 0);
            out
        }

        #[test]
        fn control_messages_give_destination_and_tos() {
            let mut control = cmsg(IPPROTO_IP, IP_PKTINFO, &[127, 0, 0, 2, 1, 0, 0, 0]);
            control.extend(cmsg(IPPROTO_IP, IP_TOS, &0x2a_i32.to_le_bytes()));
            control.extend(cmsg(IPPROTO_IP, IP_TTL, &64_i32.to_le_bytes()));
            assert_eq!(
                parse_control(&control),
                Control {
                    destination: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
                    interface: Some(1),
                    tos: Some(0x2a),
                    hop_limit: Some(64),
                }
            );
            let mut v6 = [0_u8; 20];
            v6[15] = 1;
            v6[16] = 7;
            let mut control = cmsg(IPPROTO_IPV6, IPV6_TCLASS, &0xb9_i32.to_le_bytes());
            control.extend(cmsg(IPPROTO_IPV6, IPV6_PKTINFO, &v6));
            control.extend(cmsg(IPPROTO_IPV6, IPV6_HOPLIMIT, &3_i32.to_le_bytes()));
            assert_eq!(
                parse_control(&control),
                Control {
                    destination: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                    interface: Some(7),
                    tos: Some(0xb9),
                    hop_limit: Some(3),
                }
            );
            // A hop limit that is no byte is not reported.
            let too_large = cmsg(IPPROTO_IP, IP_TTL, &300_i32.to_le_bytes());
            assert_eq!(parse_control(&too_large), Control::default());
            // Truncated: nothing read past the end.
            assert_eq!(
                parse_control(&control[..20]),
                Control {
                    tos: Some(0xb9),
                    ..Control::default()
                }
            );
            assert_eq!(parse_control(&[]), Control::default());
        }

        #[test]
        fn source_addresses() {
            let v4 = [2, 0, 0x23, 0x28, 10, 1, 2, 3];
            assert_eq!(socket_address(&v4), Some("10.1.2.3:9000".parse().unwrap()));
            let mut v6 = vec![23, 0, 0x23, 0x28, 0, 0, 0, 0];
            v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
            v6.extend_from_slice(&0_u32.to_le_bytes());
            assert_eq!(socket_address(&v6), Some("[::1]:9000".parse().unwrap()));
            assert_eq!(socket_address(&[9, 0, 0, 0]), None);
        }
    }
}
