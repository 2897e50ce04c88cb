//! The send path: one `SEND` request becomes `count` `WskSendTo` calls on caller-allocated
//! IRPs, at most [`SEND_WINDOW`] of them in flight at once, every buffer held until its IRP
//! completes.
//!
//! Ownership, msquic's shape with Rust-for-Linux's ownership rules:
//! - [`Datagram`]: the request's payload copy (non-paged pool), segment lengths, `CMSGHDR`
//!   buffer and `SOCKADDR`, shared read-only by all `count` sends of one request.
//! - `Batch`: one per `SEND` request; owns the `Datagram`, a rundown reference on the socket
//!   and the pending IOCTL. Two reference counts: `work` (the submitter, each datagram in
//!   flight) and `refs` (the work as a whole, and the front door's cancel routine while the
//!   request is cancelable). Whoever drops `refs` to zero writes the response, completes the
//!   IOCTL and frees the batch.
//! - `SendOp`: one per datagram; owns the IRP and the MDL chain over the shared payload.
//!   Submission gives it to the IRP as completion context; the completion routine takes it
//!   back exactly once. A canceller may pin it meanwhile (its own reference) to call
//!   `IoCancelIrp`: the IRP is freed only when both are done, so `IoCancelIrp` never sees a
//!   freed IRP ("Cancelling IRPs you created": keep the IRP until completion and cancel are
//!   both finished).
//!
//! The window: issuing takes a credit (a free slot), completion gives it back. Exactly one
//! thread issues at a time (the "pump"): the submitter first, then whichever completion
//! routine finds no pump running. A completion that arrives inside `WskSendTo` (the provider
//! completing inline) only returns its credit, so issuing never recurses on the kernel stack.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::ManuallyDrop;
use core::net::{IpAddr, SocketAddr, SocketAddrV6};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use wskudp_abi::{
    DescribeSendResponse, Ecn, MAX_SEGMENTS, SEND_WINDOW, SendResponse, SendSpec, SendView, feature,
};

use crate::cmsg::{ControlBuffer, ControlMessage};
use crate::ddi::nt::{DEVICE_OBJECT, IRP, IoCancelIrp, NTSTATUS};
use crate::ddi::wsk::WSK_BUF;
use crate::dispatch::{IoctlRequest, Marked};
use crate::handle::HandleState;
use crate::irp::Irp;
use crate::mdl::MdlChain;
use crate::pool::{PoolBox, PoolBytes, TAG_BATCH, TAG_DATAGRAM, TAG_PAYLOAD};
use crate::sockaddr::SockAddrBuffer;
use crate::sockets::{SocketInfo, SocketRef};
use crate::stats::{DriverStats, Tally};
use crate::status::{
    STATUS_CANCELLED, STATUS_FILE_FORCED_CLOSED, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_ADDRESS_COMPONENT, STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_PARAMETER,
    STATUS_MORE_PROCESSING_REQUIRED, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
};
use crate::sync::SpinLock;

/// Everything one datagram is made of, validated and copied out of the request buffer.
///
/// IRQL: <= `DISPATCH_LEVEL` (non-paged pool only).
pub(crate) struct Datagram {
    payload: PoolBytes,
    segments: [u32; MAX_SEGMENTS as usize],
    segment_count: usize,
    control: ControlBuffer,
    /// `None`: `RemoteAddress` NULL, the socket's fixed destination.
    remote: Option<SockAddrBuffer>,
}

/// Largest UDP payload over IPv4: 65535 - 20 (IPv4 header) - 8 (UDP header).
const MAX_PAYLOAD_V4: usize = 65_507;
/// The ECN field: the two low bits of the TOS byte / traffic class (RFC 3168).
const ECN_MASK: u8 = 0b11;

/// Where a datagram goes, as the stack sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Route {
    /// The destination.
    destination: SocketAddr,
    /// It travels as IPv4: an IPv4 destination, on an `AF_INET` socket or, v4-mapped, on a
    /// dual-stack `AF_INET6` one.
    ipv4: bool,
}

impl Route {
    /// The route of `destination` from a socket bound to `local`.
    ///
    /// # Errors
    /// `STATUS_INVALID_ADDRESS_COMPONENT` if the socket cannot reach that family: an IPv6
    /// destination from an IPv4 socket, an IPv4 one from an IPv6-only socket.
    const fn of(destination: SocketAddr, socket: &SocketInfo) -> Result<Self, NTSTATUS> {
        let ipv4 = match (socket.local, destination) {
            (SocketAddr::V4(_), SocketAddr::V4(_)) => true,
            (SocketAddr::V6(_), SocketAddr::V6(v6)) => v6.ip().to_ipv4_mapped().is_some(),
            (SocketAddr::V6(_), SocketAddr::V4(_)) if socket.dual_stack() => true,
            _ => return Err(STATUS_INVALID_ADDRESS_COMPONENT),
        };
        if ipv4 && socket.local.is_ipv6() && !socket.dual_stack() {
            // A v4-mapped destination on an IPv6-only socket.
            return Err(STATUS_INVALID_ADDRESS_COMPONENT);
        }
        Ok(Self { destination, ipv4 })
    }

