//! The driver's work item: where send jobs continue once their submitter has stopped.
//!
//! A completion routine that finds more to issue may not issue it ("A WSK application should
//! not call new WSK functions in the context of the `IoCompletion` routine", "Using IRPs with
//! Winsock Kernel Functions"): it queues the job here and returns. The work item runs at
//! `PASSIVE_LEVEL` on a system worker thread and pumps every queued job in turn.
//!
//! Rules kept (the `IoQueueWorkItem` page): the work item is queued only when it is not queued
//! already (the `queued` flag, cleared by the routine before it drains the queue, so a job
//! queued meanwhile queues it again); `IoQueueWorkItem` holds a reference on the device until
//! the routine returns, so the image stays loaded while it runs; the driver frees the work item
//! at unload only after every routine it queued has finished (`running`, a rundown reference
//! per queuing, released as the routine's last step).

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::pin::Pin;
use core::ptr::NonNull;

use super::batch::Batch;
use crate::ddi::nt::{
    DEVICE_OBJECT, DelayedWorkQueue, IoAllocateWorkItem, IoFreeWorkItem, IoQueueWorkItem,
    IoWorkItemRoutine, NTSTATUS, PIO_WORKITEM,
};
use crate::irp::DriverDevice;
use crate::status::STATUS_INSUFFICIENT_RESOURCES;
use crate::sync::{Rundown, SpinLock};

/// Jobs waiting for the work item, oldest first.
struct Queue {
    head: Option<NonNull<Batch>>,
    tail: Option<NonNull<Batch>>,
    /// The work item is queued (not yet running).
    queued: bool,
}

/// The driver's send work item and its queue of jobs.
///
/// # Invariants
/// Once `init` succeeded, `item` is an `IO_WORKITEM` of the driver's device, freed by `Drop`;
/// every job in the queue holds a work reference and `PUMPING` (the right to issue), which the
/// routine's pump uses and then gives up; `running` holds one reference per queuing of the
/// work item whose routine has not finished.
pub(crate) struct Pumps {
    item: UnsafeCell<PIO_WORKITEM>,
    queue: SpinLock<Queue>,
    running: Rundown,
}

// SAFETY: `item` is written once by `init` before the value is shared; the queue is behind a
// spin lock; the jobs it links are Send + Sync.
unsafe impl Sync for Pumps {}
#[allow(
    clippy::non_send_fields_in_send_ty,
    reason = "the queue links jobs, which are Send, under its lock"
)]
// SAFETY: As above.
unsafe impl Send for Pumps {}

impl Pumps {
    /// No work item yet: [`Pumps::init`] allocates it once the value is at its final address.
    pub(crate) const fn new() -> Self {
        Self {
            item: UnsafeCell::new(0),
            queue: SpinLock::new(Queue {
                head: None,
                tail: None,
                queued: false,
            }),
            running: Rundown::new(),
        }
    }

    /// `IoAllocateWorkItem` on the driver's device. IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub(crate) fn init(self: Pin<&Self>, device: DriverDevice) -> Result<(), NTSTATUS> {
        crate::paged_code!();
        // SAFETY: Structural pinning: the rundown is a field of a pinned value.
        unsafe { self.map_unchecked(|pumps| &pumps.running) }.init();
        let item;
        // SAFETY: `device` is this driver's device object (DriverDevice invariant);
        // IoAllocateWorkItem may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            item = IoAllocateWorkItem(device.as_ptr());
        }
        if item == 0 {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: Not shared yet (init runs once, before the driver takes requests).
        unsafe { *self.item.get() = item };
        Ok(())
    }

    fn item(&self) -> PIO_WORKITEM {
        // SAFETY: Written once by `init` before the value was shared (type invariant).
        unsafe { *self.item.get() }
    }

    /// Queues `job` for the work item, which pumps it at `PASSIVE_LEVEL`. The caller gives the
    /// job's queue reference (a work reference) and its right to issue to the queue.
    /// IRQL: <= `DISPATCH_LEVEL`.
    pub(super) fn schedule(&self, job: NonNull<Batch>) {
        let mut queue = self.queue.lock_exclusive();
        // SAFETY: The job is alive (the caller gives its queue reference).
        let link = unsafe { job.as_ref() }.next_queued.get();
        // SAFETY: The link is touched only under this lock (Batch invariant); the job is not
        // queued (only the holder of its right to issue queues it, once).
        unsafe { *link = None };
        match queue.tail {
            Some(tail) => {
                // SAFETY: A queued job is alive (its queue reference).
                let link = unsafe { tail.as_ref() }.next_queued.get();
                // SAFETY: Under the lock.
                unsafe { *link = Some(job) };
            }
            None => queue.head = Some(job),
        }
        queue.tail = Some(job);
        if queue.queued || self.item() == 0 {
            return;
        }
        // The routine's reference, released as its last step. It fails only once unload began,
        // after every socket closed, when no job exists to queue.
        if !self.running.try_acquire() {
            return;
        }
        queue.queued = true;
        drop(queue);
        let routine = run as IoWorkItemRoutine;
        // SAFETY: `PIO_WORKITEM_ROUTINE` erases the parameter list of IO_WORKITEM_ROUTINE; the
        // I/O manager calls it with exactly those parameters.
        let erased = unsafe {
            core::mem::transmute::<IoWorkItemRoutine, unsafe extern "system" fn()>(routine)
        };
        // SAFETY: 1. `item` is the driver's work item, not queued (the flag, under the lock);
        //         2. `self` outlives the routine: unload waits for `running` before freeing;
        //         3. IoQueueWorkItem may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            IoQueueWorkItem(
                self.item(),
                Some(erased),
                DelayedWorkQueue,
                core::ptr::from_ref(self).cast(),
            );
        }
    }

    /// The next queued job, or `None` after clearing `queued` (a job queued from then on
    /// queues the work item again).
    fn next(&self) -> Option<NonNull<Batch>> {
        let mut queue = self.queue.lock_exclusive();
        let Some(job) = queue.head else {
            queue.queued = false;
            return None;
        };
        // SAFETY: A queued job is alive.
        let link = unsafe { job.as_ref() }.next_queued.get();
        // SAFETY: Its link, read under the lock.
        queue.head = unsafe { *link };
        if queue.head.is_none() {
            queue.tail = None;
        }
        Some(job)
    }
}

/// The work item's routine: pumps every queued job. IRQL: `PASSIVE_LEVEL`.
unsafe extern "system" fn run(_device: *mut DEVICE_OBJECT, context: *mut c_void) {
    // SAFETY: `context` is the driver's Pumps, alive until `running` is released below.
    let pumps = unsafe { &*context.cast::<Pumps>() };
    while let Some(job) = pumps.next() {
        Batch::pump(job);
        // SAFETY: The queue's work reference, given up once.
        unsafe { Batch::release_work(job) };
    }
    // SAFETY: The reference `schedule` took for this queuing; the last touch of the driver's
    // state (the I/O manager's device reference keeps the image until this routine returns).
    unsafe { pumps.running.release() };
}

impl Drop for Pumps {
    /// Waits for every queued routine to finish, then frees the work item. IRQL:
    /// `PASSIVE_LEVEL`, after every socket closed (no job can be queued any more).
    fn drop(&mut self) {
        crate::paged_code!();
        let item = self.item();
        if item == 0 {
            return;
        }
        self.running.wait();
        // SAFETY: The work item is not queued and its routine has finished (`running`);
        // IoFreeWorkItem may be called at IRQL <= DISPATCH_LEVEL.
        unsafe {
            IoFreeWorkItem(item);
        }
    }
}
