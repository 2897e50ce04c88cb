//! The KMDF front door: the shipping driver.
//!
//! One source, two builds: on Windows with the WDK, `wdk_sys` is windows-drivers-rs' crate
//! (feature `kmdf`); elsewhere it is `wskudp-wdf-decls`, KMDF 1.33's declarations under the
//! same names, so clippy checks this file for Windows targets on Linux and the harness runs it
//! over the WDF model (`tests/kmodel/src/wdf`).
//!
//! Shape: a non-PnP KMDF driver with one control device, as Microsoft's own WSK test drivers
//! (msquic's `src/test/bin/winkernel`, win-net-test) are built. A control device has no PDO to
//! secure and needs no devgen or `PnP` INF: its SDDL (`SDDL_DEVOBJ_SYS_ALL_ADM_ALL`) is the whole
//! of its security; the service is installed by a primitive-driver INF (or `sc create`) and
//! stopped with `sc stop`, which unloads it.
//!
//! - `DriverEntry`: `WdfDriverCreate` (`WdfDriverInitNonPnpDriver`, `EvtDriverUnload`), then
//!   the control device `\Device\WskUdp` with its `\DosDevices\WskUdp` link, a file-object
//!   context holding each handle's [`HandleState`], passive execution level (core waits on WSK
//!   when it opens and closes sockets), and a parallel default queue created with
//!   `WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE`'s defaults (so `NumberOfPresentedRequests` is
//!   unlimited, not 0, which would present nothing); core's driver state; then
//!   `WdfControlFinishInitializing`.
//! - `EvtDeviceFileCreate` / `EvtFileCleanup`: a handle is opened / cleaned up in core.
//! - `EvtIoDeviceControl`: the request goes to core, which completes it through `complete`.
//! - `EvtDriverUnload`: core's state is dropped (every socket closed, WSK deregistered), then
//!   the control device is deleted.

use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

use wdk_sys::{
    _WDF_DRIVER_INIT_FLAGS, _WDF_EXECUTION_LEVEL, _WDF_FILEOBJECT_CLASS,
    _WDF_IO_QUEUE_DISPATCH_TYPE, _WDF_SYNCHRONIZATION_SCOPE, _WDF_TRI_STATE, NTSTATUS,
    PCUNICODE_STRING, PDRIVER_OBJECT, PFN_WDF_DEVICE_FILE_CREATE, PFN_WDF_DRIVER_DEVICE_ADD,
    PFN_WDF_FILE_CLEANUP, PFN_WDF_FILE_CLOSE, PMDL, PWDFDEVICE_INIT, ULONG, UNICODE_STRING,
    WDF_DRIVER_CONFIG, WDF_FILEOBJECT_CONFIG, WDF_IO_QUEUE_CONFIG, WDF_NO_OBJECT_ATTRIBUTES,
    WDF_OBJECT_ATTRIBUTES, WDF_OBJECT_CONTEXT_TYPE_INFO, WDFDEVICE, WDFDRIVER, WDFFILEOBJECT,
    WDFOBJECT, WDFQUEUE, WDFREQUEST, call_unsafe_wdf_function_binding,
};
use windows_sys::Win32::System::Ioctl::{METHOD_BUFFERED, METHOD_IN_DIRECT, METHOD_OUT_DIRECT};
use wskudp_abi::status::{
    STATUS_DEVICE_NOT_READY, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_HANDLE, STATUS_SUCCESS,
};
use wskudp_core::pool::{PoolBox, TAG_DRIVER};
use wskudp_core::{CancelFn, CancelHooks, Driver, DriverDevice, HandleState, IoctlRequest};

use crate::{DEVICE_NAME, DEVICE_SDDL_W, DOS_DEVICE_NAME};

/// `FILE_DEVICE_NETWORK` (devioctl.h): the control device's type, as the IOCTL codes'.
const FILE_DEVICE_NETWORK: ULONG = 0x0000_0012;
/// `FILE_DEVICE_SECURE_OPEN` (wdm.h).
const FILE_DEVICE_SECURE_OPEN: ULONG = 0x0000_0100;
/// The pool tag the framework uses for allocations on the driver's behalf.
const DRIVER_POOL_TAG: ULONG = u32::from_ne_bytes(*b"WkuF");

