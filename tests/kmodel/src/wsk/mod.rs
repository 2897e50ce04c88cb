//! The WSK subsystem (netio.sys) of the model: registration, provider NPI, and a datagram
//! provider backed by Linux UDP sockets.

mod datagram;
mod linux;
pub(crate) mod options;
pub(crate) mod send;
pub(crate) mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use crossbeam_skiplist::SkipMap;

use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_DEVICE_NOT_READY, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER,
    STATUS_NOINTERFACE, STATUS_SUCCESS,
};
use wskudp_core::ddi::wsk::{
    WSK_CLIENT, WSK_CLIENT_NPI, WSK_PROVIDER_DISPATCH, WSK_PROVIDER_NPI, WSK_REGISTRATION,
    make_wsk_version,
};

pub(crate) use datagram::SocketRecord;

use crate::faults::{self, Site};
use crate::irql::{self, DISPATCH_LEVEL, PASSIVE_LEVEL};
use crate::state;

/// The WSK version the model's provider reports (every profile: [`crate::Profile::wsk_version`]).
pub const PROVIDER_WSK_VERSION: u16 = make_wsk_version(1, 0);
const _: () = {
    let mut i = 0;
    while i < crate::Profile::ALL.len() {
        assert!(crate::Profile::ALL[i].wsk_version() == PROVIDER_WSK_VERSION);
        i += 1;
    }
};

/// The provider-level dispatch table handed out by `WskCaptureProviderNPI`.
static PROVIDER_DISPATCH: WSK_PROVIDER_DISPATCH = WSK_PROVIDER_DISPATCH {
    Version: PROVIDER_WSK_VERSION,
    Reserved: 0,
    WskSocket: Some(datagram::wsk_socket),
    WskSocketConnect: None,
    WskControlClient: Some(datagram::wsk_control_client),
    WskGetAddressInfo: None,
    WskFreeAddressInfo: None,
    WskGetNameInfo: None,
};

/// What the model hands out as `WSK_CLIENT*`: an address only the provider interprets.
static CLIENT_TOKEN: u8 = 0;

pub(crate) fn client() -> *mut WSK_CLIENT {
    (&raw const CLIENT_TOKEN).cast_mut().cast()
}

#[derive(Default)]
struct Registration {
    captures: u32,
}

/// Registrations and captures: client lifecycle calls, off the send path.
#[derive(Default)]
pub(crate) struct Wsk {
    registrations: HashMap<usize, Registration>,
}

static WSK: LazyLock<Mutex<Wsk>> = LazyLock::new(|| Mutex::new(Wsk::default()));

fn wsk() -> MutexGuard<'static, Wsk> {
    WSK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The provider's sockets by `PWSK_SOCKET`, in a lock-free map: a socket call finds its record
/// without a global lock, and the record keeps its own state (atomics, and a lock of its own
/// for what calls change).
pub(crate) static SOCKETS: LazyLock<SkipMap<usize, Arc<SocketRecord>>> =
    LazyLock::new(SkipMap::new);

/// See [`fail_sends_at_once`]: 0, or [`SEND_FAILURE_SET`] with the status in the low bits.
static SEND_FAILURE: AtomicU64 = AtomicU64::new(0);
const SEND_FAILURE_SET: u64 = 1 << 32;
/// See [`pend_closes`].
static CLOSES_PEND: AtomicBool = AtomicBool::new(false);

/// Sockets created and not closed.
fn open_socket_count() -> usize {
    SOCKETS.iter().filter(|s| !s.value().closed()).count()
}

/// Forgets everything (a new machine).
pub(crate) fn reset() {
    let old = std::mem::take(&mut *wsk());
    drop(old);
    SOCKETS.clear();
    SEND_FAILURE.store(0, Ordering::Relaxed);
    CLOSES_PEND.store(false, Ordering::Relaxed);
}

