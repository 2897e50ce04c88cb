//! The contract between the wskudp driver and user mode.
//!
//! Everything that crosses the IOCTL boundary is defined here once and used by both sides:
//! the driver (`wskudp-core`, through its dispatcher) parses requests with the `parse_*`
//! functions, the harness builds them with the `encode_*` functions, and both read and write
//! the fixed-size responses as plain `#[repr(C)]` structs.
//!
//! Rules of the wire format:
//! - Every IOCTL is `METHOD_BUFFERED` (see [`ioctl`]); buffers are native-endian (x64,
//!   little-endian) `#[repr(C)]` structs without implicit padding.
//! - Every request except `QUERY_INFO` starts with a [`RequestHeader`] naming the ABI version
//!   it is written in. The compatibility rule: a driver serves its own version and the one
//!   before ([`ABI_OLDEST`]..=[`ABI_VERSION`]) and answers each request in the layout of the
//!   version it was written in; a request introduced in version N needs a header >= N.
//!   `QUERY_INFO` (no header) says which versions the driver speaks, so a client picks the
//!   newest both know. A new version may add requests and append response fields; changing an
//!   existing layout needs a version whose predecessor is no longer served.
//! - Every length, count and offset is checked with checked arithmetic; a request is accepted
//!   only if its size is exactly what its fields describe. Each failure is an [`AbiError`] with
//!   one precise `NTSTATUS` ([`AbiError::status`]).
//!
//! IRQL: every function here is pure computation on caller-provided memory and may run at any
//! IRQL as long as that memory is resident (non-paged at `DISPATCH_LEVEL`).

#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod addr;
mod bench;
mod error;
pub mod ioctl;
mod send;
pub mod status;
mod wire;

pub use addr::{AF_INET, AF_INET6, AF_UNSPEC, WireAddr};
pub use bench::{
    BenchApi, BenchRequest, BenchResponse, BenchShape, BenchView, MAX_BENCH_BATCH, MAX_BENCH_DEPTH,
    encode_bench, parse_bench,
};
pub use error::AbiError;
pub use ioctl::Ioctl;
pub use send::{
    Ecn, OpenSocketView, SendSpec, SendView, SetOptionView, SocketOption, encode_close_socket,
    encode_open_socket, encode_open_socket_with, encode_query_stats, encode_send,
    encode_send_direct, encode_set_option, parse_close_socket, parse_open_socket,
    parse_query_stats, parse_send, parse_send_direct, parse_set_option, send_request_len,
    set_request_version,
};
pub use wire::{
    CloseSocketRequest, DescribeSendResponse, FailureCount, InfoResponse, OpenSocketRequest,
    OpenSocketResponse, RequestHeader, SendCounters, SendRequest, SendResponse, SetOptionRequest,
    SocketStats, StatsRequest, StatsResponse, read_any_version, read_response,
};

/// The newest ABI version this crate speaks.
///
/// What only version 2 has (a version-1 request cannot ask for it, a version-1 response does
/// not carry it):
/// - the requests `SET_OPTION` and `QUERY_STATS` (with a version-1 header they get
///   `STATUS_REVISION_MISMATCH`; a version-1 driver answers `STATUS_INVALID_DEVICE_REQUEST`);
/// - `OPEN_SOCKET`'s `flags` ([`OpenSocketRequest::FLAG_DUAL_STACK`]) and its response's
///   `features` (both past [`OpenSocketRequest::V1_LEN`] / [`OpenSocketResponse::V1_LEN`]);
/// - `SEND`'s [`SendRequest::FLAG_SOURCE_IFINDEX`] with `source_ifindex` (reserved, zero, in
///   version 1), and an omitted destination (`AF_UNSPEC`: the socket's own, set with
///   `SET_OPTION`), which version 1 refuses;
/// - `SendResponse::datagrams_not_sent` (reserved, zero, in version 1);
/// - the `InfoResponse` fields after [`InfoResponse::V1_LEN`]: `abi_oldest`, `send_window`,
///   `max_sends_per_socket`, `max_sends_per_handle`.
///
/// Served to both versions alike: `QUERY_INFO`'s `max_payload` is 65 527 (IPv6's largest; it was
/// 65 507), which only widens what a version-1 client may send.
pub const ABI_VERSION: u32 = 2;
/// The oldest ABI version a driver built from this crate serves. Requests in any version outside
/// `ABI_OLDEST..=ABI_VERSION` are refused with `STATUS_REVISION_MISMATCH`.
pub const ABI_OLDEST: u32 = ABI_VERSION - 1;

/// Kernel device name the driver creates.
pub const DEVICE_NAME: &str = r"\Device\WskUdp";
/// Symbolic link to [`DEVICE_NAME`] in the global DOS device namespace.
pub const DOS_DEVICE_NAME: &str = r"\DosDevices\WskUdp";
/// Path user mode opens with `CreateFileW`.
pub const USER_DEVICE_PATH: &str = r"\\.\WskUdp";

