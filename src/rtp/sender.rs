//! Our outbound RTP stream: SSRC, sequence numbers and timestamps, the marker bit, RFC 4733
//! events in the same stream, and the counts a sender report needs.
//!
//! Timestamps follow wall time (`now` against the stream start), not the number of packets
//! sent: after a pause in sending, the next packet's timestamp has advanced by the length of
//! the pause, as RFC 3550 §5.1 requires of a sampling clock, and carries the marker bit
//! (RFC 3551 §4.1).

use std::time::{Duration, Instant};

use rand::{Rng, RngExt};

use super::dtmf::EventGenerator;
use super::ids::{Pt, SeqNo, Ssrc, ts_delta};
use super::packet::{BuildError, RTP_HEADER_LEN, RtpHeader};

/// Counts for the sender info block of an RTCP sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderCounts {
    /// RTP timestamp that corresponds to the report's `now`.
    pub rtp_timestamp: u32,
    /// Packets sent, wrapping at 2^32.
    pub packets: u32,
    /// Payload octets sent, wrapping at 2^32.
    pub octets: u32,
}

#[derive(Debug, Clone, Copy)]
struct ActiveEvent {
    generator: EventGenerator,
    pt: Pt,
    timestamp: u32,
    packet_samples: u32,
}

/// State of the RTP stream we send in one call.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: Ssrc,
    clock_rate: u32,
    start: Instant,
    initial_timestamp: u32,
    next_seq: SeqNo,
    next_timestamp: u32,
    last_send: Option<(Instant, u32)>,
    marker_next: bool,
    event: Option<ActiveEvent>,
    packets: u32,
    octets: u32,
    sent_since_report: bool,
}

impl RtpSender {
    /// Creates a stream with a random SSRC, initial sequence number and initial timestamp
    /// (RFC 3550 §5.1 calls for random initial values), starting at `now`. Pass a seeded RNG to
    /// replay the same bytes in a test.
    pub fn new<R: Rng + ?Sized>(rng: &mut R, clock_rate: u32, now: Instant) -> Self {
        let ssrc = Ssrc(rng.random());
        let seq = SeqNo(rng.random());
        let timestamp = rng.random();
        Self::with_initial(ssrc, seq, timestamp, clock_rate, now)
    }

