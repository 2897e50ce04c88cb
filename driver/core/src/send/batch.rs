//! One send job (a `SEND` or `BENCH` request): `count` copies of one datagram, issued as WSK
//! calls of up to `batch` datagrams each, at most `depth` calls in flight, every buffer held
//! until its IRP completes.
//!
//! Ownership, msquic's shape with Rust-for-Linux's ownership rules:
//! - [`Datagram`]: the payload in a pooled buffer with its MDL chain, the `CMSGHDR` buffer and
//!   `SOCKADDR`, shared read-only by every call of the job.
//! - `Batch`: one per request, in memory the driver keeps for reuse ([`Sender`]); owns the
//!   datagram, a rundown reference on the socket and the pending IOCTL. Two reference counts:
//!   `work` (the submitter or pump, each WSK call in flight, a queued pump) and `refs` (the
//!   work as a whole, and the front door's cancel routine while the request is cancelable).
//!   Whoever drops `refs` to zero writes the response, completes the IOCTL and frees the batch.
//! - `SendUnit` (the socket's pool): one per WSK call; its IRP and `WSK_BUF_LIST` entries.
//!   Submission gives it to the IRP as completion context; the completion routine takes it back
//!   exactly once. A canceller may pin it meanwhile to call `IoCancelIrp`: the unit goes back
//!   to its pool only when both are done, so `IoCancelIrp` never sees an IRP reused for another
//!   call ("Cancelling IRPs you created").
//!
//! Who issues. Only code at `PASSIVE_LEVEL` makes WSK calls: the submitter (the request's own
//! dispatch), then the driver's work item ([`super::deferred`]). A completion routine never
//! does: "A WSK application should not call new WSK functions in the context of the
//! `IoCompletion` routine. Doing so may result in recursive calls and exhaust the kernel mode
//! stack. When executing at IRQL = `DISPATCH_LEVEL`, this can also lead to starvation of other
//! threads" ("Using IRPs with Winsock Kernel Functions"). A completion routine returns its
//! credit and, when more is to be issued and no pump runs, queues the job for the work item:
//! its work at `DISPATCH_LEVEL` is a bounded handful of steps whatever the count.
//!
//! The window: issuing takes a credit, completion gives it back. Exactly one thread issues at
//! a time (the "pump"): the submitter first, then the work item. A completion that arrives
//! inside the WSK call (the provider completing inline) only returns its credit, so issuing
//! never recurses on the kernel stack.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use wskudp_abi::{BenchApi, BenchResponse, SendResponse};

use super::Sender;
use super::datagram::Datagram;
use super::pool::{MAX_BATCH_U32, SendUnit};
use crate::cache::{Node, Pooled};
use crate::ddi::nt::{DEVICE_OBJECT, IRP, IoCancelIrp, NTSTATUS};
use crate::ddi::wsk::WSK_BUF_LIST;
use crate::dispatch::{IoctlRequest, Marked};
use crate::handle::HandleState;
use crate::pool::PoolBox;
use crate::sockets::SocketRef;
use crate::stats::Tally;
use crate::status::{
    STATUS_CANCELLED, STATUS_FILE_FORCED_CLOSED, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_MORE_PROCESSING_REQUIRED, STATUS_SUCCESS,
};
use crate::sync::SpinLock;
use crate::time::{self, Timer};

/// Most WSK calls one job keeps in flight.
pub(crate) const MAX_DEPTH_U32: u32 = 64;
/// [`MAX_DEPTH_U32`] as a length.
pub(crate) const MAX_DEPTH: usize = MAX_DEPTH_U32 as usize;
const _: () = assert!(MAX_DEPTH <= u64::BITS as usize);

/// `Batch::pump`: set while a thread holds the right to issue; the low bits count free credits.
const PUMPING: u32 = 1 << 31;

/// Which WSK function carries the datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// `WskSendTo`, one datagram per call.
    SendTo,
    /// `WskSendMessages`, up to `batch` datagrams per call (`WSK_BUF_LIST`); `WskSendTo` where
    /// the provider lacks it (before Windows 8).
    SendMessages,
}

/// How the job answers its request.
pub(crate) enum Answer {
    /// `SEND`: a [`SendResponse`] in the request's ABI version.
    Send {
        /// The request's ABI version: a version-1 response has no `datagrams_not_sent`.
        version: u32,
    },
    /// `BENCH`: a [`BenchResponse`], timed with the performance counter.
    Bench,
    /// `SEND_DIRECT`: no output buffer to write (it is the payload): the status a `SEND`
    /// response would carry, `IoStatus.Information` 0.
    Direct,
}

/// What a job sends, besides its datagram.
pub(crate) struct Plan {
    /// Datagrams to send.
    pub(crate) count: u64,
    /// The WSK function to use.
    pub(crate) api: Api,
    /// Datagrams per `WskSendMessages` call, 1..=[`MAX_BATCH`].
    pub(crate) batch: u32,
    /// WSK calls in flight, 1..=[`MAX_DEPTH`].
    pub(crate) depth: u32,
    /// Datagrams per second to pace to; 0: as fast as the window allows.
    pub(crate) rate: u64,
    /// How the request is answered.
    pub(crate) answer: Answer,
}

/// Pacing: the rate, and the timer that resumes issuing when the next call is due.
struct Pace {
    rate: u64,
    timer: Timer,
}

