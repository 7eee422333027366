//! INVITE server transaction (RFC 3261 §17.2.1 with the Accepted state of RFC 6026 §8.7).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::TimerEvent;
use super::timer::{Timer, TimerConfig};

/// States of the INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    /// No final response sent yet; retransmitted INVITEs get the last provisional.
    Proceeding,
    /// A 2xx was sent; INVITE retransmissions are absorbed while the dialog layer
    /// retransmits the 2xx (RFC 6026 §8.7).
    Accepted,
    /// A 300-699 was sent and is retransmitted until the ACK arrives.
    Completed,
    /// The ACK arrived; its retransmissions are absorbed.
    Confirmed,
    /// Done; the transaction can be removed.
    Terminated,
}

/// An INVITE server transaction. It sends nothing itself: the caller transmits what
/// [`ServerInviteTx::respond`] is given, and what the other methods return.
#[derive(Debug)]
pub struct ServerInviteTx {
    state: ServerInviteState,
    config: TimerConfig,
    reliable: bool,
    last_response: Option<Bytes>,
    timer_g: Option<(Instant, Duration)>,
    deadline: Option<(Instant, Timer)>,
}

impl ServerInviteTx {
    /// Starts a transaction for a new INVITE; `reliable` is true over TCP or TLS.
    pub fn new(config: TimerConfig, reliable: bool) -> Self {
        ServerInviteTx {
            state: ServerInviteState::Proceeding,
            config,
            reliable,
            last_response: None,
            timer_g: None,
            deadline: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// Records a response that the caller sends now. Responses after the final are ignored.
    pub fn respond(&mut self, now: Instant, status: u16, response: Bytes) {
        if self.state != ServerInviteState::Proceeding {
            return;
        }
        self.last_response = Some(response);
        match status {
            100..=199 => {}
            200..=299 => {
                self.state = ServerInviteState::Accepted;
                self.deadline = Some((now + self.config.timeout(), Timer::L));
            }
            _ => {
                self.state = ServerInviteState::Completed;
                if !self.reliable {
                    self.timer_g = Some((now + self.config.t1, self.config.t1));
                }
                self.deadline = Some((now + self.config.timeout(), Timer::H));
            }
        }
    }

    /// Handles a retransmitted INVITE: returns the response to send again, if any.
    pub fn on_retransmission(&self) -> Option<Bytes> {
        match self.state {
            ServerInviteState::Proceeding | ServerInviteState::Completed => {
                self.last_response.clone()
            }
            _ => None,
        }
    }

    /// Handles an ACK matching this transaction; true when it acknowledged a non-2xx final.
    pub fn on_ack(&mut self, now: Instant) -> bool {
        match self.state {
            ServerInviteState::Completed => {
                self.state = ServerInviteState::Confirmed;
                self.timer_g = None;
                self.deadline = Some((
                    now + self.config.t4_unless_reliable(self.reliable),
                    Timer::I,
                ));
                true
            }
            ServerInviteState::Confirmed => true,
            _ => false,
        }
    }

    /// Returns whether a final response has been sent.
    pub fn has_final(&self) -> bool {
        self.state != ServerInviteState::Proceeding
    }

    /// Returns the soonest timer, if any.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        let g = self.timer_g.map(|(at, _)| (at, Timer::G));
        [g, self.deadline]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at)
    }

