//! Parsing RTCP compound packets (RFC 3550 §6) into zero-copy views, safely on any bytes.
//!
//! ```text
//!  0                   1                   2                   3
//! |V=2|P|    RC   |   PT          |             length            |
//! ```
//!
//! `length` counts 32-bit words minus one. Unknown packet types (feedback, XR and so on) are
//! returned as [`RtcpPacket::Other`] so that the rest of the compound can still be read.

use crate::rtp::ids::Ssrc;

/// Sender report (RFC 3550 §6.4.1).
pub const PT_SR: u8 = 200;
/// Receiver report (RFC 3550 §6.4.2).
pub const PT_RR: u8 = 201;
/// Source description (RFC 3550 §6.5).
pub const PT_SDES: u8 = 202;
/// Goodbye (RFC 3550 §6.6).
pub const PT_BYE: u8 = 203;
/// Application-defined (RFC 3550 §6.7).
pub const PT_APP: u8 = 204;

/// Length of one report block.
pub const REPORT_BLOCK_LEN: usize = 24;
const HEADER_LEN: usize = 4;
const SENDER_INFO_LEN: usize = 20;

/// Error reading an RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Fewer bytes than a header.
    #[error("rtcp packet of {0} bytes is shorter than its 4-byte header")]
    TooShort(usize),
    /// The version field is not 2.
    #[error("rtcp version {0} is not 2")]
    Version(u8),
    /// The length field points past the end of the compound.
    #[error("rtcp length of {words} words runs past the {available} bytes left")]
    Length {
        /// Value of the length field plus one.
        words: usize,
        /// Bytes left in the compound.
        available: usize,
    },
    /// The count field needs more bytes than the packet has.
    #[error("rtcp packet type {packet_type} with count {count} does not fit its length")]
    Count {
        /// Packet type.
        packet_type: u8,
        /// Report or source count.
        count: u8,
    },
    /// The padding count is zero or larger than the packet body.
    #[error("rtcp padding count {0} is invalid")]
    Padding(u8),
}

/// One report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// Source the block reports on.
    pub ssrc: Ssrc,
    /// Fraction lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost (signed 24 bits).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source, or 0.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn parse(bytes: &[u8]) -> Option<ReportBlock> {
        let bytes = bytes.get(..REPORT_BLOCK_LEN)?;
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        // Sign-extend the 24-bit cumulative loss.
        let lost = (word(4) << 8) as i32 >> 8;
        Some(ReportBlock {
            ssrc: Ssrc(word(0)),
            fraction_lost: bytes[4],
            cumulative_lost: lost,
            extended_highest: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        })
    }
}

/// Iterator over the report blocks of an SR or RR.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a> {
    rest: &'a [u8],
    left: u8,
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        if self.left == 0 {
            return None;
        }
        let block = ReportBlock::parse(self.rest)?;
        self.rest = &self.rest[REPORT_BLOCK_LEN..];
        self.left -= 1;
        Some(block)
    }
}

/// A sender report.
#[derive(Debug, Clone)]
pub struct SenderReport<'a> {
    /// Sender's SSRC.
    pub ssrc: Ssrc,
    /// NTP timestamp (RFC 3550 §4: seconds since 1900 in 32.32 fixed point).
    pub ntp: u64,
    /// RTP timestamp of the same instant.
    pub rtp_timestamp: u32,
    /// Packets the sender sent.
    pub packets: u32,
    /// Payload octets the sender sent.
    pub octets: u32,
    /// Reports on the sources the sender receives.
    pub blocks: ReportBlocks<'a>,
}

/// A receiver report.
#[derive(Debug, Clone)]
pub struct ReceiverReport<'a> {
    /// Reporter's SSRC.
    pub ssrc: Ssrc,
    /// Reports on the sources the reporter receives.
    pub blocks: ReportBlocks<'a>,
}

/// One SDES item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// Item type (1 is CNAME).
    pub kind: u8,
    /// Item text, not necessarily UTF-8.
    pub value: &'a [u8],
}

/// SDES item type of the canonical name.
pub const SDES_CNAME: u8 = 1;

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone)]
pub struct SdesChunk<'a> {
    /// The source described.
    pub ssrc: Ssrc,
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// Iterates the chunk's items, stopping at the end item or at the first truncated one.
    pub fn items(&self) -> impl Iterator<Item = SdesItem<'a>> + 'a {
        let mut rest = self.items;
        std::iter::from_fn(move || {
            let (&kind, after) = rest.split_first()?;
            if kind == 0 {
                return None;
            }
            let (&len, after) = after.split_first()?;
            let value = after.get(..usize::from(len))?;
            rest = &after[usize::from(len)..];
            Some(SdesItem { kind, value })
        })
    }

    /// Returns the CNAME item, if present.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items().find(|i| i.kind == SDES_CNAME).map(|i| i.value)
    }
}

/// A source description packet.
#[derive(Debug, Clone)]
pub struct SourceDescription<'a> {
    body: &'a [u8],
    count: u8,
}

impl<'a> SourceDescription<'a> {
    /// Iterates the chunks in order, stopping at the first malformed one.
    pub fn chunks(&self) -> impl Iterator<Item = SdesChunk<'a>> + 'a {
        let mut rest = self.body;
        let mut left = self.count;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let ssrc = rest.get(..4)?;
            let ssrc = Ssrc(u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]));
            let items_start = &rest[4..];
            let items_len = sdes_items_len(items_start)?;
            // RFC 3550 §6.5: each chunk ends with a null item padded to a 32-bit boundary.
            let chunk_len = (4 + items_len).div_ceil(4) * 4;
            let items = &items_start[..items_len];
            rest = rest.get(chunk_len..).unwrap_or(&[]);
            Some(SdesChunk { ssrc, items })
        })
    }
}

