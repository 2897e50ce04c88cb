//! Memory descriptor lists over non-paged pool.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use wskudp_abi::MAX_SEGMENTS;

use crate::ddi::nt::{
    IoAllocateMdl, IoBuildPartialMdl, IoFreeMdl, MDL, MDL_PARTIAL_HAS_BEEN_MAPPED,
    MmBuildMdlForNonPagedPool, NTSTATUS,
};
use crate::status::{STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_BUFFER_SIZE};

/// MDLs this driver allocated since it loaded (`BENCH` reports them per datagram).
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// MDLs this driver allocated since it loaded. IRQL: any.
#[must_use]
pub(crate) fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// An MDL from `IoAllocateMdl`, built with `MmBuildMdlForNonPagedPool`.
///
/// IRQL: <= `DISPATCH_LEVEL` for every operation, including drop.
///
/// # Invariants
/// `ptr` is a live MDL from `IoAllocateMdl`, owned by this value, describing non-paged pool
/// that its creator keeps allocated for the MDL's lifetime.
struct Mdl {
    ptr: NonNull<MDL>,
}

impl Mdl {
    /// Describes `len` bytes at `start`.
    ///
    /// # Safety
    /// `start..start + len` must lie in one non-paged pool block that stays allocated until the
    /// returned MDL is dropped, and `len` must be non-zero.
    unsafe fn for_nonpaged(start: *const u8, len: u32) -> Result<Self, NTSTATUS> {
        let raw;
        // SAFETY: 1. IoAllocateMdl may be called at IRQL <= DISPATCH_LEVEL;
        //         2. no IRP is associated (NULL), so the secondary-buffer flag is irrelevant;
        //         3. `start`/`len` describe a valid range (caller's guarantee).
        unsafe {
            raw = IoAllocateMdl(start.cast(), len, false, false, core::ptr::null_mut());
        }
        let ptr = NonNull::new(raw).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: 1. `ptr` is a fresh MDL describing non-paged pool (caller's guarantee);
        //         2. MmBuildMdlForNonPagedPool may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            MmBuildMdlForNonPagedPool(ptr.as_ptr());
        }
        // INVARIANT: a live MDL from IoAllocateMdl over pool the caller keeps allocated.
        Ok(Self { ptr })
    }
}

impl Mdl {
    /// An MDL sized for every page of `start..start + len`, not built yet: the target of
    /// [`Mdl::build_partial`] for any range inside that buffer (`IoBuildPartialMdl`: the target
    /// must be large enough for the pages of the range it describes).
    ///
    /// # Safety
    /// `len` must be non-zero; the MDL is only ever built over ranges inside `start..start + len`.
    unsafe fn sized_for(start: *const u8, len: u32) -> Result<Self, NTSTATUS> {
        let raw;
        // SAFETY: IoAllocateMdl may be called at IRQL <= DISPATCH_LEVEL; it only sizes and
        // initializes the MDL from the address and length, and no IRP is associated.
        unsafe {
            raw = IoAllocateMdl(start.cast(), len, false, false, core::ptr::null_mut());
        }
        let ptr = NonNull::new(raw).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: a live MDL; whoever builds it over memory keeps that memory allocated.
        Ok(Self { ptr })
    }

    /// `IoBuildPartialMdl(source, self, start, len)`: this MDL now describes `start..start + len`,
    /// a range of `source`'s buffer, with `source`'s pages (no allocation).
    ///
    /// The `IoBuildPartialMdl` page: a target someone mapped since it was built
    /// (`MDL_PARTIAL_HAS_BEEN_MAPPED`) must be unmapped (`MmPrepareMdlForReuse`) before it is
    /// built again. Only the pooled MDLs are rebuilt, and over non-paged pool nobody maps them:
    /// the partial inherits `MDL_SOURCE_IS_NONPAGED_POOL` and its system address. A `SEND_DIRECT`'s
    /// partials are built once and freed, and `IoFreeMdl` releases a partial's mapping itself.
    ///
    /// # Errors
    /// `STATUS_INVALID_BUFFER_SIZE` if this MDL was mapped since its last build (never over
    /// non-paged pool; refused rather than leak a mapping).
    ///
    /// # Safety
    /// `source` must be a built or locked MDL and `start..start + len` a non-empty range inside
    /// both its buffer and the range this MDL was sized for.
    unsafe fn build_partial(
        &self,
        source: NonNull<MDL>,
        start: *const u8,
        len: u32,
    ) -> Result<(), NTSTATUS> {
        let flags;
        // SAFETY: A live MDL owned by this value (type invariant).
        unsafe {
            flags = (*self.ptr.as_ptr()).MdlFlags;
        }
        if flags & MDL_PARTIAL_HAS_BEEN_MAPPED != 0 {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        // SAFETY: 1. `source` describes locked or non-paged memory and the range lies in its
        //            buffer and in what this MDL was sized for (caller's guarantee);
        //         2. IoBuildPartialMdl may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            IoBuildPartialMdl(
                source.as_ptr(),
                self.ptr.as_ptr(),
                start.cast_mut().cast(),
                len,
            );
        }
        Ok(())
    }
}

