//! Token buckets for the per-source and per-trunk rate limits.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A token bucket refilled at `rate` tokens per second up to `burst` tokens.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// Creates a full bucket.
    pub fn new(now: Instant, rate_per_sec: u32, burst: u32) -> Self {
        TokenBucket {
            rate: f64::from(rate_per_sec),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            updated: now,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Returns whether the bucket has refilled completely, so forgetting it changes nothing.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }
}

/// One token bucket per key (a source address), with idle buckets forgotten so a flood of
/// spoofed sources cannot grow memory without bound.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    rate: u32,
    burst: u32,
    buckets: HashMap<K, TokenBucket>,
    max_keys: usize,
    last_prune: Instant,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// Allows `rate` requests per second per key, with bursts of up to one second's worth.
    /// A rate of 0 disables the limit.
    pub fn new(now: Instant, rate: u32, max_keys: usize) -> Self {
        KeyedLimiter {
            rate,
            burst: rate,
            buckets: HashMap::new(),
            max_keys,
            last_prune: now,
        }
    }

    /// Takes one token for `key`; false when the key is over its rate.
    pub fn try_take(&mut self, now: Instant, key: &K) -> bool {
        if self.rate == 0 {
            return true;
        }
        if self.buckets.len() >= self.max_keys || now - self.last_prune > Duration::from_secs(10) {
            self.prune(now);
        }
        if let Some(bucket) = self.buckets.get_mut(key) {
            return bucket.try_take(now);
        }
        if self.buckets.len() >= self.max_keys {
            // Every tracked source is busy: treat new ones as over the limit rather than
            // dropping the state of the ones being throttled.
            return false;
        }
        let mut bucket = TokenBucket::new(now, self.rate, self.burst);
        let allowed = bucket.try_take(now);
        self.buckets.insert(key.clone(), bucket);
        allowed
    }

    /// Number of keys currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    fn prune(&mut self, now: Instant) {
        self.buckets.retain(|_, bucket| !bucket.is_full(now));
        self.last_prune = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(start, 10, 10);
        assert_eq!((0..20).filter(|_| bucket.try_take(start)).count(), 10);
        let later = start + Duration::from_millis(500);
        assert_eq!((0..20).filter(|_| bucket.try_take(later)).count(), 5);
    }

    #[test]
    fn sources_are_limited_separately() {
        let start = Instant::now();
        let mut limiter = KeyedLimiter::new(start, 5, 1000);
        let flood: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let allowed = (0..100).filter(|_| limiter.try_take(start, &flood)).count();
        assert_eq!(allowed, 5);
        assert!(limiter.try_take(start, &other));
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let start = Instant::now();
        let mut limiter = KeyedLimiter::new(start, 5, 2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let c: IpAddr = "127.0.0.4".parse().unwrap();
        assert!(limiter.try_take(start, &a));
        assert!(limiter.try_take(start, &b));
        assert!(!limiter.try_take(start, &c));
        assert!(limiter.try_take(start + Duration::from_secs(2), &c));
        assert!(limiter.tracked() <= 2);
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let start = Instant::now();
        let mut limiter = KeyedLimiter::new(start, 0, 1);
        assert!((0..1000).all(|_| limiter.try_take(start, &1u8)));
    }
}
