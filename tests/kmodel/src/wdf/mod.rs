//! A model of KMDF 1.33, written from the framework's published source
//! (microsoft/Windows-Driver-Frameworks, commit b6191d9, MIT) so that the shipping KMDF front
//! door runs here unchanged.
//!
//! As an outside check of the model, the KMDF echo sample of windows-rust-driver-samples (a PnP
//! driver) runs over it too.
//!
//! It exports what the `WdfDriverEntry.lib` stub links a driver against — `WdfFunctions_01033`
//! (the function table), `WdfDriverGlobals`, `WdfFunctionCount` — and [`fx_driver_entry`] does
//! what `FxDriverEntry` does: bind (fill those three), call `DriverEntry`, and on failure
//! delete the driver's WDF objects without `EvtDriverUnload`; on success displace
//! `DriverUnload` so that unload reaches `FxDriver::Unload` and then unbinds.
//!
//! Every function the table offers implements KMDF's semantics for a non-PnP driver with a
//! control device, and for a PnP driver with an FDO over a root-enumerated PDO: configuration
//! fields honoured as KMDF honours them (queue dispatch type, presentation limits, power
//! management (forced off for control devices), default queue, zero-length requests,
//! file-object class, request attributes), request presentation inside the dispatch routine or
//! in the completing thread, buffers and request memory, completion, cancellation, file-object
//! callbacks, contexts and deletion order (with each object's own dispose: queues purge,
//! timers stop), `AddDevice`, start and removal with their PnP and power callbacks and
//! self-managed I/O (`pnp`), device interfaces, timers and spin locks (`sync`), strings and
//! the version DDIs (`string`). Each check
//! KMDF or its verifier makes on these paths becomes a named violation (listed with its
//! source in [`CHECKS`]); behaviour that is not a check (a parallel queue with
//! `NumberOfPresentedRequests == 0` never presenting a request, say) is reproduced, not
//! reported. The model runs as KMDF does with its verifier on (`VerifierOn`), which is how the
//! runbook runs the driver. Table entries the model does not implement stop the machine with
//! `WdfFunctionNotModelled` and the entry's index (wdffuncenum.h).
//!
//! Source paths below are relative to `src/framework/` of that repository.

mod checks;
mod device;
mod objects;
mod pnp;
mod queue;
mod string;
mod sync;
mod table;

use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use windows_sys::Wdk::Foundation::DRIVER_OBJECT;
use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};
use wskudp_wdf_decls::{ULONG, WDF_DRIVER_GLOBALS, WDFFUNC};

pub use checks::{CHECKS, Check, checks_table};

use crate::iomgr::DriverEntry;
use crate::state;

/// `WdfFunctions_01033`: the table a bound driver calls through (wdf.h:60-63).
// SAFETY: The symbol name is the one KMDF 1.33 drivers link against; nothing else in the
// process defines it (the real one lives in WdfDriverEntry.lib, not linked here).
#[unsafe(export_name = "WdfFunctions_01033")]
pub static mut WDF_FUNCTIONS: *const WDFFUNC = std::ptr::null();

/// `WdfDriverGlobals` (wdffuncenum.h:21).
// SAFETY: As above.
#[unsafe(export_name = "WdfDriverGlobals")]
pub static mut WDF_DRIVER_GLOBALS: *mut WDF_DRIVER_GLOBALS = std::ptr::null_mut();

/// `WdfFunctionCount` (wdffuncenum.h:91).
// SAFETY: As above.
#[unsafe(export_name = "WdfFunctionCount")]
pub static mut WDF_FUNCTION_COUNT: ULONG = 0;

/// The function table a bound driver calls through (null when no driver is bound), for tests
/// that call an entry directly.
#[must_use]
pub fn function_table() -> *const WDFFUNC {
    // SAFETY: Reading the pointer value, written only at bind and unbind.
    unsafe { WDF_FUNCTIONS }
}

