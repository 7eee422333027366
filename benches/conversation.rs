//! Turn latency of the conversation loop: end of caller speech to the first packet of the reply.
//!
//! Run with `cargo bench --bench conversation`. Two parts, each printing p50 and p95 per stage
//! of the latency trace that the loop stores with every agent turn:
//!
//! - `fixed`: the real loop with local providers that wait fixed, known delays (speech-to-text
//!   final 150 ms after `Finalize`, first LLM token after 200 ms and one token every 20 ms,
//!   first TTS audio 100 ms after each sentence). Whatever the first packet takes beyond those
//!   delays and the silence before the final is requested (the VAD's `speech_end_ms`, then the
//!   loop's end-of-turn wait) is voicegate's own share.
//! - `offline`: the offline default providers of this machine (faster-whisper, the scripted
//!   agent, espeak-ng) built by the provider registry, with a question spoken by espeak-ng.
//!
//! Both parts use a media side that reports `SegmentStarted` as soon as audio is queued and
//! `SegmentPlayed` when the segment ends. The paced playout of a real call sends the first
//! packet at its next 20 ms tick, so it adds 0 to 20 ms to `first_rtp`.
//! `BENCH_ONLY=fixed|offline` runs one part. `cargo test --all-targets` runs this binary without
//! `--bench`: then the `fixed` part runs three turns and `offline` is skipped unless
//! `BENCH_ONLY` selects it.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio::time::sleep_until;

use voicegate::ai::Registry;
use voicegate::ai::conversation::{ConversationEvent, ConversationSettings, ProviderChains, run};
use voicegate::ai::metrics::STAGES;
use voicegate::ai::provider::{
    ChatRequest, LlmEvent, LlmProvider, ProviderError, SttEvent, SttInput, SttOptions, SttProvider,
    SttSession, TtsProvider, VoiceOptions,
};
use voicegate::audio::{FRAME_SAMPLES, MediaEvent, PlayoutCommand};
use voicegate::config::Config;
use voicegate::media::MediaConfig;
use voicegate::tenancy::{ProviderKeys, TurnRole};

/// Speech-to-text final after `Finalize`.
const STT_DELAY: Duration = Duration::from_millis(150);
/// First token after the request.
const LLM_FIRST_TOKEN: Duration = Duration::from_millis(200);
/// Gap between later tokens.
const LLM_TOKEN_GAP: Duration = Duration::from_millis(20);
/// First audio chunk after each synthesis request.
const TTS_FIRST_AUDIO: Duration = Duration::from_millis(100);
/// The loop's end-of-turn wait in the `fixed` part, counted from the VAD's speech end report.
const FIXED_END_OF_TURN: Duration = Duration::from_millis(300);

/// The reply of the `fixed` part, one token per word. Each token carries its trailing space so
/// that the sentence splitter detects the end of the first sentence with its last word.
const REPLY_TOKENS: [&str; 14] = [
    "We ",
    "are ",
    "open ",
    "from ",
    "eight ",
    "to ",
    "two ",
    "on ",
    "Saturday. ",
    "We ",
    "are ",
    "closed ",
    "on ",
    "Sunday.",
];
/// Tokens up to and including the end of the first sentence.
const FIRST_SENTENCE_TOKENS: u32 = 9;

const QUESTION: &str = "What are your opening hours on Saturday?";

/// Speech-to-text that returns a fixed final `STT_DELAY` after each `Finalize`.
struct FixedStt;

impl SttProvider for FixedStt {
    fn name(&self) -> &'static str {
        "fixed-stt"
    }

    fn start(&self, _options: SttOptions) -> SttSession {
        let (input, mut input_rx) = mpsc::channel(1024);
        let (events_tx, events) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(input) = input_rx.recv().await {
                if let SttInput::Finalize = input {
                    tokio::time::sleep(STT_DELAY).await;
                    let text = QUESTION.to_owned();
                    if events_tx.send(SttEvent::Final(text)).await.is_err() {
                        return;
                    }
                }
            }
        });
        SttSession { input, events }
    }
}

