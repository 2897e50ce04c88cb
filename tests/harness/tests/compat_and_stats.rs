//! ABI compatibility one release apart, both ways, and the statistics `QUERY_STATS` reports.
//!
//! The rule (`wskudp_abi`): a driver serves its ABI version and the one before, answering each
//! request in the layout of the version it was written in; `QUERY_INFO` tells the client which
//! versions the driver speaks, and the client writes the newest both know. An older client is
//! [`Client::speaking`] version 1; an older driver speaks version 1 only
//! (`Driver::create_speaking(.., 1)`; behind the KMDF and WDM front doors, core's
//! `CREATE_SPEAKING` while their `DriverEntry` runs).

mod common;

use std::time::{Duration, Instant};

use common::{V4, addr, config, finish_clean, in_mode, modes, receive, receiver, releasing};
use wskudp_abi::status::{
    STATUS_CANCELLED, STATUS_INVALID_DEVICE_REQUEST, STATUS_REVISION_MISMATCH, STATUS_SUCCESS,
};
use wskudp_abi::{ABI_VERSION, InfoResponse, Ioctl, SEND_WINDOW, SendResponse, encode_query_stats};
use wskudp_harness::backend::{Backend, FrontDoor, ModelBackend, ModelConfig};
use wskudp_harness::client::{Client, ClientError};
use wskudp_harness::scenarios::plain;
use wskudp_kmodel::{CompletionMode, FaultPlan, held_datagrams};
use zerocopy::IntoBytes;

fn backend_with(front_door: FrontDoor, completion: CompletionMode) -> Box<dyn Backend> {
    Box::new(ModelBackend::start(config(front_door, completion, FaultPlan::None)).unwrap())
}

fn backend(front_door: FrontDoor, driver_abi: Option<u32>) -> Box<dyn Backend> {
    Box::new(
        ModelBackend::start(ModelConfig {
            driver_abi,
            ..config(front_door, CompletionMode::worker(), FaultPlan::None)
        })
        .unwrap(),
    )
}

/// Opens a socket, sends `count` datagrams to a loopback receiver, checks they all arrived,
/// closes the socket.
fn round_trip(client: &Client, count: u32) -> SendResponse {
    let receiver = receiver(V4).unwrap();
    let socket = client.open_socket(addr(V4)).unwrap().socket;
    let to = receiver.local_addr().unwrap();
    let response = client
        .send(&plain(socket, to, count), &[], b"compatible")
        .unwrap();
    assert_eq!(response.datagrams_sent, count);
    let arrivals = receive(&receiver, count as usize);
    assert!(arrivals.iter().all(|a| a.payload == b"compatible"));
    client.close_socket(socket).unwrap();
    response
}

/// A version-1 client against this driver: it asks `QUERY_INFO` with version 1's buffer size
/// and gets version 1's layout, writes version-1 requests, and everything it knew works.
#[test]
fn an_older_client_talks_to_this_driver() {
    for front_door in FrontDoor::ALL {
        let client = Client::speaking(backend(front_door, None), 1);
        let info = client.info().unwrap();
        assert_eq!(info.abi_version, ABI_VERSION, "{front_door:?}");
        assert_eq!(
            info.abi_oldest, 0,
            "{front_door:?}: a v1 buffer gets the v1 layout"
        );
        assert_eq!(client.abi_version().unwrap(), 1);
        let response = round_trip(&client, 5);
        assert_eq!(response.datagrams_not_sent, 0);
        assert!(matches!(client.stats(), Err(ClientError::Usage(_))));
        finish_clean(client);
    }
}

/// This client against a version-1 driver, on every front door: `QUERY_INFO` says 1, so the
/// client writes version 1; what version 2 added is refused the way a version-1 driver
/// refuses it.
#[test]
fn this_client_talks_to_an_older_driver() {
    for front_door in FrontDoor::ALL {
        this_client_talks_to_an_older_driver_through(front_door);
    }
}

