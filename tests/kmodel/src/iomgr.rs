//! The I/O manager: driver and device objects, the object namespace, file objects, and the
//! IRPs user-mode calls become, delivered through the driver's `MajorFunction` table.
//!
//! What a front door sees is what Windows gives it (wdm.h layouts, windows-sys types):
//! - loading calls `DriverEntry` with a `DRIVER_OBJECT` at `PASSIVE_LEVEL` (for KMDF through
//!   the [`crate::wdf`] model's `FxDriverEntry`) and then clears `DO_DEVICE_INITIALIZING` on
//!   the devices `DriverEntry` created ("Initializing a Device Object": the I/O manager clears
//!   it for devices created in `DriverEntry`);
//! - `CreateFile` on `\\.\Name` resolves `\DosDevices\Name` to its device, fails with
//!   `STATUS_NO_SUCH_DEVICE` while the device is initializing or deleted, checks the caller
//!   against the device's security descriptor, and sends `IRP_MJ_CREATE` with a new
//!   `FILE_OBJECT`;
//! - `DeviceIoControl` checks the code's required access against the handle's, and sends
//!   `IRP_MJ_DEVICE_CONTROL` with the buffers of the code's transfer method ("Buffer
//!   Descriptions for I/O Control Codes"): `METHOD_BUFFERED`'s system buffer (input copied in,
//!   output copied back on completion, `IoStatus.Information` bytes of it, none on an error
//!   status); for `METHOD_IN_DIRECT` / `METHOD_OUT_DIRECT` the input in a system buffer and
//!   the caller's output buffer under a locked MDL (`Irp->MdlAddress`); for `METHOD_NEITHER`
//!   the caller's addresses (`Type3InputBuffer`, `Irp->UserBuffer`);
//! - closing the last handle sends `IRP_MJ_CLEANUP` at once and `IRP_MJ_CLOSE` once the last
//!   IRP on the file object has completed;
//! - `ReadFile` / `WriteFile` send `IRP_MJ_READ` / `IRP_MJ_WRITE` with buffered I/O (the device
//!   must have `DO_BUFFERED_IO`; direct and neither I/O stop the machine as not modelled): a
//!   system buffer of `Length` bytes, the written data copied in, or for a read
//!   `IoStatus.Information` bytes copied back on completion;
//! - unloading (`sc stop`) a driver whose devices still have open files is deferred until the
//!   last one closes (legacy driver unload); after `DriverUnload`, the image goes away once every
//!   device object is deleted and unreferenced, and a completion routine of the driver still
//!   running then is bugcheck 0xCE (`DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS`).
//!
//! A PnP driver (one whose `DriverEntry` set `DriverExtension->AddDevice`) gets from the PnP
//! manager one root-enumerated device, as an INF with a `root\...` hardware id installed with
//! `devcon install` does: a PDO named `\Device\<n>` owned by the PnP manager's root bus driver
//! (instance `ROOT\<NAME>\0000`), `AddDevice` with it, then `IRP_MN_START_DEVICE` to the top
//! of the stack. Device interfaces the driver registers on that PDO
//! (`IoRegisterDeviceInterface`, enabled with `IoSetDeviceInterfaceState`) are symbolic links
//! `\??\ROOT#<NAME>#0000#{class}`; [`device_interfaces`] lists the enabled ones as the paths
//! an application gets from `CM_Get_Device_Interface_List` (`\\?\ROOT#...`), and [`open`]
//! accepts them; IRPs on a handle go to the top of the device's stack. Unloading a PnP driver
//! is `devcon remove`: once no handle is open, `IRP_MN_QUERY_REMOVE_DEVICE` then
//! `IRP_MN_REMOVE_DEVICE` (or `IRP_MN_CANCEL_REMOVE_DEVICE` after a veto, which keeps the
//! driver loaded), the PDO deleted, then `DriverUnload`. No power IRPs are sent (KMDF powers a
//! device up and down implicitly at start and removal).
//!
//! Every dispatch routine is called at `PASSIVE_LEVEL` and must return at it (the system
//! service exit checks: bugcheck 0x4A `IRQL_GT_ZERO_AT_SYSTEM_SERVICE`); one returning
//! `STATUS_PENDING` must have marked the IRP pending, and one returning anything else must have
//! completed the IRP with that status (Driver Verifier's I/O verification, bugcheck 0xC9).

#![allow(
    clippy::cast_ptr_alignment,
    reason = "every kernel object here is allocated with its type's alignment or a multiple"
)]

use std::alloc::Layout;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_skiplist::SkipMap;
use windows_sys::Wdk::Foundation::{
    DEVICE_OBJECT, DRIVER_EXTENSION, DRIVER_OBJECT, FILE_OBJECT, IO_STACK_LOCATION, IRP,
};
use windows_sys::Wdk::Storage::FileSystem::DO_BUFFERED_IO;
use windows_sys::Wdk::System::SystemServices::{
    IO_TYPE_DEVICE, IO_TYPE_DRIVER, IO_TYPE_FILE, IO_TYPE_IRP, IRP_MJ_CLEANUP, IRP_MJ_CLOSE,
    IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IRP_MJ_PNP, IRP_MJ_READ, IRP_MJ_WRITE,
    IRP_MN_CANCEL_REMOVE_DEVICE, IRP_MN_QUERY_REMOVE_DEVICE, IRP_MN_REMOVE_DEVICE,
    IRP_MN_START_DEVICE, SL_PENDING_RETURNED,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_CANCELLED, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_NO_SUCH_DEVICE, STATUS_NOT_SUPPORTED,
    STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_EXISTS, STATUS_OBJECT_NAME_NOT_FOUND,
    STATUS_PENDING, STATUS_SUCCESS, UNICODE_STRING,
};
use wskudp_core::ddi::nt::{DeviceIoControlParameters, current_stack_location_slot};

use crate::faults::{self, Site};
use crate::irql::{self, DISPATCH_LEVEL, PASSIVE_LEVEL};
use crate::security::{Access, Caller, SecurityDescriptor};
use crate::state;

/// `DO_DEVICE_INITIALIZING` (wdm.h).
pub(crate) const DO_DEVICE_INITIALIZING: u32 = 0x0000_0080;

/// A `DriverEntry`.
pub type DriverEntry =
    unsafe extern "system" fn(*mut DRIVER_OBJECT, *const UNICODE_STRING) -> NTSTATUS;

/// `IRP_BUFFERED_IO`, `IRP_DEALLOCATE_BUFFER`, `IRP_INPUT_OPERATION` (wdm.h).
const IRP_BUFFERED_IO: u32 = 0x0000_0010;
const IRP_DEALLOCATE_BUFFER: u32 = 0x0000_0020;
const IRP_INPUT_OPERATION: u32 = 0x0000_0040;
/// `UserMode` and `KernelMode` (`KPROCESSOR_MODE`).
const USER_MODE: i8 = 1;
const KERNEL_MODE: i8 = 0;
/// What the model fills a read's system buffer with: pool is not zeroed, and the I/O manager
/// copies back only the `Information` bytes the driver reports.
const UNINITIALIZED_FILL: u8 = 0xCD;
/// `FILE_DEVICE_UNKNOWN`, `FILE_DEVICE_SECURE_OPEN`, `FILE_AUTOGENERATED_DEVICE_NAME`.
const FILE_DEVICE_UNKNOWN: u32 = 0x22;
const FILE_DEVICE_SECURE_OPEN: u32 = 0x100;
const FILE_AUTOGENERATED_DEVICE_NAME: u32 = 0x80;
/// `METHOD_BUFFERED`, `METHOD_NEITHER` (the direct methods are 1 and 2).
const METHOD_BUFFERED: u32 = 0;
const METHOD_NEITHER: u32 = 3;

/// Every rule the I/O manager checks, with the Windows source it is modelled from (the
/// `IoNotModelled` bugcheck aside). `tests/iomgr_checks.rs` breaks each on purpose.
pub const RULES: &[(&str, &str)] = &[
    (
        "IoDeleteDeviceUnknown",
        "DeleteDevice DDI compliance rule; IoDeleteDevice page",
    ),
    (
        "IoDeleteDeviceTwice",
        "IoDeleteDevice page: only once for a given device object",
    ),
    (
        "IofCompleteRequestUnknownIrp",
        "bug check 0x44 MULTIPLE_IRP_COMPLETE_REQUESTS (a retired IRP); an IRP never sent is the model's own",
    ),
    (
        "MultipleIrpComplete",
        "bug check 0x44 MULTIPLE_IRP_COMPLETE_REQUESTS",
    ),
    (
        "IrpCompletedPending",
        "bug check 0xC9 DRIVER_VERIFIER_IOMANAGER_VIOLATION, parameter 0x06",
    ),
    (
        "IrpCompletedWithCancelRoutine",
        "bug check 0xC9 DRIVER_VERIFIER_IOMANAGER_VIOLATION, parameter 0x07",
    ),
    (
        "InformationExceedsOutputBuffer",
        "Failure to Initialize Output Buffers; Buffer Descriptions for I/O Control Codes (general rule the model's own)",
    ),
    (
        "DeviceObjectsLeftByFailedDriverEntry",
        "DriverEntry Return Values page; IoDeleteDevice page",
    ),
    (
        "IrqlNotPassiveOnReturn",
        "bug check 0x4A IRQL_GT_ZERO_AT_SYSTEM_SERVICE; 0xC9 parameter 0x05 under Verifier",
    ),
    (
        "DriverNotUnloaded",
        "Unload Routine Functionality page; IoDeleteDevice page (delete pending while referenced)",
    ),
    (
        "DriverUnloadedWithRoutineRunning",
        "bug check 0xCE DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS; IoSetCompletionRoutineEx page",
    ),
    (
        "PendingNotMarked",
        "IoMarkIrpPending page: a routine returning STATUS_PENDING marks the IRP first; Verifier I/O verification (0xC9)",
    ),
    (
        "DispatchReturnedWithoutCompleting",
        "Completing IRPs page: a dispatch routine not returning STATUS_PENDING has completed the IRP; Verifier I/O verification (0xC9)",
    ),
    (
        "DispatchStatusMismatch",
        "Completing IRPs page: the dispatch routine returns the status it completed with; Verifier I/O verification (0xC9)",
    ),
];

