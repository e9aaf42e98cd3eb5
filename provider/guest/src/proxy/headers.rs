//! The headers the application receives: the runtime is the edge, so what says who the
//! client is comes from the runtime alone.
//!
//! Every client-sent spelling of the runtime's own headers is removed. Names are compared
//! lower-cased with `_` read as `-`, because CGI, WSGI and PHP servers map `X_Sdsec_Principal`
//! and `X-Sdsec-Principal` to the same variable (`HTTP_X_SDSEC_PRINCIPAL`). Then the
//! runtime writes the client's true address, the authenticated principal and its roles.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderName, HeaderValue};

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

/// Who the client is, as the application is told: the client's own headers pass except
/// every spelling of a reserved one (and, without `forward_credentials`, the credentials
/// the runtime checked), and the runtime's are written after them. Applied as the request
/// head is written, rather than by editing its header map: no header is removed, inserted
/// or rehashed on the way.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    client: &'a ClientHeaders,
    principal: Option<&'a Principal>,
    keep_credentials: bool,
}

static HTTP: HeaderValue = HeaderValue::from_static("http");
static FORWARDED: HeaderName = header::FORWARDED;

impl<'a> Identity<'a> {
    pub fn new(client: &'a ClientHeaders, principal: Option<&'a Principal>, keep_credentials: bool) -> Self {
        Self { client, principal, keep_credentials }
    }

    /// Whether a client-sent header reaches the application.
    pub fn passes(&self, name: &HeaderName) -> bool {
        !reserved(name) && (self.keep_credentials || name != header::AUTHORIZATION)
    }

    /// The headers the runtime writes: the client's address, and, when it authenticated,
    /// its principal and roles.
    pub fn written(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        let client = self.client;
        // Principal names were checked to be header values when the plan was loaded; role
        // names that are not are left out rather than sent mangled.
        let principal = self.principal.into_iter().flat_map(|p| {
            let name = p.name_header.as_ref().map(|v| (&PRINCIPAL_HEADER, v));
            let roles = p.roles_header.as_ref().map(|v| (&ROLES_HEADER, v));
            name.into_iter().chain(roles)
        });
        [
            (&X_FORWARDED_FOR, &client.ip),
            (&X_REAL_IP, &client.ip),
            (&FORWARDED, &client.forwarded),
            (&X_FORWARDED_PROTO, &HTTP),
        ]
        .into_iter()
        .chain(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                h.append(k, v);
            }
        }
        h
    }

    /// The headers the application receives for client headers `h`.
    fn forwarded(h: &HeaderMap, identity: Identity<'_>) -> HeaderMap {
        let mut out = HeaderMap::new();
        for (k, v) in h.iter().filter(|(k, _)| identity.passes(k)) {
            out.append(k.clone(), v.clone());
        }
        for (k, v) in identity.written() {
            out.append(k.clone(), v.clone());
        }
        out
    }

    #[test]
    fn every_spelling_of_reserved_headers_is_removed() {
        let h = map(&[
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
        let client = ClientHeaders::new("192.0.2.7:5000".parse().unwrap());
        let h = forwarded(&h, Identity::new(&client, None, true));
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-real-ip", "x-sdsec"]);
        assert_eq!(h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(), ["192.0.2.7"]);
    }

    #[test]
    fn identity_comes_from_the_runtime() {
        let principal = Principal::new("ops".into(), ["reader".into(), "admin".into()].into());
        let h = map(&[("authorization", "Bearer secret"), ("x-forwarded-for", "1.2.3.4")]);
        let client = ClientHeaders::new("[::ffff:192.0.2.7]:5000".parse().unwrap());
        let h = forwarded(&h, Identity::new(&client, Some(&principal), false));
        assert_eq!(h.get("authorization"), None);
        assert_eq!(h.get_all("x-forwarded-for").iter().collect::<Vec<_>>(), ["192.0.2.7"]);
        assert_eq!(h.get("x-real-ip").unwrap(), "192.0.2.7");
        assert_eq!(h.get("forwarded").unwrap(), "for=192.0.2.7;proto=http");
        assert_eq!(h.get("x-sdsec-principal").unwrap(), "ops");
        assert_eq!(h.get("x-sdsec-roles").unwrap(), "admin,reader");

        let h = map(&[("authorization", "Bearer secret")]);
        let client = ClientHeaders::new("[2001:db8::1]:5000".parse().unwrap());
        let h = forwarded(&h, Identity::new(&client, None, true));
        assert_eq!(h.get("authorization").unwrap(), "Bearer secret");
        assert_eq!(h.get("forwarded").unwrap(), "for=\"[2001:db8::1]\";proto=http");
        assert_eq!(h.get("x-sdsec-principal"), None);
    }
}
