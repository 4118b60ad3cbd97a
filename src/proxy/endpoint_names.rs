//! Endpoint names: an upstream request goes to a made-up host name that spells out every
//! address of the endpoint (the preferred one first), and this resolver reads them back. So
//! hyper's connector does what Envoy's happy eyeballs does — the first family first, the
//! other after a short delay or at once on a refusal — and its pool keeps one set of
//! connections per endpoint. Nothing is looked up anywhere.
//!
//! A name is one label per address: `a` + the IP's bytes in hex + `p` + the port, then `.sy`.

use std::future::Ready;
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

/// The host name standing for `addresses`, in order.
pub fn name_of(addresses: &[SocketAddr]) -> String {
    let mut name = String::new();
    for address in addresses {
        name.push('a');
        match address.ip() {
            IpAddr::V4(ip) => ip
                .octets()
                .iter()
                .for_each(|b| name.push_str(&format!("{b:02x}"))),
            IpAddr::V6(ip) => ip
                .octets()
                .iter()
                .for_each(|b| name.push_str(&format!("{b:02x}"))),
        }
        name.push_str(&format!("p{}.", address.port()));
    }
    name.push_str("sy");
    name
}

/// The addresses a name made by [`name_of`] stands for.
pub fn addresses_of(name: &str) -> Option<Vec<SocketAddr>> {
    let labels = name.strip_suffix("sy")?.strip_suffix('.')?;
    labels
        .split('.')
        .map(|label| {
            let (hex, port) = label.strip_prefix('a')?.split_once('p')?;
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<_>>()?;
            let ip = match bytes.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
                16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
                _ => return None,
            };
            Some(SocketAddr::new(ip, port.parse().ok()?))
        })
        .collect()
}

/// The resolver hyper's connector asks.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointNames;

impl tower_service::Service<Name> for EndpointNames {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        std::future::ready(
            addresses_of(name.as_str())
                .map(Vec::into_iter)
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("not an endpoint name: {}", name.as_str()),
                    )
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_spell_out_their_addresses_in_order() {
        let addresses: Vec<SocketAddr> = vec![
            "[2001:db8::1]:8443".parse().unwrap(),
            "10.0.0.7:8080".parse().unwrap(),
        ];
        let name = name_of(&addresses);
        assert_eq!(
            name,
            "a20010db8000000000000000000000001p8443.a0a000007p8080.sy"
        );
        assert_eq!(addresses_of(&name), Some(addresses));
        assert_eq!(addresses_of("example.com"), None);
        assert!(name.split('.').all(|label| label.len() <= 63));
    }
}
