//! The scenario suite: what the driver must do, checked against real loopback receivers.
//!
//! It runs through any backend. `wskudp scenarios` runs it on the real driver (Windows) or the model;
//! the cargo tests run it on the model in every completion mode and check the model's report.
//!
//! Each scenario opens its own sockets and closes them, so scenarios can share one client.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use wskudp_abi::status::{
    STATUS_BUFFER_TOO_SMALL, STATUS_INFO_LENGTH_MISMATCH, STATUS_INVALID_ADDRESS_COMPONENT,
    STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_HANDLE,
    STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED, STATUS_REVISION_MISMATCH, STATUS_SUCCESS,
};
use wskudp_abi::{
    Ecn, Ioctl, SendRequest, SendResponse, SendSpec, capability, encode_close_socket, encode_send,
    encode_send_direct, feature, send_request_len,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::backend::BackendError;
use crate::client::{Client, ClientError};
use crate::pattern;
use crate::receiver::{Arrival, Receiver};

/// How long a receiver waits for each expected datagram.
const WAIT: Duration = Duration::from_secs(3);

/// What a failed scenario says.
pub type Failure = String;

/// One scenario.
pub struct Scenario {
    /// Its name.
    pub name: &'static str,
    /// Runs it; `Ok(Some(reason))` means it could not run here (e.g. no IPv6 loopback).
    pub run: fn(&Client) -> Result<Option<String>, Failure>,
}

/// The scenario that needs direct I/O, so the I/O manager.
const ZERO_COPY: &str =
    "zero copy (SEND_DIRECT): the caller's locked pages go out through any MDL chain";

/// Every scenario that can run through `front_door` ([`Client::front_door`]), in order.
///
/// All but zero copy on the model's `none` front door, where no I/O manager locks a buffer
/// (as an unload needs one too, `none` has none).
pub fn all_through(front_door: &str) -> impl Iterator<Item = &'static Scenario> {
    all()
        .iter()
        .filter(move |scenario| front_door != "none" || scenario.name != ZERO_COPY)
}

/// Every scenario, in order.
#[must_use]
#[allow(clippy::too_many_lines, reason = "one entry per scenario")]
pub const fn all() -> &'static [Scenario] {
    &[
        Scenario {
            name: "payload arrives intact through any MDL chain (IPv4)",
            run: mdl_chains_v4,
        },
        Scenario {
            name: "payload arrives intact through any MDL chain (IPv6)",
            run: mdl_chains_v6,
        },
        Scenario {
            name: "count sends that many copies",
            run: count_copies,
        },
        Scenario {
            name: "pipelined: 5000 datagrams in several requests, 4 in flight",
            run: pipelined,
        },
        Scenario {
            name: ZERO_COPY,
            run: zero_copy,
        },
        Scenario {
            name: "IPv4 source address (IP_PKTINFO)",
            run: source_v4,
        },
        Scenario {
            name: "IPv6 source address (IPV6_PKTINFO)",
            run: source_v6,
        },
        Scenario {
            name: "TOS / traffic class and ECN reach the wire",
            run: tos_and_ecn,
        },
        Scenario {
            name: "USO segments the payload (UDP_SEND_MSG_SIZE)",
            run: uso,
        },
        Scenario {
            name: "every option together, both families",
            run: everything,
        },
        Scenario {
            name: "dual-stack: an IPv6 socket reaches IPv4 (IN_PKTINFO, TOS, hop limit) and IPv6 (IN6_PKTINFO)",
            run: crate::addressing::dual_stack,
        },
        Scenario {
            name: "a socket's fixed destination, overridden per datagram",
            run: crate::addressing::fixed_destination,
        },
        Scenario {
            name: "interfaces: PKTINFO interface index, IP_UNICAST_IF / IPV6_UNICAST_IF",
            run: crate::addressing::interfaces,
        },
        Scenario {
            name: "broadcast needs SO_BROADCAST",
            run: crate::addressing::broadcast,
        },
        Scenario {
            name: "multicast: interface, hop limit, loopback",
            run: crate::addressing::multicast,
        },
        Scenario {
            name: "link-local destination with its scope id",
            run: crate::addressing::link_local,
        },
        Scenario {
            name: "hop limit (IP_TTL / IPV6_UNICAST_HOPS)",
            run: crate::addressing::hop_limit,
        },
        Scenario {
            name: "largest datagram per family, one byte more refused",
            run: crate::addressing::sizes,
        },
        Scenario {
            name: "DESCRIBE_SEND returns the exact WskSendTo arguments",
            run: describe_exact,
        },
        Scenario {
            name: "malformed requests: precise status, nothing changed",
            run: malformed,
        },
        Scenario {
            name: "sockets are closed and their handles go stale",
            run: stale_handles,
        },
        Scenario {
            name: "close with sends in flight: every datagram accounted for",
            run: crate::in_flight::close_with_sends_in_flight,
        },
        Scenario {
            name: "a second handle's cleanup with sends in flight spares this handle",
            run: crate::in_flight::cleanup_with_sends_in_flight,
        },
        Scenario {
            name: "cancel of a send in flight (CancelIoEx)",
            run: crate::in_flight::cancel_in_flight,
        },
        Scenario {
            name: "past the per-socket limit: STATUS_DEVICE_BUSY, never more in flight",
            run: crate::in_flight::busy_at_the_socket_limit,
        },
        Scenario {
            name: "QUERY_STATS grows by exactly what was sent",
            run: crate::in_flight::stats_deltas,
        },
        Scenario {
            name: "QUERY_INFO's ABI version range: this version and the one before",
            run: crate::in_flight::abi_version_range,
        },
    ]
}

