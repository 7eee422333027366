//! Drives the whole sans-IO endpoint with arbitrary datagrams split at NUL bytes, answering
//! every offered call, then checks that timers drain every call and transaction.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use voicegate::sip::endpoint::{Destination, Endpoint, EndpointConfig, Event, Transport};
use voicegate::sip::sdp::{CodecName, LocalMedia};
use voicegate::sip::{SipConfig, TrunkConfig};

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let config = SipConfig { seed: 1, source_rate_per_sec: 0, ..SipConfig::default() };
    let mut endpoint = Endpoint::new(EndpointConfig::from_sip(&config), &[TrunkConfig::default()], start);
    let from = Destination {
        transport: Transport::Udp,
        addr: "127.0.0.1:5070".parse().expect("literal address"),
        connection: None,
    };
    let local = "127.0.0.1:5060".parse().expect("literal address");
    let media = LocalMedia {
        addr: "127.0.0.1".parse().expect("literal address"),
        port: 30_000,
        codecs: vec![CodecName::Pcmu],
        ptime_ms: 20,
        rtcp_mux: false,
    };
    let mut now = start;
    for datagram in data.split(|b| *b == 0) {
        endpoint.handle_message(now, from, local, datagram);
        while let Some(event) = endpoint.poll_event() {
            if let Event::IncomingCall(info) = event {
                endpoint.answer(now, info.call, media.clone());
            }
        }
        while endpoint.poll_transmit().is_some() {}
        now += Duration::from_millis(10);
    }
    for call in endpoint.call_refs() {
        endpoint.hangup(now, call, "fuzz");
    }
    // Every call and transaction must end once its timers have run out.
    let end = now + Duration::from_secs(3600);
    while let Some(at) = endpoint.poll_timeout().filter(|at| *at <= end) {
        endpoint.handle_timeout(at);
        while endpoint.poll_transmit().is_some() {}
        while endpoint.poll_event().is_some() {}
    }
    assert_eq!(endpoint.live_calls(), 0);
    assert_eq!(endpoint.live_transactions(), 0);
});
