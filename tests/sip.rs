//! The SIP stack against real peers over loopback sockets: SIPp scenarios, baresip over UDP
//! and TCP, and the field cases (malformed requests, IPv6, retransmissions, TCP framing)
//! sent as raw bytes. Every test starts its own in-process server on port 0.

mod sip {
    pub mod baresip;
    pub mod cases;
    pub mod harness;
    pub mod sipp;
}
