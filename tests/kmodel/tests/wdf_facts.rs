//! The KMDF declarations (`wskudp-wdf-decls`) and the `WDF_*_INIT` re-implementations of the
//! KMDF front door, checked against facts read from KMDF 1.33's public headers
//! (microsoft/Windows-Driver-Frameworks, commit b6191d9, `src/publicinc/wdf/kmdf/1.33/`).
//!
//! The facts were produced by compiling those headers (over mingw-w64's `ntddk.h`, `x86_64`,
//! LLP64) and reading `sizeof` / `offsetof` / enumerator values back from the compiler, then
//! spot-checked by hand; each cites the header line it comes from. The headers themselves are
//! not part of this repository.

#![allow(clippy::too_many_lines, reason = "tables of facts")]

use std::mem::{offset_of, size_of};

use wskudp_front::kmdf::init;
use wskudp_wdf_decls::{
    _WDF_DRIVER_INIT_FLAGS, _WDF_EXECUTION_LEVEL, _WDF_FILEOBJECT_CLASS,
    _WDF_IO_QUEUE_DISPATCH_TYPE, _WDF_SYNCHRONIZATION_SCOPE, _WDF_TRI_STATE, _WDFFUNCENUM,
    WDF_DRIVER_CONFIG, WDF_DRIVER_GLOBALS, WDF_FILEOBJECT_CONFIG, WDF_IO_QUEUE_CONFIG,
    WDF_OBJECT_ATTRIBUTES, WDF_OBJECT_CONTEXT_TYPE_INFO, WDFDEVICE, WDFFILEOBJECT, WDFREQUEST,
};
use wskudp_wdf_decls::{
    _WDF_POWER_DEVICE_STATE, _WDF_SPECIAL_FILE_TYPE, GUID, WDF_DRIVER_VERSION_AVAILABLE_PARAMS,
    WDF_PNPPOWER_EVENT_CALLBACKS, WDF_TIMER_CONFIG, WDFCMRESLIST, WDFSPINLOCK, WDFSTRING, WDFTIMER,
};

/// `(what, ours, the header's, where)`.
type Fact = (&'static str, usize, usize, &'static str);

