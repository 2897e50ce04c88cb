//! A WSK client written by hand against the model's provider, and a loopback receiver that
//! reports what Linux actually put on the wire. Control buffers and socket addresses are built
//! byte by byte here, never with core's encoder, so the provider's decoder is tested on its
//! own.
#![allow(
    dead_code,
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    missing_docs,
    unreachable_pub,
    clippy::cast_possible_truncation,
    reason = "test helpers: small buffers, lengths well inside u32"
)]

use std::ffi::c_void;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IRP};
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_MORE_PROCESSING_REQUIRED, STATUS_SUCCESS};
use wskudp_core::ddi::nt::{
    ExAllocatePool2, ExFreePoolWithTag, IoAllocateIrp, IoAllocateMdl, IoFreeIrp, IoFreeMdl,
    MmBuildMdlForNonPagedPool, POOL_FLAG_NON_PAGED, io_set_completion_routine,
};
use wskudp_core::ddi::wsk::{
    WSK_BUF, WSK_BUF_LIST, WSK_CLIENT_DISPATCH, WSK_CLIENT_NPI, WSK_PROVIDER_DATAGRAM_DISPATCH,
    WSK_PROVIDER_NPI, WSK_REGISTRATION, WSK_SOCKET, WskCaptureProviderNPI, WskDeregister,
    WskRegister, WskReleaseProviderNPI,
};
use wskudp_kmodel::{Config, Machine, Profile, Report};

pub const TAG: u32 = u32::from_ne_bytes(*b"Test");

// ws2def.h / ws2ipdef.h values, written out here (mingw-w64 headers).
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 23;
pub const SOL_SOCKET: u32 = 0xffff;
pub const SO_BROADCAST: u32 = 0x20;
pub const IPPROTO_IP: u32 = 0;
pub const IPPROTO_IPV6: u32 = 41;
pub const IPPROTO_UDP: u32 = 17;
pub const IP_OPTIONS: u32 = 1;
pub const IP_TOS: u32 = 3;
pub const IP_TTL: u32 = 4;
pub const IP_MULTICAST_IF: u32 = 9;
pub const IP_MULTICAST_TTL: u32 = 10;
pub const IP_MULTICAST_LOOP: u32 = 11;
pub const IP_DONTFRAGMENT: u32 = 14;
pub const IP_PKTINFO: u32 = 19;
pub const IP_HOPLIMIT: u32 = 21;
pub const IP_UNICAST_IF: u32 = 31;
pub const IP_ECN: u32 = 50;
pub const IPV6_UNICAST_HOPS: u32 = 4;
pub const IPV6_MULTICAST_IF: u32 = 9;
pub const IPV6_MULTICAST_HOPS: u32 = 10;
pub const IPV6_DONTFRAG: u32 = 14;
pub const IPV6_PKTINFO: u32 = 19;
pub const IPV6_HOPLIMIT: u32 = 21;
pub const IPV6_V6ONLY: u32 = 27;
pub const IPV6_UNICAST_IF: u32 = 31;
pub const IPV6_RTHDR: u32 = 32;
pub const IPV6_TCLASS: u32 = 39;
pub const IPV6_ECN: u32 = 50;
pub const UDP_SEND_MSG_SIZE: u32 = 2;
/// `_WSAIOW(IOC_WSK, 6)`.
pub const SIO_WSK_SET_SENDTO_ADDRESS: u32 = 0x8F00_0006;

/// `WskSetOption`, `WskGetOption`, `WskIoctl`.
pub const SET: i32 = 0;
pub const GET: i32 = 1;
pub const IOCTL: i32 = 2;

/// One control message: `WSACMSGHDR { SIZE_T cmsg_len; INT level; INT type }`, data, then
/// zero padding to the next multiple of 8.
pub fn cmsg(level: u32, ty: u32, data: &[u8]) -> Vec<u8> {
    let len = 16 + data.len();
    let mut out = Vec::new();
    out.extend((len as u64).to_le_bytes());
    out.extend(level.to_le_bytes());
    out.extend(ty.to_le_bytes());
    out.extend(data);
    out.resize(len.next_multiple_of(8), 0);
    out
}

