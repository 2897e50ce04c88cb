//! Sends in flight when a socket is closed, a handle cleaned up, the driver unloaded, a request
//! cancelled or the transport forced closed, through the KMDF and WDM front doors and the
//! model's I/O manager (asynchronous requests, `CancelIoEx`, `sc stop`), with the provider
//! holding completions back until the test releases them.
//!
//! What must hold (README, "Sends in flight"): a close, a cleanup and an unload are bounded
//! (the provider cancels what is pending when `WskCloseSocket` comes); every `SEND` completes
//! with every datagram accounted for (sent, failed or not sent); the model reports no violation
//! and no leak.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{V4, addr, releasing};
use wskudp_abi::status::{
    STATUS_ACCESS_DENIED, STATUS_CANCELLED, STATUS_DEVICE_BUSY, STATUS_FILE_FORCED_CLOSED,
    STATUS_SUCCESS,
};
use wskudp_abi::{
    Ioctl, MAX_SENDS_PER_HANDLE, MAX_SENDS_PER_SOCKET, OpenSocketResponse, SEND_WINDOW,
    SendResponse, SendSpec, encode_close_socket, encode_open_socket, encode_send, read_response,
    send_request_len,
};
use wskudp_harness::backend::FrontDoor;
use wskudp_kmodel::iomgr::{self, EntryKind, Handle, LoadedDriver, PendingRequest};
use wskudp_kmodel::{
    Access, Caller, CompletionMode, Config, Machine, Report, force_close_sockets, held_completions,
    open_sockets, release_held,
};
use zerocopy::IntoBytes;

/// Longest a bounded operation may take here (generous: the machine may be busy).
const BOUND: Duration = Duration::from_secs(10);

/// The driver loaded through one I/O-manager front door, with one handle open.
struct Loaded {
    machine: Machine,
    driver: LoadedDriver,
    handle: Handle,
    front_door: FrontDoor,
}

fn load(front_door: FrontDoor, completion: CompletionMode) -> Loaded {
    let machine = Machine::boot(Config {
        completion,
        ..Config::default()
    });
    let driver = match front_door {
        FrontDoor::Kmdf => iomgr::load("wskudp", wskudp_front::kmdf::driver_entry, EntryKind::Kmdf),
        FrontDoor::Wdm => iomgr::load("wskudp", wskudp_front::wdm::driver_entry, EntryKind::Direct),
        FrontDoor::None => unreachable!("only the I/O manager's front doors"),
    }
    .unwrap();
    let handle = open_handle();
    Loaded {
        machine,
        driver,
        handle,
        front_door,
    }
}

fn open_handle() -> Handle {
    iomgr::open(
        wskudp_abi::USER_DEVICE_PATH,
        Caller::Administrator,
        Access::READ_WRITE,
    )
    .unwrap()
}

/// Waits for a request, releasing held completions meanwhile.
fn wait_releasing(pending: &PendingRequest) -> (i32, Vec<u8>) {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(done) = pending.wait(Some(Duration::from_millis(1))) {
            return done;
        }
        release_held(usize::MAX);
        assert!(Instant::now() < deadline, "the request never completed");
    }
}

/// Waits for a request without releasing anything: it must complete on its own.
fn wait_bounded(pending: &PendingRequest) -> (i32, Vec<u8>) {
    pending
        .wait(Some(BOUND))
        .expect("the request did not complete in time")
}

/// An `OPEN_SOCKET` of a loopback socket, waited for (bounded): its status and output.
fn open_socket_request(handle: &Handle) -> (i32, Vec<u8>) {
    handle
        .ioctl(
            Ioctl::OpenSocket.code(),
            encode_open_socket(addr(V4)).as_bytes(),
            size_of::<OpenSocketResponse>(),
        )
        .unwrap()
        .wait(Some(BOUND))
        .expect("OPEN_SOCKET did not complete")
}

/// Opens a socket. The dispatch routine itself waits on `WskSocket`, `WskBind` and
/// `WskGetLocalAddress`, which the provider holds too: it runs on its own thread while this
/// one releases them.
fn open_socket(handle: &Handle) -> u32 {
    let (status, output) = releasing(|| open_socket_request(handle));
    assert_eq!(status, STATUS_SUCCESS);
    read_response::<OpenSocketResponse>(&output).unwrap().socket
}

