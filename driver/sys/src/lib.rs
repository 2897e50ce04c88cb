//! The wskudp driver: thin front doors over `wskudp-core`.
//!
//! Each front door does four things and nothing else: create the core [`Driver`] in
//! `DriverEntry`; expose `\Device\WskUdp` (`\\.\WskUdp` to user mode); hand every
//! `IRP_MJ_DEVICE_CONTROL` to `Driver::dispatch` with a completion callback, and every
//! cleanup of a handle to `Driver::cleanup`; drop the driver state at unload.
//!
//! - `kmdf` (default): the shipping driver, on the windows-drivers-rs crates. Built on Windows
//!   with the WDK (`cargo make`).
//! - `wdm`: the same core behind `IoCreateDevice` and a `MajorFunction` table, needing no WDK:
//!   cross-built on Linux with `rust-lld` and its PE image checked (`tests/build-wdm.sh`).
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

#[cfg(all(feature = "kmdf", feature = "wdm"))]
compile_error!(
    "choose one front door: `--features kmdf` (default) or `--no-default-features --features wdm`"
);

#[cfg(feature = "kmdf")]
mod kmdf;

#[cfg(all(feature = "wdm", not(feature = "kmdf")))]
mod wdm;
#[cfg(all(feature = "wdm", not(feature = "kmdf")))]
mod wdm_runtime;

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

const DEVICE_NAME_LEN: usize = wskudp_abi::DEVICE_NAME.len();
const DOS_DEVICE_NAME_LEN: usize = wskudp_abi::DOS_DEVICE_NAME.len();
/// `\Device\WskUdp` in UTF-16.
static DEVICE_NAME: [u16; DEVICE_NAME_LEN] = utf16(wskudp_abi::DEVICE_NAME);
/// `\DosDevices\WskUdp` in UTF-16.
static DOS_DEVICE_NAME: [u16; DOS_DEVICE_NAME_LEN] = utf16(wskudp_abi::DOS_DEVICE_NAME);

const _: () = {
    assert!(wskudp_abi::DEVICE_NAME.is_ascii() && wskudp_abi::DOS_DEVICE_NAME.is_ascii());
    // UNICODE_STRING lengths are USHORT byte counts.
    assert!(DOS_DEVICE_NAME_LEN * 2 <= u16::MAX as usize);
};
