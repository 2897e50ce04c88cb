//! Datagram sockets: `WskSocket` and the `WSK_PROVIDER_DATAGRAM_DISPATCH` functions.

use std::ffi::c_void;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use windows_sys::Wdk::Foundation::IRP;
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_FILE_FORCED_CLOSED, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_ADDRESS_COMPONENT, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_HANDLE,
    STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
};
use windows_sys::Win32::Networking::WinSock::{
    AF_INET, AF_INET6, CMSGHDR, IPPROTO_UDP, SOCK_DGRAM, SOCKADDR,
};
use wskudp_core::ddi::wsk::{
    WSK_BUF, WSK_CLIENT, WSK_CONTROL_SOCKET_TYPE, WSK_FLAG_DATAGRAM_SOCKET,
    WSK_PROVIDER_BASIC_DISPATCH, WSK_PROVIDER_DATAGRAM_DISPATCH, WSK_SOCKET,
};
use wskudp_core::sockaddr;

use super::{linux, wsk};
use crate::completion;
use crate::faults::{self, Site};
use crate::irp;
use crate::irql::{self, DISPATCH_LEVEL};
use crate::state;

/// The datagram dispatch table of every model socket.
static DATAGRAM_DISPATCH: WSK_PROVIDER_DATAGRAM_DISPATCH = WSK_PROVIDER_DATAGRAM_DISPATCH {
    Basic: WSK_PROVIDER_BASIC_DISPATCH {
        WskControlSocket: Some(wsk_control_socket),
        WskCloseSocket: Some(wsk_close_socket),
    },
    WskBind: Some(wsk_bind),
    WskSendTo: Some(wsk_send_to),
    WskReceiveFrom: None,
    WskRelease: None,
    WskGetLocalAddress: Some(wsk_get_local_address),
    WskSendMessages: None,
};

/// The memory a `PWSK_SOCKET` points to: the `WSK_SOCKET` header the client reads.
#[repr(C)]
struct ModelSocket {
    header: WSK_SOCKET,
}

/// The provider's bookkeeping for one socket.
pub(crate) struct SocketRecord {
    memory: *mut ModelSocket,
    fd: Option<Arc<OwnedFd>>,
    v6: bool,
    bound: bool,
    /// Calls to the socket's functions in progress, on any thread.
    calls: usize,
    /// The transport went away ([`super::force_close_sockets`]): every send fails with
    /// `STATUS_FILE_FORCED_CLOSED` until the client closes the socket.
    pub(crate) forced: bool,
}

// SAFETY: `memory` is a Box the provider owns; it is only freed under the WSK mutex.
unsafe impl Send for SocketRecord {}

impl SocketRecord {
    pub(crate) const fn closed(&self) -> bool {
        self.fd.is_none()
    }
}

/// One call to a socket's function in progress (counted from entry to return, so a completion
/// routine the provider runs inline counts as inside the call).
struct CallInProgress {
    key: usize,
}

impl CallInProgress {
    fn enter(socket: *mut WSK_SOCKET) -> Self {
        let key = socket.expose_provenance();
        if let Some(record) = wsk().sockets.get_mut(&key) {
            record.calls += 1;
        }
        Self { key }
    }

    /// Calls in progress on the socket, this one included.
    fn count(&self) -> usize {
        wsk()
            .sockets
            .get(&self.key)
            .map_or(0, |record| record.calls)
    }
}

impl Drop for CallInProgress {
    fn drop(&mut self) {
        if let Some(record) = wsk().sockets.get_mut(&self.key) {
            record.calls = record.calls.saturating_sub(1);
        }
    }
}

impl Drop for SocketRecord {
    fn drop(&mut self) {
        // SAFETY: `memory` came from Box::into_raw in wsk_socket and is dropped once, here.
        drop(unsafe { Box::from_raw(self.memory) });
    }
}

