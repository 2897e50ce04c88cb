//! `WskControlSocket` on the model's provider: the options and IOCTLs a UDP sender uses, each
//! with Windows' parameter rules, checked on the wire by a Linux receiver.
#![allow(clippy::undocumented_unsafe_blocks, missing_docs)]

mod common;

use std::ffi::c_void;
use std::net::SocketAddr;

use common::*;
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IRP};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_BUFFER_TOO_SMALL, STATUS_INVALID_PARAMETER,
    STATUS_MORE_PROCESSING_REQUIRED, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
};
use wskudp_core::ddi::nt::{IoAllocateIrp, IoFreeIrp, io_set_completion_routine};
use wskudp_kmodel::Profile;

/// `WskSetOption(SOL_SOCKET, SO_BROADCAST, 1)` on `irp` as it is (NULL, or not set up to be
/// waited for): what the call returned.
fn set_broadcast_on(socket: Socket, irp: *mut IRP) -> NTSTATUS {
    let value = Pool::new(&1_u32.to_le_bytes());
    let control = socket.dispatch().Basic.WskControlSocket.unwrap();
    unsafe {
        control(
            socket.0,
            SET,
            SO_BROADCAST,
            SOL_SOCKET,
            4,
            value.ptr,
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            irp,
        )
    }
}

#[test]
fn parameter_rules() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    // A DWORD in, a DWORD out: Information and OutputSizeReturned say 4.
    assert_eq!(socket.set(IPPROTO_IP, IP_TTL, 9), STATUS_SUCCESS);
    let (status, information, value, returned) = socket.control(GET, IPPROTO_IP, IP_TTL, None, 4);
    assert_eq!(
        (status, information, value, returned),
        (STATUS_SUCCESS, 4, 9, 4)
    );
    // Too small a buffer either way.
    let (status, ..) = socket.control(SET, IPPROTO_IP, IP_TTL, Some(&[9, 0]), 0);
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    let (status, ..) = socket.control(GET, IPPROTO_IP, IP_TTL, None, 2);
    assert_eq!(status, STATUS_BUFFER_TOO_SMALL);
    // A TTL past 255 ("It is illegal to set the TTL to a value greater than 255").
    assert_eq!(
        socket.set(IPPROTO_IP, IP_TTL, 256),
        STATUS_INVALID_PARAMETER
    );
    // Options the transport does not have, an IPv6 option on an IPv4 socket, an unknown
    // IOCTL, an unknown request type.
    assert_eq!(socket.set(IPPROTO_IP, 1234, 1), STATUS_NOT_SUPPORTED);
    assert_eq!(
        socket.set(IPPROTO_IPV6, IPV6_UNICAST_HOPS, 1),
        STATUS_NOT_SUPPORTED
    );
    assert_eq!(
        socket.get(IPPROTO_IPV6, IPV6_V6ONLY),
        Err(STATUS_NOT_SUPPORTED)
    );
    assert_eq!(
        socket.control(IOCTL, 0, 0x9800_0001, None, 0).0,
        STATUS_NOT_SUPPORTED
    );
    assert_eq!(
        socket.control(7, IPPROTO_IP, IP_TTL, None, 4).0,
        STATUS_INVALID_PARAMETER
    );
    // Defaults as Windows reports them.
    let defaults = [
        ((SOL_SOCKET, SO_BROADCAST), 0),
        ((IPPROTO_IP, IP_MULTICAST_TTL), 1),
        ((IPPROTO_IP, IP_MULTICAST_LOOP), 1),
        ((IPPROTO_IP, IP_UNICAST_IF), 0),
        ((IPPROTO_IP, IP_DONTFRAGMENT), 0),
        ((IPPROTO_UDP, UDP_SEND_MSG_SIZE), 0),
    ];
    for ((level, code), value) in defaults {
        assert_eq!(
            socket.get(level, code),
            Ok(value),
            "level {level} code {code}"
        );
    }
    socket.close();
    finish_clean(machine, client);
}

