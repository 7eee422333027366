//! Digest authentication of trunks as a user agent server (RFC 3261 §22.4, RFC 7616 with the
//! SHA-256 algorithm for SIP from RFC 8760).
//!
//! Nonces are stateless: each carries its creation time and an HMAC-SHA-256 over that time
//! with a per-process secret, so any node of the process can check it and see when it expired.
//! An expired nonce with a correct digest gets a new challenge with `stale=true` (RFC 7616
//! §3.3), so the peer retries without asking anyone for the password again.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// MD5 (RFC 3261 §22.4), kept for peers that know nothing newer.
    Md5,
    /// SHA-256 (RFC 8760 §2.2), offered first.
    Sha256,
}

impl DigestAlgorithm {
    fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            DigestAlgorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            DigestAlgorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

/// The outcome of checking credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestVerdict {
    /// The digest matches and the nonce is fresh.
    Valid,
    /// The digest matches but the nonce expired: challenge again with `stale=true`.
    Stale,
    /// No credentials for our realm.
    Missing,
    /// Wrong user, password, realm, URI or nonce.
    Invalid,
}

/// The credentials one trunk must authenticate with.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// Expected user name.
    pub username: &'a str,
    /// Password.
    pub password: &'a str,
    /// Our realm.
    pub realm: &'a str,
}

/// Issues and checks nonces.
#[derive(Debug, Clone)]
pub struct DigestAuth {
    secret: [u8; 32],
    epoch: Instant,
    lifetime: Duration,
}

impl DigestAuth {
    /// Creates an authenticator whose nonces expire after `lifetime`.
    pub fn new(secret: [u8; 32], epoch: Instant, lifetime: Duration) -> Self {
        DigestAuth {
            secret,
            epoch,
            lifetime,
        }
    }

    /// WWW-Authenticate values for a 401, SHA-256 first (RFC 8760 §2.4).
    pub fn challenges(&self, now: Instant, realm: &str, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now);
        [DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
            .into_iter()
            .map(|algorithm| {
                let mut value = format!(
                    "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    algorithm.name()
                );
                if stale {
                    value.push_str(", stale=true");
                }
                value
            })
            .collect()
    }

    /// Checks the Authorization or Proxy-Authorization values of a request.
    pub fn verify<'a>(
        &self,
        now: Instant,
        headers: impl Iterator<Item = &'a str>,
        method: &str,
        request_uri: &str,
        expected: Credentials<'_>,
    ) -> DigestVerdict {
        let mut verdict = DigestVerdict::Missing;
        for value in headers {
            let Some(params) = parse_digest(value) else {
                continue;
            };
            if params.get("realm") != Some(expected.realm) {
                continue;
            }
            verdict = self.check(now, &params, method, request_uri, expected);
            if verdict != DigestVerdict::Invalid {
                return verdict;
            }
        }
        verdict
    }

    fn check(
        &self,
        now: Instant,
        params: &DigestParams,
        method: &str,
        request_uri: &str,
        expected: Credentials<'_>,
    ) -> DigestVerdict {
        let algorithm = match params.get("algorithm") {
            None => DigestAlgorithm::Md5,
            Some(name) if name.eq_ignore_ascii_case("MD5") => DigestAlgorithm::Md5,
            Some(name) if name.eq_ignore_ascii_case("SHA-256") => DigestAlgorithm::Sha256,
            Some(_) => return DigestVerdict::Invalid,
        };
        let (Some(username), Some(nonce), Some(uri), Some(response)) = (
            params.get("username"),
            params.get("nonce"),
            params.get("uri"),
            params.get("response"),
        ) else {
            return DigestVerdict::Invalid;
        };
        if username != expected.username || uri != request_uri {
            return DigestVerdict::Invalid;
        }
        let Some(issued) = self.nonce_time(nonce) else {
            return DigestVerdict::Invalid;
        };

        let ha1 = algorithm.hash(&format!(
            "{username}:{}:{}",
            expected.realm, expected.password
        ));
        let ha2 = algorithm.hash(&format!("{method}:{uri}"));
        let wanted = match params.get("qop") {
            Some("auth") => {
                let (Some(nc), Some(cnonce)) = (params.get("nc"), params.get("cnonce")) else {
                    return DigestVerdict::Invalid;
                };
                algorithm.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
            }
            None => algorithm.hash(&format!("{ha1}:{nonce}:{ha2}")),
            Some(_) => return DigestVerdict::Invalid,
        };
        if !constant_time_eq(wanted.as_bytes(), response.to_ascii_lowercase().as_bytes()) {
            return DigestVerdict::Invalid;
        }
        if now.saturating_duration_since(issued) > self.lifetime {
            return DigestVerdict::Stale;
        }
        DigestVerdict::Valid
    }

    fn nonce(&self, now: Instant) -> String {
        let millis = now.saturating_duration_since(self.epoch).as_millis() as u64;
        format!("{millis:x}.{}", self.tag(millis))
    }

    /// Returns the issue time of a nonce we made, `None` when the nonce is not ours.
    fn nonce_time(&self, nonce: &str) -> Option<Instant> {
        let (millis, tag) = nonce.split_once('.')?;
        let millis = u64::from_str_radix(millis, 16).ok()?;
        if !constant_time_eq(tag.as_bytes(), self.tag(millis).as_bytes()) {
            return None;
        }
        self.epoch.checked_add(Duration::from_millis(millis))
    }

    fn tag(&self, millis: u64) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return String::new();
        };
        mac.update(&millis.to_be_bytes());
        let code = mac.finalize().into_bytes();
        let mut tag = String::with_capacity(32);
        for byte in code.iter().take(16) {
            let _ = write!(tag, "{byte:02x}");
        }
        tag
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The parameters of one `Digest` credentials value.
struct DigestParams(Vec<(String, String)>);

