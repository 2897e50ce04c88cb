//! WSK datagram sockets.

use core::net::SocketAddr;
use core::ptr::NonNull;

use windows_sys::Win32::Networking::WinSock::{
    self as ws, AF_INET, AF_INET6, IPPROTO_UDP, SOCK_DGRAM,
};
use wskudp_abi::feature;

use super::Provider;
use crate::cmsg::ControlBuffer;
use crate::ddi::nt::{IRP, NTSTATUS};
use crate::ddi::wsk::{
    PFN_WSK_SEND_MESSAGES, SIO_WSK_SET_SENDTO_ADDRESS, WSK_BUF, WSK_BUF_LIST,
    WSK_CONTROL_SOCKET_TYPE, WSK_FLAG_DATAGRAM_SOCKET, WSK_PROVIDER_BASIC_DISPATCH,
    WSK_PROVIDER_DATAGRAM_DISPATCH, WSK_SOCKET, WskGetOption, WskIoctl, WskSendToFn, WskSetOption,
};
use crate::irp::{DriverDevice, ReservedCall, call_and_wait};
use crate::sockaddr::{self, SockAddrBuffer};
use crate::status::{
    STATUS_CANCELLED, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_ADDRESS, STATUS_NOT_SUPPORTED,
};
use crate::sync::CallGate;

/// `SOCK_DGRAM` as the `USHORT` `WskSocket` takes (the value is 2).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
const SOCKET_TYPE: u16 = SOCK_DGRAM as u16;
/// `IPPROTO_UDP` as the `ULONG` `WskSocket` takes (the value is 17).
#[allow(clippy::cast_sign_loss)]
const PROTOCOL: u32 = IPPROTO_UDP as u32;
/// Levels and options as `WskControlSocket`'s `Level` and `ControlCode` (`ULONG`s).
const IPPROTO_IPV6_LEVEL: u32 = ws::IPPROTO_IPV6.cast_unsigned();
const IPPROTO_UDP_LEVEL: u32 = ws::IPPROTO_UDP.cast_unsigned();
const IPV6_V6ONLY_CODE: u32 = ws::IPV6_V6ONLY.cast_unsigned();
const IPV6_TCLASS_CODE: u32 = ws::IPV6_TCLASS.cast_unsigned();
const IPV6_ECN_CODE: u32 = ws::IPV6_ECN.cast_unsigned();
const UDP_SEND_MSG_SIZE_CODE: u32 = ws::UDP_SEND_MSG_SIZE.cast_unsigned();
/// The traffic class msquic probes with: DSCP LE (1) shifted past the ECN bits.
const TCLASS_PROBE: u32 = 1 << 2;

/// A bound WSK datagram socket.
///
/// Closing follows the `WskCloseSocket` contract: no call to the socket's functions may be in
/// progress, but IRPs of earlier calls may still be pending (the provider cancels and completes
/// them). Every `WskSendTo` is made inside the socket's [`CallGate`]; [`DatagramSocket::begin_close`]
/// shuts the gate and whoever leaves it last issues `WskCloseSocket` on the reserved IRP, at
/// any IRQL <= `DISPATCH_LEVEL` and without waiting. Dropping the socket (at `PASSIVE_LEVEL`)
/// begins closing if nobody did and waits for the close to complete.
///
/// # Invariants
/// `socket` is a WSK datagram socket whose dispatch table has every slot wskudp calls
/// (`WskCloseSocket`, `WskBind`, `WskSendTo`, `WskGetLocalAddress`), open until the close call
/// is issued, which happens once, when `gate` says so. `close` is `Some` until dropped: closing
/// never waits on an allocation that could fail. `device` is the driver's device, which every
/// IRP's completion routine is registered on.
pub struct DatagramSocket {
    socket: NonNull<WSK_SOCKET>,
    close: Option<ReservedCall>,
    gate: CallGate,
    device: DriverDevice,
}

// SAFETY: A WSK socket may be used from any thread; the provider synchronizes.
unsafe impl Send for DatagramSocket {}
// SAFETY: As above: WskSendTo may be called concurrently on one socket.
unsafe impl Sync for DatagramSocket {}

