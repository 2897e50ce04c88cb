//! The `model` backend: the driver in this process, on the kernel model, reached through one
//! of its front doors:
//! - `kmdf` (default): the shipping KMDF front door, loaded through the WDF model's
//!   `FxDriverEntry`; requests are IRPs the model's I/O manager builds and delivers to the
//!   `MajorFunction` table KMDF installed;
//! - `wdm`: the WDM front door, the same way without the framework;
//! - `none`: core's dispatcher called directly (no IRPs), as a baseline.

#[cfg(unix)]
pub use imp::{ModelBackend, ModelConfig};
#[cfg(not(unix))]
pub use shell::{ModelBackend, ModelConfig};

/// Which of the driver's entry points the model backend goes through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FrontDoor {
    /// The KMDF front door over the WDF model (the shipping driver).
    #[default]
    Kmdf,
    /// The WDM front door.
    Wdm,
    /// Core's dispatcher, called directly.
    None,
}

impl FrontDoor {
    /// `"kmdf"`, `"wdm"` or `"none"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kmdf => "kmdf",
            Self::Wdm => "wdm",
            Self::None => "none",
        }
    }

    /// Every front door.
    pub const ALL: [Self; 3] = [Self::Kmdf, Self::Wdm, Self::None];
}

#[cfg(unix)]
mod imp {
    use std::collections::{BTreeMap, BTreeSet};
    use std::ffi::c_void;
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    use wskudp_abi::status::nt_error;
    use wskudp_core::pool::PoolBox;
    use wskudp_core::{
        CREATE_SPEAKING, CancelFn, CancelHooks, Driver, DriverDevice, HandleState, IoctlRequest,
    };
    use wskudp_kmodel::iomgr::{self, EntryKind, Handle, LoadedDriver, PendingRequest};
    use wskudp_kmodel::{Access, Caller, Config, Machine};

    use super::FrontDoor;
    use crate::backend::{
        Backend, BackendError, COMPLETION_TIMEOUT, InFlight, IoctlOutcome, ModelReport, PendingIo,
    };

