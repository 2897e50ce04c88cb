//! The function table and the calls through it.
//!
//! A KMDF driver reaches the framework only through `WdfFunctions_01033`, a table of function
//! pointers the loader fills when it binds the driver (`WdfVersionBind`, run by the
//! `FxDriverEntry` stub before `DriverEntry`), plus `WdfDriverGlobals`, passed as every call's
//! first argument, and `WdfFunctionCount`, the table's length (wdf.h:60-63,
//! wdffuncenum.h:21 and :91). The headers' inline wrappers make each call as
//! `((PFN_WDFXXX) WdfFunctions[WdfXxxTableIndex])(WdfDriverGlobals, ...)`; so do the
//! functions below, which `call_unsafe_wdf_function_binding!` names.

use core::ffi::{c_int, c_void};

#[allow(
    clippy::wildcard_imports,
    reason = "every parameter type of every declared call"
)]
use crate::types::*;

unsafe extern "C" {
    /// `WdfFunctions`, renamed `WdfFunctions_01033` by wdf.h:60 for KMDF 1.33.
    #[link_name = "WdfFunctions_01033"]
    pub static mut WdfFunctions: *const WDFFUNC;
    /// `WdfDriverGlobals` (wdffuncenum.h:21).
    pub static mut WdfDriverGlobals: PWDF_DRIVER_GLOBALS;
    /// `WdfFunctionCount` (wdffuncenum.h:91): entries the bound framework provides.
    pub static mut WdfFunctionCount: ULONG;
}

/// The table entry at `index`, or `None` past the bound framework's count.
///
/// IRQL: any.
///
/// # Safety
/// The driver must be bound (`WdfFunctions` points to `WdfFunctionCount` entries), as it is
/// from `DriverEntry` until unload.
unsafe fn table_entry(index: _WDFFUNCENUM::Type) -> WDFFUNC {
    let table;
    // SAFETY: Reading the pointer value (not a reference) of a static the loader wrote
    // before DriverEntry and never changes while the driver runs.
    unsafe {
        table = WdfFunctions;
    }
    let count;
    // SAFETY: As above, for the count.
    unsafe {
        count = WdfFunctionCount;
    }
    let index = usize::try_from(index).ok()?;
    if table.is_null() || index >= count as usize {
        return None;
    }
    let slot = table.wrapping_add(index);
    let entry;
    // SAFETY: `index < count` and the table holds `count` initialized entries (caller's
    // guarantee), so `slot` is in bounds.
    unsafe {
        entry = slot.read();
    }
    entry
}

/// The driver globals to pass as every call's first argument.
///
/// # Safety
/// As [`table_entry`].
unsafe fn driver_globals() -> PWDF_DRIVER_GLOBALS {
    let globals;
    // SAFETY: Reading the pointer value the loader wrote before DriverEntry.
    unsafe {
        globals = WdfDriverGlobals;
    }
    globals
}

