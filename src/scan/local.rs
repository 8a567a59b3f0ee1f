//! The local side of the probes: the source addresses the kernel picks
//! toward the targets and the interfaces holding them (the audit's
//! measured vantage).

/// Most bytes of an interface name kept (names come from the kernel, but
/// are shown in reports and terminals all the same).
const MAX_NAME: usize = 64;

/// Most destinations asked for a source address: routing picks few
/// distinct sources, so a bounded sample of the probed hosts finds them all
/// in practice without a syscall pair per address of a huge scope.
const SOURCE_LOOKUPS: usize = 65_536;

/// The local address(es) the kernel picks to reach `targets` — the audit's
/// vantage, which segmentation evidence must name. A UDP socket that is only
/// connected (never sent on) asks the routing table; no packet leaves.
pub fn source_addresses(
    targets: impl IntoIterator<Item = std::net::IpAddr>,
) -> Vec<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    let mut seen = std::collections::BTreeSet::new();
    let mut out = std::collections::BTreeSet::new();
    for ip in targets {
        if seen.len() >= SOURCE_LOOKUPS {
            break;
        }
        if !seen.insert(ip) {
            continue;
        }
        let any: IpAddr = match ip {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let Ok(sock) = UdpSocket::bind(SocketAddr::new(any, 0)) else {
            continue;
        };
        if sock.connect(SocketAddr::new(ip, 9)).is_ok()
            && let Ok(local) = sock.local_addr()
        {
            out.insert(local.ip());
        }
    }
    out.into_iter().collect()
}

/// The network interface holding each address (`None` where none does any
/// more), from getifaddrs(3): the scope names the interface beside each
/// source address.
pub fn interfaces_of(addrs: &[std::net::IpAddr]) -> Vec<Option<String>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut found: Vec<Option<String>> = vec![None; addrs.len()];
    if addrs.is_empty() {
        return found;
    }
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we own until freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return found;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says its
        // layout; the name is a NUL-terminated string of the same list.
        let ip: IpAddr = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)).into()
                }
                libc::AF_INET6 => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    Ipv6Addr::from(sa.sin6_addr.s6_addr).into()
                }
                _ => continue,
            }
        };
        for (i, a) in addrs.iter().enumerate() {
            if *a == ip && found[i].is_none() {
                // SAFETY: see above.
                let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
                found[i] = Some(crate::lines::inert(&name.to_string_lossy(), MAX_NAME));
            }
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}