/// Fails the scenario with a formatted message unless `$condition` holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}
pub(crate) use ensure;

pub(crate) fn addr(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

pub(crate) fn error(e: impl std::fmt::Display) -> Failure {
    e.to_string()
}

/// A receiver on `local`, or the reason there is none (IPv6 loopback may be disabled).
pub(crate) fn receiver(local: &str) -> Result<Receiver, String> {
    Receiver::bind(addr(local)).map_err(|e| format!("no receiver on {local}: {e}"))
}

/// A receiver on `local`, or `None` with the reason added to `skipped`: the scenario goes on
/// with the other family and reports the reason, never a silent pass.
pub(crate) fn receiver_or_skip(local: &str, skipped: &mut Vec<String>) -> Option<Receiver> {
    receiver(local).map_err(|reason| skipped.push(reason)).ok()
}

/// The skip reasons noted, as a scenario's result: `None` when everything was checked.
pub(crate) fn skips(skipped: &[String]) -> Option<String> {
    (!skipped.is_empty()).then(|| skipped.join("; "))
}

/// The hop limit a datagram leaves with when its socket set none: Windows' `DefaultTTL`, 128,
/// for unicast over both families ("Appendix A: TCP/IP Configuration Parameters"). The real
/// driver's datagrams carry it, and so do the model's (its provider sets `IP_TTL` /
/// `IPV6_UNICAST_HOPS` to 128 on every socket, `tests/kmodel/src/wsk/options.rs`), where a
/// plain Linux socket would show 64.
pub(crate) const DEFAULT_HOP_LIMIT: u8 = 128;

/// What one datagram must arrive with at a real receiver.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect<'a> {
    /// Its payload.
    pub(crate) payload: &'a [u8],
    /// Its source: the `SEND`'s source address (or the socket's bound one) and the socket's
    /// port.
    pub(crate) source: SocketAddr,
    /// The TOS byte / traffic class on the wire (0 where none was asked for).
    pub(crate) tos: u8,
    /// The TTL / hop limit: the one set, else [`DEFAULT_HOP_LIMIT`].
    pub(crate) hop_limit: u8,
    /// The interface it arrives on; `None` where this host names no loopback index, which is
    /// reported as a skip.
    pub(crate) interface: Option<u32>,
}

impl<'a> Expect<'a> {
    /// `payload` from `source` over loopback, with no TOS and the default hop limit.
    pub(crate) fn loopback(payload: &'a [u8], source: SocketAddr) -> Self {
        Self {
            payload,
            source,
            tos: 0,
            hop_limit: DEFAULT_HOP_LIMIT,
            interface: crate::loopback_index(),
        }
    }
}

/// The source a datagram from the socket bound to `local` carries: `given` (the `SEND`'s
/// source address) if any, else the bound address, with the socket's port.
pub(crate) fn source_of(local: &wskudp_abi::WireAddr, given: Option<IpAddr>) -> SocketAddr {
    let bound = local
        .socket_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], local.port)));
    SocketAddr::new(given.unwrap_or_else(|| bound.ip()), local.port)
}

/// Checks every property of `arrival` that `expect` names: a difference fails; a property the
/// receiver did not report is not a pass but the skip reason returned.
pub(crate) fn expect_arrival(
    arrival: &Arrival,
    expect: &Expect,
) -> Result<Option<String>, Failure> {
    ensure!(
        arrival.payload == expect.payload,
        "{} bytes arrived from {}, not the {} sent",
        arrival.payload.len(),
        arrival.source,
        expect.payload.len()
    );
    ensure!(
        arrival.source.ip() == expect.source.ip() && arrival.source.port() == expect.source.port(),
        "arrived from {}, expected {}",
        arrival.source,
        expect.source
    );
    let mut unreported = Vec::new();
    match arrival.tos {
        Some(seen) => ensure!(
            seen == expect.tos,
            "TOS {seen:#04x}, expected {:#04x}",
            expect.tos
        ),
        None => unreported.push("TOS"),
    }
    match arrival.hop_limit {
        Some(seen) => ensure!(
            seen == expect.hop_limit,
            "hop limit {seen}, expected {}",
            expect.hop_limit
        ),
        None => unreported.push("hop limit"),
    }
    match (arrival.interface, expect.interface) {
        (Some(seen), Some(index)) => {
            ensure!(
                seen == index,
                "arrived on interface {seen}, expected {index}"
            );
        }
        (None, _) => unreported.push("interface"),
        (Some(_), None) => unreported.push("interface (no loopback index on this host)"),
    }
    Ok((!unreported.is_empty()).then(|| {
        format!(
            "the receiver does not report the arrival's {}",
            unreported.join(", ")
        )
    }))
}

/// [`expect_arrival`] on each of `arrivals`, `what` saying which: each skip reason is noted once
/// in `skipped`.
pub(crate) fn expect_arrivals<'a>(
    arrivals: impl IntoIterator<Item = &'a Arrival>,
    expect: &Expect,
    what: &str,
    skipped: &mut Vec<String>,
) -> Result<(), Failure> {
    for arrival in arrivals {
        let checked = expect_arrival(arrival, expect).map_err(|e| format!("{what}: {e}"))?;
        if let Some(reason) = checked.map(|reason| format!("{what}: {reason}"))
            && !skipped.contains(&reason)
        {
            skipped.push(reason);
        }
    }
    Ok(())
}

/// A `SEND` of `count` datagrams to `remote` with no options.
#[must_use]
pub const fn plain(socket: u32, remote: SocketAddr, count: u32) -> SendSpec {
    SendSpec {
        socket,
        remote: Some(remote),
        source: None,
        tos: None,
        ecn: None,
        uso_segment_size: None,
        source_ifindex: None,
        count,
    }
}