#[test]
fn ttl_hops_and_dont_fragment_reach_the_socket() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    assert_eq!(socket.get(IPPROTO_IP, IP_TTL), Ok(128));
    assert_eq!(socket.set(IPPROTO_IP, IP_TTL, 9), STATUS_SUCCESS);
    assert_eq!(socket.set(IPPROTO_IP, IP_DONTFRAGMENT, 7), STATUS_SUCCESS);
    assert_eq!(socket.get(IPPROTO_IP, IP_DONTFRAGMENT), Ok(1));
    assert_eq!(socket.send_to(rx.addr(), b"ttl"), STATUS_SUCCESS);
    assert_eq!(rx.recv().unwrap().ttl, Some(9));
    socket.close();
    if has_ipv6() {
        let socket = Socket::bound(&client, "[::1]:0".parse().unwrap());
        let rx = Receiver::bind("[::1]:0");
        assert_eq!(
            socket.set(IPPROTO_IPV6, IPV6_UNICAST_HOPS, 5),
            STATUS_SUCCESS
        );
        assert_eq!(socket.set(IPPROTO_IPV6, IPV6_DONTFRAG, 1), STATUS_SUCCESS);
        assert_eq!(socket.send_to(rx.addr(), b"hops"), STATUS_SUCCESS);
        assert_eq!(rx.recv().unwrap().ttl, Some(5));
        socket.close();
    }
    finish_clean(machine, client);
}

/// `if_nametoindex("lo")`.
fn loopback_index() -> u32 {
    nix::net::if_::if_nametoindex("lo").unwrap()
}

#[test]
fn unicast_interface_byte_order() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let lo = loopback_index();
    // IP_UNICAST_IF takes the index in network byte order and reports it in host order.
    let network_order = u32::from_le_bytes(lo.to_be_bytes());
    assert_eq!(
        socket.set(IPPROTO_IP, IP_UNICAST_IF, network_order),
        STATUS_SUCCESS
    );
    assert_eq!(socket.get(IPPROTO_IP, IP_UNICAST_IF), Ok(lo));
    assert_eq!(socket.send_to(rx.addr(), b"lo"), STATUS_SUCCESS);
    assert!(rx.recv().is_some());
    // The same index in host order names another interface (1 << 24 for lo = 1).
    assert_ne!(socket.set(IPPROTO_IP, IP_UNICAST_IF, lo), STATUS_SUCCESS);
    socket.close();
    if has_ipv6() {
        let socket = Socket::bound(&client, "[::1]:0".parse().unwrap());
        // IPV6_UNICAST_IF: host order.
        assert_eq!(
            socket.set(IPPROTO_IPV6, IPV6_UNICAST_IF, lo),
            STATUS_SUCCESS
        );
        assert_eq!(socket.get(IPPROTO_IPV6, IPV6_UNICAST_IF), Ok(lo));
        socket.close();
    }
    finish_clean(machine, client);
}

#[test]
fn broadcast_needs_so_broadcast() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("0.0.0.0:0");
    let broadcast = SocketAddr::from(([127, 255, 255, 255], rx.addr().port()));
    // WSASendMsg: WSAEACCES, "a broadcast address, but the appropriate flag was not set".
    assert_eq!(socket.send_to(broadcast, b"b"), STATUS_ACCESS_DENIED);
    assert_eq!(socket.set(SOL_SOCKET, SO_BROADCAST, 1), STATUS_SUCCESS);
    assert_eq!(socket.get(SOL_SOCKET, SO_BROADCAST), Ok(1));
    assert_eq!(socket.send_to(broadcast, b"b"), STATUS_SUCCESS);
    assert_eq!(rx.recv().unwrap().payload, b"b");
    socket.close();
    finish_clean(machine, client);
}

