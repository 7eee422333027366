//! Why an offer or answer could not be negotiated, and the SIP Warning code for the 488.

use thiserror::Error;

use super::model::IpFamily;
use super::parse::SdpError;

/// Maximum length of peer text copied into an error, in characters.
const MAX_EXCERPT_CHARS: usize = 40;

/// Error from offer/answer: an offer that cannot be answered, or an answer that cannot be
/// accepted. The dialog layer rejects an offer with 488 and [`NegotiationError::warning`], and
/// ends a call whose answer fails with BYE.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NegotiationError {
    /// The description does not parse.
    #[error("invalid session description: {0}")]
    Parse(#[from] SdpError),
    /// There is no `m=audio` line.
    #[error("no audio stream offered")]
    NoAudio,
    /// No offered audio format is one we accept.
    #[error("no common audio codec; offered {offered}")]
    NoCommonCodec {
        /// Offered formats, such as `18 G729/8000, 98 opus/16000`.
        offered: String,
    },
    /// The audio stream uses a transport other than plain RTP (for example SRTP).
    #[error("unsupported audio transport `{0}`; only RTP/AVP is supported")]
    UnsupportedTransport(String),
    /// The connection line's network type is not `IN`.
    #[error("unsupported network type `{0}`; only IN is supported")]
    UnsupportedNetworkType(String),
    /// The audio stream's address family differs from our media address's.
    #[error("peer media address is {offered} but our media address is {local}")]
    AddressFamilyMismatch {
        /// Family of the peer's `c=` line.
        offered: IpFamily,
        /// Family of our media address.
        local: IpFamily,
    },
    /// The connection address is not an IP literal of a known family (a host name, or an
    /// address type other than IP4 and IP6).
    #[error("unsupported connection address `{0}`; an IPv4 or IPv6 literal is required")]
    UnsupportedAddress(String),
    /// The connection address is multicast.
    #[error("multicast connection address `{0}` is not supported")]
    Multicast(String),
    /// The audio stream has a port but no `c=` line applies to it.
    #[error("no connection line for the audio stream")]
    MissingConnection,
    /// `accept_answer` was called with no offer of ours outstanding.
    #[error("no offer is waiting for an answer")]
    NoPendingOffer,
    /// The answer does not have one `m=` line per offered one (RFC 3264 §6).
    #[error("answer has {answered} media lines but the offer had {offered}")]
    MediaCountMismatch {
        /// `m=` lines in our offer.
        offered: usize,
        /// `m=` lines in the answer.
        answered: usize,
    },
    /// The answer rejected our audio stream with port 0, or replaced it with another kind.
    #[error("answer rejected the audio stream")]
    AudioRejected,
    /// The answer picks no codec from our offer.
    #[error("answer picks no codec we offered; answered {answered}")]
    NoOfferedCodec {
        /// Answered formats.
        answered: String,
    },
}

impl NegotiationError {
    /// Code and text for the Warning header of a 488 (RFC 3261 §20.43). The text contains no
    /// `"` or `\`, so it can be quoted as it is.
    pub fn warning(&self) -> (u16, String) {
        let code = match self {
            NegotiationError::UnsupportedNetworkType(_) => 300,
            NegotiationError::AddressFamilyMismatch { .. }
            | NegotiationError::UnsupportedAddress(_) => 301,
            NegotiationError::UnsupportedTransport(_) => 302,
            NegotiationError::NoAudio | NegotiationError::AudioRejected => 304,
            NegotiationError::NoCommonCodec { .. } | NegotiationError::NoOfferedCodec { .. } => 305,
            NegotiationError::Multicast(_) => 330,
            NegotiationError::Parse(_)
            | NegotiationError::MissingConnection
            | NegotiationError::NoPendingOffer
            | NegotiationError::MediaCountMismatch { .. } => 399,
        };
        let text: String = self
            .to_string()
            .chars()
            .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
            .collect();
        (code, text)
    }
}

/// Copies peer text for an error message, cut to [`MAX_EXCERPT_CHARS`] characters.
pub(super) fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let mut excerpt: String = chars.by_ref().take(MAX_EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        excerpt.push_str("...");
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_codes() {
        let cases = [
            (
                NegotiationError::NoCommonCodec {
                    offered: "G729/8000".into(),
                },
                305,
            ),
            (
                NegotiationError::AddressFamilyMismatch {
                    offered: IpFamily::V6,
                    local: IpFamily::V4,
                },
                301,
            ),
            (NegotiationError::NoAudio, 304),
            (
                NegotiationError::UnsupportedTransport("RTP/SAVP".into()),
                302,
            ),
            (NegotiationError::Multicast("233.252.0.1".into()), 330),
            (NegotiationError::UnsupportedNetworkType("ATM".into()), 300),
            (NegotiationError::MissingConnection, 399),
        ];
        for (error, code) in cases {
            assert_eq!(error.warning().0, code, "{error}");
        }
    }

    #[test]
    fn warning_text_is_quotable() {
        let error = NegotiationError::UnsupportedTransport("a\"b\\c\u{e9}d".into());
        let (_, text) = error.warning();
        assert_eq!(
            text,
            "unsupported audio transport `abcd`; only RTP/AVP is supported"
        );
    }

    #[test]
    fn excerpt_bounds_peer_text() {
        assert_eq!(excerpt("short"), "short");
        let long = "x".repeat(1000);
        assert_eq!(excerpt(&long).len(), MAX_EXCERPT_CHARS + 3);
    }
}
