//! Direct I/O as a zero-copy send uses it: a `METHOD_IN_DIRECT` IOCTL's output buffer, locked
//! by the I/O manager (`Irp->MdlAddress`), sent through a partial MDL built over it. A tiny
//! WDM driver completes the request when its WSK IRP completes (clean, the bytes arrive), or
//! deliberately before (the model names `DirectIoUnlockedInFlight`: the pages are unlocked
//! while the provider still reads them).
#![allow(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    missing_docs,
    reason = "a test driver, deliberately wrong in one variant"
)]

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::time::Duration;

use common::*;
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, IRP, MDL};
use windows_sys::Wdk::System::SystemServices::{
    IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IoAllocateIrp,
    IoAllocateMdl, IoBuildPartialMdl, IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice,
    IoDeleteSymbolicLink, IoFreeIrp, IoFreeMdl, IofCompleteRequest,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_MORE_PROCESSING_REQUIRED, STATUS_PENDING, STATUS_SUCCESS, UNICODE_STRING,
};
use wskudp_core::ddi::nt::{io_mark_irp_pending, io_set_completion_routine};
use wskudp_core::ddi::wsk::{WSK_BUF, WSK_SOCKET};
use wskudp_kmodel::iomgr::{self, EntryKind};
use wskudp_kmodel::{Access, Caller, CompletionMode, Config, Machine, Order, Report};

const NAME: &str = r"\Device\DirectIo";
const LINK: &str = r"\DosDevices\DirectIo";
/// `CTL_CODE(FILE_DEVICE_NETWORK, 0x800, METHOD_IN_DIRECT, FILE_ANY_ACCESS)`.
const SEND_DIRECT: u32 = 0x0012_2001;

static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(std::ptr::null_mut());
static SOCKET: AtomicPtr<WSK_SOCKET> = AtomicPtr::new(std::ptr::null_mut());
/// The destination, a `SOCKADDR` in non-paged pool.
static REMOTE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
/// The broken variant: complete the request as soon as the send is issued.
static EARLY: AtomicBool = AtomicBool::new(false);
/// The WSK IRP's completion routine ran.
static SENT: AtomicBool = AtomicBool::new(false);

