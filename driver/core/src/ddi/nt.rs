//! Kernel (ntoskrnl.exe) declarations core uses, from `windows-sys`, plus the few `wdm.h`
//! macros and constants `windows-sys` does not carry (written out here from the header).
//!
//! Only functions `windows-sys` attributes to `ntoskrnl.exe` may be used: it binds `DbgPrint`,
//! the `Rtl*` and `Zw*` families to `ntdll.dll`, a user-mode DLL a driver cannot import.

use core::ffi::c_void;

pub use windows_sys::Wdk::Foundation::PEX_TIMER;
pub use windows_sys::Wdk::Foundation::{
    DEVICE_OBJECT, DRIVER_CANCEL, IO_STACK_LOCATION, IRP, KEVENT, MDL, PIO_WORKITEM,
};
pub use windows_sys::Wdk::System::SystemServices::{
    DelayedWorkQueue, EX_TIMER_HIGH_RESOLUTION, ExAllocateTimer, ExDeleteTimer, ExSetTimer,
    WORK_QUEUE_TYPE,
};

/// `EXT_CALLBACK` (wdm.h) with its real parameters. `windows-sys` declares `PEXT_CALLBACK`
/// without them, so the pointer is converted where it is passed.
pub type ExtCallback = unsafe extern "system" fn(PEX_TIMER, *mut c_void);
pub use windows_sys::Wdk::System::SystemServices::{
    EX_RUNDOWN_REF, ExAcquireRundownProtection, ExAcquireSpinLockExclusive,
    ExAcquireSpinLockShared, ExAllocatePool2, ExFreePoolWithTag, ExInitializeRundownProtection,
    ExReleaseRundownProtection, ExReleaseSpinLockExclusive, ExReleaseSpinLockShared,
    ExWaitForRundownProtectionRelease, Executive, IoAllocateIrp, IoAllocateMdl, IoAllocateWorkItem,
    IoBuildPartialMdl, IoCancelIrp, IoFreeIrp, IoFreeMdl, IoFreeWorkItem, IoQueueWorkItem,
    IoReuseIrp, IoSetCompletionRoutineEx, KeGetCurrentIrql, KeInitializeEvent,
    KeQueryPerformanceCounter, KeSetEvent, KeWaitForSingleObject, KernelMode,
    MmBuildMdlForNonPagedPool, PIO_WORKITEM_ROUTINE, SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_ERROR,
    SL_INVOKE_ON_SUCCESS, SL_PENDING_RETURNED,
};
pub use windows_sys::Win32::Foundation::NTSTATUS;
pub use windows_sys::Win32::System::Kernel::{EVENT_TYPE, NotificationEvent, SynchronizationEvent};

/// `POOL_FLAG_NON_PAGED` (wdm.h): non-paged, no-execute pool (`NonPagedPoolNx`).
pub const POOL_FLAG_NON_PAGED: u64 = 0x0000_0000_0000_0040;
/// `POOL_FLAG_UNINITIALIZED` (wdm.h): the block is not zeroed.
pub const POOL_FLAG_UNINITIALIZED: u64 = 0x0000_0000_0000_0002;

/// `MDL_MAPPED_TO_SYSTEM_VA` (wdm.h).
pub const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
/// `MDL_PAGES_LOCKED` (wdm.h).
pub const MDL_PAGES_LOCKED: i16 = 0x0002;
/// `MDL_SOURCE_IS_NONPAGED_POOL` (wdm.h): set by `MmBuildMdlForNonPagedPool`.
pub const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;
/// `MDL_PARTIAL` (wdm.h): set by `IoBuildPartialMdl` on its target.
pub const MDL_PARTIAL: i16 = 0x0010;
/// `MDL_PARTIAL_HAS_BEEN_MAPPED` (wdm.h): a partial MDL someone mapped; `MmPrepareMdlForReuse`
/// must unmap it before the MDL is built again or freed.
pub const MDL_PARTIAL_HAS_BEEN_MAPPED: i16 = 0x0020;

/// `IO_WORKITEM_ROUTINE` (wdm.h) with its real parameters. `windows-sys` declares
/// `PIO_WORKITEM_ROUTINE` without them, so the pointer is converted where it is passed.
pub type IoWorkItemRoutine = unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut c_void);

/// `IO_COMPLETION_ROUTINE` (wdm.h) with its real parameters. `windows-sys` declares
/// `PIO_COMPLETION_ROUTINE` without them, so the pointer is converted where it is stored.
pub type IoCompletionRoutine =
    unsafe extern "system" fn(*const DEVICE_OBJECT, *mut IRP, *mut c_void) -> NTSTATUS;

/// The `SL_INVOKE_ON_*` bits of a stack location's `Control`, all three: a driver-allocated
/// IRP must reach its owner's completion routine whatever the outcome.
// The three constants are single bits below 0x100, so the narrowing is exact.
#[allow(clippy::cast_possible_truncation)]
pub const SL_INVOKE_ON_ALL: u8 =
    (SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL) as u8;

