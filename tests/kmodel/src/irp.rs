//! IRPs as the I/O manager lays them out and completes them.
//!
//! `IoAllocateIrp(n)` returns an `IRP` followed by `n` `IO_STACK_LOCATION`s with
//! `CurrentLocation = n + 1` (one past the last location): the driver sets its completion
//! routine in the next location (`IoSetCompletionRoutine`). A provider accepts the IRP the way
//! `IoCallDriver` passes it down (`IoSetNextIrpStackLocation`), and completes it the way
//! `IoCompleteRequest` does: walk the locations upward, call each completion routine whose
//! `SL_INVOKE_ON_*` bits match (at `DISPATCH_LEVEL`), stop at
//! `STATUS_MORE_PROCESSING_REQUIRED`.

use std::alloc::Layout;
use std::ffi::c_void;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IO_STACK_LOCATION, IRP};
use windows_sys::Wdk::System::SystemServices::{
    IO_TYPE_IRP, SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_ERROR, SL_INVOKE_ON_SUCCESS, SL_PENDING_RETURNED,
};
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_MORE_PROCESSING_REQUIRED, STATUS_PENDING};
use wskudp_core::ddi::nt::{IoCompletionRoutine, current_stack_location_slot};

use crate::faults::{self, Site};
use crate::irql::{self, DISPATCH_LEVEL};
use crate::state::{self, IrpOwner, IrpRecord, TABLES};

const IRP_SIZE: usize = size_of::<IRP>();
const LOCATION_SIZE: usize = size_of::<IO_STACK_LOCATION>();
#[allow(clippy::cast_possible_truncation)]
const SL_INVOKE_ON_ALL: u8 =
    (SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL) as u8;

fn layout(stack_size: i8) -> Option<Layout> {
    let locations = usize::try_from(stack_size).ok()?;
    Layout::from_size_align(IRP_SIZE + locations * LOCATION_SIZE, align_of::<IRP>()).ok()
}

