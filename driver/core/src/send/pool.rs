//! A socket's send pool: send contexts (each with its IRP) and payload buffers (each with its
//! MDLs), built once and reused, so a socket that keeps sending allocates nothing.
//!
//! Sized when the socket opens ([`SendPool::new`] builds [`PREFILLED_UNITS`] contexts and
//! [`PREFILLED_SMALL`] small buffers at `PASSIVE_LEVEL`); a send that finds none free builds one
//! (an allocation the model counts), and up to each cache's depth are kept once given back
//! (the [`crate::cache`] rules). Everything goes when the socket's entry is freed, after its
//! rundown: no send of it is in flight any more.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use wskudp_abi::{MAX_PAYLOAD, MAX_SENDS_PER_SOCKET, SEND_WINDOW};

use crate::cache::{Cache, Pooled};
use crate::ddi::nt::{MDL, NTSTATUS};
use crate::ddi::wsk::{WSK_BUF, WSK_BUF_LIST};
use crate::irp::Irp;
use crate::mdl::BufferMdls;
use crate::pool::{RawBlock, TAG_BUFFER, TAG_UNIT};
use crate::status::STATUS_INVALID_BUFFER_SIZE;

/// Most datagrams one `WskSendMessages` call carries (its `WSK_BUF_LIST` entries per context).
pub(crate) const MAX_BATCH_U32: u32 = 32;
/// [`MAX_BATCH_U32`] as a length.
pub(crate) const MAX_BATCH: usize = MAX_BATCH_U32 as usize;
/// Payload buffers up to this size come from the small class: every datagram that fits one
/// Ethernet frame (1472 bytes over IPv4, 1452 over IPv6) and a little more.
pub(crate) const SMALL_PAYLOAD: usize = 2048;
/// The large class holds any payload ([`MAX_PAYLOAD`]).
pub(crate) const LARGE_PAYLOAD: usize = MAX_PAYLOAD as usize;

/// Send contexts built when a socket opens: one `SEND` request's whole window, sent with
/// `WskSendTo`.
pub(crate) const PREFILLED_UNITS: usize = SEND_WINDOW as usize;
/// Small payload buffers built when a socket opens.
pub(crate) const PREFILLED_SMALL: usize = 2;
/// Send contexts kept at most: every request the socket may have in flight, each with its
/// full window (the pool never holds more than the socket ever had in flight at once).
const UNIT_DEPTH: usize = MAX_SENDS_PER_SOCKET as usize * SEND_WINDOW as usize;
/// Small buffers kept at most: one per request the socket may have in flight.
const SMALL_DEPTH: usize = MAX_SENDS_PER_SOCKET as usize;
/// Large buffers kept at most (64 KiB each): a few requests' worth; more are allocated and
/// freed per request.
const LARGE_DEPTH: usize = 4;

/// One WSK call's context: its IRP, allocated once and reused with `IoReuseIrp`, and the
/// `WSK_BUF_LIST` entries of a `WskSendMessages` batch (`WskSendTo` takes the first entry's
/// buffer). `msquic`'s `CXPLAT_SEND_DATA` holds the same; its IRP is embedded and
/// `IoInitializeIrp`'d, here it comes from `IoAllocateIrp`, the form the `IoReuseIrp` page and
/// "Using IRPs with Winsock Kernel Functions" document for reuse.
///
/// # Invariants
/// While its IRP is in flight, `list`, `user` and the buffers the entries describe belong to
/// the provider (read only); they are written only by the thread that took the unit from its
/// pool, before it issues the IRP.
pub(crate) struct SendUnit {
    irp: Irp,
    /// The IRP was issued before: it must be reset (`IoReuseIrp`) before the next call.
    used: UnsafeCell<bool>,
    list: UnsafeCell<[WSK_BUF_LIST; MAX_BATCH]>,
    /// The send this unit serves, for its completion routine.
    user: UnsafeCell<Option<NonNull<()>>>,
    /// Datagrams in the current call.
    datagrams: UnsafeCell<u32>,
    /// The send's in-flight slot holding this unit.
    slot: UnsafeCell<usize>,
    /// References while issued: the IRP's own (until its completion routine is done) and one
    /// per canceller that pinned the unit to call `IoCancelIrp` on it. The last one gives the
    /// unit back to its pool, so `IoCancelIrp` never sees an IRP reused for another send.
    refs: AtomicU32,
}

