//! Dispatcher objects and locks: `KEVENT`, `EX_RUNDOWN_REF`, `EX_SPIN_LOCK`, and
//! `KeGetCurrentIrql`.
//!
//! Events and rundown references keep their state in the caller's structure (as Windows
//! does): events change only under one model mutex, rundown references with interlocked
//! operations (a waiter sets the active bit under that mutex); waiters sleep on one condition
//! variable.

use std::ffi::c_void;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use crossbeam_skiplist::SkipSet;

use windows_sys::Wdk::Foundation::KEVENT;
use windows_sys::Wdk::System::SystemServices::{EX_RUNDOWN_REF, KWAIT_REASON};
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_SUCCESS, STATUS_TIMEOUT};
use windows_sys::Win32::System::Kernel::{EVENT_TYPE, NotificationEvent, SynchronizationEvent};

use crate::irql::{self, APC_LEVEL, DISPATCH_LEVEL};
use crate::state::{self, WAKE};

/// `KeGetCurrentIrql`.
///
/// # Safety
/// None.
#[unsafe(export_name = "KeGetCurrentIrql")]
pub(crate) unsafe extern "system" fn ke_get_current_irql() -> u8 {
    let _model = crate::accounting::InModel::enter();
    irql::current()
}

/// `KeInitializeEvent`.
///
/// # Safety
/// `event` must point to writable `KEVENT` storage.
#[unsafe(export_name = "KeInitializeEvent")]
pub(crate) unsafe extern "system" fn ke_initialize_event(
    event: *mut KEVENT,
    kind: EVENT_TYPE,
    signaled: bool,
) {
    if kind != NotificationEvent && kind != SynchronizationEvent {
        state::violation("EventType", format!("KeInitializeEvent with type {kind}"));
    }
    let _sync = state::lock_sync();
    // SAFETY: `event` is writable KEVENT storage (caller's contract). The header's first byte
    // is `Type` (EventNotificationObject = 0, EventSynchronizationObject = 1).
    unsafe {
        event.write(std::mem::zeroed());
        event
            .cast::<u8>()
            .write(u8::try_from(kind).unwrap_or_default());
        (*event).Header.SignalState = i32::from(signaled);
    }
    state::lock().events.insert(event.expose_provenance());
}

fn check_event(event: *const KEVENT, ddi: &str) -> bool {
    let known = state::lock().events.contains(&event.expose_provenance());
    if !known {
        state::violation(
            "EventNotInitialized",
            format!("{ddi}({event:p}) on an event never initialized"),
        );
    }
    known
}

/// `KeSetEvent` (IRQL <= `DISPATCH_LEVEL` with `Wait = FALSE`).
///
/// # Safety
/// `event` must be an initialized `KEVENT`.
#[unsafe(export_name = "KeSetEvent")]
pub(crate) unsafe extern "system" fn ke_set_event(
    event: *mut KEVENT,
    _increment: i32,
    wait: bool,
) -> i32 {
    irql::require_at_most("KeSetEvent", DISPATCH_LEVEL);
    if wait {
        state::violation(
            "KeSetEventWait",
            "KeSetEvent with Wait = TRUE is not modelled".into(),
        );
    }
    if !check_event(event, "KeSetEvent") {
        return 0;
    }
    let sync = state::lock_sync();
    // SAFETY: An initialized event; its state changes only under SYNC.
    let previous = unsafe { std::mem::replace(&mut (*event).Header.SignalState, 1) };
    WAKE.notify_all();
    drop(sync);
    crate::irp::widen_unload_race();
    previous
}