/// Exactly `n` datagrams, and nothing more.
pub(crate) fn receive(receiver: &Receiver, n: usize) -> Result<Vec<Arrival>, Failure> {
    let arrivals = receiver.recv_up_to(n, WAIT);
    ensure!(
        arrivals.len() == n,
        "expected {n} datagrams, {} arrived",
        arrivals.len()
    );
    ensure!(
        receiver.recv(Duration::from_millis(50)).is_err(),
        "more than {n} datagrams arrived"
    );
    Ok(arrivals)
}

pub(crate) fn sent_ok(response: &SendResponse, datagrams: u32) -> Result<(), Failure> {
    ensure!(
        response.status == STATUS_SUCCESS
            && response.datagrams_sent == datagrams
            && response.datagrams_failed == 0,
        "send: {} ({} sent, {} failed, expected {datagrams} sent)",
        crate::status_text(response.status),
        response.datagrams_sent,
        response.datagrams_failed
    );
    Ok(())
}

fn mdl_chains(client: &Client, local: &str) -> Result<Option<String>, Failure> {
    let rx = match receiver(local) {
        Ok(rx) => rx,
        Err(reason) if local.contains("::") => return Ok(Some(reason)),
        Err(reason) => return Err(reason),
    };
    let socket = client.open_socket(addr(local)).map_err(error)?;
    let payload = pattern(1000);
    let to = rx.local_addr().map_err(error)?;
    let expect = Expect::loopback(&payload, source_of(&socket.local, None));
    let mut skipped = Vec::new();
    for segments in [&[][..], &[1000], &[1, 998, 1], &[100; 10]] {
        let response = client
            .send(&plain(socket.socket, to, 1), segments, &payload)
            .map_err(error)?;
        sent_ok(&response, 1)?;
        ensure!(
            response.bytes_sent == 1000,
            "bytes_sent {}",
            response.bytes_sent
        );
        let what = format!("{local}, MDLs {segments:?}");
        expect_arrivals(&receive(&rx, 1)?, &expect, &what, &mut skipped)?;
    }
    client.close_socket(socket.socket).map_err(error)?;
    Ok(skips(&skipped))
}

fn mdl_chains_v4(client: &Client) -> Result<Option<String>, Failure> {
    mdl_chains(client, "127.0.0.1:0")
}

fn mdl_chains_v6(client: &Client) -> Result<Option<String>, Failure> {
    mdl_chains(client, "[::1]:0")
}

fn count_copies(client: &Client) -> Result<Option<String>, Failure> {
    let rx = receiver("127.0.0.1:0")?;
    let socket = client.open_socket(addr("127.0.0.1:0")).map_err(error)?;
    let payload = pattern(333);
    let spec = plain(socket.socket, rx.local_addr().map_err(error)?, 128);
    let response = client.send(&spec, &[111, 222], &payload).map_err(error)?;
    sent_ok(&response, 128)?;
    ensure!(
        response.bytes_sent == 128 * 333,
        "bytes_sent {}",
        response.bytes_sent
    );
    let mut skipped = Vec::new();
    let expect = Expect::loopback(&payload, source_of(&socket.local, None));
    expect_arrivals(&receive(&rx, 128)?, &expect, "a copy", &mut skipped)?;
    client.close_socket(socket.socket).map_err(error)?;
    Ok(skips(&skipped))
}

/// `SEND_DIRECT`: the payload is the output buffer, sent from the caller's pages through
/// partial MDLs; the request completes with the status only. A `payload_len` other than the
/// output buffer's is refused (`STATUS_INVALID_BUFFER_SIZE`) and sends nothing.
fn zero_copy(client: &Client) -> Result<Option<String>, Failure> {
    let capabilities = client.info().map_err(error)?.capabilities;
    ensure!(
        capabilities & capability::SEND_DIRECT != 0,
        "QUERY_INFO lacks the send_direct capability"
    );
    let rx = receiver("127.0.0.1:0")?;
    let socket = client.open_socket(addr("127.0.0.1:0")).map_err(error)?;
    let payload = pattern(1000);
    let to = rx.local_addr().map_err(error)?;
    let expect = Expect::loopback(&payload, source_of(&socket.local, None));
    let mut skipped = Vec::new();
    for segments in [&[][..], &[1, 998, 1], &[100; 10]] {
        let pending =
            match client.submit_send_direct(&plain(socket.socket, to, 3), segments, &payload) {
                Err(ClientError::Backend(BackendError::Unsupported(reason))) => {
                    client.close_socket(socket.socket).map_err(error)?;
                    return Ok(Some(reason.into()));
                }
                pending => pending.map_err(error)?,
            };
        sent_ok(&pending.wait().map_err(error)?, 3)?;
        let what = format!("SEND_DIRECT, MDLs {segments:?}");
        expect_arrivals(&receive(&rx, 3)?, &expect, &what, &mut skipped)?;
    }
    let before = client.stats().map_err(error)?;
    let mut request = vec![0; send_request_len(0, 0).unwrap_or_default()];
    encode_send_direct(&plain(socket.socket, to, 1), &[], 999, &mut request).map_err(error)?;
    let outcome = client
        .backend()
        .submit_direct(Ioctl::SendDirect.code(), &request, &payload)
        .map_err(error)?
        .wait(WAIT)
        .map_err(error)?;
    ensure!(
        outcome.status == STATUS_INVALID_BUFFER_SIZE,
        "payload_len 999 with a 1000-byte output buffer: {}",
        crate::status_text(outcome.status)
    );
    let after = client.stats().map_err(error)?;
    ensure!(
        after.driver.datagrams_sent == before.driver.datagrams_sent
            && rx.recv_up_to(1, Duration::from_millis(100)).is_empty(),
        "a refused SEND_DIRECT sent something"
    );
    client.close_socket(socket.socket).map_err(error)?;
    Ok(skips(&skipped))
}

