//! Non-INVITE client transaction (RFC 3261 §17.1.2), used for BYE, OPTIONS, INFO, UPDATE,
//! REFER, PRACK and CANCEL.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::TimerEvent;
use super::timer::{Timer, TimerConfig};

/// States of the non-INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    /// Request sent, nothing received.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived; its retransmissions are absorbed until Timer K.
    Completed,
    /// Done.
    Terminated,
}

/// What to do with a response that matched the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseAction {
    /// Pass it to the dialog layer.
    Pass,
    /// A retransmission the dialog layer has already seen.
    Absorb,
}

/// A non-INVITE client transaction.
#[derive(Debug)]
pub struct ClientNonInviteTx {
    state: ClientNonInviteState,
    config: TimerConfig,
    reliable: bool,
    request: Bytes,
    timer_e: Option<(Instant, Duration)>,
    deadline: Option<(Instant, Timer)>,
}

impl ClientNonInviteTx {
    /// Starts the transaction for `request`, which the caller sends now.
    pub fn new(now: Instant, config: TimerConfig, reliable: bool, request: Bytes) -> Self {
        let timer_e = (!reliable).then_some((now + config.t1, config.t1));
        ClientNonInviteTx {
            state: ClientNonInviteState::Trying,
            config,
            reliable,
            request,
            timer_e,
            deadline: Some((now + config.timeout(), Timer::F)),
        }
    }

    /// Current state.
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// Handles a response with `status`.
    pub fn on_response(&mut self, now: Instant, status: u16) -> ResponseAction {
        match (self.state, status) {
            (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, 100..=199) => {
                self.state = ClientNonInviteState::Proceeding;
                ResponseAction::Pass
            }
            (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, _) => {
                self.state = ClientNonInviteState::Completed;
                self.timer_e = None;
                let wait = self.config.t4_unless_reliable(self.reliable);
                self.deadline = Some((now + wait, Timer::K));
                ResponseAction::Pass
            }
            _ => ResponseAction::Absorb,
        }
    }

    /// Returns the soonest timer, if any.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        let e = self.timer_e.map(|(at, _)| (at, Timer::E));
        [e, self.deadline]
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
            Timer::E => {
                let (_, interval) = self.timer_e?;
                // §17.1.2.2: in Proceeding the interval is T2.
                let next = if self.state == ClientNonInviteState::Proceeding {
                    self.config.t2
                } else {
                    self.config.backoff(interval)
                };
                self.timer_e = Some((now + next, next));
                Some(TimerEvent::Retransmit(self.request.clone()))
            }
            Timer::F => {
                self.terminate();
                Some(TimerEvent::TimedOut(Timer::F))
            }
            _ => {
                self.terminate();
                Some(TimerEvent::Terminated)
            }
        }
    }

    fn terminate(&mut self) {
        self.state = ClientNonInviteState::Terminated;
        self.timer_e = None;
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmits_until_timer_f() {
        let start = Instant::now();
        let mut tx = ClientNonInviteTx::new(
            start,
            TimerConfig::default(),
            false,
            Bytes::from_static(b"BYE"),
        );
        let mut retransmits = Vec::new();
        let mut last = None;
        while tx.state() != ClientNonInviteState::Terminated {
            let now = tx.poll_timeout().unwrap().0;
            while let Some(event) = tx.handle_timeout(now) {
                match event {
                    TimerEvent::Retransmit(_) => retransmits.push((now - start).as_millis()),
                    other => last = Some((now - start, other)),
                }
            }
        }
        assert_eq!(&retransmits[..5], &[500, 1500, 3500, 7500, 11500]);
        assert_eq!(retransmits.len(), 10);
        assert_eq!(
            last,
            Some((Duration::from_secs(32), TimerEvent::TimedOut(Timer::F)))
        );
    }

    #[test]
    fn provisional_sets_t2_and_final_completes() {
        let start = Instant::now();
        let mut tx = ClientNonInviteTx::new(
            start,
            TimerConfig::default(),
            false,
            Bytes::from_static(b"BYE"),
        );
        assert_eq!(tx.on_response(start, 100), ResponseAction::Pass);
        let first = tx.poll_timeout().unwrap().0;
        tx.handle_timeout(first);
        assert_eq!(tx.poll_timeout().unwrap().0 - first, Duration::from_secs(4));
        let done = start + Duration::from_secs(2);
        assert_eq!(tx.on_response(done, 200), ResponseAction::Pass);
        assert_eq!(tx.on_response(done, 200), ResponseAction::Absorb);
        assert_eq!(
            tx.poll_timeout(),
            Some((done + Duration::from_secs(5), Timer::K))
        );
    }

    #[test]
    fn reliable_transport_has_no_timer_e() {
        let start = Instant::now();
        let tx = ClientNonInviteTx::new(start, TimerConfig::default(), true, Bytes::new());
        assert_eq!(tx.poll_timeout().unwrap().1, Timer::F);
    }
}
