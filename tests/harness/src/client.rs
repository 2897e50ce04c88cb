//! Typed requests over a [`Backend`]: what the CLI, the bench and the scenario suite use.
//!
//! Sending goes one way everywhere: [`Client::submit_send`] puts one `SEND` in flight,
//! [`Client::send`] waits for it, and [`Client::send_pipelined`] keeps several in flight to
//! send any number of datagrams.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;

use std::sync::atomic::{AtomicU32, Ordering};
use wskudp_abi::status::{STATUS_DEVICE_BUSY, STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS};

use wskudp_abi::{
    ABI_OLDEST, ABI_VERSION, AbiError, BenchResponse, BenchShape, DescribeSendResponse,
    InfoResponse, Ioctl, OpenSocketResponse, RequestHeader, SendResponse, SendSpec, SocketOption,
    StatsResponse, encode_bench, encode_close_socket, encode_open_socket_with, encode_query_stats,
    encode_send, encode_send_direct, encode_set_option, read_any_version, read_response,
    send_request_len, set_request_version, status::nt_success,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::backend::{Backend, BackendError, COMPLETION_TIMEOUT, InFlight, ModelReport};

/// Most `SEND` requests [`Client::send_pipelined`] keeps in flight.
///
/// Each holds up to the driver's `max_count` datagrams in kernel memory (an IRP, a context
/// and MDLs apiece), and past a few requests more depth hides no more latency: it only grows
/// that footprint.
pub const MAX_INFLIGHT: usize = 64;

/// Why a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// The request was refused before reaching the driver (the ABI's own validation).
    Invalid(AbiError),
    /// The driver completed it with an error status.
    Status(i32),
    /// It did not reach the driver or did not come back.
    Backend(BackendError),
    /// The driver's response is shorter than its layout.
    ShortResponse(AbiError),
    /// The caller asked for something no request can express (e.g. zero datagrams).
    Usage(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(error) => write!(f, "invalid request: {error}"),
            Self::Status(status) => write!(
                f,
                "the driver refused the request: {}",
                crate::status_text(*status)
            ),
            Self::Backend(error) => write!(f, "{error}"),
            Self::ShortResponse(error) => write!(f, "malformed response: {error}"),
            Self::Usage(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<BackendError> for ClientError {
    fn from(error: BackendError) -> Self {
        Self::Backend(error)
    }
}

/// A handle on the driver, through any backend (`dyn Backend` unless a caller needs the
/// concrete one, e.g. for the model's counters).
///
/// The client speaks ABI versions [`ABI_OLDEST`] to its `newest` and, before its first
/// versioned request, asks the driver (`QUERY_INFO`) which it speaks: requests then carry the
/// newest version both know (the compatibility rule in `wskudp_abi`).
pub struct Client<B: Backend + ?Sized = dyn Backend> {
    backend: Box<B>,
    newest: u32,
    /// The version agreed with the driver; 0 until asked.
    agreed: AtomicU32,
}

impl<B: Backend + ?Sized> Client<B> {
    /// Wraps an open backend; speaks every ABI version this build knows.
    #[must_use]
    pub const fn new(backend: Box<B>) -> Self {
        Self::speaking(backend, ABI_VERSION)
    }

    /// A client that speaks ABI versions up to `newest` only, as a client built one release
    /// earlier does (for the compatibility tests).
    #[must_use]
    pub const fn speaking(backend: Box<B>, newest: u32) -> Self {
        let newest = if newest < ABI_OLDEST {
            ABI_OLDEST
        } else if newest > ABI_VERSION {
            ABI_VERSION
        } else {
            newest
        };
        Self {
            backend,
            newest,
            agreed: AtomicU32::new(0),
        }
    }

    /// The ABI version requests are written in: the newest both this client and the driver
    /// speak, learnt from `QUERY_INFO` once.
    ///
    /// # Errors
    /// [`ClientError::Usage`] if the two share no version; otherwise as [`Client::info`].
    pub fn abi_version(&self) -> Result<u32, ClientError> {
        let agreed = self.agreed.load(Ordering::Acquire);
        if agreed != 0 {
            return Ok(agreed);
        }
        let info = self.info()?;
        let driver_newest = info.abi_version;
        // `abi_oldest` reads as 0 when the layout lacks it: from a version-1 driver, which
        // serves only 1, or because this client asked for version 1's layout, and then (as a
        // version-1 client does) it can only try its own version and see.
        let driver_oldest = match info.abi_oldest {
            0 if self.newest >= 2 => driver_newest,
            0 => ABI_OLDEST,
            oldest => oldest,
        };
        let version = self.newest.min(driver_newest);
        if version < ABI_OLDEST.max(driver_oldest) {
            return Err(ClientError::Usage(format!(
                "the driver speaks ABI versions {driver_oldest} to {driver_newest}, this client {ABI_OLDEST} to {}: install a driver and CLI from the same release",
                self.newest
            )));
        }
        self.agreed.store(version, Ordering::Release);
        Ok(version)
    }

    /// The agreed ABI version, if it is 2 or later; `what` names what needs it.
    fn require_abi_2(&self, what: impl core::fmt::Display) -> Result<u32, ClientError> {
        let version = self.abi_version()?;
        if version < 2 {
            return Err(ClientError::Usage(format!(
                "{what} need ABI version 2; the driver and this client agree on {version}"
            )));
        }
        Ok(version)
    }

    /// `request` (an encoded versioned request) written in the agreed version.
    fn versioned(&self, mut request: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let version = self.abi_version()?;
        set_request_version(&mut request, version);
        Ok(request)
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend's name.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The front door requests go through (see [`Backend::front_door`]).
    #[must_use]
    pub fn front_door(&self) -> &'static str {
        self.backend.front_door()
    }

    /// Closes the handle; for the model, unloads the driver and returns the report.
    #[must_use]
    pub fn finish(self) -> Option<ModelReport> {
        self.backend.finish()
    }

    /// A raw request: status and output bytes, whatever the status.
    ///
    /// # Errors
    /// [`ClientError::Backend`].
    pub fn raw(
        &self,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<(i32, Vec<u8>), ClientError> {
        let outcome = self.backend.ioctl(code, input, output_len)?;
        Ok((outcome.status, outcome.output))
    }

    fn call<T: FromBytes>(&self, ioctl: Ioctl, input: &[u8]) -> Result<T, ClientError> {
        response(self.backend.ioctl(ioctl.code(), input, size_of::<T>())?)
    }

    /// `QUERY_INFO`, in the layout of the newest version this client speaks (fields a
    /// version-1 driver does not have read as zero).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn info(&self) -> Result<InfoResponse, ClientError> {
        let output_len = if self.newest >= 2 {
            size_of::<InfoResponse>()
        } else {
            InfoResponse::V1_LEN
        };
        let outcome = succeeded(
            self.backend
                .ioctl(Ioctl::QueryInfo.code(), &[], output_len)?,
        )?;
        InfoResponse::read_any_version(&outcome.output).map_err(ClientError::ShortResponse)
    }

    /// `QUERY_STATS` (ABI 2): driver-wide counters and this handle's sockets.
    ///
    /// # Errors
    /// [`ClientError::Usage`] if the driver or this client speaks only ABI 1; otherwise see
    /// [`ClientError`].
    pub fn stats(&self) -> Result<StatsResponse, ClientError> {
        self.require_abi_2("statistics")?;
        let request = self.versioned(encode_query_stats().as_bytes().to_vec())?;
        self.call(Ioctl::QueryStats, &request)
    }

    /// `OPEN_SOCKET`: a datagram socket bound to `local`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn open_socket(&self, local: SocketAddr) -> Result<OpenSocketResponse, ClientError> {
        self.open_socket_with(local, 0)
    }

    /// `OPEN_SOCKET` with `OpenSocketRequest::FLAG_*` bits (ABI 2; a version-1 driver takes
    /// none). Fields a version-1 response lacks (`features`) read as zero.
    ///
    /// # Errors
    /// [`ClientError::Usage`] for flags with a version-1 driver; otherwise see [`ClientError`].
    pub fn open_socket_with(
        &self,
        local: SocketAddr,
        flags: u32,
    ) -> Result<OpenSocketResponse, ClientError> {
        let version = if flags == 0 {
            self.abi_version()?
        } else {
            self.require_abi_2(format_args!("socket flags {flags:#x}"))?
        };
        let mut request = encode_open_socket_with(local, flags);
        request.header = RequestHeader::version(version);
        let output_len = if version >= 2 {
            size_of::<OpenSocketResponse>()
        } else {
            OpenSocketResponse::V1_LEN
        };
        let outcome = succeeded(self.backend.ioctl(
            Ioctl::OpenSocket.code(),
            request.bytes_for_version(version),
            output_len,
        )?)?;
        read_any_version(&outcome.output, OpenSocketResponse::V1_LEN)
            .map_err(ClientError::ShortResponse)
    }

    /// `SET_OPTION` (ABI 2): one option of `socket`.
    ///
    /// # Errors
    /// [`ClientError::Usage`] with a version-1 driver; otherwise see [`ClientError`].
    pub fn set_option(&self, socket: u32, option: SocketOption) -> Result<(), ClientError> {
        self.require_abi_2("socket options")?;
        let request = self.versioned(encode_set_option(socket, option).as_bytes().to_vec())?;
        succeeded(self.backend.ioctl(Ioctl::SetOption.code(), &request, 0)?).map(drop)
    }

    /// `CLOSE_SOCKET`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn close_socket(&self, socket: u32) -> Result<(), ClientError> {
        let request = self.versioned(encode_close_socket(socket).as_bytes().to_vec())?;
        succeeded(self.backend.ioctl(Ioctl::CloseSocket.code(), &request, 0)?).map(drop)
    }

    /// A `SEND_DIRECT` request for a `payload_len`-byte payload (which travels as the output
    /// buffer).
    fn encode_direct(
        &self,
        spec: &SendSpec,
        segments: &[u32],
        payload_len: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let len = send_request_len(segments.len(), 0)
            .ok_or(ClientError::Invalid(AbiError::PayloadTooLarge(u32::MAX)))?;
        let mut request = vec![0; len];
        encode_send_direct(spec, segments, payload_len, &mut request)
            .map_err(ClientError::Invalid)?;
        self.versioned(request)
    }

    fn encode(
        &self,
        spec: &SendSpec,
        segments: &[u32],
        payload: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let len = send_request_len(segments.len(), payload.len())
            .ok_or(ClientError::Invalid(AbiError::PayloadTooLarge(u32::MAX)))?;
        let mut request = vec![0; len];
        encode_send(spec, segments, payload, &mut request).map_err(ClientError::Invalid)?;
        self.versioned(request)
    }

    /// `SEND`: `spec.count` datagrams of `payload`, split into MDLs of `segments` lengths (empty:
    /// one MDL). Succeeds when the driver accounted for every datagram; their outcome is in
    /// the response.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn send(
        &self,
        spec: &SendSpec,
        segments: &[u32],
        payload: &[u8],
    ) -> Result<SendResponse, ClientError> {
        self.submit_send(spec, segments, payload)?.wait()
    }

    /// [`Client::send`] without waiting: the `SEND` is in flight when this returns.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a request the ABI refuses, [`ClientError::Backend`] if it
    /// could not be issued.
    pub fn submit_send(
        &self,
        spec: &SendSpec,
        segments: &[u32],
        payload: &[u8],
    ) -> Result<PendingSend<'_>, ClientError> {
        self.submit_encoded_send(&self.encode(spec, segments, payload)?)
    }

    fn submit_encoded_send(&self, request: &[u8]) -> Result<PendingSend<'_>, ClientError> {
        let request =
            self.backend
                .submit(Ioctl::Send.code(), request, size_of::<SendResponse>())?;
        Ok(PendingSend {
            request,
            direct: None,
        })
    }

    /// `SEND_DIRECT` without waiting: as [`Client::submit_send`], but the driver sends
    /// `payload` from the caller's own pages (`METHOD_IN_DIRECT`, no copy). Its completion
    /// carries only a status, so [`PendingSend::wait`] reports success as every datagram sent.
    ///
    /// # Errors
    /// [`ClientError::Usage`] if the driver has no `SEND_DIRECT`; otherwise as
    /// [`Client::submit_send`].
    pub fn submit_send_direct(
        &self,
        spec: &SendSpec,
        segments: &[u32],
        payload: &[u8],
    ) -> Result<PendingSend<'_>, ClientError> {
        self.require_send_direct()?;
        let request = self.encode_direct(spec, segments, payload.len())?;
        self.submit_encoded_direct(&request, payload, spec.count)
    }

    fn require_send_direct(&self) -> Result<(), ClientError> {
        if self.info()?.capabilities & wskudp_abi::capability::SEND_DIRECT == 0 {
            return Err(ClientError::Usage(
                "this driver has no SEND_DIRECT request (install a driver from this release)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn submit_encoded_direct(
        &self,
        request: &[u8],
        payload: &[u8],
        count: u32,
    ) -> Result<PendingSend<'_>, ClientError> {
        let request = self
            .backend
            .submit_direct(Ioctl::SendDirect.code(), request, payload)?;
        Ok(PendingSend {
            request,
            direct: Some((count, payload.len() as u64)),
        })
    }

    /// Sends `total` datagrams of `payload` (MDLs of `segments` lengths) with `spec`'s options
    /// (its `count` is ignored): in `SEND` requests of at most the driver's `max_count`
    /// datagrams (from `QUERY_INFO`), up to `inflight` of them outstanding at once.
    ///
    /// Every response is added up. Per-datagram failures inside a request are counted and
    /// the pipeline goes on. A request the driver refuses as a whole (an error status on the
    /// `SEND` itself) is counted too, with all its datagrams failed; as every request carries
    /// the same socket and options, a refusal other than `STATUS_INSUFFICIENT_RESOURCES` (a
    /// passing shortage) would only repeat, so no more requests are issued after it: those
    /// outstanding are waited for and counted, and the rest are reported unsent.
    ///
    /// # Errors
    /// - [`ClientError::Usage`] for `total == 0` or `inflight` outside `1..=MAX_INFLIGHT`;
    /// - [`ClientError::Invalid`] if the ABI refuses the request;
    /// - [`ClientError::Status`] with the first refusal if the driver refused every request
    ///   (nothing could be sent at all: a stale socket, a closed handle);
    /// - [`ClientError::Backend`] / [`ClientError::ShortResponse`] if a request did not come
    ///   back or came back malformed: what is outstanding is cancelled and waited for first.
    pub fn send_pipelined(
        &self,
        spec: &SendSpec,
        segments: &[u32],
        payload: &[u8],
        total: u64,
        inflight: usize,
    ) -> Result<PipelineSummary, ClientError> {
        self.send_pipelined_with(spec, segments, payload, Pipeline::new(total, inflight))
    }

    /// [`Client::send_pipelined`] with every knob, e.g. smaller requests for a benchmark.
    ///
    /// # Errors
    /// As [`Client::send_pipelined`]; also [`ClientError::Usage`] for `per_request == Some(0)`.
    pub fn send_pipelined_with(
        &self,
        spec: &SendSpec,
        segments: &[u32],
        payload: &[u8],
        pipeline: Pipeline,
    ) -> Result<PipelineSummary, ClientError> {
        let Pipeline {
            total,
            inflight,
            per_request,
            zero_copy,
        } = pipeline;
        pipeline.check()?;
        let max_count = self.info()?.max_count;
        if max_count == 0 {
            return Err(ClientError::Backend(BackendError::DriverBug(
                "QUERY_INFO reports a max_count of 0".into(),
            )));
        }
        if zero_copy {
            self.require_send_direct()?;
        }
        let per_request = per_request.map_or(max_count, |n| n.min(max_count));
        // Every request but perhaps the last has the same bytes: encode them once.
        let full_count = u32::try_from(total.min(u64::from(per_request))).unwrap_or(per_request);
        let encode = |count: u32| {
            let spec = SendSpec { count, ..*spec };
            if zero_copy {
                self.encode_direct(&spec, segments, payload.len())
            } else {
                self.encode(&spec, segments, payload)
            }
        };
        let full = encode(full_count)?;
        let tail = match u32::try_from(total % u64::from(per_request)) {
            Ok(count) if count != 0 && total > u64::from(per_request) => Some(encode(count)?),
            _ => None,
        };
        let mut summary = PipelineSummary {
            total,
            per_request,
            inflight,
            ..PipelineSummary::default()
        };
        let mut queue: VecDeque<(PendingSend<'_>, u32)> = VecDeque::with_capacity(inflight);
        let mut submitted = 0_u64;
        let mut stop = false;
        let mut fatal: Option<ClientError> = None;
        let mut cancelled = false;
        loop {
            while !stop && queue.len() < inflight && submitted < total {
                let count = u32::try_from((total - submitted).min(u64::from(per_request)))
                    .unwrap_or(per_request);
                let request = match &tail {
                    Some(tail) if count != full_count => tail,
                    _ => &full,
                };
                let issued = if zero_copy {
                    self.submit_encoded_direct(request, payload, count)
                } else {
                    self.submit_encoded_send(request)
                };
                match issued {
                    Ok(pending) => {
                        queue.push_back((pending, count));
                        submitted += u64::from(count);
                        summary.peak_inflight = summary.peak_inflight.max(queue.len());
                    }
                    Err(error) => {
                        fatal = Some(error);
                        stop = true;
                    }
                }
            }
            if fatal.is_some() && !cancelled {
                // Nothing more will be issued: hurry what is outstanding along.
                for (pending, _) in &queue {
                    pending.cancel();
                }
                cancelled = true;
            }
            // Completions may come in any order; waiting for the oldest first costs nothing
            // (the others keep completing meanwhile).
            let Some((pending, count)) = queue.pop_front() else {
                break;
            };
            summary.requests += 1;
            match pending.wait() {
                Ok(response) => summary.add_response(&response),
                Err(ClientError::Status(status)) => {
                    summary.add_refusal(status, count);
                    // A shortage or the in-flight limit may pass; anything else would repeat.
                    stop |= status != STATUS_INSUFFICIENT_RESOURCES && status != STATUS_DEVICE_BUSY;
                }
                Err(error) => {
                    fatal.get_or_insert(error);
                    stop = true;
                }
            }
        }
        if let Some(error) = fatal {
            return Err(error);
        }
        summary.datagrams_unsent = total - submitted;
        match summary.first_error {
            Some(status) if summary.requests_refused == summary.requests => {
                Err(ClientError::Status(status))
            }
            _ => Ok(summary),
        }
    }

    /// `BENCH` without waiting: the driver sends `shape.count` datagrams of `shape.size` bytes
    /// with `spec`'s socket and options (its `count` is ignored) and times them itself.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a request the ABI refuses, [`ClientError::Usage`] if the
    /// driver has no `BENCH` (an older driver), [`ClientError::Backend`] if it could not be
    /// issued.
    pub fn submit_bench(
        &self,
        spec: &SendSpec,
        shape: &BenchShape,
    ) -> Result<PendingBench<'_>, ClientError> {
        if self.info()?.capabilities & wskudp_abi::capability::BENCH == 0 {
            return Err(ClientError::Usage(
                "this driver has no BENCH request (install a driver from this release)".into(),
            ));
        }
        let request = encode_bench(spec, shape).map_err(ClientError::Invalid)?;
        let request = self.versioned(request.as_bytes().to_vec())?;
        let request =
            self.backend
                .submit(Ioctl::Bench.code(), &request, size_of::<BenchResponse>())?;
        Ok(PendingBench { request })
    }

    /// `DESCRIBE_SEND`: what `send` would pass to `WskSendTo`, without sending.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn describe_send(
        &self,
        spec: &SendSpec,
        segments: &[u32],
        payload: &[u8],
    ) -> Result<DescribeSendResponse, ClientError> {
        self.call(Ioctl::DescribeSend, &self.encode(spec, segments, payload)?)
    }
}