fn pipelined(client: &Client) -> Result<Option<String>, Failure> {
    const TOTAL: usize = 5000;
    const INFLIGHT: usize = 4;
    let total = u64::try_from(TOTAL).map_err(error)?;
    let inflight = u64::try_from(INFLIGHT).map_err(error)?;
    let rx = receiver("127.0.0.1:0")?;
    let socket = client.open_socket(addr("127.0.0.1:0")).map_err(error)?;
    let to = rx.local_addr().map_err(error)?;
    let payload = pattern(200);
    let max_count = u64::from(client.info().map_err(error)?.max_count);
    let (sent, arrivals) = std::thread::scope(|scope| {
        // Loopback drops what the receive buffer cannot hold: drain while the requests go out.
        let draining = scope.spawn(|| rx.recv_up_to(TOTAL, WAIT));
        let sent = client.send_pipelined(
            &plain(socket.socket, to, 1),
            &[50, 150],
            &payload,
            total,
            INFLIGHT,
        );
        (sent, draining.join())
    });
    let summary = sent.map_err(error)?;
    let arrivals = arrivals.map_err(|_| "the receiving thread panicked".to_owned())?;
    let requests = total.div_ceil(max_count.max(1));
    ensure!(
        requests > 1,
        "max_count {max_count}: {TOTAL} datagrams fit one request"
    );
    ensure!(
        summary.all_sent()
            && summary.datagrams_failed == 0
            && summary.datagrams_unsent == 0
            && summary.statuses.is_empty(),
        "pipeline: {summary:?}"
    );
    ensure!(
        summary.requests == requests && summary.requests_refused == 0,
        "{} requests ({} refused), expected {requests}",
        summary.requests,
        summary.requests_refused
    );
    ensure!(
        u64::try_from(summary.peak_inflight).ok() == Some(requests.min(inflight)),
        "at most {} requests were in flight",
        summary.peak_inflight
    );
    ensure!(
        summary.bytes_sent == total * 200,
        "bytes_sent {}",
        summary.bytes_sent
    );
    ensure!(
        arrivals.len() == TOTAL,
        "{} of {TOTAL} datagrams arrived",
        arrivals.len()
    );
    ensure!(
        rx.recv(Duration::from_millis(50)).is_err(),
        "more than {TOTAL} datagrams arrived"
    );
    let mut skipped = Vec::new();
    let expect = Expect::loopback(&payload, source_of(&socket.local, None));
    expect_arrivals(&arrivals, &expect, "pipelined", &mut skipped)?;
    client.close_socket(socket.socket).map_err(error)?;
    Ok(skips(&skipped))
}

fn source_v4(client: &Client) -> Result<Option<String>, Failure> {
    let rx = receiver("127.0.0.1:0")?;
    let socket = client.open_socket(addr("0.0.0.0:0")).map_err(error)?;
    let mut skipped = Vec::new();
    for source in [IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 1, 2, 3])] {
        let spec = SendSpec {
            source: Some(source),
            ..plain(socket.socket, rx.local_addr().map_err(error)?, 1)
        };
        sent_ok(
            &client.send(&spec, &[], b"from elsewhere").map_err(error)?,
            1,
        )?;
        let expect = Expect::loopback(b"from elsewhere", source_of(&socket.local, Some(source)));
        let what = format!("source {source}");
        expect_arrivals(&receive(&rx, 1)?, &expect, &what, &mut skipped)?;
    }
    client.close_socket(socket.socket).map_err(error)?;
    Ok(skips(&skipped))
}

fn source_v6(client: &Client) -> Result<Option<String>, Failure> {
    let Ok(rx) = receiver("[::1]:0") else {
        return Ok(Some("no IPv6 loopback".into()));
    };
    let socket = client.open_socket(addr("[::]:0")).map_err(error)?;
    let to = rx.local_addr().map_err(error)?;
    let spec = SendSpec {
        source: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ..plain(socket.socket, to, 1)
    };
    sent_ok(
        &client.send(&spec, &[3, 7], b"v6 pktinfo").map_err(error)?,
        1,
    )?;
    let mut skipped = Vec::new();
    let expect = Expect::loopback(b"v6 pktinfo", source_of(&socket.local, spec.source));
    expect_arrivals(&receive(&rx, 1)?, &expect, "source ::1", &mut skipped)?;
    // A source this host does not own is refused by the stack: the option reaches it.
    let foreign = SendSpec {
        source: Some("2001:db8::1".parse().map_err(error)?),
        ..plain(socket.socket, to, 1)
    };
    let response = client.send(&foreign, &[], b"x").map_err(error)?;
    ensure!(
        response.status < 0 && response.datagrams_failed == 1,
        "a foreign source address was accepted: {}",
        crate::status_text(response.status)
    );
    client.close_socket(socket.socket).map_err(error)?;
    Ok(skips(&skipped))
}

/// TOS asked, ECN asked, and the TOS byte on the wire or the status the `SEND` fails with.
type MarkingCase = (Option<u8>, Option<Ecn>, Result<u8, i32>);

/// What a socket's provider lets one datagram carry, from the socket's features.
#[derive(Clone, Copy)]
pub(crate) struct Marks {
    /// A TOS byte / traffic class (`feature::TOS`).
    tos: bool,
    /// An ECN codepoint: folded into the TOS byte where the provider takes one, else alone
    /// (`feature::ECN`).
    ecn: bool,
    /// A USO segment size (`feature::USO`).
    uso: bool,
}