#[allow(
    clippy::non_send_fields_in_send_ty,
    reason = "the entries point to MDLs over non-paged pool, usable on any thread"
)]
// SAFETY: The cells are written only by the unit's current owner before issuing, and read by
// its completion routine after the provider completed the IRP (type invariant); the IRP may be
// completed on any thread.
unsafe impl Send for SendUnit {}
// SAFETY: As above.
unsafe impl Sync for SendUnit {}

impl SendUnit {
    /// A unit with a fresh IRP. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub(crate) fn new() -> Result<Self, NTSTATUS> {
        const EMPTY: WSK_BUF_LIST = WSK_BUF_LIST {
            Next: core::ptr::null_mut(),
            Buffer: WSK_BUF {
                Mdl: core::ptr::null_mut(),
                Offset: 0,
                Length: 0,
            },
        };
        Ok(Self {
            irp: Irp::allocate()?,
            used: UnsafeCell::new(false),
            list: UnsafeCell::new([EMPTY; MAX_BATCH]),
            user: UnsafeCell::new(None),
            datagrams: UnsafeCell::new(0),
            slot: UnsafeCell::new(0),
            refs: AtomicU32::new(0),
        })
    }

    /// The IRP.
    pub(crate) const fn irp(&self) -> &Irp {
        &self.irp
    }

    /// Prepares the unit for a call carrying `datagrams` copies (at most [`MAX_BATCH`]) of the
    /// `length`-byte payload whose MDL chain starts at `head`, on behalf of `user`: resets the
    /// IRP if it was used, and fills the entries, linked. Returns the first entry.
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// Every entry describes the same chain: a `WSK_BUF` only names the MDLs the provider
    /// reads, and MDLs over non-paged pool are only read (their system address is set; nobody
    /// maps them), so one chain serves all copies of a datagram.
    ///
    /// # Safety
    /// The caller owns the unit (took it from its pool, not issued yet) and keeps the chain
    /// and its buffer alive and unchanged until the unit's IRP completed.
    pub(crate) unsafe fn prepare(
        &self,
        user: NonNull<()>,
        head: *mut MDL,
        length: usize,
        datagrams: usize,
    ) -> *mut WSK_BUF_LIST {
        // SAFETY: The caller owns the unit (type invariant: only the owner writes the cells).
        let issued_before = unsafe { &mut *self.used.get() };
        if *issued_before {
            // "Using IRPs with Winsock Kernel Functions": a completed IRP is reset with
            // IoReuseIrp before it is passed to another WSK function.
            self.irp.reuse();
        }
        *issued_before = true;
        // SAFETY: As above.
        let list = unsafe { &mut *self.list.get() };
        let count = datagrams.clamp(1, MAX_BATCH);
        let first = list.as_mut_ptr();
        let mut next: *mut WSK_BUF_LIST = core::ptr::null_mut();
        for entry in list.iter_mut().take(count).rev() {
            entry.Buffer = WSK_BUF {
                Mdl: head,
                Offset: 0,
                Length: length,
            };
            entry.Next = next;
            next = entry;
        }
        // SAFETY: As above.
        unsafe {
            *self.user.get() = Some(user);
        }
        // SAFETY: As above.
        unsafe {
            *self.datagrams.get() = u32::try_from(count).unwrap_or(1);
        }
        self.refs.store(1, Ordering::Release);
        first
    }

    /// Records the in-flight slot the issuer placed the unit in (before issuing).
    ///
    /// # Safety
    /// As [`SendUnit::prepare`]: only the unit's owner, before the IRP is issued.
    pub(crate) unsafe fn set_slot(&self, slot: usize) {
        // SAFETY: The caller owns the unit and has not issued it.
        unsafe { *self.slot.get() = slot };
    }

    /// The in-flight slot, for the completion routine.
    pub(crate) fn slot(&self) -> usize {
        // SAFETY: Written before the IRP was issued (type invariant).
        unsafe { *self.slot.get() }
    }

    /// A canceller's pin: the unit stays out of its pool until [`SendUnit::unpin`].
    pub(crate) fn pin(&self) {
        self.refs.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops one reference (the IRP's, or a pin); `true` if it was the last: the caller gives
    /// the unit back to its pool.
    #[must_use]
    pub(crate) fn unpin(&self) -> bool {
        self.refs.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// The send and datagram count of the current call. Read by the completion routine once
    /// the provider completed the IRP (the issuer wrote them before issuing).
    pub(crate) fn current(&self) -> (Option<NonNull<()>>, u32) {
        // SAFETY: Written before the IRP was issued and not written again until the unit goes
        // back to its pool (type invariant).
        let user = unsafe { *self.user.get() };
        // SAFETY: As above.
        let datagrams = unsafe { *self.datagrams.get() };
        (user, datagrams)
    }

    /// The first entry's buffer, for `WskSendTo`.
    pub(crate) const fn first_buffer(&self) -> *mut WSK_BUF {
        let list = self.list.get().cast::<WSK_BUF_LIST>();
        // Only an address is computed: the first entry's `Buffer` field.
        list.wrapping_byte_add(core::mem::offset_of!(WSK_BUF_LIST, Buffer))
            .cast::<WSK_BUF>()
    }
}

/// A payload buffer with its MDLs, built once: the bytes (not zeroed: every send writes what
/// it sends) and [`BufferMdls`] over them.
///
/// # Invariants
/// `mdls` describes `block`; they are written only by the buffer's current owner while no send
/// of them is in flight.
pub(crate) struct PayloadBuffer {
    mdls: UnsafeCell<BufferMdls>,
    // Declared last: dropped after the MDLs that describe it.
    block: RawBlock,
}

// SAFETY: Owned by one send at a time (type invariant); MDLs and bytes are non-paged.
unsafe impl Send for PayloadBuffer {}
// SAFETY: As above: shared access only reads.
unsafe impl Sync for PayloadBuffer {}

impl PayloadBuffer {
    /// A `capacity`-byte buffer and its whole-buffer MDL. IRQL: <= `DISPATCH_LEVEL`.
    fn new(capacity: usize) -> Result<Self, NTSTATUS> {
        let block = RawBlock::try_uninit(capacity, TAG_BUFFER)?;
        let length = u32::try_from(capacity).map_err(|_| STATUS_INVALID_BUFFER_SIZE)?;
        // SAFETY: The block is non-paged pool of `capacity` > 0 bytes, freed only after the
        // MDLs (field order).
        let mdls = unsafe { BufferMdls::new(block.as_ptr(), length)? };
        Ok(Self {
            mdls: UnsafeCell::new(mdls),
            block,
        })
    }

    /// Copies `payload` in and rebuilds the MDL chain over it, split into `segments` (empty: one
    /// MDL). Returns the chain's first MDL. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INVALID_BUFFER_SIZE` for a payload larger than the buffer, or segments that do
    /// not add up to it; `STATUS_INSUFFICIENT_RESOURCES` if a partial MDL cannot be allocated.
    ///
    /// # Safety
    /// The caller owns the buffer (took it from its pool) and no send of it is in flight.
    pub(crate) unsafe fn fill(
        &self,
        payload: Payload<'_>,
        segments: impl Iterator<Item = u32> + Clone,
    ) -> Result<*mut MDL, NTSTATUS> {
        let len = payload.len();
        if len == 0 || len > self.block.len() {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        let base = self.block.as_ptr();
        match payload {
            Payload::Bytes(bytes) => {
                // SAFETY: `len` <= the block's size; the block cannot overlap `bytes` (a request
                // buffer); the caller owns it and nothing reads it now.
                unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), base, len) };
            }
            Payload::Pattern(_) => {
                for index in 0..len {
                    // SAFETY: `index < len` <= the block's size: inside the block.
                    let byte = unsafe { base.add(index) };
                    // SAFETY: The caller owns the block; nothing reads it now.
                    unsafe { byte.write(pattern_byte(index)) };
                }
            }
        }
        // SAFETY: As above.
        let mdls = unsafe { &mut *self.mdls.get() };
        let len_u32 = u32::try_from(len).map_err(|_| STATUS_INVALID_BUFFER_SIZE)?;
        let mut lengths = segments.clone().peekable();
        if lengths.peek().is_none() {
            mdls.build_chain(core::iter::once(len_u32))
        } else {
            let total = segments.fold(0_u64, |sum, n| sum.saturating_add(u64::from(n)));
            if total != u64::from(len_u32) {
                return Err(STATUS_INVALID_BUFFER_SIZE);
            }
            mdls.build_chain(lengths)
        }
    }

    /// The buffer's size.
    pub(crate) const fn capacity(&self) -> usize {
        self.block.len()
    }

    /// The MDL chain last built.
    pub(crate) fn mdls(&self) -> &BufferMdls {
        // SAFETY: Written only by the owner while no send is in flight; shared reads otherwise.
        unsafe { &*self.mdls.get() }
    }
}

