//! The KMDF front door: the shipping driver, on the windows-drivers-rs crates.
//!
//! NOT BUILT HERE: `wdk-build`/`wdk-sys` only build on Windows with the WDK and LLVM, and no
//! Windows machine was available to this project. The code follows the conventions of
//! microsoft/windows-drivers-rs and Windows-rust-driver-samples (`general/echo/kmdf`):
//! callbacks as `extern "C"`, WDF structures initialized by hand with their `Size`,
//! `call_unsafe_wdf_function_binding!` for every WDF call. Build and test it on Windows
//! (`cargo make`, then `wskudp --backend device scenarios`, see README.md).
//!
//! Shape: a root-enumerated PnP device (INF `Root\wskudp`). `DriverEntry` creates core's
//! driver state and the WDF driver; `EvtDriverDeviceAdd` creates `\Device\WskUdp` (System and
//! Administrators only, `FILE_DEVICE_SECURE_OPEN`, callbacks at `PASSIVE_LEVEL`) with its
//! `\DosDevices\WskUdp` link and a parallel default queue; `EvtIoDeviceControl` hands each
//! request to core; `EvtFileCleanup` closes the handle's sockets; `EvtDriverUnload` drops the
//! driver state (closing everything, deregistering WSK).

use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

use wdk_sys::{
    _WDF_EXECUTION_LEVEL, _WDF_FILEOBJECT_CLASS, _WDF_IO_QUEUE_DISPATCH_TYPE,
    _WDF_SYNCHRONIZATION_SCOPE, _WDF_TRI_STATE, DRIVER_OBJECT, FILE_DEVICE_NETWORK,
    FILE_DEVICE_SECURE_OPEN, NTSTATUS, PCUNICODE_STRING, PDRIVER_OBJECT, PWDFDEVICE_INIT,
    STATUS_SUCCESS, ULONG, UNICODE_STRING, WDF_DRIVER_CONFIG, WDF_FILEOBJECT_CONFIG,
    WDF_IO_QUEUE_CONFIG, WDF_NO_HANDLE, WDF_NO_OBJECT_ATTRIBUTES, WDF_OBJECT_ATTRIBUTES, WDFDEVICE,
    WDFDRIVER, WDFFILEOBJECT, WDFQUEUE, WDFREQUEST, call_unsafe_wdf_function_binding,
};
use wskudp_core::pool::{PoolBox, TAG_DRIVER};
use wskudp_core::{Driver, IoctlRequest, Owner};

use crate::{DEVICE_NAME, DOS_DEVICE_NAME, utf16};

extern crate wdk_panic;

/// windows-drivers-rs' pool allocator (core itself allocates only through `PoolBox`).
#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

/// `SDDL_DEVOBJ_SYS_ALL_ADM_ALL`: full access for SYSTEM and Administrators, nobody else.
const SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";
const SDDL_LEN: usize = SDDL.len();
static SDDL_W: [u16; SDDL_LEN] = utf16(SDDL);

/// The driver state, from `DriverEntry` to `EvtDriverUnload` (one per loaded image).
static DRIVER: AtomicPtr<Driver> = AtomicPtr::new(core::ptr::null_mut());

/// The driver state while loaded.
fn driver() -> Option<&'static Driver> {
    // SAFETY: Set in DriverEntry before any callback can run, and cleared and freed only in
    // EvtDriverUnload, after every device and request is gone.
    unsafe { DRIVER.load(Ordering::Acquire).as_ref() }
}

/// A `UNICODE_STRING` over a static UTF-16 string.
fn unicode(text: &'static [u16]) -> UNICODE_STRING {
    let bytes = u16::try_from(text.len().saturating_mul(2)).unwrap_or(u16::MAX);
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        // WDF only reads the strings passed in.
        Buffer: text.as_ptr().cast_mut(),
    }
}

/// `size_of::<T>()` as the `ULONG` WDF structures carry.
fn wdf_size<T>() -> ULONG {
    ULONG::try_from(size_of::<T>()).unwrap_or(ULONG::MAX)
}

