//! One call's RTP session: the sans-IO core that a media worker drives.
//!
//! Feed every datagram from the call's RTP socket (and its RTCP socket without rtcp-mux) to
//! [`RtpSession::handle_datagram`] with the time it arrived. At each 20 ms tick, call
//! [`RtpSession::pop_playout`] until it returns `Nothing` and decode what it returns; send our
//! audio with
//! [`RtpSession::sender_mut`] to [`RtpSession::destination`]. Drain
//! [`RtpSession::poll_event`] after each input, and when [`RtpSession::poll_timeout`] has
//! passed call [`RtpSession::handle_timeout`] and send what [`RtpSession::poll_rtcp`]
//! writes to [`RtpSession::rtcp_destination`].
//!
//! Inside, a datagram goes through classification (RTP, RTCP, STUN or junk), the negotiated
//! payload types, the symmetric-RTP latch, the per-SSRC sequence tracker and the source
//! selection, then into the jitter buffer or the telephone-event receiver. Every datagram that
//! is not played is counted under a [`DropReason`].

mod payload;
mod receive;
mod report;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand::rngs::SmallRng;

pub use payload::{DurationFn, PayloadRole, PayloadTable, g711_duration};

use super::config::RtpConfig;
use super::dtmf::{DtmfEvent, DtmfReceiver};
use super::ids::{Pt, SeqNo, Ssrc};
use super::jitter::{JitterBuffer, JitterConfig, PlayoutItem};
use super::latch::{Latch, LatchConfig, PlayedStream};
use super::rtcp::{MinInterval, NtpClock, PeerReport, PeerReports, RtcpScheduler};
use super::sender::RtpSender;
use super::source::Source;
use super::stats::{DropCounts, DropReason, ReceiveStats, SourceStats};

/// Sources remembered at once; the least recently heard one that is not played is forgotten.
const MAX_SOURCES: usize = 8;

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Payload types negotiated for the call.
    pub payloads: PayloadTable,
    /// RTP and RTCP share one port (RFC 5761), as both sides agreed.
    pub rtcp_mux: bool,
    /// Latching rules, with strict mode from the trunk.
    pub latch: LatchConfig,
    /// Jitter buffer delays, tick and packet time; its clock rate is taken from `payloads`.
    pub jitter: JitterConfig,
    /// Peer's RTP address from its SDP, until a packet shows the real one.
    pub advertised: Option<SocketAddr>,
    /// Peer's RTCP address from an SDP `a=rtcp` line, if any.
    pub advertised_rtcp: Option<SocketAddr>,
    /// Our RTCP CNAME (RFC 3550 §6.5.1), for example `voicegate@<node id>`.
    pub cname: String,
    /// Session bandwidth in bits per second, for the RTCP interval.
    pub session_bandwidth: u32,
    /// Minimum RTCP interval rule.
    pub rtcp_minimum: MinInterval,
    /// Seed of our SSRC, initial sequence number and timestamp, and the RTCP randomisation.
    pub seed: u64,
}

impl SessionConfig {
    /// Builds settings from the `[rtp]` section, the negotiated payload types and packet time,
    /// and the trunk's strict-source choice. The peer address, rtcp-mux, CNAME and seed keep
    /// neutral values for the caller to fill in.
    pub fn new(
        rtp: &RtpConfig,
        payloads: PayloadTable,
        packet_time: Duration,
        strict_source: bool,
    ) -> Self {
        let clock_rate = payloads.audio_clock_rate().unwrap_or(8000);
        SessionConfig {
            payloads,
            rtcp_mux: false,
            latch: LatchConfig::new(rtp, strict_source),
            jitter: JitterConfig::new(rtp, clock_rate, packet_time),
            advertised: None,
            advertised_rtcp: None,
            cname: "voicegate".into(),
            // G.711 at 20 ms with RTP, UDP and IPv4 headers.
            session_bandwidth: 80_000,
            // A call has two parties, which RFC 3550 §6.2 allows the reduced minimum for.
            rtcp_minimum: MinInterval::Reduced,
            seed: 0,
        }
    }
}

/// Session report other than audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// The played source changed (a new SSRC, or an old one back). Packets of the new source
    /// come out of the jitter buffer with `new_source` set, which is where to reset the decoder.
    SourceChanged {
        /// Source played before, if any.
        previous: Option<Ssrc>,
        /// Source played from now on.
        current: Ssrc,
    },
    /// A source restarted its sequence numbers without changing SSRC (RFC 3550 §A.1 re-sync).
    Resynced {
        /// The source.
        ssrc: Ssrc,
    },
    /// A key press or release (RFC 4733).
    Dtmf(DtmfEvent),
    /// The peer sent an RTCP BYE.
    Goodbye {
        /// The source leaving.
        ssrc: Ssrc,
    },
    /// The peer uses our SSRC, so we changed ours (RFC 3550 §8.2).
    SsrcCollision {
        /// The SSRC we gave up.
        old: Ssrc,
        /// Our new SSRC.
        new: Ssrc,
    },
}