/// A typed response: the driver's error status, or the output read as `T`.
fn response<T: FromBytes>(outcome: crate::backend::IoctlOutcome) -> Result<T, ClientError> {
    read_response(&succeeded(outcome)?.output).map_err(ClientError::ShortResponse)
}

/// The outcome if its status is a success, else the driver's error status.
fn succeeded(
    outcome: crate::backend::IoctlOutcome,
) -> Result<crate::backend::IoctlOutcome, ClientError> {
    if nt_success(outcome.status) {
        Ok(outcome)
    } else {
        Err(ClientError::Status(outcome.status))
    }
}

/// One `SEND` in flight, from [`Client::submit_send`]. Dropping it unwaited cancels it and
/// waits for it (see [`InFlight`]).
#[must_use = "a SEND in flight completes whether or not it is waited for; dropping it cancels it and waits"]
pub struct PendingSend<'a> {
    request: InFlight<'a>,
    /// A `SEND_DIRECT`'s datagram count and payload length: its completion has no response.
    direct: Option<(u32, u64)>,
}

impl PendingSend<'_> {
    /// Waits for the response (cancelling the request after
    /// [`crate::backend::COMPLETION_TIMEOUT`]). A `SEND_DIRECT` completes with a status only,
    /// `STATUS_SUCCESS` when every datagram was sent: its response is that, written out.
    ///
    /// # Errors
    /// [`ClientError::Status`] if the driver refused the request as a whole (or a
    /// `SEND_DIRECT` did not send every datagram), otherwise as [`Client::send`].
    pub fn wait(self) -> Result<SendResponse, ClientError> {
        let outcome = self.request.wait(COMPLETION_TIMEOUT)?;
        match self.direct {
            None => response(outcome),
            Some((count, len)) => succeeded(outcome).map(|_| SendResponse {
                status: STATUS_SUCCESS,
                datagrams_sent: count,
                bytes_sent: u64::from(count) * len,
                ..SendResponse::default()
            }),
        }
    }

    /// Asks the driver to cancel the request (`CancelIoEx`); it still completes: wait for it.
    pub fn cancel(&self) {
        self.request.cancel();
    }
}

