//! Fixed-size request and response layouts.
//!
//! Each struct is `#[repr(C)]` with explicit reserved fields, so it has no implicit padding
//! and `zerocopy` can read it from and write it to any byte buffer without `unsafe`.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::{AbiError, CONTROL_CAPACITY, MAX_SEGMENTS, SOCKADDR_CAPACITY, WireAddr};

/// First field of every versioned request.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct RequestHeader {
    /// The ABI version the request is written in: [`crate::ABI_OLDEST`] to
    /// [`crate::ABI_VERSION`].
    pub abi_version: u32,
    /// Must be zero.
    pub reserved: u32,
}

impl RequestHeader {
    /// The header of a request built by this crate version.
    pub const CURRENT: Self = Self::version(crate::ABI_VERSION);

    /// The header of a request written in ABI `version`.
    #[must_use]
    pub const fn version(version: u32) -> Self {
        Self {
            abi_version: version,
            reserved: 0,
        }
    }

    /// Checks the version (one this crate speaks, and at least `introduced`, the version
    /// that defined the request), then the reserved field; returns the version.
    ///
    /// # Errors
    /// [`AbiError::VersionMismatch`] or [`AbiError::ReservedNotZero`].
    pub const fn check(&self, introduced: u32) -> Result<u32, AbiError> {
        let version = self.abi_version;
        if version < crate::ABI_OLDEST || version < introduced || version > crate::ABI_VERSION {
            return Err(AbiError::VersionMismatch { got: version });
        }
        if self.reserved != 0 {
            return Err(AbiError::ReservedNotZero);
        }
        Ok(version)
    }
}

/// `QUERY_INFO` output (the request takes no input).
///
/// Versions only append fields: the first [`InfoResponse::V1_LEN`] bytes are version 1's layout, frozen, so a client of any version
/// learns which versions the driver speaks. The driver writes the longest layout it speaks that
/// fits the output buffer.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct InfoResponse {
    /// [`crate::ABI_VERSION`] of the driver.
    pub abi_version: u32,
    /// Driver version: major, minor, patch, 0.
    pub driver_version: [u16; 4],
    /// Result of capturing the WSK provider NPI (`STATUS_SUCCESS` once captured).
    pub provider_status: i32,
    /// `WSK_PROVIDER_DISPATCH::Version` (`MAKE_WSK_VERSION(major, minor)`), 0 if not captured.
    pub provider_wsk_version: u16,
    /// Zero.
    pub reserved: u16,
    /// [`crate::capability`] bits.
    pub capabilities: u32,
    /// [`crate::MAX_SOCKETS`] as the driver applies it.
    pub max_sockets: u32,
    /// [`crate::MAX_SEGMENTS`].
    pub max_segments: u32,
    /// [`crate::MAX_PAYLOAD`].
    pub max_payload: u32,
    /// [`crate::MAX_COUNT`].
    pub max_count: u32,
    /// [`crate::CONTROL_CAPACITY`].
    pub control_capacity: u32,
    /// Sockets currently open, all handles together.
    pub open_sockets: u32,
    /// ABI 2: the oldest ABI version the driver serves ([`crate::ABI_OLDEST`]); a version-1
    /// driver serves only its own.
    pub abi_oldest: u32,
    /// ABI 2: [`crate::SEND_WINDOW`].
    pub send_window: u32,
    /// ABI 2: [`crate::MAX_SENDS_PER_SOCKET`].
    pub max_sends_per_socket: u32,
    /// ABI 2: [`crate::MAX_SENDS_PER_HANDLE`].
    pub max_sends_per_handle: u32,
}

impl InfoResponse {
    /// Bytes of version 1's layout.
    pub const V1_LEN: usize = 48;

    /// Reads a response of any version: fields a shorter (older) layout lacks read as zero.
    ///
    /// # Errors
    /// [`AbiError::InputTooShort`] if `bytes` is shorter than version 1's layout.
    pub fn read_any_version(bytes: &[u8]) -> Result<Self, AbiError> {
        read_any_version(bytes, Self::V1_LEN)
    }

