//! Non-paged pool ownership.

use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::ddi::nt::{
    ExAllocatePool2, ExFreePoolWithTag, NTSTATUS, POOL_FLAG_NON_PAGED, POOL_FLAG_UNINITIALIZED,
};
use crate::status::{STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_BUFFER_SIZE};

/// A pool tag; reads as its four characters in `WinDbg`'s `!poolused`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolTag(pub u32);

impl PoolTag {
    /// Builds a tag from its four characters, in the order `!poolused` shows them.
    #[must_use]
    pub const fn new(name: [u8; 4]) -> Self {
        Self(u32::from_ne_bytes(name))
    }
}

/// The driver state ([`crate::Driver`]).
pub const TAG_DRIVER: PoolTag = PoolTag::new(*b"WkuD");
/// One open socket's bookkeeping.
pub const TAG_SOCKET: PoolTag = PoolTag::new(*b"WkuS");
/// One `SEND` request's shared state (payload copy, control buffer, address).
pub const TAG_BATCH: PoolTag = PoolTag::new(*b"WkuB");
/// One datagram in flight (MDL chain, IRP handle).
pub const TAG_DATAGRAM: PoolTag = PoolTag::new(*b"WkuX");
/// A payload copy.
pub const TAG_PAYLOAD: PoolTag = PoolTag::new(*b"WkuP");
/// The event of a call reserved ahead of time (a socket's close).
pub const TAG_CALL: PoolTag = PoolTag::new(*b"WkuC");
/// A pooled send context (its IRP, `WSK_BUF_LIST` entries).
pub const TAG_UNIT: PoolTag = PoolTag::new(*b"WkuU");
/// A pooled payload buffer and its MDLs.
pub const TAG_BUFFER: PoolTag = PoolTag::new(*b"WkuM");

/// `MEMORY_ALLOCATION_ALIGNMENT` on x64: what every pool block is aligned to.
const POOL_ALIGNMENT: usize = 16;

/// Blocks and bytes of pool this driver holds right now (for `QUERY_STATS`).
static BLOCKS_IN_USE: AtomicU64 = AtomicU64::new(0);
static BYTES_IN_USE: AtomicU64 = AtomicU64::new(0);
/// Blocks the driver ever allocated: what `BENCH` reports per datagram.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Pool blocks this driver allocated since it loaded. IRQL: any.
#[must_use]
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// `(blocks, bytes)` of pool the driver holds now, across every tag. IRQL: any.
#[must_use]
pub fn in_use() -> (u64, u64) {
    (
        BLOCKS_IN_USE.load(Ordering::Relaxed),
        BYTES_IN_USE.load(Ordering::Relaxed),
    )
}

fn allocate(size: usize, tag: PoolTag) -> Result<NonNull<u8>, NTSTATUS> {
    allocate_with(POOL_FLAG_NON_PAGED, size, tag)
}

fn allocate_with(flags: u64, size: usize, tag: PoolTag) -> Result<NonNull<u8>, NTSTATUS> {
    let raw;
    // SAFETY: ExAllocatePool2 may be called at IRQL <= DISPATCH_LEVEL for non-paged pool,
    // which every caller of this module documents as its bound.
    unsafe {
        raw = ExAllocatePool2(flags, size, tag.0);
    }
    let block = NonNull::new(raw.cast::<u8>()).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    BLOCKS_IN_USE.fetch_add(1, Ordering::Relaxed);
    BYTES_IN_USE.fetch_add(size as u64, Ordering::Relaxed);
    Ok(block)
}

/// # Safety
/// `ptr` must come from [`allocate`] with the same `size` and `tag` and not have been freed.
unsafe fn free(ptr: NonNull<u8>, size: usize, tag: PoolTag) {
    BLOCKS_IN_USE.fetch_sub(1, Ordering::Relaxed);
    BYTES_IN_USE.fetch_sub(size as u64, Ordering::Relaxed);
    // SAFETY: 1. `ptr` is a live pool block allocated with `tag` (caller's guarantee);
    //         2. non-paged pool may be freed at IRQL <= DISPATCH_LEVEL.
    unsafe {
        ExFreePoolWithTag(ptr.as_ptr().cast(), tag.0);
    }
}