#[test]
fn multicast_interface_ttl_and_receiver_side_loop() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("0.0.0.0:0");
    let group = std::net::Ipv4Addr::new(239, 255, 7, 7);
    rx.0.join_multicast_v4(&group, &std::net::Ipv4Addr::LOCALHOST)
        .unwrap();
    let to = SocketAddr::from((group, rx.addr().port()));
    // The interface as an address (network order in the DWORD's bytes).
    let address = u32::from_le_bytes([127, 0, 0, 1]);
    assert_eq!(
        socket.set(IPPROTO_IP, IP_MULTICAST_IF, address),
        STATUS_SUCCESS
    );
    assert_eq!(socket.set(IPPROTO_IP, IP_MULTICAST_TTL, 3), STATUS_SUCCESS);
    // Windows' IP_MULTICAST_LOOP is the receiver's: off on the sender, it still arrives.
    assert_eq!(socket.set(IPPROTO_IP, IP_MULTICAST_LOOP, 0), STATUS_SUCCESS);
    assert_eq!(socket.get(IPPROTO_IP, IP_MULTICAST_LOOP), Ok(0));
    assert_eq!(socket.send_to(to, b"group"), STATUS_SUCCESS);
    let arrival = rx.recv().unwrap();
    assert_eq!(
        (arrival.payload.as_slice(), arrival.ttl),
        (&b"group"[..], Some(3))
    );
    // The interface as an index: 0.x.x.x, network order; reported in host order.
    let lo = loopback_index();
    let index = u32::from_le_bytes(lo.to_be_bytes());
    assert_eq!(
        socket.set(IPPROTO_IP, IP_MULTICAST_IF, index),
        STATUS_SUCCESS
    );
    assert_eq!(socket.get(IPPROTO_IP, IP_MULTICAST_IF), Ok(lo));
    assert_eq!(socket.send_to(to, b"again"), STATUS_SUCCESS);
    assert_eq!(rx.recv().unwrap().payload, b"again");
    socket.close();
    if has_ipv6() {
        let socket = Socket::bound(&client, "[::1]:0".parse().unwrap());
        assert_eq!(
            socket.set(IPPROTO_IPV6, IPV6_MULTICAST_IF, lo),
            STATUS_SUCCESS
        );
        assert_eq!(
            socket.set(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 4),
            STATUS_SUCCESS
        );
        assert_eq!(socket.get(IPPROTO_IPV6, IPV6_MULTICAST_HOPS), Ok(4));
        assert_eq!(
            socket.set(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 256),
            STATUS_INVALID_PARAMETER
        );
        socket.close();
    }
    finish_clean(machine, client);
}

#[test]
fn fixed_destination() {
    let (machine, client) = boot(Profile::Windows11);
    let a = Receiver::bind("127.0.0.1:0");
    let b = Receiver::bind("127.0.0.1:0");
    let socket = Socket::new(&client, AF_INET);
    let address = sockaddr(a.addr());
    // "it must do so after the datagram socket has been bound".
    let (status, ..) = socket.control(IOCTL, 0, SIO_WSK_SET_SENDTO_ADDRESS, Some(&address), 0);
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    assert_eq!(socket.bind("127.0.0.1:0".parse().unwrap()), STATUS_SUCCESS);
    // No destination at all yet.
    assert_eq!(
        socket.send(None, b"x", &[], None).0,
        STATUS_INVALID_PARAMETER
    );
    // Level is ignored for WskIoctl.
    let (status, ..) = socket.control(IOCTL, 1234, SIO_WSK_SET_SENDTO_ADDRESS, Some(&address), 0);
    assert_eq!(status, STATUS_SUCCESS);
    assert_eq!(socket.send(None, b"fixed", &[], None).0, STATUS_SUCCESS);
    assert_eq!(a.recv().unwrap().payload, b"fixed");
    // "the datagram is sent to the alternative remote transport address instead".
    assert_eq!(socket.send_to(b.addr(), b"override"), STATUS_SUCCESS);
    assert_eq!(b.recv().unwrap().payload, b"override");
    assert_eq!(
        socket.send(None, b"fixed again", &[], None).0,
        STATUS_SUCCESS
    );
    assert_eq!(a.recv().unwrap().payload, b"fixed again");
    // A SOCKADDR of the wrong family, a short one.
    let v6 = sockaddr("[::1]:9".parse().unwrap());
    assert_eq!(
        socket
            .control(IOCTL, 0, SIO_WSK_SET_SENDTO_ADDRESS, Some(&v6), 0)
            .0,
        STATUS_INVALID_PARAMETER
    );
    assert_eq!(
        socket
            .control(IOCTL, 0, SIO_WSK_SET_SENDTO_ADDRESS, Some(&address[..8]), 0)
            .0,
        STATUS_INVALID_PARAMETER
    );
    // Cleared: InputSize 0, InputBuffer NULL.
    assert_eq!(
        socket
            .control(IOCTL, 0, SIO_WSK_SET_SENDTO_ADDRESS, None, 0)
            .0,
        STATUS_SUCCESS
    );
    assert_eq!(
        socket.send(None, b"x", &[], None).0,
        STATUS_INVALID_PARAMETER
    );
    socket.close();
    finish_clean(machine, client);
}

