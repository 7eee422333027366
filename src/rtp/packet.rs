//! RTP packets (RFC 3550 §5.1): a zero-copy view that parses any byte string without panicking,
//! and a header writer that fills a caller-provided buffer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers             |
//! ```

use super::extension::HeaderExtension;
use super::ids::{Pt, SeqNo, Ssrc};

/// Length of the fixed RTP header, in bytes.
pub const RTP_HEADER_LEN: usize = 12;

/// The only RTP version in use (RFC 3550 §5.1).
pub const RTP_VERSION: u8 = 2;

/// Error parsing an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than the fixed header.
    #[error("rtp packet of {0} bytes is shorter than the 12-byte header")]
    TooShort(usize),
    /// The version field is not 2.
    #[error("rtp version {0} is not 2")]
    Version(u8),
    /// The CSRC list runs past the end of the packet.
    #[error("rtp csrc list of {0} entries is truncated")]
    TruncatedCsrc(u8),
    /// The header extension runs past the end of the packet.
    #[error("rtp header extension is truncated")]
    TruncatedExtension,
    /// The P bit is set but the padding count is zero or larger than the bytes after the header.
    #[error("rtp padding count {count} is invalid for {available} bytes after the header")]
    Padding {
        /// Value of the last byte.
        count: u8,
        /// Bytes after the header (payload plus padding).
        available: usize,
    },
}

/// A parsed RTP packet that borrows the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    bytes: &'a [u8],
    header_len: usize,
    payload_end: usize,
    extension_at: Option<usize>,
}

impl<'a> RtpPacket<'a> {
    /// Parses `bytes` as one RTP packet, checking the version, the CSRC count, the header
    /// extension length and the padding count against the packet length.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PacketError> {
        if bytes.len() < RTP_HEADER_LEN {
            return Err(PacketError::TooShort(bytes.len()));
        }
        let first = bytes[0];
        let version = first >> 6;
        if version != RTP_VERSION {
            return Err(PacketError::Version(version));
        }

        let csrc_count = first & 0x0f;
        let mut header_len = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        if header_len > bytes.len() {
            return Err(PacketError::TruncatedCsrc(csrc_count));
        }

        let mut extension_at = None;
        if first & 0x10 != 0 {
            // RFC 3550 §5.3.1: a 4-byte extension header whose length counts 32-bit words
            // after it, so a length of 0 is legal and means no extension data.
            let Some(words) = bytes.get(header_len + 2..header_len + 4) else {
                return Err(PacketError::TruncatedExtension);
            };
            let data_len = 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
            let end = header_len + 4 + data_len;
            if end > bytes.len() {
                return Err(PacketError::TruncatedExtension);
            }
            extension_at = Some(header_len);
            header_len = end;
        }

        let mut payload_end = bytes.len();
        if first & 0x20 != 0 {
            // RFC 3550 §5.1: the last byte counts the padding octets, itself included.
            let available = bytes.len() - header_len;
            let count = bytes[bytes.len() - 1];
            if count == 0 || usize::from(count) > available {
                return Err(PacketError::Padding { count, available });
            }
            payload_end -= usize::from(count);
        }

        Ok(RtpPacket {
            bytes,
            header_len,
            payload_end,
            extension_at,
        })
    }

    /// Returns whether the P bit is set (the payload returned excludes the padding).
    pub fn has_padding(&self) -> bool {
        self.bytes[0] & 0x20 != 0
    }

    /// Marker bit; for audio it flags the first packet of a talkspurt (RFC 3551 §4.1).
    pub fn marker(&self) -> bool {
        self.bytes[1] & 0x80 != 0
    }

    /// Payload type.
    pub fn pt(&self) -> Pt {
        Pt(self.bytes[1] & 0x7f)
    }

    /// Sequence number.
    pub fn seq(&self) -> SeqNo {
        SeqNo(u16::from_be_bytes([self.bytes[2], self.bytes[3]]))
    }

    /// Timestamp in the payload's clock.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }

    /// Synchronization source.
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(u32::from_be_bytes([
            self.bytes[8],
            self.bytes[9],
            self.bytes[10],
            self.bytes[11],
        ]))
    }

    /// Contributing sources, in packet order.
    pub fn csrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        let count = usize::from(self.bytes[0] & 0x0f);
        let list = &self.bytes[RTP_HEADER_LEN..RTP_HEADER_LEN + 4 * count];
        list.chunks_exact(4)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }

    /// Returns the header extension, when the X bit is set.
    pub fn extension(&self) -> Option<HeaderExtension<'a>> {
        let at = self.extension_at?;
        let profile = u16::from_be_bytes([self.bytes[at], self.bytes[at + 1]]);
        Some(HeaderExtension::new(
            profile,
            &self.bytes[at + 4..self.header_len],
        ))
    }

    /// Bytes before the payload: fixed header, CSRCs and extension.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Returns the payload without padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.header_len..self.payload_end]
    }

    /// Returns the whole datagram.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Error writing a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The output buffer is smaller than the packet.
    #[error("output buffer of {available} bytes cannot hold {needed} bytes")]
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// The payload type does not fit 7 bits.
    #[error("payload type {0} does not fit 7 bits")]
    PayloadType(u8),
}

