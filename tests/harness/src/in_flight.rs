//! Scenarios with requests in flight: a close, a second handle's cleanup and a cancel racing
//! sends, the per-socket limit, the statistics' deltas and the ABI version range.
//!
//! They use only the client (no model hooks), so they run on the device backend as on every
//! front door of the model. Without a provider that holds completions, what is still in flight
//! when the close, cleanup or cancel comes depends on timing; the checks hold either way: every
//! datagram of a `SEND` is accounted for (sent, failed or not sent), and the loopback receiver
//! gets exactly the datagrams reported sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wskudp_abi::status::{STATUS_CANCELLED, STATUS_DEVICE_BUSY, STATUS_SUCCESS};
use wskudp_abi::{ABI_OLDEST, ABI_VERSION, SendCounters, SendResponse, SocketStats, StatsResponse};

use crate::backend::{Backend, BackendError};
use crate::client::{Client, ClientError, PendingSend};
use crate::pattern;
use crate::receiver::{Arrival, Receiver};
use crate::scenarios::{Failure, addr, ensure, error, plain, receive, receiver, sent_ok};

/// A receiver is drained until nothing arrived for this long after the work ended.
const QUIET: Duration = Duration::from_millis(300);

/// Runs `work` while another thread drains `rx` (loopback drops what the receive buffer
/// cannot hold), until `work` is done and nothing arrived for [`QUIET`]: `work`'s result and
/// every arrival.
fn draining<T>(
    rx: &Receiver,
    work: impl FnOnce() -> Result<T, Failure>,
) -> Result<(T, Vec<Arrival>), Failure> {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let drainer = scope.spawn(|| {
            let mut arrivals = Vec::new();
            loop {
                match rx.recv(QUIET) {
                    Ok(arrival) => arrivals.push(arrival),
                    Err(_) if done.load(Ordering::Acquire) => return arrivals,
                    Err(_) => {}
                }
            }
        });
        let result = work();
        done.store(true, Ordering::Release);
        let arrivals = drainer
            .join()
            .map_err(|_| "the receiving thread panicked".to_owned())?;
        Ok((result?, arrivals))
    })
}

/// Every datagram of a `count` request accounted for exactly once, and a response that says
/// success only when all were sent.
fn accounted(response: &SendResponse, count: u32) -> Result<(), Failure> {
    let total = u64::from(response.datagrams_sent)
        + u64::from(response.datagrams_failed)
        + u64::from(response.datagrams_not_sent);
    ensure!(
        total == u64::from(count),
        "{} sent + {} failed + {} not sent is not the {count} requested",
        response.datagrams_sent,
        response.datagrams_failed,
        response.datagrams_not_sent
    );
    ensure!(
        (response.status == STATUS_SUCCESS) == (response.datagrams_sent == count),
        "status {} with {} of {count} sent",
        crate::status_text(response.status),
        response.datagrams_sent
    );
    Ok(())
}

/// The receiver got exactly the `sent` datagrams reported sent.
fn arrived(arrivals: &[Arrival], sent: u32) -> Result<(), Failure> {
    ensure!(
        u32::try_from(arrivals.len()).ok() == Some(sent),
        "{} datagrams arrived, {sent} reported sent",
        arrivals.len()
    );
    Ok(())
}

/// A loopback receiver, its address, and a socket bound to loopback: `(receiver, its address,
/// socket)`.
fn loopback(client: &Client) -> Result<(Receiver, SocketAddr, u32), Failure> {
    let rx = receiver("127.0.0.1:0")?;
    let to = rx.local_addr().map_err(error)?;
    let socket = client
        .open_socket(addr("127.0.0.1:0"))
        .map_err(error)?
        .socket;
    Ok((rx, to, socket))
}

/// The record `QUERY_STATS` reports for `socket`.
fn socket_of(stats: &StatsResponse, socket: u32) -> Result<&SocketStats, Failure> {
    stats
        .socket(socket)
        .ok_or_else(|| format!("socket {socket} is missing from QUERY_STATS"))
}

/// The counters `QUERY_STATS` reports for `socket`.
fn counters_of(stats: &StatsResponse, socket: u32) -> Result<SendCounters, Failure> {
    socket_of(stats, socket).map(|entry| entry.counters)
}

/// Sockets open driver-wide (`QUERY_INFO`).
fn open_sockets(client: &Client<impl Backend + ?Sized>) -> Result<u32, Failure> {
    Ok(client.info().map_err(error)?.open_sockets)
}

