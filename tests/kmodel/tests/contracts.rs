//! The model catches what Driver Verifier would: each test breaks one contract on purpose and
//! checks the report names it. A model that passed everything would be worthless.
#![allow(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    missing_docs
)]

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{
    AF_INET, Client, Socket, TAG, create_socket, finish, finish_clean, irp_raising, rules, wait,
};
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IRP};
use windows_sys::Wdk::System::SystemServices::{IoAcquireCancelSpinLock, IoReleaseCancelSpinLock};
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_SUCCESS};
use wskudp_core::ddi::nt::{
    ExAcquireSpinLockExclusive, ExAllocatePool2, ExFreePoolWithTag, ExReleaseSpinLockExclusive,
    IoAllocateIrp, IoAllocateMdl, IoCancelIrp, IoFreeIrp, IoFreeMdl, MmBuildMdlForNonPagedPool,
    POOL_FLAG_NON_PAGED, io_set_completion_routine,
};
use wskudp_core::ddi::wsk::{WSK_BUF, WSK_BUF_LIST, WskDeregister};
use wskudp_core::sockaddr::SockAddrBuffer;
use wskudp_kmodel::{CompletionMode, Config, Machine, Order};

const POOL_FLAG_PAGED: u64 = 0x100;

fn machine() -> Machine {
    Machine::boot(Config::default())
}

#[test]
fn exports_are_exactly_what_core_imports() {
    let mut required: Vec<&str> = wskudp_core::ddi::REQUIRED_SYMBOLS
        .iter()
        .map(|(_, name)| *name)
        .collect();
    required.sort_unstable();
    let mut exported = wskudp_kmodel::EXPORTS.to_vec();
    exported.sort_unstable();
    assert_eq!(exported, required);
}

#[test]
fn clean_run_reports_clean() {
    let machine = machine();
    let p = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 64, TAG) };
    unsafe { ExFreePoolWithTag(p, TAG) };
    let report = machine.shutdown();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.stats.pool_allocations, 1);
}

#[test]
fn pool_double_free_tag_mismatch_and_leak() {
    let machine = machine();
    let a = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 16, TAG) };
    unsafe { ExFreePoolWithTag(a, TAG) };
    unsafe { ExFreePoolWithTag(a, TAG) };
    let b = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 16, TAG) };
    unsafe { ExFreePoolWithTag(b, u32::from_ne_bytes(*b"Othr")) };
    let _leaked = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 40, TAG) };
    let report = machine.shutdown();
    assert_eq!(rules(&report), ["PoolFreeUnknown", "PoolTagMismatch"]);
    assert_eq!(report.leaked.pool_by_tag.get("Test"), Some(&1));
    assert_eq!(report.leaked.pool_bytes, 40);
}

#[test]
fn irql_too_high_for_paged_pool() {
    let machine = machine();
    let mut lock = 0_i32;
    let old = unsafe { ExAcquireSpinLockExclusive(&raw mut lock) };
    assert_eq!(
        wskudp_kmodel::irql::current(),
        wskudp_kmodel::irql::DISPATCH_LEVEL
    );
    let p = unsafe { ExAllocatePool2(POOL_FLAG_PAGED, 8, TAG) };
    unsafe { ExReleaseSpinLockExclusive(&raw mut lock, old) };
    assert_eq!(
        wskudp_kmodel::irql::current(),
        wskudp_kmodel::irql::PASSIVE_LEVEL
    );
    unsafe { ExFreePoolWithTag(p, TAG) };
    let report = machine.shutdown();
    assert_eq!(rules(&report), ["IrqlTooHigh"]);
    assert!(
        report.violations[0]
            .detail
            .contains("ExAllocatePool2 called at IRQL 2")
    );
}

#[test]
fn mdl_over_stack_memory_and_irp_not_from_ioallocateirp() {
    let machine = machine();
    let stack = [0_u8; 64];
    let mdl = unsafe {
        IoAllocateMdl(
            stack.as_ptr().cast(),
            64,
            false,
            false,
            std::ptr::null_mut(),
        )
    };
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    unsafe { IoFreeMdl(mdl) };
    let mut fake = std::mem::MaybeUninit::<IRP>::zeroed();
    unsafe { IoFreeIrp(fake.as_mut_ptr()) };
    let report = machine.shutdown();
    assert_eq!(rules(&report), ["MdlNotNonPagedPool", "IoAllocateFree"]);
}

#[allow(clippy::missing_const_for_fn, reason = "a completion routine")]
unsafe extern "system" fn returns_success(
    _: *const DEVICE_OBJECT,
    _: *mut IRP,
    _: *mut c_void,
) -> NTSTATUS {
    STATUS_SUCCESS
}

