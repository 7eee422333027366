//! The sans-IO core of one call's media: fed datagrams, playout commands and the time, polled
//! for outbound datagrams, events and its next deadline.
//!
//! Contract for the driver: call [`SessionCore::handle_datagram`] for each datagram with its
//! arrival time, [`SessionCore::handle_command`] for each playout command, then
//! [`SessionCore::tick`] with the current time; send [`SessionCore::transmits`], then call
//! [`SessionCore::clear_transmits`]; drain [`SessionCore::poll_event`]; call `tick` again at
//! [`SessionCore::poll_timeout`]. Within one 20 ms frame, caller audio is processed (and may cut
//! playout) before the frame of AI audio is read, so a barge-in takes effect on the very next
//! packet.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inbound::{Inbound, PayloadTypes};
use super::outbound::{DTMF_GAP, DTMF_TONE, Outbound};
use super::params::StreamParams;
use super::stats::MediaStats;
use super::transmit::{Channel, Transmit, TransmitQueue};
use crate::audio::{FRAME_MS, FRAME_SAMPLES, Frame, MediaEvent, PlayoutCommand, SAMPLE_RATE};
use crate::media::MediaConfig;
use crate::media::codec::{Decoder16k, Encoder16k};
use crate::media::error::MediaError;
use crate::media::metrics;
use crate::media::playout::{PlayoutFrame, PlayoutQueue, SampleStorage};
use crate::media::turn::TurnDetector;
use crate::rtp::{
    Datagram, DropReason, JitterBuffer, JitterConfig, Latch, LatchConfig, PlayoutItem, RtpConfig,
    RtpSender, classify,
};
use rand::SeedableRng;

/// Length of one internal frame.
pub const FRAME: Duration = Duration::from_millis(FRAME_MS as u64);
/// Frames processed at most in one tick when the driver falls behind; older ones are skipped.
const MAX_CATCH_UP: u32 = 5;
/// Jitter buffer items read at most per frame (packets shorter than a frame need several).
const MAX_POPS: usize = 8;

/// Engine-wide settings a session needs.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `[rtp]` section.
    pub rtp: Arc<RtpConfig>,
    /// `[media]` section.
    pub media: Arc<MediaConfig>,
}

/// The codec state of a session, built where errors can still be returned to the caller.
pub struct SessionCodecs {
    decoder: Decoder16k,
    encoder: Encoder16k,
}

impl std::fmt::Debug for SessionCodecs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCodecs").finish_non_exhaustive()
    }
}

impl SessionCodecs {
    /// Builds the decoder and encoder for `params`.
    pub fn new(params: &StreamParams, media: &MediaConfig) -> Result<Self, MediaError> {
        Ok(Self {
            decoder: Decoder16k::new(&params.codec)?,
            encoder: Encoder16k::new(&params.codec, params.ptime_ms, media)?,
        })
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    oversized: u64,
    send_errors: u64,
    timeouts: u64,
    decode_errors: u64,
}

/// Totals already added to the global metrics.
#[derive(Debug, Default, Clone, Copy)]
struct Reported {
    received: u64,
    lost: i64,
    sent: u64,
    echo_suppressed: u64,
    audio_dropped: u64,
}

/// In-band DTMF (ITU-T Q.23 frequency pairs) for calls without telephone-event.
#[derive(Debug, Clone, Copy)]
struct Tone {
    low: f32,
    high: f32,
    sample: u32,
}

/// The media of one call. Not `Send`: it owns a webrtc-vad instance.
#[derive(Debug)]
pub struct SessionCore {
    config: SessionConfig,
    params: StreamParams,
    types: PayloadTypes,
    decoder: Decoder16k,
    encoder: Encoder16k,
    inbound: Inbound,
    outbound: Outbound,
    turn: TurnDetector,
    playout: PlayoutQueue,
    caller_pcm: Vec<i16>,
    ai_frame: Frame,
    tone: Option<Tone>,
    events: VecDeque<MediaEvent>,
    scratch_events: Vec<MediaEvent>,
    transmits: TransmitQueue,
    next_frame: Instant,
    timeout_base: Instant,
    timeout_reported: Option<Instant>,
    counters: Counters,
    reported: Reported,
    audio_dropped: u64,
}

impl SessionCore {
    /// Creates the media of one call whose first frame is at `now`. `seed` makes the SSRC and
    /// initial sequence number and timestamp reproducible.
    pub fn new(
        now: Instant,
        params: StreamParams,
        config: SessionConfig,
        seed: u64,
    ) -> Result<Self, MediaError> {
        let codecs = SessionCodecs::new(&params, &config.media)?;
        Ok(Self::with_codecs(now, params, config, codecs, seed))
    }

