//! Dialog state (RFC 3261 §12): identifiers, sequence numbers, route set and remote target,
//! and the construction of requests inside the dialog (§12.2.1.1).

use std::net::{IpAddr, SocketAddr};

use rsipstack::sip::uri::{Host, ParamsExt};

use super::types::{Destination, Transport};
use crate::sip::message::{
    HeaderAccess, MessageBuilder, Method, Request, Response, is_loose_route, parse_uri, split_list,
};

/// Our side of the transport, as written into Via and Contact.
#[derive(Debug, Clone)]
pub struct LocalContact {
    /// `host:port` for Via sent-by and the Contact URI.
    pub host_port: String,
    /// Transport of the dialog.
    pub transport: Transport,
}

impl LocalContact {
    /// Our Contact URI, with `transport=tcp` when the dialog runs over TCP.
    pub fn uri(&self) -> String {
        match self.transport {
            Transport::Udp => format!("sip:{}", self.host_port),
            Transport::Tcp => format!("sip:{};transport=tcp", self.host_port),
        }
    }

    /// Returns a Via value with `branch` and `rport` (RFC 3581 §3).
    pub fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport, self.host_port
        )
    }
}

/// One dialog, from either side.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag (empty for an RFC 2543 peer that sent none).
    pub remote_tag: String,
    /// Our From/To value, with our tag.
    pub local_party: String,
    /// The peer's From/To value, with its tag.
    pub remote_party: String,
    /// CSeq of our last request in the dialog.
    pub local_seq: u32,
    /// CSeq of the peer's last request, once it sent one.
    pub remote_seq: Option<u32>,
    /// The peer's Contact URI.
    pub remote_target: String,
    /// Route set, each entry a URI in angle brackets, in the order requests carry them.
    pub route_set: Vec<String>,
    /// Where the peer's messages came from; used when the next hop is not an IP literal.
    pub peer: Destination,
    /// Our Via and Contact.
    pub local: LocalContact,
}

impl Dialog {
    /// Creates the dialog a UAS sets up when it answers `invite` (RFC 3261 §12.1.1).
    pub fn for_uas(
        invite: &Request,
        local_tag: String,
        local_seq: u32,
        peer: Destination,
        local: LocalContact,
    ) -> Dialog {
        let route_set = record_routes(invite);
        Dialog {
            call_id: invite.call_id.clone(),
            remote_tag: invite.from.tag.clone().unwrap_or_default(),
            local_party: format!("{};tag={local_tag}", invite.to.raw),
            remote_party: invite.from.raw.clone(),
            local_tag,
            local_seq,
            remote_seq: Some(invite.cseq.seq),
            remote_target: contact_uri(invite).unwrap_or_else(|| invite.from.uri_text.clone()),
            route_set,
            peer,
            local,
        }
    }

    /// Creates the dialog a UAC sets up from a 2xx or 101-199 with a To tag (RFC 3261 §12.1.2). The
    /// route set is the Record-Route list reversed.
    pub fn for_uac(
        response: &Response,
        local_tag: String,
        local_party: String,
        local_seq: u32,
        peer: Destination,
        local: LocalContact,
        request_uri: &str,
    ) -> Dialog {
        let mut route_set = record_routes(response);
        route_set.reverse();
        Dialog {
            call_id: response.call_id.clone(),
            local_tag,
            remote_tag: response.to.tag.clone().unwrap_or_default(),
            local_party,
            remote_party: response.to.raw.clone(),
            local_seq,
            remote_seq: None,
            remote_target: contact_uri(response).unwrap_or_else(|| request_uri.to_string()),
            route_set,
            peer,
            local,
        }
    }

    /// Updates the remote target from a target refresh request or its response (§12.2).
    pub fn refresh_target(&mut self, message: &impl HeaderAccess) {
        if let Some(target) = contact_uri(message) {
            self.remote_target = target;
        }
    }

