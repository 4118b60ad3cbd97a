//! Finds the fields a resource sets that the sidecar does not implement, so that it NACKs
//! them by name instead of ignoring them. Generic over messages: a converter lists what it
//! implements as dotted field paths, and every other field present in the encoded resource
//! is reported. The walk reads the protobuf encoding itself with a small table of field
//! numbers and names generated at build time (a full descriptor pool would cost the sidecar
//! 15 MB of memory).

/// One message of the table: its full name, and its fields as (number, name, the table
/// index of the field's message type, repeated).
pub struct MessageFields {
    pub name: &'static str,
    pub fields: &'static [(u32, &'static str, Option<usize>, bool)],
}

include!(concat!(env!("OUT_DIR"), "/field_table.rs"));

/// The first field present in `bytes` (an encoded `type_url`) outside `supported`, as a path
/// with list indices (`virtual_hosts[0].routes[2].route.cors`). A path listed in `supported`
/// allows the field and everything under it, unless a longer listed path names which of its
/// fields are allowed.
pub fn first_unsupported_in(type_url: &str, bytes: &[u8], supported: &[&str]) -> Option<String> {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let Some(message) = MESSAGES.iter().position(|m| m.name == name) else {
        return Some(format!("(no field table for {name})"));
    };
    match walk(bytes, message, "", "", supported) {
        Ok(found) => found,
        Err(()) => Some("(the encoding is malformed)".into()),
    }
}

/// Every field of message `name` (a full protobuf name) that `supported` leaves out, as the
/// shortest paths: a field not applied at all is listed, and nothing under it.
pub fn unsupported_fields(name: &str, supported: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(message) = MESSAGES.iter().position(|m| m.name == name) {
        frontier(message, "", supported, &mut found);
    }
    found
}

fn frontier(message: usize, plain: &str, supported: &[&str], found: &mut Vec<String>) {
    let mut fields: Vec<_> = MESSAGES[message].fields.to_vec();
    fields.sort_by_key(|field| field.1);
    for (_, name, sub, _) in fields {
        let path = join(plain, name);
        let deeper = supported.iter().any(|p| {
            p.len() > path.len() && p.starts_with(&path) && p.as_bytes()[path.len()] == b'.'
        });
        match sub {
            Some(sub) if deeper => frontier(sub, &path, supported, found),
            _ if deeper || supported.contains(&path.as_str()) => {}
            _ => found.push(path),
        }
    }
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, ()> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or(())?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(())
}

fn walk(
    bytes: &[u8],
    message: usize,
    shown: &str,
    plain: &str,
    supported: &[&str],
) -> Result<Option<String>, ()> {
    let fields = MESSAGES[message].fields;
    let mut seen: Vec<(u32, usize)> = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let (number, wire) = ((key >> 3) as u32, key & 7);
        let payload = match wire {
            0 => {
                varint(bytes, &mut at)?;
                None
            }
            1 => {
                at += 8;
                None
            }
            2 => {
                let length = varint(bytes, &mut at)? as usize;
                let start = at;
                at = at.checked_add(length).ok_or(())?;
                Some(bytes.get(start..at).ok_or(())?)
            }
            5 => {
                at += 4;
                None
            }
            _ => return Err(()),
        };
        if at > bytes.len() {
            return Err(());
        }
        let Some(&(_, name, sub, repeated)) = fields.iter().find(|f| f.0 == number) else {
            return Ok(Some(join(
                shown,
                &format!("#{number} (a field this API version does not have)"),
            )));
        };
        let occurrence = match seen.iter_mut().find(|(n, _)| *n == number) {
            Some((_, count)) => {
                *count += 1;
                *count - 1
            }
            None => {
                seen.push((number, 1));
                0
            }
        };
        let plain_path = join(plain, name);
        let mut shown_path = join(shown, name);
        if repeated {
            shown_path.push_str(&format!("[{occurrence}]"));
        }
        let deeper = supported.iter().any(|path| {
            path.len() > plain_path.len()
                && path.starts_with(&plain_path)
                && path.as_bytes()[plain_path.len()] == b'.'
        });
        if !deeper {
            if supported.contains(&plain_path.as_str()) {
                continue;
            }
            return Ok(Some(shown_path));
        }
        if let (Some(sub), Some(payload)) = (sub, payload) {
            if let Some(found) = walk(payload, sub, &shown_path, &plain_path, supported)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
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