/// `CLOSE_SOCKET` with a `SEND` of the driver's largest count in flight: the close succeeds
/// and is not held up by the send, which comes back with every datagram accounted for (those
/// never issued as not sent); the receiver gets exactly the datagrams reported sent.
pub(crate) fn close_with_sends_in_flight(client: &Client) -> Result<Option<String>, Failure> {
    let before = open_sockets(client)?;
    let count = client.info().map_err(error)?.max_count;
    let (rx, to, socket) = loopback(client)?;
    let payload = pattern(64);
    let (response, arrivals) = draining(&rx, || {
        let sending = client
            .submit_send(&plain(socket, to, count), &[], &payload)
            .map_err(error)?;
        client.close_socket(socket).map_err(error)?;
        sending.wait().map_err(error)
    })?;
    accounted(&response, count)?;
    arrived(&arrivals, response.datagrams_sent)?;
    ensure!(
        arrivals.iter().all(|a| a.payload == payload),
        "a datagram arrived altered"
    );
    ensure!(open_sockets(client)? == before, "the socket is still open");
    Ok(None)
}

/// A second handle (another `CreateFile`) closed with a `SEND` in flight on its socket: its
/// cleanup closes the socket and ends the send, every datagram accounted for; this handle's
/// socket and its send are untouched. Each receiver gets exactly the datagrams reported sent.
pub(crate) fn cleanup_with_sends_in_flight(client: &Client) -> Result<Option<String>, Failure> {
    let other = match client.backend().open_another() {
        Ok(other) => Client::<dyn Backend + '_>::new(other),
        Err(BackendError::Unsupported(why)) => return Ok(Some(why.to_owned())),
        Err(e) => return Err(error(e)),
    };
    let doomed_rx = receiver("127.0.0.1:0")?;
    let kept_rx = receiver("127.0.0.1:0")?;
    let doomed_to = doomed_rx.local_addr().map_err(error)?;
    let kept_to = kept_rx.local_addr().map_err(error)?;
    let before = open_sockets(client)?;
    let count = client.info().map_err(error)?.max_count;
    let doomed = other.open_socket(addr("127.0.0.1:0")).map_err(error)?;
    let kept = client.open_socket(addr("127.0.0.1:0")).map_err(error)?;
    let payload = pattern(48);
    let ((doomed_response, kept_response), doomed_arrivals) = draining(&doomed_rx, || {
        let doomed_send = other
            .submit_send(&plain(doomed.socket, doomed_to, count), &[], &payload)
            .map_err(error)?;
        let kept_send = client
            .submit_send(&plain(kept.socket, kept_to, 5), &[], &payload)
            .map_err(error)?;
        other.backend().close_now().map_err(error)?;
        let doomed_response = doomed_send.wait().map_err(error)?;
        Ok((doomed_response, kept_send.wait().map_err(error)?))
    })?;
    accounted(&doomed_response, count)?;
    arrived(&doomed_arrivals, doomed_response.datagrams_sent)?;
    sent_ok(&kept_response, 5)?;
    receive(&kept_rx, 5)?;
    ensure!(
        open_sockets(client)? == before + 1,
        "the cleanup left its socket open, or closed this handle's"
    );
    client.close_socket(kept.socket).map_err(error)?;
    Ok(None)
}

/// `CancelIoEx` on a `SEND` in flight: it comes back `STATUS_CANCELLED` with no counts (then no
/// more than its count arrived), or, had it finished first, as sent; nothing stays in flight,
/// and the socket still sends.
pub(crate) fn cancel_in_flight(client: &Client) -> Result<Option<String>, Failure> {
    let count = client.info().map_err(error)?.max_count;
    let (rx, to, socket) = loopback(client)?;
    let payload = pattern(32);
    let (outcome, arrivals) = draining(&rx, || {
        let sending = client
            .submit_send(&plain(socket, to, count), &[], &payload)
            .map_err(error)?;
        sending.cancel();
        Ok(sending.wait())
    })?;
    match outcome {
        Ok(response) => {
            accounted(&response, count)?;
            arrived(&arrivals, response.datagrams_sent)?;
        }
        Err(ClientError::Status(STATUS_CANCELLED)) => ensure!(
            u32::try_from(arrivals.len()).is_ok_and(|n| n <= count),
            "{} datagrams arrived of a cancelled {count}",
            arrivals.len()
        ),
        Err(other) => return Err(format!("a cancelled SEND: {other}")),
    }
    let mine = counters_of(&client.stats().map_err(error)?, socket)?;
    ensure!(
        mine.requests_in_flight == 0 && mine.datagrams_in_flight == 0,
        "still in flight after the cancel: {mine:?}"
    );
    let response = client
        .send(&plain(socket, to, 3), &[], &payload)
        .map_err(error)?;
    sent_ok(&response, 3)?;
    receive(&rx, 3)?;
    client.close_socket(socket).map_err(error)?;
    Ok(None)
}

