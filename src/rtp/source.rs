//! State of one synchronization source (RFC 3550 §A.1, §A.3, §A.8): probation, extended
//! sequence numbers, re-sync after a jump, duplicate detection, loss and interarrival jitter.
//!
//! Besides the RFC's extended sequence number, which restarts when the source re-syncs, a
//! source hands out a playout index that keeps growing across re-syncs. So when a B2BUA
//! re-anchors the sequence numbers but keeps the SSRC, the jitter buffer still gets one
//! continuous stream.

use std::time::{Duration, Instant};

use super::ids::{ExtSeq, SeqNo, Ssrc, ts_delta};

/// Sequential packets needed before a new source is valid (RFC 3550 §A.1).
pub const MIN_SEQUENTIAL: u16 = 2;
/// Maximum forward sequence jump taken as loss rather than a restart (RFC 3550 §A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// Maximum backward sequence step taken as reordering rather than a restart (RFC 3550 §A.1).
pub const MAX_MISORDER: u16 = 100;

const SEQ_MOD: u64 = 1 << 16;
/// Width of the window that remembers which recent sequence numbers arrived.
const DUPLICATE_WINDOW: u64 = 128;

/// Sequence tracker verdict on one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqOutcome {
    /// A new packet (in order or reordered) with its playout index.
    Accepted(ExtSeq),
    /// This packet completed probation, so the source is now valid. The packet held during
    /// probation, one sequence number earlier, plays at the index before this one.
    Validated(ExtSeq),
    /// Two sequential packets confirmed a large jump, so the source re-synced. The packet held
    /// at the jump plays at the index before this one.
    Resynced(ExtSeq),
    /// The source is not valid yet; hold the packet until the next one decides.
    Probation,
    /// The sequence number jumped by more than [`MAX_DROPOUT`] forward or [`MAX_MISORDER`]
    /// backward; hold the packet in case the next one confirms the jump.
    Jump,
    /// The packet was received before.
    Duplicate,
    /// A reordered packet older than the start of the current number space (from before a
    /// re-sync), so it cannot be placed.
    Stale,
}

/// Loss figures for one RTCP report block (RFC 3550 §6.4.1, §A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossReport {
    /// Fraction of packets lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Packets lost since the start (or the last re-sync), clamped to 24 signed bits.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest: u32,
}

/// Receive state of one SSRC.
#[derive(Debug, Clone)]
pub struct Source {
    ssrc: Ssrc,
    clock_rate: u32,
    epoch: Instant,

    // RFC 3550 §A.1 state, with `cycles` already shifted by 16 bits.
    max_seq: u16,
    cycles: u64,
    base_seq: u64,
    bad_seq: Option<u16>,
    probation: u16,

    // RFC 3550 §A.3 counters.
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    duplicates: u64,
    window: u128,

    // RFC 3550 §A.8 state: the previous transit time and the jitter times 16.
    transit: Option<i32>,
    jitter_x16: u32,

    index_offset: i64,
    highest_index: Option<u64>,
    first_seen: Instant,
    last_seen: Instant,
    run_start: Instant,
}

impl Source {
    /// Creates the state for a source first seen at `now` with sequence number `seq`. The
    /// packet that created it is on probation: pass it to [`Source::update_seq`] as well.
    pub fn new(ssrc: Ssrc, seq: SeqNo, clock_rate: u32, now: Instant) -> Self {
        Source {
            ssrc,
            clock_rate: clock_rate.max(1),
            epoch: now,
            // RFC 3550 §A.1: probation starts one below the first packet so that it counts.
            max_seq: seq.0.wrapping_sub(1),
            cycles: 0,
            base_seq: u64::from(seq.0),
            bad_seq: None,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            duplicates: 0,
            window: 0,
            transit: None,
            jitter_x16: 0,
            index_offset: 0,
            highest_index: None,
            first_seen: now,
            last_seen: now,
            run_start: now,
        }
    }