/// `IoAllocateIrp` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// None beyond the DDI's contract.
#[unsafe(export_name = "IoAllocateIrp")]
pub(crate) unsafe extern "system" fn io_allocate_irp(
    stack_size: i8,
    _charge_quota: bool,
) -> *mut IRP {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("IoAllocateIrp", DISPATCH_LEVEL);
    if stack_size < 1 {
        state::violation("IrpStackSize", format!("IoAllocateIrp({stack_size})"));
        return std::ptr::null_mut();
    }
    if faults::should_fail(Site::Irp) {
        return std::ptr::null_mut();
    }
    let Some(layout) = layout(stack_size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: Non-zero size. The layout has IRP's alignment, so the cast is aligned.
    #[allow(clippy::cast_ptr_alignment)]
    let irp = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<IRP>();
    if irp.is_null() {
        return irp;
    }
    // SAFETY: `irp` is a fresh block of `layout`'s size.
    unsafe { initialize(irp, layout, stack_size) };
    state::bump(&TABLES.stats.irp_allocations);
    TABLES
        .irps
        .insert(irp.expose_provenance(), IrpRecord::new(stack_size));
    irp
}

/// `IoInitializeIrp` as `IoAllocateIrp` and `IoReuseIrp` run it: the IRP and its locations
/// zeroed, then its header, with the current location one past the last.
///
/// # Safety
/// `irp` points to `layout.size()` writable bytes, the IRP and `stack_size` locations.
unsafe fn initialize(irp: *mut IRP, layout: Layout, stack_size: i8) {
    // SAFETY: The caller's guarantee; IRP and IO_STACK_LOCATION sizes are multiples of 8, so
    // the past-the-end location stays aligned.
    unsafe {
        irp.cast::<u8>().write_bytes(0, layout.size());
        (*irp).Type = i16::try_from(IO_TYPE_IRP).unwrap_or_default();
        (*irp).Size = u16::try_from(layout.size()).unwrap_or(u16::MAX);
        (*irp).StackCount = stack_size;
        (*irp).CurrentLocation = stack_size + 1;
        #[allow(clippy::cast_ptr_alignment)]
        let past_last = irp
            .cast::<u8>()
            .add(layout.size())
            .cast::<IO_STACK_LOCATION>();
        current_stack_location_slot(irp).write(past_last);
    }
}

/// `IoReuseIrp` (IRQL <= `DISPATCH_LEVEL`): resets an IRP the driver allocated, once it came
/// back to it, for another call. The `IoReuseIrp` page: only for an IRP "previously allocated
/// either as raw memory or with `IoAllocateIrp`" (the model's IRPs all come from
/// `IoAllocateIrp`); "Using IRPs with Winsock Kernel Functions": a driver "reuses a completed
/// IRP" this way. Reusing one a provider still owns, or with a cancel routine set (`ReactOS`'s
/// `IoReuseIrp` asserts none is, an independent reading), is a violation.
///
/// # Safety
/// `irp` must be an IRP from `IoAllocateIrp`.
#[unsafe(export_name = "IoReuseIrp")]
pub(crate) unsafe extern "system" fn io_reuse_irp(irp: *mut IRP, status: NTSTATUS) {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("IoReuseIrp", DISPATCH_LEVEL);
    let addr = irp.expose_provenance();
    let Some(record) = TABLES.irps.get(&addr) else {
        state::violation(
            "IoReuseIrpNotAllocated",
            format!(
                "IoReuseIrp({addr:#x}) of an IRP not allocated by IoAllocateIrp, or freed (IoReuseIrp page)"
            ),
        );
        return;
    };
    if !record.value().reset() {
        state::violation(
            "IrpReusedInFlight",
            format!(
                "IoReuseIrp({addr:#x}) while the WSK provider still owns it (before completion)"
            ),
        );
        return;
    }
    // SAFETY: A live IRP the driver owns.
    if unsafe { (*irp).CancelRoutine }.is_some() {
        state::violation(
            "IoReuseIrpCancelRoutine",
            format!("IoReuseIrp({addr:#x}) of an IRP with a cancel routine still set"),
        );
    }
    let stack_size = record.value().stack_size;
    let Some(layout) = layout(stack_size) else {
        return;
    };
    // SAFETY: A live IRP allocated with this layout, owned by the driver.
    unsafe {
        initialize(irp, layout, stack_size);
        (*irp).IoStatus.Anonymous.Status = status;
    }
    state::bump(&TABLES.stats.irps_reused);
}

/// `IoFreeIrp` (IRQL <= `DISPATCH_LEVEL`): only for `IoAllocateIrp` IRPs the driver owns.
///
/// # Safety
/// `irp` must be an IRP from `IoAllocateIrp`.
#[unsafe(export_name = "IoFreeIrp")]
pub(crate) unsafe extern "system" fn io_free_irp(irp: *const IRP) {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("IoFreeIrp", DISPATCH_LEVEL);
    let addr = irp.expose_provenance();
    let Some(record) = TABLES.irps.get(&addr) else {
        state::violation(
            "IoAllocateFree",
            format!(
                "IoFreeIrp({addr:#x}) of an IRP not allocated by IoAllocateIrp (or freed twice)"
            ),
        );
        return;
    };
    let owner = record.value().owner();
    if !record.value().completed() && owner == IrpOwner::Driver {
        // An IoSetCompletionRoutineEx context is released only by completion.
        #[allow(
            clippy::cast_ptr_alignment,
            reason = "the IRP's stack follows it, aligned"
        )]
        let location = irp
            .cast::<u8>()
            .wrapping_add(IRP_SIZE)
            .cast::<IO_STACK_LOCATION>()
            .cast_mut();
        // SAFETY: A live driver-owned IRP: its one stack location is readable.
        let routine = unsafe { ((*location).CompletionRoutine, (*location).Context) };
        if routine.0.map(|r| r as usize) == Some(unload_safe_completion_erased() as usize) {
            // `IoSetCompletionRoutineEx` page: the memory it allocates stays allocated until the
            // IoCompletion routine runs; the driver must make sure it runs (through
            // IoCallDriver), "otherwise, the kernel will leak memory".
            state::violation(
                "CompletionContextLeaked",
                format!(
                    "IoFreeIrp({addr:#x}) of an IRP armed with IoSetCompletionRoutineEx that never completed: the I/O manager's context and device reference leak (IoSetCompletionRoutineEx page)"
                ),
            );
            // SAFETY: The context was made by io_set_completion_routine_ex and never used.
            let context = unsafe { Box::from_raw(routine.1.cast::<ExContext>()) };
            crate::iomgr::dereference_device(std::ptr::with_exposed_provenance(context.device));
            release_ex_context();
        }
    }
    if owner == IrpOwner::Provider {
        state::violation(
            "IrpFreedInFlight",
            format!(
                "IoFreeIrp({addr:#x}) while the WSK provider still owns it (before completion)"
            ),
        );
        return;
    }
    // Of two racing frees only one removes the record; the other is a double free.
    if !record.remove() {
        state::violation(
            "IoAllocateFree",
            format!("IoFreeIrp({addr:#x}) of an IRP freed twice"),
        );
        return;
    }
    if let Some(layout) = layout(record.value().stack_size) {
        // SAFETY: Allocated with this layout by io_allocate_irp, freed once (just untracked).
        unsafe { std::alloc::dealloc(irp.cast_mut().cast(), layout) };
    }
}

