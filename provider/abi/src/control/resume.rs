//! What a copy of an instance restored from a snapshot gets before it serves: copies share
//! everything the snapshot holds, so each must be given what may not be shared (its own
//! control key, fresh randomness for its kernel) and what the snapshot has stale (the time,
//! its address on the host's bridge).

use std::net::Ipv4Addr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::key::Key;
use super::message::{hex, unhex};

/// Bytes of randomness the host hands a copy: as much as the kernel's input pool takes in
/// one reseed.
pub const ENTROPY_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The copy's own key: the reply to this request, and every request after it, are
    /// authenticated with it; the snapshot's key is refused from then on.
    pub key: Key,
    /// Credited to the guest kernel, which then reseeds its generator.
    pub entropy: Entropy,
    /// The host's clock, nanoseconds since the Unix epoch: the snapshot's clock stopped when
    /// it was saved.
    pub unix_ns: u64,
    /// The copy's own address on the host's bridge; `None` keeps the snapshot's (QEMU's user
    /// network, where every guest has the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<ResumeNetwork>,
}

impl Resume {
    /// What the request's MAC covers: every field, in a fixed order.
    pub(super) fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The interface's address, prefix, default gateway and hardware address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeNetwork {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Six bytes, as the host's anti-spoofing rules expect the copy's frames to carry.
    pub mac: [u8; 6],
}

/// Random bytes for the guest's kernel. `Debug` shows nothing of them.
#[derive(Clone, PartialEq, Eq)]
pub struct Entropy(pub [u8; ENTROPY_BYTES]);

impl Entropy {
    pub fn draw() -> Result<Entropy, getrandom::Error> {
        let mut bytes = [0u8; ENTROPY_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Entropy(bytes))
    }
}

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entropy(..)")
    }
}

impl Serialize for Entropy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for Entropy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entropy, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = unhex(&text).and_then(|b| <[u8; ENTROPY_BYTES]>::try_from(b).ok());
        bytes.map(Entropy).ok_or_else(|| serde::de::Error::custom("entropy must be 64 bytes in hex"))
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        let text = String::deserialize(deserializer)?;
        Key::from_hex(&text).ok_or_else(|| serde::de::Error::custom("a key must be 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Command, Request};

    fn resume() -> Resume {
        Resume {
            key: Key::generate().unwrap(),
            entropy: Entropy::draw().unwrap(),
            unix_ns: 1_764_000_000_000_000_000,
            network: Some(ResumeNetwork {
                ip: Ipv4Addr::new(10, 213, 0, 7),
                prefix: 24,
                gateway: Ipv4Addr::new(10, 213, 0, 1),
                mac: [0x52, 0x54, 0, 0xd5, 0, 7],
            }),
        }
    }

    #[test]
    fn resume_requests_round_trip_and_every_field_is_authenticated() {
        let snapshot_key = Key::generate().unwrap();
        let resume = resume();
        let request = Request::new(&snapshot_key, 9, Command::Resume(resume.clone()));
        let line = serde_json::to_string(&request).unwrap();
        assert!(line.contains(r#""op":"resume""#), "{line}");
        let back: Request = serde_json::from_str(&line).unwrap();
        assert!(back.verify(&snapshot_key) && back.command == Command::Resume(resume.clone()));
        let mut later = resume.clone();
        later.unix_ns += 1;
        let mut moved = resume.clone();
        moved.network.as_mut().unwrap().ip = Ipv4Addr::new(10, 213, 0, 8);
        let mut rekeyed = resume.clone();
        rekeyed.key = Key::generate().unwrap();
        for tampered in [later, moved, rekeyed, Resume { network: None, ..resume.clone() }] {
            let forged = Request { command: Command::Resume(tampered), ..request.clone() };
            assert!(!forged.verify(&snapshot_key));
        }
        let debug = format!("{request:?}");
        assert!(!debug.contains(&resume.key.to_hex()) && debug.contains("Entropy(..)"), "{debug}");
        let short = line.replace(&hex(&resume.entropy.0), "00");
        assert!(serde_json::from_str::<Request>(&short).is_err());
    }
}
