//! The receive path of a session: from a datagram to the jitter buffer or the telephone-event
//! receiver.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngExt;

use super::{Held, MAX_SOURCES, PayloadRole, Received, RtpSession, SessionEvent, Tracked};
use crate::rtp::classify::{Datagram, classify};
use crate::rtp::ids::{ExtSeq, Ssrc};
use crate::rtp::jitter::{Incoming, PayloadKind};
use crate::rtp::latch::{LatchVerdict, PlayedStream};
use crate::rtp::packet::RtpPacket;
use crate::rtp::source::{SeqOutcome, Source};
use crate::rtp::stats::DropReason;

/// Silence after which a source's next packet starts a new run. A source that comes back
/// starts a newer run than the one being played, which is how A → B → A is followed.
const RUN_GAP: Duration = Duration::from_millis(200);
/// Packets a run needs before its source may take over from the played one.
const SWITCH_PACKETS: u32 = 2;
/// Former SSRCs and colliding addresses remembered for loop detection.
const MAX_COLLISIONS: usize = 8;

/// The fields of a packet that outlive its datagram.
#[derive(Debug, Clone, Copy)]
struct Fields<'a> {
    ssrc: Ssrc,
    seq: crate::rtp::ids::SeqNo,
    timestamp: u32,
    pt: crate::rtp::ids::Pt,
    marker: bool,
    arrival: Instant,
    payload: &'a [u8],
}

impl<'a> Fields<'a> {
    fn of(packet: &RtpPacket<'a>, arrival: Instant) -> Self {
        Fields {
            ssrc: packet.ssrc(),
            seq: packet.seq(),
            timestamp: packet.timestamp(),
            pt: packet.pt(),
            marker: packet.marker(),
            arrival,
            payload: packet.payload(),
        }
    }
}

