//! Stickiness that follows the application's own session cookie, for Envoy: the
//! stateful-session filter keeps issuing and honouring its cookie naming the endpoint, and a
//! small Lua step in front of it confines that cookie to the application's session. On a
//! request without the application's cookie the proxy's cookie is taken out (so it holds no
//! one, and the application never sees it mangled); on a response, the proxy's new cookie is
//! kept only when the response sets the application's cookie or the request carried it.
//! Envoy has no other way to make a response header depend on another, hence Lua. Pure:
//! builds the filter and per-route configs. Must not: apply to proxyless gRPC clients (they
//! have no Lua; they keep the plain stateful session).

use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::envoy::extensions::filters::http::lua::v3::{
    lua_per_route::Override, Lua, LuaPerRoute,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue};

use crate::model::{Service, StickyCookie};

use super::to_any;

/// The Lua filter's name in the connection manager (and in routes' per-filter configs).
pub const APPLICATION_COOKIE_FILTER: &str = "switchyard.sticky_application_cookie";

/// The application's cookie name and the proxy's, when `service` keeps sessions in the
/// application's cookie.
pub fn application_session(service: &Service) -> Option<(&str, &str)> {
    let StickyCookie {
        cookie,
        application_cookie,
    } = service.sticky_cookie.as_ref()?;
    Some((application_cookie.as_deref()?, cookie.name.as_str()))
}

/// The connection manager's Lua filter, idle until a route to such a service gives it its
/// script; it must come before the stateful-session filter (it edits the Cookie header that
/// filter reads, and sees the Set-Cookie that filter writes).
pub fn application_cookie_filter() -> HttpFilter {
    let lua = Lua {
        stat_prefix: "sticky_application_cookie".to_string(),
        // Editing cookies does not change the route.
        clear_route_cache: Some(BoolValue { value: false }),
        ..Default::default()
    };
    HttpFilter {
        name: APPLICATION_COOKIE_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(to_any(&lua))),
        ..Default::default()
    }
}

/// The per-route config that confines cookie `issued` to sessions of cookie `application`.
pub fn application_cookie_for_route(application: &str, issued: &str) -> Any {
    to_any(&LuaPerRoute {
        r#override: Some(Override::SourceCode(DataSource {
            specifier: Some(data_source::Specifier::InlineString(script(
                application,
                issued,
            ))),
            ..Default::default()
        })),
        ..Default::default()
    })
}

/// The script, with the two cookie names written in as Lua strings.
fn script(application: &str, issued: &str) -> String {
    SCRIPT
        .replace("@APPLICATION@", &lua_string(application))
        .replace("@ISSUED@", &lua_string(issued))
}

/// `text` as a double-quoted Lua string literal.
fn lua_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => {
                let mut bytes = [0u8; 4];
                for byte in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!("\\{byte:03}"));
                }
            }
        }
    }
    out.push('"');
    out
}

const SCRIPT: &str = r#"
local APPLICATION = @APPLICATION@
local ISSUED = @ISSUED@
local NAMESPACE = "switchyard.application_cookie"

-- The name of one `name=value` cookie (of a Cookie or Set-Cookie header).
local function name_of(pair)
  return string.match(pair, "^%s*([^=;]-)%s*=")
end

local function values(headers, name)
  local found = {}
  for index = 0, headers:getNumValues(name) - 1 do
    found[#found + 1] = headers:getAtIndex(name, index)
  end
  return found
end

local function carries(cookie_header, name)
  for pair in string.gmatch(cookie_header, "[^;]+") do
    if name_of(pair) == name then return true end
  end
  return false
end

local function without(cookie_header, name)
  local kept = {}
  for pair in string.gmatch(cookie_header, "[^;]+") do
    if name_of(pair) ~= name then kept[#kept + 1] = string.match(pair, "^%s*(.-)%s*$") end
  end
  return table.concat(kept, "; ")
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local cookies = values(headers, "cookie")
  for _, value in ipairs(cookies) do
    if carries(value, APPLICATION) then
      handle:streamInfo():dynamicMetadata():set(NAMESPACE, "carried", true)
      return
    end
  end
  headers:remove("cookie")
  for _, value in ipairs(cookies) do
    local rest = without(value, ISSUED)
    if rest ~= "" then headers:add("cookie", rest) end
  end
end

function envoy_on_response(handle)
  if handle:streamInfo():dynamicMetadata():get(NAMESPACE) ~= nil then return end
  local headers = handle:headers()
  local set = values(headers, "set-cookie")
  for _, value in ipairs(set) do
    if name_of(value) == APPLICATION then return end
  end
  headers:remove("set-cookie")
  for _, value in ipairs(set) do
    if name_of(value) ~= ISSUED then headers:add("set-cookie", value) end
  end
end
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_written_in_as_lua_strings() {
        assert_eq!(lua_string("session"), "\"session\"");
        assert_eq!(lua_string("a\"b\\c\né"), "\"a\\\"b\\\\c\\010\\195\\169\"");
        let text = script("session", "AWSALBAPP-0");
        assert!(text.contains("local APPLICATION = \"session\""), "{text}");
        assert!(text.contains("local ISSUED = \"AWSALBAPP-0\""), "{text}");
        assert!(!text.contains('@'), "every placeholder is filled: {text}");
    }
}