/// Outcome of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// RTP that was accepted (it may still wait for validation).
    Media,
    /// RTCP that was read.
    Control,
    /// A STUN message. The session sends no STUN response, so the message counts as a drop
    /// unless the driver responds to it (ICE-lite).
    Stun,
    /// Dropped, for the reason given.
    Dropped(DropReason),
}

/// Per-source state kept by the session.
#[derive(Debug, Clone)]
struct Tracked {
    source: Source,
    /// Packets in the source's current run (reset after a silence).
    run_packets: u32,
    /// Heard since our last RTCP report.
    heard: bool,
}

/// A packet set aside until the next packet of its source decides about it: the first
/// packet of a new source (probation), the packet at a sequence jump, or the first packet of
/// a source coming back.
#[derive(Debug)]
struct Held {
    ssrc: Ssrc,
    seq: SeqNo,
    timestamp: u32,
    pt: Pt,
    marker: bool,
    arrival: Instant,
    payload: Vec<u8>,
    reason: DropReason,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    received: u64,
    drops: DropCounts,
    ssrcs_seen: u32,
    source_changes: u32,
    resyncs: u32,
}

/// The RTP/RTCP state of one call. See the module documentation for how to drive it.
#[derive(Debug)]
pub struct RtpSession {
    payloads: PayloadTable,
    rtcp_mux: bool,
    advertised_rtcp: Option<SocketAddr>,
    latch: Latch,
    /// The stream last accepted from the latched address.
    latched_stream: Option<PlayedStream>,
    sources: Vec<Tracked>,
    active: Option<Ssrc>,
    next_index: u64,
    held: Option<Held>,
    spare_payload: Vec<u8>,
    jitter: JitterBuffer,
    dtmf: Option<DtmfReceiver>,
    sender: RtpSender,
    peer: PeerReports,
    scheduler: RtcpScheduler,
    ntp: NtpClock,
    cname: String,
    rng: SmallRng,
    counters: Counters,
    published: Counters,
    published_concealed: u64,
    published_overflow: u64,
    events: VecDeque<SessionEvent>,
    last_rtp: Option<Instant>,
    /// SSRCs we gave up after collisions, and the addresses that sent them to us, for the
    /// loop detection of RFC 3550 §8.2.
    former_ssrcs: Vec<Ssrc>,
    collision_sources: Vec<SocketAddr>,
}

impl RtpSession {
    /// Creates the session at `now`, with `wall` the wall-clock time at `now` (for RTCP NTP
    /// timestamps).
    pub fn new(config: SessionConfig, now: Instant, wall: SystemTime) -> Self {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let clock_rate = config.payloads.audio_clock_rate().unwrap_or(8000);
        let sender = RtpSender::new(&mut rng, clock_rate, now);
        // TODO: one jitter buffer runs on the first audio clock rate. A peer that switches to an
        // audio payload type with another clock rate mid-call is played at the wrong speed.
        let jitter = JitterBuffer::new(JitterConfig {
            clock_rate,
            ..config.jitter
        });
        let dtmf = config.payloads.event_clock_rate().map(DtmfReceiver::new);
        RtpSession {
            rtcp_mux: config.rtcp_mux,
            advertised_rtcp: config.advertised_rtcp,
            latch: Latch::new(config.latch, config.advertised, now),
            latched_stream: None,
            sources: Vec::new(),
            active: None,
            next_index: 0,
            held: None,
            spare_payload: Vec::new(),
            jitter,
            dtmf,
            peer: PeerReports::new(sender.ssrc(), clock_rate),
            scheduler: RtcpScheduler::new(
                now,
                config.session_bandwidth,
                config.rtcp_minimum,
                config.seed ^ 0x5243_5450,
            ),
            sender,
            ntp: NtpClock::new(now, wall),
            cname: config.cname,
            rng,
            counters: Counters::default(),
            published: Counters::default(),
            published_concealed: 0,
            published_overflow: 0,
            events: VecDeque::new(),
            last_rtp: None,
            former_ssrcs: Vec::new(),
            collision_sources: Vec::new(),
            payloads: config.payloads,
        }
    }