#[test]
fn traffic_class_option_and_silent_ip_tos() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    // IP_TOS "Do not use"; IPv4 "just fails silently" (msquic): accepted, nothing on the wire.
    assert_eq!(socket.set(IPPROTO_IP, IP_TOS, 0xB8), STATUS_SUCCESS);
    assert_eq!(socket.send_to(rx.addr(), b"x"), STATUS_SUCCESS);
    assert_eq!(rx.recv().unwrap().tos, Some(0));
    socket.close();
    if has_ipv6() {
        let socket = Socket::bound(&client, "[::1]:0".parse().unwrap());
        let rx = Receiver::bind("[::1]:0");
        // msquic's probe: a DSCP with the ECN bits zero.
        assert_eq!(socket.set(IPPROTO_IPV6, IPV6_TCLASS, 0xB8), STATUS_SUCCESS);
        assert_eq!(socket.send_to(rx.addr(), b"x"), STATUS_SUCCESS);
        assert_eq!(rx.recv().unwrap().tos, Some(0xB8));
        // With ECN bits: "would always error" (msquic PR #5130).
        assert_eq!(
            socket.set(IPPROTO_IPV6, IPV6_TCLASS, 1),
            STATUS_INVALID_PARAMETER
        );
        socket.close();
    }
    finish_clean(machine, client);
}

#[test]
fn profiles_decide_the_probes() {
    let probe = |profile: Profile| {
        let (machine, client) = boot(profile);
        let socket = Socket::new(&client, AF_INET6);
        let uso = socket.get(IPPROTO_UDP, UDP_SEND_MSG_SIZE);
        let tclass = socket.set(IPPROTO_IPV6, IPV6_TCLASS, 4);
        let recv_ttl = socket.set(IPPROTO_IP, IP_HOPLIMIT, 1);
        let has_send_messages = socket.dispatch().WskSendMessages.is_some();
        socket.close();
        finish_clean(machine, client);
        (uso, tclass, recv_ttl, has_send_messages)
    };
    let ok = STATUS_SUCCESS;
    let no = STATUS_NOT_SUPPORTED;
    assert_eq!(probe(Profile::Windows11), (Ok(0), ok, ok, true));
    assert_eq!(probe(Profile::Server2022), (Ok(0), ok, no, true));
    assert_eq!(probe(Profile::NoUso), (Err(no), ok, ok, true));
    assert_eq!(probe(Profile::NoTclassOnSend), (Ok(0), no, ok, true));
    assert_eq!(probe(Profile::NoSendMessages), (Err(no), no, ok, false));
}

