//! Every KMDF check the WDF model makes (`wskudp_kmodel::wdf::CHECKS`, modelled ones), broken on
//! purpose by a small KMDF driver written for the purpose, and reported under its name. A last
//! test checks that no modelled check is left without a case here.

#![allow(
    clippy::missing_const_for_fn,
    clippy::too_many_lines,
    clippy::items_after_statements,
    clippy::cast_possible_truncation,
    reason = "test drivers"
)]

use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use windows_sys::Wdk::Foundation::DRIVER_OBJECT;
use windows_sys::Wdk::System::SystemServices::{
    ExAcquireSpinLockExclusive, ExReleaseSpinLockExclusive,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_BUFFER_TOO_SMALL, STATUS_INVALID_DEVICE_REQUEST, STATUS_SUCCESS,
    UNICODE_STRING,
};
use wskudp_kmodel::iomgr::{self, EntryKind, Handle, LoadedDriver, PendingRequest};
use wskudp_kmodel::wdf::CHECKS;
use wskudp_kmodel::{Access, Caller, Config, Machine, Report};
use wskudp_wdf_decls::{
    _WDF_DRIVER_INIT_FLAGS, _WDF_EXECUTION_LEVEL, _WDF_FILEOBJECT_CLASS,
    _WDF_IO_QUEUE_DISPATCH_TYPE, _WDF_POWER_DEVICE_STATE, _WDF_SYNCHRONIZATION_SCOPE,
    _WDF_TRI_STATE, GUID, PFN_WDF_REQUEST_CANCEL, PFN_WDF_TIMER, PWDFDEVICE_INIT,
    WDF_DRIVER_CONFIG, WDF_DRIVER_VERSION_AVAILABLE_PARAMS, WDF_FILEOBJECT_CONFIG,
    WDF_IO_QUEUE_CONFIG, WDF_NO_OBJECT_ATTRIBUTES, WDF_OBJECT_ATTRIBUTES,
    WDF_OBJECT_CONTEXT_TYPE_INFO, WDF_PNPPOWER_EVENT_CALLBACKS, WDF_TIMER_CONFIG, WDFCMRESLIST,
    WDFDEVICE, WDFDRIVER, WDFMEMORY, WDFOBJECT, WDFQUEUE, WDFREQUEST, WDFSPINLOCK, WDFTIMER,
    call_unsafe_wdf_function_binding,
};

/// What a test driver does in `DriverEntry`, after binding.
type Entry = Box<dyn FnOnce(*mut DRIVER_OBJECT, *const UNICODE_STRING) -> NTSTATUS + Send>;
/// What the test driver's `EvtIoDeviceControl` does with each request.
type OnIoctl = fn(WDFQUEUE, WDFREQUEST, usize, usize);

static ENTRY: Mutex<Option<Entry>> = Mutex::new(None);
static ON_IOCTL: Mutex<Option<OnIoctl>> = Mutex::new(None);
static KEPT: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// The object a case's default queue is parented to.
static QUEUE_PARENT: Mutex<usize> = Mutex::new(0);

unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    path: *const UNICODE_STRING,
) -> NTSTATUS {
    let entry = ENTRY.lock().unwrap().take().unwrap();
    entry(driver, path)
}

unsafe extern "C" fn unload(_: WDFDRIVER) {}

unsafe extern "C" fn io_device_control(
    queue: WDFQUEUE,
    request: WDFREQUEST,
    output: usize,
    input: usize,
    _code: u32,
) {
    let on_ioctl = ON_IOCTL.lock().unwrap().unwrap_or(complete_success);
    on_ioctl(queue, request, output, input);
}

fn complete_success(_: WDFQUEUE, request: WDFREQUEST, _: usize, _: usize) {
    complete(request, STATUS_SUCCESS);
}

/// `WdfRequestComplete(request, status)`.
fn complete(request: WDFREQUEST, status: NTSTATUS) {
    // SAFETY: A request the test driver owns, completed once.
    unsafe { call_unsafe_wdf_function_binding!(WdfRequestComplete, request, status) };
}

const fn size<T>() -> u32 {
    size_of::<T>() as u32
}

fn driver_config() -> WDF_DRIVER_CONFIG {
    WDF_DRIVER_CONFIG {
        Size: size::<WDF_DRIVER_CONFIG>(),
        EvtDriverUnload: Some(unload),
        DriverInitFlags: _WDF_DRIVER_INIT_FLAGS::WdfDriverInitNonPnpDriver.cast_unsigned(),
        ..WDF_DRIVER_CONFIG::default()
    }
}

fn attributes() -> WDF_OBJECT_ATTRIBUTES {
    WDF_OBJECT_ATTRIBUTES {
        Size: size::<WDF_OBJECT_ATTRIBUTES>(),
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent,
        SynchronizationScope: _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent,
        ..WDF_OBJECT_ATTRIBUTES::default()
    }
}

fn queue_config() -> WDF_IO_QUEUE_CONFIG {
    let mut config = WDF_IO_QUEUE_CONFIG {
        Size: size::<WDF_IO_QUEUE_CONFIG>(),
        PowerManaged: _WDF_TRI_STATE::WdfUseDefault,
        DefaultQueue: 1,
        DispatchType: _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchParallel,
        EvtIoDeviceControl: Some(io_device_control),
        ..WDF_IO_QUEUE_CONFIG::default()
    };
    config.Settings.Parallel.NumberOfPresentedRequests = u32::MAX;
    config
}

fn wide(text: &str) -> &'static mut UNICODE_STRING {
    let units: &'static mut [u16] = Box::leak(text.encode_utf16().collect());
    let bytes = u16::try_from(units.len() * 2).unwrap();
    Box::leak(Box::new(UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: units.as_mut_ptr(),
    }))
}

fn create_driver(
    driver: *mut DRIVER_OBJECT,
    path: *const UNICODE_STRING,
    mut config: WDF_DRIVER_CONFIG,
) -> Result<WDFDRIVER, NTSTATUS> {
    let mut handle: WDFDRIVER = std::ptr::null_mut();
    // SAFETY: A test driver during DriverEntry.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDriverCreate,
            driver,
            path,
            WDF_NO_OBJECT_ATTRIBUTES,
            &raw mut config,
            &raw mut handle
        )
    };
    if status < 0 { Err(status) } else { Ok(handle) }
}

fn allocate_init(driver: WDFDRIVER) -> PWDFDEVICE_INIT {
    // SAFETY: A bound driver at PASSIVE_LEVEL.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfControlDeviceInitAllocate,
            driver,
            wide("D:P(A;;GA;;;SY)(A;;GA;;;BA)")
        )
    }
}

/// A named control device `\Device\Test`, after `tweak(init)`.
fn control_device(
    driver: WDFDRIVER,
    tweak: impl FnOnce(PWDFDEVICE_INIT),
    mut device_attributes: WDF_OBJECT_ATTRIBUTES,
) -> Result<WDFDEVICE, NTSTATUS> {
    let mut init = allocate_init(driver);
    // SAFETY: A live init.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(WdfDeviceInitAssignName, init, wide(r"\Device\Test"))
    };
    assert_eq!(status, STATUS_SUCCESS);
    tweak(init);
    let mut device: WDFDEVICE = std::ptr::null_mut();
    // SAFETY: As above.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceCreate,
            &raw mut init,
            &raw mut device_attributes,
            &raw mut device
        )
    };
    if status < 0 {
        if !init.is_null() {
            // SAFETY: Not consumed by a failed create.
            unsafe { call_unsafe_wdf_function_binding!(WdfDeviceInitFree, init) };
        }
        return Err(status);
    }
    Ok(device)
}

fn create_queue(device: WDFDEVICE, config: WDF_IO_QUEUE_CONFIG) -> Result<WDFQUEUE, NTSTATUS> {
    create_queue_with(device, config, WDF_NO_OBJECT_ATTRIBUTES)
}

/// `WdfIoQueueCreate` with `queue_attributes` (NULL: none).
fn create_queue_with(
    device: WDFDEVICE,
    mut config: WDF_IO_QUEUE_CONFIG,
    queue_attributes: *mut WDF_OBJECT_ATTRIBUTES,
) -> Result<WDFQUEUE, NTSTATUS> {
    let mut queue: WDFQUEUE = std::ptr::null_mut();
    // SAFETY: A live device; the attributes NULL or the caller's.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfIoQueueCreate,
            device,
            &raw mut config,
            queue_attributes,
            &raw mut queue
        )
    };
    if status < 0 { Err(status) } else { Ok(queue) }
}

/// `WdfDeviceCreateSymbolicLink(device, \DosDevices\Test)`.
fn create_link(device: WDFDEVICE) -> NTSTATUS {
    // SAFETY: A live named device.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceCreateSymbolicLink,
            device,
            wide(r"\DosDevices\Test")
        )
    }
}

/// A control device with a link and a parallel default queue presenting `presented` requests
/// at a time (0: KMDF never presents one).
fn presenting_driver(
    driver: *mut DRIVER_OBJECT,
    path: *const UNICODE_STRING,
    presented: u32,
) -> NTSTATUS {
    let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
    let device = control_device(wdf_driver, |_| {}, attributes()).unwrap();
    let _ = create_link(device);
    let mut config = queue_config();
    config.Settings.Parallel.NumberOfPresentedRequests = presented;
    create_queue(device, config).unwrap();
    STATUS_SUCCESS
}

/// A working test driver: a control device with a link, a default queue, ready for opens.
fn working_driver(driver: *mut DRIVER_OBJECT, path: *const UNICODE_STRING) -> NTSTATUS {
    working_driver_with(driver, path, attributes())
}

/// [`working_driver`] with its device created with `device_attributes`.
fn working_driver_with(
    driver: *mut DRIVER_OBJECT,
    path: *const UNICODE_STRING,
    device_attributes: WDF_OBJECT_ATTRIBUTES,
) -> NTSTATUS {
    let result = (|| {
        let wdf_driver = create_driver(driver, path, driver_config())?;
        let device = control_device(wdf_driver, |_| {}, device_attributes)?;
        assert_eq!(create_link(device), STATUS_SUCCESS);
        create_queue(device, queue_config())?;
        // SAFETY: Our control device.
        unsafe { call_unsafe_wdf_function_binding!(WdfControlFinishInitializing, device) };
        Ok(STATUS_SUCCESS)
    })();
    result.unwrap_or_else(|status| status)
}

/// Loads a test driver running `entry`, lets `use_it` exercise it, unloads it, and returns the
/// machine's report.
fn run(
    entry: impl FnOnce(*mut DRIVER_OBJECT, *const UNICODE_STRING) -> NTSTATUS + Send + 'static,
    on_ioctl: Option<OnIoctl>,
    use_it: impl FnOnce(&Handle),
) -> Report {
    let machine = Machine::boot(Config::default());
    *ENTRY.lock().unwrap() = Some(Box::new(entry));
    *ON_IOCTL.lock().unwrap() = on_ioctl;
    KEPT.lock().unwrap().clear();
    if let Ok(driver) = iomgr::load("test", driver_entry, EntryKind::Kmdf) {
        if let Ok(handle) = iomgr::open(r"\\.\Test", Caller::Administrator, Access::READ_WRITE) {
            use_it(&handle);
            handle.close();
        }
        unload_in_background(driver);
    }
    machine.shutdown()
}