/// A device object the model allocated.
struct DeviceRecord {
    driver: usize,
    layout: Layout,
    name: Option<String>,
    /// Object references besides the driver's own (`IoSetCompletionRoutineEx`, open files),
    /// also in [`DEVICE_REFERENCES`].
    references: Arc<DeviceReferences>,
    deleted: bool,
    security: SecurityDescriptor,
}

/// A device object's reference count, taken and dropped without the I/O manager's lock: every
/// `IoSetCompletionRoutineEx` (one per WSK IRP) takes one and its completion drops it. The
/// count becomes [`DeviceReferences::FREED`] once, when the deleted device is freed; no
/// reference can be taken after that.
struct DeviceReferences(AtomicUsize);

impl DeviceReferences {
    const FREED: usize = usize::MAX;

    /// `ObReferenceObject`: `false` once the device is freed.
    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != Self::FREED).then_some(n + 1)
            })
            .is_ok()
    }

    /// `ObDereferenceObject`: `true` if none is left.
    fn drop_one(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != Self::FREED).then(|| n.saturating_sub(1))
            })
            .is_ok_and(|n| n <= 1)
    }

    /// Marks the device freed if no reference is left.
    fn free_if_none(&self) -> bool {
        self.0
            .compare_exchange(0, Self::FREED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Every device object's [`DeviceReferences`], by address: looked up without the I/O
/// manager's lock.
static DEVICE_REFERENCES: LazyLock<SkipMap<usize, Arc<DeviceReferences>>> =
    LazyLock::new(SkipMap::new);

/// A file object: one `CreateFile` handle.
struct FileRecord {
    device: usize,
    granted: Access,
    /// I/O requests on this file object not yet completed.
    outstanding: usize,
    /// `IRP_MJ_CLEANUP` was sent; `IRP_MJ_CLOSE` goes once `outstanding` is zero.
    close_pending: bool,
    /// The handle was closed (cleanup sent or being sent).
    cleaned_up: bool,
}

/// A loaded driver image.
struct DriverRecord {
    unload_requested: bool,
    unloaded: bool,
}

/// One IRP the I/O manager built for a user-mode request.
struct RequestRecord {
    file: usize,
    major: u32,
    output_len: usize,
    buffered: bool,
    system_buffer: Option<(usize, Layout)>,
    caller: CallerBuffers,
    completed: Option<(NTSTATUS, usize)>,
    output: Vec<u8>,
    dispatch_returned: bool,
}

/// The caller's own memory behind an IOCTL that is not `METHOD_BUFFERED`, and the MDL the
/// I/O manager describes it with ("Buffer Descriptions for I/O Control Codes"): direct
/// methods get the output buffer as `Irp->MdlAddress`, `METHOD_NEITHER` gets both buffers'
/// user addresses (`Type3InputBuffer`, `Irp->UserBuffer`).
#[derive(Clone, Copy, Debug, Default)]
struct CallerBuffers {
    /// `METHOD_NEITHER`'s input buffer.
    input: Option<(usize, Layout)>,
    /// The output buffer.
    output: Option<(usize, Layout)>,
    /// The locked MDL describing `output` (direct methods).
    mdl: Option<(usize, Layout)>,
}

impl CallerBuffers {
    /// Frees them once the request is retired.
    fn free(self) {
        for (address, layout) in [self.input, self.output, self.mdl].into_iter().flatten() {
            // SAFETY: Allocated in `send_irp` with this layout; the request is complete.
            unsafe { std::alloc::dealloc(std::ptr::with_exposed_provenance_mut(address), layout) };
        }
    }
}

/// A device node: a root-enumerated PDO the PnP manager gave to a PnP driver.
struct DevNode {
    /// `ROOT\<NAME>\<n>`.
    instance: String,
    pdo: usize,
    driver: usize,
}

/// A registered device interface (`IoRegisterDeviceInterface`).
struct Interface {
    pdo: usize,
    /// `{xxxxxxxx-...}`, lower case.
    class: String,
    /// `\??\ROOT#...#{class}[\reference]`.
    link: String,
    enabled: bool,
}

#[derive(Default)]
struct IoState {
    drivers: HashMap<usize, DriverRecord>,
    devices: HashMap<usize, DeviceRecord>,
    names: HashMap<String, usize>,
    links: HashMap<String, String>,
    files: HashMap<usize, FileRecord>,
    requests: HashMap<usize, RequestRecord>,
    /// Devices created while their driver's `DriverEntry` runs.
    loading: Vec<usize>,
    /// Completion routines of drivers running now, not covered by a device reference.
    unguarded_routines: usize,
    /// Device nodes the PnP manager enumerated, and their interfaces.
    devnodes: Vec<DevNode>,
    interfaces: Vec<Interface>,
    /// The PnP manager's root bus driver object, and its PDO numbering.
    root_driver: usize,
    next_pdo: usize,
}

static IO: LazyLock<Mutex<IoState>> = LazyLock::new(|| Mutex::new(IoState::default()));
/// Signaled when a request completes, a file closes or a device goes away.
static IO_CHANGED: Condvar = Condvar::new();

fn io() -> MutexGuard<'static, IoState> {
    IO.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forgets everything (a new machine).
pub(crate) fn reset() {
    *io() = IoState::default();
    DEVICE_REFERENCES.clear();
}

/// Outstanding I/O objects for the leak report: (device objects, file objects, requests).
pub(crate) fn outstanding() -> (usize, usize, usize) {
    let io = io();
    (
        io.devices.values().filter(|d| !d.deleted).count(),
        io.files.len(),
        io.requests.len(),
    )
}

/// Counts a driver completion routine starting (`guarded`: under a device reference taken by
/// `IoSetCompletionRoutineEx`) or ending.
pub(crate) fn routine_running(guarded: bool, running: bool) {
    if running {
        let stats = &state::TABLES.stats;
        state::bump(if guarded {
            &stats.guarded_routines
        } else {
            &stats.unguarded_routines
        });
    }
    if guarded {
        return;
    }
    let mut io = io();
    if running {
        io.unguarded_routines += 1;
    } else {
        io.unguarded_routines = io.unguarded_routines.saturating_sub(1);
        drop(io);
        IO_CHANGED.notify_all();
    }
}

/// Takes a reference on a device object (`ObReferenceObject`).
pub(crate) fn reference_device(device: *const DEVICE_OBJECT) -> bool {
    DEVICE_REFERENCES
        .get(&device.expose_provenance())
        .is_some_and(|entry| entry.value().take())
}

/// Drops a device reference (`ObDereferenceObject`); frees a deleted device with none left.
pub(crate) fn dereference_device(device: *const DEVICE_OBJECT) {
    let address = device.expose_provenance();
    let none_left = DEVICE_REFERENCES
        .get(&address)
        .is_some_and(|entry| entry.value().drop_one());
    // Only the last reference can let a deleted device go: the lock, and a wake-up of the
    // waiters (an unload, a request's caller), only then, not once per completion routine.
    if none_left {
        let freed = free_if_gone(&mut io(), address);
        if freed {
            IO_CHANGED.notify_all();
        }
    }
}

/// Frees `device` if it is deleted and no reference is left; `true` if it did.
fn free_if_gone(io: &mut IoState, device: usize) -> bool {
    let gone = io
        .devices
        .get(&device)
        .is_some_and(|d| d.deleted && d.references.free_if_none());
    if gone && let Some(record) = io.devices.remove(&device) {
        DEVICE_REFERENCES.remove(&device);
        // SAFETY: Allocated by io_create_device with this layout; nothing refers to it now.
        unsafe {
            std::alloc::dealloc(std::ptr::with_exposed_provenance_mut(device), record.layout);
        }
        return true;
    }
    false
}

fn unicode_to_string(text: *const UNICODE_STRING) -> Option<String> {
    // SAFETY: A UNICODE_STRING the driver passed (caller's contract), read-only.
    let text = unsafe { text.as_ref()? };
    if text.Buffer.is_null() || text.Length % 2 != 0 {
        return None;
    }
    // SAFETY: `Length` bytes of UTF-16 at `Buffer` (UNICODE_STRING contract).
    let units = unsafe { std::slice::from_raw_parts(text.Buffer, usize::from(text.Length / 2)) };
    Some(String::from_utf16_lossy(units))
}

/// `IoCreateDevice` (`PASSIVE_LEVEL`), and `IoCreateDeviceSecure`'s work when `sddl` is given.
pub(crate) fn create_device(
    driver: *const DRIVER_OBJECT,
    extension_size: u32,
    name: *const UNICODE_STRING,
    device_type: u32,
    characteristics: u32,
    sddl: Option<&str>,
    device_out: *mut *mut DEVICE_OBJECT,
) -> NTSTATUS {
    irql::require_at_most("IoCreateDevice", PASSIVE_LEVEL);
    let name = if name.is_null() {
        None
    } else {
        unicode_to_string(name)
    };
    let security = match sddl {
        Some(text) => match SecurityDescriptor::parse(text) {
            Some(descriptor) => descriptor,
            None => return windows_sys::Win32::Foundation::STATUS_INVALID_PARAMETER,
        },
        None => SecurityDescriptor::default_device(),
    };
    if faults::should_fail(Site::Pool) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    let mut io = io();
    // `IoCreateDevice` page: STATUS_OBJECT_NAME_COLLISION is among its failure codes (a name
    // already in the object namespace).
    if let Some(name) = &name
        && io.names.contains_key(&name.to_ascii_lowercase())
    {
        return STATUS_OBJECT_NAME_COLLISION;
    }
    let extension = usize::try_from(extension_size).unwrap_or(0);
    let extension_offset = size_of::<DEVICE_OBJECT>().next_multiple_of(16);
    let Ok(layout) = Layout::from_size_align(extension_offset + extension, 16) else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    // SAFETY: Non-zero size.
    let device = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<DEVICE_OBJECT>();
    if device.is_null() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: A fresh zeroed block large enough for the device object and its extension; the
    // driver object is the caller's.
    unsafe {
        (*device).Type = i16::try_from(IO_TYPE_DEVICE).unwrap_or_default();
        (*device).Size = u16::try_from(layout.size()).unwrap_or(u16::MAX);
        (*device).DriverObject = driver.cast_mut();
        (*device).DeviceType = device_type;
        (*device).Characteristics = characteristics;
        (*device).StackSize = 1;
        (*device).Flags = DO_DEVICE_INITIALIZING;
        (*device).DeviceExtension = if extension == 0 {
            std::ptr::null_mut()
        } else {
            device.cast::<u8>().add(extension_offset).cast()
        };
        // Linked at the head of the driver's list, as IoCreateDevice does.
        (*device).NextDevice = (*driver).DeviceObject;
        (*driver.cast_mut()).DeviceObject = device;
        device_out.write(device);
    }
    let address = device.expose_provenance();
    if let Some(name) = &name {
        io.names.insert(name.to_ascii_lowercase(), address);
    }
    let references = Arc::new(DeviceReferences(AtomicUsize::new(0)));
    DEVICE_REFERENCES.insert(address, Arc::clone(&references));
    io.devices.insert(
        address,
        DeviceRecord {
            driver: driver.expose_provenance(),
            layout,
            name,
            references: Arc::clone(&references),
            deleted: false,
            security,
        },
    );
    io.loading.push(address);
    STATUS_SUCCESS
}

/// `IoCreateDevice` (`PASSIVE_LEVEL`).
///
/// # Safety
/// The DDI's contract: a valid driver object, name and out pointer.
#[unsafe(export_name = "IoCreateDevice")]
pub(crate) unsafe extern "system" fn io_create_device(
    driver: *const DRIVER_OBJECT,
    extension_size: u32,
    name: *const UNICODE_STRING,
    device_type: u32,
    characteristics: u32,
    _exclusive: bool,
    device_out: *mut *mut DEVICE_OBJECT,
) -> NTSTATUS {
    create_device(
        driver,
        extension_size,
        name,
        device_type,
        characteristics,
        None,
        device_out,
    )
}

/// `IoDeleteDevice` (`PASSIVE_LEVEL`): the device stops accepting opens at once and is freed
/// when its last reference goes.
///
/// # Safety
/// `device` must be a device object of the caller's driver.
#[unsafe(export_name = "IoDeleteDevice")]
pub(crate) unsafe extern "system" fn io_delete_device(device: *const DEVICE_OBJECT) {
    irql::require_at_most("IoDeleteDevice", PASSIVE_LEVEL);
    let address = device.expose_provenance();
    let mut io = io();
    let Some(record) = io.devices.get_mut(&address) else {
        drop(io);
        // The DeleteDevice (wdm) DDI compliance rule: nothing keeps a device object alive after
        // IoDeleteDevice, so a later call passes freed memory; the `IoDeleteDevice` page takes
        // "the device object to be deleted".
        state::violation(
            "IoDeleteDeviceUnknown",
            format!(
                "IoDeleteDevice({address:#x}) of a device object that is not live (DeleteDevice DDI rule)"
            ),
        );
        return;
    };
    if record.deleted {
        drop(io);
        state::violation(
            "IoDeleteDeviceTwice",
            format!(
                "IoDeleteDevice({address:#x}) twice (IoDeleteDevice page: only once for a given device object)"
            ),
        );
        return;
    }
    record.deleted = true;
    let driver = record.driver;
    let name = record.name.take();
    if let Some(name) = name {
        io.names.remove(&name.to_ascii_lowercase());
    }
    // Unlink from the driver's device list.
    let driver_object = std::ptr::with_exposed_provenance_mut::<DRIVER_OBJECT>(driver);
    // SAFETY: The driver object and its device list are live; the list is only changed under
    // this lock.
    unsafe {
        let mut link = &raw mut (*driver_object).DeviceObject;
        while !(*link).is_null() {
            if (*link).expose_provenance() == address {
                *link = (**link).NextDevice;
                break;
            }
            link = &raw mut (**link).NextDevice;
        }
    }
    free_if_gone(&mut io, address);
    drop(io);
    IO_CHANGED.notify_all();
}

/// `IoCreateSymbolicLink` (`PASSIVE_LEVEL`).
///
/// # Safety
/// Both names must be valid `UNICODE_STRING`s.
#[unsafe(export_name = "IoCreateSymbolicLink")]
pub(crate) unsafe extern "system" fn io_create_symbolic_link(
    link: *const UNICODE_STRING,
    target: *const UNICODE_STRING,
) -> NTSTATUS {
    irql::require_at_most("IoCreateSymbolicLink", PASSIVE_LEVEL);
    let (Some(link), Some(target)) = (unicode_to_string(link), unicode_to_string(target)) else {
        return windows_sys::Win32::Foundation::STATUS_INVALID_PARAMETER;
    };
    let mut io = io();
    let key = link.to_ascii_lowercase();
    // The `IoCreateSymbolicLink` page documents only STATUS_SUCCESS; a link name that already
    // exists failing with STATUS_OBJECT_NAME_COLLISION is inferred (the status the
    // `IoCreateDevice` page gives for the same clash in the object namespace).
    if io.links.contains_key(&key) {
        return STATUS_OBJECT_NAME_COLLISION;
    }
    io.links.insert(key, target.to_ascii_lowercase());
    STATUS_SUCCESS
}

/// `IoDeleteSymbolicLink` (`PASSIVE_LEVEL`).
///
/// # Safety
/// `link` must be a valid `UNICODE_STRING`.
#[unsafe(export_name = "IoDeleteSymbolicLink")]
pub(crate) unsafe extern "system" fn io_delete_symbolic_link(
    link: *const UNICODE_STRING,
) -> NTSTATUS {
    irql::require_at_most("IoDeleteSymbolicLink", PASSIVE_LEVEL);
    let Some(link) = unicode_to_string(link) else {
        return windows_sys::Win32::Foundation::STATUS_INVALID_PARAMETER;
    };
    if io().links.remove(&link.to_ascii_lowercase()).is_some() {
        STATUS_SUCCESS
    } else {
        STATUS_OBJECT_NAME_NOT_FOUND
    }
}

/// Symbolic links left behind (for the leak report).
pub(crate) fn links() -> usize {
    io().links.len()
}

/// `true` if `address` is a live device object.
pub(crate) fn is_device(address: usize) -> bool {
    io().devices.get(&address).is_some_and(|d| !d.deleted)
}

/// Replaces a live device's security descriptor (`ZwSetSecurityObject`); `false` if `address`
/// is no live device.
pub(crate) fn set_device_security(address: usize, security: SecurityDescriptor) -> bool {
    match io().devices.get_mut(&address) {
        Some(record) if !record.deleted => {
            record.security = security;
            true
        }
        _ => false,
    }
}

/// `IofCompleteRequest` (IRQL <= `DISPATCH_LEVEL`) for an IRP the I/O manager sent.
///
/// # Safety
/// `irp` must be an IRP delivered to the caller.
#[unsafe(export_name = "IofCompleteRequest")]
pub(crate) unsafe extern "system" fn iof_complete_request(irp: *const IRP, _boost: i8) {
    irql::require_at_most("IofCompleteRequest", DISPATCH_LEVEL);
    complete_request(irp.cast_mut());
}

/// The I/O manager's side of completing one of its IRPs: checks, output copy, wake-up.
pub(crate) fn complete_request(irp: *mut IRP) {
    let address = irp.expose_provenance();
    // SAFETY: The caller completes an IRP it was delivered; reading its status fields.
    let (status, information, cancel_routine) = unsafe {
        (
            (*irp).IoStatus.Anonymous.Status,
            (*irp).IoStatus.Information,
            (*irp).CancelRoutine,
        )
    };
    let mut io = io();
    let Some(request) = io.requests.get_mut(&address) else {
        drop(io);
        // A retired IRP was completed already: completing it again is bugcheck 0x44
        // MULTIPLE_IRP_COMPLETE_REQUESTS (its page: two drivers each believing they own the
        // packet). One the I/O manager never sent is not the driver's to complete; Windows
        // documents no check of its own for that case, so that half is the model's guard.
        state::violation(
            "IofCompleteRequestUnknownIrp",
            format!(
                "IofCompleteRequest({address:#x}) of an IRP the I/O manager did not send (or already retired: bugcheck 0x44 MULTIPLE_IRP_COMPLETE_REQUESTS)"
            ),
        );
        return;
    };
    if request.completed.is_some() {
        drop(io);
        state::violation(
            "MultipleIrpComplete",
            format!(
                "IRP {address:#x} completed twice (bugcheck 0x44 MULTIPLE_IRP_COMPLETE_REQUESTS)"
            ),
        );
        return;
    }
    let mut problems = Vec::new();
    if status == STATUS_PENDING {
        problems.push((
            "IrpCompletedPending",
            format!("IRP {address:#x} completed with STATUS_PENDING (Driver Verifier 0xC9)"),
        ));
    }
    if cancel_routine.is_some() {
        problems.push((
            "IrpCompletedWithCancelRoutine",
            format!("IRP {address:#x} completed with its cancel routine still set (Driver Verifier 0xC9)"),
        ));
    }
    // NT_ERROR: the I/O manager copies no output back on an error status.
    let information = if wskudp_abi::status::nt_error(status) {
        0
    } else {
        information
    };
    if request.buffered && (request.major == IRP_MJ_DEVICE_CONTROL || request.major == IRP_MJ_READ)
    {
        // Buffered I/O copies `IoStatus.Information` bytes of the system buffer back to the
        // caller ("Failure to Initialize Output Buffers" page), whose output buffer is
        // `OutputBufferLength` bytes ("Buffer Descriptions for I/O Control Codes"). Windows has
        // no general check of its own; KMDF's verifier breaks on the zero-length case
        // (`shared/core/fxrequest.cpp:594-622`). The general rule is the model's.
        if information > request.output_len {
            problems.push((
                "InformationExceedsOutputBuffer",
                format!(
                    "IRP {address:#x} (IRP_MJ {:#x}) completed with Information {information} for a {}-byte output buffer: the I/O manager would copy past the caller's buffer (buffered I/O copies back Information bytes)",
                    request.major,
                    request.output_len
                ),
            ));
        }
        if let Some((buffer, _)) = request.system_buffer {
            let len = information.min(request.output_len);
            // SAFETY: The system buffer holds max(input, output) bytes and lives until the
            // request is retired.
            let bytes = unsafe {
                std::slice::from_raw_parts(std::ptr::with_exposed_provenance::<u8>(buffer), len)
            };
            request.output = bytes.to_vec();
        }
    } else if let Some((buffer, _)) = request.caller.output {
        // Direct and neither I/O: the driver wrote the caller's own buffer; the caller reads
        // the `Information` bytes it was told of.
        let len = information.min(request.output_len);
        // SAFETY: The caller's output buffer holds `output_len` bytes until retired.
        let bytes = unsafe {
            std::slice::from_raw_parts(std::ptr::with_exposed_provenance::<u8>(buffer), len)
        };
        request.output = bytes.to_vec();
    }
    request.completed = Some((status, information));
    if let Some((mdl, _)) = request.caller.mdl {
        // IopCompleteRequest unlocks the caller's pages and frees the MDL.
        crate::mdl::unlock_request_mdl(mdl);
    }
    let file = request.file;
    if let Some(record) = io.files.get_mut(&file) {
        record.outstanding = record.outstanding.saturating_sub(1);
    }
    drop(io);
    for (rule, detail) in problems {
        state::violation(rule, detail);
    }
    IO_CHANGED.notify_all();
    close_if_idle(file);
}

/// A loaded driver.
#[derive(Debug)]
pub struct LoadedDriver {
    object: usize,
}

/// Builds a zeroed `T` on the heap for the life of the process (objects the kernel owns).
fn leak_zeroed<T>() -> *mut T {
    // SAFETY: Every kernel object built here is plain data for which zero is valid.
    Box::into_raw(Box::new(unsafe { std::mem::zeroed::<T>() }))
}

fn leak_unicode(text: &str) -> UNICODE_STRING {
    let units: Vec<u16> = text.encode_utf16().collect();
    unicode_over(Box::leak(units.into_boxed_slice()))
}

/// A `UNICODE_STRING` describing all of `units`, valid while they are.
pub(crate) fn unicode_over(units: &mut [u16]) -> UNICODE_STRING {
    let bytes = u16::try_from(units.len() * 2).unwrap_or(u16::MAX);
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: units.as_mut_ptr(),
    }
}

/// How `DriverEntry` is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Called directly, as `/ENTRY:DriverEntry` (WDM).
    Direct,
    /// Through KMDF's `FxDriverEntry` stub ([`crate::wdf`]).
    Kmdf,
}

