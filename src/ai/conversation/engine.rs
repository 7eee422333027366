//! The state of one running conversation and its event dispatch.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::heard::{ActiveReply, SegmentInfo, Trace, is_backchannel, join_words};
use super::reply::{self, ReplyEvent, ReplyJob, ReplySource, SegmentKind};
use super::stt::{Failover, SttChain};
use super::{
    ControlInput, ConversationEnd, ConversationEvent, ConversationOutcome, ConversationSettings,
    ProviderChains,
};
use crate::ai::metrics;
use crate::ai::provider::{ChatMessage, ChatRequest, Role, SttEvent, SttOptions, ToolCall};
use crate::ai::tools;
use crate::audio::{BargeIn, MediaEvent, PlayoutCommand, SAMPLE_RATE, SegmentId};
use crate::tenancy::{TurnRecord, TurnRole};

/// Pause after the last DTMF digit that completes an entry without `#`.
pub(super) const DTMF_PAUSE: Duration = Duration::from_millis(1500);
/// Caller speech over paused AI audio that is too long for a backchannel.
const BACKCHANNEL_MAX_SPEECH: Duration = Duration::from_millis(1500);
/// Extra wait beyond the queued audio for the last segment of a goodbye to play.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A barge-in in pause mode waiting for the transcript to tell a backchannel from an
/// interruption.
struct PendingBargeIn {
    barge_in: BargeIn,
    /// When speech still going on is too long for a backchannel.
    deadline: tokio::time::Instant,
}

/// A user message waiting for the agent.
struct UserInput {
    /// Text sent to the agent.
    message: String,
    trace: Trace,
}

/// What the loop waits for next.
enum Wake {
    Media(Option<MediaEvent>),
    Control(Option<ControlInput>),
    Stt(SttEvent),
    Reply(Option<ReplyEvent>),
    Timer,
}

/// One call's conversation.
pub(super) struct Conversation {
    settings: ConversationSettings,
    chains: ProviderChains,
    playout: mpsc::Sender<PlayoutCommand>,
    events: mpsc::Sender<ConversationEvent>,
    stt: SttChain,
    segment_ids: Arc<AtomicU64>,
    history: Vec<ChatMessage>,
    turns: Vec<TurnRecord>,

    speaking: bool,
    utterance_start: Option<DateTime<Utc>>,
    speech_end: Option<Instant>,
    end_of_turn_at: Option<tokio::time::Instant>,
    final_due: Option<tokio::time::Instant>,
    caller_text: String,
    /// The AI was talking when this utterance began.
    over_ai: bool,

    reply: Option<ActiveReply>,
    inputs: VecDeque<UserInput>,
    barge_in: Option<PendingBargeIn>,
    dtmf: String,
    dtmf_due: Option<tokio::time::Instant>,
    end: Option<ConversationEnd>,
    end_due: Option<tokio::time::Instant>,
}

impl Conversation {
    pub fn new(
        settings: ConversationSettings,
        chains: ProviderChains,
        playout: mpsc::Sender<PlayoutCommand>,
        events: mpsc::Sender<ConversationEvent>,
    ) -> Self {
        let options = SttOptions {
            language: settings.language.clone(),
            keywords: settings.keywords.clone(),
            call_id: settings.call_id.clone(),
        };
        let stt = SttChain::new(chains.stt.clone(), options);
        Self {
            settings,
            chains,
            playout,
            events,
            stt,
            segment_ids: Arc::new(AtomicU64::new(1)),
            history: Vec::new(),
            turns: Vec::new(),
            speaking: false,
            utterance_start: None,
            speech_end: None,
            end_of_turn_at: None,
            final_due: None,
            caller_text: String::new(),
            over_ai: false,
            reply: None,
            inputs: VecDeque::new(),
            barge_in: None,
            dtmf: String::new(),
            dtmf_due: None,
            end: None,
            end_due: None,
        }
    }

