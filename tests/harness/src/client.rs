//! Typed requests over a [`Backend`]: what the CLI and the scenario suite use.

use std::fmt;
use std::net::SocketAddr;

use wskudp_abi::{
    AbiError, DescribeSendResponse, InfoResponse, Ioctl, OpenSocketResponse, SendResponse,
    SendSpec, encode_close_socket, encode_open_socket, encode_send, read_response,
    send_request_len, status::nt_success,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::backend::{Backend, BackendError, ModelReport};

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
pub struct Client<B: Backend + ?Sized = dyn Backend> {
    backend: Box<B>,
}

impl<B: Backend + ?Sized> Client<B> {
    /// Wraps an open backend.
    #[must_use]
    pub const fn new(backend: Box<B>) -> Self {
        Self { backend }
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
        let outcome = self.backend.ioctl(ioctl.code(), input, size_of::<T>())?;
        if !nt_success(outcome.status) {
            return Err(ClientError::Status(outcome.status));
        }
        read_response(&outcome.output).map_err(ClientError::ShortResponse)
    }

    /// `QUERY_INFO`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn info(&self) -> Result<InfoResponse, ClientError> {
        self.call(Ioctl::QueryInfo, &[])
    }

    /// `OPEN_SOCKET`: a datagram socket bound to `local`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn open_socket(&self, local: SocketAddr) -> Result<OpenSocketResponse, ClientError> {
        self.call(Ioctl::OpenSocket, encode_open_socket(local).as_bytes())
    }

    /// `CLOSE_SOCKET`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn close_socket(&self, socket: u32) -> Result<(), ClientError> {
        let outcome = self.backend.ioctl(
            Ioctl::CloseSocket.code(),
            encode_close_socket(socket).as_bytes(),
            0,
        )?;
        if nt_success(outcome.status) {
            Ok(())
        } else {
            Err(ClientError::Status(outcome.status))
        }
    }

    fn encode(spec: &SendSpec, segments: &[u32], payload: &[u8]) -> Result<Vec<u8>, ClientError> {
        let len = send_request_len(segments.len(), payload.len())
            .ok_or(ClientError::Invalid(AbiError::PayloadTooLarge(u32::MAX)))?;
        let mut request = vec![0; len];
        encode_send(spec, segments, payload, &mut request).map_err(ClientError::Invalid)?;
        Ok(request)
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
        self.call(Ioctl::Send, &Self::encode(spec, segments, payload)?)
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
        self.call(Ioctl::DescribeSend, &Self::encode(spec, segments, payload)?)
    }
}
