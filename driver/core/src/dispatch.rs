//! The framework-neutral IOCTL dispatcher.
//!
//! A front door (KMDF, WDM, or the harness's model backend) wraps each `METHOD_BUFFERED`
//! request in an [`IoctlRequest`] and hands it to [`crate::Driver::dispatch`]. Core completes
//! it exactly once through the front door's callback, either before `dispatch` returns or
//! later from a WSK completion routine.

use core::ffi::c_void;
use core::ptr::NonNull;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ddi::nt::{MDL, NTSTATUS};
use crate::status::{STATUS_BUFFER_TOO_SMALL, STATUS_INTERNAL_ERROR, STATUS_SUCCESS};

/// How a front door completes a request: `complete(context, status, information)`.
///
/// Called exactly once per request, at IRQL <= `DISPATCH_LEVEL`, on any thread, possibly
/// before `dispatch` returns. `information` is the number of output bytes written (the IRP's
/// `IoStatus.Information`); it is zero for error statuses.
pub type CompleteFn = unsafe fn(context: *mut c_void, status: NTSTATUS, information: usize);

/// What a front door calls when a request core marked cancelable is cancelled.
///
/// `on_cancel(cookie)`, once, at IRQL <= `DISPATCH_LEVEL`, on any thread, with no front-door
/// lock held (the cancel spin lock released). Core still completes the request itself.
pub type CancelFn = unsafe fn(cookie: *mut c_void);

/// How a front door makes its requests cancelable: `WdfRequestMarkCancelableEx` /
/// `WdfRequestUnmarkCancelable` (KMDF), `IoSetCancelRoutine` under the cancel spin lock (WDM).
///
/// IRQL: both hooks at <= `DISPATCH_LEVEL`, any thread.
#[derive(Clone, Copy, Debug)]
pub struct CancelHooks {
    /// Arranges for `on_cancel(cookie)` to be called if the request `context` is cancelled.
    /// `false` if it already was (then nothing will be called).
    pub mark: unsafe fn(context: *mut c_void, on_cancel: CancelFn, cookie: *mut c_void) -> bool,
    /// Withdraws [`CancelHooks::mark`]: `true` if `on_cancel` will not be called, `false` if it
    /// has been called or is about to be.
    pub unmark: unsafe fn(context: *mut c_void) -> bool,
}

/// Whether a request could be made cancelable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Marked {
    /// The front door will call `on_cancel` if the request is cancelled, until unmarked.
    Yes,
    /// It was cancelled already; `on_cancel` will not be called.
    AlreadyCancelled,
    /// The front door offers no cancellation.
    Unsupported,
}

/// One buffered IOCTL, owned by core until completed.
///
/// IRQL: <= `DISPATCH_LEVEL` for every operation.
///
/// # Invariants
/// `buffer` is valid for reads of `input_len` and writes of `output_len` bytes until
/// `complete` has been called (the I/O manager's `SystemBuffer` is
/// `max(input_len, output_len)` bytes); `complete`/`context` have not been called yet.
pub struct IoctlRequest {
    code: u32,
    buffer: *mut u8,
    input_len: usize,
    output_len: usize,
    complete: CompleteFn,
    context: *mut c_void,
    cancel: Option<&'static CancelHooks>,
    /// `METHOD_IN_DIRECT`'s locked MDL over the caller's output buffer, with its length.
    direct: Option<(NonNull<MDL>, usize)>,
}

// SAFETY: The request may be completed from any thread (the front door's contract for
// `CompleteFn`), and its buffer is non-paged system memory.
unsafe impl Send for IoctlRequest {}

impl IoctlRequest {
    /// Wraps a front door's request.
    ///
    /// # Safety
    /// - `buffer` must be valid for reads of `input_len` bytes and writes of `output_len`
    ///   bytes, in non-paged memory, until `complete` is called (it may be null if both
    ///   lengths are zero); input and output may overlap (`METHOD_BUFFERED`).
    /// - `complete(context, ..)` must be callable once at IRQL <= `DISPATCH_LEVEL` from any
    ///   thread.
    #[must_use]
    pub const unsafe fn new(
        code: u32,
        buffer: *mut u8,
        input_len: usize,
        output_len: usize,
        complete: CompleteFn,
        context: *mut c_void,
    ) -> Self {
        // INVARIANT: the caller's guarantees, verbatim.
        Self {
            code,
            buffer,
            input_len,
            output_len,
            complete,
            context,
            cancel: None,
            direct: None,
        }
    }

    /// Gives core the caller's output buffer of a `METHOD_IN_DIRECT` request: `mdl`
    /// (`Irp->MdlAddress`, `WdfRequestRetrieveOutputWdmMdl`), describing `len` bytes. A null
    /// `mdl` (a zero-length output buffer has none) leaves the request without one.
    ///
    /// # Safety
    /// `mdl` must be null or the request's MDL the I/O manager locked over `len` bytes, which
    /// stays locked until the request is completed.
    #[must_use]
    pub const unsafe fn with_direct_output(mut self, mdl: *mut MDL, len: usize) -> Self {
        self.direct = match NonNull::new(mdl) {
            Some(mdl) => Some((mdl, len)),
            None => None,
        };
        self
    }

    /// Lets core make the request cancelable through `hooks`.
    ///
    /// # Safety
    /// `hooks` must accept this request's `context` as [`CancelHooks`] describes, until the
    /// request is completed.
    #[must_use]
    pub const unsafe fn with_cancel(mut self, hooks: &'static CancelHooks) -> Self {
        self.cancel = Some(hooks);
        self
    }

