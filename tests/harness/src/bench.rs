//! `wskudpctl bench`: the driver's send path timed against the platform's plain user-mode path
//! in the same run, to the same receiver, with the same control messages.
//!
//! - The driver's figures come from `BENCH`: the driver sends and times the datagrams itself
//!   (`KeQueryPerformanceCounter`), so no user/kernel round trip per request hides its cost.
//! - The baselines send the same datagrams from a plain UDP socket: `sendmsg` one at a time
//!   and `sendmmsg` in batches on Linux, `WSASendMsg` on Windows.
//! - A receiver thread drains the destination (`recvmmsg` on Linux) and counts what arrived,
//!   so drops show; its own CPU time is left out of the sender's.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// CPU time of the process, user and kernel, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cpu {
    /// User-mode seconds.
    pub user: f64,
    /// Kernel-mode seconds.
    pub system: f64,
}

impl Cpu {
    /// The process's CPU time so far (all threads).
    #[must_use]
    pub fn process() -> Self {
        imp::process_cpu()
    }

    /// The calling thread's CPU time so far.
    #[must_use]
    pub fn thread() -> Self {
        imp::thread_cpu()
    }

    /// `self - earlier`, never negative.
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            user: (self.user - earlier.user).max(0.0),
            system: (self.system - earlier.system).max(0.0),
        }
    }

    /// User plus kernel seconds.
    #[must_use]
    pub fn total(self) -> f64 {
        self.user + self.system
    }
}

/// A receiver on its own thread, draining a UDP socket until stopped.
pub struct Sink {
    address: SocketAddr,
    received: Arc<AtomicU64>,
    /// The receiving thread's CPU so far (user, system), in microseconds, refreshed every
    /// few milliseconds.
    cpu: Arc<[AtomicU64; 2]>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Cpu>>,
}

