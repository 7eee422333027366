//! RFC 4733 telephone events: the payload format, a receiver that reports exactly one press per
//! key press, and the packet sequence a sender emits for one digit.
//!
//! ```text
//!  0                   1                   2                   3
//! |     event     |E|R| volume    |          duration             |
//! ```
//!
//! The payload type and clock rate come from the call's SDP negotiation; nothing here assumes
//! 101 or 8000.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::ids::{Ssrc, ts_delta};

/// Length of one event payload.
pub const EVENT_PAYLOAD_LEN: usize = 4;
/// Largest event code that is a DTMF key (RFC 4733 §3.2: 0-9, *, #, A-D).
const LAST_DTMF_EVENT: u8 = 15;
/// End packets sent for each event (RFC 4733 §2.5.1.4 recommends three).
pub const END_PACKETS: u8 = 3;
/// A press whose end packets were all lost is taken as released after this much silence.
const RELEASE_TIMEOUT: Duration = Duration::from_millis(500);
/// Sources whose event state is remembered at once.
const MAX_SOURCES: usize = 4;

/// Error reading a telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The payload is shorter than 4 bytes.
    #[error("telephone-event payload of {0} bytes is shorter than 4")]
    TooShort(usize),
}

/// One RFC 4733 event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-15 are DTMF keys, 16 is flash).
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event of a payload; bytes after the first 4 are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, EventError> {
        let Some(bytes) = payload.get(..EVENT_PAYLOAD_LEN) else {
            return Err(EventError::TooShort(payload.len()));
        };
        Ok(TelephoneEvent {
            event: bytes[0],
            end: bytes[1] & 0x80 != 0,
            volume: bytes[1] & 0x3f,
            duration: u16::from_be_bytes([bytes[2], bytes[3]]),
        })
    }

    /// Writes the payload; the R bit is always zero (RFC 4733 §2.3).
    pub fn to_bytes(self) -> [u8; EVENT_PAYLOAD_LEN] {
        let duration = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            duration[0],
            duration[1],
        ]
    }
}