/// More `SEND`s than the per-socket limit (`QUERY_INFO` `max_sends_per_socket`) issued at once:
/// each either completes with every datagram accounted for or is refused at once with
/// `STATUS_DEVICE_BUSY`, never anything else; the socket never had more in flight than the
/// limit; the receiver gets exactly the datagrams reported sent.
pub(crate) fn busy_at_the_socket_limit(client: &Client) -> Result<Option<String>, Failure> {
    const COUNT: u32 = 16;
    let limit = client.info().map_err(error)?.max_sends_per_socket;
    let (rx, to, socket) = loopback(client)?;
    let payload = pattern(16);
    let (outcomes, arrivals) = draining(&rx, || {
        let requests: Vec<PendingSend<'_>> = (0..limit + 4)
            .map(|_| client.submit_send(&plain(socket, to, COUNT), &[], &payload))
            .collect::<Result<_, _>>()
            .map_err(error)?;
        Ok(requests
            .into_iter()
            .map(PendingSend::wait)
            .collect::<Vec<_>>())
    })?;
    let mut sent = 0;
    let mut refused = 0;
    for outcome in outcomes {
        match outcome {
            Ok(response) => {
                accounted(&response, COUNT)?;
                sent += response.datagrams_sent;
            }
            Err(ClientError::Status(STATUS_DEVICE_BUSY)) => refused += 1,
            Err(other) => return Err(format!("a SEND beyond the limit: {other}")),
        }
    }
    arrived(&arrivals, sent)?;
    let mine = counters_of(&client.stats().map_err(error)?, socket)?;
    ensure!(
        mine.requests_in_flight_max <= limit,
        "{} requests in flight on the socket at once, the limit is {limit} ({refused} refused)",
        mine.requests_in_flight_max
    );
    client.close_socket(socket).map_err(error)?;
    Ok(None)
}

/// `QUERY_STATS` before and after a `SEND`: the driver-wide and the socket's counters grow by
/// exactly what the response reports, nothing failed (driver-wide or on the socket), nothing is
/// left in flight, and the socket's requests hold no pool any more.
pub(crate) fn stats_deltas(client: &Client) -> Result<Option<String>, Failure> {
    const COUNT: u32 = 20;
    const LEN: usize = 100;
    let (rx, to, socket) = loopback(client)?;
    let before = client.stats().map_err(error)?;
    let response = client
        .send(&plain(socket, to, COUNT), &[], &pattern(LEN))
        .map_err(error)?;
    sent_ok(&response, COUNT)?;
    receive(&rx, COUNT as usize)?;
    let after = client.stats().map_err(error)?;
    let bytes = u64::from(COUNT) * u64::try_from(LEN).map_err(error)?;
    for (what, was, now) in [
        ("driver", before.driver, after.driver),
        (
            "socket",
            counters_of(&before, socket)?,
            counters_of(&after, socket)?,
        ),
    ] {
        ensure!(
            now.datagrams_sent - was.datagrams_sent == u64::from(COUNT)
                && now.bytes_sent - was.bytes_sent == bytes,
            "{what}: {} datagrams, {} bytes more, expected {COUNT} and {bytes}",
            now.datagrams_sent - was.datagrams_sent,
            now.bytes_sent - was.bytes_sent
        );
        ensure!(
            now.datagrams_failed == was.datagrams_failed
                && now.datagrams_not_sent == was.datagrams_not_sent,
            "{what}: failures or unsent datagrams counted for a clean send"
        );
        ensure!(
            now.requests_in_flight_max >= 1 && now.datagrams_in_flight_max >= 1,
            "{what}: nothing was ever in flight"
        );
    }
    let mine = counters_of(&after, socket)?;
    ensure!(
        mine.requests_in_flight == 0 && mine.datagrams_in_flight == 0,
        "the socket still has something in flight: {mine:?}"
    );
    ensure!(
        after.failures().eq(before.failures()) && after.failures_other == before.failures_other,
        "a failure was counted for a clean send"
    );
    let entry = socket_of(&after, socket)?;
    ensure!(
        entry.failures().next().is_none() && entry.failures_other == 0,
        "the socket counted a failure for a clean send"
    );
    ensure!(
        entry.pool_blocks == 0 && entry.pool_bytes == 0,
        "the socket's finished requests still hold {} pool block(s), {} bytes",
        entry.pool_blocks,
        entry.pool_bytes
    );
    client.close_socket(socket).map_err(error)?;
    Ok(None)
}

/// `QUERY_INFO`'s ABI version range follows the rule: the driver serves its version and the one
/// before (`abi_oldest` is `abi_version - 1`, or 1), and the client writes the newest both know.
pub(crate) fn abi_version_range(client: &Client) -> Result<Option<String>, Failure> {
    let info = client.info().map_err(error)?;
    ensure!(
        info.abi_version >= 2 && info.abi_oldest == info.abi_version - 1,
        "the driver speaks ABI versions {} to {}: not its version and the one before",
        info.abi_oldest,
        info.abi_version
    );
    let agreed = client.abi_version().map_err(error)?;
    ensure!(
        agreed == ABI_VERSION.min(info.abi_version) && agreed >= ABI_OLDEST.max(info.abi_oldest),
        "the client writes version {agreed}; the driver speaks {} to {}, the client {ABI_OLDEST} to {ABI_VERSION}",
        info.abi_oldest,
        info.abi_version
    );
    Ok(None)
}
