//! The sans-IO core of one call's media: fed datagrams, playout commands and the time, polled
//! for outbound datagrams, events and its next deadline.
//!
//! A driver feeds each datagram to [`SessionCore::handle_datagram`] with its arrival time and
//! each playout command to [`SessionCore::handle_command`]. It then calls
//! [`SessionCore::tick`] with the current time, sends [`SessionCore::transmits`] and calls
//! [`SessionCore::clear_transmits`]. It drains [`SessionCore::poll_event`] and calls `tick`
//! again at [`SessionCore::poll_timeout`]. Within one 20 ms frame, caller audio is processed (and may cut
//! playout) before the frame of AI audio is read, so a barge-in takes effect on the very next
//! packet.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::outbound::{Outbound, Route};
use super::params::StreamParams;
use super::simulated_echo::{EchoDelayLine, mix_echo};
use super::stats::MediaStats;
use super::tone::DtmfTone;
use super::transmit::{Channel, Transmit, TransmitQueue};
use crate::audio::{DtmfSource, FRAME_MS, FRAME_SAMPLES, Frame, MediaEvent, PlayoutCommand};
use crate::media::MediaConfig;
use crate::media::codec::{Decoder16k, Encoder16k};
use crate::media::error::MediaError;
use crate::media::metrics;
use crate::media::playout::{PlayoutFrame, PlayoutQueue, SampleStorage};
use crate::media::recorder::{Recorder, RecordingWriter};
use crate::media::turn::TurnDetector;
use crate::rtp::{
    DtmfEvent, DurationFn, PayloadTable, PlayoutItem, Pt, Received, RtpConfig, RtpSession,
    SessionEvent, event_to_digit, g711_duration,
};
use crate::sip::sdp::CodecName;

/// Length of one internal frame.
pub const FRAME: Duration = Duration::from_millis(FRAME_MS as u64);
/// Frames processed at most in one tick when the driver falls behind; older ones are skipped.
const MAX_CATCH_UP: u32 = 5;
/// Jitter buffer items read at most per frame (packets shorter than a frame need several).
const MAX_POPS: usize = 8;
/// Largest RTCP compound we write.
const MAX_RTCP: usize = 1_200;

/// Engine-wide settings a session needs.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `[rtp]` section.
    pub rtp: Arc<RtpConfig>,
    /// `[media]` section.
    pub media: Arc<MediaConfig>,
}

/// The parts of a session that are built where errors can still be returned to the caller,
/// and where blocking file I/O is allowed: the codecs and the recording file.
pub struct SessionParts {
    decoder: Decoder16k,
    encoder: Encoder16k,
    recorder: Option<Recorder>,
}

impl std::fmt::Debug for SessionParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionParts").finish_non_exhaustive()
    }
}

impl SessionParts {
    /// Builds the decoder and encoder for `params` and creates the recording file when
    /// `params.record` names a file. A recording that cannot be created is logged and
    /// skipped, because the call itself can go on.
    pub fn new(params: &StreamParams, media: &MediaConfig) -> Result<Self, MediaError> {
        let recorder = params.record.as_deref().and_then(|path| {
            let created = RecordingWriter::shared().and_then(|writer| Recorder::create(path, &writer));
            match created {
                Ok(recorder) => Some(recorder),
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "recording disabled for this call");
                    None
                }
            }
        });
        Ok(Self {
            decoder: Decoder16k::new(&params.codec)?,
            encoder: Encoder16k::new(&params.codec, params.ptime_ms, media)?,
            recorder,
        })
    }

    fn codecs_only(params: &StreamParams, media: &MediaConfig) -> Result<Self, MediaError> {
        Ok(Self {
            decoder: Decoder16k::new(&params.codec)?,
            encoder: Encoder16k::new(&params.codec, params.ptime_ms, media)?,
            recorder: None,
        })
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    dtmf_presses: u64,
    oversized: u64,
    send_errors: u64,
    timeouts: u64,
    decode_errors: u64,
}

/// Totals already added to the global metrics.
#[derive(Debug, Default, Clone, Copy)]
struct Reported {
    lost: i64,
    sent: u64,
    echo_suppressed: u64,
    audio_dropped: u64,
}

