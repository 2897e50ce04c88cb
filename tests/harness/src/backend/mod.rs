//! Where IOCTLs go.
//!
//! Required of every backend: [`Backend::submit`] issues one `METHOD_BUFFERED` request without
//! waiting for it and hands it back as an [`InFlight`], which completes with the `NTSTATUS`
//! and the bytes the driver wrote (`IoStatus.Information` of them; none on an error status, as
//! the I/O manager copies none). Several requests may be in flight at once, as with overlapped
//! `DeviceIoControl`. [`Backend::ioctl`] is submit-then-wait, written once here.
//! Two backends:
//! - `device`: the real driver on Windows (`CreateFileW` + overlapped `DeviceIoControl`);
//! - `model`: core running in-process on the kernel model, with the I/O manager's buffering
//!   emulated. It is the only backend on Linux.
//!
//! An unavailable backend still compiles and reports [`BackendError::Unsupported`].

mod device;
mod model;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
    /// The device does not exist: the driver is not installed, or not started.
    DriverNotLoaded,
    /// Opening the device was refused: it admits SYSTEM and Administrators only.
    AccessDenied,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported(what) => write!(f, "{what}"),
            Self::Io(error) => write!(f, "device I/O failed: {error}"),
            Self::Timeout => {
                f.write_str("the driver did not complete the request in time (it was cancelled)")
            }
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
            Self::DriverNotLoaded => f.write_str(
                "the wskudp driver is not loaded (\\\\.\\WskUdp does not exist): install it with \
                 install.ps1 from the wskudp-vm folder (README \"Running it on a test VM\"), or \
                 start it with `sc.exe start wskudp`",
            ),
            Self::AccessDenied => f.write_str(
                "access to \\\\.\\WskUdp was denied: the device admits Administrators and SYSTEM \
                 only; run wskudpctl from an elevated prompt (Run as administrator)",
            ),
        }
    }
}

impl std::error::Error for BackendError {}

pub use crate::report::ModelReport;

/// How long a request may stay pending before the harness cancels it and calls the driver
/// hung.
pub const COMPLETION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may take to complete once cancelled.
pub const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long dropping a request that was never waited for waits for it, after cancelling it,
/// before giving its memory up to the driver for good (leaking it on purpose).
pub const ABANDON_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests given up to the driver for good: still pending after being cancelled and waited
/// for ([`ABANDON_TIMEOUT`]), their buffers leaked on purpose.
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// How many requests were abandoned to the driver so far (see [`InFlight`]). A run with any
/// is a failed run: the driver did not complete a cancelled request.
#[must_use]
pub fn abandoned_requests() -> usize {
    ABANDONED.load(Ordering::Relaxed)
}

/// What a backend implements for one request in flight.
///
/// Dropping a value that has not reported its completion must free nothing the driver may
/// still write (the output buffer, the `OVERLAPPED`): [`InFlight`] cancels and waits before it
/// drops one, and one still pending after that is leaked.
pub trait PendingIo: Send {
    /// Waits up to `timeout` for the completion. `None`: still pending. `Some`: completed, and
    /// nothing of the request is in the driver's hands any more.
    fn wait_for(&mut self, timeout: Duration) -> Option<Result<IoctlOutcome, BackendError>>;

    /// Asks the driver to cancel the request (`CancelIoEx`). It still completes, perhaps
    /// successfully: wait for it.
    fn cancel(&self);
}

enum State<'a> {
    /// Completed when it was issued (it never reached a pending state).
    Done(IoctlOutcome),
    /// In the driver's hands.
    Pending(Box<dyn PendingIo + 'a>),
    /// Waited for.
    Taken,
}

/// One request in flight, from [`Backend::submit`]; it borrows the backend, so the handle
/// outlives it.
///
/// Wait for it with [`InFlight::wait`]. Dropping it unwaited cancels it and waits (up to
/// [`ABANDON_TIMEOUT`]) for its completion before its buffers are freed; if the driver still
/// holds it then, its memory is leaked on purpose, a line on stderr says so, and
/// [`abandoned_requests`] counts it (the CLI then exits non-zero).
#[must_use = "a request in flight completes whether or not it is waited for; dropping it cancels it and waits"]
pub struct InFlight<'a> {
    state: State<'a>,
}

