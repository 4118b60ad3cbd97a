//! The cookie of a cookie-based stateful session, as Envoy's
//! `envoy.http.stateful_session.cookie` writes and reads it: the endpoint's `address:port` in a
//! small protobuf message (field 1 the address, field 2 when it expires in seconds since the
//! Unix epoch, absent for a session cookie), base64-encoded, quoted, with the cookie's
//! Max-Age, Path and HttpOnly. A cookie whose value is no such message is read as the address
//! itself (Envoy's older form). Which requests a session covers follows the cookie's path, as
//! Envoy matches it. Pure but for reading the clock. Must not: pick endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use http::{header, HeaderMap, HeaderValue};
use prost::Message;

/// The message Envoy encodes in the cookie.
#[derive(Clone, PartialEq, Message)]
struct CookieValue {
    #[prost(string, tag = "1")]
    address: String,
    #[prost(int64, tag = "2")]
    expires: i64,
}

/// A session cookie's settings (`CookieBasedSessionState.cookie`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCookie {
    pub name: String,
    /// Whole seconds, as Envoy keeps it; zero: a cookie for the browser's session.
    pub ttl: Duration,
    pub path: String,
}

impl SessionCookie {
    /// Whether a request for `path_and_query` belongs to the session (Envoy's rule: no path or
    /// `/` covers everything; a path ending in `/` its prefix; another path itself and what
    /// follows it after `/`, `?` or `#`).
    pub fn covers(&self, path_and_query: &str) -> bool {
        let path = self.path.as_str();
        if path.is_empty() || path == "/" {
            return true;
        }
        let Some(rest) = path_and_query.strip_prefix(path) else {
            return false;
        };
        path.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#'])
    }

    /// The endpoint the request's cookie names, if it carries one that has not expired (the
    /// address as written: it may name no endpoint, or nothing parseable).
    pub fn address_in(&self, headers: &HeaderMap) -> Option<String> {
        let value = cookie_value(headers, &self.name)?;
        let decoded = base64_decode(value.as_bytes())?;
        let address = match CookieValue::decode(decoded.as_slice()) {
            Ok(cookie) => {
                if cookie.expires != 0 && clock_seconds() > cookie.expires {
                    return None;
                }
                cookie.address
            }
            Err(_) => String::from_utf8(decoded).ok()?,
        };
        Some(address).filter(|a| !a.is_empty())
    }

    /// The Set-Cookie naming `endpoint`, as Envoy writes it.
    pub fn set_cookie(&self, endpoint: SocketAddr) -> Option<HeaderValue> {
        let expires = if self.ttl.is_zero() {
            0
        } else {
            clock_seconds() + self.ttl.as_secs() as i64
        };
        let message = CookieValue {
            address: endpoint.to_string(),
            expires,
        };
        let value = base64_encode(&message.encode_to_vec());
        super::super::headers::set_cookie(&self.name, &value, &self.path, self.ttl)
    }
}

/// The value of the first cookie called `name` in the request's Cookie headers, without the
/// quotes around it (Envoy's `parseCookieValue`).
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim_start().split_once('=')?;
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (key == name).then(|| value.to_string())
        })
}

/// Seconds since the Unix epoch, as Envoy (1.40) counts a cookie's expiry.
fn clock_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |w, (i, b)| w | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(word >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padding optional; None for anything else (Envoy reads that as no cookie).
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = text
        .strip_suffix(b"==")
        .or(text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut word, mut bits) = (0u32, 0);
    for byte in text {
        let value = ALPHABET.iter().position(|a| a == byte)? as u32;
        word = word << 6 | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((word >> bits) as u8);
            word &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(path: &str, ttl: u64) -> SessionCookie {
        SessionCookie {
            name: "AWSALB".into(),
            ttl: Duration::from_secs(ttl),
            path: path.into(),
        }
    }

    #[test]
    fn base64_round_trips_every_length() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let encoded = base64_encode(text.as_bytes());
            assert_eq!(base64_decode(encoded.as_bytes()).unwrap(), text.as_bytes());
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode(b"not base64!"), None);
    }

    #[test]
    fn the_issued_cookie_names_the_endpoint_and_lasts_its_ttl() {
        let session = cookie("/", 120);
        let endpoint: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let set = session.set_cookie(endpoint).unwrap();
        let text = set.to_str().unwrap();
        assert!(
            text.starts_with("AWSALB=\"") && text.ends_with("\"; Max-Age=120; Path=/; HttpOnly"),
            "{text}"
        );
        let value = text.split('"').nth(1).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("other=1; AWSALB={value}").parse().unwrap(),
        );
        assert_eq!(
            session.address_in(&headers).as_deref(),
            Some("127.0.0.1:8080")
        );
    }

    #[test]
    fn an_expired_cookie_names_no_one_and_an_old_style_one_its_text() {
        let session = cookie("/", 0);
        let expired = CookieValue {
            address: "127.0.0.1:1".into(),
            expires: 1,
        };
        let mut headers = HeaderMap::new();
        let value = base64_encode(&expired.encode_to_vec());
        headers.insert(header::COOKIE, format!("AWSALB={value}").parse().unwrap());
        assert_eq!(session.address_in(&headers), None);
        let old = base64_encode(b"[::1]:80");
        headers.insert(header::COOKIE, format!("AWSALB=\"{old}\"").parse().unwrap());
        assert_eq!(session.address_in(&headers).as_deref(), Some("[::1]:80"));
    }

    #[test]
    fn a_session_covers_the_paths_under_its_cookie_path() {
        assert!(cookie("", 0).covers("/anything"));
        assert!(cookie("/", 0).covers("/anything"));
        assert!(cookie("/app/", 0).covers("/app/x"));
        assert!(!cookie("/app/", 0).covers("/app"));
        assert!(cookie("/app", 0).covers("/app"));
        assert!(cookie("/app", 0).covers("/app?x=1"));
        assert!(cookie("/app", 0).covers("/app/x"));
        assert!(!cookie("/app", 0).covers("/application"));
    }
}
