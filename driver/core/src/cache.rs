//! Objects built once and kept for reuse: a lookaside list the driver owns.
//!
//! The kernel's own lookaside lists (`ExInitializeLookasideListEx`) hand back raw memory; what
//! the send path reuses is more than memory: an IRP already allocated, MDLs already built over
//! their buffer. A [`Cache`] keeps such objects whole. [`Cache::take`] pops one, or builds a new
//! one when none is free (an allocation, counted like any other); [`Cache::give`] pushes it back,
//! or frees it once `depth` objects are kept. So once a socket has sent at its peak depth, the
//! send path allocates nothing (msquic's per-processor pools, `datapath_winkernel.c`, keep their
//! MDLs pre-built the same way).
//!
//! IRQL: <= `DISPATCH_LEVEL` for every operation (a spin lock, non-paged pool).

use core::cell::UnsafeCell;
use core::ops::Deref;
use core::ptr::NonNull;

use crate::ddi::nt::NTSTATUS;
use crate::pool::{PoolBox, PoolTag};
use crate::sync::SpinLock;

/// One cached object and the link the cache chains free objects through.
///
/// # Invariants
/// `next` is read and written only by the cache holding the node free, under its lock.
pub(crate) struct Node<T> {
    value: T,
    next: UnsafeCell<Option<NonNull<Self>>>,
}

// SAFETY: `next` is only touched under the owning cache's lock (type invariant); the value is
// shared as a `T`.
unsafe impl<T: Sync> Sync for Node<T> {}
// SAFETY: As above.
unsafe impl<T: Send> Send for Node<T> {}

impl<T> Deref for Node<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// An object taken from a [`Cache`], to be given back to the same cache.
pub(crate) type Pooled<T> = PoolBox<Node<T>>;

/// The free objects, newest first.
struct Free<T> {
    head: Option<NonNull<Node<T>>>,
    len: usize,
}

/// A stack of free objects, at most `depth` of them kept.
///
/// # Invariants
/// Every node on the stack came from `PoolBox::into_raw` with `tag` and is owned by the cache.
pub(crate) struct Cache<T> {
    free: SpinLock<Free<T>>,
    depth: usize,
    tag: PoolTag,
}

#[allow(
    clippy::non_send_fields_in_send_ty,
    reason = "the node pointers are owned nodes, reached only under the lock"
)]
// SAFETY: The cache owns its free nodes; moving it moves owned `T`s.
unsafe impl<T: Send> Send for Cache<T> {}
// SAFETY: The free nodes are reached only under the spin lock.
unsafe impl<T: Send> Sync for Cache<T> {}

impl<T> Cache<T> {
    /// An empty cache keeping at most `depth` objects, allocated with `tag`.
    pub(crate) const fn new(depth: usize, tag: PoolTag) -> Self {
        Self {
            free: SpinLock::new(Free { head: None, len: 0 }),
            depth,
            tag,
        }
    }

    /// A free object, or a new one from `build` when none is free.
    ///
    /// # Errors
    /// `build`'s error, or `STATUS_INSUFFICIENT_RESOURCES` if the node cannot be allocated.
    pub(crate) fn take(
        &self,
        build: impl FnOnce() -> Result<T, NTSTATUS>,
    ) -> Result<Pooled<T>, NTSTATUS> {
        if let Some(node) = self.pop() {
            return Ok(node);
        }
        PoolBox::try_new(
            Node {
                value: build()?,
                next: UnsafeCell::new(None),
            },
            self.tag,
        )
    }

    /// A free object, if one is kept. Never allocates.
    pub(crate) fn pop(&self) -> Option<Pooled<T>> {
        let mut free = self.free.lock_exclusive();
        let head = free.head?;
        // SAFETY: `head` is a free node owned by the cache (type invariant).
        let link = unsafe { head.as_ref() }.next.get();
        // SAFETY: Its link, read under the lock.
        free.head = unsafe { *link };
        free.len = free.len.saturating_sub(1);
        drop(free);
        // SAFETY: The node left the stack here, once: ownership returns to the caller.
        Some(unsafe { PoolBox::from_raw(head, self.tag) })
    }

    /// Keeps `object` for the next [`Cache::take`], or frees it if `depth` are kept already.
    pub(crate) fn give(&self, object: Pooled<T>) {
        let mut free = self.free.lock_exclusive();
        if free.len >= self.depth {
            drop(free);
            drop(object);
            return;
        }
        let node = PoolBox::into_raw(object);
        // SAFETY: The node is ours (just given up by the caller) and not on the stack.
        let link = unsafe { node.as_ref() }.next.get();
        // SAFETY: Its link, written under the lock.
        unsafe { *link = free.head };
        // INVARIANT: the node came from `into_raw` and now belongs to the cache.
        free.head = Some(node);
        free.len = free.len.saturating_add(1);
    }

    /// Builds objects until `count` are kept (or `depth`), e.g. when a socket opens.
    ///
    /// # Errors
    /// As [`Cache::take`]; the objects built so far stay kept.
    pub(crate) fn fill(
        &self,
        count: usize,
        mut build: impl FnMut() -> Result<T, NTSTATUS>,
    ) -> Result<(), NTSTATUS> {
        while self.kept() < count.min(self.depth) {
            let node = PoolBox::try_new(
                Node {
                    value: build()?,
                    next: UnsafeCell::new(None),
                },
                self.tag,
            )?;
            self.give(node);
        }
        Ok(())
    }

    /// Objects kept free right now.
    pub(crate) fn kept(&self) -> usize {
        self.free.lock_shared().len
    }
}

impl<T> Drop for Cache<T> {
    fn drop(&mut self) {
        while let Some(node) = self.pop() {
            drop(node);
        }
    }
}