/// The units in flight, by slot, and which slots are free.
struct InFlight {
    units: [Option<NonNull<Node<SendUnit>>>; MAX_DEPTH],
    /// Bit `i` set: slot `i` is free.
    free: u64,
}

/// What a finished job completes its request with.
enum Reply {
    /// `STATUS_CANCELLED`, no output (a `SEND` cancelled before all was accounted for).
    Cancelled,
    /// A `SEND`'s response.
    Send(SendResponse),
    /// A `BENCH`'s response.
    Bench(BenchResponse),
    /// A `SEND_DIRECT`'s status.
    Direct(NTSTATUS),
}

/// Timing of a `BENCH` job, in performance-counter ticks.
#[derive(Default)]
struct Clock {
    started: AtomicU64,
    finished: AtomicU64,
    frequency: AtomicU64,
    /// The longest a completion routine of the job ran.
    longest_completion: AtomicU64,
    /// WSK calls made.
    calls: AtomicU64,
    /// The driver's allocations when the job started.
    allocations_before: AtomicU64,
}

/// One send job in progress.
///
/// # Invariants
/// - `refs` counts one reference for the work (dropped when `work` reaches zero) plus one
///   while the request is marked cancelable (dropped by whoever learns the cancel routine will
///   not run, or by the cancel routine); the batch is freed, and `request` completed, by
///   whoever brings it to zero. `request` is initialized until then.
/// - `work` counts the submitter's reference until it stops pumping, one per WSK call in
///   flight (held until its completion routine is done), one while the job is queued for the
///   work item, and a canceller's while it pins units.
/// - `pump` is `PUMPING` while exactly one thread holds the right to issue, plus the credits
///   not taken yet; credits plus calls in flight never exceed `depth`, so a slot in
///   `in_flight` is always free for a call being issued.
/// - `remaining` (datagrams not issued yet) is written only by the thread holding `PUMPING`.
/// - `handle` is the handle the request came through, alive until the request completes.
/// - `sender` points to the driver's send state, which outlives every socket.
/// - `socket` holds a rundown reference on the socket while `work` is above zero; the thread
///   that brings `work` to zero gives the payload buffer back to the socket's pool and then
///   drops it (nothing touches the socket after that).
/// - `home` is the cache node this batch lives in.
pub(crate) struct Batch {
    request: UnsafeCell<ManuallyDrop<IoctlRequest>>,
    refs: AtomicU32,
    work: AtomicU32,
    pump: AtomicU32,
    remaining: AtomicU64,
    count: u64,
    api: Api,
    /// Datagrams per `WskSendMessages` call.
    per_call: u32,
    /// The front door reported the request cancelled: issue nothing more.
    cancelled: AtomicBool,
    /// The request is marked cancelable (its cancel reference counts in `refs`).
    cancelable: AtomicBool,
    /// `WskSendMessages` calls were made (else `WskSendTo` only).
    used_send_messages: AtomicBool,
    in_flight: SpinLock<InFlight>,
    tally: Tally,
    first_error: AtomicI32,
    answer: Answer,
    clock: Clock,
    handle: NonNull<HandleState>,
    sender: NonNull<Sender>,
    /// The next job queued for the work item ([`super::deferred::Pumps`]).
    pub(super) next_queued: UnsafeCell<Option<NonNull<Self>>>,
    /// Pacing, until every datagram was issued: touched only by the thread holding `PUMPING`
    /// (and by `start`, before anyone else sees the batch). While set, the batch holds a work
    /// reference for it.
    pace: UnsafeCell<Option<Pace>>,
    datagram: UnsafeCell<Datagram>,
    socket: UnsafeCell<ManuallyDrop<SocketRef>>,
    home: NonNull<Node<BatchMemory>>,
}

// SAFETY: Counters are atomic, `in_flight` is behind a spin lock, `socket`, `handle` and
// `sender` are read-only, `datagram` is written only by whoever brings `work` to zero (after
// every reader is done), `next_queued` only under the work item's queue lock, and `request` only
// by the single thread that brings `refs` to zero (or, for marking and unmarking, by the
// submitter and the one that brings `work` to zero, which the front door's hooks allow
// concurrently with its cancel).
unsafe impl Sync for Batch {}
#[allow(
    clippy::non_send_fields_in_send_ty,
    reason = "the pointers are to driver state and pooled units, not thread-bound"
)]
// SAFETY: As above.
unsafe impl Send for Batch {}

/// Memory for one [`Batch`], kept by the driver for reuse.
pub(crate) struct BatchMemory(UnsafeCell<MaybeUninit<Batch>>);

impl BatchMemory {
    /// Fresh memory. IRQL: any.
    pub(crate) const fn new() -> Self {
        Self(UnsafeCell::new(MaybeUninit::uninit()))
    }
}

// SAFETY: The memory holds a Batch only while one is in progress; Batch is Send and Sync.
unsafe impl Send for BatchMemory {}
// SAFETY: As above.
unsafe impl Sync for BatchMemory {}

