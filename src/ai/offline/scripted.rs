//! The scripted agent: a keyword-matching [`LlmProvider`] built from `[agent]`, so that the
//! server carries on a useful conversation with no language model at all.
//!
//! It reads only the caller's latest message. A goodbye keyword makes it speak `goodbye` and
//! call `end_call`. Otherwise the intent with the most keyword matches wins (the first one
//! listed on a tie): its answer is streamed word by word, then its action becomes a tool call.
//! With no match it speaks `fallback`. Keywords match whole words, case-insensitively, and a
//! plural or `-ing` form of a keyword word matches too. A DTMF message such as `[dtmf 1]`
//! matches an intent whose keywords contain the digit.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::stream::{self, BoxStream, StreamExt};
use serde_json::json;

use crate::ai::provider::{ChatRequest, LlmEvent, LlmProvider, ProviderError, Role, ToolCall};
use crate::ai::tools::{END_CALL, TRANSFER_CALL};
use crate::ai::{AgentConfig, IntentConfig};

/// The agent's reply to one caller message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Name of the matched intent: an `[[agent.intent]]` name, `goodbye`, `greeting` or
    /// `fallback`.
    pub intent: String,
    /// Text to speak.
    pub text: String,
    /// Tool to call after speaking, if any.
    pub tool: Option<(&'static str, serde_json::Value)>,
}

/// Keyword-matching agent.
#[derive(Debug)]
pub struct ScriptedAgent {
    config: AgentConfig,
    goodbye: Vec<Vec<String>>,
    intents: Vec<Vec<Vec<String>>>,
    next_call_id: AtomicU64,
}

impl ScriptedAgent {
    /// Builds the agent from `[agent]` or a tenant's own agent settings.
    pub fn new(config: &AgentConfig) -> Self {
        let phrases = |keywords: &[String]| -> Vec<Vec<String>> {
            keywords
                .iter()
                .map(|k| words(k))
                .filter(|w| !w.is_empty())
                .collect()
        };
        Self {
            goodbye: phrases(&config.goodbye_keywords),
            intents: config
                .intents
                .iter()
                .map(|i| phrases(&i.keywords))
                .collect(),
            config: config.clone(),
            next_call_id: AtomicU64::new(1),
        }
    }

    /// Decides the reply to `message`, the caller's words.
    pub fn reply_to(&self, message: &str) -> Reply {
        let said = words(message);
        if self
            .goodbye
            .iter()
            .any(|phrase| contains_phrase(&said, phrase))
        {
            return Reply {
                intent: "goodbye".to_owned(),
                text: self.config.goodbye.clone(),
                tool: Some((END_CALL, json!({}))),
            };
        }
        let mut best: Option<(usize, &IntentConfig)> = None;
        for (intent, phrases) in self.config.intents.iter().zip(&self.intents) {
            let matches = phrases
                .iter()
                .filter(|phrase| contains_phrase(&said, phrase))
                .count();
            if matches > 0 && best.is_none_or(|(most, _)| matches > most) {
                best = Some((matches, intent));
            }
        }
        match best {
            Some((_, intent)) => Reply {
                intent: intent.name.clone(),
                text: intent.answer.clone(),
                tool: self.action_tool(&intent.action),
            },
            None => Reply {
                intent: "fallback".to_owned(),
                text: self.config.fallback.clone(),
                tool: None,
            },
        }
    }

    fn action_tool(&self, action: &str) -> Option<(&'static str, serde_json::Value)> {
        match action {
            "hangup" => Some((END_CALL, json!({}))),
            "transfer" if self.config.transfer_target.is_empty() => {
                Some((TRANSFER_CALL, json!({})))
            }
            "transfer" => Some((
                TRANSFER_CALL,
                json!({"target": self.config.transfer_target}),
            )),
            _ => None,
        }
    }