impl Marks {
    pub(crate) const fn of(features: u32) -> Self {
        let tos = features & feature::TOS != 0;
        Self {
            tos,
            ecn: tos || features & feature::ECN != 0,
            uso: features & feature::USO != 0,
        }
    }

    /// DSCP byte `dscp` (ECN bits clear) with ECT(1), as far as the socket takes them: the
    /// `SendSpec` TOS and ECN to ask for, and the byte the receiver should see.
    pub(crate) const fn dscp_ect1(self, dscp: u8) -> (Option<u8>, Option<Ecn>, u8) {
        let wire = match (self.tos, self.ecn) {
            (true, _) => dscp | 0x01,
            (false, true) => 0x01,
            (false, false) => 0x00,
        };
        (
            if self.tos { Some(dscp) } else { None },
            if self.ecn { Some(Ecn::Ect1) } else { None },
            wire,
        )
    }
}

/// TOS and ECN by Windows' rules (see `driver/core/src/send.rs`): where the socket's provider
/// takes the TOS byte on send, one `IP_TOS` / `IPV6_TCLASS` carries both (ECN in its low bits);
/// elsewhere ECN goes alone (`IP_ECN` / `IPV6_ECN`), a TOS byte with DSCP bits is
/// `STATUS_NOT_SUPPORTED` and one with only ECN bits is sent as that ECN codepoint; ECN CE is
/// refused (`STATUS_INVALID_PARAMETER`, `WSAEINVAL` on Windows) either way.
fn tos_and_ecn(client: &Client) -> Result<Option<String>, Failure> {
    let mut skipped = Vec::new();
    for local in ["127.0.0.1:0", "[::1]:0"] {
        let Some(rx) = receiver_or_skip(local, &mut skipped) else {
            continue;
        };
        let socket = client.open_socket(addr(local)).map_err(error)?;
        let marks = Marks::of(socket.features);
        let with_tos = |wire: u8| {
            if marks.tos {
                Ok(wire)
            } else {
                Err(STATUS_NOT_SUPPORTED)
            }
        };
        let ecn_only = |wire: u8| {
            if marks.ecn {
                Ok(wire)
            } else {
                Err(STATUS_NOT_SUPPORTED)
            }
        };
        let cases: [MarkingCase; 9] = [
            (Some(0xB8), None, with_tos(0xB8)),
            // Only ECN bits: ECT(1), with the TOS byte or as IP_ECN / IPV6_ECN.
            (
                Some(0x01),
                None,
                if marks.tos { Ok(0x01) } else { ecn_only(0x01) },
            ),
            // All zero: the default, accepted everywhere, nothing sent.
            (Some(0x00), None, Ok(0x00)),
            (None, Some(Ecn::Ect0), ecn_only(0x02)),
            (None, Some(Ecn::Ect1), ecn_only(0x01)),
            (Some(0xB8), Some(Ecn::Ect1), with_tos(0xB9)),
            (None, Some(Ecn::Ce), Err(STATUS_INVALID_PARAMETER)),
            (
                Some(0xBB),
                None,
                Err(if marks.tos {
                    STATUS_INVALID_PARAMETER
                } else {
                    STATUS_NOT_SUPPORTED
                }),
            ),
            (Some(0x03), Some(Ecn::NotEct), Ok(0x00)),
        ];
        for (tos, ecn, expected) in cases {
            let spec = SendSpec {
                tos,
                ecn,
                ..plain(socket.socket, rx.local_addr().map_err(error)?, 1)
            };
            let sent = client.send(&spec, &[], b"marked");
            match (expected, sent) {
                (Ok(wire), Ok(response)) => {
                    sent_ok(&response, 1)?;
                    let expect = Expect {
                        tos: wire,
                        ..Expect::loopback(b"marked", source_of(&socket.local, None))
                    };
                    let what = format!("{local} tos {tos:?} ecn {ecn:?}");
                    expect_arrivals(&receive(&rx, 1)?, &expect, &what, &mut skipped)?;
                }
                (Err(status), Err(ClientError::Status(got))) => ensure!(
                    got == status,
                    "{local} tos {tos:?} ecn {ecn:?}: refused with {}, expected {}",
                    crate::status_text(got),
                    crate::status_text(status)
                ),
                (expected, got) => {
                    return Err(format!(
                        "{local} tos {tos:?} ecn {ecn:?}: expected {expected:?}, got {got:?}"
                    ));
                }
            }
        }
        client.close_socket(socket.socket).map_err(error)?;
    }
    Ok(skips(&skipped))
}

