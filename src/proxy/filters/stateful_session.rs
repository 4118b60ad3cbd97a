//! `envoy.filters.http.stateful_session` with cookie-based session state, as Envoy runs it for
//! what Switchyard writes (AWS lb_cookie and app_cookie stickiness, cookie sessions of
//! proxyless services): the listener's filter has no session of its own; a route's config
//! (else its virtual host's) brings the cookie. A request the session covers (the cookie's
//! path) and whose cookie names an endpoint asks the router for it (proxy/override_host.rs):
//! the balancer honours it when the endpoint is healthy in the cluster, and otherwise picks
//! (or, strict, answers 503). When the endpoint that answered is not the one the cookie named,
//! the answer sets the cookie anew (proxy/filters/session_cookie.rs writes it as Envoy does).
//! Header-based session state and cookie attributes are refused by field or type.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::http::stateful_session::v3::{
    stateful_session_per_route::Override, StatefulSession, StatefulSessionPerRoute,
};
use envoy_types::pb::envoy::extensions::http::stateful_session::cookie::v3::CookieBasedSessionState;
use envoy_types::pb::google::protobuf::Any as ProtoAny;
use std::net::SocketAddr;

use http::{header, HeaderMap, HeaderValue, Request, Response};
use prost::Name;

use super::super::http::Body;
use super::super::override_host::{OverrideHost, UpstreamHost};
use super::super::request_body::DownstreamBody;
use super::super::resources::{decode_checked, duration, Fault, Problem};
use super::session_cookie::SessionCookie;
use super::{
    read_config, Decoded, HttpFilter, LevelConfigs, Memo, Registration, RouteFilterConfig,
};

pub const NAME: &str = "envoy.filters.http.stateful_session";

pub const REGISTRATION: Registration = Registration {
    name: NAME,
    build,
    per_route,
    messages: &[
        (
            "envoy.extensions.filters.http.stateful_session.v3.StatefulSession",
            SESSION_FIELDS,
        ),
        (
            "envoy.extensions.filters.http.stateful_session.v3.StatefulSessionPerRoute",
            PER_ROUTE_FIELDS,
        ),
        (
            "envoy.extensions.http.stateful_session.cookie.v3.CookieBasedSessionState",
            COOKIE_FIELDS,
        ),
    ],
};

const SESSION_FIELDS: &[&str] = &["session_state.name", "session_state.typed_config", "strict"];

const PER_ROUTE_FIELDS: &[&str] = &[
    "disabled",
    "stateful_session.session_state.name",
    "stateful_session.session_state.typed_config",
    "stateful_session.strict",
];

const COOKIE_FIELDS: &[&str] = &["cookie.name", "cookie.ttl", "cookie.path"];

/// What the filter does for a request: keep a session in `cookie`, or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Session {
    Off,
    Cookie { cookie: SessionCookie, strict: bool },
}

#[derive(Debug)]
struct StatefulSessionFilter {
    listener: Session,
}

/// What the filter remembers of a request: its session, and the endpoint its cookie named.
struct Remembered {
    cookie: SessionCookie,
    named: Option<String>,
}

fn build(config: &ProtoAny) -> Result<Arc<dyn HttpFilter>, Fault> {
    let session: StatefulSession = read_config(NAME, config, SESSION_FIELDS)?;
    Ok(Arc::new(StatefulSessionFilter {
        listener: session_of(&session)?,
    }))
}

fn per_route(config: &ProtoAny) -> Result<RouteFilterConfig, Fault> {
    let per_route: StatefulSessionPerRoute = read_config(NAME, config, PER_ROUTE_FIELDS)?;
    let session = match &per_route.r#override {
        // `disabled` is true when set (Envoy's validation): the route keeps no session.
        None | Some(Override::Disabled(_)) => Session::Off,
        Some(Override::StatefulSession(session)) => {
            session_of(session).map_err(|f| f.under("stateful_session"))?
        }
    };
    Ok(Arc::new(session))
}

/// The session a StatefulSession config keeps: none without a session state.
fn session_of(session: &StatefulSession) -> Result<Session, Fault> {
    let Some(state) = &session.session_state else {
        return Ok(Session::Off);
    };
    let Some(config) = &state.typed_config else {
        return Err(Fault::at(
            "session_state",
            Problem::Missing {
                what: "a typed_config",
            },
        ));
    };
    if config.type_url != CookieBasedSessionState::type_url() {
        return Err(Fault::at(
            "session_state.typed_config",
            Problem::FilterConfigType {
                filter: NAME,
                type_url: config.type_url.clone(),
                expected: CookieBasedSessionState::type_url(),
            },
        ));
    }
    let at = "session_state.typed_config (CookieBasedSessionState)";
    let state: CookieBasedSessionState =
        decode_checked(&config.value, COOKIE_FIELDS).map_err(|f| f.inside(at))?;
    let cookie = state.cookie.unwrap_or_default();
    if cookie.name.is_empty() {
        return Err(Fault::at(
            format!("{at}: cookie.name"),
            Problem::Missing {
                what: "a cookie name",
            },
        ));
    }
    Ok(Session::Cookie {
        cookie: SessionCookie {
            name: cookie.name,
            // Envoy keeps whole seconds.
            ttl: Duration::from_secs(cookie.ttl.as_ref().map_or(0, |t| duration(t).as_secs())),
            path: cookie.path,
        },
        strict: session.strict,
    })
}

