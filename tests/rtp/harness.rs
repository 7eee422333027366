//! A virtual-clock driver for one RTP session: merges packet arrivals with 20 ms playout ticks
//! and records what the media path would have played.

use std::net::SocketAddr;
use std::time::{Duration, Instant, UNIX_EPOCH};

use voicegate::rtp::{
    PayloadTable, PlayoutItem, Pt, Received, RtpConfig, RtpHeader, RtpSession, SeqNo,
    SessionConfig, SessionEvent, Ssrc, g711_duration,
};

pub const TICK_MS: u64 = 20;

/// Parses a test address. Addresses are only values here, because nothing is sent anywhere.
pub fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

/// One thing played at a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Packet(Played),
    Lost {
        samples: u32,
        fec: bool,
    },
    Silence {
        samples: u32,
        comfort_noise: Option<u8>,
    },
    Nothing,
}

/// A packet handed to the decoder, identified by the tag the harness wrote into its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Played {
    pub at_ms: u64,
    pub ssrc: Ssrc,
    pub pt: Pt,
    pub tag_seq: Option<u16>,
    pub len: usize,
    pub new_source: bool,
}

/// A datagram arriving at `at_ms` from `from`.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at_ms: u64,
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Builds an RTP packet.
pub fn rtp(ssrc: u32, seq: u16, ts: u32, pt: u8, marker: bool, payload: &[u8]) -> Vec<u8> {
    let header = RtpHeader {
        marker,
        pt: Pt(pt),
        seq: SeqNo(seq),
        timestamp: ts,
        ssrc: Ssrc(ssrc),
    };
    let mut out = vec![0u8; 12 + payload.len()];
    let len = header.write(payload, &mut out).expect("buffer fits");
    out.truncate(len);
    out
}

/// Builds a PCMU payload whose first bytes carry the sequence number and SSRC, so that the
/// test can tell which packet was played.
pub fn tagged_payload(ssrc: u32, seq: u16, len: usize) -> Vec<u8> {
    let mut payload = vec![0xFF; len.max(8)];
    payload[0] = 0xA5;
    payload[1..3].copy_from_slice(&seq.to_be_bytes());
    payload[3..7].copy_from_slice(&ssrc.to_be_bytes());
    payload.truncate(len.max(8));
    payload
}

/// Builds a tagged 20 ms PCMU packet.
pub fn audio(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
    rtp(ssrc, seq, ts, 0, false, &tagged_payload(ssrc, seq, 160))
}

fn read_tag(payload: &[u8]) -> Option<u16> {
    (payload.first() == Some(&0xA5) && payload.len() >= 3)
        .then(|| u16::from_be_bytes([payload[1], payload[2]]))
}

/// One call's session on a virtual clock.
pub struct Call {
    pub session: RtpSession,
    pub start: Instant,
    pub outputs: Vec<(u64, Out)>,
    pub events: Vec<SessionEvent>,
    pub received: Vec<(u64, Received)>,
    next_tick_ms: u64,
}

impl Call {
    /// Creates a PCMU call with telephone-event 101/8000, CN, strict latching and the SDP address.
    pub fn pcmu(advertised: Option<SocketAddr>) -> Self {
        let payloads = PayloadTable::new()
            .with_audio(Pt(0), 8000, Some(g711_duration))
            .with_comfort_noise(Pt(13))
            .with_telephone_event(Pt(101), 8000);
        Self::with_payloads(payloads, true, advertised)
    }

    pub fn with_payloads(
        payloads: PayloadTable,
        strict: bool,
        advertised: Option<SocketAddr>,
    ) -> Self {
        let mut config = SessionConfig::new(
            &RtpConfig::default(),
            payloads,
            Duration::from_millis(20),
            strict,
        );
        config.advertised = advertised;
        config.seed = 1;
        let start = Instant::now();
        Call {
            session: RtpSession::new(config, start, UNIX_EPOCH),
            start,
            outputs: Vec::new(),
            events: Vec::new(),
            received: Vec::new(),
            next_tick_ms: 0,
        }
    }

