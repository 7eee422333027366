//! Symmetric RTP latching (the behaviour RFC 4961 describes): learn where the peer really
//! sends from, send our media there, and ignore media from anywhere else.
//!
//! The SDP address of a caller behind NAT is often private or wrong, so the first valid
//! packet inside a learning window (call start, each re-INVITE) fixes the peer's address.
//! After that, packets from other addresses are dropped and counted, so that media sprayed at
//! our port range never reaches a caller's speech recognition ("RTP bleed"). The latch moves
//! only after a run of consecutive packets from one new address that continue the played
//! stream (same SSRC, next sequence numbers), which is what a NAT rebinding looks like and
//! what one spoofed packet cannot fake. When the latched source has been silent for a while,
//! a run from a new address may also bring a new SSRC.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::config::RtpConfig;
use super::ids::{SeqNo, Ssrc};

/// Maximum forward distance between the played stream's highest sequence number and the first
/// packet of a re-latch run. It covers the packets lost while a NAT rebinds.
const RELATCH_SEQ_REACH: i16 = 50;

/// Latching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatchConfig {
    /// Drop media from addresses other than the latched one (otherwise it is played, but the
    /// latch still moves only by the rules above).
    pub strict: bool,
    /// How long a learning window stays open.
    pub window: Duration,
    /// Silence of the latched source after which a new address may bring a new SSRC.
    pub idle: Duration,
    /// Consecutive packets a new address must send to move the latch.
    pub relatch_packets: u32,
}

impl LatchConfig {
    /// Builds the settings from the `[rtp]` section; `strict` is the trunk's choice.
    pub fn new(config: &RtpConfig, strict: bool) -> Self {
        LatchConfig {
            strict,
            window: Duration::from_millis(config.latch_window_ms),
            idle: Duration::from_millis(config.latch_idle_ms),
            relatch_packets: config.relatch_packets.max(1),
        }
    }
}

/// The stream being played, which a re-latch run has to continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayedStream {
    /// Its SSRC.
    pub ssrc: Ssrc,
    /// Highest sequence number received from it.
    pub highest_seq: SeqNo,
}

/// Decision on a packet by its source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchVerdict {
    /// From the latched address (or just latched): play it.
    Accept,
    /// From another address but strict mode is off: play it, the latch stays.
    AcceptForeign,
    /// From another address in strict mode: drop it.
    Reject,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    addr: SocketAddr,
    ssrc: Ssrc,
    last_seq: SeqNo,
    packets: u32,
}

/// Peer address state: where its media comes from and where ours goes.
#[derive(Debug, Clone)]
pub struct Latch {
    config: LatchConfig,
    advertised: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    window_until: Option<Instant>,
    /// A re-INVITE opened the window: the next packet sets the latch, from wherever it comes.
    relearn: bool,
    last_accepted: Option<Instant>,
    run: Option<Run>,
    foreign: u64,
    moves: u32,
}

impl Latch {
    /// Creates a latch for a call whose SDP gave `advertised` (if any), with the learning
    /// window open from `now`.
    pub fn new(config: LatchConfig, advertised: Option<SocketAddr>, now: Instant) -> Self {
        Latch {
            config,
            advertised,
            latched: None,
            window_until: Some(now + config.window),
            relearn: false,
            last_accepted: None,
            run: None,
            foreign: 0,
            moves: 0,
        }
    }

    /// Opens a new learning window, for a re-INVITE that may have moved the peer; `advertised`
    /// is the new SDP address.
    pub fn open_window(&mut self, now: Instant, advertised: Option<SocketAddr>) {
        self.advertised = advertised;
        self.window_until = Some(now + self.config.window);
        self.relearn = true;
        self.run = None;
    }

    /// Changes strict mode, for a trunk setting that arrives after the call started.
    pub fn set_strict(&mut self, strict: bool) {
        self.config.strict = strict;
    }