/// The driver state, from `DriverEntry` to `EvtDriverUnload` (one per loaded image).
static DRIVER: AtomicPtr<Driver> = AtomicPtr::new(core::ptr::null_mut());
/// The control device, deleted at unload.
static CONTROL_DEVICE: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// The driver state while loaded.
///
/// IRQL: any.
fn driver() -> Option<&'static Driver> {
    // SAFETY: Set in DriverEntry before the device accepts requests, and cleared and freed only
    // in EvtDriverUnload, after every handle is closed (the I/O manager calls the unload
    // routine of a driver with open handles only once they are all closed).
    unsafe { DRIVER.load(Ordering::Acquire).as_ref() }
}

/// `size_of::<T>()` as the `ULONG` `Size` of a WDF structure (`WDF_STRUCTURE_SIZE`, which is
/// `sizeof` for a driver built against the framework it runs on).
#[allow(
    clippy::cast_possible_truncation,
    reason = "WDF structures are a few dozen bytes; checked below"
)]
const fn wdf_size<T>() -> ULONG {
    assert!(size_of::<T>() <= u32::MAX as usize);
    size_of::<T>() as ULONG
}

/// A `UNICODE_STRING` over a static UTF-16 string.
fn unicode(text: &'static [u16]) -> UNICODE_STRING {
    crate::unicode(text, |bytes, buffer| UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: buffer.cast(),
    })
}

/// The `WDF_*_INIT` functions of KMDF 1.33's headers this driver uses, re-implemented.
///
/// Each produces exactly what the header's inline function writes (checked against the
/// headers by `tests/kmodel/tests/wdf_facts.rs`).
#[allow(
    clippy::field_reassign_with_default,
    reason = "assigning into an all-zero value keeps its padding zero, as the headers' RtlZeroMemory does"
)]
pub mod init {
    use super::{
        _WDF_EXECUTION_LEVEL, _WDF_FILEOBJECT_CLASS, _WDF_IO_QUEUE_DISPATCH_TYPE,
        _WDF_SYNCHRONIZATION_SCOPE, _WDF_TRI_STATE, PFN_WDF_DEVICE_FILE_CREATE,
        PFN_WDF_DRIVER_DEVICE_ADD, PFN_WDF_FILE_CLEANUP, PFN_WDF_FILE_CLOSE, ULONG,
        WDF_DRIVER_CONFIG, WDF_FILEOBJECT_CONFIG, WDF_IO_QUEUE_CONFIG, WDF_OBJECT_ATTRIBUTES,
        WDF_OBJECT_CONTEXT_TYPE_INFO, wdf_size,
    };

    // Each starts from an all-zero value and assigns fields, as the headers' RtlZeroMemory and
    // assignments do, so even padding bytes match.

    /// `WDF_DRIVER_CONFIG_INIT` (wdfdriver.h:149-158): zeroed, `Size`, `EvtDriverDeviceAdd`.
    ///
    /// IRQL: any.
    #[must_use]
    pub fn driver_config(device_add: PFN_WDF_DRIVER_DEVICE_ADD) -> WDF_DRIVER_CONFIG {
        let mut config = WDF_DRIVER_CONFIG::default();
        config.Size = wdf_size::<WDF_DRIVER_CONFIG>();
        config.EvtDriverDeviceAdd = device_add;
        config
    }

    /// `WDF_OBJECT_ATTRIBUTES_INIT` (wdfobject.h): zeroed, `Size`, and both constraints
    /// `InheritFromParent` (0 would be "Invalid").
    ///
    /// IRQL: any.
    #[must_use]
    pub fn object_attributes() -> WDF_OBJECT_ATTRIBUTES {
        let mut attributes = WDF_OBJECT_ATTRIBUTES::default();
        attributes.Size = wdf_size::<WDF_OBJECT_ATTRIBUTES>();
        attributes.ExecutionLevel = _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent;
        attributes.SynchronizationScope =
            _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent;
        attributes
    }

