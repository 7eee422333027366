//! The UAC's call objects against an in-process UAS over loopback.

use std::net::IpAddr;
use std::time::Duration;

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
        codecs: vec![CodecName::Pcmu],
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
