//! The WSK client: registration, provider NPI capture, datagram sockets.

pub mod options;
mod socket;

use core::cell::UnsafeCell;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

pub use socket::DatagramSocket;

use crate::ddi::nt::NTSTATUS;
use crate::ddi::wsk::{
    WSK_CLIENT, WSK_CLIENT_DISPATCH, WSK_CLIENT_NPI, WSK_PROVIDER_DISPATCH, WSK_PROVIDER_NPI,
    WSK_REGISTRATION, WskCaptureProviderNPI, WskDeregister, WskRegister, WskReleaseProviderNPI,
    make_wsk_version,
};
use crate::status::{STATUS_DEVICE_NOT_READY, STATUS_SUCCESS};
use crate::sync::{Event, EventKind};

/// The WSK version wskudp is written for (`WskSendMessages` needs 1.0 on Windows 8+).
pub const CLIENT_WSK_VERSION: u16 = make_wsk_version(1, 0);

/// How long the first request waits for the WSK subsystem: long enough for a driver started
/// right after boot, short enough that a broken stack fails a request instead of hanging it.
pub const PROVIDER_WAIT_MS: u32 = 5_000;

/// wskudp's client dispatch table: no client-level event callback. The WSK subsystem keeps a
/// pointer to it while registered, hence `static`.
static CLIENT_DISPATCH: WSK_CLIENT_DISPATCH = WSK_CLIENT_DISPATCH {
    Version: CLIENT_WSK_VERSION,
    Reserved: 0,
    WskClientEvent: None,
};

/// The captured provider NPI: what socket creation needs.
#[derive(Clone, Copy)]
pub struct Provider {
    npi: WSK_PROVIDER_NPI,
}

impl Provider {
    /// `WSK_PROVIDER_DISPATCH::Version`. IRQL: any.
    #[must_use]
    pub fn version(&self) -> u16 {
        self.dispatch().map_or(0, |dispatch| dispatch.Version)
    }

    const fn dispatch(&self) -> Option<&WSK_PROVIDER_DISPATCH> {
        // SAFETY: A captured NPI's dispatch table stays valid until WskReleaseProviderNPI,
        // which only runs after every socket (and every Provider use) is gone.
        unsafe { self.npi.Dispatch.as_ref() }
    }

    const fn client(&self) -> *mut WSK_CLIENT {
        self.npi.Client
    }
}

/// The driver's WSK application registration.
///
/// Lifecycle: [`WskClient::register`] (`WskRegister`) once the value is at its final address;
/// the provider NPI is captured by the first request that needs it; [`WskClient::deregister`]
/// releases the capture and calls `WskDeregister`, after every socket was closed.
///
/// # Invariants
/// `provider` is written once, under `capture_lock`, before `captured` is set (release);
/// readers check `captured` (acquire) first. `registered` is set only after `WskRegister`
/// succeeded on `registration` at its final address.
pub struct WskClient {
    registration: UnsafeCell<WSK_REGISTRATION>,
    registered: AtomicBool,
    capture_lock: Event,
    provider: UnsafeCell<Option<Provider>>,
    captured: AtomicBool,
    capture_status: AtomicI32,
}

// SAFETY: The registration is only passed to the WSK functions, which synchronize internally;
// `provider` follows the write-once protocol of the type invariant.
unsafe impl Sync for WskClient {}
// SAFETY: Nothing in a WskClient is tied to a thread: the registration's and NPI's pointers
// belong to the WSK subsystem.
#[allow(clippy::non_send_fields_in_send_ty)]
unsafe impl Send for WskClient {}