/// One `BENCH` in flight, from [`Client::submit_bench`].
#[must_use = "a BENCH in flight completes whether or not it is waited for; dropping it cancels it and waits"]
pub struct PendingBench<'a> {
    request: InFlight<'a>,
}

impl PendingBench<'_> {
    /// Waits up to `timeout` for the figures (then cancels the bench and waits for it).
    ///
    /// # Errors
    /// [`ClientError::Status`] if the driver refused the request, [`ClientError::Backend`] if
    /// it did not come back.
    pub fn wait(self, timeout: std::time::Duration) -> Result<BenchResponse, ClientError> {
        response(self.request.wait(timeout)?)
    }

    /// Asks the driver to stop the bench; it still completes, with what was sent.
    pub fn cancel(&self) {
        self.request.cancel();
    }
}

/// How [`Client::send_pipelined_with`] cuts and paces a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pipeline {
    /// Datagrams to send, at least 1.
    pub total: u64,
    /// Requests outstanding at once, `1..=MAX_INFLIGHT`.
    pub inflight: usize,
    /// Datagrams per request at most; `None`: the driver's `max_count`.
    pub per_request: Option<u32>,
    /// `SEND_DIRECT` requests (the payload sent from the caller's pages) instead of `SEND`.
    pub zero_copy: bool,
}