/// Language model that streams `REPLY_TOKENS` on a fixed schedule from the request.
struct FixedLlm;

#[async_trait::async_trait]
impl LlmProvider for FixedLlm {
    fn name(&self) -> &'static str {
        "fixed-llm"
    }

    async fn stream(
        &self,
        _request: ChatRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, ProviderError>>, ProviderError> {
        let requested = tokio::time::Instant::now();
        let tokens = futures::stream::iter(REPLY_TOKENS.iter().enumerate()).then(
            move |(index, token)| async move {
                let due = requested + LLM_FIRST_TOKEN + LLM_TOKEN_GAP * index as u32;
                sleep_until(due).await;
                Ok(LlmEvent::Token((*token).to_owned()))
            },
        );
        Ok(tokens
            .chain(futures::stream::iter([Ok(LlmEvent::Done)]))
            .boxed())
    }
}

/// Text-to-speech that sends 600 ms of a tone in three chunks, the first after
/// `TTS_FIRST_AUDIO`.
struct FixedTts;

#[async_trait::async_trait]
impl TtsProvider for FixedTts {
    fn name(&self) -> &'static str {
        "fixed-tts"
    }

    async fn synthesize(
        &self,
        _text: &str,
        _voice: &VoiceOptions,
    ) -> Result<BoxStream<'static, Result<Vec<i16>, ProviderError>>, ProviderError> {
        let requested = tokio::time::Instant::now();
        let chunk: Vec<i16> = (0..3_200).map(|i| ((i % 40) as i16 - 20) * 500).collect();
        let chunks = futures::stream::iter(0..3).then(move |_| {
            let chunk = chunk.clone();
            async move {
                sleep_until(requested + TTS_FIRST_AUDIO).await;
                Ok(chunk)
            }
        });
        Ok(chunks.boxed())
    }
}

/// Reports playout progress to the loop: `SegmentStarted` when a segment's first audio arrives and
/// `SegmentPlayed` when the loop ends the segment.
async fn media_side(mut commands: mpsc::Receiver<PlayoutCommand>, media: mpsc::Sender<MediaEvent>) {
    let mut samples = HashMap::new();
    while let Some(command) = commands.recv().await {
        let event = match command {
            PlayoutCommand::Audio { segment, pcm, .. } => {
                let total: &mut u64 = samples.entry(segment).or_default();
                let first = *total == 0;
                *total += pcm.len() as u64;
                first.then(|| MediaEvent::SegmentStarted {
                    segment,
                    at: Instant::now(),
                })
            }
            PlayoutCommand::EndSegment(segment) => Some(MediaEvent::SegmentPlayed {
                segment,
                samples: samples.remove(&segment).unwrap_or(0),
            }),
            PlayoutCommand::Clear | PlayoutCommand::Resume | PlayoutCommand::Dtmf(_) => None,
        };
        if let Some(event) = event
            && media.send(event).await.is_err()
        {
            return;
        }
    }
}