pub fn int(value: i32) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

pub fn in_pktinfo(source: Ipv4Addr, index: u32) -> Vec<u8> {
    [source.octets().as_slice(), &index.to_le_bytes()].concat()
}

pub fn in6_pktinfo(source: Ipv6Addr, index: u32) -> Vec<u8> {
    [source.octets().as_slice(), &index.to_le_bytes()].concat()
}

/// `SOCKADDR_IN` / `SOCKADDR_IN6`, by hand: family (host order), port (network order),
/// address; `sin6_flowinfo` 0, `sin6_scope_id` host order.
pub fn sockaddr(address: SocketAddr) -> Vec<u8> {
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
            &[0; 4],
            &v6.ip().octets(),
            &v6.scope_id().to_le_bytes(),
        ]
        .concat(),
    }
}

/// The rules a report names, in order.
pub fn rules(report: &Report) -> Vec<&'static str> {
    report.violations.iter().map(|v| v.rule).collect()
}

/// A machine with `profile`'s provider and a client registered on it.
pub fn boot(profile: Profile) -> (Machine, Client) {
    let machine = Machine::boot(Config {
        profile,
        ..Config::default()
    });
    (machine, Client::register())
}

/// Unregisters `client` and shuts `machine` down: its report.
pub fn finish(machine: Machine, client: Client) -> Report {
    client.unregister();
    machine.shutdown()
}

/// [`finish`], asserting the report is clean.
pub fn finish_clean(machine: Machine, client: Client) -> Report {
    let report = finish(machine, client);
    assert!(report.is_clean(), "{report}");
    report
}

/// Whether this host has an IPv6 loopback.
pub fn has_ipv6() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

/// Bytes in non-paged pool (what a driver hands to WSK), freed on drop.
pub struct Pool {
    pub ptr: *mut c_void,
    pub len: usize,
}

impl Pool {
    pub fn new(bytes: &[u8]) -> Self {
        let ptr = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, bytes.len().max(1), TAG) };
        assert!(!ptr.is_null());
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.cast::<u8>(), bytes.len()) };
        Self {
            ptr,
            len: bytes.len(),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }.to_vec()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        unsafe { ExFreePoolWithTag(self.ptr, TAG) };
    }
}

/// A registered WSK client with a captured provider NPI.
pub struct Client {
    pub registration: Box<WSK_REGISTRATION>,
    pub npi: WSK_PROVIDER_NPI,
}

static DISPATCH: WSK_CLIENT_DISPATCH = WSK_CLIENT_DISPATCH {
    Version: 0x0100,
    Reserved: 0,
    WskClientEvent: None,
};

impl Client {
    /// `WskRegister`, then `WskCaptureProviderNPI`.
    pub fn register() -> Self {
        let mut registration: Box<WSK_REGISTRATION> = Box::new(unsafe { std::mem::zeroed() });
        let npi = WSK_CLIENT_NPI {
            ClientContext: std::ptr::null_mut(),
            Dispatch: &raw const DISPATCH,
        };
        assert_eq!(
            unsafe { WskRegister(&raw const npi, &raw mut *registration) },
            STATUS_SUCCESS
        );
        let mut provider = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { WskCaptureProviderNPI(&raw mut *registration, 1000, &raw mut provider) },
            STATUS_SUCCESS
        );
        Self {
            registration,
            npi: provider,
        }
    }

    pub fn unregister(mut self) {
        unsafe { WskReleaseProviderNPI(&raw mut *self.registration) };
        unsafe { WskDeregister(&raw mut *self.registration) };
    }
}

unsafe extern "system" fn keeps_irp(
    _: *const DEVICE_OBJECT,
    _: *mut IRP,
    done: *mut c_void,
) -> NTSTATUS {
    unsafe { &*done.cast::<AtomicBool>() }.store(true, Ordering::Release);
    STATUS_MORE_PROCESSING_REQUIRED
}