/// The datagram dispatch table of `socket`.
///
/// # Safety
/// `socket` must be an open WSK datagram socket.
const unsafe fn dispatch_of(
    socket: NonNull<WSK_SOCKET>,
) -> Option<&'static WSK_PROVIDER_DATAGRAM_DISPATCH> {
    let table;
    // SAFETY: `socket` is open (caller's guarantee), so its header is readable.
    unsafe {
        table = socket
            .as_ref()
            .Dispatch
            .cast::<WSK_PROVIDER_DATAGRAM_DISPATCH>();
    }
    // SAFETY: A datagram socket's Dispatch points to the provider's
    // WSK_PROVIDER_DATAGRAM_DISPATCH, valid while the provider NPI is captured, which outlasts
    // every socket.
    unsafe { table.as_ref() }
}

/// `true` if `dispatch` has every slot wskudp calls.
const fn is_complete(dispatch: &WSK_PROVIDER_DATAGRAM_DISPATCH) -> bool {
    dispatch.Basic.WskCloseSocket.is_some()
        && dispatch.WskBind.is_some()
        && dispatch.WskSendTo.is_some()
        && dispatch.WskGetLocalAddress.is_some()
}

/// Stand-in for a missing dispatch table: every slot absent, so every call reports
/// `STATUS_NOT_SUPPORTED`.
static MISSING_DISPATCH: WSK_PROVIDER_DATAGRAM_DISPATCH = WSK_PROVIDER_DATAGRAM_DISPATCH {
    Basic: WSK_PROVIDER_BASIC_DISPATCH {
        WskControlSocket: None,
        WskCloseSocket: None,
    },
    WskBind: None,
    WskSendTo: None,
    WskReceiveFrom: None,
    WskRelease: None,
    WskGetLocalAddress: None,
    WskSendMessages: None,
};

impl DatagramSocket {
    /// `WskSocket(AF_INET or AF_INET6, SOCK_DGRAM, IPPROTO_UDP, WSK_FLAG_DATAGRAM_SOCKET)`,
    /// for a dual-stack socket `IPV6_V6ONLY` cleared (it must precede the bind), `WskBind(local)`,
    /// then `WskGetLocalAddress`. Returns the socket and its bound address.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// The first failing call's status; a socket created before the failure is closed.
    pub fn open(
        provider: &Provider,
        device: DriverDevice,
        local: SocketAddr,
        dual_stack: bool,
    ) -> Result<(Self, SocketAddr), NTSTATUS> {
        crate::paged_code!();
        let family = if local.is_ipv4() { AF_INET } else { AF_INET6 };
        let socket = Self::create(provider, device, family)?;
        if family == AF_INET6 {
            // Set either way: WSK documents no default (msquic and wireguard-nt both set it,
            // before the bind, as the dual-stack sockets page requires).
            socket.set_option(IPPROTO_IPV6_LEVEL, IPV6_V6ONLY_CODE, u32::from(!dual_stack))?;
        }
        socket.bind(local)?;
        let bound = socket.local_address()?;
        Ok((socket, bound))
    }

    /// What the provider supports ([`feature`] bits), probed once on an unbound throw-away
    /// `AF_INET6` socket the way msquic's `datapath_winkernel.c` does (lines 436-652, on a
    /// basic socket; the model offers datagram sockets only, and the options are the same):
    /// USO if `WskGetOption(UDP_SEND_MSG_SIZE)` succeeds; the TOS byte on send if
    /// `WskSetOption(IPV6_TCLASS)` of a DSCP with clear ECN bits (4, DSCP LE) succeeds (a
    /// value with ECN bits set always fails: msquic PR #5130); `WskSendMessages` if the
    /// dispatch table has it (Windows 8+, below the driver's floor); ECN on send if the stack
    /// takes the `IPV6_ECN` socket option (msquic's user-mode datapath sets `IP_ECN` and treats
    /// a refusal as fatal; the Winsock ECN page gives its minimum build as 20348, the driver's
    /// floor). A probe the provider refuses clears its bit; one that fails for lack of memory
    /// proves nothing and fails the whole probe.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// Creating the probe socket failed, or a probe ran out of memory (nothing is known then).
    pub fn probe_provider(provider: &Provider, device: DriverDevice) -> Result<u32, NTSTATUS> {
        crate::paged_code!();
        let probe = Self::create(provider, device, AF_INET6)?;
        let supported = |answer: Result<(), NTSTATUS>| match answer {
            Ok(()) => Ok(true),
            Err(STATUS_INSUFFICIENT_RESOURCES) => Err(STATUS_INSUFFICIENT_RESOURCES),
            Err(_) => Ok(false),
        };
        let mut features = 0;
        if supported(probe.set_option(IPPROTO_IPV6_LEVEL, IPV6_ECN_CODE, 1))? {
            features |= feature::ECN;
        }
        if supported(
            probe
                .get_option(IPPROTO_UDP_LEVEL, UDP_SEND_MSG_SIZE_CODE)
                .map(|_| ()),
        )? {
            features |= feature::USO;
        }
        if supported(probe.set_option(IPPROTO_IPV6_LEVEL, IPV6_TCLASS_CODE, TCLASS_PROBE))? {
            features |= feature::TOS;
        }
        if probe.dispatch().WskSendMessages.is_some() {
            features |= feature::SEND_MESSAGES;
        }
        Ok(features)
    }