impl WskClient {
    /// Unregistered storage.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            // SAFETY: WSK_REGISTRATION is plain data; zero is its pre-registration state.
            registration: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            registered: AtomicBool::new(false),
            capture_lock: Event::new(),
            provider: UnsafeCell::new(None),
            captured: AtomicBool::new(false),
            capture_status: AtomicI32::new(STATUS_DEVICE_NOT_READY),
        }
    }

    /// `WskRegister`.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// The status of `WskRegister`.
    pub fn register(self: Pin<&Self>) -> Result<(), NTSTATUS> {
        crate::paged_code!();
        // SAFETY: Structural pinning: the event is a field of a pinned value and is never
        // moved out of it.
        let lock = unsafe { self.map_unchecked(|client| &client.capture_lock) };
        lock.init(EventKind::Synchronization, true);
        let npi = WSK_CLIENT_NPI {
            ClientContext: core::ptr::null_mut(),
            Dispatch: &raw const CLIENT_DISPATCH,
        };
        let status;
        // SAFETY: 1. `npi` is valid for the call (WskRegister copies it) and its dispatch
        //            table is static;
        //         2. `registration` is pinned: it stays put until `deregister`;
        //         3. PASSIVE_LEVEL, as WskRegister requires.
        unsafe {
            status = WskRegister(&raw const npi, self.registration.get());
        }
        if status < 0 {
            return Err(status);
        }
        self.registered.store(true, Ordering::Release);
        Ok(())
    }

    /// The provider NPI, captured on first use (`WskCaptureProviderNPI`, waiting up to
    /// [`PROVIDER_WAIT_MS`]). A failed capture is retried by the next call.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    ///
    /// # Errors
    /// The capture status, e.g. `STATUS_NOINTERFACE` or `STATUS_DEVICE_NOT_READY`.
    pub fn provider(&self) -> Result<Provider, NTSTATUS> {
        crate::paged_code!();
        if let Some(provider) = self.captured_provider() {
            return Ok(provider);
        }
        if !self.registered.load(Ordering::Acquire) {
            return Err(STATUS_DEVICE_NOT_READY);
        }
        self.capture_lock.wait();
        let result = self.captured_provider().map_or_else(|| self.capture(), Ok);
        self.capture_lock.set();
        result
    }

    /// Captures the NPI. Called with `capture_lock` held. IRQL: `PASSIVE_LEVEL`.
    fn capture(&self) -> Result<Provider, NTSTATUS> {
        // SAFETY: WSK_PROVIDER_NPI is plain data; WskCaptureProviderNPI overwrites it.
        let mut npi: WSK_PROVIDER_NPI = unsafe { core::mem::zeroed() };
        let status;
        // SAFETY: 1. the registration succeeded and stays registered while `self` lives;
        //         2. a non-zero wait requires PASSIVE_LEVEL, the caller's bound;
        //         3. `npi` is valid for writes.
        unsafe {
            status = WskCaptureProviderNPI(self.registration.get(), PROVIDER_WAIT_MS, &raw mut npi);
        }
        self.capture_status.store(status, Ordering::Relaxed);
        if status < 0 {
            return Err(status);
        }
        let provider = Provider { npi };
        // SAFETY: Written once, under `capture_lock`, before `captured` is published
        // (type invariant); no reader looks at it before that.
        unsafe {
            *self.provider.get() = Some(provider);
        }
        self.captured.store(true, Ordering::Release);
        Ok(provider)
    }

    /// The provider if already captured.
    ///
    /// IRQL: any.
    #[must_use]
    pub fn captured_provider(&self) -> Option<Provider> {
        if self.captured.load(Ordering::Acquire) {
            // SAFETY: `captured` was published after `provider` was written, and it is never
            // written again (type invariant).
            unsafe { *self.provider.get() }
        } else {
            None
        }
    }

    /// Status of the last capture attempt (`STATUS_DEVICE_NOT_READY` before any). IRQL: any.
    #[must_use]
    pub fn capture_status(&self) -> NTSTATUS {
        if self.captured.load(Ordering::Acquire) {
            STATUS_SUCCESS
        } else {
            self.capture_status.load(Ordering::Relaxed)
        }
    }

    /// `WskReleaseProviderNPI` (if captured), then `WskDeregister` (if registered). Every
    /// socket must be closed: `WskDeregister` blocks until they are.
    ///
    /// IRQL: `PASSIVE_LEVEL`.
    pub fn deregister(&self) {
        crate::paged_code!();
        if self.captured.swap(false, Ordering::AcqRel) {
            // SAFETY: The capture succeeded once and is released exactly once (the swap);
            // PASSIVE_LEVEL.
            unsafe {
                WskReleaseProviderNPI(self.registration.get());
            }
        }
        if self.registered.swap(false, Ordering::AcqRel) {
            // SAFETY: Registered once and deregistered exactly once (the swap), after the
            // capture was released; PASSIVE_LEVEL.
            unsafe {
                WskDeregister(self.registration.get());
            }
        }
    }
}

impl Default for WskClient {
    fn default() -> Self {
        Self::new()
    }
}
