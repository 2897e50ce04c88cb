//! The send path against real loopback receivers: bytes, lengths, source addresses and every
//! control message, for IPv4 and IPv6, one MDL or many, in every completion mode.

mod common;

use std::net::{IpAddr, Ipv6Addr};

use common::{V4, V6, addr, client, finish_clean, modes, plain, receive, receiver};
use wskudp_abi::{Ecn, SendSpec, status};
use wskudp_harness::pattern;

/// One datagram, several MDL layouts, both families, every completion mode.
#[test]
fn payload_arrives_intact_through_any_mdl_chain() {
    let layouts: [&[u32]; 4] = [&[], &[1000], &[1, 998, 1], &[100; 10]];
    for mode in modes() {
        for local in [V4, V6] {
            let Some(rx) = receiver(local) else { continue };
            let client = client(mode);
            let socket = client.open_socket(addr(local)).unwrap();
            let payload = pattern(1000);
            for segments in layouts {
                let response = client
                    .send(
                        &plain(socket.socket, rx.local_addr().unwrap(), 1),
                        segments,
                        &payload,
                    )
                    .unwrap();
                assert_eq!(
                    response.status,
                    status::STATUS_SUCCESS,
                    "{mode:?} {local} {segments:?}"
                );
                assert_eq!((response.datagrams_sent, response.bytes_sent), (1, 1000));
                let arrival = &receive(&rx, 1)[0];
                assert_eq!(arrival.payload, payload, "{mode:?} {local} {segments:?}");
                assert_eq!(arrival.source, socket.local.socket_addr().unwrap());
            }
            client.close_socket(socket.socket).unwrap();
            finish_clean(client);
        }
    }
}

#[test]
fn count_sends_that_many_copies_concurrently() {
    for mode in modes() {
        let rx = receiver(V4).unwrap();
        let client = client(mode);
        let socket = client.open_socket(addr(V4)).unwrap();
        let payload = pattern(333);
        let response = client
            .send(
                &plain(socket.socket, rx.local_addr().unwrap(), 128),
                &[111, 222],
                &payload,
            )
            .unwrap();
        assert_eq!(
            (
                response.status,
                response.datagrams_sent,
                response.datagrams_failed
            ),
            (0, 128, 0)
        );
        assert_eq!(response.bytes_sent, 128 * 333);
        let arrivals = receive(&rx, 128);
        assert!(arrivals.iter().all(|a| a.payload == payload));
        finish_clean(client);
    }
}

#[test]
fn source_address_is_the_requested_one() {
    for mode in modes() {
        let rx = receiver(V4).unwrap();
        let client = client(mode);
        let socket = client.open_socket(addr("0.0.0.0:0")).unwrap();
        for source in ["127.0.0.2", "127.1.2.3"] {
            let spec = SendSpec {
                source: Some(source.parse().unwrap()),
                ..plain(socket.socket, rx.local_addr().unwrap(), 1)
            };
            assert_eq!(
                client.send(&spec, &[], b"from elsewhere").unwrap().status,
                0
            );
            let arrival = &receive(&rx, 1)[0];
            assert_eq!(arrival.source.ip(), source.parse::<IpAddr>().unwrap());
            assert_eq!(arrival.source.port(), socket.local.port);
            assert_eq!(arrival.destination, Some(rx.local_addr().unwrap().ip()));
        }
        finish_clean(client);
    }
}

#[test]
fn ipv6_source_address_is_applied() {
    let Some(rx) = receiver(V6) else { return };
    let client = client(common::modes()[1]);
    let socket = client.open_socket(addr("[::]:0")).unwrap();
    let to = rx.local_addr().unwrap();
    let spec = SendSpec {
        source: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ..plain(socket.socket, to, 1)
    };
    assert_eq!(
        client.send(&spec, &[3, 7], b"v6 pktinfo").unwrap().status,
        0
    );
    assert_eq!(
        receive(&rx, 1)[0].source.ip(),
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    );
    // A source the host does not own is refused by the stack: proof the option reaches it.
    let foreign = SendSpec {
        source: Some("2001:db8::1".parse().unwrap()),
        ..plain(socket.socket, to, 1)
    };
    let response = client.send(&foreign, &[], b"x").unwrap();
    assert_eq!(response.status, status::STATUS_INVALID_PARAMETER);
    assert_eq!((response.datagrams_sent, response.datagrams_failed), (0, 1));
    finish_clean(client);
}

