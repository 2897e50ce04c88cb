//! Where the sender's time goes: the model's own code, apart from the driver's code it calls
//! back (completion and work item routines) and from Linux's system calls (the send itself).
//!
//! Every DDI on the send path enters an [`InModel`] span; calls out of the model into the driver
//! or into Linux go through [`outside`], which pauses it. Spans nest (a DDI a completion routine
//! calls inside another DDI's completion), so only the outermost one on a thread counts. The
//! clock is the time-stamp counter (a few nanoseconds per read), converted to nanoseconds with
//! a rate measured once against the monotonic clock.

use std::cell::Cell;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Ticks spent in model code, all threads together.
static MODEL_TICKS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Spans open on this thread (0: driver or harness code runs).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// When the outermost span started or last resumed.
    static SINCE: Cell<u64> = const { Cell::new(0) };
}

#[cfg(target_arch = "x86_64")]
fn now() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
fn now() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(START.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Ticks per nanosecond, measured once.
static TICKS_PER_NS: LazyLock<f64> = LazyLock::new(|| {
    let (t0, c0) = (Instant::now(), now());
    std::thread::sleep(Duration::from_millis(20));
    let (elapsed, ticks) = (t0.elapsed(), now().wrapping_sub(c0));
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let rate = ticks as f64 / elapsed.as_nanos().max(1) as f64;
    if rate > 0.0 { rate } else { 1.0 }
});

/// Model code running: counts until dropped (or paused by [`outside`]).
pub(crate) struct InModel(());

impl InModel {
    pub(crate) fn enter() -> Self {
        DEPTH.with(|depth| {
            if depth.get() == 0 {
                SINCE.with(|since| since.set(now()));
            }
            depth.set(depth.get() + 1);
        });
        Self(())
    }
}

impl Drop for InModel {
    fn drop(&mut self) {
        DEPTH.with(|depth| {
            let left = depth.get().saturating_sub(1);
            depth.set(left);
            if left == 0 {
                let started = SINCE.with(Cell::get);
                MODEL_TICKS.fetch_add(now().wrapping_sub(started), Ordering::Relaxed);
            }
        });
    }
}

/// Runs `f` (driver code, or a system call) outside any model span of this thread.
pub(crate) fn outside<R>(f: impl FnOnce() -> R) -> R {
    let open = DEPTH.with(|depth| depth.replace(0));
    if open == 0 {
        return f();
    }
    let started = SINCE.with(Cell::get);
    MODEL_TICKS.fetch_add(now().wrapping_sub(started), Ordering::Relaxed);
    let result = f();
    DEPTH.with(|depth| depth.set(open));
    SINCE.with(|since| since.set(now()));
    result
}

/// Nanoseconds spent in model code so far (the process's machines together).
#[must_use]
pub fn model_ns() -> u64 {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a duration for display"
    )]
    let ns = (MODEL_TICKS.load(Ordering::Relaxed) as f64 / *TICKS_PER_NS) as u64;
    ns
}