/// The model's framework state: one bound driver at a time, as one machine runs one driver.
#[derive(Default)]
pub(crate) struct Framework {
    pub(crate) objects: objects::Objects,
    pub(crate) devices: device::Devices,
    pub(crate) queues: queue::Queues,
    pub(crate) timers: sync::Timers,
    pub(crate) locks: sync::SpinLocks,
    pub(crate) strings: string::Strings,
    /// The bound driver's globals (`FX_DRIVER_GLOBALS::Public`), while bound.
    pub(crate) globals: usize,
    /// The WDFDRIVER, once `WdfDriverCreate` succeeded.
    pub(crate) driver: Option<usize>,
    pub(crate) driver_object: usize,
    /// `DriverObject->DriverUnload` before the stub displaced it (`FxDriver::Unload` or none).
    pub(crate) saved_unload: windows_sys::Wdk::Foundation::DRIVER_UNLOAD,
    pub(crate) evt_driver_unload: wskudp_wdf_decls::PFN_WDF_DRIVER_UNLOAD,
    pub(crate) evt_driver_device_add: wskudp_wdf_decls::PFN_WDF_DRIVER_DEVICE_ADD,
}

// SAFETY: The framework state holds copies of the driver's configuration structures, whose
// raw pointers are function pointers, static type infos and handles: plain addresses, only
// touched under the FRAMEWORK mutex.
#[allow(clippy::non_send_fields_in_send_ty, reason = "see the SAFETY note")]
unsafe impl Send for Framework {}

static FRAMEWORK: LazyLock<Mutex<Framework>> = LazyLock::new(Mutex::default);

pub(crate) fn framework() -> MutexGuard<'static, Framework> {
    FRAMEWORK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forgets everything (a new machine).
pub(crate) fn reset() {
    // Timer threads of the previous machine find their timer gone and end.
    *framework() = Framework::default();
}

/// WDF objects still alive (for the leak report): none may outlive the driver.
pub(crate) fn outstanding() -> usize {
    framework().objects.live()
}

/// Records a KMDF check that failed: `rule` names it as [`CHECKS`] does.
pub(crate) fn violation(rule: &'static str, detail: String) {
    debug_assert!(
        CHECKS.iter().any(|check| check.rule == rule),
        "{rule} is not in CHECKS"
    );
    state::violation(rule, detail);
}

/// A required pointer argument `what` of `api` is NULL (bugcheck 0x10D).
pub(crate) fn null_parameter(api: &str, what: &str) {
    violation(
        "WDF_REQUIRED_PARAMETER_IS_NULL",
        format!("{api}: {what} is NULL (bugcheck 0x10D)"),
    );
}

/// Whether `api` is called above `PASSIVE_LEVEL` (recorded if so).
pub(crate) fn above_passive(api: &str) -> bool {
    let above = crate::irql::current() > crate::irql::PASSIVE_LEVEL;
    if above {
        violation("WdfIrqlAbovePassive", format!("{api} above PASSIVE_LEVEL"));
    }
    above
}

/// The UTF-16 of `text` if it is well formed (`FxValidateUnicodeString`,
/// `shared/inc/private/common/fxvalidatefunctions.hpp:114-160`).
pub(crate) fn unicode_units(text: &UNICODE_STRING) -> Option<&[u16]> {
    if !text.Length.is_multiple_of(2)
        || !text.MaximumLength.is_multiple_of(2)
        || text.Length > text.MaximumLength
        || (text.MaximumLength > 0 && text.Buffer.is_null())
    {
        return None;
    }
    if text.Length == 0 {
        return Some(&[]);
    }
    // SAFETY: `Length` bytes of UTF-16 at `Buffer` (checked above; the driver's string).
    Some(unsafe { std::slice::from_raw_parts(text.Buffer, usize::from(text.Length / 2)) })
}

