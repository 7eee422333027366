//! Normalisation of dialled and calling numbers to E.164 (`+` and 7 to 15 digits).
//!
//! Carriers send the same number in many shapes: with or without `+`, as a national number, with
//! an international prefix, as a `tel:` URI with visual separators, percent-escaped, or with
//! number-portability parameters in the user part. [`normalize_number`] maps all of them to one
//! canonical string so that routing compares like with like.

use percent_encoding::percent_decode_str;

/// Fewest digits accepted in an E.164 number (small countries such as Niue use 7).
const MIN_DIGITS: usize = 7;
/// Most digits in an E.164 number (ITU-T E.164 §6).
const MAX_DIGITS: usize = 15;

/// Country codes whose national numbers keep their leading 0 after the country code.
const KEEPS_TRUNK_ZERO: [&str; 3] = ["39", "378", "379"];

/// Normalises a number, a user part, or a whole `sip:`, `sips:` or `tel:` URI to E.164.
///
/// `default_country` is the country calling code (`1`, `44`, ...) used to complete national
/// numbers; empty accepts only numbers that are already international. Returns `None` when the
/// input is not a telephone number (a name such as `trk8842`, a short code, or garbage).
pub fn normalize_number(input: &str, default_country: &str) -> Option<String> {
    let user = user_part(input.trim())?;
    let (number, params) = split_params(user);
    let number = percent_decode(number)?;
    let digits = strip_visual_separators(&number)?;

    if let Some(international) = digits.strip_prefix('+') {
        return e164(international);
    }
    // RFC 3966 §5.1.5: a local number is global once prefixed with a global phone-context.
    if let Some(context) = phone_context(params) {
        return e164(&format!("{context}{digits}"));
    }
    national_to_e164(&digits, default_country)
}

/// Extracts the user part of a URI, or returns the input when it is not a URI.
fn user_part(input: &str) -> Option<&str> {
    let lower = input.get(..5).unwrap_or(input).to_ascii_lowercase();
    if lower.starts_with("tel:") {
        return input.get(4..);
    }
    let rest = if lower.starts_with("sips:") {
        input.get(5..)?
    } else if lower.starts_with("sip:") {
        input.get(4..)?
    } else {
        return Some(input);
    };
    // RFC 3261 §19.1.1: userinfo = user [":" password] "@"; a URI without "@" has no user.
    let (userinfo, _host) = rest.split_once('@')?;
    Some(userinfo.split(':').next().unwrap_or(userinfo))
}

/// Splits `number;param;param=value` into the number and its parameters.
fn split_params(user: &str) -> (&str, &str) {
    match user.split_once(';') {
        Some((number, params)) => (number, params),
        None => (user, ""),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    // A `%` not followed by two hex digits is invalid, not a literal percent sign.
    let bytes = text.as_bytes();
    for (i, byte) in bytes.iter().enumerate() {
        if *byte == b'%' {
            let valid = bytes
                .get(i + 1..i + 3)
                .is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit));
            if !valid {
                return None;
            }
        }
    }
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// Removes RFC 3966 visual separators (`-`, `.`, `(`, `)`) and spaces, and checks that what is
/// left is digits with at most one leading `+`.
fn strip_visual_separators(number: &str) -> Option<String> {
    let mut out = String::with_capacity(number.len());
    for (i, c) in number.chars().enumerate() {
        match c {
            '0'..='9' => out.push(c),
            '+' if i == 0 => out.push(c),
            '-' | '.' | '(' | ')' | ' ' => {}
            _ => return None,
        }
    }
    if out.trim_start_matches('+').is_empty() {
        return None;
    }
    Some(out)
}

/// Returns the digits of a global `phone-context` parameter (RFC 3966 §5.1.5), if any.
fn phone_context(params: &str) -> Option<String> {
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("phone-context") {
            return None;
        }
        let value = percent_decode(value.trim())?;
        let digits = strip_visual_separators(&value)?;
        digits.strip_prefix('+').map(str::to_string)
    })
}

fn national_to_e164(digits: &str, country: &str) -> Option<String> {
    if let Some(rest) = digits.strip_prefix("00") {
        return e164(rest);
    }
    if country == "1" {
        return nanp_to_e164(digits);
    }
    if country.is_empty() {
        // Without a country only full international numbers sent without `+` are usable.
        return e164(digits);
    }
    if let Some(national) = digits.strip_prefix('0') {
        let national = if KEEPS_TRUNK_ZERO.contains(&country) {
            digits
        } else {
            national
        };
        return e164(&format!("{country}{national}"));
    }
    if digits.starts_with(country) && digits.len() > country.len() + 6 {
        // Already international, sent without `+`.
        return e164(digits);
    }
    e164(&format!("{country}{digits}"))
}