fn unload_in_background(driver: LoadedDriver) {
    // A driver that cannot be stopped leaves the thread waiting; the report is read anyway.
    let unloading = std::thread::spawn(move || driver.unload());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !unloading.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends one IOCTL and waits for it (bounded).
fn ioctl(handle: &Handle, output: usize) -> Option<(NTSTATUS, Vec<u8>)> {
    let pending = handle.ioctl(0x0012_2000, &[1, 2, 3, 4], output).unwrap();
    let outcome = pending.wait(Some(Duration::from_secs(2)));
    if outcome.is_none() {
        pending.cancel();
        return pending.wait(Some(Duration::from_secs(2)));
    }
    outcome
}

/// `(rule, how to break it)`.
type Case = (&'static str, fn() -> Report);

fn entry_only(entry: fn(*mut DRIVER_OBJECT, *const UNICODE_STRING) -> NTSTATUS) -> Report {
    run(entry, None, |_| {})
}

/// [`entry_only`] on a control device: `DriverEntry` creates the driver and the device, then
/// returns what `case` does with them.
fn device_case(case: fn(WDFDRIVER, WDFDEVICE) -> NTSTATUS) -> Report {
    run(
        move |driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let device = control_device(wdf_driver, |_| {}, attributes()).unwrap();
            case(wdf_driver, device)
        },
        None,
        |_| {},
    )
}

fn with_request(on_ioctl: OnIoctl) -> Report {
    run(working_driver, Some(on_ioctl), |handle| {
        let _ = ioctl(handle, 8);
    })
}

const CASES: &[Case] = &[
    ("WDF_REQUIRED_PARAMETER_IS_NULL", || {
        entry_only(|driver, path| {
            // SAFETY: Deliberately broken: no configuration.
            unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfDriverCreate,
                    driver,
                    path,
                    WDF_NO_OBJECT_ATTRIBUTES,
                    std::ptr::null_mut(),
                    std::ptr::null_mut()
                )
            }
        })
    }),
    ("WDF_INVALID_HANDLE", || {
        entry_only(|driver, path| {
            let _ = create_driver(driver, path, driver_config());
            // SAFETY: Deliberately broken: not a WDFDRIVER.
            let _ = unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfControlDeviceInitAllocate,
                    0x1234_usize as WDFDRIVER,
                    wide("D:P")
                )
            };
            STATUS_SUCCESS
        })
    }),
    ("WdfStaleHandle", || {
        device_case(|_, device| {
            let mut config = queue_config();
            config.DefaultQueue = 0;
            let queue = create_queue(device, config).unwrap();
            // SAFETY: Deliberately broken: the second delete names a deleted queue.
            unsafe {
                call_unsafe_wdf_function_binding!(WdfObjectDelete, queue.cast::<c_void>());
                call_unsafe_wdf_function_binding!(WdfObjectDelete, queue.cast::<c_void>());
            }
            STATUS_SUCCESS
        })
    }),
    ("WdfDriverGlobalsMismatch", || {
        entry_only(|driver, path| {
            let mut config = driver_config();
            let table = wskudp_kmodel::wdf::function_table();
            let index = wskudp_wdf_decls::_WDFFUNCENUM::WdfDriverCreateTableIndex as usize;
            // SAFETY: The entry is WdfDriverCreate's; deliberately called with NULL globals.
            unsafe {
                let entry = *table.add(index);
                let create: wskudp_wdf_decls::PFN_WDFDRIVERCREATE = std::mem::transmute(entry);
                create.unwrap()(
                    std::ptr::null_mut(),
                    driver,
                    path,
                    WDF_NO_OBJECT_ATTRIBUTES,
                    &raw mut config,
                    std::ptr::null_mut(),
                )
            }
        })
    }),
    ("WdfDriverConfigSize", || {
        entry_only(|driver, path| {
            let config = WDF_DRIVER_CONFIG {
                Size: 0,
                ..driver_config()
            };
            create_driver(driver, path, config)
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfDriverInitFlags", || {
        entry_only(|driver, path| {
            let config = WDF_DRIVER_CONFIG {
                DriverInitFlags: 0x101,
                ..driver_config()
            };
            create_driver(driver, path, config)
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfDriverRegistryPath", || {
        entry_only(|driver, _| {
            let path = wide("odd");
            path.Length = 3;
            create_driver(driver, path, driver_config())
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfDriverCreateTwice", || {
        entry_only(|driver, path| {
            let _ = create_driver(driver, path, driver_config());
            create_driver(driver, path, driver_config())
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfNonPnpDriverWithDeviceAdd", || {
        unsafe extern "C" fn add(_: WDFDRIVER, _: PWDFDEVICE_INIT) -> NTSTATUS {
            0
        }
        entry_only(|driver, path| {
            let config = WDF_DRIVER_CONFIG {
                EvtDriverDeviceAdd: Some(add),
                ..driver_config()
            };
            create_driver(driver, path, config)
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfNonPnpDriverWithoutUnload", || {
        entry_only(|driver, path| {
            let config = WDF_DRIVER_CONFIG {
                EvtDriverUnload: None,
                ..driver_config()
            };
            let _ = create_driver(driver, path, config);
            // Fail, so the framework cleans up what no unload routine could.
            -1
        })
    }),
    ("WdfAttributesSize", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let bad = WDF_OBJECT_ATTRIBUTES {
                Size: 8,
                ..attributes()
            };
            control_device(wdf_driver, |_| {}, bad)
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfContextTypeInfoSize", || {
        static INFO: WdfInfo = WdfInfo(WDF_OBJECT_CONTEXT_TYPE_INFO {
            Size: 8,
            ContextName: c"X".as_ptr(),
            ContextSize: 8,
            UniqueType: std::ptr::null(),
            EvtDriverGetUniqueContextType: None,
        });
        entry_only(|driver, path| with_context(driver, path, &INFO.0))
    }),
    ("WdfContextTypeInfoNoName", || {
        static INFO: WdfInfo = WdfInfo(WDF_OBJECT_CONTEXT_TYPE_INFO {
            Size: 40,
            ContextName: std::ptr::null(),
            ContextSize: 8,
            UniqueType: std::ptr::null(),
            EvtDriverGetUniqueContextType: None,
        });
        entry_only(|driver, path| with_context(driver, path, &INFO.0))
    }),
    ("WdfContextSizeOverride", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let bad = WDF_OBJECT_ATTRIBUTES {
                ContextSizeOverride: 64,
                ..attributes()
            };
            control_device(wdf_driver, |_| {}, bad)
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfParentNotAllowed", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let bad = WDF_OBJECT_ATTRIBUTES {
                ParentObject: wdf_driver.cast::<c_void>(),
                ..attributes()
            };
            control_device(wdf_driver, |_| {}, bad)
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfAttributesExecutionLevel", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            // A zeroed structure with only its Size: the old front door's mistake in waiting.
            let bad = WDF_OBJECT_ATTRIBUTES {
                Size: size::<WDF_OBJECT_ATTRIBUTES>(),
                ..WDF_OBJECT_ATTRIBUTES::default()
            };
            control_device(wdf_driver, |_| {}, bad)
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfAttributesSynchronizationScope", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let bad = WDF_OBJECT_ATTRIBUTES {
                SynchronizationScope: 9,
                ..attributes()
            };
            control_device(wdf_driver, |_| {}, bad)
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfIrqlAbovePassive", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let init = allocate_init(wdf_driver);
            let mut lock = 0_i32;
            // SAFETY: Deliberately broken: a PASSIVE_LEVEL DDI under a spin lock.
            unsafe {
                let irql = ExAcquireSpinLockExclusive(&raw mut lock);
                let _ = call_unsafe_wdf_function_binding!(
                    WdfDeviceInitAssignName,
                    init,
                    wide(r"\Device\X")
                );
                ExReleaseSpinLockExclusive(&raw mut lock, irql);
                call_unsafe_wdf_function_binding!(WdfDeviceInitFree, init);
            }
            STATUS_SUCCESS
        })
    }),
    ("WdfDeviceInitUsedAfterFree", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let init = allocate_init(wdf_driver);
            // SAFETY: Deliberately broken: freed twice.
            unsafe {
                call_unsafe_wdf_function_binding!(WdfDeviceInitFree, init);
                call_unsafe_wdf_function_binding!(WdfDeviceInitFree, init);
            }
            STATUS_SUCCESS
        })
    }),
    ("WdfDeviceInitLeaked", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let _ = allocate_init(wdf_driver);
            -1
        })
    }),
    ("WdfMalformedUnicodeString", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let init = allocate_init(wdf_driver);
            let name = wide("x");
            name.Length = 1;
            // SAFETY: Deliberately broken: an odd length.
            unsafe {
                let _ = call_unsafe_wdf_function_binding!(WdfDeviceInitAssignName, init, name);
                call_unsafe_wdf_function_binding!(WdfDeviceInitFree, init);
            }
            STATUS_SUCCESS
        })
    }),
    ("WdfFileObjectConfigSize", || {
        file_config_case(|config| config.Size = 4)
    }),
    ("WdfFileObjectConfigTriState", || {
        file_config_case(|config| config.AutoForwardCleanupClose = 7)
    }),
    ("WdfFileObjectConfigClass", || {
        file_config_case(|config| config.FileObjectClass = 0)
    }),
    ("WdfControlDeviceWithoutName", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let mut init = allocate_init(wdf_driver);
            let mut device: WDFDEVICE = std::ptr::null_mut();
            let mut attributes = attributes();
            // SAFETY: Deliberately broken: the replaced characteristics drop the autogenerated
            // name, and no name is assigned.
            unsafe {
                call_unsafe_wdf_function_binding!(WdfDeviceInitSetCharacteristics, init, 0, 0);
                let _ = call_unsafe_wdf_function_binding!(
                    WdfDeviceCreate,
                    &raw mut init,
                    &raw mut attributes,
                    &raw mut device
                );
                call_unsafe_wdf_function_binding!(WdfDeviceInitFree, init);
            }
            STATUS_SUCCESS
        })
    }),
    ("WdfFileObjectSynchronizationScope", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            control_device(
                wdf_driver,
                |init| {
                    let mut config = file_config();
                    let mut file_attributes = WDF_OBJECT_ATTRIBUTES {
                        SynchronizationScope:
                            _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeQueue,
                        ..attributes()
                    };
                    // SAFETY: A live init.
                    unsafe {
                        call_unsafe_wdf_function_binding!(
                            WdfDeviceInitSetFileObjectConfig,
                            init,
                            &raw mut config,
                            &raw mut file_attributes
                        );
                    }
                },
                attributes(),
            )
            .err()
            .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfSymbolicLinkEmpty", || {
        device_case(|_, device| {
            // SAFETY: Deliberately broken: an empty name.
            unsafe {
                call_unsafe_wdf_function_binding!(WdfDeviceCreateSymbolicLink, device, wide(""))
            }
        })
    }),
    ("WdfSymbolicLinkTwice", || {
        device_case(|_, device| {
            // SAFETY: Deliberately broken: two links.
            unsafe {
                let _ = call_unsafe_wdf_function_binding!(
                    WdfDeviceCreateSymbolicLink,
                    device,
                    wide(r"\DosDevices\A")
                );
                call_unsafe_wdf_function_binding!(
                    WdfDeviceCreateSymbolicLink,
                    device,
                    wide(r"\DosDevices\B")
                )
            }
        })
    }),
    ("WdfObjectDeleteNotAllowed", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            // SAFETY: Deliberately broken: the framework owns the WDFDRIVER.
            unsafe {
                call_unsafe_wdf_function_binding!(WdfObjectDelete, wdf_driver.cast::<c_void>());
            };
            STATUS_SUCCESS
        })
    }),
    ("WdfRequestDeletedByDriver", || {
        with_request(|_, request, _, _| {
            // SAFETY: Deliberately broken: deleting a framework request, then completing it.
            unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, request.cast::<c_void>()) };
            complete_success(std::ptr::null_mut(), request, 0, 0);
        })
    }),
    ("WdfQueueConfigSize", || {
        queue_case(|config| config.Size = 12)
    }),
    ("WdfQueueOutNull", || {
        device_case(|_, device| {
            let mut config = queue_config();
            config.DefaultQueue = 0;
            // SAFETY: Deliberately broken: nowhere to return the queue.
            unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfIoQueueCreate,
                    device,
                    &raw mut config,
                    WDF_NO_OBJECT_ATTRIBUTES,
                    std::ptr::null_mut()
                )
            }
        })
    }),
    ("WdfDefaultQueueAfterFinishInitializing", || {
        device_case(|_, device| {
            // SAFETY: Our control device.
            unsafe { call_unsafe_wdf_function_binding!(WdfControlFinishInitializing, device) };
            create_queue(device, queue_config())
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfQueueParent", || {
        device_case(|wdf_driver, device| {
            // Deliberately broken: the queue's parent is above its device.
            let mut queue_attributes = WDF_OBJECT_ATTRIBUTES {
                ParentObject: wdf_driver.cast::<c_void>(),
                ..attributes()
            };
            create_queue_with(device, queue_config(), &raw mut queue_attributes)
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfQueueDispatchType", || {
        queue_case(|config| config.DispatchType = 0)
    }),
    ("WdfQueueNoCallback", || {
        queue_case(|config| config.EvtIoDeviceControl = None)
    }),
    ("WdfQueueManualWithCallback", || {
        queue_case(|config| {
            config.DispatchType = _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchManual;
            config.Settings.Parallel.NumberOfPresentedRequests = 0;
        })
    }),
    ("WdfQueuePresentedLimitNotParallel", || {
        queue_case(|config| {
            config.DispatchType = _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchSequential;
            config.Settings.Parallel.NumberOfPresentedRequests = 5;
        })
    }),
    ("WdfDefaultQueueTwice", || {
        device_case(|_, device| {
            let _ = create_queue(device, queue_config());
            create_queue(device, queue_config())
                .err()
                .unwrap_or(STATUS_SUCCESS)
        })
    }),
    ("WdfRequestNotDriverOwned", || {
        // A parallel queue presenting one request at a time: the second request waits in the
        // queue, and the driver completes it by its handle (the model's handles are
        // consecutive, so the waiting request's is the first one's plus 16).
        run(
            |driver, path| presenting_driver(driver, path, 1),
            Some(|_, request, _, _| KEPT.lock().unwrap().push(request as usize)),
            |handle| {
                let first = handle.ioctl(0x0012_2000, &[1], 0).unwrap();
                let second = handle.ioctl(0x0012_2000, &[2], 0).unwrap();
                let presented = KEPT.lock().unwrap()[0];
                complete_success(std::ptr::null_mut(), (presented + 16) as WDFREQUEST, 0, 0);
                complete_success(std::ptr::null_mut(), presented as WDFREQUEST, 0, 0);
                let _ = first.wait(Some(Duration::from_secs(2)));
                // The second one is presented now; complete it too.
                std::thread::sleep(Duration::from_millis(20));
                for request in KEPT.lock().unwrap().iter().skip(1) {
                    complete_success(std::ptr::null_mut(), *request as WDFREQUEST, 0, 0);
                }
                let _ = second.wait(Some(Duration::from_secs(2)));
            },
        )
    }),
    ("WdfRequestCompletedTwice", || {
        with_request(|queue, request, output, input| {
            complete_success(queue, request, output, input);
            complete_success(queue, request, output, input);
        })
    }),
    ("WdfRequestCompletedCancelable", || {
        with_request(|queue, request, output, input| {
            // SAFETY: A presented request.
            let _ = unsafe {
                call_unsafe_wdf_function_binding!(WdfRequestMarkCancelableEx, request, CANCEL)
            };
            complete_success(queue, request, output, input);
        })
    }),
    ("WDF_REQUEST_FATAL_ERROR", || {
        with_request(|_, request, _, _| {
            // SAFETY: Deliberately broken: more output than the buffer holds.
            unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfRequestCompleteWithInformation,
                    request,
                    STATUS_SUCCESS,
                    4096
                );
            }
        })
    }),
    ("WdfRequestUsedAfterCompletion", || {
        with_request(|queue, request, output, input| {
            complete_success(queue, request, output, input);
            let mut buffer = std::ptr::null_mut();
            // SAFETY: Deliberately broken: the request is completed.
            let _ = unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfRequestRetrieveInputBuffer,
                    request,
                    0,
                    &raw mut buffer,
                    std::ptr::null_mut()
                )
            };
        })
    }),
    ("WdfRequestMarkedCancelableTwice", || {
        with_request(|queue, request, output, input| {
            // SAFETY: Deliberately broken: marked twice.
            unsafe {
                let _ =
                    call_unsafe_wdf_function_binding!(WdfRequestMarkCancelableEx, request, CANCEL);
                let _ =
                    call_unsafe_wdf_function_binding!(WdfRequestMarkCancelableEx, request, CANCEL);
                let _ = call_unsafe_wdf_function_binding!(WdfRequestUnmarkCancelable, request);
            }
            complete_success(queue, request, output, input);
        })
    }),
    ("WdfRequestNotCancelable", || {
        with_request(|queue, request, output, input| {
            // SAFETY: Deliberately broken: never marked.
            let _ =
                unsafe { call_unsafe_wdf_function_binding!(WdfRequestUnmarkCancelable, request) };
            complete_success(queue, request, output, input);
        })
    }),
    ("IrqlNotRestored", || {
        with_request(|queue, request, output, input| {
            complete_success(queue, request, output, input);
            static LOCK: Mutex<i32> = Mutex::new(0);
            let mut lock = LOCK.lock().unwrap();
            // SAFETY: Deliberately broken: returns with a spin lock held (at DISPATCH_LEVEL).
            let _ = unsafe { ExAcquireSpinLockExclusive(&raw mut *lock) };
        })
    }),
    ("WdfDefaultQueueAfterStart", || {
        *ON_SMIO_INIT.lock().unwrap() = Some(|device| {
            // Deliberately broken: a second default queue, and after the start at that.
            let _ = create_queue(device, queue_config());
        });
        run_pnp(Config::default(), PnpHooks::default(), |_| {})
    }),
    ("WdfPnpPowerCallbacksSize", || {
        run_pnp(
            Config::default(),
            PnpHooks {
                before_create: |init| {
                    let bad = WDF_PNPPOWER_EVENT_CALLBACKS {
                        Size: 8,
                        ..WDF_PNPPOWER_EVENT_CALLBACKS::default()
                    };
                    // Deliberately broken: a wrong Size.
                    set_pnp_power_callbacks(init, bad);
                },
                ..PnpHooks::default()
            },
            |_| {},
        )
    }),
    ("WdfPnpPowerCallbacksBothUsageNotifications", || {
        unsafe extern "C" fn usage(_: WDFDEVICE, _: i32, _: u8) {}
        unsafe extern "C" fn usage_ex(_: WDFDEVICE, _: i32, _: u8) -> NTSTATUS {
            STATUS_SUCCESS
        }
        run_pnp(
            Config::default(),
            PnpHooks {
                before_create: |init| {
                    let bad = WDF_PNPPOWER_EVENT_CALLBACKS {
                        Size: size::<WDF_PNPPOWER_EVENT_CALLBACKS>(),
                        EvtDeviceUsageNotification: Some(usage),
                        EvtDeviceUsageNotificationEx: Some(usage_ex),
                        ..WDF_PNPPOWER_EVENT_CALLBACKS::default()
                    };
                    // Deliberately broken: both usage notifications.
                    set_pnp_power_callbacks(init, bad);
                },
                ..PnpHooks::default()
            },
            |_| {},
        )
    }),
    ("WdfDeviceAlreadyCreated", || {
        run_pnp(
            Config::default(),
            PnpHooks {
                after_create: |_, init| {
                    let mut again = init;
                    let mut device: WDFDEVICE = std::ptr::null_mut();
                    let mut attributes = attributes();
                    // SAFETY: Deliberately broken: the FDO's init a second time.
                    let _ = unsafe {
                        call_unsafe_wdf_function_binding!(
                            WdfDeviceCreate,
                            &raw mut again,
                            &raw mut attributes,
                            &raw mut device
                        )
                    };
                },
                ..PnpHooks::default()
            },
            |_| {},
        )
    }),
    ("WdfDeviceInterfaceOnControlDevice", || {
        device_case(|_, device| {
            // SAFETY: Deliberately broken: a control device has no PDO.
            let _ = unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfDeviceCreateDeviceInterface,
                    device,
                    &TEST_INTERFACE,
                    std::ptr::null()
                )
            };
            STATUS_SUCCESS
        })
    }),
    ("WdfPnpCallbackNotSupported", || {
        *PREPARE_STATUS.lock().unwrap() = windows_sys::Win32::Foundation::STATUS_NOT_SUPPORTED;
        run_pnp(Config::default(), PnpHooks::default(), |_| {})
    }),
    ("WdfWaitForSignalTimeout", || {
        *ON_WRITE.lock().unwrap() = Some(|queue, request, length| {
            // SAFETY: Deliberately broken: stopping the queue from its own callback waits for
            // this very callback to return.
            unsafe { call_unsafe_wdf_function_binding!(WdfIoQueueStopSynchronously, queue) };
            complete_with(request, STATUS_SUCCESS, length);
        });
        let config = Config {
            wdf_wait_timeout: Duration::from_millis(200),
            ..Config::default()
        };
        run_pnp(config, PnpHooks::default(), |handle| {
            let _ = handle
                .write(&[1, 2, 3])
                .unwrap()
                .wait(Some(Duration::from_secs(5)));
        })
    }),
    ("WdfMemoryReadOnly", || {
        *ON_WRITE.lock().unwrap() = Some(|_, request, length| {
            let mut memory: WDFMEMORY = std::ptr::null_mut();
            let mut byte = 0_u8;
            // SAFETY: Deliberately broken: writing into a write request's buffer.
            unsafe {
                let _ = call_unsafe_wdf_function_binding!(
                    WdfRequestRetrieveInputMemory,
                    request,
                    &raw mut memory
                );
                let _ = call_unsafe_wdf_function_binding!(
                    WdfMemoryCopyFromBuffer,
                    memory,
                    0,
                    (&raw mut byte).cast(),
                    1
                );
            }
            complete_with(request, STATUS_SUCCESS, length);
        });
        run_pnp(Config::default(), PnpHooks::default(), |handle| {
            let _ = handle
                .write(&[1, 2, 3])
                .unwrap()
                .wait(Some(Duration::from_secs(5)));
        })
    }),
    ("WdfTimerParentRequired", || {
        timer_case(|_, config| {
            let mut timer: WDFTIMER = std::ptr::null_mut();
            // SAFETY: Deliberately broken: no attributes, so no parent.
            let _ = unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfTimerCreate,
                    config,
                    WDF_NO_OBJECT_ATTRIBUTES,
                    &raw mut timer
                )
            };
        })
    }),
    ("WdfTimerConfigSize", || {
        timer_case(|device, config| {
            config.Size = 8;
            let _ = create_timer(device, config, attributes());
        })
    }),
    ("WdfTimerConfigInvalid", || {
        timer_case(|device, config| {
            config.Period = u32::MAX;
            let _ = create_timer(device, config, attributes());
        })
    }),
    ("WdfTimerPassivePeriodic", || {
        timer_case(|device, config| {
            config.Period = 10;
            let _ = create_timer(device, config, passive_attributes());
        })
    }),
    ("WdfTimerParentNotUnderDevice", || {
        timer_case(|_, config| {
            // SAFETY: The bound driver's WDFDRIVER.
            let driver = unsafe { (*wskudp_wdf_decls::WdfDriverGlobals).Driver };
            let _ = create_timer(driver.cast(), config, attributes());
        })
    }),
    ("WdfTimerStopFromCallback", || {
        unsafe extern "C" fn stop_self(timer: WDFTIMER) {
            // SAFETY: Deliberately broken: a waiting stop from the timer's own callback.
            let _ = unsafe { call_unsafe_wdf_function_binding!(WdfTimerStop, timer, 1) };
            TIMER_FIRED.store(true, Ordering::SeqCst);
        }
        fire_timer_case(stop_self)
    }),
    ("WdfTimerDeleteFromCallback", || {
        unsafe extern "C" fn delete_self(timer: WDFTIMER) {
            // SAFETY: Deliberately broken: deleting the timer from its own callback.
            unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, timer.cast()) };
            TIMER_FIRED.store(true, Ordering::SeqCst);
        }
        fire_timer_case(delete_self)
    }),
    ("WDF_INVALID_LOCK_OPERATION", || {
        entry_only(|driver, path| {
            let _ = create_driver(driver, path, driver_config()).unwrap();
            let mut lock: WDFSPINLOCK = std::ptr::null_mut();
            // SAFETY: Deliberately broken: released but never acquired.
            unsafe {
                let status = call_unsafe_wdf_function_binding!(
                    WdfSpinLockCreate,
                    WDF_NO_OBJECT_ATTRIBUTES,
                    &raw mut lock
                );
                assert_eq!(status, STATUS_SUCCESS);
                call_unsafe_wdf_function_binding!(WdfSpinLockRelease, lock);
            }
            STATUS_SUCCESS
        })
    }),
    ("WdfVersionParamsSize", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let mut params = WDF_DRIVER_VERSION_AVAILABLE_PARAMS {
                Size: 4,
                MajorVersion: 1,
                MinorVersion: 0,
            };
            // SAFETY: Deliberately broken: a wrong Size.
            let _ = unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfDriverIsVersionAvailable,
                    wdf_driver,
                    &raw mut params
                )
            };
            STATUS_SUCCESS
        })
    }),
    ("WdfMalformedUnicodeString", || {
        entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let sddl = wide("D:P(A;;GA;;;SY)");
            // Deliberately broken: an odd byte length.
            sddl.Length = 3;
            // SAFETY: A bound driver; the SDDL string is malformed on purpose.
            let init = unsafe {
                call_unsafe_wdf_function_binding!(WdfControlDeviceInitAllocate, wdf_driver, sddl)
            };
            assert!(init.is_null(), "a malformed SDDL allocates nothing");
            STATUS_SUCCESS
        })
    }),
    ("WdfQueueDeletedWithDriverRequests", || {
        run(
            |driver, path| {
                let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
                let device = control_device(wdf_driver, |_| {}, attributes()).unwrap();
                assert_eq!(create_link(device), STATUS_SUCCESS);
                // The default queue's parent is a spin lock the driver may delete.
                let mut lock: WDFSPINLOCK = std::ptr::null_mut();
                let mut lock_attributes = WDF_OBJECT_ATTRIBUTES {
                    ParentObject: device.cast(),
                    ..attributes()
                };
                // SAFETY: A live device as the parent.
                let status = unsafe {
                    call_unsafe_wdf_function_binding!(
                        WdfSpinLockCreate,
                        &raw mut lock_attributes,
                        &raw mut lock
                    )
                };
                assert_eq!(status, STATUS_SUCCESS);
                *QUEUE_PARENT.lock().unwrap() = lock as usize;
                let mut queue_attributes = WDF_OBJECT_ATTRIBUTES {
                    ParentObject: lock.cast(),
                    ..attributes()
                };
                create_queue_with(device, queue_config(), &raw mut queue_attributes).unwrap();
                // SAFETY: Our control device.
                unsafe { call_unsafe_wdf_function_binding!(WdfControlFinishInitializing, device) };
                STATUS_SUCCESS
            },
            Some(|_, request, _, _| {
                let lock = *QUEUE_PARENT.lock().unwrap() as WDFOBJECT;
                // SAFETY: Deliberately broken: deleting the queue's parent (and the queue)
                // while this request, not cancelable, is the driver's.
                unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, lock) };
                KEPT.lock().unwrap().push(request as usize);
            }),
            |handle| {
                let _ = ioctl(handle, 8);
            },
        )
    }),
    ("WdfControlFinishInitializingNotControl", || {
        run_pnp(
            Config::default(),
            PnpHooks {
                after_create: |device, _| {
                    // SAFETY: Deliberately broken: a PnP device, not a control device.
                    unsafe {
                        call_unsafe_wdf_function_binding!(WdfControlFinishInitializing, device);
                    }
                },
                ..PnpHooks::default()
            },
            |_| {},
        )
    }),
];

