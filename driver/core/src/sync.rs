//! Kernel synchronization objects: events, executive spin locks, rundown protection.

use core::cell::UnsafeCell;
use core::marker::{PhantomData, PhantomPinned};
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::ddi::nt::{
    EX_RUNDOWN_REF, ExAcquireRundownProtection, ExAcquireSpinLockExclusive,
    ExAcquireSpinLockShared, ExInitializeRundownProtection, ExReleaseRundownProtection,
    ExReleaseSpinLockExclusive, ExReleaseSpinLockShared, ExWaitForRundownProtectionRelease,
    Executive, KEVENT, KeInitializeEvent, KeSetEvent, KeWaitForSingleObject, KernelMode,
    NotificationEvent, SynchronizationEvent,
};

/// `KernelMode` as the `KPROCESSOR_MODE` (`CCHAR`) wait argument.
const KERNEL_MODE: i8 = 0;
const _: () = assert!(KernelMode == 0);

/// Which kind of `KEVENT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Stays signaled until cleared (`NotificationEvent`).
    Notification,
    /// Releases one waiter and resets (`SynchronizationEvent`).
    Synchronization,
}

/// A `KEVENT`. It must be initialized in place with [`Event::init`] and must not move after,
/// because the kernel links waiters to it.
///
/// # Invariants
/// Once `init` ran on the pinned value, `inner` is an initialized `KEVENT`.
pub struct Event {
    inner: UnsafeCell<KEVENT>,
    _pin: PhantomPinned,
}

// SAFETY: A KEVENT is designed to be signaled and waited on from any thread.
unsafe impl Sync for Event {}
// SAFETY: As above; an Event owns no thread-affine state (its wait list pointers belong to
// the kernel, not to a thread).
#[allow(clippy::non_send_fields_in_send_ty)]
unsafe impl Send for Event {}

impl Event {
    /// Zeroed storage; call [`Event::init`] once it is at its final address.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            // SAFETY: KEVENT is plain data for which all-zero is a valid (uninitialized) value.
            inner: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            _pin: PhantomPinned,
        }
    }

    /// `KeInitializeEvent`.
    ///
    /// IRQL: any (the event is resident: on a stack or in non-paged pool).
    pub fn init(self: Pin<&Self>, kind: EventKind, signaled: bool) {
        let kind = match kind {
            EventKind::Notification => NotificationEvent,
            EventKind::Synchronization => SynchronizationEvent,
        };
        // SAFETY: 1. the event is pinned, so its address stays valid for its lifetime;
        //         2. KeInitializeEvent may be called at any IRQL on resident storage.
        unsafe {
            KeInitializeEvent(self.inner.get(), kind, signaled);
        }
    }

    /// `KeSetEvent(.., IO_NO_INCREMENT, FALSE)`.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    pub fn set(&self) {
        // SAFETY: 1. the event was initialized (type invariant; callers init before sharing);
        //         2. with Wait = FALSE, KeSetEvent may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            KeSetEvent(self.inner.get(), 0, false);
        }
    }

    /// `KeWaitForSingleObject(.., Executive, KernelMode, FALSE, NULL)`: waits without timeout.
    ///
    /// IRQL: <= `APC_LEVEL`.
    pub fn wait(&self) {
        // SAFETY: 1. the event is initialized and resident;
        //         2. an infinite wait is allowed at IRQL <= APC_LEVEL, the caller's bound.
        // The only possible result of a non-alertable kernel-mode wait with no timeout is
        // STATUS_SUCCESS.
        unsafe {
            KeWaitForSingleObject(
                self.inner.get().cast_const().cast(),
                Executive,
                KERNEL_MODE,
                false,
                core::ptr::null(),
            );
        }
    }
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

/// Data behind an executive spin lock (`EX_SPIN_LOCK`), with reader/writer guards. All-zero
/// is a released lock, so a zeroed `SpinLock<T: FromZeros>` is valid.
///
/// IRQL: acquiring raises to `DISPATCH_LEVEL` (callers must be at <= `DISPATCH_LEVEL`);
/// dropping the guard restores the caller's IRQL. Hold it only for short, non-blocking work.
#[derive(zerocopy::FromZeros)]
pub struct SpinLock<T> {
    lock: UnsafeCell<i32>,
    data: UnsafeCell<T>,
}

