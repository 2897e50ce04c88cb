//! The WDM front door: `IoCreateDevice` + a `MajorFunction` table, no WDK needed.
//!
//! The device is created with `FILE_DEVICE_SECURE_OPEN` and, before anything can reach it,
//! given the same admin-only descriptor the KMDF front door's SDDL gives its control device
//! (`SDDL_DEVOBJ_SYS_ALL_ADM_ALL`, see [`crate::security`]): `IoCreateDeviceSecure` is in
//! wdmsec.lib, which this WDK-less build cannot link, and the default device ACL would let
//! every user open it.

use core::ffi::c_void;
use core::ptr::NonNull;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IRP};
use windows_sys::Wdk::System::SystemServices::{
    FILE_DEVICE_SECURE_OPEN, IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL,
    IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink,
    IoReleaseCancelSpinLock, IofCompleteRequest,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_HANDLE, STATUS_PENDING, STATUS_SUCCESS,
    STATUS_UNSUCCESSFUL, UNICODE_STRING,
};
use windows_sys::Win32::System::Ioctl::{
    FILE_DEVICE_NETWORK, METHOD_BUFFERED, METHOD_IN_DIRECT, METHOD_OUT_DIRECT,
};
use wskudp_abi::ioctl::method_of;
use wskudp_core::ddi::nt::{
    device_io_control_parameters, io_get_current_irp_stack_location, io_mark_irp_pending,
    io_set_cancel_routine,
};
use wskudp_core::pool::{PoolBox, PoolTag, TAG_DRIVER};
use wskudp_core::{CancelFn, CancelHooks, Driver, DriverDevice, HandleState, IoctlRequest};

use crate::{DEVICE_NAME, DOS_DEVICE_NAME};

/// One open handle's [`HandleState`], kept in its file object's `FsContext`.
const TAG_HANDLE: PoolTag = PoolTag::new(*b"WkuH");

/// `IO_NO_INCREMENT`.
const IO_NO_INCREMENT: i8 = 0;

/// A `DRIVER_DISPATCH` routine.
type Dispatch = unsafe extern "system" fn(*const DEVICE_OBJECT, *mut IRP) -> NTSTATUS;

/// The device extension: the driver state, owned by the device from `DriverEntry` to unload.
#[repr(C)]
struct Extension {
    driver: NonNull<Driver>,
}

/// A `UNICODE_STRING` over a static UTF-16 name.
fn unicode(name: &'static [u16]) -> UNICODE_STRING {
    crate::unicode(name, |bytes, buffer| UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: buffer,
    })
}

/// The driver state pointer kept in the extension of a device created by `driver_entry`.
///
/// # Safety
/// `device` must be this driver's device, whose extension `driver_entry` initialized and
/// unload has not torn down.
unsafe fn state_of(device: *const DEVICE_OBJECT) -> NonNull<Driver> {
    let extension;
    // SAFETY: `device` is this driver's live device (caller's guarantee).
    unsafe {
        extension = (*device).DeviceExtension.cast::<Extension>();
    }
    let driver;
    // SAFETY: `driver_entry` wrote a valid Extension before publishing the device.
    unsafe {
        driver = (*extension).driver;
    }
    driver
}

/// The driver state of a device created by `driver_entry`.
///
/// # Safety
/// As [`state_of`].
unsafe fn driver_of<'a>(device: *const DEVICE_OBJECT) -> &'a Driver {
    // SAFETY: The device is ours (caller's guarantee).
    let driver = unsafe { state_of(device) };
    // SAFETY: The driver state lives until unload, after which no IRP reaches the device.
    unsafe { driver.as_ref() }
}

