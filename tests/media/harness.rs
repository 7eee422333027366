//! A virtual-clock harness around `SessionCore`: a caller that sends PCMU packets, an echo
//! path that returns our own packets, and a record of everything the session sent and
//! reported.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use voicegate::audio::{MediaEvent, PlayoutCommand, SegmentId};
use voicegate::media::MediaConfig;
use voicegate::media::codec::{AudioDecoder, AudioEncoder, G711Decoder, G711Encoder, G711Law};
use voicegate::media::playout::BargeInMode;
use voicegate::media::session::{Channel, SessionConfig, SessionCore, StreamParams};
use voicegate::media::turn::BargeInSettings;
use voicegate::rtp::{Pt, RtpConfig, RtpHeader, RtpPacket, SeqNo, Ssrc};
use voicegate::sip::sdp::{CodecName, Direction, NegotiatedCodec, NegotiatedDtmf};

use super::audio::EchoPath;

/// Our peer's address in every scenario.
pub fn peer_addr() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

/// PCMU, telephone-event on 101, 20 ms, send-receive, strict latching.
pub fn pcmu_params(mode: BargeInMode) -> StreamParams {
    StreamParams {
        remote_rtp: Some(peer_addr()),
        remote_rtcp: None,
        rtcp_mux: false,
        codec: NegotiatedCodec {
            name: CodecName::Pcmu,
            payload_type: 0,
            clock_rate: 8_000,
            channels: 1,
            fmtp: BTreeMap::new(),
        },
        dtmf: Some(NegotiatedDtmf {
            payload_type: 101,
            clock_rate: 8_000,
        }),
        comfort_noise_pt: None,
        ptime_ms: 20,
        direction: Direction::SendRecv,
        strict_source: true,
        record: None,
        barge_in: BargeInSettings {
            mode,
            ..BargeInSettings::from_config(&MediaConfig::default(), 200)
        },
        simulated_echo: None,
    }
}

/// One RTP packet the session sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: Instant,
    pub destination: SocketAddr,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub pt: u8,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

impl Sent {
    /// True when the PCMU payload is not digital silence.
    pub fn has_audio(&self) -> bool {
        let decoder = &mut G711Decoder::new(G711Law::Mu);
        let mut pcm = Vec::new();
        let _ = decoder.decode(&self.payload, &mut pcm);
        pcm.iter().any(|s| s.unsigned_abs() > 64)
    }
}

/// A caller's RTP stream.
#[derive(Debug, Clone)]
pub struct CallerStream {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub pt: u8,
    pub from: SocketAddr,
}

impl CallerStream {
    pub fn new(ssrc: u32, seq: u16, timestamp: u32) -> Self {
        Self {
            ssrc,
            seq,
            timestamp,
            pt: 0,
            from: peer_addr(),
        }
    }

    /// Builds the next packet with `payload` (160 samples of PCMU for 20 ms).
    pub fn packet(&mut self, payload: &[u8], marker: bool) -> Vec<u8> {
        let header = RtpHeader {
            marker,
            pt: Pt(self.pt),
            seq: SeqNo(self.seq),
            timestamp: self.timestamp,
            ssrc: Ssrc(self.ssrc),
        };
        let mut out = vec![0; 12 + payload.len()];
        let len = header.write(payload, &mut out).unwrap();
        out.truncate(len);
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(160);
        out
    }
}

/// The session on a virtual clock.
pub struct Sim {
    pub core: SessionCore,
    pub start: Instant,
    pub now: Instant,
    /// One-way delay of caller packets.
    pub delay: Duration,
    in_flight: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    pub sent: Vec<Sent>,
    pub events: Vec<(Instant, MediaEvent)>,
    pub rtcp: usize,
    encoder: G711Encoder,
    decoder: G711Decoder,
    echo: Option<EchoPath>,
    echo_pending: VecDeque<f64>,
}

impl Sim {
    pub fn new(params: StreamParams) -> Self {
        Self::with_config(params, RtpConfig::default())
    }

    pub fn with_config(params: StreamParams, rtp: RtpConfig) -> Self {
        let start = Instant::now();
        let config = SessionConfig {
            rtp: Arc::new(rtp),
            media: Arc::new(MediaConfig::default()),
        };
        let core = SessionCore::new(start, params, config, 7).unwrap();
        Self {
            core,
            start,
            now: start,
            delay: Duration::from_millis(30),
            in_flight: VecDeque::new(),
            sent: Vec::new(),
            events: Vec::new(),
            rtcp: 0,
            encoder: G711Encoder::new(G711Law::Mu),
            decoder: G711Decoder::new(G711Law::Mu),
            echo: None,
            echo_pending: VecDeque::new(),
        }
    }

