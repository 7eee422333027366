//! The test caller's user agent: one SIP stack and one media engine that place any number of
//! calls, each with its own RTP port and script.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::listen::{self, Listening};
use super::report::CallReport;
use super::script::ScriptSettings;
use super::target::Target;
use crate::media::engine::MediaEngine;
use crate::media::session::{SimulatedEcho, StreamParams};
use crate::media::turn::BargeInSettings;
use crate::media::{MediaConfig, MediaError};
use crate::rtp::RtpConfig;
use crate::sip::sdp::{CodecName, LocalMedia};
use crate::sip::{
    IncomingCall, OutgoingEvent, OutgoingInvite, SipConfig, SipError, SipHandle, SipServer,
    Transport,
};

/// RTP ports the caller takes, kept apart from the server's default range (30000-39999) so
/// that a caller and a server on one machine never compete for a port.
pub const RTP_PORT_MIN: u16 = 40_000;
/// Last RTP port the caller takes.
pub const RTP_PORT_MAX: u16 = 49_999;
/// Time allowed from the INVITE to a final response. Timer B (64 × T1 = 32 s, RFC 3261
/// §17.1.1.2) normally ends the attempt first with 408.
const SETUP_TIMEOUT: Duration = Duration::from_secs(40);

/// Settings of one call.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// Dial target.
    pub target: Target,
    /// Transport when the target names none.
    pub transport: Transport,
    /// The only codec offered.
    pub codec: CodecName,
    /// 16 kHz mono audio to play as the caller's voice.
    pub play: Option<Arc<Vec<i16>>>,
    /// Write what the caller heard here, as a 16 kHz mono WAV.
    pub record: Option<PathBuf>,
    /// When to play and hang up.
    pub script: ScriptSettings,
    /// Echo of what the caller hears, attenuated, delayed and mixed into what it plays.
    pub echo: Option<SimulatedEcho>,
}

