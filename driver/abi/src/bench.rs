//! `BENCH`: the driver sends `count` datagrams of `size` bytes itself, timed with the kernel's
//! performance counter, so the figures are the datapath's own, without a user/kernel round trip
//! per request.

use core::net::SocketAddr;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::send::parse_options;
use crate::wire::{RequestHeader, SendRequest};
use crate::{AbiError, MAX_PAYLOAD, SendSpec, WireAddr};

/// Most WSK calls a `BENCH` keeps in flight.
pub const MAX_BENCH_DEPTH: u32 = 64;
/// Most datagrams one `WskSendMessages` call of a `BENCH` carries.
pub const MAX_BENCH_BATCH: u32 = 32;

/// The WSK function a `BENCH` sends with.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchApi {
    /// `WskSendTo`, one datagram per call.
    SendTo = 1,
    /// `WskSendMessages`, `batch` datagrams per call (`WskSendTo` where the provider lacks it).
    SendMessages = 2,
}

impl BenchApi {
    /// The API a wire value names.
    #[must_use]
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::SendTo),
            2 => Some(Self::SendMessages),
            _ => None,
        }
    }

    /// The name the CLI shows.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::SendTo => "sendto",
            Self::SendMessages => "sendmessages",
        }
    }
}

/// `BENCH` input.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BenchRequest {
    /// Version header (ABI 2 or later).
    pub header: RequestHeader,
    /// Handle from `OPEN_SOCKET`.
    pub socket: u32,
    /// `SendRequest::FLAG_*` bits: which of `source`, `tos`, `ecn`, `uso_segment_size` and
    /// `source_ifindex` apply, as for `SEND`.
    pub flags: u32,
    /// Destination (`AF_UNSPEC`: the socket's own).
    pub remote: WireAddr,
    /// Source address.
    pub source: WireAddr,
    /// TOS byte / traffic class.
    pub tos: u8,
    /// ECN codepoint.
    pub ecn: u8,
    /// Zero.
    pub reserved: u16,
    /// `UDP_SEND_MSG_SIZE` segment size.
    pub uso_segment_size: u32,
    /// Interface to send from.
    pub source_ifindex: u32,
    /// [`BenchApi`] value.
    pub api: u32,
    /// Payload bytes, 1..=[`MAX_PAYLOAD`].
    pub size: u32,
    /// WSK calls in flight, 1..=[`MAX_BENCH_DEPTH`].
    pub depth: u32,
    /// Datagrams per `WskSendMessages` call, 1..=[`MAX_BENCH_BATCH`]; 1 with `SendTo`.
    pub batch: u32,
    /// Zero.
    pub reserved2: u32,
    /// Datagrams to send, at least 1.
    pub count: u64,
    /// Datagrams per second the driver paces to; 0: as fast as it can.
    pub rate: u64,
}

/// `BENCH` output: what was sent, how long it took, and what it cost.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct BenchResponse {
    /// `STATUS_SUCCESS` if every datagram was sent, otherwise the first failure's status.
    pub status: i32,
    /// The [`BenchApi`] used: `SendTo` if the provider has no `WskSendMessages`.
    pub api: u32,
    /// Datagrams asked for.
    pub datagrams: u64,
    /// Datagrams whose IRP completed successfully.
    pub datagrams_sent: u64,
    /// Datagrams whose IRP failed (or could not be issued).
    pub datagrams_failed: u64,
    /// Datagrams never issued (cancelled, socket closed).
    pub datagrams_not_sent: u64,
    /// Sum of `IoStatus.Information` over the successful IRPs.
    pub bytes_sent: u64,
    /// WSK calls made.
    pub wsk_calls: u64,
    /// Performance-counter ticks from the request's start to its last completion.
    pub ticks: u64,
    /// Performance-counter ticks per second.
    pub frequency: u64,
    /// The longest any completion routine of the bench ran, in ticks (work at `DISPATCH_LEVEL`).
    pub longest_completion_ticks: u64,
    /// Pool blocks, IRPs and MDLs the driver allocated while the bench ran (zero once its
    /// socket's pool is warm).
    pub allocations: u64,
}

/// A validated `BENCH` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchView {
    /// The ABI version the request is written in.
    pub abi_version: u32,
    /// Socket, destination and options (`count` is unused: see [`BenchView::count`]).
    pub spec: SendSpec,
    /// The WSK function.
    pub api: BenchApi,
    /// Payload bytes.
    pub size: u32,
    /// WSK calls in flight.
    pub depth: u32,
    /// Datagrams per call.
    pub batch: u32,
    /// Datagrams to send.
    pub count: u64,
    /// Datagrams per second, 0 unpaced.
    pub rate: u64,
}

