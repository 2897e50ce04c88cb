//! The function table: every one of KMDF 1.33's 458 entries (wdffuncenum.h:655), the modelled
//! ones pointing at the model, the rest at a stub that stops the machine naming the index.

use std::sync::LazyLock;

use wskudp_wdf_decls::{_WDFFUNCENUM, ULONG, WDFFUNC};

use super::{device, objects, queue, string, sync};

/// `WdfFunctionTableNumEntries` for KMDF 1.33.
pub(crate) const COUNT: ULONG = 458;

/// A table entry the model does not implement: the driver called something it cannot run.
unsafe extern "C" fn not_modelled<const INDEX: usize>() {
    crate::state::bugcheck(
        "WdfFunctionNotModelled",
        &format!(
            "the driver called WDF function table entry {INDEX} (_WDFFUNCENUM, wdffuncenum.h), which the model does not implement"
        ),
    );
}

type Stub = unsafe extern "C" fn();

macro_rules! row {
    ($h:literal $t:literal) => {
        [
            not_modelled::<{ $h * 100 + $t * 10 }>,
            not_modelled::<{ $h * 100 + $t * 10 + 1 }>,
            not_modelled::<{ $h * 100 + $t * 10 + 2 }>,
            not_modelled::<{ $h * 100 + $t * 10 + 3 }>,
            not_modelled::<{ $h * 100 + $t * 10 + 4 }>,
            not_modelled::<{ $h * 100 + $t * 10 + 5 }>,
            not_modelled::<{ $h * 100 + $t * 10 + 6 }>,
            not_modelled::<{ $h * 100 + $t * 10 + 7 }>,
            not_modelled::<{ $h * 100 + $t * 10 + 8 }>,
            not_modelled::<{ $h * 100 + $t * 10 + 9 }>,
        ]
    };
}

macro_rules! hundred {
    ($h:literal) => {
        [
            row!($h 0), row!($h 1), row!($h 2), row!($h 3), row!($h 4),
            row!($h 5), row!($h 6), row!($h 7), row!($h 8), row!($h 9),
        ]
    };
}

static STUBS: [[[Stub; 10]; 10]; 5] = [
    hundred!(0),
    hundred!(1),
    hundred!(2),
    hundred!(3),
    hundred!(4),
];

/// Puts `$function` at `$index`, checked against `$pfn` (the header's `PFN_WDFXXX`).
macro_rules! entry {
    ($table:ident, $index:ident, $pfn:ident, $function:path) => {{
        let typed: wskudp_wdf_decls::$pfn = Some($function);
        // SAFETY: Erasing the parameter list, as the table stores every entry; the driver casts
        // it back to the same PFN type by index.
        let erased = unsafe { std::mem::transmute::<wskudp_wdf_decls::$pfn, WDFFUNC>(typed) };
        let index = usize::try_from(_WDFFUNCENUM::$index).unwrap_or(usize::MAX);
        if let Some(slot) = $table.get_mut(index) {
            *slot = erased;
        }
    }};
}