/// Loads a driver: builds its `DRIVER_OBJECT` and calls `entry` at `PASSIVE_LEVEL`.
///
/// # Errors
/// `DriverEntry`'s failure status; the driver is then gone (a failed `DriverEntry` must
/// leave nothing: device objects left behind are a violation).
pub fn load(name: &str, entry: DriverEntry, kind: EntryKind) -> Result<LoadedDriver, NTSTATUS> {
    let object = leak_zeroed::<DRIVER_OBJECT>();
    let extension = leak_zeroed::<DRIVER_EXTENSION>();
    let service = leak_unicode(name);
    let path = leak_unicode(&format!(
        r"\Registry\Machine\System\CurrentControlSet\Services\{name}"
    ));
    // SAFETY: Fresh, zeroed, leaked objects.
    unsafe {
        (*object).Type = i16::try_from(IO_TYPE_DRIVER).unwrap_or_default();
        (*object).Size = i16::try_from(size_of::<DRIVER_OBJECT>()).unwrap_or(i16::MAX);
        (*object).DriverExtension = extension;
        (*object).DriverName = leak_unicode(&format!(r"\Driver\{name}"));
        (*extension).DriverObject = object;
        (*extension).ServiceKeyName = service;
    }
    let path = Box::leak(Box::new(path));
    io().loading.clear();
    let status = call_at_passive("DriverEntry", || match kind {
        // SAFETY: The driver's entry point with its driver object and registry path.
        EntryKind::Direct => unsafe { entry(object, path) },
        EntryKind::Kmdf => crate::wdf::fx_driver_entry(entry, object, path),
    });
    let mut io = io();
    let created = std::mem::take(&mut io.loading);
    if status < 0 {
        let left = io
            .devices
            .values()
            .filter(|d| d.driver == object.expose_provenance() && !d.deleted)
            .count();
        drop(io);
        // "DriverEntry Return Values" page: a DriverEntry that fails must free the system
        // objects it set up, and the Unload routine is not called after a failure; the
        // `IoDeleteDevice` page: a legacy driver deletes its device objects when DriverEntry
        // hits a fatal initialization error.
        if left != 0 {
            state::violation(
                "DeviceObjectsLeftByFailedDriverEntry",
                format!(
                    "DriverEntry failed with {status:#x} but left {left} device object(s) (DriverEntry Return Values page)"
                ),
            );
        }
        return Err(status);
    }
    // The I/O manager readies the device objects DriverEntry created.
    for device in created {
        if io.devices.get(&device).is_some_and(|d| !d.deleted) {
            let pointer = std::ptr::with_exposed_provenance_mut::<DEVICE_OBJECT>(device);
            // SAFETY: A live device object of this driver.
            unsafe { (*pointer).Flags &= !DO_DEVICE_INITIALIZING };
        }
    }
    io.drivers.insert(
        object.expose_provenance(),
        DriverRecord {
            unload_requested: false,
            unloaded: false,
        },
    );
    drop(io);
    // SAFETY: The driver extension lives for the process.
    if unsafe { (*extension).AddDevice }.is_some()
        && let Err(status) = pnp_enumerate(object, name)
    {
        // The device did not come up and the driver has no other: the PnP manager unloads it.
        if let Some(record) = self::io().drivers.get_mut(&object.expose_provenance()) {
            record.unloaded = true;
        }
        call_driver_unload(object);
        self::io().drivers.remove(&object.expose_provenance());
        return Err(status);
    }
    Ok(LoadedDriver {
        object: object.expose_provenance(),
    })
}

