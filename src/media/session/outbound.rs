//! Our outbound RTP stream: paced packets of encoded AI audio or silence, RFC 4733 events,
//! and comfort noise where it was negotiated.
//!
//! Frames of 16 kHz PCM come in once per 20 ms; packets leave once per packet time, which may
//! be shorter or longer than a frame. A packet carries AI speech when any 10 ms block of it
//! does, and the first such packet after packets without speech starts a talkspurt and gets
//! the marker bit (RFC 3551 §4.1).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::transmit::{Channel, TransmitQueue};
use crate::audio::{FRAME_SAMPLES, Frame, SAMPLE_RATE};
use crate::media::codec::Encoder16k;
use crate::rtp::{Pt, RTP_HEADER_LEN, RtpSender, digit_to_event};

/// Duration of one DTMF tone we send.
pub const DTMF_TONE: Duration = Duration::from_millis(100);
/// Silence after each DTMF tone.
pub const DTMF_GAP: Duration = Duration::from_millis(60);
/// RFC 4733 volume of the events we send, in -dBm0.
const DTMF_VOLUME: u8 = 10;
/// With comfort noise, one CN packet per this many silent packets. RFC 3389 §4 leaves the
/// rate to the sender, and trunks only need to see that the stream is alive.
const CN_EVERY: u32 = 10;
/// RFC 3389 noise level for digital silence, in -dBov.
const CN_LEVEL: u8 = 127;
const BLOCK_SAMPLES: usize = (SAMPLE_RATE / 100) as usize;
/// Largest datagram we build.
const MAX_PACKET: usize = 1_500;

/// Counters of the outbound stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundCounters {
    /// RTP packets queued for sending.
    pub packets: u64,
    /// Packets that carried AI audio.
    pub speech_packets: u64,
    /// Payloads the encoder rejected.
    pub encode_errors: u64,
}

/// Send side of one session.
#[derive(Debug)]
pub struct Outbound {
    packet_ms: u32,
    next_packet: Instant,
    pcm: VecDeque<i16>,
    speech_blocks: VecDeque<bool>,
    last_was_speech: bool,
    silent_packets: u32,
    dtmf_gap_until: Option<Instant>,
    payload: Vec<u8>,
    packet_pcm: Vec<i16>,
    counters: OutboundCounters,
}

impl Outbound {
    /// Creates the send side; the first packet is due at `first_packet`.
    pub fn new(packet_ms: u32, first_packet: Instant) -> Self {
        Self {
            packet_ms,
            next_packet: first_packet,
            pcm: VecDeque::with_capacity(FRAME_SAMPLES * 4),
            speech_blocks: VecDeque::with_capacity(8),
            last_was_speech: false,
            silent_packets: 0,
            dtmf_gap_until: None,
            payload: Vec::with_capacity(MAX_PACKET),
            packet_pcm: Vec::with_capacity(FRAME_SAMPLES * 3),
            counters: OutboundCounters::default(),
        }
    }

    /// Offset of the first packet after the first frame, so that a packet longer than one
    /// frame always finds its audio buffered.
    pub fn first_packet_offset(packet_ms: u32) -> Duration {
        let frames = packet_ms.saturating_sub(20).div_ceil(20);
        Duration::from_millis(u64::from(frames * 20))
    }

    /// Changes the packet time from the next packet on.
    pub fn set_packet_ms(&mut self, packet_ms: u32) {
        self.packet_ms = packet_ms;
    }

    /// When the next packet is due.
    pub fn next_packet(&self) -> Instant {
        self.next_packet
    }

    /// Counters so far.
    pub fn counters(&self) -> OutboundCounters {
        self.counters
    }

    /// True while an RFC 4733 event or the gap after it is being sent; the playout queue
    /// must not be read then.
    pub fn dtmf_busy(&self, now: Instant, sender: &RtpSender) -> bool {
        sender.event_active() || self.dtmf_gap_until.is_some_and(|until| now < until)
    }

