//! The UAC's call objects against an in-process UAS over loopback.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use voicegate::audio::{MediaEvent, PlayoutCommand, SegmentId};
use voicegate::caller::{CallSettings, Dialer, ScriptSettings, Target};
use voicegate::media::MediaConfig;
use voicegate::media::engine::MediaEngine;
use voicegate::media::playout::BargeInMode;
use voicegate::media::session::StreamParams;
use voicegate::media::turn::BargeInSettings;
use voicegate::rtp::RtpConfig;
use voicegate::sip::CallEvent;

use voicegate::sip::sdp::{CodecName, LocalMedia};
use voicegate::sip::{OutgoingInvite, SipConfig, SipServer, Transport, TrunkConfig};

fn loopback_config() -> SipConfig {
    SipConfig {
        udp: "127.0.0.1:0".into(),
        tcp: String::new(),
        ..SipConfig::default()
    }
}

fn media(port: u16) -> LocalMedia {
    LocalMedia {
        addr: IpAddr::from([127, 0, 0, 1]),
        port,
        codecs: CodecName::ALL.to_vec(),
        ptime_ms: 20,
        rtcp_mux: false,
    }
}

#[tokio::test]
async fn outgoing_call_carries_call_id() {
    // The default trunk admits calls from loopback.
    let trunks = [TrunkConfig::default()];
    let (server, mut incoming) = SipServer::start(&loopback_config(), &trunks).await.unwrap();
    let (client, _client_incoming) = SipServer::start(&loopback_config(), &[]).await.unwrap();
    let target = server.local_addr(Transport::Udp).unwrap();

    let answering = tokio::spawn(async move {
        let offered = incoming.recv().await.expect("INVITE offered");
        let call_id = offered.call_id.clone();
        let call = offered
            .server
            .answer(media(47_000))
            .await
            .expect("answered");
        (call_id, call)
    });
    let outgoing = client
        .invite(OutgoingInvite {
            target: format!("sip:100@{target}"),
            from: String::new(),
            transport: Transport::Udp,
            local: media(47_002),
            headers: Vec::new(),
        })
        .await
        .unwrap();
    let caller = tokio::time::timeout(Duration::from_secs(5), outgoing.answered())
        .await
        .expect("answer within 5 s")
        .expect("answered");
    let (server_call_id, callee) = answering.await.unwrap();

    assert!(!caller.call_id.is_empty());
    assert_eq!(caller.call_id, server_call_id);
    assert_eq!(caller.call_id, callee.call_id);
    client.shutdown().await;
    server.shutdown().await;
}

/// Answers one call with voicegate's own media path as the AI side: it plays `speech` as an
/// interruptible segment with barge-in in clear mode, acknowledges the barge-in with `Clear`,
/// and keeps the media up until the caller hangs up.
async fn speaking_far_end(
    speech: Vec<i16>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<u64>) {
    let trunks = [TrunkConfig::default()];
    let (server, mut incoming) = SipServer::start(&loopback_config(), &trunks).await.unwrap();
    let target = server.local_addr(Transport::Udp).unwrap();
    let rtp = RtpConfig {
        port_min: 35_000,
        port_max: 35_999,
        bind_addr: "127.0.0.1".into(),
        ..RtpConfig::default()
    };
    let engine = MediaEngine::start(
        &rtp,
        &MediaConfig {
            workers: 1,
            ..MediaConfig::default()
        },
    )
    .unwrap();
    let task = tokio::spawn(async move {
        let offered = incoming.recv().await.expect("INVITE offered");
        let port = engine.allocate(IpAddr::from([127, 0, 0, 1])).unwrap();
        let mut call = offered
            .server
            .answer(media(port.rtp_port()))
            .await
            .expect("answered");
        let barge_in = BargeInSettings {
            enabled: true,
            mode: BargeInMode::Clear,
            min_interruption_ms: 0,
            ..BargeInSettings::default()
        };
        let params = StreamParams::from_negotiated(&call.negotiated, false, barge_in);
        let mut session = engine.start_session(port, params).unwrap();
        let segment = SegmentId(7);
        session
            .playout
            .send(PlayoutCommand::Audio {
                segment,
                pcm: speech,
                interruptible: true,
            })
            .await
            .unwrap();
        session
            .playout
            .send(PlayoutCommand::EndSegment(segment))
            .await
            .unwrap();
        let mut barge_ins = 0;
        loop {
            tokio::select! {
                event = session.events.recv() => match event {
                    Some(MediaEvent::BargeIn(_)) => {
                        barge_ins += 1;
                        let _ = session.playout.send(PlayoutCommand::Clear).await;
                    }
                    Some(_) => {}
                    None => break,
                },
                event = call.events.recv() => match event {
                    Some(CallEvent::Ended(_)) | None => break,
                    Some(_) => {}
                },
            }
        }
        session.stop().await;
        server.shutdown().await;
        barge_ins
    });
    (target, task)
}