    /// `WskSocket(family, SOCK_DGRAM, IPPROTO_UDP, WSK_FLAG_DATAGRAM_SOCKET)`, not bound.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`, the provider's status, or `STATUS_NOT_SUPPORTED` for a
    /// dispatch table without the slots wskudp calls (the socket is closed again).
    fn create(provider: &Provider, device: DriverDevice, family: u16) -> Result<Self, NTSTATUS> {
        // Allocated first: once a socket exists, closing it must not depend on the pool.
        let mut close = ReservedCall::allocate()?;
        let wsk_socket = provider
            .dispatch()
            .and_then(|d| d.WskSocket)
            .ok_or(STATUS_NOT_SUPPORTED)?;
        let client = provider.client();
        let created = call_and_wait(device, |irp| {
            let status;
            // SAFETY: 1. `client` comes from the captured NPI;
            //         2. no socket context or event dispatch table (no callbacks enabled);
            //         3. no owning process/thread or security descriptor (kernel socket);
            //         4. `irp` is a fresh IRP with a completion routine; PASSIVE_LEVEL.
            unsafe {
                status = wsk_socket(
                    client,
                    family,
                    SOCKET_TYPE,
                    PROTOCOL,
                    WSK_FLAG_DATAGRAM_SOCKET,
                    core::ptr::null_mut(),
                    core::ptr::null(),
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                    irp,
                );
            }
            status
        })?;
        // On success, IoStatus.Information holds the new PWSK_SOCKET.
        let raw = NonNull::new(core::ptr::with_exposed_provenance_mut::<WSK_SOCKET>(
            created.information,
        ))
        .ok_or(STATUS_INVALID_ADDRESS)?;
        // The socket exists: its close will be made, so its IRP may now be armed.
        close.arm(device);
        // SAFETY: `raw` is the socket WskSocket just created.
        if !unsafe { dispatch_of(raw) }.is_some_and(is_complete) {
            self::close(raw, close);
            return Err(STATUS_NOT_SUPPORTED);
        }
        // INVARIANT: open, with a complete dispatch table and its armed close call. From here
        // on Drop closes it.
        Ok(Self {
            socket: raw,
            close: Some(close),
            gate: CallGate::new(),
            device,
        })
    }