/// The socket behind `socket` if it is a live model socket, else the status to fail with
/// (after recording the violation).
fn lookup(socket: *mut WSK_SOCKET, call: &str) -> Result<(Arc<OwnedFd>, bool, bool), NTSTATUS> {
    let key = socket.expose_provenance();
    let wsk = wsk();
    let Some(record) = wsk.sockets.get(&key) else {
        drop(wsk);
        state::violation(
            "WskUnknownSocket",
            format!("{call} on {key:#x}, not a socket of this provider"),
        );
        return Err(STATUS_INVALID_HANDLE);
    };
    let Some(fd) = record.fd.clone() else {
        drop(wsk);
        state::violation(
            "WskSocketClosed",
            format!("{call} on socket {key:#x} after WskCloseSocket"),
        );
        return Err(STATUS_INVALID_HANDLE);
    };
    Ok((fd, record.v6, record.bound))
}

/// The common start of a socket call: IRQL check, take the IRP, find the socket. `Err` is
/// what the call returns: the IRP was refused, or already completed with the failure.
fn begin(
    call: &str,
    socket: *mut WSK_SOCKET,
    irp: *mut IRP,
) -> Result<(Arc<OwnedFd>, bool, bool), NTSTATUS> {
    irql::require_at_most(call, DISPATCH_LEVEL);
    if !irp::accept(irp, call) {
        return Err(STATUS_INVALID_PARAMETER);
    }
    lookup(socket, call).map_err(|status| fail_now(irp, status))
}

/// A call the model does not implement: takes the IRP and fails it with
/// `STATUS_NOT_SUPPORTED`, as a provider refuses an unknown control code.
fn not_modelled(irp: *mut IRP, call: &str) -> NTSTATUS {
    if !irp::accept(irp, call) {
        return STATUS_INVALID_PARAMETER;
    }
    fail_now(irp, STATUS_NOT_SUPPORTED)
}

/// Accepts `irp` and completes it at once with `status` (a synchronous failure).
fn fail_now(irp: *mut IRP, status: NTSTATUS) -> NTSTATUS {
    irp::complete(irp, status, 0);
    status
}

