//! A host model of the Windows kernel, for running `wskudp-core` unchanged on Linux.
//!
//! It exports, with `#[unsafe(export_name)] extern "system"`, exactly the DDIs core imports
//! (`wskudp_core::ddi::REQUIRED_SYMBOLS`), and enforces the contracts Driver Verifier
//! enforces: each violation is recorded with the rule it breaks, and a [`Report`] at shutdown
//! lists them with every leak (pool by tag, IRPs, MDLs, sockets, NPI captures, registrations).
//! Its WSK provider sends real UDP through Linux sockets, translating the Windows control
//! buffer into Linux control messages.
//!
//! | rule | what broke (Windows would...) |
//! |---|---|
//! | `IrqlTooHigh` | a DDI called above its maximum IRQL (Verifier IRQL checking, 0xC4) |
//! | `IrqlNotRestored` | a completion routine returned at another IRQL |
//! | `PoolFreeUnknown` / `PoolTagMismatch` / `PoolFlags` / `PoolTagZero` / `ExecutablePool` | bad pool call (0xC2 `BAD_POOL_CALLER`, code integrity) |
//! | `IoAllocateFree` | `IoFreeIrp` of an IRP not from `IoAllocateIrp`, or twice (DDI rule) |
//! | `IrpFreedInFlight` | `IoFreeIrp` before the provider completed the IRP |
//! | `IrpNotDriverAllocated` / `IrpAlreadyInFlight` / `IrpReusedWithoutReset` | an IRP handed to WSK that is not a fresh driver-allocated one (0xC9) |
//! | `IrpCompletionRoutine` | no completion routine invoked on success, error and cancel |
//! | `IrpCompletedPastDriver` | no routine returned `STATUS_MORE_PROCESSING_REQUIRED` (the I/O manager would touch an IRP it does not own) |
//! | `IrpCompletedPending` | an IRP completed with `STATUS_PENDING` (0xC9) |
//! | `MdlNotNonPagedPool` / `MdlNotLocked` / `MdlBufferFreed` / `MdlFreedInFlight` / `WskBufTooShort` | an MDL chain that does not describe locked, live memory until completion |
//! | `IrpReusedInFlight` / `IoReuseIrpNotAllocated` / `IoReuseIrpCancelRoutine` | `IoReuseIrp` of an IRP still with the provider, not from `IoAllocateIrp`, or with a cancel routine set (`IoReuseIrp` page) |
//! | `WskCallInCompletion` | a WSK call from inside an IRP's completion routine ("Using IRPs with Winsock Kernel Functions") |
//! | `PartialMdlTarget` / `PartialMdlSource` / `PartialMdlSourceNotLocked` / `PartialMdlOutsideSource` / `PartialMdlTooSmall` / `PartialMdlReusedMapped` | `IoBuildPartialMdl` outside its contract: target or source not an MDL, source pages not locked, range outside the source, target too small, a mapped partial rebuilt without `MmPrepareMdlForReuse` |
//! | `DirectIoUnlockedInFlight` | a WSK send reads a direct-I/O request's buffer after the request completed and the I/O manager unlocked it (KMDF DDI rule `MdlAfterReqCompletedIoctl`) |
//! | `WorkItemUnknown` / `WorkItemQueuedTwice` / `WorkItemFreedQueued` / `WorkItemQueueType` / `WorkItemDevice` / `WorkItemRoutine` | `IoAllocateWorkItem` / `IoQueueWorkItem` / `IoFreeWorkItem` misuse (their pages: one queuing at a time, not freed while queued) |
//! | `TimerUnknown` / `ExAllocateTimerFlags` / `ExSetTimerAbsolute` / `ExDeleteTimerWaitWithoutCancel` | `ExAllocateTimer` / `ExSetTimer` / `ExDeleteTimer` misuse (their pages) |
//! | `BufferFreedInFlight` | remote address or control buffer freed before completion |
//! | `CmsgPaddingNotZero` | a control message with non-zero padding (the model's own rule: Windows documents none) |
//! | `CmsgMisaligned` | a `ControlInfo` not aligned as a `WSACMSGHDR` (8 on x64) |
//! | `CmsgStrayBytes` | `ControlInfoLength` leaves bytes after the last control message (not the sum of `WSA_CMSG_SPACE`) |
//! | `WskControlSocketWithoutIrp` | `WskControlSocket` without the IRP every modelled option and IOCTL requires |
//! | `WskBufListCycle` | a `WSK_BUF_LIST` that does not end (the model's own bound: Windows documents none) |
//! | `EventNotInitialized` / `RundownNotInitialized` / `RundownReleaseWithoutAcquire` | misused dispatcher objects |
//! | `SpinLockNotHeld` / `SpinLockIrql` | unbalanced spin lock |
//! | `WskRegistration` / `WskReleaseWithoutCapture` / `WskDeregisterWithCapture` / `WskDeregisterWithSockets` | WSK client lifecycle (the last two would hang `WskDeregister`) |
//! | `WskUnknownSocket` / `WskSocketClosed` / `WskClient` | calls on sockets or clients the provider does not know |
//! | `InformationExceedsOutputBuffer` | an IOCTL or read completed with more `Information` than the caller's buffer holds |
//! | `KernelHandleExpected` / `KernelHandleLeaked` | an object handle that is not a kernel handle, or never closed |
//!
//! Unrecoverable states (`SpinLockRecursion`, `NoMoreIrpStackLocations`,
//! `DPC_WATCHDOG_VIOLATION`: a thread spinning at `DISPATCH_LEVEL` on a KMDF spin lock whose
//! owner never releases it, bugcheck 0x133; `IoNotModelled`) abort the process with the rule's
//! name, as a bugcheck would, after printing the violations recorded so far.
//!
//! One [`Machine`] exists per process at a time ([`Machine::boot`] waits for the previous
//! one to shut down); IRQL is per thread.

