//! Transparent mode must not loop into itself.
//!
//! A redirected connection whose original destination is one of the
//! sidecar's own listeners (the app dialled the outbound, inbound or admin
//! port, by any of the pod's addresses) would be forwarded to the sidecar,
//! redirected again, and so on until file descriptors run out. It is refused
//! and counted (`weir_sidecar_transparent_connections_total{protocol="loop_refused"}`).

use std::net::{IpAddr, SocketAddr, UdpSocket};

/// The sidecar's own listener addresses, as bound.
#[derive(Debug, Clone)]
pub(crate) struct OwnAddrs {
    listeners: Vec<SocketAddr>,
}

impl OwnAddrs {
    pub(crate) fn new(listeners: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self {
            listeners: listeners.into_iter().collect(),
        }
    }

    /// Whether a connection to `dst` would reach one of our listeners.
    pub(crate) fn is_own(&self, dst: SocketAddr) -> bool {
        self.is_own_with(dst, is_local_ip)
    }

    /// [`Self::is_own`] with the host-address test given (tests use a fake).
    fn is_own_with(&self, dst: SocketAddr, is_local: impl Fn(IpAddr) -> bool) -> bool {
        self.listeners.iter().any(|l| {
            if l.port() != dst.port() {
                return false;
            }
            if l.ip() == dst.ip() {
                return true;
            }
            // A wildcard listener answers on every local address; a specific
            // one only on its own (checked above), or on loopback if it is
            // bound to loopback of the same family.
            (l.ip().is_unspecified() && is_local(dst.ip()))
                || (l.ip().is_loopback() && dst.ip().is_loopback())
        })
    }
}

/// Whether `ip` is an address of this host: loopback, the wildcard, or one
/// the kernel lets a socket bind to (it refuses addresses of other hosts with
/// `EADDRNOTAVAIL`). Only asked when the port is one of ours, so rarely.
fn is_local_ip(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn own() -> OwnAddrs {
        OwnAddrs::new([
            addr("0.0.0.0:4140"),
            addr("0.0.0.0:4143"),
            addr("127.0.0.1:9990"),
        ])
    }

    /// The pod's address in these tests.
    fn pod_ip(ip: IpAddr) -> bool {
        ip == "10.1.2.3".parse::<IpAddr>().unwrap() || ip.is_loopback() || ip.is_unspecified()
    }

    #[test]
    fn the_sidecars_own_listeners_are_refused_by_any_local_address() {
        let own = own();
        for dst in [
            "127.0.0.1:4140",
            "10.1.2.3:4140",
            "10.1.2.3:4143",
            "127.0.0.1:9990",
            "127.0.0.2:9990",
            "0.0.0.0:4143",
        ] {
            assert!(own.is_own_with(addr(dst), pod_ip), "{dst} was not refused");
        }
    }

    #[test]
    fn other_hosts_and_other_ports_are_forwarded() {
        let own = own();
        for dst in [
            // Another pod's sidecar inbound: the usual mesh hop.
            "10.1.9.9:4143",
            // Our address, a port we do not listen on: the app's own server.
            "10.1.2.3:8080",
            "127.0.0.1:5432",
            // The admin listener is loopback-only: the pod address is not it.
            "10.1.2.3:9990",
        ] {
            assert!(!own.is_own_with(addr(dst), pod_ip), "{dst} was refused");
        }
    }

    #[test]
    fn the_real_host_test_knows_loopback_and_not_a_documentation_address() {
        assert!(is_local_ip("127.0.0.1".parse().unwrap()));
        assert!(is_local_ip("::1".parse().unwrap()) || !ipv6_available());
        // TEST-NET-3 (RFC 5737) is never assigned to a host.
        assert!(!is_local_ip("203.0.113.7".parse().unwrap()));
        let own = OwnAddrs::new([addr("0.0.0.0:4140")]);
        assert!(own.is_own(addr("127.0.0.1:4140")));
        assert!(!own.is_own(addr("203.0.113.7:4140")));
    }

    fn ipv6_available() -> bool {
        UdpSocket::bind("[::1]:0").is_ok()
    }
}
