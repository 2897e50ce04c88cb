//! Every rule the model's I/O manager checks (`wskudp_kmodel::iomgr::RULES`), broken on
//! purpose by a tiny WDM driver written for it, and reported under its name. The last tests
//! check that every rule has a case and that the I/O manager reports no rule `RULES` lacks.

#![allow(
    clippy::missing_const_for_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    reason = "test drivers, each deliberately wrong in one way"
)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::Duration;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, IRP};
use windows_sys::Wdk::Storage::FileSystem::DO_BUFFERED_IO;
use windows_sys::Wdk::System::SystemServices::{
    ExAcquireSpinLockExclusive, IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL,
    IoAllocateIrp, IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink,
    IoFreeIrp, IofCompleteRequest,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_PENDING, STATUS_SUCCESS, STATUS_UNSUCCESSFUL, UNICODE_STRING,
};
use wskudp_core::ddi::nt::{
    device_io_control_parameters, io_get_current_irp_stack_location, io_mark_irp_pending,
};
use wskudp_kmodel::iomgr::{self, EntryKind, Handle, RULES};
use wskudp_kmodel::{Access, Caller, Config, Machine, Report};

/// What the test driver does with an `IRP_MJ_DEVICE_CONTROL`.
type OnIoctl = fn(*mut IRP) -> NTSTATUS;
/// What the test driver's `DriverUnload` does with its device (after deleting its link).
type OnUnload = fn(*mut DEVICE_OBJECT);

/// One way of breaking a rule: what the driver does, and whether `DriverEntry` fails after
/// creating its device.
#[derive(Clone, Copy)]
struct Driver {
    on_ioctl: OnIoctl,
    on_unload: OnUnload,
    fail_entry: bool,
}

const CORRECT: Driver = Driver {
    on_ioctl: complete_success,
    on_unload: delete_device,
    fail_entry: false,
};

static DRIVER: Mutex<Option<Driver>> = Mutex::new(None);
static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(std::ptr::null_mut());
/// An IRP the driver kept without completing (completed at cleanup).
static KEPT: AtomicUsize = AtomicUsize::new(0);

const NAME: &str = r"\Device\IoChecks";
const LINK: &str = r"\DosDevices\IoChecks";
const CODE: u32 = 0x0022_2000;
const OUTPUT: usize = 8;

fn driver() -> Driver {
    DRIVER.lock().unwrap().unwrap_or(CORRECT)
}

fn wide(text: &str) -> UNICODE_STRING {
    let units: &'static mut [u16] = Box::leak(text.encode_utf16().collect());
    let bytes = u16::try_from(units.len() * 2).unwrap();
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: units.as_mut_ptr(),
    }
}

fn complete(irp: *mut IRP, status: NTSTATUS, information: usize) {
    unsafe {
        (*irp).IoStatus.Anonymous.Status = status;
        (*irp).IoStatus.Information = information;
        IofCompleteRequest(irp, 0);
    }
}

fn complete_success(irp: *mut IRP) -> NTSTATUS {
    complete(irp, STATUS_SUCCESS, 0);
    STATUS_SUCCESS
}

fn delete_device(device: *mut DEVICE_OBJECT) {
    unsafe { IoDeleteDevice(device) };
}

unsafe extern "system" fn dispatch_plain(_: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    complete_success(irp)
}

unsafe extern "system" fn dispatch_cleanup(_: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    let kept = KEPT.swap(0, Ordering::AcqRel);
    if kept != 0 {
        complete(
            std::ptr::with_exposed_provenance_mut(kept),
            STATUS_SUCCESS,
            0,
        );
    }
    complete_success(irp)
}

unsafe extern "system" fn dispatch_ioctl(_: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    (driver().on_ioctl)(irp)
}

unsafe extern "system" fn driver_unload(_: *const DRIVER_OBJECT) {
    let link = wide(LINK);
    unsafe { IoDeleteSymbolicLink(&raw const link) };
    let device = DEVICE.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !device.is_null() {
        (driver().on_unload)(device);
    }
}

unsafe extern "system" fn driver_entry(
    driver_object: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    let name = wide(NAME);
    let link = wide(LINK);
    let mut device = std::ptr::null_mut();
    let status = unsafe {
        IoCreateDevice(
            driver_object,
            0,
            &raw const name,
            0x22,
            0,
            false,
            &raw mut device,
        )
    };
    if status < 0 {
        return status;
    }
    if driver().fail_entry {
        // Deliberately broken: the device is left behind.
        return STATUS_UNSUCCESSFUL;
    }
    DEVICE.store(device, Ordering::Release);
    unsafe {
        (*device).Flags |= DO_BUFFERED_IO;
        let status = IoCreateSymbolicLink(&raw const link, &raw const name);
        if status < 0 {
            IoDeleteDevice(device);
            return status;
        }
        let table = &mut (*driver_object).MajorFunction;
        table[IRP_MJ_CREATE as usize] = Some(dispatch_plain);
        table[IRP_MJ_CLOSE as usize] = Some(dispatch_plain);
        table[IRP_MJ_CLEANUP as usize] = Some(dispatch_cleanup);
        table[IRP_MJ_DEVICE_CONTROL as usize] = Some(dispatch_ioctl);
        (*driver_object).DriverUnload = Some(driver_unload);
    }
    STATUS_SUCCESS
}