/// `KeWaitForSingleObject` on an event: infinite waits need IRQL <= `APC_LEVEL`, a zero
/// timeout polls (allowed at `DISPATCH_LEVEL`).
///
/// # Safety
/// `object` must be an initialized `KEVENT` (the only object type modelled).
#[unsafe(export_name = "KeWaitForSingleObject")]
pub(crate) unsafe extern "system" fn ke_wait_for_single_object(
    object: *const c_void,
    _reason: KWAIT_REASON,
    _mode: i8,
    _alertable: bool,
    timeout: *const i64,
) -> NTSTATUS {
    // SAFETY: `timeout` is null or points to an i64 (caller's contract).
    let poll = !timeout.is_null() && unsafe { *timeout } == 0;
    if !timeout.is_null() && !poll {
        state::violation(
            "KeWaitTimeout",
            "KeWaitForSingleObject with a non-zero timeout is not modelled".into(),
        );
    }
    irql::require_at_most(
        "KeWaitForSingleObject",
        if poll { DISPATCH_LEVEL } else { APC_LEVEL },
    );
    let event = object.cast::<KEVENT>().cast_mut();
    if !check_event(event, "KeWaitForSingleObject") {
        return STATUS_SUCCESS;
    }
    let mut sync = state::lock_sync();
    loop {
        // SAFETY: An initialized event; read and reset only under SYNC.
        unsafe {
            if (*event).Header.SignalState != 0 {
                if event.cast::<u8>().read() == u8::try_from(SynchronizationEvent).unwrap_or(1) {
                    (*event).Header.SignalState = 0;
                }
                return STATUS_SUCCESS;
            }
        }
        if poll {
            return STATUS_TIMEOUT;
        }
        sync = WAKE
            .wait(sync)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

/// `EX_RUNDOWN_ACTIVE`: set once a wait for rundown has begun.
const RUNDOWN_ACTIVE: usize = 1;
/// Each reference counts 2 (the low bit is the active flag), as in Windows.
const RUNDOWN_COUNT_INC: usize = 2;

/// The count word of an `EX_RUNDOWN_REF`, changed with interlocked operations as Windows does
/// (no lock to take or release a reference).
const fn rundown_word<'a>(rundown: *mut EX_RUNDOWN_REF) -> &'a AtomicUsize {
    // SAFETY: EX_RUNDOWN_REF is a pointer-sized, pointer-aligned union the caller keeps alive
    // while it is used; AtomicUsize has the same layout, and every access after
    // initialization goes through this function.
    unsafe { AtomicUsize::from_ptr(rundown.cast()) }
}

/// Initialized `EX_RUNDOWN_REF`s, by address, in a lock-free set (checked on every acquire
/// and release). Cleared when a machine boots.
static RUNDOWNS: LazyLock<SkipSet<usize>> = LazyLock::new(SkipSet::new);

/// Forgets the rundown references (a new machine).
pub(crate) fn reset() {
    RUNDOWNS.clear();
}

fn check_rundown(rundown: *mut EX_RUNDOWN_REF, ddi: &str) -> bool {
    let known = RUNDOWNS.contains(&rundown.expose_provenance());
    if !known {
        state::violation(
            "RundownNotInitialized",
            format!("{ddi}({rundown:p}) before ExInitializeRundownProtection"),
        );
    }
    known
}

/// `ExInitializeRundownProtection`.
///
/// # Safety
/// `rundown` must be writable.
#[unsafe(export_name = "ExInitializeRundownProtection")]
pub(crate) unsafe extern "system" fn ex_initialize_rundown_protection(
    rundown: *mut EX_RUNDOWN_REF,
) {
    let _sync = state::lock_sync();
    // SAFETY: Writable storage (caller's contract).
    unsafe { rundown.cast::<usize>().write(0) };
    RUNDOWNS.insert(rundown.expose_provenance());
}

/// `ExAcquireRundownProtection` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// `rundown` must be initialized.
#[unsafe(export_name = "ExAcquireRundownProtection")]
pub(crate) unsafe extern "system" fn ex_acquire_rundown_protection(
    rundown: *mut EX_RUNDOWN_REF,
) -> bool {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("ExAcquireRundownProtection", DISPATCH_LEVEL);
    if !check_rundown(rundown, "ExAcquireRundownProtection") {
        return false;
    }
    rundown_word(rundown)
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
            (count & RUNDOWN_ACTIVE == 0).then(|| count + RUNDOWN_COUNT_INC)
        })
        .is_ok()
}

/// `ExReleaseRundownProtection` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// `rundown` must be initialized and hold a reference of the caller's.
#[unsafe(export_name = "ExReleaseRundownProtection")]
pub(crate) unsafe extern "system" fn ex_release_rundown_protection(rundown: *mut EX_RUNDOWN_REF) {
    let _model = crate::accounting::InModel::enter();
    irql::require_at_most("ExReleaseRundownProtection", DISPATCH_LEVEL);
    if !check_rundown(rundown, "ExReleaseRundownProtection") {
        return;
    }
    let released =
        rundown_word(rundown).fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
            count.checked_sub(RUNDOWN_COUNT_INC)
        });
    // A waiter sets the active bit before it looks at the count, under SYNC: it is woken (under
    // SYNC, so not before it sleeps) only when there is one; otherwise no futex call.
    if released.is_ok_and(|count| count & RUNDOWN_ACTIVE != 0) {
        let _sync = state::lock_sync();
        WAKE.notify_all();
    }
    crate::irp::widen_unload_race();
    if released.is_err() {
        state::violation(
            "RundownReleaseWithoutAcquire",
            format!("ExReleaseRundownProtection({rundown:p}) with no reference held"),
        );
    }
}