const CANCEL: PFN_WDF_REQUEST_CANCEL = {
    unsafe extern "C" fn cancel(request: WDFREQUEST) {
        complete(request, windows_sys::Win32::Foundation::STATUS_CANCELLED);
    }
    Some(cancel)
};

/// A context type info in a static.
struct WdfInfo(WDF_OBJECT_CONTEXT_TYPE_INFO);
// SAFETY: Immutable; its pointers name statics.
unsafe impl Sync for WdfInfo {}

fn with_context(
    driver: *mut DRIVER_OBJECT,
    path: *const UNICODE_STRING,
    info: &'static WDF_OBJECT_CONTEXT_TYPE_INFO,
) -> NTSTATUS {
    let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
    let with = WDF_OBJECT_ATTRIBUTES {
        ContextTypeInfo: info,
        ..attributes()
    };
    control_device(wdf_driver, |_| {}, with)
        .err()
        .unwrap_or(STATUS_SUCCESS)
}

fn file_config() -> WDF_FILEOBJECT_CONFIG {
    WDF_FILEOBJECT_CONFIG {
        Size: size::<WDF_FILEOBJECT_CONFIG>(),
        AutoForwardCleanupClose: _WDF_TRI_STATE::WdfUseDefault,
        FileObjectClass: _WDF_FILEOBJECT_CLASS::WdfFileObjectWdfCannotUseFsContexts,
        ..WDF_FILEOBJECT_CONFIG::default()
    }
}