impl Sink {
    /// Binds `address` (port 0: any) with a large receive buffer and starts draining.
    ///
    /// # Errors
    /// The bind's.
    pub fn start(address: SocketAddr) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(address)?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        imp::grow_receive_buffer(&socket);
        let address = socket.local_addr()?;
        let received = Arc::new(AtomicU64::new(0));
        let cpu = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let received = Arc::clone(&received);
            let cpu = Arc::clone(&cpu);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("bench-sink".into())
                .spawn(move || {
                    let before = Cpu::thread();
                    let publish = || {
                        let now = Cpu::thread().since(before);
                        for (slot, seconds) in cpu.iter().zip([now.user, now.system]) {
                            #[allow(
                                clippy::cast_possible_truncation,
                                clippy::cast_sign_loss,
                                reason = "non-negative microseconds"
                            )]
                            slot.store((seconds * 1e6) as u64, Ordering::Relaxed);
                        }
                    };
                    imp::drain(&socket, &received, &stop, &publish);
                    publish();
                    Cpu::thread().since(before)
                })?
        };
        Ok(Self {
            address,
            received,
            cpu,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    #[must_use]
    pub const fn address(&self) -> SocketAddr {
        self.address
    }

    /// The receiving thread's CPU time so far (refreshed every few milliseconds).
    #[must_use]
    pub fn cpu(&self) -> Cpu {
        #[allow(clippy::cast_precision_loss, reason = "seconds for display")]
        let seconds = |slot: &AtomicU64| slot.load(Ordering::Relaxed) as f64 / 1e6;
        Cpu {
            user: seconds(&self.cpu[0]),
            system: seconds(&self.cpu[1]),
        }
    }

    /// Datagrams received so far.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until `expected` datagrams arrived or nothing arrived for `quiet`, and returns
    /// the count.
    #[must_use]
    pub fn settle(&self, expected: u64, quiet: Duration) -> u64 {
        let mut last = self.received();
        let mut since = Instant::now();
        while last < expected && since.elapsed() < quiet {
            std::thread::sleep(Duration::from_millis(5));
            let now = self.received();
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        last
    }

    /// Stops the receiver; returns the CPU time it used.
    #[must_use]
    pub fn stop(mut self) -> Cpu {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a baseline sends with each datagram: the control messages the driver's send carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marking {
    /// Source address (`IP_PKTINFO` / `IPV6_PKTINFO`).
    pub source: Option<std::net::IpAddr>,
    /// TOS byte / traffic class, ECN folded in.
    pub tos: Option<u8>,
    /// Segment size (`UDP_SEGMENT` on Linux, `UDP_SEND_MSG_SIZE` on Windows).
    pub segment: Option<u16>,
}

/// One baseline loop's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopFigures {
    /// Datagrams the calls reported sent (a USO payload counts once).
    pub datagrams: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// CPU the sending thread used.
    pub cpu: Cpu,
    /// The first error, if a call failed (the loop stops there).
    pub error: Option<String>,
}

impl LoopFigures {
    /// Datagrams per second.
    #[must_use]
    pub fn pps(&self) -> f64 {
        rate(self.datagrams, self.seconds)
    }
}

/// `datagrams / seconds`, 0 when nothing was timed.
#[must_use]
pub fn rate(datagrams: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
        let datagrams = datagrams as f64;
        datagrams / seconds
    } else {
        0.0
    }
}

/// Sends `count` datagrams of `payload` to `to`, one `sendmsg` (`WSASendMsg`) per datagram.
///
/// From a plain socket of `to`'s family, with the driver's control messages: on Linux
/// `marking`'s, as Linux's own cmsgs; on Windows `driver_control` as is, the `ControlInfo`
/// bytes the driver passes to WSK (`DESCRIBE_SEND`), the same `WSACMSGHDR` layout.
#[must_use]
pub fn sendmsg_loop(
    to: SocketAddr,
    payload: &[u8],
    count: u64,
    marking: Marking,
    driver_control: &[u8],
) -> LoopFigures {
    imp::send_loop(to, payload, count, marking, 1, driver_control)
}

/// As [`sendmsg_loop`], `batch` datagrams per `sendmmsg` call (Linux only: `None` elsewhere).
#[must_use]
pub fn sendmmsg_loop(
    to: SocketAddr,
    payload: &[u8],
    count: u64,
    marking: Marking,
    batch: usize,
) -> Option<LoopFigures> {
    imp::HAS_SENDMMSG.then(|| imp::send_loop(to, payload, count, marking, batch.max(1), &[]))
}

#[cfg(unix)]
mod imp {
    use std::net::{IpAddr, SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Instant;

    use super::{Cpu, LoopFigures, Marking};

    pub(super) const HAS_SENDMMSG: bool = true;

    fn seconds(time: libc::timeval) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "CPU seconds for display")]
        let whole = time.tv_sec as f64;
        #[allow(clippy::cast_precision_loss, reason = "as above")]
        let micros = time.tv_usec as f64;
        whole + micros / 1e6
    }

    fn usage(who: libc::c_int) -> Cpu {
        // SAFETY: rusage is plain data; all-zero is a valid value for getrusage to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: A valid out pointer.
        if unsafe { libc::getrusage(who, &raw mut usage) } != 0 {
            return Cpu::default();
        }
        Cpu {
            user: seconds(usage.ru_utime),
            system: seconds(usage.ru_stime),
        }
    }

    pub(super) fn process_cpu() -> Cpu {
        usage(libc::RUSAGE_SELF)
    }

    pub(super) fn thread_cpu() -> Cpu {
        usage(libc::RUSAGE_THREAD)
    }

    pub(super) fn grow_receive_buffer(socket: &UdpSocket) {
        let size: libc::c_int = 8 << 20;
        // SAFETY: A live socket and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&raw const size).cast(),
                libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or(4),
            );
        }
    }

    /// Drains with `recvmmsg`, 64 datagrams per call, until `stop`; calls `publish` every few
    /// milliseconds.
    pub(super) fn drain(
        socket: &UdpSocket,
        received: &AtomicU64,
        stop: &AtomicBool,
        publish: &dyn Fn(),
    ) {
        const BATCH: usize = 64;
        const SIZE: usize = 65_536;
        let mut buffers = vec![0_u8; BATCH * SIZE];
        // SAFETY: iovec and mmsghdr are plain data; all-zero is valid before they are filled.
        let mut iovecs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
        // SAFETY: As above.
        let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
        for (index, (iovec, header)) in iovecs.iter_mut().zip(headers.iter_mut()).enumerate() {
            iovec.iov_base = buffers[index * SIZE..].as_mut_ptr().cast();
            iovec.iov_len = SIZE;
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        let mut timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 20_000_000,
        };
        let mut published = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if published.elapsed().as_millis() >= 5 {
                publish();
                published = Instant::now();
            }
            // SAFETY: `headers` describe BATCH live buffers; the socket is live.
            let got = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    headers.as_mut_ptr(),
                    u32::try_from(BATCH).unwrap_or(1),
                    libc::MSG_WAITFORONE,
                    &raw mut timeout,
                )
            };
            if let Ok(got) = u64::try_from(got)
                && got > 0
            {
                received.fetch_add(got, Ordering::Relaxed);
            }
        }
    }

    /// Appends one control message (`cmsghdr`, then `data`, padded as `CMSG_SPACE` says) to
    /// `buffer` at `length`; returns the new length, or `length` if it does not fit.
    fn push_cmsg(
        buffer: &mut [u64; 16],
        length: usize,
        level: libc::c_int,
        kind: libc::c_int,
        data: &[u8],
    ) -> usize {
        let data_len = u32::try_from(data.len()).unwrap_or(0);
        // SAFETY: Pure arithmetic on a length.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        // SAFETY: As above.
        let cmsg_len = unsafe { libc::CMSG_LEN(data_len) } as usize;
        let header_len = size_of::<libc::cmsghdr>();
        let bytes: &mut [u8] = bytemuck_bytes(buffer);
        let Some(slot) = bytes.get_mut(length..length + space) else {
            return length;
        };
        slot.fill(0);
        let header = libc::cmsghdr {
            cmsg_len,
            cmsg_level: level,
            cmsg_type: kind,
        };
        // SAFETY: Viewing a plain C struct as its bytes.
        let header_bytes =
            unsafe { std::slice::from_raw_parts((&raw const header).cast::<u8>(), header_len) };
        slot[..header_len].copy_from_slice(header_bytes);
        // CMSG_DATA follows the header, aligned as CMSG_LEN counts it.
        let data_at = cmsg_len - data.len();
        slot[data_at..data_at + data.len()].copy_from_slice(data);
        length + space
    }

    /// The `u64` buffer as bytes (8-aligned, as `cmsghdr` wants).
    const fn bytemuck_bytes(buffer: &mut [u64; 16]) -> &mut [u8] {
        // SAFETY: Any u64 array is valid as bytes, and the length covers it exactly.
        unsafe {
            std::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<u8>(), size_of_val(buffer))
        }
    }

    /// The bytes of a plain C value.
    const fn raw_bytes<T>(value: &T) -> &[u8] {
        // SAFETY: A plain C struct without padding is readable as its bytes.
        unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(value).cast::<u8>(), size_of::<T>())
        }
    }

    /// The control messages of `marking` for a datagram to `to`, in `buffer` (returns the
    /// length used): what the driver's send carries, in Linux's layout.
    fn control(to: SocketAddr, marking: Marking, buffer: &mut [u64; 16]) -> usize {
        let mut length = 0_usize;
        match marking.source {
            Some(IpAddr::V4(ip)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(ip.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                length = push_cmsg(
                    buffer,
                    length,
                    libc::IPPROTO_IP,
                    libc::IP_PKTINFO,
                    raw_bytes(&info),
                );
            }
            Some(IpAddr::V6(ip)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                length = push_cmsg(
                    buffer,
                    length,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_PKTINFO,
                    raw_bytes(&info),
                );
            }
            None => {}
        }
        if let Some(tos) = marking.tos {
            length = if to.is_ipv4() {
                push_cmsg(buffer, length, libc::IPPROTO_IP, libc::IP_TOS, &[tos])
            } else {
                push_cmsg(
                    buffer,
                    length,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_TCLASS,
                    &libc::c_int::from(tos).to_ne_bytes(),
                )
            };
        }
        if let Some(segment) = marking.segment {
            length = push_cmsg(
                buffer,
                length,
                libc::SOL_UDP,
                libc::UDP_SEGMENT,
                &segment.to_ne_bytes(),
            );
        }
        length
    }

    fn sockaddr(to: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        use nix::sys::socket::SockaddrLike;
        let storage = nix::sys::socket::SockaddrStorage::from(to);
        // SAFETY: sockaddr_storage is plain data; zero is valid before the copy.
        let mut out: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = storage.len();
        // SAFETY: `storage` holds `len` bytes of a sockaddr, which fit in sockaddr_storage.
        unsafe {
            std::ptr::copy_nonoverlapping(
                storage.as_ptr().cast::<u8>(),
                (&raw mut out).cast::<u8>(),
                len as usize,
            );
        }
        (out, len)
    }

    /// `driver_control` is for Windows: Linux encodes `marking` as its own cmsgs.
    pub(super) fn send_loop(
        to: SocketAddr,
        payload: &[u8],
        count: u64,
        marking: Marking,
        batch: usize,
        _driver_control: &[u8],
    ) -> LoopFigures {
        let bind: SocketAddr = if to.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = match UdpSocket::bind(bind) {
            Ok(socket) => socket,
            Err(error) => {
                return LoopFigures {
                    datagrams: 0,
                    seconds: 0.0,
                    cpu: Cpu::default(),
                    error: Some(error.to_string()),
                };
            }
        };
        let (mut address, address_len) = sockaddr(to);
        let mut cmsg = [0_u64; 16];
        let cmsg_len = control(to, marking, &mut cmsg);
        let mut iovec = libc::iovec {
            iov_base: payload.as_ptr().cast_mut().cast(),
            iov_len: payload.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is valid before it is filled.
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_name = (&raw mut address).cast();
        header.msg_namelen = address_len;
        header.msg_iov = &raw mut iovec;
        header.msg_iovlen = 1;
        if cmsg_len > 0 {
            header.msg_control = cmsg.as_mut_ptr().cast();
            header.msg_controllen = cmsg_len;
        }
        let mut headers: Vec<libc::mmsghdr> = (0..batch)
            .map(|_| libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            })
            .collect();
        let fd = socket.as_raw_fd();
        let mut sent = 0_u64;
        let mut error = None;
        let cpu_before = Cpu::thread();
        let start = Instant::now();
        while sent < count {
            let result = if batch == 1 {
                // SAFETY: `header` describes live buffers (payload, address, control).
                let n = unsafe { libc::sendmsg(fd, &raw const header, 0) };
                if n < 0 { -1 } else { 1 }
            } else {
                let want = usize::try_from(count - sent).unwrap_or(batch).min(batch);
                // SAFETY: `headers[..want]` describe live buffers.
                unsafe {
                    libc::sendmmsg(
                        fd,
                        headers.as_mut_ptr(),
                        u32::try_from(want).unwrap_or(1),
                        0,
                    )
                }
            };
            match u64::try_from(result) {
                Ok(n) if n > 0 => sent += n,
                _ => {
                    let failure = std::io::Error::last_os_error();
                    if failure.raw_os_error() == Some(libc::ENOBUFS)
                        || failure.raw_os_error() == Some(libc::EAGAIN)
                    {
                        continue;
                    }
                    error = Some(failure.to_string());
                    break;
                }
            }
        }
        LoopFigures {
            datagrams: sent,
            seconds: start.elapsed().as_secs_f64(),
            cpu: Cpu::thread().since(cpu_before),
            error,
        }
    }
}

