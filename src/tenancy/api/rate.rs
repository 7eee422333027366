//! Per-tenant request rate limit: a token bucket holding one second of requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::tenancy::TenantId;

/// Token buckets by tenant.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_sec: u32,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// A limiter allowing `per_sec` requests per second per tenant, in bursts of up to
    /// `per_sec`; 0 allows everything.
    pub fn new(per_sec: u32) -> RateLimiter {
        RateLimiter {
            per_sec,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `tenant` at `now`, or returns how long until one is available.
    pub fn check(&self, tenant: TenantId, now: Instant) -> Result<(), Duration> {
        if self.per_sec == 0 {
            return Ok(());
        }
        let rate = f64::from(self.per_sec);
        let mut buckets = self.buckets.lock();
        let bucket = buckets.entry(tenant).or_insert(Bucket {
            tokens: rate,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let limiter = RateLimiter::new(5);
        let start = Instant::now();
        let tenant = TenantId(1);
        for _ in 0..5 {
            assert!(limiter.check(tenant, start).is_ok());
        }
        let wait = limiter.check(tenant, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(200));
        assert!(
            limiter
                .check(tenant, start + Duration::from_millis(199))
                .is_err()
        );
        assert!(
            limiter
                .check(tenant, start + Duration::from_millis(400))
                .is_ok()
        );
    }

    #[test]
    fn tenants_have_separate_buckets() {
        let limiter = RateLimiter::new(1);
        let now = Instant::now();
        assert!(limiter.check(TenantId(1), now).is_ok());
        assert!(limiter.check(TenantId(1), now).is_err());
        assert!(limiter.check(TenantId(2), now).is_ok());
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let limiter = RateLimiter::new(0);
        let now = Instant::now();
        for _ in 0..1_000 {
            assert!(limiter.check(TenantId(1), now).is_ok());
        }
    }

    #[test]
    fn idle_bucket_caps_at_one_second() {
        let limiter = RateLimiter::new(3);
        let start = Instant::now();
        let later = start + Duration::from_secs(3_600);
        assert!(limiter.check(TenantId(1), start).is_ok());
        let allowed = (0..10)
            .filter(|_| limiter.check(TenantId(1), later).is_ok())
            .count();
        assert_eq!(allowed, 3);
    }
}