/// `IO_STACK_LOCATION::Parameters.DeviceIoControl` as wdm.h lays it out on x64.
///
/// Every field after the first is `POINTER_ALIGNMENT` (8 bytes). windows-sys 0.61 drops that alignment
/// (microsoft/windows-rs#4404) and puts three of the four fields at the wrong offsets, so
/// front doors read the parameters through this view (checked against mingw-w64's wdm.h by
/// `tests/kmodel/tests/abi_conformance.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_snake_case, reason = "field names from wdm.h")]
pub struct DeviceIoControlParameters {
    /// `OutputBufferLength`.
    pub OutputBufferLength: u32,
    _align0: u32,
    /// `InputBufferLength`.
    pub InputBufferLength: u32,
    _align1: u32,
    /// `IoControlCode`.
    pub IoControlCode: u32,
    _align2: u32,
    /// `Type3InputBuffer`.
    pub Type3InputBuffer: *mut c_void,
}

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(DeviceIoControlParameters, InputBufferLength) == 8);
    assert!(offset_of!(DeviceIoControlParameters, IoControlCode) == 16);
    assert!(offset_of!(DeviceIoControlParameters, Type3InputBuffer) == 24);
    assert!(offset_of!(IO_STACK_LOCATION, Parameters) == 8);
    // The view ends before the next field after the Parameters union.
    assert!(size_of::<DeviceIoControlParameters>() == 32);
    assert!(offset_of!(IO_STACK_LOCATION, DeviceObject) == 40);
};

/// The `DeviceIoControl` parameters of a stack location (`IRP_MJ_DEVICE_CONTROL`).
///
/// IRQL: any.
///
/// # Safety
/// `location` must point to a valid stack location of an `IRP_MJ_DEVICE_CONTROL` request.
#[must_use]
pub const unsafe fn device_io_control_parameters(
    location: *const IO_STACK_LOCATION,
) -> DeviceIoControlParameters {
    let parameters;
    // SAFETY: `location` is valid (caller's guarantee); only an address is computed.
    unsafe {
        parameters = (&raw const (*location).Parameters).cast::<DeviceIoControlParameters>();
    }
    let value;
    // SAFETY: The Parameters union of a device-control location holds this structure at its
    // start (wdm.h layout, asserted above and against the C header), and it fits before
    // `DeviceObject`.
    unsafe {
        value = parameters.read();
    }
    value
}

/// `IoGetCurrentIrpStackLocation` (a wdm.h inline).
///
/// IRQL: any.
///
/// # Safety
/// `irp` must point to a valid IRP whose current stack location is within its stack
/// (i.e. the IRP was delivered to this driver by the I/O manager or a provider).
#[must_use]
pub unsafe fn io_get_current_irp_stack_location(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    let slot;
    // SAFETY: The caller guarantees `irp` is a valid IRP.
    unsafe {
        slot = current_stack_location_slot(irp);
    }
    let location;
    // SAFETY: `slot` points into the IRP; `Tail.Overlay` is the active member of the tail union
    // for any IRP that is not queued as an APC, so the pointer member holds a pointer.
    unsafe {
        location = slot.read();
    }
    location
}

/// Address of `Irp->Tail.Overlay.CurrentStackLocation`.
///
/// IRQL: any.
///
/// # Safety
/// `irp` must point to a valid IRP.
#[must_use]
pub unsafe fn current_stack_location_slot(irp: *mut IRP) -> *mut *mut IO_STACK_LOCATION {
    let slot;
    // SAFETY: `irp` is valid (caller's guarantee); only an address is computed, nothing read.
    unsafe {
        slot = &raw mut (*irp)
            .Tail
            .Overlay
            .Anonymous2
            .Anonymous
            .CurrentStackLocation;
    }
    slot
}

/// `IoGetNextIrpStackLocation` (a wdm.h inline).
///
/// IRQL: any.
///
/// # Safety
/// `irp` must point to a valid IRP with at least one stack location below the current one
/// (`CurrentLocation > 1`).
#[must_use]
pub unsafe fn io_get_next_irp_stack_location(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    let current;
    // SAFETY: The caller guarantees `irp` is a valid IRP.
    unsafe {
        current = io_get_current_irp_stack_location(irp);
    }
    // The next location is the array element before the current one; `wrapping_sub` keeps
    // this a pure address computation (the caller guarantees it stays inside the IRP).
    current.wrapping_sub(1)
}

