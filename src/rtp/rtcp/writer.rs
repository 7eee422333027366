//! Writing RTCP packets (SR, RR, SDES CNAME, BYE) into a caller-provided buffer; several
//! calls in a row build a compound packet (RFC 3550 §6.1).

use super::packet::{PT_BYE, PT_RR, PT_SDES, PT_SR, REPORT_BLOCK_LEN, ReportBlock, SDES_CNAME};
use crate::rtp::ids::Ssrc;
use crate::rtp::packet::BuildError;
use crate::rtp::sender::SenderCounts;

/// Most report blocks one SR or RR can carry (the 5-bit count field).
pub const MAX_REPORT_BLOCKS: usize = 31;

/// Writes a sender report for `ssrc` at NTP time `ntp` and returns its length. Blocks past
/// [`MAX_REPORT_BLOCKS`] are left out.
pub fn write_sender_report(
    out: &mut [u8],
    ssrc: Ssrc,
    ntp: u64,
    counts: SenderCounts,
    blocks: &[ReportBlock],
) -> Result<usize, BuildError> {
    let blocks = &blocks[..blocks.len().min(MAX_REPORT_BLOCKS)];
    let len = 28 + REPORT_BLOCK_LEN * blocks.len();
    let packet = room(out, len)?;
    write_header(packet, blocks.len() as u8, PT_SR, len);
    packet[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    packet[8..16].copy_from_slice(&ntp.to_be_bytes());
    packet[16..20].copy_from_slice(&counts.rtp_timestamp.to_be_bytes());
    packet[20..24].copy_from_slice(&counts.packets.to_be_bytes());
    packet[24..28].copy_from_slice(&counts.octets.to_be_bytes());
    write_blocks(&mut packet[28..], blocks);
    Ok(len)
}

/// Writes a receiver report from `ssrc` and returns its length. Blocks past
/// [`MAX_REPORT_BLOCKS`] are left out.
pub fn write_receiver_report(
    out: &mut [u8],
    ssrc: Ssrc,
    blocks: &[ReportBlock],
) -> Result<usize, BuildError> {
    let blocks = &blocks[..blocks.len().min(MAX_REPORT_BLOCKS)];
    let len = 8 + REPORT_BLOCK_LEN * blocks.len();
    let packet = room(out, len)?;
    write_header(packet, blocks.len() as u8, PT_RR, len);
    packet[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    write_blocks(&mut packet[8..], blocks);
    Ok(len)
}

/// Writes an SDES packet with one chunk carrying the CNAME (truncated to 255 bytes) and
/// returns its length.
pub fn write_sdes_cname(out: &mut [u8], ssrc: Ssrc, cname: &str) -> Result<usize, BuildError> {
    let name = &cname.as_bytes()[..cname.len().min(255)];
    // Header, SSRC, item type and length, the name, then at least one null byte to a
    // 32-bit boundary (RFC 3550 §6.5).
    let chunk = 4 + 2 + name.len() + 1;
    let len = 4 + chunk.div_ceil(4) * 4;
    let packet = room(out, len)?;
    write_header(packet, 1, PT_SDES, len);
    packet[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    packet[8] = SDES_CNAME;
    packet[9] = name.len() as u8;
    packet[10..10 + name.len()].copy_from_slice(name);
    packet[10 + name.len()..].fill(0);
    Ok(len)
}

/// Writes a BYE for `ssrcs` (at most 31) with an optional reason (truncated to 255 bytes)
/// and returns its length.
pub fn write_bye(out: &mut [u8], ssrcs: &[Ssrc], reason: &str) -> Result<usize, BuildError> {
    let ssrcs = &ssrcs[..ssrcs.len().min(MAX_REPORT_BLOCKS)];
    let reason = &reason.as_bytes()[..reason.len().min(255)];
    let reason_len = if reason.is_empty() {
        0
    } else {
        (1 + reason.len()).div_ceil(4) * 4
    };
    let len = 4 + 4 * ssrcs.len() + reason_len;
    let packet = room(out, len)?;
    write_header(packet, ssrcs.len() as u8, PT_BYE, len);
    for (i, ssrc) in ssrcs.iter().enumerate() {
        packet[4 + 4 * i..8 + 4 * i].copy_from_slice(&ssrc.0.to_be_bytes());
    }
    if !reason.is_empty() {
        let at = 4 + 4 * ssrcs.len();
        packet[at] = reason.len() as u8;
        packet[at + 1..at + 1 + reason.len()].copy_from_slice(reason);
        packet[at + 1 + reason.len()..].fill(0);
    }
    Ok(len)
}

fn room(out: &mut [u8], len: usize) -> Result<&mut [u8], BuildError> {
    let available = out.len();
    out.get_mut(..len).ok_or(BuildError::BufferTooSmall {
        needed: len,
        available,
    })
}

fn write_header(packet: &mut [u8], count: u8, packet_type: u8, len: usize) {
    packet[0] = (2 << 6) | (count & 0x1f);
    packet[1] = packet_type;
    let words = (len / 4 - 1) as u16;
    packet[2..4].copy_from_slice(&words.to_be_bytes());
}

fn write_blocks(out: &mut [u8], blocks: &[ReportBlock]) {
    for (block, bytes) in blocks.iter().zip(out.chunks_exact_mut(REPORT_BLOCK_LEN)) {
        bytes[0..4].copy_from_slice(&block.ssrc.0.to_be_bytes());
        let lost = (block.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
        let loss_word = (u32::from(block.fraction_lost) << 24) | lost;
        bytes[4..8].copy_from_slice(&loss_word.to_be_bytes());
        bytes[8..12].copy_from_slice(&block.extended_highest.to_be_bytes());
        bytes[12..16].copy_from_slice(&block.jitter.to_be_bytes());
        bytes[16..20].copy_from_slice(&block.last_sr.to_be_bytes());
        bytes[20..24].copy_from_slice(&block.delay_since_last_sr.to_be_bytes());
    }
}
