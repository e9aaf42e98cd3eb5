//! Token-bucket rate limits, per source address and/or global.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use plan::{RateLimitPlan, RateScope};

/// At most this many sources are tracked. Past it, idle sources are forgotten; if every
/// tracked source is still busy, new sources are refused rather than let through unlimited.
const MAX_SOURCES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Rate {
    per_second: f64,
    burst: f64,
}

impl Rate {
    fn of(plan: &RateLimitPlan) -> Self {
        // A plan's numbers are at least 1; clamp anyway so a bad plan cannot divide by zero.
        Self { per_second: plan.requests_per_second.max(1) as f64, burst: plan.burst.max(1) as f64 }
    }

    fn refill(self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.last = now;
    }

    /// Takes one token, or says how long until one is there.
    fn take(self, bucket: &mut Bucket, now: Instant) -> Result<(), Duration> {
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
        }
    }

    fn full(self, now: Instant) -> Bucket {
        Bucket { tokens: self.burst, last: now }
    }
}

use crate::firewall::source_key;

#[derive(Debug, Default)]
pub struct RateLimiter {
    global: Option<(Rate, Mutex<Bucket>)>,
    per_source: Option<(Rate, Mutex<HashMap<IpAddr, Bucket>>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held; a poisoned lock still holds valid buckets.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RateLimiter {
    pub fn new(plans: &[RateLimitPlan]) -> Self {
        let now = Instant::now();
        let mut limiter = Self::default();
        for plan in plans {
            let rate = Rate::of(plan);
            match plan.per {
                RateScope::Global => limiter.global = Some((rate, Mutex::new(rate.full(now)))),
                RateScope::Source => limiter.per_source = Some((rate, Mutex::new(HashMap::new()))),
            }
        }
        limiter
    }

    /// Admits one request from `source`, or says when to retry. Every limit must admit it.
    pub fn admit(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        if let Some((rate, buckets)) = &self.per_source {
            let mut buckets = lock(buckets);
            let key = source_key(source);
            if !buckets.contains_key(&key) && buckets.len() >= MAX_SOURCES {
                // Forget sources whose bucket has refilled: they are as if never seen.
                buckets.retain(|_, b| {
                    rate.refill(b, now);
                    b.tokens < rate.burst
                });
                if buckets.len() >= MAX_SOURCES {
                    return Err(Duration::from_secs(1));
                }
            }
            let bucket = buckets.entry(key).or_insert_with(|| rate.full(now));
            rate.take(bucket, now)?;
        }
        if let Some((rate, bucket)) = &self.global
            && let Err(wait) = rate.take(&mut lock(bucket), now)
        {
            // The request is refused: give the source back the token it was charged.
            if let Some((rate, buckets)) = &self.per_source
                && let Some(b) = lock(buckets).get_mut(&source_key(source))
            {
                b.tokens = (b.tokens + 1.0).min(rate.burst);
            }
            return Err(wait);
        }
        Ok(())
    }
}

/// Failed authentications a source may have within [`FAILURE_WINDOW`] before its requests
/// are refused (429) without their credentials being checked.
pub const MAX_FAILURES: u32 = 10;
/// How long failures are remembered: counted per window, the count starting over at its end.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// Counts failed authentications per source, so that a flood of guessed passwords costs
/// the guesser a 429, not the runtime one password hash each.
#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    sources: Mutex<HashMap<IpAddr, Failures>>,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        Self::new(MAX_FAILURES, FAILURE_WINDOW)
    }
}

impl FailureLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self { max: max.max(1), window, sources: Mutex::new(HashMap::new()) }
    }

    /// Whether `source` may try to authenticate now, or how long until it may.
    pub fn check(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        let sources = lock(&self.sources);
        match sources.get(&source_key(source)) {
            Some(f) if f.count >= self.max => {
                let end = f.since + self.window;
                if now < end { Err(end - now) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// Records one failed authentication from `source`.
    pub fn fail(&self, source: IpAddr, now: Instant) {
        let mut sources = lock(&self.sources);
        let window = self.window;
        if sources.len() >= MAX_SOURCES {
            // Forget windows that are over; if none is, forget them all rather than grow:
            // the limit then starts over, which only costs hashing time.
            sources.retain(|_, f| now.saturating_duration_since(f.since) < window);
            if sources.len() >= MAX_SOURCES {
                sources.clear();
            }
        }
        let f = sources.entry(source_key(source)).or_insert(Failures { count: 0, since: now });
        if now.saturating_duration_since(f.since) >= window {
            *f = Failures { count: 0, since: now };
        }
        f.count = f.count.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_limit_are_refused_until_the_window_ends() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let a: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..3 {
            assert!(l.check(a, t0).is_ok());
            l.fail(a, t0);
        }
        assert_eq!(l.check(a, t0 + Duration::from_secs(10)), Err(Duration::from_secs(50)));
        assert!(l.check([192, 0, 2, 2].into(), t0).is_ok(), "other sources are not held up");
        assert!(l.check(a, t0 + Duration::from_secs(60)).is_ok(), "a new window");
        l.fail(a, t0 + Duration::from_secs(61));
        assert!(l.check(a, t0 + Duration::from_secs(61)).is_ok(), "counted from zero again");
    }

    fn plan(per: RateScope, rps: u64, burst: u64) -> RateLimitPlan {
        RateLimitPlan { per, requests_per_second: rps, burst }
    }

    #[test]
    fn bursts_then_refills() {
        let l = RateLimiter::new(&[plan(RateScope::Source, 2, 3)]);
        let t0 = Instant::now();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        for _ in 0..3 {
            assert!(l.admit(a, t0).is_ok());
        }
        let wait = l.admit(a, t0).err();
        assert!(wait.is_some_and(|w| w > Duration::ZERO && w <= Duration::from_millis(500)), "{wait:?}");
        assert!(l.admit(b, t0).is_ok(), "another source has its own bucket");
        assert!(l.admit(a, t0 + Duration::from_millis(500)).is_ok(), "one token after 1/rate");
    }

    #[test]
    fn global_limit_applies_to_all_sources() {
        let l = RateLimiter::new(&[plan(RateScope::Global, 1, 2), plan(RateScope::Source, 100, 100)]);
        let t0 = Instant::now();
        assert!(l.admit([192, 0, 2, 1].into(), t0).is_ok());
        assert!(l.admit([192, 0, 2, 2].into(), t0).is_ok());
        assert!(l.admit([192, 0, 2, 3].into(), t0).is_err());
    }

    #[test]
    fn ipv6_sources_share_their_slash_64() {
        let l = RateLimiter::new(&[plan(RateScope::Source, 1, 1)]);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap_or([0u8; 4].into());
        let b: IpAddr = "2001:db8::2".parse().unwrap_or([0u8; 4].into());
        assert!(l.admit(a, t0).is_ok());
        assert!(l.admit(b, t0).is_err());
    }
}
