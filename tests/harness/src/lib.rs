//! User-mode side of wskudp: reach the driver through a [`backend::Backend`] (the real device
//! on Windows, the in-process kernel model elsewhere), issue typed requests with
//! [`client::Client`], and check what arrives with [`receiver::Receiver`]. The `wskudp` CLI
//! and the scenario suite are built on these.

pub mod addressing;
pub mod backend;
pub mod bench;
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
        // The NDIS name (`ethernet_32768`) first, then the alias users see (`Ethernet`).
        let text = std::ffi::CString::new(name).ok()?;
        // SAFETY: A NUL-terminated string; the function only reads it.
        let index = unsafe {
            windows_sys::Win32::NetworkManagement::IpHelper::if_nametoindex(text.as_ptr().cast())
        };
        if index != 0 {
            return Some(index);
        }
        windows_adapters::find(name).map(|adapter| adapter.index)
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

/// The variable naming a multicast-capable, non-loopback interface the scenarios may use.
pub const TEST_IFACE_VAR: &str = "WSKUDP_TEST_IFACE";

/// An interface the scenarios may send through besides loopback (IPv6 multicast, link-local
/// scope ids, a 1500-byte MTU for don't-fragment).
#[derive(Clone, Debug)]
pub struct TestInterface {
    /// Its name, as `WSKUDP_TEST_IFACE` gave it.
    pub name: String,
    /// Its index.
    pub index: u32,
    /// Its IPv6 link-local (`fe80::/10`) address, if it has one.
    pub link_local: Option<std::net::Ipv6Addr>,
}

/// The interface `WSKUDP_TEST_IFACE` names. Set only where both ends sit in a private network
/// namespace (tests/run-all.sh: `unshare -n` and a veth pair), so nothing sent leaves the host.
#[must_use]
pub fn test_interface() -> Option<TestInterface> {
    let name = std::env::var(TEST_IFACE_VAR).ok()?;
    #[cfg(windows)]
    {
        // On Windows the adapter's alias ("Ethernet") or its interface index.
        let adapter = windows_adapters::find(&name)?;
        Some(TestInterface {
            name,
            index: adapter.index,
            link_local: adapter.link_local,
        })
    }
    #[cfg(not(windows))]
    {
        test_interface_named(name)
    }
}

#[cfg(not(windows))]
fn test_interface_named(name: String) -> Option<TestInterface> {
    let index = interface_index(&name)?;
    Some(TestInterface {
        link_local: link_local(&name),
        name,
        index,
    })
}

/// The link-local IPv6 address of interface `name`.
#[cfg(not(windows))]
#[allow(
    clippy::missing_const_for_fn,
    reason = "const only on hosts without getifaddrs"
)]
fn link_local(name: &str) -> Option<std::net::Ipv6Addr> {
    #[cfg(unix)]
    {
        nix::ifaddrs::getifaddrs()
            .ok()?
            .filter(|entry| entry.interface_name == name)
            .filter_map(|entry| {
                entry
                    .address?
                    .as_sockaddr_in6()
                    .map(nix::sys::socket::SockaddrIn6::ip)
            })
            .find(|ip| ip.segments()[0] & 0xffc0 == 0xfe80)
    }
    #[cfg(not(unix))]
    {
        let _ = name;
        None
    }
}

/// Windows' adapters as `GetAdaptersAddresses` lists them: alias, IPv6 interface index and
/// link-local address.
#[cfg(windows)]
mod windows_adapters {
    use std::net::Ipv6Addr;

    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GAA_FLAG_SKIP_ANYCAST, GAA_FLAG_SKIP_DNS_SERVER, GAA_FLAG_SKIP_MULTICAST,
        GetAdaptersAddresses, IP_ADAPTER_ADDRESSES_LH,
    };
    use windows_sys::Win32::Networking::WinSock::AF_INET6;

    pub(crate) struct Adapter {
        pub(crate) index: u32,
        pub(crate) link_local: Option<Ipv6Addr>,
    }

    /// The adapter whose alias is `wanted`, or whose IPv6 interface index it spells.
    pub(crate) fn find(wanted: &str) -> Option<Adapter> {
        let by_index: Option<u32> = wanted.parse().ok();
        // ERROR_BUFFER_OVERFLOW tells the size; 15 KB is Learn's suggested first try.
        let mut size: u32 = 15 * 1024;
        let mut buffer: Vec<u64> = Vec::new();
        for _ in 0..3 {
            buffer.resize((size as usize).div_ceil(8), 0);
            let flags = GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST | GAA_FLAG_SKIP_DNS_SERVER;
            // SAFETY: `buffer` holds `size` bytes, 8-aligned as the list's structures need.
            let status = unsafe {
                GetAdaptersAddresses(
                    u32::from(AF_INET6),
                    flags,
                    std::ptr::null(),
                    buffer.as_mut_ptr().cast(),
                    &raw mut size,
                )
            };
            if status == 0 {
                return walk(buffer.as_ptr().cast(), wanted, by_index);
            }
        }
        None
    }

    fn walk(
        mut adapter: *const IP_ADAPTER_ADDRESSES_LH,
        wanted: &str,
        by_index: Option<u32>,
    ) -> Option<Adapter> {
        while !adapter.is_null() {
            // SAFETY: A node of the list GetAdaptersAddresses wrote into the caller's buffer,
            // which outlives this walk.
            let node = unsafe { &*adapter };
            // SAFETY: FriendlyName is a NUL-terminated UTF-16 string in the same buffer.
            let alias = unsafe { wide_string(node.FriendlyName) };
            if by_index == Some(node.Ipv6IfIndex) || alias.eq_ignore_ascii_case(wanted) {
                return Some(Adapter {
                    index: node.Ipv6IfIndex,
                    link_local: link_local(node),
                });
            }
            adapter = node.Next;
        }
        None
    }

    fn link_local(node: &IP_ADAPTER_ADDRESSES_LH) -> Option<Ipv6Addr> {
        let mut unicast = node.FirstUnicastAddress;
        while !unicast.is_null() {
            // SAFETY: A node of the same list, in the same buffer.
            let entry = unsafe { &*unicast };
            let address = entry.Address.lpSockaddr;
            if !address.is_null() && entry.Address.iSockaddrLength >= 24 {
                // SAFETY: A SOCKADDR_IN6 of iSockaddrLength bytes: sin6_addr at 8..24.
                let bytes = unsafe { std::slice::from_raw_parts(address.cast::<u8>(), 24) };
                let ip: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
                let ip = Ipv6Addr::from(ip);
                if ip.segments()[0] & 0xffc0 == 0xfe80 {
                    return Some(ip);
                }
            }
            unicast = entry.Next;
        }
        None
    }

    /// # Safety
    /// `text` is null or a NUL-terminated UTF-16 string.
    unsafe fn wide_string(text: *const u16) -> String {
        if text.is_null() {
            return String::new();
        }
        let mut length = 0;
        // SAFETY: NUL-terminated (the caller's contract): reads stop at the terminator.
        while unsafe { *text.wrapping_add(length) } != 0 {
            length += 1;
        }
        // SAFETY: `length` units before the terminator were just read.
        String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, length) })
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
