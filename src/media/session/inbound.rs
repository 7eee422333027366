//! The receive side of a session: latching, per-SSRC sequence tracking, the choice of the
//! played source, the jitter buffer and RFC 4733 events.
//!
//! Every SSRC keeps its own RFC 3550 §A.1 state, so a stream that returns after another
//! (A → B → A, with A's sequence numbers lower than B's) is recognised as A continuing. The
//! played source is the one with the newest run of packets: a source that validates, or that
//! sends again after [`NEW_RUN_GAP`] of silence, takes over, and packets from the others are
//! dropped as inactive. A source that takes over is given playout indexes after everything
//! already buffered, and the jitter buffer resets the decoder at its first packet.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rtp::{
    DropCounts, DropReason, DtmfEvent, DtmfReceiver, Incoming, JitterBuffer, Latch, LatchVerdict,
    PayloadKind, PlayedStream, Pt, RtpPacket, SeqOutcome, Source, Ssrc, event_to_digit,
};

/// Silence after which a source's next packet starts a new run.
pub const NEW_RUN_GAP: Duration = Duration::from_millis(100);
/// SSRCs remembered per call; the least recently heard is forgotten beyond this.
const MAX_SOURCES: usize = 4;
/// RFC 3551 static payload type of comfort noise.
const STATIC_CN_PT: u8 = 13;

/// Payload types a session accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadTypes {
    /// Audio codec.
    pub audio: u8,
    /// RFC 4733 telephone-event, if negotiated.
    pub dtmf: Option<u8>,
    /// Comfort noise, if negotiated (13 is always recognised).
    pub comfort_noise: Option<u8>,
    /// RTP clock rate of the audio.
    pub clock_rate: u32,
}

#[derive(Debug)]
struct Held {
    ssrc: Ssrc,
    timestamp: u32,
    pt: Pt,
    marker: bool,
    kind: PayloadKind,
    arrival: Instant,
    payload: Vec<u8>,
}

/// Receive state of one session.
#[derive(Debug)]
pub struct Inbound {
    latch: Latch,
    sources: Vec<Source>,
    played: Option<Ssrc>,
    next_index: u64,
    held: Option<Held>,
    jitter: JitterBuffer,
    dtmf: DtmfReceiver,
    drops: DropCounts,
    last_rtp: Option<Instant>,
    dtmf_presses: u64,
}

impl Inbound {
    /// Creates the receive side.
    pub fn new(latch: Latch, jitter: JitterBuffer, clock_rate: u32) -> Self {
        Self {
            latch,
            sources: Vec::with_capacity(MAX_SOURCES),
            played: None,
            next_index: 0,
            held: None,
            jitter,
            dtmf: DtmfReceiver::new(clock_rate),
            drops: DropCounts::default(),
            last_rtp: None,
            dtmf_presses: 0,
        }
    }

    /// The latch, for destinations and re-INVITE windows.
    pub fn latch(&self) -> &Latch {
        &self.latch
    }

    /// The latch, mutably.
    pub fn latch_mut(&mut self) -> &mut Latch {
        &mut self.latch
    }

    /// The jitter buffer, to pop a tick's audio from.
    pub fn jitter_mut(&mut self) -> &mut JitterBuffer {
        &mut self.jitter
    }

    /// The jitter buffer.
    pub fn jitter(&self) -> &JitterBuffer {
        &self.jitter
    }

    /// Replaces the jitter buffer and forgets the sources, after a codec change.
    pub fn restart(&mut self, jitter: JitterBuffer, clock_rate: u32) {
        self.jitter = jitter;
        self.dtmf = DtmfReceiver::new(clock_rate);
        self.sources.clear();
        self.played = None;
        self.held = None;
        self.next_index = 0;
    }

