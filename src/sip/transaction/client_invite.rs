//! INVITE client transaction (RFC 3261 §17.1.1 with the Accepted state of RFC 6026 §8.4).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::TimerEvent;
use super::timer::{Timer, TimerConfig};

/// States of the INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    /// INVITE sent, nothing received.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A 2xx arrived; further 2xx go to the dialog layer until Timer M (RFC 6026).
    Accepted,
    /// A 300-699 arrived and was acknowledged; retransmissions get the ACK again.
    Completed,
    /// Done.
    Terminated,
}

/// What to do with a response that matched the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteResponseAction {
    /// Pass it to the dialog layer (provisional, or 2xx).
    Pass,
    /// First non-2xx final: pass it on; the caller builds the ACK (§17.1.1.3), sends it and
    /// stores it with [`ClientInviteTx::set_ack`].
    PassAndAck,
    /// Retransmitted non-2xx final: send this ACK again.
    ResendAck(Bytes),
    /// Nothing to do.
    Absorb,
}

/// An INVITE client transaction.
#[derive(Debug)]
pub struct ClientInviteTx {
    state: ClientInviteState,
    config: TimerConfig,
    reliable: bool,
    request: Bytes,
    ack: Option<Bytes>,
    timer_a: Option<(Instant, Duration)>,
    deadline: Option<(Instant, Timer)>,
}

impl ClientInviteTx {
    /// Starts the transaction for `request`, which the caller sends now.
    pub fn new(now: Instant, config: TimerConfig, reliable: bool, request: Bytes) -> Self {
        ClientInviteTx {
            state: ClientInviteState::Calling,
            config,
            reliable,
            request,
            ack: None,
            timer_a: (!reliable).then_some((now + config.t1, config.t1)),
            deadline: Some((now + config.timeout(), Timer::B)),
        }
    }

    /// Current state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// Returns the INVITE as sent, for building CANCEL and ACK.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// Handles a response with `status`.
    pub fn on_response(&mut self, now: Instant, status: u16) -> InviteResponseAction {
        use ClientInviteState::*;
        match (self.state, status) {
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.timer_a = None;
                InviteResponseAction::Pass
            }
            (Calling | Proceeding, 200..=299) => {
                self.state = Accepted;
                self.timer_a = None;
                self.deadline = Some((now + self.config.timeout(), Timer::M));
                InviteResponseAction::Pass
            }
            (Accepted, 200..=299) => InviteResponseAction::Pass,
            (Calling | Proceeding, _) => {
                self.state = Completed;
                self.timer_a = None;
                let wait = self.config.timer_d(self.reliable);
                self.deadline = Some((now + wait, Timer::D));
                InviteResponseAction::PassAndAck
            }
            (Completed, 300..) => match &self.ack {
                Some(ack) => InviteResponseAction::ResendAck(ack.clone()),
                None => InviteResponseAction::Absorb,
            },
            _ => InviteResponseAction::Absorb,
        }
    }

    /// Stores the ACK sent for a non-2xx final response.
    pub fn set_ack(&mut self, ack: Bytes) {
        self.ack = Some(ack);
    }

    /// Returns the soonest timer, if any.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        let a = self.timer_a.map(|(at, _)| (at, Timer::A));
        [a, self.deadline]
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
            Timer::A => {
                let (_, interval) = self.timer_a?;
                // §17.1.1.2: Timer A doubles without the T2 cap.
                let next = interval * 2;
                self.timer_a = Some((now + next, next));
                Some(TimerEvent::Retransmit(self.request.clone()))
            }
            Timer::B => {
                self.terminate();
                Some(TimerEvent::TimedOut(Timer::B))
            }
            _ => {
                self.terminate();
                Some(TimerEvent::Terminated)
            }
        }
    }

    fn terminate(&mut self) {
        self.state = ClientInviteState::Terminated;
        self.timer_a = None;
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(start: Instant, reliable: bool) -> ClientInviteTx {
        ClientInviteTx::new(
            start,
            TimerConfig::default(),
            reliable,
            Bytes::from_static(b"INVITE"),
        )
    }

    #[test]
    fn timer_a_doubles_until_timer_b() {
        let start = Instant::now();
        let mut tx = tx(start, false);
        let mut retransmits = Vec::new();
        let mut end = None;
        while tx.state() != ClientInviteState::Terminated {
            let now = tx.poll_timeout().unwrap().0;
            while let Some(event) = tx.handle_timeout(now) {
                match event {
                    TimerEvent::Retransmit(_) => retransmits.push((now - start).as_millis()),
                    other => end = Some((now - start, other)),
                }
            }
        }
        assert_eq!(retransmits, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(
            end,
            Some((Duration::from_secs(32), TimerEvent::TimedOut(Timer::B)))
        );
    }

    #[test]
    fn provisional_stops_timer_a() {
        let start = Instant::now();
        let mut tx = tx(start, false);
        assert_eq!(tx.on_response(start, 180), InviteResponseAction::Pass);
        assert_eq!(tx.poll_timeout().unwrap().1, Timer::B);
    }

    #[test]
    fn error_final_is_acked_and_repeated_ack() {
        let start = Instant::now();
        let mut tx = tx(start, false);
        assert_eq!(tx.on_response(start, 486), InviteResponseAction::PassAndAck);
        tx.set_ack(Bytes::from_static(b"ACK"));
        assert_eq!(
            tx.on_response(start, 486),
            InviteResponseAction::ResendAck(Bytes::from_static(b"ACK"))
        );
        assert_eq!(
            tx.poll_timeout(),
            Some((start + Duration::from_secs(32), Timer::D))
        );
    }

    #[test]
    fn accepted_passes_2xx_retransmissions() {
        let start = Instant::now();
        let mut tx = tx(start, true);
        assert_eq!(tx.on_response(start, 200), InviteResponseAction::Pass);
        assert_eq!(tx.on_response(start, 200), InviteResponseAction::Pass);
        assert_eq!(tx.on_response(start, 180), InviteResponseAction::Absorb);
        assert_eq!(
            tx.poll_timeout(),
            Some((start + Duration::from_secs(32), Timer::M))
        );
    }

    #[test]
    fn reliable_timer_d_is_zero() {
        let start = Instant::now();
        let mut tx = tx(start, true);
        tx.on_response(start, 603);
        assert_eq!(tx.poll_timeout(), Some((start, Timer::D)));
    }
}