#[cfg(windows)]
mod imp {
    use std::net::{SocketAddr, UdpSocket};
    use std::os::windows::io::AsRawSocket as _;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Instant;

    use windows_sys::Win32::Networking::WinSock::{
        AF_INET, AF_INET6, IN_ADDR, IN_ADDR_0, IN6_ADDR, IN6_ADDR_0, SOCKADDR_IN, SOCKADDR_IN6,
        SOCKADDR_IN6_0, SOCKADDR_INET, SOCKET, WSABUF, WSAGetLastError, WSAMSG, WSASendMsg,
    };

    use super::{Cpu, LoopFigures, Marking};

    pub(super) const HAS_SENDMMSG: bool = false;

    fn seconds(time: windows_sys::Win32::Foundation::FILETIME) -> f64 {
        let ticks = (u64::from(time.dwHighDateTime) << 32) | u64::from(time.dwLowDateTime);
        #[allow(clippy::cast_precision_loss, reason = "CPU seconds for display")]
        let ticks = ticks as f64;
        ticks / 1e7
    }

    fn times(
        get: impl FnOnce(
            *mut windows_sys::Win32::Foundation::FILETIME,
            *mut windows_sys::Win32::Foundation::FILETIME,
            *mut windows_sys::Win32::Foundation::FILETIME,
            *mut windows_sys::Win32::Foundation::FILETIME,
        ) -> i32,
    ) -> Cpu {
        let zero = windows_sys::Win32::Foundation::FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
        if get(
            &raw mut created,
            &raw mut exited,
            &raw mut kernel,
            &raw mut user,
        ) == 0
        {
            return Cpu::default();
        }
        Cpu {
            user: seconds(user),
            system: seconds(kernel),
        }
    }