    /// Asks the front door to call `on_cancel(cookie)` if the request is cancelled.
    ///
    /// # Safety
    /// `on_cancel` must accept `cookie` until [`IoctlRequest::unmark_cancelable`] returned
    /// `true` or `on_cancel` ran.
    pub(crate) unsafe fn mark_cancelable(
        &self,
        on_cancel: CancelFn,
        cookie: *mut c_void,
    ) -> Marked {
        let Some(hooks) = self.cancel else {
            return Marked::Unsupported;
        };
        // SAFETY: The hooks take this request's context (`with_cancel`'s contract); the
        // callback's contract is the caller's.
        if unsafe { (hooks.mark)(self.context, on_cancel, cookie) } {
            Marked::Yes
        } else {
            Marked::AlreadyCancelled
        }
    }

    /// Withdraws [`IoctlRequest::mark_cancelable`]: `true` if `on_cancel` will not run.
    pub(crate) fn unmark_cancelable(&self) -> bool {
        let Some(hooks) = self.cancel else {
            return true;
        };
        // SAFETY: The hooks take this request's context (`with_cancel`'s contract), and it
        // was marked (callers unmark only what they marked).
        unsafe { (hooks.unmark)(self.context) }
    }

    /// The IOCTL code.
    #[must_use]
    pub const fn code(&self) -> u32 {
        self.code
    }

    /// The input bytes. Borrowing `self` shared keeps output writes out until done reading.
    #[must_use]
    pub const fn input(&self) -> &[u8] {
        if self.buffer.is_null() || self.input_len == 0 {
            return &[];
        }
        // SAFETY: Valid for reads of `input_len` bytes (type invariant); no `&mut` to the
        // buffer exists while this shared borrow of `self` lives.
        unsafe { core::slice::from_raw_parts(self.buffer, self.input_len) }
    }

    /// The locked MDL over the caller's output buffer and its length (`METHOD_IN_DIRECT`
    /// only), valid until the request completes.
    #[must_use]
    pub(crate) const fn direct_output(&self) -> Option<(NonNull<MDL>, usize)> {
        self.direct
    }

    /// Bytes available for the response.
    #[must_use]
    pub const fn output_len(&self) -> usize {
        self.output_len
    }

    const fn output(&mut self) -> &mut [u8] {
        if self.buffer.is_null() || self.output_len == 0 {
            return &mut [];
        }
        // SAFETY: Valid for writes of `output_len` bytes (type invariant); `&mut self`
        // guarantees no input slice is alive.
        unsafe { core::slice::from_raw_parts_mut(self.buffer, self.output_len) }
    }

    /// Fails with `STATUS_BUFFER_TOO_SMALL` unless the output buffer can hold a `T`.
    ///
    /// # Errors
    /// `STATUS_BUFFER_TOO_SMALL`.
    pub const fn require_output<T>(&self) -> Result<(), NTSTATUS> {
        if self.output_len < size_of::<T>() {
            Err(STATUS_BUFFER_TOO_SMALL)
        } else {
            Ok(())
        }
    }

    /// Completes the request.
    pub fn complete(self, status: NTSTATUS, information: usize) {
        let this = core::mem::ManuallyDrop::new(self);
        let information = if status < 0 { 0 } else { information };
        // SAFETY: Called exactly once (self is consumed and its Drop suppressed); the front
        // door's contract allows any thread at IRQL <= DISPATCH_LEVEL.
        unsafe { (this.complete)(this.context, status, information) };
    }

    /// Writes `response` to the output buffer and completes with `STATUS_SUCCESS`, or with
    /// `STATUS_BUFFER_TOO_SMALL` if it does not fit.
    pub fn complete_with_response<T: IntoBytes + Immutable>(self, response: &T) {
        self.complete_with_bytes(response.as_bytes());
    }

    /// Builds a response too large for a kernel stack directly in the output buffer: zeroes it
    /// as a `T`, lets `fill` write it, and completes with `STATUS_SUCCESS`; or with
    /// `STATUS_BUFFER_TOO_SMALL` if the buffer cannot hold a `T` (then `fill` is not called).
    /// The input must have been read already (`METHOD_BUFFERED` shares the buffer).
    pub fn complete_in_place<T: FromBytes + IntoBytes + KnownLayout>(
        mut self,
        fill: impl FnOnce(&mut T),
    ) {
        let output = self.output();
        match T::mut_from_prefix(output) {
            Ok((response, _)) => {
                response.as_mut_bytes().fill(0);
                fill(response);
                self.complete(STATUS_SUCCESS, size_of::<T>());
            }
            Err(_) => self.complete(STATUS_BUFFER_TOO_SMALL, 0),
        }
    }

    /// Writes `bytes` to the output buffer and completes with `STATUS_SUCCESS`, or with
    /// `STATUS_BUFFER_TOO_SMALL` if they do not fit.
    pub fn complete_with_bytes(mut self, bytes: &[u8]) {
        let output = self.output();
        match output.get_mut(..bytes.len()) {
            Some(out) => {
                out.copy_from_slice(bytes);
                self.complete(STATUS_SUCCESS, bytes.len());
            }
            None => self.complete(STATUS_BUFFER_TOO_SMALL, 0),
        }
    }

    /// Completes with `result`'s response or error status.
    pub fn finish<T: IntoBytes + Immutable>(self, result: Result<T, NTSTATUS>) {
        match result {
            Ok(response) => self.complete_with_response(&response),
            Err(status) => self.complete(status, 0),
        }
    }
}

impl Drop for IoctlRequest {
    /// Reached only if a code path forgot the request: complete it rather than leave the
    /// client waiting forever.
    fn drop(&mut self) {
        // SAFETY: Not completed yet (every completion consumes the request without running
        // this Drop), so this is the one call.
        unsafe { (self.complete)(self.context, STATUS_INTERNAL_ERROR, 0) };
    }
}
