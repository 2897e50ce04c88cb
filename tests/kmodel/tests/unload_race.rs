//! A completion routine still running when the last reference to the driver goes.
//!
//! A driver's unload waits for its in-flight IRPs through what their completion routines
//! release (a rundown reference, an event). The routine still has to return after that
//! release; if the unload finishes first, the image is gone under it (bugcheck 0xCE). With
//! `IoSetCompletionRoutineEx` the I/O manager holds a reference on the driver's device object
//! until the routine has returned, so the image outlives it. The model widens the window after
//! the release (`Config::unload_race_window`) and checks, when the image goes, that no routine
//! of the driver is still running.
//!
//! The driver here is the smallest that shows it: one device, one `WskSocket` IRP whose
//! completion routine keeps the new socket and releases a rundown reference that
//! `DriverUnload` waits for; unload then closes the socket (never the routine: no WSK call from
//! a completion routine). wskudp-core sets every routine with `IoSetCompletionRoutineEx` for
//! this reason.

mod common;

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::time::Duration;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, IRP};
use windows_sys::Wdk::System::SystemServices::{
    EX_RUNDOWN_REF, ExAcquireRundownProtection, ExInitializeRundownProtection,
    ExReleaseRundownProtection, ExWaitForRundownProtectionRelease, IoAllocateIrp, IoCreateDevice,
    IoDeleteDevice, IoFreeIrp,
};
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_MORE_PROCESSING_REQUIRED, UNICODE_STRING};
use wskudp_core::ddi::nt::{io_set_completion_routine, io_set_completion_routine_ex};
use wskudp_core::ddi::wsk::{
    WSK_CLIENT_DISPATCH, WSK_CLIENT_NPI, WSK_FLAG_DATAGRAM_SOCKET, WSK_INFINITE_WAIT,
    WSK_PROVIDER_BASIC_DISPATCH, WSK_PROVIDER_NPI, WSK_REGISTRATION, WSK_SOCKET,
    WskCaptureProviderNPI, WskDeregister, WskRegister, WskReleaseProviderNPI, make_wsk_version,
};
use wskudp_kmodel::iomgr::{self, EntryKind};
use wskudp_kmodel::{CompletionMode, Config, Machine, Order};

/// The test driver's globals (one driver loaded at a time: machines are serialized).
struct Globals {
    rundown: UnsafeCell<EX_RUNDOWN_REF>,
    registration: UnsafeCell<WSK_REGISTRATION>,
}

// SAFETY: Each field is only handed to kernel functions that synchronize themselves.
unsafe impl Sync for Globals {}

static GLOBALS: Globals = Globals {
    // SAFETY: Both are plain data whose zero value is their pre-initialization state.
    rundown: UnsafeCell::new(unsafe { std::mem::zeroed() }),
    // SAFETY: As above.
    registration: UnsafeCell::new(unsafe { std::mem::zeroed() }),
};
static USE_EX: AtomicBool = AtomicBool::new(false);
static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(std::ptr::null_mut());
/// The socket the routine kept, for unload to close.
static SOCKET: AtomicPtr<WSK_SOCKET> = AtomicPtr::new(std::ptr::null_mut());
static CLIENT_DISPATCH: WSK_CLIENT_DISPATCH = WSK_CLIENT_DISPATCH {
    Version: make_wsk_version(1, 0),
    Reserved: 0,
    WskClientEvent: None,
};

