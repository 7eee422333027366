//! Text-to-speech over the ElevenLabs streaming HTTP API.
//!
//! Protocol (ElevenLabs API reference, "Stream speech"): `POST
//! {base}/text-to-speech/{voice_id}/stream?output_format=pcm_16000` with the header
//! `xi-api-key` and a JSON body with `text`, `model_id` and `voice_settings`. The response is a
//! chunked body of raw audio in the requested format (`pcm_<rate>` is 16-bit little-endian
//! mono, `ulaw_8000` is G.711 mu-law).
//!
//! The WebSocket stream-input API is not used: the conversation loop synthesises one sentence
//! per request, and a sentence-sized HTTP request on a pooled connection starts about as fast
//! without holding a socket open between replies. Also not used: `language_code`,
//! `previous_text`/`next_text` stitching, pronunciation dictionaries, timestamps and
//! `optimize_streaming_latency`.

use std::time::Instant;

use futures::stream::{self, BoxStream, StreamExt};
use serde_json::json;

use super::http::{BodyReader, HttpClient};
use super::key::ApiKey;
use super::pcm::{PcmDecoder, WireFormat};
use super::tts_stream::{audio_stream, check_audio_content_type};
use crate::ai::provider::{ProviderError, TtsProvider, VoiceOptions};

const PROVIDER: &str = "elevenlabs";

/// Output formats this client can decode, by their `output_format` name.
pub const OUTPUT_FORMATS: [&str; 6] = [
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "ulaw_8000",
];

/// Returns the wire format of an `output_format` name, or `None` if it is not supported.
pub fn output_format(name: &str) -> Option<WireFormat> {
    if name == "ulaw_8000" {
        return Some(WireFormat::Mulaw8k);
    }
    if !OUTPUT_FORMATS.contains(&name) {
        return None;
    }
    let rate = name.strip_prefix("pcm_")?.parse().ok()?;
    Some(WireFormat::Linear16 { rate })
}

/// ElevenLabs synthesis settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ElevenLabsSettings {
    /// API base URL, for example `https://api.elevenlabs.io/v1`.
    pub base_url: String,
    /// Voice id used when the request names none.
    pub voice: String,
    /// Model id.
    pub model: String,
    /// `output_format` name, one of [`OUTPUT_FORMATS`].
    pub output_format: String,
    /// Voice stability, 0.0 to 1.0.
    pub stability: f64,
    /// Similarity boost, 0.0 to 1.0.
    pub similarity_boost: f64,
}

/// ElevenLabs text-to-speech client.
#[derive(Debug, Clone)]
pub struct ElevenLabsTts {
    http: HttpClient,
    key: ApiKey,
    settings: ElevenLabsSettings,
    format: WireFormat,
}

impl ElevenLabsTts {
    /// Creates a client; fails on an unsupported output format or a missing key.
    pub fn new(
        http: HttpClient,
        key: ApiKey,
        settings: ElevenLabsSettings,
    ) -> Result<Self, ProviderError> {
        let format =
            output_format(&settings.output_format).ok_or_else(|| ProviderError::Config {
                provider: PROVIDER,
                message: format!(
                    "output format `{}` is not one of {}",
                    settings.output_format,
                    OUTPUT_FORMATS.join(", ")
                ),
            })?;
        if key.is_empty() {
            return Err(ProviderError::Config {
                provider: PROVIDER,
                message: "missing API key; set providers.elevenlabs_api_key or ELEVENLABS_API_KEY"
                    .into(),
            });
        }
        Ok(Self {
            http,
            key,
            settings,
            format,
        })
    }

    fn url(&self, voice: &str) -> Result<url::Url, ProviderError> {
        let invalid = |message: String| ProviderError::Config {
            provider: PROVIDER,
            message,
        };
        let mut url = url::Url::parse(self.settings.base_url.trim_end_matches('/'))
            .map_err(|err| invalid(format!("invalid base URL: {err}")))?;
        url.path_segments_mut()
            .map_err(|_| invalid("base URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(["text-to-speech", voice, "stream"]);
        url.query_pairs_mut()
            .append_pair("output_format", &self.settings.output_format);
        Ok(url)
    }
}

#[async_trait::async_trait]
impl TtsProvider for ElevenLabsTts {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn synthesize(
        &self,
        text: &str,
        voice: &VoiceOptions,
    ) -> Result<BoxStream<'static, Result<Vec<i16>, ProviderError>>, ProviderError> {
        if text.trim().is_empty() {
            return Ok(stream::empty().boxed());
        }
        let voice_id = if voice.voice.is_empty() {
            self.settings.voice.as_str()
        } else {
            voice.voice.as_str()
        };
        let url = self.url(voice_id)?;
        let body = json!({
            "text": text,
            "model_id": self.settings.model,
            "voice_settings": {
                "stability": self.settings.stability,
                "similarity_boost": self.settings.similarity_boost,
            },
        });
        let started = Instant::now();
        let response = self
            .http
            .send(PROVIDER, &self.key, |client| {
                let mut key = reqwest::header::HeaderValue::from_str(self.key.expose())
                    .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid"));
                key.set_sensitive(true);
                client
                    .post(url.clone())
                    .header("xi-api-key", key)
                    .json(&body)
            })
            .await?;
        check_audio_content_type(PROVIDER, &response)?;
        let decoder = PcmDecoder::new(self.format).map_err(|err| ProviderError::Config {
            provider: PROVIDER,
            message: err.to_string(),
        })?;
        let idle = self.http.settings().read_timeout;
        let reader = BodyReader::new(PROVIDER, self.key.clone(), response, idle);
        Ok(audio_stream(PROVIDER, reader, decoder, started))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_format_names() {
        assert_eq!(
            output_format("pcm_16000"),
            Some(WireFormat::Linear16 { rate: 16_000 })
        );
        assert_eq!(
            output_format("pcm_44100"),
            Some(WireFormat::Linear16 { rate: 44_100 })
        );
        assert_eq!(output_format("ulaw_8000"), Some(WireFormat::Mulaw8k));
        assert_eq!(output_format("mp3_44100_128"), None);
        assert_eq!(output_format("pcm_abc"), None);
    }

    fn settings() -> ElevenLabsSettings {
        ElevenLabsSettings {
            base_url: "http://127.0.0.1:9/v1/".into(),
            voice: "voice1".into(),
            model: "m".into(),
            output_format: "ulaw_8000".into(),
            stability: 0.5,
            similarity_boost: 0.75,
        }
    }

    fn http() -> HttpClient {
        HttpClient::new(super::super::http::HttpSettings::from_config(
            &crate::ai::ProvidersConfig::default(),
        ))
        .unwrap()
    }

    #[test]
    fn url_escapes_voice_id() {
        let tts = ElevenLabsTts::new(http(), ApiKey::new("k"), settings()).unwrap();
        let url = tts.url("a/b c").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/v1/text-to-speech/a%2Fb%20c/stream?output_format=ulaw_8000"
        );
    }

    #[test]
    fn unsupported_format_is_config_error() {
        let mut settings = settings();
        settings.output_format = "mp3_44100_128".into();
        let err = ElevenLabsTts::new(http(), ApiKey::new("k"), settings).unwrap_err();
        assert!(err.to_string().contains("mp3_44100_128"), "{err}");
    }

    #[test]
    fn missing_key_is_config_error() {
        let err = ElevenLabsTts::new(http(), ApiKey::default(), settings()).unwrap_err();
        assert!(err.to_string().contains("ELEVENLABS_API_KEY"), "{err}");
    }
}
