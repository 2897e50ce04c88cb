//! Driver-allocated IRPs for WSK calls.
//!
//! The contract ("Using IRPs with Winsock Kernel Functions"): the IRP comes from
//! `IoAllocateIrp`, its completion routine is invoked on success, error and cancel, the routine
//! returns `STATUS_MORE_PROCESSING_REQUIRED` (the I/O manager must not touch an IRP it did not
//! allocate), and the IRP is freed only after it completed. A WSK function completes the IRP
//! whatever it returns, so the caller never frees after the call: the completion routine
//! always runs.
//!
//! Every routine is set with `IoSetCompletionRoutineEx` on the driver's device object
//! ([`DriverDevice`]): the I/O manager then holds a device reference until the routine has
//! returned, and the driver image is not unloaded while any routine still executes, even if
//! the routine itself released the last thing unload waits for (a socket's rundown, a close
//! event). Plain `IoSetCompletionRoutine` leaves a window between that release and the
//! routine's return in which a non-PnP driver can be unloaded (bugcheck 0xCE).

use core::ffi::c_void;
use core::pin::pin;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::ddi::nt::{
    DEVICE_OBJECT, IRP, IoAllocateIrp, IoCompletionRoutine, IoFreeIrp, IoReuseIrp, NTSTATUS,
    io_set_completion_routine, io_set_completion_routine_ex,
};
use crate::pool::{PoolBox, TAG_CALL};
use crate::status::{
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_STATE, STATUS_MORE_PROCESSING_REQUIRED,
    STATUS_SUCCESS,
};
use crate::sync::{Event, EventKind};

/// IRPs this driver allocated since it loaded (`BENCH` reports them per datagram).
static ALLOCATIONS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// IRPs this driver allocated since it loaded. IRQL: any.
#[must_use]
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Stack locations in every IRP wskudp allocates: one, for the WSK provider's use of the
/// completion routine slot.
const STACK_SIZE: i8 = 1;

/// The driver's device object, which completion routines are registered against.
///
/// IRQL: any.
///
/// # Invariants
/// `device` is a device object of this driver that lives until the driver state is dropped.
#[derive(Clone, Copy, Debug)]
pub struct DriverDevice {
    device: NonNull<DEVICE_OBJECT>,
}

// SAFETY: A device object is a kernel object usable from any thread; only its address is
// passed to the I/O manager.
unsafe impl Send for DriverDevice {}
// SAFETY: As above.
unsafe impl Sync for DriverDevice {}

impl DriverDevice {
    /// Wraps the front door's device object.
    ///
    /// # Safety
    /// `device` must be a device object this driver created, not deleted before every IRP
    /// core issues has completed (i.e. before the driver state is dropped).
    #[must_use]
    pub const unsafe fn new(device: NonNull<DEVICE_OBJECT>) -> Self {
        // INVARIANT: the caller's guarantee.
        Self { device }
    }

