//! Scenarios for addressing and send options by Windows' rules.
//!
//! Dual-stack, a socket's fixed destination, interfaces, broadcast, multicast, hop limit and
//! sizes, each against real loopback receivers. What a host's loopback cannot carry (IPv6 multicast on Linux's `lo`, which has
//! no MULTICAST flag) is reported as skipped, never as passed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use wskudp_abi::status::{
    STATUS_ACCESS_DENIED, STATUS_INVALID_ADDRESS_COMPONENT, STATUS_INVALID_BUFFER_SIZE,
    STATUS_INVALID_PARAMETER, STATUS_NETWORK_UNREACHABLE,
};
use wskudp_abi::{OpenSocketRequest, SendSpec, SocketOption};

use crate::client::{Client, ClientError};
use crate::receiver::Receiver;
use crate::scenarios::{
    Expect, Failure, Marks, addr, ensure, error, expect_arrivals, plain, receive, receiver,
    receiver_or_skip, sent_ok, skips, source_of,
};
use crate::{TEST_IFACE_VAR, TestInterface, loopback_index, pattern, test_interface};

/// The status a refused request completed with.
fn refusal<T: std::fmt::Debug>(result: Result<T, ClientError>) -> Result<i32, Failure> {
    match result {
        Err(ClientError::Status(status)) => Ok(status),
        other => Err(format!("expected a refusal, got {other:?}")),
    }
}

/// An `AF_INET6` socket with `IPV6_V6ONLY` off reaches IPv4 destinations (v4-mapped), with the
/// source in an `IN_PKTINFO` at `IPPROTO_IP`, and IPv6 ones with an `IN6_PKTINFO` (the
/// `WSASendMsg` rule); TOS, ECN and the hop limit option arrive on the v4-mapped path. An
/// IPv6-only socket cannot reach IPv4.
pub(crate) fn dual_stack(client: &Client) -> Result<Option<String>, Failure> {
    let Ok(bind) = "[::]:0".parse::<SocketAddr>() else {
        return Err("address".into());
    };
    let Some(loopback) = loopback_index() else {
        return Ok(Some("no loopback interface index on this host".into()));
    };
    let rx = receiver("127.0.0.1:0")?;
    let to = rx.local_addr().map_err(error)?;
    let socket = match client.open_socket_with(bind, OpenSocketRequest::FLAG_DUAL_STACK) {
        Ok(socket) => socket,
        Err(ClientError::Status(status)) if status == STATUS_INVALID_ADDRESS_COMPONENT => {
            return Ok(Some("no IPv6 on this host".into()));
        }
        Err(e) => return Err(error(e)),
    };
    // The IPv6 hop limit option reaches the IPv4 side too (the driver sets both forms).
    client
        .set_option(socket.socket, SocketOption::HopLimit(7))
        .map_err(error)?;
    let (tos, ecn, wire_tos) = Marks::of(socket.features).dscp_ect1(0x28);
    let source = IpAddr::from([127, 0, 0, 7]);
    let spec = SendSpec {
        source: Some(source),
        tos,
        ecn,
        ..plain(socket.socket, to, 2)
    };
    sent_ok(&client.send(&spec, &[], b"dual").map_err(error)?, 2)?;
    let mut skipped = Vec::new();
    let expect = Expect {
        tos: wire_tos,
        hop_limit: 7,
        interface: Some(loopback),
        ..Expect::loopback(b"dual", source_of(&socket.local, Some(source)))
    };
    expect_arrivals(&receive(&rx, 2)?, &expect, "v4-mapped", &mut skipped)?;
    // What WskSendTo got: a v4-mapped SOCKADDR_IN6 and an IN_PKTINFO at IPPROTO_IP.
    let described = client.describe_send(&spec, &[], b"dual").map_err(error)?;
    let remote = described.remote_bytes();
    ensure!(
        remote.len() == 28
            && remote.get(..2) == Some(&23_u16.to_le_bytes()[..])
            && remote.get(8..24) == Some(&Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets()[..]),
        "RemoteAddress {remote:02x?}"
    );
    let control = described.control_bytes();
    ensure!(
        control.get(8..16) == Some(&[0, 0, 0, 0, 19, 0, 0, 0][..])
            && control.get(16..20) == Some(&[127, 0, 0, 7][..]),
        "control {control:02x?}"
    );
    // A native IPv6 destination from the same socket: the source in an IN6_PKTINFO at
    // IPPROTO_IPV6 (41, IPV6_PKTINFO 19), the WSASendMsg rule's other half.
    if let Some(rx6) = receiver_or_skip("[::1]:0", &mut skipped) {
        let spec = SendSpec {
            source: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ..plain(socket.socket, rx6.local_addr().map_err(error)?, 1)
        };
        sent_ok(&client.send(&spec, &[], b"native").map_err(error)?, 1)?;
        let expect = Expect {
            hop_limit: 7,
            interface: Some(loopback),
            ..Expect::loopback(b"native", source_of(&socket.local, spec.source))
        };
        expect_arrivals(&receive(&rx6, 1)?, &expect, "native IPv6", &mut skipped)?;
        let control = client
            .describe_send(&spec, &[], b"native")
            .map_err(error)?
            .control_bytes()
            .to_vec();
        ensure!(
            control.get(8..16) == Some(&[41, 0, 0, 0, 19, 0, 0, 0][..])
                && control.get(16..32) == Some(&Ipv6Addr::LOCALHOST.octets()[..]),
            "native IPv6 control {control:02x?}"
        );
    }
    client.close_socket(socket.socket).map_err(error)?;
    // Without the flag, an IPv6 socket is IPv6-only.
    let v6_only = client.open_socket(bind).map_err(error)?;
    let refused = refusal(client.send(&plain(v6_only.socket, to, 1), &[], b"no"))?;
    ensure!(
        refused == STATUS_INVALID_ADDRESS_COMPONENT,
        "IPv6-only socket to IPv4: {}",
        crate::status_text(refused)
    );
    client.close_socket(v6_only.socket).map_err(error)?;
    Ok(skips(&skipped))
}

