//! Socket options as `WskControlSocket(WskSetOption)` takes them.
//!
//! Level, option and `DWORD` value for each family, from the Winsock option pages (`IPPROTO_IP`,
//! `IPPROTO_IPV6` and `SOL_SOCKET` socket options, learn.microsoft.com) and msquic's
//! `datapath_winkernel.c`, which sets the same options on its WSK sockets.
//!
//! A dual-stack `AF_INET6` socket carries IPv4 traffic too, so an option with an IPv4 form is
//! set at `IPPROTO_IP` as well (msquic sets `IP_DONTFRAGMENT` and `IPV6_DONTFRAG`,
//! `IP_UNICAST_IF` and `IPV6_UNICAST_IF`, on its dual-stack sockets).
//!
//! IRQL: any (computation only).

use core::net::SocketAddr;

use windows_sys::Win32::Networking::WinSock::{
    IP_DONTFRAGMENT, IP_MULTICAST_IF, IP_MULTICAST_LOOP, IP_MULTICAST_TTL, IP_TTL, IP_UNICAST_IF,
    IPPROTO_IP, IPPROTO_IPV6, IPV6_DONTFRAG, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_IF,
    IPV6_MULTICAST_LOOP, IPV6_UNICAST_HOPS, IPV6_UNICAST_IF, SO_BROADCAST, SOL_SOCKET,
};
use wskudp_abi::SocketOption;

/// One `WskSetOption`: `(Level, ControlCode, DWORD value)`.
pub type Setting = (u32, u32, u32);

/// The `WskSetOption` calls that set `option` on a socket bound to `local`.
///
/// At most two: the IPv6 form and, on a dual-stack socket, the IPv4 one. `SocketOption::Destination` is not a
/// socket option (it is `SIO_WSK_SET_SENDTO_ADDRESS`) and yields none.
pub fn settings(
    option: SocketOption,
    local: SocketAddr,
    dual_stack: bool,
) -> impl Iterator<Item = Setting> {
    let v6 = local.is_ipv6();
    let v4_too = !v6 || dual_stack;
    let level = |level: i32| level.cast_unsigned();
    let code = |code: i32| code.cast_unsigned();
    let (ip, ipv6, socket) = (level(IPPROTO_IP), level(IPPROTO_IPV6), level(SOL_SOCKET));
    // (IPv4 form, IPv6 form); SOL_SOCKET options have one form for both.
    let (v4_form, v6_form): (Option<Setting>, Option<Setting>) = match option {
        SocketOption::HopLimit(hops) => (
            Some((ip, code(IP_TTL), u32::from(hops))),
            Some((ipv6, code(IPV6_UNICAST_HOPS), u32::from(hops))),
        ),
        SocketOption::Broadcast(on) => {
            let setting = Some((socket, code(SO_BROADCAST), u32::from(on)));
            if v6 { (None, setting) } else { (setting, None) }
        }
        // IP_MULTICAST_IF: an interface index is given in network byte order, as an address
        // in 0.0.0.0/8 (IPPROTO_IP socket options page); IPV6_MULTICAST_IF takes it as is.
        SocketOption::MulticastInterface(index) => (
            Some((ip, code(IP_MULTICAST_IF), index.to_be())),
            Some((ipv6, code(IPV6_MULTICAST_IF), index)),
        ),
        SocketOption::MulticastHopLimit(hops) => (
            Some((ip, code(IP_MULTICAST_TTL), u32::from(hops))),
            Some((ipv6, code(IPV6_MULTICAST_HOPS), u32::from(hops))),
        ),
        SocketOption::MulticastLoop(on) => (
            Some((ip, code(IP_MULTICAST_LOOP), u32::from(on))),
            Some((ipv6, code(IPV6_MULTICAST_LOOP), u32::from(on))),
        ),
        // IP_UNICAST_IF takes the index in network byte order, IPV6_UNICAST_IF in host order
        // (IPPROTO_IP / IPPROTO_IPV6 socket options pages; msquic byte-swaps the IPv4 one).
        SocketOption::UnicastInterface(index) => (
            Some((ip, code(IP_UNICAST_IF), index.to_be())),
            Some((ipv6, code(IPV6_UNICAST_IF), index)),
        ),
        SocketOption::DontFragment(on) => (
            Some((ip, code(IP_DONTFRAGMENT), u32::from(on))),
            Some((ipv6, code(IPV6_DONTFRAG), u32::from(on))),
        ),
        SocketOption::Destination(_) => (None, None),
    };
    let v6_setting = if v6 { v6_form } else { None };
    let v4_setting = if v4_too { v4_form } else { None };
    v6_setting.into_iter().chain(v4_setting)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn all(option: SocketOption, local: &str, dual_stack: bool) -> Vec<Setting> {
        settings(option, local.parse().unwrap(), dual_stack).collect()
    }

    #[test]
    fn each_family_gets_its_form_and_dual_stack_both() {
        let ip = 0;
        let ipv6 = 41;
        assert_eq!(
            all(SocketOption::HopLimit(7), "0.0.0.0:0", false),
            [(ip, 4, 7)]
        );
        assert_eq!(
            all(SocketOption::HopLimit(7), "[::]:0", false),
            [(ipv6, 4, 7)]
        );
        assert_eq!(
            all(SocketOption::HopLimit(7), "[::]:0", true),
            [(ipv6, 4, 7), (ip, 4, 7)]
        );
        // IPv4 interface indexes go in network byte order.
        assert_eq!(
            all(SocketOption::UnicastInterface(3), "[::]:0", true),
            [(ipv6, 31, 3), (ip, 31, 3_u32.to_be())]
        );
        assert_eq!(
            all(SocketOption::Broadcast(true), "[::]:0", true),
            [(0xFFFF, 32, 1)]
        );
        assert!(
            all(
                SocketOption::Destination("127.0.0.1:1".parse().unwrap()),
                "0.0.0.0:0",
                false
            )
            .is_empty()
        );
    }
}