impl Pipeline {
    /// Refuses a pipeline that cannot run.
    fn check(&self) -> Result<(), ClientError> {
        if self.total == 0 {
            return Err(ClientError::Usage(
                "the datagram count must be at least 1".into(),
            ));
        }
        if !(1..=MAX_INFLIGHT).contains(&self.inflight) {
            return Err(ClientError::Usage(format!(
                "{} requests in flight: it must be 1 to {MAX_INFLIGHT}",
                self.inflight
            )));
        }
        if self.per_request == Some(0) {
            return Err(ClientError::Usage(
                "requests must carry at least 1 datagram".into(),
            ));
        }
        Ok(())
    }

    /// `total` datagrams, `inflight` requests at a time, as large as the driver takes.
    #[must_use]
    pub const fn new(total: u64, inflight: usize) -> Self {
        Self {
            total,
            inflight,
            per_request: None,
            zero_copy: false,
        }
    }
}

/// A non-success status a pipelined send met, and how often.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusCount {
    /// The `NTSTATUS`: a request's refusal, or the first failure among its datagrams.
    pub status: i32,
    /// Requests that reported it.
    pub requests: u64,
    /// Datagrams that failed in those requests.
    pub datagrams: u64,
}

/// What [`Client::send_pipelined`] did, over all its requests.
///
/// `datagrams_sent + datagrams_failed + datagrams_not_sent + datagrams_unsent == total` when
/// the driver accounts for every datagram of every request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineSummary {
    /// Datagrams asked for.
    pub total: u64,
    /// Datagrams per request at most (the last one may carry fewer).
    pub per_request: u32,
    /// Requests allowed in flight at once.
    pub inflight: usize,
    /// Most requests that were actually in flight at once.
    pub peak_inflight: usize,
    /// `SEND` requests issued (each was waited for).
    pub requests: u64,
    /// Of those, requests the driver refused as a whole.
    pub requests_refused: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams that failed: inside accepted requests, and every datagram of a refused one.
    pub datagrams_failed: u64,
    /// Datagrams requested but never handed to WSK: the request was cancelled or its socket
    /// closed first (ABI 2's `datagrams_not_sent`).
    pub datagrams_not_sent: u64,
    /// Datagrams never requested, because the pipeline stopped after a refusal.
    pub datagrams_unsent: u64,
    /// Bytes the successful datagrams carried.
    pub bytes_sent: u64,
    /// Every non-success status, in the order first met.
    pub statuses: Vec<StatusCount>,
    /// The first non-success status (requests are waited for oldest first).
    pub first_error: Option<i32>,
}