/// USO where the socket's provider has it (`WskGetOption(UDP_SEND_MSG_SIZE)` succeeded), else
/// `STATUS_NOT_SUPPORTED`; a payload of one segment goes without the control message, so it
/// needs no USO and is sent either way.
fn uso(client: &Client) -> Result<Option<String>, Failure> {
    let mut skipped = Vec::new();
    for local in ["127.0.0.1:0", "[::1]:0"] {
        let Some(rx) = receiver_or_skip(local, &mut skipped) else {
            continue;
        };
        let socket = client.open_socket(addr(local)).map_err(error)?;
        let payload = pattern(2500);
        let spec = SendSpec {
            uso_segment_size: Some(1000),
            ..plain(socket.socket, rx.local_addr().map_err(error)?, 1)
        };
        // One segment needs no USO: it goes without UDP_SEND_MSG_SIZE, with or without it.
        let single = client
            .describe_send(&spec, &[], &payload[..1000])
            .map_err(error)?;
        ensure!(
            single.control_len == 0,
            "{local}: one segment still carries UDP_SEND_MSG_SIZE"
        );
        sent_ok(
            &client.send(&spec, &[], &payload[..1000]).map_err(error)?,
            1,
        )?;
        let from = source_of(&socket.local, None);
        let one = Expect::loopback(&payload[..1000], from);
        let what = format!("{local}, one segment");
        expect_arrivals(&receive(&rx, 1)?, &one, &what, &mut skipped)?;
        if socket.features & feature::USO == 0 {
            match client.send(&spec, &[500, 2000], &payload) {
                Err(ClientError::Status(status)) if status == STATUS_NOT_SUPPORTED => {}
                other => return Err(format!("{local}: USO without support: {other:?}")),
            }
            client.close_socket(socket.socket).map_err(error)?;
            continue;
        }
        let response = client.send(&spec, &[500, 2000], &payload).map_err(error)?;
        sent_ok(&response, 1)?;
        // Three segments, in order, that rebuild the payload.
        for (arrival, segment) in receive(&rx, 3)?.iter().zip(payload.chunks(1000)) {
            let what = format!("{local}, USO segment");
            expect_arrivals(
                [arrival],
                &Expect::loopback(segment, from),
                &what,
                &mut skipped,
            )?;
        }
        client.close_socket(socket.socket).map_err(error)?;
    }
    Ok(skips(&skipped))
}

/// Every option the socket's provider takes, together.
fn everything(client: &Client) -> Result<Option<String>, Failure> {
    let mut skipped = Vec::new();
    for (local, source) in [("127.0.0.1:0", "127.0.0.9"), ("[::1]:0", "::1")] {
        let Some(rx) = receiver_or_skip(local, &mut skipped) else {
            continue;
        };
        let socket = client.open_socket(addr(local)).map_err(error)?;
        let source: IpAddr = source.parse().map_err(error)?;
        let marks = Marks::of(socket.features);
        let (tos, ecn, wire_tos) = marks.dscp_ect1(0x28);
        let spec = SendSpec {
            source: Some(source),
            tos,
            ecn,
            uso_segment_size: marks.uso.then_some(700),
            ..plain(socket.socket, rx.local_addr().map_err(error)?, 3)
        };
        let payload = pattern(1400);
        let response = client
            .send(&spec, &[7, 693, 700], &payload)
            .map_err(error)?;
        sent_ok(&response, 3)?;
        let (arrivals, size) = if marks.uso { (6, 700) } else { (3, 1400) };
        let from = source_of(&socket.local, Some(source));
        for (arrival, segment) in receive(&rx, arrivals)?
            .iter()
            .zip(payload.chunks(size).cycle())
        {
            let expect = Expect {
                tos: wire_tos,
                ..Expect::loopback(segment, from)
            };
            expect_arrivals([arrival], &expect, local, &mut skipped)?;
        }
        client.close_socket(socket.socket).map_err(error)?;
    }
    Ok(skips(&skipped))
}

/// The `ws2def.h` encoding of the expected control buffer, written out independently of core:
/// source 127.0.0.2 on interface 0, then the TOS byte 0xB9 (TOS 0xB8 with ECT(1)) where the
/// provider takes it or ECN ECT(1) alone, then a USO segment size of 400 where it has USO.
fn expected_v4_control(marks: Marks) -> Vec<u8> {
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
    if marks.tos {
        expected.extend(header(16 + 4, 0, 3)); // IP_TOS, INT
        expected.extend([0xB9, 0, 0, 0, 0, 0, 0, 0]);
    } else if marks.ecn {
        expected.extend(header(16 + 4, 0, 50)); // IP_ECN, INT
        expected.extend([1, 0, 0, 0, 0, 0, 0, 0]);
    }
    if marks.uso {
        expected.extend(header(16 + 4, 17, 2)); // IPPROTO_UDP, UDP_SEND_MSG_SIZE, DWORD
        expected.extend([0x90, 0x01, 0, 0, 0, 0, 0, 0]);
    }
    expected
}

