//! Link configuration of the two front doors.
//!
//! - `kmdf`: windows-drivers-rs' `configure_wdk_binary_build` (finds the WDK, emits the KMDF
//!   link arguments). Windows with the WDK only.
//! - `wdm`: the kernel-driver link arguments for `rust-lld` (lld-link flavor), so the `.sys`
//!   links on any host with nothing but the Rust toolchain (see `tests/build-wdm.sh`).

fn main() {
    let wdm = std::env::var_os("CARGO_FEATURE_WDM").is_some();
    if cfg!(feature = "kmdf") && !wdm {
        // wdk-build's own error names only .cargo/config.toml, which is not what went wrong
        // when a RUSTFLAGS variable replaced it: say so first.
        if let Some(problem) = crt_static_problem() {
            println!("cargo::error={problem}");
            return;
        }
        #[cfg(feature = "kmdf")]
        if let Err(error) = wdk_build::configure_wdk_binary_build() {
            println!("cargo::error=wdk-build could not configure the KMDF build: {error}");
        }
        return;
    }
    if wdm {
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

/// Why the KMDF build would lack a statically linked C runtime, which wdk-build requires, and
/// what to do about it; `None` if crt-static is on.
fn crt_static_problem() -> Option<String> {
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if features.split(',').any(|feature| feature == "crt-static") {
        return None;
    }
    // Cargo gives every build script CARGO_ENCODED_RUSTFLAGS (empty when there are none), so
    // only a non-empty one says flags came from elsewhere; RUSTFLAGS is the user's own.
    let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    let replaced_by = ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"]
        .into_iter()
        .find(|name| set(name));
    Some(replaced_by.map_or_else(
        || {
            "the KMDF driver needs `-C target-feature=+crt-static`: build from the workspace, \
             whose .cargo/config.toml turns it on for Windows targets"
                .to_owned()
        },
        |name| {
            format!(
                "the KMDF driver needs `-C target-feature=+crt-static`, and {name} is set, which \
                 replaces the rustflags of .cargo/config.toml that turn it on: add it to {name}, \
                 unset {name}, or build with `cargo make` (which adds it)"
            )
        },
    ))
}