pub mod accounting;
mod cancel;
mod clock;
mod completion;
pub mod explore;
mod faults;
pub mod iomgr;
mod irp;
pub mod irql;
mod mdl;
mod object;
mod pool;
pub mod profile;
mod report;
mod security;
mod state;
mod sync;
mod timer;
pub mod wdf;
mod workitem;
pub(crate) mod wsk;

use std::sync::{Condvar, Mutex};

pub use completion::{
    CompletionMode, Order, held_completions, held_datagrams, release_held, release_held_for,
    release_held_nth,
};
pub use faults::FaultPlan;
pub use profile::Profile;
pub use report::{Leaks, Report, RuleCase, Stats, Violation, untripped};
pub use security::{Access, Caller};
pub use workitem::{hold_work_items, quiesce_work_items};
pub use wsk::{
    PROVIDER_WSK_VERSION, fail_sends_at_once, force_close_sockets, open_sockets, pend_closes,
};

/// Every symbol this crate exports for core to link against.
pub const EXPORTS: &[&str] = &[
    "ExAcquireRundownProtection",
    "ExAcquireSpinLockExclusive",
    "ExAcquireSpinLockShared",
    "ExAllocatePool2",
    "ExAllocateTimer",
    "ExDeleteTimer",
    "ExFreePoolWithTag",
    "ExInitializeRundownProtection",
    "ExReleaseRundownProtection",
    "ExReleaseSpinLockExclusive",
    "ExReleaseSpinLockShared",
    "ExSetTimer",
    "ExWaitForRundownProtectionRelease",
    "IoAllocateIrp",
    "IoAllocateMdl",
    "IoAllocateWorkItem",
    "IoBuildPartialMdl",
    "IoCancelIrp",
    "IoFreeIrp",
    "IoFreeMdl",
    "IoFreeWorkItem",
    "IoQueueWorkItem",
    "IoReuseIrp",
    "IoSetCompletionRoutineEx",
    "KeGetCurrentIrql",
    "KeInitializeEvent",
    "KeQueryPerformanceCounter",
    "KeSetEvent",
    "KeWaitForSingleObject",
    "MmBuildMdlForNonPagedPool",
    "WskCaptureProviderNPI",
    "WskDeregister",
    "WskRegister",
    "WskReleaseProviderNPI",
];

