//! Timers and spin locks: `WdfTimerCreate` / `Start` / `Stop` / `GetParentObject`
//! (`shared/core/fxtimerapi.cpp`, `shared/core/fxtimer.cpp`) and `WdfSpinLockCreate` /
//! `Acquire` / `Release` (`shared/support/fxspinlockapi.cpp`, `shared/support/fxspinlock.cpp`).
//!
//! A timer is a kernel timer whose DPC calls `EvtTimerFunc` at `DISPATCH_LEVEL` when it is
//! due, and again every `Period` ms for a periodic one (`FxTimer::_FxTimerExtCallbackThunk`,
//! `fxtimer.cpp:405-450`); a passive-level timer's callback runs from a work item at
//! `PASSIVE_LEVEL` instead. The model's DPC is a thread per timer. A spin lock raises to
//! `DISPATCH_LEVEL` and, with the verifier on, records its owner (`FxVerifierLock`:
//! `fxspinlock.cpp:57-144`).

use std::collections::HashMap;
use std::thread::ThreadId;
use std::time::{Duration, Instant, SystemTime};

use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INFO_LENGTH_MISMATCH, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER,
    STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
};
use wskudp_wdf_decls::{
    _WDF_EXECUTION_LEVEL, BOOLEAN, LONGLONG, PFN_WDF_TIMER, PWDF_DRIVER_GLOBALS,
    PWDF_OBJECT_ATTRIBUTES, PWDF_TIMER_CONFIG, STATUS_WDF_PARENT_NOT_SPECIFIED,
    WDF_OBJECT_ATTRIBUTES, WDFOBJECT, WDFSPINLOCK, WDFTIMER,
};

use super::objects::{Kind, attributes_size, handle_arg, parent_of, validate_attributes};
use super::{above_passive, check_globals, framework, null_parameter, pointer, violation};
use crate::irql::{self, DISPATCH_LEVEL, PASSIVE_LEVEL};
use crate::state;

/// `sizeof(WDF_TIMER_CONFIG)` and its `V1_7` / `V1_11` predecessors on x64
/// (`shared/inc/private/common/fxversionedstructures.h:683-722`).
const TIMER_CONFIG_SIZE: u32 = 40;
const TIMER_CONFIG_SIZE_V1_7: u32 = 24;
const TIMER_CONFIG_SIZE_V1_11: u32 = 32;
const _: () =
    assert!(TIMER_CONFIG_SIZE as usize == size_of::<wskudp_wdf_decls::WDF_TIMER_CONFIG>());
/// How long a thread may spin at `DISPATCH_LEVEL` on a spin lock before the model calls it the
/// DPC watchdog's bugcheck (0x133 `DPC_WATCHDOG_VIOLATION`): the lock's owner will never let
/// go.
const SPIN_WATCHDOG: Duration = Duration::from_secs(20);
/// 100 ns intervals between 1601-01-01 and 1970-01-01 (an absolute `DueTime`'s epoch).
const EPOCH_1601_TO_1970: u64 = 116_444_736_000_000_000;

/// One timer.
pub(crate) struct TimerState {
    callback: PFN_WDF_TIMER,
    /// Zero for a one-shot timer.
    period: Duration,
    parent: usize,
    /// `WdfExecutionLevelPassive`: the callback runs from a work item (`fxtimer.cpp:220-222`).
    passive: bool,
    /// When the timer fires next, if it is in the system's timer queue.
    due: Option<Instant>,
    /// The thread running the callback (`m_CallbackThread`, `fxtimer.cpp:320-348`).
    callback_thread: Option<ThreadId>,
    /// A `WdfTimerStop(Wait)` in progress (`m_StopThread`).
    stopping: Option<ThreadId>,
    /// A start the stop made the timer ignore (`m_StartAborted`).
    start_aborted: bool,
    dpc_started: bool,
}

/// Live timers.
#[derive(Default)]
pub(crate) struct Timers {
    map: HashMap<usize, TimerState>,
}

/// One spin lock.
struct LockState {
    owner: Option<ThreadId>,
    /// The IRQL to restore at release (`FxSpinLock::m_Irql`).
    irql: u8,
}

/// Live spin locks.
#[derive(Default)]
pub(crate) struct SpinLocks {
    map: HashMap<usize, LockState>,
}