impl PipelineSummary {
    /// Whether every datagram asked for was sent.
    #[must_use]
    pub const fn all_sent(&self) -> bool {
        self.datagrams_sent == self.total
    }

    fn add_response(&mut self, response: &SendResponse) {
        self.datagrams_sent += u64::from(response.datagrams_sent);
        self.datagrams_failed += u64::from(response.datagrams_failed);
        self.datagrams_not_sent += u64::from(response.datagrams_not_sent);
        self.bytes_sent += response.bytes_sent;
        if response.status != STATUS_SUCCESS || response.datagrams_failed != 0 {
            self.note(
                response.status,
                u64::from(response.datagrams_failed) + u64::from(response.datagrams_not_sent),
            );
        }
    }

    fn add_refusal(&mut self, status: i32, count: u32) {
        self.requests_refused += 1;
        self.datagrams_failed += u64::from(count);
        self.note(status, u64::from(count));
    }

    fn note(&mut self, status: i32, datagrams: u64) {
        self.first_error.get_or_insert(status);
        if let Some(seen) = self.statuses.iter_mut().find(|s| s.status == status) {
            seen.requests += 1;
            seen.datagrams += datagrams;
        } else {
            self.statuses.push(StatusCount {
                status,
                requests: 1,
                datagrams,
            });
        }
    }
}
