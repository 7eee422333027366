//! Speech-to-text over the OpenAI-compatible transcription API, one request per utterance.
//! The same endpoint is served by OpenAI, Groq and local Whisper servers.
//!
//! Protocol (OpenAI API reference, "Create transcription"): `POST {base}/audio/transcriptions`
//! with a `multipart/form-data` body of `file` (here a 16 kHz mono 16-bit WAV), `model`,
//! `response_format=json`, and optionally `language` (ISO 639-1) and `prompt`. The response is
//! `{"text": "..."}`.
//!
//! The session buffers caller audio and posts it on [`SttInput::Finalize`]; it produces no
//! partial results. Requests run while the next utterance is being buffered, and their results
//! are delivered in order. Not used: `stream=true` transcription events, timestamps,
//! `temperature`, the `verbose_json`, `srt` and `vtt` formats, and translations.

use std::io::Cursor;

use futures::stream::{FuturesOrdered, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::http::{BodyReader, HttpClient};
use super::key::ApiKey;
use crate::ai::provider::{ProviderError, SttEvent, SttInput, SttOptions, SttProvider, SttSession};
use crate::audio::SAMPLE_RATE;

const PROVIDER: &str = "openai-stt";
/// Audio frames queued toward a session: 2 s of 20 ms frames.
const INPUT_QUEUE: usize = 100;
/// Transcript events queued toward the conversation loop.
const EVENT_QUEUE: usize = 16;
/// Maximum transcription response accepted, in bytes.
const RESPONSE_LIMIT: usize = 256 * 1024;
/// Requests that may be in flight at once; a caller speaking faster than this waits.
const MAX_IN_FLIGHT: usize = 4;

/// OpenAI-compatible transcription client.
#[derive(Debug, Clone)]
pub struct OpenAiTranscription {
    http: HttpClient,
    base_url: String,
    key: ApiKey,
    model: String,
    max_samples: usize,
}

impl OpenAiTranscription {
    /// Creates a client. An empty `key` sends no `Authorization` header (local servers).
    /// Utterances longer than `max_secs` keep only their first `max_secs`.
    pub fn new(http: HttpClient, base_url: &str, key: ApiKey, model: &str, max_secs: u64) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
            model: model.to_string(),
            max_samples: (max_secs as usize).saturating_mul(SAMPLE_RATE as usize),
        }
    }

    /// Transcribes one utterance of 16 kHz PCM.
    pub async fn transcribe(
        &self,
        pcm: &[i16],
        options: &SttOptions,
    ) -> Result<String, ProviderError> {
        let wav = wav_bytes(pcm)?;
        let url = format!("{}/audio/transcriptions", self.base_url);
        let language = iso639_1(&options.language);
        let prompt = options.keywords.join(", ");
        let deadline = self.http.settings().request_timeout;
        let response = self
            .http
            .send_within(PROVIDER, &self.key, deadline, |client| {
                let mut form = reqwest::multipart::Form::new()
                    .text("model", self.model.clone())
                    .text("response_format", "json");
                if !language.is_empty() {
                    form = form.text("language", language.clone());
                }
                if !prompt.is_empty() {
                    form = form.text("prompt", prompt.clone());
                }
                let file = reqwest::multipart::Part::bytes(wav.clone())
                    .file_name("audio.wav")
                    .mime_str("audio/wav")
                    .unwrap_or_else(|_| reqwest::multipart::Part::bytes(wav.clone()));
                let builder = client.post(&url).multipart(form.part("file", file));
                if self.key.is_empty() {
                    builder
                } else {
                    builder.bearer_auth(self.key.expose())
                }
            })
            .await?;
        let idle = self.http.settings().read_timeout;
        let mut body = BodyReader::new(PROVIDER, self.key.clone(), response, idle);
        let mut text = Vec::new();
        while let Some(chunk) = body.next_chunk().await {
            text.extend_from_slice(&chunk?);
            if text.len() > RESPONSE_LIMIT {
                return Err(protocol(format!(
                    "response larger than {RESPONSE_LIMIT} bytes"
                )));
            }
        }
        parse_response(&text)
    }
}

fn protocol(message: String) -> ProviderError {
    ProviderError::Protocol {
        provider: PROVIDER,
        message,
    }
}

#[derive(Deserialize)]
struct Transcription {
    text: String,
}

