//! An Application Load Balancer's `LoadBalancerAttributes` and a listener's
//! `ListenerAttributes` as AWS defines them: every key with the values it takes and what
//! Switchyard does with it. Keys with a meaning for Envoy become typed settings (idle timeout,
//! client keep-alive, invalid header fields, X-Forwarded-For processing and client port, the
//! Host header, the TLS version and cipher headers and their names); the other keys are
//! checked and then noted as without effect, with the reason; unknown keys, repeated keys and
//! keys of Network Load Balancers are errors naming the attribute
//! (`Resources.Lb.Properties.LoadBalancerAttributes[idle_timeout.timeout_seconds]`).
//! Pure. Must not: know the model or xDS.

use std::collections::BTreeMap;

use crate::model::diagnostics::suggest;
use crate::model::Diagnostics;

use super::attributes::{record_once, Attribute};
use super::balancer_attribute_keys::{Effect, Key, Values, LISTENER_KEYS, LOAD_BALANCER_KEYS};

/// `routing.http.xff_header_processing.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XffMode {
    /// The client's address is appended.
    #[default]
    Append,
    /// The header goes on as the client sent it.
    Preserve,
    /// The header is removed.
    Remove,
}

/// The load balancer attributes Switchyard honours, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancerAttributes {
    pub idle_timeout_seconds: u32,
    pub client_keep_alive_seconds: u32,
    pub drop_invalid_header_fields: bool,
    pub xff_mode: XffMode,
    pub xff_client_port: bool,
    pub preserve_host_header: bool,
    /// HTTPS listeners tell targets the TLS version and cipher suite.
    pub tls_headers: bool,
}

impl Default for LoadBalancerAttributes {
    fn default() -> Self {
        LoadBalancerAttributes {
            idle_timeout_seconds: 60,
            client_keep_alive_seconds: 3600,
            drop_invalid_header_fields: false,
            xff_mode: XffMode::Append,
            xff_client_port: false,
            preserve_host_header: false,
            tls_headers: false,
        }
    }
}

/// The listener attributes Switchyard honours: the names of the TLS headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerAttributes {
    pub tls_version_header: String,
    pub tls_cipher_suite_header: String,
}

impl Default for ListenerAttributes {
    fn default() -> Self {
        ListenerAttributes {
            tls_version_header: "x-amzn-tls-version".to_string(),
            tls_cipher_suite_header: "x-amzn-tls-cipher-suite".to_string(),
        }
    }
}

/// Reads the `LoadBalancerAttributes` written at `path`.
pub fn read_load_balancer(
    attributes: &[Attribute],
    path: &str,
    diagnostics: &mut Diagnostics,
) -> LoadBalancerAttributes {
    let table = Table {
        keys: LOAD_BALANCER_KEYS,
        what: "load balancer attribute",
        path,
    };
    let valid = table.read(attributes, diagnostics);
    let flag = |name: &str, default: bool| valid.get(name).map_or(default, |v| v == "true");
    let number = |name: &str, default: u32| {
        valid
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let defaults = LoadBalancerAttributes::default();
    LoadBalancerAttributes {
        idle_timeout_seconds: number(
            "idle_timeout.timeout_seconds",
            defaults.idle_timeout_seconds,
        ),
        client_keep_alive_seconds: number(
            "client_keep_alive.seconds",
            defaults.client_keep_alive_seconds,
        ),
        drop_invalid_header_fields: flag("routing.http.drop_invalid_header_fields.enabled", false),
        xff_mode: match valid
            .get("routing.http.xff_header_processing.mode")
            .map(String::as_str)
        {
            Some("preserve") => XffMode::Preserve,
            Some("remove") => XffMode::Remove,
            _ => XffMode::Append,
        },
        xff_client_port: flag("routing.http.xff_client_port.enabled", false),
        preserve_host_header: flag("routing.http.preserve_host_header.enabled", false),
        tls_headers: flag(
            "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
            false,
        ),
    }
}

/// Reads the `ListenerAttributes` written at `path`.
pub fn read_listener(
    attributes: &[Attribute],
    path: &str,
    diagnostics: &mut Diagnostics,
) -> ListenerAttributes {
    let table = Table {
        keys: LISTENER_KEYS,
        what: "listener attribute",
        path,
    };
    let valid = table.read(attributes, diagnostics);
    let defaults = ListenerAttributes::default();
    let name = |key: &str, default: String| {
        valid
            .get(key)
            .map_or(default, |value| value.to_ascii_lowercase())
    };
    ListenerAttributes {
        tls_version_header: name(
            "routing.http.request.x_amzn_tls_version.header_name",
            defaults.tls_version_header,
        ),
        tls_cipher_suite_header: name(
            "routing.http.request.x_amzn_tls_cipher_suite.header_name",
            defaults.tls_cipher_suite_header,
        ),
    }
}

/// One resource's attribute list being read against its table of keys.
struct Table<'t> {
    keys: &'static [Key],
    /// "load balancer attribute", for messages.
    what: &'t str,
    /// The property's path (`Resources.Lb.Properties.LoadBalancerAttributes`).
    path: &'t str,
}

