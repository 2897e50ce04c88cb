//! Datagram sockets: `WskSocket` and the `WSK_PROVIDER_DATAGRAM_DISPATCH` functions.

use std::ffi::c_void;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use smallvec::SmallVec;

use windows_sys::Wdk::Foundation::IRP;
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_FILE_FORCED_CLOSED, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_ADDRESS_COMPONENT, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_HANDLE,
    STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
};
use windows_sys::Win32::Networking::WinSock::{CMSGHDR, IPPROTO_UDP, SOCK_DGRAM, SOCKADDR};
use wskudp_core::ddi::wsk::{
    PFN_WSK_SEND_MESSAGES, WSK_BUF, WSK_BUF_LIST, WSK_CLIENT, WSK_CONTROL_SOCKET_TYPE,
    WSK_FLAG_DATAGRAM_SOCKET, WSK_PROVIDER_BASIC_DISPATCH, WSK_PROVIDER_DATAGRAM_DISPATCH,
    WSK_SOCKET, WskGetOption, WskIoctl, WskSetOption,
};

use super::options::{self, Call, OptionState, Request, SocketFacts};
use super::{SOCKETS, linux, wire};
use crate::completion;
use crate::faults::{self, Site};
use crate::irp;
use crate::irql::{self, DISPATCH_LEVEL};
use crate::profile::Profile;
use crate::state;

/// The datagram dispatch table of a model socket, with `send_messages` in its last slot.
const fn dispatch_table(send_messages: PFN_WSK_SEND_MESSAGES) -> WSK_PROVIDER_DATAGRAM_DISPATCH {
    WSK_PROVIDER_DATAGRAM_DISPATCH {
        Basic: WSK_PROVIDER_BASIC_DISPATCH {
            WskControlSocket: Some(wsk_control_socket),
            WskCloseSocket: Some(wsk_close_socket),
        },
        WskBind: Some(wsk_bind),
        WskSendTo: Some(wsk_send_to),
        WskReceiveFrom: None,
        WskRelease: None,
        WskGetLocalAddress: Some(wsk_get_local_address),
        WskSendMessages: send_messages,
    }
}

/// The datagram dispatch table of every model socket.
static DATAGRAM_DISPATCH: WSK_PROVIDER_DATAGRAM_DISPATCH = dispatch_table(Some(wsk_send_messages));

/// The table of a build without `WskSendMessages` ([`Profile::has_send_messages`]): on
/// Windows 7 the slot is not there at all ("Windows 8" minimum, `PFN_WSK_SEND_MESSAGES`);
/// here it is NULL.
static DATAGRAM_DISPATCH_WITHOUT_SEND_MESSAGES: WSK_PROVIDER_DATAGRAM_DISPATCH =
    dispatch_table(None);

const fn datagram_dispatch(profile: Profile) -> &'static WSK_PROVIDER_DATAGRAM_DISPATCH {
    if profile.has_send_messages() {
        &DATAGRAM_DISPATCH
    } else {
        &DATAGRAM_DISPATCH_WITHOUT_SEND_MESSAGES
    }
}

/// The memory a `PWSK_SOCKET` points to: the `WSK_SOCKET` header the client reads.
#[repr(C)]
struct ModelSocket {
    header: WSK_SOCKET,
}

/// The provider's bookkeeping for one socket, reached through [`SOCKETS`] without a global
/// lock: counters and flags in atomics, what calls change under the socket's own lock.
pub(crate) struct SocketRecord {
    memory: *mut ModelSocket,
    v6: bool,
    /// Calls to the socket's functions in progress, on any thread.
    calls: AtomicUsize,
    /// The transport went away ([`super::force_close_sockets`]): every send fails with
    /// `STATUS_FILE_FORCED_CLOSED` until the client closes the socket.
    forced: AtomicBool,
    state: Mutex<SocketState>,
}

/// What a socket's calls change.
struct SocketState {
    /// `None` once closed.
    fd: Option<Arc<OwnedFd>>,
    bound: bool,
    /// What `WskControlSocket` set.
    options: OptionState,
}

// SAFETY: `memory` is a Box the record owns, freed only when the record drops; the record's
// other fields are atomics or behind its mutex.
unsafe impl Send for SocketRecord {}
// SAFETY: As above: shared access never touches `memory`.
unsafe impl Sync for SocketRecord {}