    /// `WskControlSocket` as one call on the socket (inside its call gate), waiting for it.
    /// Returns the output size (the IRP's `IoStatus.Information`).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_CANCELLED` once closing has begun; `STATUS_NOT_SUPPORTED` without a
    /// `WskControlSocket` slot; otherwise the provider's status.
    pub fn control(
        &self,
        request: WSK_CONTROL_SOCKET_TYPE,
        code: u32,
        level: u32,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize, NTSTATUS> {
        crate::paged_code!();
        let control = self
            .dispatch()
            .Basic
            .WskControlSocket
            .ok_or(STATUS_NOT_SUPPORTED)?;
        let _call = self.enter()?;
        let socket = self.socket.as_ptr();
        let (output_ptr, output_len) = if output.is_empty() {
            (core::ptr::null_mut(), 0)
        } else {
            (output.as_mut_ptr().cast(), output.len())
        };
        let (input_ptr, input_len) = if input.is_empty() {
            (core::ptr::null_mut(), 0)
        } else {
            (input.as_ptr().cast_mut().cast(), input.len())
        };
        let result = call_and_wait(self.device, |irp| {
            let status;
            // SAFETY: 1. the socket is open and the gate is entered (no close meanwhile);
            //         2. input and output outlive the call (we wait for the IRP);
            //            WSK only reads the input despite the non-const pointer;
            //         3. fresh IRP; PASSIVE_LEVEL.
            unsafe {
                status = control(
                    socket,
                    request,
                    code,
                    level,
                    input_len,
                    input_ptr,
                    output_len,
                    output_ptr,
                    // NULL with an IRP: the size is the IRP's Information
                    // (PFN_WSK_CONTROL_SOCKET, OutputSizeReturned).
                    core::ptr::null_mut(),
                    irp,
                );
            }
            status
        });
        result.map(|done| done.information)
    }

    /// `WskControlSocket(WskSetOption)` of a `DWORD` option (every option wskudp sets is one).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`DatagramSocket::control`].
    pub fn set_option(&self, level: u32, option: u32, value: u32) -> Result<(), NTSTATUS> {
        self.control(WskSetOption, option, level, &value.to_ne_bytes(), &mut [])
            .map(|_| ())
    }

    /// `WskControlSocket(WskGetOption)` of a `DWORD` option.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`DatagramSocket::control`].
    pub fn get_option(&self, level: u32, option: u32) -> Result<u32, NTSTATUS> {
        let mut value = [0_u8; 4];
        self.control(WskGetOption, option, level, &[], &mut value)?;
        Ok(u32::from_ne_bytes(value))
    }

    /// `SIO_WSK_SET_SENDTO_ADDRESS`: the destination of datagrams sent without one (a
    /// `SOCKADDR` of the socket's own family, after the bind: the control code's page).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`DatagramSocket::control`].
    pub fn set_sendto_address(&self, address: &SockAddrBuffer) -> Result<(), NTSTATUS> {
        self.control(
            WskIoctl,
            SIO_WSK_SET_SENDTO_ADDRESS,
            0,
            address.as_bytes(),
            &mut [],
        )
        .map(|_| ())
    }

    fn dispatch(&self) -> &'static WSK_PROVIDER_DATAGRAM_DISPATCH {
        // SAFETY: The socket is open (type invariant).
        let dispatch = unsafe { dispatch_of(self.socket) };
        // The invariant guarantees a table; the fallback only keeps this free of panics.
        dispatch.unwrap_or(&MISSING_DISPATCH)
    }

    /// `WskBind`. IRQL: `PASSIVE_LEVEL`.
    fn bind(&self, local: SocketAddr) -> Result<(), NTSTATUS> {
        let mut address = SockAddrBuffer::new(local);
        let bind = self.dispatch().WskBind.ok_or(STATUS_NOT_SUPPORTED)?;
        let socket = self.socket.as_ptr();
        call_and_wait(self.device, |irp| {
            let status;
            // SAFETY: 1. the socket is open; 2. `address` is a valid SOCKADDR that outlives
            //         the call (we wait for completion); 3. flags are reserved (0);
            //         4. fresh IRP; PASSIVE_LEVEL.
            unsafe {
                status = bind(socket, address.as_sockaddr_mut(), 0, irp);
            }
            status
        })
        .map(|_| ())
    }

    /// `WskGetLocalAddress`. IRQL: `PASSIVE_LEVEL`.
    fn local_address(&self) -> Result<SocketAddr, NTSTATUS> {
        let mut address = SockAddrBuffer::zeroed();
        let get = self
            .dispatch()
            .WskGetLocalAddress
            .ok_or(STATUS_NOT_SUPPORTED)?;
        let socket = self.socket.as_ptr();
        call_and_wait(self.device, |irp| {
            let status;
            // SAFETY: 1. the socket is open and bound; 2. `address` has room for a
            //         SOCKADDR_IN6 and outlives the call; 3. fresh IRP; PASSIVE_LEVEL.
            unsafe {
                status = get(socket, address.as_sockaddr_mut(), irp);
            }
            status
        })?;
        sockaddr::decode(address.as_bytes()).ok_or(STATUS_INVALID_ADDRESS)
    }

    /// The driver's device, which completion routines for this socket are registered on.
    #[must_use]
    pub const fn device(&self) -> DriverDevice {
        self.device
    }

