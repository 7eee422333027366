//! Target playout delay of the jitter buffer: the RFC 3550 §A.8 interarrival jitter estimate
//! with a margin, raised at once by packets that arrived too late, and kept within
//! `[rtp] jitter_min_ms..=jitter_max_ms`.

use std::time::{Duration, Instant};

use crate::rtp::ids::ts_delta;

/// How many times the mean jitter deviation the delay covers. The RFC 3550 estimator is a
/// smoothed mean of |D|; three times it covers nearly all of a roughly normal delay spread.
const JITTER_MULTIPLE: u32 = 3;
/// Added to the jitter term so that a perfectly smooth stream still has room for scheduling
/// noise on our side.
const MARGIN: Duration = Duration::from_millis(10);
/// A transit change larger than this is a timestamp discontinuity, not jitter: no useful
/// playout delay comes near it.
const DISCONTINUITY: Duration = Duration::from_secs(2);
/// Rate at which the delay raised by a late packet falls back to the jitter estimate.
const LATE_HOLD_DECAY_PER_SEC: Duration = Duration::from_millis(5);

/// Estimates the playout delay one stream needs.
#[derive(Debug, Clone)]
pub struct DelayEstimator {
    clock_rate: u32,
    min: Duration,
    max: Duration,
    previous: Option<(Instant, u32)>,
    // Smoothed |D| in microseconds, times 16 (RFC 3550 §A.8 integer form).
    jitter_us_x16: u64,
    late_hold: Duration,
    late_hold_at: Option<Instant>,
}

impl DelayEstimator {
    /// Creates an estimator for a stream with the given RTP clock rate and delay bounds.
    pub fn new(clock_rate: u32, min: Duration, max: Duration) -> Self {
        DelayEstimator {
            clock_rate: clock_rate.max(1),
            min,
            max: max.max(min),
            previous: None,
            jitter_us_x16: 0,
            late_hold: Duration::ZERO,
            late_hold_at: None,
        }
    }

    /// Feeds the arrival of one audio packet.
    pub fn on_arrival(&mut self, now: Instant, timestamp: u32) {
        if let Some((then, previous_ts)) = self.previous {
            let arrival_us = now.saturating_duration_since(then).as_micros() as i64;
            let media_us = i64::from(ts_delta(timestamp, previous_ts)) * 1_000_000
                / i64::from(self.clock_rate);
            let d = (arrival_us - media_us).unsigned_abs();
            if d < DISCONTINUITY.as_micros() as u64 {
                let step = (self.jitter_us_x16 + 8) >> 4;
                self.jitter_us_x16 = self.jitter_us_x16 + d - step;
            }
        }
        self.previous = Some((now, timestamp));
    }

    /// Raises the delay after a packet arrived `lateness` after its playout time, on top of
    /// the `current` delay that was not enough.
    pub fn on_late(&mut self, now: Instant, current: Duration, lateness: Duration) {
        let needed = (current + lateness + MARGIN).min(self.max);
        self.late_hold = self.decayed_hold(now).max(needed);
        self.late_hold_at = Some(now);
    }

    /// Forgets the previous arrival, for a new source or a timestamp discontinuity.
    pub fn restart(&mut self) {
        self.previous = None;
    }

    /// Interarrival jitter estimate.
    pub fn jitter(&self) -> Duration {
        Duration::from_micros(self.jitter_us_x16 >> 4)
    }

    /// Delay the buffer should aim for at `now`.
    pub fn target(&self, now: Instant) -> Duration {
        let from_jitter = self.jitter() * JITTER_MULTIPLE + MARGIN;
        from_jitter
            .max(self.decayed_hold(now))
            .clamp(self.min, self.max)
    }

    fn decayed_hold(&self, now: Instant) -> Duration {
        let Some(at) = self.late_hold_at else {
            return Duration::ZERO;
        };
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        let decay = LATE_HOLD_DECAY_PER_SEC.mul_f64(elapsed);
        self.late_hold.saturating_sub(decay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimator() -> DelayEstimator {
        DelayEstimator::new(8000, Duration::from_millis(20), Duration::from_millis(200))
    }

    #[test]
    fn smooth_stream_stays_at_minimum() {
        let mut delay = estimator();
        let start = Instant::now();
        for i in 0..100u32 {
            delay.on_arrival(start + Duration::from_millis(u64::from(20 * i)), 160 * i);
        }
        assert_eq!(delay.jitter(), Duration::ZERO);
        assert_eq!(delay.target(start), Duration::from_millis(20));
    }

    #[test]
    fn jittery_stream_raises_target() {
        let mut delay = estimator();
        let start = Instant::now();
        for i in 0..500u32 {
            let late = if i % 2 == 1 { 20 } else { 0 };
            delay.on_arrival(
                start + Duration::from_millis(u64::from(20 * i + late)),
                160 * i,
            );
        }
        let jitter = delay.jitter().as_millis();
        assert!((19..=20).contains(&jitter), "{jitter}");
        let target = delay.target(start).as_millis();
        assert!((67..=70).contains(&target), "{target}");
    }

    #[test]
    fn target_is_capped() {
        let mut delay = estimator();
        let start = Instant::now();
        for i in 0..500u32 {
            let late = if i % 2 == 1 { 300 } else { 0 };
            delay.on_arrival(
                start + Duration::from_millis(u64::from(20 * i + late)),
                160 * i,
            );
        }
        assert_eq!(delay.target(start), Duration::from_millis(200));
    }

    #[test]
    fn late_packet_raises_then_decays() {
        let mut delay = estimator();
        let start = Instant::now();
        delay.on_late(start, Duration::from_millis(20), Duration::from_millis(40));
        assert_eq!(delay.target(start), Duration::from_millis(70));
        let later = start + Duration::from_secs(4);
        assert_eq!(delay.target(later), Duration::from_millis(50));
        let much_later = start + Duration::from_secs(60);
        assert_eq!(delay.target(much_later), Duration::from_millis(20));
    }

    #[test]
    fn discontinuity_is_not_jitter() {
        let mut delay = estimator();
        let start = Instant::now();
        delay.on_arrival(start, 0);
        delay.on_arrival(start + Duration::from_millis(20), 160);
        delay.on_arrival(start + Duration::from_millis(40), 3_000_000_000);
        assert_eq!(delay.jitter(), Duration::ZERO);
    }
}
