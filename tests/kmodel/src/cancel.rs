//! The cancel spin lock (`IoAcquireCancelSpinLock` / `IoReleaseCancelSpinLock`), as
//! `IoCancelIrp` uses it: held, at `DISPATCH_LEVEL`, while a cancel routine runs; the routine
//! releases it with the IRQL `IoCancelIrp` saved in `Irp->CancelIrql`.

use std::sync::{Condvar, Mutex};

use windows_sys::Wdk::Foundation::IRP;
use wskudp_core::ddi::nt::current_stack_location_slot;

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

/// What `IoCancelIrp` does to a live IRP (ntoskrnl; "Canceling IRPs" in the WDK docs): take the
/// cancel spin lock, set `Irp->Cancel`, swap `CancelRoutine` for NULL and, if there was one,
/// call it with the lock held (the routine releases it); else release the lock. Returns
/// whether a routine was called.
///
/// # Safety
/// `irp` must be a live IRP.
pub(crate) unsafe fn cancel_live_irp(irp: *mut IRP) -> bool {
    let previous = acquire_for_cancel();
    // SAFETY: A live IRP (caller's contract).
    unsafe { (*irp).Cancel = true };
    // SAFETY: As above.
    let routine = unsafe { swap_cancel_routine(irp, None) };
    let Some(routine) = routine else {
        release();
        irql::set(previous);
        return false;
    };
    // SAFETY: The IRP's cancel routine, called as IoCancelIrp does: the current location's
    // device, the IRP, the cancel lock held, CancelIrql set.
    unsafe {
        (*irp).CancelIrql = previous;
        let location = current_stack_location_slot(irp).read();
        let device = if location.is_null() {
            std::ptr::null_mut()
        } else {
            (*location).DeviceObject
        };
        routine(device, irp);
    }
    check_released_after_cancel(previous);
    true
}

/// `IoSetCancelRoutine` (an `InterlockedExchangePointer` on `Irp->CancelRoutine` in wdm.h):
/// sets `routine`, returns the previous one.
///
/// # Safety
/// `irp` must be a live IRP.
pub(crate) unsafe fn swap_cancel_routine(
    irp: *mut IRP,
    routine: windows_sys::Wdk::Foundation::DRIVER_CANCEL,
) -> windows_sys::Wdk::Foundation::DRIVER_CANCEL {
    // SAFETY: Live IRP (caller's contract); the same interlocked exchange drivers use.
    unsafe { wskudp_core::ddi::nt::io_set_cancel_routine(irp, routine) }
}
