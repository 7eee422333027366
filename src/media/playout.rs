//! The outbound playout queue of one call: AI speech segments and DTMF digits in the order
//! the AI loop queued them, read one 20 ms frame per tick, with barge-in cuts and pauses.
//!
//! Commands are applied in order at the start of a tick, so a [`PlayoutCommand::Clear`] takes
//! effect on the next packet. A barge-in in clear mode also raises a fence: audio for
//! interruptible segments is discarded until the AI loop acknowledges the barge-in with
//! `Clear` or `Resume`. That keeps a reply whose text-to-speech audio was still in flight when
//! the caller interrupted from ever playing, because the media path cannot know segment ids
//! it has not seen yet.

use std::collections::VecDeque;
use std::time::Instant;

use crate::audio::{BargeIn, FRAME_SAMPLES, Frame, MediaEvent, PlayoutCommand, SegmentId};
use crate::media::codec::{AudioDecoder, AudioEncoder, G711Decoder, G711Encoder, G711Law};

/// How queued samples are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleStorage {
    /// 16-bit linear PCM, for wideband codecs.
    Linear,
    /// One mu-law byte per 16 kHz sample (half the memory, about 38 dB SNR), for calls whose
    /// codec is narrowband G.711 anyway.
    MuLaw,
}

/// What a barge-in does to playout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BargeInMode {
    /// Drops the interrupted segment and everything interruptible queued behind it.
    Clear,
    /// Pauses playout; the AI loop then sends `Resume` (a backchannel) or `Clear`.
    Pause,
}

/// What the frame produced by [`PlayoutQueue::next_frame`] contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayoutFrame {
    /// No AI audio: send silence or comfort noise.
    Silence,
    /// At least one sample of AI audio (the rest of the frame is zero).
    Speech,
    /// The next queued DTMF digit is due: send it as RFC 4733 events before asking again.
    Dtmf(char),
}

#[derive(Debug)]
enum Samples {
    Linear(Vec<i16>),
    MuLaw(Vec<u8>),
}

impl Samples {
    fn len(&self) -> usize {
        match self {
            Samples::Linear(samples) => samples.len(),
            Samples::MuLaw(bytes) => bytes.len(),
        }
    }
}

#[derive(Debug)]
struct Segment {
    id: SegmentId,
    interruptible: bool,
    ended: bool,
    samples: Samples,
    /// Samples already sent.
    read: usize,
    started: bool,
}

impl Segment {
    fn remaining(&self) -> usize {
        self.samples.len() - self.read
    }

    fn finished(&self) -> bool {
        self.ended && self.remaining() == 0
    }
}

#[derive(Debug)]
enum Item {
    Segment(Segment),
    Dtmf(VecDeque<char>),
}

/// Counters of the queue, for stats and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayoutCounters {
    /// Audio commands discarded because a barge-in fence was up.
    pub fenced_chunks: u64,
    /// Segments dropped by barge-ins and `Clear`.
    pub dropped_segments: u64,
    /// DTMF characters that are not `0-9`, `*`, `#` or `A-D`.
    pub invalid_digits: u64,
}

/// Queued AI audio and DTMF of one call.
#[derive(Debug)]
pub struct PlayoutQueue {
    items: VecDeque<Item>,
    storage: SampleStorage,
    paused: bool,
    held_since: Option<Instant>,
    fenced: bool,
    last_speech: Option<Instant>,
    encoder: G711Encoder,
    decoder: G711Decoder,
    scratch: Vec<i16>,
    counters: PlayoutCounters,
}

impl PlayoutQueue {
    /// Creates an empty queue.
    pub fn new(storage: SampleStorage) -> Self {
        Self {
            items: VecDeque::new(),
            storage,
            paused: false,
            held_since: None,
            fenced: false,
            last_speech: None,
            encoder: G711Encoder::new(G711Law::Mu),
            decoder: G711Decoder::new(G711Law::Mu),
            scratch: Vec::with_capacity(FRAME_SAMPLES),
            counters: PlayoutCounters::default(),
        }
    }

    /// Applies one command from the AI loop.
    pub fn apply(&mut self, command: PlayoutCommand) {
        match command {
            PlayoutCommand::Audio {
                segment,
                pcm,
                interruptible,
            } => self.append(segment, &pcm, interruptible),
            PlayoutCommand::EndSegment(id) => {
                if let Some(segment) = self.segment_mut(id) {
                    segment.ended = true;
                }
            }
            PlayoutCommand::Clear => {
                self.fenced = false;
                self.paused = false;
                self.held_since = None;
                self.clear();
            }
            PlayoutCommand::Resume => {
                self.fenced = false;
                self.paused = false;
                self.held_since = None;
            }
            PlayoutCommand::Dtmf(digits) => self.queue_dtmf(&digits),
        }
    }