impl<'a> InFlight<'a> {
    /// A request the backend handed to the driver.
    pub fn pending(request: Box<dyn PendingIo + 'a>) -> Self {
        Self {
            state: State::Pending(request),
        }
    }

    /// A request that completed as it was issued (e.g. refused by the I/O manager).
    pub const fn completed(outcome: IoctlOutcome) -> Self {
        Self {
            state: State::Done(outcome),
        }
    }

    /// Waits up to `timeout` for the completion. Past it, cancels the request and waits up to
    /// [`CANCEL_TIMEOUT`] more for the driver to let go of it, then reports
    /// [`BackendError::Timeout`] (a request still pending after that is abandoned, as on drop).
    ///
    /// # Errors
    /// [`BackendError::Timeout`], or the backend's error for this request.
    pub fn wait(mut self, timeout: Duration) -> Result<IoctlOutcome, BackendError> {
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Done(outcome) => Ok(outcome),
            // Unreachable: `wait` consumes the request, and only `wait` and `drop` take it.
            State::Taken => Err(BackendError::Io(std::io::Error::other(
                "harness bug: a request was waited for twice",
            ))),
            State::Pending(mut request) => {
                if let Some(result) = request.wait_for(timeout) {
                    return result;
                }
                request.cancel();
                if request.wait_for(CANCEL_TIMEOUT).is_none() {
                    // Still the driver's: the drop below waits once more, then leaks it.
                    self.state = State::Pending(request);
                }
                Err(BackendError::Timeout)
            }
        }
    }

    /// `CancelIoEx`: asks the driver to cancel the request. It still completes (perhaps
    /// successfully, if it was done already): wait for it.
    pub fn cancel(&self) {
        if let State::Pending(request) = &self.state {
            request.cancel();
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let State::Pending(mut request) = std::mem::replace(&mut self.state, State::Taken) {
            request.cancel();
            if request.wait_for(ABANDON_TIMEOUT).is_none() {
                ABANDONED.fetch_add(1, Ordering::Relaxed);
                // The request's memory stays the driver's: `PendingIo`'s contract is to free
                // nothing of it on drop.
                drop(request);
                eprintln!(
                    "wskudpctl: a cancelled request is still pending after {ABANDON_TIMEOUT:?}; \
                     its buffers are leaked on purpose (the driver may still write them)"
                );
            }
        }
    }
}

/// What the kernel model counts at the kernel-call boundary, in every run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineCounters {
    /// `ExAllocatePool2` successes.
    pub pool_allocations: u64,
    /// `IoAllocateIrp` successes.
    pub irp_allocations: u64,
    /// `IoAllocateMdl` successes.
    pub mdl_allocations: u64,
    /// `IoSetCompletionRoutineEx` contexts the I/O manager allocated.
    pub completion_contexts: u64,
    /// The longest a completion routine ran (nanoseconds), nested routines included.
    pub longest_completion_ns: u64,
    /// Time spent in the model's own code (its checks and bookkeeping, not the driver's code
    /// nor Linux's system calls), nanoseconds.
    pub model_ns: u64,
    /// Work item routines the model's system worker ran.
    pub work_items: u64,
}

impl MachineCounters {
    /// Pool blocks, IRPs and MDLs allocated.
    #[must_use]
    pub const fn allocations(&self) -> u64 {
        self.pool_allocations + self.irp_allocations + self.mdl_allocations
    }