// SAFETY: Access to `data` is serialized by the lock (exclusive) or limited to shared reads.
unsafe impl<T: Send> Send for SpinLock<T> {}
// SAFETY: As above; shared guards hand out only &T, so T must be Sync.
unsafe impl<T: Send + Sync> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A released lock around `data` (an `EX_SPIN_LOCK` is initialized by zeroing it).
    pub const fn new(data: T) -> Self {
        Self {
            lock: UnsafeCell::new(0),
            data: UnsafeCell::new(data),
        }
    }

    /// `ExAcquireSpinLockExclusive`.
    pub fn lock_exclusive(&self) -> ExclusiveGuard<'_, T> {
        let old_irql;
        // SAFETY: 1. `lock` is a valid EX_SPIN_LOCK for the lifetime of `self`;
        //         2. the caller is at IRQL <= DISPATCH_LEVEL (type contract).
        unsafe {
            old_irql = ExAcquireSpinLockExclusive(self.lock.get());
        }
        ExclusiveGuard {
            lock: self,
            old_irql,
            _not_send: PhantomData,
        }
    }

    /// `ExAcquireSpinLockShared`.
    pub fn lock_shared(&self) -> SharedGuard<'_, T> {
        let old_irql;
        // SAFETY: As in `lock_exclusive`.
        unsafe {
            old_irql = ExAcquireSpinLockShared(self.lock.get());
        }
        SharedGuard {
            lock: self,
            old_irql,
            _not_send: PhantomData,
        }
    }
}

/// Exclusive access; releases the lock and restores the IRQL when dropped.
#[must_use = "the lock unlocks immediately when the guard is unused"]
pub struct ExclusiveGuard<'a, T> {
    lock: &'a SpinLock<T>,
    old_irql: u8,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for ExclusiveGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: The exclusive lock is held for the guard's lifetime.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for ExclusiveGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: The exclusive lock is held for the guard's lifetime, and the guard is
        // borrowed mutably.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for ExclusiveGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: This guard acquired the lock exclusively at `old_irql`.
        unsafe {
            ExReleaseSpinLockExclusive(self.lock.lock.get(), self.old_irql);
        }
    }
}

/// Shared access; releases the lock and restores the IRQL when dropped.
#[must_use = "the lock unlocks immediately when the guard is unused"]
pub struct SharedGuard<'a, T> {
    lock: &'a SpinLock<T>,
    old_irql: u8,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for SharedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: The lock is held shared: no exclusive holder can mutate `data`.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for SharedGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: This guard acquired the lock shared at `old_irql`.
        unsafe {
            ExReleaseSpinLockShared(self.lock.lock.get(), self.old_irql);
        }
    }
}

/// Rundown protection (`EX_RUNDOWN_REF`): references that a closer waits out.
///
/// # Invariants
/// Once `init` ran on the pinned value, `inner` is an initialized `EX_RUNDOWN_REF`.
pub struct Rundown {
    inner: UnsafeCell<EX_RUNDOWN_REF>,
    _pin: PhantomPinned,
}

// SAFETY: Rundown references are designed to be taken and released from any thread.
unsafe impl Sync for Rundown {}
// SAFETY: As above; the pointer-sized union is a counter, not a thread-owned pointer.
#[allow(clippy::non_send_fields_in_send_ty)]
unsafe impl Send for Rundown {}

