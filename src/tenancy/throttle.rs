//! Rate limiting of repeated log lines, so a burst of the same failure logs once a second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Remembers when each key was last logged.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    period: Duration,
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

impl LogThrottle {
    /// Creates a throttle that lets one line per key through every `period`.
    pub fn new(period: Duration) -> LogThrottle {
        LogThrottle {
            period,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Returns `Some(suppressed)` when a line for `key` may be logged at `now`, with the number
    /// of lines held back since the previous one, or `None` to skip this one.
    pub fn check(&self, key: &str, now: Instant) -> Option<u64> {
        let mut last = self.last.lock();
        match last.get_mut(key) {
            Some((at, suppressed)) if now.saturating_duration_since(*at) < self.period => {
                *suppressed += 1;
                None
            }
            Some(entry) => {
                let suppressed = entry.1;
                *entry = (now, 0);
                Some(suppressed)
            }
            None => {
                last.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period() {
        let throttle = LogThrottle::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(throttle.check("a", start), Some(0));
        assert_eq!(throttle.check("a", start + Duration::from_millis(10)), None);
        assert_eq!(throttle.check("a", start + Duration::from_millis(20)), None);
        assert_eq!(throttle.check("b", start), Some(0), "keys are independent");
        assert_eq!(throttle.check("a", start + Duration::from_secs(1)), Some(2));
        assert_eq!(
            throttle.check("a", start + Duration::from_millis(1_500)),
            None
        );
    }
}
