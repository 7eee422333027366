//! Per-tenant call settings and provider API keys.
//!
//! A field left out (`None`) inherits the server's setting from `config.toml`, so a tenant
//! stores only what differs. Provider API keys live apart from the settings: they are written
//! through the admin API and CLI but never returned, printed or logged.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::TenancyError;
use crate::ai::{IntentConfig, LLM_NAMES, STT_NAMES, TTS_NAMES};

/// Maximum length of a greeting, prompt or other free text, in characters.
const MAX_TEXT_CHARS: usize = 20_000;
/// Maximum entries of a word list (keywords, backchannels).
const MAX_LIST_ITEMS: usize = 500;
/// Most scripted-agent intents accepted.
const MAX_INTENTS: usize = 200;

/// Providers whose API keys a tenant may set.
pub const KEYED_PROVIDERS: [&str; 5] = ["deepgram", "openai", "anthropic", "elevenlabs", "azure"];

/// How calls of one tenant are answered. `None` inherits the server setting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// Spoken when the call is answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// System prompt for language-model agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Voice of the first text-to-speech provider (espeak-ng voice, ElevenLabs voice id, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// Language of the conversation as a BCP 47 tag (`en-US`, `de`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Speech-to-text provider chain, first choice first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stt: Option<Vec<String>>,
    /// Language-model provider chain, first choice first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<Vec<String>>,
    /// Text-to-speech provider chain, first choice first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tts: Option<Vec<String>>,
    /// Write a stereo recording of each call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    /// Milliseconds to ring before answering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_delay_ms: Option<u64>,
    /// Words that help speech recognition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    /// Short words that do not interrupt the AI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannels: Option<Vec<String>>,
    /// Caller speech needed before it interrupts the AI, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_interruption_ms: Option<u64>,
    /// The greeting plays to the end even when the caller talks over it.
    pub non_interruptible_greeting: bool,
    /// DTMF digits are treated as sensitive (card numbers, PINs): never logged or stored.
    pub sensitive_dtmf: bool,
    /// SIP URI or number that transfers go to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_target: Option<String>,
    /// Intents of the scripted agent, replacing the server's `[[agent.intent]]` list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intents: Option<Vec<IntentConfig>>,
}

impl TenantSettings {
    /// Checks every field; errors name the field as `settings.<name>`.
    pub fn validate(&self) -> Result<(), TenancyError> {
        let texts = [
            ("greeting", &self.greeting),
            ("prompt", &self.prompt),
            ("voice", &self.voice),
            ("transfer_target", &self.transfer_target),
        ];
        for (name, value) in texts {
            if let Some(text) = value {
                check_text(name, text)?;
            }
        }
        if let Some(language) = &self.language {
            check_language(language)?;
        }
        check_chain("stt", &self.stt, &STT_NAMES)?;
        check_chain("llm", &self.llm, &LLM_NAMES)?;
        check_chain("tts", &self.tts, &TTS_NAMES)?;
        check_range("answer_delay_ms", self.answer_delay_ms, 60_000)?;
        check_range("min_interruption_ms", self.min_interruption_ms, 5_000)?;
        check_list("keywords", &self.keywords)?;
        check_list("backchannels", &self.backchannels)?;
        if let Some(intents) = &self.intents {
            check_intents(intents)?;
        }
        Ok(())
    }
}

fn field(name: &str) -> String {
    format!("settings.{name}")
}

