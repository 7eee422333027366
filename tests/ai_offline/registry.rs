//! The provider registry: chains by name, tenant keys, clear errors and key hygiene.

use std::collections::BTreeMap;

use voicegate::ai::provider::ProviderError;
use voicegate::ai::{
    AgentConfig, AiConfig, LLM_NAMES, ProvidersConfig, Registry, STT_NAMES, TTS_NAMES,
};
use voicegate::tenancy::ProviderKeys;

const SECRET: &str = "sk-test-secret-4711";

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| n.to_string()).collect()
}

fn providers() -> ProvidersConfig {
    ProvidersConfig {
        azure_endpoint: "https://westeurope.tts.speech.microsoft.com".to_owned(),
        ..ProvidersConfig::default()
    }
}

fn tenant_keys() -> ProviderKeys {
    let keys: BTreeMap<String, String> = ["deepgram", "openai", "anthropic", "elevenlabs", "azure"]
        .iter()
        .map(|p| (p.to_string(), SECRET.to_owned()))
        .collect();
    ProviderKeys::new(keys).expect("valid keys")
}

fn registry() -> Registry {
    Registry::new(&AiConfig::default(), &providers(), &AgentConfig::default()).expect("registry")
}

#[tokio::test]
async fn registry_builds_every_named_provider() {
    let registry = registry();
    let chains = registry
        .chains(
            &names(&STT_NAMES),
            &names(&LLM_NAMES),
            &names(&TTS_NAMES),
            &AgentConfig::default(),
            &tenant_keys(),
        )
        .expect("chains");
    let stt: Vec<&str> = chains.stt.iter().map(|p| p.name()).collect();
    let llm: Vec<&str> = chains.llm.iter().map(|p| p.name()).collect();
    let tts: Vec<&str> = chains.tts.iter().map(|p| p.name()).collect();
    assert_eq!(stt, ["whisper", "deepgram", "openai-stt"]);
    assert_eq!(llm, ["scripted", "openai", "anthropic"]);
    assert_eq!(tts, ["espeak", "elevenlabs", "openai-tts", "azure"]);
    // Building chains starts no process.
    assert_eq!(registry.whisper().status().starts, 0);
}

#[tokio::test]
async fn registry_keeps_chain_order() {
    let registry = registry();
    let chains = registry
        .chains(
            &names(&["openai", "whisper"]),
            &names(&["anthropic", "scripted"]),
            &names(&["openai", "espeak"]),
            &AgentConfig::default(),
            &tenant_keys(),
        )
        .expect("chains");
    assert_eq!(chains.stt[1].name(), "whisper");
    assert_eq!(chains.llm[0].name(), "anthropic");
    assert_eq!(chains.tts[1].name(), "espeak");
}

#[tokio::test]
async fn registry_rejects_missing_key() {
    let registry = registry();
    let no_keys = ProviderKeys::default();
    let default = |list: &[&str]| names(list);
    let cases = [
        (
            registry.chains(
                &default(&["deepgram"]),
                &default(&["scripted"]),
                &default(&["espeak"]),
                &AgentConfig::default(),
                &no_keys,
            ),
            "DEEPGRAM_API_KEY",
        ),
        (
            registry.chains(
                &default(&["whisper"]),
                &default(&["anthropic"]),
                &default(&["espeak"]),
                &AgentConfig::default(),
                &no_keys,
            ),
            "ANTHROPIC_API_KEY",
        ),
        (
            registry.chains(
                &default(&["whisper"]),
                &default(&["scripted"]),
                &default(&["elevenlabs"]),
                &AgentConfig::default(),
                &no_keys,
            ),
            "ELEVENLABS_API_KEY",
        ),
    ];
    for (result, variable) in cases {
        if std::env::var(variable).is_ok() {
            // The environment supplies this key, so nothing is missing.
            continue;
        }
        let error = result.expect_err("missing key is rejected");
        assert!(matches!(error, ProviderError::Config { .. }), "{error:?}");
        assert!(error.to_string().contains(variable), "{error}");
    }
}

#[tokio::test]
async fn provider_without_key_is_left_out_of_a_longer_chain() {
    if std::env::var("DEEPGRAM_API_KEY").is_ok() {
        return;
    }
    let registry = registry();
    let chains = registry
        .chains(
            &names(&["deepgram", "whisper"]),
            &names(&["scripted"]),
            &names(&["espeak"]),
            &AgentConfig::default(),
            &ProviderKeys::default(),
        )
        .expect("whisper still serves the call");
    let stt: Vec<_> = chains.stt.iter().map(|p| p.name()).collect();
    assert_eq!(stt, vec!["whisper"]);
}

#[tokio::test]
async fn registry_rejects_unknown_and_empty() {
    let registry = registry();
    let keys = ProviderKeys::default();
    let agent = AgentConfig::default();
    let unknown = registry.chains(
        &names(&["whisper"]),
        &names(&["scripted"]),
        &names(&["festival"]),
        &agent,
        &keys,
    );
    let message = unknown.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("festival"), "{message}");

    let empty = registry.chains(
        &[],
        &names(&["scripted"]),
        &names(&["espeak"]),
        &agent,
        &keys,
    );
    let message = empty.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("stt chain"), "{message}");
}

#[tokio::test]
async fn registry_debug_hides_keys() {
    let config = ProvidersConfig {
        anthropic_api_key: SECRET.to_owned(),
        deepgram_api_key: SECRET.to_owned(),
        ..providers()
    };
    let registry =
        Registry::new(&AiConfig::default(), &config, &AgentConfig::default()).expect("registry");
    let chains = registry
        .chains(
            &names(&STT_NAMES),
            &names(&LLM_NAMES),
            &names(&TTS_NAMES),
            &AgentConfig::default(),
            &tenant_keys(),
        )
        .expect("chains");
    let debug = format!("{registry:?} {chains:?} {:?}", tenant_keys());
    assert!(!debug.contains(SECRET), "{debug}");
}

#[tokio::test]
async fn registry_rejects_invalid_config() {
    let ai = AiConfig {
        stt: names(&["festival"]),
        ..AiConfig::default()
    };
    let result = Registry::new(&ai, &providers(), &AgentConfig::default());
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("ai.stt"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_warm_up_and_shutdown() {
    let registry = registry();
    registry.warm_up().await;
    let status = registry.whisper().status();
    assert!(status.ready, "{status:?}");
    assert!(status.pid.is_some());
    registry.shutdown().await;
    let status = registry.whisper().status();
    assert_eq!(status.pid, None);
    assert!(!status.ready);
}

#[test]
fn config_validate_checks_providers() {
    let mut config = voicegate::config::Config::default();
    assert!(config.validate().is_ok());
    config.providers.deepgram_url = "http://api.deepgram.com/v1/listen".to_owned();
    let message = config
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("providers.deepgram_url"), "{message}");
}
