//! `ExAllocateTimer` / `ExSetTimer` / `ExCancelTimer` / `ExDeleteTimer` (Windows 8.1 and later),
//! with a timer thread that runs expired callbacks at `DISPATCH_LEVEL`, and the rules the pages
//! state:
//!
//! - `ExAllocateTimer` (IRQL <= `DISPATCH_LEVEL`): "The `EX_TIMER_HIGH_RESOLUTION` and
//!   `EX_TIMER_NO_WAKE` flag bits are mutually exclusive. If the caller sets both [...] the
//!   routine bug checks".
//! - `ExSetTimer` (IRQL <= `DISPATCH_LEVEL`): "The `DueTime` parameter for a high-resolution
//!   timer must be a relative time (negative value), or the routine bug checks"; it cancels a
//!   pending expiry first; a period of 0 is a one-shot timer.
//! - `ExDeleteTimer`: "If the caller sets Wait to TRUE, Cancel must also be TRUE; otherwise, a
//!   bug check occurs"; with `Wait`, IRQL <= `APC_LEVEL`, and it waits "for any callback to a
//!   driver-implemented `ExTimerCallback` routine to finish" ("Deleting a System-Allocated Timer
//!   Object").
//!
//! A timer still allocated when the machine shuts down is a leak. Only one-shot timers are
//! modelled (a period is refused as not modelled).

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use windows_sys::Wdk::Foundation::PEX_TIMER;
use windows_sys::Wdk::System::SystemServices::{
    _EXT_SET_PARAMETERS_V0, EX_TIMER_HIGH_RESOLUTION, EXT_DELETE_PARAMETERS, PEXT_CALLBACK,
};
use wskudp_core::ddi::nt::ExtCallback;

use crate::faults::{self, Site};
use crate::irql::{self, APC_LEVEL, DISPATCH_LEVEL};
use crate::state;

/// `EX_TIMER_NO_WAKE` (wdm.h).
const EX_TIMER_NO_WAKE: u32 = 8;

struct TimerRecord {
    callback: ExtCallback,
    context: usize,
    high_resolution: bool,
    due: Option<Instant>,
    /// Its callback is running now.
    running: bool,
    /// Deleted without waiting while its callback ran: freed when the callback returns.
    deleted: bool,
}

#[derive(Default)]
struct Timers {
    live: HashMap<usize, TimerRecord>,
    stop: bool,
    thread: Option<JoinHandle<()>>,
}

static TIMERS: LazyLock<Mutex<Timers>> = LazyLock::new(|| Mutex::new(Timers::default()));
static CHANGED: Condvar = Condvar::new();

fn timers() -> MutexGuard<'static, Timers> {
    TIMERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What `ExAllocateTimer` returns: an address only the model interprets.
#[repr(C)]
struct TimerMemory {
    _tag: u64,
}

/// `ExAllocateTimer` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// `callback` must accept `context` at `DISPATCH_LEVEL` until the timer is deleted.
#[unsafe(export_name = "ExAllocateTimer")]
pub(crate) unsafe extern "system" fn ex_allocate_timer(
    callback: PEXT_CALLBACK,
    context: *const c_void,
    attributes: u32,
) -> PEX_TIMER {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("ExAllocateTimer", DISPATCH_LEVEL);
    if attributes & EX_TIMER_HIGH_RESOLUTION != 0 && attributes & EX_TIMER_NO_WAKE != 0 {
        state::bugcheck(
            "ExAllocateTimerFlags",
            "ExAllocateTimer with EX_TIMER_HIGH_RESOLUTION and EX_TIMER_NO_WAKE (ExAllocateTimer page: the routine bug checks)",
        );
    }
    let Some(callback) = callback else {
        state::violation(
            "TimerNotModelled",
            "ExAllocateTimer without a callback is not modelled".into(),
        );
        return 0;
    };
    if faults::should_fail(Site::Pool) {
        return 0;
    }
    // SAFETY: Restoring the EXT_CALLBACK parameter list PEXT_CALLBACK erases.
    let callback =
        unsafe { std::mem::transmute::<unsafe extern "system" fn(), ExtCallback>(callback) };
    let memory = Box::into_raw(Box::new(TimerMemory { _tag: 0 }));
    let key = memory.expose_provenance();
    timers().live.insert(
        key,
        TimerRecord {
            callback,
            context: context.expose_provenance(),
            high_resolution: attributes & EX_TIMER_HIGH_RESOLUTION != 0,
            due: None,
            running: false,
            deleted: false,
        },
    );
    key.cast_signed()
}

/// `ExSetTimer` (IRQL <= `DISPATCH_LEVEL`): `TRUE` if it cancelled a pending expiry.
///
/// # Safety
/// `timer` must come from `ExAllocateTimer`.
#[unsafe(export_name = "ExSetTimer")]
pub(crate) unsafe extern "system" fn ex_set_timer(
    timer: PEX_TIMER,
    due_time: i64,
    period: i64,
    _parameters: *const _EXT_SET_PARAMETERS_V0,
) -> bool {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("ExSetTimer", DISPATCH_LEVEL);
    let key = timer.cast_unsigned();
    let mut timers = timers();
    let Some(record) = timers.live.get_mut(&key) else {
        drop(timers);
        state::violation(
            "TimerUnknown",
            format!("ExSetTimer({key:#x}) of a timer not allocated (or deleted)"),
        );
        return false;
    };
    if record.high_resolution && due_time >= 0 {
        drop(timers);
        state::bugcheck(
            "ExSetTimerAbsolute",
            "ExSetTimer of a high-resolution timer with an absolute due time (ExSetTimer page: it must be relative, negative, or the routine bug checks)",
        );
    }
    if period != 0 {
        drop(timers);
        state::violation(
            "TimerNotModelled",
            "ExSetTimer with a period is not modelled".into(),
        );
        return false;
    }
    let after = Duration::from_nanos(due_time.unsigned_abs().saturating_mul(100));
    let cancelled = record.due.replace(Instant::now() + after).is_some();
    if timers.thread.is_none() && !timers.stop {
        timers.thread = std::thread::Builder::new()
            .name("kmodel-timers".into())
            .spawn(run)
            .ok();
    }
    drop(timers);
    CHANGED.notify_all();
    cancelled
}