/// The nearest ancestor of `object` (itself included) that is a device or a queue: what
/// `FxDeviceBase::_SearchForDevice` looks for (`shared/core/fxdevicebase.cpp:214-300`).
fn callbacks_ancestor(mut object: usize) -> Option<usize> {
    let fx = framework();
    loop {
        let o = fx.objects.get(object)?;
        if matches!(o.kind, Kind::Device | Kind::Queue) {
            return Some(object);
        }
        object = o.parent?;
    }
}

/// `WdfTimerCreate` (`fxtimerapi.cpp:42-198`, `FxTimer::Initialize` `fxtimer.cpp:120-317`).
#[allow(
    clippy::too_many_lines,
    reason = "every check of WdfTimerCreate, in its order"
)]
pub(crate) unsafe extern "C" fn wdf_timer_create(
    globals: PWDF_DRIVER_GLOBALS,
    config: PWDF_TIMER_CONFIG,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    timer_out: *mut WDFTIMER,
) -> NTSTATUS {
    const API: &str = "WdfTimerCreate";
    if !check_globals(globals, API) {
        return STATUS_INVALID_PARAMETER;
    }
    // A timer needs a parent (FX_VALIDATE_OPTION_PARENT_REQUIRED, fxtimerapi.cpp:89-95).
    // SAFETY: Null or the driver's attributes.
    let given = unsafe { attributes.as_ref() };
    let parent = match given {
        None => None,
        Some(given) => {
            if let Err(status) = attributes_size(API, given) {
                return status;
            }
            match parent_of(API, attributes) {
                Ok(parent) => parent,
                Err(status) => return status,
            }
        }
    };
    let Some(parent) = parent else {
        violation(
            "WdfTimerParentRequired",
            format!(
                "{API}: no WDF_OBJECT_ATTRIBUTES.ParentObject: STATUS_WDF_PARENT_NOT_SPECIFIED"
            ),
        );
        return STATUS_WDF_PARENT_NOT_SPECIFIED;
    };
    if config.is_null() || timer_out.is_null() {
        null_parameter(API, "Config or Timer");
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: Non-null; Size is read first and bounds what else is read.
    let size = unsafe { (*config).Size };
    if ![
        TIMER_CONFIG_SIZE,
        TIMER_CONFIG_SIZE_V1_7,
        TIMER_CONFIG_SIZE_V1_11,
    ]
    .contains(&size)
    {
        violation(
            "WdfTimerConfigSize",
            format!(
                "{API}: WDF_TIMER_CONFIG.Size is {size}, not {TIMER_CONFIG_SIZE} (or a V1_7 / V1_11 size)"
            ),
        );
        return STATUS_INFO_LENGTH_MISMATCH;
    }
    // SAFETY: Fields within `size` bytes of the driver's configuration.
    let (callback, period, tolerable_delay, high_resolution) = unsafe {
        (
            (*config).EvtTimerFunc,
            (*config).Period,
            if size > TIMER_CONFIG_SIZE_V1_7 {
                (*config).TolerableDelay
            } else {
                0
            },
            size > TIMER_CONFIG_SIZE_V1_11 && (*config).UseHighResolutionTimer != 0,
        )
    };
    if period > i32::MAX.cast_unsigned() {
        violation(
            "WdfTimerConfigInvalid",
            format!(
                "{API}: Period {period} > MAXLONG: STATUS_INVALID_PARAMETER (fxtimerapi.cpp:118-127)"
            ),
        );
        return STATUS_INVALID_PARAMETER;
    }
    if tolerable_delay > 0 && high_resolution {
        violation(
            "WdfTimerConfigInvalid",
            format!(
                "{API}: UseHighResolutionTimer with TolerableDelay {tolerable_delay}: STATUS_INVALID_PARAMETER (fxtimerapi.cpp:162-174)"
            ),
        );
        return STATUS_INVALID_PARAMETER;
    }
    if let Err(status) = validate_attributes(attributes, true, API) {
        return status;
    }
    // SAFETY: Validated, non-null.
    let attributes_value: WDF_OBJECT_ATTRIBUTES = unsafe { *attributes };
    let passive = attributes_value.ExecutionLevel == _WDF_EXECUTION_LEVEL::WdfExecutionLevelPassive;
    if period > 0 && passive {
        violation(
            "WdfTimerPassivePeriodic",
            format!("{API}: a periodic timer at WdfExecutionLevelPassive: STATUS_NOT_SUPPORTED"),
        );
        return STATUS_NOT_SUPPORTED;
    }
    if callbacks_ancestor(parent).is_none() {
        violation(
            "WdfTimerParentNotUnderDevice",
            format!(
                "{API}: ParentObject {parent:#x} has no WDFDEVICE (or WDFQUEUE) ancestor: STATUS_INVALID_DEVICE_REQUEST"
            ),
        );
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    // AutomaticSerialization takes the parent's callback lock only when its synchronization
    // scope is Device or Queue (FxObject::_GetEffectiveLock, fxobject.cpp:1337-1375); the
    // model refuses those scopes when the device or queue is created, so no lock applies.
    if crate::faults::should_fail(crate::faults::Site::Wdf) {
        return windows_sys::Win32::Foundation::STATUS_INSUFFICIENT_RESOURCES;
    }
    let handle = {
        let mut fx = framework();
        let handle = fx.objects.create(Kind::Timer, Some(parent), attributes);
        fx.timers.map.insert(
            handle,
            TimerState {
                callback,
                period: Duration::from_millis(u64::from(period)),
                parent,
                passive,
                due: None,
                callback_thread: None,
                stopping: None,
                start_aborted: false,
                dpc_started: false,
            },
        );
        handle
    };
    // SAFETY: Non-null out pointer.
    unsafe { timer_out.write(pointer(handle)) };
    STATUS_SUCCESS
}

/// When a `DueTime` falls: negative is relative, in 100 ns units; positive is absolute system
/// time (100 ns since 1601); zero is now (`KeSetTimerEx`).
fn due_at(due_time: LONGLONG) -> Instant {
    let now = Instant::now();
    match due_time {
        t if t < 0 => now + Duration::from_nanos(t.unsigned_abs().saturating_mul(100)),
        0 => now,
        t => {
            let since_1970 = t.cast_unsigned().saturating_sub(EPOCH_1601_TO_1970);
            let target =
                SystemTime::UNIX_EPOCH + Duration::from_nanos(since_1970.saturating_mul(100));
            now + target.duration_since(SystemTime::now()).unwrap_or_default()
        }
    }
}

/// `WdfTimerStart` (`fxtimerapi.cpp:202-243`, `FxTimer::Start` `fxtimer.cpp:557-650`): TRUE if
/// the timer was already in the timer queue (and is now reset to the new due time).
pub(crate) unsafe extern "C" fn wdf_timer_start(
    globals: PWDF_DRIVER_GLOBALS,
    timer: WDFTIMER,
    due_time: LONGLONG,
) -> BOOLEAN {
    const API: &str = "WdfTimerStart";
    let Some(handle) = handle_arg(globals, API, timer, Kind::Timer) else {
        return 0;
    };
    let (spawn, was_queued) = {
        let mut fx = framework();
        let Some(state) = fx.timers.map.get_mut(&handle) else {
            return 0;
        };
        if state.stopping.is_some() {
            // A WdfTimerStop(Wait) is running: the start is ignored (fxtimer.cpp:598-609).
            state.start_aborted = true;
            return 0;
        }
        let was_queued = state.due.is_some();
        state.due = Some(due_at(due_time));
        let spawn = !std::mem::replace(&mut state.dpc_started, true);
        drop(fx);
        TIMER_WAKE.notify_all();
        (spawn, was_queued)
    };
    if spawn {
        std::thread::spawn(move || timer_dpc(handle));
    }
    BOOLEAN::from(was_queued)
}

static TIMER_WAKE: std::sync::Condvar = std::sync::Condvar::new();

/// The timer's DPC: waits until it is due, then calls `EvtTimerFunc` (`FxTimer::TimerHandler`,
/// `fxtimer.cpp:320-348`) at `DISPATCH_LEVEL`, or at `PASSIVE_LEVEL` for a passive timer.
fn timer_dpc(handle: usize) {
    loop {
        let (callback, passive) = {
            let mut fx = framework();
            loop {
                let Some(state) = fx.timers.map.get_mut(&handle) else {
                    return;
                };
                let now = Instant::now();
                match state.due {
                    Some(due) if now >= due => {
                        state.due = if state.period.is_zero() {
                            None
                        } else {
                            Some(due + state.period)
                        };
                        state.callback_thread = Some(std::thread::current().id());
                        break (state.callback, state.passive);
                    }
                    due => {
                        let wait = due.map_or(Duration::from_millis(100), |d| d - now);
                        fx = TIMER_WAKE
                            .wait_timeout(fx, wait.min(Duration::from_millis(100)))
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .0;
                    }
                }
            }
        };
        if let Some(callback) = callback {
            let run = || {
                // SAFETY: The driver's EvtTimerFunc with its timer.
                unsafe { callback(pointer(handle)) };
            };
            if passive {
                super::at_passive(run);
            } else {
                irql::at_dispatch("EvtTimerFunc", run);
            }
        }
        if let Some(state) = framework().timers.map.get_mut(&handle) {
            state.callback_thread = None;
        }
        TIMER_WAKE.notify_all();
    }
}

/// `WdfTimerStop` (`fxtimerapi.cpp:248-294`, `FxTimer::Stop` `fxtimer.cpp:653-801`): takes the
/// timer out of the queue; with `Wait`, also waits for a callback that is running
/// (`KeFlushQueuedDpcs`). TRUE if the timer was in the queue.
pub(crate) unsafe extern "C" fn wdf_timer_stop(
    globals: PWDF_DRIVER_GLOBALS,
    timer: WDFTIMER,
    wait: BOOLEAN,
) -> BOOLEAN {
    const API: &str = "WdfTimerStop";
    let Some(handle) = handle_arg(globals, API, timer, Kind::Timer) else {
        return 0;
    };
    if wait == 0 {
        let mut fx = framework();
        let queued = fx
            .timers
            .map
            .get_mut(&handle)
            .is_some_and(|s| s.due.take().is_some());
        return BOOLEAN::from(queued);
    }
    if above_passive("WdfTimerStop(Wait = TRUE)") {
        return 0;
    }
    let me = std::thread::current().id();
    let queued = {
        let mut fx = framework();
        let Some(state) = fx.timers.map.get_mut(&handle) else {
            return 0;
        };
        if state.callback_thread == Some(me) {
            drop(fx);
            violation(
                "WdfTimerStopFromCallback",
                format!(
                    "{API}({handle:#x}, Wait = TRUE) from the timer's own callback: a deadlock (verifier break); returns FALSE"
                ),
            );
            return 0;
        }
        state.stopping = Some(me);
        state.start_aborted = false;
        state.due.take().is_some()
    };
    wait_for_callback(handle);
    let mut fx = framework();
    let aborted = fx.timers.map.get_mut(&handle).is_some_and(|s| {
        s.stopping = None;
        std::mem::take(&mut s.start_aborted)
    });
    BOOLEAN::from(queued || aborted)
}

/// `WdfTimerGetParentObject` (`fxtimerapi.cpp:298-333`).
pub(crate) unsafe extern "C" fn wdf_timer_get_parent_object(
    globals: PWDF_DRIVER_GLOBALS,
    timer: WDFTIMER,
) -> WDFOBJECT {
    const API: &str = "WdfTimerGetParentObject";
    let Some(handle) = handle_arg(globals, API, timer, Kind::Timer) else {
        return std::ptr::null_mut();
    };
    framework()
        .timers
        .map
        .get(&handle)
        .map_or(std::ptr::null_mut(), |s| pointer(s.parent))
}

/// Waits for the timer's running callback, if any, to return (`KeFlushQueuedDpcs`).
fn wait_for_callback(handle: usize) {
    let _ = super::wait_for_signal("waiting for the callback of WDFTIMER", handle, || {
        framework()
            .timers
            .map
            .get(&handle)
            .is_none_or(|s| s.callback_thread.is_none())
    });
}

/// A timer's deletion (`FxTimer::Dispose` / `FlushAndRundown`, `fxtimer.cpp:478-554`): stop
/// it and wait for its callback; deleting it from its own callback is a verifier break (the
/// wait would deadlock, so it is skipped).
pub(crate) fn dispose_timer(handle: usize) {
    let me = std::thread::current().id();
    let from_callback = {
        let mut fx = framework();
        let Some(state) = fx.timers.map.get_mut(&handle) else {
            return;
        };
        state.due = None;
        state.callback_thread == Some(me)
    };
    if from_callback {
        violation(
            "WdfTimerDeleteFromCallback",
            format!(
                "deleting WDFTIMER {handle:#x} from within its own callback will lead to deadlock (verifier break)"
            ),
        );
    } else {
        wait_for_callback(handle);
    }
    framework().timers.map.remove(&handle);
    TIMER_WAKE.notify_all();
}

/// `WdfSpinLockCreate` (`fxspinlockapi.cpp:40-106`): the parent is the driver unless the
/// attributes name one.
pub(crate) unsafe extern "C" fn wdf_spin_lock_create(
    globals: PWDF_DRIVER_GLOBALS,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    lock_out: *mut WDFSPINLOCK,
) -> NTSTATUS {
    const API: &str = "WdfSpinLockCreate";
    if !check_globals(globals, API) {
        return STATUS_INVALID_PARAMETER;
    }
    let parent = match parent_of(API, attributes) {
        Ok(parent) => parent,
        Err(status) => return status,
    };
    if lock_out.is_null() {
        null_parameter(API, "SpinLock");
        return STATUS_INVALID_PARAMETER;
    }
    if let Err(status) = validate_attributes(attributes, true, API) {
        return status;
    }
    // SAFETY: Non-null out pointer.
    unsafe { lock_out.write(std::ptr::null_mut()) };
    if crate::faults::should_fail(crate::faults::Site::Wdf) {
        return windows_sys::Win32::Foundation::STATUS_INSUFFICIENT_RESOURCES;
    }
    let handle = {
        let mut fx = framework();
        let parent = parent.or(fx.driver);
        let handle = fx.objects.create(Kind::SpinLock, parent, attributes);
        fx.locks.map.insert(
            handle,
            LockState {
                owner: None,
                irql: PASSIVE_LEVEL,
            },
        );
        handle
    };
    // SAFETY: Non-null out pointer.
    unsafe { lock_out.write(pointer(handle)) };
    STATUS_SUCCESS
}

/// `WdfSpinLockAcquire` (`fxspinlockapi.cpp:112-144`, `FxSpinLock::AcquireLock`
/// `fxspinlock.cpp:57-85`): raises to `DISPATCH_LEVEL` and spins until the lock is free. A
/// thread acquiring a lock it holds spins forever; one that spins longer than the model's
/// watchdog bound is the DPC watchdog's bugcheck.
pub(crate) unsafe extern "C" fn wdf_spin_lock_acquire(
    globals: PWDF_DRIVER_GLOBALS,
    lock: WDFSPINLOCK,
) {
    const API: &str = "WdfSpinLockAcquire";
    let Some(handle) = handle_arg(globals, API, lock, Kind::SpinLock) else {
        return;
    };
    irql::require_at_most(API, DISPATCH_LEVEL);
    let me = std::thread::current().id();
    let previous = irql::set(DISPATCH_LEVEL);
    let deadline = Instant::now() + SPIN_WATCHDOG;
    loop {
        {
            let mut fx = framework();
            let Some(state) = fx.locks.map.get_mut(&handle) else {
                return;
            };
            match state.owner {
                None => {
                    state.owner = Some(me);
                    state.irql = previous;
                    return;
                }
                Some(owner) if owner == me => {
                    drop(fx);
                    state::bugcheck(
                        "SpinLockRecursion",
                        &format!(
                            "{API}({handle:#x}) of a WDFSPINLOCK this thread already holds: it spins forever at DISPATCH_LEVEL"
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        if Instant::now() >= deadline {
            state::bugcheck(
                "DPC_WATCHDOG_VIOLATION",
                &format!(
                    "{API}({handle:#x}) spun at DISPATCH_LEVEL for {} s on a WDFSPINLOCK its owner never releases (bugcheck 0x133)",
                    SPIN_WATCHDOG.as_secs()
                ),
            );
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `WdfSpinLockRelease` (`fxspinlockapi.cpp:150-181`, `FxSpinLock::ReleaseLock`
/// `fxspinlock.cpp:90-144`): with the verifier's lock tracking on, a release by a thread that
/// does not own the lock is bugcheck 0x10D `WDF_INVALID_LOCK_OPERATION`.
pub(crate) unsafe extern "C" fn wdf_spin_lock_release(
    globals: PWDF_DRIVER_GLOBALS,
    lock: WDFSPINLOCK,
) {
    const API: &str = "WdfSpinLockRelease";
    let Some(handle) = handle_arg(globals, API, lock, Kind::SpinLock) else {
        return;
    };
    let me = std::thread::current().id();
    let restore = {
        let mut fx = framework();
        let Some(state) = fx.locks.map.get_mut(&handle) else {
            return;
        };
        if state.owner == Some(me) {
            state.owner = None;
            Some(state.irql)
        } else {
            None
        }
    };
    match restore {
        Some(irql) => {
            irql::set(irql);
        }
        None => violation(
            "WDF_INVALID_LOCK_OPERATION",
            format!(
                "{API}({handle:#x}) by a thread that does not hold it (bugcheck 0x10D WDF_VIOLATION, WDF_INVALID_LOCK_OPERATION); the lock is left as it was"
            ),
        ),
    }
}

/// A spin lock's deletion.
pub(crate) fn forget_lock(handle: usize) {
    framework().locks.map.remove(&handle);
}
