//! RTCP (RFC 3550 §6): compound packet parsing, SR/RR/SDES/BYE writing, NTP time and the
//! report interval.

mod interval;
mod ntp;
mod packet;
mod peer;
#[cfg(test)]
mod tests;
mod writer;

pub use interval::{MinInterval, RtcpScheduler, UDP_IP_OVERHEAD};
pub use ntp::{NtpClock, compact, compact_to_duration, duration_to_compact, duration_to_ntp};
pub use packet::{
    App, Compound, Goodbye, PT_APP, PT_BYE, PT_RR, PT_SDES, PT_SR, REPORT_BLOCK_LEN,
    ReceiverReport, ReportBlock, ReportBlocks, RtcpError, RtcpPacket, SDES_CNAME, SdesChunk,
    SdesItem, SenderReport, SourceDescription, parse_compound,
};
pub use peer::{PeerReport, PeerReports};
pub use writer::{
    MAX_REPORT_BLOCKS, write_bye, write_receiver_report, write_sdes_cname, write_sender_report,
};