fn check_text(name: &str, text: &str) -> Result<(), TenancyError> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(TenancyError::invalid(
            field(name),
            format!("longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(())
}

fn check_language(tag: &str) -> Result<(), TenancyError> {
    // BCP 47 (RFC 5646 §2.1) in its common shape: alphanumeric subtags of 1 to 8 characters
    // separated by hyphens, starting with a 2 to 8 letter language subtag.
    let mut subtags = tag.split('-');
    let language = subtags.next().unwrap_or_default();
    let language_ok =
        (2..=8).contains(&language.len()) && language.chars().all(|c| c.is_ascii_alphabetic());
    let rest_ok =
        subtags.all(|s| (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()));
    if !language_ok || !rest_ok {
        return Err(TenancyError::invalid(
            field("language"),
            format!("`{tag}` is not a BCP 47 language tag like en-US"),
        ));
    }
    Ok(())
}

fn check_chain(
    name: &str,
    chain: &Option<Vec<String>>,
    known: &[&str],
) -> Result<(), TenancyError> {
    let Some(chain) = chain else { return Ok(()) };
    if chain.is_empty() {
        return Err(TenancyError::invalid(
            field(name),
            "list at least one provider, or leave it out to use the server's",
        ));
    }
    for provider in chain {
        if !known.contains(&provider.as_str()) {
            return Err(TenancyError::invalid(
                field(name),
                format!("`{provider}` is not one of {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn check_range(name: &str, value: Option<u64>, max: u64) -> Result<(), TenancyError> {
    match value {
        Some(value) if value > max => Err(TenancyError::invalid(
            field(name),
            format!("{value} is above the maximum of {max}"),
        )),
        _ => Ok(()),
    }
}

fn check_list(name: &str, list: &Option<Vec<String>>) -> Result<(), TenancyError> {
    let Some(list) = list else { return Ok(()) };
    if list.len() > MAX_LIST_ITEMS {
        return Err(TenancyError::invalid(
            field(name),
            format!("more than {MAX_LIST_ITEMS} entries"),
        ));
    }
    if list.iter().any(|word| word.trim().is_empty()) {
        return Err(TenancyError::invalid(
            field(name),
            "contains an empty entry",
        ));
    }
    list.iter().try_for_each(|word| check_text(name, word))
}

fn check_intents(intents: &[IntentConfig]) -> Result<(), TenancyError> {
    if intents.len() > MAX_INTENTS {
        return Err(TenancyError::invalid(
            field("intents"),
            format!("more than {MAX_INTENTS} intents"),
        ));
    }
    for (i, intent) in intents.iter().enumerate() {
        let name = |part: &str| format!("intents[{i}].{part}");
        if intent.name.trim().is_empty() {
            return Err(TenancyError::invalid(field(&name("name")), "missing"));
        }
        if intent.keywords.is_empty() {
            return Err(TenancyError::invalid(
                field(&name("keywords")),
                "list at least one keyword",
            ));
        }
        if !["", "hangup", "transfer"].contains(&intent.action.as_str()) {
            return Err(TenancyError::invalid(
                field(&name("action")),
                format!("`{}` is not empty, `hangup` or `transfer`", intent.action),
            ));
        }
        check_text(&name("answer"), &intent.answer)?;
    }
    Ok(())
}

/// A tenant's API keys for cloud providers, by provider name. Debug output shows only which
/// providers have a key; there is deliberately no `Serialize`, so no response can carry them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderKeys(BTreeMap<String, String>);

impl ProviderKeys {
    /// Builds the set from `provider → key` pairs, checking the provider names.
    pub fn new(keys: BTreeMap<String, String>) -> Result<ProviderKeys, TenancyError> {
        for (provider, key) in &keys {
            if !KEYED_PROVIDERS.contains(&provider.as_str()) {
                return Err(TenancyError::invalid(
                    format!("provider_keys.{provider}"),
                    format!(
                        "unknown provider; use one of {}",
                        KEYED_PROVIDERS.join(", ")
                    ),
                ));
            }
            if key.trim().is_empty() || key.len() > 4_096 {
                return Err(TenancyError::invalid(
                    format!("provider_keys.{provider}"),
                    "a key must be 1 to 4096 characters",
                ));
            }
        }
        Ok(ProviderKeys(keys))
    }

    /// Returns the key for `provider`, if the tenant set one.
    pub fn get(&self, provider: &str) -> Option<&str> {
        self.0.get(provider).map(String::as_str)
    }

    /// Names of the providers that have a key.
    pub fn providers(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// Applies a patch: a `Some` value sets the key, `None` removes it.
    pub fn patched(&self, patch: &BTreeMap<String, Option<String>>) -> Result<Self, TenancyError> {
        let mut keys = self.0.clone();
        for (provider, value) in patch {
            match value {
                Some(key) => keys.insert(provider.clone(), key.clone()),
                None => keys.remove(provider),
            };
        }
        ProviderKeys::new(keys)
    }

    pub(crate) fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_field(settings: &TenantSettings) -> String {
        match settings.validate() {
            Err(TenancyError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn default_settings_are_valid() {
        assert!(TenantSettings::default().validate().is_ok());
    }

    #[test]
    fn unknown_provider_names_field() {
        let settings = TenantSettings {
            tts: Some(vec!["espeak".into(), "polly".into()]),
            ..Default::default()
        };
        assert_eq!(error_field(&settings), "settings.tts");
    }

    #[test]
    fn empty_chain_is_rejected() {
        let settings = TenantSettings {
            llm: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(error_field(&settings), "settings.llm");
    }

    #[test]
    fn language_tag_checked() {
        for good in ["en", "en-US", "zh-Hant-TW", "de-CH-1996"] {
            let settings = TenantSettings {
                language: Some(good.into()),
                ..Default::default()
            };
            assert!(settings.validate().is_ok(), "{good}");
        }
        for bad in ["", "e", "en_US", "english-", "en--US", "123"] {
            let settings = TenantSettings {
                language: Some(bad.into()),
                ..Default::default()
            };
            assert_eq!(error_field(&settings), "settings.language", "{bad}");
        }
    }

    #[test]
    fn intent_action_checked() {
        let settings = TenantSettings {
            intents: Some(vec![IntentConfig {
                name: "human".into(),
                keywords: vec!["agent".into()],
                answer: "One moment.".into(),
                action: "dial".into(),
            }]),
            ..Default::default()
        };
        assert_eq!(error_field(&settings), "settings.intents[0].action");
    }

    #[test]
    fn ranges_checked() {
        let settings = TenantSettings {
            answer_delay_ms: Some(60_001),
            ..Default::default()
        };
        assert_eq!(error_field(&settings), "settings.answer_delay_ms");
    }

    #[test]
    fn unknown_setting_is_rejected_when_parsing() {
        let err = serde_json::from_str::<TenantSettings>(r#"{"greting": "hi"}"#).unwrap_err();
        assert!(err.to_string().contains("greting"), "{err}");
    }

    #[test]
    fn provider_keys_hidden_from_debug() {
        let keys = ProviderKeys::new(BTreeMap::from([(
            "openai".to_string(),
            "sk-secret-value".to_string(),
        )]))
        .unwrap();
        let debug = format!("{keys:?}");
        assert_eq!(debug, "{\"openai\"}");
        assert!(!debug.contains("sk-secret"));
    }

    #[test]
    fn provider_keys_patch_sets_and_removes() {
        let keys = ProviderKeys::new(BTreeMap::from([("openai".into(), "a".into())])).unwrap();
        let patch = BTreeMap::from([
            ("openai".to_string(), None),
            ("deepgram".to_string(), Some("b".to_string())),
        ]);
        let patched = keys.patched(&patch).unwrap();
        assert_eq!(patched.get("openai"), None);
        assert_eq!(patched.get("deepgram"), Some("b"));
    }

    #[test]
    fn unknown_provider_key_rejected() {
        let err = ProviderKeys::new(BTreeMap::from([("polly".into(), "k".into())])).unwrap_err();
        assert!(err.to_string().contains("provider_keys.polly"), "{err}");
    }
}
