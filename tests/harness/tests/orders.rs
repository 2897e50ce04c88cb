//! Every order of completions and racing requests, for small scenarios, on every front door.
//!
//! The provider holds every WSK IRP ([`CompletionMode::Held`]); at each step the scenario
//! offers what could happen next (any held completion, or one of its racing requests: a
//! `CLOSE_SOCKET`, a handle's cleanup, a `CancelIoEx`, a `SEND` itself) and [`every_path`] takes each choice
//! in turn, replaying from a fresh machine, until every order was run. Every run must end with
//! every `SEND` completed and every datagram accounted for, a loopback receiver holding exactly
//! the datagrams reported sent, then unload with no violation and nothing leaked. The number of
//! orders each scenario has is asserted, and the README lists it (checked below).
//!
//! Each scenario runs on two providers: one with `WskSendMessages` (a `SEND`'s datagrams go in
//! one IRP: fewer completions to order) and one without (the Windows 7 table: one `WskSendTo`
//! IRP per datagram).

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use common::{V4, addr, config, releasing};
use wskudp_abi::status::{STATUS_CANCELLED, STATUS_SUCCESS, nt_error};
use wskudp_abi::{
    Ioctl, OpenSocketResponse, SendResponse, encode_close_socket, encode_open_socket, encode_send,
    read_response, send_request_len,
};
use wskudp_harness::backend::{FrontDoor, InFlight, ModelBackend};
use wskudp_harness::receiver::Receiver;
use wskudp_harness::scenarios::plain;
use wskudp_kmodel::explore::{Chooser, every_path};
use wskudp_kmodel::{CompletionMode, FaultPlan, Profile, held_completions, release_held_nth};
use zerocopy::IntoBytes;

/// A racing request of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Race {
    /// `CLOSE_SOCKET` of socket `n` (in the scenario's list), through its handle.
    Close(usize),
    /// The cleanup of handle `n` (its last user handle closed).
    Cleanup(usize),
    /// `CancelIoEx` on `SEND` `n`.
    Cancel(usize),
    /// `SEND` `n` is issued now rather than up front: a choice point before it, so it races
    /// the other requests (a close or cleanup of its socket may come first).
    Send(usize),
}

/// A small scenario: sockets (by handle), `SEND`s (socket, datagrams) issued up front (unless
/// a [`Race::Send`] issues them), and the requests that race their completions.
struct Scenario {
    name: &'static str,
    sockets: &'static [usize],
    sends: &'static [(usize, u32)],
    races: &'static [Race],
    /// How many orders it has, on every front door (the README's table lists them): with
    /// `WskSendMessages`, and with one `WskSendTo` per datagram.
    orders: [usize; 2],
}

/// The two providers each scenario runs on, in `Scenario::orders`' order.
const PROFILES: [Profile; 2] = [Profile::Windows11, Profile::NoSendMessages];

const SCENARIOS: [Scenario; 6] = [
    Scenario {
        name: "two sends on a socket, its close",
        sockets: &[1],
        sends: &[(0, 2), (0, 1)],
        races: &[Race::Close(0)],
        orders: [5, 16],
    },
    Scenario {
        name: "a send on each of two sockets, their handle's cleanup",
        sockets: &[2, 2],
        sends: &[(0, 2), (1, 1)],
        races: &[Race::Cleanup(2)],
        orders: [5, 16],
    },
    Scenario {
        name: "a send, its cancel, its socket's close",
        sockets: &[1],
        sends: &[(0, 3)],
        races: &[Race::Cancel(0), Race::Close(0)],
        orders: [4, 32],
    },
    Scenario {
        name: "sends on two handles, a close on one, the other's cleanup",
        sockets: &[1, 2],
        sends: &[(0, 1), (1, 2)],
        races: &[Race::Close(0), Race::Cleanup(2)],
        orders: [14, 51],
    },
    Scenario {
        name: "three sends on a socket, one cancelled, the socket closed",
        sockets: &[1],
        sends: &[(0, 2), (0, 2), (0, 1)],
        races: &[Race::Cancel(1), Race::Close(0)],
        orders: [46, 973],
    },
    Scenario {
        name: "a send racing its socket's close",
        sockets: &[1],
        sends: &[(0, 2)],
        races: &[Race::Send(0), Race::Close(0)],
        orders: [3, 6],
    },
];

