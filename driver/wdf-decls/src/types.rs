//! Types: the C typedefs, handles, enums (as `wdk-sys` emits them: a module of constants per
//! enum, `bindgen`'s `ModuleConsts` style) and structures the KMDF front door uses.
//!
//! Header paths are relative to `src/publicinc/wdf/kmdf/1.33/` of
//! microsoft/Windows-Driver-Frameworks; WDM types come from `windows-sys` (checked against
//! mingw-w64's `wdm.h` by `tests/kmodel/tests/abi_conformance.rs`).

use core::ffi::{c_int, c_void};

pub use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IRP, MDL};
pub use windows_sys::Wdk::System::SystemServices::DEVICE_RELATION_TYPE;
pub use windows_sys::Win32::Foundation::{
    STATUS_BUFFER_OVERFLOW, STATUS_CANCELLED, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_SUCCESS, UNICODE_STRING,
};

// --- ntdef.h / basetsd.h scalars, as bindgen maps them for the MSVC targets -------------

pub type ULONG = u32;
pub type USHORT = u16;
pub type UCHAR = u8;
pub type BOOLEAN = u8;
pub type CHAR = core::ffi::c_char;
pub type LONG = i32;
pub type NTSTATUS = LONG;
pub type PVOID = *mut c_void;
pub type HANDLE = *mut c_void;
/// wdm.h's `PMDL`.
pub type PMDL = *mut MDL;
/// `unsigned __int64` on 64-bit Windows targets.
pub type ULONG_PTR = u64;
/// `SIZE_T` (basetsd.h): `ULONG_PTR`, as `wdk-sys` declares it.
pub type SIZE_T = ULONG_PTR;
/// `LONGLONG` (ntdef.h).
pub type LONGLONG = i64;
/// `ULONG64` (basetsd.h).
pub type ULONG64 = u64;
/// `KIRQL` (wdm.h).
pub type KIRQL = UCHAR;
pub type LPCSTR = *const CHAR;
/// `DEVICE_TYPE` (devioctl.h).
pub type DEVICE_TYPE = ULONG;

pub type PDRIVER_OBJECT = *mut DRIVER_OBJECT;
pub type PDEVICE_OBJECT = *mut DEVICE_OBJECT;
pub type PFILE_OBJECT = *mut FILE_OBJECT;
pub type PIRP = *mut IRP;
pub type PUNICODE_STRING = *mut UNICODE_STRING;
pub type PCUNICODE_STRING = *const UNICODE_STRING;

// --- wdm.h: the pool flags and IRQL the echo sample's code uses -----------------------------

/// `POOL_FLAGS` (wdm.h): `ULONG64`.
pub type POOL_FLAGS = ULONG64;
/// `POOL_FLAG_NON_PAGED` (wdm.h), typed `POOL_FLAGS` as `wdk-sys` types it.
///
/// mingw-w64's wdm.h predates `ExAllocatePool2`, so the value is the one
/// `driver/core/src/ddi/nt.rs` and windows-drivers-rs' `wdk-sys` (`constants.rs:56`) carry.
pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x0000_0000_0000_0040;
/// `APC_LEVEL` (wdm.h, mingw-w64 `ddk/wdm.h`), for [`PAGED_CODE`](crate::PAGED_CODE).
pub const APC_LEVEL: u32 = 1;

/// `GUID` (guiddef.h; mingw-w64 `guiddef.h:19-24`), under the field names `wdk-sys` keeps
/// (windows-sys's `GUID` renames them).
#[repr(C)]
#[derive(Debug, Copy, Clone, Default, PartialEq, Eq)]
pub struct GUID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}

// --- wdfstatus.h: the framework's own NTSTATUS values the model returns ------------------