    /// Starts one `WskSendTo` call: enters the socket's call gate and resolves the function,
    /// before an IRP is armed for it (an armed IRP must be issued).
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_CANCELLED` once closing has begun (the datagram is not sent);
    /// `STATUS_NOT_SUPPORTED` if the provider lacks `WskSendTo` (never, for a socket that
    /// opened).
    pub fn send_call(&self) -> Result<SendCall<'_>, NTSTATUS> {
        let call = self.enter()?;
        // On failure the entry drops here and the gate is left.
        let dispatch = self.dispatch();
        let send_to = dispatch.WskSendTo.ok_or(STATUS_NOT_SUPPORTED)?;
        Ok(SendCall {
            call,
            send_to,
            send_messages: dispatch.WskSendMessages,
        })
    }

    /// Whether the provider's dispatch table has `WskSendMessages` (Windows 8 and later).
    #[must_use]
    pub fn has_send_messages(&self) -> bool {
        self.dispatch().WskSendMessages.is_some()
    }

    /// Enters the socket's call gate for one call to its functions.
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_CANCELLED` once closing has begun.
    fn enter(&self) -> Result<InCall<'_>, NTSTATUS> {
        if self.gate.enter() {
            Ok(InCall { socket: self })
        } else {
            Err(STATUS_CANCELLED)
        }
    }

    /// Begins closing: no new call starts, and `WskCloseSocket` is issued as soon as the calls
    /// in progress have returned (now, if none is). The provider then cancels and completes
    /// every IRP still pending on the socket. Used on `CLOSE_SOCKET`, cleanup, unload, and when
    /// a send completes with `STATUS_FILE_FORCED_CLOSED` ("call `WskCloseSocket` as soon as
    /// possible", the `WskSendTo` page).
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    pub fn begin_close(&self) {
        if self.gate.close() {
            self.issue_close();
        }
    }

    /// Whether closing has begun.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.gate.is_closing()
    }

    /// Issues `WskCloseSocket`, once: the gate designates the caller. IRQL: <= `DISPATCH_LEVEL`.
    fn issue_close(&self) {
        if let Some(call) = self.close.as_ref() {
            // SAFETY: The socket is open and no call is in progress on it (the gate designated
            // this caller); `call` issues once, so it is closed once. Without a close slot
            // (never: the table was checked at open) nothing is issued, and Drop keeps the
            // armed IRP rather than free it uncompleted.
            let _ = unsafe { issue_close_socket(self.socket, call) };
        }
    }
}

/// One call to a socket's functions in progress: the socket's call gate, entered.
///
/// # Invariants
/// The gate was entered for this value and is left by its drop; the last call out after
/// closing began issues `WskCloseSocket`.
struct InCall<'a> {
    socket: &'a DatagramSocket,
}

impl Drop for InCall<'_> {
    fn drop(&mut self) {
        if self.socket.gate.exit() {
            self.socket.issue_close();
        }
    }
}

/// One `WskSendTo` or `WskSendMessages` call in progress on a socket (inside its call gate).
pub struct SendCall<'a> {
    call: InCall<'a>,
    send_to: WskSendToFn,
    send_messages: PFN_WSK_SEND_MESSAGES,
}

impl SendCall<'_> {
    /// `WskSendTo`. The IRP completes whatever status is returned, and that status is also the
    /// IRP's.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Safety
    /// `buffer`'s MDL chain and data, `remote` and `control` must stay valid and unchanged
    /// until `irp` completes; `irp` must be a driver-allocated IRP with a completion routine
    /// that takes care of all of them.
    pub unsafe fn send_to(
        self,
        buffer: *mut WSK_BUF,
        remote: Option<&SockAddrBuffer>,
        control: &ControlBuffer,
        irp: *mut IRP,
    ) -> NTSTATUS {
        let (control_info, control_len) = control.as_control_info();
        let status;
        // SAFETY: 1. the socket is open: the gate is entered, so WskCloseSocket is not issued
        //            before this call returns;
        //         2. buffer, remote and control outlive the IRP (caller's guarantee); WSK
        //            only reads RemoteAddress and ControlInfo despite the non-const types;
        //         3. Flags is reserved and must be 0;
        //         4. WskSendTo may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            status = (self.send_to)(
                self.call.socket.socket.as_ptr(),
                buffer,
                0,
                remote.map_or(core::ptr::null_mut(), |r| r.as_sockaddr().cast_mut()),
                control_len,
                control_info.cast_mut(),
                irp,
            );
        }
        status
    }
}

