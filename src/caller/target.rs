//! The number the test caller dials: a SIP URI such as `sip:+15551230000@127.0.0.1:5060`, or
//! a bare `host:port`. The host must be an IP address because the caller makes no DNS lookups.

use std::net::{IpAddr, SocketAddr};

use crate::sip::Transport;

/// Port used when the target names none (RFC 3261 §19.1.2).
const DEFAULT_SIP_PORT: u16 = 5060;

/// A parsed dial target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Request-URI to send, always with a `sip:` scheme.
    pub uri: String,
    /// Destination of the INVITE.
    pub addr: SocketAddr,
    /// Transport named by a `;transport=` parameter, if any.
    pub transport: Option<Transport>,
}

/// Error parsing a dial target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `sips:` needs TLS, which the caller does not speak.
    #[error("invalid target `{0}`: sips: needs TLS, which is not supported; use a sip: URI")]
    Sips(String),
    /// The host is not an IP address.
    #[error(
        "invalid target `{0}`: the host must be an IP address with an optional port, \
         like sip:+15551230000@127.0.0.1:5060 or 127.0.0.1:5060"
    )]
    Host(String),
    /// The `;transport=` parameter names a transport the caller does not speak.
    #[error("invalid target `{0}`: transport must be udp or tcp")]
    Transport(String),
}

impl Target {
    /// Parses `sip:[user@]host[:port][;params]` or `[user@]host[:port]`.
    pub fn parse(input: &str) -> Result<Target, TargetError> {
        let trimmed = input.trim().trim_start_matches('<').trim_end_matches('>');
        if trimmed.len() >= 5 && trimmed[..5].eq_ignore_ascii_case("sips:") {
            return Err(TargetError::Sips(input.to_string()));
        }
        let rest = match trimmed.get(..4) {
            Some(scheme) if scheme.eq_ignore_ascii_case("sip:") => &trimmed[4..],
            _ => trimmed,
        };
        let (address, params) = rest.split_once(';').unwrap_or((rest, ""));
        let (user, host_port) = match address.rsplit_once('@') {
            Some((user, host_port)) if !user.is_empty() => (Some(user), host_port),
            Some(_) => return Err(TargetError::Host(input.to_string())),
            None => (None, address),
        };
        let addr =
            parse_host_port(host_port).ok_or_else(|| TargetError::Host(input.to_string()))?;
        let transport = transport_param(params)
            .map(|token| {
                Transport::from_token(token)
                    .ok_or_else(|| TargetError::Transport(input.to_string()))
            })
            .transpose()?;

        let mut uri = String::from("sip:");
        if let Some(user) = user {
            uri.push_str(user);
            uri.push('@');
        }
        uri.push_str(host_port);
        if !params.is_empty() {
            uri.push(';');
            uri.push_str(params);
        }
        Ok(Target {
            uri,
            addr,
            transport,
        })
    }
}

fn parse_host_port(host_port: &str) -> Option<SocketAddr> {
    if let Ok(addr) = host_port.parse::<SocketAddr>() {
        return Some(addr);
    }
    let host = host_port.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, DEFAULT_SIP_PORT))
}

fn transport_param(params: &str) -> Option<&str> {
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("transport")
            .then_some(value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_uri() {
        let target = Target::parse("sip:+15551230000@127.0.0.1:5070").unwrap();
        assert_eq!(target.uri, "sip:+15551230000@127.0.0.1:5070");
        assert_eq!(target.addr, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(target.transport, None);
    }

    #[test]
    fn parses_bare_host_port() {
        let target = Target::parse("127.0.0.1:5070").unwrap();
        assert_eq!(target.uri, "sip:127.0.0.1:5070");
        assert_eq!(target.addr, "127.0.0.1:5070".parse().unwrap());
    }

    #[test]
    fn defaults_port_5060() {
        let target = Target::parse("sip:100@10.0.0.1").unwrap();
        assert_eq!(target.addr, "10.0.0.1:5060".parse().unwrap());
        let v6 = Target::parse("sip:100@[::1]").unwrap();
        assert_eq!(v6.addr, "[::1]:5060".parse().unwrap());
        let v6_port = Target::parse("[::1]:5080").unwrap();
        assert_eq!(v6_port.addr, "[::1]:5080".parse().unwrap());
    }

    #[test]
    fn reads_transport_param() {
        let target = Target::parse("sip:100@127.0.0.1:5070;transport=TCP").unwrap();
        assert_eq!(target.transport, Some(Transport::Tcp));
        assert_eq!(target.uri, "sip:100@127.0.0.1:5070;transport=TCP");
        assert_eq!(
            Target::parse("sip:100@127.0.0.1;transport=sctp"),
            Err(TargetError::Transport(
                "sip:100@127.0.0.1;transport=sctp".into()
            ))
        );
    }

    #[test]
    fn rejects_names_and_sips() {
        for input in [
            "sip:100@example.com",
            "example.com:5060",
            "",
            "sip:@127.0.0.1",
        ] {
            assert!(
                matches!(Target::parse(input), Err(TargetError::Host(_))),
                "{input}"
            );
        }
        assert!(matches!(
            Target::parse("sips:100@127.0.0.1"),
            Err(TargetError::Sips(_))
        ));
    }
}
