//! When and where the provider completes IRPs: inline (before the WSK call returns) or from a
//! worker thread (the call returns `STATUS_PENDING`), late and in any order on demand, or
//! pending but completed before the call returns (racing).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use windows_sys::Wdk::Foundation::IRP;
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_CANCELLED, STATUS_PENDING};

use crate::irp;

/// The order a worker completes a batch of queued IRPs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Submission order.
    Fifo,
    /// Reverse submission order.
    Reverse,
    /// A seeded shuffle.
    Shuffled {
        /// Shuffle seed.
        seed: u64,
    },
}

/// How the provider completes IRPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionMode {
    /// Before the WSK function returns, on the caller's thread (the function returns the
    /// final status).
    Inline,
    /// Never on its own: every IRP stays pending (the WSK function returns `STATUS_PENDING`)
    /// until the test calls [`release_held`], which completes them in submission order on the
    /// calling thread. Failures detected on submission still complete inline.
    Held,
    /// On a worker thread; the WSK function returns `STATUS_PENDING`. The worker waits
    /// `delay` after the first queued request (so more queue up), then completes up to
    /// `batch` of them in `order`. Failures detected on submission still complete inline,
    /// as Windows fails bad arguments synchronously.
    Worker {
        /// Time to let requests accumulate before completing.
        delay: Duration,
        /// Most requests completed per round.
        batch: usize,
        /// Completion order within a round.
        order: Order,
    },
    /// The WSK function returns `STATUS_PENDING`, but its IRP is completed before the function
    /// returns: on the caller's thread, taken from the queue the moment it was queued, as a
    /// worker on another processor or [`release_held`] can. The completer wins every race
    /// with the rest of the provider's submission and with the WSK call's return.
    Racing,
}

impl CompletionMode {
    /// A worker completing each request as soon as it can.
    #[must_use]
    pub const fn worker() -> Self {
        Self::Worker {
            delay: Duration::ZERO,
            batch: 1,
            order: Order::Fifo,
        }
    }

    /// A worker that lets requests pile up and completes them late, out of order.
    #[must_use]
    pub const fn late_out_of_order(seed: u64) -> Self {
        Self::Worker {
            delay: Duration::from_millis(2),
            batch: 64,
            order: Order::Shuffled { seed },
        }
    }
}

/// The provider's work for one IRP, run when it completes: returns `(status, information)`.
pub(crate) type Operation = Box<dyn FnOnce() -> (NTSTATUS, usize) + Send>;

struct Work {
    irp: usize,
    socket: usize,
    /// Datagrams the IRP carries (a send's `WSK_BUF`s; 0 for other calls).
    datagrams: usize,
    operation: Operation,
}

struct Engine {
    mode: CompletionMode,
    queue: VecDeque<Work>,
    stop: bool,
    /// The worker waits on [`QUEUED`] for work: only then does a submission wake it (a
    /// condition variable's notify is a system call even with nobody waiting).
    worker_idle: bool,
    /// The thread that booted the machine (see [`release_held_for`]).
    booted_by: Option<ThreadId>,
}

static ENGINE: LazyLock<Mutex<Engine>> = LazyLock::new(|| {
    Mutex::new(Engine {
        mode: CompletionMode::Inline,
        queue: VecDeque::new(),
        stop: false,
        worker_idle: false,
        booted_by: None,
    })
});
/// The mode is [`CompletionMode::Inline`]: read by every submission without the engine lock
/// (an inline completion never touches the queue). Changed only when a machine starts or
/// stops, with the engine's mode.
static INLINE: AtomicBool = AtomicBool::new(true);
static QUEUED: Condvar = Condvar::new();
static WORKER: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

fn engine() -> MutexGuard<'static, Engine> {
    ENGINE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const fn irp_ptr(addr: usize) -> *mut IRP {
    std::ptr::with_exposed_provenance_mut(addr)
}

/// Runs `operation` for an accepted IRP and completes it, now or on the worker. Returns what
/// the WSK function returns.
///
/// A pending IRP is cancelable the way a provider makes it so: its cancel routine is set, then
/// `Irp->Cancel` is checked (an `IoCancelIrp` that came first is honoured); whoever takes the
/// work out of the queue completes the IRP, with `STATUS_CANCELLED` if the cancel routine did.
/// All three happen under the engine lock, which every completer takes the work out under:
/// once the IRP is visible to a completer, `submit` no longer touches it, as it may be
/// completed and freed at once ("Using a Driver-Supplied Spin Lock", steps 2-3). Inline, the
/// IRP is never queued, so no lock is taken.
pub(crate) fn submit(irp: *mut IRP, socket: usize, operation: Operation) -> NTSTATUS {
    submit_send(irp, socket, 0, operation)
}

