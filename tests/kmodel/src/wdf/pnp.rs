//! The PnP and power package of a PnP device (`FxPkgPnp` / `FxPkgFdo`,
//! `shared/irphandlers/pnp/`): what KMDF does for the PnP IRPs the PnP manager sends, reduced
//! to the straight path a root-enumerated FDO takes (no resources, no interrupts, no idle or
//! wake, no stop/restart, no surprise removal).
//!
//! - `IRP_MN_START_DEVICE` (`PnpEventHardwareAvailable`, `pnpstatemachine.cpp:1365-1459`, and
//!   the power state machine's implicit D0, `powerstatemachine.cpp:2234-2473`):
//!   `EvtDevicePrepareHardware`, `EvtDeviceD0Entry(WdfPowerDeviceD3Final)`,
//!   `EvtDeviceD0EntryPostInterruptsEnabled`, the power-managed queues resume, self-managed I/O
//!   starts (`EvtDeviceSelfManagedIoInit`, or `...Restart`), then the device interfaces are
//!   enabled (`PnpEventEnableInterfaces`, `pnpstatemachine.cpp:1462-1499, 3434-3499`).
//! - `IRP_MN_QUERY_REMOVE_DEVICE` (`PnpEventQueryRemoveAskDriver`,
//!   `pnpstatemachine.cpp:1527-1587`): `EvtDeviceQueryRemove`; its failure vetoes the removal.
//! - `IRP_MN_REMOVE_DEVICE` after a query (`PnpEventQueriedRemoving` → power policy stop →
//!   `PowerGotoD3Stopped`, `powerstatemachine.cpp:2517-2658`): self-managed I/O suspends, the
//!   power-managed queues stop (`FxIoStopProcessingForPowerHold`),
//!   `EvtDeviceD0ExitPreInterruptsDisabled` and `EvtDeviceD0Exit(WdfPowerDeviceD3Final)`; then
//!   `PnpEventRemovingDisableInterfaces` (`pnpstatemachine.cpp:2296-2342`):
//!   `EvtDeviceReleaseHardware`, and `PnpCleanupForRemove` (`pnpstatemachine.cpp:2216-2293`):
//!   interfaces disabled, power-managed queues purged, `EvtDeviceSelfManagedIoFlush`; then
//!   `PnpEventRemovedCommonCode` (`pnpstatemachine.cpp:1995-2063`): the other queues purged,
//!   `EvtDeviceSelfManagedIoCleanup`, the device's objects disposed and destroyed; last,
//!   `FxPkgFdo::ProcessRemoveDeviceOverload` (`fxpkgfdo.cpp:1247-1274`) detaches and deletes
//!   the device object (`FxDevice::Destroy`, `fxdevicekm.cpp:332-391`).
//!
//! KMDF forwards each PnP IRP to the PDO below; the model's root bus driver has nothing to do
//! with them, so the framework completes them itself. Every callback runs at `PASSIVE_LEVEL`
//! (the PnP manager's thread; the device is power-pageable).

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IRP};
use windows_sys::Wdk::System::SystemServices::{
    IRP_MN_CANCEL_REMOVE_DEVICE, IRP_MN_QUERY_REMOVE_DEVICE, IRP_MN_REMOVE_DEVICE,
    IRP_MN_START_DEVICE,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INVALID_DEVICE_STATE, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
};
use wskudp_core::ddi::nt::io_get_current_irp_stack_location;
use wskudp_wdf_decls::{_WDF_POWER_DEVICE_STATE, WDF_PNPPOWER_EVENT_CALLBACKS};

use super::queue::{self, PowerStop};
use super::{device, framework, pointer, violation};
use crate::iomgr;

/// Where the device is in the PnP state machine (the states the model passes through).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `WdfDevStatePnpInit`: created, not started.
    Init,
    /// `IRP_MN_START_DEVICE` in progress (`WdfDevStatePnpHardwareAvailable` onwards).
    Starting,
    Started,
    /// Query-removed, waiting for the remove.
    QueryRemoved,
    /// The start failed: only the removal is left.
    Failed,
}

/// `FxSelfManagedIoMachine`'s states (`selfmanagediostatemachine.cpp:37-160`), for a device
/// with at least one self-managed I/O callback (`FxPkgPnp::RegisterCallbacks`,
/// `fxpkgpnp.cpp:2888-2900`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SelfManagedIo {
    Created,
    Started,
    Stopped,
    Failed,
    Flushed,
    Final,
}