/// The PnP manager's own driver object: the root bus driver that owns root-enumerated PDOs.
fn root_driver() -> *mut DRIVER_OBJECT {
    let mut io = io();
    if io.root_driver == 0 {
        let object = leak_zeroed::<DRIVER_OBJECT>();
        // SAFETY: A fresh, zeroed, leaked object.
        unsafe {
            (*object).Type = i16::try_from(IO_TYPE_DRIVER).unwrap_or_default();
            (*object).Size = i16::try_from(size_of::<DRIVER_OBJECT>()).unwrap_or(i16::MAX);
            (*object).DriverName = leak_unicode(r"\Driver\PnpManager");
        }
        io.root_driver = object.expose_provenance();
    }
    std::ptr::with_exposed_provenance_mut(io.root_driver)
}

/// What the PnP manager does for a PnP driver's root-enumerated device (an INF with a
/// `root\...` hardware id, installed with `devcon install`): a PDO (`ROOT\<NAME>\<n>`, named
/// `\Device\<n>`, default security), the driver's `AddDevice` with it at `PASSIVE_LEVEL`, then
/// `IRP_MN_START_DEVICE` to the top of the stack. A failed `AddDevice`, one that attached no
/// device, or a failed start removes the device again (`IRP_MN_REMOVE_DEVICE` after a failed
/// start).
fn pnp_enumerate(driver: *mut DRIVER_OBJECT, name: &str) -> Result<(), NTSTATUS> {
    let root = root_driver();
    let (instance, pdo_name) = {
        let mut io = io();
        io.next_pdo += 1;
        let index = io
            .devnodes
            .iter()
            .filter(|d| d.driver == driver.expose_provenance())
            .count();
        (
            format!(r"ROOT\{}\{index:04}", name.to_ascii_uppercase()),
            format!(r"\Device\{:08}", io.next_pdo),
        )
    };
    let mut wide: Vec<u16> = pdo_name.encode_utf16().collect();
    let unicode = unicode_over(&mut wide);
    let mut pdo: *mut DEVICE_OBJECT = std::ptr::null_mut();
    let status = create_device(
        root,
        0,
        &raw const unicode,
        FILE_DEVICE_UNKNOWN,
        FILE_DEVICE_SECURE_OPEN | FILE_AUTOGENERATED_DEVICE_NAME,
        None,
        &raw mut pdo,
    );
    if status < 0 {
        return Err(status);
    }
    {
        let mut io = io();
        io.loading.retain(|d| *d != pdo.expose_provenance());
        // SAFETY: The bus driver's fresh PDO, ready.
        unsafe { (*pdo).Flags &= !DO_DEVICE_INITIALIZING };
        io.devnodes.push(DevNode {
            instance,
            pdo: pdo.expose_provenance(),
            driver: driver.expose_provenance(),
        });
    }
    // SAFETY: The driver's extension lives for the process.
    let add = unsafe { (*(*driver).DriverExtension).AddDevice };
    let status = add.map_or(STATUS_SUCCESS, |add| {
        // SAFETY: The driver's AddDevice with its driver object and the PDO, at PASSIVE_LEVEL.
        call_at_passive("AddDevice", || unsafe { add(driver, pdo) })
    });
    let attached = {
        let _io = io();
        // SAFETY: The PDO is live; AttachedDevice changes under the I/O lock.
        unsafe { !(*pdo).AttachedDevice.is_null() }
    };
    if status < 0 || !attached {
        delete_devnode(pdo.expose_provenance());
        return Err(if status < 0 {
            status
        } else {
            STATUS_NO_SUCH_DEVICE
        });
    }
    let status = pnp_irp(pdo.expose_provenance(), IRP_MN_START_DEVICE);
    if status < 0 {
        let _ = pnp_irp(pdo.expose_provenance(), IRP_MN_REMOVE_DEVICE);
        delete_devnode(pdo.expose_provenance());
        return Err(status);
    }
    Ok(())
}

