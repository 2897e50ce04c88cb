//! The wskudp driver image (`wskudp.sys`): one of the front doors of `wskudp-front`, with its
//! `DriverEntry` exported and the runtime pieces a kernel image needs.
//!
//! - feature `kmdf` (default): the shipping KMDF driver on the windows-drivers-rs crates,
//!   built on Windows with the WDK (`cargo make`); the KMDF stub (`FxDriverEntry`, from
//!   `WdfDriverEntry.lib`) calls the exported `DriverEntry`.
//! - feature `wdm`: the WDM front door, which needs no WDK: cross-built on Linux with
//!   `rust-lld` (`tests/build-wdm.sh`) and its PE image checked.

#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

#[cfg(any(
    all(feature = "kmdf", feature = "wdm"),
    not(any(feature = "kmdf", feature = "wdm"))
))]
compile_error!(
    "choose one front door: `--features kmdf` (default) or `--no-default-features --features wdm`"
);

// The shipping build takes its panic handler and allocator from windows-drivers-rs.
#[cfg(feature = "kmdf")]
extern crate wdk_panic;
#[cfg(feature = "kmdf")]
#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

// A `.sys` built without the WDK's libraries links its own C runtime pieces and panic handler.
#[cfg(feature = "wdm")]
mod wdm_runtime;

/// The entry point the loader calls: the chosen front door's `DriverEntry`.
///
/// IRQL: `PASSIVE_LEVEL`.
///
/// # Safety
/// Called once by the I/O manager (WDM, `/ENTRY`) or the KMDF stub (`FxDriverEntry`) with its
/// driver object and registry path.
// SAFETY: `DriverEntry` is the entry symbol the kernel or the KMDF stub calls; nothing else in
// the image exports it.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver_object: *mut windows_sys::Wdk::Foundation::DRIVER_OBJECT,
    registry_path: *const windows_sys::Win32::Foundation::UNICODE_STRING,
) -> i32 {
    #[cfg(feature = "kmdf")]
    // SAFETY: The loader's arguments, passed on unchanged (wdk-sys' layouts of the same types).
    let status =
        unsafe { wskudp_front::kmdf::driver_entry(driver_object.cast(), registry_path.cast()) };
    #[cfg(feature = "wdm")]
    // SAFETY: The loader's arguments, passed on unchanged.
    let status = unsafe { wskudp_front::wdm::driver_entry(driver_object, registry_path) };
    status
}
