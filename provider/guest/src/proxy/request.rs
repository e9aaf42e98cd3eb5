//! One request's way through the plan: framing, target, health, quarantine, HTTP firewall,
//! rate limit, authentication, authorization, then the application. The first refusal ends it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use abi::event::Access;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Scheme, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use plan::{AuditEvent, Effect};

use super::Shared;
use super::body::{BodyFault, FaultCell, LimitedBody, UpstreamBody};
use super::forward;
use super::headers::{ClientHeaders, Identity};
use crate::audit::now_rfc3339;
use crate::authn::Principal;
use crate::config::Runtime;
use crate::path::{NormalPath, normalise};
use crate::scan::{self, SharedScanner};

pub type ResponseBody = Either<UpstreamBody, Full<Bytes>>;

/// Named once: a name given as text is parsed again on every lookup.
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// What the audit lines of one request say.
struct Judge<'a> {
    shared: &'a Shared,
    runtime: &'a Runtime,
    peer: SocketAddr,
    method: &'a str,
    path: Option<&'a str>,
    principal: Option<Arc<Principal>>,
}

impl Judge<'_> {
    fn audit(&self, kind: AuditEvent, status: StatusCode, reason: Option<&str>) {
        // Checked first: most requests record nothing, and a timestamp costs.
        if !self.runtime.plan.audit.events.contains(&kind) {
            return;
        }
        self.shared.audit.record(&self.runtime.plan.audit.events, kind, self.access(status, reason));
    }

    /// What an event says of this request.
    fn access<'s>(&'s self, status: StatusCode, reason: Option<&'s str>) -> Access<'s> {
        Access {
            ts: now_rfc3339(),
            src: self.peer,
            method: Some(self.method.into()),
            path: self.path.map(Into::into),
            principal: self.principal.as_ref().map(|p| p.name.as_str().into()),
            status: Some(status.as_u16()),
            reason: reason.map(Into::into),
        }
    }

    /// Records that the application could not be reached or gave no answer.
    fn upstream_error(&self, status: StatusCode, reason: &str) {
        self.shared.audit.emit(&abi::event::Event::UpstreamError(self.access(status, Some(reason))));
    }

    /// Answers locally with `status`, recording the refusal and the request.
    fn refuse(&self, status: StatusCode, kind: AuditEvent, reason: &str) -> Response<ResponseBody> {
        if kind != AuditEvent::Request {
            self.audit(kind, status, Some(reason));
        }
        self.audit(AuditEvent::Request, status, Some(reason));
        local(status)
    }
}

fn local(status: StatusCode) -> Response<ResponseBody> {
    let text = format!("{}\n", status.canonical_reason().unwrap_or("refused"));
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(text))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Ends the connection after this answer: what follows on it cannot be trusted to be framed
/// the way we would read it, or there is an unread body in the way.
fn close(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

struct Target {
    path: NormalPath,
    query: Option<String>,
}

/// The request target in normalised form, or why it is refused.
fn target<B>(req: &Request<B>) -> Result<Target, &'static str> {
    let uri = req.uri();
    if req.method() == Method::CONNECT {
        return Err("connect_refused");
    }
    if let Some(authority) = uri.authority() {
        // Absolute form is only for us: plain http, naming the host the Host header names.
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        if uri.scheme() != Some(&Scheme::HTTP) || !host.is_some_and(|h| h.eq_ignore_ascii_case(authority.as_str())) {
            return Err("absolute_form_not_for_us");
        }
    }
    let path = normalise(uri.path()).map_err(|e| e.reason())?;
    Ok(Target { path, query: uri.query().map(str::to_owned) })
}