/// `WskSocket`: only `WSK_FLAG_DATAGRAM_SOCKET`, `SOCK_DGRAM`, `IPPROTO_UDP` are modelled.
pub(super) unsafe extern "system" fn wsk_socket(
    client: *mut WSK_CLIENT,
    family: u16,
    socket_type: u16,
    protocol: u32,
    flags: u32,
    _context: *mut c_void,
    dispatch: *const c_void,
    _process: *mut c_void,
    _thread: *mut c_void,
    _security: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS {
    irql::require_at_most("WskSocket", DISPATCH_LEVEL);
    if !irp::accept(irp, "WskSocket") {
        return STATUS_INVALID_PARAMETER;
    }
    if client != super::client() {
        state::violation(
            "WskClient",
            format!("WskSocket with client {client:p}, not the captured one"),
        );
        return fail_now(irp, STATUS_INVALID_PARAMETER);
    }
    if flags != WSK_FLAG_DATAGRAM_SOCKET
        || i32::from(socket_type) != SOCK_DGRAM
        || i64::from(protocol) != i64::from(IPPROTO_UDP)
        || !dispatch.is_null()
    {
        return fail_now(irp, STATUS_NOT_SUPPORTED);
    }
    let v6 = match family {
        AF_INET => false,
        AF_INET6 => true,
        _ => return fail_now(irp, STATUS_INVALID_ADDRESS_COMPONENT),
    };
    if faults::should_fail(Site::WskSocket) {
        return fail_now(irp, STATUS_INSUFFICIENT_RESOURCES);
    }
    completion::submit(
        irp,
        0,
        Box::new(move || match linux::udp_socket(v6) {
            Ok(fd) => {
                let memory = Box::into_raw(Box::new(ModelSocket {
                    header: WSK_SOCKET {
                        Dispatch: (&raw const DATAGRAM_DISPATCH).cast(),
                    },
                }));
                let key = memory.expose_provenance();
                wsk().sockets.insert(
                    key,
                    SocketRecord {
                        memory,
                        fd: Some(Arc::new(fd)),
                        v6,
                        bound: false,
                        calls: 0,
                        forced: false,
                    },
                );
                (STATUS_SUCCESS, key)
            }
            Err(status) => (status, 0),
        }),
    )
}

/// `WskControlClient`: nothing is modelled.
pub(super) unsafe extern "system" fn wsk_control_client(
    _client: *mut WSK_CLIENT,
    _code: u32,
    _input_size: usize,
    _input: *mut c_void,
    _output_size: usize,
    _output: *mut c_void,
    _returned: *mut usize,
    irp: *mut IRP,
) -> NTSTATUS {
    not_modelled(irp, "WskControlClient")
}

/// `WskControlSocket`: nothing is modelled.
unsafe extern "system" fn wsk_control_socket(
    _socket: *mut WSK_SOCKET,
    _request: WSK_CONTROL_SOCKET_TYPE,
    _code: u32,
    _level: u32,
    _input_size: usize,
    _input: *mut c_void,
    _output_size: usize,
    _output: *mut c_void,
    _returned: *mut usize,
    irp: *mut IRP,
) -> NTSTATUS {
    not_modelled(irp, "WskControlSocket")
}

/// `WskCloseSocket` (IRQL <= `DISPATCH_LEVEL`): cancels the socket's queued IRPs, then closes.
/// "Before calling `WskCloseSocket`, a WSK application must ensure that there are no other
/// function calls in progress to any of the socket's functions [...] in any of the
/// application's other threads" (`PFN_WSK_CLOSE_SOCKET`, Remarks); pending IRPs are allowed.
unsafe extern "system" fn wsk_close_socket(socket: *mut WSK_SOCKET, irp: *mut IRP) -> NTSTATUS {
    let call = CallInProgress::enter(socket);
    if let Err(returned) = begin("WskCloseSocket", socket, irp) {
        return returned;
    }
    let others = call.count().saturating_sub(1);
    if others > 0 {
        state::violation(
            "WskCloseSocketDuringCall",
            format!(
                "WskCloseSocket on socket {:#x} while {others} other call(s) to its functions are in progress",
                socket.expose_provenance()
            ),
        );
    }
    let key = socket.expose_provenance();
    completion::cancel_socket(key);
    if let Some(record) = wsk().sockets.get_mut(&key) {
        record.fd = None;
    }
    fail_now(irp, STATUS_SUCCESS)
}

/// `WskBind` (IRQL <= `DISPATCH_LEVEL`).
unsafe extern "system" fn wsk_bind(
    socket: *mut WSK_SOCKET,
    local: *mut SOCKADDR,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    let _call = CallInProgress::enter(socket);
    let (fd, v6, bound) = match begin("WskBind", socket, irp) {
        Ok(found) => found,
        Err(returned) => return returned,
    };
    if flags != 0 || local.is_null() {
        return fail_now(irp, STATUS_INVALID_PARAMETER);
    }
    if bound {
        return fail_now(irp, STATUS_INVALID_DEVICE_STATE);
    }
    // SAFETY: A SOCKADDR of the socket's family: at most a SOCKADDR_IN6 (28 bytes) is read,
    // and only as far as the family says.
    let Some(address) = (unsafe { read_sockaddr(local) }) else {
        return fail_now(irp, STATUS_INVALID_ADDRESS_COMPONENT);
    };
    if address.is_ipv6() != v6 {
        return fail_now(irp, STATUS_INVALID_ADDRESS_COMPONENT);
    }
    if faults::should_fail(Site::WskBind) {
        return fail_now(irp, STATUS_INSUFFICIENT_RESOURCES);
    }
    let key = socket.expose_provenance();
    completion::submit(
        irp,
        key,
        Box::new(move || match linux::bind(fd.as_raw_fd(), address) {
            Ok(()) => {
                if let Some(record) = wsk().sockets.get_mut(&key) {
                    record.bound = true;
                }
                (STATUS_SUCCESS, 0)
            }
            Err(status) => (status, 0),
        }),
    )
}

/// `WskGetLocalAddress` (IRQL <= `DISPATCH_LEVEL`).
unsafe extern "system" fn wsk_get_local_address(
    socket: *mut WSK_SOCKET,
    local: *mut SOCKADDR,
    irp: *mut IRP,
) -> NTSTATUS {
    let _call = CallInProgress::enter(socket);
    let (fd, _, bound) = match begin("WskGetLocalAddress", socket, irp) {
        Ok(found) => found,
        Err(returned) => return returned,
    };
    if !bound || local.is_null() {
        return fail_now(irp, STATUS_INVALID_DEVICE_STATE);
    }
    if faults::should_fail(Site::WskGetLocalAddress) {
        return fail_now(irp, STATUS_INSUFFICIENT_RESOURCES);
    }
    let out = local.expose_provenance();
    completion::submit(
        irp,
        socket.expose_provenance(),
        Box::new(move || match linux::local_address(fd.as_raw_fd()) {
            Ok(address) => {
                let encoded = sockaddr::SockAddrBuffer::new(address);
                let bytes = encoded.as_bytes();
                // SAFETY: The caller provides room for a SOCKADDR of its socket's family,
                // which is exactly what is written.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        std::ptr::with_exposed_provenance_mut::<u8>(out),
                        bytes.len(),
                    );
                }
                (STATUS_SUCCESS, 0)
            }
            Err(status) => (status, 0),
        }),
    )
}

