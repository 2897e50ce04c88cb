//! Lifecycle edges, through every front door: a handle cleaned up while a socket is being
//! opened through it, an unload requested while handles and sockets are open, and handles
//! closed with sockets open.

mod common;

use std::time::{Duration, Instant};

use common::{V4, addr, config, in_mode, modes, plain, receiver};
use wskudp_abi::status::{STATUS_FILE_CLOSED, STATUS_SUCCESS};
use wskudp_abi::{InfoResponse, Ioctl, OpenSocketResponse, encode_open_socket, read_response};
use wskudp_harness::backend::{Backend, FrontDoor, ModelBackend};
use wskudp_harness::client::Client;
use wskudp_kmodel::iomgr::{self, EntryKind};
use wskudp_kmodel::{
    Access, Caller, CompletionMode, Config, FaultPlan, Machine, held_completions, release_held,
};
use zerocopy::IntoBytes;

/// Releases held completions until `done()`, bounded.
fn release_until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        release_held(usize::MAX);
        assert!(Instant::now() < deadline, "the request never finished");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn wait_for(held: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while held_completions() < held {
        assert!(Instant::now() < deadline, "no WSK call pending");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `IRP_MJ_CLEANUP` arrives while `OPEN_SOCKET` on the same handle waits in `WskSocket`. The
/// socket it then creates must not outlive the handle (before the fix it was published under
/// a handle nobody could use again, keyed by a file object address the next open may reuse).
#[test]
fn cleanup_during_open_socket_leaves_no_socket_behind() {
    for front_door in FrontDoor::ALL {
        let backend =
            ModelBackend::start(config(front_door, CompletionMode::Held, FaultPlan::None)).unwrap();
        backend.open_handle(2).unwrap();
        std::thread::scope(|scope| {
            let opening = scope.spawn(|| {
                backend
                    .ioctl_as(
                        2,
                        Ioctl::OpenSocket.code(),
                        encode_open_socket(addr(V4)).as_bytes(),
                        size_of::<OpenSocketResponse>(),
                    )
                    .unwrap()
            });
            // WskSocket is pending: the handle goes away now.
            wait_for(1);
            backend.close_handle(2);
            release_until(|| opening.is_finished());
            let outcome = opening.join().unwrap();
            assert_eq!(
                outcome.status, STATUS_FILE_CLOSED,
                "{front_door:?}: the open must fail once its handle is cleaned up"
            );
        });
        let info = backend
            .ioctl(Ioctl::QueryInfo.code(), &[], size_of::<InfoResponse>())
            .unwrap();
        assert_eq!(info.status, STATUS_SUCCESS);
        let info: InfoResponse = read_response(&info.output).unwrap();
        assert_eq!(
            info.open_sockets, 0,
            "{front_door:?}: a socket was left open"
        );
        let report = Box::new(backend).finish().unwrap();
        assert!(report.is_clean(), "{front_door:?}: {report}");
    }
}

/// `sc stop` with a handle and a socket open: the I/O manager defers `DriverUnload` until the
/// last handle closes (the driver keeps serving it meanwhile); the handle's cleanup closes the
/// socket, then the driver unloads with nothing left.
#[test]
fn unload_waits_for_open_handles_then_leaves_nothing() {
    for (front_door, entry, kind) in [
        (
            FrontDoor::Kmdf,
            wskudp_front::kmdf::driver_entry as iomgr::DriverEntry,
            EntryKind::Kmdf,
        ),
        (
            FrontDoor::Wdm,
            wskudp_front::wdm::driver_entry,
            EntryKind::Direct,
        ),
    ] {
        let machine = Machine::boot(Config {
            completion: CompletionMode::worker(),
            ..Config::default()
        });
        let driver = iomgr::load("wskudp", entry, kind).unwrap();
        let handle = iomgr::open(
            wskudp_abi::USER_DEVICE_PATH,
            Caller::Administrator,
            Access::READ_WRITE,
        )
        .unwrap();
        let ioctl = |code: u32, input: &[u8], output: usize| {
            handle
                .ioctl(code, input, output)
                .unwrap()
                .wait(Some(Duration::from_secs(10)))
                .unwrap()
        };
        let (status, _) = ioctl(
            Ioctl::OpenSocket.code(),
            encode_open_socket(addr(V4)).as_bytes(),
            size_of::<OpenSocketResponse>(),
        );
        assert_eq!(status, STATUS_SUCCESS);
        std::thread::scope(|scope| {
            let unloading = scope.spawn(|| driver.unload());
            std::thread::sleep(Duration::from_millis(100));
            assert!(
                !unloading.is_finished(),
                "{front_door:?}: unloaded with a handle open"
            );
            // Still serving the open handle.
            let (status, output) = ioctl(Ioctl::QueryInfo.code(), &[], size_of::<InfoResponse>());
            assert_eq!(status, STATUS_SUCCESS);
            let info: InfoResponse = read_response(&output).unwrap();
            assert_eq!(info.open_sockets, 1);
            handle.close();
            unloading.join().unwrap().unwrap();
        });
        let report = machine.shutdown();
        assert!(report.is_clean(), "{front_door:?}: {report}");
    }
}

/// A user without administrator rights cannot open the KMDF front door's device (its SDDL
/// grants SYSTEM and Administrators only).
#[test]
fn only_administrators_open_the_control_device() {
    let mut backend = ModelBackend::start(config(
        FrontDoor::Kmdf,
        CompletionMode::Inline,
        FaultPlan::None,
    ))
    .unwrap();
    backend.set_caller(Caller::User);
    assert_eq!(
        backend.open_handle(7),
        Err(wskudp_abi::status::STATUS_ACCESS_DENIED)
    );
    backend.set_caller(Caller::Administrator);
    assert_eq!(backend.open_handle(7), Ok(()));
    let report = Box::new(backend).finish().unwrap();
    assert!(report.is_clean(), "{report}");
}

/// Issue 5(c) on the shipping front doors: with the model holding every unguarded completion
/// routine open after it releases what unload waits for (`unload_race_window`), a full
/// open, send, close and unload leaves a clean report — no `DriverUnloadedWithRoutineRunning`
/// (bugcheck 0xCE) — in every completion mode, because every routine the driver sets is
/// guarded by `IoSetCompletionRoutineEx` (`tests/kmodel/tests/unload_race.rs` shows the model
/// catching a plain `IoSetCompletionRoutine`).
#[test]
fn no_completion_routine_outlives_the_driver_on_any_front_door() {
    for front_door in FrontDoor::ALL {
        for mode in modes() {
            let label = format!("{front_door:?}, {mode:?}");
            let report = in_mode(mode, || {
                let mut config = config(front_door, mode, FaultPlan::None);
                config.machine.unload_race_window = Duration::from_millis(50);
                let client = Client::new(Box::new(ModelBackend::start(config).unwrap()));
                let rx = receiver(V4).unwrap();
                let socket = client.open_socket(addr(V4)).unwrap().socket;
                let response = client
                    .send(&plain(socket, rx.local_addr().unwrap(), 8), &[], b"race")
                    .unwrap();
                assert_eq!(response.datagrams_sent, 8, "{label}");
                // One left open: the handle's cleanup at unload closes it.
                client.open_socket(addr(V4)).unwrap();
                client.close_socket(socket).unwrap();
                client.finish().unwrap()
            });
            assert!(report.is_clean(), "{label}: {report}");
            assert_eq!(report.stats.unguarded_routines, 0, "{label}");
            assert!(
                report.stats.guarded_routines >= 8,
                "{label}: {:?}",
                report.stats
            );
        }
    }
}