impl Table<'_> {
    /// The valid values of honoured keys, by key; everything else is reported.
    fn read(
        &self,
        attributes: &[Attribute],
        diagnostics: &mut Diagnostics,
    ) -> BTreeMap<String, String> {
        let mut seen: BTreeMap<&str, &Attribute> = BTreeMap::new();
        let mut valid = BTreeMap::new();
        for attribute in attributes {
            let path = format!("{}[{}]", self.path, attribute.key);
            let Some(key) = self.keys.iter().find(|k| k.name == attribute.key) else {
                diagnostics.error(&attribute.loc, path, self.unknown(&attribute.key));
                continue;
            };
            if !record_once(&mut seen, key.name, attribute, &path, diagnostics) {
                continue;
            }
            let value = attribute.value.trim();
            if let Effect::Refused(why) = key.effect {
                let message = format!(
                    "`{}` is not an Application Load Balancer {}: {why}",
                    key.name, self.what
                );
                diagnostics.error(&attribute.loc, path, message);
                continue;
            }
            if let Err(allowed) = check(key.values, value) {
                let message = format!("`{value}` is not allowed; {} is {allowed}", key.name);
                diagnostics.error(&attribute.loc, path, message);
                continue;
            }
            match key.effect {
                Effect::Inert(why) => diagnostics.note(
                    &attribute.loc,
                    path,
                    format!("{} has no effect in Switchyard: {why}", key.name),
                ),
                _ => {
                    valid.insert(key.name.to_string(), value.to_string());
                }
            }
        }
        valid
    }

    fn unknown(&self, written: &str) -> String {
        let names: Vec<&str> = self.keys.iter().map(|k| k.name).collect();
        let hint = match suggest(written, &names) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("the {}s are {}", self.what, names.join(", ")),
        };
        format!("`{written}` is not a {}; {hint}", self.what)
    }
}