static FILE_TWEAK: Mutex<Option<fn(&mut WDF_FILEOBJECT_CONFIG)>> = Mutex::new(None);

fn file_config_case(tweak: fn(&mut WDF_FILEOBJECT_CONFIG)) -> Report {
    *FILE_TWEAK.lock().unwrap() = Some(tweak);
    entry_only(|driver, path| {
        let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
        let tweak = FILE_TWEAK.lock().unwrap().unwrap();
        let _ = control_device(
            wdf_driver,
            |init| {
                let mut config = file_config();
                tweak(&mut config);
                // SAFETY: A live init; the configuration is deliberately broken.
                unsafe {
                    call_unsafe_wdf_function_binding!(
                        WdfDeviceInitSetFileObjectConfig,
                        init,
                        &raw mut config,
                        WDF_NO_OBJECT_ATTRIBUTES
                    );
                }
            },
            attributes(),
        );
        STATUS_SUCCESS
    })
}

static QUEUE_TWEAK: Mutex<Option<fn(&mut WDF_IO_QUEUE_CONFIG)>> = Mutex::new(None);

fn queue_case(tweak: fn(&mut WDF_IO_QUEUE_CONFIG)) -> Report {
    *QUEUE_TWEAK.lock().unwrap() = Some(tweak);
    device_case(|_, device| {
        let mut config = queue_config();
        QUEUE_TWEAK.lock().unwrap().unwrap()(&mut config);
        create_queue(device, config).err().unwrap_or(STATUS_SUCCESS)
    })
}

// --- A PnP test driver: EvtDriverDeviceAdd makes an FDO with recording PnP/power callbacks,
// a sequential power-managed default queue (read, write, IOCTL) and a device interface.

/// `{4d36e9b0-1b7c-4b7e-9c1a-1234567890ab}`, the test driver's interface class.
const TEST_INTERFACE: GUID = GUID {
    Data1: 0x4d36_e9b0,
    Data2: 0x1b7c,
    Data3: 0x4b7e,
    Data4: [0x9c, 0x1a, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab],
};
const TEST_INTERFACE_TEXT: &str = "{4d36e9b0-1b7c-4b7e-9c1a-1234567890ab}";

/// What the PnP test driver's `EvtDriverDeviceAdd` does around `WdfDeviceCreate`.
#[derive(Clone, Copy)]
struct PnpHooks {
    before_create: fn(PWDFDEVICE_INIT),
    after_create: fn(WDFDEVICE, PWDFDEVICE_INIT),
}

impl Default for PnpHooks {
    fn default() -> Self {
        Self {
            before_create: |_| {},
            after_create: |_, _| {},
        }
    }
}

type OnIo = fn(WDFQUEUE, WDFREQUEST, usize);

static HOOKS: Mutex<Option<PnpHooks>> = Mutex::new(None);
static ON_READ: Mutex<Option<OnIo>> = Mutex::new(None);
static ON_WRITE: Mutex<Option<OnIo>> = Mutex::new(None);
static ON_SMIO_INIT: Mutex<Option<fn(WDFDEVICE)>> = Mutex::new(None);
static PREPARE_STATUS: Mutex<NTSTATUS> = Mutex::new(STATUS_SUCCESS);
/// The PnP and power callbacks, in the order they ran.
static EVENTS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn event(name: &'static str) {
    EVENTS.lock().unwrap().push(name);
}

