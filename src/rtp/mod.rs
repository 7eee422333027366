//! RTP and RTCP (RFC 3550): packets, sequence and SSRC tracking, the jitter buffer, RFC 4733
//! telephone events, port allocation and symmetric-RTP latching.
//!
//! Everything here is sans-IO: functions take the bytes that arrived and the time they arrived
//! (`now: Instant`) and return what to do, so a media worker can drive thousands of calls
//! without sockets or timers inside this module.

mod classify;
mod config;
mod dtmf;
mod extension;
mod fuzzing;
mod ids;
mod jitter;
mod latch;
mod metrics;
mod packet;
mod port;
pub mod rtcp;
mod sender;
mod session;
mod source;
mod stats;

pub use classify::{Datagram, classify};
pub use config::RtpConfig;
pub use dtmf::{
    DtmfEvent, DtmfReceiver, END_PACKETS, EVENT_PAYLOAD_LEN, EventError, EventGenerator,
    TelephoneEvent, digit_to_event, event_to_digit,
};
pub use extension::{ExtensionElement, ExtensionElements, HeaderExtension, ONE_BYTE_PROFILE};
pub use fuzzing::parse_everything;
pub use ids::{ExtSeq, Pt, SeqNo, Ssrc, ts_delta};
pub use jitter::{
    DelayEstimator, FecSource, Incoming, JitterBuffer, JitterConfig, JitterStats, PayloadKind,
    PlayoutItem, PlayoutPacket,
};
pub use latch::{Latch, LatchConfig, LatchVerdict, PlayedStream};
pub use metrics::register_all as register_metrics;
pub use packet::{BuildError, PacketError, RTP_HEADER_LEN, RTP_VERSION, RtpHeader, RtpPacket};
pub use port::{PortAllocator, PortError, PortLease};
pub use sender::{RtpSender, SenderCounts};
pub use session::{
    DurationFn, PayloadRole, PayloadTable, Received, RtpSession, SessionConfig, SessionEvent,
    g711_duration,
};
pub use source::{LossReport, MAX_DROPOUT, MAX_MISORDER, MIN_SEQUENTIAL, SeqOutcome, Source};
pub use stats::{DropCounts, DropReason, ReceiveStats, SourceStats};