/// A bound IPv4 socket on the model provider, made the right way.
fn bound_socket(client: &Client) -> Socket {
    Socket::bound(client, "127.0.0.1:0".parse().unwrap())
}

#[test]
fn completion_routine_must_return_more_processing_required() {
    let machine = machine();
    let client = Client::register();
    let irp = unsafe { IoAllocateIrp(1, false) };
    unsafe { io_set_completion_routine(irp, returns_success, std::ptr::null_mut()) };
    // Unsupported flags: the provider fails and completes the IRP at once.
    unsafe { create_socket(&client.npi, AF_INET, 0x40, irp) };
    unsafe { IoFreeIrp(irp) };
    let report = finish(machine, client);
    assert_eq!(rules(&report), ["IrpCompletedPastDriver"]);
}

#[test]
fn irp_without_completion_routine_and_irp_reused_without_reset() {
    let machine = machine();
    let client = Client::register();
    let socket = bound_socket(&client);
    let get = socket.dispatch().WskGetLocalAddress.unwrap();
    let irp = unsafe { IoAllocateIrp(1, false) };
    let mut local = SockAddrBuffer::zeroed();
    // No completion routine set.
    unsafe { get(socket.0, local.as_sockaddr_mut(), irp) };
    // Handed over again without IoReuseIrp.
    unsafe { get(socket.0, local.as_sockaddr_mut(), irp) };
    unsafe { IoFreeIrp(irp) };
    socket.close();
    let report = finish(machine, client);
    assert_eq!(
        rules(&report),
        [
            "IrpCompletionRoutine",
            "IrpCompletedPastDriver",
            "IrpReusedWithoutReset"
        ]
    );
}

#[test]
fn deregister_with_capture_and_socket_open_would_hang() {
    let machine = machine();
    let mut client = Client::register();
    let _socket = bound_socket(&client);
    unsafe { WskDeregister(&raw mut *client.registration) };
    let report = machine.shutdown();
    assert_eq!(
        rules(&report),
        ["WskDeregisterWithCapture", "WskDeregisterWithSockets"]
    );
    assert_eq!(report.leaked.sockets, 1);
}

/// One `WskSendTo` of `len` pool bytes on `socket`, its IRP cancelled first if `cancel_first`
/// (an `IoCancelIrp` before the IRP is handed over: `Cancel` set, no routine to call).
/// `meanwhile(payload)` runs while the IRP may still be in flight and says whether it freed the
/// payload. Returns what `WskSendTo` returned, whether the IRP had completed by then, its final
/// status, and whether a cancel routine was left on it. (Control buffers: `wsk_send_rules.rs`.)
fn send_once(
    socket: Socket,
    len: u32,
    cancel_first: bool,
    meanwhile: impl FnOnce(*mut c_void) -> bool,
) -> (NTSTATUS, bool, NTSTATUS, bool) {
    let payload = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, len as usize, TAG) };
    let mdl = unsafe { IoAllocateMdl(payload, len, false, false, std::ptr::null_mut()) };
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    let mut buffer = WSK_BUF {
        Mdl: mdl,
        Offset: 0,
        Length: len as usize,
    };
    let mut remote = SockAddrBuffer::new("127.0.0.1:9".parse().unwrap());
    let done = AtomicBool::new(false);
    let irp = irp_raising(&done);
    if cancel_first {
        assert!(
            !unsafe { IoCancelIrp(irp) },
            "no cancel routine to call yet"
        );
    }
    let send_to = socket.dispatch().WskSendTo.unwrap();
    let returned = unsafe {
        send_to(
            socket.0,
            &raw mut buffer,
            0,
            remote.as_sockaddr_mut(),
            0,
            std::ptr::null_mut(),
            irp,
        )
    };
    let completed = done.load(Ordering::Acquire);
    let freed = meanwhile(payload);
    wait(&done);
    let status = unsafe { (*irp).IoStatus.Anonymous.Status };
    let routine_left = unsafe { (*irp).CancelRoutine }.is_some();
    unsafe { IoFreeIrp(irp) };
    unsafe { IoFreeMdl(mdl) };
    if !freed {
        unsafe { ExFreePoolWithTag(payload, TAG) };
    }
    (returned, completed, status, routine_left)
}