/// `STATUS_WDF_OBJECT_ATTRIBUTES_INVALID` (wdfstatus.h:171).
pub const STATUS_WDF_OBJECT_ATTRIBUTES_INVALID: NTSTATUS = 0xC020_0209_u32.cast_signed();
/// `STATUS_WDF_NO_CALLBACK` (wdfstatus.h:189).
pub const STATUS_WDF_NO_CALLBACK: NTSTATUS = 0xC020_020B_u32.cast_signed();
/// `STATUS_WDF_PARENT_ASSIGNMENT_NOT_ALLOWED` (wdfstatus.h:225).
pub const STATUS_WDF_PARENT_ASSIGNMENT_NOT_ALLOWED: NTSTATUS = 0xC020_020F_u32.cast_signed();
/// `STATUS_WDF_SYNCHRONIZATION_SCOPE_INVALID` (wdfstatus.h:234).
pub const STATUS_WDF_SYNCHRONIZATION_SCOPE_INVALID: NTSTATUS = 0xC020_0210_u32.cast_signed();
/// `STATUS_WDF_EXECUTION_LEVEL_INVALID` (wdfstatus.h:243).
pub const STATUS_WDF_EXECUTION_LEVEL_INVALID: NTSTATUS = 0xC020_0211_u32.cast_signed();
/// `STATUS_WDF_PARENT_NOT_SPECIFIED` (wdfstatus.h:252).
pub const STATUS_WDF_PARENT_NOT_SPECIFIED: NTSTATUS = 0xC020_0212_u32.cast_signed();

// --- wdf.h:62 -----------------------------------------------------------------------------

/// `typedef VOID (*WDFFUNC) (VOID);` (wdf.h:62): one function-table entry, cast to its
/// `PFN_WDF...` type before the call.
pub type WDFFUNC = Option<unsafe extern "C" fn()>;

// --- wdftypes.h: handles ------------------------------------------------------------------

/// Declares a `DECLARE_HANDLE(name)` handle the way bindgen does: a pointer to an opaque
/// struct `name__`.
macro_rules! declare_handle {
    ($($handle:ident => $opaque:ident;)*) => {$(
        #[repr(C)]
        #[derive(Debug, Copy, Clone)]
        pub struct $opaque {
            pub unused: c_int,
        }
        pub type $handle = *mut $opaque;
    )*};
}

declare_handle! {
    WDFDRIVER => WDFDRIVER__;       // wdftypes.h:132
    WDFDEVICE => WDFDEVICE__;       // wdftypes.h:133
    WDFQUEUE => WDFQUEUE__;         // wdftypes.h:138
    WDFREQUEST => WDFREQUEST__;     // wdftypes.h:139
    WDFFILEOBJECT => WDFFILEOBJECT__; // wdftypes.h:140
    WDFTIMER => WDFTIMER__;         // wdftypes.h:142
    WDFSPINLOCK => WDFSPINLOCK__;   // wdftypes.h:150
    WDFMEMORY => WDFMEMORY__;       // wdftypes.h:152
    WDFSTRING => WDFSTRING__;       // wdftypes.h:172
    WDFCMRESLIST => WDFCMRESLIST__; // wdftypes.h:178
}

/// `typedef HANDLE WDFOBJECT` (wdftypes.h:127).
pub type WDFOBJECT = HANDLE;
/// `typedef PVOID WDFCONTEXT` (wdftypes.h:96).
pub type WDFCONTEXT = PVOID;

/// `struct WDFDEVICE_INIT`, opaque (wdftypes.h:107).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct WDFDEVICE_INIT {
    _unused: [u8; 0],
}
pub type PWDFDEVICE_INIT = *mut WDFDEVICE_INIT;

// --- enums (bindgen ModuleConsts: `pub mod _NAME { pub type Type = c_int; ... }`) --------

/// `_WDF_TRI_STATE` (wdftypes.h:86).
pub mod _WDF_TRI_STATE {
    pub type Type = core::ffi::c_int;
    pub const WdfFalse: Type = 0;
    pub const WdfTrue: Type = 1;
    pub const WdfUseDefault: Type = 2;
}
pub use self::_WDF_TRI_STATE::Type as WDF_TRI_STATE;

/// `_WDF_EXECUTION_LEVEL` (wdfobject.h).
pub mod _WDF_EXECUTION_LEVEL {
    pub type Type = core::ffi::c_int;
    pub const WdfExecutionLevelInvalid: Type = 0;
    pub const WdfExecutionLevelInheritFromParent: Type = 1;
    pub const WdfExecutionLevelPassive: Type = 2;
    pub const WdfExecutionLevelDispatch: Type = 3;
}
pub use self::_WDF_EXECUTION_LEVEL::Type as WDF_EXECUTION_LEVEL;

