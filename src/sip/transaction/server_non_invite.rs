//! Non-INVITE server transaction (RFC 3261 §17.2.2).

use std::time::Instant;

use bytes::Bytes;

use super::TimerEvent;
use super::timer::{Timer, TimerConfig};

/// A non-INVITE server transaction: it stores the last response so retransmitted requests are
/// answered again instead of reaching the dialog layer, and lives for Timer J afterwards.
#[derive(Debug)]
pub struct ServerNonInviteTx {
    config: TimerConfig,
    reliable: bool,
    last_response: Option<Bytes>,
    completed: bool,
    timer_j: Option<Instant>,
    terminated: bool,
}

impl ServerNonInviteTx {
    /// Starts a transaction in Trying; `reliable` is true over TCP or TLS.
    pub fn new(config: TimerConfig, reliable: bool) -> Self {
        ServerNonInviteTx {
            config,
            reliable,
            last_response: None,
            completed: false,
            timer_j: None,
            terminated: false,
        }
    }

    /// Records a response that the caller sends now; after the final one nothing changes.
    pub fn respond(&mut self, now: Instant, status: u16, response: Bytes) {
        if self.completed {
            return;
        }
        self.last_response = Some(response);
        if status >= 200 {
            self.completed = true;
            self.timer_j = Some(now + self.config.timer_j(self.reliable));
        }
    }

    /// Returns whether the final response was sent.
    pub fn is_completed(&self) -> bool {
        self.completed
    }

    /// Returns whether Timer J fired.
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    /// Handles a retransmitted request: the last response, if one was sent (Trying absorbs).
    pub fn on_retransmission(&self) -> Option<Bytes> {
        self.last_response.clone()
    }

    /// Returns the pending Timer J.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        self.timer_j.map(|at| (at, Timer::J))
    }

    /// Fires Timer J when due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimerEvent> {
        let at = self.timer_j?;
        if at > now {
            return None;
        }
        self.timer_j = None;
        self.terminated = true;
        Some(TimerEvent::Terminated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn trying_absorbs_then_final_is_repeated() {
        let start = Instant::now();
        let mut tx = ServerNonInviteTx::new(TimerConfig::default(), false);
        assert_eq!(tx.on_retransmission(), None);
        tx.respond(start, 200, Bytes::from_static(b"200"));
        tx.respond(start, 500, Bytes::from_static(b"500"));
        assert_eq!(tx.on_retransmission(), Some(Bytes::from_static(b"200")));
        assert_eq!(
            tx.poll_timeout(),
            Some((start + Duration::from_secs(32), Timer::J))
        );
        assert_eq!(tx.handle_timeout(start + Duration::from_secs(31)), None);
        assert_eq!(
            tx.handle_timeout(start + Duration::from_secs(32)),
            Some(TimerEvent::Terminated)
        );
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_ends_at_once() {
        let start = Instant::now();
        let mut tx = ServerNonInviteTx::new(TimerConfig::default(), true);
        tx.respond(start, 481, Bytes::from_static(b"481"));
        assert_eq!(tx.poll_timeout(), Some((start, Timer::J)));
    }
}