impl Rundown {
    /// Zeroed storage; call [`Rundown::init`] once it is at its final address.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            // SAFETY: EX_RUNDOWN_REF is a pointer-sized integer union; zero is valid.
            inner: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            _pin: PhantomPinned,
        }
    }

    /// `ExInitializeRundownProtection`.
    ///
    /// IRQL: any.
    pub fn init(self: Pin<&Self>) {
        // SAFETY: The storage is pinned and resident; the DDI has no IRQL bound.
        unsafe {
            ExInitializeRundownProtection(self.inner.get());
        }
    }

    /// `ExAcquireRundownProtection`: `false` once [`Rundown::wait`] has begun.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    #[must_use]
    pub fn try_acquire(&self) -> bool {
        let acquired;
        // SAFETY: The rundown is initialized (type invariant); the DDI allows <= DISPATCH.
        unsafe {
            acquired = ExAcquireRundownProtection(self.inner.get());
        }
        acquired
    }

    /// `ExReleaseRundownProtection`.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Safety
    /// The caller must own a reference taken with [`Rundown::try_acquire`], and gives it up.
    pub unsafe fn release(&self) {
        // SAFETY: The caller owns one reference (precondition); the DDI allows <= DISPATCH.
        unsafe {
            ExReleaseRundownProtection(self.inner.get());
        }
    }

    /// `ExWaitForRundownProtectionRelease`: refuses new references and waits for the
    /// outstanding ones.
    ///
    /// IRQL: <= `APC_LEVEL`.
    pub fn wait(&self) {
        // SAFETY: The rundown is initialized; the caller is at IRQL <= APC_LEVEL.
        unsafe {
            ExWaitForRundownProtectionRelease(self.inner.get());
        }
    }
}

impl Default for Rundown {
    fn default() -> Self {
        Self::new()
    }
}

/// Calls in progress on something closed once, without waiting.
///
/// The "reference counter that tracks the number of function calls in progress" the WSK docs ask for before
/// `WskCloseSocket` ("Closing a Socket": no other call to the socket's functions may be in
/// progress, though IRPs of earlier calls may still be pending).
///
/// Whoever brings the count to zero after closing began (the closer itself, or the last call
/// out) is told to close; that can happen at `DISPATCH_LEVEL`, in a completion routine, so
/// nobody waits here. IRQL: any.
///
/// # Invariants
/// `state` is the number of calls in progress, plus [`CallGate::CLOSING`] once closing began;
/// exactly one of [`CallGate::close`] / [`CallGate::exit`] returns `true`, once.
pub struct CallGate {
    state: AtomicU32,
}

impl CallGate {
    const CLOSING: u32 = 1 << 31;

    /// No call in progress, not closing.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
        }
    }

    /// Starts one call; `false` once closing has begun (the call must not be made).
    #[must_use]
    pub fn enter(&self) -> bool {
        self.state
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |state| {
                if state & Self::CLOSING == 0 {
                    // Fewer than 2^31 calls can be in progress at once: no overflow into
                    // the CLOSING bit.
                    state.checked_add(1)
                } else {
                    None
                }
            })
            .is_ok()
    }

    /// Ends a call started with [`CallGate::enter`]. `true` if it was the last call out after
    /// closing began: the caller must close now.
    #[must_use]
    pub fn exit(&self) -> bool {
        let previous = self.state.fetch_sub(1, Ordering::AcqRel);
        previous == Self::CLOSING | 1
    }

    /// Begins closing: no call starts any more. `true` if none was in progress and closing had
    /// not begun before: the caller must close now; otherwise the last call out will.
    #[must_use]
    pub fn close(&self) -> bool {
        let previous = self.state.fetch_or(Self::CLOSING, Ordering::AcqRel);
        previous == 0
    }

    /// Whether closing has begun.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.state.load(Ordering::Acquire) & Self::CLOSING != 0
    }
}

impl Default for CallGate {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::CallGate;

    #[test]
    fn the_closer_closes_when_no_call_is_in_progress() {
        let gate = CallGate::new();
        assert!(gate.close());
        assert!(!gate.enter());
        assert!(!gate.close(), "closing twice closes once");
    }

    #[test]
    fn the_last_call_out_closes() {
        let gate = CallGate::new();
        assert!(gate.enter());
        assert!(gate.enter());
        assert!(!gate.close());
        assert!(gate.is_closing());
        assert!(!gate.enter());
        assert!(!gate.exit());
        assert!(gate.exit());
    }

    #[test]
    fn calls_without_close_never_close() {
        let gate = CallGate::new();
        for _ in 0..3 {
            assert!(gate.enter());
            assert!(!gate.exit());
        }
    }
}
