//! Sends in flight when a socket is closed, a handle cleaned up, the driver unloaded, a request
//! cancelled or the transport forced closed, through every front door of the model backend
//! (the KMDF and WDM ones through the model's I/O manager: asynchronous requests,
//! `CancelIoEx`, `sc stop`; `none` straight into core's dispatcher), with the provider holding
//! completions back until the test releases them. Every send goes to a real loopback receiver,
//! which gets exactly the datagrams the driver reported sent.
//!
//! What must hold (README, "Sends in flight"): a close, a cleanup and an unload are bounded
//! (the provider cancels what is pending when `WskCloseSocket` comes); every `SEND` completes
//! with every datagram accounted for (sent, failed or not sent); the model reports no violation
//! and no leak.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{V4, addr, releasing};
use wskudp_abi::status::{
    STATUS_ACCESS_DENIED, STATUS_CANCELLED, STATUS_DEVICE_BUSY, STATUS_FILE_CLOSED,
    STATUS_FILE_FORCED_CLOSED, STATUS_HOST_UNREACHABLE, STATUS_INVALID_HANDLE, STATUS_SUCCESS,
};
use wskudp_abi::{
    Ioctl, MAX_SENDS_PER_HANDLE, MAX_SENDS_PER_SOCKET, OpenSocketResponse, SEND_WINDOW,
    SendResponse, SendSpec, encode_close_socket, encode_open_socket, encode_send, read_response,
    send_request_len,
};
use wskudp_harness::backend::{FrontDoor, InFlight, IoctlOutcome, ModelBackend};
use wskudp_harness::receiver::Receiver;
use wskudp_kmodel::iomgr::{self, EntryKind, Handle, LoadedDriver, PendingRequest};
use wskudp_kmodel::{
    Access, Caller, CompletionMode, Config, FaultPlan, Machine, force_close_sockets,
    held_completions, held_datagrams, open_sockets, pend_closes, release_held,
};
use zerocopy::IntoBytes;

/// Longest a bounded operation may take here (generous: the machine may be busy).
const BOUND: Duration = Duration::from_secs(10);

/// The backend's own handle; others are opened with [`ModelBackend::open_handle`].
const OWN: usize = 1;
/// A second handle of the same process (another `CreateFile`).
const OTHER: usize = 2;

/// The driver on a model machine, through one front door, and a loopback receiver every send
/// goes to.
struct Rig {
    backend: ModelBackend,
    front_door: FrontDoor,
    receiver: Receiver,
    to: SocketAddr,
}

