//! The adaptive jitter buffer of one received stream.
//!
//! Packets are kept in playout-index order. A playout clock maps RTP timestamps to instants:
//! `deadline(ts) = anchor_at + (ts - anchor_ts) / clock_rate`. The media path calls
//! [`JitterBuffer::pop`] once per tick. A packet is handed out when its deadline has come, and a
//! missing packet is declared lost when its deadline passes. An empty buffer at a deadline
//! pauses the clock by one tick, which is how the delay grows when the network slows down.
//! The clock is re-anchored at `arrival + target delay` at each talkspurt start, source change
//! and timestamp discontinuity, which is where the delay shrinks back to the target without
//! cutting speech. A stream that never pauses and keeps well over the target buffered loses one
//! packet to bring the delay down.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::delay::DelayEstimator;
use super::item::{FecSource, Incoming, PayloadKind, PlayoutItem, PlayoutPacket};
use crate::rtp::config::RtpConfig;
use crate::rtp::ids::{ExtSeq, Pt, Ssrc, ts_delta};
use crate::rtp::stats::DropReason;

/// Maximum packet duration the buffer accounts for (RFC 3551 §4.2 allows up to 200 ms of audio).
const MAX_PACKET: Duration = Duration::from_millis(200);
/// A timestamp gap up to this many packet durations, with no marker bit, is played as
/// silence without moving the playout clock.
const SHORT_GAP_PACKETS: u32 = 4;
/// Deliveries over which the shortest wait in the buffer is measured.
const WAIT_WINDOW: u32 = 50;

/// Settings of one jitter buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream's audio payload type.
    pub clock_rate: u32,
    /// Smallest playout delay.
    pub min_delay: Duration,
    /// Largest playout delay.
    pub max_delay: Duration,
    /// Interval between [`JitterBuffer::pop`] calls.
    pub tick: Duration,
    /// Packet duration to assume before the stream shows its own (the SDP ptime).
    pub packet_time: Duration,
}

impl JitterConfig {
    /// Builds the settings from the `[rtp]` section, the codec clock rate and the negotiated
    /// packet time, with a 20 ms tick.
    pub fn new(config: &RtpConfig, clock_rate: u32, packet_time: Duration) -> Self {
        JitterConfig {
            clock_rate,
            min_delay: Duration::from_millis(u64::from(config.jitter_min_ms)),
            max_delay: Duration::from_millis(u64::from(config.jitter_max_ms)),
            tick: Duration::from_millis(20),
            packet_time,
        }
    }
}

/// Counters of one jitter buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Audio packets handed out for decoding.
    pub played: u64,
    /// Packets declared lost at their playout time.
    pub concealed: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Packets already in the buffer.
    pub duplicates: u64,
    /// Packets dropped because the buffer held more than it should.
    pub overflow: u64,
    /// Ticks with nothing to play while the stream was expected to continue.
    pub underruns: u64,
    /// Times the playout clock was re-anchored.
    pub reanchors: u64,
}

#[derive(Debug)]
struct Entry {
    index: u64,
    timestamp: u32,
    pt: Pt,
    marker: bool,
    ssrc: Ssrc,
    kind: PayloadKind,
    duration: Option<u32>,
    arrival: Instant,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    next_index: u64,
    next_ts: u32,
    anchor_at: Instant,
    anchor_ts: u32,
    last_duration: u32,
    /// Silence played by underruns since the last packet, in timestamp units. When the packets
    /// that should have filled it turn out lost, that silence already took their place.
    underrun_samples: u32,
}

/// Adaptive jitter buffer for one received audio stream. See the module documentation for
/// how the playout clock works.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    capacity: usize,
    entries: VecDeque<Entry>,
    pool: Vec<Vec<u8>>,
    current: Option<Entry>,
    clock: Option<Clock>,
    delay: DelayEstimator,
    comfort_noise: Option<u8>,
    last_ssrc: Option<Ssrc>,
    shortest_wait: Option<Duration>,
    window_deliveries: u32,
    shrink: bool,
    stats: JitterStats,
}

impl JitterBuffer {
    /// Creates an empty buffer.
    pub fn new(config: JitterConfig) -> Self {
        let config = JitterConfig {
            clock_rate: config.clock_rate.max(1),
            max_delay: config.max_delay.max(config.min_delay),
            tick: config.tick.max(Duration::from_millis(1)),
            ..config
        };
        // Room for twice the largest delay in 10 ms packets, the shortest common ptime.
        let capacity = (config.max_delay.as_millis() as usize / 10) * 2 + 8;
        JitterBuffer {
            capacity,
            entries: VecDeque::with_capacity(capacity),
            pool: Vec::new(),
            current: None,
            clock: None,
            delay: DelayEstimator::new(config.clock_rate, config.min_delay, config.max_delay),
            comfort_noise: None,
            last_ssrc: None,
            shortest_wait: None,
            window_deliveries: 0,
            shrink: false,
            stats: JitterStats::default(),
            config,
        }
    }