/// Returns the key of a DTMF event code: `0-9`, `*`, `#`, `A-D`.
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=LAST_DTMF_EVENT => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Returns the event code of a DTMF key (case-insensitive for `A-D`).
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// Key press or release reported by the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A key went down: reported once per press, from whichever packet of it arrived first.
    Pressed {
        /// Source that sent it.
        ssrc: Ssrc,
        /// Event code.
        event: u8,
        /// When the first packet of the press arrived.
        at: Instant,
    },
    /// The key went up (an end packet arrived, a newer event started, or nothing came for a
    /// while).
    Released {
        /// Source that sent it.
        ssrc: Ssrc,
        /// Event code.
        event: u8,
        /// Length of the press as the sender reported it.
        duration: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Press {
    event: u8,
    /// Timestamp of the current segment; long presses start a new segment every 65535 units.
    segment_ts: u32,
    segment_duration: u16,
    /// Duration of the segments before the current one, in timestamp units.
    earlier: u64,
    ended: bool,
    /// Ended with a full 65535-unit segment: the press may go on in a next segment, so its
    /// release waits for that segment, a different event or the timeout.
    at_boundary: bool,
    last_packet: Instant,
}

impl Press {
    fn open(&self) -> bool {
        !self.ended || self.at_boundary
    }
}

#[derive(Debug, Clone)]
struct SourceState {
    ssrc: Ssrc,
    press: Option<Press>,
}

/// Turns received telephone-event packets into one press per key press, per SSRC.
#[derive(Debug)]
pub struct DtmfReceiver {
    clock_rate: u32,
    sources: Vec<SourceState>,
    events: VecDeque<DtmfEvent>,
}

impl DtmfReceiver {
    /// Creates a receiver for events at the negotiated clock rate.
    pub fn new(clock_rate: u32) -> Self {
        DtmfReceiver {
            clock_rate: clock_rate.max(1),
            sources: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// Handles one telephone-event packet; read the results with [`DtmfReceiver::poll_event`].
    pub fn handle_packet(
        &mut self,
        now: Instant,
        ssrc: Ssrc,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), EventError> {
        let event = TelephoneEvent::parse(payload)?;
        let slot = self.source_index(ssrc);
        let press = self.sources[slot].press;
        let updated = self.update_press(press, ssrc, now, timestamp, event);
        self.sources[slot].press = updated;
        Ok(())
    }

    /// Releases presses whose end packets never came.
    pub fn handle_timeout(&mut self, now: Instant) {
        for slot in 0..self.sources.len() {
            let ssrc = self.sources[slot].ssrc;
            let Some(mut press) = self.sources[slot].press else {
                continue;
            };
            if press.open() && now.saturating_duration_since(press.last_packet) >= RELEASE_TIMEOUT {
                press.ended = true;
                press.at_boundary = false;
                self.release(ssrc, &press);
                self.sources[slot].press = Some(press);
            }
        }
    }

    /// When [`DtmfReceiver::handle_timeout`] should run next, if a press is open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sources
            .iter()
            .filter_map(|s| s.press)
            .filter(Press::open)
            .map(|p| p.last_packet + RELEASE_TIMEOUT)
            .min()
    }

    /// Returns the next press or release, oldest first.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop_front()
    }

    fn source_index(&mut self, ssrc: Ssrc) -> usize {
        if let Some(position) = self.sources.iter().position(|s| s.ssrc == ssrc) {
            return position;
        }
        if self.sources.len() >= MAX_SOURCES {
            self.sources.remove(0);
        }
        self.sources.push(SourceState { ssrc, press: None });
        self.sources.len() - 1
    }

    /// Applies one packet to a source's press, queues the events it causes and returns the
    /// press as it is now.
    fn update_press(
        &mut self,
        press: Option<Press>,
        ssrc: Ssrc,
        now: Instant,
        timestamp: u32,
        event: TelephoneEvent,
    ) -> Option<Press> {
        let Some(mut current) = press else {
            return Some(self.start_press(None, ssrc, now, timestamp, event));
        };
        let age = ts_delta(timestamp, current.segment_ts);

        if age == 0 && event.event == current.event {
            current.segment_duration = current.segment_duration.max(event.duration);
            current.last_packet = now;
            if event.end && !current.ended {
                self.end_segment(ssrc, &mut current);
            }
            return Some(current);
        }
        if is_next_segment(&current, age, event) {
            // RFC 4733 §2.5.1.3: a press longer than the 16-bit duration goes on in a new
            // segment whose timestamp is where the previous one ended. Same press, no digit.
            current.earlier += u64::from(current.segment_duration);
            current.segment_ts = timestamp;
            current.segment_duration = event.duration;
            current.ended = false;
            current.at_boundary = false;
            current.last_packet = now;
            if event.end {
                self.end_segment(ssrc, &mut current);
            }
            return Some(current);
        }
        if age < 0 {
            // A late or repeated packet of an older event: its press was reported already.
            return Some(current);
        }
        Some(self.start_press(Some(current), ssrc, now, timestamp, event))
    }

    fn end_segment(&mut self, ssrc: Ssrc, press: &mut Press) {
        press.ended = true;
        if press.segment_duration == u16::MAX {
            press.at_boundary = true;
        } else {
            self.release(ssrc, press);
        }
    }

    fn start_press(
        &mut self,
        previous: Option<Press>,
        ssrc: Ssrc,
        now: Instant,
        timestamp: u32,
        event: TelephoneEvent,
    ) -> Press {
        if let Some(previous) = previous.filter(Press::open) {
            // The end packets of the previous press were lost: release it first.
            self.release(ssrc, &previous);
        }
        let mut press = Press {
            event: event.event,
            segment_ts: timestamp,
            segment_duration: event.duration,
            earlier: 0,
            ended: false,
            at_boundary: false,
            last_packet: now,
        };
        self.events.push_back(DtmfEvent::Pressed {
            ssrc,
            event: event.event,
            at: now,
        });
        // The first packet seen may already be an end packet when the others were lost.
        if event.end {
            self.end_segment(ssrc, &mut press);
        }
        press
    }

    fn release(&mut self, ssrc: Ssrc, press: &Press) {
        let units = press.earlier + u64::from(press.segment_duration);
        let micros = units * 1_000_000 / u64::from(self.clock_rate);
        self.events.push_back(DtmfEvent::Released {
            ssrc,
            event: press.event,
            duration: Duration::from_micros(micros),
        });
    }
}

fn is_next_segment(current: &Press, age: i32, event: TelephoneEvent) -> bool {
    current.open()
        && event.event == current.event
        && age > 0
        && age as u32 >= u32::from(current.segment_duration)
        && age as u32 <= u32::from(u16::MAX)
}

/// Generates the payloads for one outgoing event (RFC 4733 §2.5.1): updates every packet time
/// while the key is held, then the end packet three times. The caller owns timestamps and
/// sequence numbers: every payload shares the event's start timestamp, and each gets the next
/// sequence number (RFC 4733 §2.5.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventGenerator {
    event: u8,
    volume: u8,
    total: u16,
    step: u16,
    sent_duration: u16,
    started: bool,
    ends_sent: u8,
}

impl EventGenerator {
    /// Creates the generator for `event` lasting `total` timestamp units, reporting every
    /// `step` units (one packet time). Durations are capped at 65535 units, the longest one
    /// segment can carry.
    pub fn new(event: u8, volume: u8, total: u32, step: u32) -> Self {
        let total = total.clamp(1, u32::from(u16::MAX)) as u16;
        EventGenerator {
            event,
            volume: volume.min(63),
            total,
            step: step.clamp(1, u32::from(u16::MAX)) as u16,
            sent_duration: 0,
            started: false,
            ends_sent: 0,
        }
    }