/// `(open sockets, outstanding NPI captures, live registrations)` for the leak report; frees
/// the memory of closed sockets.
pub(crate) fn outstanding() -> (usize, usize, usize) {
    let wsk = wsk();
    let sockets = open_socket_count();
    let captures = wsk
        .registrations
        .values()
        .map(|r| r.captures as usize)
        .sum();
    let registrations = wsk.registrations.len();
    drop(wsk);
    for entry in SOCKETS.iter().filter(|entry| entry.value().closed()) {
        entry.remove();
    }
    (sockets, captures, registrations)
}

/// Takes the transport away from every open socket, as an unbound interface does.
///
/// Sends in flight and later ones complete with `STATUS_FILE_FORCED_CLOSED`, and the
/// `WskSendTo` page then requires the client to call `WskCloseSocket` "as soon as possible".
/// Returns how many sockets it hit.
#[allow(clippy::must_use_candidate, reason = "the count is informative")]
pub fn force_close_sockets() -> usize {
    let mut hit = 0;
    for entry in SOCKETS.iter().filter(|entry| !entry.value().closed()) {
        entry.value().force();
        hit += 1;
    }
    hit
}

/// Makes every `WskSendTo` and `WskSendMessages` fail at once with `status`.
///
/// From now on (until `None`, or the next machine) the provider returns `status` and completes
/// the IRP with it before returning, never `STATUS_PENDING`: the `WskSendTo` page's return
/// values, "Other status codes: An error occurred. The IRP will be completed with failure
/// status." E.g. `STATUS_HOST_UNREACHABLE` (Winsock's `WSAEHOSTUNREACH`) when the route to the
/// destination goes away. The parameter checks come first, as on Windows.
pub fn fail_sends_at_once(status: Option<NTSTATUS>) {
    let word = status.map_or(0, |status| {
        SEND_FAILURE_SET | u64::from(status.cast_unsigned())
    });
    SEND_FAILURE.store(word, Ordering::Release);
}

/// The status [`fail_sends_at_once`] set, if any.
pub(crate) fn send_failure() -> Option<NTSTATUS> {
    let word = SEND_FAILURE.load(Ordering::Acquire);
    (word & SEND_FAILURE_SET != 0)
        .then(|| u32::try_from(word & u64::from(u32::MAX)).map(u32::cast_signed))
        .and_then(Result::ok)
}

/// Makes `WskCloseSocket` return `STATUS_PENDING` when completions are not inline.
///
/// From now on (until `false`, or the next machine) the provider closes a socket the way
/// `PFN_WSK_CLOSE_SOCKET` allows when it "could not close the socket immediately": the call
/// returns `STATUS_PENDING`, the socket's pending IRPs are cancelled but completed only when
/// the provider gets to them (with [`crate::CompletionMode::Held`], when the test releases
/// them), and the close IRP completes after they all have.
pub fn pend_closes(pend: bool) {
    CLOSES_PEND.store(pend, Ordering::Release);
}

/// Whether [`pend_closes`] is on.
pub(crate) fn closes_pend() -> bool {
    CLOSES_PEND.load(Ordering::Acquire)
}

/// Sockets open now (created and not closed).
#[must_use]
pub fn open_sockets() -> usize {
    open_socket_count()
}

/// `WskRegister` (`PASSIVE_LEVEL`).
///
/// # Safety
/// `npi` must point to a valid `WSK_CLIENT_NPI`, `registration` to registration storage that
/// stays put until `WskDeregister`.
#[unsafe(export_name = "WskRegister")]
pub(crate) unsafe extern "system" fn wsk_register(
    npi: *const WSK_CLIENT_NPI,
    registration: *mut WSK_REGISTRATION,
) -> NTSTATUS {
    irql::require_at_most("WskRegister", PASSIVE_LEVEL);
    // SAFETY: `npi` is valid (caller's contract).
    let dispatch = unsafe { npi.as_ref() }.map_or(std::ptr::null(), |npi| npi.Dispatch);
    // SAFETY: The client dispatch table must be valid for the registration's life.
    let Some(version) = (unsafe { dispatch.as_ref() }).map(|d| d.Version) else {
        state::violation(
            "WskRegister",
            "WSK_CLIENT_NPI without a dispatch table".into(),
        );
        return STATUS_INVALID_PARAMETER;
    };
    if version >> 8 != 1 {
        return STATUS_NOINTERFACE;
    }
    if faults::should_fail(Site::WskRegister) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    let key = registration.expose_provenance();
    let mut wsk = wsk();
    if wsk.registrations.contains_key(&key) {
        drop(wsk);
        state::violation(
            "WskRegistration",
            format!("WskRegister twice on registration {key:#x}"),
        );
        return STATUS_INVALID_PARAMETER;
    }
    wsk.registrations.insert(key, Registration::default());
    STATUS_SUCCESS
}