    /// Adds a packet that arrived at `now`. Returns why it was dropped, if it was: late (its
    /// playout time has passed), a duplicate, or overflow (never for the packet just added
    /// unless the buffer is full of newer ones).
    pub fn push(&mut self, now: Instant, packet: Incoming<'_>) -> Result<(), DropReason> {
        let index = packet.index.0;
        if let Some(clock) = self.clock
            && index < clock.next_index
        {
            self.on_late(now, &clock, packet.timestamp);
            return Err(DropReason::Late);
        }
        let position = match self.entries.binary_search_by_key(&index, |e| e.index) {
            Ok(_) => {
                self.stats.duplicates += 1;
                return Err(DropReason::Duplicate);
            }
            Err(position) => position,
        };
        if self.entries.len() >= self.capacity {
            self.catch_up(now);
            if self.entries.len() >= self.capacity {
                return self.drop_when_full(now, packet);
            }
            return self.push(now, packet);
        }

        if packet.kind == PayloadKind::Audio {
            self.delay.on_arrival(now, packet.timestamp);
        }
        let payload = self.take_storage(packet.payload);
        self.entries.insert(
            position,
            Entry {
                index,
                timestamp: packet.timestamp,
                pt: packet.pt,
                marker: packet.marker,
                ssrc: packet.ssrc,
                kind: packet.kind,
                duration: packet.duration.filter(|&d| d > 0),
                arrival: now,
                payload,
            },
        );
        Ok(())
    }

    fn drop_when_full(&mut self, now: Instant, packet: Incoming<'_>) -> Result<(), DropReason> {
        self.stats.overflow += 1;
        let newest = self.entries.back().map(|e| e.index).unwrap_or(0);
        if packet.index.0 < newest {
            return Err(DropReason::Overflow);
        }
        if let Some(old) = self.entries.pop_front() {
            self.recycle(old);
        }
        self.resync_to_front(now);
        self.push(now, packet)
    }

    fn on_late(&mut self, now: Instant, clock: &Clock, timestamp: u32) {
        self.stats.late += 1;
        let deadline = self.deadline(clock, timestamp);
        let lateness = now.saturating_duration_since(deadline);
        let target = self.delay.target(now);
        self.delay.on_late(now, target, lateness);
        tracing::trace!(?lateness, "late rtp packet dropped");
    }