/// `DriverEntry`.
///
/// IRQL: `PASSIVE_LEVEL`.
#[unsafe(export_name = "DriverEntry")]
extern "system" fn driver_entry(
    driver_object: &mut DRIVER_OBJECT,
    registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    let state = match Driver::create() {
        Ok(state) => state,
        Err(status) => return status,
    };
    DRIVER.store(PoolBox::into_raw(state).as_ptr(), Ordering::Release);
    let mut config = WDF_DRIVER_CONFIG {
        Size: wdf_size::<WDF_DRIVER_CONFIG>(),
        EvtDriverDeviceAdd: Some(evt_driver_device_add),
        EvtDriverUnload: Some(evt_driver_unload),
        ..WDF_DRIVER_CONFIG::default()
    };
    let status;
    // SAFETY: 1. `driver_object` and `registry_path` are the I/O manager's;
    //         2. `config` is a valid WDF_DRIVER_CONFIG; no attributes, no handle wanted;
    //         3. PASSIVE_LEVEL.
    unsafe {
        status = call_unsafe_wdf_function_binding!(
            WdfDriverCreate,
            core::ptr::from_mut(driver_object) as PDRIVER_OBJECT,
            registry_path,
            WDF_NO_OBJECT_ATTRIBUTES,
            &mut config,
            WDF_NO_HANDLE.cast::<WDFDRIVER>(),
        );
    }
    if status < 0 {
        // EvtDriverUnload will not run: release the state here.
        drop_driver_state();
    }
    status
}

/// Takes the driver state back and drops it: closes every socket (waiting for sends),
/// releases the provider NPI, deregisters WSK.
///
/// IRQL: `PASSIVE_LEVEL`.
fn drop_driver_state() {
    if let Some(state) = NonNull::new(DRIVER.swap(core::ptr::null_mut(), Ordering::AcqRel)) {
        // SAFETY: Stored from PoolBox::into_raw (TAG_DRIVER) in DriverEntry; the swap makes
        // this the only taker.
        drop(unsafe { PoolBox::from_raw(state, TAG_DRIVER) });
    }
}

/// `EvtDriverUnload`.
///
/// IRQL: `PASSIVE_LEVEL`.
extern "C" fn evt_driver_unload(_driver: WDFDRIVER) {
    drop_driver_state();
}

/// `EvtDriverDeviceAdd`: creates the device, its symbolic link and its queue.
///
/// IRQL: `PASSIVE_LEVEL`.
extern "C" fn evt_driver_device_add(
    _driver: WDFDRIVER,
    mut device_init: PWDFDEVICE_INIT,
) -> NTSTATUS {
    let name = unicode(&DEVICE_NAME);
    let sddl = unicode(&SDDL_W);
    let status;
    // SAFETY: `device_init` is the framework's, valid until WdfDeviceCreate; `name` is valid.
    unsafe {
        status = call_unsafe_wdf_function_binding!(WdfDeviceInitAssignName, device_init, &name);
    }
    if status < 0 {
        return status;
    }
    // SAFETY: As above; `sddl` is a valid SDDL string.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(WdfDeviceInitAssignSDDLString, device_init, &sddl)
    };
    if status < 0 {
        return status;
    }
    // SAFETY: As above.
    let [()] = [unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitSetDeviceType,
            device_init,
            FILE_DEVICE_NETWORK
        );
    }];
    // SAFETY: As above; FILE_DEVICE_SECURE_OPEN applies the device ACL to namespace opens too.
    let [()] = [unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitSetCharacteristics,
            device_init,
            FILE_DEVICE_SECURE_OPEN,
            u8::from(true)
        );
    }];
    let mut file_config = WDF_FILEOBJECT_CONFIG {
        Size: wdf_size::<WDF_FILEOBJECT_CONFIG>(),
        EvtFileCleanup: Some(evt_file_cleanup),
        AutoForwardCleanupClose: _WDF_TRI_STATE::WdfUseDefault,
        FileObjectClass: _WDF_FILEOBJECT_CLASS::WdfFileObjectWdfCannotUseFsContexts,
        ..WDF_FILEOBJECT_CONFIG::default()
    };
    // SAFETY: As above; a valid file object configuration, no file object attributes.
    let [()] = [unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitSetFileObjectConfig,
            device_init,
            &mut file_config,
            WDF_NO_OBJECT_ATTRIBUTES
        );
    }];
    // Core opens and closes sockets by waiting for WSK: callbacks must run at PASSIVE_LEVEL.
    let mut attributes = WDF_OBJECT_ATTRIBUTES {
        Size: wdf_size::<WDF_OBJECT_ATTRIBUTES>(),
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelPassive,
        SynchronizationScope: _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeNone,
        ..WDF_OBJECT_ATTRIBUTES::default()
    };
    let mut device: WDFDEVICE = core::ptr::null_mut();
    // SAFETY: WdfDeviceCreate consumes `device_init` (and nulls it) and writes `device`.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceCreate,
            &raw mut device_init,
            &mut attributes,
            &mut device,
        )
    };
    if status < 0 {
        return status;
    }
    let link = unicode(&DOS_DEVICE_NAME);
    // SAFETY: `device` was just created; the link name is valid.
    let status =
        unsafe { call_unsafe_wdf_function_binding!(WdfDeviceCreateSymbolicLink, device, &link) };
    if status < 0 {
        return status;
    }
    create_queue(device)
}