fn describe_exact(client: &Client) -> Result<Option<String>, Failure> {
    let socket = client.open_socket(addr("127.0.0.1:0")).map_err(error)?;
    let marks = Marks::of(socket.features);
    let spec = SendSpec {
        source: Some(IpAddr::from([127, 0, 0, 2])),
        tos: marks.tos.then_some(0xB8),
        ecn: marks.ecn.then_some(Ecn::Ect1),
        uso_segment_size: marks.uso.then_some(400),
        ..plain(socket.socket, addr("127.0.0.1:4660"), 1)
    };
    let described = client
        .describe_send(&spec, &[200, 600, 400], &pattern(1200))
        .map_err(error)?;
    let expected = expected_v4_control(marks);
    ensure!(
        described.control_bytes() == expected,
        "control bytes {:02x?}",
        described.control_bytes()
    );
    ensure!(
        described.control_len as usize == expected.len(),
        "ControlInfoLength {}",
        described.control_len
    );
    ensure!(
        described.remote_bytes() == [2, 0, 0x12, 0x34, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        "SOCKADDR_IN {:02x?}",
        described.remote_bytes()
    );
    ensure!(
        described.mdl_lengths() == [200, 600, 400],
        "MDLs {:?}",
        described.mdl_lengths()
    );
    ensure!(
        described.payload_len == 1200,
        "WSK_BUF length {}",
        described.payload_len
    );
    client.close_socket(socket.socket).map_err(error)?;
    Ok(None)
}

/// A valid `SEND` request for `socket` (two MDLs, 5 bytes to 127.0.0.1:9, no option: every
/// provider takes it).
///
/// # Errors
/// Never in practice (the request is valid by construction).
pub fn valid_send(socket: u32) -> Result<Vec<u8>, Failure> {
    let spec = plain(socket, addr("127.0.0.1:9"), 1);
    let mut bytes = vec![0; send_request_len(2, 5).unwrap_or(0)];
    encode_send(&spec, &[2, 3], b"hello", &mut bytes).map_err(error)?;
    Ok(bytes)
}

fn mutated(socket: u32, change: impl FnOnce(&mut SendRequest)) -> Result<Vec<u8>, Failure> {
    let mut bytes = valid_send(socket)?;
    let (fixed, _) =
        SendRequest::mut_from_prefix(&mut bytes).map_err(|_| "request too short".to_owned())?;
    change(fixed);
    Ok(bytes)
}

#[allow(clippy::too_many_lines, reason = "one table of cases")]
fn malformed(client: &Client) -> Result<Option<String>, Failure> {
    let opened = client.open_socket(addr("127.0.0.1:0")).map_err(error)?;
    let (socket, local) = (opened.socket, opened.local);
    let before = client.info().map_err(error)?.open_sockets;
    let out = size_of::<SendResponse>();
    let send = Ioctl::Send.code();
    let v6_to_v4 = {
        let mut bytes = vec![0; send_request_len(0, 1).unwrap_or(0)];
        encode_send(&plain(socket, addr("[::1]:9"), 1), &[], b"x", &mut bytes).map_err(error)?;
        bytes
    };
    let cases: Vec<(&str, u32, Vec<u8>, usize, i32)> = vec![
        (
            "unknown IOCTL",
            0x0012_A0FC,
            vec![],
            0,
            STATUS_INVALID_DEVICE_REQUEST,
        ),
        (
            "truncated SEND",
            send,
            valid_send(socket)?[..40].to_vec(),
            out,
            STATUS_INFO_LENGTH_MISMATCH,
        ),
        (
            "trailing byte",
            send,
            [valid_send(socket)?, vec![0]].concat(),
            out,
            STATUS_INFO_LENGTH_MISMATCH,
        ),
        (
            "old ABI version",
            send,
            mutated(socket, |r| r.header.abi_version = 0)?,
            out,
            STATUS_REVISION_MISMATCH,
        ),
        (
            "reserved field",
            send,
            mutated(socket, |r| r.reserved = 7)?,
            out,
            STATUS_INVALID_PARAMETER,
        ),
        (
            "unknown flag",
            send,
            mutated(socket, |r| r.flags |= 0x100)?,
            out,
            STATUS_INVALID_PARAMETER,
        ),
        (
            "Linux AF_INET6 value",
            send,
            mutated(socket, |r| r.remote.family = 10)?,
            out,
            STATUS_INVALID_ADDRESS_COMPONENT,
        ),
        (
            "port 0",
            send,
            mutated(socket, |r| r.remote.port = 0)?,
            out,
            STATUS_INVALID_ADDRESS_COMPONENT,
        ),
        (
            "ECN 4",
            send,
            mutated(socket, |r| {
                r.flags |= SendRequest::FLAG_ECN;
                r.ecn = 4;
            })?,
            out,
            STATUS_INVALID_PARAMETER,
        ),
        (
            "count 0",
            send,
            mutated(socket, |r| r.count = 0)?,
            out,
            STATUS_INVALID_PARAMETER,
        ),
        (
            "count 1025",
            send,
            mutated(socket, |r| r.count = 1025)?,
            out,
            STATUS_INVALID_PARAMETER,
        ),
        (
            "USO 0",
            send,
            mutated(socket, |r| r.flags |= SendRequest::FLAG_USO)?,
            out,
            STATUS_INVALID_PARAMETER,
        ),
        (
            "33 segments",
            send,
            mutated(socket, |r| r.segment_count = 33)?,
            out,
            STATUS_INVALID_BUFFER_SIZE,
        ),
        (
            "payload length lies",
            send,
            mutated(socket, |r| r.payload_len = 6)?,
            out,
            STATUS_INFO_LENGTH_MISMATCH,
        ),
        (
            "payload too large",
            send,
            mutated(socket, |r| r.payload_len = 70_000)?,
            out,
            STATUS_INVALID_BUFFER_SIZE,
        ),
        (
            "stale handle",
            send,
            mutated(socket, |r| r.socket ^= 0x100)?,
            out,
            STATUS_INVALID_HANDLE,
        ),
        (
            "handle 0",
            send,
            mutated(socket, |r| r.socket = 0)?,
            out,
            STATUS_INVALID_HANDLE,
        ),
        (
            "IPv6 destination on an IPv4 socket",
            send,
            v6_to_v4,
            out,
            STATUS_INVALID_ADDRESS_COMPONENT,
        ),
        (
            "no room for the response",
            send,
            valid_send(socket)?,
            out - 1,
            STATUS_BUFFER_TOO_SMALL,
        ),
        (
            "OPEN_SOCKET without room",
            Ioctl::OpenSocket.code(),
            wskudp_abi::encode_open_socket(addr("127.0.0.1:0"))
                .as_bytes()
                .to_vec(),
            31,
            STATUS_BUFFER_TOO_SMALL,
        ),
        (
            "OPEN_SOCKET of AF 0",
            Ioctl::OpenSocket.code(),
            [1, 0, 0, 0, 0, 0, 0, 0]
                .into_iter()
                .chain([0; 24])
                .collect(),
            32,
            STATUS_INVALID_ADDRESS_COMPONENT,
        ),
        (
            "CLOSE_SOCKET of a stranger",
            Ioctl::CloseSocket.code(),
            encode_close_socket(0xFFFF_FF01).as_bytes().to_vec(),
            0,
            STATUS_INVALID_HANDLE,
        ),
        (
            "CLOSE_SOCKET short",
            Ioctl::CloseSocket.code(),
            vec![1, 0, 0, 0],
            0,
            STATUS_INFO_LENGTH_MISMATCH,
        ),
    ];
    for (what, code, input, output_len, expected) in cases {
        let (status, output) = client.raw(code, &input, output_len).map_err(error)?;
        ensure!(
            status == expected,
            "{what}: {} instead of {}",
            crate::status_text(status),
            crate::status_text(expected)
        );
        ensure!(output.is_empty(), "{what}: output on an error status");
    }
    // Nothing changed: the socket is still there and still sends.
    ensure!(
        client.info().map_err(error)?.open_sockets == before,
        "open socket count changed"
    );
    let rx = receiver("127.0.0.1:0")?;
    let response = client
        .send(
            &plain(socket, rx.local_addr().map_err(error)?, 1),
            &[],
            b"still fine",
        )
        .map_err(error)?;
    sent_ok(&response, 1)?;
    let mut skipped = Vec::new();
    let expect = Expect::loopback(b"still fine", source_of(&local, None));
    expect_arrivals(&receive(&rx, 1)?, &expect, "after", &mut skipped)?;
    client.close_socket(socket).map_err(error)?;
    Ok(skips(&skipped))
}

fn stale_handles(client: &Client) -> Result<Option<String>, Failure> {
    let before = client.info().map_err(error)?.open_sockets;
    let first = client
        .open_socket(addr("127.0.0.1:0"))
        .map_err(error)?
        .socket;
    client.close_socket(first).map_err(error)?;
    let second = client
        .open_socket(addr("127.0.0.1:0"))
        .map_err(error)?
        .socket;
    ensure!(
        second != first,
        "a closed handle's number was reused at once"
    );
    let stale = client.close_socket(first);
    ensure!(
        matches!(
            stale,
            Err(crate::client::ClientError::Status(STATUS_INVALID_HANDLE))
        ),
        "closing a closed handle: {stale:?}"
    );
    let response = client
        .raw(Ioctl::Send.code(), &valid_send(first)?, 24)
        .map_err(error)?;
    ensure!(
        response.0 == STATUS_INVALID_HANDLE,
        "send on a closed handle: {}",
        crate::status_text(response.0)
    );
    client.close_socket(second).map_err(error)?;
    ensure!(
        client.info().map_err(error)?.open_sockets == before,
        "sockets left open"
    );
    Ok(None)
}

/// A scenario's outcome.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    /// Scenario name.
    pub name: &'static str,
    /// `"pass"`, `"fail"` or `"skip"`.
    pub result: &'static str,
    /// Why it failed or was skipped.
    pub detail: Option<String>,
}

