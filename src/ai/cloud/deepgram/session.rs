//! The sans-IO core of a Deepgram live session: connection state, keepalive and reconnect
//! timers, the replay of recent audio into a new connection, and the removal of words that an
//! earlier connection already finalised.
//!
//! The driver feeds it `(now, input)` through the `handle_*` methods, performs the
//! [`Output`]s that [`Session::poll_output`] returns in order, and calls
//! [`Session::handle_timeout`] at [`Session::poll_timeout`].
//!
//! Timeline: every audio byte has an offset counted from the start of the call. A connection
//! starts at an `origin` offset, and Deepgram's times are seconds from that origin. The
//! `final_cursor` is the offset up to which final text was already emitted. After a drop, the
//! new connection starts [`REPLAY_CONTEXT`] before the cursor (or at the oldest held audio), so
//! that a word cut at the boundary is heard whole. Words whose midpoint lies before the cursor
//! were already emitted, so they are dropped from the new connection's results.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::message::{self, Results, ServerMessage};
use super::ring::AudioRing;
use crate::ai::cloud::metrics;
use crate::ai::provider::{ProviderError, SttEvent};

/// Provider name in errors and metrics.
pub const PROVIDER: &str = "deepgram";
/// Audio before the final cursor that a new connection hears again, so that a word cut at the
/// boundary is recognised whole.
pub const REPLAY_CONTEXT: Duration = Duration::from_secs(1);
/// Maximum time a connection stays open after CloseStream, waiting for the last results.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Maximum reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Audio sent in one binary frame at most when replaying, 100 ms at the configured rate.
const REPLAY_FRAME_DIVISOR: u32 = 10;

/// Settings of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Time without sent audio after which a KeepAlive goes out.
    pub keepalive: Duration,
    /// Failed connection attempts in a row that end the session.
    pub max_failures: u32,
    /// Delay before the second reconnect attempt; it doubles per failure up to [`BACKOFF_MAX`].
    pub backoff: Duration,
    /// Bytes per second of wire audio.
    pub bytes_per_second: u32,
    /// Bytes per sample of wire audio.
    pub sample_bytes: u32,
    /// Audio kept for replay.
    pub replay: Duration,
    /// Seed of the reconnect delay jitter.
    pub seed: u64,
}

/// An action the driver performs.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a new WebSocket connection; report with `handle_connected` or
    /// `handle_connect_failed`.
    Connect,
    /// Send a binary frame of audio.
    SendAudio(Vec<u8>),
    /// Send a text frame.
    SendText(&'static str),
    /// Deliver an event to the conversation loop.
    Event(SttEvent),
    /// Drop the current connection without reporting its close.
    Disconnect,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Connection {
    origin: u64,
    sent: u64,
    last_sent: Instant,
    healthy: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    /// No connection; `Some` schedules the next attempt, `None` waits for audio or Resume.
    Down(Option<Instant>),
    Connecting,
    Up(Connection),
    /// CloseStream sent; waiting for the server to close until the deadline. Holds the
    /// connection's origin for the last results.
    Closing(Instant, u64),
    Finished,
}

/// The session state machine.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    ring: AudioRing,
    link: Link,
    paused: bool,
    finalize_pending: bool,
    final_cursor: u64,
    max_sent: u64,
    failures: u32,
    attempts: u64,
    connected_once: bool,
    outage: bool,
    last_error: Option<ProviderError>,
    outputs: VecDeque<Output>,
}

impl Session {
    /// Creates a session that connects at once.
    pub fn new(config: SessionConfig) -> Self {
        let ring_bytes = config.replay.as_secs_f64() * f64::from(config.bytes_per_second);
        let ring = AudioRing::new(ring_bytes as usize, config.sample_bytes as usize);
        let mut session = Self {
            config,
            ring,
            link: Link::Connecting,
            paused: false,
            finalize_pending: false,
            final_cursor: 0,
            max_sent: 0,
            failures: 0,
            attempts: 1,
            connected_once: false,
            outage: false,
            last_error: None,
            outputs: VecDeque::new(),
        };
        session.outputs.push_back(Output::Connect);
        session
    }

