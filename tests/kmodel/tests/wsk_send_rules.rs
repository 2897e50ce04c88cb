//! The provider reads control buffers and socket addresses with its own decoder, by Windows'
//! rules: every buffer here is built byte by byte (`common::cmsg`), never by core's encoder,
//! and every accepted send is checked on the wire by a Linux receiver.
#![allow(clippy::undocumented_unsafe_blocks, missing_docs)]

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use common::*;
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use wskudp_kmodel::{Config, Profile};

/// Sends `control` (with `ControlInfoLength` = `len` or its length) on a bound IPv4 socket
/// to a receiver: the IRP status and what arrived.
fn v4_send(
    socket: Socket,
    rx: &Receiver,
    control: &[u8],
    len: Option<u32>,
) -> (NTSTATUS, Option<Arrival>) {
    let (status, _) = socket.send(Some(rx.addr()), b"payload", control, len);
    let arrival = (status == STATUS_SUCCESS).then(|| rx.recv().expect("datagram"));
    (status, arrival)
}

#[test]
fn malformed_control_buffers_are_refused() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let tos = cmsg(IPPROTO_IP, IP_TOS, &int(0xB8));
    assert_eq!(tos.len(), 24);

    // The padded total: accepted, the TOS byte on the wire.
    let (status, arrival) = v4_send(socket, &rx, &tos, None);
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(arrival.unwrap().tos, Some(0xB8));
    // The last cmsg_len instead of the padded total (wireguard-nt 19ab593).
    assert_eq!(
        v4_send(socket, &rx, &tos, Some(20)).0,
        STATUS_INVALID_PARAMETER
    );
    // cmsg_len below the header: NXTHDR could not advance.
    let mut short = tos.clone();
    short[..8].copy_from_slice(&8_u64.to_le_bytes());
    assert_eq!(
        v4_send(socket, &rx, &short, None).0,
        STATUS_INVALID_PARAMETER
    );
    // cmsg_len past ControlInfoLength.
    let mut long = tos;
    long[..8].copy_from_slice(&40_u64.to_le_bytes());
    assert_eq!(
        v4_send(socket, &rx, &long, None).0,
        STATUS_INVALID_PARAMETER
    );
    // IP_TOS with one byte of data instead of an INT.
    let byte = cmsg(IPPROTO_IP, IP_TOS, &[0xB8]);
    assert_eq!(
        v4_send(socket, &rx, &byte, None).0,
        STATUS_INVALID_PARAMETER
    );
    // IN_PKTINFO of the wrong size.
    let pktinfo = cmsg(IPPROTO_IP, IP_PKTINFO, &[127, 0, 0, 1]);
    assert_eq!(
        v4_send(socket, &rx, &pktinfo, None).0,
        STATUS_INVALID_PARAMETER
    );
    // A type the stack does not know.
    let unknown = cmsg(IPPROTO_IP, 99, &int(1));
    assert_eq!(
        v4_send(socket, &rx, &unknown, None).0,
        STATUS_INVALID_PARAMETER
    );
    // A TOS out of range.
    let big = cmsg(IPPROTO_IP, IP_TOS, &int(256));
    assert_eq!(v4_send(socket, &rx, &big, None).0, STATUS_INVALID_PARAMETER);

    socket.close();
    let report = finish_clean(machine, client);
    assert_eq!(report.stats.datagrams_sent, 1);
}

#[test]
fn tos_ecn_source_and_no_ops_reach_the_wire() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let sent = |control: &[u8]| {
        let (status, arrival) = v4_send(socket, &rx, control, None);
        assert_eq!(status, STATUS_SUCCESS);
        arrival.unwrap()
    };
    // ECN folds into the low two bits of the TOS byte (Linux has no ECN cmsg).
    let both = [
        cmsg(IPPROTO_IP, IP_TOS, &int(0xB8)),
        cmsg(IPPROTO_IP, IP_ECN, &int(1)),
    ]
    .concat();
    assert_eq!(sent(&both).tos, Some(0xB9));
    let ect0 = cmsg(IPPROTO_IP, IP_ECN, &int(2));
    assert_eq!(sent(&ect0).tos, Some(0x02));
    // A later message of a type replaces an earlier one.
    let twice = [
        cmsg(IPPROTO_IP, IP_TOS, &int(1)),
        cmsg(IPPROTO_IP, IP_TOS, &int(0x20)),
    ]
    .concat();
    assert_eq!(sent(&twice).tos, Some(0x20));
    // An IPv6 message on an IPv4 datagram is not looked at.
    let v6 = cmsg(IPPROTO_IPV6, IPV6_TCLASS, &int(0x28));
    assert_eq!(sent(&v6).tos, Some(0));
    // IN_PKTINFO picks the source; wireguard-nt's trailing empty IP_OPTIONS is a no-op.
    let source = [
        cmsg(
            IPPROTO_IP,
            IP_PKTINFO,
            &in_pktinfo(Ipv4Addr::new(127, 0, 0, 7), 0),
        ),
        cmsg(IPPROTO_IP, IP_OPTIONS, &[]),
    ]
    .concat();
    assert_eq!(source.len(), 24 + 16);
    assert_eq!(sent(&source).from.ip(), ip("127.0.0.7"));
    // Windows' default TTL, 128, without any option.
    assert_eq!(sent(&[]).ttl, Some(128));

    // CE may not be sent ("The send will return with error WSAEINVAL"); nor a value past CE.
    let ce = cmsg(IPPROTO_IP, IP_ECN, &int(3));
    assert_eq!(v4_send(socket, &rx, &ce, None).0, STATUS_INVALID_PARAMETER);
    let four = cmsg(IPPROTO_IP, IP_ECN, &int(4));
    assert_eq!(
        v4_send(socket, &rx, &four, None).0,
        STATUS_INVALID_PARAMETER
    );
    // No per-datagram IP_TTL on send (not among WSAMSG's IPv4 control data).
    let ttl = cmsg(IPPROTO_IP, IP_TTL, &int(9));
    assert_eq!(v4_send(socket, &rx, &ttl, None).0, STATUS_INVALID_PARAMETER);

    socket.close();
    finish_clean(machine, client);
}