    /// Starts sending `digit` as RFC 4733 events at payload type `pt`.
    pub fn start_dtmf(&mut self, now: Instant, sender: &mut RtpSender, pt: u8, digit: char) {
        let Some(event) = digit_to_event(digit) else {
            return;
        };
        let packet_time = Duration::from_millis(u64::from(self.packet_ms));
        sender.start_event(now, Pt(pt), event, DTMF_VOLUME, DTMF_TONE, packet_time);
        self.dtmf_gap_until = Some(now + DTMF_TONE + DTMF_GAP);
        self.pcm.clear();
        self.speech_blocks.clear();
    }

    /// Adds one frame of audio to send; `speech` is true when it carries AI audio.
    pub fn push_frame(&mut self, frame: &Frame, speech: bool) {
        self.pcm.extend(frame.iter());
        for _ in 0..FRAME_SAMPLES / BLOCK_SAMPLES {
            self.speech_blocks.push_back(speech);
        }
    }

    /// Drops buffered audio, for example when sending stops during a hold.
    pub fn discard_audio(&mut self) {
        self.pcm.clear();
        self.speech_blocks.clear();
        self.last_was_speech = false;
    }

    /// Builds every packet due at `now` into `transmits`, addressed and typed by `route`.
    pub fn send_due(
        &mut self,
        now: Instant,
        sender: &mut RtpSender,
        route: Route,
        encoder: &mut Encoder16k,
        transmits: &mut TransmitQueue,
    ) {
        while self.next_packet <= now {
            let at = self.next_packet;
            self.next_packet += Duration::from_millis(u64::from(self.packet_ms));
            if sender.event_active() {
                self.send_event(at, sender, route.destination, transmits);
                continue;
            }
            self.send_audio(at, sender, route, encoder, transmits);
        }
    }

    /// Skips packets that fell due while nothing could be sent (a hold), so that sending
    /// resumes at `now` without a burst.
    pub fn skip_to(&mut self, now: Instant) {
        let step = Duration::from_millis(u64::from(self.packet_ms));
        while self.next_packet + step <= now {
            self.next_packet += step;
        }
    }

    fn send_event(
        &mut self,
        at: Instant,
        sender: &mut RtpSender,
        destination: SocketAddr,
        transmits: &mut TransmitQueue,
    ) {
        let mut sent = false;
        transmits.push_with(destination, Channel::Rtp, MAX_PACKET, |out| {
            let written = sender.write_event(at, out).ok().flatten();
            sent = written.is_some();
            written
        });
        if sent {
            self.counters.packets += 1;
        }
    }

    fn send_audio(
        &mut self,
        at: Instant,
        sender: &mut RtpSender,
        route: Route,
        encoder: &mut Encoder16k,
        transmits: &mut TransmitQueue,
    ) {
        let Route {
            destination,
            payload_type,
            comfort_noise_pt,
        } = route;
        let samples = (self.packet_ms * SAMPLE_RATE / 1_000) as usize;
        let blocks = samples / BLOCK_SAMPLES;
        self.packet_pcm.clear();
        let available = samples.min(self.pcm.len());
        self.packet_pcm.extend(self.pcm.drain(..available));
        // An underrun (worker stall) is padded with silence rather than sending short packets.
        self.packet_pcm.resize(samples, 0);
        let mut speech = false;
        for _ in 0..blocks {
            speech |= self.speech_blocks.pop_front().unwrap_or(false);
        }

        if !speech && let Some(pt) = comfort_noise_pt {
            self.last_was_speech = false;
            self.silent_packets += 1;
            if self.silent_packets % CN_EVERY == 1 {
                let ticks = encoder.timestamp_increment();
                write_packet(
                    sender,
                    at,
                    destination,
                    Pt(pt),
                    ticks,
                    &[CN_LEVEL],
                    transmits,
                );
                self.counters.packets += 1;
            }
            return;
        }
        self.silent_packets = 0;

        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        let mut ticks = 0;
        let mut discontinuous = false;
        let result = encoder.encode(&self.packet_pcm, |packet| {
            payload.extend_from_slice(packet.payload);
            ticks += packet.timestamp_increment;
            discontinuous |= packet.discontinuous;
        });
        if result.is_err() || payload.is_empty() {
            self.counters.encode_errors += 1;
            self.payload = payload;
            return;
        }
        if speech && !self.last_was_speech {
            sender.mark_talkspurt();
        }
        self.last_was_speech = speech;
        // Opus DTX: the encoder chose not to send this silent packet; the timestamp still
        // follows wall time.
        if !discontinuous {
            let pt = Pt(payload_type);
            write_packet(sender, at, destination, pt, ticks, &payload, transmits);
            self.counters.packets += 1;
            if speech {
                self.counters.speech_packets += 1;
            }
        }
        self.payload = payload;
    }
}