    /// `WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE` (wdfobject.h): [`object_attributes`] with
    /// `ContextTypeInfo = info->UniqueType`.
    ///
    /// IRQL: any.
    #[must_use]
    pub fn object_attributes_with_context(info: &ContextTypeInfo) -> WDF_OBJECT_ATTRIBUTES {
        let mut attributes = object_attributes();
        attributes.ContextTypeInfo = info.unique_type();
        attributes
    }

    /// `WDF_FILEOBJECT_CONFIG_INIT` (wdfdevice.h).
    ///
    /// `Size`, the three callbacks, `FileObjectClass = WdfFileObjectWdfCannotUseFsContexts`,
    /// `AutoForwardCleanupClose = WdfUseDefault` (the header zeroes nothing; every field is set).
    ///
    /// IRQL: any.
    #[must_use]
    pub fn file_object_config(
        create: PFN_WDF_DEVICE_FILE_CREATE,
        close: PFN_WDF_FILE_CLOSE,
        cleanup: PFN_WDF_FILE_CLEANUP,
    ) -> WDF_FILEOBJECT_CONFIG {
        let mut config = WDF_FILEOBJECT_CONFIG::default();
        config.Size = wdf_size::<WDF_FILEOBJECT_CONFIG>();
        config.EvtDeviceFileCreate = create;
        config.EvtFileClose = close;
        config.EvtFileCleanup = cleanup;
        config.FileObjectClass = _WDF_FILEOBJECT_CLASS::WdfFileObjectWdfCannotUseFsContexts;
        config.AutoForwardCleanupClose = _WDF_TRI_STATE::WdfUseDefault;
        config
    }

    /// `WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE` (wdfio.h).
    ///
    /// Zeroed, `Size`, `PowerManaged = WdfUseDefault`, `DefaultQueue = TRUE`, `DispatchType`,
    /// and for a parallel queue `Settings.Parallel.NumberOfPresentedRequests = (ULONG)-1`
    /// (unlimited).
    ///
    /// IRQL: any.
    #[must_use]
    pub fn default_queue_config(dispatch: i32) -> WDF_IO_QUEUE_CONFIG {
        let mut config = WDF_IO_QUEUE_CONFIG::default();
        config.Size = wdf_size::<WDF_IO_QUEUE_CONFIG>();
        config.PowerManaged = _WDF_TRI_STATE::WdfUseDefault;
        config.DefaultQueue = 1;
        config.DispatchType = dispatch;
        if dispatch == _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchParallel {
            config.Settings.Parallel.NumberOfPresentedRequests = ULONG::MAX;
        }
        config
    }

    /// The `WDF_OBJECT_CONTEXT_TYPE_INFO` static `WDF_DECLARE_CONTEXT_TYPE_WITH_NAME` declares
    /// (wdfobject.h): `Size`, the type's name and size, and `UniqueType` pointing at itself.
    ///
    /// IRQL: any.
    #[repr(transparent)]
    pub struct ContextTypeInfo(pub WDF_OBJECT_CONTEXT_TYPE_INFO);

    // SAFETY: Immutable after initialization, and its pointers name statics (its own address
    // and a string literal).
    unsafe impl Sync for ContextTypeInfo {}

    impl ContextTypeInfo {
        /// `WDF_GET_CONTEXT_TYPE_INFO(T)->UniqueType`, what the macros store and look up.
        #[must_use]
        pub const fn unique_type(&self) -> *const WDF_OBJECT_CONTEXT_TYPE_INFO {
            self.0.UniqueType
        }
    }
}

use init::ContextTypeInfo;

