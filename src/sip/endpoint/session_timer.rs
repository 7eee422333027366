//! Session timers (RFC 4028): negotiating Session-Expires, knowing who refreshes, and when a
//! session without refreshes must end.

use std::time::{Duration, Instant};

use crate::sip::message::HeaderAccess;

/// Our session timer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// Interval we ask for when the peer does not, in seconds.
    pub session_expires: u32,
    /// Smallest interval we accept, in seconds (at least 90, RFC 4028 §4).
    pub min_se: u32,
}

/// A running session timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTimer {
    /// Session interval in seconds.
    pub interval: u32,
    /// Whether we send the refreshes.
    pub we_refresh: bool,
    /// Whether the peer supports the extension, so responses carry `Require: timer`.
    pub peer_supports: bool,
    /// When the session was last refreshed.
    pub refreshed_at: Instant,
}

/// Parses `Session-Expires: 1800;refresher=uac` into seconds and the refresher parameter.
fn parse_session_expires(value: &str) -> Option<(u32, Option<&str>)> {
    let mut parts = value.split(';');
    let seconds = parts.next()?.trim().parse::<u32>().ok()?;
    let refresher = parts
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("refresher"))
        .map(|(_, value)| value.trim());
    Some((seconds, refresher))
}

fn min_se_of(request: &impl HeaderAccess) -> u32 {
    request
        .header("Min-SE")
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(90)
}

impl SessionTimer {
    /// Negotiates the timer for a request we answer as UAS (RFC 4028 §9): an initial INVITE
    /// or a refresh. `Err(min_se)` means the interval is too small: answer 422 with that Min-SE.
    pub fn negotiate_as_uas(
        request: &impl HeaderAccess,
        config: SessionTimerConfig,
        previous: Option<&SessionTimer>,
        now: Instant,
    ) -> Result<SessionTimer, u32> {
        let peer_supports =
            request.has_token("Supported", "timer") || request.has_token("Require", "timer");
        let floor = config.min_se.max(min_se_of(request));
        let requested = request
            .header("Session-Expires")
            .and_then(parse_session_expires);

        let (interval, refresher) = match requested {
            Some((seconds, _)) if seconds < config.min_se => return Err(floor),
            // RFC 4028 §9: we may lower the interval, but not below the request's Min-SE.
            Some((seconds, refresher)) => {
                (seconds.min(config.session_expires.max(floor)), refresher)
            }
            None => match previous {
                Some(timer) => (timer.interval, None),
                None => (config.session_expires.max(floor), None),
            },
        };
        let we_refresh = match refresher {
            Some(r) if r.eq_ignore_ascii_case("uas") => true,
            Some(r) if r.eq_ignore_ascii_case("uac") => false,
            // Without a choice, the side that supports the extension refreshes.
            _ => !peer_supports,
        };
        Ok(SessionTimer {
            interval,
            we_refresh,
            peer_supports,
            refreshed_at: now,
        })
    }

    /// Applies the Session-Expires of a 2xx to a request we sent (RFC 4028 §7.2); `None`
    /// when the response turns the timer off.
    pub fn from_uac_response(
        response: &impl HeaderAccess,
        previous: Option<&SessionTimer>,
        now: Instant,
    ) -> Option<SessionTimer> {
        let (interval, refresher) = response
            .header("Session-Expires")
            .and_then(parse_session_expires)?;
        let we_refresh = match refresher {
            Some(r) => r.eq_ignore_ascii_case("uac"),
            None => previous.is_none_or(|p| p.we_refresh),
        };
        Some(SessionTimer {
            interval,
            we_refresh,
            peer_supports: true,
            refreshed_at: now,
        })
    }

    /// Returns the Session-Expires value for our response to the refresh or INVITE.
    pub fn response_value(&self) -> String {
        let refresher = if self.we_refresh { "uas" } else { "uac" };
        format!("{};refresher={refresher}", self.interval)
    }

    /// Returns the Session-Expires value for a refresh request we send (we are its UAC).
    pub fn request_value(&self) -> String {
        format!("{};refresher=uac", self.interval)
    }

    /// When we send the next refresh: half the interval (RFC 4028 §10), if we refresh.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.we_refresh
            .then(|| self.refreshed_at + Duration::from_secs(u64::from(self.interval) / 2))
    }

    /// When the session ends without a refresh: the interval minus min(32 s, interval/3)
    /// (RFC 4028 §10).
    pub fn expires_at(&self) -> Instant {
        let interval = u64::from(self.interval);
        self.refreshed_at + Duration::from_secs(interval - (interval / 3).min(32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Message, Request, parse_message};

    const CONFIG: SessionTimerConfig = SessionTimerConfig {
        session_expires: 1800,
        min_se: 90,
    };

    fn request(headers: &str) -> Request {
        let text = format!(
            "INVITE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:b@127.0.0.1>;tag=f\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        match parse_message(text.as_bytes(), 65535).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn small_interval_gets_422() {
        let now = Instant::now();
        let r = request("Supported: timer\r\nSession-Expires: 60\r\n");
        assert_eq!(
            SessionTimer::negotiate_as_uas(&r, CONFIG, None, now),
            Err(90)
        );
        let r = request("Session-Expires: 60\r\nMin-SE: 120\r\n");
        assert_eq!(
            SessionTimer::negotiate_as_uas(&r, CONFIG, None, now),
            Err(120)
        );
    }

    #[test]
    fn refresher_parameter_is_honoured() {
        let now = Instant::now();
        let r = request("Supported: timer\r\nSession-Expires: 120;refresher=uas\r\n");
        let timer = SessionTimer::negotiate_as_uas(&r, CONFIG, None, now).unwrap();
        assert_eq!(timer.interval, 120);
        assert!(timer.we_refresh);
        assert_eq!(timer.response_value(), "120;refresher=uas");
        assert_eq!(timer.refresh_at(), Some(now + Duration::from_secs(60)));
        assert_eq!(timer.expires_at(), now + Duration::from_secs(88));
    }

    #[test]
    fn supporting_peer_refreshes_by_default() {
        let now = Instant::now();
        let r = request("Supported: timer, 100rel\r\nSession-Expires: 3600\r\n");
        let timer = SessionTimer::negotiate_as_uas(&r, CONFIG, None, now).unwrap();
        assert_eq!(timer.interval, 1800);
        assert!(!timer.we_refresh);
        assert!(timer.peer_supports);
        assert_eq!(timer.refresh_at(), None);
        assert_eq!(timer.expires_at(), now + Duration::from_secs(1768));
    }

    #[test]
    fn unaware_peer_means_we_refresh() {
        let now = Instant::now();
        let timer = SessionTimer::negotiate_as_uas(&request(""), CONFIG, None, now).unwrap();
        assert!(timer.we_refresh);
        assert!(!timer.peer_supports);
        assert_eq!(timer.interval, 1800);
    }
}