/// `WskCaptureProviderNPI` (`PASSIVE_LEVEL` unless `WSK_NO_WAIT`).
///
/// # Safety
/// `registration` must be registered; `npi` writable.
#[unsafe(export_name = "WskCaptureProviderNPI")]
pub(crate) unsafe extern "system" fn wsk_capture_provider_npi(
    registration: *mut WSK_REGISTRATION,
    wait_timeout: u32,
    npi: *mut WSK_PROVIDER_NPI,
) -> NTSTATUS {
    irql::require_at_most(
        "WskCaptureProviderNPI",
        if wait_timeout == 0 {
            DISPATCH_LEVEL
        } else {
            PASSIVE_LEVEL
        },
    );
    let key = registration.expose_provenance();
    if !wsk().registrations.contains_key(&key) {
        state::violation(
            "WskRegistration",
            format!("WskCaptureProviderNPI on unregistered {key:#x}"),
        );
        return STATUS_DEVICE_NOT_READY;
    }
    if faults::should_fail(Site::WskCapture) {
        return STATUS_DEVICE_NOT_READY;
    }
    if let Some(record) = wsk().registrations.get_mut(&key) {
        record.captures += 1;
    }
    // SAFETY: `npi` is writable (caller's contract).
    unsafe {
        npi.write(WSK_PROVIDER_NPI {
            Client: client(),
            Dispatch: &raw const PROVIDER_DISPATCH,
        });
    }
    STATUS_SUCCESS
}

/// `WskReleaseProviderNPI` (IRQL <= `DISPATCH_LEVEL`).
///
/// # Safety
/// `registration` must be registered.
#[unsafe(export_name = "WskReleaseProviderNPI")]
pub(crate) unsafe extern "system" fn wsk_release_provider_npi(registration: *mut WSK_REGISTRATION) {
    irql::require_at_most("WskReleaseProviderNPI", DISPATCH_LEVEL);
    let key = registration.expose_provenance();
    let released = wsk()
        .registrations
        .get_mut(&key)
        .is_some_and(|r| r.captures.checked_sub(1).map(|c| r.captures = c).is_some());
    if !released {
        state::violation(
            "WskReleaseWithoutCapture",
            format!("WskReleaseProviderNPI({key:#x}) without a capture to release"),
        );
    }
}

/// `WskDeregister` (`PASSIVE_LEVEL`). On Windows it blocks until every socket is closed and
/// every capture released; here, outstanding ones are violations (the call would hang).
///
/// # Safety
/// `registration` must be registered.
#[unsafe(export_name = "WskDeregister")]
pub(crate) unsafe extern "system" fn wsk_deregister(registration: *mut WSK_REGISTRATION) {
    irql::require_at_most("WskDeregister", PASSIVE_LEVEL);
    let key = registration.expose_provenance();
    let mut wsk = wsk();
    let Some(record) = wsk.registrations.remove(&key) else {
        drop(wsk);
        state::violation(
            "WskRegistration",
            format!("WskDeregister of unregistered {key:#x}"),
        );
        return;
    };
    drop(wsk);
    let open = open_socket_count();
    if record.captures != 0 {
        state::violation(
            "WskDeregisterWithCapture",
            format!(
                "WskDeregister with {} provider NPI capture(s) not released: it would block forever",
                record.captures
            ),
        );
    }
    if open != 0 {
        state::violation(
            "WskDeregisterWithSockets",
            format!("WskDeregister with {open} socket(s) open: it would block until they close"),
        );
    }
}
