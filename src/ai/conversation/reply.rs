//! One spoken reply as a task: the language-model side streams tokens into the sentence
//! splitter while the text-to-speech side synthesises each finished sentence into its own
//! playout segment, so synthesis of sentence N+1 never waits for sentence N to play.
//!
//! The task reports to the loop on an unbounded channel, and each report about queued audio is
//! sent right after the playout command with no await in between. Aborting the task therefore
//! leaves the loop with an exact list of what reached the playout queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::timeout_at;

use crate::ai::metrics;
use crate::ai::provider::{
    ChatRequest, LlmEvent, LlmProvider, ProviderError, ToolCall, TtsProvider, VoiceOptions,
};
use crate::ai::sentence::SentenceSplitter;
use crate::ai::tools;
use crate::audio::{PlayoutCommand, SAMPLE_RATE, SegmentId};

/// Sentences queued between the language model and text-to-speech.
const SENTENCE_QUEUE: usize = 32;

/// What a segment carries, which decides whether it enters the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SegmentKind {
    /// Words of the reply.
    Reply,
    /// The holding phrase or the apology: filler, not part of the history.
    Filler,
}

/// Source of a reply's words.
pub(super) enum ReplySource {
    /// Fixed text (greeting, apology).
    Fixed(String),
    /// A language-model request, streamed through the chain.
    Llm(ChatRequest),
}

/// Everything a reply task needs.
pub(super) struct ReplyJob {
    pub source: ReplySource,
    pub llm: Vec<Arc<dyn LlmProvider>>,
    pub tts: Vec<Arc<dyn TtsProvider>>,
    pub voice: VoiceOptions,
    pub interruptible: bool,
    pub first_token_timeout: Duration,
    pub stall_timeout: Duration,
    /// Cap on the reply's audio, in samples.
    // NOTE: `max_reply` caps the duration of the reply's audio, not how long the model may
    // take to write it; the stall timeout bounds each wait for a token instead.
    pub max_samples: u64,
    pub holding_phrase: String,
    pub apology: String,
    pub segment_ids: Arc<AtomicU64>,
    pub playout: mpsc::Sender<PlayoutCommand>,
    pub call_id: String,
}

/// Reports from a reply task, in the order things happened.
#[derive(Debug)]
pub(super) enum ReplyEvent {
    /// The language-model request went out.
    Requested { at: Instant },
    /// The first token or tool call arrived.
    FirstToken { at: Instant },
    /// The splitter produced the first sentence.
    FirstSentence { at: Instant },
    /// Synthesis of a segment started.
    Segment {
        id: SegmentId,
        text: String,
        kind: SegmentKind,
        at: Instant,
    },
    /// Audio of a segment reached the playout queue; `samples` counts all of it so far.
    Audio {
        id: SegmentId,
        samples: u64,
        at: Instant,
    },
    /// The segment is complete in the playout queue.
    SegmentEnd { id: SegmentId },
    /// The model called a tool.
    Tool(ToolCall),
    /// The reply is fully queued (or gave up); nothing follows.
    Done,
}

/// Item for the text-to-speech side.
enum Speech {
    Text { text: String, kind: SegmentKind },
    Dtmf(String),
}

type Reports = mpsc::UnboundedSender<ReplyEvent>;

/// Runs the reply to its end. Meant to be spawned; aborting it drops the provider streams.
pub(super) async fn run(job: ReplyJob, reports: Reports) {
    let (speech_tx, speech_rx) = mpsc::channel(SENTENCE_QUEUE);
    let ReplyJob {
        source,
        llm,
        tts,
        voice,
        interruptible,
        first_token_timeout,
        stall_timeout,
        max_samples,
        holding_phrase,
        apology,
        segment_ids,
        playout,
        call_id,
    } = job;

    let speaker = Speaker {
        tts,
        voice,
        interruptible,
        stall_timeout,
        max_samples,
        segment_ids,
        playout,
        reports: reports.clone(),
        current: 0,
        total_samples: 0,
    };
    let writer = async {
        match source {
            ReplySource::Fixed(text) => {
                let kind = SegmentKind::Reply;
                let _ = speech_tx.send(Speech::Text { text, kind }).await;
            }
            ReplySource::Llm(request) => {
                let writer = Writer {
                    llm: &llm,
                    first_token_timeout,
                    stall_timeout,
                    holding_phrase: &holding_phrase,
                    holding_spoken: false,
                    apology: &apology,
                    speech: &speech_tx,
                    reports: &reports,
                    call_id: &call_id,
                };
                writer.run(request).await;
            }
        }
        drop(speech_tx);
    };
    tokio::join!(writer, speaker.run(speech_rx));
    let _ = reports.send(ReplyEvent::Done);
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The language-model side: the chain with fallback, the holding phrase and the splitter.
struct Writer<'a> {
    llm: &'a [Arc<dyn LlmProvider>],
    first_token_timeout: Duration,
    stall_timeout: Duration,
    holding_phrase: &'a str,
    holding_spoken: bool,
    apology: &'a str,
    speech: &'a mpsc::Sender<Speech>,
    reports: &'a Reports,
    call_id: &'a str,
}