unsafe extern "C" fn prepare_hardware(_: WDFDEVICE, _: WDFCMRESLIST, _: WDFCMRESLIST) -> NTSTATUS {
    event("PrepareHardware");
    *PREPARE_STATUS.lock().unwrap()
}
unsafe extern "C" fn release_hardware(_: WDFDEVICE, _: WDFCMRESLIST) -> NTSTATUS {
    event("ReleaseHardware");
    STATUS_SUCCESS
}
unsafe extern "C" fn d0_entry(_: WDFDEVICE, previous: i32) -> NTSTATUS {
    assert_eq!(previous, _WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final);
    event("D0Entry");
    STATUS_SUCCESS
}
unsafe extern "C" fn d0_entry_post_interrupts(_: WDFDEVICE, _: i32) -> NTSTATUS {
    event("D0EntryPostInterruptsEnabled");
    STATUS_SUCCESS
}
unsafe extern "C" fn d0_exit_pre_interrupts(_: WDFDEVICE, _: i32) -> NTSTATUS {
    event("D0ExitPreInterruptsDisabled");
    STATUS_SUCCESS
}
unsafe extern "C" fn d0_exit(_: WDFDEVICE, target: i32) -> NTSTATUS {
    assert_eq!(target, _WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final);
    event("D0Exit");
    STATUS_SUCCESS
}
unsafe extern "C" fn smio_init(device: WDFDEVICE) -> NTSTATUS {
    event("SelfManagedIoInit");
    let hook = *ON_SMIO_INIT.lock().unwrap();
    if let Some(hook) = hook {
        hook(device);
    }
    STATUS_SUCCESS
}
unsafe extern "C" fn smio_suspend(_: WDFDEVICE) -> NTSTATUS {
    event("SelfManagedIoSuspend");
    STATUS_SUCCESS
}
unsafe extern "C" fn smio_flush(_: WDFDEVICE) {
    event("SelfManagedIoFlush");
}
unsafe extern "C" fn smio_cleanup(_: WDFDEVICE) {
    event("SelfManagedIoCleanup");
}
unsafe extern "C" fn query_remove(_: WDFDEVICE) -> NTSTATUS {
    event("QueryRemove");
    STATUS_SUCCESS
}
unsafe extern "C" fn device_cleanup(_: WDFOBJECT) {
    event("device EvtCleanupCallback");
}
unsafe extern "C" fn queue_cleanup(_: WDFOBJECT) {
    event("queue EvtCleanupCallback");
}

fn pnp_callbacks() -> WDF_PNPPOWER_EVENT_CALLBACKS {
    WDF_PNPPOWER_EVENT_CALLBACKS {
        Size: size::<WDF_PNPPOWER_EVENT_CALLBACKS>(),
        EvtDevicePrepareHardware: Some(prepare_hardware),
        EvtDeviceReleaseHardware: Some(release_hardware),
        EvtDeviceD0Entry: Some(d0_entry),
        EvtDeviceD0EntryPostInterruptsEnabled: Some(d0_entry_post_interrupts),
        EvtDeviceD0ExitPreInterruptsDisabled: Some(d0_exit_pre_interrupts),
        EvtDeviceD0Exit: Some(d0_exit),
        EvtDeviceSelfManagedIoInit: Some(smio_init),
        EvtDeviceSelfManagedIoSuspend: Some(smio_suspend),
        EvtDeviceSelfManagedIoFlush: Some(smio_flush),
        EvtDeviceSelfManagedIoCleanup: Some(smio_cleanup),
        EvtDeviceQueryRemove: Some(query_remove),
        ..WDF_PNPPOWER_EVENT_CALLBACKS::default()
    }
}

/// Completes a request with `information`.
fn complete_with(request: WDFREQUEST, status: NTSTATUS, information: usize) {
    // SAFETY: A request the test driver owns, completed once.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfRequestCompleteWithInformation,
            request,
            status,
            information as u64
        );
    }
}

unsafe extern "C" fn io_read(queue: WDFQUEUE, request: WDFREQUEST, length: usize) {
    let hook = *ON_READ.lock().unwrap();
    hook.map_or_else(
        || complete_with(request, STATUS_SUCCESS, 0),
        |f| f(queue, request, length),
    );
}
unsafe extern "C" fn io_write(queue: WDFQUEUE, request: WDFREQUEST, length: usize) {
    let hook = *ON_WRITE.lock().unwrap();
    hook.map_or_else(
        || complete_with(request, STATUS_SUCCESS, length),
        |f| f(queue, request, length),
    );
}

/// `WdfDeviceInitSetPnpPowerEventCallbacks(init, callbacks)`.
fn set_pnp_power_callbacks(init: PWDFDEVICE_INIT, mut callbacks: WDF_PNPPOWER_EVENT_CALLBACKS) {
    // SAFETY: The FDO's init, in EvtDriverDeviceAdd; `callbacks` as the case sets them.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceInitSetPnpPowerEventCallbacks,
            init,
            &raw mut callbacks
        );
    }
}

unsafe extern "C" fn pnp_add(_: WDFDRIVER, init: PWDFDEVICE_INIT) -> NTSTATUS {
    let hooks = HOOKS.lock().unwrap().unwrap_or_default();
    set_pnp_power_callbacks(init, pnp_callbacks());
    (hooks.before_create)(init);
    let mut slot = init;
    let mut device: WDFDEVICE = std::ptr::null_mut();
    let mut device_attributes = WDF_OBJECT_ATTRIBUTES {
        EvtCleanupCallback: Some(device_cleanup),
        ..attributes()
    };
    // SAFETY: As above.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceCreate,
            &raw mut slot,
            &raw mut device_attributes,
            &raw mut device
        )
    };
    if status < 0 {
        return status;
    }
    assert!(
        slot.is_null(),
        "WdfDeviceCreate NULLs the caller's init pointer"
    );
    (hooks.after_create)(device, init);
    let config = WDF_IO_QUEUE_CONFIG {
        Size: size::<WDF_IO_QUEUE_CONFIG>(),
        PowerManaged: _WDF_TRI_STATE::WdfUseDefault,
        DefaultQueue: 1,
        DispatchType: _WDF_IO_QUEUE_DISPATCH_TYPE::WdfIoQueueDispatchSequential,
        EvtIoRead: Some(io_read),
        EvtIoWrite: Some(io_write),
        EvtIoDeviceControl: Some(io_device_control),
        ..WDF_IO_QUEUE_CONFIG::default()
    };
    let mut queue_attributes = WDF_OBJECT_ATTRIBUTES {
        EvtCleanupCallback: Some(queue_cleanup),
        ..attributes()
    };
    if let Err(status) = create_queue_with(device, config, &raw mut queue_attributes) {
        return status;
    }
    // SAFETY: The device just created.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDeviceCreateDeviceInterface,
            device,
            &TEST_INTERFACE,
            std::ptr::null()
        )
    }
}

fn pnp_entry(driver: *mut DRIVER_OBJECT, path: *const UNICODE_STRING) -> NTSTATUS {
    let config = WDF_DRIVER_CONFIG {
        Size: size::<WDF_DRIVER_CONFIG>(),
        EvtDriverDeviceAdd: Some(pnp_add),
        ..WDF_DRIVER_CONFIG::default()
    };
    create_driver(driver, path, config)
        .err()
        .unwrap_or(STATUS_SUCCESS)
}

/// Loads the PnP test driver on a machine with `config`, opens its device through its
/// interface, lets `use_it` exercise it, closes it, removes and unloads it; the report. The
/// per-run hooks (`ON_READ`, `ON_WRITE`, `ON_SMIO_INIT`, `PREPARE_STATUS`) are reset after.
fn run_pnp(config: Config, hooks: PnpHooks, use_it: impl FnOnce(&Handle)) -> Report {
    let machine = Machine::boot(config);
    *ENTRY.lock().unwrap() = Some(Box::new(pnp_entry));
    *HOOKS.lock().unwrap() = Some(hooks);
    EVENTS.lock().unwrap().clear();
    if let Ok(driver) = iomgr::load("pnptest", driver_entry, EntryKind::Kmdf) {
        let paths = iomgr::device_interfaces(TEST_INTERFACE_TEXT);
        if let Some(path) = paths.first()
            && let Ok(handle) = iomgr::open(path, Caller::Administrator, Access::READ_WRITE)
        {
            use_it(&handle);
            handle.close();
        }
        unload_in_background(driver);
    }
    *ON_READ.lock().unwrap() = None;
    *ON_WRITE.lock().unwrap() = None;
    *ON_SMIO_INIT.lock().unwrap() = None;
    *PREPARE_STATUS.lock().unwrap() = STATUS_SUCCESS;
    machine.shutdown()
}

// --- Timers.

fn timer_config(callback: PFN_WDF_TIMER) -> WDF_TIMER_CONFIG {
    WDF_TIMER_CONFIG {
        Size: size::<WDF_TIMER_CONFIG>(),
        EvtTimerFunc: callback,
        AutomaticSerialization: 1,
        ..WDF_TIMER_CONFIG::default()
    }
}

fn passive_attributes() -> WDF_OBJECT_ATTRIBUTES {
    WDF_OBJECT_ATTRIBUTES {
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelPassive,
        ..attributes()
    }
}

fn create_timer(
    parent: WDFOBJECT,
    config: &mut WDF_TIMER_CONFIG,
    mut attributes: WDF_OBJECT_ATTRIBUTES,
) -> Result<WDFTIMER, NTSTATUS> {
    attributes.ParentObject = parent;
    let mut timer: WDFTIMER = std::ptr::null_mut();
    // SAFETY: A bound driver; the configuration may be deliberately broken.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfTimerCreate,
            config,
            &raw mut attributes,
            &raw mut timer
        )
    };
    if status < 0 { Err(status) } else { Ok(timer) }
}

/// What a timer case does with its device and a timer configuration.
type TimerTweak = fn(WDFOBJECT, &mut WDF_TIMER_CONFIG);

static TIMER_TWEAK: Mutex<Option<TimerTweak>> = Mutex::new(None);
static TIMER_FIRED: AtomicBool = AtomicBool::new(false);

unsafe extern "C" fn timer_noop(_: WDFTIMER) {}

/// A control device, then `tweak(device, config)` with a timer configuration.
fn timer_case(tweak: TimerTweak) -> Report {
    *TIMER_TWEAK.lock().unwrap() = Some(tweak);
    device_case(|_, device| {
        let mut config = timer_config(Some(timer_noop));
        TIMER_TWEAK.lock().unwrap().unwrap()(device.cast(), &mut config);
        STATUS_SUCCESS
    })
}

static FIRE_CALLBACK: Mutex<PFN_WDF_TIMER> = Mutex::new(None);

/// A working test driver with a passive-level one-shot timer due at once, calling `callback`;
/// the run waits for it to fire.
fn fire_timer_case(callback: unsafe extern "C" fn(WDFTIMER)) -> Report {
    TIMER_FIRED.store(false, Ordering::SeqCst);
    *FIRE_CALLBACK.lock().unwrap() = Some(callback);
    run(
        working_driver,
        Some(|queue, request, output, input| {
            // The first IOCTL starts the timer under the queue.
            let mut config = timer_config(*FIRE_CALLBACK.lock().unwrap());
            let timer = create_timer(queue.cast(), &mut config, passive_attributes()).unwrap();
            // SAFETY: A live timer, due now.
            let _ = unsafe { call_unsafe_wdf_function_binding!(WdfTimerStart, timer, 0) };
            complete_success(queue, request, output, input);
        }),
        |handle| {
            let _ = ioctl(handle, 0);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !TIMER_FIRED.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        },
    )
}

