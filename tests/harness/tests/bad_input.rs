//! Bad input gets one precise `NTSTATUS`, changes nothing else, and never reaches a panic.

mod common;

use common::{V4, addr, client_on, config, finish_clean, in_mode, modes, plain};
use proptest::prelude::*;
use wskudp_abi::status::{
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_HANDLE, STATUS_SUCCESS,
    STATUS_TOO_MANY_OPENED_FILES,
};
use wskudp_abi::{Ioctl, MAX_SOCKETS, OpenSocketResponse, encode_close_socket, encode_open_socket};
use wskudp_harness::backend::{Backend, FrontDoor, ModelBackend};
use wskudp_harness::client::{Client, ClientError};
use wskudp_harness::scenarios::valid_send;
use wskudp_kmodel::{CompletionMode, FaultPlan};
use zerocopy::{FromBytes, IntoBytes};

#[test]
fn the_client_refuses_what_the_driver_would_refuse() {
    let client = client_on(FrontDoor::Kmdf, CompletionMode::Inline, FaultPlan::None);
    let socket = client.open_socket(addr(V4)).unwrap().socket;
    let error = client
        .send(&plain(socket, addr("127.0.0.1:9"), 1), &[3, 3], b"hello")
        .unwrap_err();
    assert!(matches!(error, ClientError::Invalid(_)));
    assert_eq!(
        error.to_string(),
        "invalid request: segment lengths add up to 6, payload is 5 bytes"
    );
    finish_clean(client);
}

#[test]
fn socket_table_full_is_refused_cleanly() {
    for front_door in FrontDoor::ALL {
        for mode in modes() {
            in_mode(mode, || {
                socket_table_full(client_on(front_door, mode, FaultPlan::None));
            });
        }
    }
}

fn socket_table_full(client: Client) {
    let handles: Vec<u32> = (0..MAX_SOCKETS)
        .map(|_| client.open_socket(addr(V4)).unwrap().socket)
        .collect();
    let error = client.open_socket(addr(V4)).unwrap_err();
    assert!(
        matches!(error, ClientError::Status(STATUS_TOO_MANY_OPENED_FILES)),
        "{error}"
    );
    assert_eq!(client.info().unwrap().open_sockets, MAX_SOCKETS);
    client.close_socket(handles[7]).unwrap();
    let reopened = client.open_socket(addr(V4)).unwrap().socket;
    assert_ne!(
        reopened, handles[7],
        "a closed handle's number is not reused at once"
    );
    assert!(matches!(
        client.close_socket(handles[7]),
        Err(ClientError::Status(STATUS_INVALID_HANDLE))
    ));
    // The rest are closed by the handle's cleanup.
    finish_clean(client);
}

#[test]
fn bind_failures_leave_no_socket_behind() {
    for front_door in FrontDoor::ALL {
        for mode in modes() {
            in_mode(mode, || {
                bind_failures(client_on(front_door, mode, FaultPlan::None));
            });
        }
    }
}

fn bind_failures(client: Client) {
    let taken = client.open_socket(addr(V4)).unwrap();
    let busy = taken.local.socket_addr().unwrap();
    let error = client.open_socket(busy).unwrap_err();
    assert!(matches!(error, ClientError::Status(_)), "{error}");
    let error = client.open_socket(addr("192.0.2.77:0")).unwrap_err();
    assert!(matches!(error, ClientError::Status(_)), "{error}");
    assert_eq!(client.info().unwrap().open_sockets, 1);
    finish_clean(client);
}

#[test]
fn sockets_are_private_to_the_handle_that_opened_them() {
    for front_door in FrontDoor::ALL {
        for mode in modes() {
            in_mode(mode, || private_sockets(front_door, mode));
        }
    }
}

