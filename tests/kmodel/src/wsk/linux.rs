//! The Linux side of the provider: UDP sockets, and `WskSendTo` as one `sendmsg` with the
//! control messages translated (`IP_PKTINFO`/`IPV6_PKTINFO` source, `IP_TOS`/`IPV6_TCLASS`
//! carrying TOS and ECN, `UDP_SEGMENT` for `UDP_SEND_MSG_SIZE`).

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn,
    SockaddrIn6, SockaddrStorage, bind as nix_bind, getsockname, sendmsg, setsockopt, socket,
    sockopt,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_ADDRESS_ALREADY_EXISTS, STATUS_CONNECTION_REFUSED,
    STATUS_HOST_UNREACHABLE, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_ADDRESS_COMPONENT,
    STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_PARAMETER, STATUS_NETWORK_UNREACHABLE,
    STATUS_SUCCESS, STATUS_UNSUCCESSFUL,
};
use wskudp_core::cmsg::{ControlMessage as WinMessage, Iter};
use wskudp_core::ddi::wsk::WSK_BUF;
use wskudp_core::sockaddr;

use crate::mdl;
use crate::pool;
use crate::state;

/// The `NTSTATUS` a Windows stack reports where Linux reports `errno`.
pub(crate) const fn status_of(errno: Errno) -> NTSTATUS {
    match errno {
        Errno::EADDRNOTAVAIL | Errno::EAFNOSUPPORT => STATUS_INVALID_ADDRESS_COMPONENT,
        Errno::EADDRINUSE => STATUS_ADDRESS_ALREADY_EXISTS,
        Errno::EINVAL => STATUS_INVALID_PARAMETER,
        Errno::EMSGSIZE => STATUS_INVALID_BUFFER_SIZE,
        Errno::ENETUNREACH => STATUS_NETWORK_UNREACHABLE,
        Errno::EHOSTUNREACH => STATUS_HOST_UNREACHABLE,
        Errno::ECONNREFUSED => STATUS_CONNECTION_REFUSED,
        Errno::EACCES | Errno::EPERM => STATUS_ACCESS_DENIED,
        Errno::ENOBUFS | Errno::ENOMEM | Errno::EAGAIN => STATUS_INSUFFICIENT_RESOURCES,
        _ => STATUS_UNSUCCESSFUL,
    }
}

/// A UDP socket; IPv6 sockets are IPv6-only, the Windows default for `AF_INET6`.
pub(crate) fn udp_socket(v6: bool) -> Result<OwnedFd, NTSTATUS> {
    let family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Udp,
    )
    .map_err(status_of)?;
    if v6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(status_of)?;
    }
    Ok(fd)
}

fn storage(address: SocketAddr) -> SockaddrStorage {
    match address {
        SocketAddr::V4(v4) => SockaddrStorage::from(v4),
        SocketAddr::V6(v6) => SockaddrStorage::from(v6),
    }
}

pub(crate) fn bind(fd: RawFd, address: SocketAddr) -> Result<(), NTSTATUS> {
    nix_bind(fd, &storage(address)).map_err(status_of)
}

pub(crate) fn local_address(fd: RawFd) -> Result<SocketAddr, NTSTATUS> {
    let name: SockaddrStorage = getsockname(fd).map_err(status_of)?;
    name.as_sockaddr_in()
        .map(|v4| SocketAddr::V4((*v4).into()))
        .or_else(|| {
            name.as_sockaddr_in6()
                .map(|v6| SocketAddr::V6((*v6).into()))
        })
        .ok_or(STATUS_INVALID_ADDRESS_COMPONENT)
}

/// Where a driver buffer handed to WSK lives, for the late read.
fn check_resident(address: usize, len: usize, what: &str) -> bool {
    if pool::is_quarantined(address, len) {
        state::violation(
            "BufferFreedInFlight",
            format!("WskSendTo: the {what} at {address:#x} was freed before the IRP completed"),
        );
        return false;
    }
    true
}

/// One `WskSendTo` to perform when its IRP completes.
pub(crate) struct SendRequest {
    pub(crate) fd: Arc<OwnedFd>,
    pub(crate) v6: bool,
    pub(crate) buffer: WSK_BUF,
    pub(crate) remote: usize,
    pub(crate) control: usize,
    pub(crate) control_len: usize,
}

// SAFETY: The addresses are plain numbers here; they are only dereferenced after the
// residency checks in `execute`, on whatever thread completes the IRP (as on Windows).
unsafe impl Send for SendRequest {}

/// The options a Windows control buffer asked for, validated.
#[derive(Default)]
struct Options {
    source: Option<IpAddr>,
    tos: Option<u8>,
    ecn: Option<u8>,
    segment_size: Option<u32>,
}

impl SendRequest {
    /// Reads everything the driver handed over and sends it: `(status, bytes sent)`.
    pub(crate) fn execute(self) -> (NTSTATUS, usize) {
        let Ok(data) = mdl::read_wsk_buf(&self.buffer, "WskSendTo") else {
            return (STATUS_INVALID_PARAMETER, 0);
        };
        let remote_len = if self.v6 { 28 } else { 16 };
        if !check_resident(self.remote, remote_len, "remote address") {
            return (STATUS_INVALID_PARAMETER, 0);
        }
        // SAFETY: The driver keeps RemoteAddress valid until completion (checked above against
        // freed pool); a SOCKADDR of the socket's family is `remote_len` bytes.
        let remote_bytes = unsafe {
            std::slice::from_raw_parts(
                std::ptr::with_exposed_provenance::<u8>(self.remote),
                remote_len,
            )
        };
        let Some(remote) = sockaddr::decode(remote_bytes).filter(|r| r.is_ipv6() == self.v6) else {
            return (STATUS_INVALID_ADDRESS_COMPONENT, 0);
        };
        let options = match self.options() {
            Ok(options) => options,
            Err(status) => return (status, 0),
        };
        let result = send(self.fd.as_raw_fd(), &data, remote, &options);
        if let Ok(sent) = result {
            let mut inner = state::lock();
            let segments = options
                .segment_size
                .map_or(1, |size| sent.div_ceil(size as usize).max(1));
            inner.stats.datagrams_sent += segments as u64;
            inner.stats.bytes_sent += sent as u64;
        }
        match result {
            Ok(sent) => (STATUS_SUCCESS, sent),
            Err(status) => (status, 0),
        }
    }

