//! Per-handle state: what a front door keeps with each open file object of the device.
//!
//! Sockets belong to the handle that opened them. A handle is identified by a number the
//! driver assigns when the handle is opened and never reuses, not by its file object's
//! address: a file object is freed at `IRP_MJ_CLOSE`, and the next one may be allocated at
//! the same address. Cleanup marks the handle closed before closing its sockets, and a socket
//! is published only if its handle is still open, both under the socket table's lock, so a
//! socket opened by a request that races the handle's cleanup is closed, never orphaned.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use zerocopy::FromZeros;

use crate::stats::Gauge;

/// One open handle's state, kept by the front door: in a KMDF file object context (zeroed by
/// the framework), in `FILE_OBJECT::FsContext` (WDM), or by the harness.
///
/// IRQL: any for every operation.
///
/// A front door keeps it alive until every request dispatched through the handle has
/// completed (a file object outlives its IRPs: `IRP_MJ_CLOSE` comes after the last one).
///
/// # Invariants
/// `id` is 0 until [`crate::Driver::open_handle`] assigned a nonzero number unique to this
/// driver's lifetime; `cleaned_up` only goes from `false` to `true`, under the socket table's
/// exclusive lock.
#[derive(FromZeros, Debug, Default)]
pub struct HandleState {
    id: AtomicU64,
    cleaned_up: AtomicBool,
    /// `SEND` requests in flight through this handle.
    pub(crate) sends: Gauge,
}

impl HandleState {
    /// A handle not opened yet (all zero, as a WDF context starts).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            id: AtomicU64::new(0),
            cleaned_up: AtomicBool::new(false),
            sends: Gauge::new(),
        }
    }

    /// The handle's number, 0 if it was never opened.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id.load(Ordering::Acquire)
    }

    pub(crate) fn assign(&self, id: u64) {
        self.id.store(id, Ordering::Release);
    }

    /// Whether the handle's cleanup has begun.
    #[must_use]
    pub fn is_cleaned_up(&self) -> bool {
        self.cleaned_up.load(Ordering::Acquire)
    }

    /// Marks the handle cleaned up. Called with the socket table's exclusive lock held.
    pub(crate) fn mark_cleaned_up(&self) {
        self.cleaned_up.store(true, Ordering::Release);
    }
}