    /// `self - earlier` for the counts; the longest run is `self`'s.
    #[must_use]
    pub const fn since(&self, earlier: &Self) -> Self {
        Self {
            pool_allocations: self
                .pool_allocations
                .saturating_sub(earlier.pool_allocations),
            irp_allocations: self.irp_allocations.saturating_sub(earlier.irp_allocations),
            mdl_allocations: self.mdl_allocations.saturating_sub(earlier.mdl_allocations),
            completion_contexts: self
                .completion_contexts
                .saturating_sub(earlier.completion_contexts),
            longest_completion_ns: self.longest_completion_ns,
            model_ns: self.model_ns.saturating_sub(earlier.model_ns),
            work_items: self.work_items.saturating_sub(earlier.work_items),
        }
    }
}

/// One way to reach the driver.
pub trait Backend: Send + Sync {
    /// `"model"` or `"device"`.
    fn name(&self) -> &'static str;

    /// The driver entry point requests go through: `"kmdf"`, `"wdm"` or `"none"` on the
    /// model; on the device, whichever flavor is installed (`"installed"`).
    fn front_door(&self) -> &'static str;

    /// Issues one buffered IOCTL and returns without waiting for its completion.
    ///
    /// # Errors
    /// [`BackendError`] if the request could not be issued.
    fn submit(
        &self,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<InFlight<'_>, BackendError>;

    /// Issues one direct-I/O IOCTL (`METHOD_IN_DIRECT`) whose output buffer holds `payload`,
    /// which the driver reads through the I/O manager's locked MDL, and returns without waiting.
    ///
    /// # Errors
    /// [`BackendError`] if the request could not be issued; [`BackendError::Unsupported`]
    /// where there is no I/O manager to lock the buffer (the model's `none` front door).
    fn submit_direct(
        &self,
        code: u32,
        input: &[u8],
        payload: &[u8],
    ) -> Result<InFlight<'_>, BackendError> {
        let _ = (code, input, payload);
        Err(BackendError::Unsupported(
            "direct I/O needs the I/O manager: a front door (kmdf or wdm) or the device",
        ))
    }

    /// Issues one buffered IOCTL and waits for its completion: [`Backend::submit`], then
    /// [`InFlight::wait`] for up to [`COMPLETION_TIMEOUT`] (then it is cancelled).
    ///
    /// # Errors
    /// [`BackendError`] if the request could not be issued or did not complete.
    fn ioctl(
        &self,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<IoctlOutcome, BackendError> {
        self.submit(code, input, output_len)?
            .wait(COMPLETION_TIMEOUT)
    }

    /// Closes the handle (the driver cleans up its sockets) and, for the model, unloads the
    /// driver and returns the machine's report.
    fn finish(self: Box<Self>) -> Option<ModelReport>;

    /// Another handle on the same driver (a second `CreateFile` of `\\.\WskUdp`), with its
    /// own sockets; dropping it closes it.
    ///
    /// # Errors
    /// [`BackendError::Unsupported`] if this backend has one handle only; else as opening the
    /// device.
    fn open_another(&self) -> Result<Box<dyn Backend + '_>, BackendError> {
        Err(BackendError::Unsupported(
            "this backend has one handle only",
        ))
    }

    /// What the kernel model counted so far (`None` on the device: Windows counts nothing for
    /// us; the driver's own figures come in `BENCH`'s response).
    fn machine_counters(&self) -> Option<MachineCounters> {
        None
    }

    /// Closes the handle now (`CloseHandle`: the driver's `IRP_MJ_CLEANUP` closes its sockets
    /// and ends its requests), while requests on it may still be in flight: they still
    /// complete and may be waited for; new requests fail.
    ///
    /// # Errors
    /// [`BackendError::Unsupported`] if this backend cannot.
    fn close_now(&self) -> Result<(), BackendError> {
        Err(BackendError::Unsupported(
            "this backend cannot close its handle early",
        ))
    }
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

#[cfg(test)]
mod tests {
    //! The cancel-and-abandon path of [`InFlight`], with a fake request the "driver" never
    //! completes: no Windows needed, no real time spent (the fake answers every wait at once).

    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use super::{
        ABANDON_TIMEOUT, BackendError, CANCEL_TIMEOUT, InFlight, IoctlOutcome, PendingIo,
        abandoned_requests,
    };
    use std::time::Duration;

