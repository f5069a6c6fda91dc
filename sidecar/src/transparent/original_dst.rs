//! Recovering where a redirected connection was going: the `nat` table's
//! `REDIRECT` rewrote the destination to the sidecar's port, and the kernel
//! keeps the original in conntrack, readable with `SO_ORIGINAL_DST`
//! (`IP6T_SO_ORIGINAL_DST` for IPv6).

use std::io;
use std::net::SocketAddr;

use socket2::SockRef;
use tokio::net::TcpStream;

/// The destination the client dialled before iptables redirected it.
///
/// Fails with the OS error when the connection was not redirected (then the
/// socket has no conntrack NAT entry) or on a non-Linux system.
pub(crate) fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    let sock = SockRef::from(stream);
    let local = stream.local_addr()?;
    let addr = if local.is_ipv4() {
        sock.original_dst_v4()?
    } else {
        sock.original_dst_v6()?
    };
    addr.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "original destination is not an IP address",
        )
    })
}
