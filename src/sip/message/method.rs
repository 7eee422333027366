//! SIP request methods (RFC 3261 §7.1 and the extensions voicegate handles).

use std::fmt;

/// A request method. Method names are case-sensitive (RFC 3261 §7.1), so `invite` is an
/// extension method, not INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// RFC 3261.
    Invite,
    /// RFC 3261.
    Ack,
    /// RFC 3261.
    Bye,
    /// RFC 3261.
    Cancel,
    /// RFC 3261.
    Options,
    /// RFC 3261.
    Register,
    /// RFC 3262.
    Prack,
    /// RFC 3311.
    Update,
    /// RFC 6086.
    Info,
    /// RFC 3515.
    Refer,
    /// RFC 6665.
    Notify,
    /// RFC 6665.
    Subscribe,
    /// RFC 3428.
    Message,
    /// RFC 3903.
    Publish,
    /// Any other token; answered with 501 Not Implemented.
    Extension(String),
}

impl Method {
    /// Parses a method token; `None` when `token` is not an RFC 3261 §25.1 token.
    pub fn from_token(token: &str) -> Option<Method> {
        let method = match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other if is_token(other) => Method::Extension(other.to_string()),
            _ => return None,
        };
        Some(method)
    }

    /// Returns the method name as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returns whether `text` is a non-empty RFC 3261 §25.1 token.
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_byte)
}

/// Returns whether `byte` may appear in an RFC 3261 §25.1 token.
pub fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_methods_round_trip() {
        for name in [
            "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "PRACK", "UPDATE", "INFO",
        ] {
            let method = Method::from_token(name).unwrap();
            assert_eq!(method.as_str(), name);
            assert!(!matches!(method, Method::Extension(_)), "{name}");
        }
    }

    #[test]
    fn lowercase_is_extension() {
        assert_eq!(
            Method::from_token("invite"),
            Some(Method::Extension("invite".into()))
        );
    }

    #[test]
    fn non_token_is_rejected() {
        assert_eq!(Method::from_token(""), None);
        assert_eq!(Method::from_token("IN VITE"), None);
        assert_eq!(Method::from_token("INV\0"), None);
    }
}