fn this_client_talks_to_an_older_driver_through(front_door: FrontDoor) {
    let client = Client::new(backend(front_door, Some(1)));
    let info = client.info().unwrap();
    assert_eq!((info.abi_version, info.abi_oldest), (1, 0));
    assert_eq!(client.abi_version().unwrap(), 1);
    round_trip(&client, 5);
    assert!(matches!(client.stats(), Err(ClientError::Usage(_))));
    // What a version-2 request gets from it: QUERY_STATS is unknown, a v2 header too new.
    let (status, _) = client
        .raw(
            Ioctl::QueryStats.code(),
            encode_query_stats().as_bytes(),
            size_of::<wskudp_abi::StatsResponse>(),
        )
        .unwrap();
    assert_eq!(status, STATUS_INVALID_DEVICE_REQUEST);
    let (status, _) = client
        .raw(
            Ioctl::OpenSocket.code(),
            wskudp_abi::encode_open_socket(addr(V4)).as_bytes(),
            64,
        )
        .unwrap();
    assert_eq!(status, STATUS_REVISION_MISMATCH);
    // A version-1 buffer for QUERY_INFO is what that driver fills.
    let (status, output) = client
        .raw(Ioctl::QueryInfo.code(), &[], size_of::<InfoResponse>())
        .unwrap();
    assert_eq!(
        (status, output.len()),
        (STATUS_SUCCESS, InfoResponse::V1_LEN)
    );
    finish_clean(client);
}

/// `QUERY_STATS` counts what was sent, per socket and driver-wide, and what is in flight.
#[test]
fn statistics_count_datagrams_requests_and_pool() {
    for front_door in FrontDoor::ALL {
        for completion in modes() {
            in_mode(completion, || {
                let client = Client::new(backend_with(front_door, completion));
                let receiver = receiver(V4).unwrap();
                let to = receiver.local_addr().unwrap();
                let socket = client.open_socket(addr(V4)).unwrap().socket;
                let summary = client
                    .send_pipelined(&plain(socket, to, 1), &[], &[7; 100], 2500, 4)
                    .unwrap();
                assert!(summary.all_sent(), "{summary:?}");
                receive(&receiver, 2500);
                let stats = client.stats().unwrap();
                let label = format!("{front_door:?} {completion:?}");
                assert_eq!(stats.driver.datagrams_sent, 2500, "{label}");
                assert_eq!(stats.driver.bytes_sent, 250_000, "{label}");
                assert_eq!(stats.driver.requests_in_flight, 0, "{label}");
                assert_eq!(stats.driver.datagrams_in_flight, 0, "{label}");
                assert!(stats.driver.requests_in_flight_max >= 1, "{label}");
                assert!(
                    (1..=SEND_WINDOW * 4).contains(&stats.driver.datagrams_in_flight_max),
                    "{label}: {}",
                    stats.driver.datagrams_in_flight_max
                );
                assert_eq!(stats.open_sockets, 1, "{label}");
                assert!(stats.pool_blocks > 0 && stats.pool_bytes > 0, "{label}");
                assert_eq!(stats.failures().count(), 0, "{label}");
                let [entry] = stats.sockets() else {
                    panic!("{label}: one socket expected, got {:?}", stats.sockets());
                };
                assert_eq!(entry.socket, socket);
                assert_eq!(entry.counters.datagrams_sent, 2500, "{label}");
                client.close_socket(socket).unwrap();
                let after = client.stats().unwrap();
                assert_eq!(after.socket_count, 0, "{label}");
                assert_eq!(
                    after.driver.datagrams_sent, 2500,
                    "{label}: driver-wide stays"
                );
                finish_clean(client);
            });
        }
    }
}

