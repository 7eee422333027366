//! One call's settings: the tenant's overrides laid over `[ai]`, `[agent]` and `[media]`.

use crate::ai::AgentConfig;
use crate::ai::conversation::ConversationSettings;
use crate::config::Config;
use crate::tenancy::TenantSettings;

/// Everything the call layer needs to run one tenant's call.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// Settings of the conversation loop.
    pub conversation: ConversationSettings,
    /// The scripted agent's configuration, with the tenant's intents.
    pub agent: AgentConfig,
    /// Speech-to-text chain, first choice first.
    pub stt: Vec<String>,
    /// Language-model chain.
    pub llm: Vec<String>,
    /// Text-to-speech chain.
    pub tts: Vec<String>,
    /// Write a stereo recording of the call.
    pub record: bool,
    /// Ring this long before answering, in milliseconds.
    pub answer_delay_ms: u64,
}

impl CallSettings {
    /// Resolves the settings of a call of a tenant with `tenant` settings.
    pub fn resolve(config: &Config, tenant: &TenantSettings, call_id: &str) -> CallSettings {
        let mut agent = config.agent.clone();
        if let Some(greeting) = &tenant.greeting {
            agent.greeting = greeting.clone();
        }
        if let Some(prompt) = &tenant.prompt {
            agent.prompt = prompt.clone();
        }
        if let Some(intents) = &tenant.intents {
            agent.intents = intents.clone();
        }
        if let Some(keywords) = &tenant.keywords {
            agent.keywords = keywords.clone();
        }
        if let Some(target) = &tenant.transfer_target {
            agent.transfer_target = target.clone();
        }

        let mut conversation = ConversationSettings::from_config(&config.ai, &agent, call_id);
        conversation.non_interruptible_greeting = tenant.non_interruptible_greeting;
        conversation.sensitive_dtmf = tenant.sensitive_dtmf;
        if let Some(language) = &tenant.language {
            conversation.language = language.clone();
            conversation.voice.language = language.clone();
        }
        if let Some(voice) = &tenant.voice {
            conversation.voice.voice = voice.clone();
        }
        if let Some(backchannels) = &tenant.backchannels {
            conversation.backchannels = backchannels.clone();
        }
        if let Some(ms) = tenant.min_interruption_ms {
            conversation.min_interruption = std::time::Duration::from_millis(ms);
        }

        CallSettings {
            conversation,
            stt: tenant.stt.clone().unwrap_or_else(|| config.ai.stt.clone()),
            llm: tenant.llm.clone().unwrap_or_else(|| config.ai.llm.clone()),
            tts: tenant.tts.clone().unwrap_or_else(|| config.ai.tts.clone()),
            record: tenant.record.unwrap_or(config.media.record),
            answer_delay_ms: tenant.answer_delay_ms.unwrap_or(config.sip.answer_delay_ms),
            agent,
        }
    }

    /// Minimum caller speech before it interrupts the AI, in milliseconds.
    pub fn min_interruption_ms(&self) -> u32 {
        u32::try_from(self.conversation.min_interruption.as_millis()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::IntentConfig;

    #[test]
    fn server_settings_apply_without_overrides() {
        let config = Config::default();
        let settings = CallSettings::resolve(&config, &TenantSettings::default(), "c1");
        assert_eq!(settings.conversation.greeting, config.agent.greeting);
        assert_eq!(settings.stt, config.ai.stt);
        assert_eq!(settings.tts, config.ai.tts);
        assert_eq!(settings.record, config.media.record);
        assert_eq!(settings.answer_delay_ms, config.sip.answer_delay_ms);
        assert_eq!(settings.conversation.call_id, "c1");
    }

    #[test]
    fn tenant_overrides_win() {
        let config = Config::default();
        let tenant = TenantSettings {
            greeting: Some("Welcome to the bakery.".into()),
            voice: Some("en-gb".into()),
            language: Some("en-GB".into()),
            stt: Some(vec!["deepgram".into(), "whisper".into()]),
            llm: Some(vec!["openai".into()]),
            record: Some(true),
            answer_delay_ms: Some(1_500),
            backchannels: Some(vec!["right".into()]),
            min_interruption_ms: Some(450),
            non_interruptible_greeting: true,
            sensitive_dtmf: true,
            transfer_target: Some("sip:desk@example.com".into()),
            intents: Some(vec![IntentConfig {
                name: "bread".into(),
                keywords: vec!["bread".into()],
                answer: "We bake at six.".into(),
                action: String::new(),
            }]),
            ..TenantSettings::default()
        };
        let settings = CallSettings::resolve(&config, &tenant, "c2");
        assert_eq!(settings.conversation.greeting, "Welcome to the bakery.");
        assert_eq!(settings.conversation.voice.voice, "en-gb");
        assert_eq!(settings.conversation.language, "en-GB");
        assert_eq!(settings.stt, vec!["deepgram", "whisper"]);
        assert_eq!(settings.llm, vec!["openai"]);
        assert_eq!(settings.tts, config.ai.tts);
        assert!(settings.record);
        assert_eq!(settings.answer_delay_ms, 1_500);
        assert_eq!(settings.conversation.backchannels, vec!["right"]);
        assert_eq!(settings.min_interruption_ms(), 450);
        assert!(settings.conversation.non_interruptible_greeting);
        assert!(settings.conversation.sensitive_dtmf);
        assert_eq!(
            settings.conversation.transfer_target.as_deref(),
            Some("sip:desk@example.com")
        );
        assert_eq!(settings.agent.intents.len(), 1);
        assert_eq!(settings.agent.intents[0].name, "bread");
    }
}