impl SocketRecord {
    fn state(&self) -> MutexGuard<'_, SocketState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn closed(&self) -> bool {
        self.state().fd.is_none()
    }

    fn is_forced(&self) -> bool {
        self.forced.load(Ordering::Acquire)
    }

    pub(crate) fn force(&self) {
        self.forced.store(true, Ordering::Release);
    }
}

/// The record behind `key`, if the provider knows the socket.
fn record(key: usize) -> Option<Arc<SocketRecord>> {
    SOCKETS.get(&key).map(|entry| Arc::clone(entry.value()))
}

/// One call to a socket's function in progress (counted from entry to return, so a completion
/// routine the provider runs inline counts as inside the call).
struct CallInProgress {
    record: Option<Arc<SocketRecord>>,
}

impl CallInProgress {
    fn enter(socket: *mut WSK_SOCKET) -> Self {
        let record = record(socket.expose_provenance());
        if let Some(record) = &record {
            record.calls.fetch_add(1, Ordering::AcqRel);
        }
        Self { record }
    }

    /// Calls in progress on the socket, this one included.
    fn count(&self) -> usize {
        self.record
            .as_ref()
            .map_or(0, |record| record.calls.load(Ordering::Acquire))
    }
}

impl Drop for CallInProgress {
    fn drop(&mut self) {
        if let Some(record) = &self.record {
            record.calls.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for SocketRecord {
    fn drop(&mut self) {
        // SAFETY: `memory` came from Box::into_raw in wsk_socket and is dropped once, here.
        drop(unsafe { Box::from_raw(self.memory) });
    }
}

/// What a socket call needs to know about its socket, taken when the call is made.
struct Found {
    record: Arc<SocketRecord>,
    fd: Arc<OwnedFd>,
    v6: bool,
    bound: bool,
    fixed_destination: Option<SocketAddr>,
}

/// The socket behind `socket` if it is a live model socket, else the status to fail with
/// (after recording the violation).
fn lookup(
    socket: *mut WSK_SOCKET,
    entered: &CallInProgress,
    call: &str,
) -> Result<Found, NTSTATUS> {
    let key = socket.expose_provenance();
    let Some(record) = entered.record.clone() else {
        state::violation(
            "WskUnknownSocket",
            format!("{call} on {key:#x}, not a socket of this provider"),
        );
        return Err(STATUS_INVALID_HANDLE);
    };
    let socket_state = record.state();
    let Some(fd) = socket_state.fd.clone() else {
        drop(socket_state);
        state::violation(
            "WskSocketClosed",
            format!("{call} on socket {key:#x} after WskCloseSocket"),
        );
        return Err(STATUS_INVALID_HANDLE);
    };
    let (bound, fixed_destination) = (socket_state.bound, socket_state.options.fixed_destination);
    drop(socket_state);
    Ok(Found {
        v6: record.v6,
        record,
        fd,
        bound,
        fixed_destination,
    })
}

/// The common start of a socket call: IRQL check, take the IRP, find the socket. `Err` is
/// what the call returns: the IRP was refused, or already completed with the failure.
fn begin(
    call: &str,
    socket: *mut WSK_SOCKET,
    entered: &CallInProgress,
    irp: *mut IRP,
) -> Result<Found, NTSTATUS> {
    irql::require_at_most(call, DISPATCH_LEVEL);
    if !irp::accept(irp, call) {
        return Err(STATUS_INVALID_PARAMETER);
    }
    lookup(socket, entered, call).map_err(|status| fail_now(irp, status))
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
    let _model = crate::accounting::InModel::enter();
    crate::irp::check_not_in_completion("WskSocket");
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
        wire::AF_INET => false,
        wire::AF_INET6 => true,
        _ => return fail_now(irp, STATUS_INVALID_ADDRESS_COMPONENT),
    };
    if faults::should_fail(Site::WskSocket) {
        return fail_now(irp, STATUS_INSUFFICIENT_RESOURCES);
    }
    let table = datagram_dispatch(state::profile());
    completion::submit(
        irp,
        0,
        Box::new(move || match linux::udp_socket(v6) {
            Ok(fd) => {
                let memory = Box::into_raw(Box::new(ModelSocket {
                    header: WSK_SOCKET {
                        Dispatch: std::ptr::from_ref(table).cast(),
                    },
                }));
                let key = memory.expose_provenance();
                SOCKETS.insert(
                    key,
                    Arc::new(SocketRecord {
                        memory,
                        v6,
                        calls: AtomicUsize::new(0),
                        forced: AtomicBool::new(false),
                        state: Mutex::new(SocketState {
                            fd: Some(Arc::new(fd)),
                            bound: false,
                            options: OptionState::new(v6),
                        }),
                    }),
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

/// What a `WskControlSocket` call asks for, judged by its parameters alone.
#[allow(
    non_upper_case_globals,
    reason = "WSK_CONTROL_SOCKET_TYPE values keep wsk.h's names"
)]
fn control_call(
    request: WSK_CONTROL_SOCKET_TYPE,
    code: u32,
    level: u32,
    input_size: usize,
    input: *mut c_void,
    output_size: usize,
    output: *mut c_void,
) -> Result<Call, NTSTATUS> {
    match request {
        WskSetOption => {
            options::input_ok(input_size)?;
            if input.is_null() {
                return Err(STATUS_INVALID_PARAMETER);
            }
            Ok(Call::Set((level, code)))
        }
        WskGetOption => {
            options::output_ok(output_size)?;
            if output.is_null() {
                return Err(STATUS_INVALID_PARAMETER);
            }
            Ok(Call::Get((level, code)))
        }
        // "If the RequestType parameter is set to WskIoctl, the Level parameter is ignored."
        WskIoctl => match code {
            wire::SIO_WSK_SET_SENDTO_ADDRESS | wire::SIO_WSK_SET_REMOTE_ADDRESS => {
                // Clearing: InputSize 0, InputBuffer NULL (SIO_WSK_SET_SENDTO_ADDRESS page).
                if (input_size == 0) != input.is_null() {
                    return Err(STATUS_INVALID_PARAMETER);
                }
                Ok(Call::FixDestination)
            }
            // Inferred: the status for an IOCTL the transport does not know.
            _ => Err(STATUS_NOT_SUPPORTED),
        },
        _ => Err(STATUS_INVALID_PARAMETER),
    }
}

/// `WskControlSocket` (IRQL <= `DISPATCH_LEVEL`): the options and IOCTLs of
/// [`super::options`]. Input and output buffers are read and written when the IRP completes
/// ("any buffers ... must remain valid until the IRP is completed"), so a driver that frees
/// them early is caught.
#[allow(clippy::too_many_arguments, reason = "PFN_WSK_CONTROL_SOCKET")]
unsafe extern "system" fn wsk_control_socket(
    socket: *mut WSK_SOCKET,
    request: WSK_CONTROL_SOCKET_TYPE,
    code: u32,
    level: u32,
    input_size: usize,
    input: *mut c_void,
    output_size: usize,
    output: *mut c_void,
    returned: *mut usize,
    irp: *mut IRP,
) -> NTSTATUS {
    let _model = crate::accounting::InModel::enter();
    crate::irp::check_not_in_completion("WskControlSocket");
    let entered = CallInProgress::enter(socket);
    if irp.is_null() {
        // Every option and IOCTL the model serves requires one (SO_BROADCAST,
        // SIO_WSK_SET_SENDTO_ADDRESS: "A WSK application must specify a pointer to an IRP").
        irql::require_at_most("WskControlSocket", DISPATCH_LEVEL);
        state::violation(
            "WskControlSocketWithoutIrp",
            format!(
                "WskControlSocket(type {request}, code {code:#x}, level {level}) without an IRP"
            ),
        );
        return STATUS_INVALID_PARAMETER;
    }
    let found = match begin("WskControlSocket", socket, &entered, irp) {
        Ok(found) => found,
        Err(returned) => return returned,
    };
    let key = socket.expose_provenance();
    if found.record.is_forced() {
        return fail_now(irp, STATUS_FILE_FORCED_CLOSED);
    }
    let call = match control_call(request, code, level, input_size, input, output_size, output) {
        Ok(call) => call,
        Err(status) => return fail_now(irp, status),
    };
    let facts = SocketFacts {
        v6: found.v6,
        bound: found.bound,
    };
    if let Err(status) = options::check(call, facts, state::profile()) {
        return fail_now(irp, status);
    }
    if faults::should_fail(Site::WskControlSocket) {
        return fail_now(irp, STATUS_INSUFFICIENT_RESOURCES);
    }
    let input = (input.expose_provenance(), input_size);
    let output = output.expose_provenance();
    let returned = returned.expose_provenance();
    completion::submit(
        irp,
        key,
        Box::new(move || {
            if found.record.is_forced() {
                return (STATUS_FILE_FORCED_CLOSED, 0);
            }
            let request = match read_control_input(call, input, found.v6) {
                Ok(request) => request,
                Err(status) => return (status, 0),
            };
            // The socket's record is gone once the provider forgot it (a new machine).
            let result = match record(key) {
                Some(record) => {
                    options::apply(found.fd.as_raw_fd(), &mut record.state().options, request)
                }
                None => Err(STATUS_INVALID_HANDLE),
            };
            match result {
                Ok(Some(value)) => {
                    let bytes = value.to_le_bytes();
                    if !linux::write_driver_bytes(output, &bytes, "WskControlSocket output buffer")
                    {
                        return (STATUS_INVALID_PARAMETER, 0);
                    }
                    if returned != 0 {
                        let size = bytes.len().to_ne_bytes();
                        linux::write_driver_bytes(returned, &size, "OutputSizeReturned");
                    }
                    (STATUS_SUCCESS, bytes.len())
                }
                Ok(None) => (STATUS_SUCCESS, 0),
                Err(status) => (status, 0),
            }
        }),
    )
}

/// Reads what a checked call's input buffer holds (at completion).
fn read_control_input(
    call: Call,
    (input, size): (usize, usize),
    v6: bool,
) -> Result<Request, NTSTATUS> {
    match call {
        Call::Get(key) => Ok(Request::Get { key }),
        Call::Set(key) => {
            let bytes = linux::driver_bytes(input, wire::INT_LEN, "WskControlSocket input buffer")
                .ok_or(STATUS_INVALID_PARAMETER)?;
            let value = wire::dword(bytes).ok_or(STATUS_INVALID_PARAMETER)?;
            options::check_value(key, value)?;
            Ok(Request::Set { key, value })
        }
        Call::FixDestination => {
            if input == 0 {
                return Ok(Request::FixDestination(None));
            }
            let len = wire::sockaddr_len(wire::family_for(v6)).unwrap_or(0);
            if size < len {
                return Err(STATUS_INVALID_PARAMETER);
            }
            let bytes = linux::driver_bytes(input, len, "WskControlSocket input buffer")
                .ok_or(STATUS_INVALID_PARAMETER)?;
            options::destination(bytes, v6).map(|address| Request::FixDestination(Some(address)))
        }
    }
}

/// `WskCloseSocket` (IRQL <= `DISPATCH_LEVEL`): cancels the socket's queued IRPs, then closes.
/// "Before calling `WskCloseSocket`, a WSK application must ensure that there are no other
/// function calls in progress to any of the socket's functions [...] in any of the
/// application's other threads" (`PFN_WSK_CLOSE_SOCKET`, Remarks); pending IRPs are allowed.
unsafe extern "system" fn wsk_close_socket(socket: *mut WSK_SOCKET, irp: *mut IRP) -> NTSTATUS {
    let _model = crate::accounting::InModel::enter();
    crate::irp::check_not_in_completion("WskCloseSocket");
    let call = CallInProgress::enter(socket);
    let found = match begin("WskCloseSocket", socket, &call, irp) {
        Ok(found) => found,
        Err(returned) => return returned,
    };
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
    // The socket takes no more calls from here on (PFN_WSK_CLOSE_SOCKET, Remarks: no further
    // calls to any of the socket's functions after WskCloseSocket).
    found.record.state().fd = None;
    drop(found);
    if super::closes_pend() {
        // "The WSK subsystem could not close the socket immediately. The WSK subsystem will
        // complete the IRP after it has closed the socket" (STATUS_PENDING, PFN_WSK_CLOSE_SOCKET):
        // the socket's pending IRPs are cancelled but completed only when the provider gets to
        // them, the close IRP once they all are.
        completion::mark_socket_cancelled(key);
        return completion::submit(
            irp,
            key,
            Box::new(move || {
                completion::cancel_socket(key);
                (STATUS_SUCCESS, 0)
            }),
        );
    }
    // PFN_WSK_CLOSE_SOCKET, Remarks: the call makes the WSK subsystem cancel and complete every
    // IRP pending from earlier calls to the socket's functions.
    completion::cancel_socket(key);
    fail_now(irp, STATUS_SUCCESS)
}

/// Reads a SOCKADDR the driver passes in a call (read now: `WskBind`), of the socket's family:
/// "a pointer to the specific SOCKADDR structure type that corresponds to the address family
/// [of] the socket" (`PFN_WSK_BIND`).
///
/// # Safety
/// `address` must point to a readable SOCKADDR of the family it names.
unsafe fn read_sockaddr(address: *const SOCKADDR, v6: bool) -> Option<SocketAddr> {
    // SAFETY: The family field is always readable.
    let family = unsafe { address.cast::<u16>().read_unaligned() };
    if family != wire::family_for(v6) {
        return None;
    }
    let len = wire::sockaddr_len(family)?;
    // SAFETY: A SOCKADDR of that family is `len` bytes (caller's contract).
    let bytes = unsafe { std::slice::from_raw_parts(address.cast::<u8>(), len) };
    wire::decode_sockaddr(bytes)
}

/// `WskBind` (IRQL <= `DISPATCH_LEVEL`).
unsafe extern "system" fn wsk_bind(
    socket: *mut WSK_SOCKET,
    local: *mut SOCKADDR,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    let _model = crate::accounting::InModel::enter();
    crate::irp::check_not_in_completion("WskBind");
    let entered = CallInProgress::enter(socket);
    let found = match begin("WskBind", socket, &entered, irp) {
        Ok(found) => found,
        Err(returned) => return returned,
    };
    if flags != 0 || local.is_null() {
        return fail_now(irp, STATUS_INVALID_PARAMETER);
    }
    if found.bound {
        return fail_now(irp, STATUS_INVALID_DEVICE_STATE);
    }
    // SAFETY: A SOCKADDR of the socket's family: at most a SOCKADDR_IN6 (28 bytes) is read,
    // and only as far as the family says.
    let Some(address) = (unsafe { read_sockaddr(local, found.v6) }) else {
        return fail_now(irp, STATUS_INVALID_ADDRESS_COMPONENT);
    };
    if faults::should_fail(Site::WskBind) {
        return fail_now(irp, STATUS_INSUFFICIENT_RESOURCES);
    }
    let key = socket.expose_provenance();
    let fd = found.fd;
    completion::submit(
        irp,
        key,
        Box::new(move || match linux::bind(fd.as_raw_fd(), address) {
            Ok(()) => {
                if let Some(record) = record(key) {
                    record.state().bound = true;
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
    let _model = crate::accounting::InModel::enter();
    crate::irp::check_not_in_completion("WskGetLocalAddress");
    let entered = CallInProgress::enter(socket);
    let found = match begin("WskGetLocalAddress", socket, &entered, irp) {
        Ok(found) => found,
        Err(returned) => return returned,
    };
    if !found.bound || local.is_null() {
        return fail_now(irp, STATUS_INVALID_DEVICE_STATE);
    }
    if faults::should_fail(Site::WskGetLocalAddress) {
        return fail_now(irp, STATUS_INSUFFICIENT_RESOURCES);
    }
    let out = local.expose_provenance();
    let fd = found.fd;
    completion::submit(
        irp,
        socket.expose_provenance(),
        Box::new(move || match linux::local_address(fd.as_raw_fd()) {
            Ok(address) => {
                let bytes = wire::encode_sockaddr(address);
                if linux::write_driver_bytes(out, &bytes, "WskGetLocalAddress buffer") {
                    (STATUS_SUCCESS, 0)
                } else {
                    (STATUS_INVALID_PARAMETER, 0)
                }
            }
            Err(status) => (status, 0),
        }),
    )
}

/// The common part of `WskSendTo` and `WskSendMessages` once the buffers are taken: the
/// parameter checks made at call time, then the send at completion.
#[allow(clippy::too_many_arguments, reason = "the WskSendTo parameters")]
fn send(
    call: &'static str,
    socket: *mut WSK_SOCKET,
    found: Found,
    buffers: SmallVec<[WSK_BUF; 1]>,
    flags: u32,
    remote: *mut SOCKADDR,
    control_len: u32,
    control: *mut CMSGHDR,
    irp: *mut IRP,
) -> NTSTATUS {
    let key = socket.expose_provenance();
    if found.record.is_forced() {
        return fail_now(irp, STATUS_FILE_FORCED_CLOSED);
    }
    // RemoteAddress may be NULL once a fixed destination is set
    // (SIO_WSK_SET_SENDTO_ADDRESS: "all datagrams ... are sent to the fixed destination").
    let no_destination = remote.is_null() && found.fixed_destination.is_none();
    if flags != 0 || no_destination || (control_len != 0 && control.is_null()) {
        return fail_now(irp, STATUS_INVALID_PARAMETER);
    }
    // wsk.h: the socket must have been bound; status inferred (WSASendMsg: WSAEINVAL, "The
    // socket has not been bound").
    if !found.bound {
        return fail_now(irp, STATUS_INVALID_PARAMETER);
    }
    // ws2def.h's macros take ControlInfo as a WSACMSGHDR, whose TYPE_ALIGNMENT is 8 on x64;
    // x64 loads do not fault, so the send goes on (inferred).
    if control_len != 0
        && !control
            .expose_provenance()
            .is_multiple_of(wire::CMSG_ALIGNMENT)
    {
        state::violation(
            "CmsgMisaligned",
            format!(
                "{call}: ControlInfo {control:p} is not aligned to 8 (TYPE_ALIGNMENT(WSACMSGHDR))"
            ),
        );
    }
    if faults::should_fail(Site::WskSendTo) {
        return fail_now(irp, STATUS_INSUFFICIENT_RESOURCES);
    }
    if let Some(status) = super::send_failure() {
        return fail_now(irp, status);
    }
    let record = found.record;
    let request = linux::SendRequest {
        call,
        fd: found.fd,
        v6: found.v6,
        messages: call == "WskSendMessages",
        buffers,
        remote: remote.expose_provenance(),
        fixed: found.fixed_destination,
        control: control.expose_provenance(),
        control_len: control_len as usize,
        profile: state::profile(),
    };
    let datagrams = request.buffers.len();
    completion::submit_send(
        irp,
        key,
        datagrams,
        Box::new(move || {
            if record.is_forced() {
                (STATUS_FILE_FORCED_CLOSED, 0)
            } else {
                request.execute()
            }
        }),
    )
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
    let _model = crate::accounting::InModel::enter();
    crate::irp::check_not_in_completion("WskSendTo");
    let entered = CallInProgress::enter(socket);
    let found = match begin("WskSendTo", socket, &entered, irp) {
        Ok(found) => found,
        Err(returned) => return returned,
    };
    if buffer.is_null() {
        return fail_now(irp, STATUS_INVALID_PARAMETER);
    }
    // SAFETY: `buffer` points to an initialized WSK_BUF (caller's contract).
    let buffer = unsafe { buffer.read() };
    send(
        "WskSendTo",
        socket,
        found,
        smallvec::smallvec![buffer],
        flags,
        remote,
        control_len,
        control,
        irp,
    )
}

/// The most `WSK_BUF_LIST` entries the model follows (a longer list is taken for a cycle).
///
/// The model's own guard: the `WSK_BUF_LIST` page only says `Next` points to the next entry,
/// and Windows documents no limit on the list's length and no check for a cycle.
const MAX_BUF_LIST: usize = 4096;

/// `WskSendMessages` (Windows 8+; IRQL <= `DISPATCH_LEVEL` as `WskSendTo`): one datagram per
/// `WSK_BUF_LIST` entry, all to the same destination with the same control information
/// ("control information that is associated with the datagrams"). The list is read now, the
/// data at completion; `IoStatus.Information` is the bytes sent.
unsafe extern "system" fn wsk_send_messages(
    socket: *mut WSK_SOCKET,
    list: *mut WSK_BUF_LIST,
    flags: u32,
    remote: *mut SOCKADDR,
    control_len: u32,
    control: *mut CMSGHDR,
    irp: *mut IRP,
) -> NTSTATUS {
    let _model = crate::accounting::InModel::enter();
    crate::irp::check_not_in_completion("WskSendMessages");
    let entered = CallInProgress::enter(socket);
    let found = match begin("WskSendMessages", socket, &entered, irp) {
        Ok(found) => found,
        Err(returned) => return returned,
    };
    let mut buffers = SmallVec::new();
    let mut entry = list;
    while !entry.is_null() {
        if buffers.len() == MAX_BUF_LIST {
            state::violation(
                "WskBufListCycle",
                format!(
                    "WskSendMessages: WSK_BUF_LIST longer than {MAX_BUF_LIST} entries (a cycle? The model's own bound: Windows documents none)"
                ),
            );
            return fail_now(irp, STATUS_INVALID_PARAMETER);
        }
        // SAFETY: Each entry is an initialized WSK_BUF_LIST the driver owns (caller's contract).
        let (buffer, next) = unsafe { ((*entry).Buffer, (*entry).Next) };
        buffers.push(buffer);
        entry = next;
    }
    // `PFN_WSK_SEND_MESSAGES` page: BufferList is an [in] pointer to an initialized
    // WSK_BUF_LIST, so NULL is outside the contract; the page lists only "Other status codes"
    // for errors, so STATUS_INVALID_PARAMETER is inferred.
    if buffers.is_empty() {
        return fail_now(irp, STATUS_INVALID_PARAMETER);
    }
    send(
        "WskSendMessages",
        socket,
        found,
        buffers,
        flags,
        remote,
        control_len,
        control,
        irp,
    )
}