/// [`submit`] for a send carrying `datagrams` datagrams (what [`held_datagrams`] counts).
pub(crate) fn submit_send(
    irp: *mut IRP,
    socket: usize,
    datagrams: usize,
    operation: Operation,
) -> NTSTATUS {
    if INLINE.load(Ordering::Acquire) {
        let (status, information) = if irp::is_cancelled(irp) {
            (STATUS_CANCELLED, 0)
        } else {
            operation()
        };
        irp::complete(irp, status, information);
        return status;
    }
    let mut engine = engine();
    irp::mark_pending(irp);
    // SAFETY: The provider owns the accepted IRP; no completer can see it yet.
    unsafe { crate::cancel::swap_cancel_routine(irp, Some(provider_cancel)) };
    // SAFETY: As above.
    if irp::is_cancelled(irp) && unsafe { crate::cancel::swap_cancel_routine(irp, None) }.is_some()
    {
        // Cancelled before it was queued: never visible, completed here (outside the lock: the
        // driver's completion routine may call the provider again).
        drop(engine);
        irp::complete(irp, STATUS_CANCELLED, 0);
        return STATUS_PENDING;
    }
    let addr = irp.expose_provenance();
    engine.queue.push_back(Work {
        irp: addr,
        socket,
        datagrams,
        operation,
    });
    let racing = engine.mode == CompletionMode::Racing;
    let wake = engine.worker_idle;
    drop(engine);
    if wake {
        QUEUED.notify_all();
    }
    if racing && let Some(work) = take(addr) {
        run(work);
    }
    STATUS_PENDING
}

/// Takes `irp`'s work out of the queue, if it is still there.
fn take(irp: usize) -> Option<Work> {
    let mut engine = engine();
    let index = engine.queue.iter().position(|work| work.irp == irp)?;
    engine.queue.remove(index)
}

/// The provider's cancel routine for a pending IRP (`IoCancelIrp` calls it with the cancel spin
/// lock held): releases the lock and, if the work is still queued, completes the IRP
/// cancelled.
unsafe extern "system" fn provider_cancel(
    _device: *mut windows_sys::Wdk::Foundation::DEVICE_OBJECT,
    irp: *mut IRP,
) {
    // SAFETY: Called by IoCancelIrp with the cancel lock held, CancelIrql set.
    unsafe { crate::cancel::io_release_cancel_spin_lock((*irp).CancelIrql) };
    if take(irp.expose_provenance()).is_some() {
        irp::complete(irp, STATUS_CANCELLED, 0);
    }
}

/// Completes an IRP whose work was taken from the queue: the cancel routine goes first
/// (whoever took the work completes the IRP, even if an `IoCancelIrp` claimed the routine
/// meanwhile: that routine then finds nothing to do).
fn complete_taken(irp: usize, status: NTSTATUS, information: usize) {
    let irp = irp_ptr(irp);
    // SAFETY: The provider still owns the IRP.
    unsafe { crate::cancel::swap_cancel_routine(irp, None) };
    irp::complete(irp, status, information);
}

/// Runs queued work and completes its IRP (cancelled instead, if `IoCancelIrp` got there).
fn run(work: Work) {
    // The provider's work on its own thread is model code, but for the driver's routine and
    // the system calls, which `complete` and the send leave out.
    let _model = crate::accounting::InModel::enter();
    let Work { irp, operation, .. } = work;
    let (status, information) = if irp::is_cancelled(irp_ptr(irp)) {
        (STATUS_CANCELLED, 0)
    } else {
        operation()
    };
    complete_taken(irp, status, information);
}

/// Datagrams in the sends held back or queued, not completed yet (a `WskSendMessages` IRP
/// counts each datagram of its list).
#[must_use]
pub fn held_datagrams() -> usize {
    engine().queue.iter().map(|work| work.datagrams).sum()
}

/// IRPs held back ([`CompletionMode::Held`]) or queued for the worker, not completed yet.
#[must_use]
pub fn held_completions() -> usize {
    engine().queue.len()
}

/// Completes up to `max` held IRPs, oldest first, on the calling thread; returns how many.
#[allow(clippy::must_use_candidate, reason = "the count is informative")]
pub fn release_held(max: usize) -> usize {
    release_if(max, |_| true)
}

