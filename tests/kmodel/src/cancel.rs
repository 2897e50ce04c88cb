//! The cancel spin lock (`IoAcquireCancelSpinLock` / `IoReleaseCancelSpinLock`), as
//! `IoCancelIrp` uses it: held, at `DISPATCH_LEVEL`, while a cancel routine runs; the routine
//! releases it with the IRQL `IoCancelIrp` saved in `Irp->CancelIrql`.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

use windows_sys::Wdk::Foundation::IRP;
use wskudp_core::ddi::nt::current_stack_location_slot;

use crate::irql::{self, DISPATCH_LEVEL};
use crate::state;

/// The thread holding the lock, if one does: a cancel routine may release it early, and then
/// another thread may hold it by the time `IoCancelIrp` checks.
static OWNER: Mutex<Option<ThreadId>> = Mutex::new(None);
static FREED: Condvar = Condvar::new();

fn owner() -> MutexGuard<'static, Option<ThreadId>> {
    OWNER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn take() {
    let mut owner = owner();
    while owner.is_some() {
        owner = FREED
            .wait(owner)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    *owner = Some(std::thread::current().id());
}

/// Whether the calling thread holds the lock.
fn held_here() -> bool {
    *owner() == Some(std::thread::current().id())
}

/// Takes the cancel lock for `IoCancelIrp`; returns the IRQL to store in `CancelIrql`.
pub(crate) fn acquire_for_cancel() -> u8 {
    take();
    irql::set(DISPATCH_LEVEL)
}

/// After a cancel routine returned: it must have released the lock and restored `previous`.
/// Another thread may hold the lock by now; only this thread's hold is the routine's.
pub(crate) fn check_released_after_cancel(previous: u8) {
    if held_here() {
        // `IoAcquireCancelSpinLock` page: a Cancel routine is called with the cancel spin lock
        // held and must release it; the CancelSpinLock (wdm) DDI compliance rule: no spin lock
        // held when a cancel routine ends.
        state::violation(
            "CancelSpinLockNotReleased",
            "a cancel routine returned without IoReleaseCancelSpinLock (IoAcquireCancelSpinLock page; CancelSpinLock DDI rule)".into(),
        );
        release();
        irql::set(previous);
    }
}

fn release() {
    *owner() = None;
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

/// `IoReleaseCancelSpinLock` (`DISPATCH_LEVEL`): only by the thread that holds the lock.
///
/// # Safety
/// None beyond the DDI's contract.
#[unsafe(export_name = "IoReleaseCancelSpinLock")]
pub(crate) unsafe extern "system" fn io_release_cancel_spin_lock(irql_in: u8) {
    let holder = *owner();
    // The CancelSpinLock (wdm) DDI compliance rule: IoAcquireCancelSpinLock before
    // IoReleaseCancelSpinLock; CancelSpinlockRelease (wdm): the two in strict alternation. A
    // release by a thread other than the holder is the model's reading of the same rule (the
    // routine that acquired, or the Cancel routine it was handed to, releases).
    if holder != Some(std::thread::current().id()) {
        let whose = if holder.is_some() {
            "held by another thread"
        } else {
            "not held"
        };
        state::violation(
            "CancelSpinLockNotHeld",
            format!(
                "IoReleaseCancelSpinLock by a thread that does not hold the lock ({whose}; CancelSpinLock DDI rule)"
            ),
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