/// Each handle's [`HandleState`], as the context of its WDFFILEOBJECT
/// (`WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(HandleState, ...)`).
static HANDLE_CONTEXT: ContextTypeInfo = ContextTypeInfo(WDF_OBJECT_CONTEXT_TYPE_INFO {
    Size: wdf_size::<WDF_OBJECT_CONTEXT_TYPE_INFO>(),
    ContextName: c"HandleState".as_ptr(),
    ContextSize: size_of::<HandleState>(),
    UniqueType: &raw const HANDLE_CONTEXT.0,
    EvtDriverGetUniqueContextType: None,
});

/// What a cancelable request keeps for its `EvtRequestCancel`: core's callback and cookie.
/// All zero (no callback) until [`mark_cancelable`] fills it.
#[repr(C)]
struct CancelContext {
    on_cancel: Option<CancelFn>,
    cookie: *mut c_void,
}

/// Every request's [`CancelContext`], declared as the device's request attributes
/// (`WdfDeviceInitSetRequestAttributes`).
static REQUEST_CONTEXT: ContextTypeInfo = ContextTypeInfo(WDF_OBJECT_CONTEXT_TYPE_INFO {
    Size: wdf_size::<WDF_OBJECT_CONTEXT_TYPE_INFO>(),
    ContextName: c"CancelContext".as_ptr(),
    ContextSize: size_of::<CancelContext>(),
    UniqueType: &raw const REQUEST_CONTEXT.0,
    EvtDriverGetUniqueContextType: None,
});

/// The [`CancelContext`] of a request.
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `request` must be a live request of this driver's device (all carry the context).
unsafe fn cancel_context(request: WDFREQUEST) -> *mut CancelContext {
    let context;
    // SAFETY: A live request (caller's guarantee) whose context type is REQUEST_CONTEXT; IRQL
    // <= DISPATCH_LEVEL.
    unsafe {
        context = call_unsafe_wdf_function_binding!(
            WdfObjectGetTypedContextWorker,
            request.cast::<c_void>() as WDFOBJECT,
            REQUEST_CONTEXT.unique_type()
        );
    }
    context.cast()
}

/// [`CancelHooks::mark`] for KMDF: core's callback goes in the request's context, then
/// `WdfRequestMarkCancelableEx`, which fails with `STATUS_CANCELLED` (and calls nothing) if the
/// request was already cancelled.
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `context` must be a driver-owned `WDFREQUEST` not marked cancelable.
unsafe fn mark_cancelable(context: *mut c_void, on_cancel: CancelFn, cookie: *mut c_void) -> bool {
    let request: WDFREQUEST = context.cast();
    // SAFETY: A live request of our device (caller's guarantee).
    let slot = unsafe { cancel_context(request) };
    if slot.is_null() {
        return false;
    }
    // SAFETY: The framework-allocated context, ours while we own the request; written before
    // the request becomes cancelable, read only by `evt_request_cancel`.
    unsafe {
        slot.write(CancelContext {
            on_cancel: Some(on_cancel),
            cookie,
        });
    }
    let status;
    // SAFETY: A driver-owned request not marked yet; the callback is ours; <= DISPATCH_LEVEL.
    unsafe {
        status = call_unsafe_wdf_function_binding!(
            WdfRequestMarkCancelableEx,
            request,
            Some(evt_request_cancel)
        );
    }
    status >= 0
}

/// [`CancelHooks::unmark`] for KMDF: `WdfRequestUnmarkCancelable`, whose `STATUS_CANCELLED`
/// means `EvtRequestCancel` has run or will: the request must not be completed before it has
/// (`FxRequest::Complete`'s verifier message, `shared/core/fxrequest.cpp:400-420`).
///
/// IRQL: <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `context` must be a `WDFREQUEST` [`mark_cancelable`] marked.
unsafe fn unmark_cancelable(context: *mut c_void) -> bool {
    let status;
    // SAFETY: A marked, driver-owned request (caller's guarantee); <= DISPATCH_LEVEL.
    unsafe {
        status = call_unsafe_wdf_function_binding!(WdfRequestUnmarkCancelable, context.cast());
    }
    status >= 0
}

/// The cancel hooks of every device-control request.
static CANCEL_HOOKS: CancelHooks = CancelHooks {
    mark: mark_cancelable,
    unmark: unmark_cancelable,
};