fn check(facts: &[Fact]) {
    let wrong: Vec<String> = facts
        .iter()
        .filter(|(_, ours, theirs, _)| ours != theirs)
        .map(|(what, ours, theirs, at)| format!("{what}: ours {ours}, KMDF {theirs} ({at})"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

const H: &str = "src/publicinc/wdf/kmdf/1.33/";

#[test]
fn structure_layouts_match_the_headers() {
    check(&[
        (
            "sizeof(WDF_DRIVER_CONFIG)",
            size_of::<WDF_DRIVER_CONFIG>(),
            32,
            "wdfdriver.h:121",
        ),
        (
            "WDF_DRIVER_CONFIG.EvtDriverDeviceAdd",
            offset_of!(WDF_DRIVER_CONFIG, EvtDriverDeviceAdd),
            8,
            "wdfdriver.h:130",
        ),
        (
            "WDF_DRIVER_CONFIG.EvtDriverUnload",
            offset_of!(WDF_DRIVER_CONFIG, EvtDriverUnload),
            16,
            "wdfdriver.h:132",
        ),
        (
            "WDF_DRIVER_CONFIG.DriverInitFlags",
            offset_of!(WDF_DRIVER_CONFIG, DriverInitFlags),
            24,
            "wdfdriver.h:137",
        ),
        (
            "WDF_DRIVER_CONFIG.DriverPoolTag",
            offset_of!(WDF_DRIVER_CONFIG, DriverPoolTag),
            28,
            "wdfdriver.h:143",
        ),
        (
            "sizeof(WDF_OBJECT_ATTRIBUTES)",
            size_of::<WDF_OBJECT_ATTRIBUTES>(),
            56,
            "wdfobject.h:100",
        ),
        (
            "WDF_OBJECT_ATTRIBUTES.EvtCleanupCallback",
            offset_of!(WDF_OBJECT_ATTRIBUTES, EvtCleanupCallback),
            8,
            "wdfobject.h:109",
        ),
        (
            "WDF_OBJECT_ATTRIBUTES.EvtDestroyCallback",
            offset_of!(WDF_OBJECT_ATTRIBUTES, EvtDestroyCallback),
            16,
            "wdfobject.h:115",
        ),
        (
            "WDF_OBJECT_ATTRIBUTES.ExecutionLevel",
            offset_of!(WDF_OBJECT_ATTRIBUTES, ExecutionLevel),
            24,
            "wdfobject.h:120",
        ),
        (
            "WDF_OBJECT_ATTRIBUTES.SynchronizationScope",
            offset_of!(WDF_OBJECT_ATTRIBUTES, SynchronizationScope),
            28,
            "wdfobject.h:125",
        ),
        (
            "WDF_OBJECT_ATTRIBUTES.ParentObject",
            offset_of!(WDF_OBJECT_ATTRIBUTES, ParentObject),
            32,
            "wdfobject.h:130",
        ),
        (
            "WDF_OBJECT_ATTRIBUTES.ContextSizeOverride",
            offset_of!(WDF_OBJECT_ATTRIBUTES, ContextSizeOverride),
            40,
            "wdfobject.h:136",
        ),
        (
            "WDF_OBJECT_ATTRIBUTES.ContextTypeInfo",
            offset_of!(WDF_OBJECT_ATTRIBUTES, ContextTypeInfo),
            48,
            "wdfobject.h:141",
        ),
        (
            "sizeof(WDF_OBJECT_CONTEXT_TYPE_INFO)",
            size_of::<WDF_OBJECT_CONTEXT_TYPE_INFO>(),
            40,
            "wdfobject.h:183",
        ),
        (
            "WDF_OBJECT_CONTEXT_TYPE_INFO.ContextName",
            offset_of!(WDF_OBJECT_CONTEXT_TYPE_INFO, ContextName),
            8,
            "wdfobject.h:192",
        ),
        (
            "WDF_OBJECT_CONTEXT_TYPE_INFO.ContextSize",
            offset_of!(WDF_OBJECT_CONTEXT_TYPE_INFO, ContextSize),
            16,
            "wdfobject.h:199",
        ),
        (
            "WDF_OBJECT_CONTEXT_TYPE_INFO.UniqueType",
            offset_of!(WDF_OBJECT_CONTEXT_TYPE_INFO, UniqueType),
            24,
            "wdfobject.h:206",
        ),
        (
            "WDF_OBJECT_CONTEXT_TYPE_INFO.EvtDriverGetUniqueContextType",
            offset_of!(WDF_OBJECT_CONTEXT_TYPE_INFO, EvtDriverGetUniqueContextType),
            32,
            "wdfobject.h:214",
        ),
        (
            "sizeof(WDF_FILEOBJECT_CONFIG)",
            size_of::<WDF_FILEOBJECT_CONFIG>(),
            40,
            "wdfdevice.h:597",
        ),
        (
            "WDF_FILEOBJECT_CONFIG.EvtDeviceFileCreate",
            offset_of!(WDF_FILEOBJECT_CONFIG, EvtDeviceFileCreate),
            8,
            "wdfdevice.h:606",
        ),
        (
            "WDF_FILEOBJECT_CONFIG.EvtFileClose",
            offset_of!(WDF_FILEOBJECT_CONFIG, EvtFileClose),
            16,
            "wdfdevice.h:611",
        ),
        (
            "WDF_FILEOBJECT_CONFIG.EvtFileCleanup",
            offset_of!(WDF_FILEOBJECT_CONFIG, EvtFileCleanup),
            24,
            "wdfdevice.h:616",
        ),
        (
            "WDF_FILEOBJECT_CONFIG.AutoForwardCleanupClose",
            offset_of!(WDF_FILEOBJECT_CONFIG, AutoForwardCleanupClose),
            32,
            "wdfdevice.h:629",
        ),
        (
            "WDF_FILEOBJECT_CONFIG.FileObjectClass",
            offset_of!(WDF_FILEOBJECT_CONFIG, FileObjectClass),
            36,
            "wdfdevice.h:636",
        ),
        (
            "sizeof(WDF_IO_QUEUE_CONFIG)",
            size_of::<WDF_IO_QUEUE_CONFIG>(),
            96,
            "wdfio.h:387",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.DispatchType",
            offset_of!(WDF_IO_QUEUE_CONFIG, DispatchType),
            4,
            "wdfio.h:391",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.PowerManaged",
            offset_of!(WDF_IO_QUEUE_CONFIG, PowerManaged),
            8,
            "wdfio.h:393",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.AllowZeroLengthRequests",
            offset_of!(WDF_IO_QUEUE_CONFIG, AllowZeroLengthRequests),
            12,
            "wdfio.h:395",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.DefaultQueue",
            offset_of!(WDF_IO_QUEUE_CONFIG, DefaultQueue),
            13,
            "wdfio.h:397",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.EvtIoDefault",
            offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoDefault),
            16,
            "wdfio.h:399",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.EvtIoRead",
            offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoRead),
            24,
            "wdfio.h:401",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.EvtIoWrite",
            offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoWrite),
            32,
            "wdfio.h:403",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.EvtIoDeviceControl",
            offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoDeviceControl),
            40,
            "wdfio.h:405",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.EvtIoInternalDeviceControl",
            offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoInternalDeviceControl),
            48,
            "wdfio.h:407",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.EvtIoStop",
            offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoStop),
            56,
            "wdfio.h:409",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.EvtIoResume",
            offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoResume),
            64,
            "wdfio.h:411",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.EvtIoCanceledOnQueue",
            offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoCanceledOnQueue),
            72,
            "wdfio.h:413",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.Settings.Parallel.NumberOfPresentedRequests",
            offset_of!(WDF_IO_QUEUE_CONFIG, Settings),
            80,
            "wdfio.h:417",
        ),
        (
            "WDF_IO_QUEUE_CONFIG.Driver",
            offset_of!(WDF_IO_QUEUE_CONFIG, Driver),
            88,
            "wdfio.h:421",
        ),
        (
            "sizeof(WDF_DRIVER_GLOBALS)",
            size_of::<WDF_DRIVER_GLOBALS>(),
            56,
            "wdfglobals.h:53",
        ),
        (
            "WDF_DRIVER_GLOBALS.DriverFlags",
            offset_of!(WDF_DRIVER_GLOBALS, DriverFlags),
            8,
            "wdfglobals.h:59",
        ),
        (
            "WDF_DRIVER_GLOBALS.DriverTag",
            offset_of!(WDF_DRIVER_GLOBALS, DriverTag),
            12,
            "wdfglobals.h:63",
        ),
        (
            "WDF_DRIVER_GLOBALS.DriverName",
            offset_of!(WDF_DRIVER_GLOBALS, DriverName),
            16,
            "wdfglobals.h:65",
        ),
        (
            "WDF_DRIVER_GLOBALS.DisplaceDriverUnload",
            offset_of!(WDF_DRIVER_GLOBALS, DisplaceDriverUnload),
            48,
            "wdfglobals.h:70",
        ),
        (
            "sizeof(WDFDEVICE)",
            size_of::<WDFDEVICE>(),
            8,
            "wdftypes.h:133",
        ),
        (
            "sizeof(WDFREQUEST)",
            size_of::<WDFREQUEST>(),
            8,
            "wdftypes.h:139",
        ),
        (
            "sizeof(WDFFILEOBJECT)",
            size_of::<WDFFILEOBJECT>(),
            8,
            "wdftypes.h:140",
        ),
    ]);
}

