//! ORIGINAL_DST clusters: each connection goes where its client was going. That is the
//! address netfilter redirected it from (SO_ORIGINAL_DST, IPv4 and IPv6), read once when the
//! connection is accepted and only while the config has such a cluster; else the address the
//! connection reached. A destination that is one of the sidecar's own listeners would come
//! back to the sidecar, again and again: it gets a local answer (HTTP) or a closed connection
//! (TCP) and a log line instead. proxy/original_dst_hosts.rs keeps the hosts.
//!
//! Must not: pick hosts of other clusters, or look at anything but the connection's addresses
//! and the listeners' own.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use http::{Response, StatusCode};
use tokio::net::TcpStream;

use super::config::ProxyConfig;
use super::http::{full, Body};

/// `SO_ORIGINAL_DST` (linux/netfilter_ipv4.h), and `IP6T_SO_ORIGINAL_DST`
/// (linux/netfilter_ipv6/ip6_tables.h): the same number at the IPv4 and IPv6 levels.
const SO_ORIGINAL_DST: libc::c_int = 80;

/// Where the client of `stream` was going when netfilter redirected its connection to the
/// sidecar (None when it was not redirected).
pub fn redirected_destination(stream: &TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    let fd = stream.as_raw_fd();
    let original = match local {
        SocketAddr::V4(_) => original_v4(fd),
        // An IPv6 socket carries IPv4 connections too (v4-mapped): its original destination
        // is then kept at the IPv4 level.
        SocketAddr::V6(_) => original_v6(fd).or_else(|| original_v4(fd)),
    }?;
    (original != local).then_some(original)
}

fn original_v4(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: `address` is a sockaddr_in the kernel fills up to `length` bytes.
    let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_IP,
            SO_ORIGINAL_DST,
            (&mut address as *mut libc::sockaddr_in).cast(),
            &mut length,
        )
    };
    (result == 0 && i32::from(address.sin_family) == libc::AF_INET).then(|| {
        let ip = Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr));
        SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(address.sin_port)))
    })
}

fn original_v6(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: `address` is a sockaddr_in6 the kernel fills up to `length` bytes.
    let mut address: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_IPV6,
            SO_ORIGINAL_DST,
            (&mut address as *mut libc::sockaddr_in6).cast(),
            &mut length,
        )
    };
    (result == 0 && i32::from(address.sin6_family) == libc::AF_INET6).then(|| {
        let ip = Ipv6Addr::from(address.sin6_addr.s6_addr);
        SocketAddr::V6(SocketAddrV6::new(
            ip,
            u16::from_be(address.sin6_port),
            address.sin6_flowinfo,
            address.sin6_scope_id,
        ))
    })
}

/// Where an ORIGINAL_DST cluster sends a connection that reached the sidecar at `local`
/// (redirected from `original`, if it was); Err with that destination when it is the
/// sidecar's own listener.
pub fn destination(
    original: Option<SocketAddr>,
    local: SocketAddr,
    config: &ProxyConfig,
) -> Result<SocketAddr, SocketAddr> {
    let destination = original.unwrap_or(local);
    match loops_back(destination, local, config) {
        true => {
            tracing::warn!(
                %destination,
                "an ORIGINAL_DST cluster's destination is this proxy's own listener; \
                 not forwarding (the connection was not redirected to the proxy)"
            );
            Err(destination)
        }
        false => Ok(destination),
    }
}

/// Whether `destination` would reach the sidecar again: it is where the connection came in
/// (`local`), or a listener of the config binds it (a wildcard listener, on its port, for a
/// loopback address or `local`'s).
fn loops_back(destination: SocketAddr, local: SocketAddr, config: &ProxyConfig) -> bool {
    destination == local
        || config
            .listeners
            .values()
            .flat_map(|listener| listener.addresses.iter())
            .any(|bound| {
                bound.port() == destination.port()
                    && (bound.ip() == destination.ip()
                        || (bound.ip().is_unspecified()
                            && (destination.ip().is_loopback() || destination.ip() == local.ip())))
            })
}

/// The local answer to a request whose original destination is the sidecar itself.
pub fn loop_answer(destination: SocketAddr) -> Response<Body> {
    full(
        StatusCode::BAD_GATEWAY,
        &format!(
            "original destination {destination} is this proxy's own listener: the request \
             would loop back to it\n"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_that_was_not_redirected_loops_back_and_a_redirected_one_goes_on() {
        let config = ProxyConfig::default();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let original: SocketAddr = "127.0.0.77:9000".parse().unwrap();
        assert_eq!(destination(None, local, &config), Err(local));
        assert_eq!(destination(Some(original), local, &config), Ok(original));
        assert_eq!(destination(Some(local), local, &config), Err(local));
    }

    #[test]
    fn a_destination_another_listener_binds_loops_back_too() {
        let mut config = ProxyConfig::default();
        let listener = |address: &str| {
            std::sync::Arc::new(crate::proxy::resources::listener::Listener {
                name: address.into(),
                addresses: vec![address.parse().unwrap()],
                freebind: false,
                chains: Vec::new(),
                inspects_tls: false,
            })
        };
        for address in ["127.0.0.1:8081", "0.0.0.0:8082"] {
            config.listeners.insert(address.into(), listener(address));
        }
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let to = |address: &str| destination(Some(address.parse().unwrap()), local, &config);
        assert!(to("127.0.0.1:8081").is_err());
        assert!(
            to("127.0.0.9:8082").is_err(),
            "a wildcard listener takes loopback"
        );
        assert!(
            to("10.0.0.9:8082").is_ok(),
            "another host on a wildcard listener's port"
        );
        assert!(to("127.0.0.77:9000").is_ok());
    }
}