    pub(crate) const fn as_ptr(self) -> *mut DEVICE_OBJECT {
        self.device.as_ptr()
    }
}

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
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: a fresh IRP from IoAllocateIrp, owned by nobody else.
        Ok(Self { ptr })
    }

    /// `IoReuseIrp(irp, STATUS_SUCCESS)`: makes an IRP that completed back into a fresh one (stack
    /// location, `Cancel`, `IoStatus` reset; the allocation and its stack size kept), so a pooled
    /// send context issues one `IoAllocateIrp` IRP for its whole life. The `IoReuseIrp` page: a
    /// driver reuses an IRP it allocated with `IoAllocateIrp` this way, and only once the IRP
    /// completed, which the type invariant (owned, not in flight) guarantees.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    pub fn reuse(&self) {
        // SAFETY: 1. a live IoAllocateIrp IRP this value owns and no provider holds (type
        //            invariant): it completed, or was never issued;
        //         2. IoReuseIrp may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            IoReuseIrp(self.ptr.as_ptr(), STATUS_SUCCESS);
        }
    }

    /// Sets the completion routine, invoked on success, error and cancel, with
    /// `IoSetCompletionRoutineEx` on `device` (see the module docs).
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`: nothing was set. Once this succeeded the IRP must be
    /// completed (issued to WSK): only completion frees the I/O manager's context.
    ///
    /// # Safety
    /// `routine` must accept `context` at `DISPATCH_LEVEL` on any thread, for as long as the
    /// IRP can complete, and must return `STATUS_MORE_PROCESSING_REQUIRED`.
    pub unsafe fn set_completion(
        &self,
        device: DriverDevice,
        routine: IoCompletionRoutine,
        context: *mut c_void,
    ) -> Result<(), NTSTATUS> {
        // SAFETY: 1. the IRP has STACK_SIZE = 1 location and was not passed on, so its next
        //            location is that one (type invariant);
        //         2. `device` is this driver's (DriverDevice invariant);
        //         3. the routine's contract is the caller's.
        unsafe {
            io_set_completion_routine_ex(device.as_ptr(), self.ptr.as_ptr(), routine, context)
        }
    }

    /// Sets the completion routine with plain `IoSetCompletionRoutine`, which cannot fail.
    /// Only for an IRP whose completion a thread of this driver waits for before the driver
    /// can go on (so no unload can overtake the routine), when [`Irp::set_completion`] failed
    /// for lack of memory and the call must still be made (closing a socket).
    ///
    /// # Safety
    /// As [`Irp::set_completion`].
    pub unsafe fn set_completion_unguarded(
        &self,
        routine: IoCompletionRoutine,
        context: *mut c_void,
    ) {
        // SAFETY: As in `set_completion`.
        unsafe {
            io_set_completion_routine(self.ptr.as_ptr(), routine, context);
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

/// Completion routine of the synchronous calls: signals the waiting thread.
///
/// IRQL: <= `DISPATCH_LEVEL`, arbitrary thread.
unsafe extern "system" fn signal_waiter(
    _device: *const DEVICE_OBJECT,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: `context` is an initialized, pinned Event that outlives the IRP's completion:
    // its owner waits for this signal before releasing it.
    let event = unsafe { &*context.cast::<Event>() };
    event.set();
    STATUS_MORE_PROCESSING_REQUIRED
}

/// `irp`'s outcome, once `event` (its completion routine's) was signaled. Frees the IRP.
fn wait_result(irp: Irp, event: &Event) -> Result<IoResult, NTSTATUS> {
    event.wait();
    let result = irp.io_result();
    drop(irp);
    if result.status < 0 {
        Err(result.status)
    } else {
        Ok(result)
    }
}

/// Issues one WSK call on a fresh IRP and waits for the IRP to complete.
///
/// The IRP completes whatever the call returned (a WSK function completes its IRP even when
/// it fails). `call` must issue the IRP: once the completion routine is set, only completion releases it.
///
/// IRQL: `PASSIVE_LEVEL`.
///
/// # Errors
/// `STATUS_INSUFFICIENT_RESOURCES` if no IRP or completion context can be allocated, or the
/// IRP's failure status.
pub fn call_and_wait(
    device: DriverDevice,
    call: impl FnOnce(*mut IRP) -> NTSTATUS,
) -> Result<IoResult, NTSTATUS> {
    crate::paged_code!();
    let irp = Irp::allocate()?;
    let event = pin!(Event::new());
    let event = event.as_ref();
    event.init(EventKind::Notification, false);
    // SAFETY: `signal_waiter` only signals the event, which outlives the IRP's completion
    // because this function waits for that signal before returning.
    unsafe {
        irp.set_completion(
            device,
            signal_waiter,
            core::ptr::from_ref(event.get_ref()).cast_mut().cast(),
        )?;
    }
    // Issued: the returned status is also in IoStatus after completion, which is read.
    let _ = call(irp.as_ptr());
    wait_result(irp, &event)
}

/// An IRP and the event its completion signals, reserved for a call that must not fail.
///
/// Allocated and armed ahead of a call that must not fail for lack of memory when it is
/// finally made (closing a socket). The call may be
/// issued at `DISPATCH_LEVEL` (e.g. from a completion routine) and waited for later.
///
/// # Invariants
/// `event` is initialized; once `armed`, `irp`'s completion routine signals `event` and the
/// IRP must be issued (the I/O manager's `IoSetCompletionRoutineEx` context is freed only by
/// its completion); `issued` goes from `false` to `true` once, when the call is made.
pub struct ReservedCall {
    irp: Irp,
    event: PoolBox<Event>,
    armed: bool,
    issued: AtomicBool,
}

impl ReservedCall {
    /// Allocates the IRP and the event. IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub fn allocate() -> Result<Self, NTSTATUS> {
        let irp = Irp::allocate()?;
        let event = PoolBox::try_new(Event::new(), TAG_CALL)?;
        PoolBox::as_pin(&event).init(EventKind::Notification, false);
        // INVARIANT: the event is initialized in its final place; not armed, not issued.
        Ok(Self {
            irp,
            event,
            armed: false,
            issued: AtomicBool::new(false),
        })
    }

    /// Sets the completion routine with `IoSetCompletionRoutineEx`, once the call is certain to
    /// be made (e.g. right after the socket it closes was created). If the I/O manager cannot
    /// allocate its context, [`ReservedCall::issue`] sets a plain completion routine instead:
    /// [`ReservedCall::wait`] then waits for it in this driver's own code, so the window it
    /// leaves (the routine's return racing a completed unload) needs the whole unload to run
    /// first. IRQL: <= `DISPATCH_LEVEL`.
    pub fn arm(&mut self, device: DriverDevice) {
        if self.armed {
            return;
        }
        // SAFETY: `signal_waiter` only signals the event, which lives in pool until this
        // value is dropped, after the IRP completed (armed IRPs are always issued: invariant).
        let armed = unsafe {
            self.irp
                .set_completion(device, signal_waiter, self.event_ptr())
        };
        // INVARIANT: armed only if the routine is now set.
        self.armed = armed.is_ok();
    }

    const fn event_ptr(&self) -> *mut c_void {
        PoolBox::as_ptr(&self.event).cast()
    }

    /// Makes the call on the reserved IRP, once: a second `issue` does nothing and returns
    /// `false`. IRQL: <= `DISPATCH_LEVEL` (the WSK call's own bound applies).
    pub fn issue(&self, call: impl FnOnce(*mut IRP) -> NTSTATUS) -> bool {
        if self.issued.swap(true, Ordering::AcqRel) {
            return false;
        }
        if !self.armed {
            // SAFETY: As in `arm`; `wait` waits for the routine before the event goes.
            unsafe {
                self.irp
                    .set_completion_unguarded(signal_waiter, self.event_ptr());
            }
        }
        // The returned status is also the IRP's, which `wait` reads.
        let _ = call(self.irp.as_ptr());
        true
    }

    /// Waits for the issued call to complete and frees the IRP. A call never issued leaves
    /// nothing to wait for.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// The IRP's failure status, or `STATUS_INVALID_DEVICE_STATE` if it was never issued.
    pub fn wait(self) -> Result<IoResult, NTSTATUS> {
        crate::paged_code!();
        if !self.issued.load(Ordering::Acquire) {
            if self.armed {
                // An armed IRP must complete to free its context: issue nothing, keep it.
                core::mem::forget(self);
            }
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        let Self { irp, event, .. } = self;
        wait_result(irp, &event)
    }

    /// Makes the call and waits for it. IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// As [`ReservedCall::wait`].
    pub fn call_and_wait(
        self,
        call: impl FnOnce(*mut IRP) -> NTSTATUS,
    ) -> Result<IoResult, NTSTATUS> {
        self.issue(call);
        self.wait()
    }
}
