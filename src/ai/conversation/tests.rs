//! Scenario tests of the loop on a virtual clock. The media side is the real playout queue,
//! ticked every 20 ms; providers are small implementations of the traits that follow a script.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;
use crate::ai::provider::{
    ChatMessage, ChatRequest, LlmEvent, ProviderError, Role, SttEvent, SttInput, SttOptions,
    SttSession, ToolCall,
};
use crate::ai::tools;
use crate::audio::{FRAME_SAMPLES, SegmentId};
use crate::media::playout::{BargeInMode, PlayoutFrame, PlayoutQueue, SampleStorage};

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

// ---- providers -------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum SttMode {
    Normal,
    FailOnFinalize,
    /// Takes audio but never answers `Finalize`.
    Silent,
}

struct TestStt {
    name: &'static str,
    mode: SttMode,
    finals: Arc<Mutex<VecDeque<String>>>,
    samples: Arc<AtomicUsize>,
    /// `Pause` and `Resume` inputs in order.
    controls: Arc<Mutex<Vec<&'static str>>>,
}

impl TestStt {
    fn new(name: &'static str, mode: SttMode, finals: &[&str]) -> Arc<Self> {
        Arc::new(Self {
            name,
            mode,
            finals: Arc::new(Mutex::new(finals.iter().map(|s| s.to_string()).collect())),
            samples: Arc::new(AtomicUsize::new(0)),
            controls: Arc::new(Mutex::new(Vec::new())),
        })
    }
}

impl SttProvider for TestStt {
    fn name(&self) -> &'static str {
        self.name
    }

    fn start(&self, _options: SttOptions) -> SttSession {
        let (input, mut input_rx) = mpsc::channel(256);
        let (events_tx, events) = mpsc::channel(16);
        let mode = self.mode;
        let finals = Arc::clone(&self.finals);
        let samples = Arc::clone(&self.samples);
        let controls = Arc::clone(&self.controls);
        let name = self.name;
        tokio::spawn(async move {
            let mut heard = 0;
            while let Some(input) = input_rx.recv().await {
                match input {
                    SttInput::Audio(pcm) => {
                        heard += pcm.len();
                        samples.fetch_add(pcm.len(), Ordering::SeqCst);
                    }
                    SttInput::Finalize if mode == SttMode::FailOnFinalize => {
                        let err = ProviderError::Connect {
                            provider: name,
                            message: "test failure".to_owned(),
                        };
                        let _ = events_tx.send(SttEvent::Failed(err)).await;
                        return;
                    }
                    SttInput::Finalize if mode == SttMode::Silent => {}
                    SttInput::Finalize => {
                        // Only an utterance with audio has words.
                        let text = if heard > 0 {
                            finals.lock().pop_front().unwrap_or_default()
                        } else {
                            String::new()
                        };
                        heard = 0;
                        let _ = events_tx.send(SttEvent::Final(text)).await;
                    }
                    SttInput::Pause => controls.lock().push("pause"),
                    SttInput::Resume => controls.lock().push("resume"),
                }
            }
        });
        SttSession { input, events }
    }
}

#[derive(Clone)]
enum Step {
    Wait(Duration),
    Token(&'static str),
    Tool(&'static str, serde_json::Value),
    Done,
}

struct TestLlm {
    name: &'static str,
    reject: bool,
    replies: Mutex<VecDeque<Vec<Step>>>,
    requests: Mutex<Vec<ChatRequest>>,
}

impl TestLlm {
    fn new(name: &'static str, replies: Vec<Vec<Step>>) -> Arc<Self> {
        Arc::new(Self {
            name,
            reject: false,
            replies: Mutex::new(replies.into()),
            requests: Mutex::new(Vec::new()),
        })
    }

    fn rejecting(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            reject: true,
            replies: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
        })
    }

    fn last_messages(&self) -> Vec<ChatMessage> {
        self.requests
            .lock()
            .last()
            .map(|r| r.messages.clone())
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl LlmProvider for TestLlm {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn stream(
        &self,
        request: ChatRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, ProviderError>>, ProviderError> {
        self.requests.lock().push(request);
        if self.reject {
            return Err(ProviderError::Rejected {
                provider: self.name,
                status: 503,
                message: "overloaded".to_owned(),
            });
        }
        let steps = self
            .replies
            .lock()
            .pop_front()
            .unwrap_or_else(|| vec![Step::Token("Okay."), Step::Done]);
        let stream = futures::stream::unfold(steps.into_iter(), |mut steps| async move {
            loop {
                let event = match steps.next()? {
                    Step::Wait(span) => {
                        tokio::time::sleep(span).await;
                        continue;
                    }
                    Step::Token(text) => LlmEvent::Token(text.to_owned()),
                    Step::Tool(name, arguments) => LlmEvent::ToolCall(ToolCall {
                        id: format!("call-{name}"),
                        name: name.to_owned(),
                        arguments,
                    }),
                    Step::Done => LlmEvent::Done,
                };
                return Some((Ok(event), steps));
            }
        });
        Ok(stream.boxed())
    }
}

/// Synthesises 200 ms of a tone per word, in 100 ms chunks 10 ms apart.
struct TestTts {
    name: &'static str,
    fail: bool,
    spoken: Mutex<Vec<(String, Instant)>>,
}

impl TestTts {
    fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            fail: false,
            spoken: Mutex::new(Vec::new()),
        })
    }