fn private_sockets(front_door: FrontDoor, mode: CompletionMode) {
    let backend = ModelBackend::start(config(front_door, mode, FaultPlan::None)).unwrap();
    let opened = backend
        .ioctl(
            Ioctl::OpenSocket.code(),
            encode_open_socket(addr(V4)).as_bytes(),
            size_of::<OpenSocketResponse>(),
        )
        .unwrap();
    let handle = OpenSocketResponse::read_from_bytes(&opened.output)
        .unwrap()
        .socket;
    // Another handle can neither send on it nor close it.
    let send = backend
        .ioctl_as(2, Ioctl::Send.code(), &valid_send(handle).unwrap(), 24)
        .unwrap();
    assert_eq!(send.status, STATUS_INVALID_HANDLE);
    let close = backend
        .ioctl_as(
            2,
            Ioctl::CloseSocket.code(),
            encode_close_socket(handle).as_bytes(),
            0,
        )
        .unwrap();
    assert_eq!(close.status, STATUS_INVALID_HANDLE);
    // Its own sockets go when it is cleaned up; ours stay.
    let theirs = backend
        .ioctl_as(
            2,
            Ioctl::OpenSocket.code(),
            encode_open_socket(addr(V4)).as_bytes(),
            size_of::<OpenSocketResponse>(),
        )
        .unwrap();
    assert_eq!(theirs.status, STATUS_SUCCESS);
    backend.close_handle(2);
    let ours = backend
        .ioctl(Ioctl::Send.code(), &valid_send(handle).unwrap(), 24)
        .unwrap();
    assert_eq!(ours.status, STATUS_SUCCESS);
    let report = Box::new(backend).finish().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn closing_the_handle_closes_its_sockets() {
    for front_door in FrontDoor::ALL {
        for mode in modes() {
            in_mode(mode, || {
                let client = client_on(front_door, mode, FaultPlan::None);
                for _ in 0..5 {
                    client.open_socket(addr(V4)).unwrap();
                }
                // No CLOSE_SOCKET: cleanup at unload must close all five (finish_clean checks
                // leaks).
                finish_clean(client);
            });
        }
    }
}

/// Codes whose transfer method is not the request's own (the I/O manager hands the driver an
/// MDL or user addresses instead of a system buffer, or a system buffer where `SEND_DIRECT`
/// expects its MDL): an unknown code with each method but `METHOD_BUFFERED`, and every known
/// code with its method bits changed. Every front door refuses them, in every
/// completion mode, with the status core gives an unknown code, and nothing leaks.
#[test]
fn codes_of_other_transfer_methods_are_refused() {
    let codes: Vec<u32> = (1..=3)
        .map(|method| 0x0012_A0FC | method)
        .chain(Ioctl::ALL.iter().flat_map(|ioctl| {
            (0..=3)
                .filter(|method| *method != ioctl.code() & 3)
                .map(|method| (ioctl.code() & !3) | method)
        }))
        .collect();
    for front_door in FrontDoor::ALL {
        for mode in modes() {
            in_mode(mode, || {
                let client = client_on(front_door, mode, FaultPlan::None);
                client.open_socket(addr(V4)).unwrap();
                for &code in &codes {
                    for (input, output_len) in [(&[][..], 0), (&[7_u8; 40][..], 64)] {
                        let (status, output) = client.raw(code, input, output_len).unwrap();
                        assert_eq!(
                            (status, output.len()),
                            (STATUS_INVALID_DEVICE_REQUEST, 0),
                            "{front_door:?}, {mode:?}: code {code:#x}"
                        );
                    }
                }
                finish_clean(client);
            });
        }
    }
}

/// One request of [`arbitrary_input_never_breaks_the_driver`]: which IOCTL (past the end: an
/// unknown code), input bytes, output length.
type Request = (usize, Vec<u8>, usize);

/// Sends `requests` through `front_door` on a fresh machine in `mode`; the first broken
/// promise, if any.
fn arbitrary_input(
    front_door: FrontDoor,
    mode: CompletionMode,
    requests: &[Request],
) -> Result<(), TestCaseError> {
    let client = client_on(front_door, mode, FaultPlan::None);
    let socket = client.open_socket(addr(V4)).unwrap().socket;
    for (which, input, output_len) in requests {
        let code = Ioctl::ALL
            .get(*which)
            .map_or(0x0012_A0FC, |ioctl| ioctl.code());
        let mut input = input.clone();
        // Half the time, start from a valid header so deeper checks are reached.
        if *which == 3 && input.len() > 8 {
            let valid = valid_send(socket).unwrap();
            let n = input.len().min(valid.len());
            input[..n.min(16)].copy_from_slice(&valid[..n.min(16)]);
        }
        let (status, output) = client.raw(code, &input, *output_len).unwrap();
        prop_assert!(output.len() <= *output_len);
        if status < 0 {
            prop_assert!(output.is_empty());
        }
    }
    let report = client.finish().unwrap();
    prop_assert!(report.is_clean(), "{:?}", report);
    Ok(())
}

proptest! {
    // Each case runs in all five completion modes.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Arbitrary bytes to every IOCTL code, in every completion mode: a status comes back,
    /// nothing crashes, nothing leaks.
    #[test]
    fn arbitrary_input_never_breaks_the_driver(
        door in 0_usize..3,
        requests in proptest::collection::vec(
            (0_usize..6, proptest::collection::vec(any::<u8>(), 0..200), 0_usize..400),
            1..12,
        )
    ) {
        for mode in modes() {
            in_mode(mode, || arbitrary_input(FrontDoor::ALL[door], mode, &requests))?;
        }
    }
}
