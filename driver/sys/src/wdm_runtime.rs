//! What a `#![no_std]` driver linked with `/NODEFAULTLIB` needs besides core (see
//! research/cross-build.md): the memory functions from ntoskrnl, `_fltused`, the C++
//! exception-handler personality the precompiled `core` refers to, and a panic handler.
//! The KMDF flavor gets all of these from wdk-sys / wdk-panic instead.

/// Bugcheck code of a panic: ASCII "WSKU". No panic is reachable from request data; this only
/// makes an impossible state stop the machine with a recognisable code instead of corrupting it.
const PANIC_BUGCHECK: u32 = u32::from_be_bytes(*b"WSKU");

/// `memcpy`/`memset`/`memmove`/`memcmp` come from ntoskrnl.exe, as a WDK-linked driver gets
/// them from ntoskrnl.lib: the compiler emits calls to them and there is no CRT here. Only
/// the ones the compiler actually calls end up in the import table.
#[allow(
    missing_docs,
    clippy::missing_safety_doc,
    reason = "C runtime functions"
)]
mod crt {
    use core::ffi::c_void;

    windows_link::link!("ntoskrnl.exe" "C" fn memcpy(dest : *mut c_void, src : *const c_void, count : usize) -> *mut c_void);
    windows_link::link!("ntoskrnl.exe" "C" fn memmove(dest : *mut c_void, src : *const c_void, count : usize) -> *mut c_void);
    windows_link::link!("ntoskrnl.exe" "C" fn memset(dest : *mut c_void, value : i32, count : usize) -> *mut c_void);
    windows_link::link!("ntoskrnl.exe" "C" fn memcmp(left : *const c_void, right : *const c_void, count : usize) -> i32);
}

/// Tells the linker floating point is used (MSVC convention; referenced by core).
// SAFETY: `_fltused` is the conventional MSVC symbol; nothing else in the image defines it.
#[unsafe(no_mangle)]
static _fltused: i32 = 0;

/// The personality routine the precompiled `core`/`alloc` unwind tables name. Nothing unwinds
/// in this driver (panic = abort); returning `ExceptionContinueSearch` (1) is what the WDK's
/// Rust support does.
///
/// IRQL: never called.
// SAFETY: The symbol name is the MSVC runtime's; nothing else in the image defines it.
#[unsafe(no_mangle)]
const extern "system" fn __CxxFrameHandler3() -> i32 {
    1
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: Bugchecking is always allowed; it does not return.
    unsafe {
        windows_sys::Wdk::System::SystemServices::KeBugCheckEx(PANIC_BUGCHECK, 0, 0, 0, 0);
    }
    loop {
        core::hint::spin_loop();
    }
}