    /// The bytes of this response in ABI `version`'s layout.
    #[must_use]
    pub fn bytes_for_version(&self, version: u32) -> &[u8] {
        prefix_for_version(self.as_bytes(), version, Self::V1_LEN)
    }
}

/// `OPEN_SOCKET` input: create a datagram socket of `local.family` and bind it to `local`.
///
/// An unspecified address and/or port 0 let the stack choose. Version 1's layout ends after
/// `local` ([`OpenSocketRequest::V1_LEN`]).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct OpenSocketRequest {
    /// Version header.
    pub header: RequestHeader,
    /// Local address to bind.
    pub local: WireAddr,
    /// ABI 2: `OpenSocketRequest::FLAG_*` bits.
    pub flags: u32,
    /// ABI 2: zero.
    pub reserved: u32,
}

impl OpenSocketRequest {
    /// Bytes of version 1's layout.
    pub const V1_LEN: usize = 32;
    /// An `AF_INET6` socket that also sends to IPv4 destinations (`IPV6_V6ONLY` cleared before
    /// `WskBind`); IPv4 destinations go out as v4-mapped addresses.
    pub const FLAG_DUAL_STACK: u32 = 1 << 0;
    /// Every defined flag.
    pub const FLAGS_ALL: u32 = Self::FLAG_DUAL_STACK;

    /// The request's bytes in ABI `version`'s layout.
    #[must_use]
    pub fn bytes_for_version(&self, version: u32) -> &[u8] {
        prefix_for_version(self.as_bytes(), version, Self::V1_LEN)
    }
}

/// `OPEN_SOCKET` output. Version 1's layout ends after `local`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct OpenSocketResponse {
    /// Handle for `SEND`/`CLOSE_SOCKET`; valid only on the device handle that opened it.
    pub socket: u32,
    /// Zero.
    pub reserved: u32,
    /// The address the socket is bound to (as `WskGetLocalAddress` reports it).
    pub local: WireAddr,
    /// ABI 2: what this socket's provider supports, probed when it opened
    /// ([`crate::feature`] bits).
    pub features: u32,
    /// ABI 2: zero.
    pub reserved2: u32,
}

impl OpenSocketResponse {
    /// Bytes of version 1's layout.
    pub const V1_LEN: usize = 32;

    /// The response's bytes in ABI `version`'s layout.
    #[must_use]
    pub fn bytes_for_version(&self, version: u32) -> &[u8] {
        prefix_for_version(self.as_bytes(), version, Self::V1_LEN)
    }
}

/// `SET_OPTION` input (ABI 2): one option of a socket, set through `WskControlSocket`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SetOptionRequest {
    /// Version header.
    pub header: RequestHeader,
    /// Handle from `OPEN_SOCKET`.
    pub socket: u32,
    /// Which option ([`crate::SocketOption`]'s wire value).
    pub option: u32,
    /// Its value, for every option but the destination.
    pub value: u32,
    /// Zero.
    pub reserved: u32,
    /// Its value, for the destination option; [`WireAddr::NONE`] otherwise.
    pub address: WireAddr,
}

/// The first `v1_len` bytes of a layout for version 1, all of it for later versions.
fn prefix_for_version(bytes: &[u8], version: u32, v1_len: usize) -> &[u8] {
    if version <= 1 {
        bytes.get(..v1_len).unwrap_or(bytes)
    } else {
        bytes
    }
}

/// Reads a response whose layout only grows across versions: at least `v1_len` bytes; fields a
/// shorter (older) layout lacks read as zero.
///
/// # Errors
/// [`AbiError::InputTooShort`] if `bytes` is shorter than version 1's layout.
pub fn read_any_version<T: FromBytes + IntoBytes + FromZeros>(
    bytes: &[u8],
    v1_len: usize,
) -> Result<T, AbiError> {
    if bytes.len() < v1_len {
        return Err(AbiError::InputTooShort {
            needed: v1_len,
            got: bytes.len(),
        });
    }
    let mut value = T::new_zeroed();
    let known = bytes.len().min(size_of::<T>());
    if let (Some(dst), Some(src)) = (value.as_mut_bytes().get_mut(..known), bytes.get(..known)) {
        dst.copy_from_slice(src);
    }
    Ok(value)
}