/// The default queue: parallel, so a pending `SEND` does not hold up other requests, and not
/// power-managed (a software device).
///
/// IRQL: `PASSIVE_LEVEL`.
fn create_queue(device: WDFDEVICE) -> NTSTATUS {
    // Settings.Parallel.NumberOfPresentedRequests stays 0: unlimited, like
    // WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE's (ULONG)-1.
    let mut config = WDF_IO_QUEUE_CONFIG {
        Size: wdf_size::<WDF_IO_QUEUE_CONFIG>(),
        PowerManaged: _WDF_TRI_STATE::WdfFalse,
        DefaultQueue: u8::from(true),
        DispatchType: _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchParallel,
        EvtIoDeviceControl: Some(evt_io_device_control),
        ..WDF_IO_QUEUE_CONFIG::default()
    };
    let mut queue: WDFQUEUE = core::ptr::null_mut();
    // SAFETY: `device` is live; `config` is valid; the queue inherits the device's attributes.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfIoQueueCreate,
            device,
            &mut config,
            WDF_NO_OBJECT_ATTRIBUTES,
            &mut queue
        )
    }
}

/// `EvtFileCleanup`: the last handle on a file object is closed; close its sockets.
///
/// IRQL: `PASSIVE_LEVEL`.
extern "C" fn evt_file_cleanup(file: WDFFILEOBJECT) {
    if let Some(driver) = driver() {
        driver.cleanup(Owner(file.expose_provenance()));
    }
}

/// Core's `CompleteFn` for KMDF.
///
/// IRQL: <= `DISPATCH_LEVEL`, any thread.
///
/// # Safety
/// `context` must be a `WDFREQUEST` this driver received and has not completed.
unsafe fn complete(context: *mut c_void, status: NTSTATUS, information: usize) {
    let request: WDFREQUEST = context.cast();
    // SAFETY: Core completes each request exactly once; WdfRequestCompleteWithInformation
    // may be called at IRQL <= DISPATCH_LEVEL.
    let [()] = [unsafe {
        call_unsafe_wdf_function_binding!(
            WdfRequestCompleteWithInformation,
            request,
            status,
            u64::try_from(information).unwrap_or(0)
        );
    }];
}

/// `EvtIoDeviceControl`: hands the request to core, which completes it through `complete`.
///
/// IRQL: `PASSIVE_LEVEL` (the device's execution level).
extern "C" fn evt_io_device_control(
    _queue: WDFQUEUE,
    request: WDFREQUEST,
    output_len: usize,
    input_len: usize,
    code: ULONG,
) {
    let Some(driver) = driver() else {
        // SAFETY: The request is ours to complete.
        unsafe {
            complete(
                request.cast(),
                wskudp_abi::status::STATUS_DEVICE_NOT_READY,
                0,
            )
        };
        return;
    };
    let file;
    // SAFETY: `request` is a live request of this queue.
    unsafe {
        file = call_unsafe_wdf_function_binding!(WdfRequestGetFileObject, request);
    }
    let irp;
    // SAFETY: As above; the WDM IRP stays valid until the request completes.
    unsafe {
        irp = call_unsafe_wdf_function_binding!(WdfRequestWdmGetIrp, request);
    }
    let buffer = if wskudp_abi::ioctl::method_of(code) == 0 {
        // SAFETY: METHOD_BUFFERED: AssociatedIrp.SystemBuffer is the union member in use.
        unsafe { (*irp).AssociatedIrp.SystemBuffer.cast::<u8>() }
    } else {
        core::ptr::null_mut()
    };
    let (input_len, output_len) = if buffer.is_null() {
        (0, 0)
    } else {
        (input_len, output_len)
    };
    // SAFETY: 1. the system buffer holds max(input, output) bytes of non-paged memory until
    //            the request completes;
    //         2. `complete` completes the request once, at <= DISPATCH_LEVEL, any thread.
    let ioctl = unsafe {
        IoctlRequest::new(
            code,
            buffer,
            input_len,
            output_len,
            complete,
            request.cast(),
        )
    };
    driver.dispatch(Owner(file.expose_provenance()), ioctl);
}

const _: () = assert!(STATUS_SUCCESS == 0);