/// `SIO_WSK_SET_SENDTO_ADDRESS` fixes a destination, so a `SEND` may omit it; a destination
/// given with a `SEND` overrides it for that datagram (the control code's page).
pub(crate) fn fixed_destination(client: &Client) -> Result<Option<String>, Failure> {
    let fixed = receiver("127.0.0.1:0")?;
    let other = receiver("127.0.0.1:0")?;
    let socket = client.open_socket(addr("127.0.0.1:0")).map_err(error)?;
    let none = SendSpec {
        remote: None,
        ..plain(socket.socket, addr("127.0.0.1:9"), 1)
    };
    let refused = refusal(client.send(&none, &[], b"nowhere"))?;
    ensure!(
        refused == STATUS_INVALID_PARAMETER,
        "no destination at all: {}",
        crate::status_text(refused)
    );
    let destination = fixed.local_addr().map_err(error)?;
    client
        .set_option(socket.socket, SocketOption::Destination(destination))
        .map_err(error)?;
    sent_ok(&client.send(&none, &[], b"fixed").map_err(error)?, 1)?;
    let mut skipped = Vec::new();
    let from = source_of(&socket.local, None);
    let expect = Expect::loopback(b"fixed", from);
    expect_arrivals(&receive(&fixed, 1)?, &expect, "fixed", &mut skipped)?;
    let described = client.describe_send(&none, &[], b"fixed").map_err(error)?;
    ensure!(
        described.remote_len == 0,
        "RemoteAddress should be NULL, {} bytes",
        described.remote_len
    );
    let elsewhere = plain(socket.socket, other.local_addr().map_err(error)?, 1);
    sent_ok(
        &client.send(&elsewhere, &[], b"override").map_err(error)?,
        1,
    )?;
    let expect = Expect::loopback(b"override", from);
    expect_arrivals(&receive(&other, 1)?, &expect, "override", &mut skipped)?;
    ensure!(
        fixed.recv(std::time::Duration::from_millis(50)).is_err(),
        "the override also reached the fixed destination"
    );
    client.close_socket(socket.socket).map_err(error)?;
    Ok(skips(&skipped))
}