/// `EvtRequestCancel`: tells core, which completes the request once its sends are cancelled.
///
/// IRQL: <= `DISPATCH_LEVEL`.
extern "C" fn evt_request_cancel(request: WDFREQUEST) {
    // SAFETY: The framework passes a live request of our device.
    let slot = unsafe { cancel_context(request) };
    if slot.is_null() {
        return;
    }
    // SAFETY: Written by `mark_cancelable` before the request was marked.
    let CancelContext { on_cancel, cookie } = unsafe { slot.read() };
    if let Some(on_cancel) = on_cancel {
        // SAFETY: Core's callback with its cookie, once (the framework cancels once).
        unsafe { on_cancel(cookie) };
    }
}

/// The [`HandleState`] of a file object.
///
/// IRQL: <= `DISPATCH_LEVEL`.
fn handle_of(file: WDFFILEOBJECT) -> Option<&'static HandleState> {
    if file.is_null() {
        return None;
    }
    let context;
    // SAFETY: 1. `file` is a live file object of our device (the framework passed it);
    //         2. HANDLE_CONTEXT is the type its context was declared with; IRQL <= DISPATCH.
    unsafe {
        context = call_unsafe_wdf_function_binding!(
            WdfObjectGetTypedContextWorker,
            file.cast::<c_void>() as WDFOBJECT,
            HANDLE_CONTEXT.unique_type()
        );
    }
    // SAFETY: The context is a zero-initialized HandleState (all zero is valid), which lives as
    // long as the file object: until EvtFileClose, after every request on it.
    unsafe { context.cast::<HandleState>().as_ref() }
}

/// `DriverEntry`, called by the KMDF stub (`FxDriverEntry`) once it has bound the driver.
///
/// IRQL: `PASSIVE_LEVEL`.
///
/// # Safety
/// Called once by the stub with the I/O manager's driver object and registry path.
pub unsafe extern "system" fn driver_entry(
    driver_object: PDRIVER_OBJECT,
    registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    let mut config = init::driver_config(None);
    config.EvtDriverUnload = Some(evt_driver_unload);
    config.DriverInitFlags = _WDF_DRIVER_INIT_FLAGS::WdfDriverInitNonPnpDriver.cast_unsigned();
    config.DriverPoolTag = DRIVER_POOL_TAG;
    let mut wdf_driver: WDFDRIVER = core::ptr::null_mut();
    let status;
    // SAFETY: 1. `driver_object` and `registry_path` are the loader's;
    //         2. `config` is a valid WDF_DRIVER_CONFIG for a non-PnP driver;
    //         3. no driver attributes; PASSIVE_LEVEL.
    unsafe {
        status = call_unsafe_wdf_function_binding!(
            WdfDriverCreate,
            driver_object,
            registry_path,
            WDF_NO_OBJECT_ATTRIBUTES,
            &raw mut config,
            &raw mut wdf_driver,
        );
    }
    if status < 0 {
        return status;
    }
    // On failure the framework deletes the driver and any device left (no EvtDriverUnload);
    // `create_control_device` deletes its own device first, so nothing of ours survives.
    match create_control_device(wdf_driver) {
        Ok(()) => STATUS_SUCCESS,
        Err(status) => status,
    }
}

/// Creates `\Device\WskUdp`, its link, its default queue and core's state, then lets it
/// accept opens.
///
/// IRQL: `PASSIVE_LEVEL`.
fn create_control_device(wdf_driver: WDFDRIVER) -> Result<(), NTSTATUS> {
    let sddl = unicode(&DEVICE_SDDL_W);
    let mut device_init: PWDFDEVICE_INIT;
    // SAFETY: 1. `wdf_driver` was just created; 2. `sddl` is a valid string the framework
    //         copies; PASSIVE_LEVEL.
    unsafe {
        device_init = call_unsafe_wdf_function_binding!(
            WdfControlDeviceInitAllocate,
            wdf_driver,
            &raw const sddl
        );
    }
    if device_init.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    let created = configure_and_create(&mut device_init);
    if !device_init.is_null() {
        // WdfDeviceCreate failed (or was not reached): the init is still ours to free.
        // SAFETY: An init from WdfControlDeviceInitAllocate that no WdfDeviceCreate consumed.
        unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitFree, device_init) };
    }
    let device = created?;
    let finished = finish_device(device);
    if finished.is_err() {
        // SAFETY: Our control device, with no handle open yet.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfObjectDelete,
                device.cast::<c_void>() as WDFOBJECT
            );
        };
    }
    finished
}