/// `_WDF_SYNCHRONIZATION_SCOPE` (wdfobject.h).
pub mod _WDF_SYNCHRONIZATION_SCOPE {
    pub type Type = core::ffi::c_int;
    pub const WdfSynchronizationScopeInvalid: Type = 0;
    pub const WdfSynchronizationScopeInheritFromParent: Type = 1;
    pub const WdfSynchronizationScopeDevice: Type = 2;
    pub const WdfSynchronizationScopeQueue: Type = 3;
    pub const WdfSynchronizationScopeNone: Type = 4;
}
pub use self::_WDF_SYNCHRONIZATION_SCOPE::Type as WDF_SYNCHRONIZATION_SCOPE;

/// `_WDF_DRIVER_INIT_FLAGS` (wdfdriver.h:50).
pub mod _WDF_DRIVER_INIT_FLAGS {
    pub type Type = core::ffi::c_int;
    pub const WdfDriverInitNonPnpDriver: Type = 1;
    pub const WdfDriverInitNoDispatchOverride: Type = 2;
    pub const WdfVerifyOn: Type = 4;
    pub const WdfVerifierOn: Type = 8;
    pub const WdfDriverInitCompanion: Type = 16;
}
pub use self::_WDF_DRIVER_INIT_FLAGS::Type as WDF_DRIVER_INIT_FLAGS;

/// `_WDF_FILEOBJECT_CLASS` (wdfdevice.h). `WdfFileObjectCanBeOptional` (0x80000000) is a
/// flag outside `int`'s range; MSVC (and bindgen) wrap it to `INT_MIN`.
pub mod _WDF_FILEOBJECT_CLASS {
    pub type Type = core::ffi::c_int;
    pub const WdfFileObjectInvalid: Type = 0;
    pub const WdfFileObjectNotRequired: Type = 1;
    pub const WdfFileObjectWdfCanUseFsContext: Type = 2;
    pub const WdfFileObjectWdfCanUseFsContext2: Type = 3;
    pub const WdfFileObjectWdfCannotUseFsContexts: Type = 4;
    pub const WdfFileObjectCanBeOptional: Type = i32::MIN;
}
pub use self::_WDF_FILEOBJECT_CLASS::Type as WDF_FILEOBJECT_CLASS;

/// `_WDF_IO_QUEUE_DISPATCH_TYPE` (wdfio.h).
pub mod _WDF_IO_QUEUE_DISPATCH_TYPE {
    pub type Type = core::ffi::c_int;
    pub const WdfIoQueueDispatchInvalid: Type = 0;
    pub const WdfIoQueueDispatchSequential: Type = 1;
    pub const WdfIoQueueDispatchParallel: Type = 2;
    pub const WdfIoQueueDispatchManual: Type = 3;
    pub const WdfIoQueueDispatchMax: Type = 4;
}
pub use self::_WDF_IO_QUEUE_DISPATCH_TYPE::Type as WDF_IO_QUEUE_DISPATCH_TYPE;

/// `_WDF_POWER_DEVICE_STATE` (wdfdevice.h:472).
pub mod _WDF_POWER_DEVICE_STATE {
    pub type Type = core::ffi::c_int;
    pub const WdfPowerDeviceInvalid: Type = 0;
    pub const WdfPowerDeviceD0: Type = 1;
    pub const WdfPowerDeviceD1: Type = 2;
    pub const WdfPowerDeviceD2: Type = 3;
    pub const WdfPowerDeviceD3: Type = 4;
    pub const WdfPowerDeviceD3Final: Type = 5;
    pub const WdfPowerDevicePrepareForHibernation: Type = 6;
    pub const WdfPowerDeviceMaximum: Type = 7;
}
pub use self::_WDF_POWER_DEVICE_STATE::Type as WDF_POWER_DEVICE_STATE;

/// `_WDF_SPECIAL_FILE_TYPE` (wdfdevice.h:491).
pub mod _WDF_SPECIAL_FILE_TYPE {
    pub type Type = core::ffi::c_int;
    pub const WdfSpecialFileUndefined: Type = 0;
    pub const WdfSpecialFilePaging: Type = 1;
    pub const WdfSpecialFileHibernation: Type = 2;
    pub const WdfSpecialFileDump: Type = 3;
    pub const WdfSpecialFileBoot: Type = 4;
    pub const WdfSpecialFilePostDisplay: Type = 5;
    pub const WdfSpecialFileGuestAssigned: Type = 6;
    pub const WdfSpecialFileMax: Type = 7;
}
pub use self::_WDF_SPECIAL_FILE_TYPE::Type as WDF_SPECIAL_FILE_TYPE;

