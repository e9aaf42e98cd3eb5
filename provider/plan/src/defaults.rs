//! What a plan holds when no policy says otherwise. The compiler fills them in; the runtime
//! falls back on the same values where a plan leaves a setting out (JWT without settings).

use crate::AuditEvent;

pub const DEFAULT_REALM: &str = "sdsec";
pub const DEFAULT_ROLES_CLAIM: &str = "roles";
pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 16 * 1024;
pub const DEFAULT_HEADER_TIMEOUT_SECONDS: u64 = 10;
/// The whole request body must have arrived this long after its head.
pub const DEFAULT_BODY_TIMEOUT_SECONDS: u64 = 30;
/// A kept-alive connection with no request under way is closed after this long.
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 30;
/// Client connections open at once; more are closed as they are accepted.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 512;
/// Client connections open at once from one source address (an IPv6 /64).
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: u64 = 64;
/// Connections to the application open at once (requests in flight to it).
pub const DEFAULT_MAX_UPSTREAM_CONNECTIONS: u64 = 64;
/// How long a request waits for a connection to the application before it gets 503.
pub const DEFAULT_UPSTREAM_WAIT_SECONDS: u64 = 5;
/// How long the application has to begin its answer, beyond the request body's own time;
/// past it the client gets 504 (a reverse proxy's usual read timeout).
pub const DEFAULT_ANSWER_TIMEOUT_SECONDS: u64 = 60;
pub const HEALTH_PATH: &str = "/.sdsec/health";
pub const DEFAULT_AUDIT_EVENTS: &[AuditEvent] =
    &[AuditEvent::AuthnFailure, AuditEvent::AuthzDeny, AuditEvent::FirewallDrop];