    /// Decides on a valid RTP packet from `from` with `ssrc` and `seq`; `played` is the stream
    /// currently played, if any. Call it only for packets that parsed and carry a negotiated
    /// payload type.
    pub fn check(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ssrc: Ssrc,
        seq: SeqNo,
        played: Option<PlayedStream>,
    ) -> LatchVerdict {
        if self.latched == Some(from) {
            self.last_accepted = Some(now);
            self.run = None;
            // The peer stayed where it was: the window has done its job.
            self.close_window();
            return LatchVerdict::Accept;
        }
        if self.may_learn(now, from) {
            self.move_to(now, from, "learned");
            self.close_window();
            return LatchVerdict::Accept;
        }
        if self.extend_run(now, from, ssrc, seq, played) {
            self.move_to(now, from, "moved");
            return LatchVerdict::Accept;
        }
        self.foreign += 1;
        if self.config.strict {
            LatchVerdict::Reject
        } else {
            LatchVerdict::AcceptForeign
        }
    }

    /// Returns whether a packet from `from` may take the latch at once. That is the first packet
    /// inside an open learning window, or one from the SDP address while nothing is latched.
    fn may_learn(&self, now: Instant, from: SocketAddr) -> bool {
        let window_open = self.window_until.is_some_and(|until| now <= until);
        if window_open && (self.latched.is_none() || self.relearn) {
            return true;
        }
        self.latched.is_none() && self.advertised == Some(from)
    }

    fn close_window(&mut self) {
        self.window_until = None;
        self.relearn = false;
    }

    /// Counts a packet towards a re-latch run; returns true when the run is complete.
    fn extend_run(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ssrc: Ssrc,
        seq: SeqNo,
        played: Option<PlayedStream>,
    ) -> bool {
        let idle = self
            .last_accepted
            .is_none_or(|at| now.saturating_duration_since(at) >= self.config.idle);
        let continues =
            |run: &Run| run.addr == from && run.ssrc == ssrc && seq.delta(run.last_seq) == 1;

        let run = match self.run {
            Some(run) if continues(&run) => Run {
                last_seq: seq,
                packets: run.packets + 1,
                ..run
            },
            _ if idle || continues_played(played, ssrc, seq) => Run {
                addr: from,
                ssrc,
                last_seq: seq,
                packets: 1,
            },
            _ => {
                // Neither the next packet of a run nor a plausible start of one.
                return false;
            }
        };
        if run.packets >= self.config.relatch_packets {
            self.run = None;
            return true;
        }
        self.run = Some(run);
        false
    }

    fn move_to(&mut self, now: Instant, to: SocketAddr, how: &'static str) {
        if let Some(from) = self.latched {
            tracing::info!(%from, %to, how, "rtp source address changed");
        } else {
            tracing::debug!(%to, how, "rtp source address latched");
        }
        self.latched = Some(to);
        self.last_accepted = Some(now);
        self.run = None;
        self.moves += 1;
    }

    /// Returns the address for our RTP: the latched address, else the SDP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.advertised)
    }

    /// Returns the address for our RTCP. With rtcp-mux it is the RTP destination, else the
    /// latched address's port plus one (RFC 3550 §11). Before latching, an SDP `a=rtcp`
    /// address (`advertised_rtcp`) wins over the SDP RTP port plus one.
    pub fn rtcp_destination(
        &self,
        rtcp_mux: bool,
        advertised_rtcp: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        if rtcp_mux {
            return self.destination();
        }
        match self.latched {
            Some(mut addr) => {
                addr.set_port(addr.port().wrapping_add(1));
                Some(addr)
            }
            None => advertised_rtcp.or_else(|| {
                self.advertised.map(|mut addr| {
                    addr.set_port(addr.port().wrapping_add(1));
                    addr
                })
            }),
        }
    }

    /// Returns the latched address, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Packets seen from addresses other than the latched one.
    pub fn foreign_packets(&self) -> u64 {
        self.foreign
    }

    /// Times the latch was set or moved.
    pub fn moves(&self) -> u32 {
        self.moves
    }
}