/// Fields of the fixed header of a packet we send (no CSRCs, no extension, no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub pt: Pt,
    /// Sequence number.
    pub seq: SeqNo,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: Ssrc,
}

impl RtpHeader {
    /// Writes the 12-byte header into the start of `out` and returns its length, so that an
    /// encoder can write the payload straight after it.
    pub fn write_header(&self, out: &mut [u8]) -> Result<usize, BuildError> {
        if !self.pt.is_valid() {
            return Err(BuildError::PayloadType(self.pt.0));
        }
        let Some(header) = out.get_mut(..RTP_HEADER_LEN) else {
            return Err(BuildError::BufferTooSmall {
                needed: RTP_HEADER_LEN,
                available: out.len(),
            });
        };
        header[0] = RTP_VERSION << 6;
        header[1] = (u8::from(self.marker) << 7) | self.pt.0;
        header[2..4].copy_from_slice(&self.seq.0.to_be_bytes());
        header[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        header[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
        Ok(RTP_HEADER_LEN)
    }

    /// Writes the header followed by `payload` into `out` and returns the packet length.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, BuildError> {
        let needed = RTP_HEADER_LEN + payload.len();
        if out.len() < needed {
            return Err(BuildError::BufferTooSmall {
                needed,
                available: out.len(),
            });
        }
        self.write_header(out)?;
        out[RTP_HEADER_LEN..needed].copy_from_slice(payload);
        Ok(needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(first: u8, second: u8, seq: u16) -> Vec<u8> {
        let mut bytes = vec![first, second];
        bytes.extend_from_slice(&seq.to_be_bytes());
        bytes.extend_from_slice(&0x000C_3500u32.to_be_bytes());
        bytes.extend_from_slice(&0xC0FF_EE01u32.to_be_bytes());
        bytes
    }

    #[test]
    fn parse_reads_fixed_fields() {
        let mut bytes = header(0x80, 0x80, 5000);
        bytes.extend_from_slice(&[0xff; 160]);
        let packet = RtpPacket::parse(&bytes).unwrap();
        assert!(packet.marker());
        assert_eq!(packet.pt(), Pt(0));
        assert_eq!(packet.seq(), SeqNo(5000));
        assert_eq!(packet.timestamp(), 800_000);
        assert_eq!(packet.ssrc(), Ssrc(0xC0FF_EE01));
        assert_eq!(packet.payload().len(), 160);
        assert!(packet.extension().is_none());
    }

    #[test]
    fn padding_is_stripped() {
        let mut bytes = header(0xA0, 0x00, 0x1388);
        bytes.extend_from_slice(&[0x55; 160]);
        bytes.extend_from_slice(&[0, 0, 0, 4]);
        let packet = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(packet.payload(), &[0x55; 160][..]);
    }

    #[test]
    fn padding_without_bytes_is_malformed() {
        let bytes = header(0xA0, 0x00, 0x138C);
        let err = RtpPacket::parse(&bytes).unwrap_err();
        assert_eq!(
            err,
            PacketError::Padding {
                count: 0x01,
                available: 0
            }
        );
    }

    #[test]
    fn padding_larger_than_payload_is_malformed() {
        let mut bytes = header(0xA0, 0x00, 0x138D);
        bytes.extend_from_slice(&[0x11; 19]);
        bytes.push(0xff);
        assert!(matches!(
            RtpPacket::parse(&bytes),
            Err(PacketError::Padding { count: 255, .. })
        ));
    }

    #[test]
    fn padding_count_zero_is_malformed() {
        let mut bytes = header(0xA0, 0x00, 1);
        bytes.extend_from_slice(&[0x11, 0x00]);
        assert!(matches!(
            RtpPacket::parse(&bytes),
            Err(PacketError::Padding { count: 0, .. })
        ));
    }

    #[test]
    fn padding_may_take_whole_remainder() {
        let mut bytes = header(0xA0, 0x00, 1);
        bytes.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(RtpPacket::parse(&bytes).unwrap().payload(), &[] as &[u8]);
    }

    #[test]
    fn empty_extension_moves_payload_to_16() {
        let mut bytes = header(0x90, 0x00, 0x1389);
        bytes.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x00]);
        bytes.extend_from_slice(&[0x33; 160]);
        let packet = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(packet.header_len(), 16);
        assert_eq!(packet.payload().len(), 160);
        let extension = packet.extension().unwrap();
        assert_eq!(extension.profile(), 0xBEDE);
        assert_eq!(extension.elements().count(), 0);
    }

    #[test]
    fn one_word_extension_moves_payload_to_20() {
        let mut bytes = header(0x90, 0x00, 0x138A);
        bytes.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAA, 0x00, 0x00]);
        bytes.extend_from_slice(&[0x33; 160]);
        let packet = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.payload(), &[0x33; 160][..]);
    }

    #[test]
    fn csrcs_are_listed_and_skipped() {
        let mut bytes = header(0x82, 0x00, 0x138B);
        bytes.extend_from_slice(&[0, 0, 0, 0x11, 0, 0, 0, 0x22]);
        bytes.extend_from_slice(&[0x33; 160]);
        let packet = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(packet.header_len(), 20);
        let csrcs: Vec<_> = packet.csrcs().collect();
        assert_eq!(csrcs, vec![Ssrc(0x11), Ssrc(0x22)]);
        assert_eq!(packet.payload().len(), 160);
    }

    #[test]
    fn truncated_csrc_list_is_malformed() {
        let mut bytes = header(0x8F, 0x00, 1);
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(
            RtpPacket::parse(&bytes),
            Err(PacketError::TruncatedCsrc(15))
        );
    }

    #[test]
    fn truncated_extension_is_malformed() {
        let mut bytes = header(0x90, 0x00, 1);
        bytes.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x02, 0x10, 0xAA]);
        assert_eq!(
            RtpPacket::parse(&bytes),
            Err(PacketError::TruncatedExtension)
        );
        let short = header(0x90, 0x00, 1);
        assert_eq!(
            RtpPacket::parse(&short),
            Err(PacketError::TruncatedExtension)
        );
    }

    #[test]
    fn version_one_is_rejected() {
        let bytes = header(0x40, 0x00, 1);
        assert_eq!(RtpPacket::parse(&bytes), Err(PacketError::Version(1)));
    }

    #[test]
    fn short_input_is_rejected() {
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]),
            Err(PacketError::TooShort(11))
        );
        assert_eq!(RtpPacket::parse(&[]), Err(PacketError::TooShort(0)));
    }

    #[test]
    fn header_round_trips() {
        let header = RtpHeader {
            marker: true,
            pt: Pt(101),
            seq: SeqNo(65535),
            timestamp: 0xDEAD_BEEF,
            ssrc: Ssrc(0x1234_5678),
        };
        let mut out = [0u8; 64];
        let len = header.write(&[1, 2, 3, 4], &mut out).unwrap();
        assert_eq!(len, 16);
        let packet = RtpPacket::parse(&out[..len]).unwrap();
        assert!(packet.marker());
        assert_eq!(packet.pt(), Pt(101));
        assert_eq!(packet.seq(), SeqNo(65535));
        assert_eq!(packet.timestamp(), 0xDEAD_BEEF);
        assert_eq!(packet.ssrc(), Ssrc(0x1234_5678));
        assert_eq!(packet.payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn write_rejects_small_buffer() {
        let header = RtpHeader {
            marker: false,
            pt: Pt(0),
            seq: SeqNo(1),
            timestamp: 0,
            ssrc: Ssrc(1),
        };
        let mut out = [0u8; 20];
        assert_eq!(
            header.write(&[0; 9], &mut out),
            Err(BuildError::BufferTooSmall {
                needed: 21,
                available: 20
            })
        );
    }

    #[test]
    fn write_rejects_wide_payload_type() {
        let header = RtpHeader {
            marker: false,
            pt: Pt(128),
            seq: SeqNo(1),
            timestamp: 0,
            ssrc: Ssrc(1),
        };
        let mut out = [0u8; 20];
        assert_eq!(
            header.write_header(&mut out),
            Err(BuildError::PayloadType(128))
        );
    }
}