#[test]
fn stray_bytes_and_dirty_padding_are_reported() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    // Eight bytes after the last message: NXTHDR skips them, the datagram goes out.
    let mut stray = cmsg(IPPROTO_IP, IP_TOS, &int(0x10));
    stray.extend([0; 8]);
    let (status, arrival) = v4_send(socket, &rx, &stray, None);
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(arrival.unwrap().tos, Some(0x10));
    let mut dirty = cmsg(IPPROTO_IP, IP_TOS, &int(0x10));
    dirty[23] = 0xAA;
    assert_eq!(v4_send(socket, &rx, &dirty, None).0, STATUS_SUCCESS);
    socket.close();
    let report = finish(machine, client);
    assert_eq!(rules(&report), ["CmsgStrayBytes", "CmsgPaddingNotZero"]);
}

#[test]
fn ipv6_traffic_class_hop_limit_and_source() {
    if !has_ipv6() {
        eprintln!("no IPv6 loopback: skipped");
        return;
    }
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "[::1]:0".parse().unwrap());
    let rx = Receiver::bind("[::1]:0");
    let control = [
        cmsg(
            IPPROTO_IPV6,
            IPV6_PKTINFO,
            &in6_pktinfo(Ipv6Addr::LOCALHOST, 0),
        ),
        cmsg(IPPROTO_IPV6, IPV6_TCLASS, &int(0x28)),
        cmsg(IPPROTO_IPV6, IPV6_ECN, &int(2)),
        cmsg(IPPROTO_IPV6, IPV6_HOPLIMIT, &int(7)),
    ]
    .concat();
    assert_eq!(control.len(), 40 + 3 * 24);
    let (status, information) = socket.send(Some(rx.addr()), b"six", &control, None);
    assert_eq!((status, information), (STATUS_SUCCESS, 3));
    let arrival = rx.recv().unwrap();
    assert_eq!(arrival.from.ip(), ip("::1"));
    assert_eq!(arrival.tos, Some(0x2A));
    assert_eq!(arrival.ttl, Some(7));
    // IN_PKTINFO on an IPv6 datagram is not looked at.
    let v4 = cmsg(IPPROTO_IP, IP_PKTINFO, &in_pktinfo(Ipv4Addr::LOCALHOST, 0));
    assert_eq!(
        socket.send(Some(rx.addr()), b"x", &v4, None).0,
        STATUS_SUCCESS
    );
    assert_eq!(rx.recv().unwrap().ttl, Some(128));
    // Sizes: 65527 bytes is the largest IPv6 payload, 65507 the largest IPv4 one.
    let big = vec![7_u8; 65_527];
    assert_eq!(socket.send_to(rx.addr(), &big), STATUS_SUCCESS);
    assert_eq!(rx.recv().unwrap().payload.len(), 65_527);
    let too_big = vec![7_u8; 65_528];
    assert_eq!(
        socket.send_to(rx.addr(), &too_big),
        STATUS_INVALID_BUFFER_SIZE
    );
    socket.close();
    let v4_socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx4 = Receiver::bind("127.0.0.1:0");
    assert_eq!(
        v4_socket.send_to(rx4.addr(), &big[..65_508]),
        STATUS_INVALID_BUFFER_SIZE
    );
    assert_eq!(
        v4_socket.send_to(rx4.addr(), &big[..65_507]),
        STATUS_SUCCESS
    );
    assert_eq!(rx4.recv().unwrap().payload.len(), 65_507);
    v4_socket.close();
    finish_clean(machine, client);
}