fn send_request(socket: u32, to: SocketAddr, count: u32) -> Vec<u8> {
    let payload = [0x33_u8; 32];
    let mut request = vec![0; send_request_len(0, payload.len()).unwrap()];
    encode_send(&plain(socket, to, count), &[], &payload, &mut request).unwrap();
    request
}

/// One run of `scenario` through `front_door` on `profile`'s provider, taking `chooser`'s
/// path, sending to `receiver`.
fn run(
    front_door: FrontDoor,
    profile: Profile,
    scenario: &Scenario,
    receiver: &Receiver,
    chooser: &mut Chooser,
) {
    let to = receiver.local_addr().unwrap();
    let mut config = config(front_door, CompletionMode::Held, FaultPlan::None);
    config.machine.profile = profile;
    let backend = ModelBackend::start(config).unwrap();
    let sockets: Vec<(usize, u32)> = scenario
        .sockets
        .iter()
        .map(|&handle| {
            let outcome = releasing(|| {
                backend
                    .ioctl_as(
                        handle,
                        Ioctl::OpenSocket.code(),
                        encode_open_socket(addr(V4)).as_bytes(),
                        size_of::<OpenSocketResponse>(),
                    )
                    .unwrap()
            });
            assert_eq!(outcome.status, STATUS_SUCCESS);
            let opened: OpenSocketResponse = read_response(&outcome.output).unwrap();
            (handle, opened.socket)
        })
        .collect();
    let issue = |send: usize| {
        let (socket, count) = scenario.sends[send];
        let (handle, number) = sockets[socket];
        backend
            .submit_as(
                handle,
                Ioctl::Send.code(),
                &send_request(number, to, count),
                size_of::<SendResponse>(),
            )
            .unwrap()
    };
    let mut sends: Vec<Option<InFlight<'_>>> = (0..scenario.sends.len())
        .map(|send| (!scenario.races.contains(&Race::Send(send))).then(|| issue(send)))
        .collect();
    // Sockets closed and handles cleaned up so far; sends issued after their socket went.
    let mut closed: Vec<usize> = Vec::new();
    let mut cleaned: Vec<usize> = Vec::new();
    let mut too_late: Vec<usize> = Vec::new();
    let mut races: Vec<Race> = scenario.races.to_vec();
    loop {
        // What issues next from the driver's work item must be with the provider first.
        wskudp_kmodel::quiesce_work_items();
        let held = held_completions();
        let alternatives = held + races.len();
        if alternatives == 0 {
            break;
        }
        let choice = chooser.choose(alternatives);
        if choice < held {
            assert!(release_held_nth(choice));
            continue;
        }
        match races.remove(choice - held) {
            Race::Close(socket) => {
                let (handle, number) = sockets[socket];
                let outcome = backend
                    .ioctl_as(
                        handle,
                        Ioctl::CloseSocket.code(),
                        encode_close_socket(number).as_bytes(),
                        0,
                    )
                    .unwrap();
                // It fails only if its handle's cleanup closed the socket already.
                assert!(
                    outcome.status == STATUS_SUCCESS || cleaned.contains(&handle),
                    "{front_door:?} {:?}: CLOSE_SOCKET failed with {:#x}",
                    chooser.path(),
                    outcome.status
                );
                closed.push(socket);
            }
            Race::Cleanup(handle) => {
                backend.close_handle(handle);
                cleaned.push(handle);
            }
            Race::Cancel(send) => sends[send]
                .as_ref()
                .expect("a scenario cancels a send issued before")
                .cancel(),
            Race::Send(send) => {
                let socket = scenario.sends[send].0;
                if closed.contains(&socket) || cleaned.contains(&sockets[socket].0) {
                    too_late.push(send);
                }
                sends[send] = Some(issue(send));
            }
        }
    }
    let path = chooser.path();
    let (sent, unreported) = check_sends(front_door, &path, scenario, sends, &too_late);
    check_arrivals(
        receiver,
        sent,
        unreported,
        &format!("{front_door:?} {path:?}"),
    );
    let report = Box::new(backend).finish_report();
    assert!(report.is_clean(), "{front_door:?} {path:?}: {report}");
}