    /// True while any interruptible segment is queued or playing, that is when caller speech
    /// would be a barge-in.
    pub fn has_interruptible(&self) -> bool {
        self.items
            .iter()
            .any(|item| matches!(item, Item::Segment(segment) if segment.interruptible))
    }

    /// True while a barge-in in pause mode holds playout.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// True while playout waits for caller speech to be confirmed or dismissed.
    pub fn is_held(&self) -> bool {
        self.held_since.is_some()
    }

    /// Holds interruptible playout at `now` while caller speech is being confirmed, as a pause
    /// does but without an event. Returns false when nothing interruptible is queued or
    /// playout is already paused or held.
    pub fn hold(&mut self, now: Instant) -> bool {
        if !self.has_interruptible() || self.paused || self.held_since.is_some() {
            return false;
        }
        self.held_since = Some(now);
        true
    }

    /// Lets held playout go on from where it stopped; returns whether it was held.
    pub fn release_hold(&mut self) -> bool {
        self.held_since.take().is_some()
    }

    /// True while audio for interruptible segments is discarded after a barge-in.
    pub fn is_fenced(&self) -> bool {
        self.fenced
    }

    /// Send time of the last frame that carried AI audio.
    pub fn last_speech(&self) -> Option<Instant> {
        self.last_speech
    }

    /// Counters since the queue was created.
    pub fn counters(&self) -> PlayoutCounters {
        self.counters
    }

    /// Samples queued and not yet sent, over all segments.
    pub fn queued_samples(&self) -> usize {
        self.items
            .iter()
            .map(|item| match item {
                Item::Segment(segment) => segment.remaining(),
                Item::Dtmf(_) => 0,
            })
            .sum()
    }

    /// Bytes of heap memory held by queued audio.
    pub fn queued_bytes(&self) -> usize {
        self.items
            .iter()
            .map(|item| match item {
                Item::Segment(Segment {
                    samples: Samples::Linear(s),
                    ..
                }) => s.capacity() * 2,
                Item::Segment(Segment {
                    samples: Samples::MuLaw(s),
                    ..
                }) => s.capacity(),
                Item::Dtmf(digits) => digits.capacity() * 4,
            })
            .sum()
    }

    /// Stops interruptible playout because the caller's speech, which began at `onset`, was
    /// confirmed at `decision`. A hold turns into the pause or clear. Returns what the AI loop
    /// needs to know, or `None` when no interruptible AI audio was queued or playing.
    ///
    /// A segment that is not interruptible and already playing goes on to its end; the event
    /// then names no segment.
    pub fn barge_in(
        &mut self,
        onset: Instant,
        decision: Instant,
        mode: BargeInMode,
    ) -> Option<BargeIn> {
        if !self.has_interruptible() || self.paused {
            return None;
        }
        let (segment, played_samples) = match self.front_segment() {
            Some(front) if front.started && front.interruptible => {
                (Some(front.id), front.read as u64)
            }
            _ => (None, 0),
        };
        let protected_playing =
            matches!(self.front_segment(), Some(front) if front.started && !front.interruptible);

        let dropped = match mode {
            BargeInMode::Clear => {
                self.fenced = true;
                let mut dropped = self.clear();
                dropped.retain(|id| Some(*id) != segment);
                dropped
            }
            BargeInMode::Pause => {
                self.paused = true;
                Vec::new()
            }
        };
        Some(BargeIn {
            onset,
            decision,
            held: self.held_since.take(),
            last_ai_packet: if protected_playing {
                None
            } else {
                self.last_speech
            },
            segment,
            played_samples,
            dropped,
            paused: mode == BargeInMode::Pause,
        })
    }