    /// Fires the soonest due timer; call again until it returns `None`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimerEvent> {
        let (at, timer) = self.poll_timeout()?;
        if at > now {
            return None;
        }
        match timer {
            Timer::G => {
                let (_, interval) = self.timer_g?;
                let next = self.config.backoff(interval);
                self.timer_g = Some((now + next, next));
                self.last_response.clone().map(TimerEvent::Retransmit)
            }
            Timer::H => {
                self.terminate();
                Some(TimerEvent::TimedOut(Timer::H))
            }
            _ => {
                self.terminate();
                Some(TimerEvent::Terminated)
            }
        }
    }

    fn terminate(&mut self) {
        self.state = ServerInviteState::Terminated;
        self.timer_g = None;
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire_all(tx: &mut ServerInviteTx, now: Instant) -> Vec<TimerEvent> {
        std::iter::from_fn(|| tx.handle_timeout(now)).collect()
    }

    #[test]
    fn error_response_retransmits_until_timer_h() {
        let start = Instant::now();
        let mut tx = ServerInviteTx::new(TimerConfig::default(), false);
        tx.respond(start, 486, Bytes::from_static(b"486"));
        let mut sends = Vec::new();
        while tx.state() != ServerInviteState::Terminated {
            let now = tx.poll_timeout().unwrap().0;
            for event in fire_all(&mut tx, now) {
                sends.push((now - start, event));
            }
        }
        let retransmits: Vec<_> = sends
            .iter()
            .filter(|(_, e)| matches!(e, TimerEvent::Retransmit(_)))
            .map(|(at, _)| at.as_millis())
            .collect();
        // T1 doubling to T2: 0.5, 1.5, 3.5, 7.5, then every 4 s until 32 s.
        assert_eq!(&retransmits[..5], &[500, 1500, 3500, 7500, 11500]);
        assert!(retransmits.iter().all(|ms| *ms < 32_000));
        assert_eq!(sends.last().unwrap().0, Duration::from_secs(32));
        assert_eq!(sends.last().unwrap().1, TimerEvent::TimedOut(Timer::H));
    }

    #[test]
    fn ack_stops_retransmission_and_waits_t4() {
        let start = Instant::now();
        let mut tx = ServerInviteTx::new(TimerConfig::default(), false);
        tx.respond(start, 487, Bytes::from_static(b"487"));
        assert!(tx.on_ack(start + Duration::from_millis(10)));
        assert_eq!(tx.state(), ServerInviteState::Confirmed);
        assert_eq!(tx.on_retransmission(), None);
        let (at, timer) = tx.poll_timeout().unwrap();
        assert_eq!((at - start, timer), (Duration::from_millis(5010), Timer::I));
        assert_eq!(fire_all(&mut tx, at), vec![TimerEvent::Terminated]);
    }

    #[test]
    fn reliable_transport_never_retransmits() {
        let start = Instant::now();
        let mut tx = ServerInviteTx::new(TimerConfig::default(), true);
        tx.respond(start, 404, Bytes::from_static(b"404"));
        assert_eq!(tx.poll_timeout().unwrap().1, Timer::H);
        assert!(tx.on_ack(start));
        assert_eq!(tx.poll_timeout().unwrap(), (start, Timer::I));
    }

    #[test]
    fn retransmitted_invite_gets_last_provisional() {
        let start = Instant::now();
        let mut tx = ServerInviteTx::new(TimerConfig::default(), false);
        assert_eq!(tx.on_retransmission(), None);
        tx.respond(start, 100, Bytes::from_static(b"100"));
        tx.respond(start, 180, Bytes::from_static(b"180"));
        assert_eq!(tx.on_retransmission(), Some(Bytes::from_static(b"180")));
    }

    #[test]
    fn accepted_absorbs_until_timer_l() {
        let start = Instant::now();
        let mut tx = ServerInviteTx::new(TimerConfig::default(), false);
        tx.respond(start, 200, Bytes::from_static(b"200"));
        assert_eq!(tx.state(), ServerInviteState::Accepted);
        assert_eq!(tx.on_retransmission(), None);
        assert!(!tx.on_ack(start));
        tx.respond(start, 500, Bytes::from_static(b"500"));
        assert_eq!(tx.state(), ServerInviteState::Accepted);
        let (at, timer) = tx.poll_timeout().unwrap();
        assert_eq!((at - start, timer), (Duration::from_secs(32), Timer::L));
        assert_eq!(fire_all(&mut tx, at), vec![TimerEvent::Terminated]);
    }
}