/// Each export has exactly the signature core declares: the two function items only unify if
/// their types are identical, so a mismatch does not compile.
#[allow(dead_code, clippy::too_many_lines)]
fn exports_match_declarations() {
    macro_rules! same {
        ($declared:path, $exported:path) => {
            let _ = if true { $declared } else { $exported };
        };
    }
    use windows_sys::Wdk::System::SystemServices as nt;
    use wskudp_core::ddi::wsk as netio;
    same!(
        nt::ExAcquireRundownProtection,
        sync::ex_acquire_rundown_protection
    );
    same!(
        nt::ExAcquireSpinLockExclusive,
        sync::ex_acquire_spin_lock_exclusive
    );
    same!(
        nt::ExAcquireSpinLockShared,
        sync::ex_acquire_spin_lock_shared
    );
    same!(nt::ExAllocatePool2, pool::ex_allocate_pool2);
    same!(nt::ExFreePoolWithTag, pool::ex_free_pool_with_tag);
    same!(nt::ExFreePool, pool::ex_free_pool);
    same!(
        nt::ExInitializeRundownProtection,
        sync::ex_initialize_rundown_protection
    );
    same!(
        nt::ExReleaseRundownProtection,
        sync::ex_release_rundown_protection
    );
    same!(
        nt::ExReleaseSpinLockExclusive,
        sync::ex_release_spin_lock_exclusive
    );
    same!(
        nt::ExReleaseSpinLockShared,
        sync::ex_release_spin_lock_shared
    );
    same!(
        nt::ExWaitForRundownProtectionRelease,
        sync::ex_wait_for_rundown_protection_release
    );
    same!(nt::IoAllocateIrp, irp::io_allocate_irp);
    same!(nt::IoReuseIrp, irp::io_reuse_irp);
    same!(nt::ExAllocateTimer, timer::ex_allocate_timer);
    same!(nt::ExSetTimer, timer::ex_set_timer);
    same!(nt::ExCancelTimer, timer::ex_cancel_timer);
    same!(nt::ExDeleteTimer, timer::ex_delete_timer);
    same!(nt::IoBuildPartialMdl, mdl::io_build_partial_mdl);
    same!(nt::IoAllocateWorkItem, workitem::io_allocate_work_item);
    same!(nt::IoQueueWorkItem, workitem::io_queue_work_item);
    same!(nt::IoFreeWorkItem, workitem::io_free_work_item);
    same!(
        nt::KeQueryPerformanceCounter,
        clock::ke_query_performance_counter
    );
    same!(nt::IoAllocateMdl, mdl::io_allocate_mdl);
    same!(nt::IoFreeIrp, irp::io_free_irp);
    same!(nt::IoCancelIrp, irp::io_cancel_irp);
    same!(nt::IoFreeMdl, mdl::io_free_mdl);
    same!(
        nt::IoSetCompletionRoutineEx,
        irp::io_set_completion_routine_ex
    );
    same!(nt::IoCreateDevice, iomgr::io_create_device);
    same!(nt::IoDeleteDevice, iomgr::io_delete_device);
    same!(nt::IoCreateSymbolicLink, iomgr::io_create_symbolic_link);
    same!(nt::IoDeleteSymbolicLink, iomgr::io_delete_symbolic_link);
    same!(nt::IofCompleteRequest, iomgr::iof_complete_request);
    same!(
        nt::IoAcquireCancelSpinLock,
        cancel::io_acquire_cancel_spin_lock
    );
    same!(
        nt::IoReleaseCancelSpinLock,
        cancel::io_release_cancel_spin_lock
    );
    same!(nt::KeGetCurrentIrql, sync::ke_get_current_irql);
    same!(nt::KeInitializeEvent, sync::ke_initialize_event);
    same!(nt::KeSetEvent, sync::ke_set_event);
    same!(nt::KeWaitForSingleObject, sync::ke_wait_for_single_object);
    same!(
        nt::MmBuildMdlForNonPagedPool,
        mdl::mm_build_mdl_for_non_paged_pool
    );
    same!(netio::WskCaptureProviderNPI, wsk::wsk_capture_provider_npi);
    same!(netio::WskDeregister, wsk::wsk_deregister);
    same!(netio::WskRegister, wsk::wsk_register);
    same!(netio::WskReleaseProviderNPI, wsk::wsk_release_provider_npi);
}

