//! The PROXY protocol header a cluster's connections start with (v1 line or v2 binary), built
//! as Envoy's upstream_proxy_protocol socket builds it: the downstream client's address as the
//! source and the address it connected to as the destination. Pure.
//!
//! Must not: open or write sockets (proxy/tcp.rs writes the header before TLS or the bytes).

use std::net::{IpAddr, SocketAddr};

use super::resources::proxy_protocol::ProxyProtocolVersion;

/// The v2 header's fixed first twelve bytes.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header for a connection from `source` that arrived at `destination`.
pub fn header(
    version: ProxyProtocolVersion,
    source: SocketAddr,
    destination: SocketAddr,
) -> Vec<u8> {
    let (source, destination) = same_family(source, destination);
    match version {
        ProxyProtocolVersion::V1 => v1_line(source, destination).into_bytes(),
        ProxyProtocolVersion::V2 => v2_header(source, destination),
    }
}

/// Both addresses in one family: an IPv4 address mapped into IPv6 (a dual-stack socket's
/// view of an IPv4 client) is written as IPv4 when the other one is IPv4 too, or else both as
/// IPv6.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let unmapped = |address: SocketAddr| match address.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), address.port()),
            None => address,
        },
        IpAddr::V4(_) => address,
    };
    let (source, destination) = (unmapped(source), unmapped(destination));
    if source.is_ipv4() == destination.is_ipv4() {
        return (source, destination);
    }
    let as_v6 = |address: SocketAddr| match address.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), address.port()),
        IpAddr::V6(_) => address,
    };
    (as_v6(source), as_v6(destination))
}

fn v1_line(source: SocketAddr, destination: SocketAddr) -> String {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
}

fn v2_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    // Version 2, command PROXY.
    header.push(0x21);
    let mut addresses = Vec::with_capacity(36);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(from), IpAddr::V4(to)) => {
            // AF_INET, STREAM.
            header.push(0x11);
            addresses.extend_from_slice(&from.octets());
            addresses.extend_from_slice(&to.octets());
        }
        (from, to) => {
            // AF_INET6, STREAM ([`same_family`] made both IPv6).
            header.push(0x21);
            addresses.extend_from_slice(&as_v6_octets(from));
            addresses.extend_from_slice(&as_v6_octets(to));
        }
    }
    addresses.extend_from_slice(&source.port().to_be_bytes());
    addresses.extend_from_slice(&destination.port().to_be_bytes());
    header.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    header.extend_from_slice(&addresses);
    header
}

fn as_v6_octets(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_v1_line_names_the_client_then_the_address_it_reached() {
        let line = header(
            ProxyProtocolVersion::V1,
            at("127.0.0.1:40000"),
            at("127.0.0.2:443"),
        );
        assert_eq!(line, b"PROXY TCP4 127.0.0.1 127.0.0.2 40000 443\r\n");
        let line = header(ProxyProtocolVersion::V1, at("[::1]:40000"), at("[::1]:443"));
        assert_eq!(line, b"PROXY TCP6 ::1 ::1 40000 443\r\n");
        let mapped = header(
            ProxyProtocolVersion::V1,
            at("[::ffff:10.0.0.1]:5"),
            at("10.0.0.2:6"),
        );
        assert_eq!(mapped, b"PROXY TCP4 10.0.0.1 10.0.0.2 5 6\r\n");
    }

    #[test]
    fn the_v2_header_is_the_signature_then_family_length_addresses_and_ports() {
        let binary = header(
            ProxyProtocolVersion::V2,
            at("127.0.0.1:40000"),
            at("127.0.0.2:443"),
        );
        let mut expected = V2_SIGNATURE.to_vec();
        expected.extend_from_slice(&[0x21, 0x11, 0, 12, 127, 0, 0, 1, 127, 0, 0, 2]);
        expected.extend_from_slice(&40000u16.to_be_bytes());
        expected.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(binary, expected);
        let v6 = header(ProxyProtocolVersion::V2, at("[::1]:1"), at("[::2]:2"));
        assert_eq!(v6.len(), 16 + 36);
        assert_eq!(&v6[12..16], &[0x21, 0x21, 0, 36]);
    }
}