    /// Creates the media of one call with codecs built earlier.
    pub fn with_codecs(
        now: Instant,
        params: StreamParams,
        config: SessionConfig,
        codecs: SessionCodecs,
        seed: u64,
    ) -> Self {
        let SessionCodecs { decoder, encoder } = codecs;
        let clock_rate = decoder.clock_rate();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let sender = RtpSender::new(&mut rng, clock_rate, now);
        let packet_ms = encoder.packet_ms();
        let outbound = Outbound::new(
            sender,
            packet_ms,
            now + Outbound::first_packet_offset(packet_ms),
        );
        let latch = Latch::new(
            LatchConfig::new(&config.rtp, params.strict_source),
            params.send_address(),
            now,
        );
        let jitter = JitterBuffer::new(jitter_config(&config.rtp, clock_rate, &params));
        let storage = if params.codec.clock_rate <= 8_000 && decoder.samples_for(160) <= 320 {
            SampleStorage::MuLaw
        } else {
            SampleStorage::Linear
        };
        Self {
            types: payload_types(&params, clock_rate),
            turn: TurnDetector::new(params.barge_in),
            playout: PlayoutQueue::new(storage),
            inbound: Inbound::new(latch, jitter, clock_rate),
            outbound,
            decoder,
            encoder,
            caller_pcm: Vec::with_capacity(FRAME_SAMPLES * 8),
            ai_frame: [0; FRAME_SAMPLES],
            tone: None,
            events: VecDeque::new(),
            scratch_events: Vec::new(),
            transmits: TransmitQueue::default(),
            next_frame: now,
            timeout_base: now,
            timeout_reported: None,
            counters: Counters::default(),
            reported: Reported::default(),
            audio_dropped: 0,
            config,
            params,
        }
    }

    /// Handles one datagram that arrived at `now` from `source` on `channel`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        bytes: &[u8],
        channel: Channel,
    ) {
        if channel == Channel::Rtcp {
            // TODO: parse RTCP reports for round-trip time and the peer's loss figures.
            return;
        }
        match classify(bytes, self.params.rtcp_mux) {
            Ok(Datagram::Rtp(packet)) => {
                tracing::trace!(seq = packet.seq().0, ssrc = %packet.ssrc(), "rtp in");
                self.inbound.handle_rtp(now, source, &packet, self.types);
            }
            // RTCP on the muxed port carries no audio.
            Ok(Datagram::Rtcp(_)) => {}
            // ICE is not offered, so a STUN request gets no answer (RFC 7983 §7 demultiplexing).
            Ok(Datagram::Stun(_)) => self.inbound.count_drop(DropReason::Stun),
            Err(reason) => self.inbound.count_drop(reason),
        }
    }

    /// Applies one command from the AI loop.
    pub fn handle_command(&mut self, command: PlayoutCommand) {
        self.playout.apply(command);
    }

    /// Replaces the stream parameters after a re-INVITE or UPDATE.
    pub fn update(&mut self, now: Instant, params: StreamParams) {
        let was_on_hold = self.params.on_hold();
        let address_changed = params.remote_rtp != self.params.remote_rtp;
        if params.codec != self.params.codec || params.ptime_ms != self.params.ptime_ms {
            self.change_codec(now, &params);
        }
        if address_changed || (was_on_hold && !params.on_hold()) {
            // RFC 4961: the peer may send from a new address after a re-INVITE.
            self.inbound
                .latch_mut()
                .open_window(now, params.send_address());
        }
        self.inbound.latch_mut().set_strict(params.strict_source);
        self.turn.set_settings(params.barge_in);
        if params.on_hold() && !was_on_hold {
            tracing::debug!(direction = ?params.direction, "media on hold");
            self.turn.pause();
        }
        if was_on_hold && !params.on_hold() {
            tracing::debug!("media resumed");
            self.timeout_base = now;
            self.timeout_reported = None;
        }
        self.types = payload_types(&params, self.decoder.clock_rate());
        self.params = params;
    }