/// How a machine behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// When the WSK provider completes IRPs.
    pub completion: CompletionMode,
    /// Which fallible calls fail.
    pub faults: FaultPlan,
    /// How long a driver completion routine that no device reference protects (one set with
    /// plain `IoSetCompletionRoutine`) is held after it sets an event or releases a rundown
    /// reference: the window in which an unload can overtake it. Zero in normal runs.
    pub unload_race_window: std::time::Duration,
    /// How long `sc stop` waits for the driver's device objects to go before the model reports
    /// `DriverNotUnloaded` (20 s by default; Windows waits forever, the image staying loaded).
    pub unload_wait: std::time::Duration,
    /// KMDF's verifier wait timeout (`DbgWaitForSignalTimeoutInSec`, 60 s by default,
    /// `shared/object/globals.cpp:1089`): how long a framework wait (a queue stopping, a power
    /// transition, a timer's callback) may last before the verifier breaks. KMDF keeps waiting
    /// after the break; the model reports `WdfWaitForSignalTimeout` and stops waiting.
    pub wdf_wait_timeout: std::time::Duration,
    /// The Windows build the WSK provider imitates: which options and control messages it
    /// honours, ignores or refuses, and whether it has `WskSendMessages`
    /// ([`profile::rules`]).
    pub profile: Profile,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            completion: CompletionMode::Inline,
            faults: FaultPlan::None,
            unload_race_window: std::time::Duration::ZERO,
            unload_wait: std::time::Duration::from_secs(20),
            wdf_wait_timeout: std::time::Duration::from_mins(1),
            profile: Profile::Windows11,
        }
    }
}

/// Whether a machine is running in this process (the model's state is process-wide).
static MACHINE_IN_USE: Mutex<bool> = Mutex::new(false);
static MACHINE_FREED: Condvar = Condvar::new();

/// One simulated machine: boot it, load the driver (create core's `Driver`), use it, unload
/// the driver, then [`Machine::shutdown`] for the report.
#[must_use = "shut the machine down to get its report"]
pub struct Machine {
    running: bool,
}

impl Machine {
    /// Boots a fresh machine, waiting for any other machine of this process to shut down.
    pub fn boot(config: Config) -> Self {
        let mut in_use = MACHINE_IN_USE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *in_use {
            in_use = MACHINE_FREED
                .wait(in_use)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *in_use = true;
        drop(in_use);
        *state::lock() = state::Inner {
            unload_race_window: config.unload_race_window,
            unload_wait: config.unload_wait,
            wdf_wait_timeout: config.wdf_wait_timeout,
            ..state::Inner::default()
        };
        state::reset_tables(config.profile);
        sync::reset();
        faults::start(config.faults);
        wsk::reset();
        workitem::reset();
        timer::reset();
        iomgr::reset();
        object::reset();
        wdf::reset();
        completion::start(config.completion);
        Self { running: true }
    }

    /// Counters so far (e.g. allocations per datagram in a benchmark).
    #[must_use]
    pub fn stats(&self) -> Stats {
        state::TABLES.stats.snapshot()
    }

    /// Successful `ExAllocatePool2` calls so far, by tag.
    #[must_use]
    pub fn allocations_by_tag(&self) -> std::collections::BTreeMap<String, u64> {
        state::TABLES
            .allocations_by_tag
            .iter()
            .map(|entry| {
                (
                    state::tag_name(*entry.key()),
                    entry.value().load(std::sync::atomic::Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Completes anything still queued, stops the provider, and reports violations and
    /// everything still outstanding. Call after the driver was unloaded.
    #[must_use]
    pub fn shutdown(mut self) -> Report {
        self.running = false;
        completion::stop();
        let work_items = workitem::stop();
        let timers = timer::stop();
        object::check_closed();
        let (sockets, captures, registrations) = wsk::outstanding();
        let (device_objects, file_objects, io_requests) = iomgr::outstanding();
        let symbolic_links = iomgr::links();
        let wdf_objects = wdf::outstanding();
        let report = {
            let mut leaked = state::leaks(sockets, captures, registrations);
            leaked.device_objects = device_objects;
            leaked.work_items = work_items;
            leaked.timers = timers;
            leaked.file_objects = file_objects;
            leaked.io_requests = io_requests;
            leaked.symbolic_links = symbolic_links;
            leaked.wdf_objects = wdf_objects;
            Report {
                violations: state::lock().violations.clone(),
                leaked,
                stats: state::TABLES.stats.snapshot(),
            }
        };
        pool::drain_quarantine();
        report
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if self.running {
            completion::stop();
            let _ = workitem::stop();
            let _ = timer::stop();
        }
        *MACHINE_IN_USE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        MACHINE_FREED.notify_one();
    }
}