fn send_request(socket: u32, to: SocketAddr, count: u32) -> Vec<u8> {
    let spec = SendSpec {
        count,
        ..wskudp_harness::scenarios::plain(socket, to, count)
    };
    let payload = [0x5a_u8; 64];
    let mut request = vec![0; send_request_len(0, payload.len()).unwrap()];
    encode_send(&spec, &[], &payload, &mut request).unwrap();
    request
}

/// A `SEND` of `count` datagrams, or the status the I/O manager refused it with.
fn try_send(
    handle: &Handle,
    socket: u32,
    to: SocketAddr,
    count: u32,
) -> Result<PendingRequest, i32> {
    handle.ioctl(
        Ioctl::Send.code(),
        &send_request(socket, to, count),
        size_of::<SendResponse>(),
    )
}

fn send(handle: &Handle, socket: u32, to: SocketAddr, count: u32) -> PendingRequest {
    try_send(handle, socket, to, count).unwrap()
}

fn close_socket(handle: &Handle, socket: u32) -> PendingRequest {
    handle
        .ioctl(
            Ioctl::CloseSocket.code(),
            encode_close_socket(socket).as_bytes(),
            0,
        )
        .unwrap()
}

/// A loopback destination nobody reads (the datagrams only need somewhere to go).
fn sink() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    (socket, address)
}

/// A driver loaded with completions held, one socket open on it, and a sink for its sends:
/// `(loaded, sink, sink address, socket)`.
fn held_socket(front_door: FrontDoor) -> (Loaded, UdpSocket, SocketAddr, u32) {
    let loaded = load(front_door, CompletionMode::Held);
    let (sink, to) = sink();
    let socket = open_socket(&loaded.handle);
    (loaded, sink, to, socket)
}