    /// Processes every frame and packet due at `now`.
    pub fn tick(&mut self, now: Instant) {
        let mut frames = 0;
        while self.next_frame <= now {
            if frames == MAX_CATCH_UP {
                tracing::debug!(behind = ?now - self.next_frame, "media session skipping frames");
                while self.next_frame + FRAME <= now {
                    self.next_frame += FRAME;
                }
                break;
            }
            let at = self.next_frame;
            self.process_frame(at);
            self.next_frame += FRAME;
            frames += 1;
        }

        match self.destination() {
            Some(destination) => self.outbound.send_due(
                now,
                destination,
                &mut self.encoder,
                self.types.audio,
                self.params.comfort_noise_pt,
                &mut self.transmits,
            ),
            None => self.outbound.skip_to(now),
        }
        while let Some((digit, at)) = self.inbound.poll_dtmf(now) {
            self.events.push_back(MediaEvent::Dtmf {
                digit,
                at,
                source: crate::audio::DtmfSource::Rtp,
            });
        }
        self.check_timeout(now);
    }

    /// When [`tick`](Self::tick) should run next.
    pub fn poll_timeout(&self) -> Instant {
        let mut next = self.next_frame;
        if self.destination().is_some() {
            next = next.min(self.outbound.next_packet());
        }
        next
    }