/// Boots a machine, loads `broken`, sends it one IOCTL on a handle, closes it, unloads.
fn run(broken: Driver) -> Report {
    run_with(broken, |handle| {
        let pending = handle.ioctl(CODE, &[1, 2, 3], OUTPUT).unwrap();
        let _ = pending.wait(Some(Duration::from_secs(1)));
    })
}

/// Boots a machine, loads `driver`, lets `use_it` use a handle, closes it, unloads.
fn run_with(driver: Driver, use_it: impl FnOnce(&Handle)) -> Report {
    let machine = Machine::boot(Config {
        unload_wait: Duration::from_millis(200),
        ..Config::default()
    });
    // Set once this test owns the (one) machine.
    *DRIVER.lock().unwrap() = Some(driver);
    KEPT.store(0, Ordering::Release);
    if let Ok(loaded) = iomgr::load("iochecks", driver_entry, EntryKind::Direct) {
        let handle = iomgr::open(r"\\.\IoChecks", Caller::Administrator, Access::READ_WRITE)
            .expect("the test device opens");
        use_it(&handle);
        handle.close();
        let _ = loaded.unload();
    }
    // Cleared while this test still owns the machine: once it is shut down, the next test's
    // machine may boot and set its own driver, which clearing it then would undo.
    *DRIVER.lock().unwrap() = None;
    machine.shutdown()
}

fn on_ioctl(on_ioctl: OnIoctl) -> Report {
    run(Driver {
        on_ioctl,
        ..CORRECT
    })
}

type Case = (&'static str, fn() -> Report);

const CASES: &[Case] = &[
    ("IoDeleteDeviceUnknown", || {
        on_ioctl(|irp| {
            let mut bogus = [0_u8; 512];
            // Deliberately broken: not a device object.
            unsafe { IoDeleteDevice(bogus.as_mut_ptr().cast()) };
            complete_success(irp)
        })
    }),
    ("IoDeleteDeviceTwice", || {
        run(Driver {
            // The open handle keeps the deleted device referenced: the second call finds it.
            on_ioctl: |irp| {
                let device = DEVICE.swap(std::ptr::null_mut(), Ordering::AcqRel);
                let link = wide(LINK);
                unsafe {
                    IoDeleteSymbolicLink(&raw const link);
                    IoDeleteDevice(device);
                    // Deliberately broken: once more.
                    IoDeleteDevice(device);
                }
                complete_success(irp)
            },
            ..CORRECT
        })
    }),
    ("IofCompleteRequestUnknownIrp", || {
        on_ioctl(|irp| {
            let own = unsafe { IoAllocateIrp(1, false) };
            // Deliberately broken: an IRP the I/O manager never sent.
            complete(own, STATUS_SUCCESS, 0);
            unsafe { IoFreeIrp(own) };
            complete_success(irp)
        })
    }),
    ("MultipleIrpComplete", || {
        on_ioctl(|irp| {
            complete(irp, STATUS_SUCCESS, 0);
            // Deliberately broken: completed again.
            complete(irp, STATUS_SUCCESS, 0);
            STATUS_SUCCESS
        })
    }),
    ("IrpCompletedPending", || {
        on_ioctl(|irp| {
            unsafe { io_mark_irp_pending(irp) };
            // Deliberately broken: the final status cannot be STATUS_PENDING.
            complete(irp, STATUS_PENDING, 0);
            STATUS_PENDING
        })
    }),
    ("IrpCompletedWithCancelRoutine", || {
        unsafe extern "system" fn cancel(_: *mut DEVICE_OBJECT, _: *mut IRP) {}
        on_ioctl(|irp| {
            // IoSetCancelRoutine, never cleared: deliberately broken.
            unsafe { (*irp).CancelRoutine = Some(cancel) };
            complete_success(irp)
        })
    }),
    ("InformationExceedsOutputBuffer", || {
        on_ioctl(|irp| {
            // Deliberately broken: more than the caller's 8 bytes.
            complete(irp, STATUS_SUCCESS, OUTPUT + 1);
            STATUS_SUCCESS
        })
    }),
    ("DeviceObjectsLeftByFailedDriverEntry", || {
        run(Driver {
            fail_entry: true,
            ..CORRECT
        })
    }),
    ("IrqlNotPassiveOnReturn", || {
        on_ioctl(|irp| {
            complete(irp, STATUS_SUCCESS, 0);
            // Deliberately broken: returns at DISPATCH_LEVEL, holding a spin lock.
            let lock: &'static mut i32 = Box::leak(Box::new(0));
            let _ = unsafe { ExAcquireSpinLockExclusive(lock) };
            STATUS_SUCCESS
        })
    }),
    ("DriverNotUnloaded", || {
        run(Driver {
            // Deliberately broken: the device object is never deleted.
            on_unload: |_| {},
            ..CORRECT
        })
    }),
    ("PendingNotMarked", || {
        on_ioctl(|irp| {
            complete(irp, STATUS_SUCCESS, 0);
            // Deliberately broken: STATUS_PENDING without IoMarkIrpPending.
            STATUS_PENDING
        })
    }),
    ("DispatchReturnedWithoutCompleting", || {
        on_ioctl(|irp| {
            // Deliberately broken: kept (completed at cleanup), yet not STATUS_PENDING.
            KEPT.store(irp.expose_provenance(), Ordering::Release);
            STATUS_SUCCESS
        })
    }),
    ("DispatchStatusMismatch", || {
        on_ioctl(|irp| {
            complete(irp, STATUS_SUCCESS, 0);
            // Deliberately broken: another status than the one completed with.
            STATUS_UNSUCCESSFUL
        })
    }),
];

/// Rules shown by a test of their own (they need a WSK client).
const ELSEWHERE: &[(&str, &str)] = &[(
    "DriverUnloadedWithRoutineRunning",
    include_str!("unload_race.rs"),
)];

#[test]
fn every_io_manager_rule_trips_under_its_name() {
    let missed = wskudp_kmodel::untripped(CASES);
    assert!(missed.is_empty(), "{missed:#?}");
}

#[test]
fn a_correct_driver_trips_nothing() {
    let report = run(CORRECT);
    assert!(report.is_clean(), "{report}");
}

#[test]
fn every_io_manager_rule_has_a_case() {
    let uncovered: Vec<&str> = RULES
        .iter()
        .map(|(rule, _)| *rule)
        .filter(|rule| {
            !CASES.iter().any(|(cased, _)| cased == rule)
                && !ELSEWHERE
                    .iter()
                    .any(|(shown, test)| shown == rule && test.contains(rule))
        })
        .collect();
    assert!(uncovered.is_empty(), "rules without a case: {uncovered:?}");
}

/// Every rule name the I/O manager's source reports (a quoted name alone on its line, as
/// rustfmt lays out `state::violation(` and the problem lists) is in `RULES`, with a source.
#[test]
fn every_reported_rule_is_listed_with_its_source() {
    let source = include_str!("../src/iomgr.rs");
    let reported: Vec<&str> = source
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix('"')?.strip_suffix("\","))
        .filter(|name| name.chars().all(char::is_alphanumeric))
        .filter(|name| *name != "IoNotModelled")
        .collect();
    assert!(reported.len() >= 10, "{reported:?}");
    let unlisted: Vec<&&str> = reported
        .iter()
        .filter(|name| !RULES.iter().any(|(rule, _)| rule == *name))
        .collect();
    assert!(
        unlisted.is_empty(),
        "reported but not in RULES: {unlisted:?}"
    );
    assert!(RULES.iter().all(|(_, source)| !source.is_empty()));
}

