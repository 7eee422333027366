//! Packets going into the jitter buffer and items coming out of it.

use crate::rtp::ids::{ExtSeq, Pt, Ssrc};

/// Playout treatment of a packet's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// Audio for the decoder.
    Audio,
    /// RFC 3389 comfort noise: played as silence or generated noise, never decoded as audio.
    ComfortNoise,
    /// A packet that takes a sequence number but carries no audio (a telephone event, or a
    /// payload type the call did not negotiate). It keeps a gap from counting as loss.
    Placeholder,
}

/// One packet handed to [`super::JitterBuffer::push`].
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// Playout index from the source tracker, continuous across re-syncs and source changes.
    pub index: ExtSeq,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Payload type.
    pub pt: Pt,
    /// Marker bit (start of a talkspurt for audio).
    pub marker: bool,
    /// Source that sent it.
    pub ssrc: Ssrc,
    /// How to play it.
    pub kind: PayloadKind,
    /// Payload without padding; copied into the buffer's own storage.
    pub payload: &'a [u8],
    /// Duration in timestamp units if the caller knows it from the codec. Otherwise the buffer
    /// takes it from the next packet's timestamp or the previous packet's duration.
    pub duration: Option<u32>,
}

/// A packet due for decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayoutPacket<'a> {
    /// Playout index.
    pub index: ExtSeq,
    /// Source that sent it.
    pub ssrc: Ssrc,
    /// Payload type, to pick the decoder from the call's negotiated table.
    pub pt: Pt,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Duration in timestamp units, as the buffer accounted for it.
    pub duration: u32,
    /// Marker bit.
    pub marker: bool,
    /// True for the first packet played from a source: reset the decoder before decoding it.
    pub new_source: bool,
    /// Payload to decode.
    pub payload: &'a [u8],
}

/// The packet after a lost one, offered so that a codec with in-band forward error correction
/// (Opus) can rebuild the lost audio from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecSource<'a> {
    /// Payload type of the following packet.
    pub pt: Pt,
    /// Payload of the following packet.
    pub payload: &'a [u8],
}

/// Next thing for the media path to play, from [`super::JitterBuffer::pop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayoutItem<'a> {
    /// Nothing more is due at this time. Play PCM already decoded (a packet can be longer than
    /// a tick), and when none is left, silence or the last comfort noise.
    Nothing,
    /// A packet to decode and play.
    Packet(PlayoutPacket<'a>),
    /// A packet was lost: conceal `samples` timestamp units of audio.
    Lost {
        /// Duration to conceal, in timestamp units.
        samples: u32,
        /// The next packet, when it is already buffered, for forward error correction.
        fec: Option<FecSource<'a>>,
    },
    /// The sender sent no audio for this stretch (silence suppression, comfort noise or a
    /// stall). Play silence or comfort noise, never decoded audio.
    Silence {
        /// Duration in timestamp units.
        samples: u32,
        /// RFC 3389 noise level in -dBov when the sender sent comfort noise.
        comfort_noise: Option<u8>,
    },
}