    /// How the model machine behaves and which front door requests take.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ModelConfig {
        /// Completion mode, fault plan, unload race window.
        pub machine: Config,
        /// The entry point requests go through.
        pub front_door: FrontDoor,
        /// Load a driver that speaks ABI versions up to this one only, standing in for a
        /// driver one release older (the compatibility tests), through any front door (core's
        /// `CREATE_SPEAKING` for the KMDF and WDM ones); `None`: every version.
        pub driver_abi: Option<u32>,
    }

    impl ModelConfig {
        /// The default machine, through `front_door`.
        #[must_use]
        pub fn through(front_door: FrontDoor) -> Self {
            Self {
                machine: Config::default(),
                front_door,
                driver_abi: None,
            }
        }
    }

    /// The service name the model loads the driver as.
    const SERVICE: &str = "wskudp";
    /// The backend's own handle.
    const OWN_HANDLE: usize = 1;

    /// The loaded driver, by front door.
    enum Loaded {
        /// Reached through IRPs: the KMDF or WDM front door.
        Io {
            driver: Option<LoadedDriver>,
            handles: Mutex<BTreeMap<usize, Arc<Handle>>>,
        },
        /// Core's dispatcher, called directly.
        Direct {
            driver: Option<LoadedDriver>,
            state: Option<PoolBox<Driver>>,
            handles: Mutex<BTreeMap<usize, Arc<HandleState>>>,
        },
    }

    /// A model machine with the driver loaded and handles open on it.
    pub struct ModelBackend {
        loaded: Loaded,
        machine: Option<Machine>,
        front_door: FrontDoor,
        caller: Caller,
        /// The next handle [`Backend::open_another`] opens.
        next_handle: AtomicUsize,
        /// Handles [`Backend::close_now`] closed: requests through them fail, where
        /// [`ModelBackend::submit_as`] would open a closed handle again.
        closed_early: Mutex<BTreeSet<usize>>,
    }

    /// A request's output buffer.
    #[derive(Clone, Copy)]
    enum Output<'a> {
        /// This many bytes, for the driver to write.
        Empty(usize),
        /// The caller's bytes, for the driver to read (direct I/O).
        Filled(&'a [u8]),
    }

    /// The first handle [`Backend::open_another`] opens (above those tests pick by number).
    const FIRST_ANOTHER: usize = 1000;

    /// Another handle of a [`ModelBackend`] ([`Backend::open_another`]); closed when dropped.
    struct ModelHandle<'a> {
        model: &'a ModelBackend,
        index: usize,
    }

    impl Backend for ModelHandle<'_> {
        fn name(&self) -> &'static str {
            self.model.name()
        }

        fn front_door(&self) -> &'static str {
            self.model.front_door()
        }

        fn submit(
            &self,
            code: u32,
            input: &[u8],
            output_len: usize,
        ) -> Result<InFlight<'_>, BackendError> {
            self.model
                .issue(self.index, code, input, Output::Empty(output_len))
        }

        fn submit_direct(
            &self,
            code: u32,
            input: &[u8],
            payload: &[u8],
        ) -> Result<InFlight<'_>, BackendError> {
            self.model
                .issue(self.index, code, input, Output::Filled(payload))
        }

        fn finish(self: Box<Self>) -> Option<ModelReport> {
            None
        }

        fn close_now(&self) -> Result<(), BackendError> {
            self.model.close_early(self.index);
            Ok(())
        }
    }

    impl Drop for ModelHandle<'_> {
        fn drop(&mut self) {
            self.model.close_handle(self.index);
        }
    }

    /// A request through the KMDF or WDM front door: an IRP of the model's I/O manager, which
    /// owns the IRP and its system buffer (dropping this before completion frees nothing).
    struct IrpInFlight(PendingRequest);

    impl PendingIo for IrpInFlight {
        fn wait_for(&mut self, timeout: Duration) -> Option<Result<IoctlOutcome, BackendError>> {
            self.0
                .wait(Some(timeout))
                .map(|(status, output)| Ok(IoctlOutcome { status, output }))
        }

        fn cancel(&self) {
            self.0.cancel();
        }
    }

    /// The I/O manager's system buffer for a direct request: `max(input, output)` bytes.
    ///
    /// # Invariants
    /// `bytes` came from `Box::into_raw` of a `len`-byte boxed slice (dangling if `len` is 0)
    /// and is freed only by `Drop`.
    struct SystemBuffer {
        bytes: NonNull<u8>,
        len: usize,
    }

    // SAFETY: Core writes the buffer between dispatch and completion; the harness reads it
    // only after observing the completion under the slot's lock (which orders the writes
    // before the read), and frees it only when the last reference to the slot goes.
    unsafe impl Send for SystemBuffer {}
    // SAFETY: As above.
    unsafe impl Sync for SystemBuffer {}

    impl SystemBuffer {
        /// `len` bytes, `input` copied in first.
        fn new(input: &[u8], len: usize) -> Self {
            let mut bytes = vec![0_u8; len].into_boxed_slice();
            bytes[..input.len()].copy_from_slice(input);
            // INVARIANT: From `Box::leak` (as from `Box::into_raw`), `len` bytes.
            Self {
                bytes: NonNull::from(Box::leak(bytes)).cast::<u8>(),
                len,
            }
        }

        /// The address core gets: null for an empty buffer, as the I/O manager passes.
        const fn as_ptr(&self) -> *mut u8 {
            if self.len == 0 {
                std::ptr::null_mut()
            } else {
                self.bytes.as_ptr()
            }
        }

        /// The first `n` bytes (`n <= len`).
        ///
        /// # Safety
        /// The driver must be done writing the buffer (the request completed, and the
        /// completion was observed under the slot's lock).
        unsafe fn read(&self, n: usize) -> Vec<u8> {
            // SAFETY: `len` initialised bytes (type invariant), nobody writes them any more (the
            // caller's guarantee); `n` is clamped to `len`.
            unsafe { std::slice::from_raw_parts(self.bytes.as_ptr(), n.min(self.len)) }.to_vec()
        }
    }

    impl Drop for SystemBuffer {
        fn drop(&mut self) {
            let slice = std::ptr::slice_from_raw_parts_mut(self.bytes.as_ptr(), self.len);
            // SAFETY: From `Box::into_raw` of this length (type invariant), freed once.
            drop(unsafe { Box::from_raw(slice) });
        }
    }

    /// One direct request until its last reference goes: core's completion holds one, the
    /// [`DirectInFlight`] the other, so the buffer core writes outlives both the request and an
    /// issuer that stopped waiting.
    struct Slot {
        /// `(status, information)` once completed.
        done: Mutex<Option<(i32, usize)>>,
        signal: Condvar,
        buffer: SystemBuffer,
        /// The handle's state lives as long as any request dispatched through it, as the I/O
        /// manager keeps a file object referenced while requests on it are pending.
        handle: Arc<HandleState>,
        /// Cancellation, as the I/O manager's cancel routine protocol does it.
        cancel: Mutex<Cancel>,
    }

    /// A direct request's cancel state: whether it was cancelled, and core's callback while
    /// the request is marked cancelable.
    #[derive(Default)]
    struct Cancel {
        requested: bool,
        callback: Option<(CancelFn, usize)>,
    }

    impl Slot {
        fn cancel_state(&self) -> std::sync::MutexGuard<'_, Cancel> {
            self.cancel
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    /// [`CancelHooks::mark`] for the direct front door.
    ///
    /// # Safety
    /// `context` is a request's `Slot`, alive until the request completes.
    unsafe fn mark_cancelable(
        context: *mut c_void,
        on_cancel: CancelFn,
        cookie: *mut c_void,
    ) -> bool {
        // SAFETY: The completion's reference keeps the slot alive (caller's guarantee).
        let slot = unsafe { &*context.cast_const().cast::<Slot>() };
        let mut cancel = slot.cancel_state();
        if cancel.requested {
            return false;
        }
        cancel.callback = Some((on_cancel, cookie.expose_provenance()));
        true
    }

    /// [`CancelHooks::unmark`] for the direct front door.
    ///
    /// # Safety
    /// As [`mark_cancelable`].
    unsafe fn unmark_cancelable(context: *mut c_void) -> bool {
        // SAFETY: As in `mark_cancelable`.
        let slot = unsafe { &*context.cast_const().cast::<Slot>() };
        slot.cancel_state().callback.take().is_some()
    }

    static CANCEL_HOOKS: CancelHooks = CancelHooks {
        mark: mark_cancelable,
        unmark: unmark_cancelable,
    };

    /// Core's `CompleteFn` for the direct front door: records the outcome and wakes the issuer.
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

    /// A request dispatched to core directly.
    struct DirectInFlight {
        slot: Arc<Slot>,
        output_len: usize,
    }

    impl PendingIo for DirectInFlight {
        fn wait_for(&mut self, timeout: Duration) -> Option<Result<IoctlOutcome, BackendError>> {
            let (status, information) = (*self
                .slot
                .signal
                .wait_timeout_while(
                    self.slot
                        .done
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    timeout,
                    |done| done.is_none(),
                )
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0)?;
            if information > self.output_len {
                return Some(Err(BackendError::DriverBug(format!(
                    "the driver reported {information} output bytes for a {}-byte buffer",
                    self.output_len
                ))));
            }
            let output = if nt_error(status) {
                Vec::new()
            } else {
                // SAFETY: Completed, observed under the slot's lock just above.
                unsafe { self.slot.buffer.read(information) }
            };
            Some(Ok(IoctlOutcome { status, output }))
        }

        fn cancel(&self) {
            let callback = {
                let mut cancel = self.slot.cancel_state();
                cancel.requested = true;
                cancel.callback.take()
            };
            if let Some((on_cancel, cookie)) = callback {
                // SAFETY: Core's callback with its cookie, once (taken under the lock).
                unsafe { on_cancel(std::ptr::with_exposed_provenance_mut(cookie)) };
            }
        }
    }

    impl ModelBackend {
        /// Boots a model machine and loads the driver through `config.front_door`.
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
        /// The status the load failed with, and the report.
        pub fn start_or_report(config: ModelConfig) -> Result<Self, (i32, Box<ModelReport>)> {
            let machine = Machine::boot(config.machine);
            // The KMDF and WDM front doors create the driver in their DriverEntry, which speaks
            // what `CREATE_SPEAKING` says while it runs (one machine at a time: `boot` waits
            // for the previous one to shut down).
            let speaking = config.driver_abi.unwrap_or(wskudp_abi::ABI_VERSION);
            let load = |entry, kind| {
                CREATE_SPEAKING.store(speaking, Ordering::Relaxed);
                let loaded = iomgr::load(SERVICE, entry, kind);
                CREATE_SPEAKING.store(wskudp_abi::ABI_VERSION, Ordering::Relaxed);
                loaded
            };
            let loaded = match config.front_door {
                FrontDoor::Kmdf => load(wskudp_front::kmdf::driver_entry, EntryKind::Kmdf),
                FrontDoor::Wdm => load(wskudp_front::wdm::driver_entry, EntryKind::Direct),
                FrontDoor::None => return Self::start_direct(machine, config.driver_abi),
            };
            match loaded {
                Ok(driver) => Ok(Self {
                    loaded: Loaded::Io {
                        driver: Some(driver),
                        handles: Mutex::new(BTreeMap::new()),
                    },
                    machine: Some(machine),
                    front_door: config.front_door,
                    caller: Caller::Administrator,
                    next_handle: AtomicUsize::new(FIRST_ANOTHER),
                    closed_early: Mutex::new(BTreeSet::new()),
                }),
                Err(status) => Err((status, Box::new(machine.shutdown()))),
            }
        }

        fn start_direct(
            machine: Machine,
            abi: Option<u32>,
        ) -> Result<Self, (i32, Box<ModelReport>)> {
            let (driver, device) = match iomgr::load_bare(SERVICE) {
                Ok(loaded) => loaded,
                Err(status) => return Err((status, Box::new(machine.shutdown()))),
            };
            let Some(device) = std::ptr::NonNull::new(device) else {
                return Err((-1, Box::new(machine.shutdown())));
            };
            // SAFETY: The bare driver's device lives until its unload, after the state is
            // dropped (`finish`).
            let device = unsafe { DriverDevice::new(device) };
            match Driver::create_speaking(device, abi.unwrap_or(wskudp_abi::ABI_VERSION)) {
                Ok(state) => Ok(Self {
                    loaded: Loaded::Direct {
                        driver: Some(driver),
                        state: Some(state),
                        handles: Mutex::new(BTreeMap::new()),
                    },
                    machine: Some(machine),
                    front_door: FrontDoor::None,
                    caller: Caller::Administrator,
                    next_handle: AtomicUsize::new(FIRST_ANOTHER),
                    closed_early: Mutex::new(BTreeSet::new()),
                }),
                Err(status) => {
                    let _ = driver.unload();
                    Err((status, Box::new(machine.shutdown())))
                }
            }
        }

        /// Opens handles as `caller` from now on (the model's access checks).
        pub const fn set_caller(&mut self, caller: Caller) {
            self.caller = caller;
        }

        /// Counters of the machine so far.
        #[must_use]
        pub fn stats(&self) -> Option<wskudp_kmodel::Stats> {
            self.machine.as_ref().map(Machine::stats)
        }

        /// Pool allocations so far, by tag.
        #[must_use]
        pub fn allocations_by_tag(&self) -> BTreeMap<String, u64> {
            self.machine
                .as_ref()
                .map(Machine::allocations_by_tag)
                .unwrap_or_default()
        }

        /// Opens handle `index` (`CreateFile` on `\\.\WskUdp`), if not open yet.
        ///
        /// # Errors
        /// The status `IRP_MJ_CREATE` failed with (e.g. `STATUS_ACCESS_DENIED`).
        pub fn open_handle(&self, index: usize) -> Result<(), i32> {
            match &self.loaded {
                Loaded::Io { handles, .. } => {
                    let mut handles = handles
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let std::collections::btree_map::Entry::Vacant(slot) = handles.entry(index) {
                        let handle = iomgr::open(
                            wskudp_abi::USER_DEVICE_PATH,
                            self.caller,
                            Access::READ_WRITE,
                        )?;
                        slot.insert(Arc::new(handle));
                    }
                    drop(handles);
                    Ok(())
                }
                Loaded::Direct { state, handles, .. } => {
                    let mut handles = handles
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let (std::collections::btree_map::Entry::Vacant(slot), Some(state)) =
                        (handles.entry(index), state)
                    {
                        let handle = Arc::new(HandleState::new());
                        state.open_handle(&handle);
                        slot.insert(handle);
                    }
                    drop(handles);
                    Ok(())
                }
            }
        }

        /// Issues an IOCTL as if through another open handle of the device (`handle` 1 is the
        /// backend's own) and waits for it, e.g. to check that sockets are private to the
        /// handle that opened them. The handle is opened on first use.
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
            self.submit_as(handle, code, input, output_len)?
                .wait(COMPLETION_TIMEOUT)
        }

        /// [`ModelBackend::ioctl_as`] without waiting: [`Backend::submit`] through handle
        /// `handle`.
        ///
        /// # Errors
        /// As [`Backend::submit`].
        pub fn submit_as(
            &self,
            handle: usize,
            code: u32,
            input: &[u8],
            output_len: usize,
        ) -> Result<InFlight<'_>, BackendError> {
            self.issue(handle, code, input, Output::Empty(output_len))
        }

        /// Closes handle `index` (`IRP_MJ_CLEANUP` now, `IRP_MJ_CLOSE` once its requests are
        /// done).
        pub fn close_handle(&self, index: usize) {
            match &self.loaded {
                Loaded::Io { handles, .. } => {
                    let handle = handles
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&index);
                    if let Some(handle) = handle {
                        handle.close();
                    }
                }
                Loaded::Direct { state, handles, .. } => {
                    let handle = handles
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&index);
                    if let (Some(state), Some(handle)) = (state, handle) {
                        state.cleanup(&handle);
                    }
                }
            }
        }

        /// [`Backend::close_now`] of handle `index`: closed, and never opened again.
        fn close_early(&self, index: usize) {
            self.closed_early
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(index);
            self.close_handle(index);
        }

        fn issue(
            &self,
            index: usize,
            code: u32,
            input: &[u8],
            output: Output<'_>,
        ) -> Result<InFlight<'_>, BackendError> {
            if self
                .closed_early
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&index)
            {
                return Err(BackendError::Unsupported("the handle is closed"));
            }
            self.open_handle(index).map_err(BackendError::OpenFailed)?;
            match &self.loaded {
                Loaded::Io { handles, .. } => {
                    let handle = handles
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get(&index)
                        .cloned();
                    let handle = handle.ok_or(BackendError::Unsupported("the handle is closed"))?;
                    let issued = match output {
                        Output::Empty(len) => handle.ioctl(code, input, len),
                        Output::Filled(bytes) => handle.ioctl_direct(code, input, bytes),
                    };
                    Ok(match issued {
                        Ok(pending) => InFlight::pending(Box::new(IrpInFlight(pending))),
                        // Refused by the I/O manager: it never reached the driver.
                        Err(status) => InFlight::completed(IoctlOutcome {
                            status,
                            output: Vec::new(),
                        }),
                    })
                }
                Loaded::Direct { state, handles, .. } => {
                    let Some(state) = state.as_ref() else {
                        return Err(BackendError::Unsupported("the model driver is unloaded"));
                    };
                    let handle = handles
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get(&index)
                        .cloned()
                        .ok_or(BackendError::Unsupported("the handle is closed"))?;
                    let Output::Empty(output_len) = output else {
                        return Err(BackendError::Unsupported(
                            "direct I/O needs the I/O manager: the none front door has none",
                        ));
                    };
                    Ok(direct_submit(state, handle, code, input, output_len))
                }
            }
        }

        fn unload(&mut self) {
            let open: Vec<usize> = match &self.loaded {
                Loaded::Io { handles, .. } => handles
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .keys()
                    .copied()
                    .collect(),
                Loaded::Direct { handles, .. } => handles
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .keys()
                    .copied()
                    .collect(),
            };
            for index in open {
                self.close_handle(index);
            }
            let driver = match &mut self.loaded {
                Loaded::Io { driver, .. } => driver.take(),
                Loaded::Direct { driver, state, .. } => {
                    drop(state.take());
                    driver.take()
                }
            };
            if let Some(driver) = driver {
                let _ = driver.unload();
            }
        }
    }

    /// One request straight into core's dispatcher, with the I/O manager's `METHOD_BUFFERED`
    /// handling emulated; it completes whenever core completes it.
    fn direct_submit<'a>(
        state: &Driver,
        handle: Arc<HandleState>,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> InFlight<'a> {
        let slot = Arc::new(Slot {
            done: Mutex::new(None),
            signal: Condvar::new(),
            buffer: SystemBuffer::new(input, input.len().max(output_len)),
            handle,
            cancel: Mutex::new(Cancel::default()),
        });
        let context = Arc::into_raw(Arc::clone(&slot)).cast_mut().cast::<c_void>();
        // SAFETY:
        // 1. The buffer is `max(input, output)` bytes with the input copied in, and lives in the
        //    slot, which the completion's own reference keeps alive until `complete` ran.
        // 2. `complete` takes the Arc given as context exactly once, from any thread.
        let request = unsafe {
            IoctlRequest::new(
                code,
                slot.buffer.as_ptr(),
                input.len(),
                output_len,
                complete,
                context,
            )
        };
        // SAFETY: The hooks take the slot, alive until the request completes.
        let request = unsafe { request.with_cancel(&CANCEL_HOOKS) };
        state.dispatch(&slot.handle, request);
        InFlight::pending(Box::new(DirectInFlight { slot, output_len }))
    }

    impl Backend for ModelBackend {
        fn name(&self) -> &'static str {
            "model"
        }

        fn front_door(&self) -> &'static str {
            self.front_door.name()
        }

        fn submit(
            &self,
            code: u32,
            input: &[u8],
            output_len: usize,
        ) -> Result<InFlight<'_>, BackendError> {
            self.issue(OWN_HANDLE, code, input, Output::Empty(output_len))
        }

        fn submit_direct(
            &self,
            code: u32,
            input: &[u8],
            payload: &[u8],
        ) -> Result<InFlight<'_>, BackendError> {
            self.issue(OWN_HANDLE, code, input, Output::Filled(payload))
        }

        fn finish(mut self: Box<Self>) -> Option<ModelReport> {
            self.unload();
            self.machine.take().map(Machine::shutdown)
        }

        fn machine_counters(&self) -> Option<crate::backend::MachineCounters> {
            let stats = self.stats()?;
            Some(crate::backend::MachineCounters {
                pool_allocations: stats.pool_allocations,
                irp_allocations: stats.irp_allocations,
                mdl_allocations: stats.mdl_allocations,
                completion_contexts: stats.completion_contexts,
                longest_completion_ns: stats.longest_completion_ns,
                model_ns: stats.model_ns,
                work_items: stats.work_items,
            })
        }

        fn open_another(&self) -> Result<Box<dyn Backend + '_>, BackendError> {
            let index = self.next_handle.fetch_add(1, Ordering::Relaxed);
            self.open_handle(index).map_err(BackendError::OpenFailed)?;
            Ok(Box::new(ModelHandle { model: self, index }))
        }

        fn close_now(&self) -> Result<(), BackendError> {
            self.close_early(OWN_HANDLE);
            Ok(())
        }
    }

    impl Drop for ModelBackend {
        fn drop(&mut self) {
            self.unload();
        }
    }
}

#[cfg(not(unix))]
mod shell {
    use std::convert::Infallible;

    use super::FrontDoor;
    use crate::backend::{Backend, BackendError, InFlight, ModelReport};

    /// Model settings (none on this host).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct ModelConfig {
        /// The entry point requests would go through.
        pub front_door: FrontDoor,
    }

    impl ModelConfig {
        /// The default machine, through `front_door`.
        #[must_use]
        pub const fn through(front_door: FrontDoor) -> Self {
            Self { front_door }
        }
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

        fn front_door(&self) -> &'static str {
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