/// `FxDriverEntry`: binds the driver to the model's framework, calls its `DriverEntry`, and
/// unbinds again if it fails (deleting whatever WDF objects it made, without
/// `EvtDriverUnload`: `kmdf/src/librarycommon/fxlibrarycommon.cpp:645-652`). On success, when
/// `WdfDriverCreate` set `DisplaceDriverUnload`, `DriverUnload` becomes the stub's, which runs
/// `FxDriver::Unload` and then unbinds (the stub itself is not in the published source; its
/// behaviour is documented on the WDF page "`DriverEntry` for KMDF drivers").
pub(crate) fn fx_driver_entry(
    entry: DriverEntry,
    driver_object: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    bind(driver_object);
    // SAFETY: The driver's entry point with the loader's arguments.
    let status = unsafe { entry(driver_object, registry_path) };
    if status < 0 {
        device::delete_driver_objects();
        unbind();
        return status;
    }
    let displace = {
        let fx = framework();
        let globals = std::ptr::with_exposed_provenance::<WDF_DRIVER_GLOBALS>(fx.globals);
        // SAFETY: The bound globals, alive until unbind.
        !globals.is_null() && unsafe { (*globals).DisplaceDriverUnload } != 0
    };
    if displace {
        // SAFETY: The driver object is the loader's, alive for the process.
        let current = unsafe { (*driver_object).DriverUnload };
        framework().saved_unload = current;
        // SAFETY: As above.
        unsafe { (*driver_object).DriverUnload = Some(fx_stub_driver_unload) };
    }
    // The stub returns STATUS_SUCCESS, not DriverEntry's exact success code.
    windows_sys::Win32::Foundation::STATUS_SUCCESS
}

/// `FxStubDriverUnload`: the saved unload routine (`FxDriver::Unload`), then unbind.
unsafe extern "system" fn fx_stub_driver_unload(driver_object: *const DRIVER_OBJECT) {
    let saved = framework().saved_unload;
    if let Some(unload) = saved {
        // SAFETY: The unload routine WdfDriverCreate installed, with its driver object.
        unsafe { unload(driver_object) };
    }
    unbind();
}

fn bind(driver_object: *mut DRIVER_OBJECT) {
    let globals = Box::into_raw(Box::new(WDF_DRIVER_GLOBALS::default()));
    {
        let mut fx = framework();
        fx.globals = globals.expose_provenance();
        fx.driver_object = driver_object.expose_provenance();
    }
    // SAFETY: Written before DriverEntry runs and read only by the bound driver.
    unsafe {
        WDF_FUNCTIONS = table::table();
        WDF_FUNCTION_COUNT = table::COUNT;
        WDF_DRIVER_GLOBALS = globals;
    }
}

fn unbind() {
    let globals = {
        let mut fx = framework();
        fx.driver = None;
        std::mem::take(&mut fx.globals)
    };
    // SAFETY: The driver is gone; nothing reads these any more.
    unsafe {
        WDF_FUNCTIONS = std::ptr::null();
        WDF_FUNCTION_COUNT = 0;
        WDF_DRIVER_GLOBALS = std::ptr::null_mut();
    }
    if globals != 0 {
        // SAFETY: Made by `bind` with Box::into_raw.
        drop(unsafe {
            Box::from_raw(std::ptr::with_exposed_provenance_mut::<WDF_DRIVER_GLOBALS>(
                globals,
            ))
        });
    }
}

/// The driver globals pointer is the first argument of every call: it must be the bound one.
pub(crate) fn check_globals(globals: *mut WDF_DRIVER_GLOBALS, api: &str) -> bool {
    let bound = framework().globals;
    if globals.expose_provenance() != bound || bound == 0 {
        violation(
            "WdfDriverGlobalsMismatch",
            format!("{api} called with driver globals {globals:p}, not the bound driver's"),
        );
        return false;
    }
    true
}

/// A pointer argument as an address (for maps).
pub(crate) fn address<T>(pointer: *const T) -> usize {
    pointer.expose_provenance()
}

