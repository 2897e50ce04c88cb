//! User-mode side of wskudp: reach the driver through a [`backend::Backend`] (the real device
//! on Windows, the in-process kernel model elsewhere), issue typed requests with
//! [`client::Client`], and check what arrives with [`receiver::Receiver`]. The `wskudp` CLI
//! and the scenario suite are built on these.

pub mod addressing;
pub mod backend;
pub mod client;
pub mod demo;
pub mod in_flight;
pub mod receiver;
pub mod record;
pub mod report;
pub mod scenarios;

/// `0xC0000008 (STATUS_INVALID_HANDLE)`, or just the number for statuses wskudp does not name.
#[must_use]
pub fn status_text(status: i32) -> String {
    let hex = status_hex(status);
    wskudp_abi::status::status_name(status)
        .map_or_else(|| hex.clone(), |name| format!("{hex} ({name})"))
}

/// The index of the network interface called `name`, if this host has one.
#[must_use]
pub fn interface_index(name: &str) -> Option<u32> {
    #[cfg(unix)]
    {
        nix::net::if_::if_nametoindex(name).ok()
    }
    #[cfg(windows)]
    {
        let name = std::ffi::CString::new(name).ok()?;
        // SAFETY: A NUL-terminated string; the function only reads it.
        let index = unsafe {
            windows_sys::Win32::NetworkManagement::IpHelper::if_nametoindex(name.as_ptr().cast())
        };
        (index != 0).then_some(index)
    }
}

/// The loopback interface's index: `lo` on Unix hosts; on Windows the "Loopback
/// Pseudo-Interface 1", whose index is 1.
#[must_use]
#[allow(
    clippy::missing_const_for_fn,
    reason = "const only on hosts without if_nametoindex"
)]
pub fn loopback_index() -> Option<u32> {
    #[cfg(unix)]
    {
        interface_index("lo")
    }
    #[cfg(not(unix))]
    {
        Some(1)
    }
}

/// `"0x%08X"`.
#[must_use]
pub fn status_hex(status: i32) -> String {
    format!("{:#010X}", status.cast_unsigned()).replacen("0X", "0x", 1)
}

/// A deterministic payload of `len` bytes (`i mod 251`, so segment boundaries never line up
/// with a repeating pattern).
#[must_use]
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_formatting() {
        assert_eq!(status_hex(0), "0x00000000");
        assert_eq!(
            status_text(0xC000_0008_u32.cast_signed()),
            "0xC0000008 (STATUS_INVALID_HANDLE)"
        );
        assert_eq!(status_text(0x1234), "0x00001234");
        assert_eq!(pattern(3), [0, 1, 2]);
    }
}