    /// Runs until the media closes or the agent ends the call.
    pub async fn run(
        mut self,
        mut media: mpsc::Receiver<MediaEvent>,
        mut control: mpsc::Receiver<ControlInput>,
    ) -> ConversationOutcome {
        tracing::info!(call_id = %self.settings.call_id, chains = ?self.chains, "conversation started");
        if !self.settings.greeting.is_empty() {
            let greeting = self.settings.greeting.clone();
            let interruptible = !self.settings.non_interruptible_greeting;
            self.start_reply(
                ReplySource::Fixed(greeting),
                Trace::default(),
                interruptible,
            );
        }
        let mut control_open = true;
        let end = loop {
            let wake = self.next_wake(&mut media, &mut control, control_open).await;
            let end = match wake {
                Wake::Media(None) => Some(ConversationEnd::MediaClosed),
                Wake::Media(Some(event)) => self.on_media(event).await,
                Wake::Control(None) => {
                    control_open = false;
                    None
                }
                Wake::Control(Some(input)) => {
                    self.on_control(input);
                    None
                }
                Wake::Stt(event) => {
                    self.on_stt(event).await;
                    None
                }
                Wake::Reply(event) => {
                    self.on_reply(event);
                    None
                }
                Wake::Timer => self.on_timer().await,
            };
            if let Some(end) = end.or_else(|| self.ready_to_end()) {
                break end;
            }
            self.start_next_input();
        };
        if let Some(reply) = self.reply.take() {
            // The call ended mid-reply: keep what the caller heard, marked as cut short.
            let spoken = reply.spoken_text();
            self.record_agent_turn(reply, spoken, true);
        }
        tracing::info!(call_id = %self.settings.call_id, ?end, turns = self.turns.len(), "conversation ended");
        ConversationOutcome {
            turns: self.turns,
            end,
        }
    }

    async fn next_wake(
        &mut self,
        media: &mut mpsc::Receiver<MediaEvent>,
        control: &mut mpsc::Receiver<ControlInput>,
        control_open: bool,
    ) -> Wake {
        let deadline = [
            self.end_of_turn_at,
            self.final_due,
            self.barge_in.as_ref().map(|b| b.deadline),
            self.dtmf_due,
            self.end_due,
        ]
        .into_iter()
        .flatten()
        .min();
        let stt = &mut self.stt;
        let reply = &mut self.reply;
        tokio::select! {
            biased;
            event = media.recv() => Wake::Media(event),
            input = control.recv(), if control_open => Wake::Control(input),
            event = async {
                match reply {
                    Some(reply) if reply.reports_open => reply.reports.recv().await,
                    _ => std::future::pending().await,
                }
            } => Wake::Reply(event),
            event = stt.next_event() => Wake::Stt(event),
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => Wake::Timer,
        }
    }

    fn emit(&self, event: ConversationEvent) {
        // A slow reader loses events rather than stalling the call.
        if self.events.try_send(event).is_err() {
            tracing::debug!(call_id = %self.settings.call_id, "conversation event dropped");
        }
    }

    fn send_playout(&self, command: PlayoutCommand) {
        // The media path drains its queue every 20 ms tick; a full queue means it is gone or
        // badly behind, and the command is lost either way.
        if let Err(err) = self.playout.try_send(command) {
            tracing::warn!(call_id = %self.settings.call_id, error = %err, "playout command dropped");
        }
    }

    async fn on_media(&mut self, event: MediaEvent) -> Option<ConversationEnd> {
        match event {
            MediaEvent::Audio(frame) => self.stt.push_audio(&frame[..]),
            MediaEvent::SpeechStarted { .. } => self.on_speech_started(),
            MediaEvent::SpeechEnded { end } => self.on_speech_ended(end),
            MediaEvent::BargeIn(barge_in) => self.on_barge_in(barge_in),
            MediaEvent::SegmentStarted { segment, at } => self.on_segment_started(segment, at),
            MediaEvent::SegmentPlayed { segment, samples } => {
                self.on_segment_played(segment, samples)
            }
            MediaEvent::Dtmf { digit, .. } => self.on_dtmf(digit),
            MediaEvent::Timeout => return Some(ConversationEnd::MediaTimeout),
        }
        None
    }