    /// Returns the next playout item due at `now`. At each tick, call it until it returns
    /// [`PlayoutItem::Nothing`].
    pub fn pop_playout(&mut self, now: Instant) -> PlayoutItem<'_> {
        self.jitter.pop(now)
    }

    /// Returns the next event, oldest first.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Returns the earliest time at which [`RtpSession::handle_timeout`] or
    /// [`RtpSession::poll_rtcp`] has work to do.
    pub fn poll_timeout(&self) -> Instant {
        let rtcp = self.scheduler.poll_timeout();
        match self.dtmf.as_ref().and_then(DtmfReceiver::poll_timeout) {
            Some(dtmf) => dtmf.min(rtcp),
            None => rtcp,
        }
    }

    /// Runs timers due at `now` (telephone events whose end packets never came).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(dtmf) = self.dtmf.as_mut() {
            dtmf.handle_timeout(now);
        }
        self.drain_dtmf();
    }

    /// Opens a new latch learning window, for a re-INVITE; `advertised` is the new SDP address.
    pub fn open_latch_window(&mut self, now: Instant, advertised: Option<SocketAddr>) {
        self.latch.open_window(now, advertised);
    }

    /// Sets whether RTP and RTCP share a port, as a new offer/answer agreed (RFC 5761).
    pub fn set_rtcp_mux(&mut self, rtcp_mux: bool) {
        self.rtcp_mux = rtcp_mux;
    }

    /// Changes the negotiated payload types (after a re-INVITE). A new audio clock rate resets
    /// the jitter buffer.
    pub fn set_payloads(&mut self, payloads: PayloadTable) {
        if payloads.audio_clock_rate() != self.payloads.audio_clock_rate() {
            self.jitter.reset();
        }
        self.dtmf = payloads.event_clock_rate().map(DtmfReceiver::new);
        self.payloads = payloads;
    }

    /// Returns the address to send our RTP to.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latch.destination()
    }

    /// Returns the address to send our RTCP to.
    pub fn rtcp_destination(&self) -> Option<SocketAddr> {
        self.latch
            .rtcp_destination(self.rtcp_mux, self.advertised_rtcp)
    }

    /// Our outbound stream.
    pub fn sender(&self) -> &RtpSender {
        &self.sender
    }

    /// Our outbound stream, to send audio and telephone events.
    pub fn sender_mut(&mut self) -> &mut RtpSender {
        &mut self.sender
    }

    /// Returns the source being played.
    pub fn active_source(&self) -> Option<Ssrc> {
        self.active
    }

    /// When the last accepted RTP packet arrived, for the media timeout.
    pub fn last_rtp(&self) -> Option<Instant> {
        self.last_rtp
    }

    /// Returns the peer's latest RTCP report on our stream (loss, jitter, round-trip time).
    pub fn peer_report(&self) -> Option<PeerReport> {
        self.peer.latest()
    }

    /// Returns the jitter buffer, for its target delay and counters.
    pub fn jitter_buffer(&self) -> &JitterBuffer {
        &self.jitter
    }

    /// Receive figures of the call.
    pub fn stats(&self) -> ReceiveStats {
        let jitter_stats = self.jitter.stats();
        let mut drops = self.counters.drops;
        drops.add_count(DropReason::Overflow, jitter_stats.overflow);
        let sources: Vec<SourceStats> = self
            .sources
            .iter()
            .map(|t| SourceStats {
                ssrc: t.source.ssrc(),
                received: t.source.received(),
                expected: t.source.expected(),
                lost: t.source.lost(),
                duplicates: t.source.duplicates(),
                jitter: t.source.jitter_duration(),
            })
            .collect();
        let jitter = self
            .active
            .and_then(|ssrc| sources.iter().find(|s| s.ssrc == ssrc))
            .map_or(Duration::ZERO, |s| s.jitter);
        ReceiveStats {
            received: self.counters.received,
            lost: sources.iter().map(|s| s.lost).sum(),
            duplicates: drops.get(DropReason::Duplicate),
            late: drops.get(DropReason::Late),
            concealed: jitter_stats.concealed,
            jitter,
            drops,
            ssrcs_seen: self.counters.ssrcs_seen,
            source_changes: self.counters.source_changes,
            resyncs: self.counters.resyncs,
            latch_moves: self.latch.moves(),
            sources,
        }
    }

    fn drop_packet(&mut self, reason: DropReason) -> Received {
        self.counters.drops.add(reason);
        tracing::trace!(%reason, "rtp datagram dropped");
        Received::Dropped(reason)
    }

    fn drain_dtmf(&mut self) {
        let Some(dtmf) = self.dtmf.as_mut() else {
            return;
        };
        while let Some(event) = dtmf.poll_event() {
            self.events.push_back(SessionEvent::Dtmf(event));
        }
    }
}