/// The byte at `index` of a generated payload: the harness's `pattern`, `index % 251`, so a
/// receiver can tell a generated datagram from a corrupt one.
fn pattern_byte(index: usize) -> u8 {
    u8::try_from(index % 251).unwrap_or(0)
}

/// What a payload buffer is filled with.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Payload<'a> {
    /// The request's bytes.
    Bytes(&'a [u8]),
    /// `len` generated bytes ([`pattern_byte`]), for `BENCH`.
    Pattern(usize),
}

impl Payload<'_> {
    /// Its length.
    pub(crate) const fn len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::Pattern(len) => *len,
        }
    }
}

/// A socket's send pool.
pub(crate) struct SendPool {
    units: Cache<SendUnit>,
    small: Cache<PayloadBuffer>,
    large: Cache<PayloadBuffer>,
}

impl SendPool {
    /// An empty pool (filled by [`SendPool::fill`] once at its final address).
    pub(crate) const fn new() -> Self {
        Self {
            units: Cache::new(UNIT_DEPTH, TAG_UNIT),
            small: Cache::new(SMALL_DEPTH, TAG_BUFFER),
            large: Cache::new(LARGE_DEPTH, TAG_BUFFER),
        }
    }

    /// Builds what a socket starts with. IRQL: <= `DISPATCH_LEVEL` (done at `PASSIVE_LEVEL`,
    /// when the socket opens).
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub(crate) fn fill(&self) -> Result<(), NTSTATUS> {
        self.units.fill(PREFILLED_UNITS, SendUnit::new)?;
        self.small
            .fill(PREFILLED_SMALL, || PayloadBuffer::new(SMALL_PAYLOAD))
    }

