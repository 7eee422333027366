//! Hands a session's events to the AI loop over a bounded tokio channel without ever blocking
//! the media worker.
//!
//! Control events (speech start and end, barge-in, DTMF, timeout) are never dropped: when the
//! channel is full they wait in a small local queue and go first on the next tick. Caller
//! audio frames keep a few channel slots free for those control events. When the AI loop falls
//! behind, the newest audio frames are dropped and counted. Tokio's bounded sender cannot
//! evict the oldest queued item, so the frames already queued keep their order and the AI loop
//! receives a gap after them.

use std::collections::VecDeque;

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::audio::MediaEvent;

/// Channel slots that audio frames leave free for control events.
pub const CONTROL_RESERVE: usize = 8;
/// Control events kept while the channel is full; older ones are dropped past this.
const MAX_PENDING: usize = 256;

/// Sending half of one session's event channel.
#[derive(Debug)]
pub struct EventForwarder {
    sender: mpsc::Sender<MediaEvent>,
    pending: VecDeque<MediaEvent>,
    dropped_audio: u64,
    dropped_control: u64,
}

impl EventForwarder {
    /// Wraps the sending half of a channel.
    pub fn new(sender: mpsc::Sender<MediaEvent>) -> Self {
        Self {
            sender,
            pending: VecDeque::new(),
            dropped_audio: 0,
            dropped_control: 0,
        }
    }

    /// Sends `event` now, queues it, or (an audio frame only) drops it.
    pub fn forward(&mut self, event: MediaEvent) {
        self.flush();
        if let MediaEvent::Audio(_) = event {
            if !self.pending.is_empty() || self.sender.capacity() <= CONTROL_RESERVE {
                self.dropped_audio += 1;
                return;
            }
        } else if !self.pending.is_empty() {
            self.queue_control(event);
            return;
        }
        match self.sender.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => {
                if let MediaEvent::Audio(_) = event {
                    self.dropped_audio += 1;
                } else {
                    self.queue_control(event);
                }
            }
            // The AI loop has gone; the call layer stops the session.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Sends queued control events while the channel has room.
    pub fn flush(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            match self.sender.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.pending.push_front(event);
                    return;
                }
                Err(TrySendError::Closed(_)) => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    /// Audio frames dropped so far.
    pub fn dropped_audio(&self) -> u64 {
        self.dropped_audio
    }

    /// Control events dropped because even the local queue overflowed.
    pub fn dropped_control(&self) -> u64 {
        self.dropped_control
    }

    /// True when the receiving half was dropped.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    fn queue_control(&mut self, event: MediaEvent) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
            self.dropped_control += 1;
        }
        self.pending.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;

    fn audio() -> MediaEvent {
        MediaEvent::Audio(Box::new([0; FRAME_SAMPLES]))
    }

    #[test]
    fn audio_dropped_but_control_kept_when_full() {
        let (sender, mut receiver) = mpsc::channel(12);
        let mut forwarder = EventForwarder::new(sender);
        for _ in 0..10 {
            forwarder.forward(audio());
        }
        // Four audio frames fit before the reserve is reached.
        assert_eq!(forwarder.dropped_audio(), 6);
        for _ in 0..10 {
            forwarder.forward(MediaEvent::Timeout);
        }
        assert_eq!(forwarder.dropped_control(), 0);

        let mut received = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            received.push(event);
        }
        assert_eq!(received.len(), 12);
        forwarder.flush();
        let mut timeouts = received
            .iter()
            .filter(|e| matches!(e, MediaEvent::Timeout))
            .count();
        while let Ok(event) = receiver.try_recv() {
            assert!(matches!(event, MediaEvent::Timeout));
            timeouts += 1;
        }
        assert_eq!(timeouts, 10);
    }

    #[test]
    fn control_order_kept_through_pending() {
        let (sender, mut receiver) = mpsc::channel(1);
        let mut forwarder = EventForwarder::new(sender);
        forwarder.forward(MediaEvent::Timeout);
        forwarder.forward(MediaEvent::SpeechStarted {
            onset: std::time::Instant::now(),
        });
        assert!(matches!(receiver.try_recv(), Ok(MediaEvent::Timeout)));
        forwarder.flush();
        assert!(matches!(
            receiver.try_recv(),
            Ok(MediaEvent::SpeechStarted { .. })
        ));
    }
}
