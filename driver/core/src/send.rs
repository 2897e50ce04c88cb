//! The send path: one `SEND` request becomes `count` `WskSendTo` calls on caller-allocated
//! IRPs, every buffer held until its IRP completes.
//!
//! Ownership, msquic's shape with Rust-for-Linux's ownership rules:
//! - [`Datagram`]: the request's payload copy (non-paged pool), segment lengths, `CMSGHDR`
//!   buffer and `SOCKADDR`, shared read-only by all `count` sends of one request.
//! - `Batch`: one per `SEND` request; owns the `Datagram`, a rundown reference on the socket
//!   and the pending IOCTL. Reference-counted by its datagrams in flight plus the submitter;
//!   whoever drops the count to zero writes the response, completes the IOCTL and frees it.
//! - `SendOp`: one per datagram; owns the IRP and the MDL chain over the shared payload.
//!   Submission gives it to the IRP as completion context (`into_raw`); the completion
//!   routine takes it back (`from_raw`) exactly once and frees it, then returns
//!   `STATUS_MORE_PROCESSING_REQUIRED`. The submitter never touches it after `WskSendTo`:
//!   the IRP completes (and the routine runs) whatever `WskSendTo` returns.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::ManuallyDrop;
use core::net::SocketAddr;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use wskudp_abi::{DescribeSendResponse, MAX_SEGMENTS, SendResponse, SendSpec, SendView};

use crate::cmsg::{ControlBuffer, ControlMessage};
use crate::ddi::nt::{DEVICE_OBJECT, IRP, NTSTATUS};
use crate::ddi::wsk::WSK_BUF;
use crate::dispatch::IoctlRequest;
use crate::irp::Irp;
use crate::mdl::MdlChain;
use crate::pool::{PoolBox, PoolBytes, TAG_BATCH, TAG_DATAGRAM, TAG_PAYLOAD};
use crate::sockaddr::SockAddrBuffer;
use crate::sockets::SocketRef;
use crate::status::{
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_ADDRESS_COMPONENT, STATUS_INVALID_PARAMETER,
    STATUS_MORE_PROCESSING_REQUIRED, STATUS_SUCCESS,
};

/// Everything one datagram is made of, validated and copied out of the request buffer.
///
/// IRQL: <= `DISPATCH_LEVEL` (non-paged pool only).
pub(crate) struct Datagram {
    payload: PoolBytes,
    segments: [u32; MAX_SEGMENTS as usize],
    segment_count: usize,
    control: ControlBuffer,
    remote: SockAddrBuffer,
}

/// The control messages a request asks for, in the order wskudp always writes them: source
/// address, TOS / traffic class, ECN, USO segment size. IRQL: any.
fn control_messages(spec: &SendSpec) -> impl Iterator<Item = ControlMessage> {
    let v4 = spec.remote.is_ipv4();
    let source = spec.source.map(|ip| match ip {
        core::net::IpAddr::V4(v4) => ControlMessage::SourceV4(v4),
        core::net::IpAddr::V6(v6) => ControlMessage::SourceV6(v6),
    });
    let tos = spec.tos.map(|tos| {
        if v4 {
            ControlMessage::TosV4(tos)
        } else {
            ControlMessage::TrafficClassV6(tos)
        }
    });
    let ecn = spec.ecn.map(|ecn| {
        if v4 {
            ControlMessage::EcnV4(ecn)
        } else {
            ControlMessage::EcnV6(ecn)
        }
    });
    let uso = spec.uso_segment_size.map(ControlMessage::UdpSendMsgSize);
    source.into_iter().chain(tos).chain(ecn).chain(uso)
}