    /// Updates the sequence state with one packet's sequence number (RFC 3550 §A.1).
    ///
    /// `next_index` is the playout index where a new stream (after probation or a re-sync)
    /// starts. Within a stream the indexes follow the sequence numbers.
    pub fn update_seq(&mut self, seq: SeqNo, next_index: u64, now: Instant) -> SeqOutcome {
        self.last_seen = now;
        if self.probation > 0 {
            return self.update_probation(seq, next_index, now);
        }

        let udelta = seq.0.wrapping_sub(self.max_seq);
        if udelta == 0 {
            self.duplicates += 1;
            return SeqOutcome::Duplicate;
        }
        if udelta < MAX_DROPOUT {
            self.advance(seq, udelta);
            self.bad_seq = None;
            self.received += 1;
            return SeqOutcome::Accepted(self.index_of(self.extended_max()));
        }
        if u64::from(udelta) <= SEQ_MOD - u64::from(MAX_MISORDER) {
            return self.update_jump(seq, next_index, now);
        }
        self.update_reordered(seq)
    }

    fn update_probation(&mut self, seq: SeqNo, next_index: u64, now: Instant) -> SeqOutcome {
        if seq.0 == self.max_seq && self.probation < MIN_SEQUENTIAL {
            self.duplicates += 1;
            return SeqOutcome::Duplicate;
        }
        if seq.0 != self.max_seq.wrapping_add(1) {
            self.probation = MIN_SEQUENTIAL - 1;
            self.max_seq = seq.0;
            return SeqOutcome::Probation;
        }
        self.probation -= 1;
        self.max_seq = seq.0;
        if self.probation > 0 {
            return SeqOutcome::Probation;
        }
        // The packet held during probation is delivered too, so it counts as received.
        self.restart(seq, next_index, now);
        SeqOutcome::Validated(self.index_of(self.extended_max()))
    }

    fn update_jump(&mut self, seq: SeqNo, next_index: u64, now: Instant) -> SeqOutcome {
        if self.bad_seq == Some(seq.0) {
            // RFC 3550 §A.1: two sequential packets after a jump mean the sender restarted its
            // numbering (a B2BUA re-anchor, for example), so follow it at once.
            self.restart(seq, next_index, now);
            return SeqOutcome::Resynced(self.index_of(self.extended_max()));
        }
        self.bad_seq = Some(seq.0.wrapping_add(1));
        SeqOutcome::Jump
    }

    fn update_reordered(&mut self, seq: SeqNo) -> SeqOutcome {
        let behind = u64::from(self.max_seq.wrapping_sub(seq.0));
        let ext = self.extended_max().wrapping_sub(behind);
        if ext < self.base_seq {
            return SeqOutcome::Stale;
        }
        let bit = 1u128 << behind;
        if self.window & bit != 0 {
            self.duplicates += 1;
            return SeqOutcome::Duplicate;
        }
        self.window |= bit;
        self.received += 1;
        SeqOutcome::Accepted(self.index_of(ext))
    }

    /// Moves the highest sequence number forward by `udelta` (at least 1).
    fn advance(&mut self, seq: SeqNo, udelta: u16) {
        if seq.0 < self.max_seq {
            self.cycles += SEQ_MOD;
        }
        self.max_seq = seq.0;
        let shift = u64::from(udelta);
        self.window = if shift >= DUPLICATE_WINDOW {
            1
        } else {
            (self.window << shift) | 1
        };
    }

    /// Starts a new number space at `seq`, with the packet before it (held by the caller)
    /// counted as received (RFC 3550 §A.1 `init_seq`).
    fn restart(&mut self, seq: SeqNo, next_index: u64, now: Instant) {
        self.max_seq = seq.0;
        self.cycles = 0;
        self.bad_seq = None;
        // Reserve `seq - 1` for the held packet; `cycles` keeps it non-negative below.
        self.base_seq = u64::from(seq.0).wrapping_sub(1);
        if seq.0 == 0 {
            // The held packet was 65535 in the previous cycle.
            self.cycles = SEQ_MOD;
            self.base_seq = SEQ_MOD - 1;
        }
        self.received = 2;
        self.expected_prior = 0;
        self.received_prior = 0;
        self.window = 0b11;
        self.transit = None;
        self.index_offset = next_index as i64 + 1 - self.extended_max() as i64;
        self.run_start = now;
    }

