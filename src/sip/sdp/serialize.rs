//! Printing a session description: lines in the order RFC 4566 §5 fixes, each ended by CRLF.

use std::fmt::{self, Display, Formatter};

use super::model::{
    Attribute, Bandwidth, Connection, MediaDescription, Origin, SessionDescription, UnknownLine,
};

impl Display for SessionDescription {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\n")?;
        write!(f, "o={}\r\n", self.origin)?;
        // RFC 4566 §5.3 requires a non-empty s=, and a single space is the usual stand-in.
        let name = if self.session_name.is_empty() {
            " "
        } else {
            &self.session_name
        };
        write!(f, "s={name}\r\n")?;

        write_optional(f, 'i', self.information.as_deref())?;
        write_optional(f, 'u', self.uri.as_deref())?;
        for email in &self.emails {
            write!(f, "e={email}\r\n")?;
        }
        for phone in &self.phones {
            write!(f, "p={phone}\r\n")?;
        }
        if let Some(connection) = &self.connection {
            write!(f, "c={connection}\r\n")?;
        }
        write_bandwidths(f, &self.bandwidths)?;

        for timing in &self.timings {
            write!(f, "t={} {}\r\n", timing.start, timing.stop)?;
            for repeat in &timing.repeats {
                write!(f, "r={repeat}\r\n")?;
            }
        }

        write_optional(f, 'z', self.time_zones.as_deref())?;
        write_optional(f, 'k', self.encryption_key.as_deref())?;
        write_attributes(f, &self.attributes)?;
        write_unknown(f, &self.unknown_lines)?;

        for media in &self.media {
            write!(f, "{media}")?;
        }
        Ok(())
    }
}

/// Prints the `m=` line and the section's lines, each ended by CRLF.
impl Display for MediaDescription {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind, self.port)?;
        if let Some(count) = self.port_count {
            write!(f, "/{count}")?;
        }
        write!(f, " {}", self.protocol)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        write!(f, "\r\n")?;
        write_optional(f, 'i', self.information.as_deref())?;
        for connection in &self.connections {
            write!(f, "c={connection}\r\n")?;
        }
        write_bandwidths(f, &self.bandwidths)?;
        write_optional(f, 'k', self.encryption_key.as_deref())?;
        write_attributes(f, &self.attributes)?;
        write_unknown(f, &self.unknown_lines)
    }
}

/// Prints the value of an `o=` line.
impl Display for Origin {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.net_type,
            self.addr_type,
            self.address
        )
    }
}

/// Prints the value of a `c=` line, with its multicast suffixes.
impl Display for Connection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)?;
        if let Some(ttl) = self.ttl {
            write!(f, "/{ttl}")?;
        }
        if let Some(count) = self.address_count {
            write!(f, "/{count}")?;
        }
        Ok(())
    }
}

/// Prints the value of an `a=` line.
impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}:{value}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

fn write_optional(f: &mut Formatter<'_>, kind: char, value: Option<&str>) -> fmt::Result {
    match value {
        Some(value) => write!(f, "{kind}={value}\r\n"),
        None => Ok(()),
    }
}

fn write_bandwidths(f: &mut Formatter<'_>, bandwidths: &[Bandwidth]) -> fmt::Result {
    for bandwidth in bandwidths {
        write!(f, "b={}:{}\r\n", bandwidth.kind, bandwidth.value)?;
    }
    Ok(())
}

fn write_attributes(f: &mut Formatter<'_>, attributes: &[Attribute]) -> fmt::Result {
    for attribute in attributes {
        write!(f, "a={attribute}\r\n")?;
    }
    Ok(())
}

fn write_unknown(f: &mut Formatter<'_>, lines: &[UnknownLine]) -> fmt::Result {
    for line in lines {
        write!(f, "{}={}\r\n", line.kind, line.value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "v=0\r\n\
        o=- 20518 0 IN IP6 2001:db8::10\r\n\
        s=Call\r\n\
        i=A call\r\n\
        u=https://example.net/call\r\n\
        e=ops@example.net\r\n\
        p=+1 202 555 0100\r\n\
        c=IN IP4 233.252.0.1/127/2\r\n\
        b=CT:128\r\n\
        t=3034423619 3042462419\r\n\
        r=604800 3600 0 90000\r\n\
        z=2882844526 -1h\r\n\
        k=prompt\r\n\
        a=recvonly\r\n\
        y=0123456789\r\n\
        m=audio 49170/2 RTP/AVP 0 8\r\n\
        i=Voice\r\n\
        c=IN IP6 2001:db8::11\r\n\
        b=AS:64\r\n\
        k=prompt\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtcp-mux\r\n\
        x=vendor\r\n\
        m=video 0 RTP/AVP 99\r\n";

    #[test]
    fn display_reproduces_every_line_type() {
        let sdp = SessionDescription::parse(FULL).unwrap();
        assert_eq!(sdp.to_string(), FULL);
    }

    #[test]
    fn display_uses_crlf_only() {
        let sdp = SessionDescription::parse(&FULL.replace("\r\n", "\n")).unwrap();
        let text = sdp.to_string();
        assert_eq!(text.matches("\r\n").count(), text.matches('\n').count());
        assert!(text.ends_with("\r\n"));
    }

    #[test]
    fn display_writes_space_for_empty_session_name() {
        let mut sdp = SessionDescription::parse(FULL).unwrap();
        sdp.session_name.clear();
        let text = sdp.to_string();
        assert!(text.contains("\r\ns= \r\n"));
        assert_eq!(SessionDescription::parse(&text).unwrap(), sdp);
    }
}