impl Datagram {
    /// Copies a validated request into pool memory and encodes its control messages and
    /// destination for a socket bound to `local`.
    ///
    /// # Errors
    /// `STATUS_INVALID_ADDRESS_COMPONENT` if the destination's family is not the socket's,
    /// `STATUS_INSUFFICIENT_RESOURCES` if the payload copy cannot be allocated.
    pub(crate) fn prepare(view: &SendView<'_>, local: SocketAddr) -> Result<Self, NTSTATUS> {
        if view.spec.remote.is_ipv4() != local.is_ipv4() {
            return Err(STATUS_INVALID_ADDRESS_COMPONENT);
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
            for message in control_messages(&view.spec) {
                // Cannot fail: the capacity covers every message at once (cmsg.rs asserts it).
                encoder
                    .push(&message)
                    .map_err(|_| STATUS_INVALID_PARAMETER)?;
            }
        }
        Ok(Self {
            payload: PoolBytes::try_copy_from(view.payload, TAG_PAYLOAD)?,
            segments,
            segment_count,
            control,
            remote: SockAddrBuffer::new(view.spec.remote),
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
        let remote = self.remote.as_bytes();
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

/// Lengths here are bounded by the ABI limits (at most `MAX_PAYLOAD`), far below `u32::MAX`.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// One `SEND` request in progress.
///
/// # Invariants
/// `outstanding` counts the datagrams not yet finished plus one for the submitter; the
/// `Batch` is freed, and `request` completed, by whoever brings it to zero. `request` is
/// initialized until then. Fields drop in order, so the socket reference goes last.
struct Batch {
    request: UnsafeCell<ManuallyDrop<IoctlRequest>>,
    outstanding: AtomicU32,
    sent: AtomicU32,
    failed: AtomicU32,
    bytes: AtomicU64,
    first_error: AtomicI32,
    datagram: Datagram,
    socket: SocketRef,
}

// SAFETY: Counters are atomic, `datagram` and `socket` are read-only after submission, and
// `request` is touched only by the single thread that brings `outstanding` to zero.
unsafe impl Sync for Batch {}
// SAFETY: As above.
unsafe impl Send for Batch {}

impl Batch {
    /// Records one datagram's outcome. IRQL: <= `DISPATCH_LEVEL`.
    fn record(&self, status: NTSTATUS, bytes: usize) {
        if status >= 0 {
            self.sent.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let _ = self.first_error.compare_exchange(
                STATUS_SUCCESS,
                status,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Drops one reference; the last one completes the request and frees the batch.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Safety
    /// `this` must come from `PoolBox::into_raw` of a `Batch`, and the caller must own one
    /// of its `outstanding` references, which it gives up.
    unsafe fn release(this: NonNull<Self>) {
        // SAFETY: The caller's reference keeps the batch alive until the decrement.
        let previous = unsafe { this.as_ref() }
            .outstanding
            .fetch_sub(1, Ordering::AcqRel);
        if previous != 1 {
            return;
        }
        // SAFETY: The count reached zero: no other reference exists, so ownership returns
        // to this thread (type invariant).
        let batch = unsafe { PoolBox::from_raw(this, TAG_BATCH) };
        let response = SendResponse {
            status: batch.first_error.load(Ordering::Relaxed),
            datagrams_sent: batch.sent.load(Ordering::Relaxed),
            datagrams_failed: batch.failed.load(Ordering::Relaxed),
            reserved: 0,
            bytes_sent: batch.bytes.load(Ordering::Relaxed),
        };
        // SAFETY: Last reference: exclusive access to the cell.
        let slot = unsafe { &mut *batch.request.get() };
        // SAFETY: The request is still initialized and is taken exactly once, here.
        let request = unsafe { ManuallyDrop::take(slot) };
        request.complete_with_response(&response);
        drop(batch);
    }
}

/// One datagram in flight.
///
/// # Invariants
/// `wsk_buf` describes `chain`; `batch` is a live `Batch` on which this op owns one
/// reference.
struct SendOp {
    wsk_buf: UnsafeCell<WSK_BUF>,
    #[allow(dead_code, reason = "owned until the IRP completes, freed by its Drop")]
    chain: MdlChain,
    irp: Irp,
    batch: NonNull<Batch>,
}

impl SendOp {
    /// Builds the MDL chain and IRP for one datagram of `batch`. IRQL: <= `DISPATCH_LEVEL`.
    fn new(batch: NonNull<Batch>) -> Result<PoolBox<Self>, NTSTATUS> {
        // SAFETY: The submitter holds a reference on the batch for the whole submission.
        let datagram = unsafe { &batch.as_ref().datagram };
        let chain = datagram.mdl_chain()?;
        let irp = Irp::allocate()?;
        let wsk_buf = WSK_BUF {
            Mdl: chain.head(),
            Offset: 0,
            Length: datagram.payload.len(),
        };
        // INVARIANT: `wsk_buf` describes `chain`; the batch reference is taken by the caller
        // (counted in `outstanding` before submission starts).
        PoolBox::try_new(
            Self {
                wsk_buf: UnsafeCell::new(wsk_buf),
                chain,
                irp,
                batch,
            },
            TAG_DATAGRAM,
        )
    }

    /// Hands the datagram to `WskSendTo`. From here on only the completion routine touches
    /// it. IRQL: <= `DISPATCH_LEVEL`.
    fn submit(op: PoolBox<Self>) {
        // SAFETY: The op owns a reference on the batch (type invariant), so it is alive.
        let batch = unsafe { op.batch.as_ref() };
        let socket = batch.socket.socket();
        let sender = match socket.sender() {
            Ok(sender) => sender,
            Err(status) => return finish(op, status, 0),
        };
        let context = PoolBox::as_ptr(&op).cast::<c_void>();
        // SAFETY: `send_complete` takes the op back exactly once, frees it and returns
        // STATUS_MORE_PROCESSING_REQUIRED; it runs at <= DISPATCH_LEVEL on any thread. The op
        // stays at `context` (pool) until then.
        let armed = unsafe {
            op.irp
                .set_completion(socket.device(), send_complete, context)
        };
        if let Err(status) = armed {
            // Nothing was set: the op is still ours, and nothing was issued.
            return finish(op, status, 0);
        }
        let irp = op.irp.as_ptr();
        let buffer = op.wsk_buf.get();
        // Given up: the completion routine takes it back with `from_raw`.
        let _ = PoolBox::into_raw(op);
        // SAFETY: The MDL chain, payload, remote address and control buffer all live until the
        // completion routine has run (the op holds them, or a reference on the batch that does);
        // the IRP's completion routine frees the op. The returned status is also the IRP's,
        // which `send_complete` reads.
        let _ =
            unsafe { sender.send_to(buffer, &batch.datagram.remote, &batch.datagram.control, irp) };
    }
}

/// Frees a finished datagram and releases its batch reference. IRQL: <= `DISPATCH_LEVEL`.
fn finish(op: PoolBox<SendOp>, status: NTSTATUS, bytes: usize) {
    let batch = op.batch;
    // SAFETY: The op owns a reference on the batch (type invariant), so it is alive.
    unsafe { batch.as_ref() }.record(status, bytes);
    // Free the MDLs and the IRP before the batch (and with it the payload) can go.
    drop(op);
    // SAFETY: The op's reference is given up here, once.
    unsafe { Batch::release(batch) };
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
        // SAFETY: `context` is the op given to this IRP by `submit`; the IRP completes once,
        // so this is the only from_raw for it.
        let op = unsafe { PoolBox::from_raw(op, TAG_DATAGRAM) };
        let result = op.irp.io_result();
        finish(op, result.status, result.information);
    }
    // The IRP is ours (freed above with the op): stop the I/O manager from touching it.
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Sends `count` copies of `datagram` on `socket` and completes `request` with a
/// [`SendResponse`] when every copy has finished.
///
/// IRQL: <= `DISPATCH_LEVEL`.
pub(crate) fn start(datagram: Datagram, socket: SocketRef, count: u32, request: IoctlRequest) {
    let batch = Batch {
        request: UnsafeCell::new(ManuallyDrop::new(request)),
        outstanding: AtomicU32::new(count.saturating_add(1)),
        sent: AtomicU32::new(0),
        failed: AtomicU32::new(0),
        bytes: AtomicU64::new(0),
        first_error: AtomicI32::new(STATUS_SUCCESS),
        datagram,
        socket,
    };
    let batch = match PoolBox::try_place(batch, TAG_BATCH) {
        Ok(batch) => PoolBox::into_raw(batch),
        Err(batch) => {
            // Nothing was sent; the datagram and socket reference are released on return.
            let request = ManuallyDrop::into_inner(batch.request.into_inner());
            request.complete(STATUS_INSUFFICIENT_RESOURCES, 0);
            return;
        }
    };
    for _ in 0..count {
        match SendOp::new(batch) {
            Ok(op) => SendOp::submit(op),
            Err(status) => {
                // SAFETY: The submitter's reference keeps the batch alive.
                unsafe { batch.as_ref() }.record(status, 0);
                // SAFETY: This datagram's reference is given up, once.
                unsafe { Batch::release(batch) };
            }
        }
    }
    // SAFETY: The submitter's own reference, given up once.
    unsafe { Batch::release(batch) };
}