    /// Datagrams produced since the last [`clear_transmits`](Self::clear_transmits).
    pub fn transmits(&self) -> impl Iterator<Item = Transmit<'_>> {
        self.transmits.iter()
    }

    /// Forgets the datagrams returned by [`transmits`](Self::transmits).
    pub fn clear_transmits(&mut self) {
        self.transmits.clear();
    }

    /// The next event for the AI loop.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Counts a datagram the driver could not send.
    pub fn note_send_error(&mut self) {
        self.counters.send_errors += 1;
    }

    /// Counts a datagram longer than the driver's receive buffer.
    pub fn note_oversized(&mut self) {
        self.counters.oversized += 1;
        self.inbound.count_drop(DropReason::Malformed);
    }

    /// Tells the session how many audio frames the driver dropped for a slow AI loop.
    pub fn note_audio_dropped(&mut self, total: u64) {
        self.audio_dropped = total;
    }

    /// The current stream parameters.
    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    /// The playout queue, for inspection in tests and stats.
    pub fn playout(&self) -> &PlayoutQueue {
        &self.playout
    }

    /// Statistics so far.
    pub fn stats(&self) -> MediaStats {
        let source = self.inbound.played_source();
        let jitter_stats = self.inbound.jitter().stats();
        let outbound = self.outbound.counters();
        let turn = self.turn.counters();
        MediaStats {
            received: self.inbound.sources_received(),
            lost: self.inbound.sources_lost(),
            jitter: source.map(|s| s.jitter_duration()).unwrap_or_default(),
            late: self.inbound.drops().get(DropReason::Late),
            duplicates: self.inbound.drops().get(DropReason::Duplicate),
            concealed: jitter_stats.concealed,
            dropped: self.inbound.drops().clone(),
            oversized: self.counters.oversized,
            sent: outbound.packets,
            sent_speech: outbound.speech_packets,
            send_errors: self.counters.send_errors,
            dtmf_received: self.inbound.dtmf_presses(),
            barge_ins: turn.barge_ins,
            echo_suppressed_frames: turn.echo_suppressed_frames,
            echo_return_loss_db: self.turn.echo_return_loss_db(),
            echo_delay_ms: self.turn.echo_delay_ms(),
            audio_frames_dropped: self.audio_dropped,
            fenced_chunks: self.playout.counters().fenced_chunks,
            round_trip: None,
            timeouts: self.counters.timeouts,
        }
    }

    /// Adds what changed since the last call to the global metrics.
    pub fn flush_metrics(&mut self) {
        let stats = self.stats();
        metrics::PACKETS_RECEIVED.inc_by(stats.received.saturating_sub(self.reported.received));
        let lost = stats.lost.max(self.reported.lost);
        metrics::PACKETS_LOST.inc_by((lost - self.reported.lost).max(0) as u64);
        metrics::PACKETS_SENT.inc_by(stats.sent.saturating_sub(self.reported.sent));
        metrics::ECHO_SUPPRESSED_FRAMES.inc_by(
            stats
                .echo_suppressed_frames
                .saturating_sub(self.reported.echo_suppressed),
        );
        metrics::EVENTS_DROPPED.inc_by(
            stats
                .audio_frames_dropped
                .saturating_sub(self.reported.audio_dropped),
        );
        self.reported = Reported {
            received: stats.received,
            lost,
            sent: stats.sent,
            echo_suppressed: stats.echo_suppressed_frames,
            audio_dropped: stats.audio_frames_dropped,
        };
    }

    /// Adds the final per-call figures to the global metrics; call once when the call ends.
    pub fn finish_metrics(&mut self) {
        self.flush_metrics();
        let stats = self.stats();
        for (reason, count) in stats.dropped.iter() {
            if count > 0 {
                metrics::PACKETS_DROPPED
                    .with_label_values(&[reason.as_str()])
                    .inc_by(count);
            }
        }
        if stats.received > 0 {
            metrics::JITTER.observe(stats.jitter.as_secs_f64());
        }
        if let Some(erl) = stats.echo_return_loss_db {
            metrics::ECHO_RETURN_LOSS.observe(f64::from(erl));
        }
    }

    fn destination(&self) -> Option<SocketAddr> {
        if !self.params.may_send() {
            return None;
        }
        self.inbound.latch().destination()
    }

    fn change_codec(&mut self, now: Instant, params: &StreamParams) {
        match SessionCodecs::new(params, &self.config.media) {
            Ok(SessionCodecs { decoder, encoder }) => {
                let clock_rate = decoder.clock_rate();
                self.outbound.set_packet_ms(encoder.packet_ms());
                let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(
                    self.outbound.sender_mut().ssrc().0,
                ));
                let sender = RtpSender::new(&mut rng, clock_rate, now);
                *self.outbound.sender_mut() = sender;
                self.decoder = decoder;
                self.encoder = encoder;
                let jitter = JitterBuffer::new(jitter_config(&self.config.rtp, clock_rate, params));
                self.inbound.restart(jitter, clock_rate);
                tracing::debug!(codec = ?params.codec.name, "media codec changed");
            }
            Err(error) => {
                tracing::warn!(%error, codec = ?params.codec.name, "cannot switch codec; keeping the old one");
            }
        }
    }

    fn process_frame(&mut self, at: Instant) {
        let mut events = std::mem::take(&mut self.scratch_events);
        if let Some(frame) = self.pull_caller_frame(at)
            && self.params.may_receive()
            && !self.params.on_hold()
        {
            self.turn
                .process(at, &frame, &mut self.playout, &mut events);
            events.push(MediaEvent::Audio(Box::new(frame)));
        }

        if self.destination().is_some() {
            let speech = self.read_ai_frame(at, &mut events);
            let frame = self.ai_frame;
            self.outbound.push_frame(&frame, speech);
            self.turn.push_reference(speech.then_some(&frame));
        } else {
            // On hold: AI audio waits in the queue and nothing is sent.
            self.outbound.discard_audio();
            self.turn.push_reference(None);
        }
        self.events.extend(events.drain(..));
        self.scratch_events = events;
    }

    /// Reads the next 20 ms of caller audio from the jitter buffer, if a whole frame is there.
    fn pull_caller_frame(&mut self, at: Instant) -> Option<Frame> {
        for _ in 0..MAX_POPS {
            if self.caller_pcm.len() >= FRAME_SAMPLES {
                break;
            }
            match self.inbound.jitter_mut().pop(at) {
                PlayoutItem::Nothing => break,
                PlayoutItem::Packet(packet) => {
                    if packet.new_source {
                        self.decoder.reset();
                    }
                    if self
                        .decoder
                        .decode(packet.payload, &mut self.caller_pcm)
                        .is_err()
                    {
                        self.counters.decode_errors += 1;
                        self.decoder.conceal(packet.duration, &mut self.caller_pcm);
                    }
                }
                PlayoutItem::Lost { samples, fec } => match fec {
                    Some(next) if self.decoder.supports_fec() => {
                        self.decoder
                            .decode_fec(next.payload, samples, &mut self.caller_pcm);
                    }
                    _ => {
                        self.decoder.conceal(samples, &mut self.caller_pcm);
                    }
                },
                PlayoutItem::Silence {
                    samples,
                    comfort_noise,
                } => match comfort_noise {
                    Some(level) => {
                        self.decoder
                            .comfort_noise(&[level], samples, &mut self.caller_pcm);
                    }
                    None => {
                        self.decoder.silence(samples, &mut self.caller_pcm);
                    }
                },
            }
        }
        if self.caller_pcm.len() < FRAME_SAMPLES {
            return None;
        }
        let mut frame = [0i16; FRAME_SAMPLES];
        frame.copy_from_slice(&self.caller_pcm[..FRAME_SAMPLES]);
        self.caller_pcm.drain(..FRAME_SAMPLES);
        Some(frame)
    }

    /// Fills `ai_frame` with the next frame to send; returns whether it carries AI speech.
    fn read_ai_frame(&mut self, at: Instant, events: &mut Vec<MediaEvent>) -> bool {
        if let Some(tone) = &mut self.tone {
            fill_tone(tone, &mut self.ai_frame);
            if tone.sample >= tone_total_samples() {
                self.tone = None;
            }
            return false;
        }
        if self.outbound.dtmf_busy(at) {
            self.ai_frame.fill(0);
            return false;
        }
        match self.playout.next_frame(at, &mut self.ai_frame, events) {
            PlayoutFrame::Speech => true,
            PlayoutFrame::Silence => false,
            PlayoutFrame::Dtmf(digit) => {
                match self.params.dtmf {
                    Some(dtmf) => self.outbound.start_dtmf(at, dtmf.payload_type, digit),
                    None => {
                        self.tone = dtmf_tone(digit);
                        if let Some(tone) = &mut self.tone {
                            fill_tone(tone, &mut self.ai_frame);
                            return false;
                        }
                    }
                }
                self.ai_frame.fill(0);
                false
            }
        }
    }

    /// Reports a media timeout once per silence (RFC 3550 has none; this is the SIP-side
    /// watchdog for callers that vanish without BYE). Holds suspend it.
    fn check_timeout(&mut self, now: Instant) {
        if self.params.on_hold() {
            return;
        }
        let last_rtp = self.inbound.last_rtp();
        let last_activity = last_rtp.map_or(self.timeout_base, |at| at.max(self.timeout_base));
        if let Some(reported) = self.timeout_reported {
            if last_rtp.is_some_and(|at| at > reported) {
                self.timeout_reported = None;
            }
            return;
        }
        let limit = Duration::from_secs(self.config.rtp.media_timeout_secs);
        if limit.is_zero() || now.saturating_duration_since(last_activity) < limit {
            return;
        }
        tracing::info!(silent_for = ?now.saturating_duration_since(last_activity), "media timeout");
        self.timeout_reported = Some(now);
        self.counters.timeouts += 1;
        self.events.push_back(MediaEvent::Timeout);
    }
}

