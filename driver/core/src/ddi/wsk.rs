//! The Winsock Kernel ABI, declared by hand: neither `wdk-sys` nor `windows-sys` carries
//! `wsk.h`. Names follow the C header (raw bindings keep their C names).
//!
//! Every declaration was checked against two independent sources:
//! - Microsoft's WSK reference (learn.microsoft.com/windows-hardware/drivers/ddi/wsk/), e.g.
//!   `ns-wsk-_wsk_provider_datagram_dispatch`, `ns-wsk-_wsk_provider_basic_dispatch`,
//!   `ns-wsk-_wsk_provider_dispatch`, `ns-wsk-_wsk_client_dispatch`, `ns-wsk-_wsk_buf`,
//!   `nc-wsk-pfn_wsk_socket`, `nc-wsk-pfn_wsk_send_to`, `nf-wsk-wskcaptureprovidernpi`;
//! - Wine's `include/ddk/wsk.h` (Wine 8.0), written independently of the WDK.
//!
//! The dispatch-table slot order matters most: the kernel model is written from these same
//! declarations and cannot catch a swapped slot, while on Windows a swapped slot calls the
//! wrong function. `tests/kmodel/tests/abi_conformance.rs` compiles Wine's header with
//! mingw-w64 and checks every offset here against it.

#![allow(
    non_snake_case,
    non_camel_case_types,
    non_upper_case_globals,
    clippy::use_self,
    reason = "declarations mirror wsk.h"
)]

use core::ffi::c_void;

use windows_sys::Win32::Foundation::NTSTATUS;
use windows_sys::Win32::Networking::WinSock::{CMSGHDR, SOCKADDR};

use super::nt::{IRP, MDL};

/// `MAKE_WSK_VERSION(major, minor)`.
#[must_use]
pub const fn make_wsk_version(major: u8, minor: u8) -> u16 {
    u16::from_be_bytes([major, minor])
}

/// `WSK_NO_WAIT`: `WskCaptureProviderNPI` returns at once (any IRQL <= `DISPATCH_LEVEL`).
pub const WSK_NO_WAIT: u32 = 0;
/// `WSK_INFINITE_WAIT`.
pub const WSK_INFINITE_WAIT: u32 = 0xFFFF_FFFF;

/// `WSK_FLAG_BASIC_SOCKET`.
pub const WSK_FLAG_BASIC_SOCKET: u32 = 0x0000_0000;
/// `WSK_FLAG_LISTEN_SOCKET`.
pub const WSK_FLAG_LISTEN_SOCKET: u32 = 0x0000_0001;
/// `WSK_FLAG_CONNECTION_SOCKET`.
pub const WSK_FLAG_CONNECTION_SOCKET: u32 = 0x0000_0002;
/// `WSK_FLAG_DATAGRAM_SOCKET`.
pub const WSK_FLAG_DATAGRAM_SOCKET: u32 = 0x0000_0004;
/// `WSK_FLAG_STREAM_SOCKET`.
pub const WSK_FLAG_STREAM_SOCKET: u32 = 0x0000_0008;

/// `WSK_CLIENT`: opaque to the client.
#[repr(C)]
pub struct WSK_CLIENT {
    _opaque: [u8; 0],
}

/// `WSK_SOCKET`: the provider's socket object; `Dispatch` points to the dispatch table of the
/// socket's category (`WSK_PROVIDER_DATAGRAM_DISPATCH` for datagram sockets).
#[repr(C)]
pub struct WSK_SOCKET {
    /// Category-specific provider dispatch table.
    pub Dispatch: *const c_void,
}

/// `WSK_BUF`: `Length` bytes starting `Offset` bytes into the MDL chain at `Mdl`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WSK_BUF {
    /// First MDL of the chain (linked through `MDL::Next`).
    pub Mdl: *mut MDL,
    /// Offset into the first MDL.
    pub Offset: u32,
    /// Bytes described.
    pub Length: usize,
}

/// `WSK_BUF_LIST` (Windows 8+), for `WskSendMessages`.
#[repr(C)]
pub struct WSK_BUF_LIST {
    /// Next datagram.
    pub Next: *mut WSK_BUF_LIST,
    /// This datagram's data.
    pub Buffer: WSK_BUF,
}

