//! The driver state and its requests.

use wskudp_abi::{
    CONTROL_CAPACITY, DescribeSendResponse, InfoResponse, Ioctl, MAX_COUNT, MAX_PAYLOAD,
    MAX_SEGMENTS, MAX_SOCKETS, OpenSocketResponse, SendResponse, WireAddr, capability,
    parse_close_socket, parse_open_socket, parse_send,
};

use crate::ddi::nt::NTSTATUS;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::dispatch::IoctlRequest;
use crate::handle::HandleState;
use crate::irp::DriverDevice;
use crate::pool::{PoolBox, TAG_DRIVER};
use crate::send::{self, Datagram};
use crate::sockets::{Owner, SocketTable};
use crate::status::{
    STATUS_FILE_CLOSED, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_HANDLE, STATUS_SUCCESS,
};
use crate::wsk::{DatagramSocket, WskClient};

/// This driver's version, from Cargo.
const DRIVER_VERSION: [u16; 4] = [
    parse_u16(env!("CARGO_PKG_VERSION_MAJOR")),
    parse_u16(env!("CARGO_PKG_VERSION_MINOR")),
    parse_u16(env!("CARGO_PKG_VERSION_PATCH")),
    0,
];

const fn parse_u16(digits: &str) -> u16 {
    match u16::from_str_radix(digits, 10) {
        Ok(value) => value,
        Err(_) => 0,
    }
}

/// Everything the driver keeps: its WSK registration and its sockets. One per loaded driver,
/// in non-paged pool, created by the front door's `DriverEntry` and dropped by its unload
/// routine.
pub struct Driver {
    client: WskClient,
    sockets: PoolBox<SocketTable>,
    device: DriverDevice,
    /// The last handle number given out.
    handles: AtomicU64,
}

impl Driver {
    /// Allocates the driver state and registers as a WSK application. The provider NPI is
    /// captured later, by the first request that needs it, so loading never waits on the
    /// network stack. Completion routines of the WSK IRPs are registered on `device`, whose
    /// references then keep the driver image loaded until each routine has returned.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`, or the status of `WskRegister`.
    pub fn create(device: DriverDevice) -> Result<PoolBox<Self>, NTSTATUS> {
        crate::paged_code!();
        let driver = PoolBox::try_new(
            Self {
                client: WskClient::new(),
                sockets: PoolBox::try_new_zeroed(TAG_DRIVER)?,
                device,
                handles: AtomicU64::new(0),
            },
            TAG_DRIVER,
        )?;
        // SAFETY: Structural pinning: the client is a field of a pool value that never moves.
        let client = unsafe { PoolBox::as_pin(&driver).map_unchecked(|d| &d.client) };
        WskClient::register(client)?;
        Ok(driver)
    }