    /// Parses the control buffer with the Windows rules.
    fn options(&self) -> Result<Options, NTSTATUS> {
        let mut options = Options::default();
        if self.control_len == 0 {
            return Ok(options);
        }
        if !check_resident(self.control, self.control_len, "control buffer") {
            return Err(STATUS_INVALID_PARAMETER);
        }
        // SAFETY: The driver keeps ControlInfo valid until completion (checked above).
        let bytes = unsafe {
            std::slice::from_raw_parts(
                std::ptr::with_exposed_provenance::<u8>(self.control),
                self.control_len,
            )
        };
        let messages = Iter::new(bytes, self.control).map_err(|_| STATUS_INVALID_PARAMETER)?;
        for raw in messages {
            let raw = raw.map_err(|_| STATUS_INVALID_PARAMETER)?;
            if raw.padding.iter().any(|b| *b != 0) {
                state::violation(
                    "CmsgPaddingNotZero",
                    format!(
                        "control message level {} type {} has non-zero padding",
                        raw.level, raw.ty
                    ),
                );
            }
            let message = WinMessage::decode(raw.level, raw.ty, raw.data)
                .map_err(|_| STATUS_INVALID_PARAMETER)?;
            let fresh = match (message, self.v6) {
                (WinMessage::SourceV4 { address: ip, .. }, false) => {
                    options.source.replace(IpAddr::V4(ip)).is_none()
                }
                (WinMessage::SourceV6 { address: ip, .. }, true) => {
                    options.source.replace(IpAddr::V6(ip)).is_none()
                }
                (WinMessage::TosV4(tos), false) | (WinMessage::TrafficClassV6(tos), true) => {
                    options.tos.replace(tos).is_none()
                }
                (WinMessage::EcnV4(ecn), false) | (WinMessage::EcnV6(ecn), true) => {
                    options.ecn.replace(ecn as u8).is_none()
                }
                (WinMessage::UdpSendMsgSize(size), _) => {
                    options.segment_size.replace(size).is_none()
                }
                // An option of the other IP version than the socket's.
                _ => return Err(STATUS_INVALID_PARAMETER),
            };
            if !fresh {
                return Err(STATUS_INVALID_PARAMETER);
            }
        }
        Ok(options)
    }
}

/// One `sendmsg`. ECN is the low two bits of the TOS byte / traffic class; when both are
/// given, the ECN message sets those bits.
fn send(fd: RawFd, data: &[u8], remote: SocketAddr, options: &Options) -> Result<usize, NTSTATUS> {
    let class = match (options.tos, options.ecn) {
        (None, None) => None,
        (tos, ecn) => {
            let tos = tos.unwrap_or(0);
            Some(ecn.map_or(tos, |ecn| (tos & !3) | ecn))
        }
    };
    let gso = options
        .segment_size
        .map(|size| u16::try_from(size).map_err(|_| STATUS_INVALID_PARAMETER))
        .transpose()?;
    let pktinfo4;
    let pktinfo6;
    let tos4;
    let class6;
    let mut cmsgs = Vec::with_capacity(3);
    match options.source {
        Some(IpAddr::V4(ip)) => {
            pktinfo4 = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(ip.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            cmsgs.push(ControlMessage::Ipv4PacketInfo(&pktinfo4));
        }
        Some(IpAddr::V6(ip)) => {
            pktinfo6 = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                ipi6_ifindex: 0,
            };
            cmsgs.push(ControlMessage::Ipv6PacketInfo(&pktinfo6));
        }
        None => {}
    }
    if let Some(class) = class {
        if remote.is_ipv6() {
            class6 = i32::from(class);
            cmsgs.push(ControlMessage::Ipv6TClass(&class6));
        } else {
            tos4 = class;
            cmsgs.push(ControlMessage::Ipv4Tos(&tos4));
        }
    }
    if let Some(gso) = gso.as_ref() {
        cmsgs.push(ControlMessage::UdpGsoSegments(gso));
    }
    let iov = [IoSlice::new(data)];
    let sent = match remote {
        SocketAddr::V4(v4) => sendmsg(
            fd,
            &iov,
            &cmsgs,
            MsgFlags::empty(),
            Some(&SockaddrIn::from(v4)),
        ),
        SocketAddr::V6(v6) => sendmsg(
            fd,
            &iov,
            &cmsgs,
            MsgFlags::empty(),
            Some(&SockaddrIn6::from(v6)),
        ),
    };
    sent.map_err(status_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        assert_eq!(
            status_of(Errno::EADDRNOTAVAIL),
            STATUS_INVALID_ADDRESS_COMPONENT
        );
        assert_eq!(status_of(Errno::EMSGSIZE), STATUS_INVALID_BUFFER_SIZE);
        assert_eq!(status_of(Errno::EIO), STATUS_UNSUCCESSFUL);
    }
}
