//! `IoAllocateWorkItem` / `IoQueueWorkItem` / `IoFreeWorkItem` and a system worker thread that
//! runs queued routines at `PASSIVE_LEVEL`, with the rules Microsoft documents:
//!
//! - `IoAllocateWorkItem` (IRQL <= `DISPATCH_LEVEL`): "If the caller will later pass the work item
//!   to `IoQueueWorkItem`, `DeviceObject` must point to a device object".
//! - `IoQueueWorkItem` (IRQL <= `DISPATCH_LEVEL`): "Drivers must specify `DelayedWorkQueue`"; "Do
//!   not call `IoQueueWorkItem` or `IoQueueWorkItemEx` to queue a work item that is already in the
//!   queue. Doing so can cause corruption of system data structures" ("System Worker
//!   Threads"); "a driver thread can safely queue the work item again as soon as the worker
//!   thread starts to run" (same page); it "takes out a reference on the associated device
//!   object; the driver cannot be unloaded if any such references remain" ("Releasing
//!   Driver-Allocated Resources"), dropped after the routine returns (`ReactOS`
//!   `IopWorkItemCallback`, an independent reading).
//! - `IoFreeWorkItem` (IRQL <= `DISPATCH_LEVEL`): "Only free a work item that is not currently
//!   queued. The system dequeues a work item before it runs the work item's callback routine, so
//!   `IoFreeWorkItem` can be called from within the `WorkItem` or `WorkItemEx` routine".
//!
//! A work item still allocated when the machine shuts down is a leak.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};
use std::thread::JoinHandle;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, PIO_WORKITEM};
use windows_sys::Wdk::System::SystemServices::{
    DelayedWorkQueue, PIO_WORKITEM_ROUTINE, WORK_QUEUE_TYPE,
};
use wskudp_core::ddi::nt::IoWorkItemRoutine;

use crate::faults::{self, Site};
use crate::irql::{self, DISPATCH_LEVEL};
use crate::state;

/// An allocated work item.
struct Item {
    device: usize,
    queued: bool,
}

/// A queued routine.
struct Queued {
    item: usize,
    device: usize,
    routine: IoWorkItemRoutine,
    context: usize,
}

#[derive(Default)]
struct Workers {
    items: HashMap<usize, Item>,
    queue: VecDeque<Queued>,
    /// Routines running now.
    running: usize,
    /// A test holds queued routines back ([`hold_work_items`]).
    held: bool,
    stop: bool,
    thread: Option<JoinHandle<()>>,
}

static WORKERS: LazyLock<Mutex<Workers>> = LazyLock::new(|| Mutex::new(Workers::default()));
static CHANGED: Condvar = Condvar::new();

fn workers() -> MutexGuard<'static, Workers> {
    WORKERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What `IoAllocateWorkItem` returns: an address only the model interprets.
#[repr(C)]
struct WorkItemMemory {
    _device: usize,
}

/// `IoAllocateWorkItem` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// None beyond the DDI's contract.
#[unsafe(export_name = "IoAllocateWorkItem")]
pub(crate) unsafe extern "system" fn io_allocate_work_item(
    device: *const DEVICE_OBJECT,
) -> PIO_WORKITEM {
    irql::require_at_most("IoAllocateWorkItem", DISPATCH_LEVEL);
    if !crate::iomgr::is_device(device.expose_provenance()) {
        state::violation(
            "WorkItemDevice",
            format!(
                "IoAllocateWorkItem({device:p}), not a live device object (IoAllocateWorkItem page: DeviceObject must point to a device object to be queued)"
            ),
        );
        return 0;
    }
    if faults::should_fail(Site::Pool) {
        return 0;
    }
    let memory = Box::into_raw(Box::new(WorkItemMemory {
        _device: device.expose_provenance(),
    }));
    let item = memory.expose_provenance();
    workers().items.insert(
        item,
        Item {
            device: device.expose_provenance(),
            queued: false,
        },
    );
    item.cast_signed()
}