/// Sets up `device_init` and creates the device from it (which consumes and NULLs it).
///
/// IRQL: `PASSIVE_LEVEL`.
fn configure_and_create(device_init: &mut PWDFDEVICE_INIT) -> Result<WDFDEVICE, NTSTATUS> {
    let init = *device_init;
    // SAFETY: `init` is a live control-device init; the type is a valid DEVICE_TYPE.
    unsafe {
        call_unsafe_wdf_function_binding!(WdfDeviceInitSetDeviceType, init, FILE_DEVICE_NETWORK);
    }
    // SAFETY: As above. OrInValues keeps the framework's characteristics.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitSetCharacteristics,
            init,
            FILE_DEVICE_SECURE_OPEN,
            1
        );
    }
    let name = unicode(&DEVICE_NAME);
    let status;
    // SAFETY: As above; `name` is valid for the call (the framework copies it); PASSIVE.
    unsafe {
        status = call_unsafe_wdf_function_binding!(WdfDeviceInitAssignName, init, &raw const name);
    }
    if status < 0 {
        return Err(status);
    }
    let mut file_config =
        init::file_object_config(Some(evt_device_file_create), None, Some(evt_file_cleanup));
    let mut file_attributes = init::object_attributes_with_context(&HANDLE_CONTEXT);
    // SAFETY: As above; both structures are valid and copied by the framework.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitSetFileObjectConfig,
            init,
            &raw mut file_config,
            &raw mut file_attributes
        );
    }
    // Every request carries room for its cancel callback.
    let mut request_attributes = init::object_attributes_with_context(&REQUEST_CONTEXT);
    // SAFETY: As above; the attributes are valid and copied by the framework.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitSetRequestAttributes,
            init,
            &raw mut request_attributes
        );
    }
    // Core opens and closes sockets by waiting for WSK: every callback at PASSIVE_LEVEL, with
    // no framework lock (core synchronizes itself).
    let mut attributes = init::object_attributes();
    attributes.ExecutionLevel = _WDF_EXECUTION_LEVEL::WdfExecutionLevelPassive;
    attributes.SynchronizationScope = _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeNone;
    let mut device: WDFDEVICE = core::ptr::null_mut();
    let status;
    // SAFETY: WdfDeviceCreate consumes the init (and NULLs `device_init`) on success only.
    unsafe {
        status = call_unsafe_wdf_function_binding!(
            WdfDeviceCreate,
            core::ptr::from_mut(device_init),
            &raw mut attributes,
            &raw mut device,
        );
    }
    if status < 0 {
        return Err(status);
    }
    Ok(device)
}