/// The source's interface index goes in the `IN_PKTINFO` / `IN6_PKTINFO` beside the address,
/// and `IP_UNICAST_IF` / `IPV6_UNICAST_IF` pin a socket to the loopback interface.
pub(crate) fn interfaces(client: &Client) -> Result<Option<String>, Failure> {
    let Some(index) = loopback_index() else {
        return Ok(Some("no loopback interface index on this host".into()));
    };
    let mut skipped = Vec::new();
    for (local, source) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
        let Some(rx) = receiver_or_skip(local, &mut skipped) else {
            continue;
        };
        let socket = client.open_socket(addr(local)).map_err(error)?;
        client
            .set_option(socket.socket, SocketOption::UnicastInterface(index))
            .map_err(error)?;
        let source: IpAddr = source.parse().map_err(error)?;
        let spec = SendSpec {
            source: Some(source),
            source_ifindex: Some(index),
            ..plain(socket.socket, rx.local_addr().map_err(error)?, 1)
        };
        sent_ok(&client.send(&spec, &[], b"via lo").map_err(error)?, 1)?;
        let expect = Expect {
            interface: Some(index),
            ..Expect::loopback(b"via lo", source_of(&socket.local, Some(source)))
        };
        expect_arrivals(&receive(&rx, 1)?, &expect, local, &mut skipped)?;
        let described = client.describe_send(&spec, &[], b"via lo").map_err(error)?;
        // ipi_ifindex at 4 in IN_PKTINFO, ipi6_ifindex at 16 in IN6_PKTINFO, after the header.
        let at = if source.is_ipv4() { 16 + 4 } else { 16 + 16 };
        ensure!(
            described.control_bytes().get(at..at + 4) == Some(&index.to_ne_bytes()[..]),
            "{local}: ifindex not in the PKTINFO: {:02x?}",
            described.control_bytes()
        );
        client.close_socket(socket.socket).map_err(error)?;
    }
    Ok(skips(&skipped))
}

/// A broadcast needs `SO_BROADCAST`: refused without it (`WSAEACCES` in user mode, the provider's
/// `STATUS_ACCESS_DENIED`), delivered with it (to the loopback subnet's broadcast address).
pub(crate) fn broadcast(client: &Client) -> Result<Option<String>, Failure> {
    let rx = Receiver::bind(SocketAddr::from(([0, 0, 0, 0], 0))).map_err(error)?;
    let port = rx.local_addr().map_err(error)?.port();
    let to = SocketAddr::from(([127, 255, 255, 255], port));
    let socket = client.open_socket(addr("127.0.0.1:0")).map_err(error)?;
    let response = client
        .send(&plain(socket.socket, to, 1), &[], b"bcast")
        .map_err(error)?;
    ensure!(
        response.status == STATUS_ACCESS_DENIED && response.datagrams_failed == 1,
        "broadcast without SO_BROADCAST: {}",
        crate::status_text(response.status)
    );
    client
        .set_option(socket.socket, SocketOption::Broadcast(true))
        .map_err(error)?;
    sent_ok(
        &client
            .send(&plain(socket.socket, to, 1), &[], b"bcast")
            .map_err(error)?,
        1,
    )?;
    let mut skipped = Vec::new();
    let expect = Expect::loopback(b"bcast", source_of(&socket.local, None));
    expect_arrivals(&receive(&rx, 1)?, &expect, "broadcast", &mut skipped)?;
    client.close_socket(socket.socket).map_err(error)?;
    Ok(skips(&skipped))
}

/// Multicast leaves by the interface, with the hop limit and loopback asked for, to a receiver
/// that joined the group on loopback. IPv6 multicast needs a loopback that carries it.
pub(crate) fn multicast(client: &Client) -> Result<Option<String>, Failure> {
    let Some(index) = loopback_index() else {
        return Ok(Some("no loopback interface index on this host".into()));
    };
    let mut skipped = Vec::new();
    let group = Ipv4Addr::new(239, 255, 77, 1);
    let rx = Receiver::bind(SocketAddr::from(([0, 0, 0, 0], 0))).map_err(error)?;
    rx.join_multicast_v4(group, Ipv4Addr::LOCALHOST)
        .map_err(error)?;
    let to = SocketAddr::from((group, rx.local_addr().map_err(error)?.port()));
    let socket = client.open_socket(addr("127.0.0.1:0")).map_err(error)?;
    set_multicast(client, socket.socket, index, true)?;
    let what = "IPv4 multicast";
    let from = source_of(&socket.local, None);
    multicast_once(
        client,
        (socket.socket, from, to),
        (&rx, index),
        what,
        &mut skipped,
    )?;
    client.close_socket(socket.socket).map_err(error)?;
    if let Some(iface) = test_interface() {
        multicast_v6(client, &iface, &mut skipped)?;
        return Ok(skips(&skipped));
    }
    // IPv6 without a test interface: the options are accepted, but a send that succeeds proves
    // no delivery (Linux's `lo` has no MULTICAST flag), so delivery is reported as skipped.
    let socket = client.open_socket(addr("[::1]:0")).map_err(error)?;
    set_multicast(client, socket.socket, index, true)?;
    let group6 = SocketAddr::V6(SocketAddrV6::new(GROUP_V6, 9, 0, index));
    let response = client
        .send(&plain(socket.socket, group6, 1), &[], b"group6")
        .map_err(error)?;
    client.close_socket(socket.socket).map_err(error)?;
    if response.status != STATUS_NETWORK_UNREACHABLE {
        sent_ok(&response, 1)?;
    }
    skipped.push(format!(
        "IPv6 multicast delivery not checked: no test interface (IPv4 checked; set {TEST_IFACE_VAR})"
    ));
    Ok(skips(&skipped))
}