    fn on_control(&mut self, input: ControlInput) {
        match input {
            ControlInput::Dtmf(digit) => self.on_dtmf(digit),
            ControlInput::Hold(on_hold) => {
                tracing::debug!(call_id = %self.settings.call_id, on_hold, "hold changed");
                self.stt.set_paused(on_hold);
                if on_hold {
                    self.speaking = false;
                    self.end_of_turn_at = None;
                }
            }
        }
    }

    fn on_speech_started(&mut self) {
        self.speaking = true;
        self.end_of_turn_at = None;
        if self.utterance_start.is_none() {
            self.utterance_start = Some(Utc::now());
            self.over_ai = self.reply.is_some();
            self.stt.utterance_started();
        }
    }

    fn on_speech_ended(&mut self, end: Instant) {
        self.speaking = false;
        self.speech_end = Some(end);
        // In pause mode the media path pauses at the onset and leaves the minimum interruption
        // to the loop: shorter speech is noise, and playout resumes.
        if let Some(pending) = &self.barge_in
            && end.saturating_duration_since(pending.barge_in.onset)
                < self.settings.min_interruption
        {
            self.settle_barge_in(false);
        }
        // TODO: the wait starts at the VAD's speech end, so it adds to the VAD's end window.
        // The LLM does not start early on a stable partial or on the STT's own endpointing.
        let wait = if self.barge_in.is_some() {
            // The AI is paused waiting for this decision: ask for the transcript at once.
            Duration::ZERO
        } else {
            self.settings.end_of_turn
        };
        self.end_of_turn_at = Some(tokio::time::Instant::now() + wait);
    }

    fn on_barge_in(&mut self, barge_in: BargeIn) {
        tracing::debug!(call_id = %self.settings.call_id, paused = barge_in.paused, "barge-in");
        self.end = None;
        self.end_due = None;
        let Some(reply) = &mut self.reply else {
            // Nothing of ours was playing; release the media path's pause or fence.
            self.send_playout(PlayoutCommand::Clear);
            return;
        };
        // Dropping the task drops the language-model and text-to-speech streams.
        reply.task.abort();
        reply.generating = false;
        // Reports already sent describe audio that reached the playout queue, and the heard
        // text depends on their sample counts. Tool calls of the cut reply are dropped.
        let mut late = Vec::new();
        while let Ok(event) = reply.reports.try_recv() {
            if !matches!(event, ReplyEvent::Tool(_) | ReplyEvent::Done) {
                late.push(event);
            }
        }
        for event in late {
            self.on_reply(Some(event));
        }
        let Some(reply) = &mut self.reply else {
            return;
        };
        let open: Vec<SegmentId> = reply.segments.iter().map(|s| s.id).collect();
        // Segments cut short by the abort get their end, so a resumed queue can finish them.
        for id in open {
            self.send_playout(PlayoutCommand::EndSegment(id));
        }
        if barge_in.paused {
            // TODO: a backchannel resumes only the audio queued before the barge-in, because the
            // reply task was cancelled at once; the rest of a long reply is lost.
            let deadline = tokio::time::Instant::now() + BACKCHANNEL_MAX_SPEECH;
            self.barge_in = Some(PendingBargeIn { barge_in, deadline });
        } else {
            // Acknowledges the barge-in so the media path lifts its fence.
            self.send_playout(PlayoutCommand::Clear);
            self.finish_interrupted(&barge_in);
        }
    }