#[allow(
    clippy::cast_sign_loss,
    reason = "enumerator values as the header writes them"
)]
const fn value(enumerator: i32) -> usize {
    enumerator as u32 as usize
}

#[test]
fn enumerator_values_match_the_headers() {
    check(&[
        (
            "WdfExecutionLevelInvalid",
            value(_WDF_EXECUTION_LEVEL::WdfExecutionLevelInvalid),
            0,
            "wdfobject.h:52",
        ),
        (
            "WdfExecutionLevelInheritFromParent",
            value(_WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent),
            1,
            "wdfobject.h:53",
        ),
        (
            "WdfExecutionLevelPassive",
            value(_WDF_EXECUTION_LEVEL::WdfExecutionLevelPassive),
            2,
            "wdfobject.h:54",
        ),
        (
            "WdfExecutionLevelDispatch",
            value(_WDF_EXECUTION_LEVEL::WdfExecutionLevelDispatch),
            3,
            "wdfobject.h:55",
        ),
        (
            "WdfSynchronizationScopeInvalid",
            value(_WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInvalid),
            0,
            "wdfobject.h:62",
        ),
        (
            "WdfSynchronizationScopeInheritFromParent",
            value(_WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent),
            1,
            "wdfobject.h:63",
        ),
        (
            "WdfSynchronizationScopeDevice",
            value(_WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeDevice),
            2,
            "wdfobject.h:64",
        ),
        (
            "WdfSynchronizationScopeQueue",
            value(_WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeQueue),
            3,
            "wdfobject.h:65",
        ),
        (
            "WdfSynchronizationScopeNone",
            value(_WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeNone),
            4,
            "wdfobject.h:66",
        ),
        (
            "WdfFalse",
            value(_WDF_TRI_STATE::WdfFalse),
            0,
            "wdftypes.h:87",
        ),
        (
            "WdfTrue",
            value(_WDF_TRI_STATE::WdfTrue),
            1,
            "wdftypes.h:88",
        ),
        (
            "WdfUseDefault",
            value(_WDF_TRI_STATE::WdfUseDefault),
            2,
            "wdftypes.h:89",
        ),
        (
            "WdfFileObjectInvalid",
            value(_WDF_FILEOBJECT_CLASS::WdfFileObjectInvalid),
            0,
            "wdfdevice.h:512",
        ),
        (
            "WdfFileObjectNotRequired",
            value(_WDF_FILEOBJECT_CLASS::WdfFileObjectNotRequired),
            1,
            "wdfdevice.h:513",
        ),
        (
            "WdfFileObjectWdfCanUseFsContext",
            value(_WDF_FILEOBJECT_CLASS::WdfFileObjectWdfCanUseFsContext),
            2,
            "wdfdevice.h:514",
        ),
        (
            "WdfFileObjectWdfCanUseFsContext2",
            value(_WDF_FILEOBJECT_CLASS::WdfFileObjectWdfCanUseFsContext2),
            3,
            "wdfdevice.h:515",
        ),
        (
            "WdfFileObjectWdfCannotUseFsContexts",
            value(_WDF_FILEOBJECT_CLASS::WdfFileObjectWdfCannotUseFsContexts),
            4,
            "wdfdevice.h:516",
        ),
        (
            "WdfFileObjectCanBeOptional (bits)",
            value(_WDF_FILEOBJECT_CLASS::WdfFileObjectCanBeOptional),
            0x8000_0000,
            "wdfdevice.h:517",
        ),
        (
            "WdfIoQueueDispatchInvalid",
            value(_WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchInvalid),
            0,
            "wdfio.h:77",
        ),
        (
            "WdfIoQueueDispatchSequential",
            value(_WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchSequential),
            1,
            "wdfio.h:78",
        ),
        (
            "WdfIoQueueDispatchParallel",
            value(_WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchParallel),
            2,
            "wdfio.h:79",
        ),
        (
            "WdfIoQueueDispatchManual",
            value(_WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchManual),
            3,
            "wdfio.h:80",
        ),
        (
            "WdfIoQueueDispatchMax",
            value(_WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchMax),
            4,
            "wdfio.h:81",
        ),
        (
            "WdfDriverInitNonPnpDriver",
            value(_WDF_DRIVER_INIT_FLAGS::WdfDriverInitNonPnpDriver),
            1,
            "wdfdriver.h:51",
        ),
        (
            "WdfDriverInitNoDispatchOverride",
            value(_WDF_DRIVER_INIT_FLAGS::WdfDriverInitNoDispatchOverride),
            2,
            "wdfdriver.h:52",
        ),
        (
            "WdfVerifyOn",
            value(_WDF_DRIVER_INIT_FLAGS::WdfVerifyOn),
            4,
            "wdfdriver.h:53",
        ),
        (
            "WdfVerifierOn",
            value(_WDF_DRIVER_INIT_FLAGS::WdfVerifierOn),
            8,
            "wdfdriver.h:54",
        ),
        (
            "WdfDriverInitCompanion",
            value(_WDF_DRIVER_INIT_FLAGS::WdfDriverInitCompanion),
            16,
            "wdfdriver.h:55",
        ),
    ]);
}

