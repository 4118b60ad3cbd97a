//! A listener's filter chains: what each one matches (destination port, SNI server names,
//! transport protocol), whether it terminates TLS, and the choice among them for a new
//! connection, made as Envoy makes it: field by field in Envoy's order, a chain naming the
//! connection's value beating one that leaves the field empty. Pure.
//!
//! Must not: read the network filters (listener.rs does) or touch sockets (proxy/tls.rs).

use envoy_types::pb::envoy::config::core::v3::{transport_socket, TransportSocket};
use envoy_types::pb::envoy::config::listener::v3::{
    listener_filter, FilterChainMatch, ListenerFilter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use prost::Name;

use super::tls::{self, DownstreamTls, TLS_TRANSPORT_SOCKET};
use super::{Fault, Problem};

pub const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

/// What a filter chain matches; an empty field matches every connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainMatch {
    pub destination_port: Option<u16>,
    /// Lower case; `*.example.com` matches one or more labels before `example.com`.
    pub server_names: Vec<String>,
    /// `tls` or `raw_buffer`.
    pub transport_protocol: Option<String>,
}

/// What is known of a new connection when its chain is chosen.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionFacts<'a> {
    pub destination_port: u16,
    /// The SNI of a TLS ClientHello.
    pub server_name: Option<&'a str>,
    /// `tls` when the connection starts with a TLS record, else `raw_buffer`.
    pub transport_protocol: &'a str,
}

/// Reads a chain's `filter_chain_match`.
pub fn chain_match(matcher: Option<&FilterChainMatch>) -> Result<ChainMatch, Fault> {
    let Some(matcher) = matcher else {
        return Ok(ChainMatch::default());
    };
    let destination_port = match &matcher.destination_port {
        None => None,
        Some(port) => Some(u16::try_from(port.value).map_err(|_| {
            Fault::at(
                "filter_chain_match.destination_port",
                Problem::PortOutOfRange { port: port.value },
            )
        })?),
    };
    Ok(ChainMatch {
        destination_port,
        server_names: matcher
            .server_names
            .iter()
            .map(|name| name.to_ascii_lowercase())
            .collect(),
        transport_protocol: Some(matcher.transport_protocol.clone()).filter(|p| !p.is_empty()),
    })
}

/// Reads a chain's transport socket: TLS with a DownstreamTlsContext, or nothing.
pub fn transport_socket(socket: Option<&TransportSocket>) -> Result<Option<DownstreamTls>, Fault> {
    let Some(socket) = socket else {
        return Ok(None);
    };
    let refused = |type_url: &str| {
        Fault::at(
            "transport_socket",
            Problem::TransportSocket {
                name: socket.name.clone(),
                type_url: type_url.to_string(),
            },
        )
    };
    match &socket.config_type {
        Some(transport_socket::ConfigType::TypedConfig(config))
            if config.type_url == DownstreamTlsContext::type_url() =>
        {
            tls::downstream(&config.value).map(Some).map_err(|fault| {
                fault.inside("transport_socket.typed_config (DownstreamTlsContext)")
            })
        }
        Some(transport_socket::ConfigType::TypedConfig(config)) => Err(refused(&config.type_url)),
        None if socket.name == TLS_TRANSPORT_SOCKET => Err(refused("")),
        None => Err(refused("")),
    }
}

/// Whether the listener filters (only the TLS inspector, without settings) ask for the
/// ClientHello to be read before a chain is chosen.
pub fn inspects_tls(filters: &[ListenerFilter]) -> Result<bool, Fault> {
    let mut inspects = false;
    for (index, filter) in filters.iter().enumerate() {
        let plain_inspector = match &filter.config_type {
            None => true,
            Some(listener_filter::ConfigType::TypedConfig(config)) => {
                config.type_url == TlsInspector::type_url() && config.value.is_empty()
            }
            Some(_) => false,
        };
        if filter.name != TLS_INSPECTOR || !plain_inspector {
            return Err(Fault::at(
                format!("listener_filters[{index}]"),
                Problem::ListenerFilter {
                    name: filter.name.clone(),
                },
            ));
        }
        inspects = true;
    }
    Ok(inspects)
}

