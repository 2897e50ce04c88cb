//! Fault injection: Driver Verifier's low-resources simulation, made deterministic.
//!
//! Every fallible call the driver makes (pool, IRP and MDL allocation, every WSK call that can
//! fail) is a numbered fault point. A plan fails the n-th point (systematic: run a scenario
//! with n = 1, 2, ... until a run injects nothing, and every failure path has been taken once),
//! or each point with probability 1/k from a seed.

use crate::state;

/// Which points fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FaultPlan {
    /// Nothing fails.
    #[default]
    None,
    /// Only the n-th fault point (1-based) fails.
    FailNth(u64),
    /// Each point fails with probability `1 / one_in`, drawn from `seed`.
    Random {
        /// Seed of the generator (xorshift64*; the same seed replays the same failures).
        seed: u64,
        /// Inverse probability.
        one_in: u32,
    },
}

/// What kind of call a fault point is (for the report of where faults landed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Site {
    Pool,
    Irp,
    Mdl,
    WskRegister,
    WskCapture,
    WskSocket,
    WskBind,
    WskGetLocalAddress,
    WskSendTo,
    WskControlSocket,
    CompletionContext,
    Wdf,
}

/// Counts a fault point and says whether it fails.
pub(crate) fn should_fail(site: Site) -> bool {
    let mut inner = state::lock();
    inner.fault_points += 1;
    inner.stats.fault_points = inner.fault_points;
    let fail = match inner.faults {
        FaultPlan::None => false,
        FaultPlan::FailNth(n) => inner.fault_points == n,
        FaultPlan::Random { one_in, .. } => {
            // xorshift64* step.
            let mut x = inner.rng;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            inner.rng = x;
            one_in != 0
                && x.wrapping_mul(0x2545_F491_4F6C_DD1D)
                    .is_multiple_of(u64::from(one_in))
        }
    };
    if fail {
        inner.stats.faults_injected += 1;
        if std::env::var_os("WSKUDP_KMODEL_TRACE").is_some() {
            eprintln!(
                "kmodel fault injected at point {} ({site:?})",
                inner.fault_points
            );
        }
    }
    fail
}