#[test]
fn function_table_indexes_match_wdffuncenum() {
    check(&[
        (
            "WdfControlDeviceInitAllocate",
            value(_WDFFUNCENUM::WdfControlDeviceInitAllocateTableIndex),
            25,
            "wdffuncenum.h:222",
        ),
        (
            "WdfControlFinishInitializing",
            value(_WDFFUNCENUM::WdfControlFinishInitializingTableIndex),
            27,
            "wdffuncenum.h:224",
        ),
        (
            "WdfDeviceWdmGetDeviceObject",
            value(_WDFFUNCENUM::WdfDeviceWdmGetDeviceObjectTableIndex),
            31,
            "wdffuncenum.h:228",
        ),
        (
            "WdfDeviceInitFree",
            value(_WDFFUNCENUM::WdfDeviceInitFreeTableIndex),
            54,
            "wdffuncenum.h:251",
        ),
        (
            "WdfDeviceInitSetDeviceType",
            value(_WDFFUNCENUM::WdfDeviceInitSetDeviceTypeTableIndex),
            66,
            "wdffuncenum.h:263",
        ),
        (
            "WdfDeviceInitAssignName",
            value(_WDFFUNCENUM::WdfDeviceInitAssignNameTableIndex),
            67,
            "wdffuncenum.h:264",
        ),
        (
            "WdfDeviceInitSetCharacteristics",
            value(_WDFFUNCENUM::WdfDeviceInitSetCharacteristicsTableIndex),
            70,
            "wdffuncenum.h:267",
        ),
        (
            "WdfDeviceInitSetFileObjectConfig",
            value(_WDFFUNCENUM::WdfDeviceInitSetFileObjectConfigTableIndex),
            71,
            "wdffuncenum.h:268",
        ),
        (
            "WdfDeviceCreate",
            value(_WDFFUNCENUM::WdfDeviceCreateTableIndex),
            75,
            "wdffuncenum.h:272",
        ),
        (
            "WdfDeviceCreateSymbolicLink",
            value(_WDFFUNCENUM::WdfDeviceCreateSymbolicLinkTableIndex),
            80,
            "wdffuncenum.h:277",
        ),
        (
            "WdfDriverCreate",
            value(_WDFFUNCENUM::WdfDriverCreateTableIndex),
            116,
            "wdffuncenum.h:313",
        ),
        (
            "WdfIoQueueCreate",
            value(_WDFFUNCENUM::WdfIoQueueCreateTableIndex),
            152,
            "wdffuncenum.h:349",
        ),
        (
            "WdfObjectGetTypedContextWorker",
            value(_WDFFUNCENUM::WdfObjectGetTypedContextWorkerTableIndex),
            202,
            "wdffuncenum.h:399",
        ),
        (
            "WdfObjectDelete",
            value(_WDFFUNCENUM::WdfObjectDeleteTableIndex),
            208,
            "wdffuncenum.h:405",
        ),
        (
            "WdfRequestUnmarkCancelable",
            value(_WDFFUNCENUM::WdfRequestUnmarkCancelableTableIndex),
            256,
            "wdffuncenum.h:453",
        ),
        (
            "WdfRequestComplete",
            value(_WDFFUNCENUM::WdfRequestCompleteTableIndex),
            263,
            "wdffuncenum.h:460",
        ),
        (
            "WdfRequestCompleteWithInformation",
            value(_WDFFUNCENUM::WdfRequestCompleteWithInformationTableIndex),
            265,
            "wdffuncenum.h:462",
        ),
        (
            "WdfRequestRetrieveInputBuffer",
            value(_WDFFUNCENUM::WdfRequestRetrieveInputBufferTableIndex),
            269,
            "wdffuncenum.h:466",
        ),
        (
            "WdfRequestRetrieveOutputBuffer",
            value(_WDFFUNCENUM::WdfRequestRetrieveOutputBufferTableIndex),
            270,
            "wdffuncenum.h:467",
        ),
        (
            "WdfRequestRetrieveOutputWdmMdl",
            value(_WDFFUNCENUM::WdfRequestRetrieveOutputWdmMdlTableIndex),
            272,
            "wdffuncenum.h:469",
        ),
        (
            "WdfRequestSetInformation",
            value(_WDFFUNCENUM::WdfRequestSetInformationTableIndex),
            275,
            "wdffuncenum.h:472",
        ),
        (
            "WdfRequestGetFileObject",
            value(_WDFFUNCENUM::WdfRequestGetFileObjectTableIndex),
            277,
            "wdffuncenum.h:474",
        ),
        (
            "WdfRequestMarkCancelableEx",
            value(_WDFFUNCENUM::WdfRequestMarkCancelableExTableIndex),
            393,
            "wdffuncenum.h:590",
        ),
        (
            "WdfFunctionTableNumEntries",
            value(_WDFFUNCENUM::WdfFunctionTableNumEntries),
            458,
            "wdffuncenum.h:655",
        ),
    ]);
}

