//! Listener rule conditions as an ALB reads them: host-header and path-pattern (values with
//! `*` and `?` wildcards; path patterns are case-sensitive), http-header (a name and values),
//! query-string (key / value pairs, a missing key matching any), http-request-method and
//! source-ip (CIDR blocks), in the config form (`HostHeaderConfig: {Values}`) or the legacy
//! `Values` of host-header and path-pattern. Pure. Must not: know the model or xDS.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::reader::{list_mappings, Fields};
use crate::config::yaml::Node;
use crate::model::Diagnostics;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    Host(Vec<String>),
    Path(Vec<String>),
    Header {
        name: String,
        values: Vec<String>,
    },
    /// (key, value) pairs; a missing key matches any key.
    Query(Vec<(Option<String>, String)>),
    Method(Vec<String>),
    /// CIDR blocks.
    SourceIp(Vec<(IpAddr, u8)>),
}

pub(super) fn read_conditions(
    node: &Node,
    file: &Arc<str>,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Vec<Condition> {
    list_mappings(node, file, path, "conditions", diagnostics, read_condition)
}

fn read_condition(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<Condition> {
    let field = fields.required_string("Field", diagnostics)?;
    let legacy = fields.strings("Values", diagnostics);
    let config_values =
        |fields: &mut Fields<'_>, key: &'static str, diagnostics: &mut Diagnostics| {
            fields.mapping(key, diagnostics, |config, diagnostics| {
                let values = config.strings("Values", diagnostics);
                config.not_served(&["RegexValues"], diagnostics);
                Some(values)
            })
        };
    let loc = fields.loc();
    let path = fields.path.clone();
    let condition = match field.as_str() {
        "host-header" => Condition::Host(
            config_values(fields, "HostHeaderConfig", diagnostics).unwrap_or(legacy),
        ),
        "path-pattern" => Condition::Path(
            config_values(fields, "PathPatternConfig", diagnostics).unwrap_or(legacy),
        ),
        "http-request-method" => {
            let methods =
                config_values(fields, "HttpRequestMethodConfig", diagnostics).unwrap_or_default();
            for method in &methods {
                if method.is_empty()
                    || !method
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_' || c == '-')
                {
                    diagnostics.error(
                        &loc,
                        format!("{path}.HttpRequestMethodConfig"),
                        format!("`{method}` is not a method; methods are upper-case letters, `-` and `_` (GET, POST)"),
                    );
                }
            }
            Condition::Method(methods)
        }
        "source-ip" => {
            let blocks = config_values(fields, "SourceIpConfig", diagnostics).unwrap_or_default();
            let mut cidrs = Vec::new();
            for block in &blocks {
                match cidr(block) {
                    Some(parsed) => cidrs.push(parsed),
                    None => diagnostics.error(
                        &loc,
                        format!("{path}.SourceIpConfig"),
                        format!("`{block}` is not a CIDR block (10.0.0.0/8, 2001:db8::/32)"),
                    ),
                }
            }
            Condition::SourceIp(cidrs)
        }
        "http-header" => {
            fields.mapping("HttpHeaderConfig", diagnostics, |config, diagnostics| {
                let name = config.required_string("HttpHeaderName", diagnostics);
                let values = config.strings("Values", diagnostics);
                config.not_served(&["RegexValues"], diagnostics);
                Some(Condition::Header {
                    name: name?,
                    values,
                })
            })?
        }
        "query-string" => {
            fields.mapping("QueryStringConfig", diagnostics, |config, diagnostics| {
                let values = config.mappings("Values", diagnostics, |pair, diagnostics| {
                    let key = pair.string("Key", diagnostics);
                    let value = pair.required_string("Value", diagnostics);
                    Some((key, value?))
                });
                Some(Condition::Query(values))
            })?
        }
        other => {
            diagnostics.error(
                &fields.loc_of("Field"),
                fields.field_path("Field"),
                format!("`{other}` is not a condition; allowed: host-header, path-pattern, http-header, query-string, http-request-method, source-ip"),
            );
            return None;
        }
    };
    Some(condition)
}

/// `10.0.0.0/8` as (address, prefix length).
fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, length) = text.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    let length: u8 = length.parse().ok()?;
    let most = if address.is_ipv4() { 32 } else { 128 };
    (length <= most).then_some((address, length))
}
