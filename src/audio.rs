//! Plain audio types shared by the media path and the AI loop.
//!
//! Inside voicegate all audio is 16 kHz mono signed 16-bit PCM in 20 ms frames. The media path
//! converts to and from each call's codec; the AI loop never sees a codec or a socket. Events
//! carry `std::time::Instant`s taken on the media worker that observed them.

use std::time::Instant;

/// Internal sample rate, in hertz.
pub const SAMPLE_RATE: u32 = 16_000;
/// Internal frame duration, in milliseconds.
pub const FRAME_MS: u32 = 20;
/// Samples in one internal frame.
pub const FRAME_SAMPLES: usize = (SAMPLE_RATE * FRAME_MS / 1000) as usize;

/// One 20 ms frame of 16 kHz mono PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// Identifies one piece of AI speech (usually a sentence) in a call's playout queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub u64);

/// Commands from the AI loop to a call's outbound audio. The media path applies them at its
/// next tick, in order.
#[derive(Debug)]
pub enum PlayoutCommand {
    /// Appends PCM to a segment, opening it if new. Segments play in the order they were opened.
    Audio {
        /// Segment the samples belong to.
        segment: SegmentId,
        /// 16 kHz mono samples, any length.
        pcm: Vec<i16>,
        /// Whether caller speech may cut this segment (false for a legal notice).
        interruptible: bool,
    },
    /// No more audio follows for this segment; the media path reports
    /// [`MediaEvent::SegmentPlayed`] once its last sample has been sent.
    EndSegment(SegmentId),
    /// Drops every queued segment. The next packet carries no AI audio.
    Clear,
    /// Continues playout paused by a barge-in that turned out to be a backchannel.
    Resume,
    /// Plays DTMF digits (`0-9`, `*`, `#`, `A-D`) as RFC 4733 events after the queued audio.
    Dtmf(String),
}

/// Where a DTMF digit was signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event in the RTP stream.
    Rtp,
    /// SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    SipInfo,
}

/// What the media path reports when the caller talks over AI speech.
#[derive(Debug, Clone, PartialEq)]
pub struct BargeIn {
    /// When the caller's speech began (first voiced frame of the confirmed run).
    pub onset: Instant,
    /// When the speech was confirmed as a barge-in. Playout stopped here, or at `held`.
    pub decision: Instant,
    /// When playout was held for the speech before it was confirmed, if it was.
    pub held: Option<Instant>,
    /// When the last packet carrying AI audio was sent.
    pub last_ai_packet: Option<Instant>,
    /// Segment that was playing, if any.
    pub segment: Option<SegmentId>,
    /// Samples of that segment actually sent, at 16 kHz.
    pub played_samples: u64,
    /// Segments that were queued behind it and never started.
    pub dropped: Vec<SegmentId>,
    /// True when playout is only paused (the AI loop sends `Resume` or `Clear`), false when
    /// the queue was cleared.
    pub paused: bool,
}

/// Events from the media path of one call to the AI loop.
#[derive(Debug)]
pub enum MediaEvent {
    /// One frame of caller audio, as it left the jitter buffer. Frames stop while on hold.
    Audio(Box<Frame>),
    /// The caller started speaking (confirmed over `media.speech_onset_ms`).
    SpeechStarted {
        /// First voiced frame.
        onset: Instant,
    },
    /// The caller stopped speaking (confirmed over `media.speech_end_ms`).
    SpeechEnded {
        /// Last voiced frame.
        end: Instant,
    },
    /// The caller talked over AI speech.
    BargeIn(BargeIn),
    /// The first packet of a segment was sent.
    SegmentStarted {
        /// The segment.
        segment: SegmentId,
        /// Send time of its first packet.
        at: Instant,
    },
    /// A segment finished playing to its end.
    SegmentPlayed {
        /// The segment.
        segment: SegmentId,
        /// Samples sent, at 16 kHz.
        samples: u64,
    },
    /// The caller pressed a key (one event per press).
    Dtmf {
        /// `0-9`, `*`, `#`, `A-D`.
        digit: char,
        /// When the press was detected.
        at: Instant,
        /// Which path carried it.
        source: DtmfSource,
    },
    /// No RTP arrived for the configured media timeout while the call was not on hold.
    Timeout,
}