/// Returns whether a packet could start a re-latch run: it has the played stream's SSRC and a
/// sequence number just after the highest one received.
fn continues_played(played: Option<PlayedStream>, ssrc: Ssrc, seq: SeqNo) -> bool {
    played.is_some_and(|p| {
        let ahead = seq.delta(p.highest_seq);
        p.ssrc == ssrc && ahead > 0 && ahead <= RELATCH_SEQ_REACH
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENUINE: &str = "203.0.113.77:61234";
    const MOVED: &str = "203.0.113.77:61300";
    const ATTACKER: &str = "198.51.100.200:5555";
    const SPOOFER: &str = "192.0.2.99:7000";
    const SDP: &str = "10.0.0.23:4000";

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn config(strict: bool) -> LatchConfig {
        LatchConfig {
            strict,
            window: Duration::from_secs(3),
            idle: Duration::from_secs(5),
            relatch_packets: 5,
        }
    }

    struct Call {
        latch: Latch,
        start: Instant,
        highest: SeqNo,
    }

    impl Call {
        fn new(strict: bool) -> Self {
            let start = Instant::now();
            Call {
                latch: Latch::new(config(strict), Some(addr(SDP)), start),
                start,
                highest: SeqNo(99),
            }
        }

        fn packet(&mut self, at_ms: u64, from: &str, ssrc: u32, seq: u16) -> LatchVerdict {
            let played = Some(PlayedStream {
                ssrc: Ssrc(0xABCD0001),
                highest_seq: self.highest,
            });
            let verdict = self.latch.check(
                self.start + Duration::from_millis(at_ms),
                addr(from),
                Ssrc(ssrc),
                SeqNo(seq),
                played,
            );
            if verdict != LatchVerdict::Reject && ssrc == 0xABCD0001 {
                self.highest = SeqNo(seq);
            }
            verdict
        }
    }

    #[test]
    fn first_packet_latches_not_sdp_address() {
        let mut call = Call::new(true);
        assert_eq!(call.latch.destination(), Some(addr(SDP)));
        assert_eq!(
            call.packet(0, GENUINE, 0xABCD0001, 100),
            LatchVerdict::Accept
        );
        assert_eq!(call.latch.destination(), Some(addr(GENUINE)));
        assert_eq!(
            call.latch.rtcp_destination(false, None),
            Some(addr("203.0.113.77:61235"))
        );
        assert_eq!(call.latch.rtcp_destination(true, None), Some(addr(GENUINE)));
    }

    #[test]
    fn foreign_burst_is_rejected_and_counted() {
        let mut call = Call::new(true);
        for i in 0..500u16 {
            call.packet(u64::from(i) * 20, GENUINE, 0xABCD0001, 100 + i);
        }
        for i in 0..50u16 {
            let verdict = call.packet(10_000 + u64::from(i) * 20, ATTACKER, 0xDEAD0001, i);
            assert_eq!(verdict, LatchVerdict::Reject, "packet {i}");
        }
        assert_eq!(call.latch.destination(), Some(addr(GENUINE)));
        assert_eq!(call.latch.foreign_packets(), 50);
    }

    #[test]
    fn port_change_relatches_after_run() {
        let mut call = Call::new(true);
        for i in 0..1000u16 {
            call.packet(u64::from(i) * 20, GENUINE, 0xABCD0001, 100 + i);
        }
        // The NAT rebinds: same SSRC, sequence continues, new port.
        let mut verdicts = Vec::new();
        for i in 0..6u16 {
            verdicts.push(call.packet(20_000 + u64::from(i) * 20, MOVED, 0xABCD0001, 1100 + i));
        }
        assert_eq!(&verdicts[..4], &[LatchVerdict::Reject; 4]);
        assert_eq!(verdicts[4], LatchVerdict::Accept);
        assert_eq!(verdicts[5], LatchVerdict::Accept);
        assert_eq!(call.latch.destination(), Some(addr(MOVED)));
    }

    #[test]
    fn single_spoofed_packet_never_moves() {
        let mut call = Call::new(true);
        for i in 0..100u16 {
            call.packet(u64::from(i) * 20, GENUINE, 0xABCD0001, 100 + i);
        }
        assert_eq!(
            call.packet(2_000, SPOOFER, 0xABCD0001, 200),
            LatchVerdict::Reject
        );
        for i in 0..100u16 {
            assert_eq!(
                call.packet(2_000 + u64::from(i) * 20, GENUINE, 0xABCD0001, 200 + i),
                LatchVerdict::Accept
            );
        }
        assert_eq!(call.latch.destination(), Some(addr(GENUINE)));
        assert_eq!(call.latch.moves(), 1);
    }

    #[test]
    fn spoofer_run_interrupted_by_genuine_never_moves() {
        let mut call = Call::new(true);
        for i in 0..50u16 {
            call.packet(u64::from(i) * 20, GENUINE, 0xABCD0001, 100 + i);
        }
        // A spoofer copies every genuine packet with the next sequence number.
        for i in 0..50u16 {
            let at = 1_000 + u64::from(i) * 20;
            let seq = call.highest.0.wrapping_add(1);
            call.packet(at, SPOOFER, 0xABCD0001, seq);
            call.packet(at + 1, GENUINE, 0xABCD0001, seq);
        }
        assert_eq!(call.latch.destination(), Some(addr(GENUINE)));
    }

    #[test]
    fn new_ssrc_run_needs_idle_source() {
        let mut call = Call::new(true);
        for i in 0..10u16 {
            call.packet(u64::from(i) * 20, GENUINE, 0xABCD0001, 100 + i);
        }
        // A different SSRC from a new address while the caller is active: never.
        for i in 0..20u16 {
            let verdict = call.packet(300 + u64::from(i) * 20, ATTACKER, 0x1234, i);
            assert_eq!(verdict, LatchVerdict::Reject);
        }
        // After 5 s of silence, a run of 5 packets may bring a new SSRC.
        let mut last = LatchVerdict::Reject;
        for i in 0..5u16 {
            last = call.packet(6_000 + u64::from(i) * 20, MOVED, 0x5555, 7 + i);
        }
        assert_eq!(last, LatchVerdict::Accept);
        assert_eq!(call.latch.destination(), Some(addr(MOVED)));
    }

    #[test]
    fn reinvite_window_accepts_new_address() {
        let mut call = Call::new(true);
        call.packet(0, GENUINE, 0xABCD0001, 100);
        call.latch
            .open_window(call.start + Duration::from_secs(30), Some(addr(MOVED)));
        assert_eq!(call.packet(30_020, MOVED, 0x7777, 1), LatchVerdict::Accept);
        assert_eq!(call.latch.destination(), Some(addr(MOVED)));
    }

    #[test]
    fn lenient_mode_plays_foreign_but_keeps_latch() {
        let mut call = Call::new(false);
        call.packet(0, GENUINE, 0xABCD0001, 100);
        assert_eq!(
            call.packet(20, ATTACKER, 0xDEAD0001, 1),
            LatchVerdict::AcceptForeign
        );
        assert_eq!(call.latch.destination(), Some(addr(GENUINE)));
    }

    #[test]
    fn late_first_packet_from_sdp_address_latches() {
        let mut call = Call::new(true);
        // The window closes with nothing received; an unknown address cannot latch now...
        assert_eq!(
            call.packet(10_000, ATTACKER, 0xDEAD0001, 1),
            LatchVerdict::Reject
        );
        // ...but the address the SDP gave can.
        assert_eq!(
            call.packet(10_020, SDP, 0xABCD0001, 100),
            LatchVerdict::Accept
        );
        assert_eq!(call.latch.latched(), Some(addr(SDP)));
    }
}
