//! The kernel calls a pooled send path makes, each used right (a clean report, datagrams on the
//! wire) and then wrong on purpose (the rule named): `IoReuseIrp`, `IoBuildPartialMdl`, the
//! work item DDIs, `KeQueryPerformanceCounter`, and no WSK call from a completion routine.
#![allow(clippy::undocumented_unsafe_blocks, missing_docs)]

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IRP, MDL};
use windows_sys::Wdk::System::SystemServices::{
    CriticalWorkQueue, DelayedWorkQueue, IoAllocateIrp, IoAllocateMdl, IoAllocateWorkItem,
    IoBuildPartialMdl, IoFreeIrp, IoFreeMdl, IoFreeWorkItem, IoQueueWorkItem, IoReuseIrp,
    KeQueryPerformanceCounter, MmBuildMdlForNonPagedPool,
};
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_MORE_PROCESSING_REQUIRED, STATUS_SUCCESS};
use wskudp_core::ddi::nt::{IoWorkItemRoutine, io_set_completion_routine};
use wskudp_core::ddi::wsk::WSK_BUF;
use wskudp_kmodel::iomgr::{self, EntryKind};
use wskudp_kmodel::{CompletionMode, Config, Machine, Profile};

/// Sends `payload` on `socket` with an IRP the caller owns (completion routine keeps it).
fn send_on(socket: Socket, irp: *mut IRP, done: &AtomicBool, to: std::net::SocketAddr) -> NTSTATUS {
    let data = Pool::new(b"reused");
    let mdl = unsafe { IoAllocateMdl(data.ptr, 6, false, false, std::ptr::null_mut()) };
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    let mut buffer = WSK_BUF {
        Mdl: mdl,
        Offset: 0,
        Length: 6,
    };
    let remote = Pool::new(&sockaddr(to));
    unsafe {
        io_set_completion_routine(irp, keeps, std::ptr::from_ref(done).cast_mut().cast());
    }
    let send_to = socket.dispatch().WskSendTo.unwrap();
    unsafe {
        send_to(
            socket.0,
            &raw mut buffer,
            0,
            remote.ptr.cast(),
            0,
            std::ptr::null_mut(),
            irp,
        )
    };
    wait(done);
    unsafe { IoFreeMdl(mdl) };
    unsafe { (*irp).IoStatus.Anonymous.Status }
}

unsafe extern "system" fn keeps(
    _: *const DEVICE_OBJECT,
    _: *mut IRP,
    done: *mut c_void,
) -> NTSTATUS {
    unsafe { &*done.cast::<AtomicBool>() }.store(true, Ordering::Release);
    STATUS_MORE_PROCESSING_REQUIRED
}

#[test]
fn an_irp_reset_with_io_reuse_irp_carries_another_send() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let irp = unsafe { IoAllocateIrp(1, false) };
    for _ in 0..3 {
        let done = AtomicBool::new(false);
        assert_eq!(send_on(socket, irp, &done, rx.addr()), STATUS_SUCCESS);
        assert_eq!(rx.recv().expect("datagram").payload, b"reused");
        unsafe { IoReuseIrp(irp, STATUS_SUCCESS) };
    }
    unsafe { IoFreeIrp(irp) };
    socket.close();
    let report = finish_clean(machine, client);
    assert_eq!(report.stats.irps_reused, 3);
}

#[test]
fn an_irp_issued_again_without_io_reuse_irp_is_refused() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let irp = unsafe { IoAllocateIrp(1, false) };
    let done = AtomicBool::new(false);
    assert_eq!(send_on(socket, irp, &done, rx.addr()), STATUS_SUCCESS);
    // Issued again as it came back: the provider refuses it and never completes it.
    let data = Pool::new(b"x");
    let mdl = unsafe { IoAllocateMdl(data.ptr, 1, false, false, std::ptr::null_mut()) };
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    let mut buffer = WSK_BUF {
        Mdl: mdl,
        Offset: 0,
        Length: 1,
    };
    let remote = Pool::new(&sockaddr(rx.addr()));
    let send_to = socket.dispatch().WskSendTo.unwrap();
    unsafe {
        send_to(
            socket.0,
            &raw mut buffer,
            0,
            remote.ptr.cast(),
            0,
            std::ptr::null_mut(),
            irp,
        )
    };
    unsafe { IoFreeMdl(mdl) };
    unsafe { IoFreeIrp(irp) };
    socket.close();
    let report = finish(machine, client);
    assert_eq!(rules(&report), ["IrpReusedWithoutReset"]);
}