// --- callbacks (EVT_WDF_* typedefs; NTAPI is the C convention on 64-bit targets) ----------

/// `EVT_WDF_DRIVER_DEVICE_ADD` (wdfdriver.h:71).
pub type PFN_WDF_DRIVER_DEVICE_ADD =
    Option<unsafe extern "C" fn(Driver: WDFDRIVER, DeviceInit: PWDFDEVICE_INIT) -> NTSTATUS>;
/// `EVT_WDF_DRIVER_UNLOAD` (wdfdriver.h:86).
pub type PFN_WDF_DRIVER_UNLOAD = Option<unsafe extern "C" fn(Driver: WDFDRIVER)>;
/// `EVT_WDF_OBJECT_CONTEXT_CLEANUP` (wdfobject.h:76).
pub type PFN_WDF_OBJECT_CONTEXT_CLEANUP = Option<unsafe extern "C" fn(Object: WDFOBJECT)>;
/// `EVT_WDF_OBJECT_CONTEXT_DESTROY` (wdfobject.h:89).
pub type PFN_WDF_OBJECT_CONTEXT_DESTROY = Option<unsafe extern "C" fn(Object: WDFOBJECT)>;
/// `EVT_WDF_DEVICE_FILE_CREATE` (wdfdevice.h:559).
pub type PFN_WDF_DEVICE_FILE_CREATE =
    Option<unsafe extern "C" fn(Device: WDFDEVICE, Request: WDFREQUEST, FileObject: WDFFILEOBJECT)>;
/// `EVT_WDF_FILE_CLOSE` (wdfdevice.h:576).
pub type PFN_WDF_FILE_CLOSE = Option<unsafe extern "C" fn(FileObject: WDFFILEOBJECT)>;
/// `EVT_WDF_FILE_CLEANUP` (wdfdevice.h:589).
pub type PFN_WDF_FILE_CLEANUP = Option<unsafe extern "C" fn(FileObject: WDFFILEOBJECT)>;
/// `EVT_WDF_IO_QUEUE_IO_DEFAULT` (wdfio.h:231).
pub type PFN_WDF_IO_QUEUE_IO_DEFAULT =
    Option<unsafe extern "C" fn(Queue: WDFQUEUE, Request: WDFREQUEST)>;
/// `EVT_WDF_IO_QUEUE_IO_STOP` (wdfio.h:247).
pub type PFN_WDF_IO_QUEUE_IO_STOP =
    Option<unsafe extern "C" fn(Queue: WDFQUEUE, Request: WDFREQUEST, ActionFlags: ULONG)>;
/// `EVT_WDF_IO_QUEUE_IO_RESUME` (wdfio.h:264).
pub type PFN_WDF_IO_QUEUE_IO_RESUME =
    Option<unsafe extern "C" fn(Queue: WDFQUEUE, Request: WDFREQUEST)>;
/// `EVT_WDF_IO_QUEUE_IO_READ` (wdfio.h:279).
pub type PFN_WDF_IO_QUEUE_IO_READ =
    Option<unsafe extern "C" fn(Queue: WDFQUEUE, Request: WDFREQUEST, Length: usize)>;
/// `EVT_WDF_IO_QUEUE_IO_WRITE` (wdfio.h:296).
pub type PFN_WDF_IO_QUEUE_IO_WRITE =
    Option<unsafe extern "C" fn(Queue: WDFQUEUE, Request: WDFREQUEST, Length: usize)>;
/// `EVT_WDF_IO_QUEUE_IO_DEVICE_CONTROL` (wdfio.h:313).
pub type PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL = Option<
    unsafe extern "C" fn(
        Queue: WDFQUEUE,
        Request: WDFREQUEST,
        OutputBufferLength: usize,
        InputBufferLength: usize,
        IoControlCode: ULONG,
    ),
>;
/// `EVT_WDF_IO_QUEUE_IO_INTERNAL_DEVICE_CONTROL` (wdfio.h:334).
pub type PFN_WDF_IO_QUEUE_IO_INTERNAL_DEVICE_CONTROL = PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL;
/// `EVT_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE` (wdfio.h:356).
pub type PFN_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE =
    Option<unsafe extern "C" fn(Queue: WDFQUEUE, Request: WDFREQUEST)>;
