//! The model's global state: one simulated machine per process at a time.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};

use crossbeam_skiplist::SkipMap;

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

/// A live IRP from `IoAllocateIrp`: its stack size, and who owns it in an atomic (the
/// provider and the driver hand it over on any thread without a global lock).
#[derive(Debug)]
pub(crate) struct IrpRecord {
    pub(crate) stack_size: i8,
    state: AtomicU8,
}

/// [`IrpRecord`] state bit: a provider call owns the IRP (else the driver does).
const IRP_PROVIDER: u8 = 1;
/// [`IrpRecord`] state bit: completed once, so it may only be freed or reset with `IoReuseIrp`
/// now.
const IRP_COMPLETED: u8 = 2;

impl IrpRecord {
    pub(crate) const fn new(stack_size: i8) -> Self {
        Self {
            stack_size,
            state: AtomicU8::new(0),
        }
    }

    pub(crate) fn owner(&self) -> IrpOwner {
        if self.state.load(Ordering::Acquire) & IRP_PROVIDER == 0 {
            IrpOwner::Driver
        } else {
            IrpOwner::Provider
        }
    }

    pub(crate) fn completed(&self) -> bool {
        self.state.load(Ordering::Acquire) & IRP_COMPLETED != 0
    }

    /// The provider took it (`IoCallDriver`).
    pub(crate) fn to_provider(&self) {
        self.state.store(IRP_PROVIDER, Ordering::Release);
    }

    /// The provider completed it: the driver owns it again, for good.
    pub(crate) fn to_driver_completed(&self) {
        self.state.store(IRP_COMPLETED, Ordering::Release);
    }

    /// `IoReuseIrp` made it fresh again (only while the driver owns it): `false` if a provider
    /// owns it.
    pub(crate) fn reset(&self) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state & IRP_PROVIDER == 0).then_some(0)
            })
            .is_ok()
    }
}

/// The model's bookkeeping that the send path touches, each in a structure that needs no
/// global lock: lock-free ordered maps (O(log n) lookups, range queries for residency) and
/// atomic counters. Cleared when a machine boots.
pub(crate) struct Tables {
    /// Live pool blocks by base address.
    pub(crate) pool: SkipMap<usize, PoolBlock>,
    /// Live `IoAllocateIrp` IRPs.
    pub(crate) irps: SkipMap<usize, IrpRecord>,
    /// Live `IoAllocateMdl` MDLs, with the pages each spans.
    pub(crate) mdls: SkipMap<usize, usize>,
    /// The I/O manager's MDLs over direct-I/O callers' buffers, from the request's IRP until
    /// it is retired: `true` while the pages are locked (until the request completes).
    pub(crate) request_mdls: SkipMap<usize, std::sync::atomic::AtomicBool>,
    /// Partial MDLs (`IoBuildPartialMdl`) last built over a request's MDL: partial → source.
    pub(crate) partial_sources: SkipMap<usize, usize>,
    /// Successful `ExAllocatePool2` calls by tag.
    pub(crate) allocations_by_tag: SkipMap<u32, AtomicU64>,
    /// Live `IoSetCompletionRoutineEx` contexts.
    pub(crate) ex_contexts: AtomicUsize,
    pub(crate) stats: AtomicStats,
    /// [`crate::Profile::ALL`] index of the machine's profile.
    profile: AtomicU8,
}

pub(crate) static TABLES: LazyLock<Tables> = LazyLock::new(|| Tables {
    pool: SkipMap::new(),
    irps: SkipMap::new(),
    mdls: SkipMap::new(),
    request_mdls: SkipMap::new(),
    partial_sources: SkipMap::new(),
    allocations_by_tag: SkipMap::new(),
    ex_contexts: AtomicUsize::new(0),
    stats: AtomicStats::default(),
    profile: AtomicU8::new(0),
});

/// Clears the tables for a new machine.
pub(crate) fn reset_tables(profile: crate::Profile) {
    let tables = &*TABLES;
    tables.pool.clear();
    tables.irps.clear();
    tables.mdls.clear();
    tables.request_mdls.clear();
    tables.partial_sources.clear();
    tables.allocations_by_tag.clear();
    tables.ex_contexts.store(0, Ordering::Relaxed);
    tables.stats.reset();
    let index = crate::Profile::ALL
        .iter()
        .position(|p| *p == profile)
        .unwrap_or(0);
    tables
        .profile
        .store(u8::try_from(index).unwrap_or(0), Ordering::Relaxed);
}

/// Counts one successful `ExAllocatePool2` with `tag`.
pub(crate) fn count_allocation(tag: u32) {
    let tags = &TABLES.allocations_by_tag;
    // The tag's counter exists after its first allocation: one lookup from then on.
    let entry = tags
        .get(&tag)
        .unwrap_or_else(|| tags.get_or_insert_with(tag, || AtomicU64::new(0)));
    entry.value().fetch_add(1, Ordering::Relaxed);
}

