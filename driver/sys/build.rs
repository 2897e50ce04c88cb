//! Link configuration of the two front doors.
//!
//! - `kmdf`: windows-drivers-rs' `configure_wdk_binary_build` (finds the WDK, emits the KMDF
//!   link arguments). Windows with the WDK only.
//! - `wdm`: the kernel-driver link arguments for `rust-lld` (lld-link flavor), so the `.sys`
//!   links on any host with nothing but the Rust toolchain (see `tests/build-wdm.sh`).

fn main() {
    #[cfg(feature = "kmdf")]
    if std::env::var_os("CARGO_FEATURE_WDM").is_none() {
        if let Err(error) = wdk_build::configure_wdk_binary_build() {
            println!("cargo::error=wdk-build could not configure the KMDF build: {error}");
        }
        return;
    }
    if std::env::var_os("CARGO_FEATURE_WDM").is_some() {
        for arg in [
            "/DRIVER",
            "/SUBSYSTEM:NATIVE,10.00",
            "/ENTRY:DriverEntry",
            "/NODEFAULTLIB",
            "/INTEGRITYCHECK",
            "/OPT:REF,ICF",
            "/DEBUG",
            "/RELEASE",
            "/MAP",
        ] {
            println!("cargo::rustc-cdylib-link-arg={arg}");
        }
    }
}