/// `EVT_WDF_REQUEST_CANCEL` (wdfrequest.h:124).
pub type PFN_WDF_REQUEST_CANCEL = Option<unsafe extern "C" fn(Request: WDFREQUEST)>;
/// `EVT_WDF_DEVICE_D0_ENTRY` (wdfdevice.h:841).
pub type PFN_WDF_DEVICE_D0_ENTRY = Option<
    unsafe extern "C" fn(Device: WDFDEVICE, PreviousState: WDF_POWER_DEVICE_STATE) -> NTSTATUS,
>;
/// `EVT_WDF_DEVICE_D0_ENTRY_POST_INTERRUPTS_ENABLED` (wdfdevice.h:856).
pub type PFN_WDF_DEVICE_D0_ENTRY_POST_INTERRUPTS_ENABLED = PFN_WDF_DEVICE_D0_ENTRY;
/// `EVT_WDF_DEVICE_D0_EXIT` (wdfdevice.h:886).
pub type PFN_WDF_DEVICE_D0_EXIT = Option<
    unsafe extern "C" fn(Device: WDFDEVICE, TargetState: WDF_POWER_DEVICE_STATE) -> NTSTATUS,
>;
/// `EVT_WDF_DEVICE_D0_EXIT_PRE_INTERRUPTS_DISABLED` (wdfdevice.h:901).
pub type PFN_WDF_DEVICE_D0_EXIT_PRE_INTERRUPTS_DISABLED = PFN_WDF_DEVICE_D0_EXIT;
/// `EVT_WDF_DEVICE_PREPARE_HARDWARE` (wdfdevice.h:931).
pub type PFN_WDF_DEVICE_PREPARE_HARDWARE = Option<
    unsafe extern "C" fn(
        Device: WDFDEVICE,
        ResourcesRaw: WDFCMRESLIST,
        ResourcesTranslated: WDFCMRESLIST,
    ) -> NTSTATUS,
>;
/// `EVT_WDF_DEVICE_RELEASE_HARDWARE` (wdfdevice.h:948).
pub type PFN_WDF_DEVICE_RELEASE_HARDWARE =
    Option<unsafe extern "C" fn(Device: WDFDEVICE, ResourcesTranslated: WDFCMRESLIST) -> NTSTATUS>;
/// `EVT_WDF_DEVICE_SELF_MANAGED_IO_CLEANUP` (wdfdevice.h:963).
pub type PFN_WDF_DEVICE_SELF_MANAGED_IO_CLEANUP = Option<unsafe extern "C" fn(Device: WDFDEVICE)>;
/// `EVT_WDF_DEVICE_SELF_MANAGED_IO_FLUSH` (wdfdevice.h:976).
pub type PFN_WDF_DEVICE_SELF_MANAGED_IO_FLUSH = Option<unsafe extern "C" fn(Device: WDFDEVICE)>;
/// `EVT_WDF_DEVICE_SELF_MANAGED_IO_INIT` (wdfdevice.h:989).
pub type PFN_WDF_DEVICE_SELF_MANAGED_IO_INIT =
    Option<unsafe extern "C" fn(Device: WDFDEVICE) -> NTSTATUS>;
/// `EVT_WDF_DEVICE_SELF_MANAGED_IO_SUSPEND` (wdfdevice.h:1002).
pub type PFN_WDF_DEVICE_SELF_MANAGED_IO_SUSPEND =
    Option<unsafe extern "C" fn(Device: WDFDEVICE) -> NTSTATUS>;
/// `EVT_WDF_DEVICE_SELF_MANAGED_IO_RESTART` (wdfdevice.h:1015).
pub type PFN_WDF_DEVICE_SELF_MANAGED_IO_RESTART =
    Option<unsafe extern "C" fn(Device: WDFDEVICE) -> NTSTATUS>;