    /// Fills `out` with the frame to send at `now` and appends `SegmentStarted` and
    /// `SegmentPlayed` events to `events`.
    pub fn next_frame(
        &mut self,
        now: Instant,
        out: &mut Frame,
        events: &mut Vec<MediaEvent>,
    ) -> PlayoutFrame {
        out.fill(0);
        let mut filled = 0;
        let mut speech = false;
        while filled < FRAME_SAMPLES {
            match self.items.front_mut() {
                None => break,
                Some(Item::Dtmf(digits)) => {
                    if filled > 0 || self.paused || self.held_since.is_some() {
                        break;
                    }
                    let digit = digits.pop_front();
                    if digits.is_empty() {
                        self.items.pop_front();
                    }
                    match digit {
                        Some(digit) => return PlayoutFrame::Dtmf(digit),
                        None => continue,
                    }
                }
                Some(Item::Segment(segment)) => {
                    // While paused or held only a protected segment already playing goes on.
                    let protected_playing = segment.started && !segment.interruptible;
                    let stopped = self.paused || self.held_since.is_some();
                    if stopped && !protected_playing {
                        break;
                    }
                    let wanted = (FRAME_SAMPLES - filled).min(segment.remaining());
                    if wanted > 0 {
                        if !segment.started {
                            segment.started = true;
                            events.push(MediaEvent::SegmentStarted {
                                segment: segment.id,
                                at: now,
                            });
                        }
                        read_samples(
                            segment,
                            &mut self.decoder,
                            &mut self.scratch,
                            &mut out[filled..filled + wanted],
                        );
                        filled += wanted;
                        speech = true;
                    }
                    if !segment.finished() {
                        // Underrun: the text-to-speech audio arrives slower than real time.
                        break;
                    }
                    events.push(MediaEvent::SegmentPlayed {
                        segment: segment.id,
                        samples: segment.read as u64,
                    });
                    self.items.pop_front();
                }
            }
        }
        if speech {
            self.last_speech = Some(now);
            PlayoutFrame::Speech
        } else {
            PlayoutFrame::Silence
        }
    }

    fn front_segment(&self) -> Option<&Segment> {
        match self.items.front() {
            Some(Item::Segment(segment)) => Some(segment),
            _ => None,
        }
    }

    fn segment_mut(&mut self, id: SegmentId) -> Option<&mut Segment> {
        self.items.iter_mut().find_map(|item| match item {
            Item::Segment(segment) if segment.id == id => Some(segment),
            _ => None,
        })
    }

    fn append(&mut self, id: SegmentId, pcm: &[i16], interruptible: bool) {
        if self.fenced && interruptible {
            self.counters.fenced_chunks += 1;
            return;
        }
        if self.segment_mut(id).is_none() {
            let samples = match self.storage {
                SampleStorage::Linear => Samples::Linear(Vec::with_capacity(pcm.len())),
                SampleStorage::MuLaw => Samples::MuLaw(Vec::with_capacity(pcm.len())),
            };
            self.items.push_back(Item::Segment(Segment {
                id,
                interruptible,
                ended: false,
                samples,
                read: 0,
                started: false,
            }));
        }
        let encoder = &mut self.encoder;
        let Some(segment) = self.items.iter_mut().find_map(|item| match item {
            Item::Segment(segment) if segment.id == id => Some(segment),
            _ => None,
        }) else {
            return;
        };
        match &mut segment.samples {
            Samples::Linear(samples) => samples.extend_from_slice(pcm),
            // Encoding G.711 cannot fail; the error type only exists for other codecs.
            Samples::MuLaw(bytes) => {
                let _ = encoder.encode(pcm, bytes);
            }
        }
    }

    /// Drops every segment except a protected one already playing; returns the dropped ids.
    fn clear(&mut self) -> Vec<SegmentId> {
        let mut dropped = Vec::new();
        let mut index = 0;
        self.items.retain(|item| {
            let keep = match item {
                Item::Segment(segment) => {
                    let keep = index == 0 && segment.started && !segment.interruptible;
                    if !keep {
                        dropped.push(segment.id);
                    }
                    keep
                }
                Item::Dtmf(_) => true,
            };
            index += 1;
            keep
        });
        self.counters.dropped_segments += dropped.len() as u64;
        dropped
    }

    fn queue_dtmf(&mut self, digits: &str) {
        let mut valid = VecDeque::new();
        for digit in digits.chars() {
            let digit = digit.to_ascii_uppercase();
            if digit.is_ascii_digit() || matches!(digit, '*' | '#' | 'A'..='D') {
                valid.push_back(digit);
            } else {
                self.counters.invalid_digits += 1;
            }
        }
        if !valid.is_empty() {
            self.items.push_back(Item::Dtmf(valid));
        }
    }
}

