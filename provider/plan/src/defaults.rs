//! What a plan holds when no policy says otherwise. The compiler fills them in; the runtime
//! falls back on the same values where a plan leaves a setting out (JWT without settings).

use crate::AuditEvent;

pub const DEFAULT_REALM: &str = "sdsec";
pub const DEFAULT_ROLES_CLAIM: &str = "roles";
pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 16 * 1024;
pub const DEFAULT_HEADER_TIMEOUT_SECONDS: u64 = 10;
pub const HEALTH_PATH: &str = "/.sdsec/health";
pub const DEFAULT_AUDIT_EVENTS: &[AuditEvent] =
    &[AuditEvent::AuthnFailure, AuditEvent::AuthzDeny, AuditEvent::FirewallDrop];
