//! The function table: every one of KMDF 1.33's 458 entries (wdffuncenum.h:655), the modelled
//! ones pointing at the model, the rest at a stub that stops the machine naming the index.

use std::sync::LazyLock;

use wskudp_wdf_decls::{_WDFFUNCENUM, ULONG, WDFFUNC};

use super::{device, objects, queue};

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
    table.into_boxed_slice()
});

/// The table's address, as the loader stores it in `WdfFunctions_01033`.
pub(crate) fn table() -> *const WDFFUNC {
    TABLE.as_ptr()
}