/// How one provider's attempt ended.
enum Attempt {
    /// The reply completed, or the speaker stopped taking sentences.
    Finished,
    /// The provider failed after some output; what was said stays and the reply ends.
    FailedAfterOutput,
    /// The provider failed before any output; the next one may try.
    FailedEarly,
}

impl Writer<'_> {
    async fn run(mut self, request: ChatRequest) {
        let _ = self.reports.send(ReplyEvent::Requested { at: now() });
        for (index, provider) in self.llm.iter().enumerate() {
            match self.attempt(provider.as_ref(), request.clone()).await {
                Attempt::Finished => return,
                Attempt::FailedAfterOutput => {
                    metrics::count_failure("llm", provider.name());
                    return;
                }
                Attempt::FailedEarly => {
                    metrics::count_failure("llm", provider.name());
                    if index + 1 < self.llm.len() {
                        metrics::count_fallback("llm", provider.name());
                        tracing::info!(
                            call_id = self.call_id,
                            provider = provider.name(),
                            next = self.llm[index + 1].name(),
                            "language model failed, trying the next one"
                        );
                    }
                }
            }
        }
        metrics::CHAIN_EXHAUSTED.with_label_values(&["llm"]).inc();
        tracing::warn!(call_id = self.call_id, "every language model failed");
        self.say(self.apology, SegmentKind::Filler).await;
    }

    async fn attempt(&mut self, provider: &dyn LlmProvider, request: ChatRequest) -> Attempt {
        let started = tokio::time::Instant::now();
        let mut deadline = started + self.first_token_timeout;
        let request = provider.stream(request);
        tokio::pin!(request);
        let mut stream = loop {
            match timeout_at(deadline, &mut request).await {
                Ok(Ok(stream)) => break stream,
                Ok(Err(err)) => return self.failed(provider, &err),
                Err(_) => {
                    if !self.extend_for_holding(&mut deadline).await {
                        return self.timed_out(provider, started);
                    }
                }
            }
        };

        let mut splitter = SentenceSplitter::new();
        let mut output = false;
        loop {
            let event = match timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(event))) => event,
                Ok(Some(Err(err))) => {
                    self.failed(provider, &err);
                    return self.end_after(output, &mut splitter).await;
                }
                Ok(None) => {
                    let err = ProviderError::Protocol {
                        provider: provider.name(),
                        message: "stream ended without done".to_owned(),
                    };
                    self.failed(provider, &err);
                    return self.end_after(output, &mut splitter).await;
                }
                Err(_) if !output => {
                    if self.extend_for_holding(&mut deadline).await {
                        continue;
                    }
                    return self.timed_out(provider, started);
                }
                Err(_) => {
                    self.timed_out(provider, started);
                    return self.end_after(output, &mut splitter).await;
                }
            };
            if !output {
                output = true;
                let _ = self.reports.send(ReplyEvent::FirstToken { at: now() });
            }
            deadline = tokio::time::Instant::now() + self.stall_timeout;
            match event {
                LlmEvent::Token(token) => {
                    for sentence in splitter.push(&token) {
                        if !self.say(&sentence, SegmentKind::Reply).await {
                            return Attempt::Finished;
                        }
                    }
                }
                LlmEvent::ToolCall(call) => {
                    if call.name == tools::SEND_DTMF
                        && let Some(digits) = call.arguments.get("digits").and_then(|d| d.as_str())
                    {
                        let _ = self.speech.send(Speech::Dtmf(digits.to_owned())).await;
                    }
                    let _ = self.reports.send(ReplyEvent::Tool(call));
                }
                LlmEvent::Done => {
                    if let Some(rest) = splitter.finish() {
                        self.say(&rest, SegmentKind::Reply).await;
                    }
                    return Attempt::Finished;
                }
            }
        }
    }

    /// Speaks the holding phrase once and moves the deadline by the stall timeout. Returns false
    /// when the holding phrase was already spoken, so the provider has run out of time.
    async fn extend_for_holding(&mut self, deadline: &mut tokio::time::Instant) -> bool {
        if self.holding_spoken {
            return false;
        }
        self.holding_spoken = true;
        if !self.holding_phrase.is_empty() {
            self.say(self.holding_phrase, SegmentKind::Filler).await;
        }
        *deadline = tokio::time::Instant::now() + self.stall_timeout;
        true
    }

    fn failed(&self, provider: &dyn LlmProvider, err: &ProviderError) -> Attempt {
        tracing::warn!(call_id = self.call_id, provider = provider.name(), error = %err, "language model failed");
        Attempt::FailedEarly
    }

    fn timed_out(&self, provider: &dyn LlmProvider, started: tokio::time::Instant) -> Attempt {
        tracing::warn!(
            call_id = self.call_id,
            provider = provider.name(),
            waited_ms = started.elapsed().as_millis() as u64,
            "language model stalled"
        );
        Attempt::FailedEarly
    }

    /// Ends an attempt that broke off: speaks what the splitter holds when output was already
    /// spoken, because repeating the reply from another provider would say it twice.
    async fn end_after(&mut self, output: bool, splitter: &mut SentenceSplitter) -> Attempt {
        if !output {
            return Attempt::FailedEarly;
        }
        if let Some(rest) = splitter.finish() {
            self.say(&rest, SegmentKind::Reply).await;
        }
        Attempt::FailedAfterOutput
    }

    /// Queues a sentence for synthesis; false once the speaker stopped (reply cap reached).
    async fn say(&self, text: &str, kind: SegmentKind) -> bool {
        if self.reports_first_sentence(kind) {
            let _ = self.reports.send(ReplyEvent::FirstSentence { at: now() });
        }
        let text = text.to_owned();
        self.speech.send(Speech::Text { text, kind }).await.is_ok()
    }

    fn reports_first_sentence(&self, kind: SegmentKind) -> bool {
        // The loop keeps only the first report, so every reply sentence may send one.
        kind == SegmentKind::Reply
    }
}

