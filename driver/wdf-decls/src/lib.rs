//! KMDF 1.33 declarations for building the KMDF front door without the WDK.
//!
//! windows-drivers-rs' `wdk-sys` generates its bindings from the WDK's headers at build time,
//! so it builds only on Windows with the WDK installed. The KMDF front door
//! (`driver/sys/src/kmdf.rs`) is written against `wdk-sys`'s names; this crate declares the
//! subset it uses under exactly those names (`WDF_IO_QUEUE_CONFIG`, `_WDF_TRI_STATE::WdfFalse`,
//! `PFN_WDFIOQUEUECREATE`, `_WDFFUNCENUM::WdfIoQueueCreateTableIndex`, the
//! `call_unsafe_wdf_function_binding!` macro, ...), so that one source compiles against either:
//!
//! - on Windows with the WDK, `driver/sys` is built with the `kmdf` feature and uses the real
//!   `wdk-sys`;
//! - elsewhere, `driver/sys` uses this crate under the name `wdk_sys`: clippy checks the front
//!   door for `x86_64-pc-windows-msvc`, and the harness runs it over the WDF model
//!   (`tests/kmodel`), which fills the function table.
//!
//! Every declaration was written from KMDF 1.33's public headers
//! (microsoft/Windows-Driver-Frameworks, `src/publicinc/wdf/kmdf/1.33/`) and cites the line it
//! comes from; `tests/kmodel/tests/wdf_facts.rs` checks each size, offset, enum value and
//! function-table index against facts read from those headers. Calls go through the function
//! table exactly as the headers' inline wrappers do:
//! `((PFN_WDFXXX) WdfFunctions[WdfXxxTableIndex])(WdfDriverGlobals, ...)`.

#![no_std]
#![allow(
    non_snake_case,
    non_camel_case_types,
    non_upper_case_globals,
    missing_docs,
    clippy::upper_case_acronyms,
    clippy::use_self,
    reason = "declarations mirror the KMDF headers, whose names they keep; each cites its header line"
)]

mod functions;
mod types;

pub use functions::*;
pub use types::*;

/// `WDF_NO_OBJECT_ATTRIBUTES` (wdftypes.h), as `wdk-sys` declares it.
pub const WDF_NO_OBJECT_ATTRIBUTES: PWDF_OBJECT_ATTRIBUTES = core::ptr::null_mut();
/// `WDF_NO_EVENT_CALLBACK` (wdftypes.h), as `wdk-sys` declares it.
pub const WDF_NO_EVENT_CALLBACK: PVOID = core::ptr::null_mut();
/// `WDF_NO_HANDLE` (wdftypes.h), as `wdk-sys` declares it.
pub const WDF_NO_HANDLE: PVOID = core::ptr::null_mut();
/// `WDF_NO_CONTEXT` (wdftypes.h), as `wdk-sys` declares it.
pub const WDF_NO_CONTEXT: PVOID = core::ptr::null_mut();

/// The KMDF version these declarations describe.
pub const KMDF_VERSION_MAJOR: u32 = 1;
/// The KMDF minor version these declarations describe (function-table indexes are per
/// version).
pub const KMDF_VERSION_MINOR: u32 = 33;

/// The few kernel routines (ntoskrnl.exe) that KMDF drivers written for `wdk-sys` call
/// directly, under `wdk-sys`'s module and parameter types.
///
/// `SIZE_T` is `ULONG_PTR` there. WDM
/// declarations, not KMDF's: signatures from wdm.h as windows-sys' metadata carries them
/// (`Wdk/System/SystemServices`: `ExAllocatePool2` at mod.rs:170, `ExFreePool` at :207,
/// `KeGetCurrentIrql` at :805; mingw-w64's `ddk/wdm.h:13782` has the same `ExFreePool`).
pub mod ntddk {
    use crate::{KIRQL, POOL_FLAGS, PVOID, SIZE_T, ULONG};

    unsafe extern "system" {
        /// `ExAllocatePool2` (IRQL <= `DISPATCH_LEVEL` for non-paged pool).
        pub fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
        /// `ExFreePool`.
        pub fn ExFreePool(P: PVOID);
        /// `KeGetCurrentIrql`.
        pub fn KeGetCurrentIrql() -> KIRQL;
    }
}

/// `PAGED_CODE()` (wdm.h), as `wdk-sys` declares it: in debug builds, asserts the caller runs
/// at or below `APC_LEVEL`.
#[macro_export]
macro_rules! PAGED_CODE {
    () => {
        debug_assert!(unsafe { $crate::ntddk::KeGetCurrentIrql() <= $crate::APC_LEVEL as u8 });
    };
}

/// `NT_SUCCESS` (ntdef.h), as `wdk-sys` declares it.
#[must_use]
pub const fn NT_SUCCESS(nt_status: NTSTATUS) -> bool {
    nt_status >= 0
}