/// `CLOSE_SOCKET` input (no output). Sends in flight on the socket are cancelled by the
/// provider (`WskCloseSocket`) and complete before the close does.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct CloseSocketRequest {
    /// Version header.
    pub header: RequestHeader,
    /// Handle from `OPEN_SOCKET`.
    pub socket: u32,
    /// Zero.
    pub reserved: u32,
}

/// `SEND` / `DESCRIBE_SEND` input, fixed part. It is followed by `segment_count` `u32`
/// segment lengths and then `payload_len` payload bytes, and nothing else.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SendRequest {
    /// Version header.
    pub header: RequestHeader,
    /// Handle from `OPEN_SOCKET`.
    pub socket: u32,
    /// `SendRequest::FLAG_*` bits saying which optional fields apply.
    pub flags: u32,
    /// Destination.
    pub remote: WireAddr,
    /// Source address for `IP_PKTINFO`/`IPV6_PKTINFO` (with [`SendRequest::FLAG_SOURCE`]).
    pub source: WireAddr,
    /// TOS byte / traffic class (with [`SendRequest::FLAG_TOS`]).
    pub tos: u8,
    /// ECN codepoint 0..=3 (with [`SendRequest::FLAG_ECN`]).
    pub ecn: u8,
    /// Zero.
    pub reserved: u16,
    /// `UDP_SEND_MSG_SIZE` segment size (with [`SendRequest::FLAG_USO`]).
    pub uso_segment_size: u32,
    /// Times to send the datagram, 1..=[`crate::MAX_COUNT`].
    pub count: u32,
    /// Number of segment lengths that follow; 0 means one segment holding the whole payload.
    pub segment_count: u32,
    /// Payload bytes that follow the segment lengths.
    pub payload_len: u32,
    /// ABI 2: the interface to send from, in `IN_PKTINFO`/`IN6_PKTINFO` (with
    /// [`SendRequest::FLAG_SOURCE_IFINDEX`]); zero (reserved) in version 1.
    pub source_ifindex: u32,
}

impl SendRequest {
    /// `source` is set.
    pub const FLAG_SOURCE: u32 = 1 << 0;
    /// `tos` is set.
    pub const FLAG_TOS: u32 = 1 << 1;
    /// `ecn` is set.
    pub const FLAG_ECN: u32 = 1 << 2;
    /// `uso_segment_size` is set.
    pub const FLAG_USO: u32 = 1 << 3;
    /// ABI 2: `source_ifindex` is set.
    pub const FLAG_SOURCE_IFINDEX: u32 = 1 << 4;
    /// Every flag version 1 defines.
    pub const FLAGS_V1: u32 = Self::FLAG_SOURCE | Self::FLAG_TOS | Self::FLAG_ECN | Self::FLAG_USO;
    /// Every defined flag.
    pub const FLAGS_ALL: u32 = Self::FLAGS_V1 | Self::FLAG_SOURCE_IFINDEX;
}

/// `SEND` output. The IOCTL itself succeeds whenever the request was valid and every datagram
/// was accounted for; the per-datagram outcome is here.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SendResponse {
    /// `STATUS_SUCCESS` if every datagram was sent, otherwise the first failure's status.
    pub status: i32,
    /// Datagrams whose IRP completed successfully.
    pub datagrams_sent: u32,
    /// Datagrams that failed (allocation, submission or completion status).
    pub datagrams_failed: u32,
    /// Datagrams never handed to WSK: the request was cancelled or its socket closed first
    /// (ABI 2; zero in a version-1 response).
    pub datagrams_not_sent: u32,
    /// Sum of `IoStatus.Information` over the successful IRPs.
    pub bytes_sent: u64,
}