    pub(super) fn process_cpu() -> Cpu {
        use windows_sys::Win32::System::Threading::{GetCurrentProcess, GetProcessTimes};
        // SAFETY: A pseudo-handle; no preconditions.
        let process = unsafe { GetCurrentProcess() };
        // SAFETY: The pseudo-handle of this process and four valid out pointers.
        times(|a, b, c, d| unsafe { GetProcessTimes(process, a, b, c, d) })
    }

    pub(super) fn thread_cpu() -> Cpu {
        use windows_sys::Win32::System::Threading::{GetCurrentThread, GetThreadTimes};
        // SAFETY: A pseudo-handle; no preconditions.
        let thread = unsafe { GetCurrentThread() };
        // SAFETY: The pseudo-handle of this thread and four valid out pointers.
        times(|a, b, c, d| unsafe { GetThreadTimes(thread, a, b, c, d) })
    }

    pub(super) const fn grow_receive_buffer(_socket: &UdpSocket) {}

    pub(super) fn drain(
        socket: &UdpSocket,
        received: &AtomicU64,
        stop: &AtomicBool,
        publish: &dyn Fn(),
    ) {
        let mut buffer = vec![0_u8; 65_536];
        let mut published = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if published.elapsed().as_millis() >= 5 {
                publish();
                published = Instant::now();
            }
            if socket.recv(&mut buffer).is_ok() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// `to` as a `SOCKADDR_IN` / `SOCKADDR_IN6` in a `SOCKADDR_INET`, with its length.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        reason = "a SOCKADDR's size, at most 28"
    )]
    const fn sockaddr_of(to: SocketAddr) -> (SOCKADDR_INET, i32) {
        // SAFETY: SOCKADDR_INET is plain data; all zero is a valid value.
        let mut address: SOCKADDR_INET = unsafe { std::mem::zeroed() };
        match to {
            SocketAddr::V4(v4) => {
                address.Ipv4 = SOCKADDR_IN {
                    sin_family: AF_INET,
                    sin_port: v4.port().to_be(),
                    sin_addr: IN_ADDR {
                        S_un: IN_ADDR_0 {
                            S_addr: u32::from_ne_bytes(v4.ip().octets()),
                        },
                    },
                    sin_zero: [0; 8],
                };
                (address, size_of::<SOCKADDR_IN>() as i32)
            }
            SocketAddr::V6(v6) => {
                address.Ipv6 = SOCKADDR_IN6 {
                    sin6_family: AF_INET6,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: IN6_ADDR {
                        u: IN6_ADDR_0 {
                            Byte: v6.ip().octets(),
                        },
                    },
                    Anonymous: SOCKADDR_IN6_0 {
                        sin6_scope_id: v6.scope_id(),
                    },
                };
                (address, size_of::<SOCKADDR_IN6>() as i32)
            }
        }
    }

    /// The Windows baseline: one `WSASendMsg` per datagram (user mode has no batched call),
    /// from a plain socket, with `control` as `Control`: the driver's own `ControlInfo` bytes
    /// (`WSASendMsg` takes the `WSACMSGHDR` layout WSK does).
    pub(super) fn send_loop(
        to: SocketAddr,
        payload: &[u8],
        count: u64,
        _marking: Marking,
        _batch: usize,
        control: &[u8],
    ) -> LoopFigures {
        let failed = |error: String| LoopFigures {
            datagrams: 0,
            seconds: 0.0,
            cpu: Cpu::default(),
            error: Some(error),
        };
        let bind: SocketAddr = if to.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = match UdpSocket::bind(bind) {
            Ok(socket) => socket,
            Err(error) => return failed(error.to_string()),
        };
        let Ok(payload_len) = u32::try_from(payload.len()) else {
            return failed("payload too large".into());
        };
        let (mut remote, remote_len) = sockaddr_of(to);
        // WSACMSGHDR's alignment: 8 on 64-bit Windows.
        let mut control_bytes: Vec<u64> = vec![0; control.len().div_ceil(8)];
        // SAFETY: `control_bytes` holds at least `control.len()` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                control.as_ptr(),
                control_bytes.as_mut_ptr().cast::<u8>(),
                control.len(),
            );
        }
        let mut data = payload.to_vec();
        let mut buffer = WSABUF {
            len: payload_len,
            buf: data.as_mut_ptr(),
        };
        let message = WSAMSG {
            name: (&raw mut remote).cast(),
            namelen: remote_len,
            lpBuffers: &raw mut buffer,
            dwBufferCount: 1,
            Control: WSABUF {
                len: u32::try_from(control.len()).unwrap_or(0),
                buf: if control.is_empty() {
                    std::ptr::null_mut()
                } else {
                    control_bytes.as_mut_ptr().cast()
                },
            },
            dwFlags: 0,
        };
        let Ok(raw) = SOCKET::try_from(socket.as_raw_socket()) else {
            return failed("the socket handle does not fit a SOCKET".into());
        };
        let mut sent = 0_u64;
        let mut error = None;
        let cpu_before = Cpu::thread();
        let start = Instant::now();
        while sent < count {
            let mut bytes = 0_u32;
            // SAFETY: A bound UDP socket; the message, its buffers, the destination and the
            // control bytes live across the (synchronous: no OVERLAPPED) call.
            let result = unsafe {
                WSASendMsg(
                    raw,
                    &raw const message,
                    0,
                    &raw mut bytes,
                    std::ptr::null_mut(),
                    None,
                )
            };
            if result == 0 {
                sent += 1;
            } else {
                // SAFETY: No preconditions.
                let code = unsafe { WSAGetLastError() };
                error = Some(format!(
                    "WSASendMsg: {}",
                    std::io::Error::from_raw_os_error(code)
                ));
                break;
            }
        }
        LoopFigures {
            datagrams: sent,
            seconds: start.elapsed().as_secs_f64(),
            cpu: Cpu::thread().since(cpu_before),
            error,
        }
    }
}