    /// The `SOCKADDR` of the socket's family: an IPv4 destination on an `AF_INET6` socket is
    /// written v4-mapped (`SOCKADDR_IN6`), as the WSK `RemoteAddress` must match the family the
    /// socket was created with.
    fn sockaddr(self, socket: &SocketInfo) -> SockAddrBuffer {
        match (socket.local, self.destination) {
            (SocketAddr::V6(_), SocketAddr::V4(v4)) => SockAddrBuffer::new(SocketAddr::V6(
                SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
            )),
            (_, destination) => SockAddrBuffer::new(destination),
        }
    }
}

/// The control messages a request asks for on `route`, in the order wskudp always writes them:
/// source address and interface, TOS / traffic class or ECN, USO segment size.
///
/// - The source goes in an `IN_PKTINFO` at `IPPROTO_IP` whenever the datagram travels as IPv4,
///   also from a dual-stack `AF_INET6` socket, and in an `IN6_PKTINFO` otherwise: the rule
///   `WSASendMsg`'s page states for dual-stack sockets (seed 002).
/// - TOS and ECN as msquic's `datapath_winkernel.c` sends them: where the stack takes the TOS
///   byte on send (the socket's [`feature::TOS`] probe), one `IP_TOS` / `IPV6_TCLASS` carries
///   both, ECN in its two low bits, and never `IP_ECN` beside it; elsewhere only `IP_ECN` /
///   `IPV6_ECN` where the stack has ECN ([`feature::ECN`]), and asking for a TOS byte (or ECN
///   without it) is `STATUS_NOT_SUPPORTED`.
/// - ECN CE is never sent: Windows refuses it on send (`WSAEINVAL`, "ECN" Winsock page), so it is
///   `STATUS_INVALID_PARAMETER` here, whether asked as the ECN codepoint or in the TOS byte.
///
/// IRQL: any.
///
/// # Errors
/// `STATUS_INVALID_ADDRESS_COMPONENT` for a source of the other family,
/// `STATUS_INVALID_PARAMETER` for ECN CE, `STATUS_NOT_SUPPORTED` for a TOS byte the stack
/// does not take.
fn control_messages(
    spec: &SendSpec,
    route: Route,
    features: u32,
    payload_len: usize,
) -> Result<impl Iterator<Item = ControlMessage>, NTSTATUS> {
    // The ABI gives an interface only with a source: Windows sends the address as given once
    // ipi_ifindex is set, so an unspecified one would go out as the source (research §1.5).
    let ifindex = spec.source_ifindex.unwrap_or(0);
    // A v4-mapped source is the IPv4 address it maps.
    let source = match (spec.source.as_ref().map(IpAddr::to_canonical), route.ipv4) {
        (None, _) => None,
        (Some(IpAddr::V4(address)), true) => Some(ControlMessage::SourceV4 { address, ifindex }),
        (Some(IpAddr::V6(address)), false) => Some(ControlMessage::SourceV6 { address, ifindex }),
        // A source of the other family than the datagram travels as.
        (Some(_), _) => return Err(STATUS_INVALID_ADDRESS_COMPONENT),
    };
    let v4 = route.ipv4;
    let marking = if features & feature::TOS != 0 {
        // One TOS byte: the requested one, its ECN bits replaced by the ECN codepoint if given.
        let tos = match (spec.tos, spec.ecn) {
            (None, None) => None,
            (tos, ecn) => {
                let tos = tos.unwrap_or(0);
                Some(ecn.map_or(tos, |ecn| (tos & !ECN_MASK) | ecn as u8))
            }
        };
        if tos.is_some_and(|tos| tos & ECN_MASK == Ecn::Ce as u8) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        // All zero is the default: nothing to send (msquic sends nothing then either).
        tos.filter(|tos| *tos != 0).map(|tos| {
            if v4 {
                ControlMessage::TosV4(tos)
            } else {
                ControlMessage::TrafficClassV6(tos)
            }
        })
    } else {
        // No TOS byte on send: a TOS asks for nothing more than ECN when its DSCP bits are
        // zero, and then its ECN bits go as ECN (an explicit ECN codepoint wins).
        let tos = spec.tos.unwrap_or(0);
        if tos & !ECN_MASK != 0 {
            return Err(STATUS_NOT_SUPPORTED);
        }
        let ecn = spec.ecn.or_else(|| Ecn::from_bits(tos & ECN_MASK));
        if ecn == Some(Ecn::Ce) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        if ecn.is_some_and(|ecn| ecn != Ecn::NotEct) && features & feature::ECN == 0 {
            return Err(STATUS_NOT_SUPPORTED);
        }
        ecn.filter(|ecn| *ecn != Ecn::NotEct).map(|ecn| {
            if v4 {
                ControlMessage::EcnV4(ecn)
            } else {
                ControlMessage::EcnV6(ecn)
            }
        })
    };
    // A single segment goes without UDP_SEND_MSG_SIZE: some Windows configurations fail
    // such a send with WSAEINVAL (firezone #11580, quinn #2490).
    let uso = spec
        .uso_segment_size
        .filter(|size| (*size as usize) < payload_len)
        .map(ControlMessage::UdpSendMsgSize);
    Ok(source.into_iter().chain(marking).chain(uso))
}

