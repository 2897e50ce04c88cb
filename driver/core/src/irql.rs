//! Interrupt request levels.

use crate::ddi::nt::KeGetCurrentIrql;

/// A `KIRQL` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Irql(pub u8);

impl Irql {
    /// `PASSIVE_LEVEL`.
    pub const PASSIVE: Self = Self(0);
    /// `APC_LEVEL`.
    pub const APC: Self = Self(1);
    /// `DISPATCH_LEVEL`.
    pub const DISPATCH: Self = Self(2);

    /// The processor's current IRQL.
    ///
    /// IRQL: any.
    #[must_use]
    pub fn current() -> Self {
        let irql;
        // SAFETY: KeGetCurrentIrql has no preconditions and may be called at any IRQL.
        unsafe {
            irql = KeGetCurrentIrql();
        }
        Self(irql)
    }
}

/// `PAGED_CODE()`: in debug builds, asserts the caller runs at or below `APC_LEVEL`.
/// Used at the top of every function documented as `PASSIVE_LEVEL`.
#[macro_export]
macro_rules! paged_code {
    () => {
        debug_assert!(
            $crate::irql::Irql::current() <= $crate::irql::Irql::APC,
            "PAGED_CODE: called above APC_LEVEL"
        );
    };
}
