//! The Linux side of the provider: UDP sockets, and `WskSendTo` as one `sendmsg` carrying out
//! the [`send::Plan`]: `IP_PKTINFO`/`IPV6_PKTINFO` for the source and interface,
//! `IP_TOS`/`IPV6_TCLASS` for the TOS byte with ECN folded in (Linux has no ECN control
//! message), `IP_TTL`/`IPV6_HOPLIMIT`, and `UDP_SEGMENT` for `UDP_SEND_MSG_SIZE`; and
//! `WskSendMessages` as one `sendmmsg` with those messages on every datagram.

use std::ffi::c_void;
use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockProtocol, SockType, SockaddrLike, SockaddrStorage,
    bind as nix_bind, getsockname, setsockopt, socket, sockopt,
};
use smallvec::SmallVec;
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
    pub(crate) buffers: SmallVec<[WSK_BUF; 1]>,
    /// `WskSendMessages`: all datagrams in one `sendmmsg` (else one `sendmsg`).
    pub(crate) messages: bool,
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
        // The payloads are the driver's MDL memory itself (no copy), gathered by the send.
        let mut slices: SmallVec<[IoSlice<'_>; 4]> = SmallVec::new();
        // Per datagram: where its slices end, and its length.
        let mut datagrams: SmallVec<[(usize, usize); 1]> = SmallVec::new();
        for buffer in &self.buffers {
            // SAFETY: The slices are used only in this function, which runs before the
            // provider completes the IRP (the operation's result completes it).
            let read = unsafe { mdl::read_wsk_buf(buffer, self.call, &mut slices) };
            let Ok(len) = read else {
                return (STATUS_INVALID_PARAMETER, 0);
            };
            datagrams.push((slices.len(), len));
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
        let fd = self.fd.as_raw_fd();
        if !self.messages {
            let plan = match send::plan(destination, control, datagrams[0].1, self.profile) {
                Ok(plan) => plan,
                Err(status) => return (status, 0),
            };
            return match send_planned(fd, &slices, &plan) {
                Ok(sent) => {
                    count_sent(&plan, sent);
                    (STATUS_SUCCESS, sent)
                }
                Err(status) => (status, 0),
            };
        }
        // Every datagram is planned (the same control information and destination for all,
        // only the length differs): those before the first one the stack refuses go out.
        let mut plan = None;
        let mut refused = None;
        let mut planned = 0;
        for (_, len) in &datagrams {
            match send::plan(destination, control, *len, self.profile) {
                Ok(this) => {
                    plan.get_or_insert(this);
                    planned += 1;
                }
                Err(status) => {
                    refused = Some(status);
                    break;
                }
            }
        }
        let Some(plan) = plan else {
            return (refused.unwrap_or(STATUS_INVALID_PARAMETER), 0);
        };
        let (result, sent) = send_messages(fd, &slices, &datagrams[..planned], &plan);
        match (result, refused) {
            (Err(status), _) | (Ok(()), Some(status)) => (status, sent),
            (Ok(()), None) => (STATUS_SUCCESS, sent),
        }
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

/// Counts a datagram (or USO batch) of `sent` bytes that went out under `plan`.
fn count_sent(plan: &send::Plan, sent: usize) {
    let segments = plan
        .segment_size
        .map_or(1, |size| sent.div_ceil(usize::from(size)).max(1));
    let stats = &state::TABLES.stats;
    stats
        .datagrams_sent
        .fetch_add(segments as u64, Ordering::Relaxed);
    stats.bytes_sent.fetch_add(sent as u64, Ordering::Relaxed);
}

/// Linux `CMSG_ALIGN` (`<bits/socket.h>`): control messages align to `size_t`.
const fn cmsg_align(len: usize) -> usize {
    len.next_multiple_of(size_of::<usize>())
}

/// Linux `CMSG_LEN(0)`: the aligned `cmsghdr`.
const CMSG_HEADER: usize = cmsg_align(size_of::<libc::cmsghdr>());

/// Linux `CMSG_SPACE(len)`.
const fn cmsg_space(len: usize) -> usize {
    CMSG_HEADER + cmsg_align(len)
}

/// Room for the most a plan asks for: a `PKTINFO` (the larger, IPv6 one), the TOS byte or
/// traffic class, the TTL or hop limit, and a USO segment size.
const CONTROL_SPACE: usize = cmsg_space(size_of::<libc::in6_pktinfo>())
    + cmsg_space(size_of::<libc::c_int>())
    + cmsg_space(size_of::<libc::c_int>())
    + cmsg_space(size_of::<u16>());

/// The Linux control messages carrying out a [`send::Plan`], built on the stack (no heap
/// allocation per datagram).
struct LinuxControl {
    /// `u64` words: aligned for `cmsghdr`.
    buffer: [u64; CONTROL_SPACE / 8],
    len: usize,
}

impl LinuxControl {
    /// IPv4 datagrams take `SOL_IP` messages (also on an `AF_INET6` socket sending to a
    /// v4-mapped address, where Linux's `udpv6_sendmsg` hands the datagram to `udp_sendmsg`,
    /// whose `ip_cmsg_send` reads `SOL_IP` messages), IPv6 ones `SOL_IPV6` messages.
    fn for_plan(plan: &send::Plan) -> Self {
        let mut control = Self {
            buffer: [0; CONTROL_SPACE / 8],
            len: 0,
        };
        let ifindex = plan.ifindex.unwrap_or(0);
        match plan.source {
            Some(IpAddr::V4(ip)) => control.push(
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                libc::in_pktinfo {
                    ipi_ifindex: ifindex.cast_signed(),
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(ip.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                },
            ),
            Some(IpAddr::V6(ip)) => control.push(
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    ipi6_ifindex: ifindex,
                },
            ),
            None => {}
        }
        if plan.ipv4 {
            if let Some(class) = plan.class {
                // One byte, as `ip_cmsg_send` also takes it.
                control.push(libc::IPPROTO_IP, libc::IP_TOS, class);
            }
            if let Some(ttl) = plan.hop_limit {
                control.push(libc::IPPROTO_IP, libc::IP_TTL, libc::c_int::from(ttl));
            }
        } else {
            if let Some(class) = plan.class {
                control.push(
                    libc::IPPROTO_IPV6,
                    libc::IPV6_TCLASS,
                    libc::c_int::from(class),
                );
            }
            if let Some(hops) = plan.hop_limit {
                control.push(
                    libc::IPPROTO_IPV6,
                    libc::IPV6_HOPLIMIT,
                    libc::c_int::from(hops),
                );
            }
        }
        if let Some(size) = plan.segment_size {
            control.push(libc::SOL_UDP, libc::UDP_SEGMENT, size);
        }
        control
    }

    /// Appends one message (`CMSG_LEN` in its header, `CMSG_SPACE` taken, padding zero).
    fn push<T: Copy>(&mut self, level: libc::c_int, ty: libc::c_int, value: T) {
        let space = cmsg_space(size_of::<T>());
        // Never more than `for_plan` sizes the buffer for.
        assert!(self.len + space <= CONTROL_SPACE, "control buffer overflow");
        // SAFETY: cmsghdr is plain data (integers and, on some libcs, padding).
        let mut header: libc::cmsghdr = unsafe { std::mem::zeroed() };
        header.cmsg_len = CMSG_HEADER + size_of::<T>();
        header.cmsg_level = level;
        header.cmsg_type = ty;
        let at = self.buffer.as_mut_ptr().cast::<u8>().wrapping_add(self.len);
        // SAFETY: `[at, at + CMSG_HEADER)` is inside the buffer (asserted above); unaligned.
        unsafe { at.cast::<libc::cmsghdr>().write_unaligned(header) };
        let data = at.wrapping_add(CMSG_HEADER).cast::<T>();
        // SAFETY: `[data, data + size_of::<T>())` ends within `space` of `at`, in the buffer.
        unsafe { data.write_unaligned(value) };
        self.len += space;
    }

    /// `(msg_control, msg_controllen)`.
    const fn as_msg_control(&mut self) -> (*mut c_void, usize) {
        if self.len == 0 {
            (std::ptr::null_mut(), 0)
        } else {
            (self.buffer.as_mut_ptr().cast(), self.len)
        }
    }
}

/// A `msghdr` sending `iov` to `address` with `control`. `IoSlice` is ABI-compatible with
/// `iovec` on Unix (its documentation guarantees it).
fn msghdr(
    address: &SockaddrStorage,
    iov: &[IoSlice<'_>],
    control: &mut LinuxControl,
) -> libc::msghdr {
    // SAFETY: msghdr is plain data (pointers, lengths, flags); all-zero is a valid value.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_name = address.as_ptr().cast_mut().cast();
    header.msg_namelen = address.len();
    header.msg_iov = iov.as_ptr().cast_mut().cast();
    header.msg_iovlen = iov.len();
    (header.msg_control, header.msg_controllen) = control.as_msg_control();
    header
}

/// One `sendmsg` carrying out `plan` for the datagram `iov` gathers.
fn send_planned(fd: RawFd, iov: &[IoSlice<'_>], plan: &send::Plan) -> Result<usize, NTSTATUS> {
    let mut control = LinuxControl::for_plan(plan);
    let address = storage(plan.destination);
    let header = msghdr(&address, iov, &mut control);
    loop {
        // SAFETY: `header` points to the address, the iovecs and the control buffer, all
        // alive for the call; the kernel only reads them.
        let sent =
            crate::accounting::outside(|| unsafe { libc::sendmsg(fd, &raw const header, 0) });
        if let Ok(sent) = usize::try_from(sent) {
            return Ok(sent);
        }
        match Errno::last() {
            // The model's own thread was interrupted, not the datagram refused.
            Errno::EINTR => {}
            errno => return Err(status_of(errno)),
        }
    }
}

/// `WskSendMessages` as one `sendmmsg`: every datagram (`datagrams` gives where each one's
/// slices end in `iov`) with the same control messages and destination, `plan`'s.
///
/// `PFN_WSK_SEND_MESSAGES` (Learn) documents only `STATUS_SUCCESS` ("the request was
/// completed successfully") and "Other status codes" (an error, the IRP completed with
/// failure status). The rest is the model's reading, inferred from `sendmmsg(2)` and from
/// `WskSendTo`:
/// - fewer sent than asked (`sendmmsg` returns the count sent; Linux also caps one call at
///   `UIO_MAXIOV` messages): the rest is sent by another call, until all are;
/// - a datagram's error (`sendmmsg` returns -1 when the first datagram of a call fails) fails
///   the IRP with that datagram's status; the ones after it are not sent;
/// - `IoStatus.Information` is the total bytes of the datagrams sent, on success and failure.
///
/// Returns the outcome and the bytes sent.
fn send_messages(
    fd: RawFd,
    iov: &[IoSlice<'_>],
    datagrams: &[(usize, usize)],
    plan: &send::Plan,
) -> (Result<(), NTSTATUS>, usize) {
    let mut control = LinuxControl::for_plan(plan);
    let address = storage(plan.destination);
    let mut headers = Vec::with_capacity(datagrams.len());
    let mut start = 0;
    for (end, _) in datagrams {
        headers.push(libc::mmsghdr {
            msg_hdr: msghdr(&address, &iov[start..*end], &mut control),
            msg_len: 0,
        });
        start = *end;
    }
    let mut next = 0;
    let mut total = 0;
    while next < headers.len() {
        let rest = &mut headers[next..];
        let count = libc::c_uint::try_from(rest.len()).unwrap_or(libc::c_uint::MAX);
        // SAFETY: Each header points to the address, its iovecs and the shared control buffer,
        // all alive for the call; the kernel reads them and writes only `msg_len`.
        let sent = crate::accounting::outside(|| unsafe {
            libc::sendmmsg(fd, rest.as_mut_ptr(), count, 0)
        });
        match usize::try_from(sent) {
            Ok(0) => return (Err(STATUS_UNSUCCESSFUL), total),
            Ok(sent) => {
                for header in &rest[..sent] {
                    let bytes = header.msg_len as usize;
                    count_sent(plan, bytes);
                    total += bytes;
                }
                next += sent;
            }
            Err(_) => match Errno::last() {
                Errno::EINTR => {}
                errno => return (Err(status_of(errno)), total),
            },
        }
    }
    (Ok(()), total)
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