/// The declarations added for windows-rust-driver-samples' KMDF echo sample: layouts (the
/// compiler's values, as above; `GUID` from mingw-w64's `guiddef.h`, which KMDF's headers take
/// from the WDK).
#[test]
fn echo_sample_layouts_match_the_headers() {
    check(&[
        (
            "sizeof(WDF_PNPPOWER_EVENT_CALLBACKS)",
            size_of::<WDF_PNPPOWER_EVENT_CALLBACKS>(),
            144,
            "wdfdevice.h:1205",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceD0Entry",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceD0Entry),
            8,
            "wdfdevice.h:1211",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceD0EntryPostInterruptsEnabled",
            offset_of!(
                WDF_PNPPOWER_EVENT_CALLBACKS,
                EvtDeviceD0EntryPostInterruptsEnabled
            ),
            16,
            "wdfdevice.h:1212",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceD0Exit",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceD0Exit),
            24,
            "wdfdevice.h:1213",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceD0ExitPreInterruptsDisabled",
            offset_of!(
                WDF_PNPPOWER_EVENT_CALLBACKS,
                EvtDeviceD0ExitPreInterruptsDisabled
            ),
            32,
            "wdfdevice.h:1214",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDevicePrepareHardware",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDevicePrepareHardware),
            40,
            "wdfdevice.h:1215",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceReleaseHardware",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceReleaseHardware),
            48,
            "wdfdevice.h:1216",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSelfManagedIoCleanup",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSelfManagedIoCleanup),
            56,
            "wdfdevice.h:1217",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSelfManagedIoFlush",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSelfManagedIoFlush),
            64,
            "wdfdevice.h:1218",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSelfManagedIoInit",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSelfManagedIoInit),
            72,
            "wdfdevice.h:1219",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSelfManagedIoSuspend",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSelfManagedIoSuspend),
            80,
            "wdfdevice.h:1220",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSelfManagedIoRestart",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSelfManagedIoRestart),
            88,
            "wdfdevice.h:1221",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceSurpriseRemoval",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceSurpriseRemoval),
            96,
            "wdfdevice.h:1222",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceQueryRemove",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceQueryRemove),
            104,
            "wdfdevice.h:1223",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceQueryStop",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceQueryStop),
            112,
            "wdfdevice.h:1224",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceUsageNotification",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceUsageNotification),
            120,
            "wdfdevice.h:1225",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceRelationsQuery",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceRelationsQuery),
            128,
            "wdfdevice.h:1226",
        ),
        (
            "WDF_PNPPOWER_EVENT_CALLBACKS.EvtDeviceUsageNotificationEx",
            offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceUsageNotificationEx),
            136,
            "wdfdevice.h:1227",
        ),
        (
            "sizeof(WDF_TIMER_CONFIG)",
            size_of::<WDF_TIMER_CONFIG>(),
            40,
            "wdftimer.h:75",
        ),
        (
            "WDF_TIMER_CONFIG.EvtTimerFunc",
            offset_of!(WDF_TIMER_CONFIG, EvtTimerFunc),
            8,
            "wdftimer.h:77",
        ),
        (
            "WDF_TIMER_CONFIG.Period",
            offset_of!(WDF_TIMER_CONFIG, Period),
            16,
            "wdftimer.h:79",
        ),
        (
            "WDF_TIMER_CONFIG.AutomaticSerialization",
            offset_of!(WDF_TIMER_CONFIG, AutomaticSerialization),
            20,
            "wdftimer.h:88",
        ),
        (
            "WDF_TIMER_CONFIG.TolerableDelay",
            offset_of!(WDF_TIMER_CONFIG, TolerableDelay),
            24,
            "wdftimer.h:93",
        ),
        (
            "WDF_TIMER_CONFIG.UseHighResolutionTimer",
            offset_of!(WDF_TIMER_CONFIG, UseHighResolutionTimer),
            32,
            "wdftimer.h:99",
        ),
        (
            "sizeof(WDF_DRIVER_VERSION_AVAILABLE_PARAMS)",
            size_of::<WDF_DRIVER_VERSION_AVAILABLE_PARAMS>(),
            12,
            "wdfdriver.h:160",
        ),
        (
            "WDF_DRIVER_VERSION_AVAILABLE_PARAMS.MajorVersion",
            offset_of!(WDF_DRIVER_VERSION_AVAILABLE_PARAMS, MajorVersion),
            4,
            "wdfdriver.h:169",
        ),
        (
            "WDF_DRIVER_VERSION_AVAILABLE_PARAMS.MinorVersion",
            offset_of!(WDF_DRIVER_VERSION_AVAILABLE_PARAMS, MinorVersion),
            8,
            "wdfdriver.h:174",
        ),
        (
            "sizeof(GUID)",
            size_of::<GUID>(),
            16,
            "mingw-w64 guiddef.h:19",
        ),
        (
            "GUID.Data2",
            offset_of!(GUID, Data2),
            4,
            "mingw-w64 guiddef.h:21",
        ),
        (
            "GUID.Data3",
            offset_of!(GUID, Data3),
            6,
            "mingw-w64 guiddef.h:22",
        ),
        (
            "GUID.Data4",
            offset_of!(GUID, Data4),
            8,
            "mingw-w64 guiddef.h:23",
        ),
        (
            "sizeof(WDFTIMER)",
            size_of::<WDFTIMER>(),
            8,
            "wdftypes.h:142",
        ),
        (
            "sizeof(WDFSPINLOCK)",
            size_of::<WDFSPINLOCK>(),
            8,
            "wdftypes.h:150",
        ),
        (
            "sizeof(WDFSTRING)",
            size_of::<WDFSTRING>(),
            8,
            "wdftypes.h:172",
        ),
        (
            "sizeof(WDFCMRESLIST)",
            size_of::<WDFCMRESLIST>(),
            8,
            "wdftypes.h:178",
        ),
    ]);
}

