//! Newtypes for the numbers RTP carries, so that an SSRC, a sequence number and a payload type
//! cannot be mixed up.

use std::fmt;

/// Synchronization source identifier (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// 16-bit RTP sequence number as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// Returns the signed distance from `earlier` to `self` in 16-bit serial arithmetic, so that
    /// 1 follows 65535 by +2.
    pub fn delta(self, earlier: SeqNo) -> i16 {
        self.0.wrapping_sub(earlier.0) as i16
    }

    /// Returns the sequence number `n` steps later, wrapping at 65535.
    pub fn wrapping_add(self, n: u16) -> SeqNo {
        SeqNo(self.0.wrapping_add(n))
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Sequence number extended with the count of 16-bit wraps (RFC 3550 §A.1), so it grows
/// monotonically for a continuous stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ExtSeq(pub u64);

impl ExtSeq {
    /// Returns the 16-bit sequence number this extends.
    pub fn seq(self) -> SeqNo {
        SeqNo(self.0 as u16)
    }
}

impl fmt::Display for ExtSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// 7-bit RTP payload type (RFC 3550 §5.1). Numbers 96-127 are dynamic and mean whatever the
/// SDP negotiation made them mean for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pt(pub u8);

impl Pt {
    /// Static comfort noise payload type (RFC 3551 §6, RFC 3389).
    pub const COMFORT_NOISE: Pt = Pt(13);

    /// Returns whether the value fits the 7-bit field.
    pub fn is_valid(self) -> bool {
        self.0 < 128
    }
}

impl fmt::Display for Pt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Returns the signed distance from `earlier` to `later` in 32-bit serial arithmetic, for RTP
/// timestamps that wrap (RFC 3550 §5.1).
pub fn ts_delta(later: u32, earlier: u32) -> i32 {
    later.wrapping_sub(earlier) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_delta_crosses_wrap() {
        assert_eq!(SeqNo(1).delta(SeqNo(65535)), 2);
        assert_eq!(SeqNo(65535).delta(SeqNo(1)), -2);
        assert_eq!(SeqNo(12676).delta(SeqNo(21294)), -8618);
    }

    #[test]
    fn seq_add_wraps() {
        assert_eq!(SeqNo(65535).wrapping_add(1), SeqNo(0));
    }

    #[test]
    fn ts_delta_crosses_wrap() {
        assert_eq!(ts_delta(100, u32::MAX - 59), 160);
        assert_eq!(ts_delta(u32::MAX - 59, 100), -160);
    }

    #[test]
    fn ssrc_displays_hex() {
        assert_eq!(Ssrc(0x1A2B3C4D).to_string(), "0x1a2b3c4d");
    }

    #[test]
    fn ext_seq_keeps_low_bits() {
        assert_eq!(ExtSeq(65536 + 5).seq(), SeqNo(5));
    }
}