fn rig(front_door: FrontDoor, completion: CompletionMode) -> Rig {
    let backend =
        ModelBackend::start(common::config(front_door, completion, FaultPlan::None)).unwrap();
    let receiver = common::receiver(V4).unwrap();
    let to = receiver.local_addr().unwrap();
    Rig {
        backend,
        front_door,
        receiver,
        to,
    }
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

impl Rig {
    /// Opens a socket on `handle`. The dispatch routine waits on `WskSocket`, `WskBind` and
    /// `WskGetLocalAddress`, which the provider holds too: another thread releases them.
    fn open_socket(&self, handle: usize) -> u32 {
        let outcome = releasing(|| {
            self.backend.ioctl_as(
                handle,
                Ioctl::OpenSocket.code(),
                encode_open_socket(addr(V4)).as_bytes(),
                size_of::<OpenSocketResponse>(),
            )
        })
        .unwrap();
        assert_eq!(outcome.status, STATUS_SUCCESS, "{:?}", self.front_door);
        read_response::<OpenSocketResponse>(&outcome.output)
            .unwrap()
            .socket
    }

    /// A `SEND` of `count` datagrams to the receiver, in flight.
    fn send(&self, handle: usize, socket: u32, count: u32) -> InFlight<'_> {
        self.backend
            .submit_as(
                handle,
                Ioctl::Send.code(),
                &send_request(socket, self.to, count),
                size_of::<SendResponse>(),
            )
            .unwrap()
    }

    /// `CLOSE_SOCKET`, waited for (bounded): its status.
    fn close_socket(&self, handle: usize, socket: u32) -> i32 {
        self.backend
            .submit_as(
                handle,
                Ioctl::CloseSocket.code(),
                encode_close_socket(socket).as_bytes(),
                0,
            )
            .unwrap()
            .wait(BOUND)
            .unwrap()
            .status
    }

    /// Exactly `n` datagrams reached the receiver, and nothing more.
    fn received(&self, n: u32) {
        common::receive(&self.receiver, n as usize);
    }

    /// With `in_flight` (one datagram each) held, one more `SEND` on `socket` is refused at
    /// once (`STATUS_DEVICE_BUSY`); once released, every one in flight is sent.
    fn refused_then_sent(&self, socket: u32, in_flight: Vec<InFlight<'_>>) {
        let front_door = self.front_door;
        let refused = self.send(OWN, socket, 1).wait(BOUND).unwrap();
        assert_eq!(refused.status, STATUS_DEVICE_BUSY, "{front_door:?}");
        release_held(usize::MAX);
        let sent = in_flight.len();
        for pending in in_flight {
            assert_eq!(answer(pending, 1).datagrams_sent, 1, "{front_door:?}");
        }
        self.received(u32::try_from(sent).unwrap());
    }

    /// A new `SEND` of `count` datagrams on `socket` sends them all: the socket still works.
    fn still_sends(&self, socket: u32, count: u32) {
        let sending = self.send(OWN, socket, count);
        let sent = releasing(|| answer(sending, count)).datagrams_sent;
        assert_eq!(sent, count, "{:?}", self.front_door);
        self.received(count);
    }

    /// A `SEND` of `count` (more than [`SEND_WINDOW`]) datagrams on `socket`, once its whole
    /// window is held by the provider.
    fn window_held(&self, handle: usize, socket: u32, count: u32) -> InFlight<'_> {
        let sending = self.send(handle, socket, count);
        wait_for_held(SEND_WINDOW as usize);
        sending
    }

    /// `sending` (of `count`), whose window was held when its socket closed: the provider
    /// cancelled the window, the rest was never issued, nothing is held or open any more, and
    /// nothing reached the receiver.
    fn closed_under_window(&self, sending: InFlight<'_>, count: u32) {
        let front_door = self.front_door;
        let response = answer(sending, count);
        assert_eq!(
            (response.datagrams_sent, response.datagrams_failed),
            (0, SEND_WINDOW),
            "{front_door:?}"
        );
        assert_eq!(response.status, STATUS_CANCELLED, "{front_door:?}");
        assert_eq!(held_datagrams(), 0, "{front_door:?}");
        assert_eq!(open_sockets(), 0, "{front_door:?}");
        self.received(0);
    }

    /// Unloads the driver (closing every handle first) and checks the report.
    fn finish_clean(self) {
        let front_door = self.front_door;
        let report = wskudp_harness::backend::Backend::finish(Box::new(self.backend)).unwrap();
        assert!(report.is_clean(), "{front_door:?}: {report}");
    }
}

