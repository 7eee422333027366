//! DTMF carried in SIP INFO bodies: `application/dtmf-relay` (`Signal=5` and `Duration=160`
//! lines, as SIP phones and gateways send them) and `application/dtmf` (the digit alone).

/// Default duration when the body gives none, in milliseconds.
const DEFAULT_DURATION_MS: u32 = 250;

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDtmf {
    /// `0-9`, `*`, `#` or `A-D`.
    pub digit: char,
    /// Duration in milliseconds.
    pub duration_ms: u32,
}

/// Maps a signal token to a digit; RFC 4733 event codes 10 and 11 stand for `*` and `#`.
fn digit_of(token: &str) -> Option<char> {
    match token.trim() {
        "10" => Some('*'),
        "11" => Some('#'),
        t => {
            let mut chars = t.chars();
            let c = chars.next()?.to_ascii_uppercase();
            (chars.next().is_none() && (c.is_ascii_digit() || "*#ABCD".contains(c))).then_some(c)
        }
    }
}

/// Parses an INFO body of the given content type; `None` when it holds no valid digit.
pub fn parse_info_dtmf(content_type: &str, body: &[u8]) -> Option<InfoDtmf> {
    let text = std::str::from_utf8(body).ok()?;
    match content_type {
        "application/dtmf-relay" => {
            let mut digit = None;
            let mut duration_ms = DEFAULT_DURATION_MS;
            for line in text.lines() {
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                if name.trim().eq_ignore_ascii_case("signal") {
                    digit = digit_of(value);
                } else if name.trim().eq_ignore_ascii_case("duration") {
                    duration_ms = value.trim().parse().unwrap_or(DEFAULT_DURATION_MS);
                }
            }
            digit.map(|digit| InfoDtmf { digit, duration_ms })
        }
        "application/dtmf" => digit_of(text).map(|digit| InfoDtmf {
            digit,
            duration_ms: DEFAULT_DURATION_MS,
        }),
        _ => None,
    }
}

/// Returns the body and content type of an INFO that sends `digit`.
pub fn info_body(digit: char, duration_ms: u32) -> String {
    format!("Signal={digit}\r\nDuration={duration_ms}\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_body() {
        let dtmf = parse_info_dtmf("application/dtmf-relay", b"Signal=4\r\nDuration=250\r\n");
        assert_eq!(
            dtmf,
            Some(InfoDtmf {
                digit: '4',
                duration_ms: 250
            })
        );
        let hash = parse_info_dtmf("application/dtmf-relay", b"Signal= #\nDuration=160");
        assert_eq!(
            hash,
            Some(InfoDtmf {
                digit: '#',
                duration_ms: 160
            })
        );
        let star = parse_info_dtmf("application/dtmf-relay", b"Signal=10\r\n");
        assert_eq!(star.map(|d| d.digit), Some('*'));
    }

    #[test]
    fn plain_dtmf_body() {
        assert_eq!(
            parse_info_dtmf("application/dtmf", b"7").map(|d| d.digit),
            Some('7')
        );
        assert_eq!(
            parse_info_dtmf("application/dtmf", b"11\r\n").map(|d| d.digit),
            Some('#')
        );
    }

    #[test]
    fn invalid_bodies() {
        assert_eq!(parse_info_dtmf("application/dtmf-relay", b"Signal=X"), None);
        assert_eq!(
            parse_info_dtmf("application/dtmf-relay", b"Duration=100"),
            None
        );
        assert_eq!(parse_info_dtmf("application/dtmf", b"12"), None);
        assert_eq!(parse_info_dtmf("text/plain", b"1"), None);
        assert_eq!(parse_info_dtmf("application/dtmf", &[0xff]), None);
    }

    #[test]
    fn body_round_trip() {
        let body = info_body('9', 200);
        assert_eq!(
            parse_info_dtmf("application/dtmf-relay", body.as_bytes()),
            Some(InfoDtmf {
                digit: '9',
                duration_ms: 200
            })
        );
    }
}