/// Datagram and request counters, of one socket or of the whole driver (`QUERY_STATS`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SendCounters {
    /// Datagrams whose `WskSendTo` IRP completed successfully.
    pub datagrams_sent: u64,
    /// Datagrams that failed (allocation, submission or completion status).
    pub datagrams_failed: u64,
    /// Datagrams never handed to WSK (request cancelled, socket closed).
    pub datagrams_not_sent: u64,
    /// Bytes the successful IRPs report sent.
    pub bytes_sent: u64,
    /// `SEND` requests in flight now.
    pub requests_in_flight: u32,
    /// Most `SEND` requests in flight at once so far.
    pub requests_in_flight_max: u32,
    /// `WskSendTo` IRPs in flight now.
    pub datagrams_in_flight: u32,
    /// Most `WskSendTo` IRPs in flight at once so far.
    pub datagrams_in_flight_max: u32,
}

/// Failures with one status, driver-wide or of one socket (`QUERY_STATS`); `status` 0 marks an
/// unused slot.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct FailureCount {
    /// The `NTSTATUS`.
    pub status: i32,
    /// Zero.
    pub reserved: u32,
    /// Datagrams that failed with it.
    pub count: u64,
}

/// One socket of the calling handle (`QUERY_STATS`): the driver-wide record's fields, for this
/// socket alone.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SocketStats {
    /// Handle from `OPEN_SOCKET`.
    pub socket: u32,
    /// `SocketStats::FLAG_*` bits.
    pub flags: u32,
    /// The address the socket is bound to.
    pub local: WireAddr,
    /// Its counters.
    pub counters: SendCounters,
    /// Its failed datagrams by status, the first [`crate::SOCKET_FAILURE_SLOTS`] statuses seen.
    pub failures: [FailureCount; crate::SOCKET_FAILURE_SLOTS],
    /// Its failed datagrams whose status found no slot.
    pub failures_other: u64,
    /// Non-paged pool blocks its `SEND` requests hold now (batches, payload copies, send
    /// operations); the driver-wide `pool_blocks` counts them too.
    pub pool_blocks: u64,
    /// Bytes in them.
    pub pool_bytes: u64,
}

impl SocketStats {
    /// The provider forced the socket closed (`STATUS_FILE_FORCED_CLOSED`); only
    /// `CLOSE_SOCKET` is left to do with it.
    pub const FLAG_FORCED_CLOSED: u32 = 1 << 0;

    /// The used part of `failures`.
    pub fn failures(&self) -> impl Iterator<Item = &FailureCount> {
        used_failures(&self.failures)
    }
}

/// The used slots of a failure table.
fn used_failures(table: &[FailureCount]) -> impl Iterator<Item = &FailureCount> {
    table.iter().filter(|failure| failure.status != 0)
}

/// `QUERY_STATS` input (ABI 2).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct StatsRequest {
    /// Version header.
    pub header: RequestHeader,
}

/// `QUERY_STATS` output: driver-wide counters, failures by status, pool in use, and each
/// socket of the calling handle.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct StatsResponse {
    /// Every socket of every handle, closed ones included, since the driver loaded.
    pub driver: SendCounters,
    /// Failed datagrams by status, the first [`crate::STATS_FAILURE_SLOTS`] statuses seen.
    pub failures: [FailureCount; crate::STATS_FAILURE_SLOTS],
    /// Failed datagrams whose status found no slot.
    pub failures_other: u64,
    /// Non-paged pool blocks the driver holds now.
    pub pool_blocks: u64,
    /// Bytes in them.
    pub pool_bytes: u64,
    /// Sockets open now, all handles together.
    pub open_sockets: u32,
    /// Entries of `sockets` in use (the calling handle's sockets).
    pub socket_count: u32,
    /// The calling handle's sockets.
    pub sockets: [SocketStats; crate::MAX_SOCKETS as usize],
}

impl Default for StatsResponse {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

impl StatsResponse {
    /// The used part of `sockets`.
    #[must_use]
    pub fn sockets(&self) -> &[SocketStats] {
        self.sockets
            .get(..self.socket_count as usize)
            .unwrap_or(&self.sockets)
    }

    /// The used part of `failures`.
    pub fn failures(&self) -> impl Iterator<Item = &FailureCount> {
        used_failures(&self.failures)
    }