/// `IoSetCompletionRoutine(Irp, Routine, Context, TRUE, TRUE, TRUE)` (a wdm.h inline).
///
/// IRQL: any.
///
/// # Safety
/// As [`io_get_next_irp_stack_location`]; `routine` must be safe to call with `context`
/// at `DISPATCH_LEVEL` for as long as the IRP can complete.
pub unsafe fn io_set_completion_routine(
    irp: *mut IRP,
    routine: IoCompletionRoutine,
    context: *mut c_void,
) {
    let next;
    // SAFETY: The caller guarantees the IRP has a next stack location.
    unsafe {
        next = io_get_next_irp_stack_location(irp);
    }
    // SAFETY: Both types are `extern "system"` function pointers of the same size;
    // `windows-sys` only erases the parameter list of PIO_COMPLETION_ROUTINE, and the I/O
    // manager calls it with exactly the IO_COMPLETION_ROUTINE parameters.
    let erased = unsafe {
        core::mem::transmute::<IoCompletionRoutine, unsafe extern "system" fn() -> NTSTATUS>(
            routine,
        )
    };
    // SAFETY: `next` is a stack location inside the IRP (caller's guarantee) that this
    // driver owns until it passes the IRP on.
    unsafe {
        (*next).CompletionRoutine = Some(erased);
    }
    // SAFETY: As above.
    unsafe {
        (*next).Context = context;
    }
    // SAFETY: As above.
    unsafe {
        (*next).Control = SL_INVOKE_ON_ALL;
    }
}

/// `IoSetCompletionRoutineEx(Device, Irp, Routine, Context, TRUE, TRUE, TRUE)`.
///
/// Like [`io_set_completion_routine`], but the I/O manager holds a reference on `device` until
/// the routine has returned, so the driver image cannot be unloaded while the routine still runs
/// (a routine running in an unloaded image is bugcheck 0xCE). It allocates a small context
/// that only the IRP's completion frees: call it only on an IRP that will be completed.
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Errors
/// `STATUS_INSUFFICIENT_RESOURCES` if the context cannot be allocated (nothing was set).
///
/// # Safety
/// As [`io_set_completion_routine`]; `device` must be a device object of this driver that
/// outlives the IRP.
pub unsafe fn io_set_completion_routine_ex(
    device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    routine: IoCompletionRoutine,
    context: *mut c_void,
) -> Result<(), NTSTATUS> {
    // SAFETY: As in `io_set_completion_routine`: only the parameter list is erased.
    let erased = unsafe {
        core::mem::transmute::<IoCompletionRoutine, unsafe extern "system" fn() -> NTSTATUS>(
            routine,
        )
    };
    let status;
    // SAFETY: 1. `device` is this driver's device (caller's guarantee);
    //         2. `irp` has a next stack location the driver owns (caller's guarantee);
    //         3. IRQL <= DISPATCH_LEVEL.
    unsafe {
        status = IoSetCompletionRoutineEx(
            device,
            irp,
            Some(erased),
            context.cast_const(),
            true,
            true,
            true,
        );
    }
    if status < 0 { Err(status) } else { Ok(()) }
}

/// `IoSetCancelRoutine` (a wdm.h macro): sets `routine`, returns the previous one.
///
/// An `InterlockedExchangePointer` on `Irp->CancelRoutine`. `None` back from clearing means `IoCancelIrp`
/// already took the routine and calls it (or has).
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `irp` must be a live IRP this driver owns (or a provider, for its own cancel routine).
pub unsafe fn io_set_cancel_routine(irp: *mut IRP, routine: DRIVER_CANCEL) -> DRIVER_CANCEL {
    let field;
    // SAFETY: `irp` is valid (caller's guarantee); only an address is computed.
    unsafe {
        field = (&raw mut (*irp).CancelRoutine).cast::<*mut c_void>();
    }
    let new = routine.map_or(core::ptr::null_mut(), |f| f as *mut c_void);
    // SeqCst: InterlockedExchangePointer is a full barrier, so this promises no less than the
    // macro. (Set-routine-then-check-Cancel against IoCancelIrp holds with AcqRel too, as both
    // sides swap this field; SeqCst also orders the swap against SeqCst accesses elsewhere.)
    // SAFETY: The field is a pointer-sized, pointer-aligned function pointer slot that every
    // writer updates atomically (this function, and IoCancelIrp on Windows).
    let old = unsafe { core::sync::atomic::AtomicPtr::from_ptr(field) }
        .swap(new, core::sync::atomic::Ordering::SeqCst);
    if old.is_null() {
        None
    } else {
        // SAFETY: A non-null value in the slot was stored as a DRIVER_CANCEL function.
        Some(unsafe {
            core::mem::transmute::<
                *mut c_void,
                unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut IRP),
            >(old)
        })
    }
}

/// `IoMarkIrpPending` (a wdm.h inline): sets `SL_PENDING_RETURNED` in the current location.
///
/// IRQL: any.
///
/// # Safety
/// As [`io_get_current_irp_stack_location`]; the caller must then return `STATUS_PENDING`.
pub unsafe fn io_mark_irp_pending(irp: *mut IRP) {
    let current;
    // SAFETY: The caller guarantees `irp` is valid with a current stack location.
    unsafe {
        current = io_get_current_irp_stack_location(irp);
    }
    // SAFETY: `current` points into the IRP's stack, owned by this driver right now.
    // SL_PENDING_RETURNED is 0x01, so the narrowing is exact.
    unsafe {
        #[allow(clippy::cast_possible_truncation)]
        {
            (*current).Control |= SL_PENDING_RETURNED as u8;
        }
    }
}
