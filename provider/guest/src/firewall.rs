//! The connection level: ingress rules and connection caps, judged once per connection
//! as it is accepted, before a byte is read. The rule evaluation is the plan crate's
//! ([`plan::ingress`]), shared with the host, which asks it whether its readiness probe is
//! admitted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use plan::ingress::{allows as ingress_allows, canonical_ip};

/// Why a connection was closed at accept; the `firewall_drop` reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapExceeded {
    #[error("as many client connections as allowed are open")]
    Global,
    #[error("as many client connections from this source as allowed are open")]
    PerSource,
}

impl CapExceeded {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Global => "connection_limit",
            Self::PerSource => "source_connection_limit",
        }
    }
}

/// Sources are counted by address; IPv6 clients by their /64, which one host usually holds
/// whole (the rate limits count them the same way).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[derive(Debug, Default)]
struct Open {
    total: u64,
    by_source: HashMap<IpAddr, u64>,
}

/// The client connections open now, in all and per source.
#[derive(Debug, Default, Clone)]
pub struct Connections {
    open: Arc<Mutex<Open>>,
}

fn lock(m: &Mutex<Open>) -> MutexGuard<'_, Open> {
    // Nothing panics while the lock is held; a poisoned lock still holds valid counts.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connections {
    /// Counts a new connection from `source` if both caps leave room; the slot is given back
    /// when the returned guard is dropped (the connection's task ends).
    pub fn admit(&self, source: IpAddr, max: u64, max_per_source: u64) -> Result<Slot, CapExceeded> {
        let key = source_key(source);
        let mut open = lock(&self.open);
        if open.total >= max {
            return Err(CapExceeded::Global);
        }
        let from_source = open.by_source.get(&key).copied().unwrap_or(0);
        if from_source >= max_per_source {
            return Err(CapExceeded::PerSource);
        }
        open.total += 1;
        open.by_source.insert(key, from_source + 1);
        Ok(Slot { open: Arc::clone(&self.open), key })
    }

    /// Connections open now.
    pub fn total(&self) -> u64 {
        lock(&self.open).total
    }
}

/// One admitted connection's place in the count.
#[derive(Debug)]
pub struct Slot {
    open: Arc<Mutex<Open>>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_source.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_source.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_slots_come_back() {
        let c = Connections::default();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let first = c.admit(a, 3, 2);
        let second = c.admit(a, 3, 2);
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(c.admit(a, 3, 2).err(), Some(CapExceeded::PerSource));
        let third = c.admit(b, 3, 2);
        assert!(third.is_ok());
        assert_eq!(c.admit(b, 3, 2).err(), Some(CapExceeded::Global));
        drop(first);
        assert!(c.admit(a, 3, 2).is_ok(), "a closed connection gives its slot back");
        assert_eq!(c.total(), 3 - 1);
        let v6a: IpAddr = "2001:db8::1".parse().unwrap_or(a);
        let v6b: IpAddr = "2001:db8::2".parse().unwrap_or(b);
        let c = Connections::default();
        let _one = c.admit(v6a, 10, 1);
        assert_eq!(c.admit(v6b, 10, 1).err(), Some(CapExceeded::PerSource), "one /64 is one source");
    }
}