#[test]
fn udp_send_msg_size_segments_and_single_segment_is_refused() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let uso = |size: u32| cmsg(IPPROTO_UDP, UDP_SEND_MSG_SIZE, &size.to_le_bytes());
    let payload: Vec<u8> = (0..2500_u32).map(|i| (i % 251) as u8).collect();
    let (status, information) = socket.send(Some(rx.addr()), &payload, &uso(1000), None);
    assert_eq!((status, information), (STATUS_SUCCESS, 2500));
    let sizes: Vec<usize> = (0..3).map(|_| rx.recv().unwrap().payload.len()).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    // One segment (size >= payload): refused on some Windows configurations (firezone PR
    // 11580), so quinn and msquic leave the message off.
    assert_eq!(
        socket.send(Some(rx.addr()), &payload, &uso(2500), None).0,
        STATUS_INVALID_PARAMETER
    );
    assert_eq!(
        socket.send(Some(rx.addr()), &payload, &uso(0), None).0,
        STATUS_INVALID_PARAMETER
    );
    socket.close();
    let report = finish_clean(machine, client);
    assert_eq!(report.stats.datagrams_sent, 3);
}

#[test]
fn dual_stack_socket_sends_to_ipv4_with_in_pktinfo() {
    if !has_ipv6() {
        eprintln!("no IPv6: skipped");
        return;
    }
    let (machine, client) = boot(Profile::default());
    let rx = Receiver::bind("127.0.0.1:0");
    let mapped = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port())),
        SocketAddr::V6(_) => addr,
    };
    // IPv6-only by default, as on Windows: a v4-mapped destination does not go out.
    let only = Socket::new(&client, AF_INET6);
    assert_eq!(only.get(IPPROTO_IPV6, IPV6_V6ONLY), Ok(1));
    assert_eq!(only.bind("[::]:0".parse().unwrap()), STATUS_SUCCESS);
    assert_ne!(only.send_to(mapped(rx.addr()), b"x"), STATUS_SUCCESS);
    // IPV6_V6ONLY only before bind.
    assert_eq!(
        only.set(IPPROTO_IPV6, IPV6_V6ONLY, 0),
        STATUS_INVALID_PARAMETER
    );
    only.close();

    let dual = Socket::new(&client, AF_INET6);
    assert_eq!(dual.set(IPPROTO_IPV6, IPV6_V6ONLY, 0), STATUS_SUCCESS);
    assert_eq!(dual.get(IPPROTO_IPV6, IPV6_V6ONLY), Ok(0));
    assert_eq!(dual.bind("[::]:0".parse().unwrap()), STATUS_SUCCESS);
    // For an IPv4 destination the source goes in an IN_PKTINFO at IPPROTO_IP (WSASendMsg),
    // and IPPROTO_IP's TOS applies; IPv6 messages are not looked at.
    let control = [
        cmsg(
            IPPROTO_IP,
            IP_PKTINFO,
            &in_pktinfo(Ipv4Addr::new(127, 0, 0, 7), 0),
        ),
        cmsg(IPPROTO_IP, IP_TOS, &int(0x28)),
        cmsg(IPPROTO_IPV6, IPV6_TCLASS, &int(0x48)),
        cmsg(
            IPPROTO_IPV6,
            IPV6_PKTINFO,
            &in6_pktinfo(Ipv6Addr::LOCALHOST, 0),
        ),
    ]
    .concat();
    assert_eq!(
        dual.send(Some(mapped(rx.addr())), b"dual", &control, None)
            .0,
        STATUS_SUCCESS
    );
    let arrival = rx.recv().unwrap();
    assert_eq!(arrival.from.ip(), ip("127.0.0.7"));
    assert_eq!(arrival.tos, Some(0x28));
    assert_eq!(arrival.payload, b"dual");
    // A SOCKADDR_IN on an AF_INET6 socket is not the socket's family.
    assert_ne!(dual.send_to(rx.addr(), b"x"), STATUS_SUCCESS);
    dual.close();
    finish_clean(machine, client);
}

#[test]
fn local_address_is_written_as_a_sockaddr() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let local = socket.local();
    assert_eq!(local.ip(), ip("127.0.0.1"));
    let rx = Receiver::bind("127.0.0.1:0");
    assert_eq!(socket.send_to(rx.addr(), b"x"), STATUS_SUCCESS);
    assert_eq!(rx.recv().unwrap().from, local);
    socket.close();
    finish_clean(machine, client);
}

#[test]
fn unbound_socket_cannot_send() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::new(&client, AF_INET);
    let rx = Receiver::bind("127.0.0.1:0");
    assert_eq!(socket.send_to(rx.addr(), b"x"), STATUS_INVALID_PARAMETER);
    socket.close();
    finish_clean(machine, client);
}