/// Failure to start a [`Dialer`].
#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    /// No local address routes to the target.
    #[error("no local address routes to {addr}: {source}")]
    Route {
        /// Target address.
        addr: SocketAddr,
        /// Socket error.
        source: std::io::Error,
    },
    /// The SIP stack did not start.
    #[error("starting the caller's SIP stack failed: {0}")]
    Sip(#[from] SipError),
    /// The media engine did not start.
    #[error("starting the caller's media engine failed: {0}")]
    Media(#[from] MediaError),
}

/// A SIP user agent client with its own media engine.
pub struct Dialer {
    sip: SipHandle,
    media: MediaEngine,
    local_ip: IpAddr,
}

impl Dialer {
    /// Binds SIP on an ephemeral port of the local address that routes to `target`, and
    /// starts `workers` media threads with RTP ports from 40000-49999.
    pub async fn start(target: SocketAddr, workers: usize) -> Result<Dialer, DialerError> {
        let local_ip = route_to(target)?;
        let bind = SocketAddr::new(local_ip, 0).to_string();
        let sip_config = SipConfig {
            udp: bind.clone(),
            tcp: bind,
            user_agent: "voicegate-caller".into(),
            ..SipConfig::default()
        };
        let (sip, incoming) = SipServer::start(&sip_config, &[]).await?;
        tokio::spawn(decline_incoming(incoming));
        let rtp = RtpConfig {
            port_min: RTP_PORT_MIN,
            port_max: RTP_PORT_MAX,
            bind_addr: local_ip.to_string(),
            ..RtpConfig::default()
        };
        let media_config = MediaConfig {
            workers: workers.max(1),
            barge_in: false,
            ..MediaConfig::default()
        };
        let media = MediaEngine::start(&rtp, &media_config)?;
        Ok(Dialer {
            sip,
            media,
            local_ip,
        })
    }

    /// Places one call, runs its script and reports what the caller experienced. Failures
    /// end up in the report (`answered`, `status`, `error`), never as a panic.
    pub async fn call(&self, settings: &CallSettings) -> CallReport {
        let mut report = CallReport {
            codec: settings.codec.encoding_name().to_string(),
            ..CallReport::default()
        };
        let port = match self.media.allocate(self.local_ip) {
            Ok(port) => port,
            Err(error) => {
                report.error = Some(format!("allocating an RTP port failed: {error}"));
                return report;
            }
        };
        let invite = OutgoingInvite {
            target: settings.target.uri.clone(),
            from: String::new(),
            transport: settings.target.transport.unwrap_or(settings.transport),
            local: LocalMedia {
                addr: self.local_ip,
                port: port.rtp_port(),
                codecs: vec![settings.codec],
                ptime_ms: 20,
                rtcp_mux: false,
            },
            headers: Vec::new(),
        };

        let sent = Instant::now();
        let mut outgoing = match self.sip.invite(invite).await {
            Ok(outgoing) => outgoing,
            Err(error) => {
                report.error = Some(format!("sending the INVITE failed: {error}"));
                return report;
            }
        };
        let active = loop {
            let event = tokio::time::timeout(SETUP_TIMEOUT, outgoing.next()).await;
            match event {
                Ok(Some(OutgoingEvent::Progress { .. })) => continue,
                Ok(Some(OutgoingEvent::Answered(active))) => break active,
                Ok(Some(OutgoingEvent::Failed { status, reason })) => {
                    report.status = status;
                    report.reason = reason;
                    return report;
                }
                Ok(None) => {
                    report.error = Some("the SIP stack stopped during call setup".into());
                    return report;
                }
                Err(_) => {
                    outgoing.cancel();
                    report.error = Some(format!(
                        "no final response within {} s",
                        SETUP_TIMEOUT.as_secs()
                    ));
                    return report;
                }
            }
        };
        let answer = Instant::now();
        // NOTE: the endpoint reports any 2xx as the answer without its code; 200 is the
        // only 2xx an INVITE gets in practice.
        report.status = 200;
        report.reason = "OK".into();
        report.answered = true;
        report.call_id = active.call_id.clone();
        report.setup_ms = Some(millis(answer - sent));

        let barge_in = BargeInSettings {
            enabled: false,
            ..BargeInSettings::default()
        };
        // NOTE: a peer that loops our own packets back (SIPp -rtp_echo) is treated by the RTP
        // session as an SSRC collision on every packet, so nothing from it is heard.
        let params = StreamParams {
            simulated_echo: settings.echo,
            ..StreamParams::from_negotiated(&active.negotiated, false, barge_in)
        };
        report.codec = params.codec.name.encoding_name().to_string();
        let session = match self.media.start_session(port, params) {
            Ok(session) => session,
            Err(error) => {
                active.control.hangup("test caller could not start media");
                report.error = Some(format!("starting media failed: {error}"));
                return report;
            }
        };
        let listening = Listening {
            answer,
            call: active,
            session,
            barge_in,
        };
        listen::run(listening, settings, &mut report).await;
        report
    }

    /// Ends every call still up and stops the SIP stack.
    pub async fn shutdown(&self) {
        self.sip.shutdown().await;
    }
}

/// Rejects calls offered to the caller with 603, because it only places calls.
async fn decline_incoming(mut incoming: mpsc::Receiver<IncomingCall>) {
    while let Some(call) = incoming.recv().await {
        call.server.reject(603, "Decline", Vec::new());
    }
}

/// Returns the local address the kernel would send from to reach `target`. Connecting a UDP
/// socket sends nothing.
fn route_to(target: SocketAddr) -> Result<IpAddr, DialerError> {
    let unspecified: SocketAddr = if target.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let error = |source| DialerError::Route {
        addr: target,
        source,
    };
    let socket = std::net::UdpSocket::bind(unspecified).map_err(error)?;
    socket.connect(target).map_err(error)?;
    Ok(socket.local_addr().map_err(error)?.ip())
}

/// Converts a duration to fractional milliseconds.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}
