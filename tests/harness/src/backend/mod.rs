//! Where IOCTLs go.
//!
//! Required of every backend: [`Backend::ioctl`] issues one `METHOD_BUFFERED` request and
//! waits for it to complete, returning the `NTSTATUS` and the bytes the driver wrote
//! (`IoStatus.Information` of them; none on an error status, as the I/O manager copies none).
//! Two backends:
//! - `device`: the real driver on Windows (`CreateFileW` + overlapped `DeviceIoControl`);
//! - `model`: core running in-process on the kernel model, with the I/O manager's buffering
//!   emulated. It is the only backend on Linux.
//!
//! An unavailable backend still compiles and reports [`BackendError::Unsupported`].

mod device;
mod model;

use std::fmt;

pub use device::DeviceBackend;
pub use model::{FrontDoor, ModelBackend, ModelConfig};

/// What an IOCTL came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoctlOutcome {
    /// Final `IoStatus.Status`.
    pub status: i32,
    /// Output bytes (`IoStatus.Information` of them; empty on an error status).
    pub output: Vec<u8>,
}

/// Why a request could not be issued or did not come back.
#[derive(Debug)]
pub enum BackendError {
    /// This backend does not exist on this host.
    Unsupported(&'static str),
    /// The device could not be opened or the call failed outside the driver.
    Io(std::io::Error),
    /// The driver did not complete the request in time (it was cancelled).
    Timeout,
    /// The model could not load the driver (`DriverEntry` failed with this status).
    LoadFailed(i32),
    /// Opening the device failed with this status (`IRP_MJ_CREATE`'s, or the I/O manager's).
    OpenFailed(i32),
    /// The driver broke the I/O contract (e.g. more output than the buffer holds).
    DriverBug(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported(what) => write!(f, "{what}"),
            Self::Io(error) => write!(f, "device I/O failed: {error}"),
            Self::Timeout => f.write_str("the driver did not complete the request in time"),
            Self::LoadFailed(status) => write!(
                f,
                "loading the driver failed with {}",
                crate::status_text(*status)
            ),
            Self::OpenFailed(status) => write!(
                f,
                "opening the device failed with {}",
                crate::status_text(*status)
            ),
            Self::DriverBug(what) => write!(f, "driver bug: {what}"),
        }
    }
}

impl std::error::Error for BackendError {}

pub use crate::report::ModelReport;

/// One way to reach the driver.
pub trait Backend: Send + Sync {
    /// `"model"` or `"device"`.
    fn name(&self) -> &'static str;

    /// The driver entry point requests go through: `"kmdf"`, `"wdm"` or `"none"` on the
    /// model; on the device, whichever flavor is installed (`"installed"`).
    fn front_door(&self) -> &'static str;

    /// Issues one buffered IOCTL and waits for its completion.
    ///
    /// # Errors
    /// [`BackendError`] if the request could not be issued or did not complete.
    fn ioctl(
        &self,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<IoctlOutcome, BackendError>;

    /// Closes the handle (the driver cleans up its sockets) and, for the model, unloads the
    /// driver and returns the machine's report.
    fn finish(self: Box<Self>) -> Option<ModelReport>;
}

/// Which backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The real driver.
    Device,
    /// The in-process model.
    Model,
}

impl Kind {
    /// `device` on Windows, `model` elsewhere.
    #[must_use]
    pub const fn default_for_host() -> Self {
        if cfg!(windows) {
            Self::Device
        } else {
            Self::Model
        }
    }
}

/// Opens a backend of `kind`; the model's requests go through `front_door`.
///
/// # Errors
/// [`BackendError`] if it cannot be opened here.
pub fn open(kind: Kind, front_door: FrontDoor) -> Result<Box<dyn Backend>, BackendError> {
    Ok(match kind {
        Kind::Device => Box::new(DeviceBackend::open()?),
        Kind::Model => Box::new(ModelBackend::start(ModelConfig::through(front_door))?),
    })
}