/// Every `SEND` of a run completed: accounted for, cancelled only if the scenario cancelled it,
/// failed as a whole only if issued after its socket went (`too_late`). Returns the datagrams
/// reported sent and those of `SEND`s cancelled as a whole (`STATUS_CANCELLED`, no counts: a
/// cancelled IRP's `Information` is 0), of which any may have left before the cancel.
fn check_sends(
    front_door: FrontDoor,
    path: &[usize],
    scenario: &Scenario,
    sends: Vec<Option<InFlight<'_>>>,
    too_late: &[usize],
) -> (u32, u32) {
    let (mut datagrams_sent, mut unreported) = (0, 0);
    for (index, (send, &(_, count))) in sends.into_iter().zip(scenario.sends).enumerate() {
        let send = send.expect("every race ran: every SEND was issued");
        // Nothing is held and every race ran: each SEND has completed.
        let outcome = send.wait(Duration::from_secs(2)).unwrap_or_else(|error| {
            panic!("{front_door:?} {path:?}: SEND {index} did not complete: {error}")
        });
        if too_late.contains(&index) {
            // Its socket was gone before it was issued: it fails as a whole.
            assert!(
                nt_error(outcome.status),
                "{front_door:?} {path:?}: SEND {index} on a closed socket: {:#x}",
                outcome.status
            );
            continue;
        }
        if outcome.status == STATUS_CANCELLED {
            assert!(
                scenario.races.contains(&Race::Cancel(index)),
                "{front_door:?} {path:?}: SEND {index} cancelled, and nobody cancelled it"
            );
            unreported += count;
            continue;
        }
        assert_eq!(outcome.status, STATUS_SUCCESS, "{front_door:?} {path:?}");
        let response: SendResponse = read_response(&outcome.output).unwrap();
        assert_eq!(
            response.datagrams_sent + response.datagrams_failed + response.datagrams_not_sent,
            count,
            "{front_door:?} {path:?}: SEND {index}: {response:?}"
        );
        datagrams_sent += response.datagrams_sent;
    }
    (datagrams_sent, unreported)
}

/// The receiver got the `sent` datagrams reported sent (plus at most `unreported`, see
/// [`check_sends`]) and nothing more; this drains it for the next path. The model sends at
/// completion, over loopback: all are queued by now, so "nothing more" does not wait (the
/// test's end waits once for stragglers).
fn check_arrivals(receiver: &Receiver, sent: u32, unreported: u32, what: &str) {
    let reported = receiver
        .recv_up_to(sent as usize, Duration::from_secs(2))
        .len();
    let extra = receiver.take_queued().unwrap().len();
    assert_eq!(reported, sent as usize, "{what}: datagrams reported sent");
    assert!(
        extra <= unreported as usize,
        "{what}: {extra} more than the {sent} reported sent arrived ({unreported} unreported)"
    );
}

/// Boxed backends finish through the trait; this keeps the test's backend concrete.
trait FinishReport {
    fn finish_report(self) -> wskudp_kmodel::Report;
}

impl FinishReport for Box<ModelBackend> {
    fn finish_report(self) -> wskudp_kmodel::Report {
        wskudp_harness::backend::Backend::finish(self).expect("the model reports")
    }
}

#[test]
fn every_order_of_completions_and_racing_requests_is_clean() {
    let receiver = common::receiver(V4).unwrap();
    let mut changed = Vec::new();
    for scenario in &SCENARIOS {
        for (profile, expected) in PROFILES.into_iter().zip(scenario.orders) {
            for front_door in FrontDoor::ALL {
                let orders = every_path(|chooser| {
                    run(front_door, profile, scenario, &receiver, chooser);
                });
                println!(
                    "{}: {orders} orders ({front_door:?}, {})",
                    scenario.name,
                    profile.name()
                );
                if orders != expected {
                    changed.push(format!(
                        "{} ({front_door:?}, {}): {orders} orders, SCENARIOS says {expected}",
                        scenario.name,
                        profile.name()
                    ));
                }
            }
        }
    }
    assert!(
        changed.is_empty(),
        "the number of orders changed; update SCENARIOS and the README:\n{}",
        changed.join("\n")
    );
    assert!(
        receiver.recv(Duration::from_millis(200)).is_err(),
        "a datagram arrived after every path was checked"
    );
}

/// The README's table of order counts is [`SCENARIOS`]' (whose counts the test above checks).
#[test]
fn readme_lists_every_order_count() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let mut table = String::from(
        "| scenario | orders, `WskSendMessages` | orders, `WskSendTo` per datagram |\n|---|---|---|\n",
    );
    for scenario in &SCENARIOS {
        let [batched, per_datagram] = scenario.orders;
        writeln!(table, "| {} | {batched} | {per_datagram} |", scenario.name).unwrap();
    }
    assert!(
        readme.contains(&table),
        "README.md's order count table is stale; it should read:\n{table}"
    );
}