impl Drop for Mdl {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `ptr` is a live MDL from IoAllocateMdl owned here;
        // IoFreeMdl may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            IoFreeMdl(self.ptr.as_ptr());
        }
    }
}

/// The MDLs of one pooled buffer, built once: one over the whole buffer
/// (`MmBuildMdlForNonPagedPool`), and partial MDLs, one per segment, that each send rebuilds
/// from it with `IoBuildPartialMdl` (no allocation). A partial MDL is allocated the first time a
/// send needs that many segments, then kept with the buffer.
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Invariants
/// `whole` describes `base..base + capacity`, non-paged pool that the owner keeps allocated
/// for this value's lifetime; every partial is sized for that range; `partials[..chain]` are
/// `Some`, built over consecutive pieces of the buffer and linked through `MDL::Next`, the last
/// one's `Next` null.
pub(crate) struct BufferMdls {
    base: *const u8,
    capacity: u32,
    whole: Mdl,
    partials: [Option<Mdl>; MAX_SEGMENTS as usize],
    chain: usize,
}

#[allow(
    clippy::non_send_fields_in_send_ty,
    reason = "MDLs and buffer addresses are not tied to a thread"
)]
// SAFETY: MDLs over non-paged pool may be used from any thread; the owner serializes writes.
unsafe impl Send for BufferMdls {}
// SAFETY: Shared access only reads the MDLs.
unsafe impl Sync for BufferMdls {}

impl BufferMdls {
    /// Builds the MDL over `base..base + capacity`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` if the MDL cannot be allocated.
    ///
    /// # Safety
    /// `base..base + capacity` must be one non-paged pool block (`capacity` > 0) that stays
    /// allocated until this value is dropped.
    pub(crate) unsafe fn new(base: *const u8, capacity: u32) -> Result<Self, NTSTATUS> {
        // SAFETY: The caller's guarantee.
        let whole = unsafe { Mdl::for_nonpaged(base, capacity)? };
        // INVARIANT: `whole` describes the buffer; no chain yet.
        Ok(Self {
            base,
            capacity,
            whole,
            partials: [const { None }; MAX_SEGMENTS as usize],
            chain: 0,
        })
    }

    /// Rebuilds the chain over the first bytes of the buffer, split into `lengths`, and returns
    /// its first MDL.
    ///
    /// # Errors
    /// `STATUS_INVALID_BUFFER_SIZE` if the lengths are none, more than [`MAX_SEGMENTS`], zero,
    /// or run past the buffer; `STATUS_INSUFFICIENT_RESOURCES` if a partial MDL cannot be
    /// allocated. The chain is empty then.
    ///
    /// The caller must own the buffer exclusively: no send of the previous chain may be in
    /// flight.
    pub(crate) fn build_chain(
        &mut self,
        lengths: impl IntoIterator<Item = u32>,
    ) -> Result<*mut MDL, NTSTATUS> {
        self.chain = 0;
        let mut offset: u32 = 0;
        for length in lengths {
            let end = offset
                .checked_add(length)
                .filter(|end| length > 0 && *end <= self.capacity)
                .ok_or(STATUS_INVALID_BUFFER_SIZE)?;
            let slot = self
                .partials
                .get_mut(self.chain)
                .ok_or(STATUS_INVALID_BUFFER_SIZE)?;
            if slot.is_none() {
                // SAFETY: `capacity` > 0 (type invariant); the partial is built only over ranges
                // of this buffer.
                *slot = Some(unsafe { Mdl::sized_for(self.base, self.capacity)? });
            }
            let Some(partial) = slot.as_ref() else {
                return Err(STATUS_INSUFFICIENT_RESOURCES);
            };
            let start = self.base.wrapping_add(offset as usize);
            // SAFETY: `offset..end` is a non-empty range inside the buffer (checked above), which
            // `whole` describes and every partial was sized for.
            unsafe { partial.build_partial(self.whole.ptr, start, length)? };
            self.chain = self.chain.saturating_add(1);
            offset = end;
        }
        if self.chain == 0 {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        self.link();
        // INVARIANT: `chain` partials built over consecutive pieces and linked.
        Ok(self.head())
    }

    fn link(&self) {
        let mut next: *mut MDL = core::ptr::null_mut();
        for mdl in self.partials.iter().take(self.chain).rev().flatten() {
            // SAFETY: A live MDL owned here; no send of it is in flight (build_chain's contract).
            unsafe {
                (*mdl.ptr.as_ptr()).Next = next;
            }
            next = mdl.ptr.as_ptr();
        }
    }

    /// The chain's first MDL (null before a chain was built).
    pub(crate) fn head(&self) -> *mut MDL {
        if self.chain == 0 {
            return core::ptr::null_mut();
        }
        self.partials
            .first()
            .and_then(Option::as_ref)
            .map_or(core::ptr::null_mut(), |mdl| mdl.ptr.as_ptr())
    }

    /// MDLs in the chain.
    pub(crate) const fn len(&self) -> usize {
        self.chain
    }

    /// Each chained MDL's `ByteCount`, in order.
    pub(crate) fn byte_counts(&self) -> impl Iterator<Item = u32> + '_ {
        self.partials.iter().take(self.chain).flatten().map(|mdl| {
            // SAFETY: A live MDL owned by this value.
            unsafe { (*mdl.ptr.as_ptr()).ByteCount }
        })
    }
}