/// The provider takes `irp` from the driver, as `IoCallDriver` would pass it down: checks the
/// driver kept the contract, then moves to the next stack location. Returns `false` if the
/// IRP cannot be used at all (then it must not be completed).
pub(crate) fn accept(irp: *mut IRP, call: &str) -> bool {
    let addr = irp.expose_provenance();
    let Some(record) = TABLES.irps.get(&addr) else {
        state::violation(
            "IrpNotDriverAllocated",
            format!("{call} given IRP {addr:#x}, which is not a live IoAllocateIrp IRP"),
        );
        return false;
    };
    let record = record.value();
    if record.owner() == IrpOwner::Provider {
        state::violation(
            "IrpAlreadyInFlight",
            format!("{call} given IRP {addr:#x}, which a provider call already owns"),
        );
        return false;
    }
    // SAFETY: A live IRP from io_allocate_irp, owned by the driver, which handed it over.
    let (current, count) = unsafe { ((*irp).CurrentLocation, (*irp).StackCount) };
    if record.completed() || current != count + 1 {
        state::violation(
            "IrpReusedWithoutReset",
            format!(
                "{call} given IRP {addr:#x} at stack location {current} of {count}: reused without IoReuseIrp"
            ),
        );
        return false;
    }
    if current <= 1 {
        state::bugcheck(
            "NoMoreIrpStackLocations",
            &format!("{call}: IRP {addr:#x} has no stack location left"),
        );
    }
    // SAFETY: The IRP has a next location (current > 1); we only read and move to it.
    let ok = unsafe {
        let slot = current_stack_location_slot(irp);
        let next = slot.read().sub(1);
        let routine_set = (*next).CompletionRoutine.is_some();
        let all = (*next).Control & SL_INVOKE_ON_ALL == SL_INVOKE_ON_ALL;
        (*irp).CurrentLocation -= 1;
        slot.write(next);
        (*irp).PendingReturned = false;
        routine_set && all
    };
    if !ok {
        state::violation(
            "IrpCompletionRoutine",
            format!(
                "{call} given IRP {addr:#x} without a completion routine invoked on success, error and cancel"
            ),
        );
    }
    record.to_provider();
    true
}

/// Marks the provider's stack location pending (`IoMarkIrpPending`), before it returns
/// `STATUS_PENDING`.
pub(crate) fn mark_pending(irp: *mut IRP) {
    // SAFETY: The provider owns the IRP and its current location (after `accept`).
    unsafe {
        let location = current_stack_location_slot(irp).read();
        #[allow(clippy::cast_possible_truncation)]
        {
            (*location).Control |= SL_PENDING_RETURNED as u8;
        }
    }
    state::bump(&TABLES.stats.irps_pended);
}

/// Sets `Irp->Cancel` (the provider is cancelling it, e.g. on close).
pub(crate) fn set_cancel(irp: *mut IRP) {
    // SAFETY: The provider owns the IRP.
    unsafe { (*irp).Cancel = true };
}

/// Whether `Irp->Cancel` is set (a provider checks it after setting its cancel routine).
pub(crate) fn is_cancelled(irp: *mut IRP) -> bool {
    // SAFETY: The provider owns the IRP.
    unsafe { (*irp).Cancel }
}

