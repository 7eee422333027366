//! Text-to-speech over the OpenAI-compatible speech API.
//!
//! Protocol (OpenAI API reference, "Create speech"): `POST {base}/audio/speech` with a JSON
//! body of `model`, `input`, `voice` and `response_format`. With `response_format: "pcm"` the
//! response is raw 24 kHz signed 16-bit little-endian mono audio, sent as it is generated, which
//! this client resamples to 16 kHz.
//!
//! Not used: `instructions`, `speed`, and the compressed formats (mp3, opus, aac, flac, wav).

use std::time::Instant;

use futures::stream::{self, BoxStream, StreamExt};
use serde_json::json;

use super::http::{BodyReader, HttpClient};
use super::key::ApiKey;
use super::pcm::{PcmDecoder, WireFormat};
use super::tts_stream::{audio_stream, check_audio_content_type};
use crate::ai::provider::{ProviderError, TtsProvider, VoiceOptions};

const PROVIDER: &str = "openai-tts";
/// Sample rate of the API's `pcm` format.
const PCM_RATE: u32 = 24_000;

/// OpenAI-compatible text-to-speech client.
#[derive(Debug, Clone)]
pub struct OpenAiTts {
    http: HttpClient,
    base_url: String,
    key: ApiKey,
    model: String,
    voice: String,
}

impl OpenAiTts {
    /// Creates a client. An empty `key` sends no `Authorization` header (local servers).
    pub fn new(http: HttpClient, base_url: &str, key: ApiKey, model: &str, voice: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            key,
            model: model.to_string(),
            voice: voice.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl TtsProvider for OpenAiTts {
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
        let voice_name = if voice.voice.is_empty() {
            self.voice.as_str()
        } else {
            voice.voice.as_str()
        };
        let url = format!("{}/audio/speech", self.base_url);
        let body = json!({
            "model": self.model,
            "input": text,
            "voice": voice_name,
            "response_format": "pcm",
        });
        let started = Instant::now();
        let response = self
            .http
            .send(PROVIDER, &self.key, |client| {
                let builder = client.post(&url).json(&body);
                if self.key.is_empty() {
                    builder
                } else {
                    builder.bearer_auth(self.key.expose())
                }
            })
            .await?;
        check_audio_content_type(PROVIDER, &response)?;
        let decoder = PcmDecoder::new(WireFormat::Linear16 { rate: PCM_RATE }).map_err(|err| {
            ProviderError::Config {
                provider: PROVIDER,
                message: err.to_string(),
            }
        })?;
        let idle = self.http.settings().read_timeout;
        let reader = BodyReader::new(PROVIDER, self.key.clone(), response, idle);
        Ok(audio_stream(PROVIDER, reader, decoder, started))
    }
}