/// `ExCancelTimer` (IRQL <= `DISPATCH_LEVEL`): `TRUE` if it cancelled a pending expiry.
///
/// # Safety
/// `timer` must come from `ExAllocateTimer`.
#[unsafe(export_name = "ExCancelTimer")]
pub(crate) unsafe extern "system" fn ex_cancel_timer(
    timer: PEX_TIMER,
    _parameters: *const c_void,
) -> bool {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("ExCancelTimer", DISPATCH_LEVEL);
    timers()
        .live
        .get_mut(&timer.cast_unsigned())
        .is_some_and(|record| record.due.take().is_some())
}

/// `ExDeleteTimer`: cancels (with `cancel`), waits for a running callback (with `wait`, at
/// IRQL <= `APC_LEVEL`), and deletes. `TRUE` if it cancelled a pending expiry.
///
/// # Safety
/// `timer` must come from `ExAllocateTimer`.
#[unsafe(export_name = "ExDeleteTimer")]
pub(crate) unsafe extern "system" fn ex_delete_timer(
    timer: PEX_TIMER,
    cancel: bool,
    wait: bool,
    _parameters: *const EXT_DELETE_PARAMETERS,
) -> bool {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most(
        "ExDeleteTimer",
        if wait { APC_LEVEL } else { DISPATCH_LEVEL },
    );
    if wait && !cancel {
        state::bugcheck(
            "ExDeleteTimerWaitWithoutCancel",
            "ExDeleteTimer with Wait and without Cancel (ExDeleteTimer page: a bug check occurs)",
        );
    }
    let key = timer.cast_unsigned();
    let mut timers = timers();
    let Some(record) = timers.live.get_mut(&key) else {
        drop(timers);
        state::violation(
            "TimerUnknown",
            format!("ExDeleteTimer({key:#x}) of a timer not allocated (or deleted twice)"),
        );
        return false;
    };
    let cancelled = cancel && record.due.take().is_some();
    if !cancel && record.due.is_some() {
        drop(timers);
        state::violation(
            "TimerNotModelled",
            "ExDeleteTimer without Cancel of a pending timer is not modelled".into(),
        );
        return false;
    }
    if wait {
        while timers.live.get(&key).is_some_and(|record| record.running) {
            timers = CHANGED
                .wait(timers)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
    // Without Wait a running callback finishes first (the kernel frees the timer after it):
    // the record goes when it returns.
    let running = timers.live.get(&key).is_some_and(|record| record.running);
    if !running {
        timers.live.remove(&key);
        // SAFETY: Allocated by ex_allocate_timer, freed once (just untracked).
        drop(unsafe { Box::from_raw(std::ptr::with_exposed_provenance_mut::<TimerMemory>(key)) });
    } else if let Some(record) = timers.live.get_mut(&key) {
        record.deleted = true;
    }
    cancelled
}

/// The timer thread: runs each callback when its timer expires, at `DISPATCH_LEVEL`.
fn run() {
    let mut timers = timers();
    loop {
        if timers.stop {
            return;
        }
        let now = Instant::now();
        let expired = timers
            .live
            .iter()
            .filter(|(_, record)| record.due.is_some_and(|due| due <= now))
            .map(|(key, _)| *key)
            .next();
        if let Some(key) = expired {
            let Some(record) = timers.live.get_mut(&key) else {
                continue;
            };
            record.due = None;
            record.running = true;
            let (callback, context) = (record.callback, record.context);
            drop(timers);
            crate::accounting::outside(|| {
                irql::at_dispatch("timer callback", || {
                    // SAFETY: The driver's callback with its context, as the kernel calls it.
                    unsafe {
                        callback(
                            key.cast_signed(),
                            std::ptr::with_exposed_provenance_mut(context),
                        );
                    }
                });
            });
            timers = self::timers();
            if let Some(record) = timers.live.get_mut(&key) {
                record.running = false;
                if record.deleted {
                    timers.live.remove(&key);
                    // SAFETY: Allocated by ex_allocate_timer; deleted while its callback ran,
                    // freed once, now.
                    drop(unsafe {
                        Box::from_raw(std::ptr::with_exposed_provenance_mut::<TimerMemory>(key))
                    });
                }
            }
            CHANGED.notify_all();
            continue;
        }
        let next = timers.live.values().filter_map(|record| record.due).min();
        timers = match next {
            Some(due) => {
                CHANGED
                    .wait_timeout(timers, due.saturating_duration_since(now))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
            None => CHANGED
                .wait(timers)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        };
    }
}

/// Forgets everything (a new machine).
pub(crate) fn reset() {
    let mut timers = timers();
    timers.live.clear();
    timers.stop = false;
}

/// Stops the timer thread; returns the timers still allocated (leaks).
pub(crate) fn stop() -> usize {
    let thread = {
        let mut timers = timers();
        timers.stop = true;
        timers.thread.take()
    };
    CHANGED.notify_all();
    if let Some(thread) = thread {
        let _ = thread.join();
    }
    timers().live.len()
}