    /// Takes the next CSeq for a request of ours.
    pub fn next_seq(&mut self) -> u32 {
        self.local_seq = self.local_seq.wrapping_add(1) & 0x7fff_ffff;
        self.local_seq
    }

    /// Starts a request in the dialog (§12.2.1.1) with the given CSeq and branch: request
    /// line, Via, Route, Max-Forwards, From, To, Call-ID, CSeq and Contact. Returns the
    /// builder and where to send it.
    pub fn request(
        &self,
        method: &Method,
        seq: u32,
        branch: &str,
    ) -> (MessageBuilder, Destination) {
        let (request_uri, routes) = self.request_uri_and_routes();
        let mut builder = MessageBuilder::request(method, &request_uri);
        builder.header("Via", self.local.via(branch));
        for route in &routes {
            builder.header("Route", route);
        }
        builder.header("Max-Forwards", "70");
        builder.header("From", &self.local_party);
        builder.header("To", &self.remote_party);
        builder.header("Call-ID", &self.call_id);
        builder.header("CSeq", format_args!("{seq} {method}"));
        if !matches!(method, Method::Bye | Method::Cancel | Method::Ack) {
            builder.header("Contact", format_args!("<{}>", self.local.uri()));
        }
        (builder, self.next_hop())
    }

    /// Request-URI and Route values: loose routing puts the remote target in the
    /// Request-URI; a strict first route takes its place and the target goes last.
    fn request_uri_and_routes(&self) -> (String, Vec<String>) {
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let first_uri = strip_brackets(first);
        let loose = parse_uri(first_uri)
            .map(|u| is_loose_route(&u))
            .unwrap_or(true);
        if loose {
            return (self.remote_target.clone(), self.route_set.clone());
        }
        let mut routes: Vec<String> = self.route_set[1..].to_vec();
        routes.push(format!("<{}>", self.remote_target));
        (first_uri.to_string(), routes)
    }

    /// Returns the first route, else the remote target, when it is an IP literal; else the
    /// address the peer's messages came from. NOTE: host names are not resolved (no DNS,
    /// RFC 3263).
    ///
    /// Over TCP a request to the host the dialog's connection comes from reuses that
    /// connection, because a peer behind NAT cannot accept a new one to its Contact. When the
    /// connection has closed, the driver connects to the address instead.
    pub fn next_hop(&self) -> Destination {
        let uri = self
            .route_set
            .first()
            .map(|r| strip_brackets(r).to_string())
            .unwrap_or_else(|| self.remote_target.clone());
        let Some((addr, transport)) =
            literal_address(&uri).filter(|(a, _)| !a.ip().is_unspecified())
        else {
            return self.peer;
        };
        let transport = transport.unwrap_or(self.peer.transport);
        let same_peer = transport == self.peer.transport && addr.ip() == self.peer.addr.ip();
        Destination {
            transport,
            addr,
            connection: self.peer.connection.filter(|_| same_peer),
        }
    }
}

fn strip_brackets(value: &str) -> &str {
    let value = value.trim();
    let inner = value.strip_prefix('<').unwrap_or(value);
    inner.split('>').next().unwrap_or(inner)
}

/// Returns the address of a SIP URI whose host is an IP literal, with its `transport` parameter.
pub fn literal_address(uri: &str) -> Option<(SocketAddr, Option<Transport>)> {
    let uri = parse_uri(uri).ok()?;
    let ip = match &uri.host_with_port.host {
        Host::IpAddr(ip) => *ip,
        Host::Domain(domain) => domain.0.trim_matches(['[', ']']).parse::<IpAddr>().ok()?,
    };
    let port = uri.host_with_port.port.map(|p| p.0).unwrap_or(5060);
    let transport = uri
        .other_param("transport")
        .and_then(Transport::from_token)
        .or_else(|| {
            uri.transport()
                .and_then(|t| Transport::from_token(&t.to_string()))
        });
    Some((SocketAddr::new(ip, port), transport))
}

