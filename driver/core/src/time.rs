//! Time: the performance counter (`KeQueryPerformanceCounter`), for timing `BENCH` jobs, and a
//! high-resolution one-shot timer (`ExAllocateTimer`), for pacing them.

use core::ffi::c_void;

use crate::ddi::nt::{
    EX_TIMER_HIGH_RESOLUTION, ExAllocateTimer, ExDeleteTimer, ExSetTimer, ExtCallback,
    KeQueryPerformanceCounter, NTSTATUS, PEX_TIMER,
};
use crate::status::STATUS_INSUFFICIENT_RESOURCES;

/// The counter now and its frequency (ticks per second). IRQL: any (the
/// `KeQueryPerformanceCounter` page).
#[must_use]
pub(crate) fn ticks_and_frequency() -> (u64, u64) {
    let mut frequency: i64 = 0;
    let now;
    // SAFETY: `frequency` is a valid out pointer; the DDI may be called at any IRQL.
    unsafe {
        now = KeQueryPerformanceCounter(&raw mut frequency);
    }
    (now.cast_unsigned(), frequency.cast_unsigned())
}

/// The counter now. IRQL: any.
#[must_use]
pub(crate) fn ticks() -> u64 {
    let now;
    // SAFETY: The frequency is optional (NULL); the DDI may be called at any IRQL.
    unsafe {
        now = KeQueryPerformanceCounter(core::ptr::null_mut());
    }
    now.cast_unsigned()
}

/// A high-resolution one-shot timer (`EX_TIMER_HIGH_RESOLUTION`, Windows 8.1 and later) whose
/// callback runs at `DISPATCH_LEVEL`.
///
/// The rules, from the `ExAllocateTimer`, `ExSetTimer` and `ExDeleteTimer` pages: a
/// high-resolution timer's due time must be relative (negative, 100 ns units) or the system
/// bug checks; `ExDeleteTimer` with `Wait` waits for a running callback to return, and then
/// needs `Cancel` and IRQL <= `APC_LEVEL`.
///
/// # Invariants
/// `timer` came from `ExAllocateTimer` and is deleted once, by `Drop`.
pub(crate) struct Timer {
    timer: PEX_TIMER,
}

// SAFETY: An EX_TIMER may be set and deleted from any thread.
unsafe impl Send for Timer {}
// SAFETY: As above.
unsafe impl Sync for Timer {}

impl Timer {
    /// A timer that calls `callback(timer, context)`. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    ///
    /// # Safety
    /// `callback` must accept `context` at `DISPATCH_LEVEL` until the timer is dropped.
    pub(crate) unsafe fn new(
        callback: ExtCallback,
        context: *mut c_void,
    ) -> Result<Self, NTSTATUS> {
        // SAFETY: `PEXT_CALLBACK` erases the parameter list of EXT_CALLBACK; the kernel calls it
        // with exactly those parameters.
        let erased =
            unsafe { core::mem::transmute::<ExtCallback, unsafe extern "system" fn()>(callback) };
        let timer;
        // SAFETY: ExAllocateTimer may be called at IRQL <= DISPATCH_LEVEL; the callback's
        // contract is the caller's.
        unsafe {
            timer = ExAllocateTimer(Some(erased), context.cast_const(), EX_TIMER_HIGH_RESOLUTION);
        }
        if timer == 0 {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // INVARIANT: a fresh timer, deleted by Drop.
        Ok(Self { timer })
    }

    /// Fires once, `after_100ns` from now (at least 1). IRQL: <= `DISPATCH_LEVEL`.
    pub(crate) fn set(&self, after_100ns: u64) {
        let due = i64::try_from(after_100ns.max(1)).unwrap_or(i64::MAX);
        // SAFETY: A live timer (type invariant); a relative (negative) due time, as a
        // high-resolution timer requires; no period; ExSetTimer allows <= DISPATCH_LEVEL.
        unsafe {
            ExSetTimer(self.timer, due.saturating_neg(), 0, core::ptr::null());
        }
    }
}

impl Drop for Timer {
    /// Cancels the timer, waits for a callback in progress, and deletes it. IRQL:
    /// <= `APC_LEVEL`.
    fn drop(&mut self) {
        crate::paged_code!();
        // SAFETY: A live timer deleted once (type invariant); Cancel and Wait at PASSIVE_LEVEL.
        unsafe {
            ExDeleteTimer(self.timer, true, true, core::ptr::null());
        }
    }
}
