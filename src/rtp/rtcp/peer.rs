//! State read from the peer's RTCP: its sender reports (for the LSR and DLSR fields of our
//! reports), its reports on our stream (loss, jitter, round-trip time), and its BYEs.

use std::time::{Duration, Instant};

use super::ntp::{compact, compact_to_duration, duration_to_compact};
use super::packet::{ReportBlock, RtcpError, RtcpPacket, parse_compound};
use crate::rtp::ids::Ssrc;

/// Remote sources whose last sender report is remembered.
const MAX_SENDERS: usize = 8;

/// The peer's latest report on our stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerReport {
    /// When the report arrived.
    pub at: Instant,
    /// SSRC of the reporter.
    pub reporter: Ssrc,
    /// Fraction of our packets lost since its previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Our packets lost in total.
    pub cumulative_lost: i32,
    /// Interarrival jitter of our stream as the peer measured it.
    pub jitter: Duration,
    /// Round-trip time from the report's LSR and DLSR (RFC 3550 §6.4.1), when the peer had
    /// received a sender report from us.
    pub round_trip: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct LastSenderReport {
    ssrc: Ssrc,
    compact_ntp: u32,
    arrival: Instant,
}

/// State learned from the peer's RTCP.
#[derive(Debug, Clone)]
pub struct PeerReports {
    our_ssrc: Ssrc,
    clock_rate: u32,
    senders: Vec<LastSenderReport>,
    latest: Option<PeerReport>,
    goodbyes: Vec<Ssrc>,
}

impl PeerReports {
    /// Creates the state for our stream `our_ssrc` sent at `clock_rate`.
    pub fn new(our_ssrc: Ssrc, clock_rate: u32) -> Self {
        PeerReports {
            our_ssrc,
            clock_rate: clock_rate.max(1),
            senders: Vec::new(),
            latest: None,
            goodbyes: Vec::new(),
        }
    }

    /// Reads one compound packet that arrived at `now`, whose NTP time is `ntp_now`. Returns
    /// the number of packets read; packets before a malformed one are kept.
    pub fn handle_compound(
        &mut self,
        now: Instant,
        ntp_now: u64,
        bytes: &[u8],
    ) -> Result<usize, RtcpError> {
        let mut count = 0;
        for packet in parse_compound(bytes) {
            match packet? {
                RtcpPacket::SenderReport(sr) => {
                    self.remember_sender(sr.ssrc, compact(sr.ntp), now);
                    for block in sr.blocks {
                        self.on_block(now, ntp_now, sr.ssrc, block);
                    }
                }
                RtcpPacket::ReceiverReport(rr) => {
                    for block in rr.blocks {
                        self.on_block(now, ntp_now, rr.ssrc, block);
                    }
                }
                RtcpPacket::Goodbye(bye) => {
                    for ssrc in bye.ssrcs() {
                        tracing::debug!(%ssrc, "rtcp bye received");
                        if !self.goodbyes.contains(&ssrc) && self.goodbyes.len() < MAX_SENDERS {
                            self.goodbyes.push(ssrc);
                        }
                    }
                }
                RtcpPacket::SourceDescription(_)
                | RtcpPacket::App(_)
                | RtcpPacket::Other { .. } => {}
            }
            count += 1;
        }
        Ok(count)
    }

    fn remember_sender(&mut self, ssrc: Ssrc, compact_ntp: u32, arrival: Instant) {
        let entry = LastSenderReport {
            ssrc,
            compact_ntp,
            arrival,
        };
        if let Some(slot) = self.senders.iter_mut().find(|s| s.ssrc == ssrc) {
            *slot = entry;
            return;
        }
        if self.senders.len() >= MAX_SENDERS {
            self.senders.remove(0);
        }
        self.senders.push(entry);
    }

    fn on_block(&mut self, now: Instant, ntp_now: u64, reporter: Ssrc, block: ReportBlock) {
        if block.ssrc != self.our_ssrc {
            return;
        }
        let round_trip = (block.last_sr != 0).then(|| {
            // RFC 3550 §6.4.1: RTT = A - LSR - DLSR, all in compact NTP units.
            let units = compact(ntp_now)
                .wrapping_sub(block.last_sr)
                .wrapping_sub(block.delay_since_last_sr);
            // A negative result (clock trouble on either side) wraps to a huge value.
            (units < 0x8000_0000).then(|| compact_to_duration(units))
        });
        let jitter_micros = u64::from(block.jitter) * 1_000_000 / u64::from(self.clock_rate);
        self.latest = Some(PeerReport {
            at: now,
            reporter,
            fraction_lost: block.fraction_lost,
            cumulative_lost: block.cumulative_lost,
            jitter: Duration::from_micros(jitter_micros),
            round_trip: round_trip.flatten(),
        });
    }

    /// Returns the LSR and DLSR fields for a report block on `ssrc` at `now` (zero when no
    /// sender report came from it).
    pub fn last_sr_fields(&self, ssrc: Ssrc, now: Instant) -> (u32, u32) {
        match self.senders.iter().find(|s| s.ssrc == ssrc) {
            Some(sr) => {
                let delay = now.saturating_duration_since(sr.arrival);
                (sr.compact_ntp, duration_to_compact(delay))
            }
            None => (0, 0),
        }
    }

    /// Returns the peer's latest report on our stream.
    pub fn latest(&self) -> Option<PeerReport> {
        self.latest
    }

    /// Returns whether the peer sent a BYE for `ssrc`.
    pub fn said_goodbye(&self, ssrc: Ssrc) -> bool {
        self.goodbyes.contains(&ssrc)
    }

    /// Sources that sent a BYE.
    pub fn goodbyes(&self) -> &[Ssrc] {
        &self.goodbyes
    }

    /// Changes our SSRC, for a collision (RFC 3550 §8.2).
    pub fn set_our_ssrc(&mut self, ssrc: Ssrc) {
        self.our_ssrc = ssrc;
    }
}
