//! Shared helpers: synthesising test speech and driving a speech-to-text session.

use std::time::Duration;

use futures::StreamExt;
use voicegate::ai::offline::{EspeakSettings, EspeakTts, HelperSettings, WhisperHelper};
use voicegate::ai::provider::{
    SttEvent, SttInput, SttOptions, SttProvider, TtsProvider, VoiceOptions,
};

/// The question every speech test asks.
pub const QUESTION: &str = "What are your opening hours on Saturday?";

/// The default `[agent]` keywords, which become Whisper's initial prompt.
pub fn shop_keywords() -> Vec<String> {
    voicegate::ai::AgentConfig::default().keywords
}

pub fn espeak() -> EspeakTts {
    EspeakTts::new(EspeakSettings::new("en-us", 165))
}

pub fn helper() -> WhisperHelper {
    WhisperHelper::new(HelperSettings {
        python: "python3".to_owned(),
        model: String::new(),
    })
}

/// Synthesises `text` with espeak-ng into 16 kHz PCM.
pub async fn speak(text: &str) -> Vec<i16> {
    let mut stream = espeak()
        .synthesize(text, &VoiceOptions::default())
        .await
        .expect("espeak-ng starts");
    let mut pcm = Vec::new();
    while let Some(chunk) = stream.next().await {
        pcm.extend(chunk.expect("espeak-ng chunk"));
    }
    pcm
}

/// Puts `seconds` of silence before and after `speech`, as a caller's turn would have.
pub fn padded(speech: &[i16], seconds: f64) -> Vec<i16> {
    let pad = vec![0i16; (16_000.0 * seconds) as usize];
    [pad.as_slice(), speech, pad.as_slice()].concat()
}

/// Sends `pcm` to a session in 20 ms frames, finalizes, and returns the events up to and
/// including the first final or failure.
pub async fn transcribe(provider: &dyn SttProvider, pcm: &[i16]) -> Vec<SttEvent> {
    let mut session = provider.start(SttOptions {
        language: "en-US".to_owned(),
        keywords: shop_keywords(),
        call_id: "test-call".to_owned(),
    });
    for frame in pcm.chunks(320) {
        session
            .input
            .send(SttInput::Audio(frame.to_vec()))
            .await
            .expect("session accepts audio");
    }
    session
        .input
        .send(SttInput::Finalize)
        .await
        .expect("session accepts finalize");
    let mut events = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(120), session.events.recv())
            .await
            .expect("a final within 120 s")
            .expect("session open until its final");
        let last = matches!(event, SttEvent::Final(_) | SttEvent::Failed(_));
        events.push(event);
        if last {
            return events;
        }
    }
}

/// The text of the final event, lowercased.
pub fn final_text(events: &[SttEvent]) -> String {
    match events.last() {
        Some(SttEvent::Final(text)) => text.to_lowercase(),
        other => panic!("expected a final transcript, got {other:?}"),
    }
}
