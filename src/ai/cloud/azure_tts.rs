//! Text-to-speech over the Azure AI Speech REST API.
//!
//! Protocol (Microsoft Learn, "Text to speech REST API"): `POST
//! {endpoint}/cognitiveservices/v1` with the headers `Ocp-Apim-Subscription-Key`,
//! `Content-Type: application/ssml+xml`, `X-Microsoft-OutputFormat` and `User-Agent`, and an
//! SSML document naming the voice. The response is a chunked body of audio in the requested
//! format; the `raw-*` formats have no header.
//!
//! Not used: token authentication through `issueToken`, SSML prosody and styles, viseme and
//! word-boundary events (those need the WebSocket SDK protocol).

use std::time::Instant;

use futures::stream::{self, BoxStream, StreamExt};

use super::http::{BodyReader, HttpClient};
use super::key::ApiKey;
use super::pcm::{PcmDecoder, WireFormat};
use super::tts_stream::{audio_stream, check_audio_content_type};
use crate::ai::provider::{ProviderError, TtsProvider, VoiceOptions};

const PROVIDER: &str = "azure";

/// Output formats this client can decode, by their `X-Microsoft-OutputFormat` name.
pub const OUTPUT_FORMATS: [&str; 5] = [
    "raw-8khz-8bit-mono-mulaw",
    "raw-8khz-16bit-mono-pcm",
    "raw-16khz-16bit-mono-pcm",
    "raw-24khz-16bit-mono-pcm",
    "raw-48khz-16bit-mono-pcm",
];

/// Returns the wire format of an output format name, or `None` if it is not supported.
pub fn output_format(name: &str) -> Option<WireFormat> {
    match name {
        "raw-8khz-8bit-mono-mulaw" => Some(WireFormat::Mulaw8k),
        "raw-8khz-16bit-mono-pcm" => Some(WireFormat::Linear16 { rate: 8_000 }),
        "raw-16khz-16bit-mono-pcm" => Some(WireFormat::Linear16 { rate: 16_000 }),
        "raw-24khz-16bit-mono-pcm" => Some(WireFormat::Linear16 { rate: 24_000 }),
        "raw-48khz-16bit-mono-pcm" => Some(WireFormat::Linear16 { rate: 48_000 }),
        _ => None,
    }
}

/// Escapes text for XML character data and attribute values, dropping characters XML 1.0
/// does not allow (control characters other than tab, newline and carriage return).
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Builds the SSML document for one sentence. The language is `language` if set, else the
/// locale prefix of the voice name (`en-US` of `en-US-JennyNeural`).
pub fn ssml(text: &str, voice: &str, language: &str) -> String {
    let language = if language.is_empty() {
        voice_locale(voice)
    } else {
        language
    };
    format!(
        "<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" \
         xml:lang=\"{}\"><voice name=\"{}\">{}</voice></speak>",
        xml_escape(language),
        xml_escape(voice),
        xml_escape(text)
    )
}

fn voice_locale(voice: &str) -> &str {
    let mut dashes = voice.match_indices('-').map(|(i, _)| i);
    match (dashes.next(), dashes.next()) {
        (Some(_), Some(second)) => &voice[..second],
        _ => "en-US",
    }
}

/// Azure text-to-speech client.
#[derive(Debug, Clone)]
pub struct AzureTts {
    http: HttpClient,
    endpoint: String,
    key: ApiKey,
    voice: String,
    output_format: String,
    format: WireFormat,
}

impl AzureTts {
    /// Creates a client; fails on a missing endpoint or key, or an unsupported format.
    pub fn new(
        http: HttpClient,
        endpoint: &str,
        key: ApiKey,
        voice: &str,
        output_format_name: &str,
    ) -> Result<Self, ProviderError> {
        let config = |message: String| ProviderError::Config {
            provider: PROVIDER,
            message,
        };
        let format = output_format(output_format_name).ok_or_else(|| {
            config(format!(
                "output format `{output_format_name}` is not one of {}",
                OUTPUT_FORMATS.join(", ")
            ))
        })?;
        if endpoint.trim().is_empty() {
            return Err(config(
                "missing endpoint; set providers.azure_endpoint to \
                 https://<region>.tts.speech.microsoft.com"
                    .into(),
            ));
        }
        if key.is_empty() {
            return Err(config(
                "missing API key; set providers.azure_api_key or AZURE_SPEECH_KEY".into(),
            ));
        }
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            key,
            voice: voice.to_string(),
            output_format: output_format_name.to_string(),
            format,
        })
    }
}

#[async_trait::async_trait]
impl TtsProvider for AzureTts {
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
        let body = ssml(text, voice_name, &voice.language);
        let url = format!("{}/cognitiveservices/v1", self.endpoint);
        let started = Instant::now();
        let response = self
            .http
            .send(PROVIDER, &self.key, |client| {
                let mut key = reqwest::header::HeaderValue::from_str(self.key.expose())
                    .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid"));
                key.set_sensitive(true);
                client
                    .post(&url)
                    .header("Ocp-Apim-Subscription-Key", key)
                    .header("Content-Type", "application/ssml+xml")
                    .header("X-Microsoft-OutputFormat", &self.output_format)
                    .header("User-Agent", super::http::USER_AGENT)
                    .body(body.clone())
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
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(
            xml_escape("a<b & \"c\" 'd'>\u{0}\u{7}\n"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\n"
        );
    }

    #[test]
    fn ssml_names_voice_and_language() {
        assert_eq!(
            ssml("Tom & Jerry <3", "en-GB-RyanNeural", ""),
            "<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" \
             xml:lang=\"en-GB\"><voice name=\"en-GB-RyanNeural\">Tom &amp; Jerry &lt;3\
             </voice></speak>"
        );
    }

    #[test]
    fn ssml_prefers_explicit_language() {
        let document = ssml("Hola", "es-ES-ElviraNeural", "es-MX");
        assert!(document.contains("xml:lang=\"es-MX\""), "{document}");
    }

    #[test]
    fn voice_without_locale_falls_back() {
        assert_eq!(voice_locale("custom"), "en-US");
    }

    #[test]
    fn output_formats_map() {
        for name in OUTPUT_FORMATS {
            assert!(output_format(name).is_some(), "{name}");
        }
        assert_eq!(output_format("riff-16khz-16bit-mono-pcm"), None);
    }
}