/// Plays `turns` caller turns of `speech` into a fresh loop, each followed by `speech_end` of
/// silence, and returns each agent reply: its text and its latency trace in milliseconds per
/// stage.
async fn measure(
    settings: ConversationSettings,
    chains: ProviderChains,
    speech: &[i16],
    speech_end: Duration,
    turns: usize,
) -> Result<Vec<(String, BTreeMap<String, u64>)>, String> {
    let (media, media_rx) = mpsc::channel(4096);
    let (playout, playout_rx) = mpsc::channel(1024);
    let (_control, control_rx) = mpsc::channel(4);
    let (events_tx, mut events) = mpsc::channel(256);
    tokio::spawn(media_side(playout_rx, media.clone()));
    let conversation = tokio::spawn(run(
        settings, chains, media_rx, playout, control_rx, events_tx,
    ));

    let closed = || "the conversation loop stopped".to_owned();
    let mut traces = Vec::new();
    for _ in 0..turns {
        // The caller speaks in real time, framed as the media path delivers it.
        let onset = Instant::now();
        media
            .send(MediaEvent::SpeechStarted { onset })
            .await
            .map_err(|_| closed())?;
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        for chunk in speech.chunks(FRAME_SAMPLES) {
            ticks.tick().await;
            let mut frame = Box::new([0i16; FRAME_SAMPLES]);
            frame[..chunk.len()].copy_from_slice(chunk);
            media
                .send(MediaEvent::Audio(frame))
                .await
                .map_err(|_| closed())?;
        }
        // The media path reports the end of speech after `speech_end_ms` of silence, with the
        // time of the last voiced frame, and keeps delivering frames meanwhile.
        let end = Instant::now();
        let silence = [0i16; FRAME_SAMPLES];
        for _ in 0..speech_end.as_millis() / 20 {
            ticks.tick().await;
            media
                .send(MediaEvent::Audio(Box::new(silence)))
                .await
                .map_err(|_| closed())?;
        }
        media
            .send(MediaEvent::SpeechEnded { end })
            .await
            .map_err(|_| closed())?;

        let reply = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match events.recv().await {
                    Some(ConversationEvent::Turn(turn)) if turn.role == TurnRole::Agent => {
                        return Some(turn);
                    }
                    Some(_) => {}
                    None => return None,
                }
            }
        })
        .await
        .map_err(|_| "no reply within 60 s".to_owned())?
        .ok_or_else(closed)?;
        traces.push((reply.text, reply.latency_ms));
    }
    let _ = media.send(MediaEvent::Timeout).await;
    let _ = conversation.await;
    Ok(traces)
}