    fn index_of(&mut self, ext: u64) -> ExtSeq {
        let index = (ext as i64 + self.index_offset).max(0) as u64;
        if self.highest_index.is_none_or(|high| index > high) {
            self.highest_index = Some(index);
        }
        ExtSeq(index)
    }

    /// Re-bases the playout index so that the highest packet received maps to
    /// `next_index - 1`, for a source that becomes the played one again after another.
    pub fn rebase_index(&mut self, next_index: u64) {
        self.index_offset = next_index as i64 - 1 - self.extended_max() as i64;
        self.highest_index = Some(next_index.saturating_sub(1));
    }

    /// Updates the interarrival jitter with an audio packet's timestamp (RFC 3550 §A.8).
    /// Call it only for packets whose timestamp is a sampling instant: not for telephone
    /// events, whose timestamp stays at the event start.
    pub fn update_jitter(&mut self, timestamp: u32, now: Instant) {
        let arrival = self.arrival_units(now);
        let transit = arrival.wrapping_sub(timestamp) as i32;
        if let Some(previous) = self.transit {
            let d = ts_delta(transit as u32, previous as u32).unsigned_abs();
            if d > self.clock_rate.saturating_mul(2) {
                // A transit change of more than 2 s is a timestamp discontinuity, not network
                // jitter; start over from this packet instead of poisoning the estimate.
                self.transit = Some(transit);
                return;
            }
            // RFC 3550 §A.8 integer form: J += |D| - J/16, stored as 16 * J.
            let step = (self.jitter_x16 + 8) >> 4;
            self.jitter_x16 = self.jitter_x16.saturating_add(d).saturating_sub(step);
        }
        self.transit = Some(transit);
    }

    /// Forgets the previous transit time, so that a known timestamp discontinuity does not
    /// count as jitter.
    pub fn reset_transit(&mut self) {
        self.transit = None;
    }

