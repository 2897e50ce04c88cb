//! The seam between core and the kernel: every call into Windows goes through this module.
//!
//! Required symbols, listed in [`REQUIRED_SYMBOLS`]: on Windows they are imported from
//! `ntoskrnl.exe`, `hal.dll` (`KeQueryPerformanceCounter`, which wdm.h declares `NTHALAPI`) and
//! `netio.sys`; on the Linux host `tests/kmodel` exports each of them with
//! the same signature, so core runs unchanged. A kmodel test diffs its exports against this
//! list, and the `.sys` import-table check accepts nothing outside it (plus the front door's
//! own few imports).
//!
//! Outside `ddi`, code calls the Rust wrappers (`PoolBox`, `Mdl`, `Irp`, `Event`,
//! `SpinLock`, `Rundown`, `wsk::Registration`), never a raw DDI.

pub mod nt;
pub mod wsk;

/// `(module, symbol)` for every kernel function core imports.
pub const REQUIRED_SYMBOLS: &[(&str, &str)] = &[
    ("ntoskrnl.exe", "ExAcquireRundownProtection"),
    ("ntoskrnl.exe", "ExAcquireSpinLockExclusive"),
    ("ntoskrnl.exe", "ExAcquireSpinLockShared"),
    ("ntoskrnl.exe", "ExAllocatePool2"),
    ("ntoskrnl.exe", "ExAllocateTimer"),
    ("ntoskrnl.exe", "ExDeleteTimer"),
    ("ntoskrnl.exe", "ExFreePoolWithTag"),
    ("ntoskrnl.exe", "ExInitializeRundownProtection"),
    ("ntoskrnl.exe", "ExReleaseRundownProtection"),
    ("ntoskrnl.exe", "ExReleaseSpinLockExclusive"),
    ("ntoskrnl.exe", "ExReleaseSpinLockShared"),
    ("ntoskrnl.exe", "ExSetTimer"),
    ("ntoskrnl.exe", "ExWaitForRundownProtectionRelease"),
    ("ntoskrnl.exe", "IoAllocateIrp"),
    ("ntoskrnl.exe", "IoAllocateMdl"),
    ("ntoskrnl.exe", "IoAllocateWorkItem"),
    ("ntoskrnl.exe", "IoBuildPartialMdl"),
    ("ntoskrnl.exe", "IoCancelIrp"),
    ("ntoskrnl.exe", "IoFreeIrp"),
    ("ntoskrnl.exe", "IoFreeMdl"),
    ("ntoskrnl.exe", "IoFreeWorkItem"),
    ("ntoskrnl.exe", "IoQueueWorkItem"),
    ("ntoskrnl.exe", "IoReuseIrp"),
    ("ntoskrnl.exe", "IoSetCompletionRoutineEx"),
    ("ntoskrnl.exe", "KeGetCurrentIrql"),
    ("ntoskrnl.exe", "KeInitializeEvent"),
    ("ntoskrnl.exe", "KeSetEvent"),
    ("ntoskrnl.exe", "KeWaitForSingleObject"),
    ("ntoskrnl.exe", "MmBuildMdlForNonPagedPool"),
    ("hal.dll", "KeQueryPerformanceCounter"),
    ("netio.sys", "WskCaptureProviderNPI"),
    ("netio.sys", "WskDeregister"),
    ("netio.sys", "WskRegister"),
    ("netio.sys", "WskReleaseProviderNPI"),
];