/// Returns the value at quantile `q` (0..=1) of `values` by nearest rank.
fn quantile(values: &mut [u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

fn print_stage(name: &str, mut values: Vec<u64>) {
    println!(
        "  {name:<28} p50 {:>5} ms  p95 {:>5} ms  ({} turns)",
        quantile(&mut values, 0.5),
        quantile(&mut values, 0.95),
        values.len()
    );
}

fn print_stages(traces: &[BTreeMap<String, u64>]) {
    for stage in STAGES {
        let values = traces
            .iter()
            .filter_map(|t| t.get(stage).copied())
            .collect();
        print_stage(stage, values);
    }
}

fn base_settings(end_of_turn: Duration) -> ConversationSettings {
    ConversationSettings {
        call_id: "conversation-bench".to_owned(),
        language: "en-US".to_owned(),
        end_of_turn,
        first_token_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(20),
        stt_final_timeout: Duration::from_secs(20),
        max_reply: Duration::from_secs(60),
        min_interruption: Duration::from_millis(200),
        ..ConversationSettings::default()
    }
}

fn bench_fixed(runtime: &tokio::runtime::Runtime, turns: usize) -> Result<(), String> {
    let chains = ProviderChains {
        stt: vec![Arc::new(FixedStt)],
        llm: vec![Arc::new(FixedLlm)],
        tts: vec![Arc::new(FixedTts)],
    };
    // Half a second of noise is the caller's speech. The fixed STT ignores its content.
    let speech: Vec<i16> = (0..8_000)
        .map(|i| ((i * 7919) % 4000) as i16 - 2000)
        .collect();
    let settings = base_settings(FIXED_END_OF_TURN);
    let speech_end = Duration::from_millis(u64::from(MediaConfig::default().speech_end_ms));

    let replies = runtime.block_on(measure(settings, chains, &speech, speech_end, turns))?;
    let traces: Vec<_> = replies.into_iter().map(|(_, trace)| trace).collect();

    let silence = speech_end + FIXED_END_OF_TURN;
    let fixed = silence
        + STT_DELAY
        + LLM_FIRST_TOKEN
        + LLM_TOKEN_GAP * (FIRST_SENTENCE_TOKENS - 1)
        + TTS_FIRST_AUDIO;
    let fixed_ms = fixed.as_millis() as u64;
    println!(
        "conversation loop, fixed provider delays ({} ms VAD speech end + {} ms end of turn + \
         {} ms of providers before the first audio), {} turns:",
        speech_end.as_millis(),
        FIXED_END_OF_TURN.as_millis(),
        (fixed - silence).as_millis(),
        traces.len()
    );
    print_stages(&traces);
    let share = traces
        .iter()
        .filter_map(|t| t.get("first_rtp"))
        .map(|rtp| rtp.saturating_sub(fixed_ms))
        .collect();
    print_stage(&format!("first_rtp - {fixed_ms} ms fixed"), share);
    println!("  target: internal at most 30 ms p95");
    Ok(())
}

/// espeak-ng speech of `text` as 16 kHz mono PCM.
fn speak(text: &str) -> Result<Vec<i16>, String> {
    let dir = std::env::temp_dir().join(format!("voicegate-conv-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|err| format!("temporary directory: {err}"))?;
    let wav = dir.join("question.wav");
    let raw = dir.join("question.raw");
    let espeak = Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&wav)
        .arg(text)
        .status();
    if !espeak.is_ok_and(|status| status.success()) {
        return Err("espeak-ng failed".to_owned());
    }
    let sox = Command::new("sox")
        .arg(&wav)
        .args([
            "-t",
            "raw",
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-c",
            "1",
            "-L",
        ])
        .args(["-r", "16000"])
        .arg(&raw)
        .status();
    if !sox.is_ok_and(|status| status.success()) {
        return Err("sox failed".to_owned());
    }
    let bytes = std::fs::read(&raw).map_err(|err| format!("sox output: {err}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(bytes
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect())
}

fn bench_offline(runtime: &tokio::runtime::Runtime, turns: usize) -> Result<(), String> {
    let config = Config::default();
    let registry = Registry::new(&config.ai, &config.providers, &config.agent)
        .map_err(|err| format!("registry: {err}"))?;
    let chains = registry
        .chains(
            &["whisper".to_owned()],
            &["scripted".to_owned()],
            &["espeak".to_owned()],
            &config.agent,
            &ProviderKeys::default(),
        )
        .map_err(|err| format!("provider chains: {err}"))?;

    let speech = speak(QUESTION)?;
    let mut settings = ConversationSettings::from_config(&config.ai, &config.agent, "bench");
    settings.greeting.clear();
    let end_of_turn = settings.end_of_turn;
    let speech_end = Duration::from_millis(u64::from(config.media.speech_end_ms));

    let replies = runtime.block_on(async {
        registry.warm_up().await;
        let replies = measure(settings, chains, &speech, speech_end, turns).await;
        registry.shutdown().await;
        replies
    })?;

    // The scripted agent names Saturday only in its opening-hours answer, so this counts the
    // turns that Whisper heard well enough.
    let answered = replies
        .iter()
        .filter(|(text, _)| text.contains("Saturday"))
        .count();
    let traces: Vec<_> = replies.into_iter().map(|(_, trace)| trace).collect();
    println!(
        "offline default (faster-whisper tiny.en beam {}, scripted agent, espeak-ng), \
         {} ms VAD speech end + {} ms end of turn, {:.1} s question, {} turns:",
        config.ai.whisper_beam,
        speech_end.as_millis(),
        end_of_turn.as_millis(),
        speech.len() as f64 / 16_000.0,
        traces.len()
    );
    print_stages(&traces);
    println!(
        "  voice-to-voice is first_rtp; {answered} of {} replies gave the opening hours",
        traces.len()
    );
    Ok(())
}

/// Runs the selected parts. A part that fails makes the process exit with status 1, so a
/// broken benchmark also fails `cargo test --all-targets`.
fn main() {
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let mut failed = false;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tokio runtime failed to start: {err}");
            std::process::exit(1);
        }
    };
    let fixed_turns = if quick { 3 } else { 50 };
    if (only.is_empty() || only == "fixed")
        && let Err(message) = bench_fixed(&runtime, fixed_turns)
    {
        eprintln!("fixed providers: failed: {message}");
        failed = true;
    }
    if (!quick && only.is_empty()) || only == "offline" {
        let turns = if quick { 2 } else { 10 };
        if let Err(message) = bench_offline(&runtime, turns) {
            eprintln!("offline default: failed: {message}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