    /// Takes the next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Returns when [`Session::handle_timeout`] must run next, if any timer is set.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.link {
            Link::Down(at) => at,
            Link::Up(connection) => Some(connection.last_sent + self.config.keepalive),
            Link::Closing(deadline, _) => Some(deadline),
            Link::Connecting | Link::Finished => None,
        }
    }

    /// Returns whether the session ended. The driver stops after draining the outputs.
    pub fn is_finished(&self) -> bool {
        self.link == Link::Finished
    }

    /// Adds caller audio, already in the wire encoding.
    pub fn handle_audio(&mut self, now: Instant, bytes: &[u8]) {
        if self.is_ending() {
            return;
        }
        self.ring.push(bytes);
        match self.link {
            Link::Up(_) => self.flush(now),
            Link::Down(None) => self.link = Link::Down(Some(now)),
            _ => {}
        }
    }

    /// Asks for final results of the audio so far.
    pub fn handle_finalize(&mut self, now: Instant) {
        if self.is_ending() {
            return;
        }
        let unfinalized = match self.link {
            Link::Up(connection) => connection.sent > self.final_cursor,
            _ => self.ring.end() > self.final_cursor,
        };
        if !unfinalized {
            // No audio arrived since the last final text, so reply at once instead of waiting
            // for a server that may have nothing to send.
            self.outputs
                .push_back(Output::Event(SttEvent::Final(String::new())));
            return;
        }
        self.finalize_pending = true;
        match self.link {
            Link::Up(_) => self.send_text(now, message::FINALIZE),
            Link::Down(None) => self.link = Link::Down(Some(now)),
            _ => {}
        }
    }

    /// Marks the call as on hold or muted. KeepAlive messages keep the connection open.
    pub fn handle_pause(&mut self, _now: Instant) {
        self.paused = true;
    }

    /// Marks audio as flowing again and reopens a connection the server closed during the
    /// pause.
    pub fn handle_resume(&mut self, now: Instant) {
        self.paused = false;
        if self.link == Link::Down(None) {
            self.link = Link::Down(Some(now));
        }
    }

    /// Ends the session for the conversation loop: asks the server to flush and close.
    pub fn handle_end(&mut self, now: Instant) {
        match self.link {
            Link::Up(connection) => {
                self.send_text(now, message::CLOSE_STREAM);
                self.link = Link::Closing(now + CLOSE_TIMEOUT, connection.origin);
            }
            Link::Closing(..) | Link::Finished => {}
            Link::Down(_) | Link::Connecting => self.finish_ok(),
        }
    }

    /// Starts using the connection that [`Output::Connect`] requested, replaying held audio.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.link != Link::Connecting {
            return;
        }
        let context = self.bytes_for(REPLAY_CONTEXT);
        let origin = self
            .ring
            .align(self.final_cursor.saturating_sub(context))
            .max(self.ring.start());
        if self.attempts > 1 {
            metrics::STT_RECONNECTS
                .with_label_values(&[PROVIDER, "connected"])
                .inc();
        }
        let replayed = self.max_sent.saturating_sub(origin);
        if replayed > 0 {
            let ms = replayed * 1000 / u64::from(self.config.bytes_per_second.max(1));
            metrics::STT_REPLAYED_MS
                .with_label_values(&[PROVIDER])
                .inc_by(ms);
            tracing::debug!(
                replayed_ms = ms,
                "replaying caller audio into new connection"
            );
        }
        self.outage = false;
        self.connected_once = true;
        self.link = Link::Up(Connection {
            origin,
            sent: origin,
            last_sent: now,
            healthy: false,
        });
        self.flush(now);
        if self.finalize_pending {
            self.send_text(now, message::FINALIZE);
        }
    }

    /// Records a failed connection attempt and schedules the next one or gives up.
    pub fn handle_connect_failed(&mut self, now: Instant, error: ProviderError) {
        if self.link != Link::Connecting {
            return;
        }
        metrics::STT_RECONNECTS
            .with_label_values(&[PROVIDER, "failed"])
            .inc();
        tracing::warn!(error = %error, failures = self.failures + 1, "deepgram connect failed");
        self.failures += 1;
        self.after_failure(now, error);
    }

    /// Handles a connection the server closed or that broke. `error` describes the close.
    pub fn handle_closed(&mut self, now: Instant, error: ProviderError) {
        let connection = match self.link {
            Link::Closing(..) => {
                self.finish_ok();
                return;
            }
            Link::Up(connection) => connection,
            _ => return,
        };
        tracing::warn!(error = %error, "deepgram connection closed");
        if !connection.healthy {
            self.failures += 1;
        }
        self.after_failure(now, error);
    }

    /// Handles a text frame from the server.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        let origin = match self.link {
            Link::Up(connection) => connection.origin,
            Link::Closing(_, origin) => origin,
            _ => return,
        };
        let parsed = match message::parse(text) {
            Ok(parsed) => parsed,
            Err(message) => {
                self.protocol_error(now, message);
                return;
            }
        };
        match parsed {
            ServerMessage::Results(results) => {
                if let Link::Up(mut connection) = self.link {
                    connection.healthy = true;
                    self.link = Link::Up(connection);
                    self.failures = 0;
                }
                self.handle_results(origin, &results);
            }
            ServerMessage::Error { message } => {
                tracing::warn!(%message, "deepgram reported an error");
                self.last_error = Some(ProviderError::Rejected {
                    provider: PROVIDER,
                    status: 1011,
                    message,
                });
            }
            ServerMessage::Metadata { request_id } => {
                tracing::debug!(%request_id, "deepgram metadata");
            }
            ServerMessage::UtteranceEnd { last_word_end } => {
                tracing::trace!(last_word_end, "deepgram utterance end");
            }
            ServerMessage::SpeechStarted { timestamp } => {
                tracing::trace!(timestamp, "deepgram speech started");
            }
            ServerMessage::Other(kind) => tracing::debug!(%kind, "unknown deepgram message"),
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.link {
            Link::Down(Some(at)) if now >= at => {
                self.attempts += 1;
                self.link = Link::Connecting;
                self.outputs.push_back(Output::Connect);
            }
            Link::Up(connection) if now >= connection.last_sent + self.config.keepalive => {
                self.send_text(now, message::KEEP_ALIVE);
            }
            Link::Closing(deadline, _) if now >= deadline => {
                self.outputs.push_back(Output::Disconnect);
                self.finish_ok();
            }
            _ => {}
        }
    }

    /// Ends a session that did not fail, counting it as a successful one.
    fn finish_ok(&mut self) {
        metrics::count_request(PROVIDER, Ok(()));
        self.link = Link::Finished;
    }

    fn is_ending(&self) -> bool {
        matches!(self.link, Link::Closing(..) | Link::Finished)
    }

    fn bytes_for(&self, duration: Duration) -> u64 {
        (duration.as_secs_f64() * f64::from(self.config.bytes_per_second)) as u64
    }

    fn flush(&mut self, now: Instant) {
        let Link::Up(mut connection) = self.link else {
            return;
        };
        let frame = (self.config.bytes_per_second / REPLAY_FRAME_DIVISOR).max(1) as usize;
        while connection.sent < self.ring.end() {
            let bytes = self.ring.copy_from(connection.sent, frame);
            if bytes.is_empty() {
                break;
            }
            connection.sent = connection.sent.max(self.ring.start()) + bytes.len() as u64;
            connection.last_sent = now;
            self.outputs.push_back(Output::SendAudio(bytes));
        }
        self.max_sent = self.max_sent.max(connection.sent);
        self.link = Link::Up(connection);
    }

    fn send_text(&mut self, now: Instant, text: &'static str) {
        if let Link::Up(mut connection) = self.link {
            connection.last_sent = now;
            self.link = Link::Up(connection);
        }
        self.outputs.push_back(Output::SendText(text));
    }

    fn protocol_error(&mut self, now: Instant, message: String) {
        tracing::warn!(%message, "invalid deepgram message");
        let error = ProviderError::Protocol {
            provider: PROVIDER,
            message,
        };
        if let Link::Closing(..) = self.link {
            self.outputs.push_back(Output::Disconnect);
            self.finish_ok();
            return;
        }
        self.outputs.push_back(Output::Disconnect);
        // A connection that sends garbage counts as failed even if it sent results before.
        self.failures += 1;
        self.after_failure(now, error);
    }

    fn after_failure(&mut self, now: Instant, error: ProviderError) {
        let error = match self.last_error.take() {
            // The server's own error message explains a close better than the close code.
            Some(reported) if matches!(error, ProviderError::Rejected { .. }) => reported,
            _ => error,
        };
        if !is_retryable(&error) || self.failures >= self.config.max_failures {
            metrics::count_request(PROVIDER, Err(&error));
            self.outputs
                .push_back(Output::Event(SttEvent::Failed(error)));
            self.link = Link::Finished;
            return;
        }
        let idle = self.paused && !self.finalize_pending && self.max_sent >= self.ring.end();
        if idle {
            // Nothing to transcribe until the call comes back from hold.
            self.link = Link::Down(None);
            return;
        }
        // Reconnecting means a connection was lost; a first connection that fails is silent.
        if !self.outage && self.connected_once {
            self.outage = true;
            self.outputs
                .push_back(Output::Event(SttEvent::Reconnecting));
        }
        self.link = Link::Down(Some(now + self.reconnect_delay()));
    }

    /// Returns the wait before the next attempt: none after a working connection dropped, then
    /// the backoff doubled per failure up to [`BACKOFF_MAX`], with up to 25% seeded jitter so
    /// that calls dropped together do not reconnect in lockstep.
    fn reconnect_delay(&self) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let doubling = 2u32.saturating_pow(self.failures - 1);
        let base = self
            .config
            .backoff
            .saturating_mul(doubling)
            .min(BACKOFF_MAX);
        let jitter = splitmix64(self.config.seed ^ self.attempts) % 25;
        (base + base * jitter as u32 / 100).min(BACKOFF_MAX)
    }

    fn handle_results(&mut self, origin: u64, results: &Results) {
        let rate = f64::from(self.config.bytes_per_second.max(1));
        let origin_secs = origin as f64 / rate;
        let cursor_secs = self.final_cursor as f64 / rate;
        let text = unseen_text(results, origin_secs, cursor_secs);
        if results.is_final {
            let end = ((origin_secs + results.start + results.duration) * rate) as u64;
            self.final_cursor = self.final_cursor.max(self.ring.align(end));
            if results.from_finalize {
                self.finalize_pending = false;
            }
            if !text.is_empty() || results.from_finalize {
                self.outputs.push_back(Output::Event(SttEvent::Final(text)));
            }
        } else if !text.is_empty() {
            self.outputs
                .push_back(Output::Event(SttEvent::Partial(text)));
        }
    }
}

