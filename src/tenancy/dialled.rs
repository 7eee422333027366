//! Finding the dialled number of an INVITE from the headers that may carry it.
//!
//! Trunks differ in where they put the number that was dialled: registration trunks put their
//! own contact user in the Request-URI and the number only in To, some carriers put it in
//! P-Called-Party-ID (RFC 3455 §4.2), and forwarded calls carry the forwarding number in
//! Diversion (RFC 5806). The trunk's `number_from` setting fixes the order in which the headers
//! are tried. Diversion never selects the tenant, because it names a number the caller did not
//! dial; it is returned so the conversation can mention where the call was forwarded from.

use serde::Serialize;

use super::number::normalize_number;

/// The headers of an INVITE that may carry the dialled number, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct NumberSources<'a> {
    /// Request-URI (`sip:+12025550100@host;user=phone`).
    pub request_uri: &'a str,
    /// To header value (`"Sales" <sip:+12025550100@host>;tag=x` or `<tel:+1-202-555-0100>`).
    pub to: &'a str,
    /// P-Called-Party-ID header value, if present.
    pub p_called_party_id: Option<&'a str>,
    /// Diversion header values, top first; one value may hold several comma-separated entries.
    pub diversion: &'a [String],
}

/// Which header the dialled number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NumberSource {
    /// P-Called-Party-ID (trusted trunks only).
    PCalledPartyId,
    /// The user part of the Request-URI.
    RequestUri,
    /// The user part of the To URI.
    To,
}

impl NumberSource {
    /// Parses a `number_from` entry (`p-called-party-id`, `request-uri`, `to`).
    pub fn from_setting(name: &str) -> Option<NumberSource> {
        match name.trim().to_ascii_lowercase().as_str() {
            "p-called-party-id" => Some(NumberSource::PCalledPartyId),
            "request-uri" => Some(NumberSource::RequestUri),
            "to" => Some(NumberSource::To),
            _ => None,
        }
    }
}

/// The result of [`resolve_dialled`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Dialled {
    /// The dialled number in E.164, or `None` when no header carried a number.
    pub number: Option<String>,
    /// The header the number came from.
    pub source: Option<NumberSource>,
    /// Numbers from Diversion in E.164, most recent diversion first. Entries that are not
    /// telephone numbers are left out.
    pub diverted_from: Vec<String>,
}

impl Dialled {
    /// Returns the number that most recently forwarded the call to us, if any.
    pub fn forwarded_from(&self) -> Option<&str> {
        self.diverted_from.first().map(String::as_str)
    }
}

/// Finds the dialled number in E.164 by trying the headers in `order` (the trunk's
/// `number_from`); P-Called-Party-ID counts only when the trunk is `trusted`. Entries of `order`
/// that name no known header are skipped.
pub fn resolve_dialled(
    sources: &NumberSources<'_>,
    order: &[String],
    trusted: bool,
    default_country: &str,
) -> Dialled {
    let diverted_from = sources
        .diversion
        .iter()
        .flat_map(|value| split_header_values(value))
        .filter_map(|entry| normalize_number(uri_of_header(entry), default_country))
        .collect();

    for source in order
        .iter()
        .filter_map(|name| NumberSource::from_setting(name))
    {
        let raw = match source {
            NumberSource::PCalledPartyId if trusted => sources.p_called_party_id,
            NumberSource::PCalledPartyId => None,
            NumberSource::RequestUri => Some(sources.request_uri),
            NumberSource::To => Some(uri_of_header(sources.to)),
        };
        let number = raw
            .map(uri_of_header)
            .and_then(|uri| normalize_number(uri, default_country));
        if number.is_some() {
            return Dialled {
                number,
                source: Some(source),
                diverted_from,
            };
        }
    }
    Dialled {
        number: None,
        source: None,
        diverted_from,
    }
}

/// Returns the URI of a name-addr or addr-spec header value, without display name and header
/// parameters.
fn uri_of_header(value: &str) -> &str {
    let value = value.trim();
    if let Some(open) = find_unquoted(value, '<') {
        let inner = &value[open + 1..];
        return inner.split('>').next().unwrap_or(inner).trim();
    }
    // RFC 3261 §20: without angle brackets, everything after `;` is a header parameter, but a
    // bare number may carry user parameters such as `;npdi`, which normalisation strips.
    value
}

