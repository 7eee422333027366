//! API keys: where they come from, and a type that keeps them out of logs.

use std::fmt;

/// A provider API key. `Debug` and `Display` print `***`, so the key never reaches a log line,
/// an error message or a panic message through formatting.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key as given.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into().trim().to_string())
    }

    /// Returns the key for a request header. Callers mark the header value as sensitive.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces every occurrence of the key in `text` with `***`, for error bodies that echo
    /// the request.
    pub fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_string();
        }
        text.replace(&self.0, "***")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("ApiKey(unset)")
        } else {
            f.write_str("ApiKey(***)")
        }
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Picks the key for one provider: a per-tenant key wins, then the configured key, then the
/// environment variable `env_name` read through `lookup`. Returns an empty key when none is set.
pub fn resolve_key(
    tenant_key: &str,
    configured: &str,
    env_name: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> ApiKey {
    if !tenant_key.trim().is_empty() {
        return ApiKey::new(tenant_key);
    }
    if !configured.trim().is_empty() {
        return ApiKey::new(configured);
    }
    ApiKey::new(lookup(env_name).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |name| (name == "TEST_KEY").then(|| value.to_string())
    }

    #[test]
    fn tenant_key_wins() {
        let key = resolve_key("tenant", "configured", "TEST_KEY", env_with("env"));
        assert_eq!(key.expose(), "tenant");
    }

    #[test]
    fn configured_key_beats_environment() {
        let key = resolve_key("", "configured", "TEST_KEY", env_with("env"));
        assert_eq!(key.expose(), "configured");
    }

    #[test]
    fn environment_is_the_fallback() {
        let key = resolve_key(" ", "", "TEST_KEY", env_with("env"));
        assert_eq!(key.expose(), "env");
    }

    #[test]
    fn missing_everywhere_is_empty() {
        let key = resolve_key("", "", "OTHER", env_with("env"));
        assert!(key.is_empty());
    }

    #[test]
    fn debug_and_display_hide_the_key() {
        let key = ApiKey::new("sk-secret-123");
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        assert_eq!(key.to_string(), "***");
        assert!(!format!("{:?}", Some(&key)).contains("secret"));
    }

    #[test]
    fn redact_removes_echoed_key() {
        let key = ApiKey::new("sk-secret-123");
        assert_eq!(
            key.redact("invalid key sk-secret-123 given"),
            "invalid key *** given"
        );
    }
}