/// An address back to a pointer.
pub(crate) const fn pointer<T>(address: usize) -> *mut T {
    std::ptr::with_exposed_provenance_mut(address)
}

/// Runs a driver callback at the caller's IRQL (KMDF drops its locks and calls back at the IRQL
/// of the thread that dispatches: `DispatchEvents` unlocks to `PreviousIrql` before
/// `DispatchRequestToDriver`, `fxioqueue.cpp:3120-3125`), checking that it returns at it.
pub(crate) fn in_callback<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let entered = crate::irql::current();
    let result = f();
    let after = crate::irql::set(entered);
    if after != entered {
        state::violation(
            "IrqlNotRestored",
            format!(
                "{what} returned at IRQL {after}, entered at IRQL {entered} (the enhanced verifier's WDF_VERIFIER_IRQL_MISMATCH, bugcheck 0x10D; the model restores the IRQL and goes on)"
            ),
        );
    }
    result
}

/// `FX_DRIVER_GLOBALS::WaitForSignal` (`shared/object/globals.cpp:1715-1760`): waits until
/// `done` holds; with the verifier on, every `DbgWaitForSignalTimeoutInSec` (60 s,
/// `globals.cpp:1089`; [`crate::Config::wdf_wait_timeout`]) it prints "Thread is `reason`
/// `handle`" and breaks. The model reports the first such break as `WdfWaitForSignalTimeout`
/// and stops waiting (KMDF waits on: a hang). Returns whether `done` came true.
pub(crate) fn wait_for_signal(reason: &str, handle: usize, mut done: impl FnMut() -> bool) -> bool {
    let timeout = state::lock().wdf_wait_timeout;
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            violation(
                "WdfWaitForSignalTimeout",
                format!(
                    "the framework is {reason} {handle:#x} for more than {} s (a verifier break; KMDF keeps waiting: the thread hangs)",
                    timeout.as_secs_f32()
                ),
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The framework's own part of deleting an object of `kind` (its `FxObject::Dispose()`), run
/// before the driver's cleanup callback for it.
pub(crate) fn dispose(kind: objects::Kind, handle: usize) {
    match kind {
        objects::Kind::Queue => queue::dispose(handle),
        objects::Kind::Timer => sync::dispose_timer(handle),
        objects::Kind::SpinLock => sync::forget_lock(handle),
        objects::Kind::String => string::forget(handle),
        _ => {}
    }
}

/// Runs a driver callback at `PASSIVE_LEVEL` (the device's execution level): callbacks are
/// never run with the framework lock held. A callback must return at the IRQL it was called
/// at: the enhanced verifier's `VerifyIrqlExit` bugchecks with `WDF_VERIFIER_IRQL_MISMATCH`
/// otherwise (`shared/enhancedverif/km/vfprivkm.hpp:43-61`), around the PnP/power and queue
/// callbacks it hooks (`shared/enhancedverif/vfeventhooks.cpp`, e.g.
/// `VfEvtDevicePrepareHardware` at :217). It checks none of the other callbacks run here
/// (`EvtDriverDeviceAdd`, `EvtDriverUnload`, file, cleanup and work-item callbacks); for those
/// the model applies the same rule on its own.
pub(crate) fn at_passive<R>(f: impl FnOnce() -> R) -> R {
    let previous = crate::irql::set(crate::irql::PASSIVE_LEVEL);
    let result = f();
    let after = crate::irql::set(previous);
    if after != crate::irql::PASSIVE_LEVEL {
        state::violation(
            "IrqlNotRestored",
            format!(
                "a WDF callback returned at IRQL {after}, entered at PASSIVE_LEVEL (the enhanced verifier's WDF_VERIFIER_IRQL_MISMATCH, bugcheck 0x10D, for the callbacks it hooks; the model restores the IRQL and goes on)"
            ),
        );
    }
    result
}