/// Whether `value` is one of `values`; otherwise what is allowed.
fn check(values: Values, value: &str) -> Result<(), String> {
    let fine = match values {
        Values::Boolean => matches!(value, "true" | "false"),
        Values::Integer(min, max) => value.parse::<u64>().is_ok_and(|n| (min..=max).contains(&n)),
        Values::OneOf(choices) => choices.contains(&value),
        Values::HeaderName => {
            !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        }
        Values::Text => true,
    };
    if fine {
        return Ok(());
    }
    Err(match values {
        Values::Boolean => "true or false".to_string(),
        Values::Integer(min, max) => format!("an integer from {min} to {max}"),
        Values::OneOf([only]) => format!("{only} (the only value)"),
        Values::OneOf(choices) => format!("one of {}", choices.join(", ")),
        Values::HeaderName => "a header name (letters, digits and hyphens)".to_string(),
        Values::Text => unreachable!("any text is allowed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Loc;

    const BASE: &str = "Resources.Lb.Properties.LoadBalancerAttributes";

    fn attributes(pairs: &[(&str, &str)]) -> Vec<Attribute> {
        pairs
            .iter()
            .enumerate()
            .map(|(index, (key, value))| Attribute {
                key: key.to_string(),
                value: value.to_string(),
                loc: Loc::new("alb.yaml", 10 + index),
            })
            .collect()
    }

    fn lines(diagnostics: &Diagnostics) -> Vec<String> {
        diagnostics
            .items
            .iter()
            .chain(&diagnostics.notes)
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_are_the_albs() {
        let mut diagnostics = Diagnostics::default();
        let read = read_load_balancer(&[], BASE, &mut diagnostics);
        assert_eq!(read, LoadBalancerAttributes::default());
        assert_eq!(
            (read.idle_timeout_seconds, read.client_keep_alive_seconds),
            (60, 3600)
        );
        assert_eq!(read.xff_mode, XffMode::Append);
        assert!(diagnostics.is_empty());
    }

    #[test]
    fn honoured_keys_become_settings() {
        let mut diagnostics = Diagnostics::default();
        let read = read_load_balancer(
            &attributes(&[
                ("idle_timeout.timeout_seconds", "5"),
                ("client_keep_alive.seconds", "120"),
                ("routing.http.drop_invalid_header_fields.enabled", "true"),
                ("routing.http.xff_header_processing.mode", "remove"),
                ("routing.http.xff_client_port.enabled", "true"),
                ("routing.http.preserve_host_header.enabled", "true"),
                (
                    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
                    "true",
                ),
            ]),
            BASE,
            &mut diagnostics,
        );
        assert!(diagnostics.is_empty(), "{:?}", lines(&diagnostics));
        assert_eq!(
            read,
            LoadBalancerAttributes {
                idle_timeout_seconds: 5,
                client_keep_alive_seconds: 120,
                drop_invalid_header_fields: true,
                xff_mode: XffMode::Remove,
                xff_client_port: true,
                preserve_host_header: true,
                tls_headers: true,
            }
        );
        let mut diagnostics = Diagnostics::default();
        let listener = read_listener(
            &attributes(&[(
                "routing.http.request.x_amzn_tls_version.header_name",
                "X-Tls",
            )]),
            "Resources.Http.Properties.ListenerAttributes",
            &mut diagnostics,
        );
        assert_eq!(listener.tls_version_header, "x-tls");
        assert_eq!(listener.tls_cipher_suite_header, "x-amzn-tls-cipher-suite");
    }

    #[test]
    fn wrong_values_unknown_and_foreign_keys_are_errors_and_the_rest_notes() {
        let mut diagnostics = Diagnostics::default();
        let read = read_load_balancer(
            &attributes(&[
                ("idle_timeout.timeout_seconds", "4001"),
                ("idle_timeout.timeout_second", "5"),
                ("routing.http.xff_header_processing.mode", "drop"),
                ("deletion_protection.enabled", "true"),
                ("deletion_protection.enabled", "false"),
                ("load_balancing.cross_zone.enabled", "false"),
                ("dns_record.client_routing_policy", "any_availability_zone"),
                ("access_logs.s3.bucket", "logs"),
            ]),
            BASE,
            &mut diagnostics,
        );
        assert_eq!(
            read.idle_timeout_seconds, 60,
            "a wrong value keeps the default"
        );
        assert_eq!(
            lines(&diagnostics),
            [
                "error: alb.yaml:10: Resources.Lb.Properties.LoadBalancerAttributes[idle_timeout.timeout_seconds]: `4001` is not allowed; idle_timeout.timeout_seconds is an integer from 1 to 4000",
                "error: alb.yaml:11: Resources.Lb.Properties.LoadBalancerAttributes[idle_timeout.timeout_second]: `idle_timeout.timeout_second` is not a load balancer attribute; did you mean `idle_timeout.timeout_seconds`?",
                "error: alb.yaml:12: Resources.Lb.Properties.LoadBalancerAttributes[routing.http.xff_header_processing.mode]: `drop` is not allowed; routing.http.xff_header_processing.mode is one of append, preserve, remove",
                "error: alb.yaml:14: Resources.Lb.Properties.LoadBalancerAttributes[deletion_protection.enabled]: the attribute is set twice (first at alb.yaml:13); AWS takes each key once",
                "error: alb.yaml:15: Resources.Lb.Properties.LoadBalancerAttributes[load_balancing.cross_zone.enabled]: `false` is not allowed; load_balancing.cross_zone.enabled is true (the only value)",
                "error: alb.yaml:16: Resources.Lb.Properties.LoadBalancerAttributes[dns_record.client_routing_policy]: `dns_record.client_routing_policy` is not an Application Load Balancer load balancer attribute: it belongs to Network Load Balancers",
                "note: alb.yaml:13: Resources.Lb.Properties.LoadBalancerAttributes[deletion_protection.enabled]: deletion_protection.enabled has no effect in Switchyard: it guards the AWS resource; nothing is deleted here",
                "note: alb.yaml:17: Resources.Lb.Properties.LoadBalancerAttributes[access_logs.s3.bucket]: access_logs.s3.bucket has no effect in Switchyard: logs delivered to S3 are AWS's; a self-hosted proxy writes none",
            ]
        );
    }
}