    /// Returns the next payload and whether it is the first of the event (which carries the
    /// marker bit), or `None` when all end packets have been produced.
    pub fn next_payload(&mut self) -> Option<([u8; EVENT_PAYLOAD_LEN], bool)> {
        if self.ends_sent >= END_PACKETS {
            return None;
        }
        let first = !self.started;
        self.started = true;
        self.sent_duration = self.sent_duration.saturating_add(self.step).min(self.total);
        let end = self.sent_duration >= self.total;
        if end {
            self.ends_sent += 1;
        }
        let payload = TelephoneEvent {
            event: self.event,
            end,
            volume: self.volume,
            duration: self.sent_duration,
        };
        Some((payload.to_bytes(), first))
    }

    /// Returns whether every packet has been produced.
    pub fn is_done(&self) -> bool {
        self.ends_sent >= END_PACKETS
    }

    /// Duration of the whole event in timestamp units.
    pub fn total(&self) -> u32 {
        u32::from(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    struct Feed {
        receiver: DtmfReceiver,
        now: Instant,
        events: Vec<DtmfEvent>,
    }

    impl Feed {
        fn new(clock_rate: u32) -> Self {
            Feed {
                receiver: DtmfReceiver::new(clock_rate),
                now: Instant::now(),
                events: Vec::new(),
            }
        }

        fn send(&mut self, ssrc: u32, ts: u32, event: u8, end: bool, duration: u16) {
            self.now += Duration::from_millis(20);
            self.receiver
                .handle_packet(self.now, Ssrc(ssrc), ts, &payload(event, end, duration))
                .unwrap();
            while let Some(event) = self.receiver.poll_event() {
                self.events.push(event);
            }
        }

        /// Sends a full press: updates every `step` units, then three end packets.
        fn press(&mut self, ts: u32, event: u8, units: u16, step: u16) {
            let mut duration = step;
            while duration < units {
                self.send(1, ts, event, false, duration);
                duration += step;
            }
            for _ in 0..3 {
                self.send(1, ts, event, true, units);
            }
        }

        fn pressed(&self) -> Vec<char> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    DtmfEvent::Pressed { event, .. } => event_to_digit(*event),
                    DtmfEvent::Released { .. } => None,
                })
                .collect()
        }
    }

    #[test]
    fn payload_round_trips() {
        let event = TelephoneEvent {
            event: 11,
            end: true,
            volume: 63,
            duration: 0xFFFF,
        };
        assert_eq!(TelephoneEvent::parse(&event.to_bytes()), Ok(event));
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(EventError::TooShort(3))
        );
    }

    #[test]
    fn digits_map_both_ways() {
        for (digit, code) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('d', 15),
        ] {
            assert_eq!(digit_to_event(digit), Some(code));
        }
        assert_eq!(event_to_digit(11), Some('#'));
        assert_eq!(event_to_digit(15), Some('D'));
        assert_eq!(event_to_digit(16), None);
        assert_eq!(digit_to_event('x'), None);
    }

    #[test]
    fn one_press_despite_three_end_packets() {
        let mut feed = Feed::new(8000);
        feed.press(1000, 4, 2000, 160);
        assert_eq!(feed.pressed(), vec!['4']);
        let releases: Vec<_> = feed
            .events
            .iter()
            .filter(|e| matches!(e, DtmfEvent::Released { .. }))
            .collect();
        assert_eq!(releases.len(), 1);
        assert!(matches!(
            releases[0],
            DtmfEvent::Released { duration, .. } if *duration == Duration::from_millis(250)
        ));
    }

    #[test]
    fn same_digit_twice_is_two_presses() {
        let mut feed = Feed::new(8000);
        feed.press(1000, 4, 2000, 160);
        feed.press(5000, 4, 2000, 160);
        assert_eq!(feed.pressed(), vec!['4', '4']);
    }

    #[test]
    fn lost_start_still_reports_once() {
        let mut feed = Feed::new(8000);
        // Only the last update and the end packets arrive.
        feed.send(1, 1000, 7, false, 1600);
        feed.send(1, 1000, 7, true, 2000);
        feed.send(1, 1000, 7, true, 2000);
        // Only end packets arrive for the next press.
        feed.send(1, 4000, 8, true, 2000);
        feed.send(1, 4000, 8, true, 2000);
        assert_eq!(feed.pressed(), vec!['7', '8']);
    }

    #[test]
    fn lost_end_packets_release_on_next_press() {
        let mut feed = Feed::new(8000);
        feed.send(1, 1000, 1, false, 160);
        feed.send(1, 1000, 1, false, 320);
        feed.send(1, 3000, 2, false, 160);
        assert_eq!(feed.pressed(), vec!['1', '2']);
        assert!(matches!(
            feed.events[1],
            DtmfEvent::Released { event: 1, .. }
        ));
    }

    #[test]
    fn lost_end_packets_release_on_timeout() {
        let mut feed = Feed::new(8000);
        feed.send(1, 1000, 3, false, 160);
        let deadline = feed.receiver.poll_timeout().unwrap();
        feed.receiver
            .handle_timeout(deadline - Duration::from_millis(1));
        assert!(feed.receiver.poll_event().is_none());
        feed.receiver.handle_timeout(deadline);
        assert!(matches!(
            feed.receiver.poll_event(),
            Some(DtmfEvent::Released { event: 3, .. })
        ));
        assert!(feed.receiver.poll_timeout().is_none());
    }

    #[test]
    fn long_press_across_segments_at_48k() {
        for end_bit_at_boundary in [false, true] {
            let mut feed = Feed::new(48_000);
            // A 3 s press at 48 kHz is 144000 units: segments of 65535, 65535 and 12930.
            let step = 960u16;
            let mut ts = 500_000u32;
            let mut left = 144_000u32;
            while left > 0 {
                let segment = left.min(u32::from(u16::MAX)) as u16;
                let mut duration = step;
                while duration < segment {
                    feed.send(1, ts, 5, false, duration);
                    duration = duration.saturating_add(step);
                }
                let last = left <= u32::from(u16::MAX);
                let repeats = if last { 3 } else { 1 };
                for _ in 0..repeats {
                    feed.send(1, ts, 5, last || end_bit_at_boundary, segment);
                }
                ts = ts.wrapping_add(u32::from(segment));
                left -= u32::from(segment);
            }
            assert_eq!(feed.pressed(), vec!['5'], "end bit {end_bit_at_boundary}");
            let releases: Vec<_> = feed
                .events
                .iter()
                .filter(|e| matches!(e, DtmfEvent::Released { .. }))
                .collect();
            assert_eq!(
                releases,
                vec![&DtmfEvent::Released {
                    ssrc: Ssrc(1),
                    event: 5,
                    duration: Duration::from_secs(3)
                }],
                "end bit {end_bit_at_boundary}"
            );
        }
    }

    #[test]
    fn reordered_old_packet_is_ignored() {
        let mut feed = Feed::new(8000);
        feed.press(1000, 4, 800, 160);
        feed.send(1, 3000, 2, false, 160);
        feed.send(1, 1000, 4, false, 320);
        assert_eq!(feed.pressed(), vec!['4', '2']);
    }

    #[test]
    fn sources_are_tracked_apart() {
        let mut feed = Feed::new(8000);
        feed.send(1, 1000, 1, false, 160);
        feed.send(2, 1000, 1, false, 160);
        feed.send(1, 1000, 1, true, 320);
        feed.send(2, 1000, 1, true, 320);
        assert_eq!(feed.pressed(), vec!['1', '1']);
        let sources: Vec<_> = feed
            .events
            .iter()
            .filter_map(|e| match e {
                DtmfEvent::Pressed { ssrc, .. } => Some(*ssrc),
                DtmfEvent::Released { .. } => None,
            })
            .collect();
        assert_eq!(sources, vec![Ssrc(1), Ssrc(2)]);
    }

    #[test]
    fn generator_marks_first_and_repeats_end() {
        let mut generator = EventGenerator::new(11, 10, 800, 160);
        let mut packets = Vec::new();
        while let Some((bytes, first)) = generator.next_payload() {
            packets.push((TelephoneEvent::parse(&bytes).unwrap(), first));
        }
        assert_eq!(packets.len(), 4 + 3);
        assert!(packets[0].1);
        assert!(packets[1..].iter().all(|(_, first)| !first));
        let durations: Vec<u16> = packets.iter().map(|(e, _)| e.duration).collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800]);
        let ends = packets.iter().filter(|(e, _)| e.end).count();
        assert_eq!(ends, 3);
        assert!(packets.iter().all(|(e, _)| e.event == 11));
        assert!(packets.iter().all(|(e, _)| e.volume == 10));
        assert!(generator.is_done());
    }

    #[test]
    fn generated_packets_give_one_press() {
        let mut generator = EventGenerator::new(9, 10, 1200, 160);
        let mut feed = Feed::new(8000);
        while let Some((bytes, _)) = generator.next_payload() {
            let event = TelephoneEvent::parse(&bytes).unwrap();
            feed.send(7, 4242, event.event, event.end, event.duration);
        }
        assert_eq!(feed.pressed(), vec!['9']);
    }
}