/// Waits until the provider holds at least `at_least` datagrams (of its pending sends).
fn wait_for_held(at_least: usize) {
    let deadline = Instant::now() + BOUND;
    while held_datagrams() < at_least {
        assert!(
            Instant::now() < deadline,
            "only {} datagrams pending, expected {at_least}",
            held_datagrams()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the provider holds at least `at_least` WSK calls (sends or others).
fn wait_for_calls(at_least: usize) {
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
fn response(outcome: &IoctlOutcome, count: u32) -> SendResponse {
    assert_eq!(
        outcome.status, STATUS_SUCCESS,
        "the SEND request itself failed"
    );
    let response: SendResponse = read_response(&outcome.output).unwrap();
    assert_eq!(
        response.datagrams_sent + response.datagrams_failed + response.datagrams_not_sent,
        count,
        "{response:?}"
    );
    response
}

/// Waits (bounded) for a `SEND` of `count` datagrams: [`response`].
fn answer(pending: InFlight<'_>, count: u32) -> SendResponse {
    response(&pending.wait(BOUND).unwrap(), count)
}

/// Waits (bounded) for a `SEND` that may fail as a whole (its socket or handle closed under
/// it, or it was cancelled): [`response`] if it succeeded, else its status.
fn settle(pending: InFlight<'_>, count: u32) -> Result<SendResponse, i32> {
    let outcome = pending.wait(BOUND).unwrap();
    if outcome.status == STATUS_SUCCESS {
        Ok(response(&outcome, count))
    } else {
        Err(outcome.status)
    }
}

/// `CLOSE_SOCKET` while a window of sends is held by the provider returns without any of them
/// completing on its own: `WskCloseSocket` makes the provider cancel them, and the rest of the
/// request is never issued.
#[test]
fn close_with_sends_held_is_bounded_and_accounts_for_every_datagram() {
    for front_door in FrontDoor::ALL {
        close_with_window_held(front_door, false);
    }
}

/// `CLOSE_SOCKET` of a socket whose `SEND` has its window held; with `pend`, `WskCloseSocket`
/// returns `STATUS_PENDING` and the close waits until the provider releases what it holds.
fn close_with_window_held(front_door: FrontDoor, pend: bool) {
    let rig = rig(front_door, CompletionMode::Held);
    pend_closes(pend);
    let socket = rig.open_socket(OWN);
    let sending = rig.window_held(OWN, socket, 100);
    assert_eq!(
        held_datagrams(),
        SEND_WINDOW as usize,
        "{front_door:?}: the window bounds what is in flight"
    );
    let status = if pend {
        held_until_released(front_door, "CLOSE_SOCKET", || rig.close_socket(OWN, socket))
    } else {
        rig.close_socket(OWN, socket)
    };
    assert_eq!(status, STATUS_SUCCESS, "{front_door:?}");
    rig.closed_under_window(sending, 100);
    rig.finish_clean();
}

/// The handle's cleanup (the application exits with sends in flight) closes its sockets the
/// same bounded way; another handle's socket and sends are untouched.
#[test]
fn cleanup_with_sends_held_is_bounded_and_spares_other_handles() {
    for front_door in FrontDoor::ALL {
        let rig = rig(front_door, CompletionMode::Held);
        let doomed = rig.open_socket(OTHER);
        let kept = rig.open_socket(OWN);
        let doomed_send = rig.send(OTHER, doomed, 40);
        let kept_send = rig.send(OWN, kept, 3);
        wait_for_held(SEND_WINDOW as usize + 3);
        let started = Instant::now();
        rig.backend.close_handle(OTHER);
        let doomed = answer(doomed_send, 40);
        assert!(started.elapsed() < BOUND, "{front_door:?}");
        assert_eq!(doomed.datagrams_sent, 0, "{front_door:?}");
        assert_eq!(
            open_sockets(),
            1,
            "{front_door:?}: only the kept socket is open"
        );
        assert_eq!(
            held_datagrams(),
            3,
            "{front_door:?}: the other handle's sends wait"
        );
        let kept = releasing(|| answer(kept_send, 3));
        assert_eq!(kept.datagrams_sent, 3, "{front_door:?}: {kept:?}");
        // Exactly the kept socket's datagrams reached the wire; the doomed ones never did.
        rig.received(3);
        rig.finish_clean();
    }
}

/// The driver loaded straight through the model's I/O manager (KMDF or WDM), for what only an
/// I/O manager does (holding `sc stop` for an open handle, KMDF's cancel callback): the
/// machine, the driver and one open handle.
fn load_io(front_door: FrontDoor, completion: CompletionMode) -> (Machine, LoadedDriver, Handle) {
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
    let handle = iomgr::open(
        wskudp_abi::USER_DEVICE_PATH,
        Caller::Administrator,
        Access::READ_WRITE,
    )
    .unwrap();
    (machine, driver, handle)
}

/// Waits for a request without releasing anything: it must complete on its own.
fn wait_bounded(pending: &PendingRequest) -> (i32, Vec<u8>) {
    pending
        .wait(Some(BOUND))
        .expect("the request did not complete in time")
}

/// An `OPEN_SOCKET` of a loopback socket on an I/O-manager handle, waited for (bounded).
fn open_socket_request(handle: &Handle) -> (i32, Vec<u8>) {
    wait_bounded(
        &handle
            .ioctl(
                Ioctl::OpenSocket.code(),
                encode_open_socket(addr(V4)).as_bytes(),
                size_of::<OpenSocketResponse>(),
            )
            .unwrap(),
    )
}

/// A `SEND` of `count` datagrams to `to` on an I/O-manager handle, in flight.
fn raw_send(handle: &Handle, socket: u32, to: SocketAddr, count: u32) -> PendingRequest {
    handle
        .ioctl(
            Ioctl::Send.code(),
            &send_request(socket, to, count),
            size_of::<SendResponse>(),
        )
        .unwrap()
}

/// [`Rig::open_socket`] on an I/O-manager handle.
fn raw_open_socket(handle: &Handle) -> u32 {
    let (status, output) = releasing(|| open_socket_request(handle));
    assert_eq!(status, STATUS_SUCCESS);
    read_response::<OpenSocketResponse>(&output).unwrap().socket
}

/// `sc stop` with sends held: unload waits for the handle; closing it cancels the sends, and
/// unload finishes with every WSK IRP completed and nothing left.
///
/// KMDF and WDM only: holding `DriverUnload` back while a file object references the device is
/// the I/O manager's doing, and the `none` front door has no I/O manager (the backend drops
/// core's driver state only after cleaning up every handle, which the cleanup test covers).
#[test]
fn unload_with_sends_held_waits_then_leaves_nothing() {
    for front_door in [FrontDoor::Kmdf, FrontDoor::Wdm] {
        unload_with_sends_held(front_door, false);
    }
}

/// `sc stop` with ten sends held on a handle's socket, then the handle closed; with `pend`,
/// `WskCloseSocket` returns `STATUS_PENDING` and the cleanup (so the unload) waits until the
/// provider releases what it holds.
fn unload_with_sends_held(front_door: FrontDoor, pend: bool) {
    let (machine, driver, handle) = load_io(front_door, CompletionMode::Held);
    pend_closes(pend);
    let receiver = common::receiver(V4).unwrap();
    let to = receiver.local_addr().unwrap();
    let socket = raw_open_socket(&handle);
    let sending = raw_send(&handle, socket, to, 10);
    wait_for_held(10);
    std::thread::scope(|scope| {
        let unloading = scope.spawn(|| driver.unload());
        assert_still_running(&unloading, front_door, "the unload, under a handle,");
        if pend {
            let sends = held_completions();
            let closing = scope.spawn(|| handle.close());
            // The close IRP joins the ten sends.
            wait_for_calls(sends + 1);
            assert_still_running(&closing, front_door, "the handle's cleanup");
            assert_still_running(&unloading, front_door, "the unload");
            release_held(usize::MAX);
            closing.join().unwrap();
        } else {
            handle.close();
        }
        unloading.join().unwrap().unwrap();
    });
    let (status, output) = wait_bounded(&sending);
    let response = response(&IoctlOutcome { status, output }, 10);
    assert_eq!(response.datagrams_failed, 10, "{front_door:?}");
    common::receive(&receiver, 0);
    let report = machine.shutdown();
    assert!(report.is_clean(), "{front_door:?}: {report}");
}

/// Statuses a `SEND` racing a close, a cleanup and an unload may fail with as a whole, having
/// sent nothing: its socket closed (`STATUS_INVALID_HANDLE`) or its handle cleaned up
/// (`STATUS_FILE_CLOSED`) before it started.
const REFUSED_IN_THE_RACE: [i32; 2] = [STATUS_INVALID_HANDLE, STATUS_FILE_CLOSED];

/// One sender of [`unload_races_sends_close_and_cleanup_on_threads`]: `requests` `SEND`s of
/// `count` on `socket`, a millisecond apart, until the handle is gone (the I/O manager refuses
/// the request: `STATUS_INVALID_HANDLE`); then waits for each. Returns the datagrams reported
/// sent. Every response accounts for its whole count; a request failed as a whole did so with a
/// status of [`REFUSED_IN_THE_RACE`].
fn race_sender(handle: &Handle, socket: u32, to: SocketAddr, requests: u32, count: u32) -> u32 {
    let mut pending = Vec::new();
    for _ in 0..requests {
        match handle.ioctl(
            Ioctl::Send.code(),
            &send_request(socket, to, count),
            size_of::<SendResponse>(),
        ) {
            Ok(request) => pending.push(request),
            Err(status) => {
                assert_eq!(status, STATUS_INVALID_HANDLE, "refused by the I/O manager");
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    pending
        .iter()
        .map(|request| {
            let (status, output) = wait_bounded(request);
            if status == STATUS_SUCCESS {
                response(&IoctlOutcome { status, output }, count).datagrams_sent
            } else {
                assert!(
                    REFUSED_IN_THE_RACE.contains(&status),
                    "a SEND failed as a whole with {status:#x}"
                );
                assert!(output.iter().all(|&b| b == 0), "counts with {status:#x}");
                0
            }
        })
        .sum()
}

/// `sc stop` racing on threads: senders keep submitting on three sockets of a handle while one
/// thread closes one socket, another cleans the handle up (closes it) and another has asked for
/// the unload, with the provider completing late and out of order. Every `SEND` accounts for
/// every datagram or was refused as a whole with a clear status, the receiver gets exactly the
/// datagrams reported sent, the unload finishes once the handle is gone, and the model reports
/// no leak and no violation. KMDF and WDM only, as
/// [`unload_with_sends_held_waits_then_leaves_nothing`].
#[test]
fn unload_races_sends_close_and_cleanup_on_threads() {
    const REQUESTS: u32 = 8;
    const COUNT: u32 = 40;
    for front_door in [FrontDoor::Kmdf, FrontDoor::Wdm] {
        for round in 0..2_u64 {
            let (machine, driver, handle) =
                load_io(front_door, CompletionMode::late_out_of_order(round + 1));
            let receiver = common::receiver(V4).unwrap();
            let to = receiver.local_addr().unwrap();
            let sockets: Vec<u32> = (0..3).map(|_| raw_open_socket(&handle)).collect();
            let sent: u32 = std::thread::scope(|scope| {
                let handle = &handle;
                let unloading = scope.spawn(move || driver.unload());
                let mut senders = Vec::new();
                for &socket in &sockets {
                    senders.push(
                        scope.spawn(move || race_sender(handle, socket, to, REQUESTS, COUNT)),
                    );
                }
                let closing = scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(2 + round));
                    // After the cleanup the socket is gone (the driver says so), or the handle
                    // (the I/O manager refuses).
                    handle
                        .ioctl(
                            Ioctl::CloseSocket.code(),
                            encode_close_socket(sockets[0]).as_bytes(),
                            0,
                        )
                        .map(|request| wait_bounded(&request).0)
                });
                let cleanup = scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(4 + 2 * round));
                    handle.close();
                });
                let sent = senders.into_iter().map(|s| s.join().unwrap()).sum();
                let close_status = closing.join().unwrap();
                assert!(
                    matches!(
                        close_status,
                        Ok(STATUS_SUCCESS | STATUS_FILE_CLOSED | STATUS_INVALID_HANDLE)
                            | Err(STATUS_INVALID_HANDLE)
                    ),
                    "{front_door:?} round {round}: CLOSE_SOCKET got {close_status:x?}"
                );
                cleanup.join().unwrap();
                unloading.join().unwrap().unwrap();
                sent
            });
            common::receive(&receiver, sent as usize);
            assert_eq!(open_sockets(), 0, "{front_door:?} round {round}");
            let report = machine.shutdown();
            assert!(report.is_clean(), "{front_door:?} round {round}: {report}");
        }
    }
}

/// `CancelIoEx` on a `SEND` with its window held: the driver cancels the WSK IRPs in flight
/// (`IoCancelIrp`), issues nothing more, and completes the request `STATUS_CANCELLED`; the socket
/// stays usable.
#[test]
fn cancelling_a_send_cancels_its_wsk_irps() {
    for front_door in FrontDoor::ALL {
        let rig = rig(front_door, CompletionMode::Held);
        let socket = rig.open_socket(OWN);
        let sending = rig.send(OWN, socket, 500);
        wait_for_held(SEND_WINDOW as usize);
        sending.cancel();
        let outcome = sending.wait(BOUND).unwrap();
        assert_eq!(outcome.status, STATUS_CANCELLED, "{front_door:?}");
        assert_eq!(
            held_datagrams(),
            0,
            "{front_door:?}: every WSK IRP was cancelled"
        );
        // None of the cancelled datagrams went out; the two below do.
        rig.still_sends(socket, 2);
        rig.finish_clean();
    }
}

/// A `SEND` completing with `STATUS_FILE_FORCED_CLOSED` makes the driver close the socket at
/// once (the `WskSendTo` page: "as soon as possible"), before the application closes it; later
/// `SEND`s on it fail with that status, and `CLOSE_SOCKET` still succeeds.
#[test]
fn forced_close_closes_the_socket_at_once() {
    for front_door in FrontDoor::ALL {
        let rig = rig(front_door, CompletionMode::Held);
        let socket = rig.open_socket(OWN);
        let sending = rig.send(OWN, socket, 8);
        wait_for_held(8);
        assert_eq!(force_close_sockets(), 1);
        release_held(1);
        let response = answer(sending, 8);
        assert_eq!(response.status, STATUS_FILE_FORCED_CLOSED, "{front_door:?}");
        assert_eq!(
            open_sockets(),
            0,
            "{front_door:?}: WskCloseSocket was not called"
        );
        let later = rig.send(OWN, socket, 1).wait(BOUND).unwrap();
        assert_eq!(later.status, STATUS_FILE_FORCED_CLOSED, "{front_door:?}");
        assert_eq!(
            rig.close_socket(OWN, socket),
            STATUS_SUCCESS,
            "{front_door:?}"
        );
        rig.received(response.datagrams_sent);
        rig.finish_clean();
    }
}

/// More `SEND`s in flight on one socket than the driver allows fail at once with
/// `STATUS_DEVICE_BUSY`; nothing else changes, and the slots come back as sends finish.
#[test]
fn sends_beyond_the_socket_limit_are_refused_not_queued() {
    for front_door in FrontDoor::ALL {
        let rig = rig(front_door, CompletionMode::Held);
        let socket = rig.open_socket(OWN);
        let in_flight: Vec<InFlight<'_>> = (0..MAX_SENDS_PER_SOCKET)
            .map(|_| rig.send(OWN, socket, 1))
            .collect();
        wait_for_held(MAX_SENDS_PER_SOCKET as usize);
        rig.refused_then_sent(socket, in_flight);
        rig.still_sends(socket, 1);
        rig.finish_clean();
    }
}

/// What one `SEND` of the race came back with: `(datagrams reported sent, most that may have
/// gone out unreported)`. A request that failed as a whole (its handle cleaned up, or cancelled:
/// `STATUS_CANCELLED` with no output, as a cancelled IRP's `Information` is 0) reports no
/// counts, so up to its whole count may have left before it failed.
fn race_outcome(pending: InFlight<'_>, count: u32) -> (u32, u32) {
    settle(pending, count).map_or((0, count), |response| (response.datagrams_sent, 0))
}

/// Closes, cleanups, sends and cancels (`CancelIoEx`) racing on different threads, with the
/// provider completing late and out of order: every request completes, every datagram is
/// accounted for, the receiver gets exactly the datagrams reported sent (plus at most those of
/// requests that failed as a whole), and the model sees no violation (no `WskCloseSocket`
/// during a `WskSendTo`, no send on a closed socket).
#[test]
fn close_cleanup_cancel_and_sends_race_cleanly() {
    for front_door in FrontDoor::ALL {
        for round in 0..4_u64 {
            let rig = rig(front_door, CompletionMode::late_out_of_order(round + 1));
            let sockets: Vec<u32> = (0..3).map(|_| rig.open_socket(OWN)).collect();
            let extra_socket = rig.open_socket(OTHER);
            let (sent, unreported) = std::thread::scope(|scope| {
                // The canceller: every request goes through it, and it cancels every other one
                // (`CancelIoEx`) as soon as it gets it, racing the closes and the cleanup,
                // then waits for them all.
                let (to_canceller, requests) = mpsc::channel::<(InFlight<'_>, u32)>();
                let canceller = scope.spawn(move || {
                    // Cancels as each request arrives, and waits only once all are issued.
                    let mut taken = Vec::new();
                    for (i, (pending, count)) in requests.iter().enumerate() {
                        if (u64::try_from(i).unwrap() + round).is_multiple_of(2) {
                            pending.cancel();
                        }
                        taken.push((pending, count));
                    }
                    taken
                        .into_iter()
                        .map(|(pending, count)| race_outcome(pending, count))
                        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
                });
                let rig = &rig;
                let senders: Vec<_> = sockets
                    .iter()
                    .map(|&socket| {
                        let to_canceller = to_canceller.clone();
                        scope.spawn(move || {
                            for _ in 0..4 {
                                to_canceller.send((rig.send(OWN, socket, 50), 50)).unwrap();
                            }
                        })
                    })
                    .collect();
                let extra = to_canceller.clone();
                let extra_send = scope.spawn(move || {
                    extra
                        .send((rig.send(OTHER, extra_socket, 200), 200))
                        .unwrap();
                });
                drop(to_canceller);
                std::thread::sleep(Duration::from_millis(1 + round));
                for &socket in &sockets[..2] {
                    assert_eq!(rig.close_socket(OWN, socket), STATUS_SUCCESS);
                }
                // A cleanup racing the other handle's send. If the cleanup comes first, the
                // backend reopens the handle for the send, which does not know the socket: the
                // request fails as a whole.
                rig.backend.close_handle(OTHER);
                for sender in senders {
                    sender.join().unwrap();
                }
                extra_send.join().unwrap();
                canceller.join().unwrap()
            });
            let arrived = rig.receiver.recv_up_to(
                usize::try_from(sent + unreported).unwrap() + 1,
                Duration::from_millis(500),
            );
            let arrived = u32::try_from(arrived.len()).unwrap();
            assert!(
                (sent..=sent + unreported).contains(&arrived),
                "{front_door:?} round {round}: {arrived} arrived, {sent} reported sent, \
                 {unreported} unreported"
            );
            rig.finish_clean();
        }
    }
}

/// More `SEND`s in flight on one handle than the driver allows fail with `STATUS_DEVICE_BUSY`,
/// even on a socket below its own limit.
#[test]
fn sends_beyond_the_handle_limit_are_refused() {
    for front_door in FrontDoor::ALL {
        let rig = rig(front_door, CompletionMode::Held);
        let per_socket = MAX_SENDS_PER_SOCKET as usize;
        let sockets = (MAX_SENDS_PER_HANDLE as usize).div_ceil(per_socket);
        let numbers: Vec<u32> = (0..=sockets).map(|_| rig.open_socket(OWN)).collect();
        let in_flight: Vec<InFlight<'_>> = (0..MAX_SENDS_PER_HANDLE as usize)
            .map(|i| rig.send(OWN, numbers[i / per_socket], 1))
            .collect();
        wait_for_held(MAX_SENDS_PER_HANDLE as usize);
        // The last socket has nothing in flight; the handle is full.
        rig.refused_then_sent(numbers[sockets], in_flight);
        rig.finish_clean();
    }
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
        assert_socket_failed(&stats, socket, STATUS_ACCESS_DENIED, 3, front_door);
        client.close_socket(socket).unwrap();
        let report = client.finish().unwrap();
        assert!(report.is_clean(), "{front_door:?}: {report}");
        assert!(
            report.stats.irps_pended >= 3,
            "{front_door:?}: not pended first"
        );
    }
}

/// `socket`'s own record in `response` counts `count` failed datagrams, all with `status` (its
/// failures by status, not only the driver-wide table), and its requests hold no pool now.
fn assert_socket_failed(
    response: &wskudp_abi::StatsResponse,
    socket: u32,
    status: i32,
    count: u64,
    front_door: FrontDoor,
) {
    let entry = response
        .socket(socket)
        .unwrap_or_else(|| panic!("{front_door:?}: socket {socket:#x} missing"));
    assert_eq!(entry.counters.datagrams_failed, count, "{front_door:?}");
    assert_eq!(
        entry
            .failures()
            .map(|f| (f.status, f.count))
            .collect::<Vec<_>>(),
        [(status, count)],
        "{front_door:?}: the socket's failures by status"
    );
    assert_eq!(entry.failures_other, 0, "{front_door:?}");
    assert_eq!(
        (entry.pool_blocks, entry.pool_bytes),
        (0, 0),
        "{front_door:?}: pool held after the request completed"
    );
}

/// `WskCloseSocket` may return `STATUS_PENDING` and complete its IRP "after it has closed the
/// socket" (`PFN_WSK_CLOSE_SOCKET`), the socket's cancelled IRPs with it: with the provider
/// holding them ([`wskudp_kmodel::pend_closes`]), `CLOSE_SOCKET` waits until they are released,
/// then succeeds with every datagram accounted for, on every front door.
#[test]
fn a_close_the_provider_completes_later_waits_for_it() {
    for front_door in FrontDoor::ALL {
        close_with_window_held(front_door, true);
    }
}

/// A handle's cleanup with its socket's close pending waits the same way, and spares another
/// handle's socket, on every front door.
#[test]
fn a_cleanup_waits_for_a_close_the_provider_completes_later() {
    for front_door in FrontDoor::ALL {
        let rig = rig(front_door, CompletionMode::Held);
        pend_closes(true);
        let doomed = rig.open_socket(OTHER);
        let kept = rig.open_socket(OWN);
        let doomed_send = rig.window_held(OTHER, doomed, 40);
        held_until_released(front_door, "the cleanup", || {
            rig.backend.close_handle(OTHER);
        });
        let doomed = answer(doomed_send, 40);
        assert_eq!(doomed.datagrams_sent, 0, "{front_door:?}");
        assert_eq!(open_sockets(), 1, "{front_door:?}: the kept socket");
        rig.still_sends(kept, 3);
        // Unloading closes the kept socket, which the provider completes later too.
        releasing(|| rig.finish_clean());
    }
}

/// `sc stop` with a close the provider completes later: the unload waits for the handle, the
/// handle's cleanup for the close, and both finish once the provider releases it, with nothing
/// left. KMDF and WDM only, as [`unload_with_sends_held_waits_then_leaves_nothing`].
#[test]
fn unload_waits_for_a_close_the_provider_completes_later() {
    for front_door in [FrontDoor::Kmdf, FrontDoor::Wdm] {
        unload_with_sends_held(front_door, true);
    }
}

/// `work` has not finished within 50 ms: it waits on what the provider holds.
fn assert_still_running<T>(
    work: &std::thread::ScopedJoinHandle<'_, T>,
    front_door: FrontDoor,
    what: &str,
) {
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !work.is_finished(),
        "{front_door:?}: {what} finished while the provider held its IRPs"
    );
}

