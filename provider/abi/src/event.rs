//! The runtime's events: one JSON object per line, named by its `event` field. The runtime
//! writes them with [`Event::to_line`] to the virtio-serial port named [`AUDIT_PORT_NAME`],
//! which only it can open; the host keeps what arrives there as the instance's audit log and
//! reads it with [`Event::parse`]. The serial console carries the kernel's messages and the
//! application's output, which the application controls: the host takes no event from it
//! once the audit channel has opened ([`Event::AuditOpen`]), and before that only the
//! failure of a boot step that ran before the application existed.
//!
//! Events hold no credentials: a request's path is written without its query (tokens
//! travel there), its principal is a name from the plan, and a refused control request is
//! described by a reason, never by its content.

use std::borrow::Cow;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The virtio-serial port the runtime writes its events to, as the guest finds it in
/// `/sys/class/virtio-ports/*/name`.
pub const AUDIT_PORT_NAME: &str = "sdsec.audit";

/// One event line. Field order is the order written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The first line on the audit channel, written as soon as init has opened it; from
    /// here on every event of this boot is on the channel.
    AuditOpen {
        /// The runtime's version.
        runtime: Cow<'a, str>,
    },
    /// The runtime listens and the application is up: the host may probe the health path.
    Ready {
        node: Cow<'a, str>,
        listen: String,
        /// The application's path; init mode only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<String>,
    },
    /// A boot step failed; init powers the VM off next.
    InitError {
        step: Cow<'a, str>,
        error: String,
    },
    /// A boot step went wrong without stopping the boot.
    InitWarning {
        step: Cow<'a, str>,
        error: String,
    },
    /// The application ended; init powers the VM off next.
    AppExit {
        status: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    Shutdown {
        reason: ShutdownReason,
    },
    /// A plan sent over the control channel is enforced from now on.
    Reconfigured {
        digest: Cow<'a, str>,
    },
    /// This instance is a copy restored from a snapshot, and took its own control key,
    /// randomness, clock and address from the host; a `ready` follows.
    Resumed {
        ts: String,
    },
    /// A control request was answered with a refusal; the running plan stays.
    ControlRefused {
        reason: Refusal,
        seq: u64,
    },
    /// Under `strict`, the application tried to execute a program after it had started; the
    /// call failed with EPERM.
    ExecRefused {
        ts: String,
        pid: i32,
        /// The program it named, when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// This many events did not fit the runtime's queue and were not written.
    AuditOverflow {
        ts: String,
        dropped: u64,
    },
    AuthnFailure(Access<'a>),
    AuthzDeny(Access<'a>),
    FirewallDrop(Access<'a>),
    Request(Access<'a>),
    /// An admitted request could not be passed to the application or got no answer from it;
    /// `reason` says how (written whatever the plan's audit events, like the runtime's own).
    UpstreamError(Access<'a>),
}

/// Why the runtime stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownReason {
    /// SIGTERM or SIGINT (the host's graceful stop, Ctrl-Alt-Del).
    Signal,
}

/// Why a control request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Not a control request.
    Malformed,
    /// Not authenticated by the instance's key.
    BadMac,
    /// A sequence number used before.
    Replayed,
    /// A plan that does not load, is another node's, or needs a new image.
    RejectedPlan,
    /// A resume sent to an instance that is not a copy of a snapshot waiting for one, or
    /// that it could not apply.
    RejectedResume,
}

/// The kinds of per-request events: the four a plan can ask for, and upstream errors,
/// always written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    AuthnFailure,
    AuthzDeny,
    FirewallDrop,
    Request,
    UpstreamError,
}

/// What a per-request event says. Fields the runtime does not know yet are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access<'a> {
    /// RFC 3339 UTC with milliseconds.
    pub ts: String,
    pub src: SocketAddr,
    pub method: Option<Cow<'a, str>>,
    /// Normalised, without the query.
    pub path: Option<Cow<'a, str>>,
    /// The principal's name from the plan.
    pub principal: Option<Cow<'a, str>>,
    pub status: Option<u16>,
    pub reason: Option<Cow<'a, str>>,
}

impl<'a> Event<'a> {
    /// The per-request event of `kind`.
    pub fn access(kind: AccessKind, access: Access<'a>) -> Event<'a> {
        match kind {
            AccessKind::AuthnFailure => Event::AuthnFailure(access),
            AccessKind::AuthzDeny => Event::AuthzDeny(access),
            AccessKind::FirewallDrop => Event::FirewallDrop(access),
            AccessKind::Request => Event::Request(access),
            AccessKind::UpstreamError => Event::UpstreamError(access),
        }
    }

    /// The line as written to the console, without the newline.
    pub fn to_line(&self) -> String {
        // Every field is a string, a number, a known name or null: this cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The first event on a console line, if it holds one. The serial line is shared (the
    /// kernel's printk does not wait for a line to end, the application may leave a partial
    /// line before the runtime writes), so what precedes or follows the object is skipped.
    pub fn parse(line: &str) -> Option<Event<'static>> {
        line.match_indices('{').find_map(|(start, _)| {
            serde_json::Deserializer::from_str(&line[start..]).into_iter::<Event<'static>>().next()?.ok()
        })
    }

    /// Every event of a console log, in order.
    pub fn scan(log: &str) -> impl Iterator<Item = Event<'static>> + '_ {
        log.lines().filter_map(Event::parse)
    }
}

#[cfg(test)]
mod tests;