/// Destination and payload types of the packets we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Peer's RTP address.
    pub destination: SocketAddr,
    /// Payload type of the audio codec.
    pub payload_type: u8,
    /// Comfort noise payload type, when negotiated.
    pub comfort_noise_pt: Option<u8>,
}

fn write_packet(
    sender: &mut RtpSender,
    at: Instant,
    destination: SocketAddr,
    pt: Pt,
    clock_units: u32,
    payload: &[u8],
    transmits: &mut TransmitQueue,
) {
    let max_len = RTP_HEADER_LEN + payload.len();
    transmits.push_with(destination, Channel::Rtp, max_len, |out| {
        sender.write_audio(at, pt, clock_units, payload, out).ok()
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::SeedableRng;

    use super::*;
    use crate::media::MediaConfig;
    use crate::rtp::RtpPacket;
    use crate::sip::sdp::{CodecName, NegotiatedCodec};

    fn pcmu_encoder(ptime_ms: u32) -> Encoder16k {
        let codec = NegotiatedCodec {
            name: CodecName::Pcmu,
            payload_type: 0,
            clock_rate: 8_000,
            channels: 1,
            fmtp: BTreeMap::new(),
        };
        Encoder16k::new(&codec, ptime_ms, &MediaConfig::default()).unwrap()
    }

    #[test]
    fn first_packet_waits_for_its_audio() {
        assert_eq!(Outbound::first_packet_offset(10), Duration::ZERO);
        assert_eq!(Outbound::first_packet_offset(20), Duration::ZERO);
        assert_eq!(Outbound::first_packet_offset(30), Duration::from_millis(20));
        assert_eq!(Outbound::first_packet_offset(40), Duration::from_millis(20));
        assert_eq!(Outbound::first_packet_offset(60), Duration::from_millis(40));
    }

    #[test]
    fn forty_ms_packets_carry_two_frames() {
        let start = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut sender = RtpSender::new(&mut rng, 8_000, start);
        let mut encoder = pcmu_encoder(40);
        let mut outbound = Outbound::new(40, start + Outbound::first_packet_offset(40));
        let route = Route {
            destination: "127.0.0.1:4000".parse().unwrap(),
            payload_type: 0,
            comfort_noise_pt: None,
        };
        let mut transmits = TransmitQueue::default();
        let speech = [3_000i16; FRAME_SAMPLES];
        for frame in 0..10u64 {
            let now = start + Duration::from_millis(20 * frame);
            outbound.push_frame(&speech, frame >= 4);
            outbound.send_due(now, &mut sender, route, &mut encoder, &mut transmits);
        }
        let packets: Vec<_> = transmits
            .iter()
            .map(|t| RtpPacket::parse(t.bytes).unwrap().payload().len())
            .collect();
        assert_eq!(packets, vec![320; 5]);
        assert_eq!(outbound.counters().packets, 5);
        assert_eq!(outbound.counters().speech_packets, 3);
    }

    #[test]
    fn comfort_noise_replaces_silence() {
        let start = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut sender = RtpSender::new(&mut rng, 8_000, start);
        let mut encoder = pcmu_encoder(20);
        let mut outbound = Outbound::new(20, start);
        let route = Route {
            destination: "127.0.0.1:4000".parse().unwrap(),
            payload_type: 0,
            comfort_noise_pt: Some(13),
        };
        let mut transmits = TransmitQueue::default();
        for frame in 0..20u64 {
            outbound.push_frame(&[0; FRAME_SAMPLES], false);
            let now = start + Duration::from_millis(20 * frame);
            outbound.send_due(now, &mut sender, route, &mut encoder, &mut transmits);
        }
        let types: Vec<u8> = transmits
            .iter()
            .map(|t| RtpPacket::parse(t.bytes).unwrap().pt().0)
            .collect();
        assert_eq!(types, vec![13, 13], "one CN packet per 200 ms of silence");
    }
}
