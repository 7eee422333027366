//! An in-process SIP server that answers calls the way the call layer will: each call gets a
//! real bound UDP socket as its media address, which counts the RTP it receives.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use voicegate::sip::sdp::{CodecName, LocalMedia};
use voicegate::sip::{
    CallEvent, IncomingCall, SipConfig, SipHandle, SipServer, SipStats, Transport, TrunkConfig,
};

/// How long a test waits for any one condition.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long a server may take to drop every transaction after the last call.
pub const IDLE: Duration = Duration::from_secs(15);

/// What happened to one offered call.
#[derive(Debug, Default)]
pub struct CallRecord {
    /// The dialled user part.
    pub number: String,
    /// Call-ID.
    pub call_id: String,
    /// The INVITE came without SDP.
    pub late_offer: bool,
    /// The ACK arrived.
    pub established: bool,
    /// CANCEL arrived before the answer.
    pub cancelled: bool,
    /// `answer` failed with this error.
    pub answer_error: Option<String>,
    /// Events after establishment.
    pub events: Vec<String>,
    /// The call ended, with this reason.
    pub ended: Option<String>,
    /// RTP packets that reached the call's media socket.
    pub rtp_packets: Arc<AtomicUsize>,
}

/// A running server and the record of every call it was offered.
pub struct Harness {
    /// Handle to the stack.
    pub handle: SipHandle,
    /// Calls in arrival order.
    pub records: Arc<Mutex<Vec<CallRecord>>>,
    task: JoinHandle<()>,
}

/// Settings for a loopback server on ephemeral ports. Short timers let transactions end
/// within seconds (64*T1 = 6.4 s), so tests can check that nothing is left behind.
pub fn loopback_config() -> SipConfig {
    SipConfig {
        udp: "127.0.0.1:0".into(),
        tcp: "127.0.0.1:0".into(),
        t1_ms: 100,
        t2_ms: 800,
        t4_ms: 1000,
        ..SipConfig::default()
    }
}

impl Harness {
    /// Starts a server with the default loopback trunk.
    pub async fn start() -> Harness {
        Harness::start_with(loopback_config(), vec![TrunkConfig::default()]).await
    }

    /// Starts a server with the given settings.
    pub async fn start_with(config: SipConfig, trunks: Vec<TrunkConfig>) -> Harness {
        let (handle, mut incoming) = SipServer::start(&config, &trunks)
            .await
            .expect("SIP server starts");
        let records = Arc::new(Mutex::new(Vec::new()));
        let shared = records.clone();
        let task = tokio::spawn(async move {
            while let Some(call) = incoming.recv().await {
                let index = {
                    let mut records = shared.lock().unwrap();
                    records.push(CallRecord::default());
                    records.len() - 1
                };
                tokio::spawn(answer_call(call, shared.clone(), index));
            }
        });
        Harness {
            handle,
            records,
            task,
        }
    }

    /// Returns the server's address for `transport`.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        self.handle.local_addr(transport).expect("listener bound")
    }

    /// Waits until `check` holds for the records, failing the test after [`WAIT`].
    pub async fn wait_for(&self, what: &str, check: impl Fn(&[CallRecord]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if check(&self.records.lock().unwrap()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; records: {:#?}",
                    self.records.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until no call or transaction is left, failing after `limit`.
    pub async fn wait_idle(&self, limit: Duration) -> SipStats {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let stats = self.handle.stats().await.expect("stats");
            if stats.calls == 0 && stats.transactions == 0 && stats.call_slots == 0 {
                return stats;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("state left behind: {stats:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.handle.shutdown().await;
        self.task.abort();
    }
}

/// Returns the user part of a SIP URI.
fn user_of(uri: &str) -> String {
    let rest = uri.split_once(':').map_or(uri, |(_, rest)| rest);
    rest.split('@').next().unwrap_or_default().to_string()
}

fn update(records: &Mutex<Vec<CallRecord>>, index: usize, change: impl FnOnce(&mut CallRecord)) {
    if let Some(record) = records.lock().unwrap().get_mut(index) {
        change(record);
    }
}

/// Answers one call according to the dialled number: `drop` drops the call unanswered,
/// `cancel` rings and waits, `hangup` and `hangup-slow` answer and hang up after half a second
/// or two seconds, anything else rings and answers.
async fn answer_call(call: IncomingCall, records: Arc<Mutex<Vec<CallRecord>>>, index: usize) {
    let number = user_of(&call.request_uri);
    let ip: IpAddr = if call.source.is_ipv6() {
        Ipv6Addr::LOCALHOST.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    };
    let media = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .expect("media socket");
    let port = media.local_addr().expect("media address").port();
    let packets = Arc::new(AtomicUsize::new(0));
    let counter = packets.clone();
    let rtp = tokio::spawn(async move {
        let mut buffer = [0u8; 2048];
        while let Ok((length, _)) = media.recv_from(&mut buffer).await {
            // RFC 3550 §5.1: version 2 in the top two bits.
            if length >= 12 && buffer[0] >> 6 == 2 {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    update(&records, index, |r| {
        r.number = number.clone();
        r.call_id = call.call_id.clone();
        r.late_offer = call.offer.is_none();
        r.rtp_packets = packets;
    });

    let local = LocalMedia {
        addr: ip,
        port,
        codecs: vec![CodecName::Pcmu, CodecName::Pcma],
        ptime_ms: 20,
        rtcp_mux: false,
    };
    let server = call.server;
    if number == "drop" {
        // The application loses the call without answering: the stack must send 500.
        drop(server);
        rtp.abort();
        return;
    }
    server.ring();
    if number == "cancel" {
        if tokio::time::timeout(WAIT, server.cancelled()).await.is_ok() {
            update(&records, index, |r| r.cancelled = true);
        }
        rtp.abort();
        return;
    }
    let mut active = match server.answer(local).await {
        Ok(active) => active,
        Err(error) => {
            update(&records, index, |r| {
                r.answer_error = Some(error.to_string())
            });
            rtp.abort();
            return;
        }
    };
    update(&records, index, |r| r.established = true);
    let hangup_after = match number.as_str() {
        "hangup" => Some(Duration::from_millis(500)),
        "hangup-slow" => Some(Duration::from_secs(2)),
        _ => None,
    };
    if let Some(delay) = hangup_after {
        let control = active.control.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            control.hangup("Q.850;cause=16;text=\"AI hangup\"");
        });
    }
    while let Some(event) = active.events.recv().await {
        let ended = match &event {
            CallEvent::Ended(reason) => Some(reason.to_string()),
            _ => None,
        };
        update(&records, index, |r| {
            r.events.push(format!("{event:?}"));
            r.ended = ended.clone();
        });
        if ended.is_some() {
            break;
        }
    }
    rtp.abort();
}