/// A PnP device's package state.
pub(crate) struct PnpState {
    pub(crate) pdo: usize,
    callbacks: WDF_PNPPOWER_EVENT_CALLBACKS,
    pub(crate) phase: Phase,
    /// `EvtDevicePrepareHardware` was called (and `EvtDeviceReleaseHardware` is due).
    hardware: bool,
    /// In D0.
    pub(crate) powered: bool,
    smio: Option<SelfManagedIo>,
    /// Symbolic link names of the device's interfaces (`FxDeviceInterface`).
    pub(crate) interfaces: Vec<String>,
    /// The raw and translated resource lists (`m_ResourcesRaw`, `m_Resources`).
    resources: (usize, usize),
}

impl PnpState {
    /// The package of a new FDO on `pdo` with the driver's callbacks (all NULL without
    /// `WdfDeviceInitSetPnpPowerEventCallbacks`).
    pub(crate) fn new(
        pdo: usize,
        callbacks: Option<WDF_PNPPOWER_EVENT_CALLBACKS>,
        resources: (usize, usize),
    ) -> Self {
        let callbacks = callbacks.unwrap_or_default();
        let smio = (callbacks.EvtDeviceSelfManagedIoCleanup.is_some()
            || callbacks.EvtDeviceSelfManagedIoFlush.is_some()
            || callbacks.EvtDeviceSelfManagedIoInit.is_some()
            || callbacks.EvtDeviceSelfManagedIoSuspend.is_some()
            || callbacks.EvtDeviceSelfManagedIoRestart.is_some())
        .then_some(SelfManagedIo::Created);
        Self {
            pdo,
            callbacks,
            phase: Phase::Init,
            hardware: false,
            powered: false,
            smio,
            interfaces: Vec::new(),
            resources,
        }
    }
}

/// The device is past `WdfDevStatePnpInit`.
pub(crate) fn started(device: usize) -> bool {
    with(device, |p| p.phase != Phase::Init).unwrap_or(false)
}

/// The device is in D0.
pub(crate) fn powered(device: usize) -> bool {
    with(device, |p| p.powered).unwrap_or(false)
}

fn with<R>(device: usize, f: impl FnOnce(&mut PnpState) -> R) -> Option<R> {
    let mut fx = framework();
    fx.devices
        .by_handle
        .get_mut(&device)
        .and_then(|d| d.pnp.as_mut())
        .map(f)
}

fn callbacks(device: usize) -> WDF_PNPPOWER_EVENT_CALLBACKS {
    with(device, |p| p.callbacks).unwrap_or_default()
}

/// A PnP or power callback's status: `STATUS_NOT_SUPPORTED` from `EvtDevicePrepareHardware`
/// or `EvtDeviceQueryRemove` is a verifier break (`pnpstatemachine.cpp:1567-1576, 3605-3617`).
fn checked(callback: &str, status: NTSTATUS) -> NTSTATUS {
    if status == STATUS_NOT_SUPPORTED {
        violation(
            "WdfPnpCallbackNotSupported",
            format!(
                "{callback} returned STATUS_NOT_SUPPORTED, an invalid status for it (verifier break); the PnP operation fails"
            ),
        );
    }
    status
}

/// The framework's dispatch of `IRP_MJ_PNP` on a PnP device (`FxPkgPnp::Dispatch` and the
/// `FxPkgFdo` minor-function table, `fxpkgfdo.cpp:70-100`).
pub(crate) fn dispatch(device: usize, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: A delivered IRP with a current location.
    let minor = u32::from(unsafe { (*io_get_current_irp_stack_location(irp)).MinorFunction });
    match minor {
        IRP_MN_START_DEVICE => {
            let status = start(device);
            device::complete_irp(irp, status)
        }
        IRP_MN_QUERY_REMOVE_DEVICE => {
            let status = query_remove(device);
            device::complete_irp(irp, status)
        }
        IRP_MN_CANCEL_REMOVE_DEVICE => {
            let _ = with(device, |p| {
                if p.phase == Phase::QueryRemoved {
                    p.phase = Phase::Started;
                }
            });
            device::complete_irp(irp, STATUS_SUCCESS)
        }
        IRP_MN_REMOVE_DEVICE => {
            remove(device);
            // Removes always succeed (fxpkgpnp.cpp:2510-2512); the IRP goes down to the PDO,
            // then the FDO is detached and deleted (fxpkgfdo.cpp:1263-1271).
            let status = device::complete_irp(irp, STATUS_SUCCESS);
            delete(device);
            status
        }
        _ => {
            // Forwarded to the PDO, which leaves the status as it is.
            // SAFETY: A delivered IRP.
            let status = unsafe { (*irp).IoStatus.Anonymous.Status };
            device::complete_irp(irp, status)
        }
    }
}