    fn texts(&self) -> Vec<String> {
        self.spoken.lock().iter().map(|(t, _)| t.clone()).collect()
    }
}

const SAMPLES_PER_WORD: usize = 3200;

#[async_trait::async_trait]
impl TtsProvider for TestTts {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn synthesize(
        &self,
        text: &str,
        _voice: &VoiceOptions,
    ) -> Result<BoxStream<'static, Result<Vec<i16>, ProviderError>>, ProviderError> {
        self.spoken.lock().push((text.to_owned(), now()));
        if self.fail {
            return Err(ProviderError::Connect {
                provider: self.name,
                message: "refused".to_owned(),
            });
        }
        let total = text.split_whitespace().count() * SAMPLES_PER_WORD;
        let chunks = total.div_ceil(1600);
        let stream = futures::stream::iter(0..chunks).then(move |index| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let len = 1600.min(total - index * 1600);
            Ok(vec![1000i16; len])
        });
        Ok(stream.boxed())
    }
}

// ---- media side ------------------------------------------------------------------------------

#[derive(Default)]
struct MediaLog {
    started: Vec<(SegmentId, Instant)>,
    played: Vec<SegmentId>,
    commands: Vec<String>,
    interruptible: Vec<bool>,
    dtmf: String,
}

struct Call {
    media: mpsc::Sender<MediaEvent>,
    control: mpsc::Sender<ControlInput>,
    events: mpsc::Receiver<ConversationEvent>,
    barge: mpsc::Sender<BargeInMode>,
    log: Arc<Mutex<MediaLog>>,
    handle: JoinHandle<ConversationOutcome>,
}

fn settings() -> ConversationSettings {
    ConversationSettings {
        call_id: "test-call".to_owned(),
        system_prompt: "You are a test agent.".to_owned(),
        language: "en-US".to_owned(),
        end_of_turn: Duration::from_millis(300),
        first_token_timeout: Duration::from_secs(1),
        stall_timeout: Duration::from_secs(2),
        stt_final_timeout: Duration::from_secs(2),
        max_reply: Duration::from_secs(60),
        min_interruption: Duration::from_millis(200),
        backchannels: ["mhm", "uh-huh", "okay", "yeah"]
            .map(str::to_owned)
            .to_vec(),
        holding_phrase: "One moment please.".to_owned(),
        apology: "Sorry, something went wrong.".to_owned(),
        ..ConversationSettings::default()
    }
}

fn chains(
    stt: Vec<Arc<TestStt>>,
    llm: Vec<Arc<TestLlm>>,
    tts: Vec<Arc<dyn TtsProvider>>,
) -> ProviderChains {
    ProviderChains {
        stt: stt.into_iter().map(|p| p as Arc<dyn SttProvider>).collect(),
        llm: llm.into_iter().map(|p| p as Arc<dyn LlmProvider>).collect(),
        tts,
    }
}

impl Call {
    fn start(settings: ConversationSettings, chains: ProviderChains) -> Self {
        Self::start_with_events(settings, chains, 256)
    }

    fn start_with_events(
        settings: ConversationSettings,
        chains: ProviderChains,
        events_capacity: usize,
    ) -> Self {
        let (media, media_rx) = mpsc::channel(4096);
        let (playout, playout_rx) = mpsc::channel(4096);
        let (control, control_rx) = mpsc::channel(16);
        let (events_tx, events) = mpsc::channel(events_capacity);
        let (barge, barge_rx) = mpsc::channel(4);
        let log = Arc::new(Mutex::new(MediaLog::default()));
        tokio::spawn(media_side(
            playout_rx,
            media.clone(),
            barge_rx,
            Arc::clone(&log),
        ));
        let handle = tokio::spawn(run(
            settings, chains, media_rx, playout, control_rx, events_tx,
        ));
        Self {
            media,
            control,
            events,
            barge,
            log,
            handle,
        }
    }

