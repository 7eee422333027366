//! The RTCP side of a session: reading the peer's reports and writing ours.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Received, RtpSession, SessionEvent};
use crate::rtp::ids::Ssrc;
use crate::rtp::packet::BuildError;
use crate::rtp::rtcp::{
    MAX_REPORT_BLOCKS, ReportBlock, write_bye, write_receiver_report, write_sdes_cname,
    write_sender_report,
};
use crate::rtp::stats::DropReason;

impl RtpSession {
    /// Handles one datagram that arrived at `now` on the call's RTCP port (without rtcp-mux).
    pub fn handle_rtcp_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Received {
        self.handle_rtcp(now, from, bytes)
    }

    /// Reads an RTCP compound. Only the latched peer's host may report on our stream, so that
    /// a stranger cannot make us believe in loss or a BYE.
    pub(super) fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Received {
        let from_peer = self
            .latch
            .destination()
            .is_none_or(|peer| peer.ip() == from.ip());
        if !from_peer {
            return self.drop_packet(DropReason::ForeignAddress);
        }
        self.scheduler.on_received(bytes.len());
        let known_goodbyes = self.peer.goodbyes().len();
        let read = self.peer.handle_compound(now, self.ntp.ntp(now), bytes);
        for &ssrc in &self.peer.goodbyes()[known_goodbyes..] {
            self.events.push_back(SessionEvent::Goodbye { ssrc });
        }
        match read {
            Ok(_) => Received::Control,
            Err(err) => {
                tracing::debug!(%err, "malformed rtcp from peer");
                self.drop_packet(DropReason::Malformed)
            }
        }
    }

    /// Writes our report into `out` when one is due at `now` (RFC 3550 §6.3) and returns its
    /// length: an SR if we sent RTP since the last report, else an RR, then SDES with our
    /// CNAME. Returns `None` when no report is due or `out` is too small.
    pub fn poll_rtcp(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if !self.scheduler.handle_timeout(now) {
            return None;
        }
        let len = match self.write_compound(now, out, None) {
            Ok(len) => len,
            Err(err) => {
                tracing::warn!(%err, "rtcp report does not fit the buffer");
                return None;
            }
        };
        self.scheduler.on_sent(now, len);
        self.update_members();
        Some(len)
    }

    /// Writes our final report with a BYE (RFC 3550 §6.6) into `out`, for the end of the call.
    /// A two-party session may send it at once (RFC 3550 §6.3.7 allows that below 50 members).
    pub fn write_goodbye(
        &mut self,
        now: Instant,
        out: &mut [u8],
        reason: &str,
    ) -> Result<usize, BuildError> {
        self.write_compound(now, out, Some(reason))
    }

    fn write_compound(
        &mut self,
        now: Instant,
        out: &mut [u8],
        bye_reason: Option<&str>,
    ) -> Result<usize, BuildError> {
        let mut blocks = [ReportBlock::default(); MAX_REPORT_BLOCKS];
        let count = self.fill_report_blocks(now, &mut blocks);
        let blocks = &blocks[..count];
        let ssrc = self.sender.ssrc();
        let (counts, sent) = self.sender.take_counts(now);

        let mut len = if sent {
            write_sender_report(out, ssrc, self.ntp.ntp(now), counts, blocks)?
        } else {
            write_receiver_report(out, ssrc, blocks)?
        };
        let rest = out.get_mut(len..).unwrap_or_default();
        len += write_sdes_cname(rest, ssrc, &self.cname)?;
        if let Some(reason) = bye_reason {
            let rest = out.get_mut(len..).unwrap_or_default();
            len += write_bye(rest, &[ssrc], reason)?;
        }
        Ok(len)
    }

    /// Fills report blocks for the sources heard since the last report; returns how many.
    fn fill_report_blocks(&mut self, now: Instant, blocks: &mut [ReportBlock]) -> usize {
        let mut count = 0;
        for tracked in &mut self.sources {
            if count == blocks.len() {
                break;
            }
            if !tracked.heard || !tracked.source.is_valid() {
                continue;
            }
            tracked.heard = false;
            let ssrc: Ssrc = tracked.source.ssrc();
            let loss = tracked.source.take_loss_report();
            let (last_sr, delay_since_last_sr) = self.peer.last_sr_fields(ssrc, now);
            blocks[count] = ReportBlock {
                ssrc,
                fraction_lost: loss.fraction_lost,
                cumulative_lost: loss.cumulative_lost,
                extended_highest: loss.extended_highest,
                jitter: tracked.source.jitter(),
                last_sr,
                delay_since_last_sr,
            };
            count += 1;
        }
        count
    }

    /// Tells the scheduler how many take part: us, plus each source heard in the last
    /// interval, which also counts as a sender.
    fn update_members(&mut self) {
        let remote = self.sources.len().min(MAX_REPORT_BLOCKS) as u32;
        let we_sent = self.sender.packets() > 0;
        self.scheduler
            .set_members(1 + remote, remote + u32::from(we_sent), we_sent);
    }
}

impl RtpSession {
    /// Adds the counts since the previous call to the Prometheus metrics. Call it now and then
    /// (for example with each RTCP report) and when the call ends.
    pub fn publish_metrics(&mut self) {
        use crate::rtp::metrics::{METRICS, add_drops};
        use crate::rtp::stats::DropReason as Reason;

        let now = self.counters;
        let before = self.published;
        METRICS
            .received
            .inc_by(now.received.saturating_sub(before.received));
        for reason in Reason::ALL {
            let delta = now
                .drops
                .get(reason)
                .saturating_sub(before.drops.get(reason));
            add_drops(reason, delta);
        }
        METRICS.source_changes.inc_by(u64::from(
            now.source_changes.saturating_sub(before.source_changes),
        ));
        METRICS
            .resyncs
            .inc_by(u64::from(now.resyncs.saturating_sub(before.resyncs)));

        let jitter = self.jitter.stats();
        METRICS
            .concealed
            .inc_by(jitter.concealed.saturating_sub(self.published_concealed));
        add_drops(
            Reason::Overflow,
            jitter.overflow.saturating_sub(self.published_overflow),
        );
        self.published_concealed = jitter.concealed;
        self.published_overflow = jitter.overflow;
        self.published = now;

        if let Some(ssrc) = self.active
            && let Some(tracked) = self.sources.iter().find(|t| t.source.ssrc() == ssrc)
        {
            METRICS
                .jitter
                .observe(tracked.source.jitter_duration().as_secs_f64());
        }
    }
}