/// [`Stats`] as atomic counters, bumped on any thread without a lock.
#[derive(Default)]
pub(crate) struct AtomicStats {
    pub(crate) pool_allocations: AtomicU64,
    pub(crate) irp_allocations: AtomicU64,
    pub(crate) mdl_allocations: AtomicU64,
    pub(crate) datagrams_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) irps_completed: AtomicU64,
    pub(crate) irps_pended: AtomicU64,
    pub(crate) faults_injected: AtomicU64,
    pub(crate) fault_points: AtomicU64,
    pub(crate) guarded_routines: AtomicU64,
    pub(crate) unguarded_routines: AtomicU64,
    pub(crate) completion_contexts: AtomicU64,
    pub(crate) irps_reused: AtomicU64,
    pub(crate) work_items: AtomicU64,
    /// The longest a completion routine ran, nanoseconds (a maximum, not a sum).
    pub(crate) longest_completion_ns: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl AtomicStats {
    const fn counters(&self) -> [&AtomicU64; 15] {
        [
            &self.pool_allocations,
            &self.irp_allocations,
            &self.mdl_allocations,
            &self.datagrams_sent,
            &self.bytes_sent,
            &self.irps_completed,
            &self.irps_pended,
            &self.faults_injected,
            &self.fault_points,
            &self.guarded_routines,
            &self.unguarded_routines,
            &self.completion_contexts,
            &self.irps_reused,
            &self.work_items,
            &self.longest_completion_ns,
        ]
    }

    fn reset(&self) {
        for counter in self.counters() {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> Stats {
        let [
            pool_allocations,
            irp_allocations,
            mdl_allocations,
            datagrams_sent,
            bytes_sent,
            irps_completed,
            irps_pended,
            faults_injected,
            fault_points,
            guarded_routines,
            unguarded_routines,
            completion_contexts,
            irps_reused,
            work_items,
            longest_completion_ns,
        ] = self.counters().map(|c| c.load(Ordering::Relaxed));
        Stats {
            pool_allocations,
            irp_allocations,
            mdl_allocations,
            datagrams_sent,
            bytes_sent,
            irps_completed,
            irps_pended,
            faults_injected,
            fault_points,
            guarded_routines,
            unguarded_routines,
            completion_contexts,
            irps_reused,
            work_items,
            longest_completion_ns,
            model_ns: crate::accounting::model_ns(),
        }
    }
}

/// Counts one work item routine run.
pub(crate) fn count_work_item() {
    bump(&TABLES.stats.work_items);
}

/// What the model tracks off the hot path. Guarded by one mutex, held only briefly: never
/// across a call back into driver code.
#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) events: HashSet<usize>,
    pub(crate) violations: Vec<Violation>,
    /// See [`crate::Config::unload_race_window`].
    pub(crate) unload_race_window: std::time::Duration,
    /// See [`crate::Config::unload_wait`].
    pub(crate) unload_wait: std::time::Duration,
    /// See [`crate::Config::wdf_wait_timeout`].
    pub(crate) wdf_wait_timeout: std::time::Duration,
}

static STATE: LazyLock<Mutex<Inner>> = LazyLock::new(|| Mutex::new(Inner::default()));

/// Signaled whenever an event, a rundown reference or a spin lock changes, so waiters in
/// `KeWaitForSingleObject` / `ExWaitForRundownProtectionRelease` re-check.
pub(crate) static WAKE: Condvar = Condvar::new();
/// The mutex `WAKE` pairs with; it also serializes event and rundown state changes.
pub(crate) static SYNC: Mutex<()> = Mutex::new(());

/// The Windows build the provider imitates.
pub(crate) fn profile() -> crate::Profile {
    crate::Profile::ALL[usize::from(TABLES.profile.load(Ordering::Relaxed))]
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

/// Outstanding objects, by kind.
pub(crate) fn leaks(sockets: usize, captures: usize, registrations: usize) -> Leaks {
    let tables = &*TABLES;
    let mut pool_by_tag = BTreeMap::new();
    let mut pool_bytes = 0;
    for entry in &tables.pool {
        *pool_by_tag.entry(tag_name(entry.value().tag)).or_insert(0) += 1;
        pool_bytes += entry.value().size;
    }
    Leaks {
        pool_bytes,
        pool_by_tag,
        irps: tables.irps.len(),
        mdls: tables.mdls.len(),
        sockets,
        npi_captures: captures,
        registrations,
        completion_contexts: tables.ex_contexts.load(Ordering::Relaxed),
        ..Leaks::default()
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
