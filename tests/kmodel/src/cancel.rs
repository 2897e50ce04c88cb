//! The cancel spin lock (`IoAcquireCancelSpinLock` / `IoReleaseCancelSpinLock`), as
//! `IoCancelIrp` uses it: held, at `DISPATCH_LEVEL`, while a cancel routine runs; the routine
//! releases it with the IRQL `IoCancelIrp` saved in `Irp->CancelIrql`.

use std::sync::{Condvar, Mutex};

use crate::irql::{self, DISPATCH_LEVEL};
use crate::state;

static HELD: Mutex<bool> = Mutex::new(false);
static FREED: Condvar = Condvar::new();

fn take() {
    let mut held = HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    while *held {
        held = FREED
            .wait(held)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    *held = true;
}

/// Takes the cancel lock for `IoCancelIrp`; returns the IRQL to store in `CancelIrql`.
pub(crate) fn acquire_for_cancel() -> u8 {
    take();
    irql::set(DISPATCH_LEVEL)
}

/// After a cancel routine returned: it must have released the lock and restored `previous`.
pub(crate) fn check_released_after_cancel(previous: u8) {
    let still_held = *HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if still_held {
        state::violation(
            "CancelSpinLockNotReleased",
            "a cancel routine returned without IoReleaseCancelSpinLock".into(),
        );
        release();
        irql::set(previous);
    }
}

fn release() {
    *HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
    FREED.notify_all();
}

/// `IoAcquireCancelSpinLock` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// `irql` must be writable.
#[unsafe(export_name = "IoAcquireCancelSpinLock")]
pub(crate) unsafe extern "system" fn io_acquire_cancel_spin_lock(irql_out: *mut u8) {
    irql::require_at_most("IoAcquireCancelSpinLock", DISPATCH_LEVEL);
    take();
    let previous = irql::set(DISPATCH_LEVEL);
    // SAFETY: Writable (caller's contract).
    unsafe { irql_out.write(previous) };
}

/// `IoReleaseCancelSpinLock` (`DISPATCH_LEVEL`).
///
/// # Safety
/// None beyond the DDI's contract.
#[unsafe(export_name = "IoReleaseCancelSpinLock")]
pub(crate) unsafe extern "system" fn io_release_cancel_spin_lock(irql_in: u8) {
    let held = *HELD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !held {
        state::violation(
            "CancelSpinLockNotHeld",
            "IoReleaseCancelSpinLock without the lock held".into(),
        );
        return;
    }
    release();
    irql::set(irql_in);
}