#[test]
fn io_reuse_irp_of_an_irp_in_flight_or_not_allocated_is_a_violation() {
    // The provider keeps every IRP queued for 300 ms before it completes it.
    let machine = Machine::boot(Config {
        completion: CompletionMode::Worker {
            delay: Duration::from_millis(300),
            batch: 64,
            order: wskudp_kmodel::Order::Fifo,
        },
        ..Config::default()
    });
    let client = Client::register();
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let irp = unsafe { IoAllocateIrp(1, false) };
    let done = AtomicBool::new(false);
    let (irp_addr, socket_addr) = (irp.expose_provenance(), socket.0.expose_provenance());
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            send_on(
                Socket(std::ptr::with_exposed_provenance_mut(socket_addr)),
                std::ptr::with_exposed_provenance_mut(irp_addr),
                &done,
                rx.addr(),
            )
        });
        while wskudp_kmodel::held_completions() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The provider holds it: reusing it now is a use of an IRP in flight.
        unsafe { IoReuseIrp(irp, STATUS_SUCCESS) };
        assert_eq!(sender.join().unwrap(), STATUS_SUCCESS);
    });
    unsafe { IoFreeIrp(irp) };
    let mut raw = [0_u64; 64];
    unsafe { IoReuseIrp(raw.as_mut_ptr().cast(), STATUS_SUCCESS) };
    socket.close();
    let report = finish(machine, client);
    assert_eq!(
        rules(&report),
        ["IrpReusedInFlight", "IoReuseIrpNotAllocated"]
    );
}

/// A non-paged buffer and its whole-buffer MDL, built.
fn pool_mdl(len: usize) -> (Pool, *mut MDL) {
    let pool = Pool::new(&vec![7; len]);
    let length = u32::try_from(len).unwrap();
    let mdl = unsafe { IoAllocateMdl(pool.ptr, length, false, false, std::ptr::null_mut()) };
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    (pool, mdl)
}

#[test]
fn partial_mdls_of_a_pool_buffer_carry_its_pieces() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let payload: Vec<u8> = (0..=255).collect();
    let whole_pool = Pool::new(&payload);
    let whole = unsafe { IoAllocateMdl(whole_pool.ptr, 256, false, false, std::ptr::null_mut()) };
    unsafe { MmBuildMdlForNonPagedPool(whole) };
    // Two partial MDLs sized for the whole buffer, built over its halves and chained.
    let first = unsafe { IoAllocateMdl(whole_pool.ptr, 256, false, false, std::ptr::null_mut()) };
    let second = unsafe { IoAllocateMdl(whole_pool.ptr, 256, false, false, std::ptr::null_mut()) };
    unsafe {
        IoBuildPartialMdl(whole, first, whole_pool.ptr, 100);
        IoBuildPartialMdl(
            whole,
            second,
            whole_pool.ptr.cast::<u8>().add(100).cast(),
            156,
        );
        (*first).Next = second;
    }
    let mut buffer = WSK_BUF {
        Mdl: first,
        Offset: 0,
        Length: 256,
    };
    let remote = Pool::new(&sockaddr(rx.addr()));
    let send_to = socket.dispatch().WskSendTo.unwrap();
    let (_, status, _) = with_irp(|irp| unsafe {
        send_to(
            socket.0,
            &raw mut buffer,
            0,
            remote.ptr.cast(),
            0,
            std::ptr::null_mut(),
            irp,
        )
    });
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(rx.recv().expect("datagram").payload, payload);
    for mdl in [first, second, whole] {
        unsafe { IoFreeMdl(mdl) };
    }
    drop((whole_pool, remote));
    socket.close();
    finish_clean(machine, client);
}