/// The enumerators added for the echo sample's callbacks.
#[test]
fn echo_sample_enumerators_match_the_headers() {
    check(&[
        (
            "WdfPowerDeviceInvalid",
            value(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceInvalid),
            0,
            "wdfdevice.h:473",
        ),
        (
            "WdfPowerDeviceD0",
            value(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD0),
            1,
            "wdfdevice.h:474",
        ),
        (
            "WdfPowerDeviceD1",
            value(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD1),
            2,
            "wdfdevice.h:475",
        ),
        (
            "WdfPowerDeviceD2",
            value(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD2),
            3,
            "wdfdevice.h:476",
        ),
        (
            "WdfPowerDeviceD3",
            value(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3),
            4,
            "wdfdevice.h:477",
        ),
        (
            "WdfPowerDeviceD3Final",
            value(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final),
            5,
            "wdfdevice.h:478",
        ),
        (
            "WdfPowerDevicePrepareForHibernation",
            value(_WDF_POWER_DEVICE_STATE::WdfPowerDevicePrepareForHibernation),
            6,
            "wdfdevice.h:479",
        ),
        (
            "WdfPowerDeviceMaximum",
            value(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceMaximum),
            7,
            "wdfdevice.h:480",
        ),
        (
            "WdfSpecialFileUndefined",
            value(_WDF_SPECIAL_FILE_TYPE::WdfSpecialFileUndefined),
            0,
            "wdfdevice.h:492",
        ),
        (
            "WdfSpecialFilePaging",
            value(_WDF_SPECIAL_FILE_TYPE::WdfSpecialFilePaging),
            1,
            "wdfdevice.h:493",
        ),
        (
            "WdfSpecialFileHibernation",
            value(_WDF_SPECIAL_FILE_TYPE::WdfSpecialFileHibernation),
            2,
            "wdfdevice.h:494",
        ),
        (
            "WdfSpecialFileDump",
            value(_WDF_SPECIAL_FILE_TYPE::WdfSpecialFileDump),
            3,
            "wdfdevice.h:495",
        ),
        (
            "WdfSpecialFileBoot",
            value(_WDF_SPECIAL_FILE_TYPE::WdfSpecialFileBoot),
            4,
            "wdfdevice.h:496",
        ),
        (
            "WdfSpecialFilePostDisplay",
            value(_WDF_SPECIAL_FILE_TYPE::WdfSpecialFilePostDisplay),
            5,
            "wdfdevice.h:497",
        ),
        (
            "WdfSpecialFileGuestAssigned",
            value(_WDF_SPECIAL_FILE_TYPE::WdfSpecialFileGuestAssigned),
            6,
            "wdfdevice.h:498",
        ),
        (
            "WdfSpecialFileMax",
            value(_WDF_SPECIAL_FILE_TYPE::WdfSpecialFileMax),
            7,
            "wdfdevice.h:499",
        ),
    ]);
}

