//! RTP and RTCP (RFC 3550): packets, sequence and SSRC tracking, the jitter buffer, RFC 4733
//! telephone events, port allocation and symmetric-RTP latching.

mod config;

pub use config::RtpConfig;