/// Declares, for each function: its table index in `_WDFFUNCENUM`, its `PFN_WDFXXX` type,
/// and a wrapper that calls through the table like the header's inline function.
macro_rules! wdf_functions {
    ($(
        $(#[$attribute:meta])*
        $name:ident = $index:ident ($value:literal), $pfn:ident: fn($($param:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
    )*) => {
        /// `_WDFFUNCENUM` (wdffuncenum.h:195), the entries wskudp and the calls declared here use.
        pub mod _WDFFUNCENUM {
            pub type Type = core::ffi::c_int;
            $(pub const $index: Type = $value;)*
            /// wdffuncenum.h:655.
            pub const WdfFunctionTableNumEntries: Type = 458;
        }

        $(
            pub type $pfn = Option<
                unsafe extern "C" fn(DriverGlobals: PWDF_DRIVER_GLOBALS, $($param: $ty),*) $(-> $ret)?
            >;
        )*

        /// The calls `call_unsafe_wdf_function_binding!` expands to.
        #[doc(hidden)]
        pub mod __calls {
            #[allow(clippy::wildcard_imports, reason = "the parameter types of every call")]
            use super::*;
            $(
                $(#[$attribute])*
                #[inline(always)]
                #[allow(clippy::missing_safety_doc, reason = "the WDF function's own contract")]
                pub unsafe fn $name($($param: $ty),*) $(-> $ret)? {
                    // SAFETY: The caller is a bound KMDF driver (the macro's contract).
                    let entry = unsafe { table_entry(_WDFFUNCENUM::$index) };
                    // SAFETY: The table entry at this index has this function's type: WDF keeps
                    // index and signature paired (the header casts it the same way).
                    let function = unsafe {
                        core::mem::transmute::<WDFFUNC, $pfn>(entry)
                    };
                    let Some(function) = function else {
                        // What the real `call_unsafe_wdf_function_binding!` does too.
                        unreachable!(concat!(stringify!($name), " is not in the bound WDF function table"));
                    };
                    // SAFETY: 1. the driver globals are the bound driver's;
                    //         2. the arguments follow the function's contract (caller's duty).
                    let globals = unsafe { driver_globals() };
                    // SAFETY: As above.
                    unsafe { function(globals, $($param),*) }
                }
            )*
        }
    };
}

wdf_functions! {
    #[must_use]
    WdfDriverCreate = WdfDriverCreateTableIndex(116), PFN_WDFDRIVERCREATE: fn(
        DriverObject: PDRIVER_OBJECT,
        RegistryPath: PCUNICODE_STRING,
        DriverAttributes: PWDF_OBJECT_ATTRIBUTES,
        DriverConfig: PWDF_DRIVER_CONFIG,
        Driver: *mut WDFDRIVER,
    ) -> NTSTATUS;
    #[must_use]
    WdfControlDeviceInitAllocate = WdfControlDeviceInitAllocateTableIndex(25),
    PFN_WDFCONTROLDEVICEINITALLOCATE: fn(
        Driver: WDFDRIVER,
        SDDLString: *const UNICODE_STRING,
    ) -> PWDFDEVICE_INIT;
    WdfControlFinishInitializing = WdfControlFinishInitializingTableIndex(27),
    PFN_WDFCONTROLFINISHINITIALIZING: fn(Device: WDFDEVICE);
    #[must_use]
    WdfDeviceWdmGetDeviceObject = WdfDeviceWdmGetDeviceObjectTableIndex(31),
    PFN_WDFDEVICEWDMGETDEVICEOBJECT: fn(Device: WDFDEVICE) -> PDEVICE_OBJECT;
    WdfDeviceInitFree = WdfDeviceInitFreeTableIndex(54), PFN_WDFDEVICEINITFREE: fn(
        DeviceInit: PWDFDEVICE_INIT,
    );
    WdfDeviceInitSetDeviceType = WdfDeviceInitSetDeviceTypeTableIndex(66),
    PFN_WDFDEVICEINITSETDEVICETYPE: fn(DeviceInit: PWDFDEVICE_INIT, DeviceType: DEVICE_TYPE);
    #[must_use]
    WdfDeviceInitAssignName = WdfDeviceInitAssignNameTableIndex(67),
    PFN_WDFDEVICEINITASSIGNNAME: fn(
        DeviceInit: PWDFDEVICE_INIT,
        DeviceName: PCUNICODE_STRING,
    ) -> NTSTATUS;
    WdfDeviceInitSetCharacteristics = WdfDeviceInitSetCharacteristicsTableIndex(70),
    PFN_WDFDEVICEINITSETCHARACTERISTICS: fn(
        DeviceInit: PWDFDEVICE_INIT,
        DeviceCharacteristics: ULONG,
        OrInValues: BOOLEAN,
    );
    WdfDeviceInitSetFileObjectConfig = WdfDeviceInitSetFileObjectConfigTableIndex(71),
    PFN_WDFDEVICEINITSETFILEOBJECTCONFIG: fn(
        DeviceInit: PWDFDEVICE_INIT,
        FileObjectConfig: PWDF_FILEOBJECT_CONFIG,
        FileObjectAttributes: PWDF_OBJECT_ATTRIBUTES,
    );
    #[must_use]
    WdfDeviceCreate = WdfDeviceCreateTableIndex(75), PFN_WDFDEVICECREATE: fn(
        DeviceInit: *mut PWDFDEVICE_INIT,
        DeviceAttributes: PWDF_OBJECT_ATTRIBUTES,
        Device: *mut WDFDEVICE,
    ) -> NTSTATUS;
    #[must_use]
    WdfDeviceCreateSymbolicLink = WdfDeviceCreateSymbolicLinkTableIndex(80),
    PFN_WDFDEVICECREATESYMBOLICLINK: fn(
        Device: WDFDEVICE,
        SymbolicLinkName: PCUNICODE_STRING,
    ) -> NTSTATUS;
    #[must_use]
    WdfIoQueueCreate = WdfIoQueueCreateTableIndex(152), PFN_WDFIOQUEUECREATE: fn(
        Device: WDFDEVICE,
        Config: PWDF_IO_QUEUE_CONFIG,
        QueueAttributes: PWDF_OBJECT_ATTRIBUTES,
        Queue: *mut WDFQUEUE,
    ) -> NTSTATUS;
    #[must_use]
    WdfObjectGetTypedContextWorker = WdfObjectGetTypedContextWorkerTableIndex(202),
    PFN_WDFOBJECTGETTYPEDCONTEXTWORKER: fn(
        Handle: WDFOBJECT,
        TypeInfo: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
    ) -> *mut c_void;
    WdfObjectDelete = WdfObjectDeleteTableIndex(208), PFN_WDFOBJECTDELETE: fn(Object: WDFOBJECT);
    #[must_use]
    WdfRequestUnmarkCancelable = WdfRequestUnmarkCancelableTableIndex(256),
    PFN_WDFREQUESTUNMARKCANCELABLE: fn(Request: WDFREQUEST) -> NTSTATUS;
    WdfRequestComplete = WdfRequestCompleteTableIndex(263), PFN_WDFREQUESTCOMPLETE: fn(
        Request: WDFREQUEST,
        Status: NTSTATUS,
    );
    WdfRequestCompleteWithInformation = WdfRequestCompleteWithInformationTableIndex(265),
    PFN_WDFREQUESTCOMPLETEWITHINFORMATION: fn(
        Request: WDFREQUEST,
        Status: NTSTATUS,
        Information: ULONG_PTR,
    );
    #[must_use]
    WdfRequestRetrieveInputBuffer = WdfRequestRetrieveInputBufferTableIndex(269),
    PFN_WDFREQUESTRETRIEVEINPUTBUFFER: fn(
        Request: WDFREQUEST,
        MinimumRequiredLength: usize,
        Buffer: *mut PVOID,
        Length: *mut usize,
    ) -> NTSTATUS;
    #[must_use]
    WdfRequestRetrieveOutputBuffer = WdfRequestRetrieveOutputBufferTableIndex(270),
    PFN_WDFREQUESTRETRIEVEOUTPUTBUFFER: fn(
        Request: WDFREQUEST,
        MinimumRequiredSize: usize,
        Buffer: *mut PVOID,
        Length: *mut usize,
    ) -> NTSTATUS;
    #[must_use]
    WdfRequestRetrieveOutputWdmMdl = WdfRequestRetrieveOutputWdmMdlTableIndex(272),
    PFN_WDFREQUESTRETRIEVEOUTPUTWDMMDL: fn(Request: WDFREQUEST, Mdl: *mut PMDL) -> NTSTATUS;
    WdfRequestSetInformation = WdfRequestSetInformationTableIndex(275),
    PFN_WDFREQUESTSETINFORMATION: fn(Request: WDFREQUEST, Information: ULONG_PTR);
    #[must_use]
    WdfRequestGetFileObject = WdfRequestGetFileObjectTableIndex(277),
    PFN_WDFREQUESTGETFILEOBJECT: fn(Request: WDFREQUEST) -> WDFFILEOBJECT;
    // The calls windows-rust-driver-samples' KMDF echo sample makes (indexes and signatures
    // from wdffuncenum.h and the headers named on each).
    /// wdfdevice.h:2974.
    WdfDeviceInitSetPnpPowerEventCallbacks = WdfDeviceInitSetPnpPowerEventCallbacksTableIndex(55),
    PFN_WDFDEVICEINITSETPNPPOWEREVENTCALLBACKS: fn(
        DeviceInit: PWDFDEVICE_INIT,
        PnpPowerEventCallbacks: PWDF_PNPPOWER_EVENT_CALLBACKS,
    );
    /// wdfdevice.h:3502.
    WdfDeviceInitSetRequestAttributes = WdfDeviceInitSetRequestAttributesTableIndex(72),
    PFN_WDFDEVICEINITSETREQUESTATTRIBUTES: fn(
        DeviceInit: PWDFDEVICE_INIT,
        RequestAttributes: PWDF_OBJECT_ATTRIBUTES,
    );
    /// wdfdevice.h:3698.
    #[must_use]
    WdfDeviceCreateDeviceInterface = WdfDeviceCreateDeviceInterfaceTableIndex(77),
    PFN_WDFDEVICECREATEDEVICEINTERFACE: fn(
        Device: WDFDEVICE,
        InterfaceClassGUID: *const GUID,
        ReferenceString: PCUNICODE_STRING,
    ) -> NTSTATUS;
    /// wdfdevice.h:4321.
    #[must_use]
    WdfDeviceGetDefaultQueue = WdfDeviceGetDefaultQueueTableIndex(92),
    PFN_WDFDEVICEGETDEFAULTQUEUE: fn(Device: WDFDEVICE) -> WDFQUEUE;
    /// wdfdriver.h:399.
    #[must_use]
    WdfDriverRetrieveVersionString = WdfDriverRetrieveVersionStringTableIndex(122),
    PFN_WDFDRIVERRETRIEVEVERSIONSTRING: fn(Driver: WDFDRIVER, String: WDFSTRING) -> NTSTATUS;
    /// wdfdriver.h:430.
    #[must_use]
    WdfDriverIsVersionAvailable = WdfDriverIsVersionAvailableTableIndex(123),
    PFN_WDFDRIVERISVERSIONAVAILABLE: fn(
        Driver: WDFDRIVER,
        VersionAvailableParams: PWDF_DRIVER_VERSION_AVAILABLE_PARAMS,
    ) -> BOOLEAN;
    /// wdfio.h:681.
    WdfIoQueueStart = WdfIoQueueStartTableIndex(154), PFN_WDFIOQUEUESTART: fn(Queue: WDFQUEUE);
    /// wdfio.h:743.
    WdfIoQueueStopSynchronously = WdfIoQueueStopSynchronouslyTableIndex(156),
    PFN_WDFIOQUEUESTOPSYNCHRONOUSLY: fn(Queue: WDFQUEUE);
    /// wdfmemory.h:313.
    #[must_use]
    WdfMemoryCopyToBuffer = WdfMemoryCopyToBufferTableIndex(196), PFN_WDFMEMORYCOPYTOBUFFER: fn(
        SourceMemory: WDFMEMORY,
        SourceOffset: usize,
        Buffer: PVOID,
        NumBytesToCopyTo: usize,
    ) -> NTSTATUS;
    /// wdfmemory.h:354.
    #[must_use]
    WdfMemoryCopyFromBuffer = WdfMemoryCopyFromBufferTableIndex(197),
    PFN_WDFMEMORYCOPYFROMBUFFER: fn(
        DestinationMemory: WDFMEMORY,
        DestinationOffset: usize,
        Buffer: PVOID,
        NumBytesToCopyFrom: usize,
    ) -> NTSTATUS;
    /// wdfrequest.h:1127.
    #[must_use]
    WdfRequestRetrieveInputMemory = WdfRequestRetrieveInputMemoryTableIndex(267),
    PFN_WDFREQUESTRETRIEVEINPUTMEMORY: fn(Request: WDFREQUEST, Memory: *mut WDFMEMORY) -> NTSTATUS;
    /// wdfrequest.h:1158.
    #[must_use]
    WdfRequestRetrieveOutputMemory = WdfRequestRetrieveOutputMemoryTableIndex(268),
    PFN_WDFREQUESTRETRIEVEOUTPUTMEMORY: fn(
        Request: WDFREQUEST,
        Memory: *mut WDFMEMORY,
    ) -> NTSTATUS;
    /// wdfrequest.h:1620.
    #[must_use]
    WdfRequestGetIoQueue = WdfRequestGetIoQueueTableIndex(282),
    PFN_WDFREQUESTGETIOQUEUE: fn(Request: WDFREQUEST) -> WDFQUEUE;
    /// wdfstring.h:55.
    #[must_use]
    WdfStringCreate = WdfStringCreateTableIndex(308), PFN_WDFSTRINGCREATE: fn(
        UnicodeString: PCUNICODE_STRING,
        StringAttributes: PWDF_OBJECT_ATTRIBUTES,
        String: *mut WDFSTRING,
    ) -> NTSTATUS;
    /// wdfstring.h:90.
    WdfStringGetUnicodeString = WdfStringGetUnicodeStringTableIndex(309),
    PFN_WDFSTRINGGETUNICODESTRING: fn(String: WDFSTRING, UnicodeString: PUNICODE_STRING);
    /// wdfsync.h:220.
    #[must_use]
    WdfSpinLockCreate = WdfSpinLockCreateTableIndex(315), PFN_WDFSPINLOCKCREATE: fn(
        SpinLockAttributes: PWDF_OBJECT_ATTRIBUTES,
        SpinLock: *mut WDFSPINLOCK,
    ) -> NTSTATUS;
    /// wdfsync.h:251.
    WdfSpinLockAcquire = WdfSpinLockAcquireTableIndex(316),
    PFN_WDFSPINLOCKACQUIRE: fn(SpinLock: WDFSPINLOCK);
    /// wdfsync.h:284.
    WdfSpinLockRelease = WdfSpinLockReleaseTableIndex(317),
    PFN_WDFSPINLOCKRELEASE: fn(SpinLock: WDFSPINLOCK);
    /// wdftimer.h:140.
    #[must_use]
    WdfTimerCreate = WdfTimerCreateTableIndex(318), PFN_WDFTIMERCREATE: fn(
        Config: PWDF_TIMER_CONFIG,
        Attributes: PWDF_OBJECT_ATTRIBUTES,
        Timer: *mut WDFTIMER,
    ) -> NTSTATUS;
    /// wdftimer.h:175.
    WdfTimerStart = WdfTimerStartTableIndex(319), PFN_WDFTIMERSTART: fn(
        Timer: WDFTIMER,
        DueTime: LONGLONG,
    ) -> BOOLEAN;
    /// wdftimer.h:204.
    WdfTimerStop = WdfTimerStopTableIndex(320), PFN_WDFTIMERSTOP: fn(
        Timer: WDFTIMER,
        Wait: BOOLEAN,
    ) -> BOOLEAN;
    /// wdftimer.h:235.
    #[must_use]
    WdfTimerGetParentObject = WdfTimerGetParentObjectTableIndex(321),
    PFN_WDFTIMERGETPARENTOBJECT: fn(Timer: WDFTIMER) -> WDFOBJECT;
    #[must_use]
    WdfRequestMarkCancelableEx = WdfRequestMarkCancelableExTableIndex(393),
    PFN_WDFREQUESTMARKCANCELABLEEX: fn(
        Request: WDFREQUEST,
        EvtRequestCancel: PFN_WDF_REQUEST_CANCEL,
    ) -> NTSTATUS;
}

/// Calls a WDF function by name through the bound function table.
///
/// It takes what windows-drivers-rs' macro of the same name takes:
/// `call_unsafe_wdf_function_binding!(WdfIoQueueCreate, device, &mut config,
/// WDF_NO_OBJECT_ATTRIBUTES, &mut queue)`.
///
/// # Safety
/// The caller must be a KMDF driver bound to the framework, and the arguments must follow the
/// WDF function's documented contract (IRQL included); only their types are checked.
#[macro_export]
macro_rules! call_unsafe_wdf_function_binding {
    ($function:ident $(, $argument:expr)* $(,)?) => {
        $crate::__calls::$function($($argument),*)
    };
}

const _: () = assert!(size_of::<WDFFUNC>() == size_of::<*const c_void>());
const _: c_int = _WDFFUNCENUM::WdfFunctionTableNumEntries;
