//! The `device` backend: the real driver through `\\.\WskUdp`.

#[cfg(windows)]
pub use imp::DeviceBackend;
#[cfg(not(windows))]
pub use shell::DeviceBackend;

#[cfg(windows)]
mod imp {
    use std::ffi::c_void;
    use std::os::windows::ffi::OsStrExt;

    use windows_sys::Win32::Foundation::{
        CloseHandle, ERROR_IO_PENDING, GENERIC_READ, GENERIC_WRITE, GetLastError, HANDLE,
        INVALID_HANDLE_VALUE, WAIT_TIMEOUT,
    };
    use windows_sys::Win32::Storage::FileSystem::{
        CreateFileW, FILE_FLAG_OVERLAPPED, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
    };
    use windows_sys::Win32::System::IO::{
        CancelIoEx, DeviceIoControl, GetOverlappedResult, GetOverlappedResultEx, OVERLAPPED,
    };
    use windows_sys::Win32::System::Threading::CreateEventW;
    use wskudp_abi::status::nt_error;

    use crate::backend::{Backend, BackendError, IoctlOutcome, ModelReport};

    /// How long a request may stay pending before it is cancelled.
    const TIMEOUT_MS: u32 = 30_000;
    /// `STATUS_PENDING` as `OVERLAPPED.Internal` holds it.
    const STATUS_PENDING_RAW: usize = 0x103;

    /// An open handle to the driver's device.
    pub struct DeviceBackend {
        handle: HANDLE,
    }

    // SAFETY: A file handle opened for overlapped I/O may be used from any thread; each call
    // has its own OVERLAPPED and event.
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
        /// [`BackendError::Io`] if the driver is not loaded or access is denied (the device
        /// admits Administrators and SYSTEM only).
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
                return Err(last_error());
            }
            Ok(Self { handle })
        }
    }

    struct Event(HANDLE);

    impl Drop for Event {
        fn drop(&mut self) {
            // SAFETY: An event handle this harness created.
            unsafe { CloseHandle(self.0) };
        }
    }

    impl Backend for DeviceBackend {
        fn front_door(&self) -> &'static str {
            "installed"
        }

        fn name(&self) -> &'static str {
            "device"
        }

        fn ioctl(
            &self,
            code: u32,
            input: &[u8],
            output_len: usize,
        ) -> Result<IoctlOutcome, BackendError> {
            let mut output = vec![0_u8; output_len];
            let in_len = u32::try_from(input.len())
                .map_err(|e| BackendError::Io(std::io::Error::other(e)))?;
            let out_len = u32::try_from(output_len)
                .map_err(|e| BackendError::Io(std::io::Error::other(e)))?;
            // SAFETY: A manual-reset, unnamed event.
            let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
            if event.is_null() {
                return Err(last_error());
            }
            let event = Event(event);
            // SAFETY: OVERLAPPED is plain data.
            let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
            overlapped.hEvent = event.0;
            // Stays STATUS_PENDING if the request never reaches the driver.
            overlapped.Internal = STATUS_PENDING_RAW;
            // SAFETY: Buffers and OVERLAPPED outlive the request: this function does not return
            // before it completed (or was cancelled and then completed).
            let started = unsafe {
                DeviceIoControl(
                    self.handle,
                    code,
                    input.as_ptr().cast::<c_void>(),
                    in_len,
                    output.as_mut_ptr().cast::<c_void>(),
                    out_len,
                    std::ptr::null_mut(),
                    &raw mut overlapped,
                )
            };
            // SAFETY: No preconditions.
            if started == 0 && unsafe { GetLastError() } != ERROR_IO_PENDING {
                // Failed synchronously: OVERLAPPED.Internal holds the NTSTATUS anyway when the
                // request reached the driver; otherwise report the Win32 error.
                if overlapped.Internal == STATUS_PENDING_RAW {
                    return Err(last_error());
                }
            } else {
                let mut transferred = 0_u32;
                // SAFETY: The request was issued with this OVERLAPPED.
                let waited = unsafe {
                    GetOverlappedResultEx(
                        self.handle,
                        &raw const overlapped,
                        &raw mut transferred,
                        TIMEOUT_MS,
                        0,
                    )
                };
                // SAFETY: No preconditions.
                if waited == 0 && unsafe { GetLastError() } == WAIT_TIMEOUT {
                    // Cancel, then wait for the completion before the buffers go away.
                    // SAFETY: Same handle and OVERLAPPED.
                    unsafe { CancelIoEx(self.handle, &raw const overlapped) };
                    // SAFETY: As above; waits until the driver completed the request.
                    unsafe {
                        GetOverlappedResult(
                            self.handle,
                            &raw const overlapped,
                            &raw mut transferred,
                            1,
                        )
                    };
                    return Err(BackendError::Timeout);
                }
            }
            // OVERLAPPED.Internal is the IRP's IoStatus.Status, InternalHigh its Information.
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            let status = overlapped.Internal as u32 as i32;
            let information = overlapped.InternalHigh.min(output_len);
            output.truncate(if nt_error(status) { 0 } else { information });
            Ok(IoctlOutcome { status, output })
        }

        fn finish(self: Box<Self>) -> Option<ModelReport> {
            None
        }
    }

    impl Drop for DeviceBackend {
        fn drop(&mut self) {
            // SAFETY: The handle this backend opened; closing it runs the driver's cleanup.
            unsafe { CloseHandle(self.handle) };
        }
    }
}

#[cfg(not(windows))]
mod shell {
    use std::convert::Infallible;

    use crate::backend::{Backend, BackendError, IoctlOutcome, ModelReport};

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

        fn ioctl(&self, _: u32, _: &[u8], _: usize) -> Result<IoctlOutcome, BackendError> {
            match self.never {}
        }

        fn finish(self: Box<Self>) -> Option<ModelReport> {
            match self.never {}
        }
    }
}
