//! The `device` backend: the real driver through `\\.\WskUdp`.

#[cfg(windows)]
pub use imp::DeviceBackend;
#[cfg(not(windows))]
pub use shell::DeviceBackend;

use crate::backend::BackendError;

/// `ERROR_FILE_NOT_FOUND`, `ERROR_PATH_NOT_FOUND`, `ERROR_ACCESS_DENIED` (winerror.h).
const ERROR_FILE_NOT_FOUND: u32 = 2;
const ERROR_PATH_NOT_FOUND: u32 = 3;
const ERROR_ACCESS_DENIED: u32 = 5;

/// What a failed `CreateFileW` of the device means to the user: no such device (the driver is
/// not loaded; its symbolic link goes with it) or access denied (not elevated) each say what
/// to do; anything else is reported as the OS error.
#[cfg_attr(
    not(windows),
    allow(dead_code, reason = "used by the Windows backend and tests")
)]
fn open_error(error: u32) -> BackendError {
    match error {
        ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND => BackendError::DriverNotLoaded,
        ERROR_ACCESS_DENIED => BackendError::AccessDenied,
        other => BackendError::Io(std::io::Error::from_raw_os_error(
            i32::try_from(other).unwrap_or(i32::MAX),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::open_error;

    /// Not "os error 2/5": each says what to do.
    #[test]
    fn a_missing_driver_and_a_denied_open_say_what_to_do() {
        let missing = open_error(2).to_string();
        assert!(
            missing.contains("not loaded") && missing.contains("install.ps1"),
            "{missing}"
        );
        assert_eq!(open_error(3).to_string(), missing);
        let denied = open_error(5).to_string();
        assert!(
            denied.contains("elevated") && denied.contains("Administrators"),
            "{denied}"
        );
        let other = open_error(1450).to_string();
        assert!(other.contains("1450"), "{other}");
    }
}

#[cfg(windows)]
mod imp {
    use std::ffi::c_void;
    use std::os::windows::ffi::OsStrExt;
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicPtr, Ordering};
    use std::time::Duration;

    use windows_sys::Win32::Foundation::{
        CloseHandle, ERROR_IO_PENDING, GENERIC_READ, GENERIC_WRITE, GetLastError, HANDLE,
        INVALID_HANDLE_VALUE, WAIT_OBJECT_0,
    };
    use windows_sys::Win32::Storage::FileSystem::{
        CreateFileW, FILE_FLAG_OVERLAPPED, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
    };
    use windows_sys::Win32::System::IO::{CancelIoEx, DeviceIoControl, OVERLAPPED};
    use windows_sys::Win32::System::Threading::{CreateEventW, WaitForSingleObject};
    use wskudp_abi::status::nt_error;

    use crate::backend::{Backend, BackendError, InFlight, IoctlOutcome, ModelReport, PendingIo};

    /// `STATUS_PENDING` as `OVERLAPPED.Internal` holds it.
    const STATUS_PENDING_RAW: usize = 0x103;
    /// `INFINITE` is `u32::MAX`; the longest finite wait is one less.
    const LONGEST_WAIT_MS: u32 = u32::MAX - 1;

    /// An open handle to the driver's device; null once closed ([`Backend::close_now`]).
    pub struct DeviceBackend {
        handle: AtomicPtr<c_void>,
    }

    // SAFETY: A file handle opened for overlapped I/O may be used from any thread; each
    // request has its own OVERLAPPED and event.
    unsafe impl Send for DeviceBackend {}
    // SAFETY: As above.
    unsafe impl Sync for DeviceBackend {}

    fn last_error() -> BackendError {
        BackendError::Io(std::io::Error::last_os_error())
    }

    impl DeviceBackend {
        /// Opens `\\.\WskUdp` for overlapped I/O.
        ///
        /// # Errors
        /// [`BackendError::DriverNotLoaded`] if the device does not exist,
        /// [`BackendError::AccessDenied`] if the caller is not elevated (the device admits
        /// Administrators and SYSTEM only), [`BackendError::Io`] otherwise.
        pub fn open() -> Result<Self, BackendError> {
            let path: Vec<u16> = std::ffi::OsStr::new(wskudp_abi::USER_DEVICE_PATH)
                .encode_wide()
                .chain([0])
                .collect();
            // SAFETY: `path` is a NUL-terminated UTF-16 string; the other arguments are plain.
            let handle = unsafe {
                CreateFileW(
                    path.as_ptr(),
                    GENERIC_READ | GENERIC_WRITE,
                    FILE_SHARE_READ | FILE_SHARE_WRITE,
                    std::ptr::null(),
                    OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED,
                    std::ptr::null_mut(),
                )
            };
            if handle == INVALID_HANDLE_VALUE {
                // SAFETY: No preconditions; read before anything else can change it.
                let error = unsafe { GetLastError() };
                return Err(super::open_error(error));
            }
            Ok(Self {
                handle: AtomicPtr::new(handle),
            })
        }

        /// Closes the handle, once: the driver's `IRP_MJ_CLEANUP` runs.
        fn close(&self) {
            let handle = self.handle.swap(std::ptr::null_mut(), Ordering::AcqRel);
            if !handle.is_null() {
                // SAFETY: The handle this backend opened, taken out of it: closed once.
                unsafe { CloseHandle(handle) };
            }
        }
    }

    /// Everything of one request the kernel may touch until it completes: the `OVERLAPPED`
    /// (the I/O status block it writes), the event it signals, and both buffers (copied for
    /// `METHOD_BUFFERED`, but used in place by other transfer types a raw code may ask for).
    struct Request {
        overlapped: OVERLAPPED,
        event: HANDLE,
        input: Box<[u8]>,
        output: Box<[u8]>,
    }

    /// One request in flight on the device.
    ///
    /// # Invariants
    /// `request`, while `Some`, came from `Box::into_raw` and is freed only once the kernel is
    /// done with it: after the wait reported the completion, or when the request never
    /// started. Dropped while `Some` (still pending after [`InFlight`] cancelled it and waited),
    /// it is leaked on purpose, event included: no `Drop` frees it, as the kernel may still
    /// write the OVERLAPPED and the buffers.
    struct DeviceInFlight<'a> {
        /// The backend's handle (null once closed), for `CancelIoEx`.
        device: &'a AtomicPtr<c_void>,
        request: Option<NonNull<Request>>,
    }

    // SAFETY: The device handle and event may be used from any thread; the request memory is
    // reached only through `&mut self` (waiting, freeing) or `&self` for `CancelIoEx`, which
    // only passes its address.
    unsafe impl Send for DeviceInFlight<'_> {}

    impl DeviceInFlight<'_> {
        /// The `OVERLAPPED` of the request, if it is still ours to wait for.
        fn overlapped(&self) -> Option<*mut OVERLAPPED> {
            let request = self.request?;
            // SAFETY: `request` is live (type invariant); this only takes a field's address.
            Some(unsafe { &raw mut (*request.as_ptr()).overlapped })
        }

        /// Frees the request once the kernel let go of it.
        fn free(&mut self) -> Option<Box<Request>> {
            let request = self.request.take()?;
            // SAFETY: From `Box::into_raw`, and the kernel is done with it (the caller has
            // seen the completion, or the request never started); taken out of `self` once.
            let request = unsafe { Box::from_raw(request.as_ptr()) };
            // SAFETY: The request's own event, created in `submit`, closed once.
            unsafe { CloseHandle(request.event) };
            Some(request)
        }
    }

    /// `OVERLAPPED.Internal` (the I/O status block's `Status`, `STATUS_PENDING` until the
    /// request completes) and `InternalHigh` (its `Information`), read afresh: the kernel
    /// writes them behind Rust's back.
    ///
    /// # Safety
    /// `overlapped` must point to a live `OVERLAPPED`.
    unsafe fn status_block(overlapped: *const OVERLAPPED) -> (usize, usize) {
        // SAFETY: Live (the caller's guarantee); this only takes a field's address.
        let internal = unsafe { &raw const (*overlapped).Internal };
        // SAFETY: Live (the caller's guarantee); this only takes a field's address.
        let internal_high = unsafe { &raw const (*overlapped).InternalHigh };
        // SAFETY: A live, aligned `usize` field.
        let status = unsafe { std::ptr::read_volatile(internal) };
        // SAFETY: A live, aligned `usize` field.
        let information = unsafe { std::ptr::read_volatile(internal_high) };
        (status, information)
    }

    impl PendingIo for DeviceInFlight<'_> {
        fn wait_for(&mut self, timeout: Duration) -> Option<Result<IoctlOutcome, BackendError>> {
            let Some(overlapped) = self.overlapped() else {
                // Unreachable: `InFlight` stops waiting once the completion was reported.
                return Some(Err(BackendError::Io(std::io::Error::other(
                    "harness bug: the request was already collected",
                ))));
            };
            let milliseconds = u32::try_from(timeout.as_millis())
                .unwrap_or(LONGEST_WAIT_MS)
                .min(LONGEST_WAIT_MS);
            // The request's own event, not the device handle, which `close_now` may have
            // closed while the request was in flight (GetOverlappedResult waits on `hEvent`
            // the same way when there is one; the I/O manager writes the status block before
            // it signals the event).
            // SAFETY: `overlapped` is live (type invariant); this reads its event field.
            let event = unsafe { (*overlapped).hEvent };
            // SAFETY: The request's event, open until `free`. Not alertable.
            let waited = unsafe { WaitForSingleObject(event, milliseconds) };
            // SAFETY: The OVERLAPPED is live (type invariant).
            let (internal, information) = unsafe { status_block(overlapped) };
            if waited != WAIT_OBJECT_0 || internal == STATUS_PENDING_RAW {
                // Still the kernel's (or the wait failed without it completing): keep it all.
                return None;
            }
            let request = self.free()?;
            // OVERLAPPED.Internal is the IRP's IoStatus.Status.
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            let status = internal as u32 as i32;
            let output = if nt_error(status) {
                Vec::new()
            } else {
                request.output[..information.min(request.output.len())].to_vec()
            };
            Some(Ok(IoctlOutcome { status, output }))
        }

        fn cancel(&self) {
            let device = self.device.load(Ordering::Acquire);
            // A closed handle's cleanup ended its requests already.
            if let (Some(overlapped), false) = (self.overlapped(), device.is_null()) {
                // SAFETY: The handle and live OVERLAPPED the request was issued with; a request
                // that already completed makes this fail harmlessly.
                unsafe { CancelIoEx(device, overlapped) };
            }
        }
    }

    impl Backend for DeviceBackend {
        fn front_door(&self) -> &'static str {
            "installed"
        }

        fn name(&self) -> &'static str {
            "device"
        }

        fn submit(
            &self,
            code: u32,
            input: &[u8],
            output_len: usize,
        ) -> Result<InFlight<'_>, BackendError> {
            self.issue(code, input, vec![0_u8; output_len].into_boxed_slice())
        }

        fn submit_direct(
            &self,
            code: u32,
            input: &[u8],
            payload: &[u8],
        ) -> Result<InFlight<'_>, BackendError> {
            self.issue(code, input, payload.into())
        }

        fn finish(self: Box<Self>) -> Option<ModelReport> {
            None
        }

        fn open_another(&self) -> Result<Box<dyn Backend + '_>, BackendError> {
            Ok(Box::new(Self::open()?))
        }

        fn close_now(&self) -> Result<(), BackendError> {
            self.close();
            Ok(())
        }
    }

    impl DeviceBackend {
        /// `DeviceIoControl` with `input` and `output` (the output buffer, with what the caller
        /// wrote in it), overlapped.
        fn issue(
            &self,
            code: u32,
            input: &[u8],
            output: Box<[u8]>,
        ) -> Result<InFlight<'_>, BackendError> {
            let output_len = output.len();
            let device = self.handle.load(Ordering::Acquire);
            if device.is_null() {
                return Err(BackendError::Unsupported("the handle is closed"));
            }
            let in_len = u32::try_from(input.len())
                .map_err(|e| BackendError::Io(std::io::Error::other(e)))?;
            let out_len = u32::try_from(output_len)
                .map_err(|e| BackendError::Io(std::io::Error::other(e)))?;
            // SAFETY: A manual-reset, unnamed event.
            let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
            if event.is_null() {
                return Err(last_error());
            }
            // SAFETY: OVERLAPPED is plain data; all zero is its initial state.
            let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
            overlapped.hEvent = event;
            // Stays STATUS_PENDING if the request never reaches the driver.
            overlapped.Internal = STATUS_PENDING_RAW;
            let request = Box::new(Request {
                overlapped,
                event,
                input: input.into(),
                output,
            });
            let request = NonNull::from(Box::leak(request));
            let raw = request.as_ptr();
            // INVARIANT: From `Box::into_raw` (`Box::leak`); freed only by `free`.
            let mut pending = DeviceInFlight {
                device: &self.handle,
                request: Some(request),
            };
            // SAFETY: `raw` is live; this only reads the input buffer's address.
            let input_ptr = unsafe { (*raw).input.as_ptr() };
            // SAFETY: `raw` is live; this only takes the output buffer's address.
            let output_ptr = unsafe { (*raw).output.as_mut_ptr() };
            // SAFETY: `raw` is live; this only takes the OVERLAPPED's address.
            let overlapped = unsafe { &raw mut (*raw).overlapped };
            // SAFETY:
            // 1. `device` was opened with FILE_FLAG_OVERLAPPED, so this returns at once.
            // 2. The buffers (of the given lengths) and the OVERLAPPED are heap memory owned
            //    by `pending`, freed only after the kernel completed the request (or leaked).
            let started = unsafe {
                DeviceIoControl(
                    device,
                    code,
                    input_ptr.cast::<c_void>(),
                    in_len,
                    output_ptr.cast::<c_void>(),
                    out_len,
                    std::ptr::null_mut(),
                    overlapped,
                )
            };
            // SAFETY: No preconditions.
            if started == 0 && unsafe { GetLastError() } != ERROR_IO_PENDING {
                // SAFETY: The OVERLAPPED is live (`pending` owns it).
                let (internal, _) = unsafe { status_block(overlapped) };
                // Failed synchronously. When the request reached the driver, the status is in
                // OVERLAPPED.Internal and the event is set: wait as usual. Otherwise nothing
                // is pending: free it and report the Win32 error.
                if internal == STATUS_PENDING_RAW {
                    let error = last_error();
                    pending.free();
                    return Err(error);
                }
            }
            Ok(InFlight::pending(Box::new(pending)))
        }
    }

    impl Drop for DeviceBackend {
        fn drop(&mut self) {
            // Closing it runs the driver's cleanup. No request is in flight: each borrows
            // the backend.
            self.close();
        }
    }
}

#[cfg(not(windows))]
mod shell {
    use std::convert::Infallible;

    use crate::backend::{Backend, BackendError, InFlight, ModelReport};

    /// The device backend needs Windows with the driver loaded; here it cannot be opened, so no
    /// value of it exists.
    pub struct DeviceBackend {
        never: Infallible,
    }

    impl DeviceBackend {
        /// Always fails here.
        ///
        /// # Errors
        /// [`BackendError::Unsupported`].
        pub const fn open() -> Result<Self, BackendError> {
            Err(BackendError::Unsupported(
                "the device backend needs Windows with the wskudp driver loaded; use --backend model",
            ))
        }
    }

    impl Backend for DeviceBackend {
        fn front_door(&self) -> &'static str {
            match self.never {}
        }

        fn name(&self) -> &'static str {
            match self.never {}
        }

        fn submit(&self, _: u32, _: &[u8], _: usize) -> Result<InFlight<'_>, BackendError> {
            match self.never {}
        }

        fn finish(self: Box<Self>) -> Option<ModelReport> {
            match self.never {}
        }
    }
}