    /// Caller speech: onset, `ms` of voiced frames, then the VAD's speech end.
    async fn speak(&self, ms: u64) {
        let _ = self
            .media
            .send(MediaEvent::SpeechStarted { onset: now() })
            .await;
        self.frames(ms).await;
        let _ = self
            .media
            .send(MediaEvent::SpeechEnded { end: now() })
            .await;
    }

    async fn frames(&self, ms: u64) {
        for _ in 0..ms / 20 {
            let frame = Box::new([800i16; FRAME_SAMPLES]);
            let _ = self.media.send(MediaEvent::Audio(frame)).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the first event matching `select`, skipping others.
    async fn wait_for<T>(&mut self, mut select: impl FnMut(&ConversationEvent) -> Option<T>) -> T {
        let wait = async {
            loop {
                let event = self.events.recv().await.expect("events channel open");
                if let Some(found) = select(&event) {
                    return found;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("event within 30 s")
    }

    async fn agent_turn(&mut self) -> TurnRecord {
        self.wait_for(|e| match e {
            ConversationEvent::Turn(t) if t.role == TurnRole::Agent => Some(t.clone()),
            _ => None,
        })
        .await
    }

    async fn finish(self) -> ConversationOutcome {
        let _ = self.media.send(MediaEvent::Timeout).await;
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("loop ends")
            .expect("loop does not panic")
    }
}

/// Plays the real playout queue every 20 ms like the media path and forwards its events.
async fn media_side(
    mut commands: mpsc::Receiver<PlayoutCommand>,
    media: mpsc::Sender<MediaEvent>,
    mut barge: mpsc::Receiver<BargeInMode>,
    log: Arc<Mutex<MediaLog>>,
) {
    let mut queue = PlayoutQueue::new(SampleStorage::Linear);
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let mut onset = None;
    loop {
        ticks.tick().await;
        let now = now();
        while let Ok(command) = commands.try_recv() {
            {
                let mut log = log.lock();
                match &command {
                    PlayoutCommand::Audio { interruptible, .. } => {
                        log.interruptible.push(*interruptible)
                    }
                    PlayoutCommand::EndSegment(_) => {}
                    other => log.commands.push(format!("{other:?}")),
                }
            }
            queue.apply(command);
        }
        while let Ok(mode) = barge.try_recv() {
            let at = *onset.get_or_insert(now);
            if let Some(event) = queue.barge_in(at, now, mode) {
                let _ = media.send(MediaEvent::BargeIn(event)).await;
            }
        }
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut events = Vec::new();
        if let PlayoutFrame::Dtmf(digit) = queue.next_frame(now, &mut frame, &mut events) {
            log.lock().dtmf.push(digit);
        }
        for event in events {
            match &event {
                MediaEvent::SegmentStarted { segment, at } => {
                    log.lock().started.push((*segment, *at))
                }
                MediaEvent::SegmentPlayed { segment, .. } => log.lock().played.push(*segment),
                _ => {}
            }
            if media.send(event).await.is_err() {
                return;
            }
        }
        if media.is_closed() {
            return;
        }
    }
}

// ---- scenarios -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn greeting_plays_as_protected_segment() {
    let tts = TestTts::new("tts");
    let mut settings = settings();
    settings.greeting = "Hello, welcome to the test line.".to_owned();
    settings.non_interruptible_greeting = true;
    let mut call = Call::start(settings, chains(vec![], vec![], vec![tts.clone()]));

    let turn = call.agent_turn().await;
    assert_eq!(turn.text, "Hello, welcome to the test line.");
    assert!(!turn.interrupted);
    assert_eq!(tts.texts(), ["Hello, welcome to the test line."]);
    let (played, interruptible) = {
        let log = call.log.lock();
        (log.played.len(), log.interruptible.clone())
    };
    assert_eq!(played, 1);
    assert!(!interruptible.is_empty());
    assert!(interruptible.iter().all(|i| !i));
    let outcome = call.finish().await;
    assert_eq!(outcome.end, ConversationEnd::MediaTimeout);
    assert_eq!(outcome.turns.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn reply_streams_sentences_before_llm_finishes() {
    let stt = TestStt::new("stt", SttMode::Normal, &["what are your hours"]);
    let llm = TestLlm::new(
        "llm",
        vec![vec![
            Step::Wait(Duration::from_millis(300)),
            Step::Token("We open at 9.30 "),
            Step::Token("every day. "),
            // Below the 2 s stall timeout, above the 1.2 s the first sentence plays.
            Step::Wait(Duration::from_millis(1500)),
            Step::Token("We close at six."),
            Step::Done,
        ]],
    );
    let tts = TestTts::new("tts");
    let mut call = Call::start(
        settings(),
        chains(vec![stt], vec![llm.clone()], vec![tts.clone()]),
    );

    call.speak(600).await;
    let caller = call
        .wait_for(|e| match e {
            ConversationEvent::Transcript {
                role,
                text,
                is_final: true,
            } => Some((*role, text.clone())),
            _ => None,
        })
        .await;
    assert_eq!(caller, (TurnRole::Caller, "what are your hours".to_owned()));

    let turn = call.agent_turn().await;
    assert_eq!(turn.text, "We open at 9.30 every day. We close at six.");
    assert_eq!(
        tts.texts(),
        ["We open at 9.30 every day.", "We close at six."]
    );

    // The first sentence played while the model was still in its pause.
    let spoken = tts.spoken.lock().clone();
    let first_rtp = call.log.lock().started[0].1;
    assert!(
        first_rtp < spoken[1].1,
        "first segment started after the second sentence"
    );
    assert!(spoken[1].1.duration_since(spoken[0].1) >= Duration::from_millis(1500));

    for stage in crate::ai::metrics::STAGES {
        assert!(turn.latency_ms.contains_key(stage), "missing stage {stage}");
    }
    // End of turn (300 ms) plus the model's 300 ms wait before its first token.
    assert!(turn.latency_ms["stt_final"] >= 300);
    assert!(turn.latency_ms["llm_first_token"] >= 600);
    assert!(turn.latency_ms["first_rtp"] >= turn.latency_ms["tts_first_audio"]);

    let messages = llm.last_messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].content, "what are your hours");
    let tools: Vec<String> = llm.requests.lock()[0]
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert!(tools.contains(&tools::END_CALL.to_owned()));
    assert!(!tools.contains(&tools::TRANSFER_CALL.to_owned()));

    let outcome = call.finish().await;
    let agent_turns = outcome
        .turns
        .iter()
        .filter(|t| t.role == TurnRole::Agent)
        .count();
    assert_eq!(agent_turns, 1);
}

#[tokio::test(start_paused = true)]
async fn barge_in_clears_and_keeps_heard_words() {
    let stt = TestStt::new("stt", SttMode::Normal, &["tell me a story", "stop please"]);
    let llm = TestLlm::new(
        "llm",
        vec![vec![
            Step::Token("One two three four five six seven eight nine ten. "),
            Step::Token("Eleven twelve thirteen fourteen."),
            Step::Done,
        ]],
    );
    let tts = TestTts::new("tts");
    let mut call = Call::start(settings(), chains(vec![stt], vec![llm.clone()], vec![tts]));

    call.speak(400).await;
    // Wait until the first sentence (ten words, 2 s of audio) has played for about 1 s.
    let started = loop {
        if let Some(&(id, at)) = call.log.lock().started.first() {
            break (id, at);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let _ = call
        .media
        .send(MediaEvent::SpeechStarted { onset: now() })
        .await;
    let _ = call.barge.send(BargeInMode::Clear).await;

    let (heard, cut) = call
        .wait_for(|e| match e {
            ConversationEvent::BargeIn { heard_text, cut } => Some((heard_text.clone(), *cut)),
            _ => None,
        })
        .await;
    let words = heard.split_whitespace().count();
    assert!((4..=6).contains(&words), "heard {heard:?}");
    assert!("One two three four five six".starts_with(&heard));
    assert!(cut <= Duration::from_millis(40), "cut {cut:?}");

    let turn = call.agent_turn().await;
    assert!(turn.interrupted);
    assert_eq!(turn.text, heard);
    // The media side applies commands at its next 20 ms tick.
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(call.log.lock().commands.contains(&"Clear".to_owned()));
    assert!(!call.log.lock().played.contains(&started.0));

    // The caller goes on talking; the next request carries only what was heard.
    call.frames(400).await;
    let _ = call
        .media
        .send(MediaEvent::SpeechEnded { end: now() })
        .await;
    call.agent_turn().await;
    let messages = llm.last_messages();
    let assistant: Vec<&ChatMessage> = messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .collect();
    assert_eq!(assistant.len(), 1);
    assert_eq!(assistant[0].content, heard);
    assert_eq!(
        messages.last().map(|m| m.content.as_str()),
        Some("stop please")
    );
    call.finish().await;
}

#[tokio::test(start_paused = true)]
async fn backchannel_resumes_paused_playout() {
    let stt = TestStt::new("stt", SttMode::Normal, &["tell me more", "mhm"]);
    let llm = TestLlm::new(
        "llm",
        vec![vec![
            Step::Token("One two three four five six seven eight nine ten."),
            Step::Done,
        ]],
    );
    let tts = TestTts::new("tts");
    let mut call = Call::start(settings(), chains(vec![stt], vec![llm.clone()], vec![tts]));

    call.speak(400).await;
    while call.log.lock().started.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = call
        .media
        .send(MediaEvent::SpeechStarted { onset: now() })
        .await;
    let _ = call.barge.send(BargeInMode::Pause).await;
    call.frames(400).await;
    let _ = call
        .media
        .send(MediaEvent::SpeechEnded { end: now() })
        .await;

    let turn = call.agent_turn().await;
    assert!(!turn.interrupted);
    assert_eq!(
        turn.text,
        "One two three four five six seven eight nine ten."
    );
    let commands = call.log.lock().commands.clone();
    assert!(commands.contains(&"Resume".to_owned()), "{commands:?}");
    assert!(!commands.contains(&"Clear".to_owned()), "{commands:?}");
    assert_eq!(call.log.lock().played.len(), 1);

    let outcome = call.finish().await;
    let caller_turns: Vec<&str> = outcome
        .turns
        .iter()
        .filter(|t| t.role == TurnRole::Caller)
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(caller_turns, ["tell me more"]);
    assert_eq!(llm.requests.lock().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn short_noise_resumes_paused_playout() {
    let stt = TestStt::new("stt", SttMode::Normal, &["tell me more"]);
    let llm = TestLlm::new(
        "llm",
        vec![vec![
            Step::Token("One two three four five six."),
            Step::Done,
        ]],
    );
    let tts = TestTts::new("tts");
    let mut call = Call::start(settings(), chains(vec![stt], vec![llm], vec![tts]));

    call.speak(400).await;
    while call.log.lock().started.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = call
        .media
        .send(MediaEvent::SpeechStarted { onset: now() })
        .await;
    let _ = call.barge.send(BargeInMode::Pause).await;
    // 100 ms is below the 200 ms minimum interruption.
    call.frames(100).await;
    let _ = call
        .media
        .send(MediaEvent::SpeechEnded { end: now() })
        .await;

    let turn = call.agent_turn().await;
    assert!(!turn.interrupted);
    assert_eq!(turn.text, "One two three four five six.");
    let commands = call.log.lock().commands.clone();
    assert_eq!(commands, ["Resume"]);
    call.finish().await;
}

#[tokio::test(start_paused = true)]
async fn stt_failover_replays_utterance_audio() {
    let first = TestStt::new("stt-a", SttMode::FailOnFinalize, &[]);
    let second = TestStt::new("stt-b", SttMode::Normal, &["book a table"]);
    let llm = TestLlm::new("llm", vec![]);
    let tts = TestTts::new("tts");
    let mut call = Call::start(
        settings(),
        chains(
            vec![first.clone(), second.clone()],
            vec![llm.clone()],
            vec![tts],
        ),
    );

    call.speak(1000).await;
    call.agent_turn().await;
    // 1 s of speech is 16,000 samples; the second provider heard all of it again.
    let replayed = second.samples.load(Ordering::SeqCst);
    assert!(replayed >= 16_000, "replayed {replayed} samples");
    assert!(first.samples.load(Ordering::SeqCst) >= 16_000);
    assert_eq!(llm.last_messages()[0].content, "book a table");
    call.finish().await;
}

#[tokio::test(start_paused = true)]
async fn stt_stall_fails_over_after_timeout() {
    let silent = TestStt::new("stt-silent", SttMode::Silent, &[]);
    let backup = TestStt::new("stt-backup", SttMode::Normal, &["is anyone there"]);
    let llm = TestLlm::new("llm", vec![]);
    let tts = TestTts::new("tts");
    let mut call = Call::start(
        settings(),
        chains(
            vec![silent.clone(), backup.clone()],
            vec![llm.clone()],
            vec![tts],
        ),
    );

    call.speak(600).await;
    let asked = now();
    let turn = call
        .wait_for(|e| match e {
            ConversationEvent::Turn(t) if t.role == TurnRole::Caller => Some(t.clone()),
            _ => None,
        })
        .await;
    assert_eq!(turn.text, "is anyone there");
    // End of turn (300 ms) plus the 2 s stall timeout before the backup was asked.
    assert!(now().duration_since(asked) >= Duration::from_millis(2300));
    assert!(backup.samples.load(Ordering::SeqCst) >= 9_600);
    call.agent_turn().await;
    assert_eq!(llm.last_messages()[0].content, "is anyone there");
    call.finish().await;
}

#[tokio::test(start_paused = true)]
async fn llm_stall_mid_reply_keeps_spoken_part() {
    let stt = TestStt::new("stt", SttMode::Normal, &["hello"]);
    let stalling = TestLlm::new(
        "stalling",
        vec![vec![
            Step::Token("First part is here. "),
            Step::Token("Second"),
            Step::Wait(Duration::from_secs(3600)),
        ]],
    );
    let backup = TestLlm::new("backup", vec![]);
    let tts = TestTts::new("tts");
    let mut call = Call::start(
        settings(),
        chains(vec![stt], vec![stalling, backup.clone()], vec![tts.clone()]),
    );
    call.speak(400).await;
    let turn = call.agent_turn().await;
    // The broken-off text is spoken, and no second provider repeats the reply.
    assert_eq!(turn.text, "First part is here. Second");
    assert_eq!(tts.texts(), ["First part is here.", "Second"]);
    assert!(backup.requests.lock().is_empty());
    call.finish().await;
}

#[tokio::test(start_paused = true)]
async fn first_token_timeout_holds_then_falls_back() {
    let stt = TestStt::new("stt", SttMode::Normal, &["hello"]);
    let slow = TestLlm::new(
        "slow",
        vec![vec![Step::Wait(Duration::from_secs(3600)), Step::Done]],
    );
    let backup = TestLlm::new(
        "backup",
        vec![vec![Step::Token("Backup here."), Step::Done]],
    );
    let tts = TestTts::new("tts");
    let mut call = Call::start(
        settings(),
        chains(
            vec![stt],
            vec![slow.clone(), backup.clone()],
            vec![tts.clone()],
        ),
    );

    call.speak(400).await;
    let turn = call.agent_turn().await;
    assert_eq!(turn.text, "Backup here.");
    assert_eq!(tts.texts(), ["One moment please.", "Backup here."]);
    let spoken = tts.spoken.lock().clone();
    // Holding phrase after the 1 s first-token timeout, backup after 2 s more.
    let gap = spoken[1].1.duration_since(spoken[0].1);
    assert!(gap >= Duration::from_secs(2), "gap {gap:?}");
    assert_eq!(slow.requests.lock().len(), 1);
    assert_eq!(backup.requests.lock().len(), 1);
    call.finish().await;
}

#[tokio::test(start_paused = true)]
async fn all_llms_failing_apologise_and_continue() {
    let stt = TestStt::new(
        "stt",
        SttMode::Normal,
        &["first question", "second question"],
    );
    let a = TestLlm::rejecting("llm-a");
    let b = TestLlm::rejecting("llm-b");
    let tts = TestTts::new("tts");
    let mut call = Call::start(
        settings(),
        chains(vec![stt], vec![a.clone(), b.clone()], vec![tts.clone()]),
    );

    call.speak(400).await;
    call.wait_for(|e| {
        matches!(e, ConversationEvent::Turn(t) if t.role == TurnRole::Caller).then_some(())
    })
    .await;
    while call.log.lock().played.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.speak(400).await;
    while call.log.lock().played.len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        tts.texts(),
        [
            "Sorry, something went wrong.",
            "Sorry, something went wrong."
        ]
    );
    assert_eq!(a.requests.lock().len(), 2);
    assert_eq!(b.requests.lock().len(), 2);
    // The apology is filler: the history holds only the caller's words.
    let messages = b.last_messages();
    let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::User]);
    let outcome = call.finish().await;
    assert_eq!(outcome.end, ConversationEnd::MediaTimeout);
}

#[tokio::test(start_paused = true)]
async fn dtmf_while_speaking_reaches_agent() {
    let stt = TestStt::new("stt", SttMode::Normal, &["my account"]);
    let llm = TestLlm::new(
        "llm",
        vec![
            vec![
                Step::Token("Please type your account number and then press hash."),
                Step::Done,
            ],
            vec![Step::Token("Thanks."), Step::Done],
        ],
    );
    let tts = TestTts::new("tts");
    let mut settings = settings();
    settings.sensitive_dtmf = true;
    let mut call = Call::start(settings, chains(vec![stt], vec![llm.clone()], vec![tts]));

    call.speak(400).await;
    while call.log.lock().started.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for digit in ['4', '2', '7'] {
        let _ = call
            .media
            .send(MediaEvent::Dtmf {
                digit,
                at: now(),
                source: crate::audio::DtmfSource::Rtp,
            })
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = call.control.send(ControlInput::Dtmf('#')).await;
    let dtmf_turn = call
        .wait_for(|e| match e {
            ConversationEvent::Turn(t) if t.role == TurnRole::Caller && t.text.contains("dtmf") => {
                Some(t.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(dtmf_turn.text, "[dtmf]");
    while llm.requests.lock().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        llm.last_messages().last().map(|m| m.content.clone()),
        Some("[dtmf 427]".to_owned())
    );
    let outcome = call.finish().await;
    assert!(outcome.turns.iter().all(|t| !t.text.contains("427")));
}

#[tokio::test(start_paused = true)]
async fn dtmf_entry_ends_after_pause() {
    let llm = TestLlm::new("llm", vec![]);
    let tts = TestTts::new("tts");
    let mut call = Call::start(settings(), chains(vec![], vec![llm.clone()], vec![tts]));
    let _ = call.control.send(ControlInput::Dtmf('5')).await;
    let _ = call.control.send(ControlInput::Dtmf('9')).await;
    let turn = call
        .wait_for(|e| match e {
            ConversationEvent::Turn(t) if t.role == TurnRole::Caller => Some(t.clone()),
            _ => None,
        })
        .await;
    assert_eq!(turn.text, "[dtmf 59]");
    call.agent_turn().await;
    assert_eq!(llm.last_messages()[0].content, "[dtmf 59]");
    call.finish().await;
}

#[tokio::test(start_paused = true)]
async fn end_call_waits_for_goodbye() {
    let stt = TestStt::new("stt", SttMode::Normal, &["bye"]);
    let llm = TestLlm::new(
        "llm",
        vec![vec![
            Step::Tool(tools::END_CALL, json!({})),
            Step::Token("Thank you for calling, goodbye."),
            Step::Done,
        ]],
    );
    let tts = TestTts::new("tts");
    let call = Call::start(settings(), chains(vec![stt], vec![llm], vec![tts]));
    call.speak(400).await;
    let log = Arc::clone(&call.log);
    let outcome = tokio::time::timeout(Duration::from_secs(30), call.handle)
        .await
        .expect("loop ends")
        .expect("no panic");
    assert_eq!(outcome.end, ConversationEnd::Hangup);
    assert_eq!(
        log.lock().played.len(),
        1,
        "goodbye played before the hangup"
    );
    let agent = outcome.turns.last().expect("agent turn");
    assert_eq!(agent.text, "Thank you for calling, goodbye.");
}

#[tokio::test(start_paused = true)]
async fn send_dtmf_tool_queues_digits() {
    let stt = TestStt::new("stt", SttMode::Normal, &["dial the desk"]);
    let llm = TestLlm::new(
        "llm",
        vec![vec![
            Step::Token("Dialling."),
            Step::Tool(tools::SEND_DTMF, json!({"digits": "12#"})),
            Step::Done,
        ]],
    );
    let tts = TestTts::new("tts");
    let mut call = Call::start(settings(), chains(vec![stt], vec![llm], vec![tts]));
    call.speak(400).await;
    call.agent_turn().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(call.log.lock().dtmf, "12#");
    call.finish().await;
}

#[tokio::test(start_paused = true)]
async fn transfer_uses_configured_target() {
    let stt = TestStt::new("stt", SttMode::Normal, &["a human please"]);
    let llm = TestLlm::new(
        "llm",
        vec![vec![
            Step::Token("Transferring you now."),
            Step::Tool(tools::TRANSFER_CALL, json!({})),
            Step::Done,
        ]],
    );
    let tts = TestTts::new("tts");
    let mut settings = settings();
    settings.transfer_target = Some("sip:desk@127.0.0.1".to_owned());
    let call = Call::start(settings, chains(vec![stt], vec![llm.clone()], vec![tts]));
    call.speak(400).await;
    let outcome = tokio::time::timeout(Duration::from_secs(30), call.handle)
        .await
        .expect("loop ends")
        .expect("no panic");
    assert_eq!(
        outcome.end,
        ConversationEnd::Transfer {
            target: "sip:desk@127.0.0.1".to_owned()
        }
    );
    let tools: Vec<String> = llm.requests.lock()[0]
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert!(tools.contains(&tools::TRANSFER_CALL.to_owned()));
}

#[tokio::test(start_paused = true)]
async fn transfer_without_target_is_rejected() {
    let stt = TestStt::new("stt", SttMode::Normal, &["a human please", "never mind"]);
    let llm = TestLlm::new(
        "llm",
        vec![vec![
            Step::Token("Let me transfer you."),
            Step::Tool(
                tools::TRANSFER_CALL,
                json!({"target": "sip:evil@127.0.0.1"}),
            ),
            Step::Done,
        ]],
    );
    let tts = TestTts::new("tts");
    let mut call = Call::start(settings(), chains(vec![stt], vec![llm.clone()], vec![tts]));
    call.speak(400).await;
    call.agent_turn().await;
    call.speak(400).await;
    call.agent_turn().await;
    let messages = llm.last_messages();
    let result = messages
        .iter()
        .find(|m| m.role == Role::Tool)
        .expect("tool result in history");
    assert!(result.content.starts_with("rejected"), "{}", result.content);
    let outcome = call.finish().await;
    assert_eq!(outcome.end, ConversationEnd::MediaTimeout);
}

#[tokio::test(start_paused = true)]
async fn media_close_and_timeout_end_the_loop() {
    let call = Call::start(settings(), ProviderChains::default());
    assert_eq!(call.finish().await.end, ConversationEnd::MediaTimeout);

    let (media, media_rx) = mpsc::channel(4);
    let (playout, _playout_rx) = mpsc::channel(4);
    let (_control, control_rx) = mpsc::channel(4);
    let (events, _events_rx) = mpsc::channel(4);
    drop(media);
    let outcome = run(
        settings(),
        ProviderChains::default(),
        media_rx,
        playout,
        control_rx,
        events,
    )
    .await;
    assert_eq!(outcome.end, ConversationEnd::MediaClosed);
}

#[tokio::test(start_paused = true)]
async fn max_reply_caps_audio() {
    let stt = TestStt::new("stt", SttMode::Normal, &["talk a lot"]);
    let llm = TestLlm::new(
        "llm",
        vec![vec![
            Step::Token("One two three four five. "),
            Step::Token("Six seven eight nine ten. "),
            Step::Token("Eleven twelve."),
            Step::Done,
        ]],
    );
    let tts = TestTts::new("tts");
    let mut settings = settings();
    // Five words of test speech last one second.
    settings.max_reply = Duration::from_millis(1500);
    let mut call = Call::start(settings, chains(vec![stt], vec![llm], vec![tts.clone()]));
    call.speak(400).await;
    call.agent_turn().await;
    assert_eq!(
        tts.texts(),
        ["One two three four five.", "Six seven eight nine ten."]
    );
    call.finish().await;
}

#[tokio::test(start_paused = true)]
async fn hold_pauses_and_resumes_stt() {
    let stt = TestStt::new("stt", SttMode::Normal, &[]);
    let call = Call::start(settings(), chains(vec![stt.clone()], vec![], vec![]));
    let _ = call.control.send(ControlInput::Hold(true)).await;
    let _ = call.control.send(ControlInput::Hold(true)).await;
    let _ = call.control.send(ControlInput::Hold(false)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*stt.controls.lock(), ["pause", "resume"]);
    call.finish().await;
}

#[tokio::test(start_paused = true)]
async fn unread_events_never_stall_the_loop() {
    let stt = TestStt::new("stt", SttMode::Normal, &["first", "second"]);
    let llm = TestLlm::new("llm", vec![]);
    let tts = TestTts::new("tts");
    let mut settings = settings();
    settings.greeting = "Hello.".to_owned();
    // Nobody reads the single event slot, so every event after the first is dropped.
    let call =
        Call::start_with_events(settings, chains(vec![stt], vec![llm.clone()], vec![tts]), 1);
    call.speak(400).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    call.speak(400).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(llm.requests.lock().len(), 2);
    let outcome = call.finish().await;
    let texts: Vec<&str> = outcome.turns.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["Hello.", "first", "Okay.", "second", "Okay."]);
}

#[test]
fn heard_words_follow_played_share() {
    let text = "one two three four";
    assert_eq!(heard::heard_words(text, 0, 100), "");
    assert_eq!(heard::heard_words(text, 50, 100), "one two");
    assert_eq!(heard::heard_words(text, 99, 100), "one two three");
    assert_eq!(heard::heard_words(text, 100, 100), text);
    assert_eq!(heard::heard_words(text, 500, 100), text);
    assert_eq!(heard::heard_words(text, 10, 0), "");
}

#[test]
fn backchannel_needs_short_known_words() {
    let list = ["mhm", "uh-huh", "okay", "yeah"].map(str::to_owned);
    assert!(heard::is_backchannel("Mhm.", &list));
    assert!(heard::is_backchannel("yeah, okay", &list));
    assert!(heard::is_backchannel("Uh-huh!", &list));
    assert!(!heard::is_backchannel("", &list));
    assert!(!heard::is_backchannel("yeah but wait", &list));
    assert!(!heard::is_backchannel("okay okay okay okay", &list));
}