/// Completion of the close: frees its IRP.
unsafe extern "system" fn closed(
    _: *const DEVICE_OBJECT,
    irp: *mut IRP,
    _: *mut c_void,
) -> NTSTATUS {
    // SAFETY: Our IRP, completed.
    unsafe { IoFreeIrp(irp) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Completion of `WskSocket`: keeps the socket, frees the IRP, releases the rundown reference
/// unload waits for, and only then returns.
unsafe extern "system" fn created(
    _: *const DEVICE_OBJECT,
    irp: *mut IRP,
    _: *mut c_void,
) -> NTSTATUS {
    // SAFETY: Our completed IRP; Information holds the new socket on success.
    let socket = unsafe { (*irp).IoStatus.Information } as *mut WSK_SOCKET;
    // SAFETY: As above.
    unsafe { IoFreeIrp(irp) };
    SOCKET.store(socket, Ordering::Release);
    // SAFETY: The reference DriverEntry took for this IRP.
    unsafe { ExReleaseRundownProtection(GLOBALS.rundown.get()) };
    STATUS_MORE_PROCESSING_REQUIRED
}

unsafe extern "system" fn driver_unload(_: *const DRIVER_OBJECT) {
    // SAFETY: The test driver's own objects, at PASSIVE_LEVEL, each once.
    unsafe {
        ExWaitForRundownProtectionRelease(GLOBALS.rundown.get());
        let socket = SOCKET.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if !socket.is_null() {
            // A fresh IRP with one location; the socket's basic dispatch has WskCloseSocket.
            let close_irp = IoAllocateIrp(1, false);
            io_set_completion_routine(close_irp, closed, std::ptr::null_mut());
            let dispatch = (*socket).Dispatch.cast::<WSK_PROVIDER_BASIC_DISPATCH>();
            if let Some(close) = (*dispatch).WskCloseSocket {
                close(socket, close_irp);
            }
        }
        WskReleaseProviderNPI(GLOBALS.registration.get());
        WskDeregister(GLOBALS.registration.get());
        IoDeleteDevice(DEVICE.swap(std::ptr::null_mut(), Ordering::AcqRel));
    }
}

unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    let mut device = std::ptr::null_mut();
    // SAFETY: The loader's driver object; every call below is the documented sequence at
    // PASSIVE_LEVEL on the test driver's own objects.
    unsafe {
        let status = IoCreateDevice(
            driver,
            0,
            std::ptr::null(),
            0x12,
            0x100,
            false,
            &raw mut device,
        );
        if status < 0 {
            return status;
        }
        DEVICE.store(device, Ordering::Release);
        (*driver).DriverUnload = Some(driver_unload);
        ExInitializeRundownProtection(GLOBALS.rundown.get());
        let npi = WSK_CLIENT_NPI {
            ClientContext: std::ptr::null_mut(),
            Dispatch: &raw const CLIENT_DISPATCH,
        };
        let status = WskRegister(&raw const npi, GLOBALS.registration.get());
        if status < 0 {
            return status;
        }
        let mut provider: WSK_PROVIDER_NPI = std::mem::zeroed();
        let status = WskCaptureProviderNPI(
            GLOBALS.registration.get(),
            WSK_INFINITE_WAIT,
            &raw mut provider,
        );
        if status < 0 {
            return status;
        }
        let _ = ExAcquireRundownProtection(GLOBALS.rundown.get());
        let irp = IoAllocateIrp(1, false);
        if USE_EX.load(Ordering::Acquire) {
            let _ = io_set_completion_routine_ex(device, irp, created, std::ptr::null_mut());
        } else {
            io_set_completion_routine(irp, created, std::ptr::null_mut());
        }
        common::create_socket(&provider, common::AF_INET, WSK_FLAG_DATAGRAM_SOCKET, irp);
    }
    0
}

fn run(use_ex: bool) -> wskudp_kmodel::Report {
    let machine = Machine::boot(Config {
        completion: CompletionMode::Worker {
            delay: Duration::from_millis(20),
            batch: 1,
            order: Order::Fifo,
        },
        unload_race_window: Duration::from_millis(300),
        ..Config::default()
    });
    // Set once this test owns the (one) machine.
    USE_EX.store(use_ex, Ordering::Release);
    let driver = iomgr::load("race", driver_entry, EntryKind::Direct).unwrap();
    driver.unload().unwrap();
    machine.shutdown()
}

#[test]
fn a_plain_completion_routine_can_be_overtaken_by_unload() {
    let report = run(false);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.rule == "DriverUnloadedWithRoutineRunning"),
        "the model missed the routine still running after unload: {report}"
    );
}

#[test]
fn io_set_completion_routine_ex_keeps_the_image_until_the_routine_returns() {
    let report = run(true);
    assert!(report.is_clean(), "{report}");
}
