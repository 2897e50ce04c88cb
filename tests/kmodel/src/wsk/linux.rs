//! The Linux side of the provider: UDP sockets, and `WskSendTo` as one `sendmsg` carrying out
//! the [`send::Plan`]: `IP_PKTINFO`/`IPV6_PKTINFO` for the source and interface,
//! `IP_TOS`/`IPV6_TCLASS` for the TOS byte with ECN folded in (Linux has no ECN control
//! message), `IP_TTL`/`IPV6_HOPLIMIT`, and `UDP_SEGMENT` for `UDP_SEND_MSG_SIZE`.

use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
use wskudp_core::ddi::wsk::WSK_BUF;

use super::{options, send, wire};
use crate::mdl;
use crate::pool;
use crate::profile::Profile;
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

/// A UDP socket with Windows' defaults: IPv6 sockets IPv6-only ("nonzero (the default on
/// Windows)", `IPPROTO_IPV6` options table), TTL / hop limit 128 ([`options::DEFAULT_TTL`]),
/// and no DF bit (`IP_DONTFRAGMENT` off, `IP_MTU_DISCOVER` "`IP_PMTUDISC_NOT_SET`", `IPPROTO_IP`
/// options table) where Linux's default would set it.
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
    let ttl = options::DEFAULT_TTL.cast_signed();
    if v6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(status_of)?;
        set_int(
            fd.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            ttl,
        )?;
    }
    // SOL_IP options on an AF_INET6 socket govern its IPv4-mapped traffic.
    set_int(fd.as_raw_fd(), libc::IPPROTO_IP, libc::IP_TTL, ttl)?;
    set_int(
        fd.as_raw_fd(),
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DONT,
    )?;
    Ok(fd)
}

/// `setsockopt(fd, level, name, &value, sizeof(int))`.
pub(crate) fn set_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> Result<(), NTSTATUS> {
    set_raw(fd, level, name, &value)
}

/// `setsockopt` of one plain-data value.
fn set_raw<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> Result<(), NTSTATUS> {
    let len = libc::socklen_t::try_from(size_of::<T>()).map_err(|_| STATUS_INVALID_PARAMETER)?;
    // SAFETY: `value` points to `len` readable bytes for the duration of the call; `fd` is a
    // socket the provider owns (a bad one fails with EBADF, nothing else).
    let result =
        unsafe { libc::setsockopt(fd, level, name, std::ptr::from_ref(value).cast(), len) };
    if result == 0 {
        Ok(())
    } else {
        Err(status_of(Errno::last()))
    }
}

/// Linux `IP_MULTICAST_IF` with an interface index (`struct ip_mreqn`).
pub(crate) fn set_multicast_if_index(fd: RawFd, index: u32) -> Result<(), NTSTATUS> {
    let request = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: index.cast_signed(),
    };
    set_raw(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &request)
}

/// Linux `IP_MULTICAST_IF` with a local address (`struct in_addr`; 0.0.0.0 = default).
pub(crate) fn set_multicast_if_address(fd: RawFd, address: Ipv4Addr) -> Result<(), NTSTATUS> {
    let request = libc::in_addr {
        s_addr: u32::from_ne_bytes(address.octets()),
    };
    set_raw(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &request)
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

/// Whether the `len` bytes at `address` the driver handed to WSK are still its memory (not
/// freed pool) when the provider reads or writes them.
///
/// Sources: the `PFN_WSK_SEND_TO` page (the `ControlInfo` buffer "must also remain valid until
/// the IRP is completed"), the `PFN_WSK_CONTROL_SOCKET` page (`InputBuffer` and `OutputBuffer`),
/// and the `PFN_WSK_GET_LOCAL_ADDRESS` page (`LocalAddress`), each: not freed with `ExFreeXxx`
/// until the IRP completes. The `PFN_WSK_SEND_MESSAGES` page has no such remark and no page
/// gives `RemoteAddress` a lifetime: holding those to the same rule is the model's own reading
/// (it reads them at completion, stricter than documented).
fn check_resident(address: usize, len: usize, what: &str) -> bool {
    if pool::is_quarantined(address, len) {
        state::violation(
            "BufferFreedInFlight",
            format!(
                "the {what} at {address:#x} was freed before the IRP completed (WskSendTo / WskControlSocket / WskGetLocalAddress pages: buffers must remain valid until then)"
            ),
        );
        return false;
    }
    true
}

/// One `WskSendTo` / `WskSendMessages` to perform when its IRP completes.
pub(crate) struct SendRequest {
    pub(crate) call: &'static str,
    pub(crate) fd: Arc<OwnedFd>,
    pub(crate) v6: bool,
    /// One datagram each.
    pub(crate) buffers: Vec<WSK_BUF>,
    /// `RemoteAddress`, or 0 for the socket's fixed destination.
    pub(crate) remote: usize,
    /// The fixed destination (`SIO_WSK_SET_SENDTO_ADDRESS`) when the call was made.
    pub(crate) fixed: Option<SocketAddr>,
    pub(crate) control: usize,
    pub(crate) control_len: usize,
    pub(crate) profile: Profile,
}

#[allow(
    clippy::non_send_fields_in_send_ty,
    reason = "the WSK_BUFs are the driver's, read once at completion"
)]
// SAFETY: The addresses (and the MDL pointers in the WSK_BUFs) are only dereferenced after
// the residency checks in `execute`, on whatever thread completes the IRP (as on Windows).
unsafe impl Send for SendRequest {}

