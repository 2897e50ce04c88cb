//! The model's global state: one simulated machine per process at a time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};

use crate::faults::FaultPlan;
use crate::report::{Leaks, Stats, Violation};

/// A live pool block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolBlock {
    pub(crate) size: usize,
    pub(crate) tag: u32,
    pub(crate) nonpaged: bool,
}

/// Who owns a driver-allocated IRP right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IrpOwner {
    /// The driver (fresh, or completed back to it).
    Driver,
    /// A WSK provider call, until it completes the IRP.
    Provider,
}

/// A live IRP from `IoAllocateIrp`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IrpRecord {
    pub(crate) stack_size: i8,
    pub(crate) owner: IrpOwner,
    /// Completed once: it may only be freed now (the model does not export `IoReuseIrp`).
    pub(crate) completed: bool,
}

/// Everything the model tracks. Guarded by one mutex, held only briefly: never across a call
/// back into driver code.
#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) pool: BTreeMap<usize, PoolBlock>,
    /// Freed pool blocks kept mapped (poisoned) so a late read by the driver sees garbage
    /// rather than another allocation; released at shutdown.
    pub(crate) quarantine: VecDeque<(usize, usize)>,
    pub(crate) irps: HashMap<usize, IrpRecord>,
    pub(crate) mdls: HashMap<usize, usize>,
    pub(crate) events: HashSet<usize>,
    pub(crate) rundowns: HashSet<usize>,
    pub(crate) violations: Vec<Violation>,
    pub(crate) stats: Stats,
    pub(crate) allocations_by_tag: BTreeMap<u32, u64>,
    pub(crate) faults: FaultPlan,
    pub(crate) fault_points: u64,
    pub(crate) rng: u64,
    /// Live `IoSetCompletionRoutineEx` contexts.
    pub(crate) ex_contexts: usize,
    /// See [`crate::Config::unload_race_window`].
    pub(crate) unload_race_window: std::time::Duration,
    /// See [`crate::Config::unload_wait`].
    pub(crate) unload_wait: std::time::Duration,
    /// See [`crate::Config::wdf_wait_timeout`].
    pub(crate) wdf_wait_timeout: std::time::Duration,
    /// See [`crate::Config::profile`].
    pub(crate) profile: crate::Profile,
}

static STATE: LazyLock<Mutex<Inner>> = LazyLock::new(|| Mutex::new(Inner::default()));

/// Signaled whenever an event, a rundown reference or a spin lock changes, so waiters in
/// `KeWaitForSingleObject` / `ExWaitForRundownProtectionRelease` re-check.
pub(crate) static WAKE: Condvar = Condvar::new();
/// The mutex `WAKE` pairs with; it also serializes event and rundown state changes.
pub(crate) static SYNC: Mutex<()> = Mutex::new(());

/// The Windows build the provider imitates.
pub(crate) fn profile() -> crate::Profile {
    lock().profile
}

/// Locks the model state (a panic elsewhere must not hide later reports).
pub(crate) fn lock() -> MutexGuard<'static, Inner> {
    STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Locks the event/rundown mutex.
pub(crate) fn lock_sync() -> MutexGuard<'static, ()> {
    SYNC.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records a contract violation: what Driver Verifier would stop the machine for.
pub(crate) fn violation(rule: &'static str, detail: String) {
    if std::env::var_os("WSKUDP_KMODEL_TRACE").is_some() {
        eprintln!("kmodel violation {rule}: {detail}");
    }
    lock().violations.push(Violation { rule, detail });
}

/// A violation the model cannot continue after (the machine would be wedged): report it and
/// stop the process, as a bugcheck stops Windows.
pub(crate) fn bugcheck(rule: &'static str, detail: &str) -> ! {
    // The violations recorded before the machine stopped (the report shutdown would give).
    if let Ok(inner) = STATE.try_lock() {
        for violation in &inner.violations {
            eprintln!("kmodel violation before the bugcheck: {violation}");
        }
    }
    eprintln!("kmodel BUGCHECK {rule}: {detail}");
    std::process::abort();
}

impl Inner {
    /// Outstanding objects, by kind.
    pub(crate) fn leaks(&self, sockets: usize, captures: usize, registrations: usize) -> Leaks {
        let mut pool_by_tag = BTreeMap::new();
        for block in self.pool.values() {
            *pool_by_tag.entry(tag_name(block.tag)).or_insert(0) += 1;
        }
        Leaks {
            pool_bytes: self.pool.values().map(|b| b.size).sum(),
            pool_by_tag,
            irps: self.irps.len(),
            mdls: self.mdls.len(),
            sockets,
            npi_captures: captures,
            registrations,
            completion_contexts: self.ex_contexts,
            ..Leaks::default()
        }
    }
}

/// A pool tag as `!poolused` shows it.
pub(crate) fn tag_name(tag: u32) -> String {
    tag.to_ne_bytes()
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() {
                char::from(*b)
            } else {
                '?'
            }
        })
        .collect()
}