static TABLE: LazyLock<Box<[WDFFUNC]>> = LazyLock::new(|| {
    let mut table: Vec<WDFFUNC> = STUBS
        .as_flattened()
        .as_flattened()
        .iter()
        .take(COUNT as usize)
        .map(|stub| Some(*stub))
        .collect();
    entry!(
        table,
        WdfDriverCreateTableIndex,
        PFN_WDFDRIVERCREATE,
        device::wdf_driver_create
    );
    entry!(
        table,
        WdfControlDeviceInitAllocateTableIndex,
        PFN_WDFCONTROLDEVICEINITALLOCATE,
        device::wdf_control_device_init_allocate
    );
    entry!(
        table,
        WdfControlFinishInitializingTableIndex,
        PFN_WDFCONTROLFINISHINITIALIZING,
        device::wdf_control_finish_initializing
    );
    entry!(
        table,
        WdfDeviceWdmGetDeviceObjectTableIndex,
        PFN_WDFDEVICEWDMGETDEVICEOBJECT,
        device::wdf_device_wdm_get_device_object
    );
    entry!(
        table,
        WdfDeviceInitFreeTableIndex,
        PFN_WDFDEVICEINITFREE,
        device::wdf_device_init_free
    );
    entry!(
        table,
        WdfDeviceInitSetDeviceTypeTableIndex,
        PFN_WDFDEVICEINITSETDEVICETYPE,
        device::wdf_device_init_set_device_type
    );
    entry!(
        table,
        WdfDeviceInitAssignNameTableIndex,
        PFN_WDFDEVICEINITASSIGNNAME,
        device::wdf_device_init_assign_name
    );
    entry!(
        table,
        WdfDeviceInitSetCharacteristicsTableIndex,
        PFN_WDFDEVICEINITSETCHARACTERISTICS,
        device::wdf_device_init_set_characteristics
    );
    entry!(
        table,
        WdfDeviceInitSetFileObjectConfigTableIndex,
        PFN_WDFDEVICEINITSETFILEOBJECTCONFIG,
        device::wdf_device_init_set_file_object_config
    );
    entry!(
        table,
        WdfDeviceCreateTableIndex,
        PFN_WDFDEVICECREATE,
        device::wdf_device_create
    );
    entry!(
        table,
        WdfDeviceCreateSymbolicLinkTableIndex,
        PFN_WDFDEVICECREATESYMBOLICLINK,
        device::wdf_device_create_symbolic_link
    );
    entry!(
        table,
        WdfIoQueueCreateTableIndex,
        PFN_WDFIOQUEUECREATE,
        queue::wdf_io_queue_create
    );
    entry!(
        table,
        WdfObjectGetTypedContextWorkerTableIndex,
        PFN_WDFOBJECTGETTYPEDCONTEXTWORKER,
        objects::wdf_object_get_typed_context_worker
    );
    entry!(
        table,
        WdfObjectDeleteTableIndex,
        PFN_WDFOBJECTDELETE,
        device::wdf_object_delete
    );
    entry!(
        table,
        WdfRequestUnmarkCancelableTableIndex,
        PFN_WDFREQUESTUNMARKCANCELABLE,
        queue::wdf_request_unmark_cancelable
    );
    entry!(
        table,
        WdfRequestCompleteTableIndex,
        PFN_WDFREQUESTCOMPLETE,
        queue::wdf_request_complete
    );
    entry!(
        table,
        WdfRequestCompleteWithInformationTableIndex,
        PFN_WDFREQUESTCOMPLETEWITHINFORMATION,
        queue::wdf_request_complete_with_information
    );
    entry!(
        table,
        WdfRequestRetrieveInputBufferTableIndex,
        PFN_WDFREQUESTRETRIEVEINPUTBUFFER,
        queue::wdf_request_retrieve_input_buffer
    );
    entry!(
        table,
        WdfRequestRetrieveOutputBufferTableIndex,
        PFN_WDFREQUESTRETRIEVEOUTPUTBUFFER,
        queue::wdf_request_retrieve_output_buffer
    );
    entry!(
        table,
        WdfRequestRetrieveOutputWdmMdlTableIndex,
        PFN_WDFREQUESTRETRIEVEOUTPUTWDMMDL,
        queue::wdf_request_retrieve_output_wdm_mdl
    );
    entry!(
        table,
        WdfRequestSetInformationTableIndex,
        PFN_WDFREQUESTSETINFORMATION,
        queue::wdf_request_set_information
    );
    entry!(
        table,
        WdfRequestGetFileObjectTableIndex,
        PFN_WDFREQUESTGETFILEOBJECT,
        queue::wdf_request_get_file_object
    );
    entry!(
        table,
        WdfRequestMarkCancelableExTableIndex,
        PFN_WDFREQUESTMARKCANCELABLEEX,
        queue::wdf_request_mark_cancelable_ex
    );
    entry!(
        table,
        WdfDeviceInitSetPnpPowerEventCallbacksTableIndex,
        PFN_WDFDEVICEINITSETPNPPOWEREVENTCALLBACKS,
        device::wdf_device_init_set_pnp_power_event_callbacks
    );
    entry!(
        table,
        WdfDeviceInitSetRequestAttributesTableIndex,
        PFN_WDFDEVICEINITSETREQUESTATTRIBUTES,
        device::wdf_device_init_set_request_attributes
    );
    entry!(
        table,
        WdfDeviceCreateDeviceInterfaceTableIndex,
        PFN_WDFDEVICECREATEDEVICEINTERFACE,
        device::wdf_device_create_device_interface
    );
    entry!(
        table,
        WdfDeviceGetDefaultQueueTableIndex,
        PFN_WDFDEVICEGETDEFAULTQUEUE,
        device::wdf_device_get_default_queue
    );
    entry!(
        table,
        WdfDriverRetrieveVersionStringTableIndex,
        PFN_WDFDRIVERRETRIEVEVERSIONSTRING,
        string::wdf_driver_retrieve_version_string
    );
    entry!(
        table,
        WdfDriverIsVersionAvailableTableIndex,
        PFN_WDFDRIVERISVERSIONAVAILABLE,
        string::wdf_driver_is_version_available
    );
    entry!(
        table,
        WdfIoQueueStartTableIndex,
        PFN_WDFIOQUEUESTART,
        queue::wdf_io_queue_start
    );
    entry!(
        table,
        WdfIoQueueStopSynchronouslyTableIndex,
        PFN_WDFIOQUEUESTOPSYNCHRONOUSLY,
        queue::wdf_io_queue_stop_synchronously
    );
    entry!(
        table,
        WdfMemoryCopyToBufferTableIndex,
        PFN_WDFMEMORYCOPYTOBUFFER,
        queue::wdf_memory_copy_to_buffer
    );
    entry!(
        table,
        WdfMemoryCopyFromBufferTableIndex,
        PFN_WDFMEMORYCOPYFROMBUFFER,
        queue::wdf_memory_copy_from_buffer
    );
    entry!(
        table,
        WdfRequestRetrieveInputMemoryTableIndex,
        PFN_WDFREQUESTRETRIEVEINPUTMEMORY,
        queue::wdf_request_retrieve_input_memory
    );
    entry!(
        table,
        WdfRequestRetrieveOutputMemoryTableIndex,
        PFN_WDFREQUESTRETRIEVEOUTPUTMEMORY,
        queue::wdf_request_retrieve_output_memory
    );
    entry!(
        table,
        WdfRequestGetIoQueueTableIndex,
        PFN_WDFREQUESTGETIOQUEUE,
        queue::wdf_request_get_io_queue
    );
    entry!(
        table,
        WdfStringCreateTableIndex,
        PFN_WDFSTRINGCREATE,
        string::wdf_string_create
    );
    entry!(
        table,
        WdfStringGetUnicodeStringTableIndex,
        PFN_WDFSTRINGGETUNICODESTRING,
        string::wdf_string_get_unicode_string
    );
    entry!(
        table,
        WdfSpinLockCreateTableIndex,
        PFN_WDFSPINLOCKCREATE,
        sync::wdf_spin_lock_create
    );
    entry!(
        table,
        WdfSpinLockAcquireTableIndex,
        PFN_WDFSPINLOCKACQUIRE,
        sync::wdf_spin_lock_acquire
    );
    entry!(
        table,
        WdfSpinLockReleaseTableIndex,
        PFN_WDFSPINLOCKRELEASE,
        sync::wdf_spin_lock_release
    );
    entry!(
        table,
        WdfTimerCreateTableIndex,
        PFN_WDFTIMERCREATE,
        sync::wdf_timer_create
    );
    entry!(
        table,
        WdfTimerStartTableIndex,
        PFN_WDFTIMERSTART,
        sync::wdf_timer_start
    );
    entry!(
        table,
        WdfTimerStopTableIndex,
        PFN_WDFTIMERSTOP,
        sync::wdf_timer_stop
    );
    entry!(
        table,
        WdfTimerGetParentObjectTableIndex,
        PFN_WDFTIMERGETPARENTOBJECT,
        sync::wdf_timer_get_parent_object
    );
    table.into_boxed_slice()
});

/// The table's address, as the loader stores it in `WdfFunctions_01033`.
pub(crate) fn table() -> *const WDFFUNC {
    TABLE.as_ptr()
}