#[test]
fn partial_mdl_mistakes_are_named() {
    let (machine, client) = boot(Profile::default());
    let (pool, whole) = pool_mdl(8192);
    let (small_pool, small_whole) = pool_mdl(16);
    // A target sized for 16 bytes cannot take a range of three pages.
    let small = unsafe { IoAllocateMdl(small_pool.ptr, 16, false, false, std::ptr::null_mut()) };
    unsafe { IoBuildPartialMdl(whole, small, pool.ptr.cast::<u8>().add(100).cast(), 8000) };
    // A range past the source's buffer.
    let target = unsafe { IoAllocateMdl(pool.ptr, 8192, false, false, std::ptr::null_mut()) };
    unsafe { IoBuildPartialMdl(whole, target, pool.ptr.cast::<u8>().add(8000).cast(), 400) };
    // A source never built (neither locked nor non-paged pool).
    let unbuilt = unsafe { IoAllocateMdl(pool.ptr, 8192, false, false, std::ptr::null_mut()) };
    unsafe { IoBuildPartialMdl(unbuilt, target, pool.ptr, 10) };
    // A target that is no MDL.
    let mut not_an_mdl = [0_u64; 32];
    unsafe { IoBuildPartialMdl(whole, not_an_mdl.as_mut_ptr().cast(), pool.ptr, 10) };
    for mdl in [small, target, unbuilt, whole, small_whole] {
        unsafe { IoFreeMdl(mdl) };
    }
    drop((pool, small_pool));
    let report = finish(machine, client);
    assert_eq!(
        rules(&report),
        [
            "PartialMdlTooSmall",
            "PartialMdlOutsideSource",
            "PartialMdlSourceNotLocked",
            "PartialMdlTarget"
        ]
    );
}

unsafe extern "system" fn sends_from_completion(
    _: *const DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    let socket = Socket(context.cast());
    // A WSK call inside the routine: the rule under test.
    let _ = socket.send_to("127.0.0.1:9".parse().unwrap(), b"x");
    unsafe { IoFreeIrp(irp) };
    STATUS_MORE_PROCESSING_REQUIRED
}

#[test]
fn a_wsk_call_from_a_completion_routine_is_a_violation() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let data = Pool::new(b"y");
    let mdl = unsafe { IoAllocateMdl(data.ptr, 1, false, false, std::ptr::null_mut()) };
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    let mut buffer = WSK_BUF {
        Mdl: mdl,
        Offset: 0,
        Length: 1,
    };
    let remote = Pool::new(&sockaddr(rx.addr()));
    let irp = unsafe { IoAllocateIrp(1, false) };
    unsafe { io_set_completion_routine(irp, sends_from_completion, socket.0.cast()) };
    let send_to = socket.dispatch().WskSendTo.unwrap();
    unsafe {
        send_to(
            socket.0,
            &raw mut buffer,
            0,
            remote.ptr.cast(),
            0,
            std::ptr::null_mut(),
            irp,
        )
    };
    unsafe { IoFreeMdl(mdl) };
    socket.close();
    let report = finish(machine, client);
    assert_eq!(rules(&report), ["WskCallInCompletion"]);
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "system" fn counts(_: *mut DEVICE_OBJECT, _: *mut c_void) {
    RUNS.fetch_add(1, Ordering::AcqRel);
}

fn routine() -> unsafe extern "system" fn() {
    let routine = counts as IoWorkItemRoutine;
    unsafe { std::mem::transmute::<IoWorkItemRoutine, unsafe extern "system" fn()>(routine) }
}

/// Runs `body` with a device of a loaded test driver, then unloads it.
fn with_device(body: impl FnOnce(*mut DEVICE_OBJECT)) -> wskudp_kmodel::Report {
    let machine = Machine::boot(Config::default());
    // Counted per machine: tests run one machine at a time.
    RUNS.store(0, Ordering::Release);
    let driver = iomgr::load("workitems", common_driver_entry, EntryKind::Direct).unwrap();
    body(DEVICE.load(Ordering::Acquire));
    driver.unload().unwrap();
    machine.shutdown()
}