/// Cancelling a `SEND` through the harness client, on every front door: its WSK IRPs are
/// cancelled, and the statistics count the cancelled datagrams and those never issued.
#[test]
fn a_cancelled_send_is_counted_by_status() {
    for front_door in FrontDoor::ALL {
        let client = Client::new(backend_with(front_door, CompletionMode::Held));
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sink.local_addr().unwrap();
        // OPEN_SOCKET waits in its dispatch routine for WSK calls the provider holds.
        let socket = releasing(|| client.open_socket(addr(V4)).unwrap().socket);
        let pending = client
            .submit_send(&plain(socket, to, 300), &[], b"x")
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while held_datagrams() < SEND_WINDOW as usize {
            assert!(
                Instant::now() < deadline,
                "{front_door:?}: no window in flight"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        pending.cancel();
        match pending.wait() {
            Err(ClientError::Status(status)) => assert_eq!(status, STATUS_CANCELLED),
            other => panic!("{front_door:?}: {other:?}"),
        }
        assert_eq!(held_datagrams(), 0, "{front_door:?}");
        let stats = client.stats().unwrap();
        let cancelled: Vec<_> = stats
            .failures()
            .filter(|f| f.status == STATUS_CANCELLED)
            .collect();
        assert_eq!(cancelled.len(), 1, "{front_door:?}");
        assert_eq!(cancelled[0].count, u64::from(SEND_WINDOW), "{front_door:?}");
        assert_eq!(
            stats.driver.datagrams_not_sent,
            u64::from(300 - SEND_WINDOW),
            "{front_door:?}"
        );
        client.close_socket(socket).unwrap();
        finish_clean(client);
    }
}

/// A response in version 1's layout has no `datagrams_not_sent`: a version-1 `SEND` whose
/// socket is closed under it reports zero there, where version 2 reports the datagrams never
/// issued.
#[test]
fn responses_follow_the_request_version() {
    for version in [1, 2] {
        let client = Client::speaking(
            Box::new(
                ModelBackend::start(config(
                    FrontDoor::None,
                    CompletionMode::Held,
                    FaultPlan::None,
                ))
                .unwrap(),
            ),
            version,
        );
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sink.local_addr().unwrap();
        let socket = releasing(|| client.open_socket(addr(V4)).unwrap().socket);
        let pending = client
            .submit_send(&plain(socket, to, 100), &[], b"x")
            .unwrap();
        while held_datagrams() < SEND_WINDOW as usize {
            std::thread::sleep(Duration::from_millis(1));
        }
        client.close_socket(socket).unwrap();
        let response = pending.wait().unwrap();
        assert_eq!(response.datagrams_failed, SEND_WINDOW);
        let expected = if version == 1 { 0 } else { 100 - SEND_WINDOW };
        assert_eq!(response.datagrams_not_sent, expected, "version {version}");
        let report = client.finish().unwrap();
        assert!(report.is_clean(), "{report}");
    }
}

/// `QUERY_INFO` claims TOS, ECN and USO only as the provider probe found them: none before the
/// first `OPEN_SOCKET` ran it, then exactly what each socket's features say, on every build
/// the provider imitates.
#[test]
fn capabilities_follow_the_provider_probe() {
    use wskudp_abi::{capability, feature};
    let probed = capability::TOS | capability::ECN | capability::USO;
    for profile in wskudp_kmodel::Profile::ALL {
        let mut config = config(FrontDoor::Kmdf, CompletionMode::Inline, FaultPlan::None);
        config.machine.profile = profile;
        let backend: Box<dyn Backend> = Box::new(ModelBackend::start(config).unwrap());
        let client = Client::new(backend);
        let before = client.info().unwrap().capabilities;
        assert_eq!(
            before & probed,
            0,
            "{}: claimed before the probe",
            profile.name()
        );
        assert_eq!(before, capability::ALL & !probed, "{}", profile.name());
        let socket = client.open_socket(addr(V4)).unwrap();
        let mut expected = capability::ALL & !probed;
        if socket.features & feature::TOS != 0 {
            expected |= capability::TOS | capability::ECN;
        }
        if socket.features & feature::ECN != 0 {
            expected |= capability::ECN;
        }
        if socket.features & feature::USO != 0 {
            expected |= capability::USO;
        }
        assert_eq!(
            client.info().unwrap().capabilities,
            expected,
            "{}: features {:#x}",
            profile.name(),
            socket.features
        );
        // The two ends of the table: everything on Windows 11, nothing on Windows 7.
        match profile {
            wskudp_kmodel::Profile::Windows11 => assert_eq!(expected & probed, probed),
            wskudp_kmodel::Profile::NoSendMessages => assert_eq!(expected & probed, 0),
            _ => {}
        }
        client.close_socket(socket.socket).unwrap();
        finish_clean(client);
    }
}

/// `QUERY_STATS` while the provider holds `N` datagrams, on every front door: `N` in flight now
/// (driver-wide and on the socket), at least `N` at most, both requests in flight, pool in use
/// above what the idle socket holds, driver-wide and the socket's own (each request's batch and
/// payload copy, each held datagram's send operation); once released, nothing in flight, both
/// pools back to their idle values, and the receiver got exactly the datagrams reported sent.
#[test]
fn statistics_while_datagrams_are_held() {
    const FIRST: u32 = 3;
    const SECOND: u32 = 2;
    const HELD: u32 = FIRST + SECOND;
    for front_door in FrontDoor::ALL {
        let client = Client::new(backend_with(front_door, CompletionMode::Held));
        let receiver = receiver(V4).unwrap();
        let to = receiver.local_addr().unwrap();
        let socket = releasing(|| client.open_socket(addr(V4)).unwrap().socket);
        let baseline = client.stats().unwrap();
        assert!(
            baseline.pool_blocks > 0,
            "{front_door:?}: the socket's pool"
        );
        let idle = socket_pool(&baseline);
        assert_eq!(
            idle,
            (0, 0),
            "{front_door:?}: an idle socket's requests hold nothing"
        );
        let first = client
            .submit_send(&plain(socket, to, FIRST), &[], b"held")
            .unwrap();
        let second = client
            .submit_send(&plain(socket, to, SECOND), &[], b"held")
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while held_datagrams() < HELD as usize {
            assert!(Instant::now() < deadline, "{front_door:?}: not all held");
            std::thread::sleep(Duration::from_millis(1));
        }
        let held = client.stats().unwrap();
        assert_counters(&held, (HELD, 2, 0), (HELD, 2), front_door);
        // Two blocks a request (its context and payload buffer) and one a WSK call in flight
        // (its send context), as many as the provider holds IRPs.
        let calls = wskudp_kmodel::held_completions() as u64;
        assert_held_pool(&baseline, &held, 2 * 2 + calls, front_door);
        wskudp_kmodel::release_held(usize::MAX);
        assert_eq!(
            first.wait().unwrap().datagrams_sent,
            FIRST,
            "{front_door:?}"
        );
        assert_eq!(
            second.wait().unwrap().datagrams_sent,
            SECOND,
            "{front_door:?}"
        );
        let after = client.stats().unwrap();
        assert_counters(&after, (0, 0, u64::from(HELD)), (HELD, 2), front_door);
        // The driver keeps the two requests' contexts for the next requests: that much more
        // than idle, no more.
        assert_eq!(
            after.pool_blocks,
            baseline.pool_blocks + 2,
            "{front_door:?}: the pool is the idle socket's and two kept request contexts"
        );
        assert_eq!(
            socket_pool(&after),
            idle,
            "{front_door:?}: the socket's pool is back to idle"
        );
        receive(&receiver, HELD as usize);
        // The same two requests again: everything they need is kept, nothing is allocated.
        assert_eq!(
            allocations_of(&client, || send_released(
                &client,
                socket,
                to,
                &[FIRST, SECOND]
            )),
            0,
            "{front_door:?}: requests on a warm socket allocate no pool, IRP or MDL"
        );
        receive(&receiver, HELD as usize);
        releasing(|| client.close_socket(socket).unwrap());
        finish_clean(client);
    }
}

/// Driver-wide and on the first socket: `(datagrams in flight, requests in flight, datagrams
/// sent)` now, and at least `(datagrams, requests)` in flight at some point.
fn assert_counters(
    stats: &wskudp_abi::StatsResponse,
    (datagrams, requests, sent): (u32, u32, u64),
    (peak_datagrams, peak_requests): (u32, u32),
    front_door: FrontDoor,
) {
    for (what, counters) in [
        ("driver", &stats.driver),
        ("socket", &stats.sockets()[0].counters),
    ] {
        assert_eq!(
            (
                counters.datagrams_in_flight,
                counters.requests_in_flight,
                counters.datagrams_sent
            ),
            (datagrams, requests, sent),
            "{front_door:?} {what}"
        );
        assert!(
            counters.datagrams_in_flight_max >= peak_datagrams
                && counters.requests_in_flight_max >= peak_requests,
            "{front_door:?} {what}"
        );
    }
}

/// `SEND`s of `counts` datagrams on `socket`, all in flight at once, completed by releasing
/// what the provider holds; each sends everything.
fn send_released(client: &Client, socket: u32, to: std::net::SocketAddr, counts: &[u32]) {
    let pending: Vec<_> = counts
        .iter()
        .map(|&count| {
            client
                .submit_send(&plain(socket, to, count), &[], b"held")
                .unwrap()
        })
        .collect();
    for (pending, &count) in pending.into_iter().zip(counts) {
        releasing(|| assert_eq!(pending.wait().unwrap().datagrams_sent, count));
    }
}

/// The pool blocks, IRPs and MDLs the model saw allocated while `work` ran.
fn allocations_of(client: &Client, work: impl FnOnce()) -> u64 {
    let allocations = || client.backend().machine_counters().unwrap().allocations();
    let before = allocations();
    work();
    allocations() - before
}

/// The pool in `held` did not shrink from `baseline`'s, and the first socket's requests hold
/// exactly `blocks` blocks (two a request, one a WSK call in flight), within what the driver
/// holds (pooled: the socket's send contexts and buffers were allocated when it opened).
fn assert_held_pool(
    baseline: &wskudp_abi::StatsResponse,
    held: &wskudp_abi::StatsResponse,
    blocks: u64,
    front_door: FrontDoor,
) {
    assert!(
        held.pool_blocks >= baseline.pool_blocks && held.pool_bytes >= baseline.pool_bytes,
        "{front_door:?}: the held sends' pool: {} blocks, {} bytes (idle: {}, {})",
        held.pool_blocks,
        held.pool_bytes,
        baseline.pool_blocks,
        baseline.pool_bytes
    );
    let (socket_blocks, socket_bytes) = socket_pool(held);
    assert_eq!(socket_blocks, blocks, "{front_door:?}: the socket's pool");
    assert!(
        socket_bytes > 0 && socket_bytes <= held.pool_bytes,
        "{front_door:?}: the socket's {socket_bytes} bytes are within what the driver holds"
    );
}

/// The pool the first socket's requests hold, `(blocks, bytes)`.
fn socket_pool(stats: &wskudp_abi::StatsResponse) -> (u64, u64) {
    let socket = &stats.sockets()[0];
    (socket.pool_blocks, socket.pool_bytes)
}

/// What the client of the release before ABI 2 (`7a9a409^`) sent and got back, byte for byte:
/// its own encoders' output (`git show 7a9a409^:driver/abi/src/send.rs`, `encode_open_socket`,
/// `encode_send`, `encode_close_socket`) and its response layouts (`wire.rs` there), printed by
/// a program built against that release's `wskudp_abi`.
mod golden_v1 {
    /// `encode_open_socket(127.0.0.1:0)`: header `{abi_version: 1, reserved: 0}`, `WireAddr`.
    pub(crate) const OPEN_SOCKET: &str =
        "010000000000000002000000000000007f000001000000000000000000000000";
    /// `OpenSocketResponse {socket: 1, reserved: 0, local: 127.0.0.1:0}`: the socket number
    /// (bytes 0..4) and the port (10..12) vary.
    pub(crate) const OPEN_SOCKET_RESPONSE: &str =
        "010000000000000002000000000000007f000001000000000000000000000000";
    /// `encode_send` of `SendSpec {socket: 1, remote: 127.0.0.1:40000, count: 3}` with the
    /// payload `b"golden v1"` in one segment; the socket (bytes 8..12) and the port (18..20,
    /// little-endian, as that `WireAddr` stored it) are patched to the real ones.
    pub(crate) const SEND: &str = concat!(
        "0100000000000000010000000000000002004",
        "09c000000007f000001000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000300000000000000090000000000000067",
        "6f6c64656e207631"
    );
    /// `SendResponse {status: 0, datagrams_sent: 3, datagrams_failed: 0, reserved: 0,
    /// bytes_sent: 27}`.
    pub(crate) const SEND_RESPONSE: &str = "000000000300000000000000000000001b00000000000000";
    /// `encode_close_socket(1)`; the socket (bytes 8..12) is patched.
    pub(crate) const CLOSE_SOCKET: &str = "01000000000000000100000000000000";
    /// That release's IOCTL codes: `QUERY_INFO`, `OPEN_SOCKET`, `CLOSE_SOCKET`, `SEND`,
    /// `DESCRIBE_SEND`.
    pub(crate) const CODES: [u32; 5] = [0x12_6000, 0x12_a004, 0x12_a008, 0x12_a00c, 0x12_a010];
    /// `size_of::<InfoResponse>()` and `size_of::<DescribeSendResponse>()` there.
    pub(crate) const INFO_LEN: usize = 48;
    pub(crate) const DESCRIBE_LEN: usize = 304;

    pub(crate) fn bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }
}

/// This driver, on every front door, given exactly the bytes the version-1 client sent, answers
/// exactly what that client decoded: `QUERY_INFO` in 48 bytes with the fields it read where it
/// read them, `OPEN_SOCKET`'s response in its layout, `SEND`'s response byte for byte, and the
/// datagrams arrive.
#[test]
fn version_1_golden_bytes_are_served_unchanged() {
    use golden_v1::{CODES, bytes};
    let [query_info, open_socket, close_socket, send, describe_send] = CODES;
    assert_eq!(
        [query_info, open_socket, close_socket, send, describe_send],
        [
            Ioctl::QueryInfo.code(),
            Ioctl::OpenSocket.code(),
            Ioctl::CloseSocket.code(),
            Ioctl::Send.code(),
            Ioctl::DescribeSend.code()
        ],
        "an IOCTL code changed"
    );
    for front_door in FrontDoor::ALL {
        let client = Client::speaking(backend(front_door, None), 1);
        let raw = |code: u32, input: &[u8], output: usize| {
            let (status, output) = client.raw(code, input, output).unwrap();
            assert_eq!(status, STATUS_SUCCESS, "{front_door:?}: {code:#x}");
            output
        };
        // QUERY_INFO: no input, a 48-byte buffer; the limits the old client read, in place.
        // `max_payload` grew from 65 507 to 65 527 (IPv6's largest, commit 155542d): that only
        // widens what the old client may send, and its own encoder stops at 65 507.
        let info = raw(query_info, &[], golden_v1::INFO_LEN);
        assert_eq!(info.len(), golden_v1::INFO_LEN, "{front_door:?}");
        let field =
            |offset: usize| u32::from_le_bytes(info[offset..offset + 4].try_into().unwrap());
        assert_eq!(
            [field(24), field(28), field(36), field(40)],
            [64, 32, 1024, 128],
            "{front_door:?}: max_sockets, max_segments, max_count, control_capacity"
        );
        assert!(field(32) >= 65_507, "{front_door:?}: max_payload shrank");
        // OPEN_SOCKET.
        let opened = raw(open_socket, &bytes(golden_v1::OPEN_SOCKET), 32);
        let mut expected = bytes(golden_v1::OPEN_SOCKET_RESPONSE);
        expected[0..4].copy_from_slice(&opened[0..4]);
        expected[10..12].copy_from_slice(&opened[10..12]);
        assert_eq!(opened, expected, "{front_door:?}: OPEN_SOCKET response");
        assert_ne!(&opened[10..12], &[0, 0], "{front_door:?}: no port bound");
        // SEND and DESCRIBE_SEND of the same request, to a real receiver.
        let rx = receiver(V4).unwrap();
        let port = rx.local_addr().unwrap().port();
        let mut request = bytes(golden_v1::SEND);
        request[8..12].copy_from_slice(&opened[0..4]);
        request[18..20].copy_from_slice(&port.to_le_bytes());
        let described = raw(describe_send, &request, golden_v1::DESCRIBE_LEN);
        assert_eq!(described.len(), golden_v1::DESCRIBE_LEN, "{front_door:?}");
        let word =
            |offset: usize| u32::from_le_bytes(described[offset..offset + 4].try_into().unwrap());
        assert_eq!(
            [word(4), word(8), word(12)],
            [16, 9, 1],
            "{front_door:?}: DESCRIBE_SEND remote_len, payload_len, mdl_count"
        );
        let response = raw(send, &request, 24);
        assert_eq!(response, bytes(golden_v1::SEND_RESPONSE), "{front_door:?}");
        let arrivals = receive(&rx, 3);
        assert!(arrivals.iter().all(|a| a.payload == b"golden v1"));
        // CLOSE_SOCKET: no output.
        let mut close = bytes(golden_v1::CLOSE_SOCKET);
        close[8..12].copy_from_slice(&opened[0..4]);
        assert!(raw(close_socket, &close, 0).is_empty(), "{front_door:?}");
        finish_clean(client);
    }
}