/// `IoQueueWorkItem` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// `item` must come from `IoAllocateWorkItem`; `routine` must accept `context` at
/// `PASSIVE_LEVEL`.
#[unsafe(export_name = "IoQueueWorkItem")]
pub(crate) unsafe extern "system" fn io_queue_work_item(
    item: PIO_WORKITEM,
    routine: PIO_WORKITEM_ROUTINE,
    queue_type: WORK_QUEUE_TYPE,
    context: *const c_void,
) {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("IoQueueWorkItem", DISPATCH_LEVEL);
    if queue_type != DelayedWorkQueue {
        state::violation(
            "WorkItemQueueType",
            format!(
                "IoQueueWorkItem with queue type {queue_type} (IoQueueWorkItem page: \"Drivers must specify DelayedWorkQueue\")"
            ),
        );
    }
    let Some(routine) = routine else {
        state::violation(
            "WorkItemRoutine",
            "IoQueueWorkItem without a routine".into(),
        );
        return;
    };
    // SAFETY: Restoring the IO_WORKITEM_ROUTINE parameter list PIO_WORKITEM_ROUTINE erases.
    let routine =
        unsafe { std::mem::transmute::<unsafe extern "system" fn(), IoWorkItemRoutine>(routine) };
    let key = item.cast_unsigned();
    let mut workers = workers();
    let Some(record) = workers.items.get_mut(&key) else {
        drop(workers);
        state::violation(
            "WorkItemUnknown",
            format!("IoQueueWorkItem({key:#x}) of a work item not allocated (or freed)"),
        );
        return;
    };
    if record.queued {
        drop(workers);
        state::violation(
            "WorkItemQueuedTwice",
            format!(
                "IoQueueWorkItem({key:#x}) of a work item already in the queue (\"System Worker Threads\": doing so can cause corruption of system data structures)"
            ),
        );
        return;
    }
    record.queued = true;
    let device = record.device;
    // Held until the routine returns: the driver cannot unload meanwhile.
    let _ = crate::iomgr::reference_device(std::ptr::with_exposed_provenance(device));
    workers.queue.push_back(Queued {
        item: key,
        device,
        routine,
        context: context.expose_provenance(),
    });
    if workers.thread.is_none() && !workers.stop {
        workers.thread = std::thread::Builder::new()
            .name("kmodel-system-worker".into())
            .spawn(worker)
            .ok();
    }
    drop(workers);
    CHANGED.notify_all();
}

/// `IoFreeWorkItem` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// `item` must come from `IoAllocateWorkItem` and not be queued.
#[unsafe(export_name = "IoFreeWorkItem")]
pub(crate) unsafe extern "system" fn io_free_work_item(item: PIO_WORKITEM) {
    irql::require_at_most("IoFreeWorkItem", DISPATCH_LEVEL);
    let key = item.cast_unsigned();
    let mut workers = workers();
    match workers.items.get(&key) {
        None => {
            drop(workers);
            state::violation(
                "WorkItemUnknown",
                format!("IoFreeWorkItem({key:#x}) of a work item not allocated (or freed twice)"),
            );
        }
        Some(record) if record.queued => {
            drop(workers);
            state::violation(
                "WorkItemFreedQueued",
                format!(
                    "IoFreeWorkItem({key:#x}) of a queued work item (IoFreeWorkItem page: \"Only free a work item that is not currently queued\")"
                ),
            );
        }
        Some(_) => {
            workers.items.remove(&key);
            drop(workers);
            // SAFETY: Allocated by io_allocate_work_item, freed once (just untracked).
            drop(unsafe {
                Box::from_raw(std::ptr::with_exposed_provenance_mut::<WorkItemMemory>(key))
            });
        }
    }
}

/// The system worker thread: runs queued routines in order at `PASSIVE_LEVEL`.
fn worker() {
    loop {
        let work = {
            let mut workers = workers();
            loop {
                if let Some(work) = (!workers.held || workers.stop)
                    .then(|| workers.queue.pop_front())
                    .flatten()
                {
                    // Dequeued before the routine runs: it may queue or free the item again.
                    if let Some(record) = workers.items.get_mut(&work.item) {
                        record.queued = false;
                    }
                    workers.running += 1;
                    break work;
                }
                if workers.stop {
                    return;
                }
                workers = CHANGED
                    .wait(workers)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        state::count_work_item();
        // SAFETY: The routine and context the driver queued, called as the I/O manager does.
        unsafe {
            (work.routine)(
                std::ptr::with_exposed_provenance_mut(work.device),
                std::ptr::with_exposed_provenance_mut(work.context),
            );
        }
        irql::expect_passive("work item routine");
        crate::iomgr::dereference_device(std::ptr::with_exposed_provenance(work.device));
        workers().running -= 1;
        CHANGED.notify_all();
    }
}

/// Holds queued work item routines back (`true`) or lets them run: a test's way to keep a work
/// item queued, as a busy system worker thread would.
pub fn hold_work_items(held: bool) {
    workers().held = held;
    CHANGED.notify_all();
}

/// Waits until no work item routine is queued or running (bounded: 10 s), so what the driver
/// does from its work item has happened; a test's way to reach a quiet point.
pub fn quiesce_work_items() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut workers = workers();
    while (!workers.queue.is_empty() || workers.running > 0) && !workers.held {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        workers = CHANGED
            .wait_timeout(workers, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
}

/// Forgets everything (a new machine).
pub(crate) fn reset() {
    let mut workers = workers();
    workers.items.clear();
    workers.queue.clear();
    workers.held = false;
    workers.stop = false;
}

/// Runs what is queued, stops the worker, and returns the work items still allocated.
pub(crate) fn stop() -> usize {
    let thread = {
        let mut workers = workers();
        workers.stop = true;
        workers.thread.take()
    };
    CHANGED.notify_all();
    if let Some(thread) = thread {
        let _ = thread.join();
    }
    workers().items.len()
}