fn jitter_config(rtp: &RtpConfig, clock_rate: u32, params: &StreamParams) -> JitterConfig {
    let packet_time = Duration::from_millis(u64::from(params.ptime_ms.clamp(10, 200)));
    JitterConfig::new(rtp, clock_rate, packet_time)
}

fn payload_types(params: &StreamParams, clock_rate: u32) -> PayloadTypes {
    PayloadTypes {
        audio: params.codec.payload_type,
        dtmf: params.dtmf.map(|dtmf| dtmf.payload_type),
        comfort_noise: params.comfort_noise_pt,
        clock_rate,
    }
}

fn tone_total_samples() -> u32 {
    ((DTMF_TONE + DTMF_GAP).as_millis() as u32) * SAMPLE_RATE / 1_000
}

/// ITU-T Q.23 frequency pair of a DTMF digit.
fn dtmf_tone(digit: char) -> Option<Tone> {
    const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let (row, column) = match digit {
        '1' => (0, 0),
        '2' => (0, 1),
        '3' => (0, 2),
        'A' => (0, 3),
        '4' => (1, 0),
        '5' => (1, 1),
        '6' => (1, 2),
        'B' => (1, 3),
        '7' => (2, 0),
        '8' => (2, 1),
        '9' => (2, 2),
        'C' => (2, 3),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        'D' => (3, 3),
        _ => return None,
    };
    Some(Tone {
        low: LOW[row],
        high: HIGH[column],
        sample: 0,
    })
}

fn fill_tone(tone: &mut Tone, frame: &mut Frame) {
    let tone_samples = DTMF_TONE.as_millis() as u32 * SAMPLE_RATE / 1_000;
    for sample in frame.iter_mut() {
        *sample = if tone.sample < tone_samples {
            let t = tone.sample as f32 / SAMPLE_RATE as f32;
            let two_pi = 2.0 * std::f32::consts::PI;
            // About -10 dBm0 per frequency, like the RFC 4733 events we send otherwise.
            (5_000.0 * ((two_pi * tone.low * t).sin() + (two_pi * tone.high * t).sin())) as i16
        } else {
            0
        };
        tone.sample += 1;
    }
}