/// Starts `plan` for `datagram` on `socket`: the request completes when every datagram has
/// finished; the request's slot in `handle`'s and the socket's in-flight limits was taken by
/// the caller and is released at completion.
///
/// IRQL: `PASSIVE_LEVEL` (the submitter issues the first WSK calls).
pub(crate) fn start(
    sender: &Sender,
    datagram: Datagram,
    socket: SocketRef,
    handle: &HandleState,
    plan: Plan,
    request: IoctlRequest,
) {
    let depth = plan.depth.clamp(1, MAX_DEPTH_U32);
    let Ok(memory) = sender.batches.take(|| Ok(BatchMemory::new())) else {
        // Nothing was sent: the datagram's buffer goes back, the socket reference is let go.
        let mut datagram = datagram;
        datagram.release(socket.pool());
        socket.counters().requests.lower();
        drop(socket);
        sender.stats.counters.requests.lower();
        handle.sends.lower();
        request.complete(STATUS_INSUFFICIENT_RESOURCES, 0);
        return;
    };
    let node = PoolBox::into_raw(memory);
    let (payload_blocks, payload_bytes) = datagram.footprint();
    let (blocks, footprint) = (
        payload_blocks.saturating_add(1),
        size_of::<Batch>().saturating_add(payload_bytes),
    );
    let batch = Batch {
        request: UnsafeCell::new(ManuallyDrop::new(request)),
        // The work's reference, and the cancel routine's until known unneeded.
        refs: AtomicU32::new(2),
        // The submitter's, and pacing's while the job is paced.
        work: AtomicU32::new(if plan.rate > 0 { 2 } else { 1 }),
        pump: AtomicU32::new(PUMPING | depth),
        remaining: AtomicU64::new(plan.count),
        count: plan.count,
        api: plan.api,
        per_call: plan.batch.clamp(1, MAX_BATCH_U32),
        cancelled: AtomicBool::new(false),
        cancelable: AtomicBool::new(false),
        used_send_messages: AtomicBool::new(false),
        in_flight: SpinLock::new(InFlight {
            units: [None; MAX_DEPTH],
            free: u64::MAX,
        }),
        tally: Tally::default(),
        first_error: AtomicI32::new(STATUS_SUCCESS),
        answer: plan.answer,
        clock: Clock::default(),
        handle: NonNull::from(handle),
        sender: NonNull::from(sender),
        next_queued: UnsafeCell::new(None),
        pace: UnsafeCell::new(None),
        datagram: UnsafeCell::new(datagram),
        socket: UnsafeCell::new(ManuallyDrop::new(socket)),
        home: node,
    };
    // SAFETY: The node is ours (taken from the cache).
    let slot = unsafe { node.as_ref() }.0.get();
    // SAFETY: Its memory holds no batch; nothing else reaches it yet.
    let this = unsafe { &mut *slot }.write(batch);
    let this = NonNull::from(this);
    // SAFETY: The submitter's work reference keeps the batch alive.
    let batch = unsafe { this.as_ref() };
    if plan.rate > 0 {
        // SAFETY: `paced` takes the batch, alive while the timer exists: the pacing work
        // reference is given up only after the timer was deleted (`finish_pacing`).
        match unsafe { Timer::new(paced, this.as_ptr().cast()) } {
            // SAFETY: Nobody else sees the batch yet.
            Ok(timer) => unsafe {
                *batch.pace.get() = Some(Pace {
                    rate: plan.rate,
                    timer,
                });
            },
            Err(status) => {
                // No timer, no pacing: the job fails as a whole, nothing issued.
                batch.remaining.store(0, Ordering::Relaxed);
                batch.record(status, plan.count, 0);
                batch.work.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    // Charged to the socket until the work ends (`release_work`).
    batch.socket().stats().pool.charge(blocks, footprint);
    if matches!(batch.answer, Answer::Bench) {
        let (now, frequency) = time::ticks_and_frequency();
        batch.clock.frequency.store(frequency, Ordering::Relaxed);
        batch.clock.started.store(now, Ordering::Relaxed);
        batch
            .clock
            .allocations_before
            .store(super::allocations(), Ordering::Relaxed);
    }
    // SAFETY: `Batch::cancelled` takes the batch and its cancel reference, valid until it ran or
    // unmarking succeeded (`release_work`).
    match unsafe {
        batch
            .request()
            .mark_cancelable(Batch::cancelled, this.as_ptr().cast())
    } {
        Marked::Yes => batch.cancelable.store(true, Ordering::Release),
        Marked::AlreadyCancelled => {
            batch.cancelled.store(true, Ordering::SeqCst);
            // SAFETY: The cancel reference: no routine will run to drop it.
            unsafe { Batch::release(this) };
        }
        Marked::Unsupported => {
            // SAFETY: As above.
            unsafe { Batch::release(this) };
        }
    }
    Batch::pump(this);
    // SAFETY: The submitter's work reference, given up once.
    unsafe { Batch::release_work(this) };
}

impl Batch {
    /// The socket. Only for holders of a work reference (type invariant).
    fn socket(&self) -> &SocketRef {
        // SAFETY: The reference is alive while work is above zero, which the caller's work
        // reference guarantees; it is only read here.
        unsafe { &*self.socket.get() }
    }

    /// The datagram. Only for holders of a work reference (type invariant).
    fn datagram(&self) -> &Datagram {
        // SAFETY: Written only when work reaches zero (type invariant); read here under a work
        // reference.
        unsafe { &*self.datagram.get() }
    }

    const fn handle(&self) -> &HandleState {
        // SAFETY: The handle outlives its requests (type invariant).
        unsafe { self.handle.as_ref() }
    }

    const fn sender(&self) -> &Sender {
        // SAFETY: The driver's send state outlives every socket (type invariant).
        unsafe { self.sender.as_ref() }
    }

    fn request(&self) -> &IoctlRequest {
        // SAFETY: Initialized until `refs` reaches zero, and only read here (type invariant).
        unsafe { &*self.request.get() }
    }

    /// Records `n` datagrams' outcome, here, on its socket and driver-wide.
    /// IRQL: <= `DISPATCH_LEVEL`.
    fn record(&self, status: NTSTATUS, n: u64, bytes: usize) {
        if status < 0 {
            let _ = self.first_error.compare_exchange(
                STATUS_SUCCESS,
                status,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        self.tally.record_many(status, n, bytes);
        self.socket().stats().stats.record_many(status, n, bytes);
        self.sender().stats.record_many(status, n, bytes);
    }

    /// Gives back `n` datagrams taken off `remaining` for a call that was not made, and gives
    /// up every datagram not issued. Only the pumping thread calls this. IRQL: any.
    fn give_up_from_current(&self, n: u32) {
        self.remaining.fetch_add(u64::from(n), Ordering::AcqRel);
        self.give_up_remaining();
    }

    /// Counts every datagram not issued yet as not sent; nothing more will be issued.
    /// Only the pumping thread calls this. IRQL: any.
    fn give_up_remaining(&self) {
        let left = self.remaining.swap(0, Ordering::AcqRel);
        if left > 0 {
            self.tally.record_not_sent(left);
            self.socket().counters().tally.record_not_sent(left);
            self.sender().stats.counters.tally.record_not_sent(left);
        }
    }

    /// Whether nothing more may be issued: cancelled, or the socket closing or forced closed.
    fn must_stop(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
            || self.socket().socket().is_closing()
            || self.socket().is_forced_closed()
    }

    /// Whether a thread holding the right to issue has anything to do: datagrams to issue, a
    /// socket the provider forced closed to close, or a pacing timer to delete (at
    /// `PASSIVE_LEVEL`). Only for the thread holding `PUMPING`.
    fn wants_pump(&self) -> bool {
        let socket = self.socket();
        (socket.is_forced_closed() && !socket.socket().is_closing())
            || (self.remaining.load(Ordering::Acquire) > 0 && !self.must_stop())
            || self.is_paced()
    }

    /// Whether the job is still paced. Only for the thread holding `PUMPING`.
    fn is_paced(&self) -> bool {
        // SAFETY: Touched only by the thread holding PUMPING (field invariant).
        unsafe { (*self.pace.get()).is_some() }
    }

    /// How long until the next call is due, in 100 ns units, if it is not due yet: the call
    /// that starts with datagram `issued` is due `issued / rate` seconds after the start. Only
    /// for the thread holding `PUMPING`.
    fn pace_delay(&self) -> Option<u64> {
        // SAFETY: Touched only by the thread holding PUMPING (field invariant).
        let rate = unsafe { (*self.pace.get()).as_ref() }?.rate;
        let frequency = u128::from(self.clock.frequency.load(Ordering::Relaxed)).max(1);
        let issued = self
            .count
            .saturating_sub(self.remaining.load(Ordering::Acquire));
        let due = u128::from(self.clock.started.load(Ordering::Relaxed)).saturating_add(
            u128::from(issued)
                .saturating_mul(frequency)
                .checked_div(u128::from(rate))
                .unwrap_or(u128::MAX),
        );
        let now = u128::from(time::ticks());
        (now < due).then(|| {
            let ticks = due.saturating_sub(now).saturating_mul(10_000_000);
            u64::try_from(ticks.checked_div(frequency).unwrap_or(ticks)).unwrap_or(u64::MAX)
        })
    }

    /// Lets the pacing timer resume issuing when the next call is due: the timer takes a work
    /// reference and the right to issue, which its callback hands to the work item. Only for
    /// the thread holding `PUMPING`; `false` if the job is not paced.
    fn wait_for_pace(&self, delay: u64) -> bool {
        // SAFETY: Touched only by the thread holding PUMPING (field invariant).
        let Some(pace) = (unsafe { (*self.pace.get()).as_ref() }) else {
            return false;
        };
        self.work.fetch_add(1, Ordering::AcqRel);
        pace.timer.set(delay);
        true
    }

    /// Every datagram was issued (or given up): deletes the pacing timer, waiting for a
    /// callback still returning, and gives up pacing's work reference. Only for the thread
    /// holding `PUMPING`, at `PASSIVE_LEVEL`, with a work reference of its own.
    fn finish_pacing(this: NonNull<Self>) {
        // SAFETY: The caller's work reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        // SAFETY: Touched only by the thread holding PUMPING (field invariant).
        let pace = unsafe { (*batch.pace.get()).take() };
        if let Some(pace) = pace {
            drop(pace);
            // SAFETY: Pacing's work reference, given up once (the Option was taken once).
            unsafe { Self::release_work(this) };
        }
    }

    /// Adds one credit. If no thread holds the right to issue, the caller (a completion
    /// routine) takes it and, as it may not call WSK itself, hands it to the work item when
    /// there is anything to do, or lets it go. The caller owns a work reference.
    /// IRQL: <= `DISPATCH_LEVEL`.
    fn return_credit(this: NonNull<Self>) {
        // SAFETY: The caller's work reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        let previous = batch
            .pump
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                Some((state | PUMPING).saturating_add(1))
            })
            .unwrap_or(PUMPING);
        if previous & PUMPING != 0 {
            return;
        }
        loop {
            // This thread holds the right to issue.
            if batch.wants_pump() {
                // The queue's work reference: the caller's keeps the batch alive meanwhile.
                batch.work.fetch_add(1, Ordering::AcqRel);
                batch.sender().pumps.schedule(this);
                return;
            }
            if !Self::let_go(batch) {
                return;
            }
        }
    }

    /// Gives up what is left to issue and lets go of the right to issue. `true` if the caller
    /// holds it again and must look once more: a completion that saw it held meanwhile may
    /// have left work behind (a socket forced closed), and nobody else would see it.
    fn let_go(batch: &Self) -> bool {
        batch.give_up_remaining();
        batch.pump.fetch_and(!PUMPING, Ordering::AcqRel);
        batch.wants_pump() && batch.pump.fetch_or(PUMPING, Ordering::AcqRel) & PUMPING == 0
    }

    /// Issues calls while credits last, then lets go of the right to issue. The caller holds
    /// `PUMPING` and a work reference for the duration. IRQL: `PASSIVE_LEVEL` (the submitter,
    /// or the work item).
    pub(super) fn pump(this: NonNull<Self>) {
        // SAFETY: The caller's work reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        loop {
            if batch.socket().is_forced_closed() {
                // "Call WskCloseSocket as soon as possible" (WskSendTo page), from here: never
                // from a completion routine.
                batch.socket().force_close();
            }
            let state = batch.pump.load(Ordering::Acquire);
            if batch.remaining.load(Ordering::Acquire) == 0 {
                Self::finish_pacing(this);
            } else if state & !PUMPING != 0
                && !batch.must_stop()
                && let Some(delay) = batch.pace_delay()
                && batch.wait_for_pace(delay)
            {
                // The timer holds the right to issue now.
                return;
            }
            if state & !PUMPING == 0 {
                // No credit: stop; the completions in flight bring the credits back.
                if batch
                    .pump
                    .compare_exchange(state, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    continue;
                }
                // Left work nobody else would see (see `let_go`)? Then take the right back.
                if batch.wants_pump()
                    && batch.remaining.load(Ordering::Acquire) == 0
                    && batch.pump.fetch_or(PUMPING, Ordering::AcqRel) & PUMPING == 0
                {
                    continue;
                }
                return;
            }
            if batch
                .pump
                .compare_exchange(
                    state,
                    state.saturating_sub(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                continue;
            }
            if !Self::issue_next(this) {
                // Nothing was issued with the credit: give it back to this loop, unless
                // nothing is left to issue (then the credit is simply dropped).
                if batch.remaining.load(Ordering::Acquire) > 0 {
                    batch.pump.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
    }

    /// Issues the next call with a credit the pump took. `true` if a call went to WSK (its
    /// completion returns the credit). IRQL: <= `DISPATCH_LEVEL`.
    fn issue_next(this: NonNull<Self>) -> bool {
        // SAFETY: The pump's work reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        let remaining = batch.remaining.load(Ordering::Acquire);
        if remaining == 0 {
            return false;
        }
        if batch.must_stop() {
            batch.give_up_remaining();
            return false;
        }
        // Enter the socket's call gate first: from here until the WSK call returns the socket
        // is not closed under us.
        let call = match batch.socket().socket().send_call() {
            Ok(call) => call,
            Err(status) if status == STATUS_CANCELLED => {
                // The socket is closing: this datagram and the rest are not sent.
                batch.give_up_remaining();
                return false;
            }
            Err(status) => {
                batch.remaining.fetch_sub(1, Ordering::AcqRel);
                batch.record(status, 1, 0);
                return false;
            }
        };
        let messages = batch.api == Api::SendMessages && call.can_send_messages();
        let take = if messages {
            u64::from(batch.per_call).min(remaining)
        } else {
            1
        };
        // At most MAX_BATCH.
        let n = u32::try_from(take).unwrap_or(1);
        batch.remaining.fetch_sub(take, Ordering::AcqRel);
        let pool = batch.socket().pool();
        let unit = match pool.take_unit() {
            Ok(unit) => unit,
            Err(status) => {
                batch.record(status, u64::from(n), 0);
                return false;
            }
        };
        let Some((unit, list)) = Self::arm(this, unit, n) else {
            return false;
        };
        batch.work.fetch_add(1, Ordering::AcqRel);
        batch.socket().counters().datagrams.raise_by(n);
        batch.sender().stats.counters.datagrams.raise_by(n);
        batch
            .socket()
            .stats()
            .pool
            .charge(1, size_of::<Node<SendUnit>>());
        batch.clock.calls.fetch_add(1, Ordering::Relaxed);
        let irp = unit.irp().as_ptr();
        let buffer = unit.first_buffer();
        // Given up: the completion routine takes its reference back.
        let _ = PoolBox::into_raw(unit);
        let datagram = batch.datagram();
        let remote = datagram.remote();
        let control = datagram.control();
        if messages {
            batch.used_send_messages.store(true, Ordering::Relaxed);
            // SAFETY: The entries, the MDL chain, payload, remote address and control buffer
            // all live until the completion routine has run (the unit and the batch hold them);
            // the returned status is also the IRP's, which `send_complete` reads. The provider
            // has the function (checked above), so the IRP is issued.
            let _ = unsafe { call.send_messages(list, remote, control, irp) };
        } else {
            // SAFETY: As above, for the first entry's buffer.
            let _ = unsafe { call.send_to(buffer, remote, control, irp) };
        }
        // `call` was consumed: the gate is left once the WSK call returned.
        true
    }

    /// Prepares `unit` for a call of `n` datagrams, places it in a free slot (so a cancel finds
    /// it) and sets its completion routine: then it must be issued. `None` if the request was
    /// cancelled meanwhile or no routine could be set (the datagrams are counted, the unit goes
    /// back). The caller holds the right to issue and a work reference. IRQL: <= `DISPATCH_LEVEL`.
    fn arm(
        this: NonNull<Self>,
        unit: Pooled<SendUnit>,
        n: u32,
    ) -> Option<(Pooled<SendUnit>, *mut WSK_BUF_LIST)> {
        // SAFETY: The caller's work reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        let datagram = batch.datagram();
        // SAFETY: The unit was just taken from the pool; the datagram's chain and buffer live
        // until work reaches zero, after this call's completion.
        let list =
            unsafe { unit.prepare(this.cast(), datagram.head(), datagram.len(), n as usize) };
        let raw = NonNull::from(&*unit);
        // Take a free slot (there is one: a credit was taken).
        let placed = {
            let mut in_flight = batch.in_flight.lock_exclusive();
            let InFlight { units, free } = &mut *in_flight;
            let index = free.trailing_zeros() as usize;
            units.get_mut(index).map(|slot| {
                *slot = Some(raw);
                *free &= !(1_u64 << index);
                index
            })
        };
        let Some(index) = placed else {
            batch.record(STATUS_INSUFFICIENT_RESOURCES, u64::from(n), 0);
            batch.socket().pool().give_unit(unit);
            return None;
        };
        // SAFETY: Ours, not issued.
        unsafe { unit.set_slot(index) };
        if batch.cancelled.load(Ordering::SeqCst) {
            // Cancelled meanwhile: a canceller may have pinned the unit already.
            Self::unplace(batch, index);
            batch.give_up_from_current(n);
            Self::abandon(batch, unit);
            return None;
        }
        // SAFETY: `send_complete` takes the unit back exactly once and returns
        // STATUS_MORE_PROCESSING_REQUIRED; it runs at <= DISPATCH_LEVEL on any thread. The unit
        // stays at this address (pool) until then.
        let armed = unsafe {
            unit.irp().set_completion(
                batch.socket().socket().device(),
                send_complete,
                PoolBox::as_ptr(&unit).cast(),
            )
        };
        if let Err(status) = armed {
            // Nothing was set: the unit is still ours, and nothing was issued.
            Self::unplace(batch, index);
            batch.record(status, u64::from(n), 0);
            Self::abandon(batch, unit);
            return None;
        }
        Some((unit, list))
    }

    /// Empties slot `index`. IRQL: <= `DISPATCH_LEVEL`.
    fn unplace(batch: &Self, index: usize) {
        let mut in_flight = batch.in_flight.lock_exclusive();
        if let Some(slot) = in_flight.units.get_mut(index) {
            *slot = None;
            in_flight.free |= 1_u64 << index;
        }
    }

    /// Gives back a unit that never went to WSK, once a canceller that may have pinned it is
    /// done. The caller holds a work reference. IRQL: <= `DISPATCH_LEVEL`.
    fn abandon(batch: &Self, unit: Pooled<SendUnit>) {
        if unit.unpin() {
            batch.socket().pool().give_unit(unit);
        } else {
            // A canceller holds a pin: it gives the unit back when it unpins.
            let _ = PoolBox::into_raw(unit);
        }
    }

    /// Drops a work reference; the last one ends the work: the payload buffer goes back to the
    /// socket's pool, the socket is let go, and the request stops being cancelable.
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Safety
    /// The caller owns one work reference, which it gives up.
    pub(super) unsafe fn release_work(this: NonNull<Self>) {
        // SAFETY: The caller's work reference keeps the batch alive until the decrement.
        let batch = unsafe { this.as_ref() };
        if batch.work.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        if matches!(batch.answer, Answer::Bench) {
            batch.clock.finished.store(time::ticks(), Ordering::Relaxed);
        }
        // Nothing issues or completes on the socket any more: let it go now, not when the
        // request completes. The front door's cancel callback may still be due, and KMDF holds
        // EvtRequestCancel back while another thread is in the queue's dispatch loop
        // (fxioqueue.cpp:4632, fxioqueue.hpp:1030-1038), e.g. a CLOSE_SOCKET waiting for this
        // very reference.
        batch.socket().counters().requests.lower();
        // SAFETY: Work reached zero here, once: no send reads the datagram any more.
        let datagram = unsafe { &mut *batch.datagram.get() };
        let (payload_blocks, payload_bytes) = datagram.footprint();
        let footprint = size_of::<Self>().saturating_add(payload_bytes);
        datagram.release(batch.socket().pool());
        // The socket is let go here, so its pool charge goes now too: the batch only waits
        // to complete the request.
        batch
            .socket()
            .stats()
            .pool
            .discharge(payload_blocks.saturating_add(1), footprint);
        // SAFETY: Work reached zero here, once: nobody else reads the cell any more.
        let socket = unsafe { &mut *batch.socket.get() };
        // SAFETY: The last use of the socket reference (type invariant); dropped once.
        unsafe { ManuallyDrop::drop(socket) };
        if batch.cancelable.load(Ordering::Acquire) && batch.request().unmark_cancelable() {
            // The cancel routine will not run: its reference is ours to drop.
            // SAFETY: The cancel reference, given up once (the routine will not).
            unsafe { Self::release(this) };
        }
        // SAFETY: The work's reference, given up once (work reached zero once).
        unsafe { Self::release(this) };
    }

    /// Drops one reference; the last one completes the request and frees the batch.
    ///
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Safety
    /// `this` must come from [`start`], and the caller must own one of its `refs` references,
    /// which it gives up.
    unsafe fn release(this: NonNull<Self>) {
        // SAFETY: The caller's reference keeps the batch alive until the decrement.
        let previous = unsafe { this.as_ref() }.refs.fetch_sub(1, Ordering::AcqRel);
        if previous != 1 {
            return;
        }
        // SAFETY: The count reached zero: no other reference exists, so the batch is taken out
        // of its memory here, once (type invariant).
        let batch = unsafe { this.as_ptr().read() };
        let home = batch.home;
        let sender = batch.sender;
        let (request, reply) = batch.answer();
        // Back to the driver's cache before the request completes: once it has, nothing keeps
        // the driver loaded (its handle may close and the driver unload at once).
        // SAFETY: The memory came from the driver's cache (`start`) and holds no batch any more.
        let memory = unsafe { PoolBox::from_raw(home, crate::pool::TAG_BATCH) };
        // SAFETY: The driver's send state outlives every pending request (type invariant).
        unsafe { sender.as_ref() }.batches.give(memory);
        match reply {
            Reply::Cancelled => request.complete(STATUS_CANCELLED, 0),
            Reply::Send(response) => request.complete_with_response(&response),
            Reply::Bench(response) => request.complete_with_response(&response),
            Reply::Direct(status) => request.complete(status, 0),
        }
    }

    /// The request and what to complete it with; consumes the batch.
    fn answer(self) -> (IoctlRequest, Reply) {
        let tally = self.tally.snapshot();
        let mut status = self.first_error.load(Ordering::Relaxed);
        if status == STATUS_SUCCESS && tally.datagrams_not_sent > 0 {
            // Nothing failed, but not everything was sent: the request or its socket was
            // closed or cancelled first.
            status = STATUS_CANCELLED;
        }
        let cancelled = self.cancelled.load(Ordering::Acquire)
            && (tally.datagrams_not_sent > 0 || tally.datagrams_failed > 0);
        self.sender().stats.counters.requests.lower();
        self.handle().sends.lower();
        // The datagram was released and the socket dropped when the work ended.
        let Self {
            request,
            answer,
            count,
            clock,
            used_send_messages,
            ..
        } = self;
        let request = ManuallyDrop::into_inner(request.into_inner());
        let reply = match answer {
            Answer::Send { .. } | Answer::Direct if cancelled => Reply::Cancelled,
            Answer::Direct => Reply::Direct(status),
            Answer::Send { version } => {
                let not_sent = count_u32(tally.datagrams_not_sent);
                Reply::Send(SendResponse {
                    status,
                    datagrams_sent: count_u32(tally.datagrams_sent),
                    datagrams_failed: count_u32(tally.datagrams_failed),
                    datagrams_not_sent: if version >= 2 { not_sent } else { 0 },
                    bytes_sent: tally.bytes_sent,
                })
            }
            Answer::Bench => {
                let api = if used_send_messages.into_inner() {
                    BenchApi::SendMessages
                } else {
                    BenchApi::SendTo
                };
                Reply::Bench(BenchResponse {
                    status,
                    api: api as u32,
                    datagrams: count,
                    datagrams_sent: tally.datagrams_sent,
                    datagrams_failed: tally.datagrams_failed,
                    datagrams_not_sent: tally.datagrams_not_sent,
                    bytes_sent: tally.bytes_sent,
                    wsk_calls: clock.calls.into_inner(),
                    ticks: clock
                        .finished
                        .into_inner()
                        .saturating_sub(clock.started.into_inner()),
                    frequency: clock.frequency.into_inner(),
                    longest_completion_ticks: clock.longest_completion.into_inner(),
                    allocations: super::allocations()
                        .saturating_sub(clock.allocations_before.into_inner()),
                })
            }
        };
        (request, reply)
    }

    /// The front door's cancel routine: issue nothing more, and cancel every WSK IRP in flight.
    /// IRQL: <= `DISPATCH_LEVEL`.
    ///
    /// # Safety
    /// `cookie` is the batch given to `mark_cancelable`, whose cancel reference this call owns
    /// and gives up.
    unsafe fn cancelled(cookie: *mut c_void) {
        let Some(this) = NonNull::new(cookie.cast::<Self>()) else {
            return;
        };
        // SAFETY: The cancel reference keeps the batch alive.
        let batch = unsafe { this.as_ref() };
        batch.cancelled.store(true, Ordering::SeqCst);
        // A work reference while units are pinned: a pinned unit may outlive its completion,
        // and goes back to the socket's pool, which the work reference keeps alive. None is
        // taken once the work ended: nothing is in flight then.
        let working = batch
            .work
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |work| {
                (work > 0).then(|| work.saturating_add(1))
            })
            .is_ok();
        if working {
            // Pin what is in flight, then cancel outside the lock: a provider may complete the
            // IRP from inside IoCancelIrp, and the completion routine takes the same lock.
            let mut pinned: [Option<NonNull<Node<SendUnit>>>; MAX_DEPTH] = [None; MAX_DEPTH];
            {
                let in_flight = batch.in_flight.lock_exclusive();
                for (pin, slot) in pinned.iter_mut().zip(in_flight.units.iter()) {
                    if let Some(unit) = *slot {
                        // SAFETY: A unit in a slot is alive (its completion removes it under
                        // this lock before dropping its reference).
                        unsafe { unit.as_ref() }.pin();
                        *pin = Some(unit);
                    }
                }
            }
            for unit in pinned.into_iter().flatten() {
                // SAFETY: The pin keeps the unit, and its IRP, out of the pool.
                let irp = unsafe { unit.as_ref() }.irp().as_ptr();
                // SAFETY: The pin keeps the IRP allocated and not reused; IoCancelIrp may be
                // called at <= DISPATCH_LEVEL on an IRP in flight or already completed.
                unsafe {
                    IoCancelIrp(irp);
                }
                // SAFETY: The pin's reference, given up once.
                if unsafe { unit.as_ref() }.unpin() {
                    // SAFETY: The last reference: the unit comes back to us.
                    let unit = unsafe { PoolBox::from_raw(unit, crate::pool::TAG_UNIT) };
                    batch.socket().pool().give_unit(unit);
                }
            }
            // SAFETY: The work reference taken above, given up once.
            unsafe { Self::release_work(this) };
        }
        // SAFETY: The cancel reference, given up once.
        unsafe { Self::release(this) };
    }
}

/// The pacing timer's callback: the next call is due, so the timer's right to issue and work
/// reference go to the work item. IRQL: `DISPATCH_LEVEL`.
unsafe extern "system" fn paced(_timer: crate::ddi::nt::PEX_TIMER, context: *mut c_void) {
    if let Some(this) = NonNull::new(context.cast::<Batch>()) {
        // SAFETY: The timer's work reference (taken when it was set) keeps the batch alive;
        // it becomes the queue's.
        unsafe { this.as_ref() }.sender().pumps.schedule(this);
    }
}

/// A request's datagram count, which the ABI bounds to `MAX_COUNT` for `SEND`.
fn count_u32(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Completion routine of every WSK call the send path makes.
///
/// IRQL: <= `DISPATCH_LEVEL`, arbitrary thread. Bounded work: no WSK call, a handful of atomic
/// steps and two short spin-locked sections.
unsafe extern "system" fn send_complete(
    _device: *const DEVICE_OBJECT,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    let Some(node) = NonNull::new(context.cast::<Node<SendUnit>>()) else {
        return STATUS_MORE_PROCESSING_REQUIRED;
    };
    // SAFETY: `context` is the unit given to this IRP by `issue_next`; its IRP reference keeps
    // it out of the pool until released below, once (the IRP completes once).
    let unit = unsafe { node.as_ref() };
    let (user, n) = unit.current();
    let result = unit.irp().io_result();
    let index = unit.slot();
    let Some(this) = user.map(NonNull::cast::<Batch>) else {
        return STATUS_MORE_PROCESSING_REQUIRED;
    };
    // SAFETY: The call's work reference keeps the batch alive.
    let batch = unsafe { this.as_ref() };
    // A BENCH times its own completion routines: the driver's figure for the longest run of
    // work at DISPATCH_LEVEL (the model measures it independently).
    let entered = matches!(batch.answer, Answer::Bench).then(time::ticks);
    Batch::unplace(batch, index);
    batch
        .socket()
        .stats()
        .pool
        .discharge(1, size_of::<Node<SendUnit>>());
    if unit.unpin() {
        // SAFETY: The IRP's reference was the last: the unit comes back to us.
        let unit = unsafe { PoolBox::from_raw(node, crate::pool::TAG_UNIT) };
        batch.socket().pool().give_unit(unit);
    }
    batch.record(result.status, u64::from(n), result.information);
    batch.socket().counters().datagrams.lower_by(n);
    batch.sender().stats.counters.datagrams.lower_by(n);
    if result.status == STATUS_FILE_FORCED_CLOSED {
        // The socket is closed by whoever issues next (never from here: no WSK call in a
        // completion routine).
        batch.socket().mark_forced_closed();
    }
    Batch::return_credit(this);
    if let Some(entered) = entered {
        let ran = time::ticks().saturating_sub(entered);
        batch
            .clock
            .longest_completion
            .fetch_max(ran, Ordering::Relaxed);
    }
    // SAFETY: The call's work reference, given up once.
    unsafe { Batch::release_work(this) };
    // The IRP is the unit's (reused, freed with the pool): stop the I/O manager from touching it.
    STATUS_MORE_PROCESSING_REQUIRED
}