/// `EVT_WDF_DEVICE_QUERY_STOP` (wdfdevice.h:1028).
pub type PFN_WDF_DEVICE_QUERY_STOP = Option<unsafe extern "C" fn(Device: WDFDEVICE) -> NTSTATUS>;
/// `EVT_WDF_DEVICE_QUERY_REMOVE` (wdfdevice.h:1041).
pub type PFN_WDF_DEVICE_QUERY_REMOVE = Option<unsafe extern "C" fn(Device: WDFDEVICE) -> NTSTATUS>;
/// `EVT_WDF_DEVICE_SURPRISE_REMOVAL` (wdfdevice.h:1054).
pub type PFN_WDF_DEVICE_SURPRISE_REMOVAL = Option<unsafe extern "C" fn(Device: WDFDEVICE)>;
/// `EVT_WDF_DEVICE_USAGE_NOTIFICATION` (wdfdevice.h:1067).
pub type PFN_WDF_DEVICE_USAGE_NOTIFICATION = Option<
    unsafe extern "C" fn(
        Device: WDFDEVICE,
        NotificationType: WDF_SPECIAL_FILE_TYPE,
        IsInNotificationPath: BOOLEAN,
    ),
>;
/// `EVT_WDF_DEVICE_USAGE_NOTIFICATION_EX` (wdfdevice.h:1084).
pub type PFN_WDF_DEVICE_USAGE_NOTIFICATION_EX = Option<
    unsafe extern "C" fn(
        Device: WDFDEVICE,
        NotificationType: WDF_SPECIAL_FILE_TYPE,
        IsInNotificationPath: BOOLEAN,
    ) -> NTSTATUS,
>;
/// `EVT_WDF_DEVICE_RELATIONS_QUERY` (wdfdevice.h:1101).
pub type PFN_WDF_DEVICE_RELATIONS_QUERY =
    Option<unsafe extern "C" fn(Device: WDFDEVICE, RelationType: DEVICE_RELATION_TYPE)>;
/// `EVT_WDF_TIMER` (wdftimer.h:62).
pub type PFN_WDF_TIMER = Option<unsafe extern "C" fn(Timer: WDFTIMER)>;
/// `PFN_GET_UNIQUE_CONTEXT_TYPE` (wdfobject.h:176).
pub type PFN_GET_UNIQUE_CONTEXT_TYPE =
    Option<unsafe extern "C" fn() -> PCWDF_OBJECT_CONTEXT_TYPE_INFO>;

// --- structures ---------------------------------------------------------------------------

/// `Default` as bindgen's `derive_default` writes it for these structures: all zero, which
/// is valid because every field is an integer, a raw pointer or an `Option` of a function
/// pointer.
macro_rules! zeroed_default {
    ($($name:ident),*) => {$(
        impl Default for $name {
            fn default() -> Self {
                // SAFETY: Every field of the structure is an integer, a raw pointer, an
                // `Option<fn>` or a union/array of those, for all of which all-zero bytes are a
                // valid value.
                unsafe { core::mem::zeroed() }
            }
        }
    )*};
}

/// `WDF_DRIVER_CONFIG` (wdfdriver.h:121).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct WDF_DRIVER_CONFIG {
    pub Size: ULONG,
    pub EvtDriverDeviceAdd: PFN_WDF_DRIVER_DEVICE_ADD,
    pub EvtDriverUnload: PFN_WDF_DRIVER_UNLOAD,
    pub DriverInitFlags: ULONG,
    pub DriverPoolTag: ULONG,
}
pub type PWDF_DRIVER_CONFIG = *mut WDF_DRIVER_CONFIG;

/// `WDF_OBJECT_CONTEXT_TYPE_INFO` (wdfobject.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct WDF_OBJECT_CONTEXT_TYPE_INFO {
    pub Size: ULONG,
    pub ContextName: LPCSTR,
    pub ContextSize: usize,
    pub UniqueType: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
    pub EvtDriverGetUniqueContextType: PFN_GET_UNIQUE_CONTEXT_TYPE,
}
pub type PWDF_OBJECT_CONTEXT_TYPE_INFO = *mut WDF_OBJECT_CONTEXT_TYPE_INFO;
pub type PCWDF_OBJECT_CONTEXT_TYPE_INFO = *const WDF_OBJECT_CONTEXT_TYPE_INFO;

/// `WDF_OBJECT_ATTRIBUTES` (wdfobject.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct WDF_OBJECT_ATTRIBUTES {
    pub Size: ULONG,
    pub EvtCleanupCallback: PFN_WDF_OBJECT_CONTEXT_CLEANUP,
    pub EvtDestroyCallback: PFN_WDF_OBJECT_CONTEXT_DESTROY,
    pub ExecutionLevel: WDF_EXECUTION_LEVEL,
    pub SynchronizationScope: WDF_SYNCHRONIZATION_SCOPE,
    pub ParentObject: WDFOBJECT,
    pub ContextSizeOverride: usize,
    pub ContextTypeInfo: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
}
pub type PWDF_OBJECT_ATTRIBUTES = *mut WDF_OBJECT_ATTRIBUTES;