/// `DriverEntry`.
///
/// IRQL: `PASSIVE_LEVEL`.
///
/// # Safety
/// Called by the I/O manager with its driver object.
pub unsafe extern "system" fn driver_entry(
    driver_object: *mut DRIVER_OBJECT,
    _registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    let name = unicode(&DEVICE_NAME);
    let mut device: *mut DEVICE_OBJECT = core::ptr::null_mut();
    let status;
    // SAFETY: 1. `driver_object` is the I/O manager's; 2. the name is a valid UNICODE_STRING;
    //         3. `device` is writable; 4. PASSIVE_LEVEL.
    unsafe {
        status = IoCreateDevice(
            driver_object,
            u32::try_from(size_of::<Extension>()).unwrap_or(u32::MAX),
            &raw const name,
            FILE_DEVICE_NETWORK,
            FILE_DEVICE_SECURE_OPEN,
            false,
            &raw mut device,
        );
    }
    if status < 0 {
        return status;
    }
    let Some(device_ref) = NonNull::new(device) else {
        return STATUS_UNSUCCESSFUL;
    };
    // Admin-only before the device has a link or leaves DO_DEVICE_INITIALIZING; fail closed.
    // SAFETY: Our device, just created; PASSIVE_LEVEL.
    let status = unsafe { crate::security::restrict_to_administrators(device) };
    if status < 0 {
        // SAFETY: Our device, created above, with nothing referring to it yet.
        unsafe { IoDeleteDevice(device) };
        return status;
    }
    // SAFETY: The device is this driver's, and is deleted only after the driver state is
    // dropped (`tear_down`).
    let driver = match Driver::create(unsafe { DriverDevice::new(device_ref) }) {
        Ok(driver) => driver,
        Err(status) => {
            // SAFETY: Our device, created above, with nothing referring to it yet.
            unsafe { IoDeleteDevice(device) };
            return status;
        }
    };
    let extension;
    // SAFETY: IoCreateDevice succeeded: `device` is live with an extension of our size.
    unsafe {
        extension = (*device).DeviceExtension.cast::<Extension>();
    }
    // SAFETY: The extension is ours, sized and aligned for Extension (pool-aligned), unused.
    unsafe {
        extension.write(Extension {
            driver: PoolBox::into_raw(driver),
        });
    }
    let link = unicode(&DOS_DEVICE_NAME);
    let status;
    // SAFETY: Both names are valid UNICODE_STRINGs; PASSIVE_LEVEL.
    unsafe {
        status = IoCreateSymbolicLink(&raw const link, &raw const name);
    }
    if status < 0 {
        // SAFETY: The device and its extension are ours and nothing else refers to them yet.
        unsafe { tear_down(device) };
        return status;
    }
    let routines: [(u32, Dispatch); 4] = [
        (IRP_MJ_CREATE, dispatch_create),
        (IRP_MJ_CLOSE, dispatch_close),
        (IRP_MJ_CLEANUP, dispatch_cleanup),
        (IRP_MJ_DEVICE_CONTROL, dispatch_device_control),
    ];
    for (major, routine) in routines {
        // SAFETY: `driver_object` is ours to fill during DriverEntry.
        let table = unsafe { &mut (*driver_object).MajorFunction };
        if let Some(slot) = table.get_mut(major as usize) {
            *slot = Some(routine);
        }
    }
    // SAFETY: As above.
    unsafe {
        (*driver_object).DriverUnload = Some(driver_unload);
    }
    STATUS_SUCCESS
}

/// Drops the driver state (closing every socket, deregistering WSK) and deletes the device.
///
/// IRQL: `PASSIVE_LEVEL`.
///
/// # Safety
/// `device` must be this driver's device with an initialized extension, no longer reachable
/// by new requests.
unsafe fn tear_down(device: *mut DEVICE_OBJECT) {
    // SAFETY: The device is ours with an initialized extension (caller's guarantee).
    let driver = unsafe { state_of(device) };
    // SAFETY: The pointer came from PoolBox::into_raw with TAG_DRIVER and is taken back once.
    drop(unsafe { PoolBox::from_raw(driver, TAG_DRIVER) });
    // SAFETY: The device is ours; PASSIVE_LEVEL.
    unsafe {
        IoDeleteDevice(device);
    }
}

/// `DriverUnload`: the I/O manager calls it only once every handle is closed (so every
/// socket is already closed by cleanup) .
///
/// IRQL: `PASSIVE_LEVEL`.
unsafe extern "system" fn driver_unload(driver_object: *const DRIVER_OBJECT) {
    let link = unicode(&DOS_DEVICE_NAME);
    // SAFETY: The link was created in DriverEntry; PASSIVE_LEVEL.
    unsafe {
        IoDeleteSymbolicLink(&raw const link);
    }
    let device;
    // SAFETY: `driver_object` is ours.
    unsafe {
        device = (*driver_object).DeviceObject;
    }
    if !device.is_null() {
        // SAFETY: Our one device, initialized by DriverEntry; no new request can arrive.
        unsafe { tear_down(device) };
    }
}