/// Returns whether another connection attempt may help.
fn is_retryable(error: &ProviderError) -> bool {
    match error {
        // 400-404 reject the upgrade for a bad key, parameter or model. Close code 1008
        // (policy violation, RFC 6455 §7.4.1) means the server rejected what was sent, so
        // sending the same audio again cannot help.
        ProviderError::Rejected { status, .. } => !matches!(status, 400..=404 | 1008),
        ProviderError::Config { .. } => false,
        _ => true,
    }
}

/// Returns the text of `results` without the words a previous connection already finalised:
/// those whose midpoint lies before `cursor_secs` on the call's timeline.
fn unseen_text(results: &Results, origin_secs: f64, cursor_secs: f64) -> String {
    if results.words.is_empty() {
        let end = origin_secs + results.start + results.duration;
        return if end <= cursor_secs {
            String::new()
        } else {
            results.transcript.clone()
        };
    }
    let kept: Vec<&str> = results
        .words
        .iter()
        .filter(|word| origin_secs + (word.start + word.end) / 2.0 >= cursor_secs)
        .map(|word| word.text.as_str())
        .collect();
    if kept.len() == results.words.len() && !results.transcript.is_empty() {
        results.transcript.clone()
    } else {
        kept.join(" ")
    }
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BPS: u32 = 32_000;

    fn config() -> SessionConfig {
        SessionConfig {
            keepalive: Duration::from_secs(4),
            max_failures: 3,
            backoff: Duration::from_millis(200),
            bytes_per_second: BPS,
            sample_bytes: 2,
            replay: Duration::from_secs(8),
            seed: 7,
        }
    }

    fn drain(session: &mut Session) -> Vec<Output> {
        std::iter::from_fn(|| session.poll_output()).collect()
    }

    fn events(outputs: &[Output]) -> Vec<SttEvent> {
        outputs
            .iter()
            .filter_map(|output| match output {
                Output::Event(event) => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    fn audio_bytes(outputs: &[Output]) -> usize {
        outputs
            .iter()
            .map(|output| match output {
                Output::SendAudio(bytes) => bytes.len(),
                _ => 0,
            })
            .sum()
    }

    fn results(
        start: f64,
        duration: f64,
        is_final: bool,
        from_finalize: bool,
        words: &[(&str, f64, f64)],
    ) -> String {
        let transcript: Vec<&str> = words.iter().map(|w| w.0).collect();
        let words: Vec<serde_json::Value> = words
            .iter()
            .map(|(word, start, end)| {
                serde_json::json!({"word": word, "start": start, "end": end, "confidence": 0.9})
            })
            .collect();
        serde_json::json!({
            "type": "Results",
            "start": start,
            "duration": duration,
            "is_final": is_final,
            "speech_final": false,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": transcript.join(" "), "words": words}]},
        })
        .to_string()
    }

    fn closed_1011() -> ProviderError {
        ProviderError::Rejected {
            provider: PROVIDER,
            status: 1011,
            message: "internal error".into(),
        }
    }

    fn connect_error() -> ProviderError {
        ProviderError::Connect {
            provider: PROVIDER,
            message: "connection refused".into(),
        }
    }

    /// Creates a session that is connected at `now` and has sent `seconds` of silence.
    fn connected(now: Instant, seconds: usize) -> Session {
        let mut session = Session::new(config());
        assert_eq!(drain(&mut session), vec![Output::Connect]);
        session.handle_connected(now);
        session.handle_audio(now, &vec![0u8; seconds * BPS as usize]);
        drain(&mut session);
        session
    }

    #[test]
    fn audio_before_connect_is_sent_once_connected() {
        let now = Instant::now();
        let mut session = Session::new(config());
        drain(&mut session);
        session.handle_audio(now, &[1; 640]);
        assert!(drain(&mut session).is_empty());
        session.handle_connected(now);
        let outputs = drain(&mut session);
        assert_eq!(outputs, vec![Output::SendAudio(vec![1; 640])]);
    }

    #[test]
    fn keepalive_while_paused() {
        let start = Instant::now();
        let mut session = connected(start, 1);
        session.handle_pause(start);
        let due = session.poll_timeout().unwrap();
        assert_eq!(due, start + Duration::from_secs(4));
        session.handle_timeout(due - Duration::from_millis(1));
        assert!(drain(&mut session).is_empty());
        session.handle_timeout(due);
        assert_eq!(
            drain(&mut session),
            vec![Output::SendText(message::KEEP_ALIVE)]
        );
        assert_eq!(session.poll_timeout(), Some(due + Duration::from_secs(4)));
    }

    #[test]
    fn audio_postpones_keepalive() {
        let start = Instant::now();
        let mut session = connected(start, 1);
        let later = start + Duration::from_secs(3);
        session.handle_audio(later, &[0; 640]);
        drain(&mut session);
        session.handle_timeout(start + Duration::from_secs(4));
        assert!(drain(&mut session).is_empty());
        assert_eq!(session.poll_timeout(), Some(later + Duration::from_secs(4)));
    }

    #[test]
    fn drop_replays_audio_and_removes_overlap() {
        let start = Instant::now();
        let mut session = connected(start, 3);
        session.handle_text(
            start,
            &results(
                0.0,
                2.0,
                true,
                false,
                &[
                    ("my", 0.2, 0.4),
                    ("account", 0.6, 1.0),
                    ("number", 1.2, 1.7),
                ],
            ),
        );
        session.handle_text(
            start,
            &results(
                2.0,
                0.9,
                false,
                false,
                &[("is", 2.1, 2.3), ("four", 2.5, 2.8)],
            ),
        );
        assert_eq!(
            events(&drain(&mut session)),
            vec![
                SttEvent::Final("my account number".into()),
                SttEvent::Partial("is four".into())
            ]
        );

        let dropped = start + Duration::from_secs(3);
        session.handle_closed(dropped, closed_1011());
        assert_eq!(events(&drain(&mut session)), vec![SttEvent::Reconnecting]);
        assert_eq!(session.poll_timeout(), Some(dropped));
        session.handle_timeout(dropped);
        assert_eq!(drain(&mut session), vec![Output::Connect]);

        // The new connection starts one second before the final cursor (2.0 s).
        session.handle_connected(dropped);
        let replay = drain(&mut session);
        assert_eq!(audio_bytes(&replay), 2 * BPS as usize);
        session.handle_text(
            dropped,
            &results(
                0.0,
                2.0,
                true,
                false,
                &[("number", 0.2, 0.7), ("is", 1.1, 1.3), ("four", 1.5, 1.8)],
            ),
        );
        assert_eq!(
            events(&drain(&mut session)),
            vec![SttEvent::Final("is four".into())]
        );
    }

    #[test]
    fn reconnect_delays_grow_and_stay_under_a_second() {
        let start = Instant::now();
        let mut session = connected(start, 1);
        session.handle_text(start, &results(0.0, 1.0, true, false, &[("hi", 0.1, 0.3)]));
        drain(&mut session);

        let mut now = start + Duration::from_secs(1);
        session.handle_closed(now, closed_1011());
        let mut delays = Vec::new();
        loop {
            let outputs = drain(&mut session);
            if let Some(SttEvent::Failed(error)) = events(&outputs).last() {
                assert_eq!(error, &connect_error());
                break;
            }
            let due = session.poll_timeout().expect("a reconnect is scheduled");
            delays.push(due - now);
            now = due;
            session.handle_timeout(now);
            assert_eq!(drain(&mut session), vec![Output::Connect]);
            session.handle_connect_failed(now, connect_error());
        }
        assert_eq!(delays.len(), 3, "{delays:?}");
        assert_eq!(delays[0], Duration::ZERO);
        assert!(delays[1] >= Duration::from_millis(200), "{delays:?}");
        assert!(delays[2] >= Duration::from_millis(400), "{delays:?}");
        assert!(delays[1] < delays[2], "{delays:?}");
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX), "{delays:?}");
        assert!(session.is_finished());
    }

    #[test]
    fn reconnecting_is_reported_once_per_outage() {
        let start = Instant::now();
        let mut session = connected(start, 1);
        session.handle_text(start, &results(0.0, 1.0, true, false, &[("hi", 0.1, 0.3)]));
        drain(&mut session);
        session.handle_closed(start, closed_1011());
        session.handle_timeout(start);
        session.handle_connect_failed(start, connect_error());
        let outputs = drain(&mut session);
        let reconnecting = events(&outputs)
            .into_iter()
            .filter(|e| *e == SttEvent::Reconnecting)
            .count();
        assert_eq!(reconnecting, 1);
    }

    #[test]
    fn rejected_key_fails_at_once() {
        let now = Instant::now();
        let mut session = Session::new(config());
        drain(&mut session);
        let error = ProviderError::Rejected {
            provider: PROVIDER,
            status: 401,
            message: "Invalid credentials.".into(),
        };
        session.handle_connect_failed(now, error.clone());
        assert_eq!(events(&drain(&mut session)), vec![SttEvent::Failed(error)]);
        assert!(session.is_finished());
    }

    #[test]
    fn garbage_disconnects_and_counts_as_failure() {
        let now = Instant::now();
        let mut session = connected(now, 1);
        for _ in 0..2 {
            session.handle_text(now, "not json");
            let outputs = drain(&mut session);
            assert_eq!(outputs.first(), Some(&Output::Disconnect));
            let due = session.poll_timeout().unwrap();
            session.handle_timeout(due);
            drain(&mut session);
            session.handle_connected(due);
            drain(&mut session);
        }
        session.handle_text(now, "{\"type\":");
        let outputs = drain(&mut session);
        assert!(
            matches!(
                events(&outputs).last(),
                Some(SttEvent::Failed(ProviderError::Protocol { .. }))
            ),
            "{outputs:?}"
        );
    }

    #[test]
    fn finalize_with_nothing_new_replies_at_once() {
        let now = Instant::now();
        let mut session = Session::new(config());
        drain(&mut session);
        session.handle_connected(now);
        session.handle_finalize(now);
        assert_eq!(
            drain(&mut session),
            vec![Output::Event(SttEvent::Final(String::new()))]
        );
    }

    #[test]
    fn finalize_is_sent_again_after_reconnect() {
        let now = Instant::now();
        let mut session = connected(now, 1);
        session.handle_finalize(now);
        assert_eq!(
            drain(&mut session),
            vec![Output::SendText(message::FINALIZE)]
        );
        session.handle_closed(now, closed_1011());
        drain(&mut session);
        let due = session.poll_timeout().unwrap();
        session.handle_timeout(due);
        drain(&mut session);
        session.handle_connected(due);
        let outputs = drain(&mut session);
        assert_eq!(outputs.last(), Some(&Output::SendText(message::FINALIZE)));
        assert_eq!(audio_bytes(&outputs), BPS as usize);

        session.handle_text(due, &results(0.0, 1.0, true, true, &[]));
        assert_eq!(
            events(&drain(&mut session)),
            vec![SttEvent::Final(String::new())]
        );
    }

    #[test]
    fn end_sends_close_stream_and_waits() {
        let now = Instant::now();
        let mut session = connected(now, 1);
        session.handle_end(now);
        assert_eq!(
            drain(&mut session),
            vec![Output::SendText(message::CLOSE_STREAM)]
        );
        session.handle_text(now, &results(0.0, 1.0, true, false, &[("bye", 0.2, 0.5)]));
        assert_eq!(
            events(&drain(&mut session)),
            vec![SttEvent::Final("bye".into())]
        );
        session.handle_closed(now, connect_error());
        assert!(session.is_finished());
        assert!(drain(&mut session).is_empty());
    }

    #[test]
    fn end_gives_up_waiting_after_close_timeout() {
        let now = Instant::now();
        let mut session = connected(now, 1);
        session.handle_end(now);
        drain(&mut session);
        assert_eq!(session.poll_timeout(), Some(now + CLOSE_TIMEOUT));
        session.handle_timeout(now + CLOSE_TIMEOUT);
        assert_eq!(drain(&mut session), vec![Output::Disconnect]);
        assert!(session.is_finished());
    }

    #[test]
    fn idle_close_on_hold_reconnects_quietly_on_resume() {
        let now = Instant::now();
        let mut session = connected(now, 1);
        session.handle_text(now, &results(0.0, 1.0, true, false, &[("hold", 0.2, 0.5)]));
        drain(&mut session);
        session.handle_pause(now);
        let later = now + Duration::from_secs(30);
        session.handle_closed(later, closed_1011());
        assert!(drain(&mut session).is_empty());
        assert_eq!(session.poll_timeout(), None);
        session.handle_resume(later);
        assert_eq!(session.poll_timeout(), Some(later));
        session.handle_timeout(later);
        assert_eq!(drain(&mut session), vec![Output::Connect]);
    }

    #[test]
    fn replay_is_bounded_by_the_ring() {
        let now = Instant::now();
        // Twelve seconds without any final text: only the last eight are held.
        let mut session = connected(now, 12);
        session.handle_closed(now, closed_1011());
        drain(&mut session);
        let due = session.poll_timeout().unwrap();
        session.handle_timeout(due);
        drain(&mut session);
        session.handle_connected(due);
        assert_eq!(audio_bytes(&drain(&mut session)), 8 * BPS as usize);
    }

    #[test]
    fn results_without_words_before_cursor_are_dropped() {
        let results = Results {
            start: 0.0,
            duration: 1.0,
            is_final: true,
            speech_final: false,
            from_finalize: false,
            transcript: "old".into(),
            words: Vec::new(),
        };
        assert_eq!(unseen_text(&results, 1.0, 2.5), "");
        assert_eq!(unseen_text(&results, 2.0, 2.5), "old");
    }
}
