//! Requests and replies, one JSON line each, and their MACs.
//!
//! A MAC covers a domain string, the direction and every field, each on its own line, so no
//! field can be moved into another and a reply cannot pass for a request.

use hmac::Mac;
use serde::{Deserialize, Serialize};

use super::key::{HmacSha256, Key};
use super::resume::Resume;

const DOMAIN: &[u8] = b"sdsec-control/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Which plan is enforced now.
    Status,
    /// Enforce this plan (canonical JSON of one node's enforcement plan) from now on.
    Reconfigure { plan: String },
    /// A copy restored from a snapshot takes its own key, randomness, time and address,
    /// then serves; accepted once, and only by an instance booted for a snapshot.
    Resume(Resume),
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Status => "status",
            Command::Reconfigure { .. } => "reconfigure",
            Command::Resume(_) => "resume",
        }
    }

    fn body(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Command::Status => "".into(),
            Command::Reconfigure { plan } => plan.into(),
            Command::Resume(resume) => resume.body().into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Greater than every sequence number the guest accepted before.
    pub seq: u64,
    #[serde(flatten)]
    pub command: Command,
    /// HMAC-SHA256, hex.
    pub mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub seq: u64,
    pub ok: bool,
    /// The digest of the plan enforced after the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub mac: String,
}

/// What the runtime tells the host unasked, one line authenticated like a reply. The host
/// waiting for a boot reads it; a client that connects later skips it
/// ([`super::exchange`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub notice: NoticeKind,
    /// The digest of the plan enforced.
    pub digest: String,
    pub mac: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The application answered through the runtime: the instance serves.
    Ready,
}

impl NoticeKind {
    fn name(self) -> &'static str {
        match self {
            NoticeKind::Ready => "ready",
        }
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

fn mac_over(key: &Key, direction: &str, fields: &[&str]) -> HmacSha256 {
    let mut mac = key.mac();
    mac.update(DOMAIN);
    mac.update(b"\n");
    mac.update(direction.as_bytes());
    for field in fields {
        // Lengths first: a field holding a newline cannot shift the ones after it.
        mac.update(format!("\n{}:", field.len()).as_bytes());
        mac.update(field.as_bytes());
    }
    mac
}

fn verify(mac: HmacSha256, given: &str) -> bool {
    // Constant time: `verify_slice` compares without an early exit.
    unhex(given).is_some_and(|bytes| mac.verify_slice(&bytes).is_ok())
}

impl Request {
    pub fn new(key: &Key, seq: u64, command: Command) -> Request {
        let mac = Self::mac(key, seq, &command);
        Request { seq, command, mac }
    }

    fn mac(key: &Key, seq: u64, command: &Command) -> String {
        hex(&mac_over(key, "request", &[&seq.to_string(), command.name(), &command.body()]).finalize().into_bytes())
    }

    /// True when `key` made this request.
    pub fn verify(&self, key: &Key) -> bool {
        let fields = [&self.seq.to_string(), self.command.name(), &self.command.body()];
        verify(mac_over(key, "request", &fields), &self.mac)
    }
}

impl Reply {
    pub fn new(key: &Key, seq: u64, result: Result<String, String>) -> Reply {
        let (ok, digest, error) = match result {
            Ok(digest) => (true, Some(digest), None),
            Err(error) => (false, None, Some(error)),
        };
        let mut reply = Reply { seq, ok, digest, error, mac: String::new() };
        reply.mac = hex(&reply.mac_state(key).finalize().into_bytes());
        reply
    }

    fn mac_state(&self, key: &Key) -> HmacSha256 {
        let ok = if self.ok { "ok" } else { "refused" };
        let fields =
            [&self.seq.to_string(), ok, self.digest.as_deref().unwrap_or(""), self.error.as_deref().unwrap_or("")];
        mac_over(key, "reply", &fields.map(|f| f as &str))
    }

    pub fn verify(&self, key: &Key) -> bool {
        verify(self.mac_state(key), &self.mac)
    }
}

impl Notice {
    pub fn new(key: &Key, notice: NoticeKind, digest: String) -> Notice {
        let mut made = Notice { notice, digest, mac: String::new() };
        made.mac = hex(&made.mac_state(key).finalize().into_bytes());
        made
    }

    fn mac_state(&self, key: &Key) -> HmacSha256 {
        mac_over(key, "notice", &[self.notice.name(), &self.digest])
    }

    pub fn verify(&self, key: &Key) -> bool {
        verify(self.mac_state(key), &self.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_verify_under_their_key_only() {
        let (key, other) = (Key::generate().unwrap(), Key::generate().unwrap());
        let request = Request::new(&key, 7, Command::Reconfigure { plan: "{}".into() });
        assert!(request.verify(&key));
        assert!(!request.verify(&other));
        let line = serde_json::to_string(&request).unwrap();
        assert!(line.contains(r#""op":"reconfigure""#), "{line}");
        let back: Request = serde_json::from_str(&line).unwrap();
        assert!(back.verify(&key));
        for tampered in [
            Request { seq: 8, ..request.clone() },
            Request { command: Command::Reconfigure { plan: "{ }".into() }, ..request.clone() },
            Request { command: Command::Status, ..request.clone() },
            Request { mac: "00".repeat(32), ..request.clone() },
            Request { mac: "not hex".into(), ..request.clone() },
        ] {
            assert!(!tampered.verify(&key), "{tampered:?}");
        }
    }

    #[test]
    fn replies_verify_and_cannot_pass_for_requests() {
        let key = Key::generate().unwrap();
        let reply = Reply::new(&key, 3, Ok("sha256:ab".into()));
        assert!(reply.verify(&key));
        assert!(!Reply { ok: false, ..reply.clone() }.verify(&key));
        assert!(!Reply { digest: Some("sha256:cd".into()), ..reply.clone() }.verify(&key));
        let refused = Reply::new(&key, 3, Err("no".into()));
        assert!(refused.verify(&key) && !refused.ok);
        let request = Request::new(&key, 3, Command::Status);
        assert_ne!(request.mac, Reply::new(&key, 3, Ok(String::new())).mac);
    }

    #[test]
    fn notices_verify_under_their_key_and_pass_for_nothing_else() {
        let (key, other) = (Key::generate().unwrap(), Key::generate().unwrap());
        let notice = Notice::new(&key, NoticeKind::Ready, "sha256:ab".into());
        assert!(notice.verify(&key) && !notice.verify(&other));
        assert!(!Notice { digest: "sha256:cd".into(), ..notice.clone() }.verify(&key));
        let line = serde_json::to_string(&notice).unwrap();
        assert!(line.contains(r#""notice":"ready""#), "{line}");
        assert!(serde_json::from_str::<Reply>(&line).is_err(), "a notice is no reply: {line}");
        let reply = serde_json::to_string(&Reply::new(&key, 1, Ok("sha256:ab".into()))).unwrap();
        assert!(serde_json::from_str::<Notice>(&reply).is_err(), "a reply is no notice: {reply}");
        assert_ne!(notice.mac, Reply::new(&key, 0, Ok("sha256:ab".into())).mac);
    }
}
