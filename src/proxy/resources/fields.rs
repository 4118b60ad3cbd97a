//! Finds the fields a resource sets that the sidecar does not implement, so that it NACKs
//! them by name instead of ignoring them. Generic over messages: a converter lists what it
//! implements as dotted field paths, and every other set field is reported.

use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use crate::xds::reflect;

/// The first field `message` sets outside `supported`, as a path with list indices
/// (`virtual_hosts[0].routes[2].route.cors`). A path listed in `supported` allows the field
/// and everything under it, unless a longer listed path names which of its fields are allowed.
pub fn first_unsupported(message: &DynamicMessage, supported: &[&str]) -> Option<String> {
    walk(message, "", "", supported)
}

/// As [`first_unsupported`] for an encoded message of `type_url`.
pub fn first_unsupported_in(type_url: &str, bytes: &[u8], supported: &[&str]) -> Option<String> {
    match reflect::decode(type_url, bytes) {
        Ok(message) => first_unsupported(&message, supported),
        Err(error) => Some(format!("(cannot decode: {error})")),
    }
}

fn walk(message: &DynamicMessage, shown: &str, plain: &str, supported: &[&str]) -> Option<String> {
    for (field, value) in message.fields() {
        let join = |base: &str| {
            if base.is_empty() {
                field.name().to_string()
            } else {
                format!("{base}.{}", field.name())
            }
        };
        let (shown, plain) = (join(shown), join(plain));
        let deeper = supported.iter().any(|path| {
            path.len() > plain.len()
                && path.starts_with(&plain)
                && path.as_bytes()[plain.len()] == b'.'
        });
        if !deeper {
            if supported.contains(&plain.as_str()) {
                continue;
            }
            return Some(shown);
        }
        let found = match value {
            Value::Message(inner) => walk(inner, &shown, &plain, supported),
            Value::List(items) => items
                .iter()
                .enumerate()
                .find_map(|(index, item)| match item {
                    Value::Message(inner) => {
                        walk(inner, &format!("{shown}[{index}]"), &plain, supported)
                    }
                    _ => None,
                }),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The message's full name, for error texts.
pub fn message_name(message: &DynamicMessage) -> String {
    message.descriptor().full_name().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::route::v3::{
        route::Action, route_match::PathSpecifier, CorsPolicy, Route, RouteAction,
        RouteConfiguration, RouteMatch, VirtualHost,
    };
    use prost::{Message, Name};

    #[test]
    fn the_first_field_outside_the_list_is_named_with_its_indices() {
        let route = |cors: Option<CorsPolicy>| Route {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            action: Some(Action::Route(RouteAction {
                #[allow(deprecated)]
                cors,
                ..Default::default()
            })),
            ..Default::default()
        };
        let config = RouteConfiguration {
            name: "r".into(),
            virtual_hosts: vec![VirtualHost {
                name: "v".into(),
                domains: vec!["*".into()],
                routes: vec![route(None), route(Some(CorsPolicy::default()))],
                ..Default::default()
            }],
            ..Default::default()
        };
        let supported = [
            "name",
            "virtual_hosts.name",
            "virtual_hosts.domains",
            "virtual_hosts.routes.match",
            "virtual_hosts.routes.route.cluster",
        ];
        let bytes = config.encode_to_vec();
        assert_eq!(
            first_unsupported_in(&RouteConfiguration::type_url(), &bytes, &supported).as_deref(),
            Some("virtual_hosts[0].routes[1].route.cors")
        );
        let with_cors: Vec<&str> = supported
            .iter()
            .copied()
            .chain(["virtual_hosts.routes.route.cors"])
            .collect();
        assert_eq!(
            first_unsupported_in(&RouteConfiguration::type_url(), &bytes, &with_cors),
            None
        );
    }
}