/// `IRP_MN_START_DEVICE`.
fn start(device: usize) -> NTSTATUS {
    let starting = with(device, |p| {
        let init = p.phase == Phase::Init;
        if init {
            p.phase = Phase::Starting;
        }
        init
    });
    if starting != Some(true) {
        return STATUS_INVALID_DEVICE_STATE;
    }
    let table = callbacks(device);
    let handle = pointer(device);
    let (raw, translated) = with(device, |p| p.resources).unwrap_or_default();
    // PnpPrepareHardware (pnpstatemachine.cpp:3504-3645).
    let _ = with(device, |p| p.hardware = true);
    if let Some(prepare) = table.EvtDevicePrepareHardware {
        // SAFETY: The driver's callback with its device and resource lists.
        let status =
            super::at_passive(|| unsafe { prepare(handle, pointer(raw), pointer(translated)) });
        if checked("EvtDevicePrepareHardware", status) < 0 {
            let _ = with(device, |p| p.phase = Phase::Failed);
            return status;
        }
    }
    // PowerD0Starting and PowerD0StartingConnectInterrupt (powerstatemachine.cpp:2234-2343).
    let previous = _WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final;
    for entry in [
        table.EvtDeviceD0Entry,
        table.EvtDeviceD0EntryPostInterruptsEnabled,
    ]
    .into_iter()
    .flatten()
    {
        // SAFETY: The driver's D0 entry callback with its device and previous state.
        let status = super::at_passive(|| unsafe { entry(handle, previous) });
        if status < 0 {
            let _ = with(device, |p| p.phase = Phase::Failed);
            return status;
        }
    }
    let _ = with(device, |p| p.powered = true);
    // PowerD0StartingStartSelfManagedIo (powerstatemachine.cpp:2421-2473).
    queue::resume_for_power(device);
    let status = smio_start(device, &table);
    if status < 0 {
        let _ = with(device, |p| p.phase = Phase::Failed);
        return status;
    }
    // PnpEventEnableInterfaces.
    let links = with(device, |p| p.interfaces.clone()).unwrap_or_default();
    for link in links {
        let _ = iomgr::set_device_interface_state(&link, true);
    }
    let _ = with(device, |p| p.phase = Phase::Started);
    STATUS_SUCCESS
}

/// `FxSelfManagedIoMachine::Start`: `EvtDeviceSelfManagedIoInit` the first time,
/// `EvtDeviceSelfManagedIoRestart` after a suspend (`selfmanagediostatemachine.cpp:352-399, 443-484`).
fn smio_start(device: usize, table: &WDF_PNPPOWER_EVENT_CALLBACKS) -> NTSTATUS {
    let handle = pointer(device);
    let Some(state) = with(device, |p| p.smio).flatten() else {
        return STATUS_SUCCESS;
    };
    let callback = match state {
        SelfManagedIo::Created => table.EvtDeviceSelfManagedIoInit,
        SelfManagedIo::Stopped | SelfManagedIo::Flushed => table.EvtDeviceSelfManagedIoRestart,
        _ => return STATUS_SUCCESS,
    };
    let status = callback.map_or(STATUS_SUCCESS, |f| {
        // SAFETY: The driver's self-managed I/O callback with its device.
        super::at_passive(|| unsafe { f(handle) })
    });
    let _ = with(device, |p| {
        p.smio = Some(if status < 0 {
            SelfManagedIo::Failed
        } else {
            SelfManagedIo::Started
        });
    });
    status
}