/// Length of a chunk's items up to and including the terminating null byte.
fn sdes_items_len(items: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let kind = *items.get(at)?;
        if kind == 0 {
            return Some(at + 1);
        }
        let len = usize::from(*items.get(at + 1)?);
        at += 2 + len;
    }
}

/// A goodbye packet.
#[derive(Debug, Clone)]
pub struct Goodbye<'a> {
    sources: &'a [u8],
    /// Reason for leaving, if given.
    pub reason: Option<&'a [u8]>,
}

impl<'a> Goodbye<'a> {
    /// Iterates the sources leaving.
    pub fn ssrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        self.sources
            .chunks_exact(4)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }
}

/// An application-defined packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct App<'a> {
    /// Subtype (the count field).
    pub subtype: u8,
    /// Sender's SSRC.
    pub ssrc: Ssrc,
    /// Four-character name.
    pub name: [u8; 4],
    /// Application data.
    pub data: &'a [u8],
}

/// One packet of a compound.
#[derive(Debug, Clone)]
pub enum RtcpPacket<'a> {
    /// Sender report.
    SenderReport(SenderReport<'a>),
    /// Receiver report.
    ReceiverReport(ReceiverReport<'a>),
    /// Source description.
    SourceDescription(SourceDescription<'a>),
    /// Goodbye.
    Goodbye(Goodbye<'a>),
    /// Application-defined.
    App(App<'a>),
    /// A packet type this parser does not read (RTPFB, PSFB, XR, ...).
    Other {
        /// Packet type.
        packet_type: u8,
        /// Count field.
        count: u8,
        /// Body after the header, without padding.
        body: &'a [u8],
    },
}

/// Iterates the packets of an RTCP compound; yields an error once and stops at the first
/// packet that cannot be framed.
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    rest: &'a [u8],
}

/// Reads a compound packet (RFC 3550 §6.1).
pub fn parse_compound(bytes: &[u8]) -> Compound<'_> {
    Compound { rest: bytes }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = self.next_packet();
        if result.is_err() {
            self.rest = &[];
        }
        Some(result)
    }
}

impl<'a> Compound<'a> {
    fn next_packet(&mut self) -> Result<RtcpPacket<'a>, RtcpError> {
        let bytes = self.rest;
        if bytes.len() < HEADER_LEN {
            return Err(RtcpError::TooShort(bytes.len()));
        }
        let version = bytes[0] >> 6;
        if version != 2 {
            return Err(RtcpError::Version(version));
        }
        let words = usize::from(u16::from_be_bytes([bytes[2], bytes[3]])) + 1;
        let Some(packet) = bytes.get(..4 * words) else {
            return Err(RtcpError::Length {
                words,
                available: bytes.len(),
            });
        };
        self.rest = &bytes[4 * words..];

        let mut body = &packet[HEADER_LEN..];
        if bytes[0] & 0x20 != 0 {
            let count = packet[packet.len() - 1];
            if count == 0 || usize::from(count) > body.len() {
                return Err(RtcpError::Padding(count));
            }
            body = &body[..body.len() - usize::from(count)];
        }
        parse_body(bytes[1], bytes[0] & 0x1f, body)
    }
}

fn parse_body(packet_type: u8, count: u8, body: &[u8]) -> Result<RtcpPacket<'_>, RtcpError> {
    let count_error = RtcpError::Count { packet_type, count };
    let word = |at: usize| -> Option<u32> {
        let b = body.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match packet_type {
        PT_SR => {
            let blocks_at = 4 + SENDER_INFO_LEN;
            if body.len() < blocks_at + REPORT_BLOCK_LEN * usize::from(count) {
                return Err(count_error);
            }
            let ntp_high = word(4).ok_or(count_error)?;
            let ntp_low = word(8).ok_or(count_error)?;
            Ok(RtcpPacket::SenderReport(SenderReport {
                ssrc: Ssrc(word(0).ok_or(count_error)?),
                ntp: (u64::from(ntp_high) << 32) | u64::from(ntp_low),
                rtp_timestamp: word(12).ok_or(count_error)?,
                packets: word(16).ok_or(count_error)?,
                octets: word(20).ok_or(count_error)?,
                blocks: ReportBlocks {
                    rest: &body[blocks_at..],
                    left: count,
                },
            }))
        }
        PT_RR => {
            if body.len() < 4 + REPORT_BLOCK_LEN * usize::from(count) {
                return Err(count_error);
            }
            Ok(RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: Ssrc(word(0).ok_or(count_error)?),
                blocks: ReportBlocks {
                    rest: &body[4..],
                    left: count,
                },
            }))
        }
        PT_SDES => Ok(RtcpPacket::SourceDescription(SourceDescription {
            body,
            count,
        })),
        PT_BYE => parse_bye(body, count).ok_or(count_error),
        PT_APP => {
            let data = body.get(8..).ok_or(count_error)?;
            Ok(RtcpPacket::App(App {
                subtype: count,
                ssrc: Ssrc(word(0).ok_or(count_error)?),
                name: [body[4], body[5], body[6], body[7]],
                data,
            }))
        }
        _ => Ok(RtcpPacket::Other {
            packet_type,
            count,
            body,
        }),
    }
}

fn parse_bye(body: &[u8], count: u8) -> Option<RtcpPacket<'_>> {
    let sources_len = 4 * usize::from(count);
    let sources = body.get(..sources_len)?;
    let reason = body.get(sources_len..).and_then(|rest| {
        let (&len, text) = rest.split_first()?;
        text.get(..usize::from(len))
    });
    Some(RtcpPacket::Goodbye(Goodbye { sources, reason }))
}