/// `WSK_DATAGRAM_INDICATION`.
#[repr(C)]
pub struct WSK_DATAGRAM_INDICATION {
    /// Next indication.
    pub Next: *mut WSK_DATAGRAM_INDICATION,
    /// Datagram data.
    pub Buffer: WSK_BUF,
    /// Control messages.
    pub ControlInfo: *mut CMSGHDR,
    /// Bytes of `ControlInfo`.
    pub ControlInfoLength: u32,
    /// Sender.
    pub RemoteAddress: *mut SOCKADDR,
}

/// `PFN_WSK_CLIENT_EVENT`.
pub type PFN_WSK_CLIENT_EVENT = Option<
    unsafe extern "system" fn(
        ClientContext: *mut c_void,
        EventType: u32,
        Information: *mut c_void,
        InformationLength: usize,
    ) -> NTSTATUS,
>;

/// `WSK_CLIENT_DISPATCH`.
#[repr(C)]
pub struct WSK_CLIENT_DISPATCH {
    /// `MAKE_WSK_VERSION` the client was written for.
    pub Version: u16,
    /// Zero.
    pub Reserved: u16,
    /// Client-level event callback, or `None`.
    pub WskClientEvent: PFN_WSK_CLIENT_EVENT,
}

/// `WSK_CLIENT_NPI`.
#[repr(C)]
pub struct WSK_CLIENT_NPI {
    /// Passed back to `WskClientEvent`.
    pub ClientContext: *mut c_void,
    /// The client's dispatch table.
    pub Dispatch: *const WSK_CLIENT_DISPATCH,
}

/// `WSK_REGISTRATION`: opaque storage the WSK subsystem owns between `WskRegister` and
/// `WskDeregister`. It must not move in between.
#[repr(C)]
pub struct WSK_REGISTRATION {
    /// Reserved.
    pub ReservedRegistrationState: u64,
    /// Reserved.
    pub ReservedRegistrationContext: *mut c_void,
    /// Reserved (`KSPIN_LOCK`).
    pub ReservedRegistrationLock: usize,
}

/// `WSK_PROVIDER_NPI`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct WSK_PROVIDER_NPI {
    /// Passed as the first argument of every `WSK_PROVIDER_DISPATCH` function.
    pub Client: *mut WSK_CLIENT,
    /// Provider-level functions.
    pub Dispatch: *const WSK_PROVIDER_DISPATCH,
}

/// A dispatch-table slot wskudp never calls: declared only for its size and position.
pub type UnusedSlot = Option<unsafe extern "system" fn()>;