/// The provider reads the data late (worker mode): a driver that frees the buffer an MDL
/// describes before the IRP completes is caught, and nothing is sent.
#[test]
fn buffer_freed_before_completion_is_caught() {
    let machine = Machine::boot(Config {
        completion: CompletionMode::Worker {
            delay: Duration::from_millis(20),
            batch: 8,
            order: Order::Fifo,
        },
        ..Config::default()
    });
    let client = Client::register();
    let socket = bound_socket(&client);
    let (returned, _, status, _) = send_once(socket, 100, false, |payload| {
        // Wrong: the buffer is freed while the IRP is in flight.
        unsafe { ExFreePoolWithTag(payload, TAG) };
        true
    });
    assert_eq!(returned, windows_sys::Win32::Foundation::STATUS_PENDING);
    assert!(status < 0, "the send must fail");
    socket.close();
    let report = finish(machine, client);
    assert_eq!(rules(&report), ["MdlBufferFreed"]);
    assert_eq!(report.stats.datagrams_sent, 0);
}

/// The provider makes a pending IRP cancelable (sets its cancel routine, then checks `Cancel`)
/// before any completer can take it from its queue, and never touches it after: a completer
/// may complete it at once, and the driver free it. With `CompletionMode::Racing` the
/// completer takes each IRP the moment it is queued, before the WSK call returns
/// `STATUS_PENDING`: the IRP must come back completed with no cancel routine left on it. An IRP
/// cancelled before it was handed over completes cancelled.
#[test]
fn a_pending_irp_is_cancelable_before_a_completer_can_take_it() {
    use windows_sys::Win32::Foundation::{STATUS_CANCELLED, STATUS_PENDING};
    let machine = Machine::boot(Config {
        completion: CompletionMode::Racing,
        ..Config::default()
    });
    let client = Client::register();
    let socket = bound_socket(&client);
    assert_eq!(
        send_once(socket, 8, false, |_| false),
        (STATUS_PENDING, true, STATUS_SUCCESS, false),
        "(returned, completed before returning, status, cancel routine left on the IRP)"
    );
    assert_eq!(
        send_once(socket, 8, true, |_| false),
        (STATUS_PENDING, true, STATUS_CANCELLED, false),
        "(returned, completed before returning, status, cancel routine left on the IRP)"
    );
    socket.close();
    let report = finish_clean(machine, client);
    assert_eq!(report.stats.datagrams_sent, 1);
}

static RELEASED_EARLY: AtomicBool = AtomicBool::new(false);
static TAKEN_BY_OTHER: AtomicBool = AtomicBool::new(false);

/// A cancel routine that releases the cancel spin lock first thing, and returns only once
/// another thread holds it.
unsafe extern "system" fn releases_then_waits(_: *mut DEVICE_OBJECT, irp: *mut IRP) {
    unsafe { IoReleaseCancelSpinLock((*irp).CancelIrql) };
    RELEASED_EARLY.store(true, Ordering::SeqCst);
    wait(&TAKEN_BY_OTHER);
}

/// The cancel spin lock has an owner: a cancel routine that released it is not blamed when
/// another thread has taken it by the time the routine returns, and that thread's hold is
/// not released behind its back (which the other thread's release would then report).
#[test]
fn the_cancel_spin_lock_taken_by_another_thread_is_not_the_cancel_routines() {
    let machine = machine();
    RELEASED_EARLY.store(false, Ordering::SeqCst);
    TAKEN_BY_OTHER.store(false, Ordering::SeqCst);
    let irp = unsafe { IoAllocateIrp(1, false) };
    // Passed down to a (pretend) lower driver: IoCancelIrp finds its current location.
    unsafe {
        let next = wskudp_core::ddi::nt::io_get_next_irp_stack_location(irp);
        wskudp_core::ddi::nt::current_stack_location_slot(irp).write(next);
        (*irp).CurrentLocation -= 1;
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            wait(&RELEASED_EARLY);
            let mut irql = 0_u8;
            unsafe { IoAcquireCancelSpinLock(&raw mut irql) };
            TAKEN_BY_OTHER.store(true, Ordering::SeqCst);
            wait(&done);
            unsafe { IoReleaseCancelSpinLock(irql) };
        });
        unsafe { wskudp_core::ddi::nt::io_set_cancel_routine(irp, Some(releases_then_waits)) };
        assert!(unsafe { IoCancelIrp(irp) });
        done.store(true, Ordering::Release);
        other.join().unwrap();
    });
    unsafe { IoFreeIrp(irp) };
    let report = machine.shutdown();
    assert!(report.is_clean(), "{report}");
}

/// A worker that completes late, so the provider reads what the driver handed over well after
/// the WSK call returned.
fn late_machine() -> Machine {
    Machine::boot(Config {
        completion: CompletionMode::Worker {
            delay: Duration::from_millis(20),
            batch: 8,
            order: Order::Fifo,
        },
        ..Config::default()
    })
}

/// What `send_late` frees too early.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FreedEarly {
    RemoteAddress,
    Mdl,
}