    // TODO: earlier turns are ignored, so there are no slots or follow-up questions.
    fn reply_for(&self, request: &ChatRequest) -> Reply {
        let latest = request.messages.iter().rev().find(|m| m.role == Role::User);
        match latest {
            Some(message) => self.reply_to(&message.content),
            None => Reply {
                intent: "greeting".to_owned(),
                text: self.config.greeting.clone(),
                tool: None,
            },
        }
    }
}

#[async_trait::async_trait]
impl LlmProvider for ScriptedAgent {
    fn name(&self) -> &'static str {
        "scripted"
    }

    async fn stream(
        &self,
        request: ChatRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, ProviderError>>, ProviderError> {
        let reply = self.reply_for(&request);
        tracing::debug!(call_id = %request.call_id, intent = %reply.intent, "scripted reply");
        let mut events: Vec<LlmEvent> = word_tokens(&reply.text)
            .into_iter()
            .map(LlmEvent::Token)
            .collect();
        if let Some((name, arguments)) = reply.tool {
            let id = self.next_call_id.fetch_add(1, Ordering::Relaxed);
            events.push(LlmEvent::ToolCall(ToolCall {
                id: format!("scripted-{id}"),
                name: name.to_owned(),
                arguments,
            }));
        }
        events.push(LlmEvent::Done);
        Ok(stream::iter(events.into_iter().map(Ok)).boxed())
    }
}

/// Splits text into tokens of one word each, every word but the last keeping its trailing
/// space, so that the tokens join back into the text.
fn word_tokens(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let last = words.len().saturating_sub(1);
    words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i < last {
                format!("{w} ")
            } else {
                (*w).to_owned()
            }
        })
        .collect()
}

/// Lowercase words of `text`: letters, digits and apostrophes; `*` and `#` are words of
/// their own for DTMF.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = if c == '\u{2019}' { '\'' } else { c };
        if c.is_alphanumeric() || c == '\'' {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        if c == '*' || c == '#' {
            words.push(c.to_string());
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Returns whether `said` contains the words of `phrase` one after another.
fn contains_phrase(said: &[String], phrase: &[String]) -> bool {
    said.windows(phrase.len())
        .any(|window| window.iter().zip(phrase).all(|(w, k)| word_matches(w, k)))
}

/// Returns whether a spoken word is a keyword word or its plural or `-ing` form (and the other way
/// round for a plural keyword).
fn word_matches(word: &str, keyword: &str) -> bool {
    if word == keyword {
        return true;
    }
    let forms = |base: &str, other: &str| {
        let Some(rest) = other.strip_prefix(base) else {
            // "close" -> "closing": the final e drops before -ing.
            return base
                .strip_suffix('e')
                .is_some_and(|stem| other.strip_prefix(stem) == Some("ing"));
        };
        ["s", "es", "ing", "'s"].contains(&rest)
    };
    forms(keyword, word) || forms(word, keyword)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_and_lowercase() {
        assert_eq!(
            words("What's OPEN, Saturday?"),
            ["what's", "open", "saturday"]
        );
        assert_eq!(words("[dtmf 1#]"), ["dtmf", "1", "#"]);
    }

    #[test]
    fn word_forms_match() {
        assert!(word_matches("hours", "hour"));
        assert!(word_matches("hour", "hours"));
        assert!(word_matches("opening", "open"));
        assert!(word_matches("closing", "close"));
        assert!(word_matches("prices", "price"));
        assert!(!word_matches("opera", "open"));
        assert!(!word_matches("goodbye", "bye"));
    }

    #[test]
    fn phrase_needs_adjacent_words() {
        let said = words("how much is it");
        assert!(contains_phrase(&said, &words("how much")));
        assert!(!contains_phrase(
            &words("how is it much"),
            &words("how much")
        ));
    }

    #[test]
    fn tokens_join_back() {
        let text = "We are at 12 Market Street.";
        assert_eq!(word_tokens(text).concat(), text);
        assert!(word_tokens("").is_empty());
    }
}