/// Like [`release_held`], but only while the machine is the one `booter` booted.
///
/// A helper releasing for one test's machine must not release the next test's, booted by
/// another thread of the same process once the first shuts down.
#[allow(clippy::must_use_candidate, reason = "the count is informative")]
pub fn release_held_for(booter: ThreadId, max: usize) -> usize {
    release_if(max, |engine| engine.booted_by == Some(booter))
}

fn release_if(max: usize, allowed: impl FnOnce(&Engine) -> bool) -> usize {
    let works: Vec<Work> = {
        let mut engine = engine();
        if !allowed(&engine) {
            return 0;
        }
        let take = max.min(engine.queue.len());
        engine.queue.drain(..take).collect()
    };
    let released = works.len();
    for work in works {
        run(work);
    }
    released
}

/// Completes the `index`-th held IRP (0 = oldest) on the calling thread, leaving the others
/// held; `false` if fewer are held. With [`crate::explore`], every order of completions.
#[allow(
    clippy::must_use_candidate,
    reason = "callers that know the index may ignore it"
)]
pub fn release_held_nth(index: usize) -> bool {
    let work = {
        let mut engine = engine();
        engine.queue.remove(index)
    };
    work.map(run).is_some()
}

/// Marks every queued IRP of `socket` cancelled (`Irp->Cancel`), leaving it queued: whoever
/// completes it later completes it `STATUS_CANCELLED` (a close the provider completes later,
/// [`crate::pend_closes`]).
pub(crate) fn mark_socket_cancelled(socket: usize) {
    let engine = engine();
    for work in engine.queue.iter().filter(|w| w.socket == socket) {
        irp::set_cancel(irp_ptr(work.irp));
    }
}

/// Completes, as cancelled, every queued IRP of `socket` (what closing a socket does).
pub(crate) fn cancel_socket(socket: usize) {
    let cancelled: VecDeque<Work> = {
        let mut engine = engine();
        let (matching, rest) = engine.queue.drain(..).partition(|w| w.socket == socket);
        engine.queue = rest;
        matching
    };
    for work in cancelled {
        irp::set_cancel(irp_ptr(work.irp));
        complete_taken(work.irp, STATUS_CANCELLED, 0);
    }
}

fn shuffle(items: &mut [Work], seed: &mut u64) {
    for i in (1..items.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = usize::try_from(*seed % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
}

fn worker(delay: Duration, batch: usize, order: Order) {
    let mut seed = match order {
        Order::Shuffled { seed } => seed | 1,
        _ => 1,
    };
    loop {
        let mut engine = engine();
        while engine.queue.is_empty() && !engine.stop {
            engine.worker_idle = true;
            engine = QUEUED
                .wait(engine)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            engine.worker_idle = false;
        }
        if engine.queue.is_empty() && engine.stop {
            return;
        }
        if !delay.is_zero() && !engine.stop {
            drop(engine);
            std::thread::sleep(delay);
            engine = self::engine();
        }
        let take = batch.max(1).min(engine.queue.len());
        let mut round: Vec<Work> = engine.queue.drain(..take).collect();
        drop(engine);
        match order {
            Order::Fifo => {}
            Order::Reverse => round.reverse(),
            Order::Shuffled { .. } => shuffle(&mut round, &mut seed),
        }
        for work in round {
            run(work);
        }
    }
}

/// Sets the mode for a new machine and starts its worker if it has one.
pub(crate) fn start(mode: CompletionMode) {
    {
        let mut engine = engine();
        engine.mode = mode;
        engine.queue.clear();
        engine.stop = false;
        engine.worker_idle = false;
        engine.booted_by = Some(std::thread::current().id());
        INLINE.store(mode == CompletionMode::Inline, Ordering::Release);
    }
    if let CompletionMode::Worker {
        delay,
        batch,
        order,
    } = mode
    {
        let handle = std::thread::Builder::new()
            .name("kmodel-completion".into())
            .spawn(move || worker(delay, batch, order))
            .ok();
        *WORKER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = handle;
    }
}

/// Completes whatever is still queued and stops the worker.
pub(crate) fn stop() {
    engine().stop = true;
    QUEUED.notify_all();
    let handle = WORKER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(handle) = handle {
        let _ = handle.join();
    }
    // Whatever a test held back completes now, as a machine going down would.
    release_held(usize::MAX);
    let mut engine = engine();
    engine.mode = CompletionMode::Inline;
    INLINE.store(true, Ordering::Release);
}