/// The IPv6 group the scenarios use (a link-scope group, so nothing routes it further).
const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 3);

/// `IP_MULTICAST_IF`/`IPV6_MULTICAST_IF` = `index`, hop limit 3, loop as given.
fn set_multicast(client: &Client, socket: u32, index: u32, looped: bool) -> Result<(), Failure> {
    for option in [
        SocketOption::MulticastInterface(index),
        SocketOption::MulticastHopLimit(3),
        SocketOption::MulticastLoop(looped),
    ] {
        client.set_option(socket, option).map_err(error)?;
    }
    Ok(())
}

/// One datagram from `socket` (whose datagrams come `from` there) to group `to`: it arrives at
/// `rx` whole, from `from`, on interface `index`, with the hop limit [`set_multicast`] set;
/// unreported is not a pass, it is noted in `skipped`.
fn multicast_once(
    client: &Client,
    (socket, from, to): (u32, SocketAddr, SocketAddr),
    (rx, index): (&Receiver, u32),
    what: &str,
    skipped: &mut Vec<String>,
) -> Result<(), Failure> {
    sent_ok(
        &client
            .send(&plain(socket, to, 1), &[], b"group")
            .map_err(error)?,
        1,
    )?;
    let expect = Expect {
        hop_limit: 3,
        interface: Some(index),
        ..Expect::loopback(b"group", from)
    };
    expect_arrivals(&receive(rx, 1)?, &expect, what, skipped)
}

/// IPv6 multicast out of the test interface to a receiver that joined the group on it: the
/// payload, hop limit 3 and the interface arrive. `IPV6_MULTICAST_LOOP` off on the sender does
/// not stop it: on Windows the option belongs to the receiving socket ("data sent by an
/// application on the local computer (not necessarily by the same socket)", `IPPROTO_IPV6`
/// socket options page; `IP_MULTICAST_LOOP`: "applies only to the receive path").
fn multicast_v6(
    client: &Client,
    iface: &TestInterface,
    skipped: &mut Vec<String>,
) -> Result<(), Failure> {
    let rx = Receiver::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))).map_err(error)?;
    rx.join_multicast_v6(GROUP_V6, iface.index).map_err(error)?;
    let port = rx.local_addr().map_err(error)?.port();
    let to = SocketAddr::V6(SocketAddrV6::new(GROUP_V6, port, 0, iface.index));
    // Not [::1]: Linux drops a loopback source arriving on another interface (ipv6_rcv).
    let socket = client.open_socket(addr("[::]:0")).map_err(error)?;
    // The unbound source is the interface's own address: its link-local one.
    let Some(link_local) = iface.link_local else {
        skipped.push(format!("{} has no link-local address", iface.name));
        return client.close_socket(socket.socket).map_err(error);
    };
    let from = source_of(&socket.local, Some(IpAddr::V6(link_local)));
    for looped in [true, false] {
        set_multicast(client, socket.socket, iface.index, looped)?;
        let what = format!("IPv6 multicast on {} (loop {looped})", iface.name);
        multicast_once(
            client,
            (socket.socket, from, to),
            (&rx, iface.index),
            &what,
            skipped,
        )?;
    }
    client.close_socket(socket.socket).map_err(error)
}