    /// Returns our own audio to us through `path` from now on.
    pub fn set_echo(&mut self, path: EchoPath) {
        self.echo = Some(path);
    }

    /// Queues a datagram from `from` that arrives after the network delay.
    pub fn send_from(&mut self, from: SocketAddr, bytes: Vec<u8>) {
        self.in_flight
            .push_back((self.now + self.delay, from, bytes));
    }

    /// Queues a datagram that arrives after `extra` on top of the network delay.
    pub fn send_late(&mut self, from: SocketAddr, bytes: Vec<u8>, extra: Duration) {
        self.in_flight
            .push_back((self.now + self.delay + extra, from, bytes));
        self.in_flight
            .make_contiguous()
            .sort_by_key(|(at, _, _)| *at);
    }

    /// Encodes 160 samples of 8 kHz caller audio, adds the echo, and returns PCMU.
    pub fn caller_payload(&mut self, pcm: &[i16]) -> Vec<u8> {
        let mut mixed = Vec::with_capacity(pcm.len());
        for &sample in pcm {
            let echo = self.echo_pending.pop_front().unwrap_or(0.0);
            mixed.push((f64::from(sample) + echo).clamp(-32768.0, 32767.0) as i16);
        }
        let mut payload = Vec::new();
        self.encoder.encode(&mixed, &mut payload).unwrap();
        payload
    }

    pub fn command(&mut self, command: PlayoutCommand) {
        self.core.handle_command(command);
    }

    /// Queues `pcm` (16 kHz) as one ended segment.
    pub fn queue_segment(&mut self, id: u64, pcm: Vec<i16>) {
        self.command(PlayoutCommand::Audio {
            segment: SegmentId(id),
            pcm,
            interruptible: true,
        });
        self.command(PlayoutCommand::EndSegment(SegmentId(id)));
    }

    /// Advances the clock by 20 ms in two 10 ms worker ticks.
    pub fn step(&mut self) {
        for _ in 0..2 {
            while let Some((at, _, _)) = self.in_flight.front() {
                if *at > self.now {
                    break;
                }
                let (at, from, bytes) = self.in_flight.pop_front().unwrap();
                self.core.handle_datagram(at, from, &bytes, Channel::Rtp);
            }
            if self.core.poll_timeout() <= self.now {
                self.core.tick(self.now);
            }
            self.collect();
            self.now += Duration::from_millis(10);
        }
    }

    /// Sends `audio` (8 kHz PCM) as caller packets, one per 20 ms step, plus the echo.
    pub fn run_caller(&mut self, stream: &mut CallerStream, audio: &[i16]) {
        for chunk in audio.chunks(160) {
            let mut chunk = chunk.to_vec();
            chunk.resize(160, 0);
            let payload = self.caller_payload(&chunk);
            let packet = stream.packet(&payload, false);
            self.send_from(stream.from, packet);
            self.step();
        }
    }

    /// Sends `frames` packets of silence (plus the echo).
    pub fn run_silent(&mut self, stream: &mut CallerStream, frames: usize) {
        self.run_caller(stream, &vec![0; frames * 160]);
    }

    fn collect(&mut self) {
        let now = self.now;
        let mut echo_input = Vec::new();
        for transmit in self.core.transmits() {
            if transmit.channel == Channel::Rtcp {
                self.rtcp += 1;
                continue;
            }
            let Ok(packet) = RtpPacket::parse(transmit.bytes) else {
                continue;
            };
            if packet.pt().0 == 0 {
                let mut pcm = Vec::new();
                let _ = self.decoder.decode(packet.payload(), &mut pcm);
                echo_input.extend(pcm);
            }
            self.sent.push(Sent {
                at: now,
                destination: transmit.destination,
                seq: packet.seq().0,
                timestamp: packet.timestamp(),
                marker: packet.marker(),
                pt: packet.pt().0,
                ssrc: packet.ssrc().0,
                payload: packet.payload().to_vec(),
            });
        }
        self.core.clear_transmits();
        if let Some(echo) = &mut self.echo
            && !echo_input.is_empty()
        {
            self.echo_pending.extend(echo.process(&echo_input));
        }
        while let Some(event) = self.core.poll_event() {
            self.events.push((now, event));
        }
    }

    pub fn barge_ins(&self) -> Vec<(Instant, voicegate::audio::BargeIn)> {
        self.events
            .iter()
            .filter_map(|(at, e)| match e {
                MediaEvent::BargeIn(b) => Some((*at, b.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn speech_starts(&self) -> Vec<Instant> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                MediaEvent::SpeechStarted { onset } => Some(*onset),
                _ => None,
            })
            .collect()
    }

    pub fn audio_frames(&self) -> Vec<&[i16]> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                MediaEvent::Audio(frame) => Some(&frame[..]),
                _ => None,
            })
            .collect()
    }
}
