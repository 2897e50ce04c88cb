//! The performance counter (`KeQueryPerformanceCounter`), for timing `BENCH` jobs.
//!
//! IRQL: any (the `KeQueryPerformanceCounter` page: "can be called at any IRQL").

use crate::ddi::nt::KeQueryPerformanceCounter;

/// The counter now and its frequency (ticks per second).
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

/// The counter now.
#[must_use]
pub(crate) fn ticks() -> u64 {
    let now;
    // SAFETY: The frequency is optional (NULL); the DDI may be called at any IRQL.
    unsafe {
        now = KeQueryPerformanceCounter(core::ptr::null_mut());
    }
    now.cast_unsigned()
}
