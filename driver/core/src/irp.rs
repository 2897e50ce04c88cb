//! Driver-allocated IRPs for WSK calls.
//!
//! The contract ("Using IRPs with Winsock Kernel Functions"): the IRP comes from
//! `IoAllocateIrp`, its completion routine is invoked on success, error and cancel, the routine
//! returns `STATUS_MORE_PROCESSING_REQUIRED` (the I/O manager must not touch an IRP it did not
//! allocate), and the IRP is freed only after it completed. A WSK function completes the IRP
//! whatever it returns, so the caller never frees after the call: the completion routine
//! always runs.

use core::ffi::c_void;
use core::pin::pin;
use core::ptr::NonNull;

use crate::ddi::nt::{
    IRP, IoAllocateIrp, IoCompletionRoutine, IoFreeIrp, NTSTATUS, io_set_completion_routine,
};
use crate::status::{STATUS_INSUFFICIENT_RESOURCES, STATUS_MORE_PROCESSING_REQUIRED};
use crate::sync::{Event, EventKind};

/// Stack locations in every IRP wskudp allocates: one, for the WSK provider's use of the
/// completion routine slot.
const STACK_SIZE: i8 = 1;

/// An IRP from `IoAllocateIrp`, owned by the driver (not in flight).
///
/// IRQL: <= `DISPATCH_LEVEL` for every operation, including drop.
///
/// # Invariants
/// `ptr` is a live IRP from `IoAllocateIrp(STACK_SIZE, FALSE)` that no provider or lower
/// driver currently owns.
pub struct Irp {
    ptr: NonNull<IRP>,
}

// SAFETY: An IRP is not tied to a thread: the kernel completes and frees IRPs on any thread.
unsafe impl Send for Irp {}

/// An IRP's final `IoStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoResult {
    /// `IoStatus.Status`.
    pub status: NTSTATUS,
    /// `IoStatus.Information`.
    pub information: usize,
}

impl Irp {
    /// Allocates an IRP with one stack location.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub fn allocate() -> Result<Self, NTSTATUS> {
        let raw;
        // SAFETY: IoAllocateIrp may be called at IRQL <= DISPATCH_LEVEL; no quota is charged.
        unsafe {
            raw = IoAllocateIrp(STACK_SIZE, false);
        }
        let ptr = NonNull::new(raw).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        // INVARIANT: a fresh IRP from IoAllocateIrp, owned by nobody else.
        Ok(Self { ptr })
    }

    /// Sets the completion routine, invoked on success, error and cancel.
    ///
    /// # Safety
    /// `routine` must accept `context` at `DISPATCH_LEVEL` on any thread, for as long as the
    /// IRP can complete, and must return `STATUS_MORE_PROCESSING_REQUIRED`.
    pub unsafe fn set_completion(&self, routine: IoCompletionRoutine, context: *mut c_void) {
        // SAFETY: 1. the IRP has STACK_SIZE = 1 location and was not passed on, so its next
        //            location is that one (type invariant);
        //         2. the routine's contract is the caller's.
        unsafe {
            io_set_completion_routine(self.ptr.as_ptr(), routine, context);
        }
    }

    /// [`Irp::set_completion`] on a raw IRP pointer, for an IRP whose owner was already given
    /// up as the completion context.
    ///
    /// # Safety
    /// As [`Irp::set_completion`]; `irp` must come from [`Irp::as_ptr`] of a live `Irp` that no
    /// provider owns yet.
    pub unsafe fn set_completion_raw(
        irp: *mut IRP,
        routine: IoCompletionRoutine,
        context: *mut c_void,
    ) {
        // SAFETY: The IRP has one stack location and was not passed on (caller's guarantee).
        unsafe {
            io_set_completion_routine(irp, routine, context);
        }
    }

    /// The raw IRP, to pass to a WSK function. Ownership stays with this value, but until the
    /// completion routine has run the IRP belongs to the provider and must not be touched.
    #[must_use]
    pub const fn as_ptr(&self) -> *mut IRP {
        self.ptr.as_ptr()
    }

    /// Gives up ownership, e.g. because the completion routine will free the IRP.
    #[must_use]
    pub const fn into_raw(self) -> NonNull<IRP> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }

    /// Takes back an IRP whose completion routine is running.
    ///
    /// # Safety
    /// `ptr` must come from [`Irp::into_raw`] (or [`Irp::as_ptr`] of a forgotten `Irp`), and
    /// the provider must have completed it (we are in its completion routine, which returns
    /// `STATUS_MORE_PROCESSING_REQUIRED`).
    #[must_use]
    pub const unsafe fn from_completed(ptr: NonNull<IRP>) -> Self {
        // INVARIANT: completed, so no provider owns it any more.
        Self { ptr }
    }

    /// The final `IoStatus`. Meaningful once the IRP completed.
    #[must_use]
    pub fn io_result(&self) -> IoResult {
        let irp = self.ptr.as_ptr();
        let status_slot;
        // SAFETY: By the type invariant `irp` is a live IRP; only an address is computed.
        unsafe {
            status_slot = &raw const (*irp).IoStatus.Anonymous.Status;
        }
        let status;
        // SAFETY: The provider wrote IoStatus.Status (the union's NTSTATUS member) before
        // completing the IRP.
        unsafe {
            status = status_slot.read();
        }
        let information;
        // SAFETY: As above, for the plain `Information` field.
        unsafe {
            information = (*irp).IoStatus.Information;
        }
        IoResult {
            status,
            information,
        }
    }
}