/// A link-local destination reaches its interface by the scope id in `sin6_scope_id`, which
/// `WskSendTo` gets at bytes 24..28 of the `SOCKADDR_IN6` (ws2ipdef.h `SOCKADDR_IN6_LH`).
pub(crate) fn link_local(client: &Client) -> Result<Option<String>, Failure> {
    let Some(iface) = test_interface() else {
        return Ok(Some(format!(
            "no link-local address to send to: loopback has none (set {TEST_IFACE_VAR})"
        )));
    };
    let Some(ip) = iface.link_local else {
        return Ok(Some(format!("{} has no link-local address", iface.name)));
    };
    let rx =
        Receiver::bind(SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, iface.index))).map_err(error)?;
    let port = rx.local_addr().map_err(error)?.port();
    let to = SocketAddr::V6(SocketAddrV6::new(ip, port, 0, iface.index));
    let socket = client.open_socket(addr("[::]:0")).map_err(error)?;
    let spec = plain(socket.socket, to, 1);
    sent_ok(&client.send(&spec, &[], b"scoped").map_err(error)?, 1)?;
    let arrival = receive(&rx, 1)?.remove(0);
    ensure!(
        arrival.destination == Some(IpAddr::V6(ip)),
        "arrived for {:?}",
        arrival.destination
    );
    // From the socket's port and, unbound, the interface's own address.
    let mut skipped = Vec::new();
    let expect = Expect {
        interface: Some(iface.index),
        ..Expect::loopback(b"scoped", source_of(&socket.local, Some(IpAddr::V6(ip))))
    };
    expect_arrivals([&arrival], &expect, "link-local", &mut skipped)?;
    let described = client.describe_send(&spec, &[], b"scoped").map_err(error)?;
    ensure!(
        described.remote_bytes().get(24..28) == Some(&iface.index.to_le_bytes()[..]),
        "sin6_scope_id not {}: {:02x?}",
        iface.index,
        described.remote_bytes()
    );
    client.close_socket(socket.socket).map_err(error)?;
    Ok(skips(&skipped))
}

/// `IP_TTL` / `IPV6_UNICAST_HOPS` set the hop limit datagrams arrive with.
pub(crate) fn hop_limit(client: &Client) -> Result<Option<String>, Failure> {
    let mut skipped = Vec::new();
    for local in ["127.0.0.1:0", "[::1]:0"] {
        let Some(rx) = receiver_or_skip(local, &mut skipped) else {
            continue;
        };
        let socket = client.open_socket(addr(local)).map_err(error)?;
        client
            .set_option(socket.socket, SocketOption::HopLimit(7))
            .map_err(error)?;
        sent_ok(
            &client
                .send(
                    &plain(socket.socket, rx.local_addr().map_err(error)?, 1),
                    &[],
                    b"ttl",
                )
                .map_err(error)?,
            1,
        )?;
        let expect = Expect {
            hop_limit: 7,
            ..Expect::loopback(b"ttl", source_of(&socket.local, None))
        };
        expect_arrivals(&receive(&rx, 1)?, &expect, local, &mut skipped)?;
        client.close_socket(socket.socket).map_err(error)?;
    }
    Ok(skips(&skipped))
}