/// Each transfer method hands the driver the buffers "Buffer Descriptions for I/O Control
/// Codes" gives it: the test driver echoes its input, reversed, into its output buffer,
/// found where the method puts it, and the caller reads it back.
#[test]
fn every_transfer_method_gives_the_driver_its_buffers() {
    fn echo(irp: *mut IRP) -> NTSTATUS {
        let (code, input_len, output_len, type3) = unsafe {
            let p = device_io_control_parameters(io_get_current_irp_stack_location(irp));
            (
                p.IoControlCode,
                p.InputBufferLength as usize,
                p.OutputBufferLength as usize,
                p.Type3InputBuffer,
            )
        };
        let (input, output): (*const u8, *mut u8) = unsafe {
            match code & 3 {
                0 => {
                    let system = (*irp).AssociatedIrp.SystemBuffer.cast::<u8>();
                    (system, system)
                }
                3 => (type3.cast(), (*irp).UserBuffer.cast()),
                _ => {
                    let mdl = (*irp).MdlAddress;
                    assert!((*mdl).MdlFlags & 0x0002 != 0, "the MDL's pages are locked");
                    assert_eq!((*mdl).ByteCount as usize, output_len);
                    let va = (*mdl).StartVa.cast::<u8>().add((*mdl).ByteOffset as usize);
                    ((*irp).AssociatedIrp.SystemBuffer.cast(), va)
                }
            }
        };
        let data: Vec<u8> = unsafe { std::slice::from_raw_parts(input, input_len) }
            .iter()
            .rev()
            .copied()
            .collect();
        let n = data.len().min(output_len);
        unsafe { std::ptr::copy(data.as_ptr(), output, n) };
        complete(irp, STATUS_SUCCESS, n);
        STATUS_SUCCESS
    }
    for method in 0..=3_u32 {
        let report = run_with(
            Driver {
                on_ioctl: echo,
                ..CORRECT
            },
            |handle| {
                let pending = handle.ioctl(CODE | method, &[1, 2, 3], OUTPUT).unwrap();
                let (status, output) = pending.wait(Some(Duration::from_secs(5))).unwrap();
                assert_eq!(
                    (status, output),
                    (STATUS_SUCCESS, vec![3, 2, 1]),
                    "method {method}"
                );
            },
        );
        assert!(report.is_clean(), "method {method}: {report}");
    }
}
