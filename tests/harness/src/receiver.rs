//! A loopback UDP receiver that reports what arrived: payload, source address, and on Unix
//! hosts the destination address (`IP_PKTINFO`/`IPV6_PKTINFO`) and TOS / traffic class.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// One received datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The payload.
    pub payload: Vec<u8>,
    /// Who sent it.
    pub source: SocketAddr,
    /// The address it was sent to (Unix hosts).
    pub destination: Option<IpAddr>,
    /// The TOS byte / traffic class it carried (Unix hosts).
    pub tos: Option<u8>,
    /// The TTL / hop limit it arrived with (Unix hosts).
    pub hop_limit: Option<u8>,
}

/// A bound UDP socket collecting datagrams.
pub struct Receiver {
    socket: UdpSocket,
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
        Ok(Self { socket })
    }

    /// Joins `group` on the interface with address `interface` (`IP_ADD_MEMBERSHIP`).
    ///
    /// # Errors
    /// The socket-option failure.
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.socket.join_multicast_v4(&group, &interface)
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
        #[cfg(not(unix))]
        {
            let mut buffer = vec![0; 65_536];
            let (len, source) = self.socket.recv_from(&mut buffer)?;
            buffer.truncate(len);
            Ok(Arrival {
                payload: buffer,
                source,
                destination: None,
                tos: None,
                hop_limit: None,
            })
        }
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
        let (len, source, destination, tos, hop_limit) = {
            let mut iov = [IoSliceMut::new(&mut buffer)];
            let message = recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut control),
                MsgFlags::empty(),
            )?;
            let mut destination = None;
            let mut tos = None;
            let mut hop_limit = None;
            for cmsg in message.cmsgs()? {
                match cmsg {
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        destination = Some(IpAddr::V4(Ipv4Addr::from(
                            info.ipi_addr.s_addr.to_ne_bytes(),
                        )));
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
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
            (message.bytes, source, destination, tos, hop_limit)
        };
        buffer.truncate(len);
        let source = source.ok_or_else(|| io::Error::other("datagram without a source address"))?;
        Ok(Arrival {
            payload: buffer,
            source,
            destination,
            tos,
            hop_limit,
        })
    }
}
