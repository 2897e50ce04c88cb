//! Queues and requests: `WdfIoQueueCreate` / `Start` / `StopSynchronously`
//! (`shared/irphandlers/io/fxioqueueapi.cpp`, `FxIoQueue` in `fxioqueue.cpp`), request
//! presentation (`FxPkgIo::Dispatch`, `FxIoQueue::QueueRequest` / `DispatchEvents` /
//! `DispatchRequestToDriver`), power management of queues (`StopProcessingForPower` /
//! `ResumeProcessingForPower`), the request DDIs (`shared/core/fxrequestapi.cpp`,
//! `fxrequest.cpp`) and a request's memory (`WdfRequestRetrieve*Memory`,
//! `WdfMemoryCopy*Buffer`: `shared/core/fxmemorybufferapi.cpp`, `fxmemoryobject.cpp`).
//!
//! Presentation follows `DispatchEvents` (`fxioqueue.cpp:2758-3132`): an arriving IOCTL is
//! marked pending and, if the queue may present it (sequential: nothing driver-owned; parallel:
//! fewer driver-owned than `NumberOfPresentedRequests`, stored as given, 0 included), the
//! callback runs inside the dispatch routine, in the caller's thread; otherwise it waits in the
//! queue. A completion presents the next waiting request, in the completing thread unless that
//! thread is inside one of the queue's callbacks (then the callback's loop does), and through a
//! worker thread when a passive-level queue is completed above `PASSIVE_LEVEL` (KMDF's work
//! item, `fxioqueue.cpp:2684-2707`). Callbacks run at the IRQL of the thread that presents:
//! `PASSIVE_LEVEL` in a dispatch routine, `DISPATCH_LEVEL` when a timer's DPC completes the
//! previous request of a sequential queue.
//!
//! A request the driver marked cancelable and that was cancelled gets `EvtRequestCancel` from
//! the same dispatch loop, before anything is presented, whatever other callbacks of the queue
//! run on other threads (`fxioqueue.cpp:2878-2891`); the cancelling thread runs the loop only
//! if no thread is in it (`DispatchInternalEvents`, `fxioqueue.hpp:1007-1038`).
//!
//! A power-managed queue (the default for a PnP device's queues, never for a control device's:
//! `fxioqueue.cpp:397-438`) presents nothing while its device is out of D0: requests wait in
//! it until `EvtDeviceD0Entry` has run and the queue is resumed.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IRP, MDL};
use windows_sys::Wdk::System::SystemServices::{
    IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IRP_MJ_INTERNAL_DEVICE_CONTROL, IRP_MJ_READ, IRP_MJ_WRITE,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_VIOLATION, STATUS_BUFFER_TOO_SMALL, STATUS_CANCELLED,
    STATUS_INFO_LENGTH_MISMATCH, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_BUFFER_SIZE,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER,
    STATUS_INVALID_PARAMETER_4, STATUS_PENDING, STATUS_SUCCESS, STATUS_UNSUCCESSFUL,
};
use windows_sys::Win32::System::Ioctl::{METHOD_IN_DIRECT, METHOD_NEITHER, METHOD_OUT_DIRECT};
use wskudp_core::ddi::nt::{device_io_control_parameters, io_get_current_irp_stack_location};
use wskudp_wdf_decls::{
    _WDF_EXECUTION_LEVEL, _WDF_FILEOBJECT_CLASS, _WDF_IO_QUEUE_DISPATCH_TYPE,
    _WDF_SYNCHRONIZATION_SCOPE, _WDF_TRI_STATE, PFN_WDF_REQUEST_CANCEL, PVOID, PWDF_DRIVER_GLOBALS,
    PWDF_IO_QUEUE_CONFIG, PWDF_OBJECT_ATTRIBUTES, STATUS_WDF_NO_CALLBACK, ULONG, ULONG_PTR,
    WDF_IO_QUEUE_CONFIG, WDF_OBJECT_ATTRIBUTES, WDFDEVICE, WDFFILEOBJECT, WDFMEMORY, WDFQUEUE,
    WDFREQUEST,
};

use super::objects::{Kind, invalid_handle, validate_attributes};
use super::{
    above_passive, address, check_globals, device, framework, null_parameter, objects, pointer,
    violation,
};
use crate::irql::{self, PASSIVE_LEVEL};

/// `sizeof(WDF_IO_QUEUE_CONFIG)` and its `V1_9` / `V1_7` predecessors on x64
/// (`shared/inc/private/common/fxversionedstructures.h`).
const CONFIG_SIZE: u32 = 96;
const CONFIG_SIZE_V1_9: u32 = 88;
const CONFIG_SIZE_V1_7: u32 = 80;
const _: () = assert!(CONFIG_SIZE as usize == size_of::<WDF_IO_QUEUE_CONFIG>());
/// How long deleting a queue waits for the requests its driver still owns before the model
/// reports the hang KMDF would sit in (`fxioqueue.cpp:541-544`).
const DISPOSE_WAIT: Duration = Duration::from_secs(2);
/// `WdfRequestStopActionSuspend`, `WdfRequestStopActionPurge`,
/// `WdfRequestStopRequestCancelable` (wdfrequest.h:102-104), for `EvtIoStop`.
const STOP_ACTION_SUSPEND: ULONG = 0x01;
const STOP_ACTION_PURGE: ULONG = 0x02;
const STOP_REQUEST_CANCELABLE: ULONG = 0x1000_0000;

/// Where a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// Waiting in its queue, not presented.
    Queued,
    /// Presented: the driver must complete it.
    Driver,
}

/// One request the framework created for an IRP.
#[allow(
    clippy::struct_excessive_bools,
    reason = "FxRequest's state and verifier bits, one field each"
)]
struct RequestState {
    irp: usize,
    queue: Option<usize>,
    device: usize,
    file: usize,
    major: u32,
    owner: Owner,
    /// Input and output lengths: a write's `Length` is its input, a read's its output.
    input_len: usize,
    output_len: usize,
    code: u32,
    /// `Irp->RequestorMode == UserMode`.
    user_mode: bool,
    /// The request's `WDFMEMORY` handles (input, output), made on first retrieval.
    memory: [Option<usize>; 2],
    cancel: PFN_WDF_REQUEST_CANCEL,
    /// Marked cancelable and not unmarked.
    cancelable: bool,
    /// The cancel routine took it (`IoCancelIrp`, or a purge): `EvtRequestCancel` is due,
    /// runs or ran, and `WdfRequestUnmarkCancelable` returns `STATUS_CANCELLED`.
    routine_taken: bool,
    /// `FXREQUEST_FLAG_CANCELLED`: set just before `EvtRequestCancel` is invoked
    /// (`fxioqueue.cpp:4905-4911`). Only from then on may the driver complete a request still
    /// marked cancelable (`fxrequest.cpp:400-420`).
    verifier_cancelled: bool,
}

/// One queue.
#[allow(
    clippy::struct_excessive_bools,
    reason = "FxIoQueue's state bits, one field each"
)]
struct QueueState {
    device: usize,
    max_presented: u32,
    config: WDF_IO_QUEUE_CONFIG,
    passive: bool,
    /// Requests presented and not completed (`m_DriverIoCount`).
    driver_io: u32,
    pending: VecDeque<usize>,
    /// Threads inside one of the queue's callbacks (what stopping the queue waits for).
    dispatching: usize,
    /// Threads inside the dispatch loop, callbacks included (`m_Dispatching`,
    /// `fxioqueue.cpp:2849, 3129`).
    looping: usize,
    /// Cancelled driver-owned requests whose `EvtRequestCancel` is due.
    cancelled: VecDeque<usize>,
    /// `WdfIoQueueAcceptRequests`, `WdfIoQueueDispatchRequests`, `FxIoQueueShutdown`
    /// (`FxIoQueue::SetState`, `fxioqueue.cpp:830-900`).
    accepting: bool,
    dispatching_requests: bool,
    shutdown: bool,
    worker_queued: bool,
    power_managed: bool,
    /// `m_PowerState` is `FxIoQueuePowerOn` (always, for a queue that is not power-managed).
    powered: bool,
}

/// Queues and live requests.
#[derive(Default)]
pub(crate) struct Queues {
    by_handle: HashMap<usize, QueueState>,
    requests: HashMap<usize, RequestState>,
    by_irp: HashMap<usize, usize>,
    completed: HashSet<usize>,
    /// Every request `WDFMEMORY` handed out: its request, and whether it is the input buffer.
    memories: HashMap<usize, (usize, bool)>,
}