/// Runs every scenario through `client`.
#[must_use]
pub fn run_all(client: &Client) -> Vec<Outcome> {
    all_through(client.front_door())
        .map(|scenario| {
            let (result, detail) = match (scenario.run)(client) {
                Ok(None) => ("pass", None),
                Ok(Some(reason)) => ("skip", Some(reason)),
                Err(failure) => ("fail", Some(failure)),
            };
            Outcome {
                name: scenario.name,
                result,
                detail,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::{Expect, expect_arrival, expect_arrivals};
    use crate::receiver::Arrival;

    const FROM: &str = "127.0.0.1:4000";

    fn arrival() -> Arrival {
        Arrival {
            payload: b"x".to_vec(),
            source: FROM
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0; 4], 0))),
            destination: None,
            interface: Some(1),
            tos: Some(0xB9),
            hop_limit: Some(7),
        }
    }

    fn expect() -> Expect<'static> {
        Expect {
            payload: b"x",
            source: FROM
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0; 4], 0))),
            tos: 0xB9,
            hop_limit: 7,
            interface: Some(1),
        }
    }

    #[test]
    fn every_property_reported_and_right_passes() {
        assert_eq!(expect_arrival(&arrival(), &expect()), Ok(None));
    }

    #[test]
    fn any_property_wrong_fails() {
        let wrong = [
            Expect {
                payload: b"y",
                ..expect()
            },
            Expect {
                source: SocketAddr::from(([127, 0, 0, 1], 4001)),
                ..expect()
            },
            Expect {
                source: SocketAddr::from(([127, 0, 0, 2], 4000)),
                ..expect()
            },
            Expect {
                tos: 0xB8,
                ..expect()
            },
            Expect {
                hop_limit: 128,
                ..expect()
            },
            Expect {
                interface: Some(2),
                ..expect()
            },
        ];
        for expect in wrong {
            assert!(expect_arrival(&arrival(), &expect).is_err(), "{expect:?}");
        }
    }

    /// Unreported is not a pass: each is named in the skip reason, once per `what`.
    #[test]
    fn an_unreported_property_is_a_skip() {
        let unreported = Arrival {
            tos: None,
            hop_limit: None,
            interface: None,
            ..arrival()
        };
        let reason = expect_arrival(&unreported, &expect()).ok().flatten();
        let reason = reason.unwrap_or_default();
        for property in ["TOS", "hop limit", "interface"] {
            assert!(reason.contains(property), "{reason}");
        }
        let no_index = Expect {
            interface: None,
            ..expect()
        };
        assert!(matches!(expect_arrival(&arrival(), &no_index), Ok(Some(_))));
        let mut skipped = Vec::new();
        let twice = [&unreported, &unreported];
        assert_eq!(
            expect_arrivals(twice, &expect(), "v4", &mut skipped),
            Ok(())
        );
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].starts_with("v4: "), "{skipped:?}");
    }
}
