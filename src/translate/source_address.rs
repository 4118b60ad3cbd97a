//! Matching routes on the client's address. Envoy's routes match headers, not connections, so
//! the connection manager first writes the peer's address into a header of its own (an early
//! header mutation, before routing; whatever a client sent under that name is replaced), and
//! a route's address blocks become a regular expression over it. Must not: trust any header a
//! client can write.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::common::mutation_rules::v3::{
    header_mutation::Action, HeaderMutation,
};
use envoy_types::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption, TypedExtensionConfig,
};
use envoy_types::pb::envoy::extensions::http::early_header_mutation::header_mutation::v3::HeaderMutation as EarlyHeaderMutation;

use crate::model::RouteTable;

use super::to_any;

/// The header the connection manager fills with the client's address before routing.
pub const SOURCE_ADDRESS_HEADER: &str = "x-switchyard-source-address";

/// Whether any route of the table matches on the client's address.
pub fn uses_source_blocks(table: &RouteTable) -> bool {
    table
        .routes()
        .any(|route| !route.matches.source_blocks.is_empty())
}

/// The early header mutation that writes the peer's address into [`SOURCE_ADDRESS_HEADER`].
pub fn source_address_mutation() -> TypedExtensionConfig {
    let mutation = EarlyHeaderMutation {
        mutations: vec![HeaderMutation {
            action: Some(Action::Append(HeaderValueOption {
                header: Some(HeaderValue {
                    key: SOURCE_ADDRESS_HEADER.to_string(),
                    value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%".to_string(),
                    ..Default::default()
                }),
                append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                ..Default::default()
            })),
        }],
    };
    TypedExtensionConfig {
        name: "envoy.http.early_header_mutation.header_mutation".to_string(),
        typed_config: Some(to_any(&mutation)),
    }
}

/// A regular expression that holds for the text of an address in one of `blocks`: IPv4
/// blocks of any length, IPv6 ones whole (/128) or everything (/0).
pub fn source_blocks_regex(blocks: &[(IpAddr, u8)]) -> String {
    let alternatives: Vec<String> = blocks
        .iter()
        .map(|(address, length)| match address {
            IpAddr::V4(v4) => ipv4_block_regex(v4.octets(), *length),
            IpAddr::V6(_) if *length == 0 => "[0-9a-fA-F:.]*:[0-9a-fA-F:.]*".to_string(),
            IpAddr::V6(v6) => regex::escape(&v6.to_string()),
        })
        .collect();
    format!("({})", alternatives.join("|"))
}

/// The dotted-quad texts of an IPv4 block: whole octets literally, the partial one as the
/// list of its values, the rest as any octet.
fn ipv4_block_regex(octets: [u8; 4], length: u8) -> String {
    let mut parts = Vec::new();
    for (index, octet) in octets.iter().enumerate() {
        let fixed_bits = (i32::from(length) - 8 * index as i32).clamp(0, 8) as u32;
        parts.push(match fixed_bits {
            8 => octet.to_string(),
            0 => "[0-9]{1,3}".to_string(),
            bits => {
                let span = 1u16 << (8 - bits);
                let low = u16::from(*octet) & !(span - 1);
                let values: Vec<String> = (low..low + span).map(|v| v.to_string()).collect();
                format!("({})", values.join("|"))
            }
        });
    }
    parts.join("\\.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_match(pattern: &str, text: &str) -> bool {
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .unwrap()
            .is_match(text)
    }

    #[test]
    fn blocks_match_the_addresses_inside_them() {
        let pattern = source_blocks_regex(&[
            ("10.1.0.0".parse().unwrap(), 16),
            ("192.168.7.128".parse().unwrap(), 25),
            ("::1".parse().unwrap(), 128),
        ]);
        assert!(full_match(&pattern, "10.1.200.3"));
        assert!(full_match(&pattern, "192.168.7.200"));
        assert!(!full_match(&pattern, "192.168.7.127"));
        assert!(!full_match(&pattern, "10.10.0.1"));
        assert!(!full_match(&pattern, "110.1.0.1"));
        assert!(full_match(&pattern, "::1"));
        assert!(!full_match(&pattern, "::2"));
        let everyone = source_blocks_regex(&[("0.0.0.0".parse().unwrap(), 0)]);
        assert!(full_match(&everyone, "127.0.0.1"));
        assert!(!full_match(&everyone, "::1"));
    }
}