/// A `T` in its own tagged non-paged pool block (`NonPagedPoolNx`).
///
/// Only shared access is offered: the value never moves once placed, so it may hold objects
/// the kernel keeps pointers to (a `WSK_REGISTRATION`, a `KEVENT`); mutation goes through
/// interior mutability.
///
/// IRQL: <= `DISPATCH_LEVEL` for every operation, including drop.
///
/// # Invariants
/// `ptr` points to a live pool block allocated with `tag`, holding an initialized `T`, owned
/// by this value alone.
pub struct PoolBox<T> {
    ptr: NonNull<T>,
    tag: PoolTag,
}

// SAFETY: A PoolBox owns its T like a Box does; sending it sends the T.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: A PoolBox only hands out &T; sharing it shares the T.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    const ALIGNMENT_OK: () = assert!(align_of::<T>() <= POOL_ALIGNMENT);

    /// Moves `value` into a new pool block.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` if the pool is exhausted; `value` is dropped.
    pub fn try_new(value: T, tag: PoolTag) -> Result<Self, NTSTATUS> {
        Self::try_place(value, tag).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)
    }

    /// Like [`PoolBox::try_new`], but gives `value` back when the pool is exhausted, for
    /// values that must not be dropped unhandled (a request still to be completed).
    ///
    /// # Errors
    /// `value`, if the block cannot be allocated.
    pub fn try_place(value: T, tag: PoolTag) -> Result<Self, T> {
        let () = Self::ALIGNMENT_OK;
        let Ok(ptr) = allocate(size_of::<T>().max(1), tag) else {
            return Err(value);
        };
        let ptr = ptr.cast::<T>();
        // SAFETY: `ptr` is a fresh block of at least size_of::<T>() bytes, aligned to 16
        // >= align_of::<T>() (checked at compile time above).
        unsafe {
            ptr.as_ptr().write(value);
        }
        // INVARIANT: the block is live, tagged `tag`, and now holds an initialized T.
        Ok(Self { ptr, tag })
    }

    /// A zeroed `T` in a new pool block, built in place: large tables never pass through a
    /// kernel stack (12-24 KiB; frames above a page would also need `__chkstk`, which
    /// ntoskrnl does not export). `FromZeros` proves all-zero is a valid `T`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` if the pool is exhausted.
    pub fn try_new_zeroed(tag: PoolTag) -> Result<Self, NTSTATUS>
    where
        T: zerocopy::FromZeros,
    {
        let () = Self::ALIGNMENT_OK;
        // ExAllocatePool2 zeroes the block (no POOL_FLAG_UNINITIALIZED).
        let ptr = allocate(size_of::<T>().max(1), tag)?.cast::<T>();
        // INVARIANT: the block is live, tagged, and all-zero, which `FromZeros` guarantees is
        // an initialized T.
        Ok(Self { ptr, tag })
    }

    /// Gives up ownership, e.g. as an IRP completion context (Rust-for-Linux's
    /// `into_foreign`). The block is leaked unless [`PoolBox::from_raw`] takes it back.
    #[must_use]
    pub const fn into_raw(this: Self) -> NonNull<T> {
        let ptr = this.ptr;
        core::mem::forget(this);
        ptr
    }

    /// Takes back ownership given up with [`PoolBox::into_raw`].
    ///
    /// # Safety
    /// `ptr` must come from `into_raw` on a `PoolBox<T>` allocated with `tag`, and no other
    /// `from_raw` may have been called for it.
    #[must_use]
    pub const unsafe fn from_raw(ptr: NonNull<T>, tag: PoolTag) -> Self {
        // INVARIANT: restored from `into_raw` (caller's guarantee).
        Self { ptr, tag }
    }

    /// The value, pinned: a `PoolBox` never moves its value and hands out no `&mut T`.
    #[must_use]
    pub fn as_pin(this: &Self) -> core::pin::Pin<&T> {
        // SAFETY: The value stays at `ptr` until the box is dropped and cannot be moved out
        // (no `&mut T` is ever handed out), which is the pinning guarantee.
        unsafe { core::pin::Pin::new_unchecked(&**this) }
    }

    /// The value's address, stable for the box's lifetime.
    #[must_use]
    pub const fn as_ptr(this: &Self) -> *mut T {
        this.ptr.as_ptr()
    }
}