/// Completes `irp` with `status` and no output.
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `irp` must be a request this driver owns and has not completed.
unsafe fn complete(irp: *mut IRP, status: NTSTATUS, information: usize) {
    let status_slot;
    // SAFETY: The IRP is ours (caller's guarantee); only an address is computed.
    unsafe {
        status_slot = &raw mut (*irp).IoStatus.Anonymous.Status;
    }
    // SAFETY: Writing the NTSTATUS member of the IRP's IoStatus union.
    unsafe {
        status_slot.write(status);
    }
    // SAFETY: As above.
    unsafe {
        (*irp).IoStatus.Information = information;
    }
    // SAFETY: Completing an IRP we own, once; IofCompleteRequest allows <= DISPATCH_LEVEL.
    unsafe {
        IofCompleteRequest(irp, IO_NO_INCREMENT);
    }
}

/// The file object an IRP came through.
///
/// # Safety
/// `irp` must be a request delivered to this driver.
unsafe fn file_object_of(irp: *mut IRP) -> *mut FILE_OBJECT {
    let location;
    // SAFETY: A delivered IRP has a current stack location.
    unsafe {
        location = io_get_current_irp_stack_location(irp);
    }
    let file;
    // SAFETY: `location` is the IRP's current stack location.
    unsafe {
        file = (*location).FileObject;
    }
    file
}

/// The handle state `dispatch_create` put in `file`'s `FsContext`, if any.
///
/// # Safety
/// `file` must be null or a file object opened on this driver's device.
unsafe fn handle_of<'a>(file: *mut FILE_OBJECT) -> Option<&'a HandleState> {
    if file.is_null() {
        return None;
    }
    let context;
    // SAFETY: A live file object of our device (caller's guarantee).
    unsafe {
        context = (*file).FsContext.cast::<HandleState>();
    }
    // SAFETY: `FsContext` is null or the HandleState `dispatch_create` stored, freed only by
    // `dispatch_close`, after every other IRP on the file object.
    unsafe { context.as_ref() }
}

/// `IRP_MJ_CREATE`: a new handle; its state goes in the file object's `FsContext`.
///
/// IRQL: `PASSIVE_LEVEL`.
unsafe extern "system" fn dispatch_create(device: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: The I/O manager delivered this IRP to our device.
    let file = unsafe { file_object_of(irp) };
    let status = match PoolBox::try_new(HandleState::new(), TAG_HANDLE) {
        Ok(handle) if !file.is_null() => {
            // SAFETY: Our device, between DriverEntry and unload.
            unsafe { driver_of(device) }.open_handle(&handle);
            // SAFETY: The file object is being opened on our device: FsContext is ours.
            unsafe {
                (*file).FsContext = PoolBox::into_raw(handle).as_ptr().cast();
            }
            STATUS_SUCCESS
        }
        Ok(_) => STATUS_UNSUCCESSFUL,
        Err(_) => STATUS_INSUFFICIENT_RESOURCES,
    };
    // SAFETY: Ours to complete.
    unsafe { complete(irp, status, 0) };
    status
}

/// `IRP_MJ_CLOSE`: the file object goes away (after every IRP on it completed); so does its
/// handle state.
///
/// IRQL: `PASSIVE_LEVEL`.
unsafe extern "system" fn dispatch_close(_device: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: The I/O manager delivered this IRP to our device.
    let file = unsafe { file_object_of(irp) };
    if !file.is_null() {
        let context;
        // SAFETY: A file object of our device, being closed: FsContext is ours.
        unsafe {
            context = core::mem::replace(&mut (*file).FsContext, core::ptr::null_mut());
        }
        if let Some(handle) = NonNull::new(context.cast::<HandleState>()) {
            // SAFETY: Stored by `dispatch_create` from PoolBox::into_raw(TAG_HANDLE); taken once.
            drop(unsafe { PoolBox::from_raw(handle, TAG_HANDLE) });
        }
    }
    // SAFETY: Ours to complete.
    unsafe { complete(irp, STATUS_SUCCESS, 0) };
    STATUS_SUCCESS
}