    fn arrival_units(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.epoch);
        let units = elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        units as u32
    }

    /// Marks the start of a new run of packets (after a silence or a switch), for choosing
    /// which source to play.
    pub fn start_run(&mut self, now: Instant) {
        self.run_start = now;
    }

    /// Returns the source's SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// Returns whether the source has passed probation.
    pub fn is_valid(&self) -> bool {
        self.probation == 0
    }

    /// Extended highest sequence number received (RFC 3550 §A.1: cycles plus `max_seq`).
    pub fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// Highest playout index handed out.
    pub fn highest_index(&self) -> Option<u64> {
        self.highest_index
    }

    /// Packets received in the current number space, duplicates excluded.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected in the current number space (RFC 3550 §A.3).
    pub fn expected(&self) -> u64 {
        if !self.is_valid() {
            return 0;
        }
        (self.extended_max() + 1).saturating_sub(self.base_seq)
    }

    /// Packets lost in the current number space; negative when duplicates slipped through the
    /// window (RFC 3550 §A.3).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Duplicates received.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Interarrival jitter in timestamp units (RFC 3550 §A.8).
    pub fn jitter(&self) -> u32 {
        self.jitter_x16 >> 4
    }

    /// Interarrival jitter converted to a duration with the source's clock rate.
    pub fn jitter_duration(&self) -> Duration {
        let micros = u64::from(self.jitter()) * 1_000_000 / u64::from(self.clock_rate);
        Duration::from_micros(micros)
    }

    /// When the source sent its first packet.
    pub fn first_seen(&self) -> Instant {
        self.first_seen
    }

    /// When the source sent its latest packet.
    pub fn last_seen(&self) -> Instant {
        self.last_seen
    }

    /// When the current run of packets started.
    pub fn run_start(&self) -> Instant {
        self.run_start
    }

    /// Computes the loss figures for a report block and starts a new reporting interval
    /// (RFC 3550 §A.3).
    pub fn take_loss_report(&mut self) -> LossReport {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;

        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        // RFC 3550 §6.4.1: the cumulative count is a signed 24-bit field.
        let cumulative_lost = self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32;
        LossReport {
            fraction_lost,
            cumulative_lost,
            extended_highest: self.extended_max() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PCMU_RATE: u32 = 8000;

    struct Feed {
        source: Source,
        now: Instant,
        next_index: u64,
    }

    impl Feed {
        fn new(seq: u16) -> Self {
            let now = Instant::now();
            Feed {
                source: Source::new(Ssrc(0x1A2B3C4D), SeqNo(seq), PCMU_RATE, now),
                now,
                next_index: 0,
            }
        }

        fn push(&mut self, seq: u16) -> SeqOutcome {
            self.now += Duration::from_millis(20);
            let outcome = self
                .source
                .update_seq(SeqNo(seq), self.next_index, self.now);
            if let SeqOutcome::Accepted(ExtSeq(i))
            | SeqOutcome::Validated(ExtSeq(i))
            | SeqOutcome::Resynced(ExtSeq(i)) = outcome
            {
                self.next_index = self.next_index.max(i + 1);
            }
            outcome
        }
    }

    #[test]
    fn probation_validates_on_second_packet() {
        let mut feed = Feed::new(100);
        assert_eq!(feed.push(100), SeqOutcome::Probation);
        assert_eq!(feed.push(101), SeqOutcome::Validated(ExtSeq(1)));
        assert_eq!(feed.push(102), SeqOutcome::Accepted(ExtSeq(2)));
        assert_eq!(feed.source.received(), 3);
        assert_eq!(feed.source.expected(), 3);
        assert_eq!(feed.source.lost(), 0);
    }

    #[test]
    fn duplicate_in_probation_is_detected() {
        let mut feed = Feed::new(300);
        assert_eq!(feed.push(300), SeqOutcome::Probation);
        assert_eq!(feed.push(300), SeqOutcome::Duplicate);
        assert_eq!(feed.push(301), SeqOutcome::Validated(ExtSeq(1)));
    }

    #[test]
    fn probation_restarts_on_gap() {
        let mut feed = Feed::new(100);
        assert_eq!(feed.push(100), SeqOutcome::Probation);
        assert_eq!(feed.push(105), SeqOutcome::Probation);
        assert_eq!(feed.push(106), SeqOutcome::Validated(ExtSeq(1)));
    }

    #[test]
    fn wrap_extends_without_loss() {
        let mut feed = Feed::new(65532);
        feed.push(65532);
        feed.push(65533);
        feed.push(65534);
        assert!(matches!(feed.push(0), SeqOutcome::Accepted(ExtSeq(4))));
        assert!(matches!(feed.push(65535), SeqOutcome::Accepted(ExtSeq(3))));
        assert!(matches!(feed.push(1), SeqOutcome::Accepted(ExtSeq(5))));
        assert!(matches!(feed.push(2), SeqOutcome::Accepted(ExtSeq(6))));
        assert_eq!(feed.source.extended_max(), 65536 + 2);
        assert_eq!(feed.source.lost(), 0);
        assert_eq!(feed.source.expected(), 7);
    }

    #[test]
    fn validation_at_zero_keeps_previous_cycle() {
        let mut feed = Feed::new(65535);
        feed.push(65535);
        assert_eq!(feed.push(0), SeqOutcome::Validated(ExtSeq(1)));
        assert_eq!(feed.source.expected(), 2);
        assert_eq!(feed.source.lost(), 0);
    }

    #[test]
    fn duplicates_are_detected() {
        let mut feed = Feed::new(300);
        feed.push(300);
        feed.push(301);
        assert_eq!(feed.push(301), SeqOutcome::Duplicate);
        assert_eq!(feed.push(300), SeqOutcome::Duplicate);
        assert!(matches!(feed.push(302), SeqOutcome::Accepted(_)));
        assert_eq!(feed.push(302), SeqOutcome::Duplicate);
        assert_eq!(feed.source.duplicates(), 3);
        assert_eq!(feed.source.received(), 3);
        assert_eq!(feed.source.lost(), 0);
    }

    #[test]
    fn reordered_packet_fills_hole_once() {
        let mut feed = Feed::new(10);
        feed.push(10);
        feed.push(11);
        feed.push(13);
        assert_eq!(feed.source.lost(), 1);
        assert_eq!(feed.push(12), SeqOutcome::Accepted(ExtSeq(2)));
        assert_eq!(feed.push(12), SeqOutcome::Duplicate);
        assert_eq!(feed.source.lost(), 0);
    }

    #[test]
    fn backward_jump_resyncs_after_two_packets() {
        let mut feed = Feed::new(21290);
        for seq in 21290..=21294 {
            feed.push(seq);
        }
        let last = feed.source.highest_index().unwrap();
        assert_eq!(feed.push(12676), SeqOutcome::Jump);
        assert_eq!(feed.push(12677), SeqOutcome::Resynced(ExtSeq(last + 2)));
        assert_eq!(feed.push(12678), SeqOutcome::Accepted(ExtSeq(last + 3)));
        assert_eq!(feed.source.lost(), 0);
        assert_eq!(feed.source.expected(), 3);
    }

    #[test]
    fn single_stray_jump_does_not_resync() {
        let mut feed = Feed::new(1000);
        for seq in 1000..1005 {
            feed.push(seq);
        }
        assert_eq!(feed.push(40000), SeqOutcome::Jump);
        assert_eq!(feed.push(1005), SeqOutcome::Accepted(ExtSeq(5)));
        assert_eq!(feed.push(40001), SeqOutcome::Jump);
    }

    #[test]
    fn late_straggler_is_accepted_not_resynced() {
        let mut feed = Feed::new(480);
        for seq in 480..540 {
            if seq != 500 {
                feed.push(seq);
            }
        }
        assert_eq!(feed.push(500), SeqOutcome::Accepted(ExtSeq(20)));
        assert!(matches!(feed.push(540), SeqOutcome::Accepted(ExtSeq(60))));
    }

    #[test]
    fn forward_gap_counts_loss_and_fraction() {
        let mut feed = Feed::new(0);
        for seq in 0..10 {
            feed.push(seq);
        }
        let first = feed.source.take_loss_report();
        assert_eq!(first.fraction_lost, 0);
        for seq in 12..20 {
            feed.push(seq);
        }
        let report = feed.source.take_loss_report();
        assert_eq!(report.cumulative_lost, 2);
        assert_eq!(report.fraction_lost, (2 * 256 / 10) as u8);
        assert_eq!(report.extended_highest, 19);
    }

    #[test]
    fn jitter_follows_rfc_estimator() {
        let start = Instant::now();
        let mut source = Source::new(Ssrc(1), SeqNo(0), PCMU_RATE, start);
        // Packets every 20 ms, arriving alternately on time and 10 ms late.
        for i in 0..400u32 {
            let late = if i % 2 == 1 { 10 } else { 0 };
            let at = start + Duration::from_millis(u64::from(20 * i + late));
            source.update_jitter(i * 160, at);
        }
        // |D| is 80 timestamp units every packet, so J converges to about 80 (10 ms).
        assert!((75..=80).contains(&source.jitter()), "{}", source.jitter());
        let millis = source.jitter_duration().as_millis();
        assert!((9..=10).contains(&millis), "{millis}");
    }

    #[test]
    fn jitter_ignores_timestamp_discontinuity() {
        let start = Instant::now();
        let mut source = Source::new(Ssrc(1), SeqNo(0), PCMU_RATE, start);
        source.update_jitter(0, start);
        source.update_jitter(160, start + Duration::from_millis(20));
        source.update_jitter(900_000_000, start + Duration::from_millis(40));
        assert_eq!(source.jitter(), 0);
    }

    #[test]
    fn timestamps_wrap_without_jitter() {
        let start = Instant::now();
        let mut source = Source::new(Ssrc(1), SeqNo(0), PCMU_RATE, start);
        let mut ts = u32::MAX - 800;
        for i in 0..20u64 {
            source.update_jitter(ts, start + Duration::from_millis(20 * i));
            ts = ts.wrapping_add(160);
        }
        assert_eq!(source.jitter(), 0);
    }
}
