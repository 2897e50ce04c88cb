//! Memory descriptor lists over non-paged pool.

use core::ptr::NonNull;

use wskudp_abi::MAX_SEGMENTS;

use crate::ddi::nt::{IoAllocateMdl, IoFreeMdl, MDL, MmBuildMdlForNonPagedPool, NTSTATUS};
use crate::status::{STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_BUFFER_SIZE};

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
        // SAFETY: 1. `ptr` is a fresh MDL describing non-paged pool (caller's guarantee);
        //         2. MmBuildMdlForNonPagedPool may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            MmBuildMdlForNonPagedPool(ptr.as_ptr());
        }
        // INVARIANT: a live MDL from IoAllocateMdl over pool the caller keeps allocated.
        Ok(Self { ptr })
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

/// A chain of MDLs (linked through `MDL::Next`) over consecutive pieces of one buffer: the
/// data of one `WSK_BUF`.
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Invariants
/// `mdls[..len]` are `Some`, the rest `None`; each links to the next through `MDL::Next`
/// and the last one's `Next` is null.
pub(crate) struct MdlChain {
    mdls: [Option<Mdl>; MAX_SEGMENTS as usize],
    len: usize,
}

impl MdlChain {
    /// Splits `buffer` into MDLs of the given lengths, in order.
    ///
    /// # Errors
    /// `STATUS_INVALID_BUFFER_SIZE` if the lengths are empty, more than
    /// [`MAX_SEGMENTS`], zero, or do not add up to `buffer.len()`;
    /// `STATUS_INSUFFICIENT_RESOURCES` if an MDL cannot be allocated (those built so far are
    /// freed).
    ///
    /// # Safety
    /// `buffer` must be non-paged pool that stays allocated and unchanged until the chain is
    /// dropped.
    pub(crate) unsafe fn build(
        buffer: &[u8],
        lengths: impl IntoIterator<Item = u32>,
    ) -> Result<Self, NTSTATUS> {
        let mut chain = Self {
            mdls: [const { None }; MAX_SEGMENTS as usize],
            len: 0,
        };
        let mut rest = buffer;
        for length in lengths {
            let (piece, tail) = rest
                .split_at_checked(length as usize)
                .ok_or(STATUS_INVALID_BUFFER_SIZE)?;
            if piece.is_empty() {
                return Err(STATUS_INVALID_BUFFER_SIZE);
            }
            let slot = chain
                .mdls
                .get_mut(chain.len)
                .ok_or(STATUS_INVALID_BUFFER_SIZE)?;
            // SAFETY: `piece` is a non-empty part of `buffer`, which the caller keeps
            // allocated as non-paged pool for the chain's lifetime.
            let mdl = unsafe { Mdl::for_nonpaged(piece.as_ptr(), length)? };
            *slot = Some(mdl);
            chain.len = chain.len.saturating_add(1);
            rest = tail;
        }
        if chain.len == 0 || !rest.is_empty() {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        chain.link();
        // INVARIANT: `len` slots filled in order and linked; the rest stay None.
        Ok(chain)
    }

    fn link(&self) {
        let mut next: *mut MDL = core::ptr::null_mut();
        for mdl in self.mdls.iter().rev().flatten() {
            // SAFETY: `mdl` is a live MDL owned by this chain; nothing else reads it yet.
            unsafe {
                (*mdl.ptr.as_ptr()).Next = next;
            }
            next = mdl.ptr.as_ptr();
        }
    }

    /// The first MDL, for `WSK_BUF::Mdl`.
    #[must_use]
    pub(crate) fn head(&self) -> *mut MDL {
        self.mdls
            .first()
            .and_then(Option::as_ref)
            .map_or(core::ptr::null_mut(), |mdl| mdl.ptr.as_ptr())
    }

    /// Number of MDLs.
    #[must_use]
    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    /// Each MDL's `ByteCount`, in chain order.
    pub(crate) fn byte_counts(&self) -> impl Iterator<Item = u32> + '_ {
        self.mdls.iter().flatten().map(|mdl| {
            // SAFETY: `mdl` is a live MDL owned by this chain.
            unsafe { (*mdl.ptr.as_ptr()).ByteCount }
        })
    }
}