/// Splits a header value that may hold several comma-separated entries (RFC 3261 §7.3.1),
/// ignoring commas inside quotes and angle brackets.
fn split_header_values(value: &str) -> Vec<&str> {
    let mut entries = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut in_brackets = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_brackets = true,
            '>' if !in_quotes => in_brackets = false,
            ',' if !in_quotes && !in_brackets => {
                entries.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(value[start..].trim());
    entries.retain(|entry| !entry.is_empty());
    entries
}

/// Byte index of the first `needle` outside a quoted display name.
fn find_unquoted(value: &str, needle: char) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == needle && !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_order() -> Vec<String> {
        ["p-called-party-id", "request-uri", "to"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn pcpid_wins_on_trusted_trunk() {
        let diversion = vec![
            "<sip:+12025550199@carrier.example.com;user=phone>;reason=unconditional;counter=1"
                .to_string(),
        ];
        let sources = NumberSources {
            request_uri: "sip:12025550100@media.example.net;user=phone",
            to: "<tel:+1-202-555-0100>",
            p_called_party_id: Some("<sip:+12025550100@carrier.example.com;user=phone>"),
            diversion: &diversion,
        };
        let dialled = resolve_dialled(&sources, &default_order(), true, "1");
        assert_eq!(dialled.number.as_deref(), Some("+12025550100"));
        assert_eq!(dialled.source, Some(NumberSource::PCalledPartyId));
        assert_eq!(dialled.forwarded_from(), Some("+12025550199"));
    }

    #[test]
    fn pcpid_ignored_on_untrusted_trunk() {
        let sources = NumberSources {
            request_uri: "sip:12025550100@media.example.net",
            to: "<sip:+12025550111@media.example.net>",
            p_called_party_id: Some("<sip:+12025550111@carrier.example.com>"),
            diversion: &[],
        };
        let dialled = resolve_dialled(&sources, &default_order(), false, "1");
        assert_eq!(dialled.number.as_deref(), Some("+12025550100"));
        assert_eq!(dialled.source, Some(NumberSource::RequestUri));
    }

    #[test]
    fn registration_contact_falls_through_to_to() {
        let sources = NumberSources {
            request_uri: "sip:trk8842@198.51.100.10:5060",
            to: "<sip:+12025550111@sip.carrier.example.com>",
            p_called_party_id: None,
            diversion: &[],
        };
        let dialled = resolve_dialled(&sources, &default_order(), true, "1");
        assert_eq!(dialled.number.as_deref(), Some("+12025550111"));
        assert_eq!(dialled.source, Some(NumberSource::To));
        assert_eq!(dialled.forwarded_from(), None);
    }

    #[test]
    fn trunk_order_is_respected() {
        let sources = NumberSources {
            request_uri: "sip:+12025550100@media.example.net",
            to: "\"Sales, East\" <sip:+12025550111@media.example.net>;tag=abc",
            p_called_party_id: None,
            diversion: &[],
        };
        let order = ["to".to_string(), "request-uri".to_string()];
        let dialled = resolve_dialled(&sources, &order, true, "1");
        assert_eq!(dialled.number.as_deref(), Some("+12025550111"));
        assert_eq!(dialled.source, Some(NumberSource::To));
    }

    #[test]
    fn no_number_anywhere() {
        let sources = NumberSources {
            request_uri: "sip:reception@media.example.net",
            to: "<sip:reception@media.example.net>",
            p_called_party_id: Some("<sip:alice@example.com>"),
            diversion: &[],
        };
        let dialled = resolve_dialled(&sources, &default_order(), true, "1");
        assert_eq!(dialled, Dialled::default());
    }

    #[test]
    fn unknown_order_entries_are_skipped() {
        let sources = NumberSources {
            request_uri: "sip:+12025550100@media.example.net",
            to: "",
            p_called_party_id: None,
            diversion: &[],
        };
        let order = ["diversion".to_string(), "request-uri".to_string()];
        let dialled = resolve_dialled(&sources, &order, true, "1");
        assert_eq!(dialled.number.as_deref(), Some("+12025550100"));
    }

    #[test]
    fn several_diversions_in_order() {
        let diversion = vec![
            "<sip:+12025550177@a.example.com>;reason=no-answer, \"x,y\" <tel:+1-202-555-0188>"
                .to_string(),
            "<sip:voicemail@b.example.com>;reason=unconditional".to_string(),
            "<sip:+12025550199@c.example.com>;reason=unconditional".to_string(),
        ];
        let sources = NumberSources {
            request_uri: "sip:+12025550100@media.example.net",
            to: "",
            p_called_party_id: None,
            diversion: &diversion,
        };
        let dialled = resolve_dialled(&sources, &default_order(), true, "1");
        assert_eq!(
            dialled.diverted_from,
            vec!["+12025550177", "+12025550188", "+12025550199"]
        );
    }

    #[test]
    fn header_uri_extraction() {
        assert_eq!(
            uri_of_header("<tel:+1-202-555-0100>"),
            "tel:+1-202-555-0100"
        );
        assert_eq!(
            uri_of_header("\"A <b>\" <sip:+1@x>;tag=1"),
            "sip:+1@x",
            "brackets inside quotes are not the URI"
        );
        assert_eq!(uri_of_header(" sip:+1@x "), "sip:+1@x");
        assert_eq!(uri_of_header("<sip:+1@x"), "sip:+1@x");
    }

    #[test]
    fn random_headers_never_panic() {
        let mut state = 0x853c_49e6_748f_ea9b_u64;
        let alphabet = "<>\"\\,;:@=+%0123456789abcsiptel-() \u{e9}\u{1f600}";
        let chars: Vec<char> = alphabet.chars().collect();
        let mut text = || {
            let len = (state % 40) as usize;
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    chars[(state % chars.len() as u64) as usize]
                })
                .collect::<String>()
        };
        for _ in 0..5_000 {
            let (uri, to, pcpid, diversion) = (text(), text(), text(), vec![text(), text()]);
            let sources = NumberSources {
                request_uri: &uri,
                to: &to,
                p_called_party_id: Some(&pcpid),
                diversion: &diversion,
            };
            let dialled = resolve_dialled(&sources, &default_order(), true, "1");
            if let Some(number) = dialled.number {
                assert!(number.starts_with('+'), "{number}");
            }
        }
    }

    #[test]
    fn malformed_headers_never_panic() {
        let values = ["\"", "<", ">", "\"\\", ",,,", "<\">", "\u{e9}<\u{e9}>", ""];
        for value in values {
            let diversion = vec![value.to_string()];
            let sources = NumberSources {
                request_uri: value,
                to: value,
                p_called_party_id: Some(value),
                diversion: &diversion,
            };
            let dialled = resolve_dialled(&sources, &default_order(), true, "1");
            assert_eq!(dialled.number, None, "{value:?}");
        }
    }
}