    pub fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// Feeds the arrivals (in any order; they are sorted by time) and ticks every 20 ms up to
    /// `until_ms`. Arrivals at the same instant as a tick come first; arrivals after
    /// `until_ms` are left out.
    pub fn run(&mut self, mut arrivals: Vec<Arrival>, until_ms: u64) {
        arrivals.sort_by_key(|a| a.at_ms);
        let mut arrivals = arrivals.into_iter().peekable();
        while self.next_tick_ms <= until_ms {
            let tick = self.next_tick_ms;
            while let Some(arrival) = arrivals.next_if(|a| a.at_ms <= tick) {
                self.deliver(arrival);
            }
            self.tick(tick);
            self.next_tick_ms += TICK_MS;
        }
    }

    fn deliver(&mut self, arrival: Arrival) {
        let now = self.at(arrival.at_ms);
        let received = self
            .session
            .handle_datagram(now, arrival.from, &arrival.bytes);
        self.received.push((arrival.at_ms, received));
        self.drain_events();
    }

    /// Pops everything due at this tick, as a media worker does, and records it. A tick with
    /// nothing due records one `Nothing`.
    fn tick(&mut self, at_ms: u64) {
        let now = self.at(at_ms);
        if self.session.poll_timeout() <= now {
            self.session.handle_timeout(now);
        }
        let mut popped = 0;
        loop {
            let out = match self.session.pop_playout(now) {
                PlayoutItem::Nothing => break,
                PlayoutItem::Packet(p) => Out::Packet(Played {
                    at_ms,
                    ssrc: p.ssrc,
                    pt: p.pt,
                    tag_seq: read_tag(p.payload),
                    len: p.payload.len(),
                    new_source: p.new_source,
                }),
                PlayoutItem::Lost { samples, fec } => Out::Lost {
                    samples,
                    fec: fec.is_some(),
                },
                PlayoutItem::Silence {
                    samples,
                    comfort_noise,
                } => Out::Silence {
                    samples,
                    comfort_noise,
                },
            };
            self.outputs.push((at_ms, out));
            popped += 1;
            assert!(
                popped <= 64,
                "pop_playout keeps returning items at {at_ms} ms"
            );
        }
        if popped == 0 {
            self.outputs.push((at_ms, Out::Nothing));
        }
        self.drain_events();
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            self.events.push(event);
        }
    }

    /// Returns every packet played, in order.
    pub fn played(&self) -> Vec<Played> {
        self.outputs
            .iter()
            .filter_map(|(_, out)| match out {
                Out::Packet(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// Sequence tags of the packets played, in order.
    pub fn played_seqs(&self) -> Vec<u16> {
        self.played().iter().filter_map(|p| p.tag_seq).collect()
    }

    /// Ticks that concealed a loss.
    pub fn concealed_ticks(&self) -> usize {
        self.outputs
            .iter()
            .filter(|(_, out)| matches!(out, Out::Lost { .. }))
            .count()
    }

    /// Returns the maximum run of ticks between `from_ms` and `to_ms` that played no new packet
    /// (a loss, a silence, or nothing after a finished packet), in ms.
    pub fn longest_gap_ms(&self, from_ms: u64, to_ms: u64) -> u64 {
        let mut longest = 0;
        let mut current = 0;
        let mut tick = from_ms;
        while tick <= to_ms {
            let played = self
                .outputs
                .iter()
                .any(|(at, out)| *at == tick && matches!(out, Out::Packet(_)));
            if played {
                current = 0;
            } else {
                current += TICK_MS;
                longest = longest.max(current);
            }
            tick += TICK_MS;
        }
        longest
    }
}

/// Builds a 20 ms stream of tagged PCMU packets from `from`: `count` packets from `seq` and
/// `ts`, arriving every 20 ms from `at_ms`.
pub fn stream(from: &str, ssrc: u32, seq: u16, ts: u32, at_ms: u64, count: u16) -> Vec<Arrival> {
    (0..count)
        .map(|i| Arrival {
            at_ms: at_ms + TICK_MS * u64::from(i),
            from: addr(from),
            bytes: audio(
                ssrc,
                seq.wrapping_add(i),
                ts.wrapping_add(160 * u32::from(i)),
            ),
        })
        .collect()
}