fn espeak_16k(text: &str, dir: &std::path::Path) -> Vec<i16> {
    let path = dir.join("speech.wav");
    super::peer::speech_wav(text, &path, 16_000, "signed-integer");
    voicegate::media::wav::read_16k(&path).unwrap()
}

#[tokio::test]
async fn barge_in_cut_heard_by_caller() {
    let dir = tempfile::tempdir().unwrap();
    let greeting = espeak_16k(
        "Welcome to the bakery. Today we have fresh bread, apple pie, cherry pie, \
         chocolate cake, lemon tarts and cinnamon rolls, and our ovens are open until eight.",
        dir.path(),
    );
    let greeting_ms = greeting.len() as f64 / 16.0;
    let question = espeak_16k("Stop, I want a cake please.", dir.path());
    let (target, far_end) = speaking_far_end(greeting).await;

    let dialer = Dialer::start(target, 1).await.unwrap();
    let settings = CallSettings {
        target: Target::parse(&format!("sip:100@{target}")).unwrap(),
        transport: Transport::Udp,
        codec: CodecName::Pcmu,
        play: Some(Arc::new(question)),
        record: None,
        echo: None,
        script: ScriptSettings {
            play: true,
            barge_in_at_ms: Some(800.0),
            hangup_after_ms: Some(4_000.0),
            ..ScriptSettings::default()
        },
    };
    let report = dialer.call(&settings).await;
    dialer.shutdown().await;
    let barge_ins = far_end.await.unwrap();

    assert!(report.answered, "{report:?}");
    assert_eq!(report.error, None);
    assert!(!report.call_id.is_empty());
    assert_eq!(barge_ins, 1, "the far end's media path saw one barge-in");
    let first_audio = report.first_audio_ms.expect("greeting heard");
    assert!(first_audio < 500.0, "{report:?}");
    let figures = report
        .barge_in
        .clone()
        .unwrap_or_else(|| panic!("no barge-in figures: {report:?}"));
    assert!(figures.onset_ms >= 800.0, "{figures:?}");
    // The AI fell silent long before its greeting would have ended.
    assert!(figures.silence_ms < greeting_ms - 1_000.0, "{figures:?}");
    assert!(figures.cut_ms > 0.0, "{figures:?}");
    eprintln!(
        "barge-in heard at the caller: onset {:.0} ms, AI silent at {:.0} ms, cut {:.0} ms",
        figures.onset_ms, figures.silence_ms, figures.cut_ms
    );
}

#[tokio::test]
async fn wideband_codecs_carry_audio() {
    let dir = tempfile::tempdir().unwrap();
    let greeting = espeak_16k(
        "Welcome to the bakery. How can I help you today?",
        dir.path(),
    );
    for codec in [CodecName::G722, CodecName::Opus] {
        let (target, far_end) = speaking_far_end(greeting.clone()).await;
        let dialer = Dialer::start(target, 1).await.unwrap();
        let settings = CallSettings {
            target: Target::parse(&format!("sip:100@{target}")).unwrap(),
            transport: Transport::Udp,
            codec,
            play: None,
            record: None,
            echo: None,
            script: ScriptSettings {
                hangup_after_ms: Some(1_500.0),
                ..ScriptSettings::default()
            },
        };
        let report = dialer.call(&settings).await;
        dialer.shutdown().await;
        far_end.await.unwrap();

        assert!(report.answered, "{codec:?}: {report:?}");
        assert_eq!(report.error, None, "{codec:?}");
        assert_eq!(report.codec, codec.encoding_name(), "{codec:?}");
        assert!(report.first_audio_ms.is_some(), "{codec:?}: {report:?}");
        assert!(report.rtp.received > 50, "{codec:?}: {report:?}");
        assert_eq!(report.rtp.lost, 0, "{codec:?}");
    }
}