static DEVICE: std::sync::atomic::AtomicPtr<DEVICE_OBJECT> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

unsafe extern "system" fn unload(_: *const windows_sys::Wdk::Foundation::DRIVER_OBJECT) {
    unsafe {
        windows_sys::Wdk::System::SystemServices::IoDeleteDevice(
            DEVICE.swap(std::ptr::null_mut(), Ordering::AcqRel),
        );
    }
}

unsafe extern "system" fn common_driver_entry(
    driver: *mut windows_sys::Wdk::Foundation::DRIVER_OBJECT,
    _: *const windows_sys::Win32::Foundation::UNICODE_STRING,
) -> NTSTATUS {
    let mut device = std::ptr::null_mut();
    let status = unsafe {
        windows_sys::Wdk::System::SystemServices::IoCreateDevice(
            driver,
            0,
            std::ptr::null(),
            0x12,
            0x100,
            false,
            &raw mut device,
        )
    };
    if status >= 0 {
        DEVICE.store(device, Ordering::Release);
        unsafe { (*driver).DriverUnload = Some(unload) };
    }
    status
}

fn wait_runs(n: usize) {
    while RUNS.load(Ordering::Acquire) < n {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_work_item_runs_its_routine_and_may_be_queued_again_once_it_runs() {
    let report = with_device(|device| {
        let item = unsafe { IoAllocateWorkItem(device) };
        assert_ne!(item, 0);
        for n in 1..=3 {
            unsafe { IoQueueWorkItem(item, Some(routine()), DelayedWorkQueue, std::ptr::null()) };
            wait_runs(n);
        }
        // The routine has returned once RUNS moved; let the worker drop its device reference.
        std::thread::sleep(Duration::from_millis(20));
        unsafe { IoFreeWorkItem(item) };
    });
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.stats.work_items, 3);
}

#[test]
fn work_item_mistakes_are_named() {
    let report = with_device(|device| {
        let item = unsafe { IoAllocateWorkItem(device) };
        // Not DelayedWorkQueue.
        unsafe { IoQueueWorkItem(item, Some(routine()), CriticalWorkQueue, std::ptr::null()) };
        wait_runs(1);
        std::thread::sleep(Duration::from_millis(20));
        unsafe { IoFreeWorkItem(item) };
        // Freed twice.
        unsafe { IoFreeWorkItem(item) };
        // Never freed: a leak at shutdown.
        let _leaked = unsafe { IoAllocateWorkItem(device) };
    });
    assert_eq!(rules(&report), ["WorkItemQueueType", "WorkItemUnknown"]);
    assert_eq!(report.leaked.work_items, 1);
}

#[test]
fn a_work_item_queued_twice_or_freed_while_queued_is_a_violation() {
    let report = with_device(|device| {
        let item = unsafe { IoAllocateWorkItem(device) };
        wskudp_kmodel::hold_work_items(true);
        unsafe { IoQueueWorkItem(item, Some(routine()), DelayedWorkQueue, std::ptr::null()) };
        unsafe { IoQueueWorkItem(item, Some(routine()), DelayedWorkQueue, std::ptr::null()) };
        unsafe { IoFreeWorkItem(item) };
        wskudp_kmodel::hold_work_items(false);
        wait_runs(1);
        std::thread::sleep(Duration::from_millis(20));
        unsafe { IoFreeWorkItem(item) };
    });
    assert_eq!(
        rules(&report),
        ["WorkItemQueuedTwice", "WorkItemFreedQueued"]
    );
    assert_eq!(RUNS.load(Ordering::Acquire), 1);
}

#[test]
fn the_performance_counter_runs_at_its_frequency() {
    let machine = Machine::boot(Config::default());
    let mut frequency = 0_i64;
    let before = unsafe { KeQueryPerformanceCounter(&raw mut frequency) };
    std::thread::sleep(Duration::from_millis(50));
    let after = unsafe { KeQueryPerformanceCounter(std::ptr::null_mut()) };
    assert_eq!(frequency, 10_000_000);
    let elapsed = Duration::from_nanos(u64::try_from((after - before) * 100).unwrap());
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    assert!(machine.shutdown().is_clean());
}