    /// A send context. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` if none is free and none can be built.
    pub(crate) fn take_unit(&self) -> Result<Pooled<SendUnit>, NTSTATUS> {
        self.units.take(SendUnit::new)
    }

    /// Gives a send context back. IRQL: <= `DISPATCH_LEVEL`.
    pub(crate) fn give_unit(&self, unit: Pooled<SendUnit>) {
        self.units.give(unit);
    }

    /// A payload buffer of at least `len` bytes. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INVALID_BUFFER_SIZE` past [`LARGE_PAYLOAD`]; `STATUS_INSUFFICIENT_RESOURCES`.
    pub(crate) fn take_buffer(&self, len: usize) -> Result<Pooled<PayloadBuffer>, NTSTATUS> {
        if len <= SMALL_PAYLOAD {
            self.small.take(|| PayloadBuffer::new(SMALL_PAYLOAD))
        } else if len <= LARGE_PAYLOAD {
            self.large.take(|| PayloadBuffer::new(LARGE_PAYLOAD))
        } else {
            Err(STATUS_INVALID_BUFFER_SIZE)
        }
    }

    /// Gives a payload buffer back to its class. IRQL: <= `DISPATCH_LEVEL`.
    pub(crate) fn give_buffer(&self, buffer: Pooled<PayloadBuffer>) {
        if buffer.block.len() <= SMALL_PAYLOAD {
            self.small.give(buffer);
        } else {
            self.large.give(buffer);
        }
    }
}