impl<T> Deref for PoolBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: By the type invariant `ptr` holds an initialized T owned by this box.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the T is initialized and owned here; it is dropped
        // exactly once, before its block is freed.
        unsafe {
            self.ptr.as_ptr().drop_in_place();
        }
        // SAFETY: By the type invariant the block came from `allocate` with `self.tag`.
        unsafe {
            free(self.ptr.cast(), size_of::<T>().max(1), self.tag);
        }
    }
}

/// A byte buffer in its own tagged non-paged pool block, e.g. a payload copy an MDL chain
/// describes.
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Invariants
/// `ptr` points to a live pool block of `len` >= 1 initialized bytes allocated with `tag`,
/// owned by this value alone.
pub struct PoolBytes {
    ptr: NonNull<u8>,
    len: usize,
    tag: PoolTag,
}

// SAFETY: PoolBytes owns plain bytes.
unsafe impl Send for PoolBytes {}
// SAFETY: PoolBytes only hands out &[u8].
unsafe impl Sync for PoolBytes {}

impl PoolBytes {
    /// Copies `bytes` into a new pool block.
    ///
    /// # Errors
    /// `STATUS_INVALID_BUFFER_SIZE` if `bytes` is empty (no MDL can describe it),
    /// `STATUS_INSUFFICIENT_RESOURCES` if the pool is exhausted.
    pub fn try_copy_from(bytes: &[u8], tag: PoolTag) -> Result<Self, NTSTATUS> {
        if bytes.is_empty() {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        let ptr = allocate(bytes.len(), tag)?;
        // SAFETY: `ptr` is a fresh block of `bytes.len()` bytes that cannot overlap `bytes`.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len());
        }
        // INVARIANT: the block is live, tagged, and all `len` bytes are initialized.
        Ok(Self {
            ptr,
            len: bytes.len(),
            tag,
        })
    }
}

impl Deref for PoolBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: By the type invariant `ptr` holds `len` initialized bytes owned here.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PoolBytes {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the block came from `allocate` with `self.tag`.
        unsafe {
            free(self.ptr, self.len, self.tag);
        }
    }
}

/// A block of pool left as the allocator hands it out (`POOL_FLAG_UNINITIALIZED`).
///
/// For buffers written before anything reads them: the pool does not zero what is overwritten
/// anyway. It never hands out a Rust reference to its bytes: its owner writes and tracks how
/// much it wrote.
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Invariants
/// `ptr` points to a live non-paged pool block of `len` >= 1 bytes allocated with `tag`, owned
/// by this value alone.
pub struct RawBlock {
    ptr: NonNull<u8>,
    len: usize,
    tag: PoolTag,
}

// SAFETY: RawBlock owns plain bytes.
unsafe impl Send for RawBlock {}
// SAFETY: RawBlock hands out only its address.
unsafe impl Sync for RawBlock {}

impl RawBlock {
    /// `len` bytes, not zeroed.
    ///
    /// # Errors
    /// `STATUS_INVALID_BUFFER_SIZE` if `len` is zero, `STATUS_INSUFFICIENT_RESOURCES` if the
    /// pool is exhausted.
    pub fn try_uninit(len: usize, tag: PoolTag) -> Result<Self, NTSTATUS> {
        if len == 0 {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        let ptr = allocate_with(POOL_FLAG_NON_PAGED | POOL_FLAG_UNINITIALIZED, len, tag)?;
        // INVARIANT: a fresh live block of `len` bytes, tagged `tag`.
        Ok(Self { ptr, len, tag })
    }

    /// The block's first byte.
    #[must_use]
    pub const fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Its size.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Never: a block has at least one byte.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for RawBlock {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the block came from `allocate_with` with `self.tag`.
        unsafe {
            free(self.ptr, self.len, self.tag);
        }
    }
}