/// A fresh IRP whose completion routine keeps it and raises `done`.
pub fn irp_raising(done: &AtomicBool) -> *mut IRP {
    let irp = unsafe { IoAllocateIrp(1, false) };
    unsafe {
        io_set_completion_routine(irp, keeps_irp, std::ptr::from_ref(done).cast_mut().cast());
    };
    irp
}

/// Waits for `done` (the provider may complete on its worker thread).
pub fn wait(done: &AtomicBool) {
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `WskSocket` of a UDP socket of `family` with `flags` on `irp`: what it returned.
///
/// # Safety
/// `provider` is a captured provider NPI; `irp` an IRP with a stack location for the provider.
pub unsafe fn create_socket(
    provider: &WSK_PROVIDER_NPI,
    family: u16,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    let create = unsafe { (*provider.Dispatch).WskSocket.unwrap() };
    unsafe {
        create(
            provider.Client,
            family,
            2,
            17,
            flags,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            irp,
        )
    }
}

/// Runs one WSK call on a fresh IRP and waits for its completion: `(returned, IoStatus.Status,
/// IoStatus.Information)`.
pub fn with_irp(call: impl FnOnce(*mut IRP) -> NTSTATUS) -> (NTSTATUS, NTSTATUS, usize) {
    let done = AtomicBool::new(false);
    let irp = irp_raising(&done);
    let returned = call(irp);
    wait(&done);
    let status = unsafe { (*irp).IoStatus.Anonymous.Status };
    let information = unsafe { (*irp).IoStatus.Information };
    unsafe { IoFreeIrp(irp) };
    (returned, status, information)
}

/// A model socket.
#[derive(Clone, Copy)]
pub struct Socket(pub *mut WSK_SOCKET);

impl Socket {
    /// A UDP socket of `family` (not bound).
    pub fn new(client: &Client, family: u16) -> Self {
        let (_, status, information) =
            with_irp(|irp| unsafe { create_socket(&client.npi, family, 4, irp) });
        assert_eq!(status, STATUS_SUCCESS);
        Self(std::ptr::with_exposed_provenance_mut(information))
    }

    pub fn dispatch(self) -> &'static WSK_PROVIDER_DATAGRAM_DISPATCH {
        unsafe { &*(*self.0).Dispatch.cast::<WSK_PROVIDER_DATAGRAM_DISPATCH>() }
    }

    pub fn bind(self, local: SocketAddr) -> NTSTATUS {
        let address = Pool::new(&sockaddr(local));
        let bind = self.dispatch().WskBind.unwrap();
        with_irp(|irp| unsafe { bind(self.0, address.ptr.cast(), 0, irp) }).1
    }

    /// A bound socket of `local`'s family.
    pub fn bound(client: &Client, local: SocketAddr) -> Self {
        let socket = Self::new(client, if local.is_ipv4() { AF_INET } else { AF_INET6 });
        assert_eq!(socket.bind(local), STATUS_SUCCESS);
        socket
    }

    /// `WskControlSocket` with a DWORD in or out: `(IRP status, Information, DWORD out,
    /// OutputSizeReturned)`.
    pub fn control(
        self,
        request: i32,
        level: u32,
        code: u32,
        input: Option<&[u8]>,
        output_size: usize,
    ) -> (NTSTATUS, usize, u32, usize) {
        let input = input.map(Pool::new);
        let output = Pool::new(&vec![0xEE; output_size.max(4)]);
        let mut returned = 0_usize;
        let control = self.dispatch().Basic.WskControlSocket.unwrap();
        let (_, status, information) = with_irp(|irp| unsafe {
            control(
                self.0,
                request,
                code,
                level,
                input.as_ref().map_or(0, |p| p.len),
                input.as_ref().map_or(std::ptr::null_mut(), |p| p.ptr),
                output_size,
                if output_size == 0 {
                    std::ptr::null_mut()
                } else {
                    output.ptr
                },
                &raw mut returned,
                irp,
            )
        });
        let out = output.bytes();
        (
            status,
            information,
            u32::from_le_bytes(out[..4].try_into().unwrap()),
            returned,
        )
    }

    /// `WskSetOption` of a DWORD: the IRP's status.
    pub fn set(self, level: u32, code: u32, value: u32) -> NTSTATUS {
        self.control(SET, level, code, Some(&value.to_le_bytes()), 0)
            .0
    }

    /// `WskGetOption` of a DWORD: `Ok(value)` or the IRP's status.
    pub fn get(self, level: u32, code: u32) -> Result<u32, NTSTATUS> {
        let (status, information, value, _) = self.control(GET, level, code, None, 4);
        if status == STATUS_SUCCESS {
            assert_eq!(information, 4);
            Ok(value)
        } else {
            Err(status)
        }
    }

    /// `WskSendTo` of `payload` to `remote`, no control data: the IRP's status.
    pub fn send_to(self, remote: SocketAddr, payload: &[u8]) -> NTSTATUS {
        self.send(Some(remote), payload, &[], None).0
    }

    /// `WskSendTo` of `payload` to `remote` (NULL when `None`) with `control` as its
    /// `ControlInfo` and `control_len` (default: its length) as `ControlInfoLength`: the
    /// IRP's `(status, Information)`.
    pub fn send(
        self,
        remote: Option<SocketAddr>,
        payload: &[u8],
        control: &[u8],
        control_len: Option<u32>,
    ) -> (NTSTATUS, usize) {
        self.send_at(remote, payload, control, control_len, 0)
    }

    /// [`Socket::send`] with `ControlInfo` placed `offset` bytes into its pool block.
    pub fn send_at(
        self,
        remote: Option<SocketAddr>,
        payload: &[u8],
        control: &[u8],
        control_len: Option<u32>,
        offset: usize,
    ) -> (NTSTATUS, usize) {
        let data = Pool::new(payload);
        let mdl = unsafe {
            IoAllocateMdl(
                data.ptr,
                payload.len() as u32,
                false,
                false,
                std::ptr::null_mut(),
            )
        };
        unsafe { MmBuildMdlForNonPagedPool(mdl) };
        let mut buffer = WSK_BUF {
            Mdl: mdl,
            Offset: 0,
            Length: payload.len(),
        };
        let remote = remote.map(|r| Pool::new(&sockaddr(r)));
        let info =
            (!control.is_empty()).then(|| Pool::new(&[vec![0; offset], control.to_vec()].concat()));
        let send_to = self.dispatch().WskSendTo.unwrap();
        let (_, status, information) = with_irp(|irp| unsafe {
            send_to(
                self.0,
                &raw mut buffer,
                0,
                remote
                    .as_ref()
                    .map_or(std::ptr::null_mut(), |p| p.ptr.cast()),
                control_len.unwrap_or(control.len() as u32),
                info.as_ref().map_or(std::ptr::null_mut(), |p| {
                    p.ptr.cast::<u8>().wrapping_add(offset).cast()
                }),
                irp,
            )
        });
        unsafe { IoFreeMdl(mdl) };
        (status, information)
    }

    /// `WskSendMessages` of `payloads` (one datagram each) to `remote` with `control`.
    pub fn send_messages(
        self,
        remote: SocketAddr,
        payloads: &[&[u8]],
        control: &[u8],
    ) -> (NTSTATUS, usize) {
        let data: Vec<Pool> = payloads.iter().map(|p| Pool::new(p)).collect();
        let mdls: Vec<_> = data
            .iter()
            .map(|d| {
                let mdl = unsafe {
                    IoAllocateMdl(d.ptr, d.len as u32, false, false, std::ptr::null_mut())
                };
                unsafe { MmBuildMdlForNonPagedPool(mdl) };
                mdl
            })
            .collect();
        let mut list: Vec<WSK_BUF_LIST> = mdls
            .iter()
            .zip(&data)
            .map(|(mdl, d)| WSK_BUF_LIST {
                Next: std::ptr::null_mut(),
                Buffer: WSK_BUF {
                    Mdl: *mdl,
                    Offset: 0,
                    Length: d.len,
                },
            })
            .collect();
        for i in 1..list.len() {
            let next = &raw mut list[i];
            list[i - 1].Next = next;
        }
        let remote = Pool::new(&sockaddr(remote));
        let info = (!control.is_empty()).then(|| Pool::new(control));
        let send = self.dispatch().WskSendMessages.unwrap();
        let (_, status, information) = with_irp(|irp| unsafe {
            send(
                self.0,
                list.as_mut_ptr(),
                0,
                remote.ptr.cast(),
                control.len() as u32,
                info.as_ref().map_or(std::ptr::null_mut(), |p| p.ptr.cast()),
                irp,
            )
        });
        for mdl in mdls {
            unsafe { IoFreeMdl(mdl) };
        }
        (status, information)
    }

    /// `WskGetLocalAddress`, decoded by hand.
    pub fn local(self) -> SocketAddr {
        let out = Pool::new(&[0; 28]);
        let get = self.dispatch().WskGetLocalAddress.unwrap();
        let (_, status, _) = with_irp(|irp| unsafe { get(self.0, out.ptr.cast(), irp) });
        assert_eq!(status, STATUS_SUCCESS);
        let b = out.bytes();
        let port = u16::from_be_bytes([b[2], b[3]]);
        match u16::from_le_bytes([b[0], b[1]]) {
            AF_INET => SocketAddr::from((Ipv4Addr::new(b[4], b[5], b[6], b[7]), port)),
            AF_INET6 => {
                let ip: [u8; 16] = b[8..24].try_into().unwrap();
                SocketAddr::from((Ipv6Addr::from(ip), port))
            }
            other => panic!("family {other}"),
        }
    }

    pub fn close(self) {
        let close = self.dispatch().Basic.WskCloseSocket.unwrap();
        assert_eq!(
            with_irp(|irp| unsafe { close(self.0, irp) }).1,
            STATUS_SUCCESS
        );
    }
}

