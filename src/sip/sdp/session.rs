//! One dialog's side of offer/answer: our `o=` line, the last description we sent, our
//! outstanding offer and the media agreed so far.

use tracing::debug;

use super::error::NegotiationError;
use super::metrics::{self, Role};
use super::model::{Connection, IpFamily, MediaDescription, Origin, SessionDescription, Timing};
use super::negotiate::answer_offer;
use super::offer::{accept_answer, offer_section};
use super::types::{LocalMedia, NegotiatedMedia};

/// Our offer/answer state for one dialog.
///
/// The `o=` version of the first description we send is 1. Each later answer or offer whose
/// content differs from the last description we sent carries the version plus exactly one,
/// and one that does not differ keeps it (RFC 3264 §8). A failed negotiation sends nothing and
/// changes nothing.
#[derive(Debug, Clone)]
pub struct LocalSession {
    local: LocalMedia,
    session_id: u64,
    version: u64,
    last_sent: Option<SessionDescription>,
    pending_offer: Option<SessionDescription>,
    negotiated: Option<NegotiatedMedia>,
}

impl LocalSession {
    /// Starts the state for a dialog. RFC 3264 §5 requires the session id to fit a signed 64-bit
    /// integer, so its top bit is cleared.
    pub fn new(local: LocalMedia, session_id: u64) -> Self {
        LocalSession {
            local,
            session_id: session_id & (u64::MAX >> 1),
            version: 1,
            last_sent: None,
            pending_offer: None,
            negotiated: None,
        }
    }

    /// Replaces what we offer and accept, for example after the media port moved. The next
    /// description we send reflects it and so carries a new version.
    pub fn set_local(&mut self, local: LocalMedia) {
        self.local = local;
    }

    /// Returns what we offer and accept.
    pub fn local(&self) -> &LocalMedia {
        &self.local
    }

    /// Returns the media agreed in the last successful exchange.
    pub fn negotiated(&self) -> Option<&NegotiatedMedia> {
        self.negotiated.as_ref()
    }

    /// Returns the last description we produced for sending.
    pub fn last_sent(&self) -> Option<&SessionDescription> {
        self.last_sent.as_ref()
    }

    /// Returns whether an offer of ours waits for its answer.
    pub fn has_pending_offer(&self) -> bool {
        self.pending_offer.is_some()
    }

    /// Answers the peer's offer and returns the description for our response and the media to
    /// use. On error, reject the offer with 488 and [`NegotiationError::warning`]. The previous
    /// agreement then stays in force (RFC 3264 §8).
    pub fn answer(
        &mut self,
        offer: &SessionDescription,
    ) -> Result<(SessionDescription, NegotiatedMedia), NegotiationError> {
        let current = self.negotiated.as_ref().map(|media| media.codec.name);
        let answer = match answer_offer(offer, &self.local, current) {
            Ok(answer) => answer,
            Err(error) => {
                debug!(%error, "rejecting SDP offer");
                metrics::record_failure(Role::Answer, &error);
                return Err(error);
            }
        };
        // An offer from the peer supersedes any of ours; the dialog layer prevents that glare
        // with 491, so this only keeps the state consistent.
        self.pending_offer = None;
        let description = self.stamp(answer.media);
        self.agree(Role::Answer, &answer.negotiated);
        Ok((description, answer.negotiated))
    }

    /// Creates our offer: every codec we support before a codec is agreed, the agreed codec
    /// after. Calling it again without changes returns the same description and version, so a
    /// retransmitted 200 or a session refresh carries an unchanged `o=` line.
    pub fn offer(&mut self) -> SessionDescription {
        let section = offer_section(&self.local, self.negotiated.as_ref());
        let description = self.stamp(vec![section]);
        self.pending_offer = Some(description.clone());
        description
    }

    /// Accepts the peer's answer to our last offer. The offer is settled either way, and on
    /// error the dialog ends the call with BYE.
    pub fn accept_answer(
        &mut self,
        answer: &SessionDescription,
    ) -> Result<NegotiatedMedia, NegotiationError> {
        let result = match self.pending_offer.take() {
            Some(offer) => accept_answer(&offer, answer, &self.local),
            None => Err(NegotiationError::NoPendingOffer),
        };
        match result {
            Ok(negotiated) => {
                self.agree(Role::Offer, &negotiated);
                Ok(negotiated)
            }
            Err(error) => {
                debug!(%error, "rejecting SDP answer");
                metrics::record_failure(Role::Offer, &error);
                Err(error)
            }
        }
    }

    fn agree(&mut self, role: Role, negotiated: &NegotiatedMedia) {
        debug!(
            codec = negotiated.codec.name.config_name(),
            payload_type = negotiated.codec.payload_type,
            direction = negotiated.direction.attribute_name(),
            remote_rtp = ?negotiated.remote_rtp,
            rtcp_mux = negotiated.rtcp_mux,
            "media negotiated"
        );
        metrics::record_success(role, negotiated.codec.name);
        self.negotiated = Some(negotiated.clone());
    }

