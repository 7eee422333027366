//! RFC 3261 §17 transaction timers and their durations.

use std::time::Duration;

/// A transaction timer, named as in RFC 3261 §17 (Table 4 in §A) and RFC 6026 §8.
///
/// Timer C belongs to proxies and is not used by a user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmission over UDP, first after T1, then doubling (§17.1.1.2).
    A,
    /// INVITE client transaction timeout, 64*T1 (§17.1.1.2).
    B,
    /// Wait for response retransmissions after a non-2xx final, 32 s over UDP (§17.1.1.2).
    D,
    /// Non-INVITE request retransmission over UDP, T1 doubling up to T2 (§17.1.2.2).
    E,
    /// Non-INVITE client transaction timeout, 64*T1 (§17.1.2.2).
    F,
    /// INVITE final response retransmission over UDP, T1 doubling up to T2 (§17.2.1).
    G,
    /// Wait for the ACK to a non-2xx final response, 64*T1 (§17.2.1).
    H,
    /// Wait for ACK retransmissions, T4 over UDP (§17.2.1).
    I,
    /// Wait for non-INVITE request retransmissions, 64*T1 over UDP (§17.2.2).
    J,
    /// Wait for non-INVITE response retransmissions, T4 over UDP (§17.1.2.2).
    K,
    /// Server INVITE transaction in Accepted absorbs INVITE retransmissions, 64*T1 (RFC 6026 §8.7).
    L,
    /// Client INVITE transaction in Accepted takes 2xx retransmissions, 64*T1 (RFC 6026 §8.4).
    M,
}

/// The base intervals T1, T2 and T4 (RFC 3261 §17.1.1.1) from which every timer is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip estimate, 500 ms by default.
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// Longest time a message stays in the network.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J, L and M, and the 2xx retransmission limit of §13.3.1.4.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: at least 32 s over unreliable transports, zero over reliable ones.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.timeout())
        }
    }

    /// Timers I and K: T4 over unreliable transports, zero over reliable ones.
    pub fn t4_unless_reliable(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: 64*T1 over unreliable transports, zero over reliable ones.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.timeout()
        }
    }

    /// Returns the retransmission interval after `current`, doubled and capped at T2.
    pub fn backoff(&self, current: Duration) -> Duration {
        (current * 2).min(self.t2)
    }
}