/// `WDF_FILEOBJECT_CONFIG` (wdfdevice.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct WDF_FILEOBJECT_CONFIG {
    pub Size: ULONG,
    pub EvtDeviceFileCreate: PFN_WDF_DEVICE_FILE_CREATE,
    pub EvtFileClose: PFN_WDF_FILE_CLOSE,
    pub EvtFileCleanup: PFN_WDF_FILE_CLEANUP,
    pub AutoForwardCleanupClose: WDF_TRI_STATE,
    pub FileObjectClass: WDF_FILEOBJECT_CLASS,
}
pub type PWDF_FILEOBJECT_CONFIG = *mut WDF_FILEOBJECT_CONFIG;

/// The anonymous `Settings.Parallel` struct of `WDF_IO_QUEUE_CONFIG`, under bindgen's name.
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct _WDF_IO_QUEUE_CONFIG__bindgen_ty_1__bindgen_ty_1 {
    pub NumberOfPresentedRequests: ULONG,
}

/// The anonymous `Settings` union of `WDF_IO_QUEUE_CONFIG`, under bindgen's name.
#[repr(C)]
#[derive(Copy, Clone)]
pub union _WDF_IO_QUEUE_CONFIG__bindgen_ty_1 {
    pub Parallel: _WDF_IO_QUEUE_CONFIG__bindgen_ty_1__bindgen_ty_1,
}

impl core::fmt::Debug for _WDF_IO_QUEUE_CONFIG__bindgen_ty_1 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("_WDF_IO_QUEUE_CONFIG__bindgen_ty_1 { union }")
    }
}

/// `WDF_IO_QUEUE_CONFIG` (wdfio.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct WDF_IO_QUEUE_CONFIG {
    pub Size: ULONG,
    pub DispatchType: WDF_IO_QUEUE_DISPATCH_TYPE,
    pub PowerManaged: WDF_TRI_STATE,
    pub AllowZeroLengthRequests: BOOLEAN,
    pub DefaultQueue: BOOLEAN,
    pub EvtIoDefault: PFN_WDF_IO_QUEUE_IO_DEFAULT,
    pub EvtIoRead: PFN_WDF_IO_QUEUE_IO_READ,
    pub EvtIoWrite: PFN_WDF_IO_QUEUE_IO_WRITE,
    pub EvtIoDeviceControl: PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL,
    pub EvtIoInternalDeviceControl: PFN_WDF_IO_QUEUE_IO_INTERNAL_DEVICE_CONTROL,
    pub EvtIoStop: PFN_WDF_IO_QUEUE_IO_STOP,
    pub EvtIoResume: PFN_WDF_IO_QUEUE_IO_RESUME,
    pub EvtIoCanceledOnQueue: PFN_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE,
    pub Settings: _WDF_IO_QUEUE_CONFIG__bindgen_ty_1,
    pub Driver: WDFDRIVER,
}
pub type PWDF_IO_QUEUE_CONFIG = *mut WDF_IO_QUEUE_CONFIG;

/// `WDF_DRIVER_GLOBALS_NAME_LEN` (wdfglobals.h:51).
pub const WDF_DRIVER_GLOBALS_NAME_LEN: u32 = 32;

/// `WDF_DRIVER_GLOBALS` (wdfglobals.h).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct WDF_DRIVER_GLOBALS {
    pub Driver: WDFDRIVER,
    pub DriverFlags: ULONG,
    pub DriverTag: ULONG,
    pub DriverName: [CHAR; WDF_DRIVER_GLOBALS_NAME_LEN as usize],
    pub DisplaceDriverUnload: BOOLEAN,
}
pub type PWDF_DRIVER_GLOBALS = *mut WDF_DRIVER_GLOBALS;

/// `WDF_DRIVER_VERSION_AVAILABLE_PARAMS` (wdfdriver.h:160).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct WDF_DRIVER_VERSION_AVAILABLE_PARAMS {
    pub Size: ULONG,
    pub MajorVersion: ULONG,
    pub MinorVersion: ULONG,
}
pub type PWDF_DRIVER_VERSION_AVAILABLE_PARAMS = *mut WDF_DRIVER_VERSION_AVAILABLE_PARAMS;