/// Largest datagram payload accepted: an IPv6 UDP payload, 65535 - 8 (UDP header).
///
/// The driver applies IPv4's own limit, 65507 (65535 - 20 - 8), to datagrams that travel as IPv4
/// (`STATUS_INVALID_BUFFER_SIZE`).
pub const MAX_PAYLOAD: u32 = 65_527;
/// Most MDLs one datagram may be split into.
pub const MAX_SEGMENTS: u32 = 32;
/// Most datagrams one `SEND` request may ask for.
pub const MAX_COUNT: u32 = 1024;
/// Most sockets the driver keeps open at once (all handles together).
pub const MAX_SOCKETS: u32 = 64;
/// Bytes the driver reserves for one datagram's control messages (`CMSGHDR` buffer).
pub const CONTROL_CAPACITY: usize = 128;
/// Datagrams of one `SEND` request in flight at once: completions refill the window, so a
/// request's memory is bounded whatever its count.
pub const SEND_WINDOW: u32 = 32;
/// Most `SEND` requests in flight on one socket; more fail with `STATUS_DEVICE_BUSY`.
pub const MAX_SENDS_PER_SOCKET: u32 = 64;
/// Most `SEND` requests in flight on one device handle; more fail with `STATUS_DEVICE_BUSY`.
pub const MAX_SENDS_PER_HANDLE: u32 = 256;
/// Distinct failure statuses `QUERY_STATS` counts one by one.
pub const STATS_FAILURE_SLOTS: usize = 8;
/// Distinct failure statuses `QUERY_STATS` counts one by one for each socket.
pub const SOCKET_FAILURE_SLOTS: usize = 4;
/// Bytes reserved for one encoded `SOCKADDR` (a `SOCKADDR_IN6` is 28).
pub const SOCKADDR_CAPACITY: usize = 32;

/// What one socket's provider supports, probed when it opened
/// ([`OpenSocketResponse::features`], ABI 2).
pub mod feature {
    /// UDP segmentation offload: `UDP_SEND_MSG_SIZE` (`WskGetOption` succeeded).
    pub const USO: u32 = 1 << 0;
    /// The TOS byte / traffic class may be set per datagram (`IP_TOS` / `IPV6_TCLASS`).
    pub const TOS: u32 = 1 << 1;
    /// The ECN codepoint may be set per datagram (`IP_ECN` / `IPV6_ECN`).
    pub const ECN: u32 = 1 << 2;
    /// The provider offers `WskSendMessages`.
    pub const SEND_MESSAGES: u32 = 1 << 3;
    /// An `AF_INET6` socket that also reaches IPv4 destinations.
    pub const DUAL_STACK: u32 = 1 << 4;

    /// Each feature bit with the name user mode shows for it.
    pub const NAMES: [(u32, &str); 5] = [
        (USO, "uso"),
        (TOS, "tos"),
        (ECN, "ecn"),
        (SEND_MESSAGES, "send_messages"),
        (DUAL_STACK, "dual_stack"),
    ];
}

/// Capability bits reported in [`InfoResponse::capabilities`].
///
/// `TOS`, `ECN` and `USO` are the provider's, set once the driver probed it (at the first
/// `OPEN_SOCKET`; one probe per driver, on an `AF_INET6` socket, for both families); each
/// socket's [`feature`] bits say the same.
pub mod capability {
    /// IPv4 datagram sockets.
    pub const IPV4: u32 = 1 << 0;
    /// IPv6 datagram sockets.
    pub const IPV6: u32 = 1 << 1;
    /// Per-datagram source address (`IP_PKTINFO` / `IPV6_PKTINFO`).
    pub const SOURCE_ADDRESS: u32 = 1 << 2;
    /// Per-datagram TOS / traffic class (`IP_TOS` / `IPV6_TCLASS`).
    pub const TOS: u32 = 1 << 3;
    /// Per-datagram ECN codepoint (`IP_ECN` / `IPV6_ECN`).
    pub const ECN: u32 = 1 << 4;
    /// UDP segmentation offload request (`UDP_SEND_MSG_SIZE`).
    pub const USO: u32 = 1 << 5;
    /// Payload split into a caller-chosen MDL chain.
    pub const MDL_CHAIN: u32 = 1 << 6;
    /// `DESCRIBE_SEND`: the exact `WskSendTo` arguments, without sending.
    pub const DESCRIBE_SEND: u32 = 1 << 7;
    /// `BENCH`: the driver sends and times datagrams itself (added within ABI 2: a driver
    /// without this bit answers the request `STATUS_INVALID_DEVICE_REQUEST`).
    pub const BENCH: u32 = 1 << 8;
    /// `SEND_DIRECT`: a `SEND` sent from the caller's own locked pages (`METHOD_IN_DIRECT`),
    /// no copy (added within ABI 2, as `BENCH`).
    pub const SEND_DIRECT: u32 = 1 << 9;
    /// Every capability this ABI version defines.
    pub const ALL: u32 = IPV4
        | IPV6
        | SOURCE_ADDRESS
        | TOS
        | ECN
        | USO
        | MDL_CHAIN
        | DESCRIBE_SEND
        | BENCH
        | SEND_DIRECT;

    /// Each capability bit with the name user mode shows for it.
    pub const NAMES: [(u32, &str); 10] = [
        (IPV4, "ipv4"),
        (IPV6, "ipv6"),
        (SOURCE_ADDRESS, "source_address"),
        (TOS, "tos"),
        (ECN, "ecn"),
        (USO, "uso"),
        (MDL_CHAIN, "mdl_chain"),
        (DESCRIBE_SEND, "describe_send"),
        (BENCH, "bench"),
        (SEND_DIRECT, "send_direct"),
    ];
}
