//! What a model run reports at shutdown.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// A broken kernel contract, named like the Driver Verifier check that would catch it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule (see the table in the crate docs).
    pub rule: &'static str,
    /// What happened, with addresses and values.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// Objects still outstanding when the driver was unloaded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Leaks {
    /// Live pool blocks, by tag.
    pub pool_by_tag: BTreeMap<String, usize>,
    /// Bytes in live pool blocks.
    pub pool_bytes: usize,
    /// IRPs from `IoAllocateIrp` not freed.
    pub irps: usize,
    /// MDLs from `IoAllocateMdl` not freed.
    pub mdls: usize,
    /// WSK sockets not closed.
    pub sockets: usize,
    /// `WskCaptureProviderNPI` without `WskReleaseProviderNPI`.
    pub npi_captures: usize,
    /// `WskRegister` without `WskDeregister`.
    pub registrations: usize,
    /// `IoSetCompletionRoutineEx` contexts whose IRP never completed.
    pub completion_contexts: usize,
    /// Device objects not deleted.
    pub device_objects: usize,
    /// Work items from `IoAllocateWorkItem` not freed.
    pub work_items: usize,
    /// Timers from `ExAllocateTimer` not deleted.
    pub timers: usize,
    /// Symbolic links not deleted.
    pub symbolic_links: usize,
    /// File objects (handles) still open.
    pub file_objects: usize,
    /// User-mode requests not completed.
    pub io_requests: usize,
    /// WDF objects (driver, devices, queues, requests, file objects) still alive.
    pub wdf_objects: usize,
}

impl Leaks {
    /// `true` when nothing is outstanding.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Counters over the whole run (for benchmarks: allocations and copies per datagram).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// `ExAllocatePool2` successes.
    pub pool_allocations: u64,
    /// `IoAllocateIrp` successes.
    pub irp_allocations: u64,
    /// `IoAllocateMdl` successes.
    pub mdl_allocations: u64,
    /// Datagrams the provider put on the wire (`sendmsg` calls that succeeded).
    pub datagrams_sent: u64,
    /// Payload bytes the provider put on the wire.
    pub bytes_sent: u64,
    /// IRPs the provider completed.
    pub irps_completed: u64,
    /// IRPs the provider completed with `STATUS_PENDING` returned first (asynchronously).
    pub irps_pended: u64,
    /// Faults injected by the fault plan.
    pub faults_injected: u64,
    /// Fault points passed (every fallible call counts one).
    pub fault_points: u64,
    /// Driver completion routines run under the device reference `IoSetCompletionRoutineEx`
    /// takes (the image cannot go while they run).
    pub guarded_routines: u64,
    /// Driver completion routines run without one (plain `IoSetCompletionRoutine`): an unload
    /// can unmap the image under them.
    pub unguarded_routines: u64,
    /// `IoSetCompletionRoutineEx` contexts the I/O manager allocated (one per call).
    pub completion_contexts: u64,
    /// `IoReuseIrp` calls.
    pub irps_reused: u64,
    /// Work item routines the system worker ran.
    pub work_items: u64,
    /// The longest run of a completion routine, nanoseconds of the thread's CPU time: the work
    /// a driver did at `DISPATCH_LEVEL` in one go ("a typical DPC routine should run for no
    /// more than 100 microseconds", "Guidelines for Writing DPC Routines"), without the host's
    /// preemption, which `DISPATCH_LEVEL` does not have.
    pub longest_completion_ns: u64,
    /// Nanoseconds spent in the model's own code since the process started (its checks and
    /// bookkeeping, not the driver's code or Linux's system calls).
    pub model_ns: u64,
}

/// The unload report: violations, leaks, counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every contract violation, in order.
    pub violations: Vec<Violation>,
    /// What was still outstanding at shutdown.
    pub leaked: Leaks,
    /// Counters.
    pub stats: Stats,
}

impl Report {
    /// `true` when there were no violations and nothing leaked.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.leaked.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return f.write_str("clean: no violations, nothing leaked");
        }
        for violation in &self.violations {
            writeln!(f, "violation {violation}")?;
        }
        if !self.leaked.is_empty() {
            write!(f, "leaked {:?}", self.leaked)?;
        }
        Ok(())
    }
}

/// A rule and a run that breaks it on purpose, returning the machine's report.
pub type RuleCase = (&'static str, fn() -> Report);

/// Of `cases`, those whose report does not name their rule, with the report.
#[must_use]
pub fn untripped(cases: &[RuleCase]) -> Vec<String> {
    cases
        .iter()
        .filter_map(|(rule, case)| {
            let report = case();
            (!report.violations.iter().any(|v| v.rule == *rule))
                .then(|| format!("{rule}: {report}"))
        })
        .collect()
}
