//! Fault injection: Driver Verifier's low-resources simulation, made deterministic.
//!
//! Every fallible call the driver makes (pool, IRP and MDL allocation, every WSK call that can
//! fail) is a numbered fault point. A plan fails the n-th point (systematic: run a scenario
//! with n = 1, 2, ... until a run injects nothing, and every failure path has been taken once),
//! or each point with probability 1/k from a seed.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

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

/// The machine's plan and where it stands, in atomics: every fallible call passes here, on
/// any thread, so no lock is taken.
struct Faults {
    /// 0 none, 1 fail-nth, 2 random.
    kind: AtomicU8,
    /// The n of fail-nth, or the `one_in` of random.
    n: AtomicU64,
    /// The xorshift64* state of random.
    rng: AtomicU64,
}

static FAULTS: Faults = Faults {
    kind: AtomicU8::new(0),
    n: AtomicU64::new(0),
    rng: AtomicU64::new(1),
};

/// Sets a new machine's plan (the point count is in [`state::TABLES`], reset with it).
pub(crate) fn start(plan: FaultPlan) {
    let (kind, n, rng) = match plan {
        FaultPlan::None => (0, 0, 1),
        FaultPlan::FailNth(n) => (1, n, 1),
        FaultPlan::Random { seed, one_in } => (2, u64::from(one_in), seed | 1),
    };
    FAULTS.kind.store(kind, Ordering::Relaxed);
    FAULTS.n.store(n, Ordering::Relaxed);
    FAULTS.rng.store(rng, Ordering::Relaxed);
}

/// One xorshift64* step.
const fn xorshift(mut x: u64) -> u64 {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x
}

/// Counts a fault point and says whether it fails.
pub(crate) fn should_fail(site: Site) -> bool {
    let stats = &state::TABLES.stats;
    let point = stats.fault_points.fetch_add(1, Ordering::Relaxed) + 1;
    let fail = match FAULTS.kind.load(Ordering::Relaxed) {
        1 => point == FAULTS.n.load(Ordering::Relaxed),
        2 => {
            // One generator step per point, as one atomic update (the sequence is the seed's
            // whichever thread draws next).
            let previous = FAULTS
                .rng
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(xorshift(x)))
                .unwrap_or_else(|x| x);
            let x = xorshift(previous);
            let one_in = FAULTS.n.load(Ordering::Relaxed);
            one_in != 0 && x.wrapping_mul(0x2545_F491_4F6C_DD1D).is_multiple_of(one_in)
        }
        _ => false,
    };
    if fail {
        state::bump(&stats.faults_injected);
        if std::env::var_os("WSKUDP_KMODEL_TRACE").is_some() {
            eprintln!("kmodel fault injected at point {point} ({site:?})");
        }
    }
    fail
}
