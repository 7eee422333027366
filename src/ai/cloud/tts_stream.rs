//! The audio stream shared by the synthesis clients: reads a chunked audio body, decodes it to
//! 16 kHz PCM as it arrives, and ends with an error if the connection drops, after the audio
//! already delivered. Nothing is buffered beyond one network chunk, so a slow reader slows the
//! download instead of growing memory.

use std::time::Instant;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::Response;

use super::http::BodyReader;
use super::metrics;
use super::pcm::PcmDecoder;
use crate::ai::provider::ProviderError;

/// Checks that a successful response carries audio and not an error page or JSON, which some
/// proxies and misconfigured servers send with status 200.
pub fn check_audio_content_type(
    provider: &'static str,
    response: &Response,
) -> Result<(), ProviderError> {
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") || content_type.starts_with("text/") {
        return Err(ProviderError::Protocol {
            provider,
            message: format!("expected audio but the response is {content_type}"),
        });
    }
    Ok(())
}

struct AudioState {
    provider: &'static str,
    body: BodyReader,
    decoder: PcmDecoder,
    started: Instant,
    first_audio: bool,
    finished: bool,
}

/// Turns an audio response body into 16 kHz PCM chunks.
pub fn audio_stream(
    provider: &'static str,
    body: BodyReader,
    decoder: PcmDecoder,
    started: Instant,
) -> BoxStream<'static, Result<Vec<i16>, ProviderError>> {
    let state = AudioState {
        provider,
        body,
        decoder,
        started,
        first_audio: false,
        finished: false,
    };
    stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    })
    .boxed()
}

impl AudioState {
    async fn next_chunk(&mut self) -> Option<Result<Vec<i16>, ProviderError>> {
        while !self.finished {
            match self.body.next_chunk().await {
                None => {
                    self.finished = true;
                    metrics::count_request(self.provider, Ok(()));
                }
                Some(Err(err)) => {
                    self.finished = true;
                    metrics::count_request(self.provider, Err(&err));
                    let provider = self.provider;
                    tracing::warn!(provider, error = %err, "synthesis stream failed");
                    return Some(Err(err));
                }
                Some(Ok(bytes)) => {
                    self.note_first_audio();
                    let mut pcm = Vec::with_capacity(bytes.len());
                    self.decoder.push(&bytes, &mut pcm);
                    if !pcm.is_empty() {
                        return Some(Ok(pcm));
                    }
                }
            }
        }
        None
    }

    fn note_first_audio(&mut self) {
        if self.first_audio {
            return;
        }
        self.first_audio = true;
        metrics::FIRST_AUDIO
            .with_label_values(&[self.provider])
            .observe(self.started.elapsed().as_secs_f64());
    }
}