fn parse_response(body: &[u8]) -> Result<String, ProviderError> {
    let transcription: Transcription = serde_json::from_slice(body).map_err(|err| {
        protocol(format!(
            "response is not a transcription JSON object: {err}"
        ))
    })?;
    Ok(transcription.text.trim().to_string())
}

/// Encodes 16 kHz mono PCM as a WAV file.
pub fn wav_bytes(pcm: &[i16]) -> Result<Vec<u8>, ProviderError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = Cursor::new(Vec::with_capacity(44 + pcm.len() * 2));
    let result = (|| {
        let mut writer = hound::WavWriter::new(&mut cursor, spec)?;
        for &sample in pcm {
            writer.write_sample(sample)?;
        }
        writer.finalize()
    })();
    result.map_err(|err| protocol(format!("cannot encode WAV: {err}")))?;
    Ok(cursor.into_inner())
}

/// Returns the ISO 639-1 part of a BCP 47 tag (`en` of `en-US`), which is what the API takes.
pub fn iso639_1(language: &str) -> String {
    language
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

impl SttProvider for OpenAiTranscription {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// Starts a session task; call it inside a tokio runtime.
    fn start(&self, options: SttOptions) -> SttSession {
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(run_session(self.clone(), options, input_rx, events_tx));
        SttSession {
            input: input_tx,
            events: events_rx,
        }
    }
}

async fn run_session(
    client: OpenAiTranscription,
    options: SttOptions,
    mut input: mpsc::Receiver<SttInput>,
    events: mpsc::Sender<SttEvent>,
) {
    let mut utterance: Vec<i16> = Vec::new();
    let mut paused = false;
    let mut truncated = false;
    let mut input_open = true;
    let mut in_flight = FuturesOrdered::new();
    tracing::info!(call_id = %options.call_id, "transcription session started");
    loop {
        if !input_open && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            item = input.recv(), if input_open && in_flight.len() < MAX_IN_FLIGHT => match item {
                Some(SttInput::Audio(pcm)) if !paused => {
                    let room = client.max_samples.saturating_sub(utterance.len());
                    if pcm.len() > room && !truncated {
                        truncated = true;
                        tracing::warn!(call_id = %options.call_id, "utterance too long, truncated");
                    }
                    utterance.extend_from_slice(&pcm[..pcm.len().min(room)]);
                }
                Some(SttInput::Audio(_)) => {}
                Some(SttInput::Finalize) => {
                    let pcm = std::mem::take(&mut utterance);
                    truncated = false;
                    let client = client.clone();
                    let options = options.clone();
                    in_flight.push_back(async move {
                        if pcm.is_empty() {
                            return Ok(String::new());
                        }
                        client.transcribe(&pcm, &options).await
                    });
                }
                Some(SttInput::Pause) => paused = true,
                Some(SttInput::Resume) => paused = false,
                None => input_open = false,
            },
            Some(result) = in_flight.next(), if !in_flight.is_empty() => {
                let failed = result.is_err();
                let event = match result {
                    Ok(text) => SttEvent::Final(text),
                    Err(err) => SttEvent::Failed(err),
                };
                if events.send(event).await.is_err() || failed {
                    break;
                }
            }
        }
    }
    tracing::info!(call_id = %options.call_id, "transcription session ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_describes_the_audio() {
        let bytes = wav_bytes(&[0, 1000, -1000]).unwrap();
        let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        let spec = reader.spec();
        assert_eq!(spec.sample_rate, 16_000);
        assert_eq!(spec.channels, 1);
        assert_eq!(spec.bits_per_sample, 16);
        let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
        assert_eq!(samples, vec![0, 1000, -1000]);
    }

    #[test]
    fn language_is_reduced_to_iso639_1() {
        assert_eq!(iso639_1("en-US"), "en");
        assert_eq!(iso639_1("pt_BR"), "pt");
        assert_eq!(iso639_1("DE"), "de");
        assert_eq!(iso639_1(""), "");
    }

    #[test]
    fn response_parsing() {
        assert_eq!(parse_response(br#"{"text":" hello "}"#), Ok("hello".into()));
        assert!(matches!(
            parse_response(b"<html>"),
            Err(ProviderError::Protocol { .. })
        ));
        assert!(matches!(
            parse_response(br#"{"txt":"x"}"#),
            Err(ProviderError::Protocol { .. })
        ));
    }
}