/// `len` bytes at `address` the driver handed over, if it has not freed them.
pub(crate) fn driver_bytes<'a>(address: usize, len: usize, what: &str) -> Option<&'a [u8]> {
    if address == 0 || !check_resident(address, len, what) {
        return None;
    }
    // SAFETY: The driver keeps what it handed to WSK valid until completion (checked above
    // against freed pool); the caller says how many bytes the structure has.
    Some(unsafe {
        std::slice::from_raw_parts(std::ptr::with_exposed_provenance::<u8>(address), len)
    })
}

/// Writes `bytes` to a driver buffer at `address` (at completion), if it has not freed it.
pub(crate) fn write_driver_bytes(address: usize, bytes: &[u8], what: &str) -> bool {
    if address == 0 || !check_resident(address, bytes.len(), what) {
        return false;
    }
    // SAFETY: The driver provides room for what the call returns and keeps it until
    // completion (checked above against freed pool).
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            std::ptr::with_exposed_provenance_mut::<u8>(address),
            bytes.len(),
        );
    }
    true
}

impl SendRequest {
    /// Reads everything the driver handed over and sends it: `(status, bytes sent)`.
    pub(crate) fn execute(self) -> (NTSTATUS, usize) {
        let mut payloads = Vec::with_capacity(self.buffers.len());
        for buffer in &self.buffers {
            let Ok(data) = mdl::read_wsk_buf(buffer, self.call) else {
                return (STATUS_INVALID_PARAMETER, 0);
            };
            payloads.push(data);
        }
        let destination = match self.destination() {
            Ok(destination) => destination,
            Err(status) => return (status, 0),
        };
        let control: &[u8] = if self.control_len == 0 {
            &[]
        } else {
            match driver_bytes(self.control, self.control_len, "control buffer") {
                Some(bytes) => bytes,
                None => return (STATUS_INVALID_PARAMETER, 0),
            }
        };
        let mut total = 0;
        for data in &payloads {
            let plan = match send::plan(destination, control, data.len(), self.profile) {
                Ok(plan) => plan,
                Err(status) => return (status, 0),
            };
            match send_planned(self.fd.as_raw_fd(), data, &plan) {
                Ok(sent) => {
                    let segments = plan
                        .segment_size
                        .map_or(1, |size| sent.div_ceil(usize::from(size)).max(1));
                    let stats = &state::TABLES.stats;
                    stats
                        .datagrams_sent
                        .fetch_add(segments as u64, std::sync::atomic::Ordering::Relaxed);
                    stats
                        .bytes_sent
                        .fetch_add(sent as u64, std::sync::atomic::Ordering::Relaxed);
                    total += sent;
                }
                // Inferred: a failed datagram fails the call; what WskSendMessages reports
                // for the ones before it is not documented.
                Err(status) => return (status, 0),
            }
        }
        (STATUS_SUCCESS, total)
    }

    /// The datagram's destination: `RemoteAddress` read as a SOCKADDR of the socket's family
    /// (`WskSendTo`: "This pointer must be a pointer to the specific SOCKADDR structure type
    /// that corresponds to the address family [of] the socket"), else the fixed one.
    fn destination(&self) -> Result<SocketAddr, NTSTATUS> {
        if self.remote == 0 {
            return self.fixed.ok_or(STATUS_INVALID_PARAMETER);
        }
        let family = wire::family_for(self.v6);
        let head =
            driver_bytes(self.remote, 2, "remote address").ok_or(STATUS_INVALID_PARAMETER)?;
        if wire::family(head) != family {
            return Err(STATUS_INVALID_ADDRESS_COMPONENT);
        }
        let len = wire::sockaddr_len(family).unwrap_or(0);
        let bytes =
            driver_bytes(self.remote, len, "remote address").ok_or(STATUS_INVALID_PARAMETER)?;
        wire::decode_sockaddr(bytes).ok_or(STATUS_INVALID_ADDRESS_COMPONENT)
    }
}

/// One `sendmsg` carrying out `plan`: IPv4 datagrams take `SOL_IP` messages (also on an
/// `AF_INET6` socket sending to a v4-mapped address, where Linux's `udpv6_sendmsg` hands the
/// datagram to `udp_sendmsg`, whose `ip_cmsg_send` reads `SOL_IP` messages), IPv6 ones
/// `SOL_IPV6` messages.
fn send_planned(fd: RawFd, data: &[u8], plan: &send::Plan) -> Result<usize, NTSTATUS> {
    let pktinfo4;
    let pktinfo6;
    let tos4;
    let ttl4;
    let class6;
    let hops6;
    let mut cmsgs = Vec::with_capacity(4);
    let ifindex = plan.ifindex.unwrap_or(0);
    match plan.source {
        Some(IpAddr::V4(ip)) => {
            pktinfo4 = libc::in_pktinfo {
                ipi_ifindex: ifindex.cast_signed(),
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
                ipi6_ifindex: ifindex,
            };
            cmsgs.push(ControlMessage::Ipv6PacketInfo(&pktinfo6));
        }
        None => {}
    }
    if plan.ipv4 {
        if let Some(class) = plan.class {
            tos4 = class;
            cmsgs.push(ControlMessage::Ipv4Tos(&tos4));
        }
        if let Some(ttl) = plan.hop_limit {
            ttl4 = libc::c_int::from(ttl);
            cmsgs.push(ControlMessage::Ipv4Ttl(&ttl4));
        }
    } else {
        if let Some(class) = plan.class {
            class6 = i32::from(class);
            cmsgs.push(ControlMessage::Ipv6TClass(&class6));
        }
        if let Some(hops) = plan.hop_limit {
            hops6 = libc::c_int::from(hops);
            cmsgs.push(ControlMessage::Ipv6HopLimit(&hops6));
        }
    }
    if let Some(gso) = plan.segment_size.as_ref() {
        cmsgs.push(ControlMessage::UdpGsoSegments(gso));
    }
    let iov = [IoSlice::new(data)];
    let sent = match plan.destination {
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
