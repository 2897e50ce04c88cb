//! `KeQueryPerformanceCounter`: a monotonic counter at 10 MHz, the frequency Windows reports on
//! current hardware (the `KeQueryPerformanceCounter` page: the frequency "is fixed at system
//! boot and is consistent across all processors"; any IRQL).

use std::sync::LazyLock;
use std::time::Instant;

/// Ticks per second.
pub(crate) const FREQUENCY: i64 = 10_000_000;

static BOOT: LazyLock<Instant> = LazyLock::new(Instant::now);

/// `KeQueryPerformanceCounter` (any IRQL).
///
/// # Safety
/// `frequency` is null or writable.
#[unsafe(export_name = "KeQueryPerformanceCounter")]
pub(crate) unsafe extern "system" fn ke_query_performance_counter(frequency: *mut i64) -> i64 {
    let _model = crate::accounting::InModel::enter();
    if !frequency.is_null() {
        // SAFETY: Writable when not null (caller's contract).
        unsafe { frequency.write(FREQUENCY) };
    }
    let elapsed = BOOT.elapsed();
    // 100 ns ticks; an i64 of them lasts 29 000 years.
    i64::try_from(elapsed.as_nanos() / 100).unwrap_or(i64::MAX)
}