/// TOS / traffic class and ECN, alone and together: ECN sets the two low bits.
#[test]
fn tos_and_ecn_reach_the_wire() {
    let cases = [
        (Some(0xB8), None, 0xB8),
        (None, Some(Ecn::Ect0), 0x02),
        (None, Some(Ecn::Ect1), 0x01),
        (Some(0xB8), Some(Ecn::Ce), 0xBB),
        (Some(0x03), Some(Ecn::NotEct), 0x00),
    ];
    for local in [V4, V6] {
        let Some(rx) = receiver(local) else { continue };
        let client = client(common::modes()[0]);
        let socket = client.open_socket(addr(local)).unwrap();
        for (tos, ecn, wire) in cases {
            let spec = SendSpec {
                tos,
                ecn,
                ..plain(socket.socket, rx.local_addr().unwrap(), 1)
            };
            assert_eq!(client.send(&spec, &[], b"marked").unwrap().status, 0);
            assert_eq!(
                receive(&rx, 1)[0].tos,
                Some(wire),
                "{local} tos {tos:?} ecn {ecn:?}"
            );
        }
        finish_clean(client);
    }
}

/// `UDP_SEND_MSG_SIZE`: one send leaves as datagrams of the segment size, the last one
/// shorter.
#[test]
fn uso_segments_the_payload() {
    for local in [V4, V6] {
        let Some(rx) = receiver(local) else { continue };
        let client = client(common::modes()[1]);
        let socket = client.open_socket(addr(local)).unwrap();
        let payload = pattern(2500);
        let spec = SendSpec {
            uso_segment_size: Some(1000),
            ..plain(socket.socket, rx.local_addr().unwrap(), 1)
        };
        let response = client.send(&spec, &[500, 2000], &payload).unwrap();
        assert_eq!((response.status, response.bytes_sent), (0, 2500));
        let arrivals = receive(&rx, 3);
        let sizes: Vec<usize> = arrivals.iter().map(|a| a.payload.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let joined: Vec<u8> = arrivals.iter().flat_map(|a| a.payload.clone()).collect();
        assert_eq!(joined, payload);
        finish_clean(client);
    }
}

/// All options at once, in both families.
#[test]
fn every_option_together() {
    for (local, source) in [(V4, "127.0.0.9"), (V6, "::1")] {
        let Some(rx) = receiver(local) else { continue };
        let client = client(common::modes()[2]);
        let socket = client.open_socket(addr(local)).unwrap();
        let spec = SendSpec {
            source: Some(source.parse().unwrap()),
            tos: Some(0x28),
            ecn: Some(Ecn::Ect1),
            uso_segment_size: Some(700),
            ..plain(socket.socket, rx.local_addr().unwrap(), 3)
        };
        let payload = pattern(1400);
        let response = client.send(&spec, &[7, 693, 700], &payload).unwrap();
        assert_eq!((response.status, response.datagrams_sent), (0, 3));
        let arrivals = receive(&rx, 6);
        for arrival in &arrivals {
            assert_eq!(arrival.payload.len(), 700);
            assert_eq!(arrival.source.ip(), source.parse::<IpAddr>().unwrap());
            assert_eq!(arrival.tos, Some(0x29));
        }
        finish_clean(client);
    }
}

/// `DESCRIBE_SEND` returns the exact `WskSendTo` arguments, built here independently from the
/// `ws2def.h` rules.
#[test]
fn describe_send_returns_the_exact_wsksendto_arguments() {
    let client = client(common::modes()[0]);
    let socket = client.open_socket(addr(V4)).unwrap();
    let spec = SendSpec {
        source: Some("127.0.0.2".parse().unwrap()),
        tos: Some(0xB8),
        ecn: Some(Ecn::Ce),
        uso_segment_size: Some(400),
        ..plain(socket.socket, addr("127.0.0.1:4660"), 1)
    };
    let described = client
        .describe_send(&spec, &[200, 600, 400], &pattern(1200))
        .unwrap();
    // cmsg_len (SIZE_T), level (INT), type (INT), data, zero padding to 8.
    let header = |len: u64, level: i32, ty: i32| -> Vec<u8> {
        [
            len.to_le_bytes().as_slice(),
            &level.to_le_bytes(),
            &ty.to_le_bytes(),
        ]
        .concat()
    };
    let mut expected = header(16 + 8, 0, 19); // IPPROTO_IP, IP_PKTINFO, IN_PKTINFO
    expected.extend([127, 0, 0, 2, 0, 0, 0, 0]);
    expected.extend(header(16 + 4, 0, 3)); // IP_TOS, INT
    expected.extend([0xB8, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend(header(16 + 4, 0, 50)); // IP_ECN, INT
    expected.extend([3, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend(header(16 + 4, 17, 2)); // IPPROTO_UDP, UDP_SEND_MSG_SIZE, DWORD
    expected.extend([0x90, 0x01, 0, 0, 0, 0, 0, 0]);
    assert_eq!(described.control_bytes(), expected);
    assert_eq!(described.control_len, 96);
    // SOCKADDR_IN: AF_INET, port 4660 (0x1234) big-endian, 127.0.0.1, zero.
    assert_eq!(
        described.remote_bytes(),
        [2, 0, 0x12, 0x34, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(described.mdl_lengths(), [200, 600, 400]);
    assert_eq!(described.payload_len, 1200);
    // Nothing was sent.
    let report = finish_clean(client);
    assert_eq!(report.stats.datagrams_sent, 0);
}

#[test]
fn describe_send_ipv6_uses_the_ipv6_options_and_sockaddr_in6() {
    let client = client(common::modes()[0]);
    let socket = client.open_socket(addr("[::1]:0")).unwrap();
    let spec = SendSpec {
        source: Some("::1".parse().unwrap()),
        tos: Some(1),
        ..plain(socket.socket, addr("[::1]:53"), 1)
    };
    let described = client.describe_send(&spec, &[], b"abc").unwrap();
    let control = described.control_bytes();
    assert_eq!(control.len(), 40 + 24);
    assert_eq!(
        &control[..16],
        [36, 0, 0, 0, 0, 0, 0, 0, 41, 0, 0, 0, 19, 0, 0, 0]
    ); // IPV6_PKTINFO
    assert_eq!(&control[36..40], [0, 0, 0, 0]); // padding after IN6_PKTINFO
    assert_eq!(
        &control[40..56],
        [20, 0, 0, 0, 0, 0, 0, 0, 41, 0, 0, 0, 39, 0, 0, 0]
    ); // IPV6_TCLASS
    let remote = described.remote_bytes();
    assert_eq!(remote.len(), 28);
    assert_eq!(&remote[..4], [23, 0, 0, 53]);
    assert_eq!(remote[23], 1);
    finish_clean(client);
}

#[test]
fn sends_to_a_closed_port_still_succeed_like_udp() {
    let client = client(common::modes()[1]);
    let socket = client.open_socket(addr(V4)).unwrap();
    // Nobody listens on port 9 (discard) here; UDP does not know.
    let response = client
        .send(&plain(socket.socket, addr("127.0.0.1:9"), 5), &[], b"void")
        .unwrap();
    assert_eq!((response.status, response.datagrams_sent), (0, 5));
    finish_clean(client);
}

/// The allocation budget of the send path, exactly: per datagram one context, one IRP and one
/// MDL per segment; per request one batch and one payload copy.
#[test]
fn allocations_per_datagram_are_bounded() {
    let rx = receiver(V4).unwrap();
    let client = client(common::modes()[0]);
    let socket = client.open_socket(addr(V4)).unwrap();
    let response = client
        .send(
            &plain(socket.socket, rx.local_addr().unwrap(), 64),
            &[10, 20, 30],
            &pattern(60),
        )
        .unwrap();
    assert_eq!(response.datagrams_sent, 64);
    receive(&rx, 64);
    client.close_socket(socket.socket).unwrap();
    let report = finish_clean(client);
    // Everything the run allocated, minus what loading, opening and closing cost: the driver
    // state (1 pool), the socket entry (1 pool), 4 socket IRPs (create, bind, local address,
    // and the close IRP preallocated at open).
    let stats = report.stats;
    assert_eq!(
        stats.pool_allocations - 2,
        64 + 2,
        "pool: 1 per datagram + batch + payload"
    );
    assert_eq!(stats.irp_allocations - 4, 64, "IRPs: 1 per datagram");
    assert_eq!(
        stats.mdl_allocations,
        64 * 3,
        "MDLs: 1 per segment per datagram"
    );
}