/// `PFN_WSK_SOCKET`.
pub type PFN_WSK_SOCKET = Option<
    unsafe extern "system" fn(
        Client: *mut WSK_CLIENT,
        AddressFamily: u16,
        SocketType: u16,
        Protocol: u32,
        Flags: u32,
        SocketContext: *mut c_void,
        Dispatch: *const c_void,
        OwningProcess: *mut c_void,
        OwningThread: *mut c_void,
        SecurityDescriptor: *mut c_void,
        Irp: *mut IRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_CONTROL_CLIENT`.
pub type PFN_WSK_CONTROL_CLIENT = Option<
    unsafe extern "system" fn(
        Client: *mut WSK_CLIENT,
        ControlCode: u32,
        InputSize: usize,
        InputBuffer: *mut c_void,
        OutputSize: usize,
        OutputBuffer: *mut c_void,
        OutputSizeReturned: *mut usize,
        Irp: *mut IRP,
    ) -> NTSTATUS,
>;

/// `WSK_PROVIDER_DISPATCH`.
#[repr(C)]
pub struct WSK_PROVIDER_DISPATCH {
    /// `MAKE_WSK_VERSION` the provider implements.
    pub Version: u16,
    /// Reserved.
    pub Reserved: u16,
    /// `WskSocket`.
    pub WskSocket: PFN_WSK_SOCKET,
    /// `WskSocketConnect` (`PFN_WSK_SOCKET_CONNECT`).
    pub WskSocketConnect: UnusedSlot,
    /// `WskControlClient`.
    pub WskControlClient: PFN_WSK_CONTROL_CLIENT,
    /// `WskGetAddressInfo` (`PFN_WSK_GET_ADDRESS_INFO`, Windows 7+).
    pub WskGetAddressInfo: UnusedSlot,
    /// `WskFreeAddressInfo` (`PFN_WSK_FREE_ADDRESS_INFO`, Windows 7+).
    pub WskFreeAddressInfo: UnusedSlot,
    /// `WskGetNameInfo` (`PFN_WSK_GET_NAME_INFO`, Windows 7+).
    pub WskGetNameInfo: UnusedSlot,
}

/// `IOC_WSK` (wsk.h): `IOC_WS2 | 0x07000000`.
pub const IOC_WSK: u32 = windows_sys::Win32::Networking::WinSock::IOC_WS2 | 0x0700_0000;
/// `SIO_WSK_SET_SENDTO_ADDRESS` (wsk.h): `_WSAIOW(IOC_WSK, 0x6)`.
pub const SIO_WSK_SET_SENDTO_ADDRESS: u32 =
    windows_sys::Win32::Networking::WinSock::IOC_IN | IOC_WSK | 0x6;

/// `WSK_CONTROL_SOCKET_TYPE`.
pub type WSK_CONTROL_SOCKET_TYPE = i32;
/// `WskSetOption`.
pub const WskSetOption: WSK_CONTROL_SOCKET_TYPE = 0;
/// `WskGetOption`.
pub const WskGetOption: WSK_CONTROL_SOCKET_TYPE = 1;
/// `WskIoctl`.
pub const WskIoctl: WSK_CONTROL_SOCKET_TYPE = 2;

/// `PFN_WSK_CONTROL_SOCKET`.
pub type PFN_WSK_CONTROL_SOCKET = Option<
    unsafe extern "system" fn(
        Socket: *mut WSK_SOCKET,
        RequestType: WSK_CONTROL_SOCKET_TYPE,
        ControlCode: u32,
        Level: u32,
        InputSize: usize,
        InputBuffer: *mut c_void,
        OutputSize: usize,
        OutputBuffer: *mut c_void,
        OutputSizeReturned: *mut usize,
        Irp: *mut IRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_CLOSE_SOCKET`.
pub type PFN_WSK_CLOSE_SOCKET =
    Option<unsafe extern "system" fn(Socket: *mut WSK_SOCKET, Irp: *mut IRP) -> NTSTATUS>;

/// `WSK_PROVIDER_BASIC_DISPATCH`: the first two slots of every socket dispatch table.
#[repr(C)]
pub struct WSK_PROVIDER_BASIC_DISPATCH {
    /// `WskControlSocket`.
    pub WskControlSocket: PFN_WSK_CONTROL_SOCKET,
    /// `WskCloseSocket`.
    pub WskCloseSocket: PFN_WSK_CLOSE_SOCKET,
}

/// `PFN_WSK_BIND`.
pub type PFN_WSK_BIND = Option<
    unsafe extern "system" fn(
        Socket: *mut WSK_SOCKET,
        LocalAddress: *mut SOCKADDR,
        Flags: u32,
        Irp: *mut IRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_SEND_TO`.
pub type PFN_WSK_SEND_TO = Option<WskSendToFn>;

/// The function type behind [`PFN_WSK_SEND_TO`].
pub type WskSendToFn = unsafe extern "system" fn(
    Socket: *mut WSK_SOCKET,
    Buffer: *mut WSK_BUF,
    Flags: u32,
    RemoteAddress: *mut SOCKADDR,
    ControlInfoLength: u32,
    ControlInfo: *mut CMSGHDR,
    Irp: *mut IRP,
) -> NTSTATUS;

/// `PFN_WSK_RECEIVE_FROM`.
pub type PFN_WSK_RECEIVE_FROM = Option<
    unsafe extern "system" fn(
        Socket: *mut WSK_SOCKET,
        Buffer: *mut WSK_BUF,
        Flags: u32,
        RemoteAddress: *mut SOCKADDR,
        ControlLength: *mut u32,
        ControlInfo: *mut CMSGHDR,
        ControlFlags: *mut u32,
        Irp: *mut IRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST`.
pub type PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST = Option<
    unsafe extern "system" fn(
        Socket: *mut WSK_SOCKET,
        DatagramIndication: *mut WSK_DATAGRAM_INDICATION,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_GET_LOCAL_ADDRESS`.
pub type PFN_WSK_GET_LOCAL_ADDRESS = Option<
    unsafe extern "system" fn(
        Socket: *mut WSK_SOCKET,
        LocalAddress: *mut SOCKADDR,
        Irp: *mut IRP,
    ) -> NTSTATUS,
>;

/// `PFN_WSK_SEND_MESSAGES` (Windows 8+).
pub type PFN_WSK_SEND_MESSAGES = Option<
    unsafe extern "system" fn(
        Socket: *mut WSK_SOCKET,
        BufferList: *mut WSK_BUF_LIST,
        Flags: u32,
        RemoteAddress: *mut SOCKADDR,
        ControlInfoLength: u32,
        ControlInfo: *mut CMSGHDR,
        Irp: *mut IRP,
    ) -> NTSTATUS,
>;

/// `WSK_PROVIDER_DATAGRAM_DISPATCH`.
///
/// Slot order per the reference page and Wine's header: `Basic` (`WskControlSocket`,
/// `WskCloseSocket`), `WskBind`, `WskSendTo`, `WskReceiveFrom`, `WskRelease`,
/// `WskGetLocalAddress`, `WskSendMessages`.
#[repr(C)]
pub struct WSK_PROVIDER_DATAGRAM_DISPATCH {
    /// `WskControlSocket`, `WskCloseSocket`.
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    /// `WskBind`.
    pub WskBind: PFN_WSK_BIND,
    /// `WskSendTo`.
    pub WskSendTo: PFN_WSK_SEND_TO,
    /// `WskReceiveFrom`.
    pub WskReceiveFrom: PFN_WSK_RECEIVE_FROM,
    /// `WskRelease`.
    pub WskRelease: PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST,
    /// `WskGetLocalAddress`.
    pub WskGetLocalAddress: PFN_WSK_GET_LOCAL_ADDRESS,
    /// `WskSendMessages` (Windows 8+; the table is shorter on older providers).
    pub WskSendMessages: PFN_WSK_SEND_MESSAGES,
}

pub use imports::*;

/// `netio.sys` exports (`WskRegister` and friends live in NETIO.SYS; the socket functions are
/// reached through dispatch tables, not imports).
#[allow(
    missing_docs,
    reason = "declared through windows_link::link!, see wsk.h"
)]
mod imports {
    use super::{NTSTATUS, WSK_CLIENT_NPI, WSK_PROVIDER_NPI, WSK_REGISTRATION};

    windows_link::link!("netio.sys" "system" fn WskRegister(wskclientnpi : *const WSK_CLIENT_NPI, wskregistration : *mut WSK_REGISTRATION) -> NTSTATUS);
    windows_link::link!("netio.sys" "system" fn WskDeregister(wskregistration : *mut WSK_REGISTRATION));
    windows_link::link!("netio.sys" "system" fn WskCaptureProviderNPI(wskregistration : *mut WSK_REGISTRATION, waittimeout : u32, wskprovidernpi : *mut WSK_PROVIDER_NPI) -> NTSTATUS);
    windows_link::link!("netio.sys" "system" fn WskReleaseProviderNPI(wskregistration : *mut WSK_REGISTRATION));
}

// x64 layouts (the only architecture this driver is built for): sizes and the offset of every
// slot wskudp calls. tests/kmodel/tests/abi_conformance.rs checks the same values against a C
// compiler.
const _: () = {
    use core::mem::offset_of;
    assert!(size_of::<WSK_BUF>() == 24);
    assert!(offset_of!(WSK_BUF, Offset) == 8);
    assert!(offset_of!(WSK_BUF, Length) == 16);
    assert!(size_of::<WSK_BUF_LIST>() == 32);
    assert!(size_of::<WSK_REGISTRATION>() == 24);
    assert!(size_of::<WSK_CLIENT_DISPATCH>() == 16);
    assert!(size_of::<WSK_CLIENT_NPI>() == 16);
    assert!(size_of::<WSK_PROVIDER_NPI>() == 16);
    assert!(size_of::<WSK_PROVIDER_DISPATCH>() == 56);
    assert!(offset_of!(WSK_PROVIDER_DISPATCH, WskSocket) == 8);
    assert!(offset_of!(WSK_PROVIDER_DISPATCH, WskControlClient) == 24);
    assert!(size_of::<WSK_PROVIDER_BASIC_DISPATCH>() == 16);
    assert!(size_of::<WSK_PROVIDER_DATAGRAM_DISPATCH>() == 64);
    assert!(offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskBind) == 16);
    assert!(offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskSendTo) == 24);
    assert!(offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskGetLocalAddress) == 48);
    assert!(offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskSendMessages) == 56);
    assert!(size_of::<WSK_DATAGRAM_INDICATION>() == 56);
};