impl Queues {
    /// `request`, taken out of its queue, is the framework's to complete: it counts as
    /// driver-owned for [`complete`], without adding to the queue's driver I/O count.
    fn take_for_framework(&mut self, request: usize) {
        if let Some(record) = self.requests.get_mut(&request) {
            record.owner = Owner::Driver;
            record.queue = None;
        }
    }
}

thread_local! {
    /// The queues whose callbacks this thread is inside.
    static DISPATCHING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn in_callback_of(queue: usize) -> bool {
    DISPATCHING.with(|d| d.borrow().contains(&queue))
}

/// `WdfIoQueueCreate` (`fxioqueueapi.cpp:52-247`, `FxPkgIo::CreateQueue`,
/// `FxIoQueue::Initialize` `fxioqueue.cpp:260-470`).
#[allow(
    clippy::too_many_lines,
    reason = "every check of WdfIoQueueCreate, in its order"
)]
pub(crate) unsafe extern "C" fn wdf_io_queue_create(
    globals: PWDF_DRIVER_GLOBALS,
    device: WDFDEVICE,
    config: PWDF_IO_QUEUE_CONFIG,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    queue_out: *mut WDFQUEUE,
) -> NTSTATUS {
    const API: &str = "WdfIoQueueCreate";
    if !check_globals(globals, API) {
        return STATUS_INVALID_PARAMETER;
    }
    let device = address(device);
    if invalid_handle(API, device, Kind::Device) {
        return STATUS_INVALID_PARAMETER;
    }
    if config.is_null() {
        null_parameter(API, "Config");
        return STATUS_INVALID_PARAMETER;
    }
    if let Err(status) = validate_attributes(attributes, true, API) {
        return status;
    }
    // SAFETY: Non-null, the driver's configuration.
    let config = unsafe { *config };
    if ![CONFIG_SIZE, CONFIG_SIZE_V1_9, CONFIG_SIZE_V1_7].contains(&config.Size) {
        violation(
            "WdfQueueConfigSize",
            format!("{API}: WDF_IO_QUEUE_CONFIG.Size is {}", config.Size),
        );
        return STATUS_INFO_LENGTH_MISMATCH;
    }
    let default = config.DefaultQueue != 0;
    if !default && queue_out.is_null() {
        violation(
            "WdfQueueOutNull",
            format!("{API}: a non-default queue with Queue NULL"),
        );
        return STATUS_INVALID_PARAMETER_4;
    }
    let legacy = device::is_legacy(device);
    if default && legacy && !device::device_initializing(device) {
        violation(
            "WdfDefaultQueueAfterFinishInitializing",
            format!(
                "{API}: a default queue after WdfControlFinishInitializing (fxioqueueapi.cpp:162-182)"
            ),
        );
        return STATUS_INVALID_DEVICE_STATE;
    }
    if default && !legacy && super::pnp::started(device) {
        violation(
            "WdfDefaultQueueAfterStart",
            format!(
                "{API}: a default queue on a PnP device no longer in WdfDevStatePnpInit (fxioqueueapi.cpp:184-196)"
            ),
        );
        return STATUS_INVALID_DEVICE_STATE;
    }
    // SAFETY: Null or validated attributes.
    let queue_attributes = unsafe { attributes.as_ref() };
    if let Some(parent) = queue_attributes
        .map(|a| address(a.ParentObject))
        .filter(|p| *p != 0)
        && !descends_from(parent, device)
    {
        violation(
            "WdfQueueParent",
            format!("{API}: ParentObject {parent:#x} is not the device or one of its descendants"),
        );
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    let dispatch = config.DispatchType;
    if dispatch <= _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchInvalid
        || dispatch >= _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchMax
    {
        violation(
            "WdfQueueDispatchType",
            format!("{API}: DispatchType {dispatch}"),
        );
        return STATUS_INVALID_PARAMETER;
    }
    let io_callbacks = [
        config.EvtIoDefault.is_some(),
        config.EvtIoRead.is_some(),
        config.EvtIoWrite.is_some(),
        config.EvtIoDeviceControl.is_some(),
        config.EvtIoInternalDeviceControl.is_some(),
    ];
    let manual = dispatch == _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchManual;
    if !manual && !io_callbacks.contains(&true) {
        violation(
            "WdfQueueNoCallback",
            format!("{API}: no I/O callback on an automatic queue"),
        );
        return STATUS_WDF_NO_CALLBACK;
    }
    if manual && io_callbacks.contains(&true) {
        violation(
            "WdfQueueManualWithCallback",
            format!("{API}: I/O callbacks on a manual queue"),
        );
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: A union of one ULONG, read as written.
    let presented = unsafe { config.Settings.Parallel.NumberOfPresentedRequests };
    if config.Size > CONFIG_SIZE_V1_7
        && presented != 0
        && dispatch != _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchParallel
    {
        violation(
            "WdfQueuePresentedLimitNotParallel",
            format!("{API}: NumberOfPresentedRequests {presented} on a non-parallel queue"),
        );
        return STATUS_INVALID_PARAMETER;
    }
    // Stored as given for every type, 0 included (fxioqueue.cpp:372-375); a V1_7 config has no
    // such field and stays unlimited.
    let max_presented = if config.Size > CONFIG_SIZE_V1_7 {
        presented
    } else {
        u32::MAX
    };
    // PowerManaged: WdfUseDefault means TRUE (the model has no filters), and a control
    // device's queue is never power-managed, whatever was asked (fxioqueue.cpp:397-424); a
    // power-managed queue starts powered if its device is in D0 (fxioqueue.cpp:429-438,
    // FxPkgIo::m_PowerStateOn).
    let power_managed = !legacy
        && matches!(
            config.PowerManaged,
            _WDF_TRI_STATE::WdfUseDefault | _WDF_TRI_STATE::WdfTrue
        );
    let powered = !power_managed || super::pnp::powered(device);
    if queue_attributes.is_some_and(|a| {
        matches!(
            a.SynchronizationScope,
            _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeDevice
                | _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeQueue
        )
    }) {
        crate::state::bugcheck(
            "WdfFunctionNotModelled",
            "WdfIoQueueCreate with SynchronizationScope Device or Queue: the model does not serialize callbacks (presentation locks)",
        );
    }
    let level = queue_attributes.map_or(
        _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent,
        |a| a.ExecutionLevel,
    );
    let passive = level == _WDF_EXECUTION_LEVEL::WdfExecutionLevelPassive
        || (level == _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent
            && device::device_passive(device));
    // The FxIoQueue itself (fxioqueue.cpp:179-185).
    if crate::faults::should_fail(crate::faults::Site::Wdf) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    let queue = {
        let mut fx = framework();
        let parent = queue_attributes
            .map(|a| address(a.ParentObject))
            .filter(|p| *p != 0)
            .unwrap_or(device);
        let queue = fx.objects.create(Kind::Queue, Some(parent), attributes);
        if default && let Some(object) = fx.objects.get_mut(queue) {
            object.no_delete_ddi = true;
        }
        fx.queues.by_handle.insert(
            queue,
            QueueState {
                device,
                max_presented,
                config,
                passive,
                driver_io: 0,
                pending: VecDeque::new(),
                dispatching: 0,
                looping: 0,
                cancelled: VecDeque::new(),
                // A new queue accepts and dispatches (fxioqueue.cpp:461-462).
                accepting: true,
                dispatching_requests: true,
                shutdown: false,
                worker_queued: false,
                power_managed,
                powered,
            },
        );
        queue
    };
    if default && !device::set_default_queue(device, queue) {
        violation(
            "WdfDefaultQueueTwice",
            format!("{API}: a second default queue"),
        );
        objects::delete_tree(queue);
        framework().queues.by_handle.remove(&queue);
        return STATUS_UNSUCCESSFUL;
    }
    if !queue_out.is_null() {
        // SAFETY: Non-null out pointer.
        unsafe { queue_out.write(pointer(queue)) };
    }
    STATUS_SUCCESS
}

fn descends_from(mut object: usize, ancestor: usize) -> bool {
    let fx = framework();
    loop {
        if object == ancestor {
            return true;
        }
        match fx.objects.get(object).and_then(|o| o.parent) {
            Some(parent) => object = parent,
            None => return false,
        }
    }
}

/// A request for `irp` (`FxRequest::_CreateForPackage`); not parented to the device
/// (`RequestParentOptimizationOn`, default 1).
pub(crate) fn create_request(
    device: usize,
    queue: Option<usize>,
    irp: *mut IRP,
    create: bool,
) -> usize {
    // SAFETY: A delivered IRP with a current location.
    let location = unsafe { io_get_current_irp_stack_location(irp) };
    // SAFETY: As above.
    let (major, file) = unsafe {
        (
            u32::from((*location).MajorFunction),
            address((*location).FileObject),
        )
    };
    // SAFETY: As above: Parameters.Read / .Write start with their ULONG Length (wdm.h).
    let length = || unsafe { (&raw const (*location).Parameters).cast::<u32>().read() } as usize;
    let (input_len, output_len, code) = match major {
        IRP_MJ_DEVICE_CONTROL | IRP_MJ_INTERNAL_DEVICE_CONTROL => {
            // SAFETY: A device-control location.
            let p = unsafe { device_io_control_parameters(location) };
            (
                p.InputBufferLength as usize,
                p.OutputBufferLength as usize,
                p.IoControlCode,
            )
        }
        IRP_MJ_READ => (0, length(), 0),
        IRP_MJ_WRITE => (length(), 0, 0),
        _ => (0, 0, 0),
    };
    // SAFETY: As above.
    let user_mode = unsafe { (*irp).RequestorMode } != 0;
    // The request gets the device's request attributes: their context, their callbacks
    // (FxPkgIo::DispatchStep2, fxpkgio.cpp:377-385; FxDevice::Initialize, fxdevice.cpp:745-752).
    let attributes: Option<WDF_OBJECT_ATTRIBUTES> = device::request_attributes(device);
    let mut fx = framework();
    let request = fx.objects.create(
        Kind::Request,
        None,
        attributes
            .as_ref()
            .map_or(std::ptr::null(), std::ptr::from_ref),
    );
    fx.queues.by_irp.insert(address(irp), request);
    fx.queues.requests.insert(
        request,
        RequestState {
            irp: address(irp),
            queue,
            device,
            file,
            major: if create { IRP_MJ_CREATE } else { major },
            owner: if create { Owner::Driver } else { Owner::Queued },
            input_len,
            output_len,
            code,
            user_mode,
            memory: [None, None],
            cancel: None,
            cancelable: false,
            routine_taken: false,
            verifier_cancelled: false,
        },
    );
    request
}

/// `FxPkgIo::Dispatch` for I/O on `device`: to its default queue, which presents the request
/// before this returns `STATUS_PENDING`, or queues it (`fxpkgio.cpp:166-476`,
/// `fxioqueue.cpp:2317-2371`).
pub(crate) fn dispatch_io(device: usize, irp: *mut IRP) -> NTSTATUS {
    let queue = framework()
        .devices
        .by_handle
        .get(&device)
        .and_then(|d| d.default_queue);
    let Some(queue) = queue else {
        return device::complete_irp(irp, STATUS_INVALID_DEVICE_REQUEST);
    };
    let accepting = framework()
        .queues
        .by_handle
        .get(&queue)
        .is_some_and(|q| q.accepting);
    if !accepting {
        return device::complete_irp(irp, STATUS_INVALID_DEVICE_STATE);
    }
    // FxRequest::_CreateForPackage failing completes the IRP with its status
    // (fxpkgio.cpp:385, 413-423).
    if crate::faults::should_fail(crate::faults::Site::Wdf) {
        return device::complete_irp(irp, STATUS_INSUFFICIENT_RESOURCES);
    }
    let request = create_request(device, Some(queue), irp, false);
    // SAFETY: The framework owns the IRP and returns STATUS_PENDING.
    unsafe { wskudp_core::ddi::nt::io_mark_irp_pending(irp) };
    {
        let mut fx = framework();
        if let Some(state) = fx.queues.by_handle.get_mut(&queue) {
            state.pending.push_back(request);
        }
        // A queued request is cancelable through the queue (its cancel-safe queue).
        // SAFETY: The framework owns the IRP until completion.
        unsafe { crate::cancel::swap_cancel_routine(irp, Some(queued_request_cancelled)) };
    }
    dispatch_events(queue);
    STATUS_PENDING
}

/// `DispatchEvents` (`fxioqueue.cpp:2758-3132`): delivers due cancel callbacks and presents
/// what the queue may present, on this thread or (passive-level queue, IRQL too high) a
/// worker's.
fn dispatch_events(queue: usize) {
    if in_callback_of(queue) {
        // The callback's own loop carries on when it returns (fxioqueue.hpp:1007-1038).
        return;
    }
    let enter = framework()
        .queues
        .by_handle
        .get_mut(&queue)
        .is_some_and(|state| enter_loop(queue, state));
    if enter {
        run_loop(queue);
    }
}

/// Whether this thread may run `queue`'s loop, counted in `looping` if so; under the
/// framework lock. A passive-level queue reached above `PASSIVE_LEVEL` hands the loop to a
/// worker thread instead, once (`CanThreadDispatchEventsLocked`: KMDF's system work item,
/// `fxioqueue.cpp:2684-2705`); the callbacks then run at `PASSIVE_LEVEL`.
fn enter_loop(queue: usize, state: &mut QueueState) -> bool {
    if state.passive && irql::current() > PASSIVE_LEVEL {
        if !state.worker_queued && (!state.pending.is_empty() || !state.cancelled.is_empty()) {
            state.worker_queued = true;
            std::thread::spawn(move || {
                if let Some(state) = framework().queues.by_handle.get_mut(&queue) {
                    state.worker_queued = false;
                }
                dispatch_events(queue);
            });
        }
        return false;
    }
    // m_Dispatching++ (fxioqueue.cpp:2849).
    state.looping += 1;
    true
}

/// The loop of `DispatchEvents`, entered with [`enter_loop`]: until nothing is left to do.
fn run_loop(queue: usize) {
    enum Next {
        Present(usize),
        Cancel(usize),
    }
    loop {
        let next = {
            let mut fx = framework();
            let queues = &mut fx.queues;
            let Some(state) = queues.by_handle.get_mut(&queue) else {
                return;
            };
            // Cancels first, whatever other callbacks of the queue run on other threads
            // (fxioqueue.cpp:2878-2891); only a Device or Queue synchronization scope would
            // serialize them (m_IoCancelCallbackLockPtr, fxioqueue.cpp:760, 777), and the model
            // refuses those scopes.
            if let Some(request) = state.cancelled.pop_front() {
                state.dispatching += 1;
                if let Some(record) = queues.requests.get_mut(&request) {
                    // FXREQUEST_FLAG_CANCELLED, just before the callback (fxioqueue.cpp:4905-4911).
                    record.verifier_cancelled = true;
                }
                Next::Cancel(request)
            } else {
                let may_present = match state.config.DispatchType {
                    _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchSequential => {
                        state.driver_io == 0
                    }
                    _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchParallel => {
                        state.driver_io < state.max_presented
                    }
                    _ => false,
                };
                // Nothing is presented while the queue is stopped or its device is out of D0
                // (fxioqueue.cpp:3015-3040).
                let request = if may_present && state.dispatching_requests && state.powered {
                    state.pending.pop_front()
                } else {
                    None
                };
                let Some(request) = request else {
                    // Done: m_Dispatching-- (fxioqueue.cpp:3128-3131), under the lock a
                    // cancel checks it with.
                    state.looping = state.looping.saturating_sub(1);
                    return;
                };
                state.driver_io += 1;
                state.dispatching += 1;
                if let Some(record) = queues.requests.get_mut(&request) {
                    record.owner = Owner::Driver;
                    let irp = pointer::<IRP>(record.irp);
                    // SAFETY: Leaving the cancel-safe queue: no queue cancel routine any more.
                    unsafe { crate::cancel::swap_cancel_routine(irp, None) };
                }
                Next::Present(request)
            }
        };
        DISPATCHING.with(|d| d.borrow_mut().push(queue));
        match next {
            Next::Present(request) => present(queue, request),
            Next::Cancel(request) => deliver_cancel(request),
        }
        DISPATCHING.with(|d| {
            let mut d = d.borrow_mut();
            if let Some(position) = d.iter().rposition(|q| *q == queue) {
                d.remove(position);
            }
        });
        if let Some(state) = framework().queues.by_handle.get_mut(&queue) {
            state.dispatching = state.dispatching.saturating_sub(1);
        }
    }
}

/// Calls the queue's callback for `request` (`DispatchRequestToDriver`,
/// `fxioqueue.cpp:3135-3441`): `EvtIoRead` / `EvtIoWrite` / `EvtIoDeviceControl` /
/// `EvtIoInternalDeviceControl` for their requests, else `EvtIoDefault`, else the request fails
/// with `STATUS_INVALID_DEVICE_REQUEST`. A zero-length read or write is completed with
/// `STATUS_SUCCESS` without being presented unless the queue allows zero-length requests
/// (`fxioqueue.cpp:3244-3262, 3282-3300, 3367-3410`). The callback runs at the presenting
/// thread's IRQL.
fn present(queue: usize, request: usize) {
    let (config, allow_zero, major, input_len, output_len, code) = {
        let fx = framework();
        let (Some(state), Some(record)) = (
            fx.queues.by_handle.get(&queue),
            fx.queues.requests.get(&request),
        ) else {
            return;
        };
        (
            state.config,
            state.config.AllowZeroLengthRequests != 0,
            record.major,
            record.input_len,
            record.output_len,
            record.code,
        )
    };
    let q = pointer(queue);
    let r = pointer(request);
    let zero_length = match major {
        IRP_MJ_READ => output_len == 0,
        IRP_MJ_WRITE => input_len == 0,
        _ => false,
    };
    if zero_length && !allow_zero {
        complete(
            request,
            STATUS_SUCCESS,
            None,
            "the framework (zero-length request)",
        );
        return;
    }
    super::in_callback("an I/O queue callback", || match major {
        // SAFETY: The driver's callback with a request it now owns.
        IRP_MJ_READ if config.EvtIoRead.is_some() => unsafe {
            if let Some(callback) = config.EvtIoRead {
                callback(q, r, output_len);
            }
        },
        // SAFETY: As above.
        IRP_MJ_WRITE if config.EvtIoWrite.is_some() => unsafe {
            if let Some(callback) = config.EvtIoWrite {
                callback(q, r, input_len);
            }
        },
        // SAFETY: As above.
        IRP_MJ_DEVICE_CONTROL if config.EvtIoDeviceControl.is_some() => unsafe {
            if let Some(callback) = config.EvtIoDeviceControl {
                callback(q, r, output_len, input_len, code);
            }
        },
        // SAFETY: As above.
        IRP_MJ_INTERNAL_DEVICE_CONTROL if config.EvtIoInternalDeviceControl.is_some() => unsafe {
            if let Some(callback) = config.EvtIoInternalDeviceControl {
                callback(q, r, output_len, input_len, code);
            }
        },
        _ => match config.EvtIoDefault {
            // SAFETY: The driver's EvtIoDefault.
            Some(callback) => unsafe { callback(q, r) },
            None => complete(
                request,
                STATUS_INVALID_DEVICE_REQUEST,
                None,
                "the framework",
            ),
        },
    });
}

/// Completes a request (`FxRequest::CompleteInternal`, `fxrequest.cpp:522-928`) with the
/// verifier's checks.
fn complete(request: usize, status: NTSTATUS, information: Option<ULONG_PTR>, api: &str) {
    let mut problems = Vec::new();
    let (record, queue) = {
        let mut fx = framework();
        if fx.queues.completed.contains(&request) {
            drop(fx);
            violation(
                "WdfRequestCompletedTwice",
                format!("{api}({request:#x}) of a request already completed (a freed WDFREQUEST)"),
            );
            return;
        }
        let Some(state) = fx.queues.requests.get(&request) else {
            drop(fx);
            violation(
                "WDF_INVALID_HANDLE",
                format!("{api}({request:#x}): not a WDFREQUEST (bugcheck 0x10D)"),
            );
            return;
        };
        if state.owner != Owner::Driver {
            drop(fx);
            violation(
                "WdfRequestNotDriverOwned",
                format!("{api}({request:#x}) of a request still in its queue: not completed"),
            );
            return;
        }
        // Completing a request still marked cancelable is allowed only once its
        // EvtRequestCancel is being delivered, not as soon as the cancel routine took it
        // (fxrequest.cpp:400-420).
        if state.cancelable && !state.verifier_cancelled {
            let detail = if state.routine_taken {
                "cancelled, but EvtRequestCancel was not called yet: after WdfRequestUnmarkCancelable returns STATUS_CANCELLED, complete it from (or after) EvtRequestCancel"
            } else {
                "still marked cancelable: call WdfRequestUnmarkCancelable first"
            };
            problems.push((
                "WdfRequestCompletedCancelable",
                format!("{api}({request:#x}) of a request {detail}"),
            ));
        }
        let irp = pointer::<IRP>(state.irp);
        // SAFETY: The framework owns the IRP until completion.
        let final_information =
            information.unwrap_or(unsafe { (*irp).IoStatus.Information } as ULONG_PTR);
        // The verifier's length check (FxRequest::VerifyCompleteInternal, fxrequest.cpp:433-513):
        // a read's or write's Length, a user-mode IOCTL's non-zero output length.
        let limit = match state.major {
            IRP_MJ_READ => Some(state.output_len),
            IRP_MJ_WRITE => Some(state.input_len),
            IRP_MJ_DEVICE_CONTROL if state.user_mode && state.output_len > 0 => {
                Some(state.output_len)
            }
            _ => None,
        };
        if let Some(limit) = limit
            && status >= 0
            && final_information > limit as ULONG_PTR
        {
            problems.push((
                "WDF_REQUEST_FATAL_ERROR",
                format!(
                    "{api}({request:#x}): IRP_MJ {:#x} completed with Information {final_information} > its buffer length {limit} (bugcheck 0x10D, WDF_REQUEST_FATAL_ERROR, INFORMATION_LENGTH_MISMATCH)",
                    state.major
                ),
            ));
        }
        let Some(record) = fx.queues.requests.remove(&request) else {
            return;
        };
        fx.queues.by_irp.remove(&record.irp);
        fx.queues.completed.insert(request);
        let queue = record.queue;
        if let Some(state) = queue.and_then(|q| fx.queues.by_handle.get_mut(&q)) {
            state.driver_io = state.driver_io.saturating_sub(1);
        }
        // SAFETY: As above: status and information go to the IRP, the cancel routine goes.
        unsafe {
            if let Some(information) = information {
                (*irp).IoStatus.Information = usize::try_from(information).unwrap_or(usize::MAX);
            }
            crate::cancel::swap_cancel_routine(irp, None);
        }
        (record, queue)
    };
    for (rule, detail) in problems {
        violation(rule, detail);
    }
    if record.major == IRP_MJ_CREATE && status < 0 {
        device::create_failed(record.device, record.file);
    }
    device::complete_irp(pointer(record.irp), status);
    // The request object goes with its completion: its cleanup and destroy callbacks (from the
    // device's request attributes) run, and its WDFMEMORY handles die with it.
    objects::delete_tree_at(request, false);
    if let Some(queue) = queue {
        dispatch_events(queue);
    }
}

/// `WdfRequestComplete` (`fxrequestapi.cpp:379-436`).
pub(crate) unsafe extern "C" fn wdf_request_complete(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    status: NTSTATUS,
) {
    let _ = check_globals(globals, "WdfRequestComplete");
    complete(address(request), status, None, "WdfRequestComplete");
}

/// `WdfRequestCompleteWithInformation` (`fxrequestapi.cpp:507-571`).
pub(crate) unsafe extern "C" fn wdf_request_complete_with_information(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    status: NTSTATUS,
    information: ULONG_PTR,
) {
    let _ = check_globals(globals, "WdfRequestCompleteWithInformation");
    complete(
        address(request),
        status,
        Some(information),
        "WdfRequestCompleteWithInformation",
    );
}

/// Looks up a live request for `api`, recording use after completion or a bad handle.
fn live_request<R>(
    api: &str,
    request: WDFREQUEST,
    f: impl FnOnce(&mut RequestState) -> R,
) -> Option<R> {
    let mut fx = framework();
    let handle = address(request);
    if let Some(state) = fx.queues.requests.get_mut(&handle) {
        return Some(f(state));
    }
    let completed = fx.queues.completed.contains(&handle);
    drop(fx);
    if completed {
        violation(
            "WdfRequestUsedAfterCompletion",
            format!(
                "{api}({handle:#x}) after the request was completed (its handle is dead; KMDF dereferences a NULL IRP or a freed object)"
            ),
        );
    } else {
        violation(
            "WDF_INVALID_HANDLE",
            format!("{api}({handle:#x}): not a WDFREQUEST (bugcheck 0x10D)"),
        );
    }
    None
}

/// `WdfRequestSetInformation` (`fxrequestapi.cpp:574-628`).
pub(crate) unsafe extern "C" fn wdf_request_set_information(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    information: ULONG_PTR,
) {
    let _ = check_globals(globals, "WdfRequestSetInformation");
    live_request("WdfRequestSetInformation", request, |state| {
        // SAFETY: The framework owns the IRP until completion.
        unsafe {
            (*pointer::<IRP>(state.irp)).IoStatus.Information =
                usize::try_from(information).unwrap_or(usize::MAX);
        }
    });
}

fn retrieve(
    api: &str,
    request: WDFREQUEST,
    required: usize,
    buffer: *mut PVOID,
    length: *mut usize,
    input: bool,
) -> NTSTATUS {
    if buffer.is_null() {
        null_parameter(api, "Buffer");
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: Non-null out pointers (Length is optional).
    unsafe {
        buffer.write(std::ptr::null_mut());
        if !length.is_null() {
            length.write(0);
        }
    }
    let Some((irp, major, len, code)) = live_request(api, request, |state| {
        (
            state.irp,
            state.major,
            if input {
                state.input_len
            } else {
                state.output_len
            },
            state.code,
        )
    }) else {
        return STATUS_INVALID_DEVICE_REQUEST;
    };
    if (input && major == IRP_MJ_READ) || (!input && major == IRP_MJ_WRITE) {
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    if len == 0 {
        // Zero-length buffers fail whatever the required size (fxrequest.cpp:1361-1374, 1636-1647).
        return STATUS_BUFFER_TOO_SMALL;
    }
    let method = code & 3;
    let irp = pointer::<IRP>(irp);
    // SAFETY: The IRP the request wraps, owned by the framework until completion.
    let requestor_user = unsafe { (*irp).RequestorMode } != 0;
    let address = match method {
        // METHOD_NEITHER from user mode (fxrequest.cpp:1376-1409, 1666-1697).
        3 if requestor_user => return STATUS_INVALID_DEVICE_REQUEST,
        // METHOD_NEITHER from kernel mode: the caller's addresses as given.
        // SAFETY: As above; a device-control location.
        3 if input => unsafe {
            device_io_control_parameters(io_get_current_irp_stack_location(irp)).Type3InputBuffer
        },
        // SAFETY: As above.
        3 => unsafe { (*irp).UserBuffer },
        // METHOD_BUFFERED: both buffers are the system buffer; the direct methods' input too.
        // SAFETY: As above.
        _ if method == 0 || input => unsafe { (*irp).AssociatedIrp.SystemBuffer },
        // The direct methods' output: the MDL's pages, mapped (fxrequest.cpp:1700-1740); the
        // model's "mapping" is the locked buffer's own address.
        _ => {
            // SAFETY: As above.
            let mdl = unsafe { (*irp).MdlAddress };
            if mdl.is_null() {
                return STATUS_BUFFER_TOO_SMALL;
            }
            // SAFETY: The I/O manager's locked MDL, live until the request completes.
            unsafe { (*mdl).StartVa.byte_add((*mdl).ByteOffset as usize) }
        }
    };
    if len < required {
        return STATUS_BUFFER_TOO_SMALL;
    }
    // SAFETY: Non-null out pointers.
    unsafe {
        buffer.write(address);
        if !length.is_null() {
            length.write(len);
        }
    }
    STATUS_SUCCESS
}

/// `WdfRequestRetrieveInputBuffer` (`fxrequestapi.cpp:906-1045`).
pub(crate) unsafe extern "C" fn wdf_request_retrieve_input_buffer(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    required: usize,
    buffer: *mut PVOID,
    length: *mut usize,
) -> NTSTATUS {
    let _ = check_globals(globals, "WdfRequestRetrieveInputBuffer");
    retrieve(
        "WdfRequestRetrieveInputBuffer",
        request,
        required,
        buffer,
        length,
        true,
    )
}

/// `WdfRequestRetrieveOutputBuffer` (`fxrequestapi.cpp:1049-1198`).
pub(crate) unsafe extern "C" fn wdf_request_retrieve_output_buffer(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    required: usize,
    buffer: *mut PVOID,
    length: *mut usize,
) -> NTSTATUS {
    let _ = check_globals(globals, "WdfRequestRetrieveOutputBuffer");
    retrieve(
        "WdfRequestRetrieveOutputBuffer",
        request,
        required,
        buffer,
        length,
        false,
    )
}

/// `WdfRequestRetrieveOutputWdmMdl` (`fxrequestapi.cpp:1706-1809`,
/// `FxRequest::GetDeviceControlOutputMdl` `km/fxrequestkm.cpp:348-470`): for a device
/// control, the direct methods' `Irp->MdlAddress` (`STATUS_BUFFER_TOO_SMALL` when there is
/// none, a zero-length buffer), `STATUS_INVALID_DEVICE_REQUEST` for `METHOD_NEITHER` and for a
/// write. `METHOD_BUFFERED` (an MDL the framework builds over the system buffer) and reads are
/// not modelled.
pub(crate) unsafe extern "C" fn wdf_request_retrieve_output_wdm_mdl(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    mdl: *mut *mut MDL,
) -> NTSTATUS {
    const API: &str = "WdfRequestRetrieveOutputWdmMdl";
    let _ = check_globals(globals, API);
    if mdl.is_null() {
        null_parameter(API, "Mdl");
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: Non-null out pointer.
    unsafe { mdl.write(std::ptr::null_mut()) };
    let Some((irp, major, code)) =
        live_request(API, request, |state| (state.irp, state.major, state.code))
    else {
        return STATUS_INVALID_DEVICE_REQUEST;
    };
    if major == IRP_MJ_WRITE {
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    if major != IRP_MJ_DEVICE_CONTROL {
        violation(
            "WdfFunctionNotModelled",
            format!("{API} of a read request is not modelled"),
        );
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    match code & 3 {
        METHOD_IN_DIRECT | METHOD_OUT_DIRECT => {
            // SAFETY: The IRP the request wraps, owned by the framework until completion.
            let address = unsafe { (*pointer::<IRP>(irp)).MdlAddress };
            if address.is_null() {
                return STATUS_BUFFER_TOO_SMALL;
            }
            // SAFETY: Non-null out pointer.
            unsafe { mdl.write(address) };
            STATUS_SUCCESS
        }
        METHOD_NEITHER => STATUS_INVALID_DEVICE_REQUEST,
        _ => {
            violation(
                "WdfFunctionNotModelled",
                format!(
                    "{API} of a METHOD_BUFFERED request (an MDL over the system buffer) is not modelled"
                ),
            );
            STATUS_INVALID_DEVICE_REQUEST
        }
    }
}

/// `WdfRequestGetFileObject` (`fxrequestapi.cpp:2613-2686`, `fxfileobject.cpp:279-455`).
pub(crate) unsafe extern "C" fn wdf_request_get_file_object(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
) -> WDFFILEOBJECT {
    const API: &str = "WdfRequestGetFileObject";
    let _ = check_globals(globals, API);
    let Some((owner, device, file)) = live_request(API, request, |s| (s.owner, s.device, s.file))
    else {
        return std::ptr::null_mut();
    };
    if owner != Owner::Driver {
        violation(
            "WdfRequestNotDriverOwned",
            format!("{API} on a request still in its queue: NULL"),
        );
        return std::ptr::null_mut();
    }
    let class = framework()
        .devices
        .by_handle
        .get(&device)
        .and_then(|d| d.file_config)
        .map_or(_WDF_FILEOBJECT_CLASS::WdfFileObjectNotRequired, |c| {
            c.FileObjectClass
        });
    if class == _WDF_FILEOBJECT_CLASS::WdfFileObjectNotRequired {
        return std::ptr::null_mut();
    }
    device::wdf_file_of(device, file).map_or(std::ptr::null_mut(), pointer)
}

/// What a change of a request's cancelable state returns: its status, or the rule it broke
/// (recorded) and the status; a dead handle fails `STATUS_INVALID_DEVICE_REQUEST`.
fn settle_cancel_change(
    api: &str,
    request: WDFREQUEST,
    result: Option<Result<NTSTATUS, (&'static str, NTSTATUS)>>,
) -> NTSTATUS {
    match result {
        Some(Ok(status)) => status,
        Some(Err((rule, status))) => {
            violation(rule, format!("{api}({request:p})"));
            status
        }
        None => STATUS_INVALID_DEVICE_REQUEST,
    }
}

/// `WdfRequestMarkCancelableEx` (`fxrequestapi.cpp:3468-3536`, `FxIoQueue::RequestCancelable`
/// `fxioqueue.cpp:2118-2235`).
pub(crate) unsafe extern "C" fn wdf_request_mark_cancelable_ex(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    cancel: PFN_WDF_REQUEST_CANCEL,
) -> NTSTATUS {
    const API: &str = "WdfRequestMarkCancelableEx";
    let _ = check_globals(globals, API);
    if cancel.is_none() {
        null_parameter(API, "EvtRequestCancel");
        return STATUS_INVALID_PARAMETER;
    }
    let result = live_request(API, request, |state| {
        if state.owner != Owner::Driver {
            return Err(("WdfRequestNotDriverOwned", STATUS_INVALID_DEVICE_REQUEST));
        }
        if state.cancelable {
            return Err((
                "WdfRequestMarkedCancelableTwice",
                STATUS_INVALID_DEVICE_REQUEST,
            ));
        }
        let irp = pointer::<IRP>(state.irp);
        // FxIrpQueue::InsertTailRequest: set the cancel routine, then look at Cancel; if the
        // IRP was cancelled and the routine can be taken back, fail with STATUS_CANCELLED (the
        // routine is not called; the driver completes the request). If IoCancelIrp already
        // took it, the routine runs and delivers EvtRequestCancel.
        state.cancelable = true;
        state.cancel = cancel;
        // SAFETY: The framework owns the IRP until completion.
        unsafe { crate::cancel::swap_cancel_routine(irp, Some(driver_request_cancelled)) };
        // SAFETY: As above.
        if unsafe { (*irp).Cancel }
            // SAFETY: As above.
            && unsafe { crate::cancel::swap_cancel_routine(irp, None) }.is_some()
        {
            state.cancelable = false;
            state.cancel = None;
            return Ok(STATUS_CANCELLED);
        }
        Ok(STATUS_SUCCESS)
    });
    settle_cancel_change(API, request, result)
}

/// `WdfRequestUnmarkCancelable` (`fxrequestapi.cpp:3539-3592`, `fxioqueue.cpp:2236-2265`).
pub(crate) unsafe extern "C" fn wdf_request_unmark_cancelable(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
) -> NTSTATUS {
    const API: &str = "WdfRequestUnmarkCancelable";
    let _ = check_globals(globals, API);
    let result = live_request(API, request, |state| {
        if !state.cancelable {
            return Err(("WdfRequestNotCancelable", STATUS_INVALID_DEVICE_REQUEST));
        }
        if state.routine_taken {
            // The cancel routine took it: EvtRequestCancel completes it.
            return Ok(STATUS_CANCELLED);
        }
        let irp = pointer::<IRP>(state.irp);
        // SAFETY: As in MarkCancelableEx.
        let routine = unsafe { crate::cancel::swap_cancel_routine(irp, None) };
        if routine.is_none() {
            // IoCancelIrp took the routine and is about to call it.
            state.routine_taken = true;
            return Ok(STATUS_CANCELLED);
        }
        state.cancelable = false;
        state.cancel = None;
        Ok(STATUS_SUCCESS)
    });
    settle_cancel_change(API, request, result)
}

/// The cancel routine of an IRP waiting in a queue: the framework completes it cancelled
/// (`CancelForQueue`, `fxioqueue.cpp:4353-4496`).
unsafe extern "system" fn queued_request_cancelled(_device: *mut DEVICE_OBJECT, irp: *mut IRP) {
    // SAFETY: Called by IoCancelIrp with the cancel lock held.
    unsafe { crate::cancel::io_release_cancel_spin_lock((*irp).CancelIrql) };
    let request = {
        let mut fx = framework();
        let Some(request) = fx.queues.by_irp.get(&address(irp)).copied() else {
            return;
        };
        let queue = fx.queues.requests.get(&request).and_then(|r| r.queue);
        let removed = queue
            .and_then(|q| fx.queues.by_handle.get_mut(&q))
            .is_some_and(|state| {
                let before = state.pending.len();
                state.pending.retain(|r| *r != request);
                before != state.pending.len()
            });
        if !removed {
            return;
        }
        fx.queues.take_for_framework(request);
        request
    };
    complete(
        request,
        STATUS_CANCELLED,
        Some(0),
        "the framework (request cancelled in its queue)",
    );
}

/// The cancel routine of a request the driver marked cancelable (`_IrpCancelForDriver`,
/// `CancelForDriver`: `fxioqueue.cpp:4559-4689`): the request joins the queue's cancelled list,
/// whose `EvtRequestCancel`s a dispatch loop delivers first thing (`fxioqueue.cpp:4859-4939`).
/// This thread runs that loop only if no thread is in it (`DispatchInternalEvents`,
/// `fxioqueue.cpp:4632`, `fxioqueue.hpp:1007-1038`); otherwise a loop already running delivers
/// it at its next turn: the next request presented on any thread, or the end of the callback
/// that loop is in.
unsafe extern "system" fn driver_request_cancelled(_device: *mut DEVICE_OBJECT, irp: *mut IRP) {
    // SAFETY: Called by IoCancelIrp with the cancel lock held.
    unsafe { crate::cancel::io_release_cancel_spin_lock((*irp).CancelIrql) };
    let enter = {
        let mut fx = framework();
        let queues = &mut fx.queues;
        let Some(request) = queues.by_irp.get(&address(irp)).copied() else {
            return;
        };
        let Some(record) = queues.requests.get_mut(&request) else {
            return;
        };
        record.routine_taken = true;
        let Some((queue, state)) = record
            .queue
            .and_then(|q| queues.by_handle.get_mut(&q).map(|state| (q, state)))
        else {
            return;
        };
        state.cancelled.push_back(request);
        (state.looping == 0 && enter_loop(queue, state)).then_some(queue)
    };
    if let Some(queue) = enter {
        run_loop(queue);
    }
}

fn deliver_cancel(request: usize) {
    let cancel = framework()
        .queues
        .requests
        .get(&request)
        .and_then(|r| r.cancel);
    if let Some(cancel) = cancel {
        // SAFETY: The driver's EvtRequestCancel for its cancelled request.
        super::in_callback("EvtRequestCancel", || unsafe { cancel(pointer(request)) });
    }
}

/// Cleanup of `file` on `device`: its requests still waiting in the queue are completed
/// cancelled (`FlushAllQueuesByFileObject`, `fxioqueue.cpp:4280-4349`).
pub(crate) fn flush_by_file_object(device: usize, file: usize) {
    let victims: Vec<usize> = {
        let mut fx = framework();
        let Some(queue) = fx
            .devices
            .by_handle
            .get(&device)
            .and_then(|d| d.default_queue)
        else {
            return;
        };
        let requests = &fx.queues.requests;
        let waiting: Vec<usize> = fx
            .queues
            .by_handle
            .get(&queue)
            .map(|q| {
                q.pending
                    .iter()
                    .copied()
                    .filter(|r| requests.get(r).is_some_and(|s| s.file == file))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(state) = fx.queues.by_handle.get_mut(&queue) {
            state.pending.retain(|r| !waiting.contains(r));
        }
        for request in &waiting {
            fx.queues.take_for_framework(*request);
        }
        waiting
    };
    for request in victims {
        complete(
            request,
            STATUS_CANCELLED,
            Some(0),
            "the framework (cleanup flushed the queue)",
        );
    }
}

/// Deleting a queue (its device's deletion): stop accepting, cancel what waits, deliver
/// `EvtRequestCancel` to cancelable driver-owned requests, and wait for the rest — forever in
/// KMDF (`fxioqueue.cpp:470-592, 3918-4127`); the model reports it after [`DISPOSE_WAIT`].
pub(crate) fn dispose(queue: usize) {
    {
        let mut fx = framework();
        let Some(state) = fx.queues.by_handle.get_mut(&queue) else {
            return;
        };
        state.accepting = false;
        state.dispatching_requests = false;
        state.shutdown = true;
    }
    purge(queue);
    let deadline = Instant::now() + DISPOSE_WAIT;
    loop {
        let owned = framework()
            .queues
            .by_handle
            .get(&queue)
            .map_or(0, |q| q.driver_io);
        if owned == 0 {
            break;
        }
        if Instant::now() >= deadline {
            violation(
                "WdfQueueDeletedWithDriverRequests",
                format!(
                    "deleting queue {queue:#x} waits for {owned} request(s) the driver never completes: unload hangs"
                ),
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    framework().queues.by_handle.remove(&queue);
}

fn queue_handle(api: &str, queue: WDFQUEUE) -> Option<usize> {
    let handle = address(queue);
    let live = framework().queues.by_handle.contains_key(&handle);
    if !live {
        violation(
            "WDF_INVALID_HANDLE",
            format!("{api}({handle:#x}): not a live WDFQUEUE (bugcheck 0x10D)"),
        );
        return None;
    }
    Some(handle)
}

/// `WdfIoQueueStart` (`fxioqueueapi.cpp:336-378`, `FxIoQueue::QueueStart`
/// `fxioqueue.cpp:3577-3607`): accept and dispatch again (a queue shut down for removal keeps
/// refusing new requests), and present what waits.
pub(crate) unsafe extern "C" fn wdf_io_queue_start(globals: PWDF_DRIVER_GLOBALS, queue: WDFQUEUE) {
    const API: &str = "WdfIoQueueStart";
    let _ = check_globals(globals, API);
    let Some(queue) = queue_handle(API, queue) else {
        return;
    };
    if let Some(state) = framework().queues.by_handle.get_mut(&queue) {
        state.accepting = !state.shutdown;
        state.dispatching_requests = true;
    }
    dispatch_events(queue);
}

/// `WdfIoQueueStopSynchronously` (`fxioqueueapi.cpp:438-485`, `FxIoQueue::QueueIdle` /
/// `QueueIdleSynchronously` `fxioqueue.cpp:3609-3916`): keep accepting, stop presenting, and
/// wait (at `PASSIVE_LEVEL`) until no callback of the queue runs and the driver owns none of
/// its requests. Called from one of the queue's own callbacks, it waits for itself.
pub(crate) unsafe extern "C" fn wdf_io_queue_stop_synchronously(
    globals: PWDF_DRIVER_GLOBALS,
    queue: WDFQUEUE,
) {
    const API: &str = "WdfIoQueueStopSynchronously";
    let _ = check_globals(globals, API);
    let Some(queue) = queue_handle(API, queue) else {
        return;
    };
    if above_passive(API) {
        return;
    }
    if let Some(state) = framework().queues.by_handle.get_mut(&queue) {
        state.accepting = !state.shutdown;
        state.dispatching_requests = false;
    }
    // Idle once no callback of the queue runs and the driver owns none of its requests
    // (fxioqueue.cpp:2910-2922): from inside one of its callbacks, never.
    let _ = super::wait_for_signal("waiting for queue to stop, WDFQUEUE", queue, || {
        framework()
            .queues
            .by_handle
            .get(&queue)
            .is_none_or(|q| q.driver_io == 0 && q.dispatching == 0)
    });
}

/// How `StopProcessingForPower` stops a device's queues (`FxIoStopProcessingForPowerAction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PowerStop {
    /// Leaving D0: power-managed queues stop presenting and wait for the requests the driver
    /// owns (`FxIoStopProcessingForPowerHold`).
    Hold,
    /// Removal: power-managed queues stop accepting, cancel what waits and what the driver
    /// marked cancelable, and wait for the rest (`FxIoStopProcessingForPowerPurgeManaged`).
    PurgeManaged,
    /// Removal, then the other queues alike (`FxIoStopProcessingForPowerPurgeNonManaged`).
    PurgeNonManaged,
}

/// `FxPkgIo::StopProcessingForPower` over each of `device`'s queues
/// (`FxIoQueue::StopProcessingForPower`, `fxioqueue.cpp:5865-6023`): `EvtIoStop` for every
/// request the driver owns (`ProcessPowerEvents`, `fxioqueue.cpp:5227-5385`), then a wait until
/// none is left (the model does not have `WdfRequestStopAcknowledge`, so an acknowledged
/// request is not told apart from a forgotten one).
pub(crate) fn stop_for_power(device: usize, action: PowerStop) {
    let queues: Vec<usize> = framework()
        .queues
        .by_handle
        .iter()
        .filter(|(_, q)| {
            q.device == device
                && match action {
                    PowerStop::Hold | PowerStop::PurgeManaged => q.power_managed,
                    PowerStop::PurgeNonManaged => !q.power_managed,
                }
        })
        .map(|(handle, _)| *handle)
        .collect();
    for queue in queues {
        if action != PowerStop::Hold {
            // SetStateForShutdown, then QueuePurge(TRUE, TRUE) (fxioqueue.cpp:5918-5975).
            if let Some(state) = framework().queues.by_handle.get_mut(&queue) {
                state.shutdown = true;
                state.accepting = false;
            }
            purge(queue);
        }
        let (stop, owned) = {
            let mut fx = framework();
            let Some(state) = fx.queues.by_handle.get_mut(&queue) else {
                continue;
            };
            state.powered = false;
            let stop = state.config.EvtIoStop;
            let owned: Vec<(usize, bool)> = fx
                .queues
                .requests
                .iter()
                .filter(|(_, r)| {
                    r.queue == Some(queue) && r.owner == Owner::Driver && !r.routine_taken
                })
                .map(|(handle, r)| (*handle, r.cancelable))
                .collect();
            (stop, owned)
        };
        if let Some(stop) = stop {
            let action_flags = if action == PowerStop::Hold {
                STOP_ACTION_SUSPEND
            } else {
                STOP_ACTION_PURGE
            };
            for (request, cancelable) in owned {
                let flags = action_flags
                    | if cancelable {
                        STOP_REQUEST_CANCELABLE
                    } else {
                        0
                    };
                // SAFETY: The driver's EvtIoStop for a request it owns, on the PnP thread.
                super::at_passive(|| unsafe { stop(pointer(queue), pointer(request), flags) });
            }
        }
        let _ = super::wait_for_signal(
            "waiting for all inflight requests to be acknowledged on WDFQUEUE",
            queue,
            || {
                framework()
                    .queues
                    .by_handle
                    .get(&queue)
                    .is_none_or(|q| q.driver_io == 0 && q.dispatching == 0)
            },
        );
    }
}

/// `FxPkgIo::ResumeProcessingForPower` (`FxIoQueue::ResumeProcessingForPower`,
/// `fxioqueue.cpp:6070-6123`): `device`'s power-managed queues present again.
pub(crate) fn resume_for_power(device: usize) {
    let queues: Vec<usize> = {
        let mut fx = framework();
        fx.queues
            .by_handle
            .iter_mut()
            .filter(|(_, q)| q.device == device && q.power_managed)
            .map(|(handle, q)| {
                q.powered = true;
                *handle
            })
            .collect()
    };
    for queue in queues {
        dispatch_events(queue);
    }
}

/// `QueuePurge(TRUE, TRUE)` without the wait (`fxioqueue.cpp:3918-4127`): what waits in the
/// queue completes cancelled, and the driver's cancelable requests get `EvtRequestCancel`.
fn purge(queue: usize) {
    let waiting = {
        let mut fx = framework();
        let Some(state) = fx.queues.by_handle.get_mut(&queue) else {
            return;
        };
        let waiting: Vec<usize> = state.pending.drain(..).collect();
        let owned: Vec<usize> = fx
            .queues
            .requests
            .iter()
            .filter(|(_, r)| {
                r.queue == Some(queue)
                    && r.owner == Owner::Driver
                    && r.cancelable
                    && !r.routine_taken
            })
            .map(|(handle, _)| *handle)
            .collect();
        for request in &waiting {
            fx.queues.take_for_framework(*request);
        }
        for request in &owned {
            if let Some(record) = fx.queues.requests.get_mut(request) {
                record.routine_taken = true;
                let irp = pointer::<IRP>(record.irp);
                // SAFETY: The framework owns the IRP; its cancel routine goes with the cancel.
                unsafe { crate::cancel::swap_cancel_routine(irp, None) };
            }
        }
        if let Some(state) = fx.queues.by_handle.get_mut(&queue) {
            state.cancelled.extend(owned.iter().copied());
        }
        waiting
    };
    for request in waiting {
        complete(
            request,
            STATUS_CANCELLED,
            Some(0),
            "the framework (queue purged)",
        );
    }
    dispatch_events(queue);
}

/// `WdfRequestGetIoQueue` (`fxrequestapi.cpp:2933-3018`): the queue that owns the request;
/// NULL for a create request (the framework's internal queue) or one a queue no longer holds.
pub(crate) unsafe extern "C" fn wdf_request_get_io_queue(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
) -> WDFQUEUE {
    const API: &str = "WdfRequestGetIoQueue";
    let _ = check_globals(globals, API);
    live_request(API, request, |state| state.queue)
        .flatten()
        .map_or(std::ptr::null_mut(), pointer)
}

/// The buffer behind a request's memory: its address, length, and whether it is read-only
/// (`FxRequestSystemBuffer` / `FxRequestOutputBuffer`: `GetBuffer`, `GetBufferSize`,
/// `GetFlags`, `fxrequestsystembuffer.cpp:37-182`, `fxrequestoutputbuffer.cpp:36-195`).
fn memory_buffer(state: &RequestState, input: bool) -> (usize, usize, bool) {
    let irp = pointer::<IRP>(state.irp);
    // SAFETY: The framework owns the IRP until completion.
    let system = address(unsafe { (*irp).AssociatedIrp.SystemBuffer });
    match state.major {
        IRP_MJ_READ => (system, state.output_len, false),
        IRP_MJ_WRITE => (system, state.input_len, true),
        // Buffered IOCTLs: both are the system buffer, writable.
        _ if input => (system, state.input_len, false),
        _ => (system, state.output_len, false),
    }
}

/// `WdfRequestRetrieveInputMemory` / `OutputMemory` (`fxrequestapi.cpp:676-903`,
/// `FxRequest::GetMemoryObject` / `GetDeviceControlOutputMemoryObject`
/// `fxrequest.cpp:1299-1536, 1540-1773`): the request's own `WDFMEMORY` for its buffer, valid until it is
/// completed.
fn retrieve_memory(
    api: &str,
    request: WDFREQUEST,
    memory: *mut WDFMEMORY,
    input: bool,
) -> NTSTATUS {
    if memory.is_null() {
        null_parameter(api, "Memory");
        return STATUS_INVALID_PARAMETER;
    }
    let handle = address(request);
    let result = live_request(api, request, |state| {
        // Not valid on a read (input) or a write (output) (fxrequestapi.cpp:761-773, 874-887).
        if (input && state.major == IRP_MJ_READ) || (!input && state.major == IRP_MJ_WRITE) {
            return Err(STATUS_INVALID_DEVICE_REQUEST);
        }
        let method = state.code & 3;
        let ioctl = matches!(
            state.major,
            IRP_MJ_DEVICE_CONTROL | IRP_MJ_INTERNAL_DEVICE_CONTROL
        );
        let (_, len, _) = memory_buffer(state, input);
        if len == 0 {
            return Err(STATUS_BUFFER_TOO_SMALL);
        }
        if ioctl && method == 3 && state.user_mode && state.major == IRP_MJ_DEVICE_CONTROL {
            return Err(STATUS_INVALID_DEVICE_REQUEST);
        }
        if ioctl && method != 0 {
            crate::state::bugcheck(
                "WdfFunctionNotModelled",
                "request memory of METHOD_IN_DIRECT / OUT_DIRECT / NEITHER IOCTLs",
            );
        }
        Ok(state.memory[usize::from(!input)])
    });
    let existing = match result {
        None => return STATUS_INVALID_DEVICE_REQUEST,
        Some(Err(status)) => return status,
        Some(Ok(existing)) => existing,
    };
    let handle = existing.unwrap_or_else(|| {
        let mut fx = framework();
        let object = fx
            .objects
            .create(Kind::Memory, Some(handle), std::ptr::null());
        if let Some(state) = fx.queues.requests.get_mut(&handle) {
            state.memory[usize::from(!input)] = Some(object);
        }
        fx.queues.memories.insert(object, (handle, input));
        object
    });
    // SAFETY: Non-null out pointer.
    unsafe { memory.write(pointer(handle)) };
    STATUS_SUCCESS
}

/// `WdfRequestRetrieveInputMemory` (`fxrequestapi.cpp:676-781`).
pub(crate) unsafe extern "C" fn wdf_request_retrieve_input_memory(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    memory: *mut WDFMEMORY,
) -> NTSTATUS {
    let _ = check_globals(globals, "WdfRequestRetrieveInputMemory");
    retrieve_memory("WdfRequestRetrieveInputMemory", request, memory, true)
}

/// `WdfRequestRetrieveOutputMemory` (`fxrequestapi.cpp:787-903`).
pub(crate) unsafe extern "C" fn wdf_request_retrieve_output_memory(
    globals: PWDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    memory: *mut WDFMEMORY,
) -> NTSTATUS {
    let _ = check_globals(globals, "WdfRequestRetrieveOutputMemory");
    retrieve_memory("WdfRequestRetrieveOutputMemory", request, memory, false)
}

/// A request memory's buffer, or the misuse recorded.
fn memory_of(api: &str, memory: WDFMEMORY) -> Option<(usize, usize, bool)> {
    let handle = address(memory);
    let fx = framework();
    let Some(&(request, input)) = fx.queues.memories.get(&handle) else {
        drop(fx);
        violation(
            "WDF_INVALID_HANDLE",
            format!("{api}({handle:#x}): not a WDFMEMORY (bugcheck 0x10D)"),
        );
        return None;
    };
    if let Some(state) = fx.queues.requests.get(&request) {
        return Some(memory_buffer(state, input));
    }
    drop(fx);
    violation(
        "WdfRequestUsedAfterCompletion",
        format!(
            "{api}({handle:#x}): the WDFMEMORY of request {request:#x}, which was completed (its buffer is gone)"
        ),
    );
    None
}

/// `_CopyPtrToPtr`'s bounds (`fxmemoryobject.cpp:205-319`): copying `count` bytes at `offset`
/// of a `size`-byte buffer.
const fn copy_bounds(
    size: usize,
    offset: usize,
    count: usize,
    into_memory: bool,
) -> Result<(), NTSTATUS> {
    if (offset != 0 && offset >= size) || count > size - offset {
        return Err(if into_memory {
            STATUS_INVALID_BUFFER_SIZE
        } else {
            STATUS_BUFFER_TOO_SMALL
        });
    }
    Ok(())
}

/// `WdfMemoryCopyToBuffer` (`fxmemorybufferapi.cpp:211-283`, `IFxMemory::CopyToPtr`
/// `fxmemoryobject.cpp:155-201`): `count` bytes from the memory at `offset` into `buffer`.
pub(crate) unsafe extern "C" fn wdf_memory_copy_to_buffer(
    globals: PWDF_DRIVER_GLOBALS,
    memory: WDFMEMORY,
    offset: usize,
    buffer: PVOID,
    count: usize,
) -> NTSTATUS {
    const API: &str = "WdfMemoryCopyToBuffer";
    let _ = check_globals(globals, API);
    memory_copy(API, memory, offset, buffer, count, false)
}

/// `WdfMemoryCopyFromBuffer` (`fxmemorybufferapi.cpp:289-363`, `IFxMemory::CopyFromPtr`
/// `fxmemoryobject.cpp:118-151`): `count` bytes of `buffer` into the memory at `offset`. A
/// write's buffer is read-only: a verifier break and `STATUS_ACCESS_VIOLATION`.
pub(crate) unsafe extern "C" fn wdf_memory_copy_from_buffer(
    globals: PWDF_DRIVER_GLOBALS,
    memory: WDFMEMORY,
    offset: usize,
    buffer: PVOID,
    count: usize,
) -> NTSTATUS {
    const API: &str = "WdfMemoryCopyFromBuffer";
    let _ = check_globals(globals, API);
    memory_copy(API, memory, offset, buffer, count, true)
}

/// `count` bytes between `buffer` and the memory at `offset`: into the memory if
/// `into_memory`, else out of it, with the checks both DDIs make.
fn memory_copy(
    api: &str,
    memory: WDFMEMORY,
    offset: usize,
    buffer: PVOID,
    count: usize,
    into_memory: bool,
) -> NTSTATUS {
    let Some((address, size, read_only)) = memory_of(api, memory) else {
        return STATUS_INVALID_PARAMETER;
    };
    if buffer.is_null() {
        null_parameter(api, "Buffer");
        return STATUS_INVALID_PARAMETER;
    }
    if count == 0 {
        return STATUS_INVALID_PARAMETER;
    }
    if into_memory && read_only {
        violation(
            "WdfMemoryReadOnly",
            format!(
                "{api}({memory:p}): the WDFMEMORY is read-only (a write request's buffer): STATUS_ACCESS_VIOLATION"
            ),
        );
        return STATUS_ACCESS_VIOLATION;
    }
    if let Err(status) = copy_bounds(size, offset, count, into_memory) {
        return status;
    }
    let at = pointer::<u8>(address).wrapping_add(offset);
    let (from, to) = if into_memory {
        (buffer.cast::<u8>(), at)
    } else {
        (at, buffer.cast::<u8>())
    };
    // SAFETY: `offset + count <= size` bytes of the request's live buffer; `buffer` holds
    // `count` bytes (the DDI's contract).
    unsafe { std::ptr::copy(from, to, count) };
    STATUS_SUCCESS
}