/// A PnP driver goes through KMDF's start and removal: the callbacks in the order KMDF calls
/// them, buffered reads and writes presented from a sequential power-managed queue, the device
/// found through its interface; a write completed from a timer's DPC (at `DISPATCH_LEVEL`,
/// under a WDF spin lock) lets the next request be presented there. Nothing is reported.
#[test]
fn a_pnp_driver_starts_does_io_and_is_removed_as_kmdf_does_it() {
    static PENDING: Mutex<Option<(usize, usize)>> = Mutex::new(None);
    static TIMER: Mutex<usize> = Mutex::new(0);
    static LOCK: Mutex<usize> = Mutex::new(0);
    unsafe extern "C" fn complete_later(timer: WDFTIMER) {
        assert_eq!(
            wskudp_kmodel::irql::current(),
            2,
            "a timer DPC runs at DISPATCH_LEVEL"
        );
        let lock = *LOCK.lock().unwrap() as WDFSPINLOCK;
        // SAFETY: The driver's spin lock and timer, and the write it holds.
        unsafe {
            call_unsafe_wdf_function_binding!(WdfSpinLockAcquire, lock);
            let pending = PENDING.lock().unwrap().take();
            call_unsafe_wdf_function_binding!(WdfSpinLockRelease, lock);
            let parent = call_unsafe_wdf_function_binding!(WdfTimerGetParentObject, timer);
            if let Some((request, length)) = pending {
                let queue =
                    call_unsafe_wdf_function_binding!(WdfRequestGetIoQueue, request as WDFREQUEST);
                assert_eq!(
                    queue.cast(),
                    parent,
                    "the timer's parent is the request's queue"
                );
                complete_with(request as WDFREQUEST, STATUS_SUCCESS, length);
            }
        }
    }
    *ON_SMIO_INIT.lock().unwrap() = Some(|device| {
        // SAFETY: The started device; its default queue parents a lock and a timer.
        unsafe {
            let queue = call_unsafe_wdf_function_binding!(WdfDeviceGetDefaultQueue, device);
            assert!(!queue.is_null());
            let mut lock: WDFSPINLOCK = std::ptr::null_mut();
            let mut lock_attributes = WDF_OBJECT_ATTRIBUTES {
                ParentObject: queue.cast(),
                ..attributes()
            };
            let status = call_unsafe_wdf_function_binding!(
                WdfSpinLockCreate,
                &raw mut lock_attributes,
                &raw mut lock
            );
            assert_eq!(status, STATUS_SUCCESS);
            *LOCK.lock().unwrap() = lock as usize;
            let mut config = timer_config(Some(complete_later));
            let timer = create_timer(queue.cast(), &mut config, attributes()).unwrap();
            *TIMER.lock().unwrap() = timer as usize;
        }
    });
    *ON_WRITE.lock().unwrap() = Some(|_, request, length| {
        assert_eq!(wskudp_kmodel::irql::current(), 0);
        let mut memory: WDFMEMORY = std::ptr::null_mut();
        let mut copy = [0_u8; 4];
        // SAFETY: A write the driver owns; its memory holds `length` bytes.
        unsafe {
            let status = call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveInputMemory,
                request,
                &raw mut memory
            );
            assert_eq!(status, STATUS_SUCCESS);
            let status = call_unsafe_wdf_function_binding!(
                WdfMemoryCopyToBuffer,
                memory,
                0,
                copy.as_mut_ptr().cast(),
                length
            );
            assert_eq!(status, STATUS_SUCCESS);
            assert_eq!(copy, [1, 2, 3, 4]);
            *PENDING.lock().unwrap() = Some((request as usize, length));
            let timer = *TIMER.lock().unwrap() as WDFTIMER;
            let _ = call_unsafe_wdf_function_binding!(WdfTimerStart, timer, -10_000);
        }
    });
    *ON_READ.lock().unwrap() = Some(|_, request, length| {
        // Presented by the timer's DPC, which completed the write before it.
        assert_eq!(wskudp_kmodel::irql::current(), 2);
        let mut memory: WDFMEMORY = std::ptr::null_mut();
        let data = [9_u8, 8, 7];
        // SAFETY: A read the driver owns, of `length` >= 3 bytes.
        unsafe {
            let status = call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveOutputMemory,
                request,
                &raw mut memory
            );
            assert_eq!(status, STATUS_SUCCESS);
            let status = call_unsafe_wdf_function_binding!(
                WdfMemoryCopyFromBuffer,
                memory,
                0,
                data.as_ptr().cast_mut().cast(),
                data.len()
            );
            assert_eq!(status, STATUS_SUCCESS);
            call_unsafe_wdf_function_binding!(WdfRequestSetInformation, request, 3);
            call_unsafe_wdf_function_binding!(WdfRequestComplete, request, STATUS_SUCCESS);
        }
        let _ = length;
    });
    let report = run_pnp(Config::default(), PnpHooks::default(), |handle| {
        let write = handle.write(&[1, 2, 3, 4]).unwrap();
        let read = handle.read(16).unwrap();
        let written = write.wait_io(Some(Duration::from_secs(5))).unwrap();
        assert_eq!((written.status, written.information), (STATUS_SUCCESS, 4));
        let read = read.wait_io(Some(Duration::from_secs(5))).unwrap();
        assert_eq!((read.status, read.output), (STATUS_SUCCESS, vec![9, 8, 7]));
        // A zero-length read is completed by the framework, never presented.
        let empty = handle
            .read(0)
            .unwrap()
            .wait_io(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!((empty.status, empty.information), (STATUS_SUCCESS, 0));
    });
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        *EVENTS.lock().unwrap(),
        [
            "PrepareHardware",
            "D0Entry",
            "D0EntryPostInterruptsEnabled",
            "SelfManagedIoInit",
            "QueryRemove",
            "SelfManagedIoSuspend",
            "D0ExitPreInterruptsDisabled",
            "D0Exit",
            "ReleaseHardware",
            "SelfManagedIoFlush",
            "SelfManagedIoCleanup",
            "queue EvtCleanupCallback",
            "device EvtCleanupCallback",
        ]
    );
}

#[test]
fn every_modelled_check_trips_under_its_name() {
    let missed = wskudp_kmodel::untripped(CASES);
    assert!(missed.is_empty(), "{missed:#?}");
}

/// The status a status-only check's case saw.
static OBSERVED: Mutex<Option<NTSTATUS>> = Mutex::new(None);

/// `WdfRequestRetrieveInputBuffer` (or `Output`) of `request` with `required` bytes: its
/// status is recorded; the request completes.
fn retrieve_and_complete(request: WDFREQUEST, input: bool, required: usize) {
    let mut buffer = std::ptr::null_mut();
    // SAFETY: A request the test driver owns.
    let status = unsafe {
        if input {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveInputBuffer,
                request,
                required,
                &raw mut buffer,
                std::ptr::null_mut()
            )
        } else {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveOutputBuffer,
                request,
                required,
                &raw mut buffer,
                std::ptr::null_mut()
            )
        }
    };
    *OBSERVED.lock().unwrap() = Some(status);
    complete(request, STATUS_SUCCESS);
}

/// `WdfRequestRetrieveOutputWdmMdl` of `request`: its status is recorded; the request
/// completes.
fn retrieve_mdl_and_complete(request: WDFREQUEST) {
    let mut mdl = std::ptr::null_mut();
    // SAFETY: A request the test driver owns.
    let status = unsafe {
        call_unsafe_wdf_function_binding!(WdfRequestRetrieveOutputWdmMdl, request, &raw mut mdl)
    };
    *OBSERVED.lock().unwrap() = Some(status);
    complete(request, STATUS_SUCCESS);
}

/// One IOCTL with transfer method `method` and `output` bytes of output buffer, through a
/// driver that asks for its output MDL.
fn retrieve_mdl_of(method: u32, output: usize) -> Report {
    run(
        working_driver,
        Some(|_, request, _, _| retrieve_mdl_and_complete(request)),
        move |handle| {
            let pending = handle
                .ioctl(0x0012_2000 | method, &[1, 2, 3, 4], output)
                .unwrap();
            let _ = pending.wait(Some(Duration::from_secs(2)));
        },
    )
}