#[test]
fn profiles_decide_which_messages_a_send_takes() {
    let cases: [(Profile, u32, u32, &[u8], NTSTATUS); 6] = [
        (
            Profile::NoUso,
            IPPROTO_UDP,
            UDP_SEND_MSG_SIZE,
            &100_u32.to_le_bytes(),
            STATUS_INVALID_PARAMETER,
        ),
        (
            Profile::NoTclassOnSend,
            IPPROTO_IP,
            IP_TOS,
            &[0x20, 0, 0, 0],
            STATUS_INVALID_PARAMETER,
        ),
        (
            Profile::NoTclassOnSend,
            IPPROTO_IP,
            IP_ECN,
            &[1, 0, 0, 0],
            STATUS_SUCCESS,
        ),
        (
            Profile::NoSendMessages,
            IPPROTO_IP,
            IP_ECN,
            &[1, 0, 0, 0],
            STATUS_INVALID_PARAMETER,
        ),
        (
            Profile::Server2022,
            IPPROTO_UDP,
            UDP_SEND_MSG_SIZE,
            &100_u32.to_le_bytes(),
            STATUS_SUCCESS,
        ),
        (
            Profile::Windows11,
            IPPROTO_IP,
            IP_TOS,
            &[0x20, 0, 0, 0],
            STATUS_SUCCESS,
        ),
    ];
    for (profile, level, ty, data, expected) in cases {
        let (machine, client) = boot(profile);
        let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
        let rx = Receiver::bind("127.0.0.1:0");
        let (status, _) = socket.send(Some(rx.addr()), &[1; 300], &cmsg(level, ty, data), None);
        assert_eq!(status, expected, "{profile:?} level {level} type {ty}");
        if status == STATUS_SUCCESS {
            assert!(rx.recv().is_some());
        }
        socket.close();
        finish_clean(machine, client);
    }
}

#[test]
fn every_profile_rule_has_a_source_and_an_outcome_per_profile() {
    let rules = wskudp_kmodel::profile::rules();
    assert!(rules.len() > 20);
    for rule in &rules {
        assert!(!rule.source.is_empty(), "{}", rule.behaviour);
        let profiles: Vec<Profile> = rule.outcomes.iter().map(|(p, _)| *p).collect();
        assert_eq!(profiles, Profile::ALL, "{}", rule.behaviour);
    }
    let table = wskudp_kmodel::profile::profiles_table();
    assert_eq!(table.lines().count(), rules.len() + 2);
    for profile in Profile::ALL {
        assert!(table.lines().next().unwrap().contains(profile.name()));
    }
    assert_eq!(Profile::default(), Profile::Windows11);
    assert_eq!(Config::default().profile, Profile::Windows11);
}

#[test]
fn misaligned_control_info_is_reported() {
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let tos = cmsg(IPPROTO_IP, IP_TOS, &int(0x10));
    let (status, _) = socket.send_at(Some(rx.addr()), b"x", &tos, None, 4);
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(rx.recv().unwrap().tos, Some(0x10));
    socket.close();
    let report = finish(machine, client);
    assert_eq!(rules(&report), ["CmsgMisaligned"]);
}

/// An IPv6 link-local address of this host and its interface index, if it has one.
fn link_local() -> Option<(Ipv6Addr, u32)> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|interface| {
        let address = interface.address?;
        let v6 = address.as_sockaddr_in6()?;
        let ip = v6.ip();
        ip.is_unicast_link_local().then(|| {
            Some((
                ip,
                nix::net::if_::if_nametoindex(interface.interface_name.as_str()).ok()?,
            ))
        })?
    })
}

#[test]
fn link_local_destination_takes_its_scope_id() {
    let Some((address, index)) = link_local() else {
        eprintln!("no IPv6 link-local address: skipped");
        return;
    };
    let (machine, client) = boot(Profile::default());
    let socket = Socket::bound(&client, "[::]:0".parse().unwrap());
    let rx = Receiver(
        std::net::UdpSocket::bind(SocketAddr::V6(std::net::SocketAddrV6::new(
            address, 0, 0, index,
        )))
        .unwrap(),
    );
    rx.0.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let port = rx.addr().port();
    // sin6_scope_id carries the interface index (host order).
    let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(address, port, 0, index));
    assert_eq!(socket.send_to(scoped, b"link"), STATUS_SUCCESS);
    assert_eq!(rx.recv().unwrap().payload, b"link");
    // A zone that does not exist does not route: the scope id reaches the stack.
    let nowhere = SocketAddr::V6(std::net::SocketAddrV6::new(address, port, 0, 0xFFFF));
    assert_ne!(socket.send_to(nowhere, b"x"), STATUS_SUCCESS);
    socket.close();
    finish_clean(machine, client);
}