    /// Returns the next item due at `now`. At each tick, call it until it returns
    /// [`PlayoutItem::Nothing`], because packets shorter than a tick come out several per tick.
    /// Each item borrows the buffer until the next call.
    pub fn pop(&mut self, now: Instant) -> PlayoutItem<'_> {
        if let Some(done) = self.current.take() {
            self.recycle(done);
        }
        if self.clock.is_none() && !self.start(now) {
            return PlayoutItem::Nothing;
        }
        self.skip_placeholders();
        self.catch_up_if_behind(now);
        self.pop_due(now)
    }

    /// Picks the item for `now` once the clock runs and placeholders are skipped.
    fn pop_due(&mut self, now: Instant) -> PlayoutItem<'_> {
        let Some(clock) = self.clock else {
            return PlayoutItem::Nothing;
        };
        let due = self.deadline(&clock, clock.next_ts) <= now;

        match self.entries.front() {
            None if due => self.underrun(now),
            Some(head) if head.index == clock.next_index => self.play_head(now),
            Some(_) if due => self.conceal(now),
            _ => PlayoutItem::Nothing,
        }
    }

    /// Starts the playout clock at the first buffered packet; false when there is none.
    fn start(&mut self, now: Instant) -> bool {
        let Some(head) = self.entries.front() else {
            return false;
        };
        let default_duration = self.samples(self.config.packet_time);
        self.clock = Some(Clock {
            next_index: head.index,
            next_ts: head.timestamp,
            anchor_at: head.arrival + self.delay.target(now),
            anchor_ts: head.timestamp,
            last_duration: default_duration.max(1),
            underrun_samples: 0,
        });
        true
    }

    /// Consumes telephone-event and unknown-payload packets at the head: they fill their
    /// sequence numbers so that no loss is counted, and play nothing.
    fn skip_placeholders(&mut self) {
        while let (Some(clock), Some(head)) = (self.clock.as_mut(), self.entries.front()) {
            if head.kind != PayloadKind::Placeholder || head.index != clock.next_index {
                return;
            }
            clock.next_index += 1;
            if let Some(entry) = self.entries.pop_front() {
                self.recycle(entry);
            }
        }
    }

    fn catch_up_if_behind(&mut self, now: Instant) {
        let Some(clock) = self.clock else { return };
        if self.entries.is_empty() {
            return;
        }
        let behind = now.saturating_duration_since(self.deadline(&clock, clock.next_ts));
        if behind > self.config.max_delay + self.config.tick {
            self.catch_up(now);
        }
    }

    /// Drops packets that have waited longer than the target delay (the media path stopped
    /// pulling, or a burst arrived) and restarts the clock at the oldest packet kept.
    fn catch_up(&mut self, now: Instant) {
        let target = self.delay.target(now);
        while self.entries.len() > 1 {
            let Some(head) = self.entries.front() else {
                break;
            };
            if now.saturating_duration_since(head.arrival) <= target {
                break;
            }
            if let Some(old) = self.entries.pop_front() {
                self.stats.overflow += 1;
                self.recycle(old);
            }
        }
        self.resync_to_front(now);
    }

    fn resync_to_front(&mut self, now: Instant) {
        let Some(head) = self.entries.front() else {
            return;
        };
        let (index, ts, arrival) = (head.index, head.timestamp, head.arrival);
        let target = self.delay.target(now);
        if let Some(clock) = self.clock.as_mut() {
            clock.next_index = index;
            clock.next_ts = ts;
            clock.anchor_ts = ts;
            clock.anchor_at = (arrival + target).min(now);
            self.stats.reanchors += 1;
        }
    }

    fn underrun(&mut self, now: Instant) -> PlayoutItem<'_> {
        self.stats.underruns += 1;
        let tick = self.samples(self.config.tick);
        if let Some(clock) = self.clock.as_mut() {
            // Pause the playout clock: the next packet plays one tick later than planned.
            clock.anchor_at = now + self.config.tick;
            clock.anchor_ts = clock.next_ts;
            clock.underrun_samples = clock.underrun_samples.saturating_add(tick);
        }
        PlayoutItem::Silence {
            samples: tick,
            comfort_noise: self.comfort_noise,
        }
    }

    /// Plays the packet at the head, whose index is the next one expected.
    fn play_head(&mut self, now: Instant) -> PlayoutItem<'_> {
        let (Some(mut clock), Some(head)) = (self.clock, self.entries.front()) else {
            return PlayoutItem::Nothing;
        };
        let gap = ts_delta(head.timestamp, clock.next_ts);
        let short_gap = clock.last_duration.saturating_mul(SHORT_GAP_PACKETS);
        let due = self.deadline(&clock, clock.next_ts) <= now;

        if gap > 0 && !head.marker && gap as u32 <= short_gap {
            // The sender skipped a little time (a short silence). Play it as silence and keep
            // the clock, so the packet plays exactly at its timestamp.
            if !due {
                return PlayoutItem::Nothing;
            }
            clock.next_ts = head.timestamp;
            self.clock = Some(clock);
            return PlayoutItem::Silence {
                samples: gap as u32,
                comfort_noise: self.comfort_noise,
            };
        }
        if gap != 0 {
            // A talkspurt start, a long silence, a new source or a timestamp discontinuity:
            // re-anchor at this packet's arrival plus the target delay.
            let planned = self.deadline(&clock, clock.next_ts);
            clock.anchor_at = (head.arrival + self.delay.target(now)).max(planned);
            clock.anchor_ts = head.timestamp;
            clock.next_ts = head.timestamp;
            self.clock = Some(clock);
            self.stats.reanchors += 1;
            if head.ssrc != self.last_ssrc.unwrap_or(head.ssrc) || gap < 0 {
                self.delay.restart();
            }
            if clock.anchor_at > now {
                return PlayoutItem::Nothing;
            }
        } else if !due {
            return PlayoutItem::Nothing;
        }
        self.deliver_head(now)
    }

    fn deliver_head(&mut self, now: Instant) -> PlayoutItem<'_> {
        if self.shrink && self.drop_head_for_delay() {
            return self.play_head(now);
        }
        let Some(entry) = self.entries.pop_front() else {
            return PlayoutItem::Nothing;
        };
        let duration = self.duration_of(&entry);
        let Some(clock) = self.clock.as_mut() else {
            return PlayoutItem::Nothing;
        };
        clock.next_index = entry.index + 1;
        clock.next_ts = entry.timestamp.wrapping_add(duration);

        if entry.kind == PayloadKind::ComfortNoise {
            // RFC 3389 §3: the first payload byte is the noise level in -dBov.
            let level = entry.payload.first().copied().unwrap_or(127) & 0x7f;
            self.comfort_noise = Some(level);
            self.recycle(entry);
            return PlayoutItem::Silence {
                samples: duration,
                comfort_noise: Some(level),
            };
        }

        clock.last_duration = duration;
        clock.underrun_samples = 0;
        self.comfort_noise = None;
        self.measure_wait(now, entry.arrival);
        let new_source = self.last_ssrc != Some(entry.ssrc);
        self.last_ssrc = Some(entry.ssrc);
        self.stats.played += 1;
        let entry = self.current.insert(entry);
        PlayoutItem::Packet(PlayoutPacket {
            index: ExtSeq(entry.index),
            ssrc: entry.ssrc,
            pt: entry.pt,
            timestamp: entry.timestamp,
            duration,
            marker: entry.marker,
            new_source,
            payload: &entry.payload,
        })
    }

    /// Declares the next expected packet lost, its deadline having passed.
    fn conceal(&mut self, now: Instant) -> PlayoutItem<'_> {
        let (Some(mut clock), Some(head)) = (self.clock, self.entries.front()) else {
            return PlayoutItem::Nothing;
        };
        let (head_index, head_ts, head_arrival) = (head.index, head.timestamp, head.arrival);
        let head_is_audio = head.kind == PayloadKind::Audio;
        let missing = head_index - clock.next_index;
        let gap = ts_delta(head_ts, clock.next_ts);
        let per_packet = if gap > 0 {
            gap as u32 / missing as u32
        } else {
            0
        };
        self.stats.concealed += 1;

        if per_packet == 0 || per_packet > self.samples(MAX_PACKET) {
            // The sequence and timestamp gaps disagree (a discontinuity inside the loss):
            // conceal one packet and restart the clock at the next packet that arrived.
            let planned = self.deadline(&clock, clock.next_ts);
            clock.next_index = head_index;
            clock.next_ts = head_ts;
            clock.anchor_ts = head_ts;
            clock.anchor_at = (head_arrival + self.delay.target(now)).max(planned);
            clock.underrun_samples = 0;
            self.clock = Some(clock);
            self.stats.reanchors += 1;
            return PlayoutItem::Lost {
                samples: clock.last_duration,
                fec: None,
            };
        }

        let covered = u64::from(clock.underrun_samples / per_packet).min(missing);
        if covered > 0 {
            // Underruns already played silence where these packets belonged: count them lost,
            // but take their slots back instead of concealing them a second time.
            let samples = covered as u32 * per_packet;
            self.stats.concealed += covered - 1;
            clock.underrun_samples -= samples;
            clock.next_index += covered;
            clock.next_ts = clock.next_ts.wrapping_add(samples);
            let slots = self.duration_of_samples(samples);
            clock.anchor_at = clock
                .anchor_at
                .checked_sub(slots)
                .unwrap_or(clock.anchor_at);
            self.clock = Some(clock);
            // At most one more call here: the budget left is below one packet.
            return self.pop_due(now);
        }

        let samples = if missing == 1 { gap as u32 } else { per_packet };
        clock.next_index += 1;
        clock.next_ts = clock.next_ts.wrapping_add(samples);
        self.clock = Some(clock);
        let fec = if missing == 1 && head_is_audio {
            self.entries.front().map(|head| FecSource {
                pt: head.pt,
                payload: &head.payload,
            })
        } else {
            None
        };
        PlayoutItem::Lost { samples, fec }
    }

    /// Tracks the shortest time a packet waited in the buffer over a window of deliveries. When
    /// even that exceeds the target by a packet and a tick, the next delivery drops a packet.
    fn measure_wait(&mut self, now: Instant, arrival: Instant) {
        let wait = now.saturating_duration_since(arrival);
        self.shortest_wait = Some(self.shortest_wait.map_or(wait, |w| w.min(wait)));
        self.window_deliveries += 1;
        if self.window_deliveries < WAIT_WINDOW {
            return;
        }
        // Packets play on tick boundaries, so a wait up to one tick above the target is only
        // rounding.
        let packet = self.duration_of_samples(self.clock.map_or(0, |c| c.last_duration));
        let limit = self.delay.target(now) + packet + self.config.tick;
        self.shrink = self.shortest_wait.is_some_and(|w| w > limit);
        self.shortest_wait = None;
        self.window_deliveries = 0;
    }

    /// Drops the audio packet at the head and moves the clock back by its duration, when the
    /// packet after it is already here. Returns whether it dropped one.
    fn drop_head_for_delay(&mut self) -> bool {
        self.shrink = false;
        let (Some(head), Some(next)) = (self.entries.front(), self.entries.get(1)) else {
            return false;
        };
        if head.kind != PayloadKind::Audio || next.index != head.index + 1 {
            return false;
        }
        let duration = ts_delta(next.timestamp, head.timestamp);
        if duration <= 0 || duration as u32 > self.samples(MAX_PACKET) {
            return false;
        }
        let shift = self.duration_of_samples(duration as u32);
        let Some(entry) = self.entries.pop_front() else {
            return false;
        };
        if let Some(clock) = self.clock.as_mut() {
            clock.next_index = entry.index + 1;
            clock.next_ts = entry.timestamp.wrapping_add(duration as u32);
            clock.anchor_at = clock
                .anchor_at
                .checked_sub(shift)
                .unwrap_or(clock.anchor_at);
        }
        self.stats.overflow += 1;
        self.recycle(entry);
        true
    }

    /// Duration of an entry: given by the caller, else up to the next packet's timestamp,
    /// else the previous packet's.
    fn duration_of(&self, entry: &Entry) -> u32 {
        if let Some(duration) = entry.duration {
            return duration;
        }
        if entry.kind == PayloadKind::ComfortNoise {
            return self.samples(self.config.tick);
        }
        let previous = self.clock.map_or(1, |c| c.last_duration);
        let Some(next) = self.entries.front() else {
            return previous;
        };
        let gap = ts_delta(next.timestamp, entry.timestamp);
        let packets = next.index.saturating_sub(entry.index);
        if packets == 0 || gap <= 0 {
            return previous;
        }
        let per_packet = gap as u32 / packets as u32;
        if per_packet == 0 || per_packet > self.samples(MAX_PACKET) || next.marker {
            return previous;
        }
        per_packet
    }

    /// Instant at which the sample with timestamp `ts` plays.
    fn deadline(&self, clock: &Clock, ts: u32) -> Instant {
        let delta = ts_delta(ts, clock.anchor_ts);
        let offset = self.duration_of_samples(delta.unsigned_abs());
        if delta >= 0 {
            clock.anchor_at + offset
        } else {
            clock
                .anchor_at
                .checked_sub(offset)
                .unwrap_or(clock.anchor_at)
        }
    }

    fn samples(&self, duration: Duration) -> u32 {
        (duration.as_micros() * u128::from(self.config.clock_rate) / 1_000_000) as u32
    }

    fn duration_of_samples(&self, samples: u32) -> Duration {
        let nanos = u64::from(samples) * 1_000_000_000 / u64::from(self.config.clock_rate);
        Duration::from_nanos(nanos)
    }

    fn take_storage(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut storage = self.pool.pop().unwrap_or_default();
        storage.clear();
        storage.extend_from_slice(payload);
        storage
    }

    fn recycle(&mut self, entry: Entry) {
        if self.pool.len() < self.capacity + 2 {
            self.pool.push(entry.payload);
        }
    }

    /// Empties the buffer and stops the playout clock, keeping the counters and the delay
    /// estimate. Use it for a re-INVITE that changes the codec, or at the end of a hold.
    pub fn reset(&mut self) {
        while let Some(entry) = self.entries.pop_front() {
            self.recycle(entry);
        }
        if let Some(done) = self.current.take() {
            self.recycle(done);
        }
        self.clock = None;
        self.comfort_noise = None;
        self.delay.restart();
    }

    /// When the next item is due, for a driver that sleeps between ticks; `None` while the
    /// buffer is empty and nothing is expected.
    pub fn next_deadline(&self) -> Option<Instant> {
        let clock = self.clock?;
        Some(self.deadline(&clock, clock.next_ts))
    }

    /// Delay the buffer aims for at `now`.
    pub fn target_delay(&self, now: Instant) -> Duration {
        self.delay.target(now)
    }

    /// Interarrival jitter as the buffer measured it.
    pub fn jitter(&self) -> Duration {
        self.delay.jitter()
    }

    /// Packets waiting to be played.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns whether no packet is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Counters since the buffer was created.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }
}