impl RtpSession {
    /// Handles one datagram that arrived at `now` from `from` on the call's RTP port. RTCP
    /// on this port is read only with rtcp-mux (RFC 5761).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Received {
        match classify(bytes, self.rtcp_mux) {
            Err(reason) => self.drop_packet(reason),
            Ok(Datagram::Stun(_)) => {
                self.counters.drops.add(DropReason::Stun);
                Received::Stun
            }
            Ok(Datagram::Rtcp(compound)) => self.handle_rtcp(now, from, compound),
            Ok(Datagram::Rtp(packet)) => self.handle_rtp(now, from, &packet),
        }
    }

    fn handle_rtp(&mut self, now: Instant, from: SocketAddr, packet: &RtpPacket<'_>) -> Received {
        let fields = Fields::of(packet, now);
        let Some(role) = self.payloads.role(fields.pt) else {
            // RFC 3550 §5.1: a payload type that was not negotiated is ignored. From the played
            // source it still fills its sequence number, so it does not count as loss.
            if self.latch.latched() == Some(from) && self.active == Some(fields.ssrc) {
                self.track(fields, None);
            }
            return self.drop_packet(DropReason::UnknownPayloadType);
        };

        match self
            .latch
            .check(now, from, fields.ssrc, fields.seq, self.latched_stream)
        {
            LatchVerdict::Reject => return self.drop_packet(DropReason::ForeignAddress),
            LatchVerdict::Accept => self.note_latched_stream(fields),
            LatchVerdict::AcceptForeign => {}
        }
        // RFC 3550 §8.2: a packet with one of our former SSRCs, or with our current SSRC from
        // an address that already collided with us, is our own traffic looped back. Changing
        // SSRC again would only repeat the collision with every packet.
        if self.former_ssrcs.contains(&fields.ssrc)
            || (fields.ssrc == self.sender.ssrc() && self.collision_sources.contains(&from))
        {
            tracing::trace!(ssrc = %fields.ssrc, %from, "own rtp looped back");
            return self.drop_packet(DropReason::Loop);
        }
        if fields.ssrc == self.sender.ssrc() {
            self.resolve_collision(from);
        }
        self.last_rtp = Some(now);
        self.track(fields, Some(role))
    }

    /// Remembers the stream from the latched address, which a re-latch run must continue. In
    /// lenient mode foreign media may be played, but it never becomes this stream.
    fn note_latched_stream(&mut self, fields: Fields<'_>) {
        let newer = match self.latched_stream {
            Some(stream) if stream.ssrc == fields.ssrc => fields.seq.delta(stream.highest_seq) > 0,
            _ => true,
        };
        if newer {
            self.latched_stream = Some(PlayedStream {
                ssrc: fields.ssrc,
                highest_seq: fields.seq,
            });
        }
    }

    /// RFC 3550 §8.2: the peer sends with our SSRC, so pick a new one for our stream.
    // TODO: RFC 3550 §8.2 also calls for an RTCP BYE for the old SSRC, which is not sent.
    fn resolve_collision(&mut self, from: SocketAddr) {
        let old = self.sender.ssrc();
        // Bounded so a hostile peer cannot grow the lists; the newest entries matter most.
        if self.former_ssrcs.len() == MAX_COLLISIONS {
            self.former_ssrcs.remove(0);
        }
        self.former_ssrcs.push(old);
        if !self.collision_sources.contains(&from) {
            if self.collision_sources.len() == MAX_COLLISIONS {
                self.collision_sources.remove(0);
            }
            self.collision_sources.push(from);
        }
        let new = Ssrc(self.rng.random());
        tracing::warn!(%old, %new, "peer uses our ssrc; changing ours");
        self.sender.set_ssrc(new);
        self.peer.set_our_ssrc(new);
        self.events
            .push_back(SessionEvent::SsrcCollision { old, new });
    }

    /// Runs a packet through its source's sequence tracker and on to playout. `role` is `None`
    /// for a payload type that only fills a sequence number.
    fn track(&mut self, fields: Fields<'_>, role: Option<PayloadRole>) -> Received {
        let slot = self.source_slot(fields);
        let tracked = &mut self.sources[slot];
        if fields
            .arrival
            .saturating_duration_since(tracked.source.last_seen())
            > RUN_GAP
        {
            tracked.source.start_run(fields.arrival);
            tracked.run_packets = 0;
        }
        tracked.run_packets += 1;
        tracked.heard = true;
        let outcome = tracked
            .source
            .update_seq(fields.seq, self.next_index, fields.arrival);

        let result = match outcome {
            SeqOutcome::Probation => self.hold(fields, DropReason::Unvalidated),
            SeqOutcome::Jump => self.hold(fields, DropReason::SequenceJump),
            SeqOutcome::Duplicate => self.drop_packet(DropReason::Duplicate),
            SeqOutcome::Stale => self.drop_packet(DropReason::Late),
            SeqOutcome::Validated(index) => self.deliver(slot, fields, role, index, true),
            SeqOutcome::Resynced(index) => {
                self.counters.resyncs += 1;
                self.events
                    .push_back(SessionEvent::Resynced { ssrc: fields.ssrc });
                tracing::debug!(ssrc = %fields.ssrc, seq = %fields.seq, "rtp source re-synced");
                self.deliver(slot, fields, role, index, true)
            }
            SeqOutcome::Accepted(index) => self.deliver(slot, fields, role, index, false),
        };
        self.expire_held(fields);
        result
    }

    /// Finds or creates the state of a packet's source.
    fn source_slot(&mut self, fields: Fields<'_>) -> usize {
        if let Some(slot) = self
            .sources
            .iter()
            .position(|t| t.source.ssrc() == fields.ssrc)
        {
            return slot;
        }
        if self.sources.len() >= MAX_SOURCES {
            self.forget_oldest_source();
        }
        let clock_rate = self.payloads.audio_clock_rate().unwrap_or(8000);
        self.counters.ssrcs_seen += 1;
        tracing::debug!(ssrc = %fields.ssrc, "new rtp source");
        self.sources.push(Tracked {
            source: Source::new(fields.ssrc, fields.seq, clock_rate, fields.arrival),
            run_packets: 0,
            heard: false,
        });
        self.sources.len() - 1
    }

    fn forget_oldest_source(&mut self) {
        let oldest = self
            .sources
            .iter()
            .enumerate()
            .filter(|(_, t)| Some(t.source.ssrc()) != self.active)
            .min_by_key(|(_, t)| t.source.last_seen())
            .map(|(slot, _)| slot);
        if let Some(slot) = oldest {
            self.sources.swap_remove(slot);
        }
    }

    /// Plays a packet that the sequence tracker accepted at `index`, switching the played
    /// source first if this one should take over. With `after_held`, the held packet just
    /// before it (probation or jump) plays first.
    fn deliver(
        &mut self,
        slot: usize,
        fields: Fields<'_>,
        role: Option<PayloadRole>,
        index: ExtSeq,
        after_held: bool,
    ) -> Received {
        let mut index = index;
        if self.active != Some(fields.ssrc) {
            if !self.should_switch(slot) {
                if self.sources[slot].run_packets < SWITCH_PACKETS {
                    return self.hold(fields, DropReason::InactiveSource);
                }
                return self.drop_packet(DropReason::InactiveSource);
            }
            index = self.switch_to(slot, fields);
        }

        let held = self.take_held_before(fields);
        if let Some(held) = held {
            let held_role = self.payloads.role(held.pt);
            let held_fields = Fields {
                ssrc: held.ssrc,
                seq: held.seq,
                timestamp: held.timestamp,
                pt: held.pt,
                marker: held.marker,
                arrival: held.arrival,
                payload: &held.payload,
            };
            self.play(
                slot,
                held_fields,
                held_role,
                ExtSeq(index.0.saturating_sub(1)),
            );
            self.spare_payload = held.payload;
        } else if after_held {
            // The held packet is gone (another source displaced it): start the new stream at
            // the next index so that no loss is concealed for it.
            self.sources[slot].source.rebase_index(self.next_index + 1);
            index = ExtSeq(self.next_index);
        }
        self.play(slot, fields, role, index);
        Received::Media
    }

    /// Whether the source in `slot` should replace the played one: none is played, or its
    /// current run began after the played source's run, with at least two packets.
    fn should_switch(&self, slot: usize) -> bool {
        let candidate = &self.sources[slot];
        let Some(active) = self.active else {
            return true;
        };
        let Some(current) = self.sources.iter().find(|t| t.source.ssrc() == active) else {
            return true;
        };
        candidate.source.is_valid()
            && candidate.run_packets >= SWITCH_PACKETS
            && candidate.source.run_start() > current.source.run_start()
    }

    /// Makes the source in `slot` the played one and returns the index of its current packet:
    /// right after everything played so far, one later when its held packet comes first.
    fn switch_to(&mut self, slot: usize, fields: Fields<'_>) -> ExtSeq {
        let previous = self.active;
        self.active = Some(fields.ssrc);
        self.counters.source_changes += u32::from(previous.is_some());
        self.events.push_back(SessionEvent::SourceChanged {
            previous,
            current: fields.ssrc,
        });
        tracing::debug!(?previous, current = %fields.ssrc, "played rtp source changed");

        let held_first = self
            .held
            .as_ref()
            .is_some_and(|h| h.ssrc == fields.ssrc && fields.seq.delta(h.seq) == 1);
        let first = self.next_index + u64::from(held_first);
        self.sources[slot].source.rebase_index(first + 1);
        ExtSeq(first)
    }

    /// Sends one accepted packet to the jitter buffer or the telephone-event receiver.
    fn play(&mut self, slot: usize, fields: Fields<'_>, role: Option<PayloadRole>, index: ExtSeq) {
        self.next_index = self.next_index.max(index.0 + 1);
        self.counters.received += u64::from(role.is_some());
        let kind = match role {
            Some(PayloadRole::Audio { .. }) => {
                self.sources[slot]
                    .source
                    .update_jitter(fields.timestamp, fields.arrival);
                PayloadKind::Audio
            }
            Some(PayloadRole::ComfortNoise) => PayloadKind::ComfortNoise,
            Some(PayloadRole::TelephoneEvent { .. }) => {
                self.handle_event(fields);
                PayloadKind::Placeholder
            }
            None => PayloadKind::Placeholder,
        };
        let duration = match role {
            Some(PayloadRole::Audio {
                duration: Some(duration),
                ..
            }) => duration(fields.payload),
            _ => None,
        };
        let pushed = self.jitter.push(
            fields.arrival,
            Incoming {
                index,
                timestamp: fields.timestamp,
                pt: fields.pt,
                marker: fields.marker,
                ssrc: fields.ssrc,
                kind,
                payload: fields.payload,
                duration,
            },
        );
        match pushed {
            // The jitter buffer counts its own overflow drops.
            Ok(()) | Err(DropReason::Overflow) => {}
            Err(reason) => self.counters.drops.add(reason),
        }
    }

    fn handle_event(&mut self, fields: Fields<'_>) {
        let Some(dtmf) = self.dtmf.as_mut() else {
            return;
        };
        let handled = dtmf.handle_packet(
            fields.arrival,
            fields.ssrc,
            fields.timestamp,
            fields.payload,
        );
        if let Err(err) = handled {
            tracing::debug!(%err, ssrc = %fields.ssrc, "invalid telephone-event payload");
        }
        self.drain_dtmf();
    }

    /// Sets a packet aside until the next packet of its source decides about it; a packet held
    /// before is dropped for its own reason.
    fn hold(&mut self, fields: Fields<'_>, reason: DropReason) -> Received {
        let mut payload = match self.held.take() {
            Some(previous) => {
                self.counters.drops.add(previous.reason);
                previous.payload
            }
            None => std::mem::take(&mut self.spare_payload),
        };
        payload.clear();
        payload.extend_from_slice(fields.payload);
        self.held = Some(Held {
            ssrc: fields.ssrc,
            seq: fields.seq,
            timestamp: fields.timestamp,
            pt: fields.pt,
            marker: fields.marker,
            arrival: fields.arrival,
            payload,
            reason,
        });
        Received::Media
    }

    /// Takes the held packet when it is the one just before `fields` in the same source.
    fn take_held_before(&mut self, fields: Fields<'_>) -> Option<Held> {
        let matches = self
            .held
            .as_ref()
            .is_some_and(|h| h.ssrc == fields.ssrc && fields.seq.delta(h.seq) == 1);
        if matches { self.held.take() } else { None }
    }

    /// Drops a held packet of the same source that the packet just handled did not confirm.
    fn expire_held(&mut self, fields: Fields<'_>) {
        let stale = self
            .held
            .as_ref()
            .is_some_and(|h| h.ssrc == fields.ssrc && h.seq != fields.seq);
        if stale && let Some(held) = self.held.take() {
            self.counters.drops.add(held.reason);
            self.spare_payload = held.payload;
        }
    }
}