impl DigestParams {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Parses `Digest k=v, k="quoted", ...` (RFC 7616 §3.4); `None` for other schemes.
fn parse_digest(value: &str) -> Option<DigestParams> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars
            .next_if(|c| c.is_ascii_whitespace() || *c == ',')
            .is_some()
        {}
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if name.trim().is_empty() {
            break;
        }
        chars.next_if_eq(&'=')?;
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        let mut text = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => text.push(chars.next()?),
                    c => text.push(c),
                }
            }
        } else {
            text = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        params.push((name.trim().to_string(), text.trim().to_string()));
    }
    Some(DigestParams(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDS: Credentials<'static> = Credentials {
        username: "trunk1",
        password: "secret",
        realm: "voicegate",
    };

    fn auth(start: Instant) -> DigestAuth {
        DigestAuth::new([7; 32], start, Duration::from_secs(300))
    }

    /// Computes the value a well-behaved UAC sends, as RFC 7616 §3.4.1 describes.
    fn answer(challenge: &str, algorithm: DigestAlgorithm, password: &str) -> String {
        let params = parse_digest(challenge).unwrap();
        let nonce = params.get("nonce").unwrap();
        let uri = "sip:+12025550100@127.0.0.1";
        let ha1 = algorithm.hash(&format!("trunk1:voicegate:{password}"));
        let ha2 = algorithm.hash(&format!("INVITE:{uri}"));
        let response = algorithm.hash(&format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
        format!(
            "Digest username=\"trunk1\", realm=\"voicegate\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"abc\"",
            algorithm.name()
        )
    }

    fn verify(auth: &DigestAuth, now: Instant, header: &str) -> DigestVerdict {
        auth.verify(
            now,
            [header].into_iter(),
            "INVITE",
            "sip:+12025550100@127.0.0.1",
            CREDS,
        )
    }

    #[test]
    fn challenges_offer_sha256_first() {
        let start = Instant::now();
        let challenges = auth(start).challenges(start, "voicegate", false);
        assert!(challenges[0].contains("algorithm=SHA-256"));
        assert!(challenges[1].contains("algorithm=MD5"));
        assert!(!challenges[0].contains("stale"));
    }

    #[test]
    fn both_algorithms_verify() {
        let start = Instant::now();
        let auth = auth(start);
        let challenges = auth.challenges(start, "voicegate", false);
        for (challenge, algorithm) in challenges
            .iter()
            .zip([DigestAlgorithm::Sha256, DigestAlgorithm::Md5])
        {
            let header = answer(challenge, algorithm, "secret");
            assert_eq!(verify(&auth, start, &header), DigestVerdict::Valid);
        }
    }

    #[test]
    fn wrong_password_or_forged_nonce_is_invalid() {
        let start = Instant::now();
        let auth = auth(start);
        let challenge = &auth.challenges(start, "voicegate", false)[0];
        let wrong = answer(challenge, DigestAlgorithm::Sha256, "guess");
        assert_eq!(verify(&auth, start, &wrong), DigestVerdict::Invalid);
        let forged = challenge.replace("nonce=\"", "nonce=\"1");
        let header = answer(&forged, DigestAlgorithm::Sha256, "secret");
        assert_eq!(verify(&auth, start, &header), DigestVerdict::Invalid);
    }

    #[test]
    fn expired_nonce_is_stale() {
        let start = Instant::now();
        let auth = auth(start);
        let challenge = &auth.challenges(start, "voicegate", false)[0];
        let header = answer(challenge, DigestAlgorithm::Md5, "secret");
        let later = start + Duration::from_secs(301);
        assert_eq!(verify(&auth, later, &header), DigestVerdict::Stale);
    }

    #[test]
    fn other_realm_or_scheme_is_missing() {
        let start = Instant::now();
        let auth = auth(start);
        assert_eq!(
            verify(&auth, start, "Basic dXNlcjpwYXNz"),
            DigestVerdict::Missing
        );
        let other = "Digest username=\"trunk1\", realm=\"other\", nonce=\"1.2\"";
        assert_eq!(verify(&auth, start, other), DigestVerdict::Missing);
    }

    #[test]
    fn parser_survives_garbage() {
        for text in [
            "Digest",
            "Digest a",
            "Digest a=\"unterminated",
            "Digest =,=,",
            "Digest a=b,,c=\"\\",
        ] {
            let _ = parse_digest(text);
        }
        let parsed = parse_digest("Digest a=\"x\\\"y\", b=plain").unwrap();
        assert_eq!(parsed.get("a"), Some("x\"y"));
        assert_eq!(parsed.get("b"), Some("plain"));
    }
}