#[test]
fn send_messages_sends_each_buffer_with_the_same_control() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    let control = cmsg(IPPROTO_IP, IP_TOS, &int(0x48));
    let (status, information) =
        socket.send_messages(rx.addr(), &[b"one", b"two!", b"three"], &control);
    assert_eq!((status, information), (STATUS_SUCCESS, 12));
    for expected in [&b"one"[..], b"two!", b"three"] {
        let arrival = rx.recv().unwrap();
        assert_eq!(
            (arrival.payload.as_slice(), arrival.tos),
            (expected, Some(0x48))
        );
    }
    socket.close();
    let report = finish_clean(machine, client);
    assert_eq!(report.stats.datagrams_sent, 3);
}

#[test]
fn without_an_irp_is_a_violation() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    assert_eq!(
        set_broadcast_on(socket, std::ptr::null_mut()),
        STATUS_INVALID_PARAMETER
    );
    socket.close();
    let report = finish(machine, client);
    assert_eq!(rules(&report), ["WskControlSocketWithoutIrp"]);
}

/// The socket a completion routine closes (the model completes inline, so the routine runs
/// inside the `WskControlSocket` call).
static CLOSE_FROM_ROUTINE: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

unsafe extern "system" fn closes_socket(
    _: *const DEVICE_OBJECT,
    _: *mut IRP,
    _: *mut c_void,
) -> NTSTATUS {
    let socket = Socket(std::ptr::with_exposed_provenance_mut(
        *CLOSE_FROM_ROUTINE.lock().unwrap(),
    ));
    socket.close();
    STATUS_MORE_PROCESSING_REQUIRED
}

#[test]
fn close_during_control_socket_is_a_violation() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    *CLOSE_FROM_ROUTINE.lock().unwrap() = socket.0.expose_provenance();
    let irp = unsafe { IoAllocateIrp(1, false) };
    unsafe { io_set_completion_routine(irp, closes_socket, std::ptr::null_mut()) };
    assert_eq!(set_broadcast_on(socket, irp), STATUS_SUCCESS);
    unsafe { IoFreeIrp(irp) };
    let report = finish(machine, client);
    // Two rules broken at once: a WSK call from a completion routine, and that call a close
    // while the call the routine completes is still in progress.
    assert_eq!(
        rules(&report),
        ["WskCallInCompletion", "WskCloseSocketDuringCall"]
    );
}

#[test]
fn irp_contract_holds_for_control_socket() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    // No completion routine: the IRP would complete past the driver.
    let irp = unsafe { IoAllocateIrp(1, false) };
    assert_eq!(set_broadcast_on(socket, irp), STATUS_SUCCESS);
    unsafe { IoFreeIrp(irp) };
    socket.close();
    let report = finish(machine, client);
    assert_eq!(
        rules(&report),
        ["IrpCompletionRoutine", "IrpCompletedPastDriver"]
    );
}

/// `WskSendMessages` stops at the first datagram the stack refuses (the model's reading,
/// inferred): the ones before it are sent, the IRP fails with its status, and Information is
/// the bytes of the datagrams sent.
#[test]
fn send_messages_stops_at_the_first_refused_datagram() {
    let (machine, client) = boot(Profile::Windows11);
    let socket = Socket::bound(&client, "127.0.0.1:0".parse().unwrap());
    let rx = Receiver::bind("127.0.0.1:0");
    // Larger than an IPv4 datagram can carry (65,507 bytes).
    let too_long = vec![7_u8; 65_508];
    let (status, information) =
        socket.send_messages(rx.addr(), &[b"one", &too_long, b"three"], &[]);
    assert_eq!(
        (status, information),
        (
            windows_sys::Win32::Foundation::STATUS_INVALID_BUFFER_SIZE,
            3
        )
    );
    assert_eq!(rx.recv().unwrap().payload, b"one");
    assert!(rx.recv().is_none(), "nothing after the refused datagram");
    socket.close();
    let report = finish_clean(machine, client);
    assert_eq!(report.stats.datagrams_sent, 1);
}