/// `IoCancelIrp` (IRQL <= `DISPATCH_LEVEL`): for the IRPs a driver allocated (the WSK IRPs) and
/// the I/O manager's requests alike. Cancelling an IRP that no longer exists is a
/// use-after-free: "Synchronizing Cancellation in Higher-Level Drivers Without Cancel Routines"
/// allows `IoCancelIrp` on a *pending* IRP the driver allocated, and with Driver Verifier's I/O
/// Verification every `IoAllocateIrp` IRP comes from special pool ("I/O Verification" page,
/// level 1), so touching a freed one is a page fault in freed special pool (bugcheck 0xCC, or
/// 0xD5 when the driver is blamed). Cancelling one that completed but is not freed yet is
/// allowed and does nothing (no cancel routine is set).
///
/// # Safety
/// None beyond the DDI's contract (the model checks the IRP is live before touching it).
#[unsafe(export_name = "IoCancelIrp")]
pub(crate) unsafe extern "system" fn io_cancel_irp(irp: *const IRP) -> bool {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("IoCancelIrp", DISPATCH_LEVEL);
    let addr = irp.expose_provenance();
    let known = TABLES.irps.contains_key(&addr) || crate::iomgr::is_live_request(addr);
    if !known {
        state::violation(
            "IoCancelIrpFreed",
            format!(
                "IoCancelIrp({addr:#x}) of an IRP that was freed or never allocated (use after free: bugcheck 0xCC PAGE_FAULT_IN_FREED_SPECIAL_POOL under I/O Verification)"
            ),
        );
        return false;
    }
    // SAFETY: A live IRP (checked above; its owner keeps it until this call returns).
    unsafe { crate::cancel::cancel_live_irp(irp.cast_mut()) }
}

/// `IoCompleteRequest` for an IRP the provider owns.
pub(crate) fn complete(irp: *mut IRP, status: NTSTATUS, information: usize) {
    let addr = irp.expose_provenance();
    if status == STATUS_PENDING {
        state::violation(
            "IrpCompletedPending",
            format!("IRP {addr:#x} completed with STATUS_PENDING"),
        );
    }
    // SAFETY: The provider owns the IRP (accepted, not yet completed).
    unsafe {
        (*irp).IoStatus.Anonymous.Status = status;
        (*irp).IoStatus.Information = information;
    }
    state::bump(&TABLES.stats.irps_completed);
    loop {
        // SAFETY: Still owned here (checked below after every routine).
        let (current, count) = unsafe { ((*irp).CurrentLocation, (*irp).StackCount) };
        if current > count {
            break;
        }
        // SAFETY: `current <= count`, so the current location is inside the IRP.
        let (routine, context, control, cancel) = unsafe {
            let slot = current_stack_location_slot(irp);
            let location = slot.read();
            let routine = (*location).CompletionRoutine;
            let context = (*location).Context;
            let control = (*location).Control;
            (*location).Control = 0;
            (*irp).CurrentLocation += 1;
            slot.write(location.add(1));
            #[allow(clippy::cast_possible_truncation)]
            {
                (*irp).PendingReturned = control & (SL_PENDING_RETURNED as u8) != 0;
            }
            (routine, context, control, (*irp).Cancel)
        };
        let success = status >= 0;
        #[allow(clippy::cast_possible_truncation)]
        let invoke = routine.is_some()
            && ((success && control & SL_INVOKE_ON_SUCCESS as u8 != 0)
                || (!success && control & SL_INVOKE_ON_ERROR as u8 != 0)
                || (cancel && control & SL_INVOKE_ON_CANCEL as u8 != 0));
        let Some(routine) = routine.filter(|_| invoke) else {
            continue;
        };
        // The driver owns the IRP again while its routine runs.
        if let Some(record) = TABLES.irps.get(&addr) {
            record.value().to_driver_completed();
        }
        // SAFETY: The routine was stored by IoSetCompletionRoutine, which erases the
        // IO_COMPLETION_ROUTINE parameter list; this restores it.
        let routine = unsafe {
            std::mem::transmute::<unsafe extern "system" fn() -> NTSTATUS, IoCompletionRoutine>(
                routine,
            )
        };
        let guarded = routine as usize == unload_safe_completion_erased() as usize;
        crate::iomgr::routine_running(guarded, true);
        let previous = IN_DRIVER_ROUTINE.with(|flag| flag.replace(!guarded));
        let outermost = COMPLETION_DEPTH.with(|depth| depth.replace(depth.get() + 1)) == 0;
        let started = outermost.then(thread_cpu_ns);
        let result = crate::accounting::outside(|| {
            // SAFETY: Called as the I/O manager does: no device object for a driver-allocated
            // IRP's top location, the IRP, and the driver's context; at DISPATCH_LEVEL.
            irql::at_dispatch("completion routine", || unsafe {
                routine(
                    std::ptr::null::<DEVICE_OBJECT>(),
                    irp,
                    context.cast::<c_void>(),
                )
            })
        });
        if let Some(started) = started {
            let ran = thread_cpu_ns().saturating_sub(started);
            TABLES
                .stats
                .longest_completion_ns
                .fetch_max(ran, std::sync::atomic::Ordering::Relaxed);
        }
        COMPLETION_DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
        IN_DRIVER_ROUTINE.with(|flag| flag.set(previous));
        crate::iomgr::routine_running(guarded, false);
        if result == STATUS_MORE_PROCESSING_REQUIRED {
            return;
        }
        if !TABLES.irps.contains_key(&addr) {
            state::violation(
                "IrpCompletedPastDriver",
                format!(
                    "completion routine freed IRP {addr:#x} but returned {result:#x}, not STATUS_MORE_PROCESSING_REQUIRED"
                ),
            );
            return;
        }
    }
    state::violation(
        "IrpCompletedPastDriver",
        format!(
            "driver-allocated IRP {addr:#x} completed past its last stack location: no completion routine returned STATUS_MORE_PROCESSING_REQUIRED"
        ),
    );
    if let Some(record) = TABLES.irps.get(&addr) {
        record.value().to_driver_completed();
    }
}

