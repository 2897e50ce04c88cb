//! The driver state and its requests.

use wskudp_abi::{
    ABI_OLDEST, ABI_VERSION, BenchApi, BenchResponse, CONTROL_CAPACITY, DescribeSendResponse,
    InfoResponse, Ioctl, MAX_COUNT, MAX_PAYLOAD, MAX_SEGMENTS, MAX_SENDS_PER_HANDLE,
    MAX_SENDS_PER_SOCKET, MAX_SOCKETS, OpenSocketResponse, SEND_WINDOW, SendResponse, SocketOption,
    StatsResponse, WireAddr, capability, feature, parse_bench, parse_close_socket,
    parse_open_socket, parse_query_stats, parse_send, parse_send_direct, parse_set_option,
};

use crate::ddi::nt::NTSTATUS;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::dispatch::IoctlRequest;
use crate::handle::HandleState;
use crate::irp::DriverDevice;
use crate::pool::{PoolBox, TAG_DRIVER};
use crate::send::{self, Addressing, Datagram, Payload, Sender};
use crate::sockets::{Opened, Owner, SocketTable};
use crate::status::{
    STATUS_BUFFER_TOO_SMALL, STATUS_DEVICE_BUSY, STATUS_FILE_CLOSED, STATUS_FILE_FORCED_CLOSED,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER,
    STATUS_REVISION_MISMATCH,
};
use crate::wsk::{DatagramSocket, WskClient, options};

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
    /// The send path's driver-wide state: statistics, reused request contexts, the work item.
    sender: Sender,
    /// The newest ABI version served (the oldest is always [`ABI_OLDEST`]).
    abi_newest: u32,
    /// [`feature`] bits of the provider, with [`PROBED`] once known.
    provider_features: AtomicU32,
}

/// The newest ABI version [`Driver::create`] speaks, for the model's compatibility tests only
/// (feature `abi-override`, which only the test harness enables): they stand in a driver one
/// release older behind the KMDF and WDM front doors, whose `DriverEntry` calls `create`. The
/// driver image never has it.
#[cfg(feature = "abi-override")]
#[doc(hidden)]
pub static CREATE_SPEAKING: AtomicU32 = AtomicU32::new(ABI_VERSION);

/// [`Driver::provider_features`] holds a probe's result.
const PROBED: u32 = 1 << 31;

/// What the driver does whatever the provider: both families, a source address, MDL chains,
/// `DESCRIBE_SEND` (`IN_PKTINFO` / `IN6_PKTINFO` are in every build at the floor).
const BASE_CAPABILITIES: u32 = capability::IPV4
    | capability::IPV6
    | capability::SOURCE_ADDRESS
    | capability::MDL_CHAIN
    | capability::DESCRIBE_SEND
    | capability::BENCH
    | capability::SEND_DIRECT;