/// The function-table indexes added for the echo sample (each also checked against the line
/// `197 + index` of wdffuncenum.h, where the header writes it).
#[test]
fn echo_sample_function_table_indexes_match_wdffuncenum() {
    check(&[
        (
            "WdfDeviceInitSetPnpPowerEventCallbacks",
            value(_WDFFUNCENUM::WdfDeviceInitSetPnpPowerEventCallbacksTableIndex),
            55,
            "wdffuncenum.h:252",
        ),
        (
            "WdfDeviceInitSetRequestAttributes",
            value(_WDFFUNCENUM::WdfDeviceInitSetRequestAttributesTableIndex),
            72,
            "wdffuncenum.h:269",
        ),
        (
            "WdfDeviceCreateDeviceInterface",
            value(_WDFFUNCENUM::WdfDeviceCreateDeviceInterfaceTableIndex),
            77,
            "wdffuncenum.h:274",
        ),
        (
            "WdfDeviceGetDefaultQueue",
            value(_WDFFUNCENUM::WdfDeviceGetDefaultQueueTableIndex),
            92,
            "wdffuncenum.h:289",
        ),
        (
            "WdfDriverRetrieveVersionString",
            value(_WDFFUNCENUM::WdfDriverRetrieveVersionStringTableIndex),
            122,
            "wdffuncenum.h:319",
        ),
        (
            "WdfDriverIsVersionAvailable",
            value(_WDFFUNCENUM::WdfDriverIsVersionAvailableTableIndex),
            123,
            "wdffuncenum.h:320",
        ),
        (
            "WdfIoQueueStart",
            value(_WDFFUNCENUM::WdfIoQueueStartTableIndex),
            154,
            "wdffuncenum.h:351",
        ),
        (
            "WdfIoQueueStopSynchronously",
            value(_WDFFUNCENUM::WdfIoQueueStopSynchronouslyTableIndex),
            156,
            "wdffuncenum.h:353",
        ),
        (
            "WdfMemoryCopyToBuffer",
            value(_WDFFUNCENUM::WdfMemoryCopyToBufferTableIndex),
            196,
            "wdffuncenum.h:393",
        ),
        (
            "WdfMemoryCopyFromBuffer",
            value(_WDFFUNCENUM::WdfMemoryCopyFromBufferTableIndex),
            197,
            "wdffuncenum.h:394",
        ),
        (
            "WdfRequestRetrieveInputMemory",
            value(_WDFFUNCENUM::WdfRequestRetrieveInputMemoryTableIndex),
            267,
            "wdffuncenum.h:464",
        ),
        (
            "WdfRequestRetrieveOutputMemory",
            value(_WDFFUNCENUM::WdfRequestRetrieveOutputMemoryTableIndex),
            268,
            "wdffuncenum.h:465",
        ),
        (
            "WdfRequestGetIoQueue",
            value(_WDFFUNCENUM::WdfRequestGetIoQueueTableIndex),
            282,
            "wdffuncenum.h:479",
        ),
        (
            "WdfStringCreate",
            value(_WDFFUNCENUM::WdfStringCreateTableIndex),
            308,
            "wdffuncenum.h:505",
        ),
        (
            "WdfStringGetUnicodeString",
            value(_WDFFUNCENUM::WdfStringGetUnicodeStringTableIndex),
            309,
            "wdffuncenum.h:506",
        ),
        (
            "WdfSpinLockCreate",
            value(_WDFFUNCENUM::WdfSpinLockCreateTableIndex),
            315,
            "wdffuncenum.h:512",
        ),
        (
            "WdfSpinLockAcquire",
            value(_WDFFUNCENUM::WdfSpinLockAcquireTableIndex),
            316,
            "wdffuncenum.h:513",
        ),
        (
            "WdfSpinLockRelease",
            value(_WDFFUNCENUM::WdfSpinLockReleaseTableIndex),
            317,
            "wdffuncenum.h:514",
        ),
        (
            "WdfTimerCreate",
            value(_WDFFUNCENUM::WdfTimerCreateTableIndex),
            318,
            "wdffuncenum.h:515",
        ),
        (
            "WdfTimerStart",
            value(_WDFFUNCENUM::WdfTimerStartTableIndex),
            319,
            "wdffuncenum.h:516",
        ),
        (
            "WdfTimerStop",
            value(_WDFFUNCENUM::WdfTimerStopTableIndex),
            320,
            "wdffuncenum.h:517",
        ),
        (
            "WdfTimerGetParentObject",
            value(_WDFFUNCENUM::WdfTimerGetParentObjectTableIndex),
            321,
            "wdffuncenum.h:518",
        ),
    ]);
}