    /// Wraps media sections into a full description with our `o=` line, raising the version
    /// when the result differs from the last description sent, and records it as sent.
    fn stamp(&mut self, media: Vec<MediaDescription>) -> SessionDescription {
        let mut description = self.describe(media);
        if let Some(last) = &self.last_sent
            && *last != description
        {
            self.version = self.version.saturating_add(1);
            description.origin.session_version = self.version.to_string();
        }
        self.last_sent = Some(description.clone());
        description
    }

    fn describe(&self, media: Vec<MediaDescription>) -> SessionDescription {
        let addr = self.local.addr;
        SessionDescription {
            origin: Origin {
                username: "-".into(),
                session_id: self.session_id.to_string(),
                session_version: self.version.to_string(),
                net_type: "IN".into(),
                addr_type: IpFamily::of(addr).addr_type().into(),
                address: addr.to_string(),
            },
            // RFC 3264 §5 recommends `s=-` for unicast sessions and `t=0 0`.
            session_name: "-".into(),
            information: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: Some(Connection::for_ip(addr)),
            bandwidths: Vec::new(),
            timings: vec![Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            }],
            time_zones: None,
            encryption_key: None,
            attributes: Vec::new(),
            unknown_lines: Vec::new(),
            media,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::{CodecName, Direction};

    fn local() -> LocalMedia {
        LocalMedia {
            addr: "198.51.100.10".parse().unwrap(),
            port: 30_000,
            codecs: vec![CodecName::Pcmu],
            ptime_ms: 20,
            rtcp_mux: false,
        }
    }

    fn offer(direction: &str, version: u32) -> SessionDescription {
        SessionDescription::parse(&format!(
            "v=0\r\no=peer 7 {version} IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\n\
             t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na={direction}\r\n"
        ))
        .unwrap()
    }

    fn version(description: &SessionDescription) -> &str {
        &description.origin.session_version
    }

    #[test]
    fn session_id_fits_signed_64_bits() {
        let mut session = LocalSession::new(local(), u64::MAX);
        let offer = session.offer();
        assert_eq!(offer.origin.session_id, i64::MAX.to_string());
    }

    #[test]
    fn first_version_is_one() {
        let mut session = LocalSession::new(local(), 42);
        let (answer, _) = session.answer(&offer("sendrecv", 1)).unwrap();
        assert_eq!(answer.origin.session_id, "42");
        assert_eq!(version(&answer), "1");
    }

    #[test]
    fn version_changes_only_with_content() {
        let mut session = LocalSession::new(local(), 42);
        let (first, _) = session.answer(&offer("sendrecv", 1)).unwrap();
        let (same, _) = session.answer(&offer("sendrecv", 2)).unwrap();
        assert_eq!(version(&same), "1");
        assert_eq!(first, same);
        let (hold, media) = session.answer(&offer("sendonly", 3)).unwrap();
        assert_eq!(version(&hold), "2");
        assert_eq!(media.direction, Direction::RecvOnly);
        let (resume, _) = session.answer(&offer("sendrecv", 4)).unwrap();
        assert_eq!(version(&resume), "3");
    }

    #[test]
    fn failed_answer_changes_nothing() {
        let mut session = LocalSession::new(local(), 42);
        session.answer(&offer("sendrecv", 1)).unwrap();
        let before = session.negotiated().cloned();
        let bad = SessionDescription::parse(
            "v=0\r\no=p 7 2 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\n",
        )
        .unwrap();
        assert!(session.answer(&bad).is_err());
        assert_eq!(session.negotiated().cloned(), before);
        let (again, _) = session.answer(&offer("sendrecv", 3)).unwrap();
        assert_eq!(version(&again), "1");
    }

    #[test]
    fn set_local_raises_version() {
        let mut session = LocalSession::new(local(), 42);
        let first = session.offer();
        assert_eq!(session.offer(), first);
        let mut moved = local();
        moved.port = 30_002;
        session.set_local(moved);
        let second = session.offer();
        assert_eq!(version(&second), "2");
        assert_eq!(second.media[0].port, 30_002);
    }

    #[test]
    fn accept_answer_without_offer_fails() {
        let mut session = LocalSession::new(local(), 42);
        assert_eq!(
            session.accept_answer(&offer("sendrecv", 1)),
            Err(NegotiationError::NoPendingOffer)
        );
    }

    #[test]
    fn answer_consumes_pending_offer() {
        let mut session = LocalSession::new(local(), 42);
        session.offer();
        assert!(session.has_pending_offer());
        session.answer(&offer("sendrecv", 1)).unwrap();
        assert!(!session.has_pending_offer());
    }
}