impl Session {
    /// What a request for `path_and_query` with `headers` asks the router for, and what the
    /// filter keeps for its answer; None when the session does not cover it.
    fn open(
        &self,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Option<(OverrideHost, Remembered)> {
        let Session::Cookie { cookie, strict } = self else {
            return None;
        };
        if !cookie.covers(path_and_query) {
            return None;
        }
        let named = cookie.address_in(headers);
        let wanted = OverrideHost {
            address: named.as_deref().and_then(|a| a.parse().ok()),
            strict: *strict && named.is_some(),
        };
        let remembered = Remembered {
            cookie: cookie.clone(),
            named,
        };
        Some((wanted, remembered))
    }
}

impl Remembered {
    /// The Set-Cookie for an answer `served` gave: none when the cookie named it already.
    fn set_cookie(&self, served: SocketAddr) -> Option<HeaderValue> {
        if self.named.as_deref() == Some(served.to_string().as_str()) {
            return None;
        }
        self.cookie.set_cookie(served)
    }
}

impl HttpFilter for StatefulSessionFilter {
    fn decode_headers(
        &self,
        request: &mut Request<DownstreamBody>,
        route: LevelConfigs<'_>,
    ) -> Decoded {
        let session = route.most_specific::<Session>().unwrap_or(&self.listener);
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let Some((wanted, remembered)) = session.open(path, request.headers()) else {
            return Decoded::Continue;
        };
        request.extensions_mut().insert(wanted);
        Decoded::Remember(Box::new(remembered))
    }

    fn encode_headers(&self, response: &mut Response<Body>, memo: &Memo) {
        let Some(remembered) = memo.downcast_ref::<Remembered>() else {
            return;
        };
        let Some(UpstreamHost(served)) = response.extensions().get::<UpstreamHost>().copied()
        else {
            return;
        };
        if let Some(value) = remembered.set_cookie(served) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::affinity::stateful_session_for_route;
    use envoy_types::pb::envoy::r#type::http::v3::Cookie;
    use envoy_types::pb::google::protobuf::Duration as ProtoDuration;

    /// The session of a route as Switchyard writes it (wrapped in an optional FilterConfig).
    fn route_session(path: &str, ttl: i64) -> Session {
        let cookie = Cookie {
            name: "AWSALB".into(),
            ttl: Some(ProtoDuration {
                seconds: ttl,
                nanos: 0,
            }),
            path: path.into(),
            ..Default::default()
        };
        let map = std::collections::HashMap::from([(
            NAME.to_string(),
            stateful_session_for_route(cookie),
        )]);
        let configs = super::super::read_route_configs(&map).unwrap();
        let config = configs.get(NAME).expect("read for the filter");
        config.downcast_ref::<Session>().unwrap().clone()
    }

    fn cookie_headers(value: &HeaderValue) -> HeaderMap {
        let pair = value
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        HeaderMap::from_iter([(header::COOKIE, pair.parse().unwrap())])
    }

    #[test]
    fn a_cookie_asks_for_its_endpoint_and_is_written_again_only_for_another() {
        let session = route_session("/", 120);
        let (wanted, first) = session.open("/x", &HeaderMap::new()).unwrap();
        assert_eq!(
            wanted,
            OverrideHost {
                address: None,
                strict: false
            }
        );
        let one: SocketAddr = "127.0.0.1:8001".parse().unwrap();
        let issued = first
            .set_cookie(one)
            .expect("a new session gets its cookie");
        let (wanted, held) = session.open("/y", &cookie_headers(&issued)).unwrap();
        assert_eq!(wanted.address, Some(one));
        assert_eq!(held.set_cookie(one), None, "the endpoint it named answered");
        let two: SocketAddr = "[::1]:8002".parse().unwrap();
        let moved = held.set_cookie(two).expect("another endpoint answered");
        let (wanted, _) = session.open("/", &cookie_headers(&moved)).unwrap();
        assert_eq!(wanted.address, Some(two));
    }

    #[test]
    fn a_session_is_kept_only_on_its_cookie_path_and_strictly_only_when_asked() {
        let session = route_session("/api", 0);
        assert!(session.open("/other", &HeaderMap::new()).is_none());
        assert!(session.open("/api/items", &HeaderMap::new()).is_some());
        assert!(Session::Off.open("/api", &HeaderMap::new()).is_none());
        let strict = match route_session("/", 0) {
            Session::Cookie { cookie, .. } => Session::Cookie {
                cookie,
                strict: true,
            },
            Session::Off => unreachable!(),
        };
        let (wanted, remembered) = strict.open("/", &HeaderMap::new()).unwrap();
        assert!(!wanted.strict, "nothing asked for, nothing to insist on");
        let issued = remembered
            .set_cookie("127.0.0.1:1".parse().unwrap())
            .unwrap();
        assert!(!issued.to_str().unwrap().contains("Max-Age"), "{issued:?}");
        let (wanted, _) = strict.open("/", &cookie_headers(&issued)).unwrap();
        assert!(wanted.strict);
    }
}
