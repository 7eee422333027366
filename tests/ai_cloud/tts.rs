//! ElevenLabs, OpenAI and Azure speech synthesis.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use voicegate::ai::provider::{ProviderError, TtsProvider, VoiceOptions};
use voicegate::media::codec::{AudioEncoder, G711Encoder, G711Law};

use crate::support::http::{End, MockHttp, Plan};
use crate::support::{KEY, assert_no_key, collect, config, le_bytes, providers, tone};

const LIMIT: Duration = Duration::from_secs(10);

fn voice() -> VoiceOptions {
    VoiceOptions::default()
}

/// Splits bytes into uneven chunks so samples straddle chunk boundaries.
fn uneven(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.chunks(333).map(<[u8]>::to_vec).collect()
}

async fn samples(tts: &dyn TtsProvider, text: &str) -> (Vec<i16>, Vec<ProviderError>) {
    let stream = tts.synthesize(text, &voice()).await.expect("accepted");
    let mut pcm = Vec::new();
    let mut errors = Vec::new();
    for item in collect(stream, LIMIT).await {
        match item {
            Ok(chunk) => pcm.extend(chunk),
            Err(err) => errors.push(err),
        }
    }
    (pcm, errors)
}

#[tokio::test]
async fn elevenlabs_request_and_pcm_audio() {
    let audio = tone(16_000, 440.0, 8_000);
    let mock = MockHttp::start(vec![Plan::ok("audio/pcm", uneven(&le_bytes(&audio)))]).await;
    let tts = providers(&config(&mock.url("")))
        .tts("elevenlabs", "")
        .unwrap();

    let (pcm, errors) = samples(tts.as_ref(), "We open at seven.").await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(pcm, audio);

    let sent = &mock.requests()[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(
        sent.target,
        "/v1/text-to-speech/voice1/stream?output_format=pcm_16000"
    );
    assert_eq!(sent.header("xi-api-key"), Some(KEY));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.json(),
        json!({
            "text": "We open at seven.",
            "model_id": "eleven_flash_v2_5",
            "voice_settings": {"stability": 0.5, "similarity_boost": 0.75},
        })
    );
}

#[tokio::test]
async fn elevenlabs_voice_option_overrides_default() {
    let mock = MockHttp::start(vec![Plan::ok("audio/pcm", vec![vec![0; 320]])]).await;
    let tts = providers(&config(&mock.url("")))
        .tts("elevenlabs", "")
        .unwrap();
    let options = VoiceOptions {
        voice: "tenant-voice".into(),
        language: String::new(),
    };
    collect(tts.synthesize("Hi.", &options).await.unwrap(), LIMIT).await;
    assert!(
        mock.requests()[0]
            .target
            .starts_with("/v1/text-to-speech/tenant-voice/stream"),
        "{}",
        mock.requests()[0].target
    );
}

#[tokio::test]
async fn elevenlabs_mulaw_is_decoded_and_upsampled() {
    let mut mulaw = Vec::new();
    G711Encoder::new(G711Law::Mu)
        .encode(&tone(8_000, 400.0, 4_000), &mut mulaw)
        .unwrap();
    let mock = MockHttp::start(vec![Plan::ok("audio/basic", uneven(&mulaw))]).await;
    let mut config = config(&mock.url(""));
    config.elevenlabs_output_format = "ulaw_8000".into();
    let tts = providers(&config).tts("elevenlabs", "").unwrap();

    let (pcm, errors) = samples(tts.as_ref(), "Hello.").await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(pcm.len(), 8_000, "half a second at 16 kHz");
    let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(peak > 6_000, "peak {peak}");
    assert!(
        mock.requests()[0]
            .target
            .ends_with("output_format=ulaw_8000")
    );
}

#[tokio::test]
async fn elevenlabs_reset_mid_sentence_keeps_delivered_audio() {
    let audio = tone(16_000, 300.0, 4_800);
    let bytes = le_bytes(&audio);
    let chunks = vec![bytes[..3_200].to_vec(), bytes[3_200..6_400].to_vec()];
    let plan = Plan::ok("audio/pcm", chunks)
        .chunk_interval(Duration::from_millis(30))
        .end(End::Reset);
    let mock = MockHttp::start(vec![plan]).await;
    let tts = providers(&config(&mock.url("")))
        .tts("elevenlabs", "")
        .unwrap();

    let stream = tts.synthesize("We open at seven.", &voice()).await.unwrap();
    let items = collect(stream, LIMIT).await;
    let (audio_items, rest): (Vec<_>, Vec<_>) = items.iter().partition(|item| item.is_ok());
    assert_eq!(rest.len(), 1, "{items:?}");
    assert!(
        matches!(items.last(), Some(Err(ProviderError::Connect { .. }))),
        "the error comes last: {items:?}"
    );
    let delivered: Vec<i16> = audio_items
        .into_iter()
        .flat_map(|item| item.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        delivered,
        audio[..3_200],
        "every sent sample once, in order"
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "a stream that started is not retried"
    );
}