/// Refuses what would make the request mean something else to the application than to the
/// rules: a protocol upgrade (`h2c`, WebSocket: the runtime only judges HTTP/1.1 requests),
/// and a method with lower-case letters (`delete` is not `DELETE` to the rules, but is to
/// some servers).
fn plain_http1<B>(req: &Request<B>) -> Result<(), &'static str> {
    if req.headers().contains_key(header::UPGRADE) || req.headers().contains_key(&HTTP2_SETTINGS) {
        return Err("upgrade_refused");
    }
    if req.method().as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("method_not_upper_case");
    }
    Ok(())
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    // The scanner has already refused lists, repeats and malformed lengths.
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

fn retry_after(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

/// What stays the same for every request on one client connection.
#[derive(Debug)]
pub struct Client {
    pub peer: SocketAddr,
    pub scanner: SharedScanner,
    pub headers: ClientHeaders,
}

pub async fn handle(shared: &Shared, req: Request<Incoming>, client: &Client) -> Response<ResponseBody> {
    let runtime = shared.runtime.load_full();
    let method = req.method().clone();
    let peer = client.peer;
    let mut judge = Judge { shared, runtime: &runtime, peer, method: method.as_str(), path: None, principal: None };
    let drop = AuditEvent::FirewallDrop;

    if let Err(why) = scan::lock(&client.scanner).next_verdict() {
        return close(judge.refuse(StatusCode::BAD_REQUEST, drop, why.reason()));
    }
    if let Err(reason) = plain_http1(&req) {
        return close(judge.refuse(StatusCode::BAD_REQUEST, drop, reason));
    }
    let target = match target(&req) {
        Ok(t) => t,
        Err(reason) => return close(judge.refuse(StatusCode::BAD_REQUEST, drop, reason)),
    };
    judge.path = Some(&target.path.matching);
    let http = &runtime.plan.firewall.http;

    // The readiness probe: answered here, whatever else the plan says, and never forwarded.
    if target.path.matching == http.health_path {
        if method != Method::GET {
            let mut response = judge.refuse(StatusCode::METHOD_NOT_ALLOWED, drop, "method_not_allowed");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        let mut response = local(StatusCode::OK);
        *response.body_mut() = Either::Right(Full::new(Bytes::from_static(b"ok\n")));
        return response;
    }
    if runtime.plan.quarantine {
        return judge.refuse(StatusCode::SERVICE_UNAVAILABLE, drop, "quarantine");
    }
    if let Some(allowed) = &http.allowed_methods
        && !allowed.iter().any(|m| m.as_str() == method.as_str())
    {
        let mut response = judge.refuse(StatusCode::METHOD_NOT_ALLOWED, drop, "method_not_allowed");
        if let Some(allow) = &runtime.allow {
            response.headers_mut().insert(header::ALLOW, allow.clone());
        }
        return response;
    }
    if http.deny_paths.iter().any(|g| crate::authz::glob_matches(g, Effect::Deny, &target.path.matching)) {
        return judge.refuse(StatusCode::FORBIDDEN, drop, "denied_path");
    }
    if content_length(&req).is_some_and(|n| n > http.max_body_bytes) {
        return close(judge.refuse(StatusCode::PAYLOAD_TOO_LARGE, drop, "body_too_large"));
    }
    // One clock reading for the limits of this request.
    let now = Instant::now();
    // Before authentication: a flood of guessed passwords must not buy argon2 time.
    if let Err(wait) = runtime.limiter.admit(peer.ip(), now) {
        let mut response = judge.refuse(StatusCode::TOO_MANY_REQUESTS, drop, "rate_limited");
        response.headers_mut().insert(header::RETRY_AFTER, retry_after(wait));
        return response;
    }
    if let Some(authenticator) = &runtime.authenticator {
        // A source that keeps failing is refused before its next guess costs a hash.
        if let Err(wait) = runtime.failures.check(peer.ip(), now) {
            let mut response =
                judge.refuse(StatusCode::TOO_MANY_REQUESTS, AuditEvent::AuthnFailure, "too_many_failures");
            response.headers_mut().insert(header::RETRY_AFTER, retry_after(wait));
            return response;
        }
        match authenticator.authenticate(req.headers()).await {
            Ok(principal) => judge.principal = Some(principal),
            Err(e) => {
                // No credentials at all is how a client asks for the challenge: not a guess.
                if e != crate::authn::AuthnError::Missing {
                    runtime.failures.fail(peer.ip(), Instant::now());
                }
                let mut response = judge.refuse(StatusCode::UNAUTHORIZED, AuditEvent::AuthnFailure, e.reason());
                response.headers_mut().insert(header::WWW_AUTHENTICATE, authenticator.challenge(e));
                return response;
            }
        }
    }
    let roles = judge.principal.as_ref().map(|p| &p.roles);
    if let Err(policy) =
        crate::authz::authorize(&runtime.plan.authorization, roles, method.as_str(), &target.path.matching)
    {
        return judge.refuse(StatusCode::FORBIDDEN, AuditEvent::AuthzDeny, &format!("denied_by:{policy}"));
    }
    proxy(&judge, req, &target, &client.headers).await
}

async fn proxy(
    judge: &Judge<'_>,
    req: Request<Incoming>,
    target: &Target,
    client: &ClientHeaders,
) -> Response<ResponseBody> {
    let (mut parts, body) = req.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers);
    // hyper has answered any `Expect: 100-continue` already, when the body was first read.
    parts.headers.remove(header::EXPECT);
    // Credentials the runtime checked stay with it unless the policy asks otherwise; with
    // no authentication in the plan the application may do its own, and gets them.
    let keep_credentials = judge.runtime.plan.authentication.as_ref().is_none_or(|a| a.forward_credentials);
    let identity = Identity::new(client, judge.principal.as_deref(), keep_credentials);
    // The application gets the path the rules were matched against, not the raw one, in
    // origin form (what is sent on its connection). Most targets are that already: they are
    // kept as they are, not written and parsed again.
    let origin = parts.uri.scheme().is_none() && parts.uri.authority().is_none();
    if !(origin && parts.uri.path() == target.path.forward && parts.uri.query() == target.query.as_deref()) {
        let path_and_query = match &target.query {
            Some(q) => format!("{}?{q}", target.path.forward),
            None => target.path.forward.clone(),
        };
        let Ok(uri) = Uri::try_from(path_and_query) else {
            return close(judge.refuse(StatusCode::BAD_REQUEST, AuditEvent::FirewallDrop, "unforwardable_target"));
        };
        parts.uri = uri;
    }
    parts.version = Version::HTTP_11;
    let fault = FaultCell::default();
    let (runtime, limit) = (judge.runtime, judge.runtime.plan.firewall.http.max_body_bytes);
    let request = Request::from_parts(parts, LimitedBody::new(body, limit, runtime.body_timeout, fault.clone()));
    match judge.shared.client.request(request, identity, runtime.upstream_wait, runtime.answer_timeout).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            forward::strip_hop_by_hop(&mut parts.headers);
            judge.audit(AuditEvent::Request, parts.status, None);
            Response::from_parts(parts, Either::Left(body))
        }
        Err(_) if fault.get() == Some(BodyFault::TooLarge) => {
            close(judge.refuse(StatusCode::PAYLOAD_TOO_LARGE, AuditEvent::FirewallDrop, "body_too_large"))
        }
        Err(_) if fault.get() == Some(BodyFault::TimedOut) => {
            close(judge.refuse(StatusCode::REQUEST_TIMEOUT, AuditEvent::FirewallDrop, "body_timeout"))
        }
        Err(e) if e.is_client_side() => {
            close(judge.refuse(StatusCode::BAD_REQUEST, AuditEvent::FirewallDrop, "body_incomplete"))
        }
        Err(e) => {
            // Written whatever the plan's audit events: an application that cannot answer is
            // what an operator must see first (a server its hardening breaks, for one).
            let status = e.status();
            judge.upstream_error(status, e.reason());
            judge.refuse(status, AuditEvent::Request, e.reason())
        }
    }
}