    /// Counts a datagram dropped before it reached this stage.
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops.add(reason);
    }

    /// Drops by reason.
    pub fn drops(&self) -> &DropCounts {
        &self.drops
    }

    /// Arrival time of the last accepted RTP packet.
    pub fn last_rtp(&self) -> Option<Instant> {
        self.last_rtp
    }

    /// The source being played.
    pub fn played_source(&self) -> Option<&Source> {
        let played = self.played?;
        self.sources.iter().find(|source| source.ssrc() == played)
    }

    /// Every tracked source, for RTCP report blocks.
    pub fn sources_mut(&mut self) -> &mut [Source] {
        &mut self.sources
    }

    /// Packets received over every source (RFC 3550 §A.3).
    pub fn sources_received(&self) -> u64 {
        self.sources.iter().map(Source::received).sum()
    }

    /// Packets lost over every source (RFC 3550 §A.3), never negative.
    pub fn sources_lost(&self) -> i64 {
        self.sources.iter().map(|source| source.lost().max(0)).sum()
    }

    /// DTMF presses reported so far.
    pub fn dtmf_presses(&self) -> u64 {
        self.dtmf_presses
    }

    /// Handles one RTP packet that arrived at `now` from `from`.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        from: SocketAddr,
        packet: &RtpPacket<'_>,
        types: PayloadTypes,
    ) {
        let pt = packet.pt().0;
        let kind = if pt == types.audio {
            PayloadKind::Audio
        } else if Some(pt) == types.dtmf {
            PayloadKind::Placeholder
        } else if pt == STATIC_CN_PT || Some(pt) == types.comfort_noise {
            PayloadKind::ComfortNoise
        } else {
            // RFC 3550 §5.1: a receiver ignores payload types it does not understand.
            self.drops.add(DropReason::UnknownPayloadType);
            return;
        };

        let ssrc = packet.ssrc();
        let played = self.played_stream();
        if self.latch.check(now, from, ssrc, packet.seq(), played) == LatchVerdict::Reject {
            self.drops.add(DropReason::ForeignAddress);
            return;
        }

        let slot = self.source_slot(ssrc, packet, types.clock_rate, now);
        let quiet_for = now.saturating_duration_since(self.sources[slot].last_seen());
        let outcome = self.sources[slot].update_seq(packet.seq(), self.next_index, now);
        let index = match outcome {
            SeqOutcome::Accepted(index) => {
                if self.played != Some(ssrc) {
                    if self.played.is_some() && quiet_for < NEW_RUN_GAP && self.played_is_live(now)
                    {
                        self.drops.add(DropReason::InactiveSource);
                        return;
                    }
                    // This source starts a newer run than the played one: switch to it, after
                    // everything already buffered.
                    self.sources[slot].start_run(now);
                    self.sources[slot].rebase_index(self.next_index + 1);
                    self.played = Some(ssrc);
                    tracing::debug!(%ssrc, "rtp source switched");
                    self.next_index
                } else {
                    index.0
                }
            }
            SeqOutcome::Validated(index) | SeqOutcome::Resynced(index) => {
                if self.played != Some(ssrc) {
                    tracing::debug!(%ssrc, "rtp source validated");
                }
                self.played = Some(ssrc);
                self.sources[slot].start_run(now);
                self.push_held(now, ssrc, index.0.saturating_sub(1));
                index.0
            }
            SeqOutcome::Probation | SeqOutcome::Jump => {
                self.hold(now, packet, kind);
                if outcome == SeqOutcome::Jump {
                    self.drops.add(DropReason::SequenceJump);
                }
                return;
            }
            SeqOutcome::Duplicate => {
                self.drops.add(DropReason::Duplicate);
                return;
            }
            SeqOutcome::Stale => {
                self.drops.add(DropReason::Late);
                return;
            }
        };

        self.last_rtp = Some(now);
        if kind == PayloadKind::Audio {
            self.sources[slot].update_jitter(packet.timestamp(), now);
        }
        if kind == PayloadKind::Placeholder {
            self.handle_event(now, packet);
        }
        self.push(
            now,
            index,
            packet.timestamp(),
            packet.pt(),
            packet.marker(),
            ssrc,
            kind,
            packet.payload(),
        );
    }

    /// Releases DTMF presses whose end packets never came and returns the next press.
    pub fn poll_dtmf(&mut self, now: Instant) -> Option<(char, Instant)> {
        if self.dtmf.poll_timeout().is_some_and(|at| at <= now) {
            self.dtmf.handle_timeout(now);
        }
        while let Some(event) = self.dtmf.poll_event() {
            if let DtmfEvent::Pressed { event, at, .. } = event
                && let Some(digit) = event_to_digit(event)
            {
                self.dtmf_presses += 1;
                return Some((digit, at));
            }
        }
        None
    }

    fn handle_event(&mut self, now: Instant, packet: &RtpPacket<'_>) {
        if let Err(error) =
            self.dtmf
                .handle_packet(now, packet.ssrc(), packet.timestamp(), packet.payload())
        {
            tracing::trace!(%error, "invalid telephone-event payload");
            self.drops.add(DropReason::Malformed);
        }
    }

    fn played_stream(&self) -> Option<PlayedStream> {
        let source = self.played_source()?;
        Some(PlayedStream {
            ssrc: source.ssrc(),
            highest_seq: crate::rtp::SeqNo(source.extended_max() as u16),
        })
    }

    fn played_is_live(&self, now: Instant) -> bool {
        self.played_source()
            .is_some_and(|source| now.saturating_duration_since(source.last_seen()) < NEW_RUN_GAP)
    }

    fn source_slot(
        &mut self,
        ssrc: Ssrc,
        packet: &RtpPacket<'_>,
        clock_rate: u32,
        now: Instant,
    ) -> usize {
        if let Some(slot) = self.sources.iter().position(|s| s.ssrc() == ssrc) {
            return slot;
        }
        if self.sources.len() >= MAX_SOURCES {
            // Forget the least recently heard source that is not being played.
            let played = self.played;
            if let Some(oldest) = self
                .sources
                .iter()
                .enumerate()
                .filter(|(_, s)| Some(s.ssrc()) != played)
                .min_by_key(|(_, s)| s.last_seen())
                .map(|(slot, _)| slot)
            {
                self.sources.swap_remove(oldest);
            }
        }
        self.sources
            .push(Source::new(ssrc, packet.seq(), clock_rate, now));
        self.sources.len() - 1
    }

    fn hold(&mut self, now: Instant, packet: &RtpPacket<'_>, kind: PayloadKind) {
        let mut payload = self
            .held
            .take()
            .map(|held| held.payload)
            .unwrap_or_default();
        payload.clear();
        payload.extend_from_slice(packet.payload());
        self.held = Some(Held {
            ssrc: packet.ssrc(),
            timestamp: packet.timestamp(),
            pt: packet.pt(),
            marker: packet.marker(),
            kind,
            arrival: now,
            payload,
        });
    }

    fn push_held(&mut self, now: Instant, ssrc: Ssrc, index: u64) {
        let Some(held) = self.held.take() else {
            return;
        };
        if held.ssrc == ssrc {
            let arrival = held.arrival.min(now);
            self.push(
                arrival,
                index,
                held.timestamp,
                held.pt,
                held.marker,
                ssrc,
                held.kind,
                &held.payload,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        now: Instant,
        index: u64,
        timestamp: u32,
        pt: Pt,
        marker: bool,
        ssrc: Ssrc,
        kind: PayloadKind,
        payload: &[u8],
    ) {
        self.next_index = self.next_index.max(index + 1);
        let incoming = Incoming {
            index: crate::rtp::ExtSeq(index),
            timestamp,
            pt,
            marker,
            ssrc,
            kind,
            payload,
            duration: None,
        };
        if let Err(reason) = self.jitter.push(now, incoming) {
            self.drops.add(reason);
        }
    }
}