#[tokio::test]
async fn elevenlabs_drop_closes_connection() {
    let chunks = vec![vec![0u8; 640]; 200];
    let plan = Plan::ok("audio/pcm", chunks).chunk_interval(Duration::from_millis(20));
    let mock = MockHttp::start(vec![plan]).await;
    let tts = providers(&config(&mock.url("")))
        .tts("elevenlabs", "")
        .unwrap();

    let mut stream = tts.synthesize("A long answer.", &voice()).await.unwrap();
    assert!(matches!(stream.next().await, Some(Ok(_))));
    drop(stream);
    assert!(mock.wait_client_close(Duration::from_secs(3)).await);
}

#[tokio::test]
async fn elevenlabs_errors_map_to_statuses() {
    let cases = [
        (
            401,
            r#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#,
            1,
        ),
        (422, r#"{"detail":"voice_id not found"}"#, 1),
        (503, r#"{"detail":"busy"}"#, 3),
    ];
    for (status, body, attempts) in cases {
        let mock = MockHttp::start(vec![Plan::error(status, body)]).await;
        let tts = providers(&config(&mock.url("")))
            .tts("elevenlabs", "")
            .unwrap();
        let error = tts
            .synthesize("Hi.", &voice())
            .await
            .err()
            .expect("rejected");
        assert!(
            matches!(error, ProviderError::Rejected { status: s, .. } if s == status),
            "{status}: {error:?}"
        );
        assert_no_key(&error);
        assert_eq!(mock.requests().len(), attempts, "{status}");
    }
}

#[tokio::test]
async fn elevenlabs_429_retry_after() {
    let limited =
        Plan::error(429, r#"{"detail":"too_many_concurrent_requests"}"#).header("retry-after", "1");
    let audio = le_bytes(&tone(16_000, 440.0, 1_600));
    let mock = MockHttp::start(vec![limited, Plan::ok("audio/pcm", vec![audio])]).await;
    let tts = providers(&config(&mock.url("")))
        .tts("elevenlabs", "")
        .unwrap();

    let (pcm, errors) = samples(tts.as_ref(), "Hi.").await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(pcm.len(), 1_600);
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn elevenlabs_never_answering_times_out() {
    let mock = MockHttp::start(vec![Plan::silent()]).await;
    let tts = providers(&config(&mock.url("")))
        .tts("elevenlabs", "")
        .unwrap();
    let error = tts
        .synthesize("Hi.", &voice())
        .await
        .err()
        .expect("timed out");
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn json_answer_with_200_is_protocol_error() {
    let mock = MockHttp::start(vec![Plan::ok(
        "application/json",
        vec![br#"{"detail":"quota exceeded"}"#.to_vec()],
    )])
    .await;
    let tts = providers(&config(&mock.url("")))
        .tts("elevenlabs", "")
        .unwrap();
    let error = tts
        .synthesize("Hi.", &voice())
        .await
        .err()
        .expect("rejected");
    assert!(matches!(error, ProviderError::Protocol { .. }), "{error:?}");
}

#[tokio::test]
async fn empty_text_makes_no_request() {
    let mock = MockHttp::start(vec![Plan::ok("audio/pcm", vec![vec![0; 2]])]).await;
    let tts = providers(&config(&mock.url("")))
        .tts("elevenlabs", "")
        .unwrap();
    let items = collect(tts.synthesize("  ", &voice()).await.unwrap(), LIMIT).await;
    assert!(items.is_empty());
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn openai_speech_request_and_resampled_audio() {
    let audio = tone(24_000, 440.0, 24_000);
    let mock = MockHttp::start(vec![Plan::ok("audio/pcm", uneven(&le_bytes(&audio)))]).await;
    let tts = providers(&config(&mock.url(""))).tts("openai", "").unwrap();

    let (pcm, errors) = samples(tts.as_ref(), "We open at seven.").await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(pcm.len(), 16_000, "one second at 16 kHz");
    let crossings = pcm[1_000..15_000]
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    let hz = crossings as f32 / 2.0 / (14_000.0 / 16_000.0);
    assert!((hz - 440.0).abs() < 5.0, "pitch {hz} Hz");

    let sent = &mock.requests()[0];
    assert_eq!(sent.target, "/v1/audio/speech");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        sent.json(),
        json!({"model": "tts-1", "input": "We open at seven.", "voice": "alloy", "response_format": "pcm"})
    );
}

#[tokio::test]
async fn openai_speech_reset_mid_sentence() {
    let audio = le_bytes(&tone(24_000, 440.0, 4_800));
    let plan = Plan::ok("audio/pcm", vec![audio]).end(End::Reset);
    let mock = MockHttp::start(vec![plan]).await;
    let tts = providers(&config(&mock.url(""))).tts("openai", "").unwrap();

    let (pcm, errors) = samples(tts.as_ref(), "Hi.").await;
    assert!(!pcm.is_empty());
    assert!(pcm.len() <= 3_200, "{} samples", pcm.len());
    assert!(
        matches!(errors.as_slice(), [ProviderError::Connect { .. }]),
        "{errors:?}"
    );
}

#[tokio::test]
async fn azure_request_and_audio() {
    let audio = tone(16_000, 500.0, 3_200);
    let mock = MockHttp::start(vec![Plan::ok("audio/x-wav", uneven(&le_bytes(&audio)))]).await;
    let tts = providers(&config(&mock.url(""))).tts("azure", "").unwrap();

    let (pcm, errors) = samples(tts.as_ref(), "Tom & Jerry's <bakery>").await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(pcm, audio);

    let sent = &mock.requests()[0];
    assert_eq!(sent.target, "/cognitiveservices/v1");
    assert_eq!(sent.header("ocp-apim-subscription-key"), Some(KEY));
    assert_eq!(sent.header("content-type"), Some("application/ssml+xml"));
    assert_eq!(
        sent.header("x-microsoft-outputformat"),
        Some("raw-16khz-16bit-mono-pcm")
    );
    assert!(
        sent.header("user-agent")
            .is_some_and(|ua| ua.starts_with("voicegate")),
        "{:?}",
        sent.header("user-agent")
    );
    assert_eq!(
        String::from_utf8_lossy(&sent.body),
        "<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" \
         xml:lang=\"en-US\"><voice name=\"en-US-JennyNeural\">Tom &amp; Jerry&apos;s \
         &lt;bakery&gt;</voice></speak>"
    );
}

#[tokio::test]
async fn azure_mulaw_format() {
    let mut mulaw = Vec::new();
    G711Encoder::new(G711Law::Mu)
        .encode(&tone(8_000, 400.0, 1_600), &mut mulaw)
        .unwrap();
    let mock = MockHttp::start(vec![Plan::ok("audio/basic", vec![mulaw])]).await;
    let mut config = config(&mock.url(""));
    config.azure_output_format = "raw-8khz-8bit-mono-mulaw".into();
    let tts = providers(&config).tts("azure", "").unwrap();

    let (pcm, errors) = samples(tts.as_ref(), "Hello.").await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(pcm.len(), 3_200);
    assert_eq!(
        mock.requests()[0].header("x-microsoft-outputformat"),
        Some("raw-8khz-8bit-mono-mulaw")
    );
}

#[tokio::test]
async fn azure_401_with_empty_body() {
    let plan = Plan {
        chunks: Vec::new(),
        ..Plan::error(401, "")
    };
    let mock = MockHttp::start(vec![plan]).await;
    let tts = providers(&config(&mock.url(""))).tts("azure", "").unwrap();
    let error = tts
        .synthesize("Hi.", &voice())
        .await
        .err()
        .expect("rejected");
    assert!(
        matches!(error, ProviderError::Rejected { status: 401, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn azure_drop_closes_connection() {
    let plan = Plan::ok("audio/x-wav", vec![vec![0u8; 640]; 200])
        .chunk_interval(Duration::from_millis(20));
    let mock = MockHttp::start(vec![plan]).await;
    let tts = providers(&config(&mock.url(""))).tts("azure", "").unwrap();
    let mut stream = tts.synthesize("A long answer.", &voice()).await.unwrap();
    assert!(matches!(stream.next().await, Some(Ok(_))));
    drop(stream);
    assert!(mock.wait_client_close(Duration::from_secs(3)).await);
}

#[tokio::test]
async fn elevenlabs_slow_start_then_audio() {
    let audio = tone(16_000, 440.0, 3_200);
    let plan = Plan::ok("audio/pcm", uneven(&le_bytes(&audio)))
        .headers_after(Duration::from_millis(300))
        .chunk_interval(Duration::from_millis(20));
    let mock = MockHttp::start(vec![plan]).await;
    let tts = providers(&config(&mock.url("")))
        .tts("elevenlabs", "")
        .unwrap();

    let started = std::time::Instant::now();
    let (pcm, errors) = samples(tts.as_ref(), "Hello.").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(pcm, audio);
}

#[tokio::test]
async fn openai_speech_errors_and_cancellation() {
    let mock = MockHttp::start(vec![Plan::error(500, r#"{"error":{"message":"boom"}}"#)]).await;
    let tts = providers(&config(&mock.url(""))).tts("openai", "").unwrap();
    let error = tts
        .synthesize("Hi.", &voice())
        .await
        .err()
        .expect("rejected");
    assert_eq!(
        error,
        ProviderError::Rejected {
            provider: "openai-tts",
            status: 500,
            message: "boom".into()
        }
    );
    assert_eq!(mock.requests().len(), 3);

    let plan =
        Plan::ok("audio/pcm", vec![vec![0u8; 960]; 200]).chunk_interval(Duration::from_millis(20));
    let mock = MockHttp::start(vec![plan]).await;
    let tts = providers(&config(&mock.url(""))).tts("openai", "").unwrap();
    let mut stream = tts.synthesize("A long answer.", &voice()).await.unwrap();
    assert!(matches!(stream.next().await, Some(Ok(_))));
    drop(stream);
    assert!(mock.wait_client_close(Duration::from_secs(3)).await);
}