/// Sends a PnP IRP with `minor` to the top of `pdo`'s stack and waits for it.
fn pnp_irp(pdo: usize, minor: u32) -> NTSTATUS {
    let top = {
        let _io = io();
        attached_top(pdo)
    };
    if top == pdo {
        // No function driver: the root bus driver has nothing to do.
        return STATUS_SUCCESS;
    }
    let request = send_irp(
        top,
        0,
        IRP_MJ_PNP,
        Request::Pnp {
            minor: u8::try_from(minor).unwrap_or(u8::MAX),
        },
    );
    request.wait_io(None).map_or(STATUS_CANCELLED, |c| c.status)
}

/// Deletes a device node: its interfaces go, then the bus driver deletes the PDO.
fn delete_devnode(pdo: usize) {
    {
        let mut io = io();
        let links: Vec<String> = io
            .interfaces
            .iter()
            .filter(|i| i.pdo == pdo && i.enabled)
            .map(|i| dos_link(&i.link))
            .collect();
        for link in links {
            io.links.remove(&link);
        }
        io.interfaces.retain(|i| i.pdo != pdo);
        io.devnodes.retain(|d| d.pdo != pdo);
    }
    // SAFETY: The bus driver's own PDO, deleted once.
    unsafe { io_delete_device(std::ptr::with_exposed_provenance(pdo)) };
}

/// Removes a PnP driver's devices as `devcon remove` does: `IRP_MN_QUERY_REMOVE_DEVICE`, then
/// `IRP_MN_REMOVE_DEVICE` (or `IRP_MN_CANCEL_REMOVE_DEVICE` if the query failed), then the
/// PDO. Returns `false` if a device vetoed its removal.
fn pnp_remove_devices(driver: usize) -> bool {
    let pdos: Vec<usize> = io()
        .devnodes
        .iter()
        .filter(|d| d.driver == driver)
        .map(|d| d.pdo)
        .collect();
    let mut removed = true;
    for pdo in pdos {
        if pnp_irp(pdo, IRP_MN_QUERY_REMOVE_DEVICE) < 0 {
            let _ = pnp_irp(pdo, IRP_MN_CANCEL_REMOVE_DEVICE);
            removed = false;
            continue;
        }
        let _ = pnp_irp(pdo, IRP_MN_REMOVE_DEVICE);
        delete_devnode(pdo);
    }
    removed
}

/// `IoAttachDeviceToDeviceStack`: `source` goes on top of `target`'s stack; returns the device
/// it was attached to (NULL if `target` is deleted).
pub(crate) fn attach_device_to_device_stack(
    source: *mut DEVICE_OBJECT,
    target: *mut DEVICE_OBJECT,
) -> *mut DEVICE_OBJECT {
    irql::require_at_most("IoAttachDeviceToDeviceStack", PASSIVE_LEVEL);
    let io = io();
    if io
        .devices
        .get(&target.expose_provenance())
        .is_none_or(|d| d.deleted)
    {
        return std::ptr::null_mut();
    }
    let top = std::ptr::with_exposed_provenance_mut::<DEVICE_OBJECT>(attached_top(
        target.expose_provenance(),
    ));
    // SAFETY: Live device objects; stacks change under the I/O lock.
    unsafe {
        (*top).AttachedDevice = source;
        (*source).StackSize = (*top).StackSize + 1;
        (*source).AlignmentRequirement = (*source)
            .AlignmentRequirement
            .max((*top).AlignmentRequirement);
    }
    top
}

/// `IoDetachDevice(lower)`: whatever was attached on top of `lower` comes off.
pub(crate) fn detach_device(lower: *mut DEVICE_OBJECT) {
    let _io = io();
    // SAFETY: A live device object; stacks change under the I/O lock.
    unsafe { (*lower).AttachedDevice = std::ptr::null_mut() };
}