/// Decodes a Windows `SOCKADDR_IN`/`SOCKADDR_IN6`.
///
/// # Safety
/// `address` must point to a readable SOCKADDR of the family it names.
unsafe fn read_sockaddr(address: *const SOCKADDR) -> Option<SocketAddr> {
    // SAFETY: The family field is always readable.
    let family = unsafe { (*address).sa_family };
    let len = match family {
        AF_INET => size_of::<windows_sys::Win32::Networking::WinSock::SOCKADDR_IN>(),
        AF_INET6 => size_of::<windows_sys::Win32::Networking::WinSock::SOCKADDR_IN6>(),
        _ => return None,
    };
    // SAFETY: A SOCKADDR of that family is `len` bytes (caller's contract).
    let bytes = unsafe { std::slice::from_raw_parts(address.cast::<u8>(), len) };
    sockaddr::decode(bytes)
}

/// `WskSendTo` (IRQL <= `DISPATCH_LEVEL`). The `WSK_BUF` structure is read now; the data its
/// MDLs describe, the remote address and the control buffer are read when the IRP completes
/// (late, in worker mode), so a driver that frees them early is caught.
unsafe extern "system" fn wsk_send_to(
    socket: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    flags: u32,
    remote: *mut SOCKADDR,
    control_len: u32,
    control: *mut CMSGHDR,
    irp: *mut IRP,
) -> NTSTATUS {
    let _call = CallInProgress::enter(socket);
    let (fd, v6, bound) = match begin("WskSendTo", socket, irp) {
        Ok(found) => found,
        Err(returned) => return returned,
    };
    let key = socket.expose_provenance();
    if super::is_forced(key) {
        return fail_now(irp, STATUS_FILE_FORCED_CLOSED);
    }
    if flags != 0 || buffer.is_null() || remote.is_null() || (control_len != 0 && control.is_null())
    {
        return fail_now(irp, STATUS_INVALID_PARAMETER);
    }
    if !bound {
        return fail_now(irp, STATUS_INVALID_DEVICE_STATE);
    }
    if faults::should_fail(Site::WskSendTo) {
        return fail_now(irp, STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: `buffer` points to an initialized WSK_BUF (caller's contract).
    let buffer = unsafe { buffer.read() };
    let request = linux::SendRequest {
        fd,
        v6,
        buffer,
        remote: remote.expose_provenance(),
        control: control.expose_provenance(),
        control_len: control_len as usize,
    };
    completion::submit(
        irp,
        key,
        Box::new(move || {
            if super::is_forced(key) {
                (STATUS_FILE_FORCED_CLOSED, 0)
            } else {
                request.execute()
            }
        }),
    )
}