    /// Creates a stream with the given initial values.
    pub fn with_initial(
        ssrc: Ssrc,
        seq: SeqNo,
        timestamp: u32,
        clock_rate: u32,
        now: Instant,
    ) -> Self {
        RtpSender {
            ssrc,
            clock_rate: clock_rate.max(1),
            start: now,
            initial_timestamp: timestamp,
            next_seq: seq,
            next_timestamp: timestamp,
            last_send: None,
            marker_next: true,
            event: None,
            packets: 0,
            octets: 0,
            sent_since_report: false,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// Changes our SSRC, after a collision with the peer's (RFC 3550 §8.2). Sequence numbers
    /// and timestamps continue.
    pub fn set_ssrc(&mut self, ssrc: Ssrc) {
        self.ssrc = ssrc;
    }

    /// RTP clock rate.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Returns the sampling-clock timestamp at `now`.
    pub fn timestamp_at(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.start);
        let units = elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        self.initial_timestamp.wrapping_add(units as u32)
    }

    /// Sets the marker bit on the next audio packet (a talkspurt start the caller knows of).
    pub fn mark_talkspurt(&mut self) {
        self.marker_next = true;
    }

    /// Returns the header of the next audio packet, carrying `samples` timestamp units and
    /// `payload_len` payload bytes, and advances the stream. Use it to encode the payload
    /// straight into the send buffer after [`RTP_HEADER_LEN`] bytes.
    pub fn next_audio_header(
        &mut self,
        now: Instant,
        pt: Pt,
        samples: u32,
        payload_len: usize,
    ) -> RtpHeader {
        let samples = samples.max(1);
        let paused = self.paused(now);
        let timestamp = if paused {
            self.resume_timestamp(now)
        } else {
            self.next_timestamp
        };
        let marker = paused || self.marker_next;
        self.marker_next = false;
        self.next_timestamp = timestamp.wrapping_add(samples);
        self.last_send = Some((now, samples));
        self.count(payload_len);
        RtpHeader {
            marker,
            pt,
            seq: self.take_seq(),
            timestamp,
            ssrc: self.ssrc,
        }
    }

    /// Writes the next audio packet with `payload` into `out` and returns its length. Nothing
    /// changes when `out` is too small.
    pub fn write_audio(
        &mut self,
        now: Instant,
        pt: Pt,
        samples: u32,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, BuildError> {
        let needed = RTP_HEADER_LEN + payload.len();
        if out.len() < needed {
            return Err(BuildError::BufferTooSmall {
                needed,
                available: out.len(),
            });
        }
        if !pt.is_valid() {
            return Err(BuildError::PayloadType(pt.0));
        }
        let header = self.next_audio_header(now, pt, samples, payload.len());
        header.write(payload, out)
    }

    /// Starts sending a telephone event (RFC 4733 §2.5.1) at the negotiated payload type `pt`,
    /// lasting `duration`, with one packet every `packet_time`. The event's timestamp is where
    /// the audio stream is now; audio resumes after the event with the marker bit set.
    pub fn start_event(
        &mut self,
        now: Instant,
        pt: Pt,
        event: u8,
        volume: u8,
        duration: Duration,
        packet_time: Duration,
    ) {
        let timestamp = if self.paused(now) {
            self.resume_timestamp(now)
        } else {
            self.next_timestamp
        };
        let total = self.units(duration);
        let step = self.units(packet_time);
        self.event = Some(ActiveEvent {
            generator: EventGenerator::new(event, volume, total, step),
            pt,
            timestamp,
            packet_samples: step.max(1),
        });
    }

    /// Returns whether a telephone event is being sent. While it is, call
    /// [`RtpSender::write_event`] each packet time instead of sending audio.
    pub fn event_active(&self) -> bool {
        self.event.is_some()
    }

    /// Writes the next packet of the active telephone event into `out`. Returns `Ok(None)` when
    /// no event is active. The first packet has the marker bit, every packet gets a new
    /// sequence number and the event's timestamp, and the end packet goes out three times.
    pub fn write_event(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<usize>, BuildError> {
        let Some(mut active) = self.event else {
            return Ok(None);
        };
        let mut probe = active.generator;
        let Some((payload, first)) = probe.next_payload() else {
            self.event = None;
            return Ok(None);
        };
        let header = RtpHeader {
            marker: first,
            pt: active.pt,
            seq: self.next_seq,
            timestamp: active.timestamp,
            ssrc: self.ssrc,
        };
        let len = header.write(&payload, out)?;

        active.generator = probe;
        self.take_seq();
        self.count(payload.len());
        self.last_send = Some((now, active.packet_samples));
        if active.generator.is_done() {
            // RFC 4733 §2.5.1.3: the event ended at its start plus its duration; audio goes on
            // from there, or from wall time if that is later.
            self.event = None;
            self.next_timestamp = active.timestamp.wrapping_add(active.generator.total());
            self.marker_next = true;
        } else {
            self.event = Some(active);
        }
        Ok(Some(len))
    }

    /// Counts for a sender report at `now`, and whether anything was sent since the previous
    /// report (RFC 3550 §6.4: send an SR only then).
    pub fn take_counts(&mut self, now: Instant) -> (SenderCounts, bool) {
        let sent = std::mem::take(&mut self.sent_since_report);
        let counts = SenderCounts {
            rtp_timestamp: self.timestamp_at(now),
            packets: self.packets,
            octets: self.octets,
        };
        (counts, sent)
    }

    /// Packets sent so far (wrapping at 2^32).
    pub fn packets(&self) -> u32 {
        self.packets
    }

    /// Payload octets sent so far (wrapping at 2^32).
    pub fn octets(&self) -> u32 {
        self.octets
    }

    /// Returns whether sending stopped for more than half a packet beyond the last packet's
    /// duration, so that the next packet starts a talkspurt.
    fn paused(&self, now: Instant) -> bool {
        let Some((at, samples)) = self.last_send else {
            return true;
        };
        let packet =
            Duration::from_nanos(u64::from(samples) * 1_000_000_000 / u64::from(self.clock_rate));
        now.saturating_duration_since(at) > packet + packet / 2
    }

    /// Returns the wall-clock timestamp, or the next continuous one when that is later, so
    /// that timestamps never go backwards.
    fn resume_timestamp(&self, now: Instant) -> u32 {
        let wall = self.timestamp_at(now);
        if self.last_send.is_none() || ts_delta(wall, self.next_timestamp) > 0 {
            wall
        } else {
            self.next_timestamp
        }
    }

    fn take_seq(&mut self) -> SeqNo {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        seq
    }

    fn count(&mut self, payload_len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        self.sent_since_report = true;
    }

    fn units(&self, duration: Duration) -> u32 {
        (duration.as_micros() * u128::from(self.clock_rate) / 1_000_000) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::dtmf::TelephoneEvent;
    use crate::rtp::packet::RtpPacket;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const FRAME: Duration = Duration::from_millis(20);

    fn sender(now: Instant) -> RtpSender {
        RtpSender::with_initial(Ssrc(0xAB), SeqNo(65534), 1000, 8000, now)
    }

    fn send_audio(sender: &mut RtpSender, now: Instant) -> (bool, u16, u32) {
        let mut out = [0u8; 200];
        let len = sender
            .write_audio(now, Pt(0), 160, &[0xff; 160], &mut out)
            .unwrap();
        let packet = RtpPacket::parse(&out[..len]).unwrap();
        (packet.marker(), packet.seq().0, packet.timestamp())
    }

    #[test]
    fn seeded_rng_gives_same_stream() {
        let now = Instant::now();
        let a = RtpSender::new(&mut StdRng::seed_from_u64(7), 8000, now);
        let b = RtpSender::new(&mut StdRng::seed_from_u64(7), 8000, now);
        let c = RtpSender::new(&mut StdRng::seed_from_u64(8), 8000, now);
        assert_eq!(a.ssrc(), b.ssrc());
        assert_eq!(a.next_seq, b.next_seq);
        assert_eq!(a.initial_timestamp, b.initial_timestamp);
        assert_ne!(a.ssrc(), c.ssrc());
    }

    #[test]
    fn continuous_packets_step_by_samples() {
        let start = Instant::now();
        let mut s = sender(start);
        let sent: Vec<_> = (0..4u32)
            .map(|i| send_audio(&mut s, start + FRAME * i))
            .collect();
        assert_eq!(
            sent,
            vec![
                (true, 65534, 1000),
                (false, 65535, 1160),
                (false, 0, 1320),
                (false, 1, 1480)
            ]
        );
        assert_eq!(s.packets(), 4);
        assert_eq!(s.octets(), 640);
    }

    #[test]
    fn tick_jitter_keeps_timestamps_on_grid() {
        let start = Instant::now();
        let mut s = sender(start);
        send_audio(&mut s, start);
        let (marker, _, ts) = send_audio(&mut s, start + Duration::from_millis(27));
        assert!(!marker);
        assert_eq!(ts, 1160);
    }

    #[test]
    fn pause_advances_timestamp_with_wall_time() {
        let start = Instant::now();
        let mut s = sender(start);
        send_audio(&mut s, start);
        send_audio(&mut s, start + FRAME);
        // Nothing is sent for a second.
        let (marker, seq, ts) = send_audio(&mut s, start + Duration::from_millis(1040));
        assert!(marker);
        assert_eq!(seq, 0);
        assert_eq!(ts, 1000 + 8320);
    }

    #[test]
    fn explicit_talkspurt_sets_marker() {
        let start = Instant::now();
        let mut s = sender(start);
        send_audio(&mut s, start);
        s.mark_talkspurt();
        let (marker, _, ts) = send_audio(&mut s, start + FRAME);
        assert!(marker);
        assert_eq!(ts, 1160);
    }

    #[test]
    fn event_continues_audio_stream() {
        let start = Instant::now();
        let mut s = sender(start);
        send_audio(&mut s, start);
        send_audio(&mut s, start + FRAME);
        s.start_event(
            start + FRAME * 2,
            Pt(101),
            4,
            10,
            Duration::from_millis(100),
            FRAME,
        );
        let mut out = [0u8; 64];
        let mut packets = Vec::new();
        let mut t = 2;
        while s.event_active() {
            if let Some(len) = s.write_event(start + FRAME * t, &mut out).unwrap() {
                let packet = RtpPacket::parse(&out[..len]).unwrap();
                let event = TelephoneEvent::parse(packet.payload()).unwrap();
                packets.push((packet.marker(), packet.seq().0, packet.timestamp(), event));
            }
            t += 1;
        }
        assert_eq!(packets.len(), 5 + 2);
        assert!(packets[0].0);
        assert!(packets[1..].iter().all(|p| !p.0));
        let seqs: Vec<u16> = packets.iter().map(|p| p.1).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3, 4, 5, 6]);
        assert!(packets.iter().all(|p| p.2 == 1320));
        assert!(packets.iter().all(|p| p.3.event == 4));
        assert_eq!(packets.iter().filter(|p| p.3.end).count(), 3);
        assert!(
            packets
                .iter()
                .all(|p| s.ssrc() == Ssrc(0xAB) && p.3.volume == 10)
        );

        // Audio resumes with the next sequence number, a timestamp at or after the event's
        // end, and the marker bit.
        let (marker, seq, ts) = send_audio(&mut s, start + FRAME * t);
        assert!(marker);
        assert_eq!(seq, 7);
        assert!(ts_delta(ts, 1320 + 800) >= 0, "{ts}");
    }

    #[test]
    fn event_at_48k_uses_its_clock() {
        let start = Instant::now();
        let mut s = RtpSender::with_initial(Ssrc(1), SeqNo(0), 0, 48_000, start);
        s.start_event(start, Pt(97), 11, 10, Duration::from_millis(60), FRAME);
        let mut out = [0u8; 64];
        let len = s.write_event(start, &mut out).unwrap().unwrap();
        let packet = RtpPacket::parse(&out[..len]).unwrap();
        assert_eq!(packet.pt(), Pt(97));
        let event = TelephoneEvent::parse(packet.payload()).unwrap();
        assert_eq!(event.duration, 960);
    }

    #[test]
    fn small_buffer_changes_nothing() {
        let start = Instant::now();
        let mut s = sender(start);
        let mut out = [0u8; 20];
        assert!(
            s.write_audio(start, Pt(0), 160, &[0; 160], &mut out)
                .is_err()
        );
        assert_eq!(s.packets(), 0);
        let (_, seq, _) = send_audio(&mut s, start);
        assert_eq!(seq, 65534);
    }

    #[test]
    fn report_counts_only_after_sending() {
        let start = Instant::now();
        let mut s = sender(start);
        let (_, sent) = s.take_counts(start);
        assert!(!sent);
        send_audio(&mut s, start);
        let (counts, sent) = s.take_counts(start + Duration::from_millis(500));
        assert!(sent);
        assert_eq!(counts.packets, 1);
        assert_eq!(counts.octets, 160);
        assert_eq!(counts.rtp_timestamp, 1000 + 4000);
        assert!(!s.take_counts(start).1);
    }
}