/// The largest datagram of each family arrives whole; one byte more is refused.
///
/// 65507 bytes over IPv4, 65527 over IPv6; one byte more is `STATUS_INVALID_BUFFER_SIZE`, the status user mode's `WSAEMSGSIZE`
/// comes from. With don't-fragment set, a datagram larger than the loopback MTU fails with that
/// status too, where the host's loopback MTU is smaller than the datagram (65536 on Linux).
pub(crate) fn sizes(client: &Client) -> Result<Option<String>, Failure> {
    let mut skipped = Vec::new();
    for (local, largest) in [("127.0.0.1:0", 65_507), ("[::1]:0", 65_527)] {
        let Some(rx) = receiver_or_skip(local, &mut skipped) else {
            continue;
        };
        let socket = client.open_socket(addr(local)).map_err(error)?;
        let to = rx.local_addr().map_err(error)?;
        let payload = pattern(largest);
        sent_ok(
            &client
                .send(&plain(socket.socket, to, 1), &[], &payload)
                .map_err(error)?,
            1,
        )?;
        let from = source_of(&socket.local, None);
        let expect = Expect::loopback(&payload, from);
        expect_arrivals(&receive(&rx, 1)?, &expect, local, &mut skipped)?;
        client
            .set_option(socket.socket, SocketOption::DontFragment(true))
            .map_err(error)?;
        // An IPv4 datagram (at most 65535 bytes) never exceeds a 65536-byte loopback MTU.
        let response = if to.is_ipv6() {
            client
                .send(&plain(socket.socket, to, 1), &[], &payload)
                .map_err(error)?
        } else {
            client
                .send(&plain(socket.socket, to, 1), &[], &payload[..1000])
                .map_err(error)?
        };
        let what = format!("{local}, don't-fragment");
        if to.is_ipv4() {
            sent_ok(&response, 1)?;
            let expect = Expect::loopback(&payload[..1000], from);
            expect_arrivals(&receive(&rx, 1)?, &expect, &what, &mut skipped)?;
            if test_interface().is_none() {
                skipped.push(format!(
                    "{local}: don't-fragment's failure not checked: loopback carries every IPv4 datagram unfragmented (set {TEST_IFACE_VAR})"
                ));
            }
        } else if response.status == STATUS_INVALID_BUFFER_SIZE {
            ensure!(response.datagrams_failed == 1, "{local}: DF: {response:?}");
        } else {
            sent_ok(&response, 1)?;
            expect_arrivals(&receive(&rx, 1)?, &expect, &what, &mut skipped)?;
            // The test interface's 1500-byte MTU shows the failure instead.
            if test_interface().is_none() {
                skipped.push(format!(
                    "{local}: the loopback MTU carries {largest} bytes unfragmented (no DF failure to see; set {TEST_IFACE_VAR})"
                ));
            }
        }
        let refused = match client.send(&plain(socket.socket, to, 1), &[], &pattern(largest + 1)) {
            Err(ClientError::Status(status)) => status,
            Err(ClientError::Invalid(abi)) => abi.status(),
            other => return Err(format!("{local}: oversize accepted: {other:?}")),
        };
        ensure!(
            refused == STATUS_INVALID_BUFFER_SIZE,
            "{local}: oversize: {}",
            crate::status_text(refused)
        );
        // A USO segment that holds the whole oversize payload is one oversize datagram.
        if to.is_ipv4() && socket.features & wskudp_abi::feature::USO != 0 {
            let spec = SendSpec {
                uso_segment_size: Some(u32::try_from(largest + 1).map_err(error)?),
                ..plain(socket.socket, to, 1)
            };
            let refused = refusal(client.send(&spec, &[], &pattern(largest + 1)))?;
            ensure!(
                refused == STATUS_INVALID_BUFFER_SIZE,
                "{local}: one oversize USO segment: {}",
                crate::status_text(refused)
            );
        }
        client.close_socket(socket.socket).map_err(error)?;
    }
    if let Some(iface) = test_interface() {
        dont_fragment_over(client, &iface)?;
    }
    // Everything checkable was checked; what this loopback cannot show is said, as a skip.
    Ok(skips(&skipped))
}

/// Don't-fragment over the test interface's MTU (1500 on a veth), per family: a datagram that
/// fits goes, a larger one fails with `STATUS_INVALID_BUFFER_SIZE` (`IPPROTO_IP` options,
/// `IP_DONTFRAGMENT`: not fragmented "regardless of the local MTU"; `WSASendMsg`: WSAEMSGSIZE;
/// the NTSTATUS is inferred, as the README's option table says), and without don't-fragment
/// the larger one is fragmented and sent. Multicast leaves by the interface; a unicast address
/// here is local and would go through `lo`.
fn dont_fragment_over(client: &Client, iface: &TestInterface) -> Result<(), Failure> {
    let groups = [
        SocketAddr::from((Ipv4Addr::new(239, 255, 77, 2), 9)),
        SocketAddr::V6(SocketAddrV6::new(GROUP_V6, 9, 0, iface.index)),
    ];
    for to in groups {
        let local = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let socket = client.open_socket(addr(local)).map_err(error)?;
        set_multicast(client, socket.socket, iface.index, false)?;
        let send = |len: usize| {
            client
                .send(&plain(socket.socket, to, 1), &[], &pattern(len))
                .map_err(error)
        };
        sent_ok(&send(2000)?, 1)?;
        client
            .set_option(socket.socket, SocketOption::DontFragment(true))
            .map_err(error)?;
        sent_ok(&send(1400)?, 1)?;
        let response = send(2000)?;
        ensure!(
            response.status == STATUS_INVALID_BUFFER_SIZE && response.datagrams_failed == 1,
            "{to}: don't-fragment over {}'s MTU: {}",
            iface.name,
            crate::status_text(response.status)
        );
        client.close_socket(socket.socket).map_err(error)?;
    }
    Ok(())
}