/// `IRP_MJ_CLEANUP`: the last user handle on a file object is closed; close its sockets
/// (their sends in flight are cancelled and completed first).
///
/// IRQL: `PASSIVE_LEVEL`.
unsafe extern "system" fn dispatch_cleanup(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: The I/O manager delivered this IRP to our device.
    let file = unsafe { file_object_of(irp) };
    // SAFETY: A file object of our device.
    if let Some(handle) = unsafe { handle_of(file) } {
        // SAFETY: Our device, between DriverEntry and unload.
        unsafe { driver_of(device) }.cleanup(handle);
    }
    // SAFETY: Ours to complete.
    unsafe { complete(irp, STATUS_SUCCESS, 0) };
    STATUS_SUCCESS
}

/// Core's `CompleteFn` for WDM: completes the IRP with core's status and output size.
///
/// IRQL: <= `DISPATCH_LEVEL`, any thread.
///
/// # Safety
/// `context` must be an IRP marked pending by `dispatch_device_control`, completed once.
unsafe fn complete_ioctl(context: *mut c_void, status: NTSTATUS, information: usize) {
    // SAFETY: Core calls this exactly once per request, with the IRP given as context.
    unsafe { complete(context.cast::<IRP>(), status, information) };
}

/// Where a cancelable request keeps core's cancel callback: the IRP's
/// `Tail.Overlay.DriverContext`, the driver's to use while it owns the IRP.
///
/// # Safety
/// `irp` must be a request this driver owns.
unsafe fn driver_context(irp: *mut IRP) -> *mut [*mut c_void; 4] {
    let slot;
    // SAFETY: The IRP is ours (caller's guarantee); only an address is computed. The
    // DriverContext member of the overlay is the one a driver may use while it owns the IRP.
    unsafe {
        slot = &raw mut (*irp).Tail.Overlay.Anonymous1.Anonymous.DriverContext;
    }
    slot
}

/// [`CancelHooks::mark`] for WDM: the callback and cookie go in `DriverContext`, then the
/// cancel routine is set and `Irp->Cancel` checked ("Synchronizing IRP Cancellation": a cancel
/// that came first is honoured if the routine can be taken back).
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `context` must be a pending device-control IRP this driver owns.
unsafe fn mark_cancelable(context: *mut c_void, on_cancel: CancelFn, cookie: *mut c_void) -> bool {
    let irp = context.cast::<IRP>();
    // SAFETY: Ours, pending.
    let slots = unsafe { driver_context(irp) };
    // SAFETY: DriverContext is ours to use while we own the IRP.
    unsafe {
        *slots = [
            on_cancel as *mut c_void,
            cookie,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        ];
    }
    // SAFETY: Ours; the routine reads DriverContext, written above.
    unsafe { io_set_cancel_routine(irp, Some(cancel_routine)) };
    let cancelled;
    // SAFETY: Ours; Cancel is set by IoCancelIrp before it takes the routine.
    unsafe {
        cancelled = (*irp).Cancel;
    }
    // SAFETY: Ours.
    !(cancelled && unsafe { io_set_cancel_routine(irp, None) }.is_some())
}

/// [`CancelHooks::unmark`] for WDM: `true` if the cancel routine was taken back before
/// `IoCancelIrp` claimed it.
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `context` must be an IRP [`mark_cancelable`] marked.
unsafe fn unmark_cancelable(context: *mut c_void) -> bool {
    // SAFETY: Ours (caller's guarantee).
    unsafe { io_set_cancel_routine(context.cast::<IRP>(), None) }.is_some()
}

/// The cancel hooks of every device-control request.
static CANCEL_HOOKS: CancelHooks = CancelHooks {
    mark: mark_cancelable,
    unmark: unmark_cancelable,
};

