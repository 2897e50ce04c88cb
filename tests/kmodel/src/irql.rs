//! IRQL: one value per thread, raised to `DISPATCH_LEVEL` around completion routines and
//! while a spin lock is held; every DDI checks it against its documented maximum.

use std::cell::Cell;

use crate::state;

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `APC_LEVEL`.
pub const APC_LEVEL: u8 = 1;
/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;

thread_local! {
    static IRQL: Cell<u8> = const { Cell::new(PASSIVE_LEVEL) };
}

/// The calling thread's IRQL.
#[must_use]
pub fn current() -> u8 {
    IRQL.with(Cell::get)
}

/// Sets the calling thread's IRQL, returning the previous one.
pub(crate) fn set(irql: u8) -> u8 {
    IRQL.with(|cell| cell.replace(irql))
}

/// Records `IrqlTooHigh` if the caller of `ddi` runs above `max`.
pub(crate) fn require_at_most(ddi: &str, max: u8) {
    let irql = current();
    if irql > max {
        state::violation(
            "IrqlTooHigh",
            format!("{ddi} called at IRQL {irql}, its maximum is {max}"),
        );
    }
}

/// Runs `f` at `DISPATCH_LEVEL` (as a DPC or completion would), checking that it returns
/// at `DISPATCH_LEVEL` (an unbalanced lock or raise would not).
pub(crate) fn at_dispatch<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let previous = set(DISPATCH_LEVEL);
    let result = f();
    let after = set(previous);
    if after != DISPATCH_LEVEL {
        // Bug check 0xC8 IRQL_UNEXPECTED_VALUE page: "usually caused by a device driver [...]
        // that changed the IRQL for some period and did not restore the original IRQL".
        state::violation(
            "IrqlNotRestored",
            format!(
                "{what} returned at IRQL {after}, entered at {DISPATCH_LEVEL} (bugcheck 0xC8 IRQL_UNEXPECTED_VALUE)"
            ),
        );
    }
    result
}

/// Records `IrqlNotRestored` if a routine the model called at `PASSIVE_LEVEL` (a work item)
/// returned at another IRQL.
pub(crate) fn expect_passive(what: &str) {
    let after = set(PASSIVE_LEVEL);
    if after != PASSIVE_LEVEL {
        state::violation(
            "IrqlNotRestored",
            format!(
                "{what} returned at IRQL {after}, entered at {PASSIVE_LEVEL} (bugcheck 0xC8 IRQL_UNEXPECTED_VALUE)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_thread() {
        assert_eq!(current(), PASSIVE_LEVEL);
        let r = at_dispatch("test", || {
            std::thread::spawn(current).join().unwrap() * 10 + current()
        });
        assert_eq!(r, 2);
        assert_eq!(current(), PASSIVE_LEVEL);
    }
}