impl Drop for Irp {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the IRP came from IoAllocateIrp and nobody else owns
        // it; IoFreeIrp may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            IoFreeIrp(self.ptr.as_ptr());
        }
    }
}

/// Completion routine of [`call_and_wait`]: signals the waiting thread.
///
/// IRQL: <= `DISPATCH_LEVEL`, arbitrary thread.
unsafe extern "system" fn signal_waiter(
    _device: *const crate::ddi::nt::DEVICE_OBJECT,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: `context` is the pinned Event of the call_and_wait frame, which does not return
    // before this signal.
    let event = unsafe { &*context.cast::<Event>() };
    event.set();
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Issues one WSK call on a fresh IRP and waits for the IRP to complete, whatever the call
/// returned (a WSK function completes its IRP even when it fails).
///
/// `call` returns `Err(status)` without calling anything when the call cannot be made (a
/// missing dispatch slot); nothing is then waited for.
///
/// IRQL: `PASSIVE_LEVEL`.
///
/// # Errors
/// `STATUS_INSUFFICIENT_RESOURCES` if no IRP can be allocated, `call`'s own error, or the
/// IRP's failure status.
pub fn call_and_wait(
    call: impl FnOnce(*mut IRP) -> Result<NTSTATUS, NTSTATUS>,
) -> Result<IoResult, NTSTATUS> {
    call_and_wait_on(Irp::allocate()?, call)
}

/// [`call_and_wait`] on an IRP allocated beforehand, for calls that must not fail for lack of
/// resources (closing a socket). The IRP is freed once the call completed.
///
/// IRQL: `PASSIVE_LEVEL`.
///
/// # Errors
/// `call`'s own error, or the IRP's failure status.
pub fn call_and_wait_on(
    irp: Irp,
    call: impl FnOnce(*mut IRP) -> Result<NTSTATUS, NTSTATUS>,
) -> Result<IoResult, NTSTATUS> {
    crate::paged_code!();
    let event = pin!(Event::new());
    let event = event.as_ref();
    event.init(EventKind::Notification, false);
    // SAFETY: `signal_waiter` only signals the event, which outlives the IRP's completion
    // because this function waits for that signal before returning.
    unsafe {
        irp.set_completion(
            signal_waiter,
            core::ptr::from_ref(event.get_ref()).cast_mut().cast(),
        );
    }
    // Once issued, the returned status is also in IoStatus after completion: that is read.
    call(irp.as_ptr())?;
    event.wait();
    let result = irp.io_result();
    drop(irp);
    if result.status < 0 {
        Err(result.status)
    } else {
        Ok(result)
    }
}