    /// The record of `socket`, if it is one of the calling handle's.
    #[must_use]
    pub fn socket(&self, socket: u32) -> Option<&SocketStats> {
        self.sockets().iter().find(|entry| entry.socket == socket)
    }
}

/// `DESCRIBE_SEND` output: exactly what `SEND` would pass to `WskSendTo` for one datagram.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct DescribeSendResponse {
    /// `ControlInfoLength`.
    pub control_len: u32,
    /// Bytes of `remote` used (`sizeof(SOCKADDR_IN)` or `sizeof(SOCKADDR_IN6)`).
    pub remote_len: u32,
    /// `WSK_BUF::Length`.
    pub payload_len: u32,
    /// MDLs in the `WSK_BUF` chain.
    pub mdl_count: u32,
    /// `ByteCount` of each MDL, in chain order.
    pub mdl_lengths: [u32; MAX_SEGMENTS as usize],
    /// The `SOCKADDR` bytes (`RemoteAddress`).
    pub remote: [u8; SOCKADDR_CAPACITY],
    /// The `CMSGHDR` buffer bytes (`ControlInfo`).
    pub control: [u8; CONTROL_CAPACITY],
}

impl Default for DescribeSendResponse {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

impl DescribeSendResponse {
    /// The used part of `control`.
    #[must_use]
    pub fn control_bytes(&self) -> &[u8] {
        self.control
            .get(..self.control_len as usize)
            .unwrap_or(&self.control)
    }

    /// The used part of `remote`.
    #[must_use]
    pub fn remote_bytes(&self) -> &[u8] {
        self.remote
            .get(..self.remote_len as usize)
            .unwrap_or(&self.remote)
    }

    /// The used part of `mdl_lengths`.
    #[must_use]
    pub fn mdl_lengths(&self) -> &[u32] {
        self.mdl_lengths
            .get(..self.mdl_count as usize)
            .unwrap_or(&self.mdl_lengths)
    }
}

/// Reads a response: the `T` the driver wrote at the start of its output buffer.
///
/// # Errors
/// [`AbiError::InputTooShort`] if `bytes` is shorter than `T`.
pub fn read_response<T: FromBytes>(bytes: &[u8]) -> Result<T, AbiError> {
    T::read_from_prefix(bytes)
        .map(|(value, _)| value)
        .map_err(|_| AbiError::InputTooShort {
            needed: size_of::<T>(),
            got: bytes.len(),
        })
}

// The sizes a C client would declare; any change here is an ABI break and bumps ABI_VERSION.
const _: () = {
    assert!(size_of::<RequestHeader>() == 8);
    assert!(size_of::<WireAddr>() == 24);
    assert!(size_of::<InfoResponse>() == 64);
    assert!(core::mem::offset_of!(InfoResponse, abi_oldest) == InfoResponse::V1_LEN);
    assert!(size_of::<OpenSocketRequest>() == 40);
    assert!(core::mem::offset_of!(OpenSocketRequest, flags) == OpenSocketRequest::V1_LEN);
    assert!(size_of::<OpenSocketResponse>() == 40);
    assert!(core::mem::offset_of!(OpenSocketResponse, features) == OpenSocketResponse::V1_LEN);
    assert!(size_of::<SetOptionRequest>() == 48);
    assert!(size_of::<CloseSocketRequest>() == 16);
    assert!(size_of::<SendRequest>() == 88);
    assert!(size_of::<SendResponse>() == 24);
    assert!(size_of::<DescribeSendResponse>() == 304);
    assert!(size_of::<SendCounters>() == 48);
    assert!(size_of::<FailureCount>() == 16);
    assert!(size_of::<SocketStats>() == 80 + 16 * 4 + 3 * 8);
    assert!(core::mem::offset_of!(SocketStats, counters) == 32);
    assert!(core::mem::offset_of!(SocketStats, failures) == 80);
    assert!(core::mem::offset_of!(SocketStats, failures_other) == 144);
    assert!(core::mem::offset_of!(SocketStats, pool_blocks) == 152);
    assert!(core::mem::offset_of!(SocketStats, pool_bytes) == 160);
    assert!(size_of::<StatsRequest>() == 8);
    assert!(size_of::<StatsResponse>() == 48 + 16 * 8 + 3 * 8 + 2 * 4 + 168 * 64);
};