thread_local! {
    /// Set while a driver completion routine runs unguarded by a device reference.
    static IN_DRIVER_ROUTINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Driver completion routines running on this thread (nested when a provider completes
    /// inline inside a call a routine made).
    static COMPLETION_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Records `WskCallInCompletion` if `call` is made from inside a driver's completion routine:
/// "A WSK application should not call new WSK functions in the context of the `IoCompletion`
/// routine. Doing so may result in recursive calls and exhaust the kernel mode stack. When
/// executing at IRQL = `DISPATCH_LEVEL`, this can also lead to starvation of other threads"
/// ("Using IRPs with Winsock Kernel Functions").
pub(crate) fn check_not_in_completion(call: &str) {
    if COMPLETION_DEPTH.with(std::cell::Cell::get) > 0 {
        state::violation(
            "WskCallInCompletion",
            format!(
                "{call} called from inside a completion routine (\"Using IRPs with Winsock Kernel Functions\": a WSK application should not call new WSK functions in the context of the IoCompletion routine)"
            ),
        );
    }
}

/// Inside a driver completion routine that no device reference protects, the model widens the
/// window between what the routine releases and its return by this much (see
/// [`crate::Config::unload_race_window`]).
pub(crate) fn widen_unload_race() {
    if IN_DRIVER_ROUTINE.with(std::cell::Cell::get) {
        let window = state::lock().unload_race_window;
        if !window.is_zero() {
            std::thread::sleep(window);
        }
    }
}

/// What `IoSetCompletionRoutineEx` keeps: the driver's routine and context, and the device it
/// holds a reference on until the routine has returned.
struct ExContext {
    routine: IoCompletionRoutine,
    context: *mut c_void,
    device: usize,
}

fn unload_safe_completion_erased() -> unsafe extern "system" fn() -> NTSTATUS {
    // SAFETY: Erasing the parameter list, as PIO_COMPLETION_ROUTINE stores it.
    unsafe {
        std::mem::transmute::<IoCompletionRoutine, unsafe extern "system" fn() -> NTSTATUS>(
            unload_safe_completion,
        )
    }
}

/// The I/O manager's wrapper around a routine set with `IoSetCompletionRoutineEx`: calls it,
/// then frees its context and drops the device reference, so the driver image outlives the
/// routine.
unsafe extern "system" fn unload_safe_completion(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: Made by io_set_completion_routine_ex; the IRP completes once.
    let record = unsafe { Box::from_raw(context.cast::<ExContext>()) };
    release_ex_context();
    // The device reference taken when the routine was set keeps the image loaded: the routine
    // runs guarded.
    let previous = IN_DRIVER_ROUTINE.with(|flag| flag.replace(false));
    // SAFETY: The driver's routine with its context, as the I/O manager calls it.
    let result = unsafe { (record.routine)(device, irp, record.context) };
    IN_DRIVER_ROUTINE.with(|flag| flag.set(previous));
    crate::iomgr::dereference_device(std::ptr::with_exposed_provenance(record.device));
    result
}

/// `IoSetCompletionRoutineEx` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// `irp` must be an IRP with a next stack location the caller owns; `device` a device object.
#[unsafe(export_name = "IoSetCompletionRoutineEx")]
pub(crate) unsafe extern "system" fn io_set_completion_routine_ex(
    device: *const DEVICE_OBJECT,
    irp: *const IRP,
    routine: windows_sys::Wdk::Foundation::PIO_COMPLETION_ROUTINE,
    context: *const c_void,
    on_success: bool,
    on_error: bool,
    on_cancel: bool,
) -> NTSTATUS {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("IoSetCompletionRoutineEx", DISPATCH_LEVEL);
    let Some(routine) = routine else {
        // `IoSetCompletionRoutineEx` page: CompletionRoutine is an [in] entry point, and the page
        // documents only STATUS_SUCCESS and STATUS_INSUFFICIENT_RESOURCES: it names no NULL
        // case, so this refusal and its status are inferred (the model's guard).
        state::violation(
            "IoSetCompletionRoutineExNull",
            "IoSetCompletionRoutineEx without a routine (CompletionRoutine is [in] on the IoSetCompletionRoutineEx page)".into(),
        );
        return windows_sys::Win32::Foundation::STATUS_INVALID_PARAMETER;
    };
    if faults::should_fail(Site::CompletionContext) {
        return windows_sys::Win32::Foundation::STATUS_INSUFFICIENT_RESOURCES;
    }
    if !crate::iomgr::reference_device(device) {
        // `IoSetCompletionRoutineEx` page: DeviceObject is the driver's device object, and the
        // routine must belong to the driver that owns it (that reference keeps the driver
        // loaded). No failure status is documented for a bad one: STATUS_INVALID_PARAMETER is
        // inferred.
        state::violation(
            "IoSetCompletionRoutineExDevice",
            format!(
                "IoSetCompletionRoutineEx on {device:p}, not a live device object (IoSetCompletionRoutineEx page: the driver's device object)"
            ),
        );
        return windows_sys::Win32::Foundation::STATUS_INVALID_PARAMETER;
    }
    // SAFETY: Restoring the IO_COMPLETION_ROUTINE parameter list PIO_COMPLETION_ROUTINE erases.
    let routine = unsafe {
        std::mem::transmute::<unsafe extern "system" fn() -> NTSTATUS, IoCompletionRoutine>(routine)
    };
    let record = Box::into_raw(Box::new(ExContext {
        routine,
        context: context.cast_mut(),
        device: device.expose_provenance(),
    }));
    // The I/O manager's allocation (one per call): counted as the allocations are.
    state::bump(&TABLES.stats.completion_contexts);
    TABLES
        .ex_contexts
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut control = 0_u8;
    #[allow(clippy::cast_possible_truncation)]
    {
        if on_success {
            control |= SL_INVOKE_ON_SUCCESS as u8;
        }
        if on_error {
            control |= SL_INVOKE_ON_ERROR as u8;
        }
        if on_cancel {
            control |= SL_INVOKE_ON_CANCEL as u8;
        }
    }
    // SAFETY: The caller owns the IRP's next location (IoGetNextIrpStackLocation).
    unsafe {
        let next = current_stack_location_slot(irp.cast_mut()).read().sub(1);
        (*next).CompletionRoutine = Some(unload_safe_completion_erased());
        (*next).Context = record.cast();
        (*next).Control = control;
    }
    windows_sys::Win32::Foundation::STATUS_SUCCESS
}

/// One `IoSetCompletionRoutineEx` context fewer.
fn release_ex_context() {
    let _ = TABLES.ex_contexts.fetch_update(
        std::sync::atomic::Ordering::Relaxed,
        std::sync::atomic::Ordering::Relaxed,
        |n| n.checked_sub(1),
    );
}

/// This thread's CPU time in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`): the work a completion
/// routine does, without the time the host scheduler runs something else (at `DISPATCH_LEVEL`
/// Windows does not preempt, so there the two are the same).
fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: A valid clock id and a writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut now) } != 0 {
        return 0;
    }
    u64::try_from(now.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(now.tv_nsec).unwrap_or(0))
}