/// Runs `work` (`what`: a close or a cleanup with a window held and closes pending) on another
/// thread: the close IRP joins the held window and `work` waits until the provider releases
/// them all. Returns what `work` returned.
fn held_until_released<T: Send>(
    front_door: FrontDoor,
    what: &str,
    work: impl FnOnce() -> T + Send,
) -> T {
    std::thread::scope(|scope| {
        // The window's IRPs are held; the close IRP joins them.
        let window = held_completions();
        let running = scope.spawn(work);
        wait_for_calls(window + 1);
        assert_still_running(&running, front_door, what);
        release_held(usize::MAX);
        running.join().unwrap()
    })
}

/// A provider failure at once (`WskSendTo` returns the failure and completes the IRP before it
/// returns, never `STATUS_PENDING`: the `WskSendTo` page) reaches the caller unchanged, on every
/// front door: `STATUS_HOST_UNREACHABLE` is the response's status and is counted by that status
/// in `QUERY_STATS`; once the route is back, the socket sends again.
#[test]
fn an_immediate_failure_reaches_the_caller_unchanged() {
    for front_door in FrontDoor::ALL {
        let client = wskudp_harness::client::Client::new(Box::new(
            ModelBackend::start(common::config(
                front_door,
                CompletionMode::worker(),
                FaultPlan::None,
            ))
            .unwrap(),
        ));
        let receiver = common::receiver(V4).unwrap();
        let to = receiver.local_addr().unwrap();
        let socket = client.open_socket(addr(V4)).unwrap().socket;
        wskudp_kmodel::fail_sends_at_once(Some(STATUS_HOST_UNREACHABLE));
        let response = client
            .send(&wskudp_harness::scenarios::plain(socket, to, 4), &[], b"no")
            .unwrap();
        wskudp_kmodel::fail_sends_at_once(None);
        assert_eq!(response.status, STATUS_HOST_UNREACHABLE, "{front_door:?}");
        assert_eq!(
            (response.datagrams_sent, response.datagrams_failed),
            (0, 4),
            "{front_door:?}"
        );
        let stats = client.stats().unwrap();
        assert!(
            stats
                .failures()
                .any(|f| f.status == STATUS_HOST_UNREACHABLE && f.count == 4),
            "{front_door:?}: {:?}",
            stats.failures().collect::<Vec<_>>()
        );
        assert_socket_failed(&stats, socket, STATUS_HOST_UNREACHABLE, 4, front_door);
        common::receive(&receiver, 0);
        let again = client
            .send(&wskudp_harness::scenarios::plain(socket, to, 2), &[], b"ok")
            .unwrap();
        assert_eq!(again.datagrams_sent, 2, "{front_door:?}");
        common::receive(&receiver, 2);
        client.close_socket(socket).unwrap();
        let report = client.finish().unwrap();
        assert!(report.is_clean(), "{front_door:?}: {report}");
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
    let (machine, driver, handle) = load_io(FrontDoor::Kmdf, CompletionMode::Held);
    let receiver = common::receiver(V4).unwrap();
    let to = receiver.local_addr().unwrap();
    let socket = raw_open_socket(&handle);
    let sending = raw_send(&handle, socket, to, 2);
    wait_for_held(2);
    let send_calls = held_completions();
    std::thread::scope(|scope| {
        // A request stays in the dispatch loop: OPEN_SOCKET waits in WskSocket, held.
        let opening = scope.spawn(|| open_socket_request(&handle));
        wait_for_calls(send_calls + 1);
        sending.cancel();
        // The send's WSK calls (both datagrams) complete; the request waits for its
        // EvtRequestCancel.
        for _ in 0..send_calls {
            assert!(wskudp_kmodel::release_held_nth(0));
        }
        let closing = handle
            .ioctl(
                Ioctl::CloseSocket.code(),
                encode_close_socket(socket).as_bytes(),
                0,
            )
            .unwrap();
        let (status, _) = wait_bounded(&closing);
        assert_eq!(
            status, STATUS_SUCCESS,
            "the close waited for the cancel callback"
        );
        assert!(!opening.is_finished());
        // The open goes on to WskBind and WskGetLocalAddress, held in turn.
        let (status, _) = releasing(|| opening.join().unwrap());
        assert_eq!(status, STATUS_SUCCESS);
    });
    let (status, output) = wait_bounded(&sending);
    if status == STATUS_SUCCESS {
        let response = response(&IoctlOutcome { status, output }, 2);
        assert_eq!(response.datagrams_sent, 2);
    } else {
        // Cancelled: no counts reported (a cancelled IRP's Information is 0).
        assert_eq!(status, STATUS_CANCELLED);
    }
    // Either way both sends had completed on the wire before the cancel.
    common::receive(&receiver, 2);
    handle.close();
    driver.unload().unwrap();
    let report = machine.shutdown();
    assert!(report.is_clean(), "{report}");
}
