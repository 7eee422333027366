//! NTP timestamps for RTCP (RFC 3550 §4): seconds since 1 January 1900 in 32.32 fixed point,
//! derived from `Instant`s against one wall-clock reading taken when the clock was made.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Converts `Instant`s into NTP timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpClock {
    base: Instant,
    base_ntp: u64,
}

impl NtpClock {
    /// Creates a clock on which `base` is `wall` in wall-clock time. Read both once per
    /// session, for example `NtpClock::new(Instant::now(), SystemTime::now())`.
    pub fn new(base: Instant, wall: SystemTime) -> Self {
        let since_unix = wall.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let seconds = since_unix.as_secs() + NTP_UNIX_OFFSET;
        let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
        NtpClock {
            base,
            base_ntp: (seconds << 32) | fraction,
        }
    }

    /// Returns the NTP timestamp of `now`.
    pub fn ntp(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.base);
        self.base_ntp.wrapping_add(duration_to_ntp(elapsed))
    }
}

/// Converts a duration into 32.32 fixed-point seconds.
pub fn duration_to_ntp(duration: Duration) -> u64 {
    let fraction = (u64::from(duration.subsec_nanos()) << 32) / 1_000_000_000;
    (duration.as_secs() << 32).wrapping_add(fraction)
}

/// Returns the middle 32 bits of an NTP timestamp, the compact form of LSR fields (RFC 3550 §6.4.1).
pub fn compact(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Converts a compact (16.16 fixed-point seconds) value into a duration.
pub fn compact_to_duration(value: u32) -> Duration {
    Duration::from_micros((u64::from(value) * 1_000_000) >> 16)
}

/// Converts a duration into compact 16.16 fixed-point seconds, saturating.
pub fn duration_to_compact(duration: Duration) -> u32 {
    let units = duration.as_micros() * 65_536 / 1_000_000;
    units.min(u128::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_maps_to_ntp_offset() {
        let base = Instant::now();
        let clock = NtpClock::new(base, UNIX_EPOCH);
        assert_eq!(clock.ntp(base), NTP_UNIX_OFFSET << 32);
        let later = clock.ntp(base + Duration::from_millis(1500));
        assert_eq!(later, ((NTP_UNIX_OFFSET + 1) << 32) | (1 << 31));
    }

    #[test]
    fn compact_keeps_middle_bits() {
        assert_eq!(compact(0x1234_5678_9ABC_DEF0), 0x5678_9ABC);
    }

    #[test]
    fn compact_round_trips() {
        let d = Duration::from_millis(250);
        assert_eq!(duration_to_compact(d), 16_384);
        assert_eq!(compact_to_duration(16_384), d);
    }
}
