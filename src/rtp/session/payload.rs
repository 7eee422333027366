//! The payload types negotiated for one call, as the receive path needs them: which numbers
//! carry audio (and at what clock rate), comfort noise, and telephone events.
//!
//! Numbers come from the SDP answer of this call only (RFC 3264 §6.1: the offerer's numbers).
//! There are no global constants, because peers put telephone-event on 101, 97, 103 or
//! anything else.

use crate::rtp::ids::Pt;

/// Returns the duration of one payload in timestamp units, or `None` when it cannot tell.
pub type DurationFn = fn(&[u8]) -> Option<u32>;

/// Content of a negotiated payload type.
#[derive(Debug, Clone, Copy)]
pub enum PayloadRole {
    /// Audio for the decoder.
    Audio {
        /// RTP clock rate.
        clock_rate: u32,
        /// Computes a payload's duration (G.711: one unit per byte; Opus: from the TOC byte).
        /// Without it the jitter buffer takes durations from timestamps.
        duration: Option<DurationFn>,
    },
    /// RFC 3389 comfort noise.
    ComfortNoise,
    /// RFC 4733 telephone events.
    TelephoneEvent {
        /// RTP clock rate (equal to the audio codec's).
        clock_rate: u32,
    },
}

/// Payload types of one call, at most a handful.
#[derive(Debug, Clone, Default)]
pub struct PayloadTable {
    entries: Vec<(Pt, PayloadRole)>,
}

impl PayloadTable {
    /// Creates an empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an audio payload type; a later entry for the same number replaces it.
    pub fn with_audio(self, pt: Pt, clock_rate: u32, duration: Option<DurationFn>) -> Self {
        self.with(
            pt,
            PayloadRole::Audio {
                clock_rate,
                duration,
            },
        )
    }

    /// Adds the comfort noise payload type (13 when negotiated, RFC 3551 §6).
    pub fn with_comfort_noise(self, pt: Pt) -> Self {
        self.with(pt, PayloadRole::ComfortNoise)
    }

    /// Adds the telephone-event payload type at its negotiated clock rate.
    pub fn with_telephone_event(self, pt: Pt, clock_rate: u32) -> Self {
        self.with(pt, PayloadRole::TelephoneEvent { clock_rate })
    }

    fn with(mut self, pt: Pt, role: PayloadRole) -> Self {
        self.entries.retain(|(p, _)| *p != pt);
        self.entries.push((pt, role));
        self
    }

    /// Returns the role of `pt`, or `None` when it was not negotiated.
    pub fn role(&self, pt: Pt) -> Option<PayloadRole> {
        self.entries
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, role)| *role)
    }

    /// Clock rate of the first audio payload type; the jitter buffer runs on it.
    pub fn audio_clock_rate(&self) -> Option<u32> {
        self.entries.iter().find_map(|(_, role)| match role {
            PayloadRole::Audio { clock_rate, .. } => Some(*clock_rate),
            _ => None,
        })
    }

    /// Clock rate of telephone events, if negotiated.
    pub fn event_clock_rate(&self) -> Option<u32> {
        self.entries.iter().find_map(|(_, role)| match role {
            PayloadRole::TelephoneEvent { clock_rate } => Some(*clock_rate),
            _ => None,
        })
    }
}

/// Duration of a G.711 payload: one timestamp unit per byte (RFC 3551 §4.5.14).
pub fn g711_duration(payload: &[u8]) -> Option<u32> {
    u32::try_from(payload.len()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_negotiation() {
        let table = PayloadTable::new()
            .with_audio(Pt(96), 48_000, None)
            .with_telephone_event(Pt(97), 48_000)
            .with_comfort_noise(Pt(13));
        assert!(matches!(
            table.role(Pt(96)),
            Some(PayloadRole::Audio {
                clock_rate: 48_000,
                ..
            })
        ));
        assert!(matches!(
            table.role(Pt(97)),
            Some(PayloadRole::TelephoneEvent { clock_rate: 48_000 })
        ));
        assert!(table.role(Pt(101)).is_none());
        assert!(table.role(Pt(0)).is_none());
        assert_eq!(table.audio_clock_rate(), Some(48_000));
        assert_eq!(table.event_clock_rate(), Some(48_000));
    }

    #[test]
    fn later_entry_replaces() {
        let table = PayloadTable::new()
            .with_telephone_event(Pt(101), 8000)
            .with_audio(Pt(101), 8000, Some(g711_duration));
        assert!(matches!(
            table.role(Pt(101)),
            Some(PayloadRole::Audio { .. })
        ));
        assert_eq!(table.event_clock_rate(), None);
    }

    #[test]
    fn g711_duration_is_byte_count() {
        assert_eq!(g711_duration(&[0; 160]), Some(160));
    }
}
