//! espeak-ng text-to-speech: streamed 16 kHz output, cancellation, timeouts and the process
//! limit.

use std::time::{Duration, Instant};

use futures::StreamExt;
use voicegate::ai::offline::{EspeakSettings, EspeakTts};
use voicegate::ai::provider::{ProviderError, TtsProvider, VoiceOptions};

use crate::support::{QUESTION, espeak};

/// Process ids of the live (not zombie) `espeak-ng` children of this test process.
fn espeak_children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state, ppid, ...
        let Some((name, rest)) = stat.split_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if name.ends_with("(espeak-ng") && fields.get(1) == Some(&me.as_str()) && fields[0] != "Z" {
            pids.push(pid);
        }
    }
    pids
}

fn rms(pcm: &[i16]) -> f64 {
    let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / pcm.len().max(1) as f64).sqrt()
}

#[tokio::test]
async fn espeak_streams_16k_speech() {
    let tts = espeak();
    let mut timings = Vec::new();
    let mut pcm = Vec::new();
    for _ in 0..5 {
        pcm.clear();
        let started = Instant::now();
        let mut stream = tts
            .synthesize(QUESTION, &VoiceOptions::default())
            .await
            .expect("espeak-ng starts");
        let mut chunks = 0;
        let mut first_chunk = None;
        while let Some(chunk) = stream.next().await {
            first_chunk.get_or_insert_with(|| started.elapsed());
            pcm.extend(chunk.expect("chunk"));
            chunks += 1;
        }
        timings.push((started.elapsed(), first_chunk.unwrap_or_default(), chunks));
    }
    for (total, first, chunks) in &timings {
        println!(
            "espeak sentence: {} ms total, first chunk after {} ms, {chunks} chunks",
            total.as_millis(),
            first.as_millis()
        );
    }
    let seconds = pcm.len() as f64 / 16_000.0;
    // espeak-ng speaks this question in about two seconds at 165 words per minute.
    assert!((1.0..5.0).contains(&seconds), "{seconds} s");
    assert!(rms(&pcm) > 500.0, "speech is audible: rms {}", rms(&pcm));
    assert!(timings.iter().all(|(_, _, chunks)| *chunks > 1));
}

#[tokio::test]
async fn espeak_voice_option_wins() {
    let tts = espeak();
    let voice = VoiceOptions {
        voice: "en-gb".to_owned(),
        language: "en-GB".to_owned(),
    };
    let mut stream = tts
        .synthesize("Good morning.", &voice)
        .await
        .expect("starts");
    let mut samples = 0;
    while let Some(chunk) = stream.next().await {
        samples += chunk.expect("chunk").len();
    }
    assert!(samples > 8_000, "{samples} samples");
}

#[tokio::test]
async fn espeak_rejects_option_like_voice() {
    let tts = espeak();
    let voice = VoiceOptions {
        voice: "--stdout".to_owned(),
        language: String::new(),
    };
    let result = tts.synthesize("Hello.", &voice).await.map(|_| ());
    assert!(
        matches!(result, Err(ProviderError::Config { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn espeak_speaks_dash_text_as_text() {
    // Text starting with a dash is spoken, never taken for an option.
    let tts = espeak();
    let mut stream = tts
        .synthesize("--help me please", &VoiceOptions::default())
        .await
        .expect("starts");
    let mut pcm = Vec::new();
    while let Some(chunk) = stream.next().await {
        pcm.extend(chunk.expect("chunk"));
    }
    assert!(pcm.len() > 8_000, "{} samples", pcm.len());
    assert!(rms(&pcm) > 500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn espeak_drop_kills_process() {
    let tts = espeak();
    let before = espeak_children();
    let long_text = "This sentence is long enough to keep espeak busy for a while. ".repeat(120);
    let mut stream = tts
        .synthesize(&long_text, &VoiceOptions::default())
        .await
        .expect("starts");
    let first = stream.next().await.expect("a chunk").expect("audio");
    assert!(!first.is_empty());
    let ours: Vec<u32> = espeak_children()
        .into_iter()
        .filter(|pid| !before.contains(pid))
        .collect();
    assert!(!ours.is_empty(), "espeak-ng runs while streaming");

    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while ours.iter().any(|pid| espeak_children().contains(pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alive: Vec<u32> = espeak_children()
        .into_iter()
        .filter(|pid| ours.contains(pid))
        .collect();
    assert!(
        alive.is_empty(),
        "espeak-ng {alive:?} still runs after the drop"
    );
}

#[tokio::test]
async fn espeak_timeout_ends_stream() {
    let mut settings = EspeakSettings::new("en-us", 165);
    settings.timeout = Duration::from_millis(1);
    let tts = EspeakTts::new(settings);
    let long_text = "A long sentence that takes espeak more than a millisecond. ".repeat(50);
    let mut stream = tts
        .synthesize(&long_text, &VoiceOptions::default())
        .await
        .expect("starts");
    let mut last = None;
    while let Some(item) = stream.next().await {
        last = Some(item);
    }
    assert!(
        matches!(last, Some(Err(ProviderError::Timeout { .. }))),
        "{last:?}"
    );
}

#[tokio::test]
async fn espeak_limits_processes() {
    let mut settings = EspeakSettings::new("en-us", 165);
    settings.max_processes = 1;
    let tts = EspeakTts::new(settings);
    let first = tts
        .synthesize("One.", &VoiceOptions::default())
        .await
        .expect("first starts");

    let second = tokio::spawn({
        let tts = tts.clone();
        async move {
            tts.synthesize("Two.", &VoiceOptions::default())
                .await
                .map(|_| ())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!second.is_finished(), "second synthesis waits for a slot");
    drop(first);
    let result = second.await.expect("task");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn espeak_missing_program_is_connect_error() {
    let mut settings = EspeakSettings::new("en-us", 165);
    settings.program = "/nonexistent/espeak-ng".to_owned();
    let tts = EspeakTts::new(settings);
    let result = tts
        .synthesize("Hello.", &VoiceOptions::default())
        .await
        .map(|_| ());
    assert!(
        matches!(result, Err(ProviderError::Connect { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn espeak_blank_text_is_empty() {
    // espeak-ng run on blank text would still yield the resampler's tail as one chunk.
    let tts = espeak();
    let stream = tts
        .synthesize("  \n ", &VoiceOptions::default())
        .await
        .expect("blank text is accepted");
    let chunks: Vec<_> = stream.collect().await;
    assert!(chunks.is_empty(), "{} chunks", chunks.len());
}
