//! Local servers that speak the providers' protocols, and helpers shared by the tests.

pub mod deepgram;
pub mod http;

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use voicegate::ai::ProvidersConfig;
use voicegate::ai::cloud::CloudProviders;
use voicegate::ai::provider::{ProviderError, SttEvent};

/// Key the tests configure; no response, error or log may contain it.
pub const KEY: &str = "test-key-7f3a9c";

/// `[providers]` with short deadlines and every endpoint at `base` (an `http://` URL).
pub fn config(base: &str) -> ProvidersConfig {
    ProvidersConfig {
        openai_base_url: format!("{base}/v1"),
        openai_api_key: KEY.into(),
        anthropic_base_url: format!("{base}/v1"),
        anthropic_api_key: KEY.into(),
        elevenlabs_base_url: format!("{base}/v1"),
        elevenlabs_api_key: KEY.into(),
        elevenlabs_voice: "voice1".into(),
        azure_endpoint: base.to_string(),
        azure_api_key: KEY.into(),
        deepgram_api_key: KEY.into(),
        connect_timeout_secs: 1,
        first_byte_timeout_ms: 1_500,
        read_timeout_secs: 1,
        request_timeout_secs: 2,
        max_retries: 2,
        max_retry_after_secs: 2,
        ..ProvidersConfig::default()
    }
}

/// Builds the provider factory for `config`, with an empty environment.
pub fn providers(config: &ProvidersConfig) -> CloudProviders {
    CloudProviders::with_env(config, |_| None).expect("valid configuration")
}

/// Collects a stream's items until it ends, failing the test after `limit`.
pub async fn collect<T>(
    mut stream: BoxStream<'static, Result<T, ProviderError>>,
    limit: Duration,
) -> Vec<Result<T, ProviderError>> {
    let read = async {
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            items.push(item);
        }
        items
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("stream ended in time")
}

/// Collects session events until the channel closes or a `Failed` arrives.
pub async fn collect_events(
    events: &mut mpsc::Receiver<SttEvent>,
    limit: Duration,
) -> Vec<SttEvent> {
    let read = async {
        let mut items = Vec::new();
        while let Some(event) = events.recv().await {
            let failed = matches!(event, SttEvent::Failed(_));
            items.push(event);
            if failed {
                break;
            }
        }
        items
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("session ended in time")
}

/// Joins the final texts of `events` with spaces.
pub fn final_text(events: &[SttEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            SttEvent::Final(text) if !text.is_empty() => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// 16-bit little-endian bytes of `samples`.
pub fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Generates a sine tone.
pub fn tone(rate: u32, hz: f32, samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            let t = i as f32 / rate as f32;
            (8_000.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

/// Asserts that `error` does not contain the test key.
pub fn assert_no_key(error: &ProviderError) {
    let text = format!("{error} {error:?}");
    assert!(!text.contains(KEY), "key leaked: {text}");
}