/// The media of one call. Not `Send`: it owns a webrtc-vad instance.
#[derive(Debug)]
pub struct SessionCore {
    config: SessionConfig,
    params: StreamParams,
    decoder: Decoder16k,
    encoder: Encoder16k,
    rtp: RtpSession,
    outbound: Outbound,
    turn: TurnDetector,
    playout: PlayoutQueue,
    caller_pcm: Vec<i16>,
    ai_frame: Frame,
    tone: Option<DtmfTone>,
    echo: Option<EchoDelayLine>,
    recorder: Option<Recorder>,
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
        let parts = SessionParts::new(&params, &config.media)?;
        Ok(Self::with_parts(now, params, config, parts, seed))
    }

    /// Creates the media of one call with parts built earlier.
    pub fn with_parts(
        now: Instant,
        params: StreamParams,
        config: SessionConfig,
        parts: SessionParts,
        seed: u64,
    ) -> Self {
        let SessionParts {
            decoder,
            encoder,
            recorder,
        } = parts;
        let rtp = RtpSession::new(
            rtp_config(&config.rtp, &params, seed),
            now,
            SystemTime::now(),
        );
        let packet_ms = encoder.packet_ms();
        let outbound = Outbound::new(packet_ms, now + Outbound::first_packet_offset(packet_ms));
        // G.711 calls lose little by queueing AI audio companded, since the line is mu-law or
        // A-law anyway.
        let storage = match params.codec.name {
            CodecName::Pcmu | CodecName::Pcma => SampleStorage::MuLaw,
            CodecName::G722 | CodecName::Opus => SampleStorage::Linear,
        };
        Self {
            turn: TurnDetector::new(params.barge_in),
            playout: PlayoutQueue::new(storage),
            rtp,
            outbound,
            decoder,
            encoder,
            caller_pcm: Vec::with_capacity(FRAME_SAMPLES * 8),
            ai_frame: [0; FRAME_SAMPLES],
            tone: None,
            echo: params.simulated_echo.map(EchoDelayLine::new),
            recorder,
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
        let received = match channel {
            Channel::Rtp => self.rtp.handle_datagram(now, source, bytes),
            Channel::Rtcp => self.rtp.handle_rtcp_datagram(now, source, bytes),
        };
        if let Received::Dropped(reason) = received {
            tracing::trace!(%reason, %source, "datagram dropped");
        }
        self.drain_rtp_events();
    }

    /// Applies one command from the AI loop.
    pub fn handle_command(&mut self, command: PlayoutCommand) {
        self.playout.apply(command);
    }

    /// Replaces the stream parameters after a re-INVITE or UPDATE.
    pub fn update(&mut self, now: Instant, params: StreamParams) {
        let was_on_hold = self.params.on_hold();
        let codec_changed = params.codec != self.params.codec;

        if codec_changed || params.ptime_ms != self.params.ptime_ms {
            self.change_codec(&params);
        }
        if codec_changed
            || params.dtmf != self.params.dtmf
            || params.comfort_noise_pt != self.params.comfort_noise_pt
        {
            self.rtp.set_payloads(payload_table(&params));
        }
        self.rtp.set_rtcp_mux(params.rtcp_mux);

        if params.remote_rtp != self.params.remote_rtp || (was_on_hold && !params.on_hold()) {
            // RFC 4961: the peer may send from a new address after a re-INVITE.
            self.rtp.open_latch_window(now, params.send_address());
        }
        if params.strict_source != self.params.strict_source {
            // TODO: the RTP session fixes strict latching when it is created.
            tracing::debug!(
                strict = params.strict_source,
                "strict source change ignored"
            );
        }

        if params.simulated_echo != self.params.simulated_echo {
            self.echo = params.simulated_echo.map(EchoDelayLine::new);
        }
        self.turn.set_settings(params.barge_in);
        if params.on_hold() && !was_on_hold {
            tracing::debug!(direction = ?params.direction, "media on hold");
            self.turn.pause(&mut self.playout);
        }
        if was_on_hold && !params.on_hold() {
            tracing::debug!("media resumed");
            self.timeout_base = now;
            self.timeout_reported = None;
        }
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
            Some(destination) => {
                let route = Route {
                    destination,
                    payload_type: self.params.codec.payload_type,
                    comfort_noise_pt: self.params.comfort_noise_pt,
                };
                let sender = self.rtp.sender_mut();
                self.outbound
                    .send_due(now, sender, route, &mut self.encoder, &mut self.transmits);
            }
            None => self.outbound.skip_to(now),
        }
        if self.rtp.poll_timeout() <= now {
            self.rtp.handle_timeout(now);
            self.send_rtcp(now);
        }
        self.drain_rtp_events();
        self.check_timeout(now);
    }

    /// When [`tick`](Self::tick) should run next.
    pub fn poll_timeout(&self) -> Instant {
        let mut next = self.next_frame.min(self.rtp.poll_timeout());
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

    /// Returns the next event for the AI loop.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Writes an RTCP BYE (RFC 3550 §6.6) into the transmit queue, for the end of the call.
    pub fn goodbye(&mut self, now: Instant) {
        let Some(destination) = self.rtp.rtcp_destination() else {
            return;
        };
        let channel = self.rtcp_channel();
        let rtp = &mut self.rtp;
        self.transmits
            .push_with(destination, channel, MAX_RTCP, |out| {
                rtp.write_goodbye(now, out, "call ended").ok()
            });
    }

    /// Counts a datagram the driver could not send.
    pub fn note_send_error(&mut self) {
        self.counters.send_errors += 1;
    }

    /// Counts a datagram longer than the driver's receive buffer.
    pub fn note_oversized(&mut self) {
        self.counters.oversized += 1;
    }

    /// Tells the session how many audio frames the driver dropped for a slow AI loop.
    pub fn note_audio_dropped(&mut self, total: u64) {
        self.audio_dropped = total;
    }

    /// Returns the current stream parameters.
    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    /// Returns the playout queue, for inspection in tests and stats.
    pub fn playout(&self) -> &PlayoutQueue {
        &self.playout
    }

    /// Statistics so far.
    pub fn stats(&self) -> MediaStats {
        let receive = self.rtp.stats();
        let outbound = self.outbound.counters();
        let turn = self.turn.counters();
        MediaStats {
            received: receive.received,
            lost: receive.lost.max(0),
            jitter: receive.jitter,
            late: receive.late,
            duplicates: receive.duplicates,
            concealed: receive.concealed,
            dropped: receive.drops,
            oversized: self.counters.oversized,
            sent: outbound.packets,
            sent_speech: outbound.speech_packets,
            send_errors: self.counters.send_errors,
            dtmf_received: self.counters.dtmf_presses,
            barge_ins: turn.barge_ins,
            barge_in_holds: turn.holds,
            barge_in_holds_released: turn.holds_released,
            echo_suppressed_frames: turn.echo_suppressed_frames,
            echo_return_loss_db: self.turn.echo_return_loss_db(),
            echo_delay_ms: self.turn.echo_delay_ms(),
            audio_frames_dropped: self.audio_dropped,
            fenced_chunks: self.playout.counters().fenced_chunks,
            round_trip: self.rtp.peer_report().and_then(|report| report.round_trip),
            timeouts: self.counters.timeouts,
            ssrcs_seen: receive.ssrcs_seen,
            source_changes: receive.source_changes,
        }
    }

    /// Adds what changed since the last call to the global metrics.
    pub fn flush_metrics(&mut self) {
        self.rtp.publish_metrics();
        let stats = self.stats();
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
            lost,
            sent: stats.sent,
            echo_suppressed: stats.echo_suppressed_frames,
            audio_dropped: stats.audio_frames_dropped,
        };
    }

    /// Adds the final per-call figures to the global metrics; call once when the call ends.
    pub fn finish_metrics(&mut self) {
        self.flush_metrics();
        if let Some(erl) = self.turn.echo_return_loss_db() {
            metrics::ECHO_RETURN_LOSS.observe(f64::from(erl));
        }
    }

    fn destination(&self) -> Option<SocketAddr> {
        if !self.params.may_send() {
            return None;
        }
        self.rtp.destination()
    }

    fn rtcp_channel(&self) -> Channel {
        if self.params.rtcp_mux {
            Channel::Rtp
        } else {
            Channel::Rtcp
        }
    }

    /// Sends our RTCP report when one is due (RFC 3550 §6.3). Reports go on during a hold,
    /// unless the peer gave no address at all.
    fn send_rtcp(&mut self, now: Instant) {
        if self.params.send_address().is_none() {
            return;
        }
        let Some(destination) = self.rtp.rtcp_destination() else {
            return;
        };
        let channel = self.rtcp_channel();
        let rtp = &mut self.rtp;
        self.transmits
            .push_with(destination, channel, MAX_RTCP, |out| {
                rtp.poll_rtcp(now, out)
            });
    }

    fn drain_rtp_events(&mut self) {
        while let Some(event) = self.rtp.poll_event() {
            match event {
                SessionEvent::Dtmf(DtmfEvent::Pressed { event, at, .. }) => {
                    let Some(digit) = event_to_digit(event) else {
                        continue;
                    };
                    self.counters.dtmf_presses += 1;
                    tracing::debug!("dtmf press received");
                    let source = DtmfSource::Rtp;
                    self.events
                        .push_back(MediaEvent::Dtmf { digit, at, source });
                }
                SessionEvent::Dtmf(DtmfEvent::Released { .. }) => {}
                SessionEvent::SourceChanged { previous, current } => {
                    tracing::debug!(?previous, %current, "rtp source changed");
                }
                SessionEvent::Resynced { ssrc } => tracing::debug!(%ssrc, "rtp source re-synced"),
                SessionEvent::Goodbye { ssrc } => tracing::debug!(%ssrc, "rtcp bye received"),
                SessionEvent::SsrcCollision { old, new } => {
                    tracing::info!(%old, %new, "ssrc collision; changed our ssrc");
                }
            }
        }
    }

    fn change_codec(&mut self, params: &StreamParams) {
        match SessionParts::codecs_only(params, &self.config.media) {
            Ok(SessionParts {
                decoder, encoder, ..
            }) => {
                self.outbound.set_packet_ms(encoder.packet_ms());
                // TODO: our RTP sender keeps the clock rate it started with, so a switch
                // between codecs of different clock rates (G.711 and Opus) sends wrong
                // timestamps.
                self.decoder = decoder;
                self.encoder = encoder;
                tracing::debug!(codec = ?params.codec.name, "media codec changed");
            }
            Err(error) => {
                tracing::warn!(%error, codec = ?params.codec.name, "cannot switch codec; keeping the old one");
            }
        }
    }

    fn process_frame(&mut self, at: Instant) {
        let mut events = std::mem::take(&mut self.scratch_events);
        let caller = self.pull_caller_frame(at);
        if let Some(frame) = &caller
            && self.params.may_receive()
            && !self.params.on_hold()
        {
            self.turn.process(at, frame, &mut self.playout, &mut events);
            events.push(MediaEvent::Audio(Box::new(*frame)));
        }

        // The echo line advances on hold too, so its delay stays true to wall time.
        let echo = self
            .echo
            .as_mut()
            .map(|line| *line.next_echo(caller.as_ref()));
        let sent = if self.destination().is_some() {
            let mut speech = self.read_ai_frame(at, &mut events);
            if let Some(echo) = &echo {
                speech |= mix_echo(&mut self.ai_frame, echo);
            }
            let frame = self.ai_frame;
            self.outbound.push_frame(&frame, speech);
            self.turn.push_reference(speech.then_some(&frame));
            true
        } else {
            // On hold: AI audio waits in the queue and nothing is sent.
            self.outbound.discard_audio();
            self.turn.push_reference(None);
            false
        };
        if let Some(recorder) = &mut self.recorder {
            let ai = sent.then_some(&self.ai_frame[..]);
            recorder.push(caller.as_ref().map(|frame| &frame[..]), ai);
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
            match self.rtp.pop_playout(at) {
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
            tone.fill(&mut self.ai_frame);
            if tone.is_done() {
                self.tone = None;
            }
            return false;
        }
        if self.outbound.dtmf_busy(at, self.rtp.sender()) {
            self.ai_frame.fill(0);
            return false;
        }
        match self.playout.next_frame(at, &mut self.ai_frame, events) {
            PlayoutFrame::Speech => true,
            PlayoutFrame::Silence => false,
            PlayoutFrame::Dtmf(digit) => {
                self.ai_frame.fill(0);
                match self.params.dtmf {
                    Some(dtmf) => {
                        let sender = self.rtp.sender_mut();
                        self.outbound
                            .start_dtmf(at, sender, dtmf.payload_type, digit);
                    }
                    None => {
                        self.tone = DtmfTone::new(digit);
                        if let Some(tone) = &mut self.tone {
                            tone.fill(&mut self.ai_frame);
                        }
                    }
                }
                false
            }
        }
    }

    /// Reports a media timeout once per silence: the watchdog for callers that vanish without
    /// BYE. Holds suspend it.
    fn check_timeout(&mut self, now: Instant) {
        if self.params.on_hold() {
            return;
        }
        let last_rtp = self.rtp.last_rtp();
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
        let silent_for = now.saturating_duration_since(last_activity);
        tracing::info!(?silent_for, "media timeout");
        self.timeout_reported = Some(now);
        self.counters.timeouts += 1;
        self.events.push_back(MediaEvent::Timeout);
    }
}