    /// What happened to a fake request, in order.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Event {
        Wait(Duration),
        Cancel,
        /// The `PendingIo` value was dropped: from here on, what it holds (the device's
        /// OVERLAPPED and buffers) is leaked, or freed had it completed.
        Dropped,
    }

    /// A pending request whose completion comes after `completes_after` waits, or never.
    struct Fake {
        log: Arc<Mutex<Vec<Event>>>,
        completes_after: Option<usize>,
        waits: usize,
    }

    impl PendingIo for Fake {
        fn wait_for(&mut self, timeout: Duration) -> Option<Result<IoctlOutcome, BackendError>> {
            log(&self.log).push(Event::Wait(timeout));
            self.waits += 1;
            (Some(self.waits) == self.completes_after).then(|| {
                Ok(IoctlOutcome {
                    status: 0,
                    output: Vec::new(),
                })
            })
        }

        fn cancel(&self) {
            log(&self.log).push(Event::Cancel);
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            log(&self.log).push(Event::Dropped);
        }
    }

    fn log(log: &Mutex<Vec<Event>>) -> MutexGuard<'_, Vec<Event>> {
        log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The abandoned counter is process-wide: these tests take turns with it.
    static COUNTER: Mutex<()> = Mutex::new(());

    /// A fake request in flight, and its log.
    fn fake(completes_after: Option<usize>) -> (InFlight<'static>, Arc<Mutex<Vec<Event>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let request = Fake {
            log: Arc::clone(&log),
            completes_after,
            waits: 0,
        };
        (InFlight::pending(Box::new(request)), log)
    }

    /// Dropped unwaited and never completed: cancelled, waited for [`ABANDON_TIMEOUT`], then
    /// abandoned (counted) with nothing freed before that wait ended.
    #[test]
    fn a_dropped_request_that_never_completes_is_abandoned_after_cancel_and_wait() {
        let _turn = COUNTER.lock().unwrap_or_else(PoisonError::into_inner);
        let before = abandoned_requests();
        let (request, events) = fake(None);
        drop(request);
        assert_eq!(
            *log(&events),
            [Event::Cancel, Event::Wait(ABANDON_TIMEOUT), Event::Dropped]
        );
        assert_eq!(abandoned_requests(), before + 1);
    }

    /// Waited for past its timeout: cancelled and waited [`CANCEL_TIMEOUT`] more, reported as
    /// a timeout, then kept (not freed) until the drop's own cancel and wait, and abandoned
    /// once.
    #[test]
    fn a_timed_out_request_that_never_completes_is_abandoned_once() {
        let _turn = COUNTER.lock().unwrap_or_else(PoisonError::into_inner);
        let before = abandoned_requests();
        let (request, events) = fake(None);
        let limit = Duration::from_millis(7);
        assert!(matches!(request.wait(limit), Err(BackendError::Timeout)));
        assert_eq!(
            *log(&events),
            [
                Event::Wait(limit),
                Event::Cancel,
                Event::Wait(CANCEL_TIMEOUT),
                Event::Cancel,
                Event::Wait(ABANDON_TIMEOUT),
                Event::Dropped
            ]
        );
        assert_eq!(abandoned_requests(), before + 1);
    }

    /// Completing within the cancel's wait, or the drop's, abandons nothing.
    #[test]
    fn a_request_that_completes_after_its_cancel_is_not_abandoned() {
        let _turn = COUNTER.lock().unwrap_or_else(PoisonError::into_inner);
        let before = abandoned_requests();
        let (request, events) = fake(Some(2));
        assert!(matches!(
            request.wait(Duration::from_millis(7)),
            Err(BackendError::Timeout)
        ));
        assert_eq!(log(&events).len(), 4, "{:?}", log(&events));
        let (request, events) = fake(Some(1));
        drop(request);
        assert_eq!(
            *log(&events),
            [Event::Cancel, Event::Wait(ABANDON_TIMEOUT), Event::Dropped]
        );
        assert_eq!(abandoned_requests(), before);
    }
}