/// What a datagram carried when it arrived.
#[derive(Debug)]
pub struct Arrival {
    pub payload: Vec<u8>,
    pub from: SocketAddr,
    pub tos: Option<u8>,
    pub ttl: Option<u8>,
}

/// A Linux UDP socket reporting TOS / traffic class and TTL / hop limit.
pub struct Receiver(pub UdpSocket);

impl Receiver {
    pub fn bind(local: &str) -> Self {
        let socket = UdpSocket::bind(local).unwrap();
        if socket.local_addr().unwrap().is_ipv4() {
            setsockopt(&socket, sockopt::IpRecvTos, &true).unwrap();
            setsockopt(&socket, sockopt::Ipv4RecvTtl, &true).unwrap();
        } else {
            setsockopt(&socket, sockopt::Ipv6RecvTClass, &true).unwrap();
            setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true).unwrap();
        }
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Self(socket)
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.local_addr().unwrap()
    }

    pub fn recv(&self) -> Option<Arrival> {
        let mut buffer = vec![0_u8; 70_000];
        let mut control = nix::cmsg_space!(libc::c_int, libc::c_int, libc::c_int, libc::c_int);
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = recvmsg::<SockaddrStorage>(
            self.0.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        )
        .ok()?;
        let (mut tos, mut ttl) = (None, None);
        for cmsg in message.cmsgs().unwrap() {
            match cmsg {
                ControlMessageOwned::Ipv4Tos(v) => tos = Some(v),
                ControlMessageOwned::Ipv6TClass(v) => tos = u8::try_from(v).ok(),
                ControlMessageOwned::Ipv4Ttl(v) | ControlMessageOwned::Ipv6HopLimit(v) => {
                    ttl = u8::try_from(v).ok();
                }
                _ => {}
            }
        }
        let address = message.address.unwrap();
        let from = address
            .as_sockaddr_in()
            .map(|v4| SocketAddr::V4((*v4).into()))
            .or_else(|| {
                address
                    .as_sockaddr_in6()
                    .map(|v6| SocketAddr::V6((*v6).into()))
            })
            .unwrap();
        let len = message.bytes;
        buffer.truncate(len);
        Some(Arrival {
            payload: buffer,
            from,
            tos,
            ttl,
        })
    }
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}