fn read_samples(
    segment: &mut Segment,
    decoder: &mut G711Decoder,
    scratch: &mut Vec<i16>,
    out: &mut [i16],
) {
    let start = segment.read;
    let end = start + out.len();
    match &segment.samples {
        Samples::Linear(samples) => out.copy_from_slice(&samples[start..end]),
        Samples::MuLaw(bytes) => {
            scratch.clear();
            let _ = decoder.decode(&bytes[start..end], scratch);
            out.copy_from_slice(&scratch[..out.len()]);
        }
    }
    segment.read = end;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn audio(id: u64, samples: usize, interruptible: bool) -> PlayoutCommand {
        PlayoutCommand::Audio {
            segment: SegmentId(id),
            pcm: vec![1000; samples],
            interruptible,
        }
    }

    fn tick(queue: &mut PlayoutQueue, at: Instant) -> (PlayoutFrame, Vec<MediaEvent>) {
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut events = Vec::new();
        let kind = queue.next_frame(at, &mut frame, &mut events);
        (kind, events)
    }

    #[test]
    fn segments_play_in_order_with_events() {
        let start = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(audio(1, 480, true));
        queue.apply(PlayoutCommand::EndSegment(SegmentId(1)));
        queue.apply(audio(2, 320, true));
        queue.apply(PlayoutCommand::EndSegment(SegmentId(2)));

        let (kind, events) = tick(&mut queue, start);
        assert_eq!(kind, PlayoutFrame::Speech);
        assert!(matches!(
            events[..],
            [MediaEvent::SegmentStarted {
                segment: SegmentId(1),
                ..
            }]
        ));

        // The second frame finishes segment 1 and starts segment 2 in the same packet.
        let (_, events) = tick(&mut queue, start + Duration::from_millis(20));
        assert!(matches!(
            events[0],
            MediaEvent::SegmentPlayed {
                segment: SegmentId(1),
                samples: 480
            }
        ));
        assert!(matches!(
            events[1],
            MediaEvent::SegmentStarted {
                segment: SegmentId(2),
                ..
            }
        ));

        let (_, events) = tick(&mut queue, start + Duration::from_millis(40));
        assert!(matches!(
            events[..],
            [MediaEvent::SegmentPlayed {
                segment: SegmentId(2),
                samples: 320
            }]
        ));
        let (kind, _) = tick(&mut queue, start + Duration::from_millis(60));
        assert_eq!(kind, PlayoutFrame::Silence);
    }

    #[test]
    fn underrun_waits_for_more_audio() {
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(audio(1, 100, true));
        let now = Instant::now();
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Speech);
        let (kind, events) = tick(&mut queue, now);
        assert_eq!(kind, PlayoutFrame::Silence);
        assert!(events.is_empty());
        queue.apply(audio(1, 100, true));
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Speech);
    }

    #[test]
    fn clear_barge_in_cuts_and_reports() {
        let now = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(audio(1, 3200, true));
        queue.apply(audio(2, 3200, true));
        tick(&mut queue, now);
        tick(&mut queue, now + Duration::from_millis(20));

        let decision = now + Duration::from_millis(30);
        let cut = queue.barge_in(now, decision, BargeInMode::Clear);
        let Some(cut) = cut else {
            panic!("no barge-in")
        };
        assert_eq!(cut.segment, Some(SegmentId(1)));
        assert_eq!(cut.played_samples, 640);
        assert_eq!(cut.dropped, vec![SegmentId(2)]);
        assert_eq!(cut.last_ai_packet, Some(now + Duration::from_millis(20)));
        assert!(!cut.paused);
        assert_eq!(tick(&mut queue, decision).0, PlayoutFrame::Silence);
    }

    #[test]
    fn fence_discards_stale_audio_until_ack() {
        let now = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(audio(1, 3200, true));
        tick(&mut queue, now);
        assert!(queue.barge_in(now, now, BargeInMode::Clear).is_some());

        // Text-to-speech audio of the cancelled reply arrives after the decision.
        queue.apply(audio(2, 3200, true));
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Silence);
        assert_eq!(queue.counters().fenced_chunks, 1);

        queue.apply(PlayoutCommand::Clear);
        queue.apply(audio(3, 320, true));
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Speech);
    }

    #[test]
    fn pause_then_resume_continues() {
        let now = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(audio(1, 960, true));
        queue.apply(PlayoutCommand::EndSegment(SegmentId(1)));
        tick(&mut queue, now);
        let Some(cut) = queue.barge_in(now, now, BargeInMode::Pause) else {
            panic!("no barge-in")
        };
        assert!(cut.paused);
        assert_eq!(cut.played_samples, 320);
        assert!(cut.dropped.is_empty());
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Silence);
        assert!(queue.barge_in(now, now, BargeInMode::Pause).is_none());

        queue.apply(PlayoutCommand::Resume);
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Speech);
        let (_, events) = tick(&mut queue, now);
        assert!(matches!(
            events[..],
            [MediaEvent::SegmentPlayed { samples: 960, .. }]
        ));
    }

    #[test]
    fn hold_then_release_continues() {
        let now = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(audio(1, 960, true));
        tick(&mut queue, now);
        assert!(queue.hold(now));
        assert!(queue.is_held());
        assert!(!queue.hold(now), "a second hold while held");
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Silence);
        assert!(queue.release_hold());
        assert!(!queue.release_hold());
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Speech);
        assert_eq!(queue.queued_samples(), 320);
    }

    #[test]
    fn hold_turns_into_barge_in() {
        let now = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(audio(1, 3200, true));
        tick(&mut queue, now);
        let held_at = now + Duration::from_millis(20);
        assert!(queue.hold(held_at));
        tick(&mut queue, held_at);
        let decision = now + Duration::from_millis(60);
        let Some(cut) = queue.barge_in(now, decision, BargeInMode::Pause) else {
            panic!("no barge-in")
        };
        assert_eq!(cut.held, Some(held_at));
        assert_eq!(cut.played_samples, 320, "nothing played while held");
        assert_eq!(cut.last_ai_packet, Some(now));
        assert!(!queue.is_held());
        assert!(queue.is_paused());
        assert_eq!(tick(&mut queue, decision).0, PlayoutFrame::Silence);
    }

    #[test]
    fn hold_needs_interruptible_audio() {
        let now = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        assert!(!queue.hold(now));
        queue.apply(audio(1, 640, false));
        assert!(!queue.hold(now));
        queue.apply(audio(2, 640, true));
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Speech);
        assert!(queue.hold(now));
        // The protected segment already playing goes on through the hold.
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Speech);
    }

    #[test]
    fn clear_and_resume_end_hold() {
        let now = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(audio(1, 640, true));
        assert!(queue.hold(now));
        queue.apply(PlayoutCommand::Resume);
        assert!(!queue.is_held());
        assert!(queue.hold(now));
        queue.apply(PlayoutCommand::Clear);
        assert!(!queue.is_held());
    }

    #[test]
    fn protected_segment_not_cut() {
        let now = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(audio(1, 640, false));
        queue.apply(PlayoutCommand::EndSegment(SegmentId(1)));
        queue.apply(audio(2, 640, true));
        tick(&mut queue, now);
        let Some(cut) = queue.barge_in(now, now, BargeInMode::Clear) else {
            panic!("no barge-in")
        };
        assert_eq!(cut.segment, None);
        assert_eq!(cut.last_ai_packet, None);
        assert_eq!(cut.dropped, vec![SegmentId(2)]);
        let (kind, events) = tick(&mut queue, now);
        assert_eq!(kind, PlayoutFrame::Speech);
        assert!(matches!(
            events[..],
            [MediaEvent::SegmentPlayed {
                segment: SegmentId(1),
                ..
            }]
        ));
    }

    #[test]
    fn nothing_queued_is_no_barge_in() {
        let now = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        assert!(queue.barge_in(now, now, BargeInMode::Clear).is_none());
        assert!(!queue.is_fenced());
    }

    #[test]
    fn dtmf_follows_queued_audio() {
        let now = Instant::now();
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(audio(1, 320, true));
        queue.apply(PlayoutCommand::EndSegment(SegmentId(1)));
        queue.apply(PlayoutCommand::Dtmf("1x#".into()));
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Speech);
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Dtmf('1'));
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Dtmf('#'));
        assert_eq!(tick(&mut queue, now).0, PlayoutFrame::Silence);
        assert_eq!(queue.counters().invalid_digits, 1);
    }

    #[test]
    fn mulaw_storage_halves_memory() {
        let mut linear = PlayoutQueue::new(SampleStorage::Linear);
        let mut compact = PlayoutQueue::new(SampleStorage::MuLaw);
        let pcm: Vec<i16> = (0..16_000)
            .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
            .collect();
        for queue in [&mut linear, &mut compact] {
            queue.apply(PlayoutCommand::Audio {
                segment: SegmentId(1),
                pcm: pcm.clone(),
                interruptible: true,
            });
        }
        assert_eq!(linear.queued_bytes(), 32_000);
        assert_eq!(compact.queued_bytes(), 16_000);

        let mut frame = [0i16; FRAME_SAMPLES];
        compact.next_frame(Instant::now(), &mut frame, &mut Vec::new());
        for (got, want) in frame.iter().zip(&pcm) {
            let error = (i32::from(*got) - i32::from(*want)).abs();
            assert!(
                error <= i32::from(want.unsigned_abs()) / 16 + 8,
                "{got} vs {want}"
            );
        }
    }
}