/// Record-Route entries in the order the message lists them.
fn record_routes(message: &impl HeaderAccess) -> Vec<String> {
    message
        .headers_named("Record-Route")
        .flat_map(split_list)
        .map(str::to_string)
        .collect()
}

/// Returns the URI of the first Contact, without angle brackets.
pub fn contact_uri(message: &impl HeaderAccess) -> Option<String> {
    let value = message.header("Contact")?;
    let first = split_list(value).next()?;
    let uri = match first.find('<') {
        Some(open) => strip_brackets(&first[open..]),
        None => first.split(';').next().unwrap_or(first),
    };
    parse_uri(uri).ok().map(|_| uri.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Message, parse_message};

    fn invite(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:+12025550100@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
             From: \"Caller\" <sip:+12025550142@127.0.0.1>;tag=ft\r\n\
             To: <sip:+12025550100@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n\
             Contact: <sip:caller@127.0.0.1:5070>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse_message(text.as_bytes(), 65535).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn peer() -> Destination {
        Destination {
            transport: Transport::Udp,
            addr: "127.0.0.1:5070".parse().unwrap(),
            connection: None,
        }
    }

    fn local() -> LocalContact {
        LocalContact {
            host_port: "127.0.0.1:5060".into(),
            transport: Transport::Udp,
        }
    }

    #[test]
    fn uas_dialog_takes_contact_and_record_route() {
        let request = invite(
            "Record-Route: <sip:127.0.0.2;lr>, <sip:127.0.0.3;lr>\r\nRecord-Route: <sip:127.0.0.4;lr>\r\n",
        );
        let mut dialog = Dialog::for_uas(&request, "lt".into(), 100, peer(), local());
        assert_eq!(dialog.remote_target, "sip:caller@127.0.0.1:5070");
        assert_eq!(dialog.route_set.len(), 3);
        assert_eq!(dialog.remote_seq, Some(7));
        let seq = dialog.next_seq();
        let (builder, destination) = dialog.request(&Method::Bye, seq, "z9hG4bK-b");
        let text = String::from_utf8(builder.finish_empty()).unwrap();
        assert!(
            text.starts_with("BYE sip:caller@127.0.0.1:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("Route: <sip:127.0.0.2;lr>\r\nRoute: <sip:127.0.0.3;lr>\r\n"));
        assert!(text.contains("From: <sip:+12025550100@127.0.0.1>;tag=lt\r\n"));
        assert!(text.contains("To: \"Caller\" <sip:+12025550142@127.0.0.1>;tag=ft\r\n"));
        assert!(text.contains("CSeq: 101 BYE\r\n"));
        assert_eq!(destination.addr, "127.0.0.2:5060".parse().unwrap());
    }

    #[test]
    fn strict_route_moves_target_last() {
        let request = invite("Record-Route: <sip:127.0.0.2>\r\n");
        let dialog = Dialog::for_uas(&request, "lt".into(), 1, peer(), local());
        let (builder, _) = dialog.request(&Method::Bye, 2, "z9hG4bK-b");
        let text = String::from_utf8(builder.finish_empty()).unwrap();
        assert!(text.starts_with("BYE sip:127.0.0.2 SIP/2.0\r\n"), "{text}");
        assert!(text.contains("Route: <sip:caller@127.0.0.1:5070>\r\n"));
    }

    #[test]
    fn named_target_falls_back_to_peer() {
        let request = invite("").clone();
        let mut dialog = Dialog::for_uas(&request, "lt".into(), 1, peer(), local());
        dialog.remote_target = "sip:caller@pbx.example.com".into();
        assert_eq!(dialog.next_hop(), peer());
    }

    #[test]
    fn ipv6_contact_is_reached() {
        let mut dialog = Dialog::for_uas(&invite(""), "lt".into(), 1, peer(), local());
        dialog.remote_target = "sip:caller@[::1]:5072;transport=tcp".into();
        let hop = dialog.next_hop();
        assert_eq!(hop.addr, "[::1]:5072".parse().unwrap());
        assert_eq!(hop.transport, Transport::Tcp);
    }
}
