//! The wskudp driver's front doors: thin layers over `wskudp-core`.
//!
//! Each front door does four things and nothing else: create the core [`Driver`] in
//! `DriverEntry`; expose `\Device\WskUdp` (`\\.\WskUdp` to user mode); hand every
//! `IRP_MJ_DEVICE_CONTROL` to `Driver::dispatch` with a completion callback, and every open and
//! cleanup of a handle to `Driver::open_handle` / `Driver::cleanup`; drop the driver state at
//! unload.
//!
//! - [`kmdf`]: the shipping driver, a non-PnP KMDF driver with one control device. With the
//!   feature `wdk` it builds against windows-drivers-rs' `wdk-sys` (Windows with the WDK);
//!   without it, against `wskudp-wdf-decls` (KMDF 1.33's declarations under `wdk-sys`'s names),
//!   so clippy checks it for Windows targets on Linux and the harness runs it, unchanged, over
//!   the WDF model in `tests/kmodel`.
//! - [`wdm`]: the same core behind `IoCreateDevice` and a `MajorFunction` table, needing no
//!   WDK at all.
//!
//! `driver/sys` turns one of them into the `.sys`: it exports its `DriverEntry`.
//!
//! [`Driver`]: wskudp_core::Driver

#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

// The KMDF front door's `wdk_sys`: the real crate with the WDK, otherwise the declarations.
#[cfg(not(feature = "wdk"))]
extern crate wskudp_wdf_decls as wdk_sys;

pub mod kmdf;
pub mod security;
pub mod wdm;

/// ASCII `text` as UTF-16 code units, for the static device names. `N` must be `text.len()`.
/// Only evaluated at compile time (static initializers), where an out-of-range index is a
/// build error, not a runtime panic.
#[allow(
    clippy::indexing_slicing,
    reason = "compile-time only; bounds are N = text.len()"
)]
const fn utf16<const N: usize>(text: &str) -> [u16; N] {
    let bytes = text.as_bytes();
    let mut out = [0_u16; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i] as u16;
        i = i.saturating_add(1);
    }
    out
}

/// A `UNICODE_STRING` over a static UTF-16 string; `make(length_in_bytes, buffer)` builds the
/// caller's layout of it (windows-sys' or wdk-sys').
///
/// IRQL: any.
fn unicode<T>(text: &'static [u16], make: impl FnOnce(u16, *mut u16) -> T) -> T {
    let bytes = u16::try_from(text.len().saturating_mul(2)).unwrap_or(u16::MAX);
    // The kernel and WDF only read strings passed in.
    make(bytes, text.as_ptr().cast_mut())
}

const DEVICE_NAME_LEN: usize = wskudp_abi::DEVICE_NAME.len();
const DOS_DEVICE_NAME_LEN: usize = wskudp_abi::DOS_DEVICE_NAME.len();
/// `\Device\WskUdp` in UTF-16.
static DEVICE_NAME: [u16; DEVICE_NAME_LEN] = utf16(wskudp_abi::DEVICE_NAME);
/// `\DosDevices\WskUdp` in UTF-16.
static DOS_DEVICE_NAME: [u16; DOS_DEVICE_NAME_LEN] = utf16(wskudp_abi::DOS_DEVICE_NAME);

/// `SDDL_DEVOBJ_SYS_ALL_ADM_ALL` (wdmsec.h): all access for SYSTEM and Administrators,
/// nobody else.
pub const DEVICE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";
const DEVICE_SDDL_LEN: usize = DEVICE_SDDL.len();
static DEVICE_SDDL_W: [u16; DEVICE_SDDL_LEN] = utf16(DEVICE_SDDL);

const _: () = {
    assert!(wskudp_abi::DEVICE_NAME.is_ascii() && wskudp_abi::DOS_DEVICE_NAME.is_ascii());
    assert!(DEVICE_SDDL.is_ascii());
    // UNICODE_STRING lengths are USHORT byte counts.
    assert!(DOS_DEVICE_NAME_LEN * 2 <= u16::MAX as usize);
    assert!(DEVICE_SDDL_LEN * 2 <= u16::MAX as usize);
};