fn wait_for_held(at_least: usize) {
    let deadline = Instant::now() + BOUND;
    while held_completions() < at_least {
        assert!(
            Instant::now() < deadline,
            "only {} WSK calls pending, expected {at_least}",
            held_completions()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Every datagram of a `count` request is accounted for, exactly once.
fn response(status: i32, output: &[u8], count: u32) -> SendResponse {
    assert_eq!(status, STATUS_SUCCESS, "the SEND request itself failed");
    let response: SendResponse = read_response(output).unwrap();
    assert_eq!(
        response.datagrams_sent + response.datagrams_failed + response.datagrams_not_sent,
        count,
        "{response:?}"
    );
    response
}

/// Waits (bounded) for a `SEND` of `count` datagrams: [`response`].
fn answer(pending: &PendingRequest, count: u32) -> SendResponse {
    let (status, output) = wait_bounded(pending);
    response(status, &output, count)
}

/// [`answer`], releasing held completions meanwhile.
fn answer_releasing(pending: &PendingRequest, count: u32) -> SendResponse {
    let (status, output) = wait_releasing(pending);
    response(status, &output, count)
}

/// Waits (bounded) for a `SEND` that may fail as a whole (its socket or handle closed under
/// it): [`response`] if it succeeded, else its status.
fn settle(pending: &PendingRequest, count: u32) -> Result<SendResponse, i32> {
    let (status, output) = wait_bounded(pending);
    if status == STATUS_SUCCESS {
        Ok(response(status, &output, count))
    } else {
        Err(status)
    }
}

/// With `in_flight` (one datagram each) held, one more `SEND` on `socket` is refused at once
/// (`STATUS_DEVICE_BUSY`); once released, every one in flight is sent.
fn refused_then_sent(loaded: &Loaded, socket: u32, to: SocketAddr, in_flight: &[PendingRequest]) {
    let front_door = loaded.front_door;
    let refused = send(&loaded.handle, socket, to, 1);
    assert_eq!(
        wait_bounded(&refused).0,
        STATUS_DEVICE_BUSY,
        "{front_door:?}"
    );
    release_held(usize::MAX);
    for pending in in_flight {
        assert_eq!(answer(pending, 1).datagrams_sent, 1, "{front_door:?}");
    }
}

/// A new `SEND` of `count` datagrams on `socket` sends them all: the socket still works.
fn still_sends(loaded: &Loaded, socket: u32, to: SocketAddr, count: u32) {
    let sending = send(&loaded.handle, socket, to, count);
    let sent = answer_releasing(&sending, count).datagrams_sent;
    assert_eq!(sent, count, "{:?}", loaded.front_door);
}

fn unload_clean(loaded: Loaded) -> Report {
    let Loaded {
        machine,
        driver,
        handle,
        front_door,
    } = loaded;
    handle.close();
    driver.unload().unwrap();
    let report = machine.shutdown();
    assert!(report.is_clean(), "{front_door:?}: {report}");
    report
}

const DOORS: [FrontDoor; 2] = [FrontDoor::Kmdf, FrontDoor::Wdm];

/// `CLOSE_SOCKET` while a window of sends is held by the provider returns without any of them
/// completing on its own: `WskCloseSocket` makes the provider cancel them, and the rest of the
/// request is never issued.
#[test]
fn close_with_sends_held_is_bounded_and_accounts_for_every_datagram() {
    for front_door in DOORS {
        let (loaded, _sink, to, socket) = held_socket(front_door);
        let sending = send(&loaded.handle, socket, to, 100);
        wait_for_held(SEND_WINDOW as usize);
        assert_eq!(
            held_completions(),
            SEND_WINDOW as usize,
            "{front_door:?}: the window bounds what is in flight"
        );
        let (status, _) = wait_bounded(&close_socket(&loaded.handle, socket));
        assert_eq!(status, STATUS_SUCCESS, "{front_door:?}");
        let response = answer(&sending, 100);
        assert_eq!(response.datagrams_sent, 0, "{front_door:?}");
        assert_eq!(response.datagrams_failed, SEND_WINDOW, "{front_door:?}");
        assert_eq!(response.status, STATUS_CANCELLED, "{front_door:?}");
        assert_eq!(held_completions(), 0, "{front_door:?}");
        assert_eq!(open_sockets(), 0, "{front_door:?}");
        unload_clean(loaded);
    }
}

/// The handle's cleanup (the application exits with sends in flight) closes its sockets the
/// same bounded way; another handle's socket and sends are untouched.
#[test]
fn cleanup_with_sends_held_is_bounded_and_spares_other_handles() {
    for front_door in DOORS {
        let loaded = load(front_door, CompletionMode::Held);
        let receiver = common::receiver(V4).unwrap();
        let to = receiver.local_addr().unwrap();
        let other = open_handle();
        let doomed = open_socket(&other);
        let kept = open_socket(&loaded.handle);
        let doomed_send = send(&other, doomed, to, 40);
        let kept_send = send(&loaded.handle, kept, to, 3);
        wait_for_held(SEND_WINDOW as usize + 3);
        let started = Instant::now();
        other.close();
        let doomed = answer(&doomed_send, 40);
        assert!(started.elapsed() < BOUND, "{front_door:?}");
        assert_eq!(doomed.datagrams_sent, 0, "{front_door:?}");
        assert_eq!(
            open_sockets(),
            1,
            "{front_door:?}: only the kept socket is open"
        );
        assert_eq!(
            held_completions(),
            3,
            "{front_door:?}: the other handle's sends wait"
        );
        let kept = answer_releasing(&kept_send, 3);
        assert_eq!(kept.datagrams_sent, 3, "{front_door:?}: {kept:?}");
        // Exactly the kept socket's datagrams reached the wire; the doomed ones never did.
        common::receive(&receiver, 3);
        unload_clean(loaded);
    }
}

/// `sc stop` with sends held: unload waits for the handle; closing it cancels the sends, and
/// unload finishes with every WSK IRP completed and nothing left.
#[test]
fn unload_with_sends_held_waits_then_leaves_nothing() {
    for front_door in DOORS {
        let (loaded, _sink, to, socket) = held_socket(front_door);
        let sending = send(&loaded.handle, socket, to, 10);
        wait_for_held(10);
        let Loaded {
            machine,
            driver,
            handle,
            front_door,
        } = loaded;
        std::thread::scope(|scope| {
            let unloading = scope.spawn(|| driver.unload());
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                !unloading.is_finished(),
                "{front_door:?}: unloaded under a handle"
            );
            handle.close();
            let response = answer(&sending, 10);
            assert_eq!(response.datagrams_failed, 10, "{front_door:?}");
            unloading.join().unwrap().unwrap();
        });
        let report = machine.shutdown();
        assert!(report.is_clean(), "{front_door:?}: {report}");
    }
}

/// `CancelIoEx` on a `SEND` with its window held: the driver cancels the WSK IRPs in flight
/// (`IoCancelIrp`), issues nothing more, and completes the request `STATUS_CANCELLED`; the socket
/// stays usable.
#[test]
fn cancelling_a_send_cancels_its_wsk_irps() {
    for front_door in DOORS {
        let (loaded, _sink, to, socket) = held_socket(front_door);
        let sending = send(&loaded.handle, socket, to, 500);
        wait_for_held(SEND_WINDOW as usize);
        sending.cancel();
        let (status, _) = wait_bounded(&sending);
        assert_eq!(status, STATUS_CANCELLED, "{front_door:?}");
        assert_eq!(
            held_completions(),
            0,
            "{front_door:?}: every WSK IRP was cancelled"
        );
        still_sends(&loaded, socket, to, 2);
        unload_clean(loaded);
    }
}

/// A `SEND` completing with `STATUS_FILE_FORCED_CLOSED` makes the driver close the socket at
/// once (the `WskSendTo` page: "as soon as possible"), before the application closes it; later
/// `SEND`s on it fail with that status, and `CLOSE_SOCKET` still succeeds.
#[test]
fn forced_close_closes_the_socket_at_once() {
    for front_door in DOORS {
        let (loaded, _sink, to, socket) = held_socket(front_door);
        let sending = send(&loaded.handle, socket, to, 8);
        wait_for_held(8);
        assert_eq!(force_close_sockets(), 1);
        release_held(1);
        let response = answer(&sending, 8);
        assert_eq!(response.status, STATUS_FILE_FORCED_CLOSED, "{front_door:?}");
        assert_eq!(
            open_sockets(),
            0,
            "{front_door:?}: WskCloseSocket was not called"
        );
        let later = send(&loaded.handle, socket, to, 1);
        assert_eq!(
            wait_bounded(&later).0,
            STATUS_FILE_FORCED_CLOSED,
            "{front_door:?}"
        );
        let (status, _) = wait_bounded(&close_socket(&loaded.handle, socket));
        assert_eq!(status, STATUS_SUCCESS, "{front_door:?}");
        unload_clean(loaded);
    }
}

/// More `SEND`s in flight on one socket than the driver allows fail at once with
/// `STATUS_DEVICE_BUSY`; nothing else changes, and the slots come back as sends finish.
#[test]
fn sends_beyond_the_socket_limit_are_refused_not_queued() {
    for front_door in DOORS {
        let (loaded, _sink, to, socket) = held_socket(front_door);
        let in_flight: Vec<PendingRequest> = (0..MAX_SENDS_PER_SOCKET)
            .map(|_| send(&loaded.handle, socket, to, 1))
            .collect();
        wait_for_held(MAX_SENDS_PER_SOCKET as usize);
        refused_then_sent(&loaded, socket, to, &in_flight);
        still_sends(&loaded, socket, to, 1);
        unload_clean(loaded);
    }
}

/// Closes, cleanups and sends racing on different threads, with the provider completing late
/// and out of order: every request completes, every datagram is accounted for, and the model
/// sees no violation (no `WskCloseSocket` during a `WskSendTo`, no send on a closed socket).
#[test]
fn close_cleanup_and_sends_race_cleanly() {
    for front_door in DOORS {
        for round in 0..4_u64 {
            let loaded = load(front_door, CompletionMode::late_out_of_order(round + 1));
            let (_sink, to) = sink();
            let extra = open_handle();
            let sockets: Vec<u32> = (0..3).map(|_| open_socket(&loaded.handle)).collect();
            let extra_socket = open_socket(&extra);
            std::thread::scope(|scope| {
                let senders: Vec<_> = sockets
                    .iter()
                    .map(|&socket| {
                        let handle = &loaded.handle;
                        scope.spawn(move || {
                            let requests: Vec<PendingRequest> =
                                (0..4).map(|_| send(handle, socket, to, 50)).collect();
                            for request in &requests {
                                let _ = settle(request, 50);
                            }
                        })
                    })
                    .collect();
                let extra_send = scope.spawn(|| {
                    // The handle may be closed before this thread runs: the I/O manager then
                    // refuses the request, which is not the driver's to answer.
                    if let Ok(request) = try_send(&extra, extra_socket, to, 200) {
                        let _ = settle(&request, 200);
                    }
                });
                std::thread::sleep(Duration::from_millis(1 + round));
                for &socket in &sockets[..2] {
                    let (status, _) = wait_bounded(&close_socket(&loaded.handle, socket));
                    assert_eq!(status, STATUS_SUCCESS);
                }
                extra.close();
                for sender in senders {
                    sender.join().unwrap();
                }
                extra_send.join().unwrap();
            });
            unload_clean(loaded);
        }
    }
}

/// More `SEND`s in flight on one handle than the driver allows fail with `STATUS_DEVICE_BUSY`,
/// even on a socket below its own limit.
#[test]
fn sends_beyond_the_handle_limit_are_refused() {
    let loaded = load(FrontDoor::Kmdf, CompletionMode::Held);
    let (_sink, to) = sink();
    let per_socket = MAX_SENDS_PER_SOCKET as usize;
    let sockets = (MAX_SENDS_PER_HANDLE as usize).div_ceil(per_socket);
    let numbers: Vec<u32> = (0..=sockets).map(|_| open_socket(&loaded.handle)).collect();
    let in_flight: Vec<PendingRequest> = (0..MAX_SENDS_PER_HANDLE as usize)
        .map(|i| send(&loaded.handle, numbers[i / per_socket], to, 1))
        .collect();
    wait_for_held(MAX_SENDS_PER_HANDLE as usize);
    // The last socket has nothing in flight; the handle is full.
    refused_then_sent(&loaded, numbers[sockets], to, &in_flight);
    unload_clean(loaded);
}

/// A provider failure at completion, after `WskSendTo` returned `STATUS_PENDING`, reaches the
/// caller unchanged: Linux refuses a broadcast without `SO_BROADCAST` (`EACCES`), which the
/// provider completes as `STATUS_ACCESS_DENIED`, the status Windows gives (`WSAEACCES`).
#[test]
fn a_failure_after_pending_reaches_the_caller_unchanged() {
    for front_door in FrontDoor::ALL {
        let client = wskudp_harness::client::Client::new(Box::new(
            wskudp_harness::backend::ModelBackend::start(common::config(
                front_door,
                CompletionMode::worker(),
                wskudp_kmodel::FaultPlan::None,
            ))
            .unwrap(),
        ));
        let socket = client.open_socket(addr(V4)).unwrap().socket;
        let broadcast: SocketAddr = "255.255.255.255:9".parse().unwrap();
        let response = client
            .send(
                &wskudp_harness::scenarios::plain(socket, broadcast, 3),
                &[],
                b"no",
            )
            .unwrap();
        assert_eq!(response.status, STATUS_ACCESS_DENIED, "{front_door:?}");
        assert_eq!(response.datagrams_failed, 3, "{front_door:?}");
        let stats = client.stats().unwrap();
        assert!(
            stats
                .failures()
                .any(|f| f.status == STATUS_ACCESS_DENIED && f.count == 3),
            "{front_door:?}"
        );
        client.close_socket(socket).unwrap();
        let report = client.finish().unwrap();
        assert!(report.is_clean(), "{front_door:?}: {report}");
        assert!(
            report.stats.irps_pended >= 3,
            "{front_door:?}: not pended first"
        );
    }
}

/// KMDF holds `EvtRequestCancel` back while another thread is in the queue's dispatch loop
/// (fxioqueue.cpp:4632, fxioqueue.hpp:1030-1038). A `SEND` whose sends all finished but whose
/// cancel callback is held back completes once the callback runs, and a `CLOSE_SOCKET` of its
/// socket completes meanwhile. (The deadlock `send.rs` avoids by letting the socket go when
/// the work ends, a close blocked in its callback while the provider completes the socket's
/// cancelled sends later, needs a provider that completes them asynchronously; the model's
/// `WskCloseSocket` completes them at once, and a new request delivers held-back cancels
/// first, fxioqueue.cpp:2878-2891.)
#[test]
fn a_held_back_cancel_callback_does_not_hold_the_socket() {
    let (loaded, _sink, to, socket) = held_socket(FrontDoor::Kmdf);
    let sending = send(&loaded.handle, socket, to, 2);
    wait_for_held(2);
    std::thread::scope(|scope| {
        // A request stays in the dispatch loop: OPEN_SOCKET waits in WskSocket, held.
        let opening = scope.spawn(|| open_socket_request(&loaded.handle));
        wait_for_held(3);
        sending.cancel();
        // The two sends complete; the request waits for its EvtRequestCancel.
        assert!(wskudp_kmodel::release_held_nth(0));
        assert!(wskudp_kmodel::release_held_nth(0));
        let (status, _) = wait_bounded(&close_socket(&loaded.handle, socket));
        assert_eq!(
            status, STATUS_SUCCESS,
            "the close waited for the cancel callback"
        );
        assert!(!opening.is_finished());
        // The open goes on to WskBind and WskGetLocalAddress, held in turn.
        let (status, _) = releasing(|| opening.join().unwrap());
        assert_eq!(status, STATUS_SUCCESS);
    });
    match settle(&sending, 2) {
        Ok(response) => assert_eq!(response.datagrams_sent, 2),
        Err(status) => assert_eq!(status, STATUS_CANCELLED),
    }
    unload_clean(loaded);
}