/// The `SOCKADDR` for `destination` from `socket`, as `SIO_WSK_SET_SENDTO_ADDRESS` and
/// `RemoteAddress` take it (IRQL: any).
///
/// # Errors
/// As [`Route::of`].
pub(crate) fn destination_sockaddr(
    destination: SocketAddr,
    socket: &SocketInfo,
) -> Result<SockAddrBuffer, NTSTATUS> {
    Ok(Route::of(destination, socket)?.sockaddr(socket))
}

impl Datagram {
    /// Copies a validated request into pool memory and encodes its control messages and
    /// destination for `socket`.
    ///
    /// # Errors
    /// `STATUS_INVALID_PARAMETER` if the request names no destination and the socket has none;
    /// `STATUS_INVALID_ADDRESS_COMPONENT` if the socket cannot reach the destination's family
    /// or the source is of another; `STATUS_NOT_SUPPORTED` for USO of more than one segment on a
    /// socket whose provider lacks it; `STATUS_INVALID_BUFFER_SIZE` for more than an IPv4 datagram holds without USO;
    /// `STATUS_INSUFFICIENT_RESOURCES` if the payload copy cannot be allocated.
    pub(crate) fn prepare(view: &SendView<'_>, socket: &SocketInfo) -> Result<Self, NTSTATUS> {
        let destination = view
            .spec
            .remote
            .or(socket.destination)
            .ok_or(STATUS_INVALID_PARAMETER)?;
        let route = Route::of(destination, socket)?;
        // Only a payload of more than one segment needs USO: one segment goes without it.
        let segments = view
            .spec
            .uso_segment_size
            .is_some_and(|size| (size as usize) < view.payload.len());
        if segments && socket.features & feature::USO == 0 {
            return Err(STATUS_NOT_SUPPORTED);
        }
        // The largest datagram that leaves: a USO segment, or the whole payload when USO is
        // not asked for or one segment holds it all (then no UDP_SEND_MSG_SIZE is sent).
        let largest = view
            .spec
            .uso_segment_size
            .map_or(view.payload.len(), |size| {
                (size as usize).min(view.payload.len())
            });
        if route.ipv4 && largest > MAX_PAYLOAD_V4 {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        let mut segments = [0; MAX_SEGMENTS as usize];
        let mut segment_count: usize = 0;
        for (slot, len) in segments.iter_mut().zip(view.segment_lengths()) {
            *slot = len;
            segment_count = segment_count.saturating_add(1);
        }
        let mut control = ControlBuffer::new();
        {
            let mut encoder = control.encoder();
            for message in control_messages(&view.spec, route, socket.features, view.payload.len())?
            {
                // Cannot fail: the capacity covers every message at once (cmsg.rs asserts it).
                encoder
                    .push(&message)
                    .map_err(|_| STATUS_INVALID_PARAMETER)?;
            }
        }
        // A request without a destination leaves RemoteAddress NULL: the socket's fixed one.
        let remote = view.spec.remote.map(|_| route.sockaddr(socket));
        Ok(Self {
            payload: PoolBytes::try_copy_from(view.payload, TAG_PAYLOAD)?,
            segments,
            segment_count,
            control,
            remote,
        })
    }

    fn segment_lengths(&self) -> impl Iterator<Item = u32> + '_ {
        self.segments.iter().copied().take(self.segment_count)
    }

    /// An MDL chain over the payload, split as requested.
    fn mdl_chain(&self) -> Result<MdlChain, NTSTATUS> {
        // SAFETY: The payload is non-paged pool owned by this Datagram, and every chain built
        // here is dropped before the Datagram (a SendOp is freed before its Batch lets go).
        unsafe { MdlChain::build(&self.payload, self.segment_lengths()) }
    }

    /// What `WskSendTo` would receive, for `DESCRIBE_SEND`: builds the same MDL chain a send
    /// builds, so allocation failures and lengths are those of a real send.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` if the MDLs cannot be allocated.
    pub(crate) fn describe(&self) -> Result<DescribeSendResponse, NTSTATUS> {
        let chain = self.mdl_chain()?;
        let mut response = DescribeSendResponse::default();
        let control = self.control.as_bytes();
        let remote = self
            .remote
            .as_ref()
            .map_or(&[][..], SockAddrBuffer::as_bytes);
        copy_prefix(&mut response.control, control);
        copy_prefix(&mut response.remote, remote);
        for (slot, len) in response.mdl_lengths.iter_mut().zip(chain.byte_counts()) {
            *slot = len;
        }
        response.control_len = len_u32(control.len());
        response.remote_len = len_u32(remote.len());
        response.payload_len = len_u32(self.payload.len());
        response.mdl_count = len_u32(chain.len());
        Ok(response)
    }
}

