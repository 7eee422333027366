//! Speech-to-text over Deepgram's live streaming WebSocket API.
//!
//! Protocol (Deepgram docs: the "Audio Keep Alive", "Close Stream", "Endpointing", "Interim
//! Results" and "Utterance End" pages and the streaming troubleshooting guide): connect to
//! `wss://api.deepgram.com/v1/listen` with the options as query parameters and the header
//! `Authorization: Token <key>`. The client sends raw audio as binary frames and the control
//! messages `KeepAlive`, `Finalize` and `CloseStream` as text frames. The server sends
//! `Results`, `UtteranceEnd`, `SpeechStarted` and `Metadata` messages as text frames. An
//! `Error` message is also accepted, read leniently from its `variant`, `description` and
//! `message` fields, because its shape is not pinned down in the pages above.
//! A refused upgrade is an HTTP 4xx or 5xx. Errors after the upgrade arrive as a close frame
//! with an RFC 6455 §7.4.1 code and a reason. The server closes a socket that gets neither
//! audio nor KeepAlive for about 10 s (error NET-0001).
//!
//! A dropped connection is opened again at once and then with backoff; the recent caller audio
//! is replayed into it and words already finalised are removed (see [`session`]).
//!
//! Not used: diarization, multichannel audio, redaction, `vad_events` (the media path runs
//! its own VAD), search, callbacks, and the `Configure` message.

mod driver;
pub mod message;
mod ring;
pub mod session;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use tokio::sync::mpsc;

pub use message::{CLOSE_STREAM, FINALIZE, KEEP_ALIVE, ListenParams, listen_url};
pub use session::{BACKOFF_MAX, REPLAY_CONTEXT};

use super::key::ApiKey;
use super::pcm::WireFormat;
use crate::ai::provider::{ProviderError, SttOptions, SttProvider, SttSession};

/// Audio frames queued toward a session: 2 s of 20 ms frames.
const INPUT_QUEUE: usize = 100;
/// Transcript events queued toward the conversation loop.
const EVENT_QUEUE: usize = 32;

/// Deepgram settings from `[providers]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeepgramSettings {
    /// Live streaming endpoint.
    pub url: String,
    /// Model name.
    pub model: String,
    /// `linear16` or `mulaw`.
    pub encoding: String,
    /// Sample rate in hertz.
    pub sample_rate: u32,
    /// Ask for interim results.
    pub interim_results: bool,
    /// Endpointing silence in milliseconds; 0 turns it off.
    pub endpointing_ms: u32,
    /// UtteranceEnd gap in milliseconds; 0 turns it off.
    pub utterance_end_ms: u32,
    /// Ask for smart formatting.
    pub smart_format: bool,
    /// Time without sent audio before a KeepAlive.
    pub keepalive: Duration,
    /// Audio kept for replay after a drop.
    pub replay: Duration,
    /// Failed connection attempts in a row that end the session.
    pub max_failures: u32,
    /// Delay before the second reconnect attempt.
    pub backoff: Duration,
    /// Deadline for TCP, TLS and the WebSocket upgrade together.
    pub connect_timeout: Duration,
}

/// Returns the wire format of an encoding and rate, or `None` if unsupported.
pub fn wire_format(encoding: &str, sample_rate: u32) -> Option<WireFormat> {
    match (encoding, sample_rate) {
        ("linear16", 8_000 | 16_000) => Some(WireFormat::Linear16 { rate: sample_rate }),
        ("mulaw", 8_000) => Some(WireFormat::Mulaw8k),
        _ => None,
    }
}

/// Deepgram live speech-to-text.
#[derive(Debug, Clone)]
pub struct DeepgramStt {
    settings: DeepgramSettings,
    key: ApiKey,
    format: WireFormat,
}

impl DeepgramStt {
    /// Creates the provider; fails on a missing key or an unsupported encoding.
    pub fn new(settings: DeepgramSettings, key: ApiKey) -> Result<Self, ProviderError> {
        let config = |message: String| ProviderError::Config {
            provider: session::PROVIDER,
            message,
        };
        let format = wire_format(&settings.encoding, settings.sample_rate).ok_or_else(|| {
            config(format!(
                "encoding {} at {} Hz is not supported; use linear16 at 8000 or 16000, \
                 or mulaw at 8000",
                settings.encoding, settings.sample_rate
            ))
        })?;
        if key.is_empty() {
            return Err(config(
                "missing API key; set providers.deepgram_api_key or DEEPGRAM_API_KEY".into(),
            ));
        }
        url::Url::parse(&settings.url)
            .map_err(|err| config(format!("invalid URL {}: {err}", settings.url)))?;
        Ok(Self {
            settings,
            key,
            format,
        })
    }

    fn listen_params(&self, options: &SttOptions) -> ListenParams {
        ListenParams {
            model: self.settings.model.clone(),
            encoding: self.settings.encoding.clone(),
            sample_rate: self.settings.sample_rate,
            interim_results: self.settings.interim_results,
            endpointing_ms: self.settings.endpointing_ms,
            utterance_end_ms: self.settings.utterance_end_ms,
            smart_format: self.settings.smart_format,
            language: options.language.clone(),
            keywords: options.keywords.clone(),
        }
    }
}

impl SttProvider for DeepgramStt {
    fn name(&self) -> &'static str {
        session::PROVIDER
    }

    /// Starts a session task; call it inside a tokio runtime.
    fn start(&self, options: SttOptions) -> SttSession {
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let params = self.listen_params(&options);
        let mut hasher = DefaultHasher::new();
        options.call_id.hash(&mut hasher);
        let session = session::SessionConfig {
            keepalive: self.settings.keepalive,
            max_failures: self.settings.max_failures.max(1),
            backoff: self.settings.backoff,
            bytes_per_second: self.format.bytes_per_second(),
            sample_bytes: self.format.bytes_per_sample(),
            replay: self.settings.replay,
            seed: hasher.finish(),
        };
        match listen_url(&self.settings.url, &params) {
            Ok(url) => {
                let params = driver::DriverParams {
                    url,
                    key: self.key.clone(),
                    format: self.format,
                    session,
                    connect_timeout: self.settings.connect_timeout,
                    call_id: options.call_id,
                };
                tokio::spawn(driver::run(params, input_rx, events_tx));
            }
            Err(err) => {
                // The endpoint was checked in `new`, so this needs an invalid query value.
                let error = ProviderError::Config {
                    provider: session::PROVIDER,
                    message: format!("cannot build the listen URL: {err}"),
                };
                let _ = events_tx.try_send(crate::ai::provider::SttEvent::Failed(error));
            }
        }
        SttSession {
            input: input_tx,
            events: events_rx,
        }
    }
}
