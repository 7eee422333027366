//! Transaction keys: how requests and responses find their transaction (RFC 3261 §17.1.3,
//! §17.2.3).

use crate::sip::message::{Method, Request, Response};

/// Identifies a server transaction.
///
/// With an RFC 3261 branch the key is branch, sent-by and method, where ACK maps to INVITE
/// (§17.2.3). Requests from RFC 2543 peers carry no unique branch; their key is built from
/// Call-ID, From tag, CSeq and the top Via instead (§17.2.3, second half).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    branch: String,
    sent_by: String,
    method: Method,
}

impl ServerKey {
    /// Returns the key of the transaction `request` belongs to. ACK maps to the INVITE transaction.
    pub fn of(request: &Request) -> ServerKey {
        let method = match request.method {
            Method::Ack => Method::Invite,
            ref other => other.clone(),
        };
        Self::with_method(request, method)
    }

    /// Returns the key of the INVITE transaction a CANCEL refers to (§9.2).
    pub fn invite_of_cancel(cancel: &Request) -> ServerKey {
        Self::with_method(cancel, Method::Invite)
    }

    fn with_method(request: &Request, method: Method) -> ServerKey {
        let branch = match request.via.rfc3261_branch() {
            Some(branch) => branch.to_string(),
            None => {
                // RFC 2543 matching: Request-URI, tags, Call-ID, CSeq number and top Via.
                let from_tag = request.from.tag.as_deref().unwrap_or_default();
                format!(
                    "2543|{}|{from_tag}|{}|{}|{}",
                    request.uri_text, request.call_id, request.cseq.seq, request.via.raw
                )
            }
        };
        ServerKey {
            branch,
            sent_by: request.via.sent_by(),
            method,
        }
    }

    /// Returns the branch part of the key.
    pub fn branch(&self) -> &str {
        &self.branch
    }
}

/// Identifies a client transaction: our branch and the CSeq method (§17.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    branch: String,
    method: Method,
}

impl ClientKey {
    /// Key for a request we send with `branch`.
    pub fn new(branch: &str, method: Method) -> ClientKey {
        ClientKey {
            branch: branch.to_string(),
            method,
        }
    }

    /// Key a response matches: its top Via branch and CSeq method.
    pub fn of_response(response: &Response) -> Option<ClientKey> {
        let branch = response.via.branch.as_deref()?;
        Some(ClientKey::new(branch, response.cseq.method.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Message, parse_message};

    fn request(method: &str, via: &str) -> Request {
        let text = format!(
            "{method} sip:a@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nFrom: <sip:b@127.0.0.1>;tag=f\r\n\
             To: <sip:a@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_message(text.as_bytes(), 65535).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn ack_and_cancel_find_the_invite() {
        let via = "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1";
        let invite = ServerKey::of(&request("INVITE", via));
        assert_eq!(ServerKey::of(&request("ACK", via)), invite);
        let cancel = request("CANCEL", via);
        assert_ne!(ServerKey::of(&cancel), invite);
        assert_eq!(ServerKey::invite_of_cancel(&cancel), invite);
    }

    #[test]
    fn sent_by_is_part_of_the_key() {
        let a = ServerKey::of(&request(
            "INVITE",
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1",
        ));
        let b = ServerKey::of(&request(
            "INVITE",
            "SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-1",
        ));
        assert_ne!(a, b);
    }

    #[test]
    fn rfc2543_requests_get_a_synthetic_key() {
        let a = ServerKey::of(&request("INVITE", "SIP/2.0/UDP 127.0.0.1:5070;branch=old1"));
        assert!(a.branch().starts_with("2543|"));
        let ack = ServerKey::of(&request("ACK", "SIP/2.0/UDP 127.0.0.1:5070;branch=old1"));
        assert_eq!(a, ack);
    }
}
