//! Scenario tests of the RTP layer on a virtual clock: packet sequences that real voice servers
//! got wrong, fed to a session exactly as a media worker would, plus randomised parser input.

#[path = "rtp/harness.rs"]
mod harness;

#[path = "rtp/dtmf.rs"]
mod dtmf;
#[path = "rtp/edge.rs"]
mod edge;
#[path = "rtp/fuzz.rs"]
mod fuzz;
#[path = "rtp/latch.rs"]
mod latch;
#[path = "rtp/ports.rs"]
mod ports;
#[path = "rtp/sequence.rs"]
mod sequence;
#[path = "rtp/ssrc.rs"]
mod ssrc;