impl SendCall<'_> {
    /// Whether this call can be a `WskSendMessages` (the provider has it: Windows 8 and later).
    #[must_use]
    pub const fn can_send_messages(&self) -> bool {
        self.send_messages.is_some()
    }

    /// `WskSendMessages`: every datagram of `list` to `remote` with `control`, on one IRP
    /// (the `PFN_WSK_SEND_MESSAGES` page: the control information "is associated with the
    /// datagrams", all of them). Without the function (a provider older than Windows 8) the
    /// IRP is not issued and `Err(STATUS_NOT_SUPPORTED)` comes back: the caller, which checked
    /// [`DatagramSocket::has_send_messages`], never sees it.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_NOT_SUPPORTED` when the provider has no `WskSendMessages` (nothing issued).
    ///
    /// # Safety
    /// As [`SendCall::send_to`], for every entry of `list` and the list itself.
    pub unsafe fn send_messages(
        self,
        list: *mut WSK_BUF_LIST,
        remote: Option<&SockAddrBuffer>,
        control: &ControlBuffer,
        irp: *mut IRP,
    ) -> Result<NTSTATUS, NTSTATUS> {
        let send_messages = self.send_messages.ok_or(STATUS_NOT_SUPPORTED)?;
        let (control_info, control_len) = control.as_control_info();
        let status;
        // SAFETY: 1. the socket is open: the gate is entered, so WskCloseSocket is not issued
        //            before this call returns;
        //         2. the list, its buffers, remote and control outlive the IRP (caller's
        //            guarantee); WSK only reads them despite the non-const types;
        //         3. Flags is reserved and must be 0;
        //         4. WskSendMessages may be called at IRQL <= DISPATCH_LEVEL, like WskSendTo.
        unsafe {
            status = send_messages(
                self.call.socket.socket.as_ptr(),
                list,
                0,
                remote.map_or(core::ptr::null_mut(), |r| r.as_sockaddr().cast_mut()),
                control_len,
                control_info.cast_mut(),
                irp,
            );
        }
        Ok(status)
    }
}

/// `WskCloseSocket` on a socket that never became a [`DatagramSocket`], waiting for it.
/// IRQL: `PASSIVE_LEVEL`.
fn close(socket: NonNull<WSK_SOCKET>, call: ReservedCall) {
    // SAFETY: The socket is open, nothing else calls into it, and callers give it up here.
    if unsafe { issue_close_socket(socket, &call) } {
        // A failed close leaves nothing for the driver to do: WSK owns the socket either way.
        let _ = call.wait();
    } else {
        // No close slot: nothing can be issued, and an armed IRP must not be freed without
        // completing; keep it rather than corrupt the pool.
        core::mem::forget(call);
    }
}

/// Issues `WskCloseSocket` on `socket` with `call`'s IRP, without waiting. `false` if the
/// provider has no `WskCloseSocket` (nothing issued). IRQL: <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `socket` is open, no call is in progress on it, and it is closed only through this call.
unsafe fn issue_close_socket(socket: NonNull<WSK_SOCKET>, call: &ReservedCall) -> bool {
    // SAFETY: `socket` is open (caller's guarantee).
    let close = unsafe { dispatch_of(socket) }.and_then(|dispatch| dispatch.Basic.WskCloseSocket);
    let Some(close) = close else {
        return false;
    };
    call.issue(|irp| {
        let status;
        // SAFETY: 1. the socket is open, idle and closed exactly once (caller's guarantee;
        //            ReservedCall::issue runs once);
        //         2. the reserved IRP is fresh; WskCloseSocket allows <= DISPATCH_LEVEL.
        unsafe {
            status = close(socket.as_ptr(), irp);
        }
        status
    });
    true
}

impl Drop for DatagramSocket {
    /// Closes the socket if nobody began to, and waits for `WskCloseSocket` to complete.
    /// IRQL: `PASSIVE_LEVEL`; no [`SendCall`] exists any more (they borrow the socket).
    fn drop(&mut self) {
        crate::paged_code!();
        self.begin_close();
        if let Some(call) = self.close.take() {
            // A failed close leaves nothing for the driver to do: WSK owns the socket.
            let _ = call.wait();
        }
    }
}