/// `FxSelfManagedIoMachine::Suspend`, `Flush`, `Cleanup`: each callback only from the states
/// its event moves out of (`selfmanagediostatemachine.cpp:37-73`).
fn smio_event(device: usize, event: &str) {
    let table = callbacks(device);
    let handle = pointer(device);
    let Some(state) = with(device, |p| p.smio).flatten() else {
        return;
    };
    let next = match (event, state) {
        ("suspend", SelfManagedIo::Started) => {
            if let Some(suspend) = table.EvtDeviceSelfManagedIoSuspend {
                // SAFETY: The driver's EvtDeviceSelfManagedIoSuspend; a failure is traced and
                // the removal goes on (powerstatemachine.cpp:2561-2570).
                let _ = super::at_passive(|| unsafe { suspend(handle) });
            }
            SelfManagedIo::Stopped
        }
        ("flush", SelfManagedIo::Stopped | SelfManagedIo::Failed) => {
            if let Some(flush) = table.EvtDeviceSelfManagedIoFlush {
                // SAFETY: The driver's EvtDeviceSelfManagedIoFlush.
                super::at_passive(|| unsafe { flush(handle) });
            }
            SelfManagedIo::Flushed
        }
        ("cleanup", SelfManagedIo::Flushed) => {
            if let Some(cleanup) = table.EvtDeviceSelfManagedIoCleanup {
                // SAFETY: The driver's EvtDeviceSelfManagedIoCleanup.
                super::at_passive(|| unsafe { cleanup(handle) });
            }
            SelfManagedIo::Final
        }
        ("cleanup", SelfManagedIo::Created) => SelfManagedIo::Final,
        _ => return,
    };
    let _ = with(device, |p| p.smio = Some(next));
}

/// `IRP_MN_QUERY_REMOVE_DEVICE`.
fn query_remove(device: usize) -> NTSTATUS {
    if with(device, |p| p.phase) != Some(Phase::Started) {
        return STATUS_INVALID_DEVICE_STATE;
    }
    if let Some(query) = callbacks(device).EvtDeviceQueryRemove {
        // SAFETY: The driver's EvtDeviceQueryRemove.
        let status = super::at_passive(|| unsafe { query(pointer(device)) });
        if checked("EvtDeviceQueryRemove", status) < 0 {
            return status;
        }
    }
    let _ = with(device, |p| p.phase = Phase::QueryRemoved);
    STATUS_SUCCESS
}

/// `IRP_MN_REMOVE_DEVICE`: down from D0, hardware released, interfaces disabled, queues
/// purged, self-managed I/O flushed and cleaned up, the device's objects deleted.
fn remove(device: usize) {
    let table = callbacks(device);
    let handle = pointer(device);
    if with(device, |p| p.powered).unwrap_or(false) {
        // PowerGotoD3Stopped.
        smio_event(device, "suspend");
        queue::stop_for_power(device, PowerStop::Hold);
        let target = _WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final;
        for exit in [
            table.EvtDeviceD0ExitPreInterruptsDisabled,
            table.EvtDeviceD0Exit,
        ]
        .into_iter()
        .flatten()
        {
            // SAFETY: The driver's D0 exit callback; a failure is traced, removal goes on.
            let _ = super::at_passive(|| unsafe { exit(handle, target) });
        }
        let _ = with(device, |p| p.powered = false);
    }
    // PnpEventRemovingDisableInterfaces: PnpReleaseHardware (pnpstatemachine.cpp:3649-3723).
    if with(device, |p| std::mem::take(&mut p.hardware)).unwrap_or(false)
        && let Some(release) = table.EvtDeviceReleaseHardware
    {
        let translated = with(device, |p| p.resources.1).unwrap_or_default();
        // SAFETY: The driver's EvtDeviceReleaseHardware.
        let _ = super::at_passive(|| unsafe { release(handle, pointer(translated)) });
    }
    // PnpCleanupForRemove.
    let links = with(device, |p| p.interfaces.clone()).unwrap_or_default();
    for link in links {
        let _ = iomgr::set_device_interface_state(&link, false);
    }
    queue::stop_for_power(device, PowerStop::PurgeManaged);
    smio_event(device, "flush");
    // PnpEventRemovedCommonCode.
    queue::stop_for_power(device, PowerStop::PurgeNonManaged);
    smio_event(device, "cleanup");
}

/// The device's deletion after its removal: `EarlyDispose` and `DestroyChildren` (every
/// object under the device: cleanup, then destroy callbacks), then `FxDevice::Destroy`
/// (`fxdevicekm.cpp:332-391`): detach from the PDO and delete the device object.
pub(crate) fn delete(device: usize) {
    let (wdm, pdo) = {
        let fx = framework();
        let Some(state) = fx.devices.by_handle.get(&device) else {
            return;
        };
        (state.wdm, state.pnp.as_ref().map_or(0, |p| p.pdo))
    };
    device::finish_device_deletion(device);
    if pdo != 0 {
        iomgr::detach_device(pointer::<DEVICE_OBJECT>(pdo));
    }
    // SAFETY: The FDO's own device object, deleted once.
    unsafe { iomgr::io_delete_device(pointer(wdm)) };
}