/// North American Numbering Plan: 10-digit national numbers, 11 digits with the leading 1, and
/// 011 as the international prefix.
fn nanp_to_e164(digits: &str) -> Option<String> {
    if let Some(rest) = digits.strip_prefix("011") {
        return e164(rest);
    }
    let first = digits.as_bytes().first().copied()?;
    match digits.len() {
        10 if (b'2'..=b'9').contains(&first) => e164(&format!("1{digits}")),
        11 if first == b'1' => e164(digits),
        // Longer numbers not starting with 1 are international numbers sent without `+`.
        12..=MAX_DIGITS if first != b'1' && first != b'0' => e164(digits),
        _ => None,
    }
}

/// Formats country code plus national number as E.164, or `None` when it cannot be one.
fn e164(digits: &str) -> Option<String> {
    let valid = (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    valid.then(|| format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DID: &str = "+12025550100";

    #[test]
    fn dialled_forms_become_one_number() {
        let forms = [
            "+12025550100",
            "12025550100",
            "2025550100",
            "0012025550100",
            "01112025550100",
            "+1 (202) 555-0100",
            "+1-202-555-0100",
            "+1.202.555.0100",
            "%2B12025550100",
            "%2b12025550100",
            "tel:+1-202-555-0100",
            "TEL:+1-202-555-0100",
            "tel:+12025550100;npdi;rn=+12025559000",
            "sip:12025550100@media.example.net;user=phone",
            "sip:+12025550100;npdi;rn=+12025559000@media.example.net;user=phone",
            "sips:+12025550100@media.example.net",
            "sip:%2B12025550100@media.example.net",
            "sip:+12025550100:secret@media.example.net",
            "+12025550100;npdi",
            "+12025550100;rn=+12025559000;npdi",
            "  +12025550100  ",
            "tel:555-0100;phone-context=+1-202",
        ];
        for form in forms {
            assert_eq!(normalize_number(form, "1").as_deref(), Some(DID), "{form}");
        }
    }

    #[test]
    fn non_numbers_are_rejected() {
        let inputs = [
            "",
            "+",
            "trk8842",
            "sip:trk8842@198.51.100.10:5060",
            "sip:media.example.net",
            "tel:",
            "12345",
            "555-0100",
            "+1202555010012345",
            "+0123456789",
            "*67",
            "2025550100#",
            "%2",
            "%zz2025550100",
            "++12025550100",
            "1+2025550100",
            "sip:@host",
        ];
        for input in inputs {
            assert_eq!(normalize_number(input, "1"), None, "{input:?}");
        }
    }

    #[test]
    fn nanp_rules_need_valid_lengths() {
        assert_eq!(normalize_number("1202555010", "1"), None);
        assert_eq!(normalize_number("22025550100", "1"), None);
        assert_eq!(
            normalize_number("442079460000", "1").as_deref(),
            Some("+442079460000")
        );
    }

    #[test]
    fn other_countries_complete_national_numbers() {
        assert_eq!(
            normalize_number("02079460000", "44").as_deref(),
            Some("+442079460000")
        );
        assert_eq!(
            normalize_number("2079460000", "44").as_deref(),
            Some("+442079460000")
        );
        assert_eq!(
            normalize_number("442079460000", "44").as_deref(),
            Some("+442079460000")
        );
        assert_eq!(
            normalize_number("00442079460000", "49").as_deref(),
            Some("+442079460000")
        );
        assert_eq!(
            normalize_number("0612345678", "39").as_deref(),
            Some("+390612345678")
        );
    }

    #[test]
    fn empty_country_accepts_only_international() {
        assert_eq!(
            normalize_number("2025550100", "").as_deref(),
            Some("+2025550100")
        );
        assert_eq!(normalize_number("+12025550100", "").as_deref(), Some(DID));
        assert_eq!(normalize_number("0012025550100", "").as_deref(), Some(DID));
        assert_eq!(normalize_number("02079460000", ""), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let len = (state % 24) as usize;
            let text: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let alphabet = b"0123456789+%;=@:.-() tTeElLsSipP\xc3\xa9";
                    alphabet[(state % alphabet.len() as u64) as usize] as char
                })
                .collect();
            let _ = normalize_number(&text, "1");
            let _ = normalize_number(&text, "44");
        }
    }
}