fn copy_prefix(out: &mut [u8], bytes: &[u8]) {
    if let Some(dst) = out.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// A request's datagram count, which the ABI bounds to `MAX_COUNT`.
fn count_u32(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Lengths here are bounded by the ABI limits (at most `MAX_PAYLOAD`), far below `u32::MAX`.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Datagrams of one request in flight at once.
const WINDOW: usize = SEND_WINDOW as usize;

/// `Batch::pump`: set while a thread issues datagrams; the low bits count free credits.
const PUMPING: u32 = 1 << 31;

/// One `SEND` request in progress.
///
/// # Invariants
/// - `refs` counts one reference for the work (dropped when `work` reaches zero) plus one
///   while the request is marked cancelable (dropped by whoever learns the cancel routine will
///   not run, or by the cancel routine); the batch is freed, and `request` completed, by
///   whoever brings it to zero. `request` is initialized until then.
/// - `work` counts the submitter's reference until it stops pumping, plus one per datagram
///   handed to WSK (`SendOp`), held until its completion routine is done, pumping included.
/// - `pump` is `PUMPING` while exactly one thread runs [`Batch::pump`], plus the credits not
///   taken yet; credits plus datagrams in flight never exceed [`WINDOW`], so a slot in
///   `in_flight` is always free for a datagram being issued.
/// - `remaining` (datagrams not issued yet) is written only by the pumping thread.
/// - `handle` is the handle the request came through, alive until the request completes.
/// - `driver_stats` points to the driver's statistics, which outlive every socket.
/// - `socket` holds a rundown reference on the socket while `work` is above zero; the thread
///   that brings `work` to zero drops it (nothing touches the socket after that).
struct Batch {
    request: UnsafeCell<ManuallyDrop<IoctlRequest>>,
    refs: AtomicU32,
    work: AtomicU32,
    pump: AtomicU32,
    remaining: AtomicU32,
    /// The front door reported the request cancelled: issue nothing more.
    cancelled: AtomicBool,
    /// The request is marked cancelable (its cancel reference counts in `refs`).
    cancelable: AtomicBool,
    in_flight: SpinLock<[Option<NonNull<SendOp>>; WINDOW]>,
    tally: Tally,
    first_error: AtomicI32,
    /// The request's ABI version: a version-1 response has no `datagrams_not_sent`.
    version: u32,
    handle: NonNull<HandleState>,
    driver_stats: NonNull<DriverStats>,
    datagram: Datagram,
    socket: UnsafeCell<ManuallyDrop<SocketRef>>,
}

// SAFETY: Counters are atomic, `in_flight` is behind a spin lock, `datagram`, `socket`,
// `handle` and `driver_stats` are read-only, and `request` is touched only by the single thread
// that brings `refs` to zero (or, for marking and unmarking, by the submitter and the one that
// brings `work` to zero, which the front door's hooks allow concurrently with its cancel).
unsafe impl Sync for Batch {}
// SAFETY: As above.
unsafe impl Send for Batch {}

impl Batch {
    /// The socket. Only for holders of a work reference (type invariant).
    fn socket(&self) -> &SocketRef {
        // SAFETY: The reference is alive while work is above zero, which the caller's work
        // reference guarantees; it is only read here.
        unsafe { &*self.socket.get() }
    }

    const fn handle(&self) -> &HandleState {
        // SAFETY: The handle outlives its requests (type invariant).
        unsafe { self.handle.as_ref() }
    }

    const fn driver_stats(&self) -> &DriverStats {
        // SAFETY: The driver's statistics outlive every socket (type invariant).
        unsafe { self.driver_stats.as_ref() }
    }

    fn request(&self) -> &IoctlRequest {
        // SAFETY: Initialized until `refs` reaches zero, and only read here (type invariant).
        unsafe { &*self.request.get() }
    }

    /// Pool this request holds for its whole life: the batch and the payload copy (two blocks).
    /// IRQL: any.
    fn footprint(&self) -> usize {
        size_of::<Self>().saturating_add(self.datagram.payload.len())
    }

    /// Records one datagram's outcome, here, on its socket and driver-wide.
    /// IRQL: <= `DISPATCH_LEVEL`.
    fn record(&self, status: NTSTATUS, bytes: usize) {
        if status < 0 {
            let _ = self.first_error.compare_exchange(
                STATUS_SUCCESS,
                status,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        self.tally.record(status, bytes);
        self.socket().stats().stats.record(status, bytes);
        self.driver_stats().record(status, bytes);
    }

    /// Gives up the datagram being issued, which `issue_next` already took off `remaining`,
    /// and every one after it. Only the pumping thread calls this. IRQL: any.
    fn give_up_from_current(&self) {
        self.remaining.fetch_add(1, Ordering::AcqRel);
        self.give_up_remaining();
    }

    /// Counts every datagram not issued yet as not sent; nothing more will be issued.
    /// Only the pumping thread calls this. IRQL: any.
    fn give_up_remaining(&self) {
        let left = self.remaining.swap(0, Ordering::AcqRel);
        if left > 0 {
            self.tally.record_not_sent(left);
            self.socket().counters().tally.record_not_sent(left);
            self.driver_stats().counters.tally.record_not_sent(left);
        }
    }

    /// Adds one credit and, unless a pump is running, becomes the pump. The caller owns a work
    /// reference for the duration. IRQL: <= `DISPATCH_LEVEL`.
    fn return_credit(this: NonNull<Self>) {
        // SAFETY: The caller's work reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        let previous = batch
            .pump
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                Some((state | PUMPING).saturating_add(1))
            })
            .unwrap_or(PUMPING);
        if previous & PUMPING == 0 {
            Self::pump(this);
        }
    }

    /// Issues datagrams while credits last, then stops pumping. The caller set `PUMPING` and
    /// owns a work reference for the duration. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// Run from a completion routine (a DPC) against a provider that completes inline, one
    /// pump can issue the rest of its request there: at most `MAX_COUNT` (1024) `WskSendTo`
    /// calls, a few milliseconds, above the 100 µs Microsoft advises per DPC. Bounded by the
    /// request's count; handing the tail to a work item would lift it (not done yet).
    fn pump(this: NonNull<Self>) {
        // SAFETY: The caller's work reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        loop {
            let state = batch.pump.load(Ordering::Acquire);
            let next = if state & !PUMPING == 0 {
                // No credit: stop, unless one arrives before the flag is cleared.
                0
            } else {
                state.saturating_sub(1)
            };
            if batch
                .pump
                .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            if next == 0 && state & !PUMPING == 0 {
                return;
            }
            if !Self::issue_next(this) {
                // Nothing was issued with the credit: give it back to this loop, unless
                // nothing is left to issue (then the credit is simply dropped).
                if batch.remaining.load(Ordering::Acquire) > 0 {
                    batch.pump.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
    }

    /// Issues the next datagram with a credit the pump took. `true` if a datagram went to WSK
    /// (its completion returns the credit). IRQL: <= `DISPATCH_LEVEL`.
    fn issue_next(this: NonNull<Self>) -> bool {
        // SAFETY: The pump's work reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        if batch.remaining.load(Ordering::Acquire) == 0 {
            return false;
        }
        if batch.cancelled.load(Ordering::SeqCst) || batch.socket().socket().is_closing() {
            batch.give_up_remaining();
            return false;
        }
        batch.remaining.fetch_sub(1, Ordering::AcqRel);
        let op = match SendOp::new(this) {
            Ok(op) => op,
            Err(status) => {
                batch.record(status, 0);
                return false;
            }
        };
        SendOp::submit(op)
    }

    /// Drops a work reference; the last one ends the work: the request stops being cancelable
    /// and the work's own reference goes. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Safety
    /// The caller owns one work reference, which it gives up.
    unsafe fn release_work(this: NonNull<Self>) {
        // SAFETY: The caller's work reference keeps the batch alive until the decrement.
        let batch = unsafe { this.as_ref() };
        if batch.work.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // Nothing issues or completes on the socket any more: let it go now, not when the
        // request completes. The front door's cancel callback may still be due, and KMDF holds
        // EvtRequestCancel back while another thread is in the queue's dispatch loop
        // (fxioqueue.cpp:4632, fxioqueue.hpp:1030-1038), e.g. a CLOSE_SOCKET waiting for this
        // very reference.
        batch.socket().counters().requests.lower();
        // The socket is let go here, so its pool charge goes now too: the batch only waits
        // to complete the request.
        batch.socket().stats().pool.discharge(2, batch.footprint());
        // SAFETY: Work reached zero here, once: nobody else reads the cell any more.
        let socket = unsafe { &mut *batch.socket.get() };
        // SAFETY: The last use of the socket reference (type invariant); dropped once.
        unsafe { ManuallyDrop::drop(socket) };
        if batch.cancelable.load(Ordering::Acquire) && batch.request().unmark_cancelable() {
            // The cancel routine will not run: its reference is ours to drop.
            // SAFETY: The cancel reference, given up once (the routine will not).
            unsafe { Self::release(this) };
        }
        // SAFETY: The work's reference, given up once (work reached zero once).
        unsafe { Self::release(this) };
    }

    /// Drops one reference; the last one completes the request and frees the batch.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Safety
    /// `this` must come from `PoolBox::into_raw` of a `Batch`, and the caller must own one
    /// of its `refs` references, which it gives up.
    unsafe fn release(this: NonNull<Self>) {
        // SAFETY: The caller's reference keeps the batch alive until the decrement.
        let previous = unsafe { this.as_ref() }.refs.fetch_sub(1, Ordering::AcqRel);
        if previous != 1 {
            return;
        }
        // SAFETY: The count reached zero: no other reference exists, so ownership returns
        // to this thread (type invariant).
        let batch = unsafe { PoolBox::from_raw(this, TAG_BATCH) };
        let tally = batch.tally.snapshot();
        // Each is at most the request's count, a u32.
        let not_sent = count_u32(tally.datagrams_not_sent);
        let failed = count_u32(tally.datagrams_failed);
        let mut status = batch.first_error.load(Ordering::Relaxed);
        if status == STATUS_SUCCESS && not_sent > 0 {
            // Nothing failed, but not everything was sent: the request or its socket was
            // closed or cancelled first.
            status = STATUS_CANCELLED;
        }
        let response = SendResponse {
            status,
            datagrams_sent: count_u32(tally.datagrams_sent),
            datagrams_failed: failed,
            datagrams_not_sent: if batch.version >= 2 { not_sent } else { 0 },
            bytes_sent: tally.bytes_sent,
        };
        let cancelled = batch.cancelled.load(Ordering::Acquire) && (not_sent > 0 || failed > 0);
        batch.driver_stats().counters.requests.lower();
        batch.handle().sends.lower();
        // SAFETY: Last reference: exclusive access to the cell.
        let slot = unsafe { &mut *batch.request.get() };
        // SAFETY: The request is still initialized and is taken exactly once, here.
        let request = unsafe { ManuallyDrop::take(slot) };
        if cancelled {
            request.complete(STATUS_CANCELLED, 0);
        } else {
            request.complete_with_response(&response);
        }
        drop(batch);
    }

    /// The front door's cancel routine: issue nothing more, and cancel every `WskSendTo` IRP in
    /// flight. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Safety
    /// `cookie` is the batch given to `mark_cancelable`, whose cancel reference this call owns
    /// and gives up.
    unsafe fn cancelled(cookie: *mut c_void) {
        let Some(this) = NonNull::new(cookie.cast::<Self>()) else {
            return;
        };
        // SAFETY: The cancel reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        batch.cancelled.store(true, Ordering::SeqCst);
        // Pin what is in flight, then cancel outside the lock: a provider may complete the
        // IRP from inside IoCancelIrp, and the completion routine takes the same lock.
        let mut pinned: [Option<NonNull<SendOp>>; WINDOW] = [None; WINDOW];
        {
            let slots = batch.in_flight.lock_exclusive();
            for (pin, slot) in pinned.iter_mut().zip(slots.iter()) {
                if let Some(op) = *slot {
                    // SAFETY: An op in a slot is alive (its completion removes it under
                    // this lock before dropping its reference).
                    unsafe { op.as_ref() }.refs.fetch_add(1, Ordering::AcqRel);
                    *pin = Some(op);
                }
            }
        }
        for op in pinned.into_iter().flatten() {
            // SAFETY: The pin keeps the op alive.
            let irp = unsafe { op.as_ref() }.irp.as_ptr();
            // SAFETY: The pin keeps the IRP allocated; IoCancelIrp may be called at
            // <= DISPATCH_LEVEL on an IRP in flight or already completed.
            unsafe {
                IoCancelIrp(irp);
            }
            // SAFETY: The pin's reference, given up once.
            unsafe { SendOp::release(op) };
        }
        // SAFETY: The cancel reference, given up once.
        unsafe { Self::release(this) };
    }
}

/// One datagram in flight.
///
/// # Invariants
/// `wsk_buf` describes `chain`; `batch` is a live `Batch` on which this op owns one work
/// reference from submission until its completion routine is done; `refs` counts the IRP's own
/// reference (held until completion) plus one per canceller that pinned it; `slot` is its index
/// in the batch's `in_flight` once submitted.
struct SendOp {
    wsk_buf: UnsafeCell<WSK_BUF>,
    #[allow(dead_code, reason = "owned until the IRP completes, freed by its Drop")]
    chain: MdlChain,
    irp: Irp,
    refs: AtomicU32,
    slot: usize,
    batch: NonNull<Batch>,
}

impl SendOp {
    /// Builds the MDL chain and IRP for one datagram of `batch`. IRQL: <= `DISPATCH_LEVEL`.
    fn new(batch: NonNull<Batch>) -> Result<PoolBox<Self>, NTSTATUS> {
        // SAFETY: The pump holds a work reference on the batch.
        let datagram = unsafe { &batch.as_ref().datagram };
        let chain = datagram.mdl_chain()?;
        let irp = Irp::allocate()?;
        let wsk_buf = WSK_BUF {
            Mdl: chain.head(),
            Offset: 0,
            Length: datagram.payload.len(),
        };
        // INVARIANT: `wsk_buf` describes `chain`; the work reference and the slot are taken
        // by `submit`.
        let op = PoolBox::try_new(
            Self {
                wsk_buf: UnsafeCell::new(wsk_buf),
                chain,
                irp,
                refs: AtomicU32::new(1),
                slot: 0,
                batch,
            },
            TAG_DATAGRAM,
        )?;
        // Charged to the socket until the op's IRP reference goes (`discharge`).
        // SAFETY: As above.
        unsafe { batch.as_ref() }
            .socket()
            .stats()
            .pool
            .charge(1, size_of::<Self>());
        Ok(op)
    }

    /// Takes back the socket's charge for one op, when its IRP reference goes: a canceller
    /// that pinned the op may free it later, when the socket may be gone. The caller holds a
    /// work reference. IRQL: any.
    fn discharge(batch: &Batch) {
        batch.socket().stats().pool.discharge(1, size_of::<Self>());
    }

    /// Drops one reference; the last frees the op (its IRP and MDLs).
    ///
    /// # Safety
    /// `op` came from `PoolBox::into_raw` and the caller owns one of its `refs`.
    unsafe fn release(op: NonNull<Self>) {
        // SAFETY: The caller's reference keeps it alive until the decrement.
        if unsafe { op.as_ref() }.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: Last reference: ownership returns here.
            drop(unsafe { PoolBox::from_raw(op, TAG_DATAGRAM) });
        }
    }

    /// Hands the datagram to `WskSendTo`, unless the request was cancelled or the socket is
    /// closing. `true` if it went to WSK (the completion routine finishes it). IRQL:
    /// <= `DISPATCH_LEVEL`.
    fn submit(op: PoolBox<Self>) -> bool {
        let this = op.batch;
        // SAFETY: The pump holds a work reference on the batch.
        let batch = unsafe { this.as_ref() };
        let socket = batch.socket().socket();
        // Enter the socket's call gate first: from here until WskSendTo returns the socket
        // is not closed under us.
        let call = match socket.send_call() {
            Ok(call) => call,
            Err(status) if status == STATUS_CANCELLED => {
                // The socket is closing: this datagram and the rest are not sent.
                batch.give_up_from_current();
                Self::abandon(op);
                return false;
            }
            Err(status) => {
                batch.record(status, 0);
                Self::abandon(op);
                return false;
            }
        };
        let raw = PoolBox::as_ptr(&op);
        // Take a free slot (there is one: a credit was taken), so a cancel can find the IRP.
        let placed = {
            let mut slots = batch.in_flight.lock_exclusive();
            slots
                .iter_mut()
                .enumerate()
                .find(|(_, slot)| slot.is_none())
                .map(|(index, slot)| {
                    *slot = NonNull::new(raw);
                    index
                })
        };
        let Some(index) = placed else {
            batch.record(STATUS_INSUFFICIENT_RESOURCES, 0);
            Self::abandon(op);
            return false;
        };
        // SAFETY: Not shared yet except through the slot, which only a canceller reads (the
        // pointer, not this field).
        unsafe { (*PoolBox::as_ptr(&op)).slot = index };
        if batch.cancelled.load(Ordering::SeqCst) {
            // Cancelled meanwhile: the canceller may have pinned the op already.
            Self::unplace(batch, index);
            batch.give_up_from_current();
            Self::abandon(op);
            return false;
        }
        let context = raw.cast::<c_void>();
        // SAFETY: `send_complete` takes the op back exactly once and returns
        // STATUS_MORE_PROCESSING_REQUIRED; it runs at <= DISPATCH_LEVEL on any thread. The op
        // stays at `context` (pool) until then.
        let armed = unsafe {
            op.irp
                .set_completion(socket.device(), send_complete, context)
        };
        if let Err(status) = armed {
            // Nothing was set: the op is still ours, and nothing was issued.
            Self::unplace(batch, index);
            batch.record(status, 0);
            Self::abandon(op);
            return false;
        }
        batch.work.fetch_add(1, Ordering::AcqRel);
        let _ = batch.socket().counters().datagrams.try_raise(u32::MAX);
        let _ = batch.driver_stats().counters.datagrams.try_raise(u32::MAX);
        let irp = op.irp.as_ptr();
        let buffer = op.wsk_buf.get();
        // Given up: the completion routine takes its reference back.
        let _ = PoolBox::into_raw(op);
        // SAFETY: The MDL chain, payload, remote address and control buffer all live until the
        // completion routine has run (the op holds them, or a reference on the batch that
        // does); the returned status is also the IRP's, which `send_complete` reads.
        let _ = unsafe {
            call.send_to(
                buffer,
                batch.datagram.remote.as_ref(),
                &batch.datagram.control,
                irp,
            )
        };
        // `call` drops here: the gate is left once WskSendTo returned.
        true
    }

    /// Empties the op's slot. IRQL: <= `DISPATCH_LEVEL`.
    fn unplace(batch: &Batch, index: usize) {
        let mut slots = batch.in_flight.lock_exclusive();
        if let Some(slot) = slots.get_mut(index) {
            *slot = None;
        }
    }

    /// Releases an op that never went to WSK, after a canceller may have pinned it. The
    /// pump's work reference keeps the batch alive. IRQL: <= `DISPATCH_LEVEL`.
    fn abandon(op: PoolBox<Self>) {
        // SAFETY: The pump holds a work reference on the batch.
        Self::discharge(unsafe { op.batch.as_ref() });
        let raw = PoolBox::into_raw(op);
        // SAFETY: The IRP's own reference (never issued), given up once.
        unsafe { Self::release(raw) };
    }
}

/// `WskSendTo` completion routine.
///
/// IRQL: <= `DISPATCH_LEVEL`, arbitrary thread.
unsafe extern "system" fn send_complete(
    _device: *const DEVICE_OBJECT,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    if let Some(op) = NonNull::new(context.cast::<SendOp>()) {
        // SAFETY: `context` is the op given to this IRP by `submit`; its IRP reference keeps
        // it alive until released below, once (the IRP completes once).
        let (result, this, index) = {
            // SAFETY: As above.
            let op = unsafe { op.as_ref() };
            (op.irp.io_result(), op.batch, op.slot)
        };
        // SAFETY: The op's work reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        SendOp::unplace(batch, index);
        SendOp::discharge(batch);
        // SAFETY: The IRP's reference, given up once; a pinning canceller keeps the IRP
        // allocated until it is done with IoCancelIrp.
        unsafe { SendOp::release(op) };
        batch.record(result.status, result.information);
        batch.socket().counters().datagrams.lower();
        batch.driver_stats().counters.datagrams.lower();
        if result.status == STATUS_FILE_FORCED_CLOSED {
            batch.socket().force_close();
        }
        Batch::return_credit(this);
        // SAFETY: The op's work reference, given up once.
        unsafe { Batch::release_work(this) };
    }
    // The IRP is ours (freed with the op): stop the I/O manager from touching it.
    STATUS_MORE_PROCESSING_REQUIRED
}

/// What a `SEND` asks for besides the datagram: how many copies, and the ABI version its
/// response is written in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Copies to send.
    pub(crate) count: u32,
    /// The request's ABI version.
    pub(crate) version: u32,
}

/// Sends `shape.count` copies of `datagram` on `socket` and completes `request` with a
/// [`SendResponse`] when every copy has finished; the request's slot in `handle`'s and the
/// socket's in-flight limits was taken by the caller and is released at completion.
///
/// IRQL: <= `DISPATCH_LEVEL`.
pub(crate) fn start(
    datagram: Datagram,
    socket: SocketRef,
    handle: &HandleState,
    driver_stats: &DriverStats,
    shape: Shape,
    request: IoctlRequest,
) {
    let Shape { count, version } = shape;
    let credits = count.min(SEND_WINDOW);
    let batch = Batch {
        request: UnsafeCell::new(ManuallyDrop::new(request)),
        // The work's reference, and the cancel routine's until known unneeded.
        refs: AtomicU32::new(2),
        work: AtomicU32::new(1),
        pump: AtomicU32::new(PUMPING | credits),
        remaining: AtomicU32::new(count),
        cancelled: AtomicBool::new(false),
        cancelable: AtomicBool::new(false),
        in_flight: SpinLock::new([None; WINDOW]),
        tally: Tally::default(),
        first_error: AtomicI32::new(STATUS_SUCCESS),
        version,
        handle: NonNull::from(handle),
        driver_stats: NonNull::from(driver_stats),
        datagram,
        socket: UnsafeCell::new(ManuallyDrop::new(socket)),
    };
    let this = match PoolBox::try_place(batch, TAG_BATCH) {
        Ok(batch) => PoolBox::into_raw(batch),
        Err(batch) => {
            // Nothing was sent; the datagram and socket reference are released on return.
            let socket = ManuallyDrop::into_inner(batch.socket.into_inner());
            socket.counters().requests.lower();
            drop(socket);
            driver_stats.counters.requests.lower();
            handle.sends.lower();
            let request = ManuallyDrop::into_inner(batch.request.into_inner());
            request.complete(STATUS_INSUFFICIENT_RESOURCES, 0);
            return;
        }
    };
    // SAFETY: The submitter's work reference keeps the batch alive.
    let batch = unsafe { this.as_ref() };
    // Charged to the socket until the work ends (`release_work`).
    batch.socket().stats().pool.charge(2, batch.footprint());
    // SAFETY: `Batch::cancelled` takes the batch and its cancel reference, valid until it ran or
    // unmarking succeeded (`release_work`).
    match unsafe {
        batch
            .request()
            .mark_cancelable(Batch::cancelled, this.as_ptr().cast())
    } {
        Marked::Yes => batch.cancelable.store(true, Ordering::Release),
        Marked::AlreadyCancelled => {
            batch.cancelled.store(true, Ordering::SeqCst);
            // SAFETY: The cancel reference: no routine will run to drop it.
            unsafe { Batch::release(this) };
        }
        Marked::Unsupported => {
            // SAFETY: As above.
            unsafe { Batch::release(this) };
        }
    }
    Batch::pump(this);
    // SAFETY: The submitter's work reference, given up once.
    unsafe { Batch::release_work(this) };
}