/// The symbolic link, the default queue and core's state; then opens are let in.
///
/// IRQL: `PASSIVE_LEVEL`.
fn finish_device(device: WDFDEVICE) -> Result<(), NTSTATUS> {
    let link = unicode(&DOS_DEVICE_NAME);
    let status;
    // SAFETY: `device` was just created with a name; the link name is valid; PASSIVE.
    unsafe {
        status =
            call_unsafe_wdf_function_binding!(WdfDeviceCreateSymbolicLink, device, &raw const link);
    }
    if status < 0 {
        return Err(status);
    }
    // Parallel: a SEND pending on one handle must not hold up the others. A control device's
    // queue is never power-managed (the framework ignores PowerManaged for it).
    let mut queue_config =
        init::default_queue_config(_WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchParallel);
    queue_config.EvtIoDeviceControl = Some(evt_io_device_control);
    let mut queue: WDFQUEUE = core::ptr::null_mut();
    let status;
    // SAFETY: `device` is live and still initializing (a default queue must be created before
    // WdfControlFinishInitializing); the configuration is valid; the queue inherits the device's
    // attributes.
    unsafe {
        status = call_unsafe_wdf_function_binding!(
            WdfIoQueueCreate,
            device,
            &raw mut queue_config,
            WDF_NO_OBJECT_ATTRIBUTES,
            &raw mut queue
        );
    }
    if status < 0 {
        return Err(status);
    }
    let wdm_device;
    // SAFETY: `device` is live.
    unsafe {
        wdm_device = call_unsafe_wdf_function_binding!(WdfDeviceWdmGetDeviceObject, device);
    }
    let wdm_device = NonNull::new(wdm_device.cast()).ok_or(STATUS_DEVICE_NOT_READY)?;
    // SAFETY: The control device outlives the driver state: EvtDriverUnload drops the state
    // before deleting the device.
    let state = Driver::create(unsafe { DriverDevice::new(wdm_device) })?;
    DRIVER.store(PoolBox::into_raw(state).as_ptr(), Ordering::Release);
    CONTROL_DEVICE.store(device.cast(), Ordering::Release);
    // SAFETY: `device` is our control device; every setting is in place.
    unsafe { call_unsafe_wdf_function_binding!(WdfControlFinishInitializing, device) };
    Ok(())
}

/// Takes the driver state back and drops it: closes every socket (its sends cancelled),
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

/// `EvtDriverUnload` (`sc stop`, once every handle is closed): the driver state goes first,
/// then the control device (the framework would delete it next anyway).
///
/// IRQL: `PASSIVE_LEVEL`.
extern "C" fn evt_driver_unload(_driver: WDFDRIVER) {
    drop_driver_state();
    let device = CONTROL_DEVICE.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !device.is_null() {
        // SAFETY: Our control device, deleted once (the swap); no handle is open.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfObjectDelete,
                device.cast::<c_void>() as WDFOBJECT
            );
        };
    }
}

/// `EvtDeviceFileCreate`: a new handle gets its number in core.
///
/// IRQL: `PASSIVE_LEVEL`.
extern "C" fn evt_device_file_create(_device: WDFDEVICE, request: WDFREQUEST, file: WDFFILEOBJECT) {
    let status = match (driver(), handle_of(file)) {
        (Some(driver), Some(handle)) => {
            driver.open_handle(handle);
            STATUS_SUCCESS
        }
        (None, _) => STATUS_DEVICE_NOT_READY,
        (_, None) => STATUS_INVALID_HANDLE,
    };
    // SAFETY: The create request is ours to complete, once.
    unsafe { call_unsafe_wdf_function_binding!(WdfRequestComplete, request, status) };
}

/// `EvtFileCleanup`: the last handle on a file object is closed; core closes its sockets.
///
/// IRQL: `PASSIVE_LEVEL`.
extern "C" fn evt_file_cleanup(file: WDFFILEOBJECT) {
    if let (Some(driver), Some(handle)) = (driver(), handle_of(file)) {
        driver.cleanup(handle);
    }
}

/// Core's `CompleteFn` for KMDF.
///
/// IRQL: <= `DISPATCH_LEVEL`, any thread.
///
/// # Safety
/// `context` must be a `WDFREQUEST` this driver owns and has not completed.
unsafe fn complete(context: *mut c_void, status: NTSTATUS, information: usize) {
    let request: WDFREQUEST = context.cast();
    // SAFETY: Core completes each request exactly once; WdfRequestCompleteWithInformation may
    // be called at IRQL <= DISPATCH_LEVEL.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfRequestCompleteWithInformation,
            request,
            status,
            u64::try_from(information).unwrap_or(0)
        );
    }
}