/// A status-only check (`Check::reported` false): `(rule, the status KMDF returns, a run
/// returning its report)`; the run records what the driver saw in `OBSERVED`.
type StatusCase = (&'static str, NTSTATUS, fn() -> Report);

const STATUS_CASES: &[StatusCase] = &[
    (
        "WdfRetrieveBufferWrongMajor",
        STATUS_INVALID_DEVICE_REQUEST,
        || {
            *ON_READ.lock().unwrap() =
                Some(|_, request, _| retrieve_and_complete(request, true, 0));
            run_pnp(Config::default(), PnpHooks::default(), |handle| {
                let _ = handle.read(8).unwrap().wait(Some(Duration::from_secs(5)));
            })
        },
    ),
    (
        "WdfRetrieveBufferZeroLength",
        STATUS_BUFFER_TOO_SMALL,
        || {
            run(
                working_driver,
                Some(|_, request, _, _| retrieve_and_complete(request, false, 0)),
                |handle| {
                    let _ = ioctl(handle, 0);
                },
            )
        },
    ),
    ("WdfRetrieveBufferTooSmall", STATUS_BUFFER_TOO_SMALL, || {
        with_request(|_, request, _, _| retrieve_and_complete(request, true, 100))
    }),
    (
        "WdfRetrieveNeitherFromUser",
        STATUS_INVALID_DEVICE_REQUEST,
        || {
            run(
                working_driver,
                Some(|_, request, _, _| retrieve_and_complete(request, true, 0)),
                |handle| {
                    // METHOD_NEITHER (3), from user mode.
                    let pending = handle.ioctl(0x0012_2003, &[1, 2, 3, 4], 8).unwrap();
                    let _ = pending.wait(Some(Duration::from_secs(2)));
                },
            )
        },
    ),
    ("WdfRetrieveMdlWrite", STATUS_INVALID_DEVICE_REQUEST, || {
        *ON_WRITE.lock().unwrap() = Some(|_, request, _| retrieve_mdl_and_complete(request));
        run_pnp(Config::default(), PnpHooks::default(), |handle| {
            let _ = handle
                .write(&[1, 2, 3])
                .unwrap()
                .wait(Some(Duration::from_secs(5)));
        })
    }),
    // METHOD_IN_DIRECT (1) without an output buffer: no MDL.
    ("WdfRetrieveMdlNoBuffer", STATUS_BUFFER_TOO_SMALL, || {
        retrieve_mdl_of(1, 0)
    }),
    // METHOD_NEITHER (3), from user mode.
    (
        "WdfRetrieveMdlNeither",
        STATUS_INVALID_DEVICE_REQUEST,
        || retrieve_mdl_of(3, 8),
    ),
];

/// A status-only check answers the driver with KMDF's status and reports nothing.
#[test]
fn every_status_only_check_returns_kmdf_status() {
    let mut wrong = Vec::new();
    for (rule, expected, case) in STATUS_CASES {
        *OBSERVED.lock().unwrap() = None;
        let report = case();
        let observed = OBSERVED.lock().unwrap().take();
        if observed != Some(*expected) || !report.is_clean() {
            wrong.push(format!(
                "{rule}: saw {observed:x?}, expected {expected:#x}; {report}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `WdfRequestRetrieveOutputWdmMdl` of a `METHOD_IN_DIRECT` IOCTL is the I/O manager's locked
/// MDL over the caller's output buffer, which holds the caller's bytes.
#[test]
fn the_output_mdl_of_a_direct_ioctl_describes_the_callers_buffer() {
    static SEEN: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    let report = run(
        working_driver,
        Some(|_, request, _, _| {
            let mut mdl: *mut windows_sys::Wdk::Foundation::MDL = std::ptr::null_mut();
            // SAFETY: A request the test driver owns.
            let status = unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfRequestRetrieveOutputWdmMdl,
                    request,
                    &raw mut mdl
                )
            };
            assert_eq!(status, STATUS_SUCCESS);
            // SAFETY: The locked MDL, valid until the request completes.
            let bytes = unsafe {
                let start = (*mdl).StartVa.cast::<u8>().add((*mdl).ByteOffset as usize);
                std::slice::from_raw_parts(start, (*mdl).ByteCount as usize).to_vec()
            };
            *SEEN.lock().unwrap() = bytes;
            complete(request, STATUS_SUCCESS);
        }),
        |handle| {
            let pending = handle
                .ioctl_direct(0x0012_2001, &[1, 2, 3, 4], b"payload")
                .unwrap();
            let (status, _) = pending.wait(Some(Duration::from_secs(2))).unwrap();
            assert_eq!(status, STATUS_SUCCESS);
        },
    );
    assert!(report.is_clean(), "{report}");
    assert_eq!(SEEN.lock().unwrap().as_slice(), b"payload");
}

#[test]
fn every_modelled_check_has_a_case() {
    let cased: Vec<&str> = CASES
        .iter()
        .map(|(rule, _)| *rule)
        .chain(STATUS_CASES.iter().map(|(rule, _, _)| *rule))
        .collect();
    let uncovered: Vec<&str> = CHECKS
        .iter()
        .filter(|check| check.modelled && !cased.contains(&check.rule))
        .map(|check| check.rule)
        .filter(|rule| *rule != "WdfFunctionNotModelled")
        .collect();
    assert!(
        uncovered.is_empty(),
        "modelled checks without a case: {uncovered:?}"
    );
}

/// A working driver reports nothing: the checks do not fire on correct use.
#[test]
fn a_correct_driver_trips_nothing() {
    let report = with_request(complete_success);
    assert!(report.is_clean(), "{report}");
}

/// The parallel default queue the old front door created (`NumberOfPresentedRequests` left 0):
/// KMDF accepts it, and never presents a request; the IOCTL waits until it is cancelled.
#[test]
fn a_parallel_queue_presenting_zero_requests_hangs_every_ioctl() {
    let report = run(
        |driver, path| presenting_driver(driver, path, 0),
        None,
        |handle| {
            let pending = handle.ioctl(0x0012_2000, &[1], 8).unwrap();
            assert_eq!(
                pending.wait(Some(Duration::from_millis(300))),
                None,
                "presented"
            );
            pending.cancel();
            let (status, _) = pending.wait(Some(Duration::from_secs(2))).unwrap();
            assert_eq!(status, windows_sys::Win32::Foundation::STATUS_CANCELLED);
        },
    );
    assert!(report.is_clean(), "{report}");
}

/// A table entry the model does not implement stops the machine with its index (checked in a
/// child process, since the model aborts as a bugcheck would).
#[test]
fn an_unmodelled_function_stops_the_machine_naming_it() {
    if std::env::var_os("WSKUDP_WDF_CHILD").is_some() {
        let _ = entry_only(|driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let table = wskudp_kmodel::wdf::function_table();
            // SAFETY: Index 0 (WdfChildListCreate) is not modelled; the stub aborts.
            unsafe {
                let entry = *table;
                let f: unsafe extern "C" fn(*mut c_void, WDFDRIVER) =
                    std::mem::transmute(entry.unwrap());
                f(std::ptr::null_mut(), wdf_driver);
            }
            STATUS_SUCCESS
        });
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_unmodelled_function_stops_the_machine_naming_it",
            "--nocapture",
        ])
        .env("WSKUDP_WDF_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("WdfFunctionNotModelled") && stderr.contains("entry 0 "),
        "{stderr}"
    );
}

#[allow(dead_code, reason = "names the type so the import is used")]
const _OBJECT: Option<WDFOBJECT> = None;

// --- Cancelling a request the driver marked cancelable: `EvtRequestCancel` comes from a
// dispatch loop (`FxIoQueue::ProcessCancelledRequests`, fxioqueue.cpp:4859-4939).

/// How long a step of these tests may take.
const BOUND: Duration = Duration::from_secs(5);
/// A callback of the test driver is blocked until [`RELEASE`].
static BLOCKED: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);
/// Each `EvtRequestCancel`: its thread, its IRQL, and whether a callback was blocked meanwhile.
static CANCELS: Mutex<Vec<(std::thread::ThreadId, u8, bool)>> = Mutex::new(Vec::new());

fn wait_for(flag: &AtomicBool, bound: Duration) -> bool {
    let deadline = std::time::Instant::now() + bound;
    while !flag.load(Ordering::SeqCst) {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// A passive-level device (as wskudp's), so its queue is passive-level too.
fn passive_driver(driver: *mut DRIVER_OBJECT, path: *const UNICODE_STRING) -> NTSTATUS {
    working_driver_with(driver, path, passive_attributes())
}

/// A 1-byte request is marked cancelable and kept ([`RECORDING_CANCEL`] completes it); a
/// 2-byte one blocks its callback until [`RELEASE`]; any other is completed.
fn cancel_ioctl(queue: WDFQUEUE, request: WDFREQUEST, output: usize, input: usize) {
    match input {
        1 => {
            // SAFETY: A presented request, marked once.
            let status = unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfRequestMarkCancelableEx,
                    request,
                    RECORDING_CANCEL
                )
            };
            if status == STATUS_SUCCESS {
                KEPT.lock().unwrap().push(request as usize);
            }
        }
        2 => {
            BLOCKED.store(true, Ordering::SeqCst);
            // Longer than any test waits for something to happen meanwhile.
            let _ = wait_for(&RELEASE, 3 * BOUND);
            BLOCKED.store(false, Ordering::SeqCst);
            complete_success(queue, request, output, input);
        }
        _ => complete_success(queue, request, output, input),
    }
}

const RECORDING_CANCEL: PFN_WDF_REQUEST_CANCEL = {
    unsafe extern "C" fn cancel(request: WDFREQUEST) {
        CANCELS.lock().unwrap().push((
            std::thread::current().id(),
            wskudp_kmodel::irql::current(),
            BLOCKED.load(Ordering::SeqCst),
        ));
        complete(request, windows_sys::Win32::Foundation::STATUS_CANCELLED);
    }
    Some(cancel)
};

/// How an IOCTL completed, if it did in time.
type Outcome = Option<(NTSTATUS, Vec<u8>)>;

/// The 2-byte IOCTL, from a thread of `scope`: its callback blocks until [`RELEASE`]. Waits
/// (bounded) for it to block: the thread, and whether it did.
fn block_a_callback<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    handle: &'scope Handle,
) -> (std::thread::ScopedJoinHandle<'scope, Outcome>, bool) {
    let blocked = scope.spawn(|| {
        handle
            .ioctl(0x0012_2000, &[2, 2], 0)
            .unwrap()
            .wait(Some(BOUND))
    });
    (blocked, wait_for(&BLOCKED, BOUND))
}

/// Runs [`passive_driver`] with [`cancel_ioctl`]: `test` gets the handle and a 1-byte IOCTL
/// the driver marked cancelable. What `test` returned, and the report.
fn cancel_case<T>(test: impl FnOnce(&Handle, &PendingRequest) -> T) -> (T, Report) {
    let mut seen = None;
    let report = run(passive_driver, Some(cancel_ioctl), |handle| {
        reset_cancel_state();
        let cancelable = handle.ioctl(0x0012_2000, &[1], 0).unwrap();
        seen = Some(test(handle, &cancelable));
    });
    (seen.unwrap(), report)
}

/// Clears what the cancel tests record (after the machine boots: tests run in parallel).
fn reset_cancel_state() {
    BLOCKED.store(false, Ordering::SeqCst);
    RELEASE.store(false, Ordering::SeqCst);
    CANCELS.lock().unwrap().clear();
}

/// KMDF delivers `EvtRequestCancel` without waiting for the queue's other callbacks: every
/// dispatch loop hands out the cancelled requests first (`fxioqueue.cpp:2878-2891`), with no
/// lock on a queue without synchronization scope (`fxioqueue.cpp:777`). The cancelling thread
/// itself runs a loop only if no thread is in one (`DispatchInternalEvents`,
/// `fxioqueue.cpp:4632`, `fxioqueue.hpp:1030-1038`), so with a callback blocked the cancel waits
/// for the next loop: here the next request's, on another thread than the blocked callback's,
/// while it is blocked.
#[test]
fn evt_request_cancel_runs_beside_a_blocked_callback_of_the_queue() {
    let (seen, report) = cancel_case(|handle, cancelable| {
        std::thread::scope(|scope| {
            let (blocked, was_blocked) = block_a_callback(scope, handle);
            cancelable.cancel();
            let status = |done: Option<(NTSTATUS, Vec<u8>)>| done.map(|(status, _)| status);
            let before_next = status(cancelable.wait(Some(Duration::from_millis(200))));
            let next = status(
                handle
                    .ioctl(0x0012_2000, &[3, 3, 3], 0)
                    .unwrap()
                    .wait(Some(BOUND)),
            );
            let beside = before_next.or_else(|| status(cancelable.wait(Some(BOUND))));
            let still_blocked = BLOCKED.load(Ordering::SeqCst);
            RELEASE.store(true, Ordering::SeqCst);
            let released = status(blocked.join().unwrap());
            // Not delivered beside it: the blocked callback's own loop delivers it at its end.
            let late = if beside.is_none() {
                status(cancelable.wait(Some(BOUND)))
            } else {
                None
            };
            (
                was_blocked,
                before_next,
                next,
                beside,
                still_blocked,
                released,
                late,
                std::thread::current().id(),
                CANCELS.lock().unwrap().clone(),
            )
        })
    });
    let (was_blocked, before_next, next, beside, still_blocked, released, late, this, cancels) =
        seen;
    assert!(was_blocked, "the blocking callback never ran");
    assert_eq!(
        before_next, None,
        "the cancelling thread ran the loop while another thread was in it"
    );
    assert_eq!(next, Some(STATUS_SUCCESS));
    assert!(
        beside.is_some() && still_blocked,
        "EvtRequestCancel waited for the blocked callback (completed after it: {late:?}; {cancels:?})"
    );
    assert_eq!(
        beside,
        Some(windows_sys::Win32::Foundation::STATUS_CANCELLED)
    );
    assert_eq!(released, Some(STATUS_SUCCESS));
    assert_eq!(cancels, [(this, wskudp_kmodel::irql::PASSIVE_LEVEL, true)]);
    assert!(report.is_clean(), "{report}");
}

