//! The engine over real loopback sockets: worker threads, batched receive, paced send, and the
//! port quarantine.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use voicegate::audio::{MediaEvent, PlayoutCommand, SegmentId};
use voicegate::media::MediaConfig;
use voicegate::media::codec::{AudioEncoder, G711Encoder, G711Law};
use voicegate::media::engine::MediaEngine;
use voicegate::media::playout::BargeInMode;
use voicegate::rtp::{RtpConfig, RtpPacket};

use super::audio::{set_level, speak};
use super::harness::{CallerStream, pcmu_params};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn engine(port_min: u16) -> MediaEngine {
    let rtp = RtpConfig {
        port_min,
        port_max: port_min + 99,
        bind_addr: "127.0.0.1".into(),
        ..RtpConfig::default()
    };
    let media = MediaConfig {
        workers: 1,
        ..MediaConfig::default()
    };
    MediaEngine::start(&rtp, &media).expect("engine starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_over_loopback_sockets() {
    let engine = engine(42_000);
    let port = engine.allocate(LOOPBACK).expect("port");
    let local = port.local_addr();
    assert!((42_000..42_100).contains(&local.port()));
    assert_eq!(local.port() % 2, 0, "RTP port is even");

    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut params = pcmu_params(BargeInMode::Pause);
    params.remote_rtp = Some(peer.local_addr().unwrap());
    let mut session = engine.start_session(port, params).expect("session");
    assert_eq!(session.local_addr(), local);
    assert_eq!(engine.active_sessions(), 1);

    // The caller talks for 1.5 s in real time while the AI plays half a second of audio.
    let sender = peer.try_clone().unwrap();
    let talker = std::thread::spawn(move || {
        let mut speech = speak("hello there, how are you today", "en-us", 8_000);
        set_level(&mut speech, -20.0);
        speech.resize(8_000 * 3 / 2, 0);
        let mut stream = CallerStream::new(0x5EED, 10, 0);
        let mut encoder = G711Encoder::new(G711Law::Mu);
        let start = Instant::now();
        for (i, chunk) in speech.chunks(160).enumerate() {
            let mut payload = Vec::new();
            encoder.encode(chunk, &mut payload).unwrap();
            sender
                .send_to(&stream.packet(&payload, i == 0), local)
                .unwrap();
            let next = start + Duration::from_millis(20 * (i as u64 + 1));
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    });
    let tone: Vec<i16> = (0..8_000)
        .map(|i| ((i as f32 * 0.08).sin() * 6_000.0) as i16)
        .collect();
    session
        .playout
        .send(PlayoutCommand::Audio {
            segment: SegmentId(1),
            pcm: tone,
            interruptible: false,
        })
        .await
        .unwrap();
    session
        .playout
        .send(PlayoutCommand::EndSegment(SegmentId(1)))
        .await
        .unwrap();

    let receiver = std::thread::spawn(move || {
        let mut packets = Vec::new();
        let mut buffer = [0u8; 2048];
        let until = Instant::now() + Duration::from_millis(1_600);
        while Instant::now() < until {
            if let Ok((len, _)) = peer.recv_from(&mut buffer) {
                let packet = RtpPacket::parse(&buffer[..len])
                    .map(|p| (p.seq().0, p.pt().0, p.payload().to_vec()));
                if let Ok(packet) = packet {
                    packets.push(packet);
                }
            }
        }
        packets
    });
    talker.join().unwrap();
    let packets = receiver.join().unwrap();

    let mut events = Vec::new();
    while let Ok(event) = session.events.try_recv() {
        events.push(event);
    }
    let stats = session.stop().await;

    let audio: Vec<_> = packets.iter().filter(|(_, pt, _)| *pt == 0).collect();
    assert!(
        audio.len() >= 60,
        "only {} RTP packets in 1.6 s",
        audio.len()
    );
    for pair in audio.windows(2) {
        assert_eq!(pair[1].0, pair[0].0.wrapping_add(1), "sequence gap");
    }
    let speech = audio
        .iter()
        .filter(|(_, _, payload)| payload.iter().any(|&b| b != 0xFF && b != 0x7F))
        .count();
    assert!(
        (20..=30).contains(&speech),
        "{speech} packets carried the 0.5 s segment"
    );

    let frames = events
        .iter()
        .filter(|e| matches!(e, MediaEvent::Audio(_)))
        .count();
    assert!(
        frames >= 50,
        "only {frames} caller frames reached the AI loop"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        MediaEvent::SegmentStarted {
            segment: SegmentId(1),
            ..
        }
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        MediaEvent::SegmentPlayed {
            segment: SegmentId(1),
            ..
        }
    )));
    assert!(stats.received >= 70, "received {}", stats.received);
    assert!(stats.sent >= 60, "sent {}", stats.sent);
    assert_eq!(engine.active_sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_port_is_quarantined() {
    let engine = engine(42_200);
    let first = engine.allocate(LOOPBACK).expect("port");
    let old_port = first.rtp_port();
    let mut params = pcmu_params(BargeInMode::Pause);
    params.remote_rtp = Some("127.0.0.1:9".parse().unwrap());
    let session = engine
        .start_session(first, params.clone())
        .expect("session");
    session.stop().await;
    assert!(
        engine.quarantined_ports() >= 1,
        "the port pair is not in quarantine"
    );

    // The old peer keeps sending to the old port; the new call gets another one and never
    // hears it.
    let stale_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let second = engine.allocate(LOOPBACK).expect("port");
    assert_ne!(
        second.rtp_port(),
        old_port,
        "a quarantined port was handed out again"
    );
    let mut session = engine.start_session(second, params).expect("session");
    let mut stream = CallerStream::new(0x0BAD_CAFE, 1, 0);
    for _ in 0..20 {
        let _ = stale_peer.send_to(&stream.packet(&[0x10; 160], false), ("127.0.0.1", old_port));
        std::thread::sleep(Duration::from_millis(5));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut heard = 0;
    while let Ok(event) = session.events.try_recv() {
        if matches!(event, MediaEvent::Audio(_)) {
            heard += 1;
        }
    }
    let stats = session.stop().await;
    assert_eq!(heard, 0);
    assert_eq!(stats.received, 0);
}