/// The request's `METHOD_BUFFERED` system buffer: the input buffer when there is input, else
/// the output buffer (the same memory; KMDF fails zero-length retrievals).
///
/// IRQL: <= `DISPATCH_LEVEL`.
fn system_buffer(request: WDFREQUEST, input_len: usize, output_len: usize) -> *mut u8 {
    let mut buffer: *mut c_void = core::ptr::null_mut();
    let status;
    if input_len > 0 {
        // SAFETY: A live, driver-owned request; `buffer` is writable; Length is optional.
        unsafe {
            status = call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveInputBuffer,
                request,
                0,
                &raw mut buffer,
                core::ptr::null_mut()
            );
        }
    } else if output_len > 0 {
        // SAFETY: As above.
        unsafe {
            status = call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveOutputBuffer,
                request,
                0,
                &raw mut buffer,
                core::ptr::null_mut()
            );
        }
    } else {
        return core::ptr::null_mut();
    }
    if status < 0 {
        core::ptr::null_mut()
    } else {
        buffer.cast()
    }
}

/// The locked MDL over a direct-I/O request's output buffer (`Irp->MdlAddress`), or null when
/// the buffer is empty (`WdfRequestRetrieveOutputWdmMdl`: `STATUS_BUFFER_TOO_SMALL`).
///
/// IRQL: <= `DISPATCH_LEVEL`.
fn output_mdl(request: WDFREQUEST) -> PMDL {
    let mut mdl: PMDL = core::ptr::null_mut();
    let status;
    // SAFETY: A live, driver-owned device-control request; `mdl` is writable.
    unsafe {
        status = call_unsafe_wdf_function_binding!(
            WdfRequestRetrieveOutputWdmMdl,
            request,
            &raw mut mdl
        );
    }
    if status < 0 {
        core::ptr::null_mut()
    } else {
        mdl
    }
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
    let direct_len = output_len;
    let file;
    // SAFETY: `request` was just presented to this driver.
    unsafe {
        file = call_unsafe_wdf_function_binding!(WdfRequestGetFileObject, request);
    }
    let (Some(driver), Some(handle)) = (driver(), handle_of(file)) else {
        // SAFETY: The request is ours to complete, once.
        unsafe { complete(request.cast(), STATUS_DEVICE_NOT_READY, 0) };
        return;
    };
    let method = wskudp_abi::ioctl::method_of(code);
    let buffer = match method {
        METHOD_BUFFERED => system_buffer(request, input_len, output_len),
        // The direct methods' input is buffered too.
        METHOD_IN_DIRECT | METHOD_OUT_DIRECT if input_len > 0 => {
            system_buffer(request, input_len, 0)
        }
        // Core implements METHOD_NEITHER for nothing; it refuses the request without buffers.
        _ => core::ptr::null_mut(),
    };
    let (input_len, output_len) = match (buffer.is_null(), method) {
        (true, _) => (0, 0),
        // A direct method's output buffer is the MDL below, not the system buffer.
        (false, METHOD_BUFFERED) => (input_len, output_len),
        (false, _) => (input_len, 0),
    };
    // SAFETY: 1. the system buffer holds max(input, output) bytes of non-paged memory until
    //            the request completes;
    //         2. `complete` completes the request once, at <= DISPATCH_LEVEL, any thread.
    let mut ioctl = unsafe {
        IoctlRequest::new(
            code,
            buffer,
            input_len,
            output_len,
            complete,
            request.cast(),
        )
    };
    if matches!(method, METHOD_IN_DIRECT | METHOD_OUT_DIRECT) {
        let mdl = output_mdl(request);
        // SAFETY: The request's locked MDL over its `output_len`-byte output buffer (or null),
        // locked until the request completes ("The MDL is only valid until the request is
        // completed", WdfRequestRetrieveOutputWdmMdl).
        ioctl = unsafe {
            ioctl.with_direct_output(mdl.cast(), if mdl.is_null() { 0 } else { direct_len })
        };
    }
    // SAFETY: The cancel hooks take this request (the context) until it completes.
    let ioctl = unsafe { ioctl.with_cancel(&CANCEL_HOOKS) };
    driver.dispatch(handle, ioctl);
}