/// What one send holds until its WSK IRP completes.
struct InFlight {
    request: *mut IRP,
    partial: *mut MDL,
    buffer: WSK_BUF,
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

fn complete(irp: *mut IRP, status: NTSTATUS) {
    unsafe {
        (*irp).IoStatus.Anonymous.Status = status;
        (*irp).IoStatus.Information = 0;
        IofCompleteRequest(irp, 0);
    }
}

unsafe extern "system" fn dispatch_plain(_: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    complete(irp, STATUS_SUCCESS);
    STATUS_SUCCESS
}

unsafe extern "system" fn sent(
    _: *const DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    let in_flight = unsafe { Box::from_raw(context.cast::<InFlight>()) };
    if !EARLY.load(Ordering::Acquire) {
        complete(in_flight.request, unsafe {
            (*irp).IoStatus.Anonymous.Status
        });
    }
    unsafe {
        IoFreeMdl(in_flight.partial);
        IoFreeIrp(irp);
    }
    SENT.store(true, Ordering::Release);
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Sends the request's output buffer as one datagram, from a partial MDL over the I/O
/// manager's locked MDL.
unsafe extern "system" fn dispatch_ioctl(_: *const DEVICE_OBJECT, request: *mut IRP) -> NTSTATUS {
    unsafe {
        let locked = (*request).MdlAddress;
        let len = (*locked).ByteCount;
        let va = (*locked).StartVa.byte_add((*locked).ByteOffset as usize);
        let partial = IoAllocateMdl(va, len, false, false, std::ptr::null_mut());
        IoBuildPartialMdl(locked, partial, va, len);
        let in_flight = Box::into_raw(Box::new(InFlight {
            request,
            partial,
            buffer: WSK_BUF {
                Mdl: partial,
                Offset: 0,
                Length: len as usize,
            },
        }));
        let irp = IoAllocateIrp(1, false);
        io_set_completion_routine(irp, sent, in_flight.cast());
        io_mark_irp_pending(request);
        let socket = Socket(SOCKET.load(Ordering::Acquire));
        let remote = REMOTE.load(Ordering::Acquire);
        let send_to = socket.dispatch().WskSendTo.unwrap();
        send_to(
            socket.0,
            &raw mut (*in_flight).buffer,
            0,
            remote.cast(),
            0,
            std::ptr::null_mut(),
            irp,
        );
        if EARLY.load(Ordering::Acquire) {
            // Deliberately broken: the I/O manager unlocks the pages the send still reads.
            complete(request, STATUS_SUCCESS);
        }
    }
    STATUS_PENDING
}

unsafe extern "system" fn driver_unload(_: *const DRIVER_OBJECT) {
    let link = wide(LINK);
    unsafe {
        IoDeleteSymbolicLink(&raw const link);
        IoDeleteDevice(DEVICE.swap(std::ptr::null_mut(), Ordering::AcqRel));
    }
}

unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    _: *const UNICODE_STRING,
) -> NTSTATUS {
    let name = wide(NAME);
    let link = wide(LINK);
    let mut device = std::ptr::null_mut();
    unsafe {
        let status = IoCreateDevice(driver, 0, &raw const name, 0x12, 0, false, &raw mut device);
        if status < 0 {
            return status;
        }
        DEVICE.store(device, Ordering::Release);
        let status = IoCreateSymbolicLink(&raw const link, &raw const name);
        if status < 0 {
            IoDeleteDevice(device);
            return status;
        }
        let table = &mut (*driver).MajorFunction;
        table[IRP_MJ_CREATE as usize] = Some(dispatch_plain);
        table[IRP_MJ_CLOSE as usize] = Some(dispatch_plain);
        table[IRP_MJ_CLEANUP as usize] = Some(dispatch_plain);
        table[IRP_MJ_DEVICE_CONTROL as usize] = Some(dispatch_ioctl);
        (*driver).DriverUnload = Some(driver_unload);
    }
    STATUS_SUCCESS
}

/// Boots a machine whose provider completes sends late (on its worker, after 50 ms), sends
/// `payload` through the test driver (`early`: broken), and returns the request's status, what
/// arrived, and the report.
fn send_direct(payload: &[u8], early: bool) -> (NTSTATUS, Option<Vec<u8>>, Report) {
    let machine = Machine::boot(Config {
        completion: CompletionMode::Worker {
            delay: Duration::from_millis(50),
            batch: 16,
            order: Order::Fifo,
        },
        ..Config::default()
    });
    let client = Client::register();
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    SOCKET.store(socket.0, Ordering::Release);
    let remote = Pool::new(&sockaddr(rx.addr()));
    REMOTE.store(remote.ptr, Ordering::Release);
    EARLY.store(early, Ordering::Release);
    SENT.store(false, Ordering::Release);
    let loaded = iomgr::load("directio", driver_entry, EntryKind::Direct).unwrap();
    let handle = iomgr::open(r"\\.\DirectIo", Caller::Administrator, Access::READ_WRITE).unwrap();
    let pending = handle.ioctl_direct(SEND_DIRECT, &[], payload).unwrap();
    // The request is retired (its MDL freed) once waited for: wait for the send first, so
    // what the provider reads is the request's MDL, unlocked or not.
    wait(&SENT);
    let (status, _) = pending.wait(Some(Duration::from_secs(5))).unwrap();
    let arrived = rx.recv().map(|arrival| arrival.payload);
    handle.close();
    loaded.unload().unwrap();
    REMOTE.store(std::ptr::null_mut(), Ordering::Release);
    drop(remote);
    socket.close();
    (status, arrived, finish(machine, client))
}

#[test]
fn a_direct_io_buffer_is_sent_from_its_locked_pages_until_the_request_completes() {
    let (status, arrived, report) = send_direct(b"sent from the caller's pages", false);
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(
        arrived.as_deref(),
        Some(&b"sent from the caller's pages"[..])
    );
    assert!(report.is_clean(), "{report}");
}

#[test]
fn completing_a_direct_io_request_before_its_send_is_a_violation() {
    let (status, arrived, report) = send_direct(b"unlocked too soon", true);
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(
        arrived, None,
        "the provider must not send from unlocked pages"
    );
    assert_eq!(rules(&report), ["DirectIoUnlockedInFlight"]);
}