fn payload_table(params: &StreamParams) -> PayloadTable {
    let codec = &params.codec;
    let duration: Option<DurationFn> = match codec.name {
        CodecName::Pcmu | CodecName::Pcma => Some(g711_duration),
        CodecName::G722 | CodecName::Opus => None,
    };
    let mut table = PayloadTable::new()
        .with_audio(Pt(codec.payload_type), codec.clock_rate, duration)
        // RFC 3551 §6: comfort noise on static payload type 13 is recognised even when the
        // SDP did not list it, so that it is never decoded as audio.
        .with_comfort_noise(Pt(13));
    if let Some(pt) = params.comfort_noise_pt {
        table = table.with_comfort_noise(Pt(pt));
    }
    if let Some(dtmf) = params.dtmf {
        table = table.with_telephone_event(Pt(dtmf.payload_type), dtmf.clock_rate);
    }
    table
}

fn rtp_config(rtp: &RtpConfig, params: &StreamParams, seed: u64) -> crate::rtp::SessionConfig {
    let packet_time = Duration::from_millis(u64::from(params.ptime_ms.clamp(10, 200)));
    let table = payload_table(params);
    let mut config = crate::rtp::SessionConfig::new(rtp, table, packet_time, params.strict_source);
    config.rtcp_mux = params.rtcp_mux;
    config.advertised = params.send_address();
    config.advertised_rtcp = params.remote_rtcp;
    config.seed = seed;
    config
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::media::session::SimulatedEcho;
    use crate::rtp::PayloadRole;
    use crate::sip::sdp::{Direction, NegotiatedCodec, NegotiatedDtmf};

    fn params() -> StreamParams {
        StreamParams {
            remote_rtp: Some("127.0.0.1:4000".parse().unwrap()),
            remote_rtcp: None,
            rtcp_mux: false,
            codec: NegotiatedCodec {
                name: CodecName::Pcma,
                payload_type: 8,
                clock_rate: 8_000,
                channels: 1,
                fmtp: BTreeMap::new(),
            },
            dtmf: Some(NegotiatedDtmf {
                payload_type: 97,
                clock_rate: 8_000,
            }),
            comfort_noise_pt: None,
            ptime_ms: 20,
            direction: Direction::SendRecv,
            strict_source: true,
            record: None,
            barge_in: crate::media::turn::BargeInSettings::default(),
            simulated_echo: None,
        }
    }

    fn config() -> SessionConfig {
        SessionConfig {
            rtp: Arc::new(RtpConfig::default()),
            media: Arc::new(MediaConfig::default()),
        }
    }

    fn rms(pcm: &[i16]) -> f64 {
        let energy: f64 = pcm.iter().map(|&s| f64::from(s).powi(2)).sum();
        (energy / pcm.len() as f64).sqrt()
    }

    /// Runs `ticks` frames in which the peer sends a 500 Hz tone, and returns the RMS of each
    /// frame heard and of each RTP payload sent, by frame index.
    fn run_tone_call(core: &mut SessionCore, start: Instant, ticks: u32) -> (Vec<f64>, Vec<f64>) {
        use crate::media::codec::{AudioDecoder, AudioEncoder, G711Decoder, G711Encoder, G711Law};
        use crate::rtp::{RtpHeader, SeqNo, Ssrc};

        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut encoder = G711Encoder::new(G711Law::A);
        let mut decoder = G711Decoder::new(G711Law::A);
        let mut heard = vec![0.0; ticks as usize];
        let mut sent = vec![0.0; ticks as usize];
        for tick in 0..ticks {
            let now = start + FRAME * tick;
            let tone: Vec<i16> = (0..160)
                .map(|i| {
                    let t = f64::from(tick * 160 + i) / 8_000.0;
                    (8_000.0 * (2.0 * std::f64::consts::PI * 500.0 * t).sin()) as i16
                })
                .collect();
            let mut payload = Vec::new();
            encoder.encode(&tone, &mut payload).unwrap();
            let header = RtpHeader {
                marker: tick == 0,
                pt: Pt(8),
                seq: SeqNo(tick as u16),
                timestamp: tick * 160,
                ssrc: Ssrc(0x1234),
            };
            let mut packet = vec![0; 12 + payload.len()];
            let len = header.write(&payload, &mut packet).unwrap();
            core.handle_datagram(now, peer, &packet[..len], Channel::Rtp);
            core.tick(now);
            while let Some(event) = core.poll_event() {
                if let MediaEvent::Audio(frame) = event {
                    heard[tick as usize] = rms(&frame[..]);
                }
            }
            for transmit in core.transmits().filter(|t| t.channel == Channel::Rtp) {
                let mut pcm = Vec::new();
                decoder.decode(&transmit.bytes[12..], &mut pcm).unwrap();
                sent[tick as usize] = rms(&pcm);
            }
            core.clear_transmits();
        }
        (heard, sent)
    }

    fn first_audible(rms: &[f64]) -> Option<usize> {
        rms.iter().position(|&level| level > 100.0)
    }

    #[test]
    fn payload_table_uses_negotiated_numbers() {
        let table = payload_table(&params());
        assert!(matches!(
            table.role(Pt(8)),
            Some(PayloadRole::Audio {
                clock_rate: 8_000,
                ..
            })
        ));
        assert!(matches!(
            table.role(Pt(97)),
            Some(PayloadRole::TelephoneEvent { clock_rate: 8_000 })
        ));
        assert!(matches!(
            table.role(Pt(13)),
            Some(PayloadRole::ComfortNoise)
        ));
        assert!(table.role(Pt(0)).is_none(), "PCMU was not negotiated");
        assert!(table.role(Pt(101)).is_none(), "telephone-event is on 97");
    }

    #[test]
    fn silence_flows_before_any_caller_audio() {
        let start = Instant::now();
        let mut core = SessionCore::new(start, params(), config(), 3).unwrap();
        let mut sent = 0;
        for tick in 0..10u64 {
            core.tick(start + FRAME * tick as u32);
            sent += core
                .transmits()
                .filter(|t| t.channel == Channel::Rtp)
                .count();
            core.clear_transmits();
        }
        assert_eq!(sent, 10, "one packet per frame while the AI is silent");
        assert!(core.poll_event().is_none(), "no caller audio, no events");
        assert_eq!(core.poll_timeout(), start + FRAME * 10);
    }

    #[test]
    fn simulated_echo_sends_heard_audio_back() {
        let start = Instant::now();
        let echo = SimulatedEcho {
            gain_db: -6.0,
            delay_ms: 100,
        };
        let stream = StreamParams {
            simulated_echo: Some(echo),
            ..params()
        };
        let mut core = SessionCore::new(start, stream, config(), 3).unwrap();
        let (heard, sent) = run_tone_call(&mut core, start, 40);

        let heard_at = first_audible(&heard).expect("the tone was never heard");
        let sent_at = first_audible(&sent).expect("no echo was sent");
        assert_eq!(sent_at - heard_at, 5, "100 ms is 5 frames: {sent:?}");
        let (tail_heard, tail_sent) = (heard[30], sent[35]);
        let gain_db = 20.0 * (tail_sent / tail_heard).log10();
        assert!((gain_db + 6.0).abs() < 1.0, "echo gain {gain_db:.2} dB");
        assert!(core.stats().sent_speech > 0, "echo counts as audio sent");
    }

    #[test]
    fn update_without_simulated_echo_stops_it() {
        let start = Instant::now();
        let echo = SimulatedEcho {
            gain_db: 0.0,
            delay_ms: 0,
        };
        let stream = StreamParams {
            simulated_echo: Some(echo),
            ..params()
        };
        let mut core = SessionCore::new(start, stream, config(), 3).unwrap();
        core.update(start, params());
        let (heard, sent) = run_tone_call(&mut core, start, 20);
        assert!(first_audible(&heard).is_some(), "the tone was never heard");
        assert_eq!(first_audible(&sent), None, "echo sent after it was removed");
    }
}