/// The text-to-speech side: one segment per sentence, in order, with fallback.
struct Speaker {
    tts: Vec<Arc<dyn TtsProvider>>,
    voice: VoiceOptions,
    interruptible: bool,
    stall_timeout: Duration,
    max_samples: u64,
    segment_ids: Arc<AtomicU64>,
    playout: mpsc::Sender<PlayoutCommand>,
    reports: Reports,
    /// Index of the provider that worked last.
    current: usize,
    total_samples: u64,
}

impl Speaker {
    async fn run(mut self, mut speech: mpsc::Receiver<Speech>) {
        while let Some(item) = speech.recv().await {
            match item {
                Speech::Dtmf(digits) => {
                    if self
                        .playout
                        .send(PlayoutCommand::Dtmf(digits))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Speech::Text { text, kind } => {
                    if !self.speak(&text, kind).await {
                        // Closing the receiver tells the writer to stop.
                        return;
                    }
                }
            }
        }
    }

    /// Synthesises one segment; false when the reply must stop (cap reached or media gone).
    async fn speak(&mut self, text: &str, kind: SegmentKind) -> bool {
        let id = SegmentId(self.segment_ids.fetch_add(1, Ordering::Relaxed));
        let _ = self.reports.send(ReplyEvent::Segment {
            id,
            text: text.to_owned(),
            kind,
            at: now(),
        });
        let mut samples = 0u64;
        let mut keep_going = true;
        while self.current < self.tts.len() {
            let provider = Arc::clone(&self.tts[self.current]);
            match self
                .stream_segment(provider.as_ref(), text, id, &mut samples)
                .await
            {
                Ok(more) => {
                    keep_going = more;
                    break;
                }
                Err(err) => {
                    tracing::warn!(provider = provider.name(), error = %err, "text-to-speech failed");
                    metrics::count_failure("tts", provider.name());
                    if samples > 0 {
                        // Part of the sentence is queued; a second voice would repeat it.
                        break;
                    }
                    if self.current + 1 < self.tts.len() {
                        metrics::count_fallback("tts", provider.name());
                    } else {
                        metrics::CHAIN_EXHAUSTED.with_label_values(&["tts"]).inc();
                    }
                    self.current += 1;
                }
            }
        }
        if self.current >= self.tts.len() {
            // Every voice failed: try the chain again from the start for the next sentence.
            self.current = 0;
        }
        if self
            .playout
            .send(PlayoutCommand::EndSegment(id))
            .await
            .is_err()
        {
            return false;
        }
        let _ = self.reports.send(ReplyEvent::SegmentEnd { id });
        keep_going
    }

    /// Streams one provider's audio for a segment into playout. Returns whether the reply may
    /// go on (false once the cap is reached or the playout queue is gone).
    async fn stream_segment(
        &mut self,
        provider: &dyn TtsProvider,
        text: &str,
        id: SegmentId,
        samples: &mut u64,
    ) -> Result<bool, ProviderError> {
        let timed_out = || ProviderError::Timeout {
            provider: provider.name(),
            after: self.stall_timeout,
        };
        let request = provider.synthesize(text, &self.voice);
        let mut stream = tokio::time::timeout(self.stall_timeout, request)
            .await
            .map_err(|_| timed_out())??;
        loop {
            let chunk = tokio::time::timeout(self.stall_timeout, stream.next())
                .await
                .map_err(|_| timed_out())?;
            let mut pcm = match chunk {
                None => return Ok(true),
                Some(chunk) => chunk?,
            };
            let room = self.max_samples.saturating_sub(self.total_samples);
            let capped = pcm.len() as u64 >= room;
            pcm.truncate(room as usize);
            let len = pcm.len() as u64;
            if len > 0 {
                let command = PlayoutCommand::Audio {
                    segment: id,
                    pcm,
                    interruptible: self.interruptible,
                };
                if self.playout.send(command).await.is_err() {
                    return Ok(false);
                }
                *samples += len;
                self.total_samples += len;
                let _ = self.reports.send(ReplyEvent::Audio {
                    id,
                    samples: *samples,
                    at: now(),
                });
            }
            if capped {
                tracing::info!(
                    max_secs = self.max_samples / u64::from(SAMPLE_RATE),
                    "reply reached its maximum length"
                );
                return Ok(false);
            }
        }
    }
}