    /// Settles a paused barge-in: `Resume` for a backchannel or noise, `Clear` otherwise.
    fn settle_barge_in(&mut self, interrupt: bool) {
        let Some(pending) = self.barge_in.take() else {
            return;
        };
        if interrupt {
            self.send_playout(PlayoutCommand::Clear);
            self.finish_interrupted(&pending.barge_in);
        } else {
            tracing::debug!(call_id = %self.settings.call_id, "backchannel, resuming playout");
            self.send_playout(PlayoutCommand::Resume);
            self.complete_reply_if_played();
        }
    }

    fn finish_interrupted(&mut self, barge_in: &BargeIn) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        let heard_text = reply.heard_text(barge_in);
        let cut = barge_in
            .last_ai_packet
            .map(|last| last.saturating_duration_since(barge_in.onset))
            .unwrap_or_default();
        metrics::observe_barge_in_cut(cut.as_secs_f64());
        self.emit(ConversationEvent::BargeIn {
            heard_text: heard_text.clone(),
            cut,
        });
        self.record_agent_turn(reply, heard_text, true);
    }

    fn on_segment_started(&mut self, segment: SegmentId, at: Instant) {
        let Some(reply) = &mut self.reply else {
            return;
        };
        if let Some(info) = reply.segments.iter_mut().find(|s| s.id == segment) {
            info.started = true;
        }
        let first_reply_segment = reply
            .segments
            .iter()
            .find(|s| s.kind == SegmentKind::Reply)
            .map(|s| s.id);
        if first_reply_segment == Some(segment) && reply.trace.first_rtp.is_none() {
            reply.trace.first_rtp = Some(at);
        }
    }

    fn on_segment_played(&mut self, segment: SegmentId, samples: u64) {
        let Some(reply) = &mut self.reply else {
            return;
        };
        if let Some(info) = reply.segments.iter_mut().find(|s| s.id == segment) {
            info.played = true;
            info.samples = info.samples.max(samples);
        }
        self.complete_reply_if_played();
    }

    fn complete_reply_if_played(&mut self) {
        if !self.reply.as_ref().is_some_and(ActiveReply::finished) || self.barge_in.is_some() {
            return;
        }
        if let Some(reply) = self.reply.take() {
            let text = reply.full_text();
            self.record_agent_turn(reply, text, false);
        }
    }

    fn on_dtmf(&mut self, digit: char) {
        if self.settings.sensitive_dtmf {
            tracing::debug!(call_id = %self.settings.call_id, "dtmf digit");
        } else {
            tracing::debug!(call_id = %self.settings.call_id, %digit, "dtmf digit");
        }
        if digit == '#' && !self.dtmf.is_empty() {
            self.complete_dtmf();
            return;
        }
        self.dtmf.push(digit);
        self.dtmf_due = Some(tokio::time::Instant::now() + DTMF_PAUSE);
    }

    fn complete_dtmf(&mut self) {
        self.dtmf_due = None;
        let digits = std::mem::take(&mut self.dtmf);
        if digits.is_empty() {
            return;
        }
        let message = format!("[dtmf {digits}]");
        let recorded = if self.settings.sensitive_dtmf {
            "[dtmf]".to_owned()
        } else {
            message.clone()
        };
        self.record_caller_turn(recorded, Utc::now());
        self.inputs.push_back(UserInput {
            message,
            trace: Trace::default(),
        });
    }

    async fn on_stt(&mut self, event: SttEvent) {
        match event {
            SttEvent::Partial(text) => {
                self.emit(ConversationEvent::Transcript {
                    role: TurnRole::Caller,
                    text: join_words([self.caller_text.clone(), text.clone()]),
                    is_final: false,
                });
                if self.barge_in.is_some() && !self.could_be_backchannel(&text) {
                    self.settle_barge_in(true);
                }
            }
            SttEvent::Final(text) => {
                self.caller_text = join_words([std::mem::take(&mut self.caller_text), text]);
                if self.final_due.is_some() {
                    self.complete_caller_turn();
                }
            }
            SttEvent::Reconnecting => {
                tracing::debug!(call_id = %self.settings.call_id, provider = self.stt.provider_name(), "speech-to-text reconnecting");
            }
            SttEvent::Failed(err) => {
                tracing::warn!(call_id = %self.settings.call_id, error = %err, "speech-to-text failed");
                self.stt_fail_over();
            }
        }
    }

    fn could_be_backchannel(&self, text: &str) -> bool {
        text.trim().is_empty() || is_backchannel(text, &self.settings.backchannels)
    }

    fn stt_fail_over(&mut self) {
        match self.stt.fail_over() {
            Failover::Next => {
                if self.final_due.is_some() {
                    self.final_due =
                        Some(tokio::time::Instant::now() + self.settings.stall_timeout);
                }
            }
            Failover::Exhausted => {
                self.final_due = None;
                self.caller_text.clear();
                self.utterance_start = None;
                self.settle_barge_in(true);
                let apology = self.settings.apology.clone();
                if !apology.is_empty() && self.reply.is_none() {
                    self.start_reply(ReplySource::Fixed(apology), Trace::default(), true);
                }
            }
        }
    }

    /// Uses the final transcript of the utterance that just ended.
    fn complete_caller_turn(&mut self) {
        self.final_due = None;
        let text = std::mem::take(&mut self.caller_text).trim().to_owned();
        let started = self.utterance_start.take().unwrap_or_else(Utc::now);
        let over_ai = std::mem::replace(&mut self.over_ai, false);
        self.stt.utterance_done();

        if self.barge_in.is_some() {
            let interrupt = !self.could_be_backchannel(&text);
            self.settle_barge_in(interrupt);
            if !interrupt {
                return;
            }
        }
        if text.is_empty() {
            tracing::debug!(call_id = %self.settings.call_id, "empty transcript ignored");
            return;
        }
        // A backchannel while the AI talks acknowledges it and is not a turn.
        if over_ai && self.reply.is_some() && is_backchannel(&text, &self.settings.backchannels) {
            tracing::debug!(call_id = %self.settings.call_id, "backchannel ignored");
            return;
        }
        self.emit(ConversationEvent::Transcript {
            role: TurnRole::Caller,
            text: text.clone(),
            is_final: true,
        });
        self.record_caller_turn(text.clone(), started);
        let trace = Trace {
            speech_end: self.speech_end,
            stt_final: Some(now()),
            ..Trace::default()
        };
        self.inputs.push_back(UserInput {
            message: text,
            trace,
        });
    }

    async fn on_timer(&mut self) -> Option<ConversationEnd> {
        let now = tokio::time::Instant::now();
        if self.end_of_turn_at.is_some_and(|at| at <= now) {
            self.end_of_turn_at = None;
            if self.utterance_start.is_some() {
                self.stt.finalize();
                self.final_due = Some(now + self.settings.stt_final_timeout);
            } else if self.barge_in.is_some() {
                // Speech too short to reach the speech-to-text: noise, not an interruption.
                self.settle_barge_in(false);
            }
        }
        if self.final_due.is_some_and(|at| at <= now) {
            tracing::warn!(call_id = %self.settings.call_id, provider = self.stt.provider_name(), "speech-to-text final timed out");
            self.stt_fail_over();
        }
        if let Some(pending) = &self.barge_in
            && pending.deadline <= now
        {
            if self.speaking {
                self.settle_barge_in(true);
            } else if let Some(pending) = &mut self.barge_in {
                // Speech ended; the transcript decides, within the stall timeout.
                pending.deadline = now + self.settings.stall_timeout;
                if self.final_due.is_none() && self.end_of_turn_at.is_none() {
                    self.settle_barge_in(false);
                }
            }
        }
        if self.dtmf_due.is_some_and(|at| at <= now) {
            self.complete_dtmf();
        }
        if self.end_due.is_some_and(|at| at <= now) {
            tracing::debug!(call_id = %self.settings.call_id, "goodbye did not finish playing in time");
            return self.end.take();
        }
        None
    }

    fn on_reply(&mut self, event: Option<ReplyEvent>) {
        let Some(reply) = &mut self.reply else {
            return;
        };
        let Some(event) = event else {
            reply.reports_open = false;
            reply.generating = false;
            self.reply_generated();
            return;
        };
        match event {
            ReplyEvent::Requested { at } => reply.trace.requested = Some(at),
            ReplyEvent::FirstToken { at } => {
                reply.trace.first_token.get_or_insert(at);
            }
            ReplyEvent::FirstSentence { at } => {
                reply.trace.first_sentence.get_or_insert(at);
            }
            ReplyEvent::Segment { id, text, kind, at } => {
                if kind == SegmentKind::Reply {
                    reply.trace.tts_request.get_or_insert(at);
                }
                reply.segments.push(SegmentInfo {
                    id,
                    text,
                    kind,
                    samples: 0,
                    started: false,
                    played: false,
                });
            }
            ReplyEvent::Audio { id, samples, at } => {
                if let Some(segment) = reply.segments.iter_mut().find(|s| s.id == id) {
                    segment.samples = samples;
                    if segment.kind == SegmentKind::Reply {
                        reply.trace.tts_first_audio.get_or_insert(at);
                    }
                }
            }
            ReplyEvent::SegmentEnd { id } => {
                // A segment without audio never plays, so it counts as played at once.
                if let Some(segment) = reply.segments.iter_mut().find(|s| s.id == id)
                    && segment.samples == 0
                {
                    segment.played = true;
                }
            }
            ReplyEvent::Tool(call) => self.on_tool(call),
            ReplyEvent::Done => {
                reply.generating = false;
                self.reply_generated();
            }
        }
    }

    fn on_tool(&mut self, call: ToolCall) {
        tracing::debug!(call_id = %self.settings.call_id, tool = %call.name, "tool call");
        match call.name.as_str() {
            tools::END_CALL => self.end = Some(ConversationEnd::Hangup),
            tools::TRANSFER_CALL => {
                // Without a configured target the tool is not offered, and a model that calls it
                // anyway is rejected rather than trusted with an address of its own.
                let configured = self.settings.transfer_target.clone();
                let target = configured.and_then(|configured| {
                    call.arguments
                        .get("target")
                        .and_then(|t| t.as_str())
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .or(Some(configured))
                });
                match target {
                    Some(target) => self.end = Some(ConversationEnd::Transfer { target }),
                    None => {
                        tracing::warn!(call_id = %self.settings.call_id, "transfer rejected: no transfer target configured");
                    }
                }
            }
            // The reply task already queued the digits in order with the speech.
            tools::SEND_DTMF => {}
            other => {
                tracing::warn!(call_id = %self.settings.call_id, tool = other, "unknown tool ignored")
            }
        }
        if let Some(reply) = &mut self.reply {
            reply.tools.push(call);
        }
    }

    /// The reply task finished: arm the bounded wait for a goodbye to play out.
    fn reply_generated(&mut self) {
        if self.end.is_some() && self.end_due.is_none() {
            let queued = self
                .reply
                .as_ref()
                .map(ActiveReply::unplayed_audio)
                .unwrap_or_default();
            self.end_due = Some(tokio::time::Instant::now() + queued + GOODBYE_GRACE);
        }
        self.complete_reply_if_played();
    }

    fn ready_to_end(&mut self) -> Option<ConversationEnd> {
        let idle = self.reply.as_ref().is_none_or(ActiveReply::finished);
        if self.end.is_some() && idle && self.end_due.is_some() {
            return self.end.take();
        }
        None
    }

    /// Starts the agent on the next waiting input once no reply is being generated.
    fn start_next_input(&mut self) {
        if self.end.is_some() || self.barge_in.is_some() {
            return;
        }
        if self.reply.as_ref().is_some_and(|r| r.generating) {
            return;
        }
        let Some(input) = self.inputs.pop_front() else {
            return;
        };
        // A reply still playing counts as heard in full once the caller moved on.
        if let Some(reply) = self.reply.take() {
            let text = reply.full_text();
            self.record_agent_turn(reply, text, false);
        }
        self.history
            .push(ChatMessage::text(Role::User, input.message));
        let request = ChatRequest {
            system: self.settings.system_prompt.clone(),
            messages: self.history.clone(),
            tools: tools::specs(self.settings.transfer_target.is_some()),
            call_id: self.settings.call_id.clone(),
        };
        self.start_reply(ReplySource::Llm(request), input.trace, true);
    }

    fn start_reply(&mut self, source: ReplySource, trace: Trace, interruptible: bool) {
        let max_samples =
            self.settings.max_reply.as_millis() as u64 * u64::from(SAMPLE_RATE) / 1000;
        let job = ReplyJob {
            source,
            llm: self.chains.llm.clone(),
            tts: self.chains.tts.clone(),
            voice: self.settings.voice.clone(),
            interruptible,
            first_token_timeout: self.settings.first_token_timeout,
            stall_timeout: self.settings.stall_timeout,
            max_samples,
            holding_phrase: self.settings.holding_phrase.clone(),
            apology: self.settings.apology.clone(),
            segment_ids: Arc::clone(&self.segment_ids),
            playout: self.playout.clone(),
            call_id: self.settings.call_id.clone(),
        };
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let task = tokio::spawn(reply::run(job, reports_tx));
        self.reply = Some(ActiveReply {
            task,
            reports,
            reports_open: true,
            generating: true,
            segments: Vec::new(),
            tools: Vec::new(),
            trace,
            started_at: Utc::now(),
        });
    }

    fn record_caller_turn(&mut self, text: String, started_at: DateTime<Utc>) {
        let record = TurnRecord {
            role: TurnRole::Caller,
            text,
            started_at,
            ended_at: Utc::now(),
            latency_ms: BTreeMap::new(),
            interrupted: false,
        };
        self.emit(ConversationEvent::Turn(record.clone()));
        self.turns.push(record);
    }

    fn record_agent_turn(&mut self, reply: ActiveReply, text: String, interrupted: bool) {
        reply.task.abort();
        if !text.is_empty() || !reply.tools.is_empty() {
            let mut message = ChatMessage::text(Role::Assistant, text.clone());
            message.tool_calls = reply.tools.clone();
            self.history.push(message);
            for call in &reply.tools {
                let mut result = ChatMessage::text(Role::Tool, self.tool_result(call));
                result.tool_call_id = call.id.clone();
                self.history.push(result);
            }
        }
        if text.is_empty() {
            return;
        }
        let record = TurnRecord {
            role: TurnRole::Agent,
            text,
            started_at: reply.started_at,
            ended_at: Utc::now(),
            latency_ms: reply.trace.latency_ms(),
            interrupted,
        };
        tracing::debug!(call_id = %self.settings.call_id, interrupted, latency = ?record.latency_ms, "agent turn");
        self.emit(ConversationEvent::Turn(record.clone()));
        self.turns.push(record);
    }

    // TODO: the model gets no follow-up request after a tool result, so a rejected transfer is
    // only visible to it in the history of the next turn.
    fn tool_result(&self, call: &ToolCall) -> String {
        match call.name.as_str() {
            tools::TRANSFER_CALL if self.settings.transfer_target.is_none() => {
                "rejected: no transfer target is configured".to_owned()
            }
            tools::END_CALL | tools::TRANSFER_CALL | tools::SEND_DTMF => "done".to_owned(),
            _ => "rejected: unknown tool".to_owned(),
        }
    }
}
