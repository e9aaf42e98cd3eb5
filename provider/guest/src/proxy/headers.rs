//! The headers the application receives: the runtime is the edge, so what says who the
//! client is comes from the runtime alone.
//!
//! Every client-sent spelling of the runtime's own headers is removed. Names are compared
//! lower-cased with `_` read as `-`, because CGI, WSGI and PHP servers map `X_Sdsec_Principal`
//! and `X-Sdsec-Principal` to the same variable (`HTTP_X_SDSEC_PRINCIPAL`). Then the
//! runtime writes the client's true address, the authenticated principal and its roles.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::authn::Principal;

/// The authenticated principal's name; never taken from clients.
pub static PRINCIPAL_HEADER: HeaderName = HeaderName::from_static("x-sdsec-principal");
/// The principal's roles, sorted, comma-separated; never taken from clients.
pub static ROLES_HEADER: HeaderName = HeaderName::from_static("x-sdsec-roles");

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Headers about the client or the hop that only the edge may set; client-sent values of
/// these (in any spelling) are dropped, and the runtime writes its own where it has one.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-forwarded-server",
    "x-real-ip",
    "x-client-ip",
];

/// Method overrides: a framework that honours them would run a method the plan never saw
/// (`POST` with `X-HTTP-Method-Override: DELETE`), so they never reach the application.
const METHOD_OVERRIDES: &[&str] = &["x-http-method-override", "x-http-method", "x-method-override"];

/// Whether `name` reads as `word` to CGI-style servers: `_` as `-` (names are lower-case).
fn folded_eq(name: &[u8], word: &[u8]) -> bool {
    name.len() == word.len() && name.iter().zip(word).all(|(&n, &w)| n == w || (n == b'_' && w == b'-'))
}

/// Whether a client-sent header must not reach the application whatever the plan says.
fn reserved(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes();
    // Every reserved name starts with `x` or `f`: most headers are passed over on one byte.
    if !matches!(name.first(), Some(b'x' | b'f')) {
        return false;
    }
    const PREFIX: &[u8] = b"x-sdsec-";
    name.get(..PREFIX.len()).is_some_and(|head| folded_eq(head, PREFIX))
        || FORWARDING.iter().chain(METHOD_OVERRIDES).any(|w| folded_eq(name, w.as_bytes()))
}

/// Removes every header the runtime reserves, in every spelling.
pub fn strip_reserved(headers: &mut HeaderMap) {
    // Collected first (a header map cannot be changed while read); nearly always none.
    let names: Vec<HeaderName> = headers.keys().filter(|n| reserved(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// What the forwarding headers say of one client connection, written once per connection
/// (its address does not change) rather than once per request.
#[derive(Debug, Clone)]
pub struct ClientHeaders {
    /// The address, for `X-Forwarded-For` and `X-Real-IP`.
    ip: HeaderValue,
    /// `Forwarded: for=...;proto=http` (RFC 7239).
    forwarded: HeaderValue,
}

impl ClientHeaders {
    pub fn new(peer: SocketAddr) -> Self {
        let ip = plan::ingress::canonical_ip(peer.ip());
        let node = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            // RFC 7239: an IPv6 node is quoted and bracketed.
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
        };
        // Addresses and these fixed words are always valid header values.
        Self {
            ip: HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown")),
            forwarded: HeaderValue::from_str(&format!("for={node};proto=http"))
                .unwrap_or(HeaderValue::from_static("for=unknown;proto=http")),
        }
    }
}

/// Writes who the client is: its address in the forwarding headers, and, when it
/// authenticated, its principal and roles. Without `forward_credentials`, the credentials
/// the runtime checked are removed first.
pub fn identify(
    headers: &mut HeaderMap,
    client: &ClientHeaders,
    principal: Option<&Principal>,
    keep_credentials: bool,
) {
    strip_reserved(headers);
    if !keep_credentials {
        headers.remove(header::AUTHORIZATION);
    }
    // Room for what is added below at once, rather than the map growing twice on the way.
    headers.reserve(6);
    headers.insert(X_FORWARDED_FOR.clone(), client.ip.clone());
    headers.insert(X_REAL_IP.clone(), client.ip.clone());
    headers.insert(header::FORWARDED, client.forwarded.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(p) = principal {
        // Principal names were checked to be header values when the plan was loaded; role
        // names that are not are left out rather than sent mangled.
        if let Some(v) = &p.name_header {
            headers.insert(PRINCIPAL_HEADER.clone(), v.clone());
        }
        if let Some(v) = &p.roles_header {
            headers.insert(ROLES_HEADER.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                h.append(k, v);
            }
        }
        h
    }

    #[test]
    fn every_spelling_of_reserved_headers_is_removed() {
        let mut h = map(&[
            ("X_Sdsec_Principal", "admin"),
            ("x-sdsec-roles", "admin"),
            ("X-SDSEC-Anything", "1"),
            ("x_forwarded_for", "10.0.0.1"),
            ("X-Real-IP", "10.0.0.1"),
            ("Forwarded", "for=10.0.0.1"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("x_method_override", "DELETE"),
            ("X-Sdsec", "kept: not the prefix"),
            ("Accept", "*/*"),
        ]);
        strip_reserved(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-sdsec"]);
    }

    #[test]
    fn identity_comes_from_the_runtime() {
        let principal = Principal::new("ops".into(), ["reader".into(), "admin".into()].into());
        let mut h = map(&[("authorization", "Bearer secret"), ("x-forwarded-for", "1.2.3.4")]);
        identify(&mut h, &ClientHeaders::new("[::ffff:192.0.2.7]:5000".parse().unwrap()), Some(&principal), false);
        assert_eq!(h.get("authorization"), None);
        assert_eq!(h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(), ["192.0.2.7"]);
        assert_eq!(h.get("x-real-ip").unwrap(), "192.0.2.7");
        assert_eq!(h.get("forwarded").unwrap(), "for=192.0.2.7;proto=http");
        assert_eq!(h.get("x-sdsec-principal").unwrap(), "ops");
        assert_eq!(h.get("x-sdsec-roles").unwrap(), "admin,reader");

        let mut h = map(&[("authorization", "Bearer secret")]);
        identify(&mut h, &ClientHeaders::new("[2001:db8::1]:5000".parse().unwrap()), None, true);
        assert_eq!(h.get("authorization").unwrap(), "Bearer secret");
        assert_eq!(h.get("forwarded").unwrap(), "for=\"[2001:db8::1]\";proto=http");
        assert_eq!(h.get("x-sdsec-principal"), None);
    }
}