/// The bytes of a plain structure.
fn bytes<T>(value: &T) -> Vec<u8> {
    // SAFETY: Reading `size_of::<T>()` initialized bytes of a live value (these structures are
    // built from `zeroed()`-based defaults, so their padding is initialized too).
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(value).cast::<u8>(), size_of::<T>()) }
        .to_vec()
}

/// An image of `len` zero bytes with `writes` (offset, little-endian value, width) applied.
fn image(len: usize, writes: &[(usize, u64, usize)]) -> Vec<u8> {
    let mut out = vec![0_u8; len];
    for &(offset, value, width) in writes {
        out[offset..offset + width].copy_from_slice(&value.to_le_bytes()[..width]);
    }
    out
}

const unsafe extern "C" fn add(
    _: wskudp_wdf_decls::WDFDRIVER,
    _: wskudp_wdf_decls::PWDFDEVICE_INIT,
) -> i32 {
    0
}
const unsafe extern "C" fn file_create(_: WDFDEVICE, _: WDFREQUEST, _: WDFFILEOBJECT) {}
const unsafe extern "C" fn file_close(_: WDFFILEOBJECT) {}
const unsafe extern "C" fn file_cleanup(_: WDFFILEOBJECT) {}

/// A context type as `WDF_DECLARE_CONTEXT_TYPE_WITH_NAME` declares one.
static INFO: init::ContextTypeInfo = init::ContextTypeInfo(WDF_OBJECT_CONTEXT_TYPE_INFO {
    Size: 40,
    ContextName: c"Ctx".as_ptr(),
    ContextSize: 16,
    UniqueType: &raw const INFO.0,
    EvtDriverGetUniqueContextType: None,
});

#[test]
fn init_functions_write_what_the_header_macros_write() {
    // WDF_DRIVER_CONFIG_INIT (wdfdriver.h:149-158): zeroed, Size = 32, EvtDriverDeviceAdd.
    let config = init::driver_config(Some(add));
    assert_eq!(
        bytes(&config),
        image(32, &[(0, 32, 4), (8, (add as *const ()).addr() as u64, 8)]),
        "WDF_DRIVER_CONFIG_INIT ({H}wdfdriver.h:149)"
    );
    // WDF_OBJECT_ATTRIBUTES_INIT (wdfobject.h:147-155): zeroed, Size = 56, both constraints 1.
    assert_eq!(
        bytes(&init::object_attributes()),
        image(56, &[(0, 56, 4), (24, 1, 4), (28, 1, 4)]),
        "WDF_OBJECT_ATTRIBUTES_INIT ({H}wdfobject.h:147)"
    );
    // WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE (wdfobject.h:157-172): plus ContextTypeInfo =
    // the type info's UniqueType, which WDF_DECLARE_CONTEXT_TYPE_WITH_NAME points at itself.
    let attributes = init::object_attributes_with_context(&INFO);
    assert_eq!(
        bytes(&attributes),
        image(
            56,
            &[
                (0, 56, 4),
                (24, 1, 4),
                (28, 1, 4),
                (48, (&raw const INFO.0) as usize as u64, 8)
            ]
        ),
        "WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE ({H}wdfobject.h:170)"
    );
    // WDF_FILEOBJECT_CONFIG_INIT (wdfdevice.h:642-657): Size = 40, the callbacks,
    // AutoForwardCleanupClose = 2, FileObjectClass = 4 (bytes 4-7 are padding it leaves alone).
    let file = init::file_object_config(Some(file_create), Some(file_close), Some(file_cleanup));
    assert_eq!(
        bytes(&file),
        image(
            40,
            &[
                (0, 40, 4),
                (8, (file_create as *const ()).addr() as u64, 8),
                (16, (file_close as *const ()).addr() as u64, 8),
                (24, (file_cleanup as *const ()).addr() as u64, 8),
                (32, 2, 4),
                (36, 4, 4),
            ]
        ),
        "WDF_FILEOBJECT_CONFIG_INIT ({H}wdfdevice.h:642)"
    );
    // WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE (wdfio.h:441-457): zeroed, Size = 96,
    // PowerManaged = 2, DefaultQueue = 1, DispatchType; for Parallel only,
    // NumberOfPresentedRequests = 0xFFFFFFFF.
    let parallel =
        init::default_queue_config(_WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchParallel);
    assert_eq!(
        bytes(&parallel),
        image(
            96,
            &[
                (0, 96, 4),
                (4, 2, 4),
                (8, 2, 4),
                (13, 1, 1),
                (80, 0xFFFF_FFFF, 4)
            ]
        ),
        "WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(Parallel) ({H}wdfio.h:441)"
    );
    let sequential =
        init::default_queue_config(_WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchSequential);
    assert_eq!(
        bytes(&sequential),
        image(96, &[(0, 96, 4), (4, 1, 4), (8, 2, 4), (13, 1, 1)]),
        "WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE(Sequential) ({H}wdfio.h:441)"
    );
}