/// `QUERY_INFO`'s capability bits from [`Driver::provider_features`]: TOS, ECN and USO only as
/// the provider probe found them (none before it ran). ECN rides in the TOS byte where the
/// provider takes one (msquic folds it there, `datapath_winkernel.c:2922-2936`).
/// IRQL: any.
const fn capabilities(known: u32) -> u32 {
    let mut bits = BASE_CAPABILITIES;
    if known & PROBED == 0 {
        return bits;
    }
    if known & feature::TOS != 0 {
        bits |= capability::TOS;
    }
    if known & (feature::TOS | feature::ECN) != 0 {
        bits |= capability::ECN;
    }
    if known & feature::USO != 0 {
        bits |= capability::USO;
    }
    bits
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
        #[cfg(feature = "abi-override")]
        let newest = CREATE_SPEAKING.load(Ordering::Relaxed);
        #[cfg(not(feature = "abi-override"))]
        let newest = ABI_VERSION;
        Self::create_speaking(device, newest)
    }

    /// [`Driver::create`] for a driver that speaks ABI versions up to `newest` only (clamped to
    /// the versions this build knows): how the compatibility tests stand in for an older
    /// driver. Front doors use [`Driver::create`].
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`Driver::create`].
    #[doc(hidden)]
    pub fn create_speaking(device: DriverDevice, newest: u32) -> Result<PoolBox<Self>, NTSTATUS> {
        crate::paged_code!();
        let driver = PoolBox::try_new(
            Self {
                client: WskClient::new(),
                sockets: PoolBox::try_new_zeroed(TAG_DRIVER)?,
                device,
                handles: AtomicU64::new(0),
                sender: Sender::new(),
                abi_newest: newest.clamp(ABI_OLDEST, ABI_VERSION),
                provider_features: AtomicU32::new(0),
            },
            TAG_DRIVER,
        )?;
        // SAFETY: Structural pinning: the sender is a field of a pool value that never moves.
        unsafe { PoolBox::as_pin(&driver).map_unchecked(|d| &d.sender) }.init(device)?;
        // SAFETY: As above, for the client.
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
        if ioctl.introduced() > self.abi_newest {
            // A driver serving only older ABI versions does not know this request.
            request.complete(STATUS_INVALID_DEVICE_REQUEST, 0);
            return;
        }
        let owner = Owner::of(handle);
        match ioctl {
            Ioctl::QueryInfo => self.query_info(request),
            Ioctl::QueryStats => self.query_stats(owner, request),
            Ioctl::OpenSocket => self.open_socket(handle, request),
            Ioctl::SetOption => {
                let set = self.set_option(owner, &request);
                request.finish(set);
            }
            Ioctl::CloseSocket => {
                let closed = parse_close_socket(request.input())
                    .map_err(|e| e.status())
                    .and_then(|(version, socket)| {
                        self.serves(version)?;
                        self.sockets.close(owner, socket)
                    });
                request.finish(closed);
            }
            Ioctl::DescribeSend => {
                let described = self.describe_send(owner, &request);
                request.finish(described);
            }
            Ioctl::Send => self.send(handle, request),
            Ioctl::Bench => self.bench(handle, request),
            Ioctl::SendDirect => self.send_direct(handle, request),
        }
    }

    /// The last user handle on `handle`'s file object was closed (`IRP_MJ_CLEANUP`,
    /// `EvtFileCleanup`): closes every socket it opened (see `SocketTable::close`). A
    /// socket still being opened through it is closed by its own request (see
    /// [`HandleState`]).
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    pub fn cleanup(&self, handle: &HandleState) {
        crate::paged_code!();
        self.sockets.stop_publishing(handle);
        self.sockets.close_all(Some(Owner::of(handle)));
    }

    /// Refuses requests written in a version newer than this driver serves (the ABI crate
    /// already refused versions outside what it knows).
    const fn serves(&self, version: u32) -> Result<(), NTSTATUS> {
        if version > self.abi_newest {
            Err(STATUS_REVISION_MISMATCH)
        } else {
            Ok(())
        }
    }

    /// `QUERY_INFO`, in the newest layout that is served and fits the output buffer; captures
    /// the provider NPI if needed. TOS, ECN and USO are claimed only once the provider probe
    /// (first `OPEN_SOCKET`) found them. IRQL: `PASSIVE_LEVEL`.
    fn query_info(&self, request: IoctlRequest) {
        if request.output_len() < InfoResponse::V1_LEN {
            return request.complete(STATUS_BUFFER_TOO_SMALL, 0);
        }
        let provider = self.client.provider();
        let info = InfoResponse {
            abi_version: self.abi_newest,
            driver_version: DRIVER_VERSION,
            provider_status: self.client.capture_status(),
            provider_wsk_version: provider.map_or(0, |p| p.version()),
            reserved: 0,
            capabilities: capabilities(self.provider_features.load(Ordering::Acquire)),
            max_sockets: MAX_SOCKETS,
            max_segments: MAX_SEGMENTS,
            max_payload: MAX_PAYLOAD,
            max_count: MAX_COUNT,
            control_capacity: u32::try_from(CONTROL_CAPACITY).unwrap_or(u32::MAX),
            open_sockets: self.sockets.open_count(),
            abi_oldest: ABI_OLDEST,
            send_window: SEND_WINDOW,
            max_sends_per_socket: MAX_SENDS_PER_SOCKET,
            max_sends_per_handle: MAX_SENDS_PER_HANDLE,
        };
        let version = if request.output_len() >= size_of::<InfoResponse>() {
            self.abi_newest
        } else {
            1
        };
        request.complete_with_bytes(info.bytes_for_version(version));
    }

    /// `QUERY_STATS`: driver-wide counters and the handle's sockets, built in the output
    /// buffer (the response is larger than a kernel stack should hold).
    /// IRQL: <= `DISPATCH_LEVEL`.
    fn query_stats(&self, owner: Owner, request: IoctlRequest) {
        let parsed = parse_query_stats(request.input())
            .map_err(|e| e.status())
            .and_then(|version| self.serves(version));
        if let Err(status) = parsed {
            return request.complete(status, 0);
        }
        request.complete_in_place(|stats: &mut StatsResponse| {
            let (failures, other) = self.sender.stats.failures().snapshot();
            let (blocks, bytes) = crate::pool::in_use();
            stats.driver = self.sender.stats.counters.snapshot();
            stats.failures = failures;
            stats.failures_other = other;
            stats.pool_blocks = blocks;
            stats.pool_bytes = bytes;
            stats.open_sockets = self.sockets.open_count();
            stats.socket_count = self.sockets.fill_stats(owner, &mut stats.sockets);
        });
    }

    /// `OPEN_SOCKET`: reserve a slot, create and bind the socket, probe what its provider
    /// supports, publish it; the response in the request's version's layout.
    /// IRQL: `PASSIVE_LEVEL`.
    fn open_socket(&self, handle: &HandleState, request: IoctlRequest) {
        let opened = (|| {
            let view = parse_open_socket(request.input()).map_err(|e| e.status())?;
            self.serves(view.abi_version)?;
            // Check everything that can fail cheaply before creating anything.
            let needed = if view.abi_version >= 2 {
                size_of::<OpenSocketResponse>()
            } else {
                OpenSocketResponse::V1_LEN
            };
            if request.output_len() < needed {
                return Err(STATUS_BUFFER_TOO_SMALL);
            }
            let reservation = self.sockets.reserve()?;
            let provider = self.client.provider()?;
            let provider_features = self.provider_features(&provider)?;
            let (socket, bound) =
                DatagramSocket::open(&provider, self.device, view.local, view.dual_stack)?;
            let features = provider_features
                | if view.dual_stack {
                    feature::DUAL_STACK
                } else {
                    0
                };
            let opened = Opened {
                local: bound,
                features,
            };
            let socket = reservation.fill(handle, socket, opened)?;
            let response = OpenSocketResponse {
                socket,
                reserved: 0,
                local: WireAddr::from_socket_addr(bound),
                features,
                reserved2: 0,
            };
            Ok((response, view.abi_version))
        })();
        match opened {
            Ok((response, version)) => {
                request.complete_with_bytes(response.bytes_for_version(version));
            }
            Err(status) => request.complete(status, 0),
        }
    }

    /// What the provider supports, probed at the first `OPEN_SOCKET` and kept (see
    /// [`DatagramSocket::probe_provider`]).
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// The probe's: it could not run, and is tried again by the next `OPEN_SOCKET` (a socket
    /// whose features are unknown is not opened).
    fn provider_features(&self, provider: &crate::wsk::Provider) -> Result<u32, NTSTATUS> {
        let known = self.provider_features.load(Ordering::Acquire);
        if known & PROBED != 0 {
            return Ok(known & !PROBED);
        }
        let features = DatagramSocket::probe_provider(provider, self.device)?;
        self.provider_features
            .store(features | PROBED, Ordering::Release);
        Ok(features)
    }

    /// `owner`'s socket `id`, referenced, unless the transport closed it.
    ///
    /// # Errors
    /// As `SocketTable::reference`; `STATUS_FILE_FORCED_CLOSED` for a socket the transport
    /// closed. IRQL: <= `DISPATCH_LEVEL`.
    fn live_socket(&self, owner: Owner, id: u32) -> Result<crate::sockets::SocketRef, NTSTATUS> {
        let socket = self.sockets.reference(owner, id)?;
        if socket.is_forced_closed() {
            return Err(STATUS_FILE_FORCED_CLOSED);
        }
        Ok(socket)
    }

    /// `SET_OPTION`: one option through `WskControlSocket`, for the family the socket sends
    /// (both families for a dual-stack socket where the option has an IPv4 form).
    /// IRQL: `PASSIVE_LEVEL`.
    fn set_option(&self, owner: Owner, request: &IoctlRequest) -> Result<(), NTSTATUS> {
        let view = parse_set_option(request.input()).map_err(|e| e.status())?;
        self.serves(view.abi_version)?;
        let socket = self.live_socket(owner, view.socket)?;
        let info = socket.info();
        let wsk = socket.socket();
        if let SocketOption::Destination(destination) = view.option {
            // Checked as a send to it would be: the socket must reach that family.
            let address = crate::send::destination_sockaddr(destination, &info)?;
            wsk.set_sendto_address(&address)?;
            socket.set_destination(destination);
            return Ok(());
        }
        // IPv6 form first; a refused IPv4 form on a dual-stack socket fails the request and
        // leaves the IPv6 form set (README "Broadcast and multicast").
        for (level, code, value) in options::settings(view.option, info.local, info.dual_stack()) {
            wsk.set_option(level, code, value)?;
        }
        Ok(())
    }

    /// `DESCRIBE_SEND`: everything a send builds, returned instead of sent.
    /// IRQL: <= `DISPATCH_LEVEL`.
    fn describe_send(
        &self,
        owner: Owner,
        request: &IoctlRequest,
    ) -> Result<DescribeSendResponse, NTSTATUS> {
        let view = parse_send(request.input()).map_err(|e| e.status())?;
        self.serves(view.abi_version)?;
        request.require_output::<DescribeSendResponse>()?;
        let socket = self.sockets.reference(owner, view.spec.socket)?;
        let segments = Segments::of(&view);
        let mut datagram = Datagram::prepare(
            &Addressing {
                spec: &view.spec,
                segments: segments.as_slice(),
            },
            Payload::Bytes(view.payload),
            &socket.info(),
            socket.pool(),
        )?;
        let described = datagram.describe();
        datagram.release(socket.pool());
        Ok(described)
    }

    /// `SEND`: validate, take a slot in the handle's and the socket's in-flight limits, copy,
    /// and start the datagrams; the request completes when the last one does.
    /// IRQL: <= `DISPATCH_LEVEL`.
    fn send(&self, handle: &HandleState, request: IoctlRequest) {
        let prepared = (|| {
            let view = parse_send(request.input()).map_err(|e| e.status())?;
            self.serves(view.abi_version)?;
            request.require_output::<SendResponse>()?;
            let socket = self.live_socket(Owner::of(handle), view.spec.socket)?;
            let segments = Segments::of(&view);
            let datagram = Datagram::prepare(
                &Addressing {
                    spec: &view.spec,
                    segments: segments.as_slice(),
                },
                Payload::Bytes(view.payload),
                &socket.info(),
                socket.pool(),
            )?;
            let plan = send::send_plan(
                &view.spec,
                socket.socket().has_send_messages(),
                view.abi_version,
            );
            Ok((datagram, socket, plan))
        })();
        let (datagram, socket, plan) = match prepared {
            Ok(prepared) => prepared,
            Err(status) => return request.complete(status, 0),
        };
        self.start(datagram, socket, handle, plan, request);
    }

    /// `SEND_DIRECT`: as `SEND`, but the payload is the caller's output buffer, which the I/O
    /// manager locked (`METHOD_IN_DIRECT`): partial MDLs over it, one per segment, are the
    /// `WSK_BUF`s, so nothing is copied, and the request completes only after its last WSK IRP
    /// has (its pages stay locked until then).
    ///
    /// Direct I/O has no output to write the response to (the output buffer is the payload),
    /// and `IoStatus.Information` may not exceed the output buffer's length (KMDF's verifier:
    /// `fxrequest.cpp:433-513`), so the request completes with the status a `SEND` response
    /// would carry — `STATUS_SUCCESS` only when every datagram was sent, else the first WSK
    /// failure or `STATUS_CANCELLED` — and Information 0. The per-status counts are in
    /// `QUERY_STATS`. IRQL: `PASSIVE_LEVEL`.
    fn send_direct(&self, handle: &HandleState, request: IoctlRequest) {
        let prepared = (|| {
            let direct = request.direct_output();
            let len = direct.map_or(0, |(_, len)| len);
            // Without an output buffer the payload is empty or mismatched: refused here.
            let view = parse_send_direct(request.input(), len).map_err(|e| e.status())?;
            let (mdl, _) = direct.ok_or(STATUS_INVALID_PARAMETER)?;
            self.serves(view.abi_version)?;
            let socket = self.live_socket(Owner::of(handle), view.spec.socket)?;
            let segments = Segments::of(&view);
            // SAFETY: The request's own locked MDL; the request completes only after the
            // job ends and releases the datagram (`batch::Batch::release_work`).
            let datagram = unsafe {
                Datagram::prepare_direct(
                    &Addressing {
                        spec: &view.spec,
                        segments: segments.as_slice(),
                    },
                    mdl,
                    len,
                    &socket.info(),
                )?
            };
            let mut plan = send::send_plan(
                &view.spec,
                socket.socket().has_send_messages(),
                view.abi_version,
            );
            plan.answer = send::Answer::Direct;
            Ok((datagram, socket, plan))
        })();
        match prepared {
            Ok((datagram, socket, plan)) => self.start(datagram, socket, handle, plan, request),
            Err(status) => request.complete(status, 0),
        }
    }

    /// `BENCH`: validate, generate the payload into the socket's pool, and send `count` copies
    /// through the chosen WSK function; the request completes with the timed figures when the
    /// last one does. IRQL: `PASSIVE_LEVEL`.
    fn bench(&self, handle: &HandleState, request: IoctlRequest) {
        let prepared = (|| {
            let view = parse_bench(request.input()).map_err(|e| e.status())?;
            self.serves(view.abi_version)?;
            request.require_output::<BenchResponse>()?;
            let socket = self.live_socket(Owner::of(handle), view.spec.socket)?;
            let size = usize::try_from(view.size).map_err(|_| STATUS_INVALID_PARAMETER)?;
            let datagram = Datagram::prepare(
                &Addressing {
                    spec: &view.spec,
                    segments: &[],
                },
                Payload::Pattern(size),
                &socket.info(),
                socket.pool(),
            )?;
            let plan = send::Plan {
                count: view.count,
                api: match view.api {
                    BenchApi::SendTo => send::Api::SendTo,
                    BenchApi::SendMessages => send::Api::SendMessages,
                },
                batch: view.batch,
                depth: view.depth,
                rate: view.rate,
                answer: send::Answer::Bench,
            };
            Ok((datagram, socket, plan))
        })();
        match prepared {
            Ok((datagram, socket, plan)) => self.start(datagram, socket, handle, plan, request),
            Err(status) => request.complete(status, 0),
        }
    }

    /// Takes the request's slots in the handle's and the socket's in-flight limits and starts
    /// its job; `STATUS_DEVICE_BUSY` past either limit. IRQL: `PASSIVE_LEVEL`.
    fn start(
        &self,
        mut datagram: Datagram,
        socket: crate::sockets::SocketRef,
        handle: &HandleState,
        plan: send::Plan,
        request: IoctlRequest,
    ) {
        if !handle.sends.try_raise(MAX_SENDS_PER_HANDLE) {
            datagram.release(socket.pool());
            return request.complete(STATUS_DEVICE_BUSY, 0);
        }
        if !socket.counters().requests.try_raise(MAX_SENDS_PER_SOCKET) {
            handle.sends.lower();
            datagram.release(socket.pool());
            return request.complete(STATUS_DEVICE_BUSY, 0);
        }
        let _ = self.sender.stats.counters.requests.try_raise(u32::MAX);
        send::start(&self.sender, datagram, socket, handle, plan, request);
    }
}

/// A request's segment lengths, copied out of the input buffer (at most [`MAX_SEGMENTS`]).
struct Segments {
    lengths: [u32; MAX_SEGMENTS as usize],
    count: usize,
}

impl Segments {
    /// The explicit lengths of `view` (none for a single segment). IRQL: any.
    fn of(view: &wskudp_abi::SendView<'_>) -> Self {
        let mut segments = Self {
            lengths: [0; MAX_SEGMENTS as usize],
            count: 0,
        };
        if view.segment_count() > 1 {
            for (slot, len) in segments.lengths.iter_mut().zip(view.segment_lengths()) {
                *slot = len;
                segments.count = segments.count.saturating_add(1);
            }
        }
        segments
    }

    fn as_slice(&self) -> &[u32] {
        self.lengths.get(..self.count).unwrap_or(&[])
    }
}

impl Drop for Driver {
    /// Unload: closes every socket (see `SocketTable::close`), releases the provider NPI
    /// and deregisters.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    fn drop(&mut self) {
        crate::paged_code!();
        self.sockets.close_all(None);
        self.client.deregister();
    }
}