/// `\??\X` as the namespace key `\dosdevices\x`.
fn dos_link(link: &str) -> String {
    let link = link.to_ascii_lowercase();
    link.strip_prefix(r"\??\")
        .map_or_else(|| link.clone(), |rest| format!(r"\dosdevices\{rest}"))
}

/// `IoRegisterDeviceInterface(pdo, class, reference)`: the interface's symbolic link name,
/// `\??\<instance with # for \>#<class>[\<reference>]`. `class` is the GUID in registry
/// form (`{xxxxxxxx-...}`). Only PDOs the PnP manager enumerated have interfaces
/// (`STATUS_INVALID_DEVICE_REQUEST` otherwise: the `IoRegisterDeviceInterface` page gives it for
/// a `PhysicalDeviceObject` that "does not point to a valid PDO").
pub(crate) fn register_device_interface(
    pdo: *const DEVICE_OBJECT,
    class: &str,
    reference: Option<&str>,
) -> Result<String, NTSTATUS> {
    irql::require_at_most("IoRegisterDeviceInterface", PASSIVE_LEVEL);
    let mut io = io();
    let instance = io
        .devnodes
        .iter()
        .find(|d| d.pdo == pdo.expose_provenance())
        .map(|d| d.instance.replace('\\', "#"))
        .ok_or(STATUS_INVALID_DEVICE_REQUEST)?;
    let class = class.to_ascii_lowercase();
    let mut link = format!(r"\??\{instance}#{class}");
    if let Some(reference) = reference {
        link.push('\\');
        link.push_str(reference);
    }
    if !io
        .interfaces
        .iter()
        .any(|i| i.link.eq_ignore_ascii_case(&link))
    {
        io.interfaces.push(Interface {
            pdo: pdo.expose_provenance(),
            class,
            link: link.clone(),
            enabled: false,
        });
    }
    Ok(link)
}

/// `IoSetDeviceInterfaceState(link, enable)`: an enabled interface is a symbolic link to the
/// PDO's name (without the reference string, which follows it in the path opened).
pub(crate) fn set_device_interface_state(link: &str, enable: bool) -> NTSTATUS {
    irql::require_at_most("IoSetDeviceInterfaceState", PASSIVE_LEVEL);
    let mut io = io();
    let IoState {
        interfaces,
        devices,
        links,
        ..
    } = &mut *io;
    // A link no IoRegisterDeviceInterface returned: STATUS_OBJECT_NAME_NOT_FOUND is inferred
    // (the page names it only for disabling an interface that is not enabled).
    let Some(interface) = interfaces
        .iter_mut()
        .find(|i| i.link.eq_ignore_ascii_case(link))
    else {
        return STATUS_OBJECT_NAME_NOT_FOUND;
    };
    // `IoSetDeviceInterfaceState` page: enabling an enabled interface returns the informational
    // STATUS_OBJECT_NAME_EXISTS; disabling one that is not enabled, STATUS_OBJECT_NAME_NOT_FOUND.
    if interface.enabled == enable {
        return if enable {
            STATUS_OBJECT_NAME_EXISTS
        } else {
            STATUS_OBJECT_NAME_NOT_FOUND
        };
    }
    let base = interface
        .link
        .split_once('}')
        .map_or(interface.link.as_str(), |(b, _)| b);
    let key = dos_link(&format!("{base}}}"));
    if enable {
        // The model's own guard: its PDOs are named (`\Device\<n>`) until deleted, and no page
        // gives a status for enabling an interface of a deleted PDO.
        let Some(name) = devices.get(&interface.pdo).and_then(|d| d.name.clone()) else {
            return STATUS_INVALID_DEVICE_REQUEST;
        };
        links.insert(key, name.to_ascii_lowercase());
    } else {
        links.remove(&key);
    }
    interface.enabled = enable;
    STATUS_SUCCESS
}

/// The enabled interfaces of `class` (`{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`), as the paths
/// user mode opens (`\\?\ROOT#ECHO#0000#{...}`).
///
/// What `CM_Get_Device_Interface_List` (or `SetupDiGetClassDevs` +
/// `SetupDiGetDeviceInterfaceDetail`) returns to an application.
#[must_use]
pub fn device_interfaces(class: &str) -> Vec<String> {
    io().interfaces
        .iter()
        .filter(|i| i.enabled && i.class.eq_ignore_ascii_case(class))
        .map(|i| format!(r"\\?\{}", &i.link[4..]))
        .collect()
}

/// Records a violation and restores `PASSIVE_LEVEL` if a driver routine returned above it.
/// Calls a driver `routine` at `PASSIVE_LEVEL`, as the I/O manager does, and checks it
/// returned there.
fn call_at_passive<R>(routine: &str, call: impl FnOnce() -> R) -> R {
    irql::set(PASSIVE_LEVEL);
    let result = call();
    check_passive(routine);
    result
}

fn check_passive(routine: &str) {
    let irql = irql::current();
    if irql != PASSIVE_LEVEL {
        state::violation(
            "IrqlNotPassiveOnReturn",
            format!(
                "{routine} returned at IRQL {irql} to a caller at PASSIVE_LEVEL (bugcheck 0x4A IRQL_GT_ZERO_AT_SYSTEM_SERVICE)"
            ),
        );
        irql::set(PASSIVE_LEVEL);
    }
}

impl LoadedDriver {
    /// The driver object, e.g. to create a device for a front door that has none.
    #[must_use]
    pub const fn object(&self) -> *mut DRIVER_OBJECT {
        std::ptr::with_exposed_provenance_mut(self.object)
    }

    /// `sc stop`: calls `DriverUnload` now if no file object is open on the driver's devices,
    /// else when the last one closes; then waits for its device objects to be deleted and
    /// unreferenced ("the image is unloaded").
    ///
    /// # Errors
    /// `STATUS_INVALID_DEVICE_REQUEST` if the driver has no unload routine (it cannot be
    /// stopped).
    pub fn unload(self) -> Result<(), NTSTATUS> {
        let object = self.object();
        // SAFETY: The driver object lives for the process.
        if unsafe { (*object).DriverUnload }.is_none() {
            return Err(STATUS_INVALID_DEVICE_REQUEST);
        }
        {
            let mut io = io();
            if let Some(record) = io.drivers.get_mut(&self.object) {
                record.unload_requested = true;
            }
        }
        unload_if_unused(self.object);
        // Wait until DriverUnload ran (it may wait for handles to close) and the devices are
        // gone.
        let deadline = Instant::now() + state::lock().unload_wait;
        let mut io = io();
        loop {
            let unloaded = io.drivers.get(&self.object).is_some_and(|d| d.unloaded);
            let devices = io
                .devices
                .values()
                .filter(|d| d.driver == self.object)
                .count();
            if unloaded && devices == 0 {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                let live = io
                    .devices
                    .values()
                    .filter(|d| d.driver == self.object && !d.deleted)
                    .count();
                let referenced = devices - live;
                drop(io);
                // "Unload Routine Functionality" page: a non-PnP driver's Unload routine must
                // free its device objects; the `IoDeleteDevice` page: a device object with
                // references left is only marked "delete pending" until they are released.
                // The wait (`Config::unload_wait`) and this report are the model's own: Windows prints
                // nothing.
                state::violation(
                    "DriverNotUnloaded",
                    format!(
                        "after sc stop: DriverUnload ran: {unloaded}; {live} device object(s) not deleted, {referenced} deleted but still referenced (the image stays loaded)"
                    ),
                );
                return Ok(());
            }
            io = IO_CHANGED
                .wait_timeout(io, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        // The image is unmapped now: no routine of the driver may still run.
        let running = io.unguarded_routines;
        io.drivers.remove(&self.object);
        drop(io);
        if running != 0 {
            state::violation(
                "DriverUnloadedWithRoutineRunning",
                format!(
                    "the driver image was unloaded while {running} of its completion routine(s) still ran (bugcheck 0xCE DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS); use IoSetCompletionRoutineEx"
                ),
            );
        }
        Ok(())
    }
}

/// Calls `DriverUnload` if an unload was requested and no file object is open on the driver.
fn unload_if_unused(driver: usize) {
    {
        let mut io = io();
        let open = io.files.values().any(|f| {
            io.devices
                .get(&f.device)
                .is_some_and(|d| d.driver == driver)
        });
        let Some(record) = io.drivers.get_mut(&driver) else {
            return;
        };
        if !record.unload_requested || record.unloaded || open {
            return;
        }
        record.unloaded = true;
    }
    // A PnP driver's devices are removed first; the driver is unloaded once it has none (a
    // device that vetoed its removal keeps it loaded).
    if !pnp_remove_devices(driver) {
        IO_CHANGED.notify_all();
        return;
    }
    call_driver_unload(std::ptr::with_exposed_provenance_mut(driver));
}

/// Calls the driver's `DriverUnload`, if any, at `PASSIVE_LEVEL`.
fn call_driver_unload(object: *mut DRIVER_OBJECT) {
    // SAFETY: The driver object lives for the process.
    if let Some(unload) = unsafe { (*object).DriverUnload } {
        // SAFETY: The driver's unload routine, once, at PASSIVE_LEVEL.
        call_at_passive("DriverUnload", || unsafe { unload(object) });
    }
    IO_CHANGED.notify_all();
}

/// An open handle on a device.
#[derive(Debug)]
pub struct Handle {
    file: usize,
}

// SAFETY: A handle is an address the I/O manager resolves under its lock.
unsafe impl Send for Handle {}
// SAFETY: As above.
unsafe impl Sync for Handle {}

fn resolve(path: &str) -> String {
    let path = path.to_ascii_lowercase();
    // `\\.\` and `\\?\` (what SetupDi / CM return for device interfaces) both name
    // `\??\` (= `\DosDevices\`).
    let dos = path
        .strip_prefix(r"\\.\")
        .or_else(|| path.strip_prefix(r"\\?\"))
        .map(|name| format!(r"\dosdevices\{name}"))
        .unwrap_or(path);
    let io = io();
    io.links.get(&dos).cloned().unwrap_or(dos)
}

/// The top of the device stack `device` belongs to (`IoGetAttachedDevice`).
fn attached_top(device: usize) -> usize {
    let mut top = std::ptr::with_exposed_provenance_mut::<DEVICE_OBJECT>(device);
    // SAFETY: Live device objects; `AttachedDevice` is only changed under the I/O lock, which
    // the caller holds.
    unsafe {
        while !(*top).AttachedDevice.is_null() {
            top = (*top).AttachedDevice;
        }
    }
    top.expose_provenance()
}

/// `CreateFileW(path)` by `caller` asking for `access`.
///
/// # Errors
/// `STATUS_OBJECT_NAME_NOT_FOUND`, `STATUS_NO_SUCH_DEVICE`, `STATUS_ACCESS_DENIED`, or the
/// status the driver completed `IRP_MJ_CREATE` with.
pub fn open(path: &str, caller: Caller, access: Access) -> Result<Handle, NTSTATUS> {
    let name = resolve(path);
    let device = {
        let io = io();
        let device = *io.names.get(&name).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        let record = io.devices.get(&device).ok_or(STATUS_NO_SUCH_DEVICE)?;
        let pointer = std::ptr::with_exposed_provenance::<DEVICE_OBJECT>(device);
        // SAFETY: A live device object.
        let flags = unsafe { (*pointer).Flags };
        if record.deleted || flags & DO_DEVICE_INITIALIZING != 0 {
            return Err(STATUS_NO_SUCH_DEVICE);
        }
        if !record.security.grants(caller, access) {
            return Err(STATUS_ACCESS_DENIED);
        }
        // IRPs go to the top of the device's stack (an FDO over a PnP PDO).
        let top = attached_top(device);
        // SAFETY: A live device object.
        let top_flags = unsafe { (*std::ptr::with_exposed_provenance::<DEVICE_OBJECT>(top)).Flags };
        if top != device && top_flags & DO_DEVICE_INITIALIZING != 0 {
            return Err(STATUS_NO_SUCH_DEVICE);
        }
        (device, top)
    };
    let (device, target) = device;
    let file = leak_zeroed::<FILE_OBJECT>();
    // SAFETY: A fresh file object.
    unsafe {
        (*file).Type = i16::try_from(IO_TYPE_FILE).unwrap_or_default();
        (*file).Size = i16::try_from(size_of::<FILE_OBJECT>()).unwrap_or(i16::MAX);
        (*file).DeviceObject = std::ptr::with_exposed_provenance_mut(device);
        (*file).ReadAccess = access.read;
        (*file).WriteAccess = access.write;
    }
    let address = file.expose_provenance();
    {
        let mut io = io();
        io.files.insert(
            address,
            FileRecord {
                device: target,
                granted: access,
                outstanding: 0,
                close_pending: false,
                cleaned_up: false,
            },
        );
        if let Some(record) = io.devices.get(&target) {
            record.references.take();
        }
    }
    let request = send(address, IRP_MJ_CREATE);
    let (status, _) = request.wait(None).unwrap_or((STATUS_CANCELLED, Vec::new()));
    if status < 0 {
        // The file object is dereferenced without cleanup or close (a failed create).
        forget_file(address);
        return Err(status);
    }
    Ok(Handle { file: address })
}

fn forget_file(file: usize) {
    let mut io = io();
    if let Some(record) = io.files.remove(&file) {
        if let Some(device) = io.devices.get(&record.device) {
            device.references.drop_one();
        }
        free_if_gone(&mut io, record.device);
    }
    drop(io);
    IO_CHANGED.notify_all();
}

/// How a request completed, as the caller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// `IoStatus.Status`.
    pub status: NTSTATUS,
    /// `IoStatus.Information` (0 when the status is an error).
    pub information: usize,
    /// The bytes copied back to the caller's buffer (buffered IOCTLs and reads).
    pub output: Vec<u8>,
}

/// A request sent to a driver, not necessarily completed.
#[derive(Debug)]
pub struct PendingRequest {
    irp: usize,
}

// SAFETY: An address resolved under the I/O manager's lock.
unsafe impl Send for PendingRequest {}
// SAFETY: As above.
unsafe impl Sync for PendingRequest {}

impl PendingRequest {
    /// Waits up to `timeout` (forever if `None`) for completion: the status and the output
    /// bytes the I/O manager copied back. `None` on timeout (the request stays pending).
    #[must_use]
    pub fn wait(&self, timeout: Option<Duration>) -> Option<(NTSTATUS, Vec<u8>)> {
        self.wait_io(timeout).map(|c| (c.status, c.output))
    }

    /// Waits like [`wait`](Self::wait), and also returns `IoStatus.Information` (the bytes
    /// `ReadFile` / `WriteFile` report as transferred; 0 on an error status).
    #[must_use]
    pub fn wait_io(&self, timeout: Option<Duration>) -> Option<Completion> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut io = io();
        loop {
            let done = io
                .requests
                .get(&self.irp)
                .is_some_and(|r| r.completed.is_some() && r.dispatch_returned);
            if done {
                let record = io.requests.remove(&self.irp)?;
                drop(io);
                retire(self.irp, &record);
                let (status, information) = record.completed?;
                return Some(Completion {
                    status,
                    information,
                    output: record.output,
                });
            }
            let now = Instant::now();
            match deadline {
                Some(deadline) if now >= deadline => return None,
                Some(deadline) => {
                    io = IO_CHANGED
                        .wait_timeout(io, deadline - now)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
                None => {
                    io = IO_CHANGED
                        .wait(io)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
    }

    /// `CancelIoEx` for this request: `IoCancelIrp`.
    pub fn cancel(&self) {
        cancel_irp(self.irp);
    }
}

/// Frees an I/O manager IRP and its system buffer once nobody can touch them.
fn retire(irp: usize, record: &RequestRecord) {
    if let Some((buffer, layout)) = record.system_buffer {
        // SAFETY: Allocated in `send` with this layout; the request is complete.
        unsafe { std::alloc::dealloc(std::ptr::with_exposed_provenance_mut(buffer), layout) };
    }
    if let Some((mdl, _)) = record.caller.mdl {
        crate::mdl::forget_request_mdl(mdl);
    }
    record.caller.free();
    if let Some(layout) = irp_layout() {
        // SAFETY: Allocated in `send` with this layout; completed and retired.
        unsafe { std::alloc::dealloc(std::ptr::with_exposed_provenance_mut(irp), layout) };
    }
}

fn irp_layout() -> Option<Layout> {
    Layout::from_size_align(
        size_of::<IRP>() + size_of::<IO_STACK_LOCATION>(),
        align_of::<IRP>(),
    )
    .ok()
}

/// `IoCancelIrp` on a pending request (`CancelIoEx`, or the thread's exit).
fn cancel_irp(irp: usize) {
    let pending = io()
        .requests
        .get(&irp)
        .is_some_and(|record| record.completed.is_none());
    if pending {
        // SAFETY: A request IRP the I/O manager holds until it is retired (after completion).
        unsafe { crate::cancel::cancel_live_irp(std::ptr::with_exposed_provenance_mut(irp)) };
    }
}

/// Whether `irp` is a request IRP the I/O manager still holds (for `IoCancelIrp`'s check).
pub(crate) fn is_live_request(irp: usize) -> bool {
    io().requests.contains_key(&irp)
}

/// What one IRP the I/O manager builds carries.
#[derive(Clone, Copy, Debug)]
enum Request<'a> {
    /// `IRP_MJ_CREATE`, `IRP_MJ_CLEANUP`, `IRP_MJ_CLOSE`: no parameters the model fills.
    Plain,
    /// `DeviceIoControl`: the code, the input bytes, the output buffer's length and what the
    /// caller wrote in it (read by a `METHOD_IN_DIRECT` driver; empty: not initialized).
    Control {
        code: u32,
        input: &'a [u8],
        output_len: usize,
        output: &'a [u8],
    },
    /// `ReadFile` of `len` bytes.
    Read { len: usize },
    /// `WriteFile` of `data`.
    Write { data: &'a [u8] },
    /// A PnP IRP (`IRP_MJ_PNP`) with its minor function, from the PnP manager.
    Pnp { minor: u8 },
}

/// Builds the IRP for one plain request on `file` (the I/O manager's own cleanup and close,
/// which hold the file object) and delivers it.
fn send(file: usize, major: u32) -> PendingRequest {
    let device = io().files.get_mut(&file).map_or(0, |f| {
        f.outstanding += 1;
        f.device
    });
    send_irp(device, file, major, Request::Plain)
}

/// A system buffer of `len` bytes (16-aligned, like pool), filled with `fill` and then `data`.
fn system_buffer(len: usize, fill: u8, data: &[u8]) -> Option<(usize, Layout)> {
    if len == 0 {
        return None;
    }
    Layout::from_size_align(len, 16).ok().map(|layout| {
        // SAFETY: Non-zero size.
        let buffer = unsafe { std::alloc::alloc(layout) };
        // SAFETY: `buffer` holds `len` >= data.len() bytes.
        unsafe {
            buffer.write_bytes(fill, len);
            std::ptr::copy_nonoverlapping(data.as_ptr(), buffer, data.len().min(len));
        }
        (buffer.expose_provenance(), layout)
    })
}

/// Builds the IRP for `request` on `file` (none for PnP IRPs) and delivers it to `device`, the
/// top of the device stack (`IoCallDriver` at `PASSIVE_LEVEL`), as `IopXxxControlFile`,
/// `NtReadFile` / `NtWriteFile` (buffered I/O: `IopSynchronousServiceTail` after a system
/// buffer) and the PnP manager's `IopSynchronousCall` build theirs.
#[allow(
    clippy::too_many_lines,
    reason = "one IRP built as the I/O manager builds it, for each kind of request"
)]
fn send_irp(device: usize, file: usize, major: u32, request: Request<'_>) -> PendingRequest {
    let Some(layout) = irp_layout() else {
        return PendingRequest { irp: 0 };
    };
    // SAFETY: A live device object (referenced by the file object or the device node).
    let flags = unsafe { (*std::ptr::with_exposed_provenance::<DEVICE_OBJECT>(device)).Flags };
    // Buffered I/O for reads and writes when the device asks for it (DO_BUFFERED_IO); the
    // read buffer is not initialized, as pool is not (the model fills it so reliance shows).
    let mut caller = CallerBuffers::default();
    let (system_buffer, output_len, input_len, buffered, irp_flags) = match request {
        Request::Plain | Request::Pnp { .. } => (None, 0, 0, false, 0),
        Request::Control {
            code,
            input,
            output_len,
            output,
        } => {
            // "Buffer Descriptions for I/O Control Codes": METHOD_BUFFERED shares one system
            // buffer, copied back; the direct methods buffer the input and lock the caller's
            // output buffer under an MDL; METHOD_NEITHER passes both user addresses.
            let method = code & 3;
            let buffered = method == METHOD_BUFFERED;
            let buffer = match method {
                METHOD_BUFFERED => system_buffer(input.len().max(output_len), 0, input),
                METHOD_NEITHER => {
                    caller.input = system_buffer(input.len(), 0, input);
                    None
                }
                _ => system_buffer(input.len(), 0, input),
            };
            if !buffered {
                caller.output = system_buffer(output_len, UNINITIALIZED_FILL, output);
            }
            if method != METHOD_BUFFERED && method != METHOD_NEITHER {
                caller.mdl = caller
                    .output
                    .and_then(|(address, _)| crate::mdl::build_locked(address, output_len));
            }
            let input_op = if buffered && output_len > 0 {
                IRP_INPUT_OPERATION
            } else {
                0
            };
            let flags = if buffer.is_some() {
                IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER | input_op
            } else {
                0
            };
            (
                buffer,
                output_len,
                input.len(),
                buffered && buffer.is_some(),
                flags,
            )
        }
        Request::Read { len } => {
            require_buffered_io(flags, "ReadFile");
            let buffer = system_buffer(len, UNINITIALIZED_FILL, &[]);
            let irp_flags = if buffer.is_some() {
                IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER | IRP_INPUT_OPERATION
            } else {
                0
            };
            (buffer, len, 0, true, irp_flags)
        }
        Request::Write { data } => {
            require_buffered_io(flags, "WriteFile");
            let buffer = system_buffer(data.len(), 0, data);
            let irp_flags = if buffer.is_some() {
                IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER
            } else {
                0
            };
            (buffer, 0, data.len(), true, irp_flags)
        }
    };
    // SAFETY: Non-zero size.
    let irp = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<IRP>();
    // SAFETY: A fresh zeroed IRP with one stack location, built as the I/O manager does.
    unsafe {
        (*irp).Type = i16::try_from(IO_TYPE_IRP).unwrap_or_default();
        (*irp).Size = u16::try_from(layout.size()).unwrap_or(u16::MAX);
        (*irp).StackCount = 1;
        (*irp).CurrentLocation = 2;
        (*irp).RequestorMode = if matches!(request, Request::Pnp { .. }) {
            KERNEL_MODE
        } else {
            USER_MODE
        };
        (*irp).Tail.Overlay.OriginalFileObject = std::ptr::with_exposed_provenance_mut(file);
        if let Some((buffer, _)) = system_buffer {
            (*irp).AssociatedIrp.SystemBuffer = std::ptr::with_exposed_provenance_mut(buffer);
        }
        if let Some((mdl, _)) = caller.mdl {
            (*irp).MdlAddress = std::ptr::with_exposed_provenance_mut(mdl);
        } else if let Some((output, _)) = caller.output {
            (*irp).UserBuffer = std::ptr::with_exposed_provenance_mut(output);
        }
        (*irp).Flags = irp_flags;
        if matches!(request, Request::Pnp { .. }) {
            // Every PnP IRP starts out "not supported" (IRP_MJ_PNP documentation).
            (*irp).IoStatus.Anonymous.Status = STATUS_NOT_SUPPORTED;
        }
        let past_last = irp
            .cast::<u8>()
            .add(layout.size())
            .cast::<IO_STACK_LOCATION>();
        current_stack_location_slot(irp).write(past_last);
        // IoGetNextIrpStackLocation: the one location, filled for the driver.
        let location = past_last.sub(1);
        (*location).MajorFunction = u8::try_from(major).unwrap_or(u8::MAX);
        (*location).FileObject = std::ptr::with_exposed_provenance_mut(file);
        let parameters = &raw mut (*location).Parameters;
        match request {
            Request::Control { code, .. } => {
                let mut value: DeviceIoControlParameters = std::mem::zeroed();
                value.OutputBufferLength = u32::try_from(output_len).unwrap_or(u32::MAX);
                value.InputBufferLength = u32::try_from(input_len).unwrap_or(u32::MAX);
                value.IoControlCode = code;
                if let Some((input, _)) = caller.input {
                    value.Type3InputBuffer = std::ptr::with_exposed_provenance_mut(input);
                }
                parameters.cast::<DeviceIoControlParameters>().write(value);
            }
            // Parameters.Read / .Write: ULONG Length at offset 0, Key and ByteOffset (0 here)
            // after it (wdm.h).
            Request::Read { len } => parameters
                .cast::<u32>()
                .write(u32::try_from(len).unwrap_or(u32::MAX)),
            Request::Write { data } => parameters
                .cast::<u32>()
                .write(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Request::Pnp { minor } => (*location).MinorFunction = minor,
            Request::Plain => {}
        }
    }
    let address = irp.expose_provenance();
    {
        let mut io = io();
        io.requests.insert(
            address,
            RequestRecord {
                file,
                major,
                output_len,
                buffered,
                system_buffer,
                caller,
                completed: None,
                output: Vec::new(),
                dispatch_returned: false,
            },
        );
    }
    let status = call_driver(device, irp);
    let mut io = io();
    let mut problems = Vec::new();
    if let Some(record) = io.requests.get_mut(&address) {
        record.dispatch_returned = true;
        // SAFETY: The IRP lives until retired by the waiter, which needs dispatch_returned.
        let marked = unsafe {
            let location = std::ptr::with_exposed_provenance_mut::<IRP>(address)
                .cast::<u8>()
                .add(size_of::<IRP>())
                .cast::<IO_STACK_LOCATION>();
            u32::from((*location).Control) & SL_PENDING_RETURNED != 0
        };
        match record.completed {
            _ if status == STATUS_PENDING && !marked => problems.push((
                "PendingNotMarked",
                format!("the dispatch routine returned STATUS_PENDING for IRP {address:#x} without IoMarkIrpPending (Driver Verifier 0xC9)"),
            )),
            None if status != STATUS_PENDING => problems.push((
                "DispatchReturnedWithoutCompleting",
                format!("the dispatch routine returned {status:#x} for IRP {address:#x} without completing it (Driver Verifier 0xC9)"),
            )),
            Some((completed, _)) if status != STATUS_PENDING && completed != status => problems.push((
                "DispatchStatusMismatch",
                format!("the dispatch routine returned {status:#x} for IRP {address:#x}, completed with {completed:#x} (Driver Verifier 0xC9)"),
            )),
            _ => {}
        }
    }
    drop(io);
    for (rule, detail) in problems {
        state::violation(rule, detail);
    }
    IO_CHANGED.notify_all();
    PendingRequest { irp: address }
}

/// Reads and writes of a device without `DO_BUFFERED_IO` (direct I/O's MDLs, neither I/O's
/// user addresses) are not modelled.
fn require_buffered_io(flags: u32, call: &str) {
    if flags & DO_BUFFERED_IO == 0 {
        state::bugcheck(
            "IoNotModelled",
            &format!(
                "{call} on a device without DO_BUFFERED_IO: direct and neither I/O are not modelled"
            ),
        );
    }
}

/// `IoCallDriver` from the I/O manager: the driver's dispatch routine for the IRP's major
/// function, at `PASSIVE_LEVEL`, which it must return at.
fn call_driver(device: usize, irp: *mut IRP) -> NTSTATUS {
    let device_object = std::ptr::with_exposed_provenance_mut::<DEVICE_OBJECT>(device);
    // SAFETY: The IRP was built by `send` with one location; IoCallDriver moves to it and
    // records the device in it. The device is live (referenced by the file object).
    let (major, dispatch) = unsafe {
        (*irp).CurrentLocation -= 1;
        let slot = current_stack_location_slot(irp);
        let location = slot.read().sub(1);
        slot.write(location);
        (*location).DeviceObject = device_object;
        let major = usize::from((*location).MajorFunction);
        let driver = (*device_object).DriverObject;
        (major, (*driver).MajorFunction.get(major).copied().flatten())
    };
    let routine = format!("the dispatch routine of IRP_MJ {major:#x}");
    call_at_passive(&routine, || {
        if let Some(dispatch) = dispatch {
            // SAFETY: The driver's dispatch routine for this major function.
            unsafe { dispatch(device_object, irp) }
        } else {
            // IopInvalidDeviceRequest.
            // SAFETY: The IRP is ours to complete here.
            unsafe { (*irp).IoStatus.Anonymous.Status = STATUS_INVALID_DEVICE_REQUEST };
            complete_request(irp);
            STATUS_INVALID_DEVICE_REQUEST
        }
    })
}

impl Handle {
    /// `DeviceIoControl`, asynchronously (`FILE_FLAG_OVERLAPPED`).
    ///
    /// # Errors
    /// `STATUS_ACCESS_DENIED` if the code needs access the handle was not granted (the
    /// request never reaches the driver).
    pub fn ioctl(
        &self,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<PendingRequest, NTSTATUS> {
        self.control(code, input, output_len, &[])
    }

    /// `DeviceIoControl` with `output` as the output buffer's contents: for the direct
    /// methods, whose driver reads the caller's buffer through `Irp->MdlAddress`
    /// (`METHOD_IN_DIRECT`: "the output buffer ... data to be sent"), asynchronously.
    ///
    /// # Errors
    /// As [`Handle::ioctl`].
    pub fn ioctl_direct(
        &self,
        code: u32,
        input: &[u8],
        output: &[u8],
    ) -> Result<PendingRequest, NTSTATUS> {
        self.control(code, input, output.len(), output)
    }

    /// `IRP_MJ_DEVICE_CONTROL` with an `output_len`-byte output buffer holding `output` (empty:
    /// not initialized).
    fn control(
        &self,
        code: u32,
        input: &[u8],
        output_len: usize,
        output: &[u8],
    ) -> Result<PendingRequest, NTSTATUS> {
        // CTL_CODE access bits: FILE_READ_ACCESS (1) needs read, FILE_WRITE_ACCESS (2) write.
        let required = (code >> 14) & 3;
        let device = self.reference(required & 1 != 0, required & 2 != 0)?;
        Ok(send_irp(
            device,
            self.file,
            IRP_MJ_DEVICE_CONTROL,
            Request::Control {
                code,
                input,
                output_len,
                output,
            },
        ))
    }

    /// `ReadFile` of `len` bytes, asynchronously: `IRP_MJ_READ` with a system buffer
    /// (`DO_BUFFERED_IO`; the driver's device must ask for buffered I/O). The bytes the driver
    /// reports in `IoStatus.Information` come back from [`PendingRequest::wait_io`].
    ///
    /// # Errors
    /// `STATUS_ACCESS_DENIED` without read access (the request never reaches the driver).
    pub fn read(&self, len: usize) -> Result<PendingRequest, NTSTATUS> {
        let device = self.reference(true, false)?;
        Ok(send_irp(
            device,
            self.file,
            IRP_MJ_READ,
            Request::Read { len },
        ))
    }

    /// `WriteFile` of `data`, asynchronously: `IRP_MJ_WRITE` with the data copied into a
    /// system buffer (`DO_BUFFERED_IO`).
    ///
    /// # Errors
    /// `STATUS_ACCESS_DENIED` without write access.
    pub fn write(&self, data: &[u8]) -> Result<PendingRequest, NTSTATUS> {
        let device = self.reference(false, true)?;
        Ok(send_irp(
            device,
            self.file,
            IRP_MJ_WRITE,
            Request::Write { data },
        ))
    }

    /// The device a request on this handle goes to, with the file object referenced for the
    /// request's life, in one step as `ObReferenceObjectByHandle` takes it in
    /// `NtDeviceIoControlFile` / `NtReadFile` / `NtWriteFile`: a handle already closed is
    /// `STATUS_INVALID_HANDLE`, and `IRP_MJ_CLOSE` waits for the reference ("the reference
    /// count on a file object has reached zero", Learn's `IRP_MJ_CLOSE` page), so no request
    /// can reach a driver its close and unload have overtaken. `STATUS_ACCESS_DENIED` (and no
    /// reference) without the access asked for.
    fn reference(&self, read: bool, write: bool) -> Result<usize, NTSTATUS> {
        let mut io = io();
        let record = io
            .files
            .get_mut(&self.file)
            .filter(|f| !f.cleaned_up)
            .ok_or(windows_sys::Win32::Foundation::STATUS_INVALID_HANDLE)?;
        if (read && !record.granted.read) || (write && !record.granted.write) {
            return Err(STATUS_ACCESS_DENIED);
        }
        record.outstanding += 1;
        Ok(record.device)
    }

    /// `CloseHandle` (the last one on the file object): `IRP_MJ_CLEANUP` now, even with
    /// requests still in flight on it, and `IRP_MJ_CLOSE` once every request on the file
    /// object has completed. Closing twice does nothing more.
    pub fn close(&self) {
        let first = io()
            .files
            .get_mut(&self.file)
            .is_some_and(|record| !std::mem::replace(&mut record.cleaned_up, true));
        if !first {
            return;
        }
        let request = send(self.file, IRP_MJ_CLEANUP);
        let _ = request.wait(None);
        if let Some(record) = io().files.get_mut(&self.file) {
            record.close_pending = true;
        }
        close_if_idle(self.file);
    }
}

/// Sends `IRP_MJ_CLOSE` if the file was cleaned up and nothing is outstanding on it, then
/// finishes a deferred unload. The close runs on a thread of its own when the last request
/// completed at raised IRQL, as the I/O manager defers it to a worker.
fn close_if_idle(file: usize) {
    let ready = {
        let mut io = io();
        io.files
            .get_mut(&file)
            .filter(|record| record.close_pending && record.outstanding == 0)
            .map(|record| record.close_pending = false)
            .is_some()
    };
    if !ready {
        return;
    }
    let close = move || {
        let request = send(file, IRP_MJ_CLOSE);
        let _ = request.wait(None);
        let driver = {
            let io = io();
            io.files
                .get(&file)
                .and_then(|f| io.devices.get(&f.device))
                .map(|d| d.driver)
        };
        forget_file(file);
        if let Some(driver) = driver {
            unload_if_unused(driver);
        }
    };
    if irql::current() == PASSIVE_LEVEL {
        close();
    } else {
        std::thread::spawn(close);
    }
}

/// `DriverEntry` of a driver with no front door of its own: one unnamed device object for
/// the driver state's completion routines, deleted at unload.
unsafe extern "system" fn bare_entry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    let mut device = std::ptr::null_mut();
    let status = create_device(
        driver,
        0,
        std::ptr::null(),
        0x12,
        0x100,
        None,
        &raw mut device,
    );
    if status >= 0 {
        // SAFETY: The driver object being loaded.
        unsafe { (*driver).DriverUnload = Some(bare_unload) };
    }
    status
}

unsafe extern "system" fn bare_unload(driver: *const DRIVER_OBJECT) {
    // SAFETY: The driver object and its one device, deleted once.
    unsafe {
        let device = (*driver).DeviceObject;
        if !device.is_null() {
            io_delete_device(device);
        }
    }
}

/// Loads a driver with no front door (core's dispatcher is called directly) and returns it
/// with its one device object.
///
/// # Errors
/// The status of creating the device.
pub fn load_bare(name: &str) -> Result<(LoadedDriver, *mut DEVICE_OBJECT), NTSTATUS> {
    let driver = load(name, bare_entry, EntryKind::Direct)?;
    // SAFETY: The driver object lives for the process.
    let device = unsafe { (*driver.object()).DeviceObject };
    Ok((driver, device))
}
