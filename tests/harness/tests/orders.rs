//! Every order of completions and racing requests, for small scenarios, on every front door.
//!
//! The provider holds every WSK IRP ([`CompletionMode::Held`]); at each step the scenario
//! offers what could happen next (any held completion, or one of its racing requests: a
//! `CLOSE_SOCKET`, a handle's cleanup, a `CancelIoEx`) and [`every_path`] takes each choice
//! in turn, replaying from a fresh machine, until every order was run. Every run must end with
//! every `SEND` completed and every datagram accounted for, then unload with no violation and
//! nothing leaked. The number of orders each scenario has is printed and listed in the README.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{V4, addr, config, releasing};
use wskudp_abi::status::{STATUS_CANCELLED, STATUS_SUCCESS};
use wskudp_abi::{
    Ioctl, OpenSocketResponse, SendResponse, encode_close_socket, encode_open_socket, encode_send,
    read_response, send_request_len,
};
use wskudp_harness::backend::{FrontDoor, InFlight, ModelBackend};
use wskudp_harness::scenarios::plain;
use wskudp_kmodel::explore::{Chooser, every_path};
use wskudp_kmodel::{CompletionMode, FaultPlan, held_completions, release_held_nth};
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
}

/// A small scenario: sockets (by handle), `SEND`s (socket, datagrams) issued up front, and the
/// requests that race their completions.
struct Scenario {
    name: &'static str,
    sockets: &'static [usize],
    sends: &'static [(usize, u32)],
    races: &'static [Race],
}

const SCENARIOS: [Scenario; 5] = [
    Scenario {
        name: "two sends on a socket, its close",
        sockets: &[1],
        sends: &[(0, 2), (0, 1)],
        races: &[Race::Close(0)],
    },
    Scenario {
        name: "a send on each of two sockets, their handle's cleanup",
        sockets: &[2, 2],
        sends: &[(0, 2), (1, 1)],
        races: &[Race::Cleanup(2)],
    },
    Scenario {
        name: "a send, its cancel, its socket's close",
        sockets: &[1],
        sends: &[(0, 3)],
        races: &[Race::Cancel(0), Race::Close(0)],
    },
    Scenario {
        name: "sends on two handles, a close on one, the other's cleanup",
        sockets: &[1, 2],
        sends: &[(0, 1), (1, 2)],
        races: &[Race::Close(0), Race::Cleanup(2)],
    },
    Scenario {
        name: "three sends on a socket, one cancelled, the socket closed",
        sockets: &[1],
        sends: &[(0, 2), (0, 2), (0, 1)],
        races: &[Race::Cancel(1), Race::Close(0)],
    },
];

fn send_request(socket: u32, to: SocketAddr, count: u32) -> Vec<u8> {
    let payload = [0x33_u8; 32];
    let mut request = vec![0; send_request_len(0, payload.len()).unwrap()];
    encode_send(&plain(socket, to, count), &[], &payload, &mut request).unwrap();
    request
}

/// One run of `scenario` through `front_door`, taking `chooser`'s path.
fn run(front_door: FrontDoor, scenario: &Scenario, to: SocketAddr, chooser: &mut Chooser) {
    let backend =
        ModelBackend::start(config(front_door, CompletionMode::Held, FaultPlan::None)).unwrap();
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
    let sends: Vec<InFlight<'_>> = scenario
        .sends
        .iter()
        .map(|&(socket, count)| {
            let (handle, number) = sockets[socket];
            backend
                .submit_as(
                    handle,
                    Ioctl::Send.code(),
                    &send_request(number, to, count),
                    size_of::<SendResponse>(),
                )
                .unwrap()
        })
        .collect();
    let mut races: Vec<Race> = scenario.races.to_vec();
    loop {
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
                // The socket may be gone with its handle's cleanup already.
                assert!(
                    outcome.status == STATUS_SUCCESS
                        || races.iter().all(|race| !matches!(race, Race::Cleanup(_))),
                    "{:?}: CLOSE_SOCKET failed with {:#x}",
                    chooser.path(),
                    outcome.status
                );
            }
            Race::Cleanup(handle) => backend.close_handle(handle),
            Race::Cancel(send) => sends[send].cancel(),
        }
    }
    let path = chooser.path();
    for (index, (send, &(_, count))) in sends.into_iter().zip(scenario.sends).enumerate() {
        // Nothing is held and every race ran: each SEND has completed.
        let outcome = send.wait(Duration::from_secs(2)).unwrap_or_else(|error| {
            panic!("{front_door:?} {path:?}: SEND {index} did not complete: {error}")
        });
        if outcome.status == STATUS_CANCELLED {
            assert!(
                scenario.races.contains(&Race::Cancel(index)),
                "{front_door:?} {path:?}: SEND {index} cancelled, and nobody cancelled it"
            );
            continue;
        }
        assert_eq!(outcome.status, STATUS_SUCCESS, "{front_door:?} {path:?}");
        let response: SendResponse = read_response(&outcome.output).unwrap();
        assert_eq!(
            response.datagrams_sent + response.datagrams_failed + response.datagrams_not_sent,
            count,
            "{front_door:?} {path:?}: SEND {index}: {response:?}"
        );
    }
    let report = Box::new(backend).finish_report();
    assert!(report.is_clean(), "{front_door:?} {path:?}: {report}");
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
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = sink.local_addr().unwrap();
    for scenario in &SCENARIOS {
        for front_door in FrontDoor::ALL {
            let orders = every_path(|chooser| run(front_door, scenario, to, chooser));
            println!("{}: {orders} orders ({front_door:?})", scenario.name);
            assert!(orders > 1, "{}: nothing to explore", scenario.name);
        }
    }
}
