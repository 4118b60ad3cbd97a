//! Switchyard's Lua step `switchyard.sticky_application_cookie`, natively (the sidecar runs no
//! Lua): it confines the stateful session's cookie to the application's own session, as the
//! script translate/application_cookie.rs writes. Its listener config is an idle Lua filter; a
//! route's LuaPerRoute carries the script, from which the two cookie names are read (the
//! application's, `local APPLICATION = "…"`, and the proxy's, `local ISSUED = "…"`). A request
//! without the application's cookie loses the proxy's (so no endpoint is asked for); its
//! answer keeps a new proxy cookie only when it sets the application's. Runs before the
//! stateful session filter, so it sees the Set-Cookie that filter writes. Any other Lua is
//! refused. Must not: pick endpoints.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::filters::http::lua::v3::{
    lua_per_route::Override, Lua, LuaPerRoute,
};
use envoy_types::pb::google::protobuf::Any as ProtoAny;
use http::{header, HeaderMap, HeaderValue, Request, Response};

use super::super::http::Body;
use super::super::request_body::DownstreamBody;
use super::super::resources::{Fault, Problem};
use super::{
    read_config, Decoded, HttpFilter, LevelConfigs, Memo, Registration, RouteFilterConfig,
};

pub const NAME: &str = "switchyard.sticky_application_cookie";

pub const REGISTRATION: Registration = Registration {
    name: NAME,
    build,
    per_route,
    messages: &[
        (
            "envoy.extensions.filters.http.lua.v3.Lua",
            &["stat_prefix", "clear_route_cache"],
        ),
        (
            "envoy.extensions.filters.http.lua.v3.LuaPerRoute",
            &["source_code.inline_string"],
        ),
    ],
};

/// The line of the script that marks it as Switchyard's.
const MARK: &str = "local NAMESPACE = \"switchyard.application_cookie\"";

/// The two cookies of one route's step.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CookieNames {
    application: String,
    issued: String,
}

#[derive(Debug)]
struct ApplicationCookieStep;

fn build(config: &ProtoAny) -> Result<Arc<dyn HttpFilter>, Fault> {
    read_config::<Lua>(NAME, config, REGISTRATION.messages[0].1)?;
    Ok(Arc::new(ApplicationCookieStep))
}

fn per_route(config: &ProtoAny) -> Result<RouteFilterConfig, Fault> {
    let per_route: LuaPerRoute = read_config(NAME, config, REGISTRATION.messages[1].1)?;
    let script = match &per_route.r#override {
        Some(Override::SourceCode(source)) => match &source.specifier {
            Some(Specifier::InlineString(script)) => script.as_str(),
            _ => "",
        },
        _ => "",
    };
    let names = cookie_names(script).ok_or(Fault::at(
        "source_code.inline_string",
        Problem::ApplicationCookieScript,
    ))?;
    Ok(Arc::new(names))
}

/// The cookie names written into Switchyard's script; None for any other script.
fn cookie_names(script: &str) -> Option<CookieNames> {
    if !script.lines().any(|line| line.trim() == MARK) {
        return None;
    }
    let name = |variable: &str| {
        let prefix = format!("local {variable} = ");
        script
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
            .and_then(lua_string)
    };
    Some(CookieNames {
        application: name("APPLICATION")?,
        issued: name("ISSUED")?,
    })
}

/// A double-quoted Lua string literal's text (escapes `\"`, `\\` and `\ddd`, as Switchyard
/// writes them).
fn lua_string(literal: &str) -> Option<String> {
    let inner = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut bytes = Vec::with_capacity(inner.len());
    let mut rest = inner.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        let digits = rest
            .iter()
            .take(3)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            let code: u16 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
            bytes.push(u8::try_from(code).ok()?);
            rest = &rest[digits..];
        } else {
            let (&escaped, tail) = rest.split_first()?;
            bytes.push(escaped);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The name of one `name=value` cookie (of a Cookie or Set-Cookie header), trimmed; None
/// without `=` before any `;`.
fn name_of(pair: &str) -> Option<&str> {
    let (name, _) = pair.split_once('=')?;
    (!name.contains(';')).then(|| name.trim())
}

fn carries(cookie_header: &str, name: &str) -> bool {
    cookie_header
        .split(';')
        .any(|pair| name_of(pair) == Some(name))
}

/// A Cookie header's pairs without those called `name`, each trimmed, joined by `; `.
fn without(cookie_header: &str, name: &str) -> String {
    cookie_header
        .split(';')
        .filter(|pair| !pair.is_empty() && name_of(pair) != Some(name))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every value of `name`, as text (values that are not text are dropped, as Lua sees none).
fn values(headers: &HeaderMap, name: header::HeaderName) -> Vec<String> {
    headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

impl HttpFilter for ApplicationCookieStep {
    fn decode_headers(
        &self,
        request: &mut Request<DownstreamBody>,
        route: LevelConfigs<'_>,
    ) -> Decoded {
        let Some(names) = route.most_specific::<CookieNames>() else {
            return Decoded::Continue;
        };
        let cookies = values(request.headers(), header::COOKIE);
        if cookies.iter().any(|c| carries(c, &names.application)) {
            // The application's session: its answer is left as it is.
            return Decoded::Continue;
        }
        let headers = request.headers_mut();
        headers.remove(header::COOKIE);
        for cookie in &cookies {
            let rest = without(cookie, &names.issued);
            if let Ok(value) = HeaderValue::from_str(&rest) {
                if !rest.is_empty() {
                    headers.append(header::COOKIE, value);
                }
            }
        }
        Decoded::Remember(Box::new(names.clone()))
    }

    fn encode_headers(&self, response: &mut Response<Body>, memo: &Memo) {
        let Some(names) = memo.downcast_ref::<CookieNames>() else {
            return;
        };
        let set = values(response.headers(), header::SET_COOKIE);
        if set
            .iter()
            .any(|c| name_of(c) == Some(names.application.as_str()))
        {
            return;
        }
        let headers = response.headers_mut();
        headers.remove(header::SET_COOKIE);
        for cookie in set
            .iter()
            .filter(|c| name_of(c) != Some(names.issued.as_str()))
        {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_read_from_switchyards_script_only() {
        let script = "\nlocal APPLICATION = \"se\\\"ss\\195\\169\"\nlocal ISSUED = \"AWSALBAPP-0\"\nlocal NAMESPACE = \"switchyard.application_cookie\"\n";
        assert_eq!(
            cookie_names(script),
            Some(CookieNames {
                application: "se\"ssé".into(),
                issued: "AWSALBAPP-0".into()
            })
        );
        assert_eq!(cookie_names("function envoy_on_request(h) end"), None);
    }

    #[test]
    fn the_proxys_cookie_is_taken_out_of_a_cookie_header() {
        assert_eq!(without("a=1; AWSALBAPP-0=x;b=2", "AWSALBAPP-0"), "a=1; b=2");
        assert_eq!(without("AWSALBAPP-0=x", "AWSALBAPP-0"), "");
        assert!(carries("a=1; session=abc", "session"));
        assert!(!carries("a=1; sessions=abc", "session"));
        assert_eq!(name_of(" session = x; Path=/"), Some("session"));
    }
}