/// `WDF_PNPPOWER_EVENT_CALLBACKS` (wdfdevice.h:1205).
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct WDF_PNPPOWER_EVENT_CALLBACKS {
    pub Size: ULONG,
    pub EvtDeviceD0Entry: PFN_WDF_DEVICE_D0_ENTRY,
    pub EvtDeviceD0EntryPostInterruptsEnabled: PFN_WDF_DEVICE_D0_ENTRY_POST_INTERRUPTS_ENABLED,
    pub EvtDeviceD0Exit: PFN_WDF_DEVICE_D0_EXIT,
    pub EvtDeviceD0ExitPreInterruptsDisabled: PFN_WDF_DEVICE_D0_EXIT_PRE_INTERRUPTS_DISABLED,
    pub EvtDevicePrepareHardware: PFN_WDF_DEVICE_PREPARE_HARDWARE,
    pub EvtDeviceReleaseHardware: PFN_WDF_DEVICE_RELEASE_HARDWARE,
    pub EvtDeviceSelfManagedIoCleanup: PFN_WDF_DEVICE_SELF_MANAGED_IO_CLEANUP,
    pub EvtDeviceSelfManagedIoFlush: PFN_WDF_DEVICE_SELF_MANAGED_IO_FLUSH,
    pub EvtDeviceSelfManagedIoInit: PFN_WDF_DEVICE_SELF_MANAGED_IO_INIT,
    pub EvtDeviceSelfManagedIoSuspend: PFN_WDF_DEVICE_SELF_MANAGED_IO_SUSPEND,
    pub EvtDeviceSelfManagedIoRestart: PFN_WDF_DEVICE_SELF_MANAGED_IO_RESTART,
    pub EvtDeviceSurpriseRemoval: PFN_WDF_DEVICE_SURPRISE_REMOVAL,
    pub EvtDeviceQueryRemove: PFN_WDF_DEVICE_QUERY_REMOVE,
    pub EvtDeviceQueryStop: PFN_WDF_DEVICE_QUERY_STOP,
    pub EvtDeviceUsageNotification: PFN_WDF_DEVICE_USAGE_NOTIFICATION,
    pub EvtDeviceRelationsQuery: PFN_WDF_DEVICE_RELATIONS_QUERY,
    pub EvtDeviceUsageNotificationEx: PFN_WDF_DEVICE_USAGE_NOTIFICATION_EX,
}
pub type PWDF_PNPPOWER_EVENT_CALLBACKS = *mut WDF_PNPPOWER_EVENT_CALLBACKS;

/// `WDF_TIMER_CONFIG` (wdftimer.h:75).
///
/// `UseHighResolutionTimer` is `DECLSPEC_ALIGN(8) BOOLEAN` (wdftimer.h:99): it sits at offset
/// 32, after four bytes of padding, and the structure is 40 bytes; bindgen writes that padding
/// as a field, as here.
#[repr(C, align(8))]
#[derive(Debug, Copy, Clone)]
pub struct WDF_TIMER_CONFIG {
    pub Size: ULONG,
    pub EvtTimerFunc: PFN_WDF_TIMER,
    pub Period: ULONG,
    pub AutomaticSerialization: BOOLEAN,
    pub TolerableDelay: ULONG,
    #[allow(
        clippy::pub_underscore_fields,
        reason = "bindgen's name for the padding"
    )]
    pub __bindgen_padding_0: u32,
    pub UseHighResolutionTimer: BOOLEAN,
}
pub type PWDF_TIMER_CONFIG = *mut WDF_TIMER_CONFIG;

zeroed_default!(
    WDF_DRIVER_VERSION_AVAILABLE_PARAMS,
    WDF_PNPPOWER_EVENT_CALLBACKS,
    WDF_TIMER_CONFIG,
    WDF_DRIVER_CONFIG,
    WDF_OBJECT_CONTEXT_TYPE_INFO,
    WDF_OBJECT_ATTRIBUTES,
    WDF_FILEOBJECT_CONFIG,
    WDF_IO_QUEUE_CONFIG,
    WDF_DRIVER_GLOBALS
);
