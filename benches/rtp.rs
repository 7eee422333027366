//! RTP layer costs: parsing, the per-packet path through a session and its jitter buffer, and
//! building and reading RTCP. Prints figures; run with `cargo bench --bench rtp`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant, UNIX_EPOCH};

use voicegate::rtp::rtcp::{
    PeerReports, ReportBlock, write_receiver_report, write_sdes_cname, write_sender_report,
};
use voicegate::rtp::{
    ExtSeq, Incoming, JitterBuffer, JitterConfig, PayloadKind, PayloadTable, Pt, RtpConfig,
    RtpHeader, RtpPacket, RtpSession, SenderCounts, SeqNo, SessionConfig, Ssrc, classify,
    g711_duration,
};

const PACKETS: u32 = 1_000_000;

fn packet(seq: u16, ts: u32) -> Vec<u8> {
    let header = RtpHeader {
        marker: false,
        pt: Pt(0),
        seq: SeqNo(seq),
        timestamp: ts,
        ssrc: Ssrc(0x1234_5678),
    };
    let mut out = vec![0u8; 172];
    let len = header.write(&[0xFF; 160], &mut out).unwrap_or(0);
    out.truncate(len);
    out
}

fn report(name: &str, count: u32, elapsed: Duration) {
    let per = elapsed.as_nanos() as f64 / f64::from(count);
    println!("{name:<48} {per:>8.1} ns/op  ({count} ops in {elapsed:.2?})");
}

fn bench_parse(packets: &[Vec<u8>]) {
    let start = Instant::now();
    let mut sum = 0u64;
    for i in 0..PACKETS {
        let bytes = &packets[i as usize % packets.len()];
        if let Ok(packet) = RtpPacket::parse(black_box(bytes)) {
            sum = sum.wrapping_add(u64::from(packet.seq().0) + packet.payload().len() as u64);
        }
    }
    black_box(sum);
    report("RtpPacket::parse", PACKETS, start.elapsed());

    let start = Instant::now();
    for i in 0..PACKETS {
        let bytes = &packets[i as usize % packets.len()];
        black_box(classify(black_box(bytes), true).is_ok());
    }
    report("classify (rtcp-mux)", PACKETS, start.elapsed());
}

fn bench_jitter(packets: &[Vec<u8>]) {
    let config = JitterConfig {
        clock_rate: 8000,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        tick: Duration::from_millis(20),
        packet_time: Duration::from_millis(20),
    };
    let mut buffer = JitterBuffer::new(config);
    let base = Instant::now();
    let start = Instant::now();
    for i in 0..PACKETS {
        let now = base + Duration::from_millis(20 * u64::from(i));
        let bytes = &packets[i as usize % packets.len()];
        if let Ok(packet) = RtpPacket::parse(bytes) {
            let _ = buffer.push(
                now,
                Incoming {
                    index: ExtSeq(u64::from(i)),
                    timestamp: 160 * i,
                    pt: packet.pt(),
                    marker: false,
                    ssrc: packet.ssrc(),
                    kind: PayloadKind::Audio,
                    payload: packet.payload(),
                    duration: Some(160),
                },
            );
        }
        black_box(buffer.pop(now));
    }
    report("parse + jitter push + pop", PACKETS, start.elapsed());
}

fn bench_session() {
    let payloads = PayloadTable::new()
        .with_audio(Pt(0), 8000, Some(g711_duration))
        .with_telephone_event(Pt(101), 8000);
    let config = SessionConfig::new(
        &RtpConfig::default(),
        payloads,
        Duration::from_millis(20),
        true,
    );
    let base = Instant::now();
    let mut session = RtpSession::new(config, base, UNIX_EPOCH);
    let peer: SocketAddr = "127.0.0.1:40000"
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 40000)));
    let packets: Vec<Vec<u8>> = (0..1024u32).map(|i| packet(i as u16, 160 * i)).collect();
    let mut out = [0u8; 200];
    let mut bytes = [0u8; 172];
    let start = Instant::now();
    for i in 0..PACKETS {
        let now = base + Duration::from_millis(20 * u64::from(i));
        bytes.copy_from_slice(&packets[i as usize % packets.len()]);
        bytes[2..4].copy_from_slice(&(i as u16).to_be_bytes());
        bytes[4..8].copy_from_slice(&(160 * i).to_be_bytes());
        session.handle_datagram(now, peer, &bytes);
        black_box(session.pop_playout(now));
        let written = session
            .sender_mut()
            .write_audio(now, Pt(0), 160, &[0xFF; 160], &mut out);
        black_box(written.ok());
        while session.poll_event().is_some() {}
    }
    let elapsed = start.elapsed();
    report(
        "session: receive + playout + send, per 20 ms tick",
        PACKETS,
        elapsed,
    );
    let per_tick = elapsed.as_secs_f64() / f64::from(PACKETS);
    let core_share = per_tick / 0.020 * 100.0;
    println!("  = {core_share:.4}% of one core per call at 50 packets/s each way");
    println!(
        "  RtpSession inline size: {} bytes",
        std::mem::size_of::<RtpSession>()
    );
}

fn bench_rtcp() {
    let blocks = [ReportBlock {
        ssrc: Ssrc(7),
        fraction_lost: 3,
        cumulative_lost: 10,
        extended_highest: 70_000,
        jitter: 80,
        last_sr: 0x1234_5678,
        delay_since_last_sr: 0x8000,
    }];
    let counts = SenderCounts {
        rtp_timestamp: 1,
        packets: 2,
        octets: 3,
    };
    let mut out = [0u8; 1500];
    let rounds = 1_000_000;
    let start = Instant::now();
    for i in 0..rounds {
        let mut len =
            write_sender_report(&mut out, Ssrc(1), u64::from(i), counts, black_box(&blocks))
                .unwrap_or(0);
        len += write_sdes_cname(&mut out[len..], Ssrc(1), "voicegate@node-1").unwrap_or(0);
        black_box(len);
    }
    report(
        "RTCP SR (1 block) + SDES CNAME build",
        rounds,
        start.elapsed(),
    );

    let len = write_receiver_report(&mut out, Ssrc(2), &blocks).unwrap_or(0);
    let mut peer = PeerReports::new(Ssrc(7), 8000);
    let now = Instant::now();
    let start = Instant::now();
    for i in 0..rounds {
        black_box(
            peer.handle_compound(now, u64::from(i), black_box(&out[..len]))
                .ok(),
        );
    }
    report(
        "RTCP RR parse + peer report update",
        rounds,
        start.elapsed(),
    );
}

fn main() {
    let packets: Vec<Vec<u8>> = (0..1024u32).map(|i| packet(i as u16, 160 * i)).collect();
    println!("voicegate RTP benchmarks ({} packets per figure)", PACKETS);
    bench_parse(&packets);
    bench_jitter(&packets);
    bench_session();
    bench_rtcp();
}