/// The IRP's cancel routine (`DRIVER_CANCEL`): releases the cancel spin lock `IoCancelIrp`
/// holds, then tells core, which completes the request once its sends are cancelled.
///
/// IRQL: `DISPATCH_LEVEL` (with the cancel spin lock held on entry).
unsafe extern "system" fn cancel_routine(_device: *mut DEVICE_OBJECT, irp: *mut IRP) {
    let irql;
    // SAFETY: IoCancelIrp stored its IRQL in the IRP it cancels.
    unsafe {
        irql = (*irp).CancelIrql;
    }
    // SAFETY: IoCancelIrp calls this with the cancel spin lock held.
    unsafe { IoReleaseCancelSpinLock(irql) };
    // SAFETY: The IRP is ours (IoCancelIrp cancels it on our behalf).
    let slots = unsafe { driver_context(irp) };
    // SAFETY: `mark_cancelable` wrote them before setting this routine.
    let [callback, cookie, ..] = unsafe { *slots };
    if callback.is_null() {
        return;
    }
    // SAFETY: Stored from a CancelFn by `mark_cancelable`.
    let on_cancel = unsafe { core::mem::transmute::<*mut c_void, CancelFn>(callback) };
    // SAFETY: Core's callback with its cookie, once (IoCancelIrp took the routine once).
    unsafe { on_cancel(cookie) };
}

/// `IRP_MJ_DEVICE_CONTROL`: hands the request to core. It is always marked pending and
/// completed through `complete_ioctl`, before or after this returns.
///
/// IRQL: `PASSIVE_LEVEL` (the I/O manager calls it in the requester's thread).
unsafe extern "system" fn dispatch_device_control(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    let location;
    // SAFETY: The I/O manager delivered this IRP: it has a current stack location.
    unsafe {
        location = io_get_current_irp_stack_location(irp);
    }
    // SAFETY: A device-control location; read through core's wdm.h-exact view (windows-sys
    // misplaces these fields).
    let parameters = unsafe { device_io_control_parameters(location) };
    // SAFETY: The I/O manager delivered this IRP to our device.
    let file = unsafe { file_object_of(irp) };
    // SAFETY: A file object of our device.
    let Some(handle) = (unsafe { handle_of(file) }) else {
        // SAFETY: Ours to complete; not marked pending.
        unsafe { complete(irp, STATUS_INVALID_HANDLE, 0) };
        return STATUS_INVALID_HANDLE;
    };
    let method = method_of(parameters.IoControlCode);
    let direct = matches!(method, METHOD_IN_DIRECT | METHOD_OUT_DIRECT);
    let buffer = if method == METHOD_BUFFERED || direct {
        let slot;
        // SAFETY: A delivered IRP; only an address is computed.
        unsafe {
            slot = &raw const (*irp).AssociatedIrp.SystemBuffer;
        }
        // SAFETY: For METHOD_BUFFERED and the direct methods (their input),
        // AssociatedIrp.SystemBuffer is the union member in use.
        unsafe { slot.read() }.cast::<u8>()
    } else {
        // Core implements METHOD_NEITHER for nothing; it refuses the request without buffers.
        core::ptr::null_mut()
    };
    let (input_len, output_len) = match (buffer.is_null(), direct) {
        (true, _) => (0, 0),
        (false, false) => (
            parameters.InputBufferLength as usize,
            parameters.OutputBufferLength as usize,
        ),
        // A direct method's output buffer is Irp->MdlAddress, not the system buffer.
        (false, true) => (parameters.InputBufferLength as usize, 0),
    };
    // SAFETY: Marked pending before core may complete it; STATUS_PENDING is returned below.
    unsafe { io_mark_irp_pending(irp) };
    // SAFETY: 1. the system buffer is max(input, output) bytes of non-paged memory, valid
    //            until the IRP completes;
    //         2. `complete_ioctl` completes the IRP once, at <= DISPATCH_LEVEL, any thread.
    let mut request = unsafe {
        IoctlRequest::new(
            parameters.IoControlCode,
            buffer,
            input_len,
            output_len,
            complete_ioctl,
            irp.cast::<c_void>(),
        )
    };
    if direct {
        let mdl;
        // SAFETY: A delivered IRP.
        unsafe {
            mdl = (*irp).MdlAddress;
        }
        // SAFETY: The I/O manager's MDL over the output buffer (null when it is empty),
        // locked until the IRP completes ("Buffer Descriptions for I/O Control Codes").
        request =
            unsafe { request.with_direct_output(mdl, parameters.OutputBufferLength as usize) };
    }
    // SAFETY: The cancel hooks take this IRP (the request's context) until it completes.
    let request = unsafe { request.with_cancel(&CANCEL_HOOKS) };
    // SAFETY: Our device, between DriverEntry and unload.
    unsafe { driver_of(device) }.dispatch(handle, request);
    STATUS_PENDING
}