/// `ExWaitForRundownProtectionRelease` (IRQL <= `APC_LEVEL`).
///
/// # Safety
/// `rundown` must be initialized.
#[unsafe(export_name = "ExWaitForRundownProtectionRelease")]
pub(crate) unsafe extern "system" fn ex_wait_for_rundown_protection_release(
    rundown: *mut EX_RUNDOWN_REF,
) {
    irql::require_at_most("ExWaitForRundownProtectionRelease", APC_LEVEL);
    if !check_rundown(rundown, "ExWaitForRundownProtectionRelease") {
        return;
    }
    let word = rundown_word(rundown);
    let mut sync = state::lock_sync();
    word.fetch_or(RUNDOWN_ACTIVE, Ordering::AcqRel);
    while word.load(Ordering::Acquire) != RUNDOWN_ACTIVE {
        sync = WAKE
            .wait(sync)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

/// Exclusive owner bit of an `EX_SPIN_LOCK` (the rest counts shared owners).
const EXCLUSIVE: i32 = i32::MIN;

const fn lock_word<'a>(lock: *mut i32) -> &'a AtomicI32 {
    // SAFETY: `EX_SPIN_LOCK` is a LONG the caller keeps alive while locked; AtomicI32 has the
    // same layout, and every access goes through these functions.
    unsafe { AtomicI32::from_ptr(lock) }
}

thread_local! {
    /// Spin locks the current thread holds.
    static HELD: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn acquire(lock: *mut i32, ddi: &str, try_once: impl Fn(&AtomicI32) -> bool) -> u8 {
    irql::require_at_most(ddi, DISPATCH_LEVEL);
    let addr = lock.expose_provenance();
    if HELD.with(|held| held.borrow().contains(&addr)) {
        state::bugcheck(
            "SpinLockRecursion",
            &format!("{ddi}({lock:p}) by a thread that already holds it: deadlock"),
        );
    }
    let old = irql::set(DISPATCH_LEVEL);
    let word = lock_word(lock);
    let mut spins: u64 = 0;
    while !try_once(word) {
        spins += 1;
        if spins == 50_000_000 {
            state::bugcheck(
                "SpinLockDeadlock",
                &format!(
                    "{ddi}({lock:p}) spun 50M times: recursive acquisition or a lock never released"
                ),
            );
        }
        std::hint::spin_loop();
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        }
    }
    HELD.with(|held| held.borrow_mut().push(addr));
    old
}

fn release(lock: *mut i32, old_irql: u8, ddi: &str, undo: impl Fn(&AtomicI32) -> bool) {
    if irql::current() != DISPATCH_LEVEL {
        state::violation(
            "SpinLockIrql",
            format!(
                "{ddi}({lock:p}) at IRQL {}, the lock holds DISPATCH_LEVEL",
                irql::current()
            ),
        );
    }
    if !undo(lock_word(lock)) {
        state::violation(
            "SpinLockNotHeld",
            format!("{ddi}({lock:p}) of a lock not held that way"),
        );
    }
    let addr = lock.expose_provenance();
    HELD.with(|held| held.borrow_mut().retain(|a| *a != addr));
    irql::set(old_irql);
}

/// `ExAcquireSpinLockExclusive` (IRQL <= `DISPATCH_LEVEL`; raises to `DISPATCH_LEVEL`).
///
/// # Safety
/// `lock` must be a valid `EX_SPIN_LOCK`.
#[unsafe(export_name = "ExAcquireSpinLockExclusive")]
pub(crate) unsafe extern "system" fn ex_acquire_spin_lock_exclusive(lock: *mut i32) -> u8 {
    let _model = crate::accounting::InModel::enter();
    acquire(lock, "ExAcquireSpinLockExclusive", |w| {
        w.compare_exchange(0, EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    })
}

/// `ExReleaseSpinLockExclusive`.
///
/// # Safety
/// `lock` must be held exclusively by the caller.
#[unsafe(export_name = "ExReleaseSpinLockExclusive")]
pub(crate) unsafe extern "system" fn ex_release_spin_lock_exclusive(lock: *mut i32, old_irql: u8) {
    let _model = crate::accounting::InModel::enter();
    release(lock, old_irql, "ExReleaseSpinLockExclusive", |w| {
        w.compare_exchange(EXCLUSIVE, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    });
}

/// `ExAcquireSpinLockShared` (IRQL <= `DISPATCH_LEVEL`; raises to `DISPATCH_LEVEL`).
///
/// # Safety
/// `lock` must be a valid `EX_SPIN_LOCK`.
#[unsafe(export_name = "ExAcquireSpinLockShared")]
pub(crate) unsafe extern "system" fn ex_acquire_spin_lock_shared(lock: *mut i32) -> u8 {
    let _model = crate::accounting::InModel::enter();
    acquire(lock, "ExAcquireSpinLockShared", |w| {
        let current = w.load(Ordering::Relaxed);
        current >= 0
            && w.compare_exchange(current, current + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    })
}

/// `ExReleaseSpinLockShared`.
///
/// # Safety
/// `lock` must be held shared by the caller.
#[unsafe(export_name = "ExReleaseSpinLockShared")]
pub(crate) unsafe extern "system" fn ex_release_spin_lock_shared(lock: *mut i32, old_irql: u8) {
    let _model = crate::accounting::InModel::enter();
    // One reader leaves; other readers may come and go meanwhile, so retry until the count
    // is seen unchanged (a single compare-exchange failed under contention and reported a
    // lock not held).
    release(lock, old_irql, "ExReleaseSpinLockShared", |w| {
        w.fetch_update(Ordering::Release, Ordering::Relaxed, |current| {
            (current > 0).then(|| current - 1)
        })
        .is_ok()
    });
}