/// A passive-level queue cancelled at `DISPATCH_LEVEL` gets its `EvtRequestCancel` at
/// `PASSIVE_LEVEL`, from a work item (`CanThreadDispatchEventsLocked`,
/// `fxioqueue.cpp:2684-2705`).
#[test]
fn a_cancel_at_dispatch_level_reaches_a_passive_queue_through_a_work_item() {
    let (seen, report) = cancel_case(|_, cancelable| {
        let mut lock = 0_i32;
        // SAFETY: A spin lock of our own, held around the cancel: IoCancelIrp at DISPATCH_LEVEL.
        let irql = unsafe { ExAcquireSpinLockExclusive(&raw mut lock) };
        cancelable.cancel();
        // SAFETY: Acquired above, at the IRQL it returned.
        unsafe { ExReleaseSpinLockExclusive(&raw mut lock, irql) };
        let status = cancelable.wait(Some(BOUND)).map(|(status, _)| status);
        (
            status,
            std::thread::current().id(),
            CANCELS.lock().unwrap().clone(),
        )
    });
    let (status, this, cancels) = seen;
    assert_eq!(
        status,
        Some(windows_sys::Win32::Foundation::STATUS_CANCELLED)
    );
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    let (thread, irql, _) = cancels[0];
    assert_ne!(
        thread, this,
        "EvtRequestCancel ran in the cancelling thread"
    );
    assert_eq!(irql, wskudp_kmodel::irql::PASSIVE_LEVEL);
    assert!(report.is_clean(), "{report}");
}

/// "If `WdfRequestUnmarkCancelable` returns `STATUS_CANCELLED`, the driver must not complete
/// the request before the framework calls `EvtRequestCancel`": KMDF's verifier lets a request
/// still marked cancelable be completed only once `FXREQUEST_FLAG_CANCELLED` is set, just
/// before `EvtRequestCancel` is called (`fxioqueue.cpp:4905-4911`, `fxrequest.cpp:400-420`).
/// Here the cancel routine has run (a callback of the queue is blocked, so `EvtRequestCancel`
/// waits), Unmark says `STATUS_CANCELLED`, and the driver completes the request from a thread
/// of its own.
#[test]
fn completing_after_unmark_said_cancelled_but_before_evt_request_cancel_is_reported() {
    let (seen, report) = cancel_case(|handle, cancelable| {
        let request = KEPT.lock().unwrap()[0] as WDFREQUEST;
        std::thread::scope(|scope| {
            let (blocked, was_blocked) = block_a_callback(scope, handle);
            cancelable.cancel();
            // SAFETY: A request the driver owns and marked cancelable.
            let unmarked =
                unsafe { call_unsafe_wdf_function_binding!(WdfRequestUnmarkCancelable, request) };
            let cancels_before = CANCELS.lock().unwrap().len();
            // Wrong: EvtRequestCancel has not been called yet.
            complete_success(std::ptr::null_mut(), request, 0, 0);
            RELEASE.store(true, Ordering::SeqCst);
            let released = blocked.join().unwrap().map(|(status, _)| status);
            let completed = cancelable.wait(Some(BOUND)).map(|(status, _)| status);
            (was_blocked, unmarked, cancels_before, released, completed)
        })
    });
    let (was_blocked, unmarked, cancels_before, released, completed) = seen;
    assert!(was_blocked, "the blocking callback never ran");
    assert_eq!(unmarked, windows_sys::Win32::Foundation::STATUS_CANCELLED);
    assert_eq!(
        cancels_before, 0,
        "EvtRequestCancel ran before the completion"
    );
    assert_eq!(released, Some(STATUS_SUCCESS));
    assert_eq!(completed, Some(STATUS_SUCCESS));
    let rules: Vec<&str> = report.violations.iter().map(|v| v.rule).collect();
    assert_eq!(rules, ["WdfRequestCompletedCancelable"], "{report}");
}

// --- Configuration KMDF honours in its own way.

/// A control device's default queue created with `PowerManaged = WdfTrue`: KMDF forces it
/// off for a non-PnP device (`shared/irphandlers/io/fxioqueue.cpp:407-409, 420-424`), so the
/// queue presents requests although the device never enters D0.
#[test]
fn a_control_device_queue_is_never_power_managed_whatever_it_asks() {
    let mut outcome = None;
    let report = run(
        |driver, path| {
            let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
            let device = control_device(wdf_driver, |_| {}, attributes()).unwrap();
            assert_eq!(create_link(device), STATUS_SUCCESS);
            let config = WDF_IO_QUEUE_CONFIG {
                PowerManaged: _WDF_TRI_STATE::WdfTrue,
                ..queue_config()
            };
            create_queue(device, config).unwrap();
            // SAFETY: Our control device.
            unsafe { call_unsafe_wdf_function_binding!(WdfControlFinishInitializing, device) };
            STATUS_SUCCESS
        },
        None,
        |handle| outcome = ioctl(handle, 8),
    );
    assert_eq!(outcome.map(|(status, _)| status), Some(STATUS_SUCCESS));
    assert!(report.is_clean(), "{report}");
}

static PRESENTED: AtomicBool = AtomicBool::new(false);

/// A zero-length write reaches `EvtIoWrite` only on a queue with `AllowZeroLengthRequests`;
/// otherwise the framework completes it with `STATUS_SUCCESS` itself
/// (`shared/irphandlers/io/fxioqueue.cpp:3244-3262, 3282-3300`).
#[test]
fn zero_length_writes_are_presented_only_when_the_queue_allows_them() {
    for allow in [false, true] {
        PRESENTED.store(false, Ordering::SeqCst);
        let mut completed = None;
        let report = run(
            move |driver, path| {
                *ON_WRITE.lock().unwrap() = Some(|_, request, length| {
                    assert_eq!(length, 0);
                    PRESENTED.store(true, Ordering::SeqCst);
                    complete(request, STATUS_SUCCESS);
                });
                let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
                let device = control_device(wdf_driver, |_| {}, attributes()).unwrap();
                assert_eq!(create_link(device), STATUS_SUCCESS);
                let config = WDF_IO_QUEUE_CONFIG {
                    EvtIoWrite: Some(io_write),
                    AllowZeroLengthRequests: u8::from(allow),
                    ..queue_config()
                };
                create_queue(device, config).unwrap();
                // SAFETY: Our control device.
                unsafe { call_unsafe_wdf_function_binding!(WdfControlFinishInitializing, device) };
                STATUS_SUCCESS
            },
            None,
            |handle| {
                completed = handle
                    .write(&[])
                    .unwrap()
                    .wait(Some(Duration::from_secs(5)))
                    .map(|(status, _)| status);
            },
        );
        *ON_WRITE.lock().unwrap() = None;
        assert_eq!(completed, Some(STATUS_SUCCESS), "allow {allow}");
        assert_eq!(PRESENTED.load(Ordering::SeqCst), allow, "allow {allow}");
        assert!(report.is_clean(), "allow {allow}: {report}");
    }
}

/// What the context test saw: the context's bytes through its own type info, and whether a
/// look-up with another type info (same name and size) found anything.
static CONTEXT_SEEN: Mutex<Option<(Vec<u8>, bool)>> = Mutex::new(None);

/// An object's context is zeroed at creation (`shared/object/handleapi.cpp:342-344`) and is
/// found only through the very type-info pointer it was declared with: another one with the
/// same name and size finds nothing (`shared/object/handleapi.cpp:586-605`).
#[test]
fn contexts_are_zeroed_and_found_only_by_their_own_type_info() {
    static MINE: WdfInfo = WdfInfo(WDF_OBJECT_CONTEXT_TYPE_INFO {
        Size: 40,
        ContextName: c"CONTEXT".as_ptr(),
        ContextSize: 24,
        UniqueType: std::ptr::null(),
        EvtDriverGetUniqueContextType: None,
    });
    static LOOKALIKE: WdfInfo = WdfInfo(WDF_OBJECT_CONTEXT_TYPE_INFO {
        Size: 40,
        ContextName: c"CONTEXT".as_ptr(),
        ContextSize: 24,
        UniqueType: std::ptr::null(),
        EvtDriverGetUniqueContextType: None,
    });
    *CONTEXT_SEEN.lock().unwrap() = None;
    let report = entry_only(|driver, path| {
        let wdf_driver = create_driver(driver, path, driver_config()).unwrap();
        let with = WDF_OBJECT_ATTRIBUTES {
            ContextTypeInfo: &raw const MINE.0,
            ..attributes()
        };
        let device = control_device(wdf_driver, |_| {}, with).unwrap();
        // SAFETY: A live device; both type infos are statics.
        let (mine, other) = unsafe {
            (
                call_unsafe_wdf_function_binding!(
                    WdfObjectGetTypedContextWorker,
                    device.cast(),
                    &raw const MINE.0
                ),
                call_unsafe_wdf_function_binding!(
                    WdfObjectGetTypedContextWorker,
                    device.cast(),
                    &raw const LOOKALIKE.0
                ),
            )
        };
        let bytes = if mine.is_null() {
            Vec::new()
        } else {
            // SAFETY: The context holds ContextSize (24) bytes.
            unsafe { std::slice::from_raw_parts(mine.cast::<u8>(), 24) }.to_vec()
        };
        *CONTEXT_SEEN.lock().unwrap() = Some((bytes, other.is_null()));
        STATUS_SUCCESS
    });
    assert_eq!(
        CONTEXT_SEEN.lock().unwrap().take(),
        Some((vec![0; 24], true))
    );
    assert!(report.is_clean(), "{report}");
}

/// `WdfRequestRetrieveOutputBuffer` of a `METHOD_OUT_DIRECT` IOCTL is the caller's buffer
/// under the I/O manager's MDL, mapped (`shared/core/fxrequest.cpp:1660-1664, 1700-1740`):
/// what the driver writes there is what the caller reads.
#[test]
fn a_direct_ioctl_output_buffer_is_the_callers_memory() {
    let mut outcome = None;
    let report = run(
        working_driver,
        Some(|_, request, output, _| {
            let mut buffer = std::ptr::null_mut();
            let mut length = 0;
            // SAFETY: A request the driver owns; it writes no more than `length` bytes.
            let status = unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfRequestRetrieveOutputBuffer,
                    request,
                    4,
                    &raw mut buffer,
                    &raw mut length
                )
            };
            if status < 0 {
                complete(request, status);
                return;
            }
            assert_eq!(length, output);
            // SAFETY: As above.
            unsafe { std::ptr::copy_nonoverlapping([9_u8, 8, 7, 6].as_ptr(), buffer.cast(), 4) };
            complete_with(request, STATUS_SUCCESS, 4);
        }),
        |handle| {
            // METHOD_OUT_DIRECT (2).
            let pending = handle.ioctl(0x0012_2002, &[1, 2], 8).unwrap();
            outcome = pending.wait(Some(Duration::from_secs(5)));
        },
    );
    assert_eq!(outcome, Some((STATUS_SUCCESS, vec![9, 8, 7, 6])));
    assert!(report.is_clean(), "{report}");
}