/// The partial MDLs of a `SEND_DIRECT`, one per segment, over the caller's buffer the I/O
/// manager locked (`Irp->MdlAddress`): allocated per request, each sized for its own range,
/// and freed (`IoFreeMdl` releases a mapping the stack made) when the request's last send
/// completed. A single segment needs
/// none: the request's MDL itself is the chain.
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Invariants
/// `source` is the request's locked MDL, valid until the request completes, after this value
/// is dropped; `partials[..chain]` describe consecutive ranges of its buffer, linked.
pub(crate) struct DirectMdls {
    source: NonNull<MDL>,
    partials: [Option<Mdl>; MAX_SEGMENTS as usize],
    chain: usize,
}

#[allow(
    clippy::non_send_fields_in_send_ty,
    reason = "MDLs are not tied to a thread"
)]
// SAFETY: MDLs over locked pages may be used from any thread; the owner serializes writes.
unsafe impl Send for DirectMdls {}
// SAFETY: Shared access only reads the MDLs.
unsafe impl Sync for DirectMdls {}

impl DirectMdls {
    /// The chain over `source`'s buffer, split into `lengths` (none: `source` alone).
    ///
    /// # Errors
    /// `STATUS_INVALID_BUFFER_SIZE` if the lengths do not add up to the buffer's;
    /// `STATUS_INSUFFICIENT_RESOURCES` if a partial MDL cannot be allocated.
    ///
    /// # Safety
    /// `source` must be the locked MDL of a request this driver completes only after this value
    /// is dropped.
    pub(crate) unsafe fn new(
        source: NonNull<MDL>,
        lengths: impl IntoIterator<Item = u32>,
    ) -> Result<Self, NTSTATUS> {
        let mdl = source.as_ptr();
        let (start_va, byte_offset, total);
        // SAFETY: A locked MDL (caller's guarantee): its header is readable.
        unsafe {
            start_va = (*mdl).StartVa;
        }
        // SAFETY: As above.
        unsafe {
            byte_offset = (*mdl).ByteOffset;
        }
        // SAFETY: As above.
        unsafe {
            total = (*mdl).ByteCount;
        }
        // MmGetMdlVirtualAddress: the caller's buffer starts ByteOffset into StartVa's page.
        let start = start_va
            .cast::<u8>()
            .wrapping_add(byte_offset as usize)
            .cast_const();
        let mut mdls = Self {
            source,
            partials: [const { None }; MAX_SEGMENTS as usize],
            chain: 0,
        };
        let mut offset: u32 = 0;
        for length in lengths {
            let end = offset
                .checked_add(length)
                .filter(|end| length > 0 && *end <= total)
                .ok_or(STATUS_INVALID_BUFFER_SIZE)?;
            let slot = mdls
                .partials
                .get_mut(mdls.chain)
                .ok_or(STATUS_INVALID_BUFFER_SIZE)?;
            let piece = start.wrapping_add(offset as usize);
            // SAFETY: `length` > 0; built only over this piece.
            let partial = unsafe { Mdl::sized_for(piece, length)? };
            // SAFETY: The piece lies in the source's locked buffer (checked against its
            // ByteCount) and is exactly what `partial` was sized for.
            unsafe { partial.build_partial(source, piece, length)? };
            *slot = Some(partial);
            mdls.chain = mdls.chain.saturating_add(1);
            offset = end;
        }
        if mdls.chain > 0 && offset != total {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        let mut next: *mut MDL = core::ptr::null_mut();
        for mdl in mdls.partials.iter().take(mdls.chain).rev().flatten() {
            // SAFETY: A live MDL owned here, not in flight yet.
            unsafe {
                (*mdl.ptr.as_ptr()).Next = next;
            }
            next = mdl.ptr.as_ptr();
        }
        // INVARIANT: `chain` partials over consecutive pieces, linked; or none.
        Ok(mdls)
    }

    /// The chain's first MDL: the first partial, or the request's MDL itself.
    pub(crate) fn head(&self) -> *mut MDL {
        self.partials
            .first()
            .and_then(Option::as_ref)
            .filter(|_| self.chain > 0)
            .map_or(self.source.as_ptr(), |mdl| mdl.ptr.as_ptr())
    }
}