/// Validates a `BENCH` input buffer.
///
/// # Errors
/// The first rule the buffer breaks: size, version, reserved fields, flags, addresses,
/// options, then the bench's own ranges.
pub fn parse_bench(input: &[u8]) -> Result<BenchView, AbiError> {
    let request =
        BenchRequest::read_from_bytes(input).map_err(|_| AbiError::InputLengthMismatch {
            expected: size_of::<BenchRequest>(),
            got: input.len(),
        })?;
    let abi_version = request.header.check(crate::Ioctl::Bench.introduced())?;
    if request.reserved != 0 || request.reserved2 != 0 {
        return Err(AbiError::ReservedNotZero);
    }
    let unknown = request.flags & !SendRequest::FLAGS_ALL;
    if unknown != 0 {
        return Err(AbiError::UnknownFlags(unknown));
    }
    let remote = if request.remote.is_none() {
        None
    } else {
        let remote: SocketAddr = request.remote.socket_addr()?;
        if remote.port() == 0 {
            return Err(AbiError::ZeroPort);
        }
        Some(remote)
    };
    let as_send = SendRequest {
        flags: request.flags,
        source: request.source,
        tos: request.tos,
        ecn: request.ecn,
        uso_segment_size: request.uso_segment_size,
        source_ifindex: request.source_ifindex,
        ..SendRequest::default()
    };
    let options = parse_options(&as_send, remote)?;
    let out_of_range = |field: &'static str, value: u64| AbiError::BenchOutOfRange { field, value };
    let api = BenchApi::from_u32(request.api)
        .ok_or_else(|| out_of_range("api", u64::from(request.api)))?;
    if request.size == 0 || request.size > MAX_PAYLOAD {
        return Err(out_of_range("size", u64::from(request.size)));
    }
    if request.depth == 0 || request.depth > MAX_BENCH_DEPTH {
        return Err(out_of_range("depth", u64::from(request.depth)));
    }
    let max_batch = if api == BenchApi::SendTo {
        1
    } else {
        MAX_BENCH_BATCH
    };
    if request.batch == 0 || request.batch > max_batch {
        return Err(out_of_range("batch", u64::from(request.batch)));
    }
    if request.count == 0 {
        return Err(out_of_range("count", 0));
    }
    Ok(BenchView {
        abi_version,
        spec: SendSpec {
            socket: request.socket,
            remote,
            source: options.source,
            tos: options.tos,
            ecn: options.ecn,
            uso_segment_size: options.uso_segment_size,
            source_ifindex: options.source_ifindex,
            count: 1,
        },
        api,
        size: request.size,
        depth: request.depth,
        batch: request.batch,
        count: request.count,
        rate: request.rate,
    })
}

/// What a client asks `BENCH` for, besides the socket options in its [`SendSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchShape {
    /// The WSK function.
    pub api: BenchApi,
    /// Payload bytes.
    pub size: u32,
    /// WSK calls in flight.
    pub depth: u32,
    /// Datagrams per call.
    pub batch: u32,
    /// Datagrams to send.
    pub count: u64,
    /// Datagrams per second, 0 unpaced.
    pub rate: u64,
}

/// Builds a `BENCH` request for `spec`'s socket and options (its `count` is ignored).
///
/// # Errors
/// Whatever [`parse_bench`] says about the result.
pub fn encode_bench(spec: &SendSpec, shape: &BenchShape) -> Result<BenchRequest, AbiError> {
    let options = crate::send::options_of(spec);
    let fixed = BenchRequest {
        header: RequestHeader::CURRENT,
        socket: spec.socket,
        remote: spec
            .remote
            .map_or(WireAddr::NONE, WireAddr::from_socket_addr),
        flags: options.flags,
        source: options.source,
        tos: options.tos,
        ecn: options.ecn,
        uso_segment_size: options.uso_segment_size,
        source_ifindex: options.source_ifindex,
        api: shape.api as u32,
        size: shape.size,
        depth: shape.depth,
        batch: shape.batch,
        count: shape.count,
        rate: shape.rate,
        ..BenchRequest::default()
    };
    parse_bench(fixed.as_bytes())?;
    Ok(fixed)
}

// The sizes a C client would declare; any change here is an ABI break.
const _: () = {
    assert!(size_of::<BenchRequest>() == 112);
    assert!(size_of::<BenchResponse>() == 88);
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AbiError;

    fn spec() -> SendSpec {
        SendSpec {
            socket: 0x101,
            remote: Some("127.0.0.1:9000".parse().unwrap()),
            source: None,
            tos: None,
            ecn: None,
            uso_segment_size: None,
            source_ifindex: None,
            count: 1,
        }
    }

    const SHAPE: BenchShape = BenchShape {
        api: BenchApi::SendMessages,
        size: 64,
        depth: 8,
        batch: 16,
        count: 1_000_000,
        rate: 0,
    };

    #[test]
    fn a_request_round_trips() {
        let request = encode_bench(&spec(), &SHAPE).unwrap();
        let view = parse_bench(request.as_bytes()).unwrap();
        assert_eq!(view.count, 1_000_000);
        assert_eq!(
            (view.api, view.size, view.depth, view.batch),
            (BenchApi::SendMessages, 64, 8, 16)
        );
        assert_eq!(view.spec.remote, spec().remote);
    }

    #[test]
    fn each_range_is_refused_by_name() {
        let cases = [
            (BenchShape { size: 0, ..SHAPE }, "size"),
            (
                BenchShape {
                    size: MAX_PAYLOAD + 1,
                    ..SHAPE
                },
                "size",
            ),
            (BenchShape { depth: 0, ..SHAPE }, "depth"),
            (
                BenchShape {
                    depth: MAX_BENCH_DEPTH + 1,
                    ..SHAPE
                },
                "depth",
            ),
            (BenchShape { batch: 0, ..SHAPE }, "batch"),
            (
                BenchShape {
                    batch: MAX_BENCH_BATCH + 1,
                    ..SHAPE
                },
                "batch",
            ),
            (
                BenchShape {
                    api: BenchApi::SendTo,
                    ..SHAPE
                },
                "batch",
            ),
            (BenchShape { count: 0, ..SHAPE }, "count"),
        ];
        for (shape, field) in cases {
            match encode_bench(&spec(), &shape) {
                Err(AbiError::BenchOutOfRange { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{shape:?}: {other:?}"),
            }
        }
        let mut request = encode_bench(&spec(), &SHAPE).unwrap();
        request.api = 3;
        assert!(matches!(
            parse_bench(request.as_bytes()),
            Err(AbiError::BenchOutOfRange {
                field: "api",
                value: 3
            })
        ));
        assert!(matches!(
            parse_bench(&request.as_bytes()[1..]),
            Err(AbiError::InputLengthMismatch { .. })
        ));
    }
}