    /// A handle was opened (`IRP_MJ_CREATE`, `EvtDeviceFileCreate`): gives it its number.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    pub fn open_handle(&self, handle: &HandleState) {
        // Numbers start at 1 and a u64 does not wrap in a driver's lifetime.
        let id = self.handles.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        handle.assign(id);
    }

    /// Handles one IOCTL that came through `handle`. The request is completed exactly once,
    /// before this returns or (for `SEND`) when its last datagram completes.
    ///
    /// IRQL: `PASSIVE_LEVEL` (opening and closing sockets wait for WSK).
    pub fn dispatch(&self, handle: &HandleState, request: IoctlRequest) {
        crate::paged_code!();
        let Some(ioctl) = Ioctl::from_code(request.code()) else {
            request.complete(STATUS_INVALID_DEVICE_REQUEST, 0);
            return;
        };
        if handle.id() == 0 {
            request.complete(STATUS_INVALID_HANDLE, 0);
            return;
        }
        if handle.is_cleaned_up() {
            request.complete(STATUS_FILE_CLOSED, 0);
            return;
        }
        let owner = Owner::of(handle);
        match ioctl {
            Ioctl::QueryInfo => {
                let info = self.query_info(&request);
                request.finish(info);
            }
            Ioctl::OpenSocket => {
                let opened = self.open_socket(handle, &request);
                request.finish(opened);
            }
            Ioctl::CloseSocket => {
                let closed = parse_close_socket(request.input())
                    .map_err(|e| e.status())
                    .and_then(|handle| self.sockets.close(owner, handle));
                match closed {
                    Ok(()) => request.complete(STATUS_SUCCESS, 0),
                    Err(status) => request.complete(status, 0),
                }
            }
            Ioctl::DescribeSend => {
                let described = self.describe_send(owner, &request);
                request.finish(described);
            }
            Ioctl::Send => self.send(owner, request),
        }
    }

    /// The last user handle on `handle`'s file object was closed (`IRP_MJ_CLEANUP`,
    /// `EvtFileCleanup`): closes every socket it opened, waiting for their sends in flight. A
    /// socket still being opened through it is closed by its own request (see
    /// [`HandleState`]).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    pub fn cleanup(&self, handle: &HandleState) {
        crate::paged_code!();
        self.sockets.stop_publishing(handle);
        self.sockets.close_all(Some(Owner::of(handle)));
    }

    /// `QUERY_INFO`; captures the provider NPI if needed. IRQL: `PASSIVE_LEVEL`.
    fn query_info(&self, request: &IoctlRequest) -> Result<InfoResponse, NTSTATUS> {
        request.require_output::<InfoResponse>()?;
        let provider = self.client.provider();
        Ok(InfoResponse {
            abi_version: wskudp_abi::ABI_VERSION,
            driver_version: DRIVER_VERSION,
            provider_status: self.client.capture_status(),
            provider_wsk_version: provider.map_or(0, |p| p.version()),
            reserved: 0,
            capabilities: capability::ALL,
            max_sockets: MAX_SOCKETS,
            max_segments: MAX_SEGMENTS,
            max_payload: MAX_PAYLOAD,
            max_count: MAX_COUNT,
            control_capacity: u32::try_from(CONTROL_CAPACITY).unwrap_or(u32::MAX),
            open_sockets: self.sockets.open_count(),
        })
    }

    /// `OPEN_SOCKET`: reserve a slot, create and bind the socket, publish it.
    /// IRQL: `PASSIVE_LEVEL`.
    fn open_socket(
        &self,
        handle: &HandleState,
        request: &IoctlRequest,
    ) -> Result<OpenSocketResponse, NTSTATUS> {
        let view = parse_open_socket(request.input()).map_err(|e| e.status())?;
        // Check everything that can fail cheaply before creating anything.
        request.require_output::<OpenSocketResponse>()?;
        let reservation = self.sockets.reserve()?;
        let provider = self.client.provider()?;
        let (socket, bound) = DatagramSocket::open(&provider, self.device, view.local)?;
        let socket = reservation.fill(handle, socket, bound)?;
        Ok(OpenSocketResponse {
            socket,
            reserved: 0,
            local: WireAddr::from_socket_addr(bound),
        })
    }

    /// `DESCRIBE_SEND`: everything a send builds, returned instead of sent.
    /// IRQL: <= `DISPATCH_LEVEL`.
    fn describe_send(
        &self,
        owner: Owner,
        request: &IoctlRequest,
    ) -> Result<DescribeSendResponse, NTSTATUS> {
        let view = parse_send(request.input()).map_err(|e| e.status())?;
        request.require_output::<DescribeSendResponse>()?;
        let socket = self.sockets.reference(owner, view.spec.socket)?;
        Datagram::prepare(&view, socket.local())?.describe()
    }

    /// `SEND`: validate, copy, and start the datagrams; the request completes when the last
    /// one does. IRQL: <= `DISPATCH_LEVEL`.
    fn send(&self, owner: Owner, request: IoctlRequest) {
        let prepared = (|| {
            let view = parse_send(request.input()).map_err(|e| e.status())?;
            request.require_output::<SendResponse>()?;
            let socket = self.sockets.reference(owner, view.spec.socket)?;
            let datagram = Datagram::prepare(&view, socket.local())?;
            Ok((datagram, socket, view.spec.count))
        })();
        match prepared {
            Ok((datagram, socket, count)) => send::start(datagram, socket, count, request),
            Err(status) => request.complete(status, 0),
        }
    }
}

impl Drop for Driver {
    /// Unload: closes every socket (waiting for sends in flight), releases the provider NPI
    /// and deregisters.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    fn drop(&mut self) {
        crate::paged_code!();
        self.sockets.close_all(None);
        self.client.deregister();
    }
}