/// The index of the chain a connection goes to, or None when no chain matches (Envoy then
/// closes the connection).
pub fn select(matches: &[&ChainMatch], facts: ConnectionFacts<'_>) -> Option<usize> {
    let candidates: Vec<usize> = (0..matches.len()).collect();
    let candidates = narrow(candidates, |i| {
        matches[i]
            .destination_port
            .map(|port| u32::from(port == facts.destination_port))
    })?;
    let candidates = narrow(candidates, |i| {
        if matches[i].server_names.is_empty() {
            return None;
        }
        let name = facts.server_name.map(str::to_ascii_lowercase);
        Some(
            matches[i]
                .server_names
                .iter()
                .map(|pattern| name.as_deref().map_or(0, |name| name_score(pattern, name)))
                .max()
                .unwrap_or(0),
        )
    })?;
    let candidates = narrow(candidates, |i| {
        matches[i]
            .transport_protocol
            .as_ref()
            .map(|p| u32::from(p == facts.transport_protocol))
    })?;
    candidates.first().copied()
}

/// Keeps the candidates whose field matches best: `score` is None for a chain that leaves
/// the field empty, 0 for one that names other values, higher for closer matches. The best
/// positive score wins; without one, the chains that leave the field empty.
fn narrow(candidates: Vec<usize>, score: impl Fn(usize) -> Option<u32>) -> Option<Vec<usize>> {
    let best = candidates
        .iter()
        .filter_map(|&i| score(i))
        .max()
        .unwrap_or(0);
    let kept: Vec<usize> = if best > 0 {
        candidates
            .into_iter()
            .filter(|&i| score(i) == Some(best))
            .collect()
    } else {
        candidates
            .into_iter()
            .filter(|&i| score(i).is_none())
            .collect()
    };
    (!kept.is_empty()).then_some(kept)
}

/// How well a server name pattern matches `name`: an exact name beats any wildcard, and a
/// longer wildcard suffix beats a shorter one; 0 when it does not match.
fn name_score(pattern: &str, name: &str) -> u32 {
    if pattern == name {
        return u32::MAX;
    }
    match pattern.strip_prefix('*') {
        Some(suffix)
            if suffix.starts_with('.') && name.len() > suffix.len() && name.ends_with(suffix) =>
        {
            suffix.len() as u32
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> ChainMatch {
        ChainMatch {
            server_names: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn facts<'a>(port: u16, sni: Option<&'a str>, protocol: &'a str) -> ConnectionFacts<'a> {
        ConnectionFacts {
            destination_port: port,
            server_name: sni,
            transport_protocol: protocol,
        }
    }

    #[test]
    fn server_names_choose_exact_then_the_longest_wildcard_then_the_chain_without_names() {
        let www = names(&["www.example.test"]);
        let wildcard = names(&["*.example.test"]);
        let deeper = names(&["*.api.example.test"]);
        let default = ChainMatch::default();
        let chains = [&www, &wildcard, &deeper, &default];
        let pick = |sni| select(&chains, facts(443, sni, "tls"));
        assert_eq!(pick(Some("WWW.example.test")), Some(0));
        assert_eq!(pick(Some("shop.example.test")), Some(1));
        assert_eq!(pick(Some("v1.api.example.test")), Some(2));
        assert_eq!(
            pick(Some("example.test")),
            Some(3),
            "a wildcard needs a label"
        );
        assert_eq!(pick(None), Some(3));
        assert_eq!(select(&[&www], facts(443, Some("other.test"), "tls")), None);
    }

    #[test]
    fn port_comes_before_names_and_transport_protocol_after_them() {
        let on_8443 = ChainMatch {
            destination_port: Some(8443),
            ..Default::default()
        };
        let www = names(&["www.example.test"]);
        let raw = ChainMatch {
            transport_protocol: Some("raw_buffer".into()),
            ..Default::default()
        };
        let tls = ChainMatch {
            transport_protocol: Some("tls".into()),
            ..Default::default()
        };
        let chains = [&on_8443, &www, &raw, &tls];
        assert_eq!(
            select(&chains, facts(8443, Some("www.example.test"), "tls")),
            Some(0)
        );
        assert_eq!(
            select(&chains, facts(443, Some("www.example.test"), "tls")),
            Some(1)
        );
        assert_eq!(select(&chains, facts(443, None, "raw_buffer")), Some(2));
        assert_eq!(select(&chains, facts(443, Some("x.test"), "tls")), Some(3));
    }
}