/// A `WskSendTo` of 100 bytes with the remote address in pool, pending on a late worker, during
/// which `wrong` is freed: the IRP's final status.
fn send_late(socket: Socket, wrong: FreedEarly) -> NTSTATUS {
    let payload = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, TAG) };
    let mdl = unsafe { IoAllocateMdl(payload, 100, false, false, std::ptr::null_mut()) };
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    let mut buffer = WSK_BUF {
        Mdl: mdl,
        Offset: 0,
        Length: 100,
    };
    let address = SockAddrBuffer::new("127.0.0.1:9".parse().unwrap());
    let remote = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 64, TAG) };
    unsafe { std::ptr::copy_nonoverlapping(&raw const address, remote.cast(), 1) };
    let done = AtomicBool::new(false);
    let irp = irp_raising(&done);
    let send_to = socket.dispatch().WskSendTo.unwrap();
    let returned = unsafe {
        send_to(
            socket.0,
            &raw mut buffer,
            0,
            remote.cast(),
            0,
            std::ptr::null_mut(),
            irp,
        )
    };
    assert_eq!(returned, windows_sys::Win32::Foundation::STATUS_PENDING);
    // Wrong: what the IRP refers to is freed while it is in flight.
    match wrong {
        FreedEarly::RemoteAddress => unsafe { ExFreePoolWithTag(remote, TAG) },
        FreedEarly::Mdl => unsafe { IoFreeMdl(mdl) },
    }
    wait(&done);
    let status = unsafe { (*irp).IoStatus.Anonymous.Status };
    unsafe { IoFreeIrp(irp) };
    if wrong != FreedEarly::Mdl {
        unsafe { IoFreeMdl(mdl) };
    }
    if wrong != FreedEarly::RemoteAddress {
        unsafe { ExFreePoolWithTag(remote, TAG) };
    }
    unsafe { ExFreePoolWithTag(payload, TAG) };
    status
}

/// A remote address freed before completion is found in the quarantine of freed pool (the
/// provider reads it at completion): caught, nothing sent.
#[test]
fn remote_address_freed_before_completion_is_caught() {
    let machine = late_machine();
    let client = Client::register();
    let socket = bound_socket(&client);
    // Other freed blocks around it in the quarantine, before and after it in address order.
    for _ in 0..64 {
        drop(common::Pool::new(&[0; 48]));
    }
    let status = send_late(socket, FreedEarly::RemoteAddress);
    assert!(status < 0, "the send must fail");
    socket.close();
    let report = finish(machine, client);
    assert_eq!(rules(&report), ["BufferFreedInFlight"]);
    assert_eq!(report.stats.datagrams_sent, 0);
}

/// An MDL freed before completion is no live MDL when the provider walks the chain: caught,
/// nothing sent.
#[test]
fn mdl_freed_before_completion_is_caught() {
    let machine = late_machine();
    let client = Client::register();
    let socket = bound_socket(&client);
    let status = send_late(socket, FreedEarly::Mdl);
    assert!(status < 0, "the send must fail");
    socket.close();
    let report = finish(machine, client);
    assert_eq!(rules(&report), ["MdlFreedInFlight"]);
    assert_eq!(report.stats.datagrams_sent, 0);
}

/// A `WSK_BUF_LIST` whose entry points back to itself never ends: the model's bound catches it.
#[test]
fn a_wsk_buf_list_cycle_is_caught() {
    let machine = machine();
    let client = Client::register();
    let socket = bound_socket(&client);
    let data = common::Pool::new(b"loop");
    let mdl = unsafe { IoAllocateMdl(data.ptr, 4, false, false, std::ptr::null_mut()) };
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    let mut entry = WSK_BUF_LIST {
        Next: std::ptr::null_mut(),
        Buffer: WSK_BUF {
            Mdl: mdl,
            Offset: 0,
            Length: 4,
        },
    };
    // Wrong: the list's last entry points back to its first.
    entry.Next = &raw mut entry;
    let mut remote = SockAddrBuffer::new("127.0.0.1:9".parse().unwrap());
    let send = socket.dispatch().WskSendMessages.unwrap();
    let (_, status, _) = common::with_irp(|irp| unsafe {
        send(
            socket.0,
            &raw mut entry,
            0,
            remote.as_sockaddr_mut(),
            0,
            std::ptr::null_mut(),
            irp,
        )
    });
    assert_eq!(
        status,
        windows_sys::Win32::Foundation::STATUS_INVALID_PARAMETER
    );
    unsafe { IoFreeMdl(mdl) };
    drop(data);
    socket.close();
    let report = finish(machine, client);
    assert_eq!(rules(&report), ["WskBufListCycle"]);
    assert_eq!(report.stats.datagrams_sent, 0);
}
