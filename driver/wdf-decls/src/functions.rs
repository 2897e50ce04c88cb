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
        /// `_WDFFUNCENUM` (wdffuncenum.h:195), the entries wskudp uses.
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
    WdfRequestSetInformation = WdfRequestSetInformationTableIndex(275),
    PFN_WDFREQUESTSETINFORMATION: fn(Request: WDFREQUEST, Information: ULONG_PTR);
    #[must_use]
    WdfRequestGetFileObject = WdfRequestGetFileObjectTableIndex(277),
    PFN_WDFREQUESTGETFILEOBJECT: fn(Request: WDFREQUEST) -> WDFFILEOBJECT;
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
