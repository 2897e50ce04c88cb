//! The `model` backend: `wskudp-core` in this process on the kernel model, with the I/O
//! manager's `METHOD_BUFFERED` handling emulated.

#[cfg(unix)]
pub use imp::{ModelBackend, ModelConfig};
#[cfg(not(unix))]
pub use shell::{ModelBackend, ModelConfig};

#[cfg(unix)]
mod imp {
    use std::ffi::c_void;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    use wskudp_abi::status::nt_error;
    use wskudp_core::pool::PoolBox;
    use wskudp_core::{Driver, IoctlRequest, Owner};
    use wskudp_kmodel::{Config, Machine};

    use crate::backend::{Backend, BackendError, IoctlOutcome, ModelReport};

    /// How the model machine behaves (completion mode, fault plan).
    pub type ModelConfig = Config;

    /// How long a request may stay pending before the harness calls the driver hung.
    const COMPLETION_TIMEOUT: Duration = Duration::from_secs(30);

    /// The owner token of this backend's one "file handle".
    const OWNER: Owner = Owner(1);

    /// A model machine with the driver loaded and one handle open.
    pub struct ModelBackend {
        driver: Option<PoolBox<Driver>>,
        machine: Option<Machine>,
    }

    /// Where a completion lands: `(status, information)` once completed.
    #[derive(Default)]
    struct Slot {
        done: Mutex<Option<(i32, usize)>>,
        signal: Condvar,
    }

    /// The front door's `CompleteFn`: records the outcome and wakes the issuing thread.
    ///
    /// # Safety
    /// `context` must come from `Arc::into_raw` of a `Slot`, once per request.
    unsafe fn complete(context: *mut c_void, status: i32, information: usize) {
        // SAFETY: `context` is the Arc given to this request (one strong count per request).
        let slot = unsafe { Arc::from_raw(context.cast_const().cast::<Slot>()) };
        *slot
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((status, information));
        slot.signal.notify_all();
    }

    impl ModelBackend {
        /// Boots a model machine and loads the driver (`Driver::create`, as `DriverEntry`).
        ///
        /// # Errors
        /// [`BackendError::LoadFailed`] if the driver does not load (the machine is shut down).
        pub fn start(config: ModelConfig) -> Result<Self, BackendError> {
            Self::start_or_report(config).map_err(|(status, _)| BackendError::LoadFailed(status))
        }

        /// Like [`ModelBackend::start`], but a failed load also returns the machine's report
        /// (a `DriverEntry` that fails must still leave nothing behind).
        ///
        /// # Errors
        /// The status `Driver::create` failed with, and the report.
        pub fn start_or_report(config: ModelConfig) -> Result<Self, (i32, Box<ModelReport>)> {
            let machine = Machine::boot(config);
            match Driver::create() {
                Ok(driver) => Ok(Self {
                    driver: Some(driver),
                    machine: Some(machine),
                }),
                Err(status) => Err((status, Box::new(machine.shutdown()))),
            }
        }

        /// Counters of the machine so far.
        #[must_use]
        pub fn stats(&self) -> Option<wskudp_kmodel::Stats> {
            self.machine.as_ref().map(Machine::stats)
        }

        /// Pool allocations so far, by tag.
        #[must_use]
        pub fn allocations_by_tag(&self) -> std::collections::BTreeMap<String, u64> {
            self.machine
                .as_ref()
                .map(Machine::allocations_by_tag)
                .unwrap_or_default()
        }
    }

    impl ModelBackend {
        /// Issues an IOCTL as if through another open handle of the device (`handle` 1 is the
        /// backend's own), e.g. to check that sockets are private to the handle that opened them.
        ///
        /// # Errors
        /// As [`Backend::ioctl`].
        pub fn ioctl_as(
            &self,
            handle: usize,
            code: u32,
            input: &[u8],
            output_len: usize,
        ) -> Result<IoctlOutcome, BackendError> {
            self.issue(Owner(handle), code, input, output_len)
        }

        /// `IRP_MJ_CLEANUP` for another handle (see [`ModelBackend::ioctl_as`]).
        pub fn close_handle(&self, handle: usize) {
            if let Some(driver) = self.driver.as_ref() {
                driver.cleanup(Owner(handle));
            }
        }

        fn issue(
            &self,
            owner: Owner,
            code: u32,
            input: &[u8],
            output_len: usize,
        ) -> Result<IoctlOutcome, BackendError> {
            let Some(driver) = self.driver.as_ref() else {
                return Err(BackendError::Unsupported("the model driver is unloaded"));
            };
            // The I/O manager's system buffer: max(input, output) bytes, input copied in.
            let mut system = vec![0_u8; input.len().max(output_len)];
            system[..input.len()].copy_from_slice(input);
            let buffer = if system.is_empty() {
                std::ptr::null_mut()
            } else {
                system.as_mut_ptr()
            };
            let slot = Arc::new(Slot::default());
            let context = Arc::into_raw(Arc::clone(&slot)).cast_mut().cast::<c_void>();
            // SAFETY: `system` stays alive and unmoved until the completion is observed below
            // (or is leaked on timeout); `complete` takes the Arc given as context exactly once.
            let request = unsafe {
                IoctlRequest::new(code, buffer, input.len(), output_len, complete, context)
            };
            driver.dispatch(owner, request);
            let outcome = *slot
                .signal
                .wait_timeout_while(
                    slot.done
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    COMPLETION_TIMEOUT,
                    |done| done.is_none(),
                )
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            let Some((status, information)) = outcome else {
                // The driver may still write into the buffer: it must outlive the process.
                std::mem::forget(system);
                return Err(BackendError::Timeout);
            };
            if information > output_len {
                return Err(BackendError::DriverBug(format!(
                    "the driver reported {information} output bytes for a {output_len}-byte buffer"
                )));
            }
            let output = if nt_error(status) {
                Vec::new()
            } else {
                system[..information].to_vec()
            };
            Ok(IoctlOutcome { status, output })
        }
    }

    impl Backend for ModelBackend {
        fn name(&self) -> &'static str {
            "model"
        }

        fn ioctl(
            &self,
            code: u32,
            input: &[u8],
            output_len: usize,
        ) -> Result<IoctlOutcome, BackendError> {
            self.issue(OWNER, code, input, output_len)
        }

        fn finish(mut self: Box<Self>) -> Option<ModelReport> {
            if let Some(driver) = self.driver.take() {
                // IRP_MJ_CLEANUP for the handle, then unload.
                driver.cleanup(OWNER);
                drop(driver);
            }
            self.machine.take().map(Machine::shutdown)
        }
    }

    impl Drop for ModelBackend {
        fn drop(&mut self) {
            if let Some(driver) = self.driver.take() {
                driver.cleanup(OWNER);
                drop(driver);
            }
        }
    }
}

#[cfg(not(unix))]
mod shell {
    use std::convert::Infallible;

    use crate::backend::{Backend, BackendError, IoctlOutcome, ModelReport};

    /// Model settings (none on this host).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct ModelConfig {
        _none: (),
    }

    /// The model backend needs the kernel model, which runs on Unix hosts (it emulates the
    /// kernel with host sockets); here it cannot start, so no value of it exists.
    pub struct ModelBackend {
        never: Infallible,
    }

    impl ModelBackend {
        /// Always fails here.
        ///
        /// # Errors
        /// [`BackendError::Unsupported`].
        pub const fn start(_config: ModelConfig) -> Result<Self, BackendError> {
            Err(BackendError::Unsupported(
                "the model backend runs only on Linux/Unix hosts (it emulates the kernel with host sockets)",
            ))
        }
    }

    impl Backend for ModelBackend {
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
